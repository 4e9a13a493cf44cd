//! Releases for the deploy, hotswap and promotion tests, packaged by the deployer's own `package` step from a
//! small real executable instead of the compiled functions, so these tests never wait for the functions to build.
//! Each function's bytes get a suffix, so tests make zips that differ per function or per build at will.

use std::collections::BTreeMap;
use std::path::Path;

use deployer::build::{BuildRequest, Release};
use deployer::ui::{Confirmation, RecordingUi};
use stack::{FunctionName, Plan};

/// Packages `executable` + `suffix(f)` as each function `f` of `plan`: the binaries are written under
/// `<work>/bins`, the release (zips, manifest) under `target_dir` as `cargo xtask build` lays it out.
pub fn package(
    plan: &Plan,
    template_sha256: &str,
    work: &Path,
    target_dir: &Path,
    executable: &Path,
    suffix: impl Fn(FunctionName) -> Vec<u8>,
) -> Release {
    let mut req = BuildRequest::for_plan(plan, &crate::repo_root(), template_sha256).unwrap();
    req.target_dir = target_dir.to_path_buf();
    let bins = work.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    let base = std::fs::read(executable)
        .unwrap_or_else(|e| panic!("reading {} to package: {e}", executable.display()));
    let mut binaries = BTreeMap::new();
    for f in FunctionName::ALL {
        let mut bytes = base.clone();
        bytes.extend_from_slice(&suffix(f));
        let path = bins.join(f.as_str());
        std::fs::write(&path, bytes).unwrap();
        binaries.insert(f, path);
    }
    deployer::build::package(&req, &binaries, &RecordingUi::new(Confirmation::No)).unwrap()
}
