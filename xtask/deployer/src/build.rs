//! Build and package: one cargo invocation for all function binaries, then reproducible zips, hashes, the
//! glibc-floor check and the release manifest, laid out where the local engine and promotion expect them.
//!
//! Layout (a contract with the local engine and promotion), with `<dist>` = `<target dir>/xtask/dist/<checkout>/<env>`:
//! `<dist>/<function>/bootstrap`, `<dist>/<function>/<function>.zip`, `<dist>/manifest.json`. The checkout is part
//! of the key because one target directory often serves several checkouts (`build.target-dir`, `CARGO_TARGET_DIR`):
//! each checkout's engine must run its own binaries, and two checkouts must be able to build the same environment
//! at the same moment. Every file is written beside its final name and renamed over it, so a concurrent reader sees
//! the old file or the new one, never a half-written one.
//!
//! `local` builds for the host with the default dev profile, sharing the test build cache. AWS environments
//! build release binaries with cargo-lambda (installed on first use into `.local/tools/cargo-lambda`, pinned)
//! for a `.2.26` glibc target, and every binary's glibc floor is checked against Lambda's before upload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use stack::{Architecture, EnvKind, FunctionName, Plan};

use crate::elf::{self, GlibcVersion, LAMBDA_GLIBC};
use crate::error::{Error, Result};
use crate::manifest::{FunctionArtifact, ReleaseManifest, SCHEMA};
use crate::package::{Level, reproducible_zip, sha256_hex};
use crate::ui::Ui;

/// The pinned cargo-lambda release (PyPI), installed into `<tools>/cargo-lambda`.
pub const CARGO_LAMBDA_VERSION: &str = "1.9.2";

/// Everything a build needs to know; [`BuildRequest::for_plan`] fills it from a plan.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The workspace whose functions are built (cargo runs there).
    pub repo_root: PathBuf,
    /// The checkout the tool runs in, which keys the dist directory ([`dist_dir`]) that its local engine and
    /// `status` read. The same as `repo_root`, except when `cargo xtask dev --workspace` builds another
    /// workspace's sources for this checkout's engine.
    pub checkout: PathBuf,
    pub target_dir: PathBuf,
    pub env: String,
    pub kind: EnvKind,
    pub architecture: Architecture,
    /// SHA-256 of the rendered template (recorded in the manifest).
    pub template_sha256: String,
    /// `$CARGO`, or `cargo`.
    pub cargo: PathBuf,
    /// Where pinned tools are installed (`<repo>/.local/tools`).
    pub tools_dir: PathBuf,
}

impl BuildRequest {
    pub fn for_plan(plan: &Plan, repo_root: &Path, template_sha256: &str) -> Result<Self> {
        let architecture = plan.functions[0].architecture;
        if plan
            .functions
            .iter()
            .any(|f| f.architecture != architecture)
        {
            return Err(Error::InvalidInput(format!(
                "{}: all functions must use the same architecture (one build per release); set the same `architecture` for each function",
                plan.config_path.display()
            )));
        }
        Ok(BuildRequest {
            repo_root: repo_root.to_path_buf(),
            checkout: repo_root.to_path_buf(),
            target_dir: default_target_dir(repo_root),
            env: plan.env.clone(),
            kind: plan.kind,
            architecture,
            template_sha256: template_sha256.to_string(),
            cargo: crate::cargo::cargo_path(),
            tools_dir: tools_dir(repo_root),
        })
    }
}

/// A built release on disk.
#[derive(Debug, Clone)]
pub struct Release {
    pub manifest: ReleaseManifest,
    /// `<target dir>/xtask/dist/<checkout>/<env>`.
    pub dist_dir: PathBuf,
}

impl Release {
    pub fn digest(&self) -> String {
        self.manifest.digest()
    }

    pub fn zip_path(&self, function: FunctionName) -> PathBuf {
        zip_path(&self.dist_dir, function)
    }

    pub fn manifest_path(&self) -> PathBuf {
        manifest_path(&self.dist_dir)
    }
}

/// `$CARGO_TARGET_DIR`, or `<repo>/target`.
pub fn default_target_dir(repo_root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root.join("target"))
}

/// `<target dir>/xtask/dist/<checkout>/<env>`: the build of `env` from the checkout at `repo_root`.
pub fn dist_dir(target_dir: &Path, repo_root: &Path, env: &str) -> PathBuf {
    target_dir
        .join("xtask")
        .join("dist")
        .join(checkout_key(repo_root))
        .join(env)
}

/// `<checkout directory name>-<8 hex digits of the SHA-256 of its canonical path>`: readable in a listing, and
/// distinct for two checkouts with the same directory name.
pub fn checkout_key(repo_root: &Path) -> String {
    let path = std::fs::canonicalize(repo_root).unwrap_or_else(|_| repo_root.to_path_buf());
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{name}-{}",
        &sha256_hex(path.to_string_lossy().as_bytes())[..8]
    )
}

pub fn zip_path(dist_dir: &Path, function: FunctionName) -> PathBuf {
    dist_dir
        .join(function.as_str())
        .join(format!("{}.zip", function.as_str()))
}

/// `<dist dir>/<function>/bootstrap`: the built binary the zip holds, which the local engine runs.
pub fn bootstrap_path(dist_dir: &Path, function: FunctionName) -> PathBuf {
    dist_dir.join(function.as_str()).join("bootstrap")
}

/// `<dist dir>/manifest.json`: the release manifest of the build in `dist_dir`.
pub fn manifest_path(dist_dir: &Path) -> PathBuf {
    dist_dir.join("manifest.json")
}

/// The release manifest of the build in `dist_dir`; the error names the file and what is wrong with it.
pub fn read_manifest(dist_dir: &Path) -> Result<ReleaseManifest> {
    let path = manifest_path(dist_dir);
    let bytes = std::fs::read(&path).map_err(Error::io("reading the release manifest", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidInput(format!(
            "{}: not a release manifest of this version ({e}); rebuild with `cargo xtask build`",
            path.display()
        ))
    })
}

/// The manifest of the last local build of `env` from the checkout at `repo_root`, if any.
pub fn load_local_manifest(
    target_dir: &Path,
    repo_root: &Path,
    env: &str,
) -> Option<ReleaseManifest> {
    read_manifest(&dist_dir(target_dir, repo_root, env)).ok()
}

/// Builds the three function binaries with one cargo invocation and packages them (blocking).
pub fn build(req: &BuildRequest, ui: &dyn Ui) -> Result<Release> {
    let binaries = build_binaries(req, ui)?;
    package(req, &binaries, ui)
}

/// The compile half of [`build`]: one cargo invocation (the host build for `local`, cargo-lambda for AWS), and
/// where each function's binary is. `cargo xtask dev` calls the halves separately to report what each cost.
pub fn build_binaries(req: &BuildRequest, ui: &dyn Ui) -> Result<BTreeMap<FunctionName, PathBuf>> {
    match req.kind {
        EnvKind::Local => cargo_build_host(req, ui),
        EnvKind::Aws => cargo_lambda_build(req, ui),
    }
}

/// Packages already built binaries: copies each to `bootstrap`, zips it reproducibly, checks its glibc floor
/// (refusing more than Lambda's for AWS environments) and writes the manifest. A function whose binary did not
/// change since the last packaging keeps its zip (this keeps no-op deploys fast).
pub fn package(
    req: &BuildRequest,
    binaries: &BTreeMap<FunctionName, PathBuf>,
    ui: &dyn Ui,
) -> Result<Release> {
    let dist = dist_dir(&req.target_dir, &req.checkout, &req.env);
    let previous = load_local_manifest(&req.target_dir, &req.checkout, &req.env);
    let mut functions = BTreeMap::new();
    for (&name, binary_path) in binaries {
        let binary = std::fs::read(binary_path)
            .map_err(Error::io("reading the built binary", binary_path))?;
        let binary_sha256 = sha256_hex(&binary);
        let floor = elf::glibc_floor(&binary)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", binary_path.display())))?;
        if req.kind == EnvKind::Aws {
            check_floor(name, floor)?;
        }
        let dir = dist.join(name.as_str());
        let zip_file = zip_path(&dist, name);
        let reusable = previous
            .as_ref()
            .and_then(|m| m.functions.get(&name))
            .filter(|a| {
                a.binary_sha256 == binary_sha256
                    && a.architecture == req.architecture
                    && std::fs::metadata(&zip_file)
                        .map(|m| m.len() == a.zip_size)
                        .unwrap_or(false)
            });
        let artifact = match reusable {
            Some(a) => a.clone(),
            None => {
                std::fs::create_dir_all(&dir)
                    .map_err(Error::io("creating the dist directory", &dir))?;
                // Renamed over, not written into: the local engine may be running the old bootstrap, and
                // writing into a running executable fails (ETXTBSY); a rename leaves its inode alone.
                replace_file(&bootstrap_path(&dist, name), &binary, true)?;
                let level = match req.kind {
                    EnvKind::Local => Level::Fast,
                    EnvKind::Aws => Level::Release,
                };
                let zip =
                    reproducible_zip(&binary, level).map_err(Error::io("zipping", &zip_file))?;
                replace_file(&zip_file, &zip, false)?;
                let zip_sha256 = sha256_hex(&zip);
                FunctionArtifact {
                    s3_key: FunctionArtifact::s3_key_for(name, &zip_sha256),
                    zip_sha256,
                    zip_size: zip.len() as u64,
                    binary_sha256,
                    architecture: req.architecture,
                    glibc_floor: floor.map(|f| f.to_string()),
                }
            }
        };
        ui.line(&format!(
            "  {name:<10} {} bytes  zip sha256 {}  glibc {}",
            artifact.zip_size,
            &artifact.zip_sha256[..12],
            artifact.glibc_floor.as_deref().unwrap_or("none")
        ));
        functions.insert(name, artifact);
    }
    let (git_revision, git_dirty) = git_state(&req.repo_root);
    let lock = req.repo_root.join("Cargo.lock");
    let manifest = ReleaseManifest {
        schema: SCHEMA,
        env: req.env.clone(),
        git_revision,
        git_dirty,
        rustc: rustc_version(),
        cargo_lock_sha256: std::fs::read(&lock).ok().map(|b| sha256_hex(&b)),
        template_sha256: req.template_sha256.clone(),
        functions,
    };
    std::fs::create_dir_all(&dist).map_err(Error::io("creating the dist directory", &dist))?;
    let path = manifest_path(&dist);
    let pretty = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    replace_file(&path, &pretty, false)?;
    Ok(Release {
        manifest,
        dist_dir: dist,
    })
}

/// Writes `bytes` to a file of its own beside `path` (named after this process and call, so two builds never
/// share it), then renames it over `path`: readers see the old file or the new one, never a part.
fn replace_file(path: &Path, bytes: &[u8], executable: bool) -> Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".new-{}-{n}", std::process::id()));
    let fresh = PathBuf::from(fresh);
    std::fs::write(&fresh, bytes).map_err(Error::io("writing", &fresh))?;
    if executable {
        set_executable(&fresh)?;
    }
    std::fs::rename(&fresh, path).map_err(Error::io("replacing", path))
}

/// Refuses a binary that needs a newer glibc than the Lambda runtime has.
pub fn check_floor(name: FunctionName, floor: Option<GlibcVersion>) -> Result<()> {
    match floor {
        Some(f) if f > LAMBDA_GLIBC => Err(Error::InvalidInput(format!(
            "the `{name}` binary needs glibc {f}, newer than the {LAMBDA_GLIBC} of the Lambda runtime; \
             build with a `.2.26` target suffix (cargo-lambda does this) or remove the dependency that raised it"
        ))),
        _ => Ok(()),
    }
}

/// The `cargo build` of the three functions for the host, as [`build`] runs it for `local` environments (exposed
/// so a test can prove that it and the xtask's own build never rebuild each other's dependencies).
///
/// The `xtask` package is part of the selection, but only the three binaries are built (`--bin`): cargo unifies
/// dependency features over the packages of one invocation, and the functions' dependency graph is a subset of the
/// xtask's (through `deployer` -> `service`), so the functions reuse every dependency the xtask build compiled.
/// Without it the functions' narrower feature set compiles the AWS SDK a second time on a first deploy; with the
/// `--bin` filter an edit of `service` rebuilds `service` and the functions, never the xtask's own crates. (AWS
/// releases are built by cargo-lambda for the functions alone, with their own lean feature set.)
pub fn host_build_command(req: &BuildRequest) -> Command {
    let mut cmd = crate::cargo::command(&req.cargo);
    // The request's target directory is where the outputs are read from, so it is where cargo writes them.
    cmd.current_dir(&req.repo_root)
        .env("CARGO_TARGET_DIR", &req.target_dir)
        .arg("build");
    for f in FunctionName::ALL {
        cmd.args(["-p", f.as_str()]);
    }
    cmd.args(["-p", "xtask"]);
    for f in FunctionName::ALL {
        cmd.args(["--bin", f.as_str()]);
    }
    if req.repo_root.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    cmd
}

fn cargo_build_host(req: &BuildRequest, ui: &dyn Ui) -> Result<BTreeMap<FunctionName, PathBuf>> {
    ui.line("building command, query and projector for the host (dev profile)");
    let mut cmd = host_build_command(req);
    // Our stdout may be a JSON document for CI: cargo's output goes to stderr.
    cmd.stdout(std::process::Stdio::null());
    run(&mut cmd, "cargo build")?;
    Ok(FunctionName::ALL
        .into_iter()
        .map(|f| (f, req.target_dir.join("debug").join(f.as_str())))
        .collect())
}

fn cargo_lambda_build(req: &BuildRequest, ui: &dyn Ui) -> Result<BTreeMap<FunctionName, PathBuf>> {
    let venv = ensure_cargo_lambda(&req.tools_dir, ui)?;
    let target = match req.architecture {
        Architecture::X86_64 => "x86_64-unknown-linux-gnu.2.26",
        Architecture::Arm64 => "aarch64-unknown-linux-gnu.2.26",
    };
    ui.line(&format!(
        "building command, query and projector with cargo-lambda for {target} (release)"
    ));
    let bin = venv.join("bin");
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .map_err(|e| Error::Tool(format!("building PATH for cargo-lambda: {e}")))?;
    let mut cmd = crate::cargo::command(bin.join("cargo-lambda"));
    cmd.current_dir(&req.repo_root)
        .env("PATH", path)
        .env("CARGO", &req.cargo)
        .env("CARGO_TARGET_DIR", &req.target_dir)
        .args(["lambda", "build", "--release", "--target", target]);
    for f in FunctionName::ALL {
        cmd.args(["-p", f.as_str()]);
    }
    if req.repo_root.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    cmd.stdout(std::process::Stdio::null());
    run(&mut cmd, "cargo lambda build")?;
    Ok(FunctionName::ALL
        .into_iter()
        .map(|f| {
            (
                f,
                req.target_dir
                    .join("lambda")
                    .join(f.as_str())
                    .join("bootstrap"),
            )
        })
        .collect())
}

/// Where pinned tools (cargo-lambda) are installed: `$XTASK_TOOLS_DIR`, else `<repo>/.local/tools` (ignored by git).
pub fn tools_dir(repo_root: &Path) -> PathBuf {
    std::env::var_os("XTASK_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root.join(".local/tools"))
}

/// The pinned cargo-lambda as a [`crate::pyvenv::PythonTool`] in `<tools>/cargo-lambda`.
pub fn cargo_lambda_tool(tools_dir: &Path) -> crate::pyvenv::PythonTool {
    crate::pyvenv::PythonTool::pinned(
        "cargo-lambda",
        CARGO_LAMBDA_VERSION,
        tools_dir.join("cargo-lambda"),
    )
}

/// Installs the pinned cargo-lambda into `<tools>/cargo-lambda` (a python venv) on first use; returns the venv.
pub fn ensure_cargo_lambda(tools_dir: &Path, ui: &dyn Ui) -> Result<PathBuf> {
    let tool = cargo_lambda_tool(tools_dir);
    tool.ensure(&mut |line| ui.line(line))
        .map_err(|e| Error::Tool(e.to_string()))?;
    Ok(tool.venv)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| Error::Tool(format!("cannot run `{what}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Tool(format!(
            "`{what}` failed ({status}); its output is above"
        )))
    }
}

fn git_state(repo: &Path) -> (String, bool) {
    let out = |args: &[&str]| {
        Command::new("git")
            .current_dir(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let revision = out(&["rev-parse", "HEAD"])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(true);
    (revision, dirty)
}

fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(Error::io("making bootstrap executable", path))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<()> {
    Ok(())
}
