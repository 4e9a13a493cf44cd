//! The `aws` deploy path through the real `cargo xtask` binary, against a moto the test starts, reached the way
//! any AWS SDK program is pointed elsewhere (`AWS_ENDPOINT_URL`, no profile files, base credentials from the
//! environment). The environments come from the shipped `config/dev.yaml` with its example values replaced by
//! test values; the release is a small static ELF packaged by the deployer's own `package` step and deployed
//! with `--prebuilt` (the same checks a CI build-then-deploy goes through), so no cargo-lambda build runs here.
//!
//! - The shipped examples are refused before anything is built or sent (exit 2); `validate` only warns.
//! - create, an update that goes through `ExecuteChangeSet`, a no-op, a refused data-loss change, teardown.
//! - A person deploys with their own credentials (`--profile`, `--no-assume-role`), the account check still
//!   guarding the target; with IAM enforced by moto, assuming the CI role is what is denied to her.
//! - With IAM enforced by moto: every call a deploy makes as the CI role before its change set is authorized by
//!   the policy rendered from `templates/oidc-roles.yaml.hbs`, and the same policy minus one of those actions
//!   fails naming it. What this proves, exactly: the tool's own calls up to `CreateChangeSet` (role
//!   assumption, account check, stack and table look-ups, the artifact bucket's set-up and the uploads) are
//!   allowed by the rendered policy as moto evaluates IAM. It proves nothing about what CloudFormation does
//!   with the role: moto rejects the signature of `CreateChangeSet` (see the test), and its CloudFormation
//!   creates resources without any IAM check. Those permissions are proven from AWS's published resource
//!   schemas by `tests/tests/iam_contract.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use deployer::aws::Clients;
use deployer::build::Release;
use local_engine::endpoint::{Endpoint, LOCAL_ACCOUNT_ID};
use serde_json::{Value, json};
use stack::FunctionName;
use tests::cli::{output_text, stdout_json};
use tests::repo_root;

/// moto's default account: base credentials that are not an assumed role's land there, as do roles in it.
const ACCOUNT: &str = LOCAL_ACCOUNT_ID;
const REGION: &str = "eu-west-1";

/// A statically linked executable present on every Debian system; static, so it passes the glibc-floor check
/// that packaging applies to `aws` builds (see promote_cross_account.rs).
const STATIC_ELF: &str = "/sbin/ldconfig";

/// A temporary config directory, a moto, and where the CLI keeps its state and releases.
struct Sandbox {
    dir: tempfile::TempDir,
    moto: Endpoint,
}

/// Whose credentials the CLI process starts with.
#[derive(Clone)]
struct Keys {
    id: String,
    secret: String,
}

impl Keys {
    fn base() -> Keys {
        Keys {
            id: "base".into(),
            secret: "base".into(),
        }
    }
}

impl Sandbox {
    async fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let moto = Endpoint::start_fresh(&dir.path().join("moto"))
            .await
            .expect("the local endpoint starts");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::copy(
            repo_root().join("config/defaults.yaml"),
            config.join("defaults.yaml"),
        )
        .unwrap();
        Sandbox { dir, moto }
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn target_dir(&self) -> PathBuf {
        self.dir.path().join("cli-target")
    }

    /// Writes `config/<env>.yaml`: the shipped `config/dev.yaml` with the example account and role replaced
    /// (`account` for the account, `role` for the role's name), its own stack name, then `edit` applied.
    fn write_env(
        &self,
        env: &str,
        account: &str,
        role: Option<&str>,
        edit: impl Fn(&mut serde_yaml::Value),
    ) {
        let mut yaml: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(repo_root().join("config/dev.yaml")).unwrap(),
        )
        .unwrap();
        yaml["account_id"] = account.into();
        yaml["stack_name"] = format!("cqrs-{env}").into();
        yaml["region"] = REGION.into();
        match role {
            Some(r) => yaml["role_arn"] = format!("arn:aws:iam::{account}:role/{r}").into(),
            None => {
                yaml.as_mapping_mut().unwrap().remove("role_arn");
            }
        }
        edit(&mut yaml);
        std::fs::write(
            self.config_dir().join(format!("{env}.yaml")),
            serde_yaml::to_string(&yaml).unwrap(),
        )
        .unwrap();
    }

    /// Packages a release of `env` (the static ELF + `suffix`) where `cargo xtask build --env <env>` puts it.
    fn package(&self, env: &str, suffix: &str) -> Release {
        let (plan, template) = stack::load_checked(&self.config_dir(), env).unwrap();
        tests::release::package(
            &plan,
            &template.sha256,
            &self.dir.path().join(format!("work-{env}-{suffix}")),
            &self.target_dir(),
            Path::new(STATIC_ELF),
            |f| format!("{}-{suffix}", f.as_str()).into_bytes(),
        )
    }

    /// `xtask <args>` with nothing from this machine's AWS setup: the endpoint, `keys` as the base credentials,
    /// the given shared credentials file (for `--profile`), no instance metadata.
    fn xtask(&self, args: &[&str], keys: &Keys, credentials_file: Option<&Path>) -> Output {
        let dir = self.dir.path();
        Command::new(tests::cli::xtask_binary())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("AWS_ENDPOINT_URL", self.moto.url())
            .env("AWS_ACCESS_KEY_ID", &keys.id)
            .env("AWS_SECRET_ACCESS_KEY", &keys.secret)
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials_file.map_or_else(|| dir.join("no-aws-credentials"), Path::to_path_buf),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("XTASK_STATE_DIR", dir.join("state"))
            .env("XTASK_CONFIG_DIR", self.config_dir())
            .env("CARGO_TARGET_DIR", self.target_dir())
            .current_dir(repo_root())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Clients with moto's base credentials in the test region (account [`ACCOUNT`]), to look at the result.
    async fn clients(&self) -> Clients {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.moto.url())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("base", "base", None, None, "test"))
            .load()
            .await;
        Clients::from_sdk_config(&sdk)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn code_sha256(clients: &Clients, function: &str) -> String {
    clients
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{function}: {e:?}"))
        .code_sha256()
        .unwrap()
        .to_string()
}

async fn live(clients: &Clients, function: &str) -> (String, String) {
    tests::live_version(clients, function).await
}

fn expected_code_sha256(release: &Release, f: FunctionName) -> String {
    deployer::promote::code_sha256_of_hex(&release.manifest.functions[&f].zip_sha256).unwrap()
}

#[test]
fn the_shipped_examples_are_refused_by_deploy_and_promote_and_only_warned_about_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let config = tests::cli::copy_config(dir.path());
    let run = |args: &[&str]| {
        Command::new(tests::cli::xtask_binary())
            .args(args)
            .env("XTASK_CONFIG_DIR", &config)
            .env("XTASK_STATE_DIR", dir.path().join("state"))
            .env("CARGO_TARGET_DIR", dir.path().join("cli-target"))
            // Nothing may be reached: an endpoint that refuses connections would show up as a network error.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env_remove("XTASK_ENV")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    let out = run(&["deploy", "--env", "prod", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let err = stderr(&out);
    assert!(err.contains("refusing to deploy `prod`: its config still holds the shipped example values; nothing was built or sent to AWS"), "{err}");
    for key in [
        "account_id",
        "role_arn",
        "api.jwt.issuer",
        "api.cors_origins.0",
    ] {
        assert!(
            err.contains(&format!("config/prod.yaml: {key}: ")),
            "{key} not named:\n{err}"
        );
    }
    assert!(
        err.contains("put the 12-digit id (quoted) of the AWS account `prod` deploys into"),
        "{err}"
    );
    assert!(
        err.contains("put your identity provider's issuer URL"),
        "{err}"
    );
    // Refused before the build: nothing was compiled or packaged for prod.
    assert!(
        !deployer::build::dist_dir(&dir.path().join("cli-target"), &repo_root(), "prod").exists()
    );

    // dev has no JWT or CORS example, only the account and the role.
    let out = run(&["deploy", "--env", "dev", "--yes", "--no-assume-role"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("config/dev.yaml: account_id: `111111111111` is the shipped example"),
        "{err}"
    );
    assert!(err.contains("config/dev.yaml: role_arn: `arn:aws:iam::111111111111:role/cqrs-deploy-dev` is in the shipped example account"), "{err}");
    assert!(!err.contains("api.jwt"), "{err}");

    // Promotion refuses the same target before reading anything from the source.
    let out = run(&["promote", "--from", "staging", "--to", "prod", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        stderr(&out).contains(
            "config/prod.yaml: api.jwt.issuer: `https://auth.example.com/` is the shipped example"
        ),
        "{}",
        stderr(&out)
    );

    // validate passes on the shipped examples and lists what a deploy would refuse.
    let out = run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let err = stderr(&out);
    let warned = |needle: &str| {
        err.lines()
            .any(|l| l.starts_with("warning: ") && l.contains(needle))
    };
    assert!(
        warned(
            "config/prod.yaml: api.cors_origins.0: `https://app.example.com` is the shipped example"
        ),
        "{err}"
    );
    assert!(warned("config/staging.yaml: account_id: "), "{err}");
    assert!(!err.contains("config/local.yaml"), "{err}");
}

#[tokio::test]
async fn create_update_noop_refused_data_loss_and_teardown_through_the_cli() {
    let sb = Sandbox::new().await;
    sb.write_env("dev", ACCOUNT, Some("cqrs-deploy-dev"), |_| {});
    let clients = sb.clients().await;
    let base = Keys::base();
    let deploy = [
        "deploy",
        "--env",
        "dev",
        "--prebuilt",
        "--yes",
        "--output",
        "json",
    ];

    // 1. create, as the CI role (moto's STS hands out credentials for any role).
    let v1 = sb.package("dev", "v1");
    let out = sb.xtask(&deploy, &base, None);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let json = stdout_json(&out, "deploy");
    assert_eq!(json["result"], "created", "{json}");
    assert_eq!(json["release_digest"], v1.digest().as_str());
    assert_eq!(json["final_status"], "CREATE_COMPLETE");
    let err = stderr(&out);
    assert!(
        err.contains("notice: the AWS endpoint of `dev` is overridden"),
        "{err}"
    );
    assert!(err.contains("change set `xtask-"), "{err}");
    assert!(err.contains("creating: CREATE_COMPLETE"), "{err}");
    for f in FunctionName::ALL {
        let name = format!("cqrs-dev-{}", f.as_str());
        assert_eq!(
            code_sha256(&clients, &name).await,
            expected_code_sha256(&v1, f)
        );
        // The stack published the code as version 1 and its live alias serves it.
        assert_eq!(
            live(&clients, &name).await,
            ("1".to_string(), expected_code_sha256(&v1, f))
        );
    }

    // 2. An update (config and code) goes through a change set that is executed, not through UpdateStack.
    sb.write_env("dev", ACCOUNT, Some("cqrs-deploy-dev"), |y| {
        y["functions"] = json_to_yaml(json!({ "command": { "memory": 512 } }));
    });
    let v2 = sb.package("dev", "v2");
    let out = sb.xtask(&deploy, &base, None);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let json = stdout_json(&out, "deploy");
    assert_eq!(json["result"], "updated", "{json}");
    assert_eq!(json["final_status"], "UPDATE_COMPLETE");
    let change_set = json["change_set"].as_str().unwrap().to_string();
    let sets = clients
        .cfn
        .list_change_sets()
        .stack_name("cqrs-dev")
        .send()
        .await
        .unwrap();
    let executed = sets
        .summaries()
        .iter()
        .find(|s| s.change_set_name() == Some(change_set.as_str()))
        .unwrap_or_else(|| panic!("change set {change_set} not found: {sets:?}"));
    assert_eq!(
        executed.execution_status().map(|s| s.as_str()),
        Some("EXECUTE_COMPLETE"),
        "{executed:?}"
    );
    let command = clients
        .lambda
        .get_function_configuration()
        .function_name("cqrs-dev-command")
        .send()
        .await
        .unwrap();
    assert_eq!(command.memory_size(), Some(512));
    assert_eq!(
        command.code_sha256(),
        Some(expected_code_sha256(&v2, FunctionName::Command).as_str())
    );
    // Every changed function got a new version and the live alias moved to it; version 1 is retained.
    for f in FunctionName::ALL {
        let name = format!("cqrs-dev-{}", f.as_str());
        assert_eq!(
            live(&clients, &name).await,
            ("2".to_string(), expected_code_sha256(&v2, f))
        );
    }
    let versions = clients
        .lambda
        .list_versions_by_function()
        .function_name("cqrs-dev-command")
        .send()
        .await
        .unwrap();
    let versions: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version())
        .collect();
    assert_eq!(versions, ["$LATEST", "1", "2"]);

    // 3. The same again: nothing uploaded, no change set; 4 with --detailed-exitcode.
    let mut noop = deploy.to_vec();
    noop.push("--detailed-exitcode");
    let out = sb.xtask(&noop, &base, None);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    let json = stdout_json(&out, "deploy");
    assert_eq!(json["result"], "up_to_date", "{json}");
    assert_eq!(json["change_set"], Value::Null);
    assert!(!stderr(&out).contains("change set `"), "{}", stderr(&out));

    // 3a. rollback moves every live alias back to the versions of the previous release (v1) with UpdateAlias, no
    //     stack update; status shows the live versions and the history; a second rollback has nothing older.
    let started = std::time::Instant::now();
    let out = sb.xtask(
        &["rollback", "--env", "dev", "--output", "json"],
        &base,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // The whole process, for docs/benchmarks.md (printed, never asserted).
    eprintln!(
        "rollback (whole process, moto): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let json = stdout_json(&out, "rollback");
    assert_eq!(json["release_digest"], v1.digest().as_str(), "{json}");
    assert_eq!(json["moved"]["command"], json!(["2", "1"]), "{json}");
    for f in FunctionName::ALL {
        let name = format!("cqrs-dev-{}", f.as_str());
        assert_eq!(
            live(&clients, &name).await,
            ("1".to_string(), expected_code_sha256(&v1, f))
        );
    }
    let out = sb.xtask(&["status", "--env", "dev", "--output", "json"], &base, None);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let json = stdout_json(&out, "status");
    assert_eq!(json["live"]["query"]["version"], "1", "{json}");
    let changes: Vec<&str> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["deploy", "deploy", "rollback"], "{json}");
    let out = sb.xtask(&["status", "--env", "dev"], &base, None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("live (alias `live`):\n  command    version 1 (100%)"),
        "{text}"
    );
    let out = sb.xtask(&["rollback", "--env", "dev"], &base, None);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("has no earlier release in its history"),
        "{}",
        stderr(&out)
    );

    // 3b. A hotswap (dev allows it) updates $LATEST, publishes it and moves the live alias, or the API would
    //     keep serving the old version; the next full deploy keeps the alias on that code.
    let v3 = sb.package("dev", "v3");
    let mut hotswap = deploy.to_vec();
    hotswap.push("--hotswap");
    let out = sb.xtask(&hotswap, &base, None);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    for f in FunctionName::ALL {
        let name = format!("cqrs-dev-{}", f.as_str());
        assert_eq!(
            live(&clients, &name).await,
            ("3".to_string(), expected_code_sha256(&v3, f))
        );
    }
    let out = sb.xtask(&deploy, &base, None);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    for f in FunctionName::ALL {
        let name = format!("cqrs-dev-{}", f.as_str());
        assert_eq!(live(&clients, &name).await.1, expected_code_sha256(&v3, f));
    }

    // 4. A stack whose events table an earlier template named differently (created here out of band, with the
    //    tables alone): deploying today's template would replace the table by a new, empty one. Refused with
    //    exit 3, and the change set is deleted. (moto cannot rename a table of a running stack in an update.)
    sb.write_env("legacy", ACCOUNT, Some("cqrs-deploy-legacy"), |_| {});
    sb.package("legacy", "v1");
    let (_, legacy) = stack::load_checked(&sb.config_dir(), "legacy").unwrap();
    let tables =
        deployer::template::only_resources(&legacy.body, &["EventsTable", "ProjectionsTable"])
            .unwrap();
    let mut doc: Value = serde_json::from_str(&tables).unwrap();
    // The tables take no parameter; moto insists on values for declared ones.
    doc.as_object_mut().unwrap().remove("Parameters");
    let tables = serde_json::to_string(&doc).unwrap();
    let older = tables.replacen("\"cqrs-legacy-events\"", "\"cqrs-legacy-events-v0\"", 1);
    assert_ne!(
        older, tables,
        "the template names the events table as expected"
    );
    clients
        .cfn
        .create_stack()
        .stack_name("cqrs-legacy")
        .template_body(older)
        .send()
        .await
        .unwrap();
    let legacy_deploy = [
        "deploy",
        "--env",
        "legacy",
        "--prebuilt",
        "--yes",
        "--output",
        "json",
    ];
    let out = sb.xtask(&legacy_deploy, &base, None);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let error = stderr(&out);
    assert!(
        error.contains(
            "error: deploying stack `cqrs-legacy`: refusing to deploy: this change can lose data:\n  \
             - EventsTable would be replaced (a new, empty table)\n  - EventsTable would change TableName\n\
             the change set was deleted; rerun with --allow-data-loss if this is intended"
        ),
        "{error}"
    );
    let sets = clients
        .cfn
        .list_change_sets()
        .stack_name("cqrs-legacy")
        .send()
        .await
        .unwrap();
    // (moto lists every stack's change sets, whatever the StackName.)
    assert!(
        !sets
            .summaries()
            .iter()
            .any(|s| s.stack_name() == Some("cqrs-legacy")),
        "the refused change set is left: {sets:?}"
    );
    let still = deployer::stackops::template_body(&clients.cfn, "cqrs-legacy")
        .await
        .unwrap();
    assert!(
        still.contains("cqrs-legacy-events-v0"),
        "the stack was changed: {still}"
    );

    // 5. teardown: the stack and the artifact bucket go.
    let out = sb.xtask(
        &["teardown", "--env", "dev", "--yes", "--output", "json"],
        &base,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let json = stdout_json(&out, "teardown");
    assert_eq!(json["stack_deleted"], true, "{json}");
    assert_eq!(
        json["deleted_bucket"],
        format!("cqrs-dev-artifacts-{ACCOUNT}")
    );
    assert!(
        deployer::stackops::describe(&clients.cfn, "cqrs-dev")
            .await
            .unwrap()
            .is_none()
    );
}

fn json_to_yaml(v: Value) -> serde_yaml::Value {
    serde_yaml::to_value(v).unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// IAM enforced by moto.

/// One IAM (query protocol) request to moto while it does not check anything yet: unsigned, with an
/// `Authorization` header only so moto routes it to IAM. Returns the response body.
async fn iam(moto: &Endpoint, params: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2010-05-08")];
    form.extend_from_slice(params);
    let resp = reqwest::Client::new()
        .post(moto.url())
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=base/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "IAM {params:?}: {status}: {body}");
    body
}

/// Form encoding (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_field(body: &str, field: &str) -> String {
    let start = body.find(&format!("<{field}>")).unwrap() + field.len() + 2;
    let end = body[start..].find(&format!("</{field}>")).unwrap() + start;
    body[start..end].to_string()
}

/// From now on moto checks every request against the caller's IAM policies.
async fn enforce_iam(moto: &Endpoint) {
    let resp = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", moto.url()))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

/// The deploy policy of each role in the rendered OIDC template, as moto can evaluate it:
/// - `Fn::Sub` resolved for this account and partition;
/// - statements with a `Condition` dropped: moto evaluates identity-policy conditions against request
///   parameters only, so it would turn them into explicit denials (dropping an allow can only make this test
///   stricter); except the conditions on `s3:ResourceAccount` (the bucket is the account's) and
///   `aws:RequestedRegion` (the stack's region), which moto cannot evaluate and which hold by construction here
///   (one account, one region): those statements are kept without them, and `iam_contract.rs` checks that
///   the conditions are there;
/// - for every service but S3, STS and IAM, the resources widened to `*`: moto checks those actions against the
///   resource `*` only (it matches resources for S3 and STS), so this test proves actions, and the contract tests
///   prove resources;
/// - moto's own names for two S3 requests added beside the IAM actions AWS checks for them (`HeadBucket` is
///   authorized as `s3:ListBucket` on AWS; moto's router files `PutPublicAccessBlock` and `PutBucketEncryption`
///   under `s3:CreateBucket`, which the policy grants anyway).
fn moto_policies(rendered: &str) -> std::collections::BTreeMap<String, Value> {
    let doc = stack::template::parse(rendered).expect("the rendered OIDC template parses");
    let mut out = std::collections::BTreeMap::new();
    for (_, res) in doc["Resources"].as_object().unwrap() {
        if res["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let name = res["Properties"]["RoleName"].as_str().unwrap().to_string();
        let policy = resolve(res["Properties"]["Policies"][0]["PolicyDocument"].clone());
        let mut statements = Vec::new();
        for mut st in policy["Statement"].as_array().unwrap().clone() {
            let holds_here = |c: &Value| {
                c.as_object().is_some_and(|ops| {
                    ops.iter().all(|(op, keys)| {
                        op == "StringEquals"
                            && keys.as_object().is_some_and(|k| {
                                k.keys().all(|k| {
                                    k == "s3:ResourceAccount" || k == "aws:RequestedRegion"
                                })
                            })
                    })
                })
            };
            match st.get("Condition") {
                Some(c) if holds_here(c) => {
                    st.as_object_mut().unwrap().remove("Condition");
                }
                Some(_) => continue,
                None => {}
            }
            let actions: Vec<String> = match &st["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                other => panic!("unexpected Action {other}"),
            };
            let mut actions_out = actions.clone();
            if actions.iter().any(|a| a == "s3:ListBucket") {
                actions_out.push("s3:HeadBucket".into());
            }
            if actions.iter().any(|a| a == "s3:PutBucketPublicAccessBlock") {
                actions_out.push("s3:PutPublicAccessBlock".into());
            }
            let resource_checked = actions
                .iter()
                .all(|a| a.starts_with("s3:") || a.starts_with("sts:") || a.starts_with("iam:"));
            if !resource_checked {
                st["Resource"] = json!("*");
            }
            st["Action"] = json!(actions_out);
            statements.push(st);
        }
        out.insert(
            name,
            json!({ "Version": "2012-10-17", "Statement": statements }),
        );
    }
    out
}

/// `{"Fn::Sub": "...${AWS::AccountId}..."}` -> the string, recursively.
fn resolve(v: Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let s = m["Fn::Sub"].as_str().expect("a plain Fn::Sub string");
            Value::String(
                s.replace("${AWS::Partition}", "aws")
                    .replace("${AWS::AccountId}", ACCOUNT)
                    .replace("${AWS::Region}", REGION),
            )
        }
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, resolve(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(resolve).collect()),
        other => other,
    }
}

async fn create_role(moto: &Endpoint, name: &str, policy: &Value) {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
    iam(
        moto,
        &[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ],
    )
    .await;
    iam(
        moto,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", name),
            ("PolicyName", "deploy"),
            ("PolicyDocument", &policy.to_string()),
        ],
    )
    .await;
}

async fn create_user(moto: &Endpoint, name: &str, policy: &Value) -> Keys {
    iam(moto, &[("Action", "CreateUser"), ("UserName", name)]).await;
    iam(
        moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "p"),
            ("PolicyDocument", &policy.to_string()),
        ],
    )
    .await;
    let body = iam(moto, &[("Action", "CreateAccessKey"), ("UserName", name)]).await;
    Keys {
        id: xml_field(&body, "AccessKeyId"),
        secret: xml_field(&body, "SecretAccessKey"),
    }
}

#[tokio::test]
async fn deploys_as_the_rendered_ci_role_policy_and_as_a_person_with_iam_enforced() {
    let sb = Sandbox::new().await;
    // dev: deployed by CI as its role; qa: the same policy with one action the tool calls taken out;
    // sandbox: deployed by a person who may not assume its role; foreign: another account.
    sb.write_env("dev", ACCOUNT, Some("cqrs-deploy-dev"), |_| {});
    sb.write_env("qa", ACCOUNT, Some("cqrs-deploy-qa"), |_| {});
    sb.write_env("sandbox", ACCOUNT, Some("cqrs-deploy-sandbox"), |_| {});
    sb.write_env("foreign", "999999999999", None, |_| {});
    for env in ["dev", "qa", "sandbox", "foreign"] {
        sb.package(env, "v1");
    }

    // The CI roles' policies, rendered by the tool from these configs.
    let out = sb.xtask(
        &[
            "promote",
            "--oidc-roles-template",
            "--github-repo",
            "acme/cqrs",
            "--account",
            ACCOUNT,
        ],
        &Keys::base(),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let mut policies = moto_policies(&String::from_utf8(out.stdout).unwrap());
    // The seeded mistake: qa's role cannot read its stack (the deploy's first call).
    let qa = policies
        .get_mut("cqrs-deploy-qa")
        .expect("qa's role is rendered");
    for st in qa["Statement"].as_array_mut().unwrap() {
        let actions = st["Action"].as_array_mut().unwrap();
        actions.retain(|a| a != "cloudformation:DescribeStacks");
    }

    for (name, policy) in &policies {
        create_role(&sb.moto, name, policy).await;
    }
    let roles: Vec<String> = policies
        .keys()
        .map(|n| format!("arn:aws:iam::{ACCOUNT}:role/{n}"))
        .collect();
    let ci = create_user(
        &sb.moto,
        "ci",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}]}),
    )
    .await;
    // A person with wide rights who may not assume any deploy role.
    let alice = create_user(
        &sb.moto,
        "alice",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}
        ]}),
    )
    .await;
    let credentials = sb.dir.path().join("aws-credentials");
    std::fs::write(
        &credentials,
        format!(
            "[alice]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            alice.id, alice.secret
        ),
    )
    .unwrap();
    // A person, before IAM is enforced: with her own credentials (`--profile`, ahead of the CI keys in the
    // environment) and without assuming the CI role, the caller is her IAM user, not an assumed role.
    let person = [
        "deploy",
        "--env",
        "sandbox",
        "--prebuilt",
        "--yes",
        "--output",
        "json",
        "--profile",
        "alice",
    ];
    let mut own = person.to_vec();
    own.push("--no-assume-role");
    let out = sb.xtask(&own, &ci, Some(&credentials));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(stdout_json(&out, "deploy")["result"], "created");
    assert!(
        stderr(&out).contains(&format!(
            "using your own credentials for `sandbox`: arn:aws:iam::{ACCOUNT}:user/alice (account {ACCOUNT}); `arn:aws:iam::{ACCOUNT}:role/cqrs-deploy-sandbox` is not assumed (--no-assume-role)"
        )),
        "{}",
        stderr(&out)
    );
    // The account check still guards the target: her credentials are not in `foreign`'s account.
    let out = sb.xtask(
        &[
            "deploy",
            "--env",
            "foreign",
            "--prebuilt",
            "--yes",
            "--profile",
            "alice",
            "--no-assume-role",
        ],
        &ci,
        Some(&credentials),
    );
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the credentials (arn:aws:iam::{ACCOUNT}:user/alice) belong to account {ACCOUNT}, but"
        )) && stderr(&out).contains("foreign.yaml is for account 999999999999"),
        "{}",
        stderr(&out)
    );

    enforce_iam(&sb.moto).await;

    // Without --no-assume-role the role is assumed, which alice may not do.
    let out = sb.xtask(&person, &ci, Some(&credentials));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("not authorized to perform: sts:AssumeRole"),
        "{}",
        stderr(&out)
    );

    // CI as dev's role: every call the tool makes before the change set is authorized by the rendered policy
    // (role assumption, account check, stack and table look-ups, the artifact bucket and the uploads). moto
    // cannot check what follows: it verifies SigV4 against a form body it re-encodes (a space becomes `+`, where
    // the SDK sends `%20`), so `CreateChangeSet`, whose body holds the template, always fails its signature
    // check there. The test pins that boundary, so it fails (and can be extended) when moto stops re-encoding.
    let out = sb.xtask(
        &["deploy", "--env", "dev", "--prebuilt", "--yes"],
        &ci,
        None,
    );
    let err = stderr(&out);
    assert!(
        !err.contains("not authorized to perform"),
        "the rendered CI role policy lacks an action the deploy calls:\n{}",
        output_text(&out)
    );
    assert!(
        err.contains("artifacts: 4 uploaded, 0 already in s3://cqrs-dev-artifacts-"),
        "{}",
        output_text(&out)
    );
    assert!(
        err.contains("creating change set `xtask-") && err.contains("SignatureDoesNotMatch"),
        "{}",
        output_text(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));

    // The seeded mistake: qa's role lacks one action the deploy calls, and the message names it.
    let out = sb.xtask(&["deploy", "--env", "qa", "--prebuilt", "--yes"], &ci, None);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "User: arn:aws:sts::{ACCOUNT}:assumed-role/cqrs-deploy-qa/cargo-xtask-qa is not authorized to perform: cloudformation:DescribeStacks"
        )),
        "{}",
        stderr(&out)
    );
}
