//! `xtask dev` end to end through the real CLI, as a user runs it: it deploys, then a source edit of the query
//! function (its `/health` build tag) is rebuilt and swapped into the running engine, visible through the API,
//! while data written before the swap stays readable and the command function keeps its process; a config edit
//! is deployed through the change set and served with the new setting; a compile error is printed and the
//! previous version keeps serving; Ctrl-C (SIGINT) during a swap lets the swap finish, then stops watching and
//! leaves the engine serving until `teardown`.
//!
//! `dev` watches and builds a scratch copy of the workspace (`--workspace`, sharing this build's target
//! directory), so the test edits sources freely and the repository's own files are never touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tests::cli::{Background, LocalEnv, output_text, xtask_binary};
use tests::repo_root;

/// Copies the workspace's sources (not `target/`, `.git/`, `.local/`) into `dst`.
fn copy_workspace(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if matches!(name.to_str(), Some("target" | ".git" | ".local")) {
            continue;
        }
        let to = dst.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_workspace(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// `dev` on the scratch workspace, in the background, its stderr collected line by line.
fn start_dev(env: &LocalEnv, workspace: &Path) -> Background {
    // The target directory of this build (`<target>/debug/xtask`): the scratch copy builds into it.
    let target = xtask_binary()
        .ancestors()
        .nth(2)
        .expect("the xtask binary lives in <target>/debug")
        .to_path_buf();
    let mut cmd = env.command(&["dev", "--workspace", workspace.to_str().unwrap()]);
    cmd.env("CARGO_TARGET_DIR", &target)
        .env_remove("CQRS_BUILD_TAG");
    Background::start(cmd)
}

async fn health(http: &reqwest::Client, url: &str) -> Value {
    let resp = http
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn events_of(http: &reqwest::Client, url: &str, id: &str) -> (u16, String) {
    let resp = http
        .get(format!("{url}/aggregates/{id}/events"))
        .send()
        .await
        .expect("the gateway answers");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// Pids of the engine's processes running `<function>/bootstrap`.
fn function_pids(env: &LocalEnv, function: &str) -> Vec<u32> {
    let engine = env.pid("engine.pid").expect("the engine's pid file");
    let suffix = format!("{function}/bootstrap");
    let mut pids: Vec<u32> = local_engine::daemon::group_members(engine)
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|exe| {
                    let exe = exe.to_string_lossy().replace(" (deleted)", "");
                    exe.ends_with(&suffix)
                })
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn edit(path: &PathBuf, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} contains `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test]
async fn dev_swaps_an_edited_function_keeps_data_survives_a_compile_error_and_ctrl_c() {
    let mut env = LocalEnv::new();
    let scratch = tempfile::tempdir().unwrap();
    let workspace = scratch.path().join("workspace");
    copy_workspace(&repo_root(), &workspace);
    let http = reqwest::Client::new();
    let url = env.url();

    let mut dev = start_dev(&env, &workspace);
    // The first run compiles the scratch copy's own crates (the dependencies are shared with this build).
    dev.wait_for("watching", 1, Duration::from_secs(900));
    assert_eq!(health(&http, &url).await["build"], "dev");

    // Data written before the swap, through both functions that touch the tables.
    let id = format!("dev-loop-{}", std::process::id());
    let resp = http
        .post(format!("{url}/events"))
        .json(&json!({"aggregateId": id, "eventType": "user_created", "eventData": {"name": "Ada", "email": "ada@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let (status, before) = events_of(&http, &url, &id).await;
    assert_eq!(status, 200, "{before}");
    assert!(before.contains("user_created"), "{before}");
    let command_pids = function_pids(&env, "command");
    assert!(!command_pids.is_empty(), "a warm command process");

    // A behaviour-changing edit of one function.
    let main_rs = workspace.join("functions/query/src/main.rs");
    let tag = format!("edited-{}", std::process::id());
    edit(
        &main_rs,
        "unwrap_or(\"dev\")",
        &format!("unwrap_or(\"{tag}\")"),
    );
    dev.wait_for("rebuilt and swapped", 1, Duration::from_secs(600));
    let out = dev.output();
    assert!(
        out.contains("query rebuilt and swapped") && out.contains("command, projector unchanged"),
        "only the query function is swapped:\n{out}"
    );
    let swap_line = out
        .lines()
        .find(|l| l.contains("query rebuilt and swapped"))
        .unwrap();
    for phase in ["(cargo ", ", package ", ", update ", ", reload "] {
        assert!(
            swap_line.contains(phase),
            "the swap line says where its time went ({phase:?}): {swap_line}"
        );
    }
    assert_eq!(health(&http, &url).await["build"], tag.as_str(), "{out}");
    // The swap is in the inspector's hotswap history.
    let history = local_engine::inspector::hotswap_history(&local_engine::state::StatePaths::new(
        env.state_dir(),
    ));
    assert!(
        history
            .first()
            .is_some_and(|h| h.functions.len() == 1 && h.functions[0].function == "query"),
        "the swap of the query is recorded for the inspector: {history:?}"
    );
    let (status, after) = events_of(&http, &url, &id).await;
    assert_eq!((status, &after), (200, &before), "data survives the swap");
    assert_eq!(
        function_pids(&env, "command"),
        command_pids,
        "the unchanged command function keeps its process"
    );

    // A config edit goes through `deploy`'s change set: the query function's environment changes (its log
    // level), the engine serves it with the new setting, and the tables keep their data.
    edit(
        &env.config_dir().join("local.yaml"),
        "  query:\n    log_level: debug",
        "  query:\n    log_level: info",
    );
    dev.wait_for(": deployed in", 2, Duration::from_secs(600));
    // The engine restarted on the new setting: connections pooled to the old one are gone.
    let http = reqwest::Client::new();
    assert_eq!(health(&http, &url).await["build"], tag.as_str());
    let environments: Vec<String> = function_pids(&env, "query")
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
        .map(|e| String::from_utf8_lossy(&e).replace('\0', " "))
        .collect();
    assert!(
        !environments.is_empty() && environments.iter().all(|e| e.contains("RUST_LOG=info")),
        "the query function runs with the edited log level: {environments:?}\n{}",
        dev.output()
    );
    let (status, after_config) = events_of(&http, &url, &id).await;
    assert_eq!(
        (status, &after_config),
        (200, &before),
        "data survives the deploy"
    );

    // A compile error: shown, and the swapped-in version keeps serving.
    let good = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(
        &main_rs,
        good.clone() + "\nfn broken() -> u32 { \"not a number\" }\n",
    )
    .unwrap();
    dev.wait_for("build failed", 1, Duration::from_secs(600));
    let out = dev.output();
    assert!(
        out.contains("error[E0308]"),
        "cargo's error is shown:\n{out}"
    );
    assert_eq!(health(&http, &url).await["build"], tag.as_str(), "{out}");

    // Ctrl-C while a change is being applied: the swap runs to its end (the endpoint and the engine never
    // disagree on the code), then dev stops watching; the engine keeps serving the swapped code.
    let fixed = format!("{tag}-fixed");
    let rebuilding = dev.output().matches("changed: rebuilding").count();
    std::fs::write(&main_rs, good.replacen(&tag, &fixed, 1)).unwrap();
    dev.wait_for(
        "changed: rebuilding",
        rebuilding + 1,
        Duration::from_secs(60),
    );
    let int = std::process::Command::new("kill")
        .args(["-INT", &dev.child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    dev.wait_for(
        "Ctrl-C: finishing the change in progress",
        1,
        Duration::from_secs(60),
    );
    // `finish` returns once dev has exited and its last line is read: no delay to guess.
    let status = dev.finish(Duration::from_secs(600));
    let out = dev.output();
    assert!(status.success(), "dev exits 0 on Ctrl-C:\n{out}");
    let (swapped, stopped) = (
        out.rfind("query rebuilt and swapped"),
        out.find("stopped watching"),
    );
    assert!(
        matches!((swapped, stopped), (Some(s), Some(t)) if s > out.find("Ctrl-C: finishing").unwrap() && t > s),
        "the interrupted swap finished, then dev stopped:\n{out}"
    );
    assert_eq!(health(&http, &url).await["build"], fixed.as_str(), "{out}");
    let (status, still) = events_of(&http, &url, &id).await;
    assert_eq!((status, &still), (200, &before));

    let down = env.run(&["teardown", "--yes"]);
    assert!(down.status.success(), "{}", output_text(&down));
    env.torn_down = true;

    // The scratch copy built its edited query into this checkout's target directory, into the same cargo units
    // (cargo keys a workspace member by its path inside the workspace) and later than this checkout's sources
    // were written: cargo, which compares modification times, would take that build as fresh for the checkout
    // too. Marking the checkout's query sources as changed now makes its next build compile them again.
    let file = repo_root().join("functions/query/src/main.rs");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .unwrap_or_else(|e| panic!("marking {} as changed: {e}", file.display()));
}
