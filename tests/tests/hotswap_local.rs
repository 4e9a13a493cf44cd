//! `deploy --hotswap` against the local AWS endpoint: only the changed functions get `UpdateFunctionCode`, the
//! stack is recorded as drifted in code and `status` shows it, anything but a code change is refused, the config
//! can forbid it, and the next full deploy reconciles the stack without uploading the zips a second time.
//!
//! Releases are packaged from a small real ELF with per-function variants, so "change one function" is exact and
//! nothing has to compile.

use std::path::Path;

use deployer::aws::Clients;
use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployRequest, DeployResult};
use deployer::ui::{Confirmation, RecordingUi};
use local_engine::endpoint::Endpoint;
use stack::{FunctionName, Plan, RenderedTemplate};
use tests::repo_root;

struct Env {
    moto: Endpoint,
    clients: Clients,
    dir: tempfile::TempDir,
    name: String,
}

impl Env {
    async fn start(name: &str, deploy_yaml: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let moto = Endpoint::start_fresh(&dir.path().join("state"))
            .await
            .expect("the local endpoint starts");
        let clients = Clients::from_sdk_config(&moto.sdk_config().await);
        let env = Env {
            moto,
            clients,
            dir,
            name: name.to_string(),
        };
        env.write_config("", deploy_yaml);
        env
    }

    fn write_config(&self, extra: &str, deploy_yaml: &str) {
        let cfg = self.dir.path().join("config");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::copy(
            repo_root().join("config/defaults.yaml"),
            cfg.join("defaults.yaml"),
        )
        .unwrap();
        let yaml = format!(
            "kind: local\nstack_name: t-hs-{}\nregion: us-east-1\ntags:\n  environment: test\nlocal:\n  gateway_port: 3998\n  endpoint_port: {}\n{deploy_yaml}{extra}",
            self.name,
            self.moto.port()
        );
        std::fs::write(cfg.join("hs.yaml"), yaml).unwrap();
    }

    fn load(&self) -> (Plan, RenderedTemplate) {
        stack::load_checked(&self.dir.path().join("config"), "hs")
            .expect("the test config is valid")
    }

    fn bucket(&self, plan: &Plan) -> String {
        deployer::artifacts::bucket_name(plan, None)
    }

    /// Packages `/bin/true` plus a per-function variant as the three functions.
    fn release(&self, plan: &Plan, template: &RenderedTemplate, variants: [&[u8]; 3]) -> Release {
        tests::release::package(
            plan,
            &template.sha256,
            self.dir.path(),
            &self.dir.path().join("target"),
            Path::new("/bin/true"),
            |f| {
                let i = FunctionName::ALL.iter().position(|g| *g == f).unwrap();
                [f.as_str().as_bytes(), variants[i]].concat()
            },
        )
    }

    /// A full deploy (the CLI's path: deploy, then reconcile any hotswap drift).
    async fn full_deploy(
        &self,
        variants: [&[u8]; 3],
    ) -> (
        deployer::deploy::DeployOutcome,
        Release,
        Option<Vec<FunctionName>>,
    ) {
        let (plan, template) = self.load();
        let release = self.release(&plan, &template, variants);
        let ui = RecordingUi::new(Confirmation::Yes);
        let bucket = self.bucket(&plan);
        let req = DeployRequest {
            plan: &plan,
            template_body: &template.body,
            release: &release,
            bucket: &bucket,
        };
        let outcome =
            deployer::deploy::deploy(&self.clients, req, &DeployOptions::for_plan(&plan), &ui)
                .await
                .unwrap_or_else(|e| panic!("deploy failed: {e}\n{}", ui.text()));
        let reconciled =
            deployer::hotswap::reconcile(&self.clients, &plan, &bucket, &release.manifest)
                .await
                .unwrap();
        (outcome, release, reconciled)
    }

    async fn hotswap(
        &self,
        variants: [&[u8]; 3],
    ) -> (deployer::Result<deployer::hotswap::HotswapOutcome>, Release) {
        let (plan, template) = self.load();
        let release = self.release(&plan, &template, variants);
        let ui = RecordingUi::new(Confirmation::Yes);
        let bucket = self.bucket(&plan);
        (
            deployer::hotswap::hotswap(
                &self.clients,
                &plan,
                &template.body,
                &release,
                &bucket,
                &ui,
            )
            .await,
            release,
        )
    }

    async fn code_sha256(&self, f: FunctionName) -> String {
        let (plan, _) = self.load();
        let name = &plan.function(f).function_name;
        let cfg = self
            .clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        cfg.code_sha256().unwrap().to_string()
    }

    async fn status(&self) -> deployer::status::StatusReport {
        let (plan, _) = self.load();
        deployer::status::status(&self.clients, &plan, None)
            .await
            .unwrap()
    }
}

fn expected_sha(release: &Release, f: FunctionName) -> String {
    deployer::promote::code_sha256_of_hex(&release.manifest.functions[&f].zip_sha256).unwrap()
}

#[tokio::test]
async fn hotswap_updates_only_the_changed_function_and_a_full_deploy_reconciles_without_reupload() {
    let env = Env::start("one", "deploy:\n  hotswap: true\n").await;
    let (_, v1, _) = env.full_deploy([b"1", b"1", b"1"]).await;
    let stack_params_v1 = env.status().await.deployed_code_keys;

    // Only `query` changes.
    let (outcome, v2) = env.hotswap([b"1", b"2", b"1"]).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("hotswap failed: {e}"));
    assert!(!outcome.up_to_date);
    let swapped: Vec<FunctionName> = outcome.swapped.iter().map(|s| s.function).collect();
    assert_eq!(swapped, vec![FunctionName::Query]);
    assert_eq!(
        env.code_sha256(FunctionName::Query).await,
        expected_sha(&v2, FunctionName::Query)
    );
    assert_eq!(
        env.code_sha256(FunctionName::Command).await,
        expected_sha(&v1, FunctionName::Command)
    );
    assert_eq!(
        env.code_sha256(FunctionName::Projector).await,
        expected_sha(&v1, FunctionName::Projector)
    );
    assert!(
        outcome.to_string().contains("hotswapped 1 function(s)"),
        "{outcome}"
    );

    // The stack still names the old zips: drifted, and `status` says so.
    let status = env.status().await;
    assert_eq!(
        status.deployed_code_keys, stack_params_v1,
        "a hotswap does not touch the stack"
    );
    let drift = status.drift.as_ref().expect("status shows the drift");
    assert_eq!(
        drift.functions.keys().copied().collect::<Vec<_>>(),
        vec![FunctionName::Query]
    );
    assert_eq!(
        drift.functions[&FunctionName::Query].code_key,
        v2.manifest.functions[&FunctionName::Query].s3_key
    );
    assert_eq!(drift.release_digest, v2.digest());
    assert!(status.to_string().contains("drifted in code"), "{status}");
    assert!(serde_json::to_value(&status).unwrap()["drift"]["functions"]["query"].is_object());

    // The same code again: nothing to do.
    let (again, _) = env.hotswap([b"1", b"2", b"1"]).await;
    assert!(again.unwrap().up_to_date);

    // A full deploy of that code moves the stack's parameters to the running keys: no zip is uploaded again.
    let (full, v2_again, reconciled) = env.full_deploy([b"1", b"2", b"1"]).await;
    assert_eq!(v2_again.digest(), v2.digest());
    assert_eq!(full.result, DeployResult::Updated);
    let uploads = full.uploads.expect("a full deploy reports its uploads");
    assert!(
        uploads.uploaded.iter().all(|k| !k.ends_with(".zip")),
        "zips uploaded again: {uploads:?}"
    );
    assert_eq!(
        reconciled,
        Some(vec![]),
        "the drift is cleared; nothing had to be set back"
    );
    let status = env.status().await;
    assert!(status.drift.is_none(), "{status}");
    assert_eq!(
        status.deployed_digest.as_deref(),
        Some(v2.digest().as_str())
    );
    assert_eq!(
        env.code_sha256(FunctionName::Query).await,
        expected_sha(&v2, FunctionName::Query)
    );
}

#[tokio::test]
async fn hotswap_of_all_three_then_back_to_the_stacks_release_is_set_back_by_a_full_deploy() {
    let env = Env::start("three", "deploy:\n  hotswap: true\n").await;
    let (_, v1, _) = env.full_deploy([b"1", b"1", b"1"]).await;
    let (outcome, v2) = env.hotswap([b"2", b"2", b"2"]).await;
    assert_eq!(outcome.unwrap().swapped.len(), 3);
    for f in FunctionName::ALL {
        assert_eq!(env.code_sha256(f).await, expected_sha(&v2, f));
    }
    // Deploying the release the stack already records: CloudFormation sees no change, so the reconcile step
    // must put the functions back on the stack's code itself.
    let (full, _, reconciled) = env.full_deploy([b"1", b"1", b"1"]).await;
    assert_eq!(full.result, DeployResult::UpToDate);
    assert_eq!(reconciled.map(|v| v.len()), Some(3));
    for f in FunctionName::ALL {
        assert_eq!(env.code_sha256(f).await, expected_sha(&v1, f));
    }
    assert!(env.status().await.drift.is_none());
}

#[tokio::test]
async fn hotswap_is_refused_when_more_than_code_changed_or_the_config_forbids_it() {
    let env = Env::start("refuse", "deploy:\n  hotswap: true\n").await;

    let (first, _) = env.hotswap([b"1", b"1", b"1"]).await;
    let err = first.expect_err("no stack yet");
    assert!(matches!(err, deployer::Error::Refused(_)), "{err}");
    assert!(
        err.to_string()
            .contains("a first deploy cannot be a hotswap"),
        "{err}"
    );

    env.full_deploy([b"1", b"1", b"1"]).await;
    // A function setting changes: that is a template change, for CloudFormation.
    env.write_config(
        "functions:\n  query:\n    memory: 512\n",
        "deploy:\n  hotswap: true\n",
    );
    let (changed, _) = env.hotswap([b"1", b"2", b"1"]).await;
    let err = changed.expect_err("not only code changed");
    assert!(matches!(err, deployer::Error::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("the rendered template differs"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("run a full `cargo xtask deploy --env hs`"),
        "{err}"
    );

    // The config forbids hotswaps (as prod's does).
    env.write_config("", "deploy:\n  hotswap: false\n");
    let (forbidden, _) = env.hotswap([b"1", b"2", b"1"]).await;
    let err = forbidden.expect_err("forbidden by the config");
    assert!(matches!(err, deployer::Error::Refused(_)), "{err}");
    assert!(
        err.to_string()
            .contains("hotswap is disabled for `hs` (deploy.hotswap: false"),
        "{err}"
    );
    assert!(env.status().await.drift.is_none(), "nothing was swapped");
}
