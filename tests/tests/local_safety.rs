//! A local engine that is safe to leave running, checked through the real CLI: a stale pid file never gets
//! someone else's process killed, `status` and `teardown` start nothing to report that nothing is there,
//! another program on the gateway port is never taken for the engine, a local environment in another region
//! deploys and serves, and a binary built from one checkout refuses to act on another.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tests::cli::{LocalEnv, output_text as text, xtask_binary};
use tests::repo_root;

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn status_and_teardown_on_an_empty_state_start_nothing() {
    let mut env = LocalEnv::new();
    let status = env.run(&["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("is not deployed"),
        "{}",
        text(&status)
    );
    let teardown = env.run(&["teardown", "--yes"]);
    env.torn_down = true;
    assert!(teardown.status.success(), "{}", text(&teardown));
    assert!(
        stderr(&teardown).contains("nothing is deployed"),
        "{}",
        text(&teardown)
    );
    assert!(
        !env.state_dir().join("endpoint.pid").exists(),
        "no endpoint was started: {}",
        text(&teardown)
    );
    assert!(
        port_free(env.endpoint_port),
        "nothing listens on the endpoint port"
    );
    let log = env.state_dir().join("endpoint.log");
    assert!(
        !log.exists(),
        "moto never ran (no log at {})",
        log.display()
    );
}

#[test]
fn teardown_leaves_a_process_named_by_a_stale_pid_file_alone() {
    let mut env = LocalEnv::new();
    let mut sleep = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::create_dir_all(env.state_dir()).unwrap();
    // As after a reboot: the files name a live pid, but it belongs to an unrelated program now. One is in
    // today's format with another start time, the other an old bare pid.
    let mut record = local_engine::process::identify(sleep.id(), "xtask serve").unwrap();
    record.start_ticks = record.start_ticks.saturating_sub(1000);
    std::fs::write(
        env.state_dir().join("engine.pid"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    std::fs::write(env.state_dir().join("endpoint.pid"), sleep.id().to_string()).unwrap();

    let teardown = env.run(&["teardown", "--yes"]);
    env.torn_down = true;
    assert!(teardown.status.success(), "{}", text(&teardown));
    let err = stderr(&teardown);
    assert!(
        err.contains("engine.pid was stale") && err.contains("endpoint.pid was stale"),
        "both stale pid files are reported: {}",
        text(&teardown)
    );
    assert!(
        matches!(sleep.try_wait(), Ok(None)),
        "the unrelated process survives teardown"
    );
    assert!(!env.state_dir().join("engine.pid").exists());
    assert!(!env.state_dir().join("endpoint.pid").exists());
    // `doctor` had nothing to say about them any more; with a stale file back, it warns.
    std::fs::write(
        env.state_dir().join("engine.pid"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let doctor = env.run(&["doctor"]);
    assert!(
        String::from_utf8_lossy(&doctor.stdout).contains("engine pid file"),
        "{}",
        text(&doctor)
    );
    assert!(
        matches!(sleep.try_wait(), Ok(None)),
        "doctor signals nothing"
    );
    sleep.kill().unwrap();
    sleep.wait().unwrap();
}

/// A server that answers every request with 200 and `{"status":"ok"}`, like a health check would.
fn dummy_server(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"status":"ok"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[tokio::test]
async fn deploy_does_not_take_another_program_on_the_gateway_port_for_the_engine() {
    let env = LocalEnv::new();
    let listener = TcpListener::bind(("127.0.0.1", env.gateway_port)).unwrap();
    dummy_server(listener);
    let http = reqwest::Client::new();
    assert_eq!(
        tests::get_status(&http, format!("{}/health", env.url())).await,
        200,
        "the impostor answers /health"
    );

    let deploy = env.run(&["deploy", "--yes"]);
    assert!(!deploy.status.success(), "{}", text(&deploy));
    let err = stderr(&deploy);
    assert!(
        err.contains(&format!(
            "127.0.0.1:{} is in use by another program",
            env.gateway_port
        )) && err.contains("local.gateway_port"),
        "the error names the port and the setting: {}",
        text(&deploy)
    );
    assert!(
        !String::from_utf8_lossy(&deploy.stdout).contains(&env.url()),
        "deploy never reports the impostor as the API: {}",
        text(&deploy)
    );
    assert!(env.pid("engine.pid").is_none(), "no engine is left behind");
    assert_eq!(
        tests::get_status(&http, format!("{}/health", env.url())).await,
        200,
        "the other program is left alone"
    );
}

#[tokio::test]
async fn a_local_environment_in_another_region_deploys_and_serves() {
    let env = LocalEnv::new();
    let local = env.config_dir().join("local.yaml");
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
    yaml["region"] = "eu-west-1".into();
    std::fs::write(&local, serde_yaml::to_string(&yaml).unwrap()).unwrap();

    let deploy = env.run(&["deploy", "--yes"]);
    assert!(deploy.status.success(), "deploy failed:\n{}", text(&deploy));
    let http = reqwest::Client::new();
    let url = env.url();
    let id = format!("region-{}", std::process::id());
    let posted = http
        .post(format!("{url}/events"))
        .json(&json!({"aggregateId": id, "eventType": "user_created", "eventData": {"name": "Ada", "email": "ada@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 200);
    // The functions write and read the tables of the plan's region.
    let events: Value = tests::get_json(&http, format!("{url}/aggregates/{id}/events")).await;
    assert!(events.to_string().contains("user_created"), "{events}");
    let ddb = aws_sdk_dynamodb::Client::new(
        &local_engine::endpoint::sdk_config_in(
            &format!("http://127.0.0.1:{}", env.endpoint_port),
            "eu-west-1",
        )
        .await,
    );
    let tables = ddb.list_tables().send().await.unwrap();
    assert!(
        tables.table_names().iter().any(|t| t.ends_with("-events")),
        "the stack lives in eu-west-1: {tables:?}"
    );
    let status = env.run(&["status"]);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("not deployed"),
        "{}",
        text(&status)
    );
}

/// A minimal checkout of this workspace's shape (what the tool looks for when walking up).
fn fake_checkout(dir: &Path) {
    std::fs::create_dir_all(dir.join("xtask")).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"xtask\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("xtask/Cargo.toml"),
        "[package]\nname = \"xtask\"\n",
    )
    .unwrap();
}

#[test]
fn a_binary_built_from_other_sources_refuses_to_act_on_a_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    // As with a shared CARGO_TARGET_DIR: the binary another clone built, run in a clone whose sources differ
    // (here: a checkout holding none of them). `shared_target.rs` runs clones with the same sources.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let copy = bin.join("xtask");
    std::fs::copy(xtask_binary(), &copy).unwrap();
    let clone = tmp.path().join("clone");
    fake_checkout(&clone);
    let run = |dir: &Path, args: &[&str]| {
        Command::new(&copy)
            .args(args)
            .current_dir(dir)
            .env_remove("CARGO_MANIFEST_DIR")
            .env_remove("XTASK_CONFIG_DIR")
            .env_remove("XTASK_STATE_DIR")
            .env_remove("XTASK_ENV")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let other = run(&clone.join("config"), &["status"]);
    assert_eq!(other.status.code(), Some(3), "{}", text(&other));
    let err = stderr(&other);
    assert!(
        err.contains(&format!("the checkout it runs in ({})", clone.display()))
            && err.contains("xtask/src/main.rs")
            && err.contains("CARGO_TARGET_DIR")
            && err.contains("touch "),
        "{}",
        text(&other)
    );
    assert!(
        !clone.join(".local").exists(),
        "nothing was started or written"
    );

    // The same happens when cargo names the other checkout (`cargo run` sets CARGO_MANIFEST_DIR).
    let by_cargo = Command::new(&copy)
        .arg("status")
        .current_dir(&bin)
        .env("CARGO_MANIFEST_DIR", clone.join("xtask"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(by_cargo.status.code(), Some(3), "{}", text(&by_cargo));

    let outside = run(&bin, &["status"]);
    assert_eq!(outside.status.code(), Some(3), "{}", text(&outside));
    assert!(
        stderr(&outside).contains("not inside a checkout"),
        "{}",
        text(&outside)
    );

    // Run from inside the checkout it was built from, the copy works, wherever the binary lives.
    let home = run(&repo_root().join("config"), &["render", "--env", "local"]);
    assert!(home.status.success(), "{}", text(&home));
    assert!(
        String::from_utf8_lossy(&home.stdout).contains("AWSTemplateFormatVersion"),
        "{}",
        text(&home)
    );
}
