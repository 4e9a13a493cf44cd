//! Promotion into another AWS account and region, through the real `cargo xtask promote` binary, against the
//! local AWS endpoint. moto keeps one world per account: the credentials STS returns for a role in account
//! 222222222222 make every later request land in 222222222222. So `dev` (account 444455556666, us-east-1) and
//! `staging` (account 222222222222, us-west-2) are two `kind: aws` environments with their own deploy roles, and
//! the promotion has to do what it does on AWS: read the source's release with the source's role, copy the exact
//! zips into the target account's own bucket in the target region, deploy there, and verify `CodeSha256`.
//!
//! The CLI reaches moto the way any AWS SDK program is pointed elsewhere, with `AWS_ENDPOINT_URL` (and dummy base
//! credentials it must assume the roles with); the account check (`sts:GetCallerIdentity` against `account_id`)
//! runs as on AWS. The source is deployed in-process through `deployer::deploy::deploy`, from a small static ELF
//! packaged by `deployer::build::package` (cargo-lambda would take minutes), and its passing smoke result is
//! written with `put_smoke_record`, the function `cargo xtask smoke` records with (moto has no API Gateway to
//! smoke-test through).

use std::path::{Path, PathBuf};
use std::process::Output;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region};
use chrono::Utc;
use deployer::aws::Clients;
use deployer::build::Release;
use deployer::deploy::{DeployOptions, DeployRequest, DeployResult};
use deployer::promote::{SmokeCheck, SmokeRecord};
use deployer::ui::{Confirmation, RecordingUi};
use local_engine::endpoint::Endpoint;
use stack::{FunctionName, Plan};
use tests::repo_root;

const SOURCE_ACCOUNT: &str = "444455556666";
const SOURCE_REGION: &str = "us-east-1";
const TARGET_ACCOUNT: &str = "222222222222";
const TARGET_REGION: &str = "us-west-2";
/// An account nobody holds credentials for: the account check must refuse it.
const FOREIGN_ACCOUNT: &str = "333333333333";

/// A statically linked executable present on every Debian system (libc-bin is essential). Static means no
/// versioned glibc imports, so it passes the Lambda glibc-floor check that `package` applies to `aws` builds,
/// as a cargo-lambda build would.
const STATIC_ELF: &str = "/sbin/ldconfig";

/// `dev` -> `staging` across accounts and regions; `qa`, whose config names an account the credentials can
/// never reach (no role, base credentials of moto's default account). ([`DR`], dev's stack name and account in
/// another region, is written only at the end: the config refuses it.)
/// `dr`: dev's stack name and account in another region. It would share dev's artifact bucket
/// (`<stack>-artifacts-<account>`) across regions and dev's account-wide role names (`<stack>-<function>`).
fn dr_config() -> String {
    format!(
        "kind: aws\nstack_name: xa-dev\naccount_id: \"{SOURCE_ACCOUNT}\"\nregion: {TARGET_REGION}\n\
         role_arn: arn:aws:iam::{SOURCE_ACCOUNT}:role/xa-dev-deploy\ntags:\n  environment: dr\n\
         deploy:\n  promote_from: dev\n"
    )
}

fn write_config(dir: &Path) -> PathBuf {
    let cfg = dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::copy(
        repo_root().join("config/defaults.yaml"),
        cfg.join("defaults.yaml"),
    )
    .unwrap();
    let files = [
        (
            "dev",
            format!(
                "kind: aws\nstack_name: xa-dev\naccount_id: \"{SOURCE_ACCOUNT}\"\nregion: {SOURCE_REGION}\n\
                 role_arn: arn:aws:iam::{SOURCE_ACCOUNT}:role/xa-dev-deploy\ntags:\n  environment: dev\n"
            ),
        ),
        (
            "staging",
            format!(
                "kind: aws\nstack_name: xa-staging\naccount_id: \"{TARGET_ACCOUNT}\"\nregion: {TARGET_REGION}\n\
                 role_arn: arn:aws:iam::{TARGET_ACCOUNT}:role/xa-staging-deploy\ntags:\n  environment: staging\n\
                 deploy:\n  promote_from: dev\n  require_smoke: true\n"
            ),
        ),
        (
            "qa",
            format!(
                "kind: aws\nstack_name: xa-qa\naccount_id: \"{FOREIGN_ACCOUNT}\"\nregion: {TARGET_REGION}\n\
                 tags:\n  environment: qa\ndeploy:\n  promote_from: staging\n"
            ),
        ),
    ];
    for (env, yaml) in files {
        std::fs::write(cfg.join(format!("{env}.yaml")), yaml).unwrap();
    }
    cfg
}

/// The clients an `aws` environment gets on AWS (`deployer::aws::sdk_config`): its region, base credentials
/// (moto's dummy ones here), its `role_arn` assumed through STS; only the endpoint is moto's. `region` overrides
/// the plan's, to look into the other region of the same account.
async fn clients_as(moto: &Endpoint, role_arn: &str, region: &str) -> Clients {
    let base = moto.sdk_config().await;
    let role = AssumeRoleProvider::builder(role_arn)
        .session_name("promote-cross-account-test")
        .configure(&base)
        .build()
        .await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.url())
        .region(Region::new(region.to_string()))
        .credentials_provider(role)
        .load()
        .await;
    Clients::from_sdk_config(&sdk)
}

async fn clients_of(moto: &Endpoint, plan: &Plan) -> Clients {
    clients_as(moto, plan.role_arn.as_deref().unwrap(), &plan.region).await
}

/// Packages the static ELF (plus the function's name, so the three zips differ) as the release of `plan`.
fn release(dir: &Path, plan: &Plan, template_sha256: &str) -> Release {
    tests::release::package(
        plan,
        template_sha256,
        dir,
        &dir.join("build"),
        Path::new(STATIC_ELF),
        |f| f.as_str().as_bytes().to_vec(),
    )
}

/// `xtask promote --from <from> --to <to> --yes --output json` with nothing from this machine's AWS setup: the
/// endpoint, dummy base credentials, no profile files, no instance metadata. Returns the process output and the
/// JSON document it printed.
fn promote_cli(
    dir: &Path,
    moto: &Endpoint,
    config: &Path,
    from: &str,
    to: &str,
) -> (Output, serde_json::Value) {
    let out = std::process::Command::new(tests::cli::xtask_binary())
        .args([
            "promote", "--from", from, "--to", to, "--yes", "--output", "json",
        ])
        .arg("--config-dir")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", "base")
        .env("AWS_SECRET_ACCESS_KEY", "base")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("XTASK_STATE_DIR", dir.join("state"))
        // Where the promoted release is materialized (`<target>/xtask/dist/<checkout>/<to>`), away from the shared one.
        .env("CARGO_TARGET_DIR", dir.join("cli-target"))
        .current_dir(repo_root())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "promote {from} -> {to} printed no JSON document ({e}); stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn bucket_names(clients: &Clients) -> Vec<String> {
    clients
        .s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect()
}

async fn keys_in(clients: &Clients, bucket: &str) -> Vec<String> {
    clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

async fn stack_exists(clients: &Clients, stack_name: &str) -> bool {
    deployer::stackops::describe(&clients.cfn, stack_name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_release_is_promoted_into_another_account_and_region_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let moto = Endpoint::start_fresh(&dir.join("moto"))
        .await
        .expect("the local endpoint starts");
    let config = write_config(dir);
    let (dev, dev_template) = stack::load_checked(&config, "dev").unwrap();
    let (staging, _) = stack::load_checked(&config, "staging").unwrap();

    // Each role's credentials land in its own account, and the production account check accepts them.
    let src = clients_of(&moto, &dev).await;
    let dst = clients_of(&moto, &staging).await;
    assert_eq!(
        deployer::aws::verify_account(&src, &dev).await.unwrap(),
        Some(SOURCE_ACCOUNT.to_string())
    );
    assert_eq!(
        deployer::aws::verify_account(&dst, &staging).await.unwrap(),
        Some(TARGET_ACCOUNT.to_string())
    );
    // The same role in the other region of its account, to check that nothing lands in the wrong region.
    let src_in_target_region =
        clients_as(&moto, dev.role_arn.as_deref().unwrap(), TARGET_REGION).await;
    let dst_in_source_region =
        clients_as(&moto, staging.role_arn.as_deref().unwrap(), SOURCE_REGION).await;

    // 1. Deploy dev in account 444455556666 through the deploy path. The change set is executed, as on AWS;
    //    only the API read-back is off (moto's CloudFormation creates no API Gateway v2).
    let release = release(dir, &dev, &dev_template.sha256);
    let digest = release.digest();
    let src_bucket = deployer::artifacts::bucket_name(&dev, Some(SOURCE_ACCOUNT));
    let ui = RecordingUi::new(Confirmation::Yes);
    let began = std::time::Instant::now();
    let options = DeployOptions {
        read_back_api: false,
        ..DeployOptions::for_plan(&dev)
    };
    let outcome = deployer::deploy::deploy(
        &src,
        DeployRequest {
            plan: &dev,
            template_body: &dev_template.body,
            release: &release,
            bucket: &src_bucket,
        },
        &options,
        &ui,
    )
    .await
    .unwrap_or_else(|e| panic!("deploying dev failed: {e}\n{}", ui.text()));
    assert_eq!(outcome.result, DeployResult::Created, "{}", ui.text());
    eprintln!(
        "deploy of dev (account {SOURCE_ACCOUNT}): {} ms",
        began.elapsed().as_millis()
    );
    assert!(stack_exists(&src, &dev.stack_name).await);

    // 2. Without a smoke result of dev, staging refuses (exit 3), having read dev's bucket with dev's role.
    let (out, json) = promote_cli(dir, &moto, &config, "dev", "staging");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(json["status"], "refused");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("no smoke test recorded for `dev`"),
        "{json}"
    );
    assert!(!stack_exists(&dst, &staging.stack_name).await);

    // 3. The passing smoke result, recorded as `cargo xtask smoke --env dev` records it.
    let smoke = SmokeRecord {
        schema: deployer::promote::SMOKE_SCHEMA,
        env: "dev".into(),
        passed: true,
        release_digest: Some(digest.clone()),
        api_url: "https://api.invalid".into(),
        started_at: Utc::now(),
        duration_ms: 1,
        checks: vec![SmokeCheck {
            name: "stale version refused (409)".into(),
            passed: true,
            detail: "409 version_conflict".into(),
            duration_ms: 1,
        }],
    };
    deployer::promote::put_smoke_record(&src.s3, &src_bucket, &smoke)
        .await
        .unwrap();

    // 4. Promote through the CLI.
    let began = std::time::Instant::now();
    let (out, json) = promote_cli(dir, &moto, &config, "dev", "staging");
    let promote_ms = began.elapsed().as_millis();
    assert_eq!(out.status.code(), Some(0), "{json}\n{}", stderr(&out));
    eprintln!("cross-account promotion through the CLI: {promote_ms} ms");
    assert_eq!(json["from"], "dev");
    assert_eq!(json["to"], "staging");
    assert_eq!(json["release_digest"], digest.as_str());
    assert_eq!(json["up_to_date"], false);
    // The one thing the endpoint override changes, said out loud: no API Gateway to read the API back from.
    assert!(
        stderr(&out).contains("the HTTP API is not read back from API Gateway"),
        "{}",
        stderr(&out)
    );
    // The release was materialized as staging's build, not rebuilt: same manifest, same digest.
    let local =
        deployer::build::load_local_manifest(&dir.join("cli-target"), &repo_root(), "staging")
            .expect("staging's materialized release");
    assert_eq!(local, release.manifest);

    // The zips and the manifest were copied into staging's own bucket, in account 222222222222 and us-west-2.
    let dst_bucket = deployer::artifacts::bucket_name(&staging, Some(TARGET_ACCOUNT));
    assert_ne!(dst_bucket, src_bucket);
    let mut expected_keys: Vec<String> = release
        .manifest
        .functions
        .values()
        .map(|a| a.s3_key.clone())
        .collect();
    expected_keys.push(deployer::manifest::release_key(&digest));
    expected_keys.sort();
    let mut uploaded: Vec<String> = json["uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    uploaded.sort();
    assert_eq!(uploaded, expected_keys);
    let target_keys = keys_in(&dst, &dst_bucket).await;
    for key in &expected_keys {
        assert!(target_keys.contains(key), "{key} not in {target_keys:?}");
    }
    let location = dst
        .s3
        .get_bucket_location()
        .bucket(&dst_bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        location.location_constraint().map(|c| c.as_str()),
        Some(TARGET_REGION)
    );
    // Each account lists only its own bucket: the target account never held the source's, nor the reverse.
    let (src_buckets, dst_buckets) = (bucket_names(&src).await, bucket_names(&dst).await);
    assert!(src_buckets.contains(&src_bucket) && !src_buckets.contains(&dst_bucket));
    assert!(dst_buckets.contains(&dst_bucket) && !dst_buckets.contains(&src_bucket));

    // The target stack is in account 222222222222, region us-west-2, and nowhere else.
    let stack = deployer::stackops::describe(&dst.cfn, &staging.stack_name)
        .await
        .unwrap()
        .expect("staging's stack in the target account and region");
    let params = deployer::stackops::parameters_of(&stack);
    assert_eq!(params["ReleaseDigest"], digest);
    assert_eq!(params["ArtifactBucket"], dst_bucket);
    assert!(
        stack
            .stack_id()
            .unwrap()
            .contains(&format!(":{TARGET_REGION}:{TARGET_ACCOUNT}:"))
    );
    assert!(!stack_exists(&src, &staging.stack_name).await);
    assert!(!stack_exists(&src_in_target_region, &staging.stack_name).await);
    assert!(!stack_exists(&dst_in_source_region, &staging.stack_name).await);

    // Every staging function runs the exact zip of the release: CodeSha256 = base64(SHA-256 of the zip).
    for f in FunctionName::ALL {
        let zip = std::fs::read(deployer::build::zip_path(&release.dist_dir, f)).unwrap();
        let zip_sha256 = deployer::package::sha256_hex(&zip);
        assert_eq!(zip_sha256, release.manifest.functions[&f].zip_sha256);
        let expected = deployer::promote::code_sha256_of_hex(&zip_sha256).unwrap();
        let name = &staging.function(f).function_name;
        let cfg = dst
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} in the target account: {e:?}"));
        assert_eq!(cfg.code_sha256(), Some(expected.as_str()), "{name}");
        // What the API and the stream mapping invoke: the `live` alias, at a published version of that digest.
        let (version, live_code) = tests::live_version(&dst, name).await;
        assert_ne!(
            version, "$LATEST",
            "{name}: the alias names a published version"
        );
        assert_eq!(
            live_code, expected,
            "{name}:{version} runs the promoted zip"
        );
        assert!(
            cfg.function_arn()
                .unwrap()
                .contains(&format!(":{TARGET_REGION}:{TARGET_ACCOUNT}:")),
            "{:?}",
            cfg.function_arn()
        );
        // ... and is not in the source account.
        assert!(
            src.lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .is_err(),
            "{name} leaked into the source account"
        );
    }
    let code = json["code"].as_array().unwrap();
    assert_eq!(code.len(), 3, "{json}");
    assert!(
        code.iter().all(|c| c["expected"] == c["deployed"]),
        "{json}"
    );

    // The target records the manifest, so staging can be promoted on in turn.
    let stored = deployer::artifacts::read_manifest(&dst.s3, &dst_bucket, &digest)
        .await
        .unwrap();
    assert_eq!(stored, release.manifest);

    // 5. A second promotion is up to date and copies nothing.
    let began = std::time::Instant::now();
    let (out, json) = promote_cli(dir, &moto, &config, "dev", "staging");
    eprintln!(
        "up-to-date promotion through the CLI: {} ms",
        began.elapsed().as_millis()
    );
    assert_eq!(out.status.code(), Some(0), "{json}\n{}", stderr(&out));
    assert_eq!(json["up_to_date"], true, "{json}");
    assert_eq!(json["uploaded"], serde_json::json!([]), "{json}");
    assert_eq!(json["code"].as_array().unwrap().len(), 3, "{json}");

    // 6. The account check still guards the target: qa's config names an account these credentials are not
    //    in (no role to assume, so moto's default account), and the promotion is refused before any deploy.
    let (out, json) = promote_cli(dir, &moto, &config, "staging", "qa");
    assert_eq!(out.status.code(), Some(3), "{json}\n{}", stderr(&out));
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("is for account 333333333333"), "{error}");
    let foreign = clients_as(
        &moto,
        &format!("arn:aws:iam::{FOREIGN_ACCOUNT}:role/audit"),
        TARGET_REGION,
    )
    .await;
    assert!(!stack_exists(&foreign, "xa-qa").await);
    assert!(!stack_exists(&dst, "xa-qa").await);
    // ... before anything was downloaded or materialized for it.
    assert!(!deployer::build::dist_dir(&dir.join("cli-target"), &repo_root(), "qa").exists());

    // 7. A target that would share the source's bucket (`{src_bucket}`) across regions is refused by the
    //    config itself, before promotion's own guard (on AWS the deploy would fail later: Lambda reads code
    //    only from a bucket in its own region, and the function role names would clash in the account).
    std::fs::write(config.join("dr.yaml"), dr_config()).unwrap();
    let err = stack::config::load(&config, "dr").unwrap_err().to_string();
    assert!(
        err.contains("stack_name: refused: `xa-dev` and `xa-dev` (environment `dev`) start alike"),
        "{src_bucket}: {err}"
    );
    assert!(!stack_exists(&src_in_target_region, "xa-dev").await);
}
