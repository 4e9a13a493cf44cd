//! Typed configuration: the YAML files in `config/` -> raw structs -> validated [`Plan`].
//!
//! Parse first, resolve second (ripgrep's lowargs/hiargs): the raw structs below mirror the YAML exactly
//! with `deny_unknown_fields` and every field optional, so that `config/defaults.yaml` (shared defaults)
//! and `config/<env>.yaml` (per-environment overrides) share one schema. The two documents are deep-merged
//! (the environment wins; `null` clears a default) and then validated into a [`Plan`].
//!
//! Every problem is collected, not just the first: a document that does not deserialize is re-checked
//! one leaf at a time, so each unknown key or wrong type is reported with its own key path, and the
//! validation step keeps going after a bad value. Each problem names the file the offending key came from.
//! YAML parsing stays behind this module so `serde_yaml` (archived upstream) can be swapped for a fork.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::plan::*;

/// The file with the defaults every environment shares; not an environment itself.
pub const DEFAULTS_FILE: &str = "defaults.yaml";

/// CloudWatch Logs accepts only these retention periods (days).
pub const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The most requests per second the API of a non-protected `aws` environment without `api.jwt` may be
/// throttled to: its write routes take anyone's requests, and this caps them at 432,000 a day.
pub const ANONYMOUS_RATE_LIMIT: f64 = 5.0;

/// Log levels a function accepts (they become `RUST_LOG`).
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file the offending key came from (or should be added to, for a missing key).
    pub file: PathBuf,
    /// Dotted key path, e.g. `functions.command.memory`; empty for whole-file problems.
    pub key: String,
    /// What is wrong, the allowed values, and for unsafe settings the reason they are refused.
    pub message: String,
    /// True when the value is well-formed but refused by a safety rule (data loss, ordering, poison records).
    pub unsafe_setting: bool,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = display_path(&self.file);
        if self.key.is_empty() {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}: {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one environment's configuration.
///
/// ### Handling
/// The configuration is unusable; print every problem (one per line) and exit with "invalid input" (2).
/// Nothing has touched AWS yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    fn single(file: PathBuf, key: &str, message: String) -> Self {
        ConfigError {
            problems: vec![ConfigProblem {
                file,
                key: key.to_string(),
                message,
                unsafe_setting: false,
            }],
        }
    }

    /// True if any problem is a refused unsafe setting (as opposed to a malformed value).
    pub fn has_unsafe_setting(&self) -> bool {
        self.problems.iter().any(|p| p.unsafe_setting)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The environments defined in `config_dir`: the stems of its `*.yaml` files, without `defaults`, sorted.
pub fn environments(config_dir: &Path) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(config_dir).map_err(|e| {
        ConfigError::single(
            config_dir.to_path_buf(),
            "",
            format!("cannot read the config directory: {e}; pass --config-dir or run from the repository"),
        )
    })?;
    let mut envs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        if path.file_name().and_then(|n| n.to_str()) == Some(DEFAULTS_FILE) {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            envs.push(stem.to_string());
        }
    }
    envs.sort();
    Ok(envs)
}

/// Loads `config_dir/defaults.yaml` (optional) and `config_dir/<env>.yaml`, merges and validates them.
pub fn load(config_dir: &Path, env: &str) -> Result<Plan, ConfigError> {
    let env_file = config_dir.join(format!("{env}.yaml"));
    if !is_valid_env_name(env) {
        return Err(ConfigError::single(
            env_file,
            "",
            format!(
                "`{env}` is not a valid environment name: use lowercase letters, digits and `-`"
            ),
        ));
    }
    if !env_file.is_file() {
        let known = environments(config_dir)
            .map(|e| e.join(", "))
            .unwrap_or_default();
        return Err(ConfigError::single(
            env_file,
            "",
            format!("no such environment `{env}`; known environments: {known}"),
        ));
    }
    let defaults_file = config_dir.join(DEFAULTS_FILE);
    let mut problems = Vec::new();

    let env_doc = read_document(&env_file, &mut problems);
    let defaults_doc = if defaults_file.is_file() {
        read_document(&defaults_file, &mut problems)
    } else {
        None
    };
    let (Some(env_doc), defaults_doc) = (env_doc, defaults_doc) else {
        return Err(ConfigError { problems });
    };
    let defaults_doc = defaults_doc.unwrap_or_else(|| Value::Mapping(Mapping::new()));

    // Check each document on its own first, so an unknown key is blamed on the file that has it. The
    // offending leaves are then dropped so validation still runs and reports the remaining problems too.
    let mut defaults_doc = defaults_doc;
    let mut env_doc = env_doc;
    for bad in check_schema(&defaults_file, &defaults_doc, &mut problems) {
        remove_path(&mut defaults_doc, &bad);
    }
    for bad in check_schema(&env_file, &env_doc, &mut problems) {
        remove_path(&mut env_doc, &bad);
    }

    let mut merged = defaults_doc.clone();
    merge(&mut merged, env_doc.clone());
    let raw: RawConfig = match serde_yaml::from_value(merged) {
        Ok(raw) => raw,
        Err(e) => {
            return Err(ConfigError::single(
                env_file,
                "",
                format!("cannot merge with the defaults: {e}"),
            ));
        }
    };

    let known_envs = environments(config_dir).unwrap_or_default();
    let mut ctx = Ctx {
        problems,
        env_file: env_file.clone(),
        defaults_file,
        env_doc,
        defaults_doc,
    };
    let plan = ctx.resolve(env, &env_file, raw, &known_envs);
    match plan {
        Some(plan) if ctx.problems.is_empty() => Ok(plan),
        _ => {
            // A dropped bad leaf may also surface as "missing"; report each key once, first cause first.
            let mut seen = std::collections::BTreeSet::new();
            let problems = ctx
                .problems
                .into_iter()
                .filter(|p| p.key.is_empty() || seen.insert(p.key.clone()))
                .collect();
            Err(ConfigError { problems })
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Raw structs: exactly the YAML schema (see docs/configuration.md). Numbers are i64 so that a negative
// value (e.g. `-1` meaning "unbounded" on AWS) reaches validation and is refused with its reason.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: Option<String>,
    stack_name: Option<String>,
    kind: Option<String>,
    protected: Option<bool>,
    account_id: Option<String>,
    region: Option<String>,
    role_arn: Option<String>,
    functions: Option<RawFunctions>,
    tables: Option<RawTables>,
    stream_mapping: Option<RawStreamMapping>,
    api: Option<RawApi>,
    tags: Option<BTreeMap<String, String>>,
    alarms: Option<bool>,
    alarm_topic_arn: Option<String>,
    deploy: Option<RawDeploy>,
    deployment: Option<RawDeployment>,
    local: Option<RawLocal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    strategy: Option<String>,
    percent: Option<i64>,
    interval_minutes: Option<i64>,
    interval_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunctions {
    command: Option<RawFunction>,
    query: Option<RawFunction>,
    projector: Option<RawFunction>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    memory: Option<i64>,
    timeout: Option<i64>,
    architecture: Option<String>,
    reserved_concurrency: Option<i64>,
    log_level: Option<String>,
    log_retention_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    events: Option<RawTable>,
    projections: Option<RawTable>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    billing_mode: Option<String>,
    point_in_time_recovery: Option<bool>,
    deletion_protection: Option<bool>,
    retain_on_delete: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreamMapping {
    batch_size: Option<i64>,
    maximum_batching_window_seconds: Option<i64>,
    maximum_retry_attempts: Option<i64>,
    maximum_record_age_seconds: Option<i64>,
    bisect_batch_on_function_error: Option<bool>,
    parallelization_factor: Option<i64>,
    starting_position: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    cors_origins: Option<Vec<String>>,
    cors_max_age_seconds: Option<i64>,
    throttling: Option<RawThrottling>,
    jwt: Option<RawJwt>,
    stage_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThrottling {
    burst_limit: Option<i64>,
    rate_limit: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: Option<String>,
    audience: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    promote_from: Option<String>,
    hotswap: Option<bool>,
    require_smoke: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    gateway_port: Option<i64>,
    endpoint_port: Option<i64>,
    inspector_port: Option<i64>,
}

// ---------------------------------------------------------------------------------------------------
// Reading, schema checks and merging.

fn read_document(file: &Path, problems: &mut Vec<ConfigProblem>) -> Option<Value> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            problems.push(problem(file, "", format!("cannot read the file: {e}")));
            return None;
        }
    };
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Null) => Some(Value::Mapping(Mapping::new())),
        Ok(v @ Value::Mapping(_)) => Some(v),
        Ok(_) => {
            problems.push(problem(
                file,
                "",
                "the file must be a YAML mapping of keys to values".into(),
            ));
            None
        }
        Err(e) => {
            problems.push(problem(file, "", format!("not valid YAML: {e}")));
            None
        }
    }
}

/// Reports every schema error of one document (unknown keys and wrong types, each with its key path)
/// and returns the paths of the offending leaves.
fn check_schema(file: &Path, doc: &Value, problems: &mut Vec<ConfigProblem>) -> Vec<Vec<String>> {
    let mut bad = Vec::new();
    if serde_yaml::from_value::<RawConfig>(doc.clone()).is_ok() {
        return bad;
    }
    // Every field is optional, so a document holding a single leaf is valid exactly when that leaf is:
    // checking leaves one at a time turns serde's first error into all of them, each with its path.
    let mut found = false;
    for (path, single) in single_leaf_documents(doc) {
        if let Err(e) = serde_yaml::from_value::<RawConfig>(single) {
            found = true;
            problems.push(problem(file, &path.join("."), describe_serde_error(&e)));
            bad.push(path);
        }
    }
    if !found && let Err(e) = serde_yaml::from_value::<RawConfig>(doc.clone()) {
        problems.push(problem(file, "", describe_serde_error(&e)));
        // Unknown which part is wrong: drop the whole document so validation reports what is missing.
        bad.push(Vec::new());
    }
    bad
}

fn remove_path(doc: &mut Value, path: &[String]) {
    match path {
        [] => *doc = Value::Mapping(Mapping::new()),
        [last] => {
            if let Some(m) = doc.as_mapping_mut() {
                m.remove(last.as_str());
            }
        }
        [first, rest @ ..] => {
            if let Some(child) = doc.as_mapping_mut().and_then(|m| m.get_mut(first.as_str())) {
                remove_path(child, rest);
            }
        }
    }
}

fn describe_serde_error(e: &serde_yaml::Error) -> String {
    // Rust type names mean nothing to someone editing YAML.
    let msg = e
        .to_string()
        .replace("expected i64", "expected a whole number")
        .replace("expected f64", "expected a number");
    // serde's messages are precise ("unknown field `memry`, expected one of `memory`, ...");
    // strip any path prefix serde_yaml adds because we print our own key path.
    match msg.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') && prefix.contains('.') => rest.to_string(),
        _ => msg,
    }
}

/// All (path, document-with-only-that-leaf) pairs. Sequences and free-form maps (`tags`) are leaves.
fn single_leaf_documents(doc: &Value) -> Vec<(Vec<String>, Value)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        let free_form = path.len() == 1 && path[0] == "tags";
        match v {
            Value::Mapping(m) if !m.is_empty() && !free_form => {
                for (k, child) in m {
                    path.push(key_string(k));
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                let mut single = v.clone();
                for key in path.iter().rev() {
                    let mut m = Mapping::new();
                    m.insert(Value::String(key.clone()), single);
                    single = Value::Mapping(m);
                }
                out.push((path.clone(), single));
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), &mut out);
    out
}

fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Deep merge: mappings merge key by key, anything else (scalars, sequences, `null`) replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn lookup<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in key.split('.') {
        cur = cur.as_mapping()?.get(part)?;
    }
    Some(cur)
}

fn problem(file: &Path, key: &str, message: String) -> ConfigProblem {
    ConfigProblem {
        file: file.to_path_buf(),
        key: key.to_string(),
        message,
        unsafe_setting: false,
    }
}

/// Paths print relative to the working directory when they are under it (`config/prod.yaml`).
fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = p.strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    p.display().to_string()
}

/// Another `aws` environment of the same account, as its own file says (merged over the defaults).
struct OtherEnv {
    env: String,
    file: PathBuf,
    stack: Option<String>,
    protected: bool,
}

/// `4320000` as `4,320,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn is_valid_env_name(env: &str) -> bool {
    !env.is_empty()
        && env.len() <= 32
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && env.starts_with(|c: char| c.is_ascii_lowercase())
}

// ---------------------------------------------------------------------------------------------------
// Validation into the plan.

struct Ctx {
    problems: Vec<ConfigProblem>,
    env_file: PathBuf,
    defaults_file: PathBuf,
    env_doc: Value,
    defaults_doc: Value,
}

impl Ctx {
    /// The file a key's value came from: the environment file if it sets it, else the defaults.
    fn origin(&self, key: &str) -> PathBuf {
        if lookup(&self.env_doc, key).is_some() || lookup(&self.defaults_doc, key).is_none() {
            self.env_file.clone()
        } else {
            self.defaults_file.clone()
        }
    }

    fn invalid(&mut self, key: &str, message: String) {
        let file = self.origin(key);
        self.problems.push(problem(&file, key, message));
    }

    fn refuse(&mut self, key: &str, message: String) {
        let file = self.origin(key);
        let mut p = problem(&file, key, format!("refused: {message}"));
        p.unsafe_setting = true;
        self.problems.push(p);
    }

    fn required<T>(&mut self, key: &str, v: Option<T>, what: &str) -> Option<T> {
        if v.is_none() {
            self.invalid(
                key,
                format!("missing; set {what} here or in {DEFAULTS_FILE}"),
            );
        }
        v
    }

    fn ranged(&mut self, key: &str, v: Option<i64>, min: i64, max: i64, unit: &str) -> Option<u32> {
        let v = self.required(key, v, &format!("a number from {min} to {max}{unit}"))?;
        if v < min || v > max {
            self.invalid(
                key,
                format!("{v} is out of range; allowed: {min} to {max}{unit}"),
            );
            return None;
        }
        Some(v as u32)
    }

    fn one_of<'a>(&mut self, key: &str, v: Option<&str>, allowed: &[&'a str]) -> Option<&'a str> {
        let list = allowed.join(", ");
        let v = self.required(key, v, &format!("one of {list}"))?;
        match allowed.iter().find(|a| **a == v) {
            Some(a) => Some(a),
            None => {
                self.invalid(key, format!("`{v}` is not allowed; allowed values: {list}"));
                None
            }
        }
    }

    fn resolve(
        &mut self,
        env: &str,
        env_file: &Path,
        raw: RawConfig,
        known_envs: &[String],
    ) -> Option<Plan> {
        let app = self.required("app", raw.app, "the application name, e.g. `cqrs`");
        if let Some(app) = &app
            && (!is_valid_env_name(app) || app.len() > 20)
        {
            self.invalid("app", format!("`{app}` is not allowed; use 1-20 lowercase letters, digits and `-`, starting with a letter"));
        }
        let stack_name = self.stack_name(raw.stack_name, app.as_deref(), env);

        let kind = match self.one_of("kind", raw.kind.as_deref(), &["local", "aws"]) {
            Some("local") => Some(EnvKind::Local),
            Some(_) => Some(EnvKind::Aws),
            None => None,
        };
        self.stack_name_is_own(
            stack_name.as_deref(),
            kind,
            raw.account_id.as_deref(),
            env,
            env_file,
            known_envs,
        );
        let protected =
            kind == Some(EnvKind::Aws) && (env == "prod" || raw.protected == Some(true));
        self.protected_account_is_own(
            protected,
            kind,
            raw.account_id.as_deref(),
            env,
            env_file,
            known_envs,
        );

        let region = self.required("region", raw.region, "an AWS region such as `eu-west-1`");
        if let Some(r) = &region
            && !is_region(r)
        {
            self.invalid(
                "region",
                format!("`{r}` is not an AWS region name (like `eu-west-1` or `us-east-1`)"),
            );
        }
        let account_id = raw.account_id;
        self.account(account_id.as_deref(), raw.role_arn.as_deref(), kind);

        let functions = self.functions(
            raw.functions.unwrap_or_default(),
            stack_name.as_deref().unwrap_or(""),
            kind,
        );
        let tables = raw.tables.unwrap_or_default();
        let events_table = self.table(
            "tables.events",
            tables.events.unwrap_or_default(),
            stack_name.as_deref().unwrap_or(""),
            "events",
        );
        let projections_table = self.table(
            "tables.projections",
            tables.projections.unwrap_or_default(),
            stack_name.as_deref().unwrap_or(""),
            "projections",
        );
        // The views table follows the projections table's settings: both hold read models rebuilt from the log.
        let views = crate::plan::domain_views();
        let views_table = projections_table.as_ref().and_then(|p| {
            (!views.is_empty()).then(|| TablePlan {
                table_name: crate::plan::views_table_name(stack_name.as_deref().unwrap_or("")),
                ..p.clone()
            })
        });
        let stream_mapping = self.stream_mapping(raw.stream_mapping.unwrap_or_default());
        let api = self.api(raw.api.unwrap_or_default());
        if kind == Some(EnvKind::Aws)
            && !protected
            && let Some(api) = &api
        {
            self.anonymous_writes_are_capped(env, api);
        }
        self.tags(raw.tags.as_ref());
        let (alarms, alarm_topic_arn) = self.alarms(raw.alarms, raw.alarm_topic_arn, kind);
        let deploy = self.deploy(raw.deploy.unwrap_or_default(), env, known_envs);
        let deployment = self.deployment(raw.deployment.unwrap_or_default(), kind);
        let local = self.local_section(kind, raw.local);

        if protected {
            self.protected_env_rules(env, [&events_table, &projections_table], deploy.as_ref());
        }

        Some(Plan {
            env: env.to_string(),
            config_path: env_file.to_path_buf(),
            app: app?,
            stack_name: stack_name?,
            kind: kind?,
            protected,
            region: region?,
            account_id,
            role_arn: raw.role_arn,
            functions: functions?,
            events_table: events_table?,
            projections_table: projections_table?,
            views,
            views_table,
            stream_mapping: stream_mapping?,
            api: api?,
            tags: raw.tags.unwrap_or_default(),
            alarms,
            alarm_topic_arn,
            deploy: deploy?,
            deployment: deployment?,
            local,
        })
    }

    /// `alarms` and the SNS topic they notify: both or neither, and none locally (the local endpoint has none).
    fn alarms(
        &mut self,
        raw_alarms: Option<bool>,
        alarm_topic_arn: Option<String>,
        kind: Option<EnvKind>,
    ) -> (bool, Option<String>) {
        let alarms = raw_alarms.unwrap_or(false);
        if alarms && kind == Some(EnvKind::Local) {
            self.invalid("alarms", "the local endpoint has no CloudWatch alarms; set `alarms: false` for a local environment".into());
        }
        match (&alarm_topic_arn, alarms) {
        (None, true) if kind == Some(EnvKind::Aws) => self.invalid(
            "alarm_topic_arn",
            "missing; alarms that notify nobody are not alarms: set the ARN of the SNS topic they notify (arn:aws:sns:<region>:<account>:<topic>) or set `alarms: false`".into(),
        ),
        (Some(arn), false) => self.invalid(
            "alarm_topic_arn",
            format!("`{arn}` is set but `alarms` is false; set `alarms: true` or remove the key"),
        ),
        (Some(arn), true) if !is_sns_topic_arn(arn) => self.invalid(
            "alarm_topic_arn",
            format!("`{arn}` is not an SNS topic ARN; expected arn:aws:sns:<region>:<12-digit account>:<topic name>"),
        ),
        _ => {}
    }
        (alarms, alarm_topic_arn)
    }

    /// The `local` section: required by a `kind: local` environment, refused in an `aws` one.
    fn local_section(
        &mut self,
        kind: Option<EnvKind>,
        raw: Option<RawLocal>,
    ) -> Option<LocalSettings> {
        match (kind, raw) {
            (Some(EnvKind::Local), Some(l)) => self.local(l),
            (Some(EnvKind::Local), None) => {
                self.invalid(
                    "local",
                    "missing; a `local` environment needs `gateway_port` and `endpoint_port`"
                        .into(),
                );
                None
            }
            (Some(EnvKind::Aws), Some(_)) => {
                self.invalid(
                    "local",
                    "only a `kind: local` environment may have a `local` section; remove it".into(),
                );
                None
            }
            _ => None,
        }
    }

    /// `stack_name`, or its default `<app>-<env>`, checked against the longest physical name derived from it.
    fn stack_name(
        &mut self,
        stack_name: Option<String>,
        app: Option<&str>,
        env: &str,
    ) -> Option<String> {
        let stack_name = stack_name.or_else(|| app.map(|a| format!("{a}-{env}")));
        if let Some(s) = &stack_name {
            // Physical names are `<stack>-projector-dlq` (SQS: 80 chars) and `<stack>-projector`
            // (Lambda: 64 chars); 40 leaves room for both.
            let ok = s.len() <= 40
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                self.invalid(
                    "stack_name",
                    format!("`{s}` is not allowed; use 1-40 letters, digits and `-`, starting with a letter (default: `<app>-<env>`)"),
                );
            }
        }
        stack_name
    }

    /// In an `aws` environment, refuses a stack name that is a prefix of another environment's in the same account
    /// (or has one as its prefix).
    fn stack_name_is_own(
        &mut self,
        stack_name: Option<&str>,
        kind: Option<EnvKind>,
        account_id: Option<&str>,
        env: &str,
        env_file: &Path,
        known_envs: &[String],
    ) {
        if let (Some(mine), Some(EnvKind::Aws), Some(account)) = (stack_name, kind, account_id) {
            // The deploy role's grants are scoped by name prefix (`table/<stack>-*`, `function:<stack>-*`,
            // `<stack>-*` queues, log groups and alarms) within its account: were one stack name a prefix of
            // another's in the same account, one environment's role would reach the other's resources (and
            // equal names would share the account-wide role names `<stack>-<function>`). Other accounts'
            // environments may reuse a name (a disaster-recovery copy, say).
            for o in self.other_aws_envs(env_file, env, account, known_envs) {
                let (other_env, Some(other)) = (o.env, o.stack) else {
                    continue;
                };
                if mine.starts_with(&other) || other.starts_with(mine) {
                    self.refuse(
                        "stack_name",
                        format!(
                            "`{mine}` and `{other}` (environment `{other_env}`) start alike: the deploy role of one would be granted the other's resources (they are scoped by `<stack_name>-*`); choose stack names neither of which is a prefix of the other"
                        ),
                    );
                }
            }
        }
    }

    /// One AWS account per protected environment: refuses a protected `aws` environment that shares its account
    /// with a non-protected one, from either side.
    fn protected_account_is_own(
        &mut self,
        protected: bool,
        kind: Option<EnvKind>,
        account_id: Option<&str>,
        env: &str,
        env_file: &Path,
        known_envs: &[String],
    ) {
        let (Some(EnvKind::Aws), Some(account)) = (kind, account_id) else {
            return;
        };
        // Some of a deploy role's grants cannot be scoped to its own stack: API Gateway gives HTTP APIs random
        // ids, so the role may change every HTTP API of its region in its account. A non-protected environment's
        // role is assumed on every push without approval; in a protected environment's account it could remove
        // that environment's authorizer or reroute its routes, getting around the protected environment's
        // review. Only a separate account keeps them apart.
        const WHY: &str = "the deploy role of the non-protected one, assumed without approval, may change every HTTP API in its account (API Gateway's random ids cannot be scoped to a stack), so it could remove the protected environment's authorizer or reroute its routes";
        let others = self.other_aws_envs(env_file, env, account, known_envs);
        let named = |o: &OtherEnv| format!("`{}` ({})", o.env, display_path(&o.file));
        let shared: Vec<&OtherEnv> = others.iter().filter(|o| o.protected != protected).collect();
        if shared.is_empty() {
            return;
        }
        let list = shared
            .iter()
            .map(|o| named(o))
            .collect::<Vec<_>>()
            .join(", ");
        let message = if protected {
            format!(
                "`{env}` is a protected environment (named prod or `protected: true`) but its account {account} is shared with the non-protected {list}: {WHY}; give `{env}` an AWS account of its own (one account per protected environment)"
            )
        } else {
            let names = shared
                .iter()
                .map(|o| format!("`{}`", o.env))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "`{env}` shares account {account} with the protected {list}: {WHY}; give {names} an AWS account of its own (one account per protected environment)"
            )
        };
        self.refuse("account_id", message);
    }

    /// At most [`ANONYMOUS_RATE_LIMIT`] requests per second on a non-protected `aws` environment whose write
    /// routes need no token (no `api.jwt`): anyone who finds the URL may call them, each call billed.
    fn anonymous_writes_are_capped(&mut self, env: &str, api: &ApiPlan) {
        let writes: Vec<String> = api
            .routes
            .iter()
            .filter(|r| r.method != HttpMethod::Get)
            .map(|r| format!("{} {}", r.method.as_str(), r.path))
            .collect();
        let rate = api.throttling_rate_limit;
        if api.jwt.is_some() || writes.is_empty() || rate <= ANONYMOUS_RATE_LIMIT {
            return;
        }
        let per_day = |r: f64| thousands((r * 86_400.0).round() as u64);
        self.refuse(
            "api.throttling.rate_limit",
            format!(
                "`{env}` serves {} without authentication (no `api.jwt`), so anyone who finds its URL can append events: {rate} requests/s × 86,400 s = {} billed requests a day (each an API Gateway request, a Lambda invocation and DynamoDB writes); a non-protected environment without `api.jwt` allows at most {ANONYMOUS_RATE_LIMIT} requests/s ({} a day): set `rate_limit` to {ANONYMOUS_RATE_LIMIT} or less, or set `api.jwt` to require a token",
                writes.join(", "),
                per_day(rate),
                per_day(ANONYMOUS_RATE_LIMIT),
            ),
        );
    }

    /// `account_id` (12 digits; required for `aws`) and `role_arn` (an IAM role of that account).
    fn account(&mut self, account_id: Option<&str>, role_arn: Option<&str>, kind: Option<EnvKind>) {
        match (account_id, kind) {
            (Some(a), _) if !(a.len() == 12 && a.chars().all(|c| c.is_ascii_digit())) => {
                self.invalid("account_id", format!("`{a}` is not an AWS account id; use the 12 digits, quoted"))
            }
            (None, Some(EnvKind::Aws)) => self.invalid(
                "account_id",
                "missing; an `aws` environment needs its 12-digit account id (quoted) so a deploy cannot hit the wrong account".into(),
            ),
            _ => {}
        }
        if let Some(role) = role_arn {
            // Any partition's IAM (`arn:aws:`, `arn:aws-cn:`, `arn:aws-us-gov:`): the ARN is the user's, not built here.
            let parsed = role
                .strip_prefix("arn:")
                .and_then(|r| r.split_once(":iam::"))
                .filter(|(partition, _)| ["aws", "aws-cn", "aws-us-gov"].contains(partition))
                .and_then(|(_, r)| r.split_once(":role/"));
            match parsed {
                Some((acct, name)) if !name.is_empty() => {
                    if let Some(a) = account_id
                        && acct != a {
                            self.invalid(
                                "role_arn",
                                format!("the role is in account {acct} but `account_id` is {a}; they must match"),
                            );
                        }
                }
                _ => self.invalid(
                    "role_arn",
                    format!("`{role}` is not an IAM role ARN; expected `arn:<partition>:iam::<account_id>:role/<name>`"),
                ),
            }
        }
    }

    /// A protected environment (named prod or `protected: true`) keeps its data and its review: retained,
    /// deletion-protected tables with point-in-time recovery, and no hotswap.
    fn protected_env_rules(
        &mut self,
        env: &str,
        tables: [&Option<TablePlan>; 2],
        deploy: Option<&DeployPolicy>,
    ) {
        // Losing the event log is unrecoverable: it is the source of truth every read model derives from.
        for (key, t) in ["tables.events", "tables.projections"]
            .into_iter()
            .zip(tables)
        {
            let Some(t) = t else { continue };
            let why =
                format!("`{env}` is a protected environment (named prod or `protected: true`)");
            if !t.retain_on_delete {
                self.refuse(&format!("{key}.retain_on_delete"), format!("{why}: deleting the stack would delete the table's data; set `retain_on_delete: true`"));
            }
            if !t.deletion_protection {
                self.refuse(&format!("{key}.deletion_protection"), format!("{why}: the table could be deleted by hand or by a replacement; set `deletion_protection: true`"));
            }
            if !t.point_in_time_recovery {
                self.refuse(&format!("{key}.point_in_time_recovery"), format!("{why}: without point-in-time recovery a bad write cannot be undone; set `point_in_time_recovery: true`"));
            }
        }
        if let Some(d) = deploy
            && d.hotswap
        {
            self.refuse("deploy.hotswap", format!("`{env}` is a protected environment: hotswap bypasses the change set review; set `hotswap: false`"));
        }
    }

    fn deployment(&mut self, raw: RawDeployment, kind: Option<EnvKind>) -> Option<TrafficShift> {
        let strategy = self.one_of(
            "deployment.strategy",
            Some(raw.strategy.as_deref().unwrap_or("all_at_once")),
            &["all_at_once", "canary", "linear"],
        )?;
        if strategy == "all_at_once" {
            for (key, v) in [
                ("percent", raw.percent),
                ("interval_minutes", raw.interval_minutes),
                ("interval_seconds", raw.interval_seconds),
            ] {
                if v.is_some() {
                    self.invalid(
                        &format!("deployment.{key}"),
                        "only meaningful with `strategy: canary` or `linear`; remove it".into(),
                    );
                }
            }
            return Some(TrafficShift::AllAtOnce);
        }
        let percent = self.ranged(
            "deployment.percent",
            raw.percent,
            1,
            99,
            " (percent of the traffic)",
        );
        let interval_seconds = if kind == Some(EnvKind::Local) {
            self.local_shift_interval(&raw)
        } else {
            self.codedeploy_shift_interval(strategy, &raw, percent)
        };
        let (percent, interval_seconds) = (percent?, interval_seconds?);
        Some(match strategy {
            "canary" => TrafficShift::Canary {
                percent,
                interval_seconds,
            },
            _ => TrafficShift::Linear {
                percent,
                interval_seconds,
            },
        })
    }

    /// A local shift is run by the local engine, which is not bound to CodeDeploy's predefined shifts and may
    /// step in seconds (a canary worth trying by hand, or in a test): `interval_seconds` or `interval_minutes`.
    fn local_shift_interval(&mut self, raw: &RawDeployment) -> Option<u32> {
        match (raw.interval_minutes, raw.interval_seconds) {
            (Some(_), Some(_)) => {
                self.invalid(
                    "deployment.interval_seconds",
                    "set `interval_seconds` or `interval_minutes`, not both".into(),
                );
                None
            }
            (Some(_), None) => self
                .ranged(
                    "deployment.interval_minutes",
                    raw.interval_minutes,
                    1,
                    60,
                    " minutes",
                )
                .map(|m| m * 60),
            (None, _) => self.ranged(
                "deployment.interval_seconds",
                raw.interval_seconds,
                1,
                3600,
                " seconds (or set `interval_minutes`)",
            ),
        }
    }

    /// An AWS shift is CodeDeploy's: whole minutes, one of its predefined Lambda configurations.
    fn codedeploy_shift_interval(
        &mut self,
        strategy: &str,
        raw: &RawDeployment,
        percent: Option<u32>,
    ) -> Option<u32> {
        if raw.interval_seconds.is_some() {
            self.invalid(
                "deployment.interval_seconds",
                "CodeDeploy shifts in whole minutes; set `interval_minutes` instead (seconds are for a local environment)".into(),
            );
            return None;
        }
        let minutes = self.ranged(
            "deployment.interval_minutes",
            raw.interval_minutes,
            1,
            60,
            " minutes",
        )?;
        let percent = percent?;
        if !PREDEFINED_SHIFTS.contains(&(strategy, percent, minutes)) {
            let allowed: Vec<String> = PREDEFINED_SHIFTS
                .iter()
                .filter(|(s, _, _)| *s == strategy)
                .map(|(_, p, m)| format!("percent {p} with interval_minutes {m}"))
                .collect();
            self.invalid(
                "deployment.interval_minutes",
                format!(
                    "{strategy} {percent}% every {minutes} min is not one of CodeDeploy's predefined Lambda shifts; use {}",
                    allowed.join(", or ")
                ),
            );
            return None;
        }
        Some(minutes * 60)
    }

    /// The other `aws` environments of `account` next to `env_file`: their stack names and whether they are
    /// protected, read as their files declare them (or default them: `<app>-<env>`) without validating them; a
    /// file that does not parse is skipped here (its own validation reports it).
    fn other_aws_envs(
        &self,
        env_file: &Path,
        env: &str,
        account: &str,
        known_envs: &[String],
    ) -> Vec<OtherEnv> {
        let dir = env_file.parent().unwrap_or(Path::new("."));
        let mut out = Vec::new();
        for other in known_envs.iter().filter(|e| e.as_str() != env) {
            let file = dir.join(format!("{other}.yaml"));
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let Ok(doc) = serde_yaml::from_str::<Value>(&text) else {
                continue;
            };
            let field = |key: &str| {
                lookup(&doc, key)
                    .or_else(|| lookup(&self.defaults_doc, key))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if field("kind").as_deref() != Some("aws")
                || field("account_id").as_deref() != Some(account)
            {
                continue;
            }
            let stack =
                field("stack_name").or_else(|| field("app").map(|app| format!("{app}-{other}")));
            let protected = other == "prod"
                || lookup(&doc, "protected")
                    .or_else(|| lookup(&self.defaults_doc, "protected"))
                    .and_then(Value::as_bool)
                    == Some(true);
            out.push(OtherEnv {
                env: other.clone(),
                file,
                stack,
                protected,
            });
        }
        out
    }

    fn functions(
        &mut self,
        raw: RawFunctions,
        stack: &str,
        kind: Option<EnvKind>,
    ) -> Option<Vec<FunctionPlan>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (name, f) in [
            (FunctionName::Command, raw.command),
            (FunctionName::Query, raw.query),
            (FunctionName::Projector, raw.projector),
        ] {
            let key = format!("functions.{name}");
            let f = f.unwrap_or_default();
            let memory = self.ranged(&format!("{key}.memory"), f.memory, 128, 10240, " MB");
            let timeout = self.ranged(&format!("{key}.timeout"), f.timeout, 1, 900, " seconds");
            let arch = self.architecture(&key, f.architecture.as_deref(), kind);
            let reserved = match f.reserved_concurrency {
                None => Some(None),
                Some(v) if (1..=1000).contains(&v) => Some(Some(v as u32)),
                Some(v) => {
                    self.invalid(
                        &format!("{key}.reserved_concurrency"),
                        format!("{v} is out of range; allowed: 1 to 1000, or leave it out (0 would disable the function)"),
                    );
                    None
                }
            };
            let level = self.one_of(
                &format!("{key}.log_level"),
                f.log_level.as_deref(),
                &LOG_LEVELS,
            );
            let retention = match f.log_retention_days {
                None => {
                    self.invalid(
                        &format!("{key}.log_retention_days"),
                        format!("missing; set one of {}", retention_list()),
                    );
                    None
                }
                Some(d) if d > 0 && LOG_RETENTION_DAYS.contains(&(d as u32)) => Some(d as u32),
                Some(d) => {
                    self.invalid(
                        &format!("{key}.log_retention_days"),
                        format!(
                            "{d} is not a CloudWatch Logs retention period; allowed values: {}",
                            retention_list()
                        ),
                    );
                    None
                }
            };
            let (
                Some(memory_mb),
                Some(timeout_seconds),
                Some(architecture),
                Some(reserved_concurrency),
                Some(level),
                Some(log_retention_days),
            ) = (memory, timeout, arch, reserved, level, retention)
            else {
                ok = false;
                continue;
            };
            let mut environment = BTreeMap::new();
            environment.insert("EVENTS_TABLE".to_string(), format!("{stack}-events"));
            if name != FunctionName::Command {
                environment.insert(
                    "PROJECTIONS_TABLE".to_string(),
                    format!("{stack}-projections"),
                );
                if !crate::plan::domain_views().is_empty() {
                    environment.insert(
                        "VIEWS_TABLE".to_string(),
                        crate::plan::views_table_name(stack),
                    );
                }
            }
            environment.insert("RUST_LOG".to_string(), level.to_string());
            out.push(FunctionPlan {
                name,
                function_name: format!("{stack}-{name}"),
                memory_mb,
                timeout_seconds,
                architecture,
                reserved_concurrency,
                log_level: level.to_string(),
                log_retention_days,
                environment,
            });
        }
        ok.then_some(out)
    }

    /// `functions.<f>.architecture`. Unset, it is `arm64` (Graviton) in an `aws` environment: about 20% cheaper
    /// per GB-second than x86_64 at the same memory size. A `local` environment runs the functions on this
    /// machine, so its architecture is the machine's, and any other is refused.
    fn architecture(
        &mut self,
        key: &str,
        set: Option<&str>,
        kind: Option<EnvKind>,
    ) -> Option<Architecture> {
        let host = host_architecture();
        let default = match kind {
            Some(EnvKind::Local) => host.as_lambda(),
            _ => Architecture::Arm64.as_lambda(),
        };
        let key = format!("{key}.architecture");
        let arch = match self.one_of(&key, Some(set.unwrap_or(default)), &["x86_64", "arm64"])? {
            "x86_64" => Architecture::X86_64,
            _ => Architecture::Arm64,
        };
        if kind == Some(EnvKind::Local) && arch != host {
            self.invalid(
                &key,
                format!(
                    "`{}`: a local environment runs the functions on this machine, which is {}; remove the key (it defaults to the machine's) or set `{}`",
                    arch.as_lambda(),
                    host.as_lambda(),
                    host.as_lambda()
                ),
            );
            return None;
        }
        Some(arch)
    }

    fn table(&mut self, key: &str, raw: RawTable, stack: &str, suffix: &str) -> Option<TablePlan> {
        let billing = match self.one_of(
            &format!("{key}.billing_mode"),
            raw.billing_mode.as_deref(),
            &["PAY_PER_REQUEST", "PROVISIONED"],
        ) {
            Some("PAY_PER_REQUEST") => Some(BillingMode::PayPerRequest),
            Some(_) => {
                self.invalid(
                    &format!("{key}.billing_mode"),
                    "PROVISIONED needs capacity settings this schema does not carry yet; allowed values: PAY_PER_REQUEST".into(),
                );
                None
            }
            None => None,
        };
        let pitr = self.required(
            &format!("{key}.point_in_time_recovery"),
            raw.point_in_time_recovery,
            "true or false",
        );
        let dp = self.required(
            &format!("{key}.deletion_protection"),
            raw.deletion_protection,
            "true or false",
        );
        let retain = self.required(
            &format!("{key}.retain_on_delete"),
            raw.retain_on_delete,
            "true or false",
        );
        Some(TablePlan {
            table_name: format!("{stack}-{suffix}"),
            billing_mode: billing?,
            point_in_time_recovery: pitr?,
            deletion_protection: dp?,
            retain_on_delete: retain?,
        })
    }

    fn stream_mapping(&mut self, raw: RawStreamMapping) -> Option<StreamMapping> {
        let k = "stream_mapping";
        let batch = self.ranged(&format!("{k}.batch_size"), raw.batch_size, 1, 10000, "");
        let window = self.ranged(
            &format!("{k}.maximum_batching_window_seconds"),
            raw.maximum_batching_window_seconds,
            0,
            300,
            " seconds",
        );
        let retries = match raw.maximum_retry_attempts {
            Some(v) if v < 0 => {
                self.refuse(
                    &format!("{k}.maximum_retry_attempts"),
                    format!("{v} means unbounded retries: one poison record would block its shard until it expires (up to a day); allowed: 0 to 10000"),
                );
                None
            }
            v => self.ranged(&format!("{k}.maximum_retry_attempts"), v, 0, 10000, ""),
        };
        let age = match raw.maximum_record_age_seconds {
            Some(v) if v < 0 => {
                self.refuse(
                    &format!("{k}.maximum_record_age_seconds"),
                    format!("{v} means unbounded record age: a failing record would block its shard for the stream's whole retention (a day); allowed: 60 to 604800 seconds"),
                );
                None
            }
            v => self.ranged(
                &format!("{k}.maximum_record_age_seconds"),
                v,
                60,
                604800,
                " seconds",
            ),
        };
        let bisect = self.required(
            &format!("{k}.bisect_batch_on_function_error"),
            raw.bisect_batch_on_function_error,
            "true or false",
        );
        let pf = match raw.parallelization_factor {
            Some(v) if v > 1 => {
                self.refuse(
                    &format!("{k}.parallelization_factor"),
                    format!("{v} would process one shard's records concurrently and break per-aggregate event order in the read models; allowed: 1"),
                );
                None
            }
            v => self.ranged(&format!("{k}.parallelization_factor"), v, 1, 1, ""),
        };
        let start = match self.one_of(
            &format!("{k}.starting_position"),
            raw.starting_position.as_deref(),
            &["TRIM_HORIZON", "LATEST"],
        ) {
            Some("TRIM_HORIZON") => Some(StartingPosition::TrimHorizon),
            Some(_) => Some(StartingPosition::Latest),
            None => None,
        };
        Some(StreamMapping {
            filter_patterns: vec![crate::plan::EVENTS_ONLY_FILTER.to_string()],
            batch_size: batch?,
            maximum_batching_window_seconds: window?,
            maximum_retry_attempts: retries?,
            maximum_record_age_seconds: age?,
            bisect_batch_on_function_error: bisect?,
            parallelization_factor: pf?,
            starting_position: start?,
        })
    }

    fn api(&mut self, raw: RawApi) -> Option<ApiPlan> {
        let origins = raw.cors_origins.unwrap_or_default();
        let mut ok = true;
        for (i, o) in origins.iter().enumerate() {
            let good = o == "*"
                || ((o.starts_with("https://") || o.starts_with("http://"))
                    && !o.ends_with('/')
                    && o.split("://")
                        .nth(1)
                        .is_some_and(|h| !h.is_empty() && !h.contains('/')));
            if !good {
                ok = false;
                self.invalid(
                    &format!("api.cors_origins.{i}"),
                    format!("`{o}` is not an origin; use `https://host[:port]` without a path or trailing slash, or `*`"),
                );
            }
        }
        // API Gateway's `CorsConfiguration.MaxAge` accepts 0 to 86400 seconds.
        let max_age = match raw.cors_max_age_seconds {
            None => Some(None),
            Some(v) => self
                .ranged("api.cors_max_age_seconds", Some(v), 0, 86400, " seconds")
                .map(Some),
        };
        if max_age.is_none() {
            ok = false;
        }
        if origins.is_empty() && matches!(max_age, Some(Some(_))) {
            ok = false;
            self.invalid(
                "api.cors_max_age_seconds",
                "is set but api.cors_origins is empty, so there is no CORS configuration to apply it to; list the allowed origins or remove the key".into(),
            );
        }
        let throttling = raw.throttling.unwrap_or_default();
        let burst = self.ranged(
            "api.throttling.burst_limit",
            throttling.burst_limit,
            0,
            5000,
            " requests",
        );
        let rate = match self.required(
            "api.throttling.rate_limit",
            throttling.rate_limit,
            "requests per second, from 0 to 10000",
        ) {
            Some(r) if (0.0..=10000.0).contains(&r) => Some(r),
            Some(r) => {
                self.invalid(
                    "api.throttling.rate_limit",
                    format!("{r} is out of range; allowed: 0 to 10000 requests per second"),
                );
                None
            }
            None => None,
        };
        let jwt = self.jwt(raw.jwt);
        let stage = raw.stage_name.unwrap_or_else(|| "$default".to_string());
        let stage_ok = stage == "$default"
            || ((1..=64).contains(&stage.len())
                && stage
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        if !stage_ok {
            self.invalid(
                "api.stage_name",
                format!(
                    "`{stage}` is not allowed; use `$default` or 1-64 letters, digits, `_` and `-`"
                ),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        let routes = default_routes();
        let cors = (!origins.is_empty()).then(|| {
            let mut methods: Vec<String> = routes
                .iter()
                .map(|r| r.method.as_str().to_string())
                .collect();
            methods.sort();
            methods.dedup();
            CorsPlan {
                allow_origins: origins,
                allow_methods: methods,
                allow_headers: CORS_ALLOW_HEADERS.iter().map(|h| h.to_string()).collect(),
                max_age_seconds: max_age.flatten(),
            }
        });
        Some(ApiPlan {
            routes,
            cors,
            throttling_burst_limit: burst?,
            throttling_rate_limit: rate?,
            jwt: jwt?,
            stage_name: stage,
        })
    }

    /// `api.jwt`: an https issuer and at least one audience. `Some(None)` when there is none, `None` when it is
    /// wrong (the errors are recorded).
    fn jwt(&mut self, raw: Option<RawJwt>) -> Option<Option<JwtAuthorizer>> {
        match raw {
            None => Some(None),
            Some(j) => {
                let issuer = self.required(
                    "api.jwt.issuer",
                    j.issuer,
                    "the token issuer URL (https://...)",
                );
                let audience = self.required(
                    "api.jwt.audience",
                    j.audience,
                    "a list of accepted audiences",
                );
                if let Some(i) = &issuer
                    && !i.starts_with("https://")
                {
                    self.invalid(
                        "api.jwt.issuer",
                        format!(
                            "`{i}` is not an https URL; API Gateway only accepts https issuers"
                        ),
                    );
                }
                if let Some(a) = &audience
                    && (a.is_empty() || a.iter().any(|s| s.is_empty()))
                {
                    self.invalid(
                        "api.jwt.audience",
                        "must list at least one non-empty audience".into(),
                    );
                }
                match (issuer, audience) {
                    (Some(issuer), Some(audience)) => {
                        Some(Some(JwtAuthorizer { issuer, audience }))
                    }
                    _ => None,
                }
            }
        }
    }

    fn tags(&mut self, tags: Option<&BTreeMap<String, String>>) {
        for (k, v) in tags.into_iter().flatten() {
            let key = format!("tags.{k}");
            if k.is_empty() || k.len() > 128 || k.to_ascii_lowercase().starts_with("aws:") {
                self.invalid(
                    &key,
                    "tag keys must be 1-128 characters and must not start with `aws:`".into(),
                );
            }
            if v.len() > 256 {
                self.invalid(&key, "tag values must be at most 256 characters".into());
            }
        }
    }

    fn deploy(&mut self, raw: RawDeploy, env: &str, known: &[String]) -> Option<DeployPolicy> {
        if let Some(from) = &raw.promote_from {
            if from == env {
                self.invalid(
                    "deploy.promote_from",
                    "an environment cannot promote from itself".into(),
                );
            } else if !known.iter().any(|k| k == from) {
                self.invalid(
                    "deploy.promote_from",
                    format!(
                        "`{from}` is not an environment; known environments: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        let require_smoke = raw.require_smoke.unwrap_or(false);
        if require_smoke && raw.promote_from.is_none() {
            self.invalid(
                "deploy.require_smoke",
                "only meaningful with `promote_from`: the smoke test is the source environment's"
                    .into(),
            );
        }
        Some(DeployPolicy {
            promote_from: raw.promote_from,
            hotswap: raw.hotswap.unwrap_or(false),
            require_smoke,
        })
    }

    fn local(&mut self, raw: RawLocal) -> Option<LocalSettings> {
        let g = self.ranged("local.gateway_port", raw.gateway_port, 1024, 65535, "");
        let e = self.ranged("local.endpoint_port", raw.endpoint_port, 1024, 65535, "");
        if let (Some(g), Some(e)) = (g, e)
            && g == e
        {
            self.invalid(
                "local.endpoint_port",
                format!("{e} is also the gateway port; the two servers need different ports"),
            );
            return None;
        }
        // The inspector's port is optional: without it the engine picks a free one and records its URL in the
        // state directory, where `cargo xtask inspect` reads it.
        let i = match raw.inspector_port {
            None => None,
            Some(_) => {
                Some(self.ranged("local.inspector_port", raw.inspector_port, 1024, 65535, "")?)
            }
        };
        if let Some(i) = i
            && (Some(i) == g || Some(i) == e)
        {
            self.invalid(
                "local.inspector_port",
                format!("{i} is also the gateway's or the endpoint's port; each server needs its own port"),
            );
            return None;
        }
        Some(LocalSettings {
            gateway_port: g? as u16,
            endpoint_port: e? as u16,
            inspector_port: i.map(|i| i as u16),
        })
    }
}

fn retention_list() -> String {
    LOG_RETENTION_DAYS
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_region(r: &str) -> bool {
    // e.g. us-east-1, eu-west-1, ap-southeast-2, us-gov-west-1
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// `arn:<partition>:sns:<region>:<12 digits>:<name>`.
fn is_sns_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    matches!(parts.as_slice(), ["arn", partition, "sns", region, account, name]
        if partition.starts_with("aws")
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
}

/// The architecture of the machine the tool runs on (what a `local` environment's functions run as).
pub fn host_architecture() -> Architecture {
    if cfg!(target_arch = "aarch64") {
        Architecture::Arm64
    } else {
        Architecture::X86_64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overrides_scalars_and_merges_maps() {
        let mut base: Value = serde_yaml::from_str("a: {b: 1, c: 2}\nd: [1]\ne: 5").unwrap();
        let over: Value = serde_yaml::from_str("a: {b: 3}\nd: [2]\ne: null").unwrap();
        merge(&mut base, over);
        let want: Value = serde_yaml::from_str("a: {b: 3, c: 2}\nd: [2]\ne: null").unwrap();
        assert_eq!(base, want);
    }

    #[test]
    fn leaf_check_reports_every_unknown_key_with_its_path() {
        let doc: Value = serde_yaml::from_str(
            "functions:\n  command:\n    memry: 1\n    timeout: x\nbogus: 1\ntags: {a: b}",
        )
        .unwrap();
        let mut problems = Vec::new();
        check_schema(Path::new("x.yaml"), &doc, &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "functions.command.memry",
                "functions.command.timeout",
                "bogus"
            ],
            "{problems:#?}"
        );
    }

    #[test]
    fn regions() {
        assert!(is_region("eu-west-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("europe"));
        assert!(!is_region("eu-west-"));
    }
}
