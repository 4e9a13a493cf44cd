//! cfn-lint (the CloudFormation linter) reports zero errors on the rendered template of every environment.
//!
//! The linter is a pinned Python tool: `$CFN_LINT`, or `<tools>/cfn-lint/bin/cfn-lint` (`$XTASK_TOOLS_DIR`,
//! default `.local/tools`), installed on first use by `tests::tools::cfn_lint`. If it cannot be installed the
//! test fails saying why; it never skips, so a green run always means the templates were linted.

use std::process::Command;

use tests::repo_root;
use tests::tools::CFN_LINT_VERSION;

#[test]
fn cfn_lint_reports_no_errors_for_any_environment() {
    let lint = tests::tools::cfn_lint();
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

#[test]
fn cfn_lint_fails_a_broken_template_so_a_pass_means_something() {
    let lint = tests::tools::cfn_lint();
    let (_, t) = stack::load_checked(&repo_root().join("config"), "dev").unwrap();
    let broken = t
        .body
        .replacen("Runtime: provided.al2023", "Runtime: cobol85", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = Command::new(&lint)
        .arg(&file)
        .output()
        .expect("cfn-lint runs");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code > 0 && code & 0b10 != 0,
        "cfn-lint accepted an unknown runtime (exit code {code})"
    );
}
