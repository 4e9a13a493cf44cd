//! Promotion: deploy the release recorded with one environment into the next, bit for bit, without rebuilding.
//!
//! The release manifest ([`crate::manifest`]) is the unit of promotion. The source stack records its digest in
//! the `ReleaseDigest` parameter and its bucket holds the manifest at `releases/<digest>.json`; the smoke test
//! records its result next to it at `smoke/<env>.json`. Promotion checks all of that ([`check_promotion`], pure,
//! so every refusal is unit-tested), copies the content-addressed zips when the target bucket differs, deploys
//! through the same change-set path as `deploy`, then verifies each function's deployed `CodeSha256` against the
//! manifest ([`verify_code`]).
//!
//! This module also renders the one-time OIDC bootstrap template (`templates/oidc-roles.yaml.hbs`): the deploy
//! roles the CI workflow assumes are derived from the same configs that promotion enforces.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stack::{FunctionName, Plan};

use crate::build::Release;
use crate::manifest::ReleaseManifest;
use crate::{Error, Result};

/// The smoke record format version.
pub const SMOKE_SCHEMA: u32 = 1;

/// `smoke/<env>.json`: the last smoke result of an environment, in its artifact bucket.
pub fn smoke_key(env: &str) -> String {
    format!("smoke/{env}.json")
}

/// The result of one `cargo xtask smoke` run, stored with the environment so promotion can require it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmokeRecord {
    pub schema: u32,
    pub env: String,
    pub passed: bool,
    /// The `ReleaseDigest` deployed when the smoke test ran; `None` when the stack records none.
    pub release_digest: Option<String>,
    pub api_url: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub checks: Vec<SmokeCheck>,
}

/// One step of the smoke test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmokeCheck {
    pub name: String,
    pub passed: bool,
    /// What was observed (on failure: what was expected instead).
    pub detail: String,
    pub duration_ms: u64,
}

impl fmt::Display for SmokeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        writeln!(
            f,
            "smoke test of `{}` {verdict} against {} ({} ms)",
            self.env, self.api_url, self.duration_ms
        )?;
        writeln!(
            f,
            "  release: {}",
            self.release_digest.as_deref().unwrap_or("(none recorded)")
        )?;
        for c in &self.checks {
            let mark = if c.passed { "ok  " } else { "FAIL" };
            writeln!(
                f,
                "  {mark} {:<28} {:>6} ms  {}",
                c.name, c.duration_ms, c.detail
            )?;
        }
        Ok(())
    }
}

/// Why a promotion was refused. Every reason found is reported at once, so one run tells the whole story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// `deploy.promote_from` of the target names another environment (or none).
    OrderNotAllowed {
        from: String,
        to: String,
        allowed: Option<String>,
    },
    /// The source stack records no `ReleaseDigest`: it was never deployed by this tool.
    NoReleaseDeployed { env: String, stack: String },
    /// The digest is recorded but its manifest is not in the source bucket.
    NoManifest {
        env: String,
        bucket: String,
        key: String,
    },
    /// The target requires a passing smoke test of the source and there is none.
    SmokeMissing { env: String, digest: String },
    /// The last smoke test of the source failed.
    SmokeFailed {
        env: String,
        digest: String,
        failed_checks: Vec<String>,
    },
    /// The last smoke test passed, but for another release than the one deployed now.
    SmokeForOtherRelease {
        env: String,
        smoked: Option<String>,
        deployed: String,
    },
    /// Source and target are the same stack (same account, region and stack name): promotion would redeploy
    /// the source over itself.
    SameStack {
        from: String,
        to: String,
        stack: String,
    },
    /// Source and target name the same artifact bucket (same account and stack name) in different regions. A
    /// bucket lives in one region and Lambda reads function code only from a bucket in its own region.
    SharedBucketAcrossRegions {
        from: String,
        to: String,
        bucket: String,
        from_region: String,
        to_region: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OrderNotAllowed {
                from,
                to,
                allowed: Some(allowed),
            } => write!(
                f,
                "promotion order: `{to}` accepts releases only from `{allowed}` (deploy.promote_from in its config), not from `{from}`; promote {from} -> {allowed} first"
            ),
            Refusal::OrderNotAllowed {
                from,
                to,
                allowed: None,
            } => write!(
                f,
                "promotion order: `{to}` accepts no promotion (its config has no deploy.promote_from); deploy it with `cargo xtask deploy --env {to}`, or set deploy.promote_from: {from}"
            ),
            Refusal::NoReleaseDeployed { env, stack } => write!(
                f,
                "`{env}` has no release: stack `{stack}` records no ReleaseDigest parameter; run `cargo xtask deploy --env {env}` first"
            ),
            Refusal::NoManifest { env, bucket, key } => write!(
                f,
                "`{env}` has no release manifest: s3://{bucket}/{key} does not exist; redeploy `{env}` with `cargo xtask deploy --env {env}` to record it"
            ),
            Refusal::SmokeMissing { env, digest } => write!(
                f,
                "no smoke test recorded for `{env}` (release {}); run `cargo xtask smoke --env {env}` first",
                short(digest)
            ),
            Refusal::SmokeFailed {
                env,
                digest,
                failed_checks,
            } => write!(
                f,
                "the last smoke test of `{env}` (release {}) failed ({}); fix `{env}` and run `cargo xtask smoke --env {env}` again",
                short(digest),
                failed_checks.join(", ")
            ),
            Refusal::SmokeForOtherRelease {
                env,
                smoked,
                deployed,
            } => write!(
                f,
                "the last smoke test of `{env}` ran against release {}, but {} is deployed now; run `cargo xtask smoke --env {env}` again",
                smoked.as_deref().map(short).unwrap_or("(unknown)"),
                short(deployed)
            ),
            Refusal::SameStack { from, to, stack } => write!(
                f,
                "`{from}` and `{to}` are the same stack `{stack}` (same account and region): nothing to promote to; give `{to}` its own stack_name"
            ),
            Refusal::SharedBucketAcrossRegions {
                from,
                to,
                bucket,
                from_region,
                to_region,
            } => write!(
                f,
                "`{from}` ({from_region}) and `{to}` ({to_region}) resolve to the same artifact bucket `{bucket}` (same account and stack_name), but a bucket lives in one region and Lambda reads code only from its own region; give `{to}` its own stack_name"
            ),
        }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Joins refusals into the message of an [`Error::Refused`] (exit 3).
pub fn refused(refusals: &[Refusal]) -> Error {
    let lines: Vec<String> = refusals.iter().map(|r| format!("  - {r}")).collect();
    Error::Refused(format!("promotion refused:\n{}", lines.join("\n")))
}

/// The promotion-order rule alone: `to.deploy.promote_from` must name `from`.
pub fn check_order(source: &Plan, target: &Plan) -> Option<Refusal> {
    (target.deploy.promote_from.as_deref() != Some(source.env.as_str())).then(|| {
        Refusal::OrderNotAllowed {
            from: source.env.clone(),
            to: target.env.clone(),
            allowed: target.deploy.promote_from.clone(),
        }
    })
}

/// Where the target lands compared with the source, once both are connected (`*_account`: the account the
/// credentials were verified in, `None` for `local`; `*_bucket`: the artifact bucket names). Only `aws` pairs
/// are compared: each `local` environment is a world of its own (its own endpoint).
pub fn check_placement(
    source: &Plan,
    source_account: Option<&str>,
    source_bucket: &str,
    target: &Plan,
    target_account: Option<&str>,
    target_bucket: &str,
) -> Option<Refusal> {
    use stack::EnvKind;
    if source.kind != EnvKind::Aws || target.kind != EnvKind::Aws {
        return None;
    }
    if source_account == target_account
        && source.region == target.region
        && source.stack_name == target.stack_name
    {
        return Some(Refusal::SameStack {
            from: source.env.clone(),
            to: target.env.clone(),
            stack: target.stack_name.clone(),
        });
    }
    (source_bucket == target_bucket && source.region != target.region).then(|| {
        Refusal::SharedBucketAcrossRegions {
            from: source.env.clone(),
            to: target.env.clone(),
            bucket: target_bucket.to_string(),
            from_region: source.region.clone(),
            to_region: target.region.clone(),
        }
    })
}

/// What promotion found about the source, gathered by I/O before the decision.
#[derive(Debug, Clone)]
pub struct SourceFacts {
    pub stack_name: String,
    pub bucket: String,
    /// The source stack's `ReleaseDigest` parameter.
    pub digest: Option<String>,
    /// Whether `releases/<digest>.json` exists in the source bucket.
    pub manifest_found: bool,
    pub smoke: Option<SmokeRecord>,
}

/// Every rule of promotion, pure: the order in the configs, a recorded release with its manifest, and (when the
/// target requires it) a passing smoke test of exactly that release.
pub fn check_promotion(source: &Plan, target: &Plan, facts: &SourceFacts) -> Vec<Refusal> {
    let mut refusals: Vec<Refusal> = check_order(source, target).into_iter().collect();
    let Some(digest) = facts.digest.as_deref().filter(|d| !d.is_empty()) else {
        refusals.push(Refusal::NoReleaseDeployed {
            env: source.env.clone(),
            stack: facts.stack_name.clone(),
        });
        return refusals;
    };
    if !facts.manifest_found {
        refusals.push(Refusal::NoManifest {
            env: source.env.clone(),
            bucket: facts.bucket.clone(),
            key: crate::manifest::release_key(digest),
        });
    }
    if target.deploy.require_smoke {
        match &facts.smoke {
            None => refusals.push(Refusal::SmokeMissing {
                env: source.env.clone(),
                digest: digest.to_string(),
            }),
            Some(s) if s.release_digest.as_deref() != Some(digest) => {
                refusals.push(Refusal::SmokeForOtherRelease {
                    env: source.env.clone(),
                    smoked: s.release_digest.clone(),
                    deployed: digest.to_string(),
                })
            }
            Some(s) if !s.passed => refusals.push(Refusal::SmokeFailed {
                env: source.env.clone(),
                digest: digest.to_string(),
                failed_checks: s
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.clone())
                    .collect(),
            }),
            Some(_) => {}
        }
    }
    refusals
}

/// Lambda's `CodeSha256` spelling of a hex SHA-256: base64 of the raw 32 bytes.
pub fn code_sha256_of_hex(zip_sha256_hex: &str) -> Result<String> {
    let raw = hex::decode(zip_sha256_hex).map_err(|e| {
        Error::InvalidInput(format!(
            "`{zip_sha256_hex}` is not a hex SHA-256 in the manifest: {e}"
        ))
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// One function's deployed code compared with the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeCheck {
    pub function: FunctionName,
    pub function_name: String,
    /// From the manifest, base64 (Lambda's spelling).
    pub expected: String,
    /// `CodeSha256` reported by Lambda.
    pub deployed: String,
}

impl CodeCheck {
    pub fn matches(&self) -> bool {
        self.expected == self.deployed
    }
}

/// Reads every function's `CodeSha256` and compares it with the manifest. Returns the comparisons; a mismatch
/// is an [`Error::StackFailed`] because the stack now runs code nobody tested.
pub async fn verify_code(
    lambda: &aws_sdk_lambda::Client,
    plan: &Plan,
    manifest: &ReleaseManifest,
) -> Result<Vec<CodeCheck>> {
    let mut checks = Vec::new();
    for f in &plan.functions {
        let artifact = manifest.functions.get(&f.name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "the release manifest has no `{}` function; rebuild and redeploy the source",
                f.name
            ))
        })?;
        let out = lambda
            .get_function_configuration()
            .function_name(&f.function_name)
            .send()
            .await
            .map_err(Error::aws(format!(
                "reading the code digest of `{}`",
                f.function_name
            )))?;
        checks.push(CodeCheck {
            function: f.name,
            function_name: f.function_name.clone(),
            expected: code_sha256_of_hex(&artifact.zip_sha256)?,
            deployed: out.code_sha256().unwrap_or_default().to_string(),
        });
    }
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !c.matches())
        .map(|c| {
            format!(
                "{} runs {} but the release has {}",
                c.function_name, c.deployed, c.expected
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(Error::StackFailed(format!(
            "deployed code differs from the promoted release: {}; redeploy the target or promote again",
            bad.join("; ")
        )));
    }
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------------------
// S3 records: smoke results, manifests, zips.

/// Stores a smoke record at `smoke/<env>.json` (overwriting the previous one: promotion wants the last result).
pub async fn put_smoke_record(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    record: &SmokeRecord,
) -> Result<()> {
    let body = serde_json::to_vec_pretty(record).expect("a smoke record serializes");
    put_json(s3, bucket, &smoke_key(&record.env), body).await
}

/// The last smoke record of `env`, or `None` when it never ran.
pub async fn get_smoke_record(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    env: &str,
) -> Result<Option<SmokeRecord>> {
    let key = smoke_key(env);
    let Some(bytes) = get_object(s3, bucket, &key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("s3://{bucket}/{key} is not a smoke record ({e}); run `cargo xtask smoke --env {env}` again")))
}

/// The manifest `releases/<digest>.json`, checked against its digest so a tampered or truncated file is refused.
pub async fn get_manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    digest: &str,
) -> Result<Option<ReleaseManifest>> {
    let key = crate::manifest::release_key(digest);
    let Some(bytes) = get_object(s3, bucket, &key).await? else {
        return Ok(None);
    };
    let manifest: ReleaseManifest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidInput(format!(
            "s3://{bucket}/{key} is not a release manifest: {e}"
        ))
    })?;
    if manifest.digest() != digest {
        return Err(Error::InvalidInput(format!(
            "s3://{bucket}/{key} hashes to {} instead of {digest}: the manifest was altered; redeploy the source",
            manifest.digest()
        )));
    }
    Ok(Some(manifest))
}

/// Records `manifest` at `releases/<digest>.json` in `bucket` (the target's record of what it runs).
pub async fn put_manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &ReleaseManifest,
) -> Result<()> {
    put_json(s3, bucket, &manifest.s3_key(), manifest.canonical_json()).await
}

/// Downloads the release's zips from the source bucket into `dist_dir` (the layout `cargo xtask build` writes:
/// `<fn>/<fn>.zip` and `manifest.json`), checking each zip's SHA-256 against the manifest. The result is an
/// ordinary on-disk [`Release`]: the deploy path uploads it to the target bucket when the keys are missing there
/// (another bucket, account or region) and skips them otherwise, and the local engine runs its binaries.
pub async fn fetch_release(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &ReleaseManifest,
    dist_dir: &std::path::Path,
) -> Result<Release> {
    for (name, artifact) in &manifest.functions {
        let key = &artifact.s3_key;
        let bytes = get_object(s3, bucket, key).await?.ok_or_else(|| {
            Error::Refused(format!("s3://{bucket}/{key} is missing although the release manifest lists it; redeploy the source"))
        })?;
        let actual = crate::package::sha256_hex(&bytes);
        if actual != artifact.zip_sha256 {
            return Err(Error::Refused(format!(
                "s3://{bucket}/{key} hashes to {actual}, not {}: refusing to promote a corrupted artifact",
                artifact.zip_sha256
            )));
        }
        let path = crate::build::zip_path(dist_dir, *name);
        let dir = path.parent().expect("a zip path has a parent");
        std::fs::create_dir_all(dir).map_err(Error::io("creating the release directory", dir))?;
        std::fs::write(&path, &bytes).map_err(Error::io("writing a promoted zip", &path))?;
        // The binary next to it, as a build leaves it: the local engine runs `<fn>/bootstrap` after checking
        // it against the manifest and the deployed CodeSha256.
        let binary = unzip_bootstrap(&bytes).map_err(|e| {
            Error::InvalidInput(format!(
                "s3://{bucket}/{key} is not a function zip with a bootstrap: {e}"
            ))
        })?;
        if crate::package::sha256_hex(&binary) != artifact.binary_sha256 {
            return Err(Error::Refused(format!(
                "the bootstrap in s3://{bucket}/{key} does not match the manifest's binary_sha256; refusing to promote it"
            )));
        }
        let bootstrap = dir.join(crate::package::ENTRY_NAME);
        std::fs::write(&bootstrap, &binary)
            .map_err(Error::io("writing a promoted bootstrap", &bootstrap))?;
        make_executable(&bootstrap)?;
    }
    let release = Release {
        manifest: manifest.clone(),
        dist_dir: dist_dir.to_path_buf(),
    };
    let path = release.manifest_path();
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(manifest).expect("a manifest serializes"),
    )
    .map_err(Error::io("writing the promoted manifest", &path))?;
    Ok(release)
}

fn unzip_bootstrap(zip_bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(|e| e.to_string())?;
    let mut entry = archive
        .by_name(crate::package::ENTRY_NAME)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    entry.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn make_executable(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io("making bootstrap executable", path))?;
    }
    Ok(())
}

pub(crate) async fn put_json(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<()> {
    s3.put_object()
        .bucket(bucket)
        .set_expected_bucket_owner(crate::artifacts::expected_owner(bucket))
        .key(key)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(Error::aws(format!("writing s3://{bucket}/{key}")))?;
    Ok(())
}

/// The object's bytes, or `None` when the key (or the bucket) does not exist.
pub(crate) async fn get_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    match s3
        .get_object()
        .bucket(bucket)
        .set_expected_bucket_owner(crate::artifacts::expected_owner(bucket))
        .key(key)
        .send()
        .await
    {
        Ok(out) => {
            let data = out.body.collect().await.map_err(|e| Error::Aws {
                context: format!("reading s3://{bucket}/{key}"),
                message: e.to_string(),
            })?;
            Ok(Some(data.into_bytes().to_vec()))
        }
        Err(err) => {
            let missing = err.as_service_error().is_some_and(|e| {
                e.is_no_such_key()
                    || aws_smithy_types::error::metadata::ProvideErrorMetadata::code(e)
                        == Some("NoSuchBucket")
            });
            if missing {
                Ok(None)
            } else {
                Err(Error::aws(format!("reading s3://{bucket}/{key}"))(err))
            }
        }
    }
}

pub(crate) async fn object_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<bool> {
    match s3
        .head_object()
        .bucket(bucket)
        .set_expected_bucket_owner(crate::artifacts::expected_owner(bucket))
        .key(key)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(err) => Err(Error::aws(format!("checking s3://{bucket}/{key}"))(err)),
    }
}

// ---------------------------------------------------------------------------------------------------------
// OIDC bootstrap template.

/// The GitHub environment whose jobs deploy `env` (`stack::oidc::github_environment`).
pub use stack::oidc::github_environment;

/// One environment's input to the OIDC template.
#[derive(Debug, Clone)]
pub struct OidcEnvironment<'a> {
    pub plan: &'a Plan,
    pub artifact_bucket: String,
}

/// Renders `templates/oidc-roles.yaml.hbs` (through `stack::oidc`, which quotes every value) for the `aws`
/// environments of one account: GitHub's OIDC provider and one deploy role per environment, named and pathed
/// as the config's `role_arn` says, trusting `repo:<github_repo>:environment:<github environment>`, itself (the
/// tool assumes `role_arn` again), and the roles of the environments that promote from it (promotion reads the
/// source release as the source's role). Its statements for the tool's own calls come from
/// [`crate::permissions::deploy_role_statements`]. `all` is every environment, to resolve promotion peers that
/// may live in other accounts. The input checks are here: a `role_arn` that is no IAM role of the account, or
/// that the deploy role could pass to Lambda, is refused naming the config file.
pub fn render_oidc_roles(
    github_repo: &str,
    account_id: &str,
    envs: &[OidcEnvironment<'_>],
    all: &[OidcEnvironment<'_>],
) -> Result<String> {
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !matches!(github_repo.split_once('/'), Some((owner, name)) if valid_part(owner) && valid_part(name))
    {
        return Err(Error::InvalidInput(format!(
            "`{github_repo}` is not a GitHub repository; pass it as owner/name (e.g. --github-repo acme/cqrs)"
        )));
    }
    let mut roles = Vec::new();
    for e in envs {
        roles.push(deploy_role(account_id, e, all)?);
    }
    if roles.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no aws environment deploys into account {account_id}; check role_arn in config/*.yaml"
        )));
    }
    let bootstrap = stack::oidc::Bootstrap {
        github_repo,
        account_id,
        roles,
    };
    stack::oidc::render(&bootstrap)
        .map_err(|e| Error::InvalidInput(format!("rendering templates/oidc-roles.yaml.hbs: {e}")))
}

/// `plan`'s `role_arn` as a promotion peer (checked to be an IAM role ARN).
fn peer(plan: &Plan, account_id: &str) -> Result<stack::oidc::Peer> {
    let arn = plan.role_arn.as_deref().ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: role_arn is not set; the OIDC template creates the role the config names, so set role_arn (e.g. arn:{}:iam::{account_id}:role/{}-deploy)",
            plan.config_path.display(),
            stack::partition(&plan.region),
            plan.stack_name
        ))
    })?;
    let (account, _, _) = parse_role_arn(arn).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: role_arn `{arn}` is not an IAM role ARN (arn:{}:iam::<account>:role/<name>)",
            plan.config_path.display(),
            stack::partition(&plan.region)
        ))
    })?;
    Ok(stack::oidc::Peer {
        env: plan.env.clone(),
        account_id: account,
        role_arn: arn.to_string(),
    })
}

/// One environment's deploy role: its `role_arn` checked (this account, not passable to Lambda), its
/// promotion peers resolved, its statements for the tool's own calls generated.
fn deploy_role<'a>(
    account_id: &str,
    e: &OidcEnvironment<'a>,
    all: &[OidcEnvironment<'_>],
) -> Result<stack::oidc::DeployRole<'a>> {
    let plan = e.plan;
    let me = peer(plan, account_id)?;
    let (_, role_path, role_name) = parse_role_arn(&me.role_arn).expect("checked by peer()");
    let partition = stack::partition(&plan.region);
    if me.account_id != account_id {
        return Err(Error::InvalidInput(format!(
            "{}: role_arn `{}` is in account {}, not {account_id}; render the template once per account",
            plan.config_path.display(),
            me.role_arn,
            me.account_id
        )));
    }
    // The deploy role may pass the roles under the function role path to Lambda; were it one of them, it
    // could run code as itself, outside the permissions boundary.
    if role_path.starts_with(stack::FUNCTION_ROLE_PATH_ROOT) {
        return Err(Error::InvalidInput(format!(
            "{}: role_arn `{}` lies under {}, the IAM path of the function roles, which the deploy role may \
             pass to Lambda; give the deploy role another path (e.g. arn:{partition}:iam::{account_id}:role/{}-deploy-{})",
            plan.config_path.display(),
            me.role_arn,
            stack::FUNCTION_ROLE_PATH_ROOT,
            plan.app,
            plan.env
        )));
    }
    if role_name.starts_with(&format!("{}-", plan.stack_name)) {
        return Err(Error::InvalidInput(format!(
            "{}: role_arn `{}` is named like the stack's own roles (`{}-*`), which the deploy role may pass to \
             Lambda; name the deploy role differently (e.g. arn:{partition}:iam::{account_id}:role/{}-deploy-{})",
            plan.config_path.display(),
            me.role_arn,
            plan.stack_name,
            plan.app,
            plan.env
        )));
    }
    let promote_from = match plan.deploy.promote_from.as_deref() {
        None => None,
        Some(src) => {
            let s = all.iter().find(|o| o.plan.env == src).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: deploy.promote_from names `{src}`, which has no config",
                    plan.config_path.display()
                ))
            })?;
            Some(peer(s.plan, account_id)?)
        }
    };
    let promoters = all
        .iter()
        .filter(|o| o.plan.deploy.promote_from.as_deref() == Some(plan.env.as_str()))
        .map(|o| peer(o.plan, account_id))
        .collect::<Result<Vec<_>>>()?;
    let tool_statements = crate::permissions::deploy_role_statements(
        plan,
        account_id,
        &e.artifact_bucket,
        promote_from.as_ref().map(|p| p.role_arn.as_str()),
    );
    Ok(stack::oidc::DeployRole {
        plan,
        artifact_bucket: e.artifact_bucket.clone(),
        role_arn: me.role_arn,
        role_path,
        role_name,
        promoters,
        tool_statements,
    })
}

/// `arn:aws:iam::<account>:role/<path/><name>` -> (account, `/<path>/`, name).
fn parse_role_arn(arn: &str) -> Option<(String, String, String)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "iam" || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let path_and_name = resource.strip_prefix("role/")?;
    let (path, name) = match path_and_name.rfind('/') {
        Some(i) => (
            format!("/{}/", &path_and_name[..i]),
            path_and_name[i + 1..].to_string(),
        ),
        None => ("/".to_string(), path_and_name.to_string()),
    };
    (!name.is_empty()).then_some((account.to_string(), path, name))
}

/// Per-function code keys of a manifest, as template parameter name -> key (for logs and JSON output).
pub fn code_keys(manifest: &ReleaseManifest) -> BTreeMap<String, String> {
    manifest
        .functions
        .iter()
        .map(|(f, a)| (stack::parameters::code_key(*f), a.s3_key.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sha256_is_base64_of_the_raw_digest() {
        // SHA-256 of the empty string, as Lambda would report it.
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            code_sha256_of_hex(hex).unwrap(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(code_sha256_of_hex("zz").is_err());
    }

    #[test]
    fn role_arns_split_into_account_path_and_name() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/cqrs-dev-deploy"),
            Some(("111111111111".into(), "/".into(), "cqrs-dev-deploy".into()))
        );
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/ci/deploy/cqrs"),
            Some(("111111111111".into(), "/ci/deploy/".into(), "cqrs".into()))
        );
        assert_eq!(parse_role_arn("arn:aws:s3:::bucket"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::1:role/x"), None);
    }

    fn aws_plan(env: &str, stack_name: &str, region: &str) -> Plan {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut plan = stack::config::load(&dir, "dev").expect("config/dev.yaml loads");
        plan.env = env.into();
        plan.stack_name = stack_name.into();
        plan.region = region.into();
        plan
    }

    fn placement(source: &Plan, sa: &str, target: &Plan, ta: &str) -> Option<Refusal> {
        let (sb, tb) = (
            crate::artifacts::bucket_name(source, Some(sa)),
            crate::artifacts::bucket_name(target, Some(ta)),
        );
        check_placement(source, Some(sa), &sb, target, Some(ta), &tb)
    }

    #[test]
    fn a_target_in_another_account_or_region_or_stack_is_placed() {
        let dev = aws_plan("dev", "cqrs-dev", "us-east-1");
        let staging = aws_plan("staging", "cqrs-staging", "us-east-1");
        let staging_west = aws_plan("staging", "cqrs-staging", "us-west-2");
        let a = "111111111111";
        let b = "222222222222";
        assert_eq!(placement(&dev, a, &staging, a), None);
        assert_eq!(placement(&dev, a, &staging_west, a), None);
        assert_eq!(placement(&dev, a, &staging_west, b), None);
        // The same stack name in another account, or in another region with its own bucket name, is fine.
        let dev_named_alike = aws_plan("dev", "cqrs-staging", "us-east-1");
        assert_eq!(placement(&dev_named_alike, a, &staging_west, b), None);
    }

    #[test]
    fn a_target_that_is_the_source_or_shares_its_bucket_across_regions_is_refused() {
        let a = "111111111111";
        let src = aws_plan("dev", "cqrs", "us-east-1");
        let same = aws_plan("staging", "cqrs", "us-east-1");
        let r = placement(&src, a, &same, a).expect("the same stack is refused");
        assert_eq!(
            r.to_string(),
            "`dev` and `staging` are the same stack `cqrs` (same account and region): nothing to promote to; give `staging` its own stack_name"
        );
        // Same account and stack name in another region: the bucket name `cqrs-artifacts-<account>` collides.
        let west = aws_plan("staging", "cqrs", "us-west-2");
        let r = placement(&src, a, &west, a).expect("a bucket shared across regions is refused");
        assert!(
            matches!(&r, Refusal::SharedBucketAcrossRegions { bucket, .. } if bucket == "cqrs-artifacts-111111111111"),
            "{r:?}"
        );
        assert!(
            r.to_string().contains("give `staging` its own stack_name"),
            "{r}"
        );
    }

    #[test]
    fn local_environments_are_never_compared() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let local = stack::config::load(&dir, "local").expect("config/local.yaml loads");
        let mut other = local.clone();
        other.env = "other".into();
        let bucket = crate::artifacts::bucket_name(&local, None);
        assert_eq!(
            check_placement(&local, None, &bucket, &other, None, &bucket),
            None
        );
    }

    #[test]
    fn refusal_messages_say_what_to_do() {
        let r = Refusal::OrderNotAllowed {
            from: "dev".into(),
            to: "prod".into(),
            allowed: Some("staging".into()),
        };
        assert_eq!(
            r.to_string(),
            "promotion order: `prod` accepts releases only from `staging` (deploy.promote_from in its config), not from `dev`; promote dev -> staging first"
        );
        let r = Refusal::SmokeMissing {
            env: "dev".into(),
            digest: "0123456789abcdef".into(),
        };
        assert_eq!(
            r.to_string(),
            "no smoke test recorded for `dev` (release 0123456789ab); run `cargo xtask smoke --env dev` first"
        );
    }
}
