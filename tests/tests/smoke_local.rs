//! The delivery train end to end on this machine, through the real CLI and the real functions: deploy `sa`,
//! `cargo xtask smoke --env sa`, `cargo xtask promote --from sa --to sb`, `cargo xtask smoke --env sb`.
//!
//! Each environment has its own local AWS endpoint (owned by this test, stopped when it ends) and its own local
//! engine (started by deploy/promote, stopped by `teardown` in a guard). The smoke test talks to the local
//! gateway with the `domain::api` types and records its result in the environment's artifact bucket, where the
//! promotion reads it; the promoted environment must serve the same binaries and pass the same smoke test.

use std::path::{Path, PathBuf};
use std::process::Command;

use deployer::aws::Clients;
use local_engine::endpoint::Endpoint;
use stack::FunctionName;

use tests::cli::xtask_binary as xtask_bin;
use tests::repo_root;

struct Train {
    dir: tempfile::TempDir,
    motos: Vec<(&'static str, Endpoint)>,
}

impl Train {
    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn state_dir(&self, env: &str) -> PathBuf {
        self.dir.path().join("state").join(env)
    }

    /// `cargo xtask <args>` for `env`, with that environment's state directory; returns (exit code, stdout, stderr).
    fn xtask(&self, env: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(xtask_bin())
            .args(args)
            .arg("--config-dir")
            .arg(self.config_dir())
            .env("XTASK_STATE_DIR", self.state_dir(env))
            .current_dir(repo_root())
            .output()
            .expect("cargo runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn clients(&self, env: &str) -> Clients {
        let moto = &self.motos.iter().find(|(e, _)| *e == env).unwrap().1;
        Clients::from_sdk_config(&moto.sdk_config().await)
    }
}

impl Drop for Train {
    /// Stops the local engines the CLI started in the background (the endpoints die with their handles).
    fn drop(&mut self) {
        for (env, _) in &self.motos {
            let _ = self.xtask(env, &["teardown", "--env", env, "--yes"]);
        }
    }
}

fn write_configs(dir: &Path, motos: &[(&str, Endpoint)]) {
    let cfg = dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::copy(
        repo_root().join("config/defaults.yaml"),
        cfg.join("defaults.yaml"),
    )
    .unwrap();
    for (env, moto) in motos {
        let deploy = if *env == "sb" {
            "deploy:\n  promote_from: sa\n  require_smoke: true\n"
        } else {
            ""
        };
        let gateway = local_engine::endpoint::free_port().unwrap();
        let yaml = format!(
            "kind: local\nstack_name: t-train-{env}\nregion: us-east-1\ntags:\n  environment: {env}\nlocal:\n  gateway_port: {gateway}\n  endpoint_port: {}\n{deploy}",
            moto.port()
        );
        std::fs::write(cfg.join(format!("{env}.yaml")), yaml).unwrap();
    }
}

fn json(stdout: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON document ({e}):\n{stdout}"))
}

#[tokio::test]
async fn deploy_smoke_promote_smoke_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut motos = Vec::new();
    for env in ["sa", "sb"] {
        let moto = Endpoint::start_fresh(&dir.path().join("moto").join(env))
            .await
            .expect("the local endpoint starts");
        motos.push((env, moto));
    }
    write_configs(dir.path(), &motos);
    let train = Train { dir, motos };
    // A command for one environment may reach the other's endpoint (promote): each state directory knows both.
    for (env, _) in &train.motos {
        for (_, moto) in &train.motos {
            moto.adopt(&train.state_dir(env))
                .expect("the endpoint is recorded");
        }
    }

    // Promotion before anything exists is refused (exit 3) and says what to do.
    let (code, _, err) = train.xtask("sb", &["promote", "--from", "sa", "--to", "sb", "--yes"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("`sa` has no release"), "{err}");

    let (code, out, err) = train.xtask(
        "sa",
        &["deploy", "--env", "sa", "--yes", "--output", "json"],
    );
    assert_eq!(code, 0, "deploy sa failed:\n{out}\n{err}");
    let deployed = json(&out, "deploy");
    let digest = deployed["release_digest"].as_str().unwrap().to_string();

    // Deployed but not smoke-tested: still refused.
    let (code, _, err) = train.xtask("sb", &["promote", "--from", "sa", "--to", "sb", "--yes"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no smoke test recorded for `sa`"), "{err}");

    let (code, out, err) = train.xtask("sa", &["smoke", "--env", "sa", "--output", "json"]);
    assert_eq!(code, 0, "smoke sa failed:\n{out}\n{err}");
    let smoke = json(&out, "smoke");
    assert_eq!(smoke["passed"], true, "{out}");
    assert_eq!(smoke["release_digest"], digest.as_str());
    let names: Vec<&str> = smoke["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "health",
            "append user_created",
            "read the event back",
            "projection caught up",
            "stale version refused (409)"
        ]
    );
    // Recorded with the environment, where promotion reads it.
    let (sa_plan, _) = stack::load_checked(&train.config_dir(), "sa").unwrap();
    let sa = train.clients("sa").await;
    let record = deployer::promote::get_smoke_record(
        &sa.s3,
        &deployer::artifacts::bucket_name(&sa_plan, None),
        "sa",
    )
    .await
    .unwrap()
    .expect("smoke/sa.json exists");
    assert!(record.passed);
    assert_eq!(record.release_digest.as_deref(), Some(digest.as_str()));

    let (code, out, err) = train.xtask(
        "sb",
        &[
            "promote", "--from", "sa", "--to", "sb", "--yes", "--output", "json",
        ],
    );
    assert_eq!(code, 0, "promote failed:\n{out}\n{err}");
    let promoted = json(&out, "promote");
    assert_eq!(promoted["release_digest"], digest.as_str());
    assert!(
        promoted["api_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{out}"
    );

    // sb runs the very zips of sa.
    let (sb_plan, _) = stack::load_checked(&train.config_dir(), "sb").unwrap();
    let sb = train.clients("sb").await;
    for f in FunctionName::ALL {
        let a = sa
            .lambda
            .get_function_configuration()
            .function_name(&sa_plan.function(f).function_name)
            .send()
            .await
            .unwrap();
        let b = sb
            .lambda
            .get_function_configuration()
            .function_name(&sb_plan.function(f).function_name)
            .send()
            .await
            .unwrap();
        assert_eq!(a.code_sha256(), b.code_sha256(), "{f}");
        assert!(a.code_sha256().is_some());
    }

    let (code, out, err) = train.xtask("sb", &["smoke", "--env", "sb", "--output", "json"]);
    assert_eq!(code, 0, "smoke sb failed:\n{out}\n{err}");
    let smoke_b = json(&out, "smoke");
    assert_eq!(smoke_b["passed"], true, "{out}");
    assert_eq!(smoke_b["release_digest"], digest.as_str());

    // A smoke test against an API that is not there fails (exit 1) and is recorded as failed.
    let (code, out, _) = train.xtask(
        "sa",
        &[
            "smoke",
            "--env",
            "sa",
            "--url",
            "http://127.0.0.1:9",
            "--output",
            "json",
            "--no-record",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(json(&out, "smoke")["passed"], false);
}
