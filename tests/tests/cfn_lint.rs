//! cfn-lint (the CloudFormation linter) reports zero errors on the rendered template of every environment.
//!
//! The linter is a pinned Python tool: `$CFN_LINT`, or `.local/tools/cfn-lint/bin/cfn-lint` under the
//! repository root (installed by `.ci/run`). When it is missing the test fails with the install command; it
//! never skips, so a green run always means the templates were linted.

use std::path::PathBuf;
use std::process::Command;

/// The pinned version; `.ci/run` installs exactly this.
const CFN_LINT_VERSION: &str = "1.51.0";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cfn_lint() -> PathBuf {
    let path = std::env::var_os("CFN_LINT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/tools/cfn-lint/bin/cfn-lint"));
    assert!(
        path.is_file(),
        "cfn-lint not found at {}; install it from the repository root with:\n  \
         python3 -m venv .local/tools/cfn-lint && .local/tools/cfn-lint/bin/pip install cfn-lint=={CFN_LINT_VERSION}\n\
         (or point $CFN_LINT at a cfn-lint binary)",
        path.display()
    );
    path
}

#[test]
fn cfn_lint_reports_no_errors_for_any_environment() {
    let lint = cfn_lint();
    let version = Command::new(&lint)
        .arg("--version")
        .output()
        .expect("cfn-lint runs");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.contains(CFN_LINT_VERSION),
        "expected cfn-lint {CFN_LINT_VERSION}, found {version}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = repo_root().join("config");
    let envs = stack::config::environments(&config).unwrap();
    assert!(envs.len() >= 4, "{envs:?}");
    let mut failures = Vec::new();
    for env in envs {
        let (_, t) = stack::load_checked(&config, &env).unwrap_or_else(|e| panic!("{env}: {e}"));
        let file = dir.path().join(format!("{env}.yaml"));
        std::fs::write(&file, &t.body).unwrap();
        let out = Command::new(&lint)
            .arg("--format")
            .arg("parseable")
            .arg(&file)
            .output()
            .expect("cfn-lint runs");
        let code = out.status.code().unwrap_or(-1);
        let report = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        // cfn-lint's exit code is a bit set: 2 = errors, 4 = warnings, 8 = informational; 1 = it crashed.
        // Warnings are printed but allowed.
        if code < 0 || code & 0b11 != 0 {
            failures.push(format!("{env}: cfn-lint exit code {code}\n{report}"));
        } else if !report.trim().is_empty() {
            eprintln!("{env}: cfn-lint warnings (allowed):\n{report}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
