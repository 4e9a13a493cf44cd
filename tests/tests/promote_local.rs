//! Promotion between environments side by side on this machine: three `local` environments in one temporary
//! config directory (`pa` -> `pb` -> `pc` by `deploy.promote_from`), each with its own local AWS endpoint, so
//! every environment has its own account-like world (stack, artifact bucket) exactly as dev and staging would.
//!
//! The releases are packaged from a small real ELF (as in the deploy tests) so no function has to compile; what
//! is under test is promotion itself: the refusals, the copy of the exact zips into the other bucket, the deploy
//! through the deploy path, and the `CodeSha256` of every deployed function equal to the manifest's. The smoke
//! results that promotion requires are written with the same `put_smoke_record` the smoke command uses (the
//! smoke command itself runs against real functions in `smoke_local.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;
use deployer::aws::Clients;
use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployRequest, DeployResult};
use deployer::promote::{SmokeCheck, SmokeRecord};
use deployer::ui::{Confirmation, RecordingUi};
use local_engine::endpoint::Endpoint;
use stack::{FunctionName, Plan, RenderedTemplate};

use tests::cli::xtask_binary as xtask_bin;
use tests::repo_root;

/// Three environments, each on its own fresh endpoint.
struct Envs {
    dir: tempfile::TempDir,
    motos: BTreeMap<&'static str, Endpoint>,
}

const A: &str = "pa";
const B: &str = "pb";
const C: &str = "pc";

impl Envs {
    async fn start(tag: &str) -> Envs {
        let dir = tempfile::tempdir().unwrap();
        let mut motos = BTreeMap::new();
        for env in [A, B, C] {
            let moto = Endpoint::start_fresh(&dir.path().join("state").join(env))
                .await
                .expect("the local endpoint starts");
            motos.insert(env, moto);
        }
        let envs = Envs { dir, motos };
        // The CLI test runs with one state directory for every environment; in-process promotion uses each
        // environment's own (`local_engine::state::state_dir`). Both know every endpoint of this test.
        for moto in envs.motos.values() {
            moto.adopt(&envs.dir.path().join("state"))
                .expect("the endpoint is recorded");
            for env in [A, B, C] {
                moto.adopt(&local_engine::state::state_dir(env))
                    .expect("the endpoint is recorded");
            }
        }
        let cfg = envs.config_dir();
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::copy(
            repo_root().join("config/defaults.yaml"),
            cfg.join("defaults.yaml"),
        )
        .unwrap();
        for (env, deploy) in [
            (A, "deploy:\n  hotswap: true\n"),
            (B, "deploy:\n  promote_from: pa\n  require_smoke: true\n"),
            (C, "deploy:\n  promote_from: pb\n  require_smoke: true\n"),
        ] {
            let gateway = local_engine::endpoint::free_port().unwrap();
            let yaml = format!(
                "kind: local\nstack_name: t-{tag}-{env}\nregion: us-east-1\ntags:\n  environment: {env}\nlocal:\n  gateway_port: {gateway}\n  endpoint_port: {}\n{deploy}",
                envs.motos[env].port()
            );
            std::fs::write(cfg.join(format!("{env}.yaml")), yaml).unwrap();
        }
        envs
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn load(&self, env: &str) -> (Plan, RenderedTemplate) {
        stack::load_checked(&self.config_dir(), env).expect("the test config is valid")
    }

    async fn clients(&self, env: &str) -> Clients {
        Clients::from_sdk_config(&self.motos[env].sdk_config().await)
    }

    fn bucket(&self, plan: &Plan) -> String {
        deployer::artifacts::bucket_name(plan, None)
    }

    /// Packages `/bin/true` plus `variant` as the three functions of `env`.
    fn release(&self, plan: &Plan, template: &RenderedTemplate, variant: &[u8]) -> Release {
        tests::release::package(
            plan,
            &template.sha256,
            self.dir.path(),
            &self.dir.path().join("build"),
            Path::new("/bin/true"),
            |f| [variant, f.as_str().as_bytes()].concat(),
        )
    }

    /// A full deploy of a fresh build of `env`; returns the release.
    async fn deploy(&self, env: &str, variant: &[u8]) -> Release {
        let (plan, template) = self.load(env);
        let release = self.release(&plan, &template, variant);
        let ui = RecordingUi::new(Confirmation::Yes);
        let bucket = self.bucket(&plan);
        let req = DeployRequest {
            plan: &plan,
            template_body: &template.body,
            release: &release,
            bucket: &bucket,
        };
        let clients = self.clients(env).await;
        let outcome = deployer::deploy::deploy(&clients, req, &DeployOptions::for_plan(&plan), &ui)
            .await
            .unwrap_or_else(|e| panic!("deploying {env} failed: {e}\n{}", ui.text()));
        assert_ne!(outcome.result, DeployResult::UpToDate);
        release
    }

    async fn record_smoke(&self, env: &str, digest: Option<&str>, passed: bool) {
        let (plan, _) = self.load(env);
        let record = SmokeRecord {
            schema: deployer::promote::SMOKE_SCHEMA,
            env: env.to_string(),
            passed,
            release_digest: digest.map(str::to_string),
            api_url: "http://127.0.0.1:1".into(),
            started_at: Utc::now(),
            duration_ms: 1,
            checks: vec![SmokeCheck {
                name: "stale version refused (409)".into(),
                passed,
                detail: if passed {
                    "409 version_conflict".into()
                } else {
                    "got 200".into()
                },
                duration_ms: 1,
            }],
        };
        deployer::promote::put_smoke_record(
            &self.clients(env).await.s3,
            &self.bucket(&plan),
            &record,
        )
        .await
        .unwrap();
    }

    /// `cargo xtask promote --from <from> --to <to> --yes`, minus the local engine start.
    async fn promote(
        &self,
        from: &str,
        to: &str,
    ) -> anyhow::Result<xtask::promote::PromotionReport> {
        let (source, _) = self.load(from);
        let (target, template) = self.load(to);
        let options = xtask::promote::Options {
            deploy: DeployOptions::for_plan(&target),
            yes: true,
            dist_dir: deployer::build::dist_dir(
                &self.dir.path().join("target"),
                &tests::repo_root(),
                to,
            ),
        };
        let state = local_engine::state::state_dir(&target.env);
        let lock = local_engine::lock::EnvLock::acquire(&state, "promote (test)", true, |_| {})
            .await
            .expect("the target's lock");
        xtask::promote::promote(&source, &target, &template, &options, &lock).await
    }

    async fn stack_parameters(&self, env: &str) -> Option<BTreeMap<String, String>> {
        let (plan, _) = self.load(env);
        let stack = deployer::stackops::describe(&self.clients(env).await.cfn, &plan.stack_name)
            .await
            .unwrap();
        stack.as_ref().map(deployer::stackops::parameters_of)
    }
}

/// The refusal message of a promotion error (and that it is a refusal: exit code 3).
fn refusal(result: anyhow::Result<xtask::promote::PromotionReport>) -> String {
    let err = result.expect_err("the promotion is refused");
    let refused = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<deployer::Error>(),
            Some(deployer::Error::Refused(_))
        )
    });
    assert!(refused, "expected a refusal (exit 3), got: {err:#}");
    format!("{err:#}")
}

#[tokio::test]
async fn a_smoke_tested_release_is_promoted_bit_for_bit_and_recorded_in_the_target() {
    let envs = Envs::start("ok").await;
    let release = envs.deploy(A, b"v1").await;
    let digest = release.digest();
    envs.record_smoke(A, Some(&digest), true).await;

    let report = envs
        .promote(A, B)
        .await
        .unwrap_or_else(|e| panic!("promotion failed: {e:#}"));
    assert_eq!(report.release_digest, digest);
    assert!(!report.up_to_date);
    // B's bucket is another bucket on another endpoint: the three zips and the manifest were copied there.
    assert_eq!(report.uploaded.len(), 4, "{:?}", report.uploaded);

    // B's stack records the same release and the same content-addressed keys.
    let a_params = envs.stack_parameters(A).await.unwrap();
    let b_params = envs.stack_parameters(B).await.unwrap();
    assert_eq!(b_params["ReleaseDigest"], digest);
    for f in FunctionName::ALL {
        let key = stack::parameters::code_key(f);
        assert_eq!(a_params[&key], b_params[&key], "{key}");
    }
    // Every function of B runs exactly the zip of the manifest (Lambda reports base64 of its SHA-256).
    let (b_plan, _) = envs.load(B);
    let b = envs.clients(B).await;
    for f in FunctionName::ALL {
        let name = &b_plan.function(f).function_name;
        let cfg = b
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        let expected =
            deployer::promote::code_sha256_of_hex(&release.manifest.functions[&f].zip_sha256)
                .unwrap();
        assert_eq!(cfg.code_sha256(), Some(expected.as_str()), "{name}");
    }
    assert_eq!(report.code.len(), 3);
    assert!(report.code.iter().all(|c| c.matches()));
    // The target records the manifest, so B can be promoted on in turn.
    let stored = deployer::artifacts::read_manifest(&b.s3, &envs.bucket(&b_plan), &digest)
        .await
        .unwrap();
    assert_eq!(stored, release.manifest);
    // The release was materialized as B's local build: `status` of B sees the deployed release as in sync.
    let local = deployer::build::load_local_manifest(
        &envs.dir.path().join("target"),
        &tests::repo_root(),
        B,
    )
    .expect("B's dist manifest");
    assert_eq!(local.digest(), digest);
    // ... with the binaries the local engine runs, exactly the manifest's.
    for f in FunctionName::ALL {
        let dist =
            deployer::build::dist_dir(&envs.dir.path().join("target"), &tests::repo_root(), B);
        let binary = std::fs::read(dist.join(f.as_str()).join("bootstrap")).unwrap();
        assert_eq!(
            deployer::package::sha256_hex(&binary),
            release.manifest.functions[&f].binary_sha256
        );
    }

    // Promoting the same release again changes nothing.
    let again = envs.promote(A, B).await.unwrap();
    assert!(again.up_to_date, "{again}");
    // And the report is one JSON document for CI.
    let json = serde_json::to_value(&again).unwrap();
    assert_eq!(json["release_digest"], digest.as_str());
    assert_eq!(json["code"].as_array().unwrap().len(), 3);

    // B -> C needs a passing smoke test of B for this release; with it, C runs the same bits too.
    assert!(refusal(envs.promote(B, C).await).contains("no smoke test recorded for `pb`"));
    envs.record_smoke(B, Some(&digest), true).await;
    let c = envs.promote(B, C).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(c.release_digest, digest);
    assert_eq!(
        envs.stack_parameters(C).await.unwrap()["ReleaseDigest"],
        digest
    );
}

#[tokio::test]
async fn promotion_is_refused_with_every_reason_and_changes_nothing() {
    let envs = Envs::start("no").await;

    // Nothing deployed in the source.
    let msg = refusal(envs.promote(A, B).await);
    assert!(msg.contains("`pa` has no release"), "{msg}");
    assert!(msg.contains("cargo xtask deploy --env pa"), "{msg}");

    // Deployed, but never smoke-tested.
    let release = envs.deploy(A, b"v1").await;
    let digest = release.digest();
    let msg = refusal(envs.promote(A, B).await);
    assert!(msg.contains("no smoke test recorded for `pa`"), "{msg}");
    assert!(msg.contains("cargo xtask smoke --env pa"), "{msg}");

    // The last smoke test failed.
    envs.record_smoke(A, Some(&digest), false).await;
    let msg = refusal(envs.promote(A, B).await);
    assert!(msg.contains("the last smoke test of `pa`"), "{msg}");
    assert!(
        msg.contains("failed (stale version refused (409))"),
        "{msg}"
    );

    // A passing smoke test, but of an older release than the one deployed now.
    envs.record_smoke(A, Some(&"0".repeat(64)), true).await;
    let msg = refusal(envs.promote(A, B).await);
    assert!(msg.contains("ran against release 000000000000"), "{msg}");

    // Order: pc accepts only pb; both reasons are given at once when A's smoke is also missing for pc's rule.
    envs.record_smoke(A, Some(&digest), true).await;
    let msg = refusal(envs.promote(A, C).await);
    assert!(
        msg.contains("`pc` accepts releases only from `pb`"),
        "{msg}"
    );
    assert!(msg.contains("promote pa -> pb first"), "{msg}");
    // pa accepts no promotion at all.
    let msg = refusal(envs.promote(B, A).await);
    assert!(msg.contains("`pa` accepts no promotion"), "{msg}");

    // The manifest the stack names is gone from the source bucket.
    let (a_plan, _) = envs.load(A);
    let a = envs.clients(A).await;
    a.s3.delete_object()
        .bucket(envs.bucket(&a_plan))
        .key(deployer::manifest::release_key(&digest))
        .send()
        .await
        .unwrap();
    let msg = refusal(envs.promote(A, B).await);
    assert!(msg.contains("`pa` has no release manifest"), "{msg}");
    assert!(msg.contains(&format!("releases/{digest}.json")), "{msg}");

    // None of this touched the targets.
    assert!(envs.stack_parameters(B).await.is_none());
    assert!(envs.stack_parameters(C).await.is_none());
}

#[tokio::test]
async fn the_promote_cli_refuses_with_exit_code_3_and_a_json_reason() {
    let envs = Envs::start("cli").await;
    let out = std::process::Command::new(xtask_bin())
        .args([
            "promote", "--from", A, "--to", C, "--yes", "--output", "json",
        ])
        .arg("--config-dir")
        .arg(envs.config_dir())
        .env("XTASK_STATE_DIR", envs.dir.path().join("state"))
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(json["status"], "refused");
    assert_eq!(json["exit_code"], 3);
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("`pc` accepts releases only from `pb`"),
        "{error}"
    );
    assert!(error.contains("`pa` has no release"), "{error}");
}
