//! Shared set-up of the deploy tests: a fresh local endpoint per test, a temporary config directory with a
//! unique stack name (the repository's `config/defaults.yaml` plus a small `local.yaml`), and a release packaged
//! from a small real ELF binary so tests do not wait for the functions to compile.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use deployer::aws::Clients;
use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployOutcome, DeployRequest};
use deployer::ui::{Confirmation, RecordingUi};
use local_engine::endpoint::Endpoint;
use stack::{Plan, RenderedTemplate};

pub struct TestEnv {
    pub moto: Endpoint,
    pub clients: Clients,
    pub dir: tempfile::TempDir,
    pub stack_name: String,
}

/// The repository root (this crate lives in `tests/`).
pub use tests::repo_root;

impl TestEnv {
    /// A fresh endpoint and a config dir whose `local.yaml` names the stack `t-<name>` and adds `extra` (YAML
    /// keys merged over the defaults, e.g. a `tables:` block).
    pub async fn start(name: &str, extra: &str) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let moto = Endpoint::start_fresh(&dir.path().join("state"))
            .await
            .expect("the local endpoint starts");
        let clients = Clients::from_sdk_config(&moto.sdk_config().await);
        let stack_name = format!("t-{name}");
        let env = TestEnv {
            moto,
            clients,
            dir,
            stack_name,
        };
        env.write_config(extra);
        env
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Rewrites `local.yaml` (to change a setting between deploys).
    pub fn write_config(&self, extra: &str) {
        let cfg = self.config_dir();
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::copy(
            repo_root().join("config/defaults.yaml"),
            cfg.join("defaults.yaml"),
        )
        .unwrap();
        let yaml = format!(
            "kind: local\nstack_name: {}\nregion: us-east-1\ntags:\n  environment: test\nlocal:\n  gateway_port: 3999\n  endpoint_port: {}\n{extra}",
            self.stack_name,
            self.moto.port()
        );
        std::fs::write(cfg.join("local.yaml"), yaml).unwrap();
    }

    pub fn load(&self) -> (Plan, RenderedTemplate) {
        stack::load_checked(&self.config_dir(), "local").expect("the test config is valid")
    }

    pub fn target_dir(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// Packages `/bin/true` (plus `variant` bytes, to make a different build) as all three functions.
    pub fn release(&self, plan: &Plan, template: &RenderedTemplate, variant: &[u8]) -> Release {
        tests::release::package(
            plan,
            &template.sha256,
            self.dir.path(),
            &self.target_dir(),
            Path::new("/bin/true"),
            |f| [variant, f.as_str().as_bytes()].concat(),
        )
    }

    pub fn bucket(&self, plan: &Plan) -> String {
        deployer::artifacts::bucket_name(plan, None)
    }

    /// Loads the config, packages a release and deploys it with `--yes` semantics.
    pub async fn deploy(
        &self,
        variant: &[u8],
        opts: impl FnOnce(&mut DeployOptions),
    ) -> (deployer::Result<DeployOutcome>, RecordingUi) {
        let (plan, template) = self.load();
        let release = self.release(&plan, &template, variant);
        let mut options = DeployOptions::for_plan(&plan);
        opts(&mut options);
        let ui = RecordingUi::new(Confirmation::Yes);
        let bucket = self.bucket(&plan);
        let req = DeployRequest {
            plan: &plan,
            template_body: &template.body,
            release: &release,
            bucket: &bucket,
        };
        let result = deployer::deploy::deploy(&self.clients, req, &options, &ui).await;
        (result, ui)
    }

    pub async fn table_exists(&self, name: &str) -> bool {
        self.clients
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .is_ok()
    }

    pub async fn stack_exists(&self) -> bool {
        deployer::stackops::describe(&self.clients.cfn, &self.stack_name)
            .await
            .unwrap()
            .is_some()
    }
}

/// `tables:` YAML retaining (or not) both tables.
pub fn tables_yaml(retain: bool) -> String {
    format!(
        "tables:\n  events:\n    retain_on_delete: {retain}\n  projections:\n    retain_on_delete: {retain}\n"
    )
}

pub fn assert_path_exists(p: &Path) {
    assert!(p.exists(), "{} exists", p.display());
}
