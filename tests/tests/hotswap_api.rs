//! Hotswap seen through the API, with real code: `xtask deploy` on a fresh local environment serves
//! `GET /health` with build `dev`; rebuilding with `CQRS_BUILD_TAG` set (the query binary bakes it in) and
//! `deploy --hotswap` updates only the query function, and the gateway answers with the new tag; `status`
//! shows the drift; a full deploy of the same build reconciles it without uploading a zip again.
//! Everything goes through the real CLI with free ports in a temporary copy of `config/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the xtask binary once (what `cargo xtask` runs) and returns its path.
fn xtask_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "xtask",
                "--bin",
                "xtask",
                "--message-format=json",
            ])
            .current_dir(repo_root())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building xtask failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"]["name"] == "xtask" && v["target"]["kind"][0] == "bin")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the xtask executable")
    })
    .clone()
}

/// A fresh local environment (config copy with free ports, empty state directory); torn down on drop.
struct Env {
    dir: tempfile::TempDir,
    gateway_port: u16,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        for entry in std::fs::read_dir(repo_root().join("config")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), config.join(entry.file_name())).unwrap();
        }
        let free = || local_engine::endpoint::free_port().unwrap();
        let (gateway_port, endpoint_port) = (free(), free());
        let local = config.join("local.yaml");
        let mut yaml: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
        yaml["local"]["gateway_port"] = gateway_port.into();
        yaml["local"]["endpoint_port"] = endpoint_port.into();
        std::fs::write(&local, serde_yaml::to_string(&yaml).unwrap()).unwrap();
        Env { dir, gateway_port }
    }

    /// Runs `xtask <args>` with `CQRS_BUILD_TAG` set to `tag` (or removed), as a user would.
    fn xtask(&self, tag: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(xtask_binary());
        cmd.args(args)
            .env("XTASK_STATE_DIR", self.dir.path().join("state"))
            .env("XTASK_CONFIG_DIR", self.dir.path().join("config"))
            .env_remove("XTASK_ENV")
            .stdin(std::process::Stdio::null());
        match tag {
            Some(t) => cmd.env("CQRS_BUILD_TAG", t),
            None => cmd.env_remove("CQRS_BUILD_TAG"),
        };
        cmd.output().expect("xtask runs")
    }

    /// `xtask <args> --output json`, which must succeed, parsed.
    fn json(&self, tag: Option<&str>, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.xtask(tag, &all);
        assert!(
            out.status.success(),
            "xtask {all:?} failed:\n{}",
            text(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("xtask {all:?} printed no JSON ({e}):\n{}", text(&out)))
    }

    async fn health(&self) -> Value {
        let resp = reqwest::get(format!("http://127.0.0.1:{}/health", self.gateway_port))
            .await
            .expect("the gateway answers");
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.xtask(None, &["teardown", "--yes"]);
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn a_hotswapped_query_function_answers_with_its_new_build_through_the_gateway() {
    let env = Env::new();
    env.json(None, &["deploy", "--yes"]);
    let health = env.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["build"], "dev", "{health}");

    // A new build of the query function only: the tag is read by the query crate at compile time.
    let tag = format!("hotswap-{}", std::process::id());
    let swap = env.json(Some(&tag), &["deploy", "--hotswap", "--yes"]);
    assert_eq!(swap["up_to_date"], false, "{swap}");
    let swapped: Vec<&str> = swap["swapped"]
        .as_array()
        .expect("swapped functions")
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        swapped,
        ["query"],
        "only the changed function is updated: {swap}"
    );

    // The local engine was restarted on the new binary: the gateway shows the new behaviour.
    let health = env.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["build"], tag.as_str(), "{health}");

    let status = env.json(Some(&tag), &["status"]);
    assert!(
        status["drift"]["functions"]["query"].is_object(),
        "status shows the query function drifted: {status}"
    );

    // A full deploy of the same build reconciles the stack; the zips are already uploaded.
    let full = env.json(Some(&tag), &["deploy", "--yes"]);
    let uploaded: Vec<&str> = full["uploads"]["uploaded"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        uploaded.iter().all(|k| !k.ends_with(".zip")),
        "no zip is uploaded again: {full}"
    );
    let status = env.json(Some(&tag), &["status"]);
    assert!(
        status["drift"].is_null(),
        "no drift after a full deploy: {status}"
    );
    let health = env.health().await;
    assert_eq!(
        health["build"],
        tag.as_str(),
        "after the full deploy: {health}\n{full}"
    );
}
