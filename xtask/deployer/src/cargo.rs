//! Starting cargo the way a user's shell would: without the variables cargo sets for the package it is running.
//!
//! `cargo xtask ...` runs the xtask binary under `cargo run`, and a test binary runs under `cargo test`; both
//! inherit `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and friends. A cargo started with them passes them on to build
//! scripts, and `ring`'s build script tracks `CARGO_MANIFEST_DIR`: the nested build then rebuilds `ring` and
//! everything above it (rustls, the AWS SDK), and the next `cargo xtask` rebuilds them back. Every cargo (and
//! cargo-lambda) this project starts goes through [`command`], so a nested build is a no-op when nothing changed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables cargo sets for the program it runs (`cargo run`, `cargo test`, build scripts) and a shell never has.
const PACKAGE_VARIABLES: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// Prefixes of the same kind (`CARGO_PKG_NAME`, `CARGO_BIN_EXE_xtask`, `CARGO_CFG_UNIX`, ...).
const PACKAGE_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_CFG_"];

/// The cargo to run: `$CARGO` (set by cargo for the program it runs, so the same toolchain), else `cargo`.
pub fn cargo_path() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "cargo".into())
}

/// `program` (cargo, or a tool that runs cargo) with the package variables of the current process removed.
pub fn command(program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new(program.as_ref());
    for name in inherited_package_variables() {
        cmd.env_remove(name);
    }
    cmd
}

/// The names of the package variables present in this process's environment.
pub fn inherited_package_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| is_package_variable(k))
        .collect()
}

fn is_package_variable(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    PACKAGE_VARIABLES.contains(&name) || PACKAGE_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_variables_are_recognised_and_configuration_is_kept() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_VERSION",
            "CARGO_BIN_EXE_xtask",
            "OUT_DIR",
        ] {
            assert!(is_package_variable(OsStr::new(name)), "{name}");
        }
        // What a user sets in a shell stays: the toolchain, the target dir, cargo's own configuration.
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO_BUILD_JOBS",
            "PATH",
        ] {
            assert!(!is_package_variable(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn the_command_removes_what_this_process_inherited_from_cargo() {
        // Under `cargo test` this process has CARGO_MANIFEST_DIR and CARGO_PKG_NAME.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let cmd = command("cargo");
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(removed.iter().any(|k| k == "CARGO_MANIFEST_DIR"), "{removed:?}");
        assert!(removed.iter().any(|k| k == "CARGO_PKG_NAME"), "{removed:?}");
    }
}
