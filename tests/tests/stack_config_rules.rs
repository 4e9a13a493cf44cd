//! One failing config per validation rule of `stack::config`: each test writes a small environment file
//! next to the repository's `config/defaults.yaml` in a temporary directory and asserts the error names the
//! file, the key path, what is wrong and (for unsafe settings) the reason.

use std::path::{Path, PathBuf};

use stack::config::{self, ConfigError};

fn repo_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// A temporary config dir with the repository's defaults and the given environment files.
fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_config().join("defaults.yaml"),
        dir.path().join("defaults.yaml"),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
    }
    dir
}

const AWS: &str = "kind: aws\naccount_id: \"111111111111\"\nregion: eu-west-1\n";
const LOCAL: &str =
    "kind: local\nregion: us-east-1\nlocal:\n  gateway_port: 3030\n  endpoint_port: 5050\n";
const SAFE_TABLES: &str = "tables:
  events: {point_in_time_recovery: true, deletion_protection: true, retain_on_delete: true}
  projections: {point_in_time_recovery: true, deletion_protection: true, retain_on_delete: true}
";

/// Loads `env` from a dir holding `env.yaml` = `text`; returns the error.
fn load_err(env: &str, text: &str) -> (tempfile::TempDir, ConfigError) {
    let dir = config_dir(&[(env, text)]);
    let err = config::load(dir.path(), env).expect_err("the config must be refused");
    (dir, err)
}

/// Asserts some problem is on `key` in file `file` and its message contains every `needle`.
#[track_caller]
fn assert_problem(dir: &Path, err: &ConfigError, file: &str, key: &str, needles: &[&str]) {
    let found = err.problems.iter().find(|p| p.key == key);
    let p = found.unwrap_or_else(|| panic!("no problem on `{key}`; got:\n{err}"));
    assert_eq!(p.file, dir.join(file), "{err}");
    for n in needles {
        assert!(
            p.message.contains(n),
            "`{key}` message lacks {n:?}: {}",
            p.message
        );
    }
    let line = p.to_string();
    assert!(
        line.contains(&format!("{file}: {key}: ")),
        "display names file and key: {line}"
    );
}

#[test]
fn a_valid_minimal_environment_loads_with_the_shared_defaults() {
    let dir = config_dir(&[("dev", AWS)]);
    let plan = config::load(dir.path(), "dev").unwrap();
    assert_eq!(plan.stack_name, "cqrs-dev");
    assert_eq!(plan.function(stack::FunctionName::Command).memory_mb, 256);
    assert_eq!(plan.stream_mapping.maximum_retry_attempts, 5);
}

#[test]
fn environments_are_the_yaml_stems_without_defaults() {
    let dir = config_dir(&[("b", AWS), ("a", LOCAL)]);
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    assert_eq!(config::environments(dir.path()).unwrap(), ["a", "b"]);
    assert_eq!(
        config::environments(&repo_config()).unwrap(),
        ["dev", "local", "prod", "staging"]
    );
}

#[test]
fn unknown_environment_lists_the_known_ones() {
    let dir = config_dir(&[("dev", AWS)]);
    let err = config::load(dir.path(), "qa").unwrap_err();
    assert!(
        err.to_string()
            .contains("no such environment `qa`; known environments: dev"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_path_and_the_allowed_keys() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}functions:\n  command:\n    memry: 512\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.command.memry",
        &["unknown field `memry`", "`memory`"],
    );
}

#[test]
fn every_schema_error_is_reported_not_just_the_first() {
    let (dir, err) = load_err(
        "dev",
        &format!(
            "{AWS}functions:\n  command:\n    memry: 512\n  reporter: {{}}\nstream_mapping:\n  batch_size: lots\nbogus: true\n"
        ),
    );
    for key in [
        "functions.command.memry",
        "functions.reporter",
        "stream_mapping.batch_size",
        "bogus",
    ] {
        assert!(
            err.problems.iter().any(|p| p.key == key),
            "missing {key}:\n{err}"
        );
    }
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.batch_size",
        &["invalid type", "expected a whole number"],
    );
    assert_eq!(err.problems.len(), 4, "{err}");
}

#[test]
fn every_value_error_is_reported_not_just_the_first() {
    let (_dir, err) = load_err(
        "dev",
        &format!(
            "{AWS}functions:\n  command: {{memory: 64}}\n  query: {{timeout: 0}}\nstream_mapping: {{parallelization_factor: 4, maximum_retry_attempts: -1}}\n"
        ),
    );
    assert_eq!(err.problems.len(), 4, "{err}");
    assert!(err.has_unsafe_setting());
}

#[test]
fn schema_errors_do_not_hide_value_errors() {
    let (dir, err) = load_err(
        "dev",
        &format!(
            "{AWS}functions:\n  command:\n    memry: 512\n    memory: 64\nstream_mapping:\n  parallelization_factor: 2\n"
        ),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.command.memry",
        &["unknown field"],
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.command.memory",
        &["128 to 10240"],
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.parallelization_factor",
        &["refused"],
    );
    assert_eq!(err.problems.len(), 3, "{err}");
}

#[test]
fn a_bad_default_is_blamed_on_the_defaults_file() {
    let dir = config_dir(&[("dev", AWS)]);
    let defaults = std::fs::read_to_string(dir.path().join("defaults.yaml")).unwrap();
    std::fs::write(
        dir.path().join("defaults.yaml"),
        defaults.replace("memory: 256", "memory: 99999"),
    )
    .unwrap();
    let err = config::load(dir.path(), "dev").unwrap_err();
    assert_problem(
        dir.path(),
        &err,
        "defaults.yaml",
        "functions.command.memory",
        &["99999", "128 to 10240"],
    );
}

#[test]
fn a_missing_required_key_says_where_to_set_it() {
    let dir = config_dir(&[("dev", AWS)]);
    let defaults = std::fs::read_to_string(dir.path().join("defaults.yaml")).unwrap();
    std::fs::write(
        dir.path().join("defaults.yaml"),
        defaults.replacen("    memory: 256\n", "", 1),
    )
    .unwrap();
    let err = config::load(dir.path(), "dev").unwrap_err();
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.command.memory",
        &["missing", "128 to 10240"],
    );
}

#[test]
fn invalid_yaml_is_reported_with_the_file() {
    let (dir, err) = load_err("dev", "kind: [aws\n");
    assert_eq!(err.problems[0].file, dir.path().join("dev.yaml"));
    assert!(err.problems[0].message.contains("not valid YAML"), "{err}");
}

#[test]
fn wrong_types_are_refused() {
    let (dir, err) = load_err(
        "dev",
        "kind: aws\naccount_id: 111111111111\nregion: eu-west-1\n",
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "account_id",
        &["invalid type"],
    );
}

#[test]
fn function_memory_out_of_range() {
    let (dir, err) = load_err(
        "prod",
        &format!("{AWS}{SAFE_TABLES}functions:\n  command:\n    memory: 64\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "prod.yaml",
        "functions.command.memory",
        &["64 is out of range", "128 to 10240 MB"],
    );
}

#[test]
fn function_timeout_out_of_range() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}functions:\n  projector:\n    timeout: 901\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.projector.timeout",
        &["1 to 900 seconds"],
    );
}

#[test]
fn function_architecture_must_be_known() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}functions:\n  query:\n    architecture: riscv\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.query.architecture",
        &["`riscv`", "x86_64, arm64"],
    );
}

#[test]
fn function_reserved_concurrency_zero_is_refused() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}functions:\n  query:\n    reserved_concurrency: 0\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.query.reserved_concurrency",
        &["1 to 1000"],
    );
}

#[test]
fn function_log_level_must_be_known() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}functions:\n  query:\n    log_level: verbose\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.query.log_level",
        &["error, warn, info, debug, trace"],
    );
}

#[test]
fn function_log_retention_must_be_a_cloudwatch_period() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}functions:\n  query:\n    log_retention_days: 10\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "functions.query.log_retention_days",
        &["10 is not", "7, 14, 30"],
    );
}

#[test]
fn null_clears_a_default() {
    let dir = config_dir(&[(
        "dev",
        &format!("{AWS}functions:\n  query:\n    reserved_concurrency: 5\n"),
    )]);
    assert_eq!(
        config::load(dir.path(), "dev")
            .unwrap()
            .function(stack::FunctionName::Query)
            .reserved_concurrency,
        Some(5)
    );
    let dir = config_dir(&[("dev", &format!("{AWS}api:\n  cors_origins: null\n"))]);
    assert!(config::load(dir.path(), "dev").unwrap().api.cors.is_none());
}

#[test]
fn table_billing_mode_must_be_pay_per_request() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}tables:\n  events:\n    billing_mode: PROVISIONED\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "tables.events.billing_mode",
        &["PAY_PER_REQUEST"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}tables:\n  events:\n    billing_mode: FREE\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "tables.events.billing_mode",
        &["`FREE`", "PAY_PER_REQUEST, PROVISIONED"],
    );
}

#[test]
fn stream_batch_size_out_of_range() {
    let (dir, err) = load_err("dev", &format!("{AWS}stream_mapping:\n  batch_size: 0\n"));
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.batch_size",
        &["1 to 10000"],
    );
}

#[test]
fn stream_batching_window_out_of_range() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  maximum_batching_window_seconds: 301\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.maximum_batching_window_seconds",
        &["0 to 300"],
    );
}

#[test]
fn unbounded_retries_are_refused_with_the_reason() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  maximum_retry_attempts: -1\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.maximum_retry_attempts",
        &["refused", "unbounded", "poison record", "0 to 10000"],
    );
    assert!(err.has_unsafe_setting());
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  maximum_retry_attempts: 10001\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.maximum_retry_attempts",
        &["0 to 10000"],
    );
}

#[test]
fn unbounded_record_age_is_refused_with_the_reason() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  maximum_record_age_seconds: -1\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.maximum_record_age_seconds",
        &["refused", "unbounded", "60 to 604800"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  maximum_record_age_seconds: 30\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.maximum_record_age_seconds",
        &["60 to 604800"],
    );
}

#[test]
fn parallelization_above_one_is_refused_with_the_reason() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  parallelization_factor: 2\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.parallelization_factor",
        &["refused", "per-aggregate", "allowed: 1"],
    );
    assert!(err.has_unsafe_setting());
}

#[test]
fn stream_starting_position_must_be_known() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}stream_mapping:\n  starting_position: AT_TIMESTAMP\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "stream_mapping.starting_position",
        &["TRIM_HORIZON, LATEST"],
    );
}

#[test]
fn cors_origins_must_be_origins() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}api:\n  cors_origins: [\"https://ok.example.com\", \"example.com/path\"]\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.cors_origins.1",
        &["not an origin"],
    );
}

#[test]
fn cors_max_age_is_bounded_and_needs_origins() {
    let (dir, err) = load_err(
        "dev",
        &format!(
            "{AWS}api:\n  cors_origins: [\"https://ok.example.com\"]\n  cors_max_age_seconds: 90000\n"
        ),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.cors_max_age_seconds",
        &["out of range", "0 to 86400"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}api:\n  cors_origins: []\n  cors_max_age_seconds: 60\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.cors_max_age_seconds",
        &["api.cors_origins is empty"],
    );
}

#[test]
fn throttling_out_of_range() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}api:\n  throttling:\n    burst_limit: 9000\n    rate_limit: -1\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.throttling.burst_limit",
        &["0 to 5000"],
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.throttling.rate_limit",
        &["0 to 10000"],
    );
}

#[test]
fn jwt_needs_an_https_issuer_and_an_audience() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}api:\n  jwt:\n    issuer: http://auth.example.com\n    audience: []\n"),
    );
    assert_problem(dir.path(), &err, "dev.yaml", "api.jwt.issuer", &["https"]);
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.jwt.audience",
        &["at least one"],
    );
    let (dir, err) = load_err("dev", &format!("{AWS}api:\n  jwt:\n    audience: [x]\n"));
    assert_problem(dir.path(), &err, "dev.yaml", "api.jwt.issuer", &["missing"]);
}

#[test]
fn stage_name_must_be_a_stage_name() {
    let (dir, err) = load_err("dev", &format!("{AWS}api:\n  stage_name: \"v 1\"\n"));
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.stage_name",
        &["$default"],
    );
}

#[test]
fn tags_must_not_use_the_aws_prefix() {
    let (dir, err) = load_err("dev", &format!("{AWS}tags:\n  \"aws:owner\": me\n"));
    assert_problem(dir.path(), &err, "dev.yaml", "tags.aws:owner", &["aws:"]);
}

#[test]
fn kind_must_be_local_or_aws() {
    let (dir, err) = load_err("dev", "kind: gcp\nregion: eu-west-1\n");
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "kind",
        &["`gcp`", "local, aws"],
    );
}

#[test]
fn aws_environments_need_a_valid_account_id() {
    let (dir, err) = load_err("dev", "kind: aws\nregion: eu-west-1\n");
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "account_id",
        &["missing", "12-digit"],
    );
    let (dir, err) = load_err(
        "dev",
        "kind: aws\nregion: eu-west-1\naccount_id: \"1234\"\n",
    );
    assert_problem(dir.path(), &err, "dev.yaml", "account_id", &["12 digits"]);
}

#[test]
fn region_must_be_a_region() {
    let (dir, err) = load_err(
        "dev",
        "kind: aws\naccount_id: \"111111111111\"\nregion: europe\n",
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "region",
        &["`europe`", "eu-west-1"],
    );
}

#[test]
fn role_arn_must_be_a_role_in_the_account() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}role_arn: arn:aws:iam::222222222222:role/deploy\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "role_arn",
        &["222222222222", "must match"],
    );
    let (dir, err) = load_err("dev", &format!("{AWS}role_arn: deploy-role\n"));
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "role_arn",
        &["arn:<partition>:iam::<account_id>:role/<name>"],
    );
    // Any partition's IAM is a role ARN (China, GovCloud); the account rule still holds.
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}role_arn: arn:aws-cn:iam::222222222222:role/deploy\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "role_arn",
        &["222222222222", "must match"],
    );
}

#[test]
fn app_and_stack_names_must_fit_physical_names() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}app: My_App\nstack_name: {}\n", "x".repeat(41)),
    );
    assert_problem(dir.path(), &err, "dev.yaml", "app", &["lowercase"]);
    assert_problem(dir.path(), &err, "dev.yaml", "stack_name", &["1-40"]);
}

#[test]
fn local_environments_have_no_alarms() {
    let (dir, err) = load_err("local", &format!("{LOCAL}alarms: true\n"));
    assert_problem(dir.path(), &err, "local.yaml", "alarms", &["alarms: false"]);
}

#[test]
fn alarms_need_a_topic_to_notify() {
    let (dir, err) = load_err("dev", &format!("{AWS}alarms: true\n"));
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "alarm_topic_arn",
        &["missing", "SNS topic"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}alarms: true\nalarm_topic_arn: arn:aws:sqs:eu-west-1:111111111111:q\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "alarm_topic_arn",
        &["not an SNS topic ARN"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}alarm_topic_arn: arn:aws:sns:eu-west-1:111111111111:t\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "alarm_topic_arn",
        &["`alarms` is false"],
    );
}

#[test]
fn local_section_belongs_to_local_environments_only() {
    let (dir, err) = load_err("local", "kind: local\nregion: us-east-1\n");
    assert_problem(dir.path(), &err, "local.yaml", "local", &["gateway_port"]);
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}local:\n  gateway_port: 3030\n  endpoint_port: 5050\n"),
    );
    assert_problem(dir.path(), &err, "dev.yaml", "local", &["kind: local"]);
    let (dir, err) = load_err(
        "local",
        "kind: local\nregion: us-east-1\nlocal:\n  gateway_port: 3030\n  endpoint_port: 3030\n",
    );
    assert_problem(
        dir.path(),
        &err,
        "local.yaml",
        "local.endpoint_port",
        &["different ports"],
    );
    let (dir, err) = load_err(
        "local",
        "kind: local\nregion: us-east-1\nlocal:\n  gateway_port: 80\n  endpoint_port: 5050\n",
    );
    assert_problem(
        dir.path(),
        &err,
        "local.yaml",
        "local.gateway_port",
        &["1024 to 65535"],
    );
    // The inspector's port is optional (a free one), and when set it needs a port of its own.
    let dir = config_dir(&[("local", LOCAL)]);
    let plan = config::load(dir.path(), "local").unwrap();
    assert_eq!(plan.local.unwrap().inspector_port, None);
    let dir = config_dir(&[("local", &format!("{LOCAL}  inspector_port: 3031\n"))]);
    let plan = config::load(dir.path(), "local").unwrap();
    assert_eq!(plan.local.unwrap().inspector_port, Some(3031));
    let (dir, err) = load_err("local", &format!("{LOCAL}  inspector_port: 3030\n"));
    assert_problem(
        dir.path(),
        &err,
        "local.yaml",
        "local.inspector_port",
        &["its own port"],
    );
    let (dir, err) = load_err("local", &format!("{LOCAL}  inspector_port: 99\n"));
    assert_problem(
        dir.path(),
        &err,
        "local.yaml",
        "local.inspector_port",
        &["1024 to 65535"],
    );
}

#[test]
fn promote_from_must_name_another_environment() {
    let (dir, err) = load_err("staging", &format!("{AWS}deploy:\n  promote_from: qa\n"));
    assert_problem(
        dir.path(),
        &err,
        "staging.yaml",
        "deploy.promote_from",
        &["`qa`", "known environments: staging"],
    );
    let (dir, err) = load_err(
        "staging",
        &format!("{AWS}deploy:\n  promote_from: staging\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "staging.yaml",
        "deploy.promote_from",
        &["itself"],
    );
}

#[test]
fn require_smoke_needs_a_source_environment() {
    let (dir, err) = load_err("staging", &format!("{AWS}deploy:\n  require_smoke: true\n"));
    assert_problem(
        dir.path(),
        &err,
        "staging.yaml",
        "deploy.require_smoke",
        &["promote_from"],
    );
}

#[test]
fn prod_without_data_retention_is_refused_with_the_reason() {
    let (dir, err) = load_err("prod", AWS);
    for table in ["events", "projections"] {
        assert_problem(
            dir.path(),
            &err,
            "defaults.yaml",
            &format!("tables.{table}.retain_on_delete"),
            &["refused", "protected", "retain_on_delete: true"],
        );
        assert_problem(
            dir.path(),
            &err,
            "defaults.yaml",
            &format!("tables.{table}.deletion_protection"),
            &["refused", "deletion_protection: true"],
        );
        assert_problem(
            dir.path(),
            &err,
            "defaults.yaml",
            &format!("tables.{table}.point_in_time_recovery"),
            &["refused", "point_in_time_recovery: true"],
        );
    }
    assert!(err.has_unsafe_setting());
    // With retention set it loads.
    let dir = config_dir(&[("prod", &format!("{AWS}{SAFE_TABLES}"))]);
    config::load(dir.path(), "prod").unwrap();
}

#[test]
fn an_environment_marked_protected_is_held_to_prod_rules() {
    let (dir, err) = load_err("live", &format!("{AWS}protected: true\n"));
    assert_problem(
        dir.path(),
        &err,
        "defaults.yaml",
        "tables.events.retain_on_delete",
        &["refused"],
    );
    // A local environment named prod is not protected: it holds no real data.
    let dir = config_dir(&[("prod", LOCAL)]);
    config::load(dir.path(), "prod").unwrap();
}

#[test]
fn hotswap_on_a_protected_environment_is_refused() {
    let (dir, err) = load_err(
        "prod",
        &format!("{AWS}{SAFE_TABLES}deploy:\n  hotswap: true\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "prod.yaml",
        "deploy.hotswap",
        &["refused", "change set"],
    );
}

#[test]
fn environment_names_are_checked() {
    let dir = config_dir(&[]);
    let err = config::load(dir.path(), "../etc").unwrap_err();
    assert!(
        err.to_string().contains("not a valid environment name"),
        "{err}"
    );
}

/// The deploy roles' grants are scoped by `<stack_name>-*` within an account: were `cqrs-dev` and `cqrs-dev-2`
/// both `aws` environments of one account, dev's role would reach the other's tables and functions. A local
/// stack, or one in another account, is not affected.
#[test]
fn aws_stack_names_that_are_prefixes_of_one_another_are_refused() {
    let dev = format!("{AWS}stack_name: cqrs-dev\n");
    let dev2 = format!("{AWS}stack_name: cqrs-dev-2\n");
    let dir = config_dir(&[("dev", &dev), ("dev2", &dev2), ("local", LOCAL)]);
    for (env, file) in [("dev", "dev.yaml"), ("dev2", "dev2.yaml")] {
        let err = config::load(dir.path(), env).expect_err("prefix stack names are refused");
        assert!(err.has_unsafe_setting(), "{err}");
        assert_problem(
            dir.path(),
            &err,
            file,
            "stack_name",
            &["`cqrs-dev", "start alike", "neither of which is a prefix"],
        );
    }
    // Names that only share a beginning are fine, and a local environment never counts.
    let dir = config_dir(&[
        ("dev", &dev),
        ("qa", &format!("{AWS}stack_name: cqrs-qa\n")),
        ("local", &format!("{LOCAL}stack_name: cqrs-dev-local\n")),
    ]);
    config::load(dir.path(), "dev").unwrap();
    config::load(dir.path(), "qa").unwrap();
    // Another account's environment may reuse the name: its grants are in its own account.
    let dr =
        "kind: aws\naccount_id: \"222233334444\"\nregion: eu-central-1\nstack_name: cqrs-dev\n";
    let dir = config_dir(&[("dev", &dev), ("dr", dr)]);
    config::load(dir.path(), "dev").unwrap();
}

#[test]
fn the_deployment_strategy_defaults_to_all_at_once_and_prod_ships_a_canary() {
    let dir = config_dir(&[("dev", AWS)]);
    let plan = config::load(dir.path(), "dev").unwrap();
    assert_eq!(plan.deployment, stack::TrafficShift::AllAtOnce);
    let prod = config::load(&repo_config(), "prod").unwrap();
    assert_eq!(
        prod.deployment,
        stack::TrafficShift::Canary {
            percent: 10,
            interval_seconds: 300
        }
    );
    assert_eq!(
        prod.deployment.codedeploy_config(),
        "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    );
    let linear = stack::TrafficShift::Linear {
        percent: 10,
        interval_seconds: 60,
    };
    assert_eq!(
        linear.codedeploy_config(),
        "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    );
}

#[test]
fn bad_deployment_settings_name_the_file_the_key_and_the_fix() {
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}deployment:\n  strategy: blue_green\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "deployment.strategy",
        &["`blue_green` is not allowed", "all_at_once, canary, linear"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}deployment:\n  strategy: canary\n  percent: 10\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "deployment.interval_minutes",
        &["missing"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}deployment:\n  strategy: canary\n  percent: 150\n  interval_minutes: 5\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "deployment.percent",
        &["150 is out of range", "1 to 99"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}deployment:\n  strategy: linear\n  percent: 10\n  interval_minutes: 5\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "deployment.interval_minutes",
        &[
            "not one of CodeDeploy's predefined Lambda shifts",
            "percent 10 with interval_minutes 2",
        ],
    );
    let (dir, err) = load_err("dev", &format!("{AWS}deployment:\n  percent: 10\n"));
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "deployment.percent",
        &["only meaningful with `strategy: canary` or `linear`"],
    );
    let (dir, err) = load_err(
        "dev",
        &format!("{AWS}deployment:\n  strategy: canary\n  percent: 10\n  interval_seconds: 30\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "deployment.interval_seconds",
        &[
            "CodeDeploy shifts in whole minutes",
            "set `interval_minutes`",
        ],
    );
    let (dir, err) = load_err(
        "local",
        &format!(
            "{LOCAL}deployment:\n  strategy: canary\n  percent: 10\n  interval_seconds: 5\n  interval_minutes: 1\n"
        ),
    );
    assert_problem(
        dir.path(),
        &err,
        "local.yaml",
        "deployment.interval_seconds",
        &["not both"],
    );
}

/// The local engine runs a local environment's shift itself: any percent, in seconds or minutes, and the stack
/// renders no CodeDeploy resource for it.
#[test]
fn a_local_environment_shifts_in_seconds_without_codedeploy() {
    let dir = config_dir(&[(
        "local",
        &format!("{LOCAL}deployment:\n  strategy: linear\n  percent: 30\n  interval_seconds: 4\n"),
    )]);
    let plan = config::load(dir.path(), "local").unwrap();
    let shift = stack::TrafficShift::Linear {
        percent: 30,
        interval_seconds: 4,
    };
    assert_eq!(plan.deployment, shift);
    let percents: Vec<u32> = shift.steps().iter().map(|s| s.percent).collect();
    assert_eq!(percents, [30, 60, 90], "then the rest");
    let canary = stack::TrafficShift::Canary {
        percent: 10,
        interval_seconds: 120,
    };
    assert_eq!(canary.steps().len(), 1);
    let template = stack::render::render(&plan).unwrap();
    assert!(
        !template.body.contains("AWS::CodeDeploy"),
        "no CodeDeploy resource on the local endpoint"
    );
    let minutes = config_dir(&[(
        "local",
        &format!("{LOCAL}deployment:\n  strategy: canary\n  percent: 25\n  interval_minutes: 2\n"),
    )]);
    assert_eq!(
        config::load(minutes.path(), "local").unwrap().deployment,
        stack::TrafficShift::Canary {
            percent: 25,
            interval_seconds: 120
        }
    );
}

/// One AWS account per protected environment: a protected environment (named prod, or `protected: true`) that
/// shares its account with a non-protected one is refused on both sides, each naming the other's file; another
/// account, or a local environment, is fine. (The deploy roles' HTTP API grant cannot be scoped to a stack.)
#[test]
fn a_protected_environment_sharing_its_account_with_a_non_protected_one_is_refused() {
    let prod = format!("{AWS}{SAFE_TABLES}");
    let dir = config_dir(&[("dev", AWS), ("prod", &prod), ("local", LOCAL)]);
    let err = config::load(dir.path(), "prod").expect_err("a shared account is refused");
    assert!(err.has_unsafe_setting(), "{err}");
    let dev_file = dir.path().join("dev.yaml").display().to_string();
    assert_problem(
        dir.path(),
        &err,
        "prod.yaml",
        "account_id",
        &[
            "`prod` is a protected environment (named prod or `protected: true`) but its account 111111111111 is shared with the non-protected `dev` (",
            &dev_file,
            "could remove the protected environment's authorizer or reroute its routes",
            "give `prod` an AWS account of its own",
        ],
    );
    let err = config::load(dir.path(), "dev").expect_err("refused from the other side too");
    let prod_file = dir.path().join("prod.yaml").display().to_string();
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "account_id",
        &[
            "`dev` shares account 111111111111 with the protected `prod` (",
            &prod_file,
            "give `prod` an AWS account of its own",
        ],
    );
    // `protected: true` counts as prod does.
    let live = format!("{AWS}{SAFE_TABLES}protected: true\n");
    let dir = config_dir(&[("dev", AWS), ("live", &live)]);
    let err = config::load(dir.path(), "dev").expect_err("refused");
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "account_id",
        &[
            "with the protected `live` (",
            "give `live` an AWS account of its own",
        ],
    );
    // Its own account: both load. Two non-protected environments may share one.
    let prod_elsewhere =
        format!("kind: aws\naccount_id: \"222233334444\"\nregion: eu-west-1\n{SAFE_TABLES}");
    let dir = config_dir(&[
        ("dev", AWS),
        ("staging", AWS),
        ("prod", &prod_elsewhere),
        ("local", LOCAL),
    ]);
    for env in ["dev", "staging", "prod", "local"] {
        config::load(dir.path(), env).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
    // The shipped configs follow the model.
    let prod = config::load(&repo_config(), "prod").unwrap();
    let dev = config::load(&repo_config(), "dev").unwrap();
    assert!(prod.protected && !dev.protected);
    assert_ne!(prod.account_id, dev.account_id);
}

/// A non-protected `aws` environment without `api.jwt` serves its write routes to anyone: its throttle may
/// allow at most 5 requests/s (432,000 a day), and the refusal shows the arithmetic for the rate it was given.
/// A JWT, a protected environment (prod requires a token and is watched) or a local one lift the cap.
#[test]
fn anonymous_write_routes_above_the_cost_cap_are_refused_with_the_arithmetic() {
    let fast = "api:\n  throttling:\n    rate_limit: 50\n";
    let (dir, err) = load_err("dev", &format!("{AWS}{fast}"));
    assert!(err.has_unsafe_setting(), "{err}");
    assert_problem(
        dir.path(),
        &err,
        "dev.yaml",
        "api.throttling.rate_limit",
        &[
            "`dev` serves POST /events, POST /aggregates/{aggregateId}/events without authentication (no `api.jwt`)",
            "50 requests/s × 86,400 s = 4,320,000 billed requests a day",
            "at most 5 requests/s (432,000 a day)",
            "set `rate_limit` to 5 or less, or set `api.jwt`",
        ],
    );
    assert_eq!(stack::config::ANONYMOUS_RATE_LIMIT, 5.0);
    // The defaults stay under the cap; the cap itself, and below it, pass.
    let plan = config::load(config_dir(&[("dev", AWS)]).path(), "dev").unwrap();
    assert!(plan.api.throttling_rate_limit <= stack::config::ANONYMOUS_RATE_LIMIT);
    for rate in ["5", "0.5"] {
        let text = format!("{AWS}api:\n  throttling:\n    rate_limit: {rate}\n");
        config::load(config_dir(&[("dev", &text)]).path(), "dev")
            .unwrap_or_else(|e| panic!("{rate}: {e}"));
    }
    // With a JWT authorizer every write needs a token.
    let jwt = "api:\n  throttling:\n    rate_limit: 50\n  jwt:\n    issuer: https://auth.acme.test/\n    audience: [cqrs-api]\n";
    config::load(config_dir(&[("dev", &format!("{AWS}{jwt}"))]).path(), "dev").unwrap();
    // A protected environment and a local one are not capped.
    let prod = format!("{AWS}{SAFE_TABLES}{fast}");
    config::load(config_dir(&[("prod", &prod)]).path(), "prod").unwrap();
    config::load(
        config_dir(&[("local", &format!("{LOCAL}{fast}"))]).path(),
        "local",
    )
    .unwrap();
}

/// Unset, an `aws` environment's functions are arm64 (Graviton) and a `local` one's are the machine's own; a
/// local environment set to another architecture is refused (it runs the functions on this machine).
#[test]
fn the_architecture_defaults_to_arm64_on_aws_and_to_the_machine_locally() {
    let dir = config_dir(&[("dev", AWS), ("local", LOCAL)]);
    let aws = config::load(dir.path(), "dev").unwrap();
    assert!(
        aws.functions
            .iter()
            .all(|f| f.architecture == stack::Architecture::Arm64),
        "{:?}",
        aws.functions
    );
    let local = config::load(dir.path(), "local").unwrap();
    assert!(
        local
            .functions
            .iter()
            .all(|f| f.architecture == config::host_architecture())
    );
    // Set explicitly, an aws environment may keep x86_64.
    let x86 = config::load(
        config_dir(&[(
            "dev",
            &format!("{AWS}functions:\n  command: {{architecture: x86_64}}\n  query: {{architecture: x86_64}}\n  projector: {{architecture: x86_64}}\n"),
        )])
        .path(),
        "dev",
    )
    .unwrap();
    assert!(
        x86.functions
            .iter()
            .all(|f| f.architecture == stack::Architecture::X86_64)
    );
    let other = match config::host_architecture() {
        stack::Architecture::X86_64 => "arm64",
        stack::Architecture::Arm64 => "x86_64",
    };
    let (dir, err) = load_err(
        "local",
        &format!("{LOCAL}functions:\n  query: {{architecture: {other}}}\n"),
    );
    assert_problem(
        dir.path(),
        &err,
        "local.yaml",
        "functions.query.architecture",
        &["a local environment runs the functions on this machine"],
    );
}
