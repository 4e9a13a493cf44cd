//! Pinned Python tools, each installed into a virtual environment of its own on first use: moto (the local
//! endpoint), cargo-lambda (the AWS build), and the tests' cfn-lint and schemathesis. They used to be installed
//! by four copies of one procedure; this is the one procedure.
//!
//! - **Once, across processes.** Test binaries run in parallel and may all need a tool at once: the install runs
//!   under a file lock beside the venv, and whoever waited finds it done.
//! - **Pinned, and stale when the pin changes.** A finished install leaves a stamp named after the digest of its
//!   requirements; a venv without the current stamp (another pin, or an install cut off) is cleared and installed
//!   again from scratch, so nothing an older pin brought stays importable.
//! - **Said, not swallowed.** pip's output goes to a log beside the venv, and an error names the tool, the venv,
//!   pip's last line, the log, and what to do.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::package::sha256_hex;

/// One pinned tool and the venv it lives in.
#[derive(Debug, Clone)]
pub struct PythonTool {
    /// What the tool is called in messages (`moto`, `cargo-lambda`).
    pub name: String,
    /// Where the requirements come from, for messages (`cfn-lint==1.58.0`, a requirements file's path).
    pub source: String,
    /// The venv (created if missing).
    pub venv: PathBuf,
    /// The pip requirements: one pin per line, or a whole requirements file.
    pub requirements: String,
    /// `--require-hashes`: every requirement carries the sha256 of each of its files, and pip refuses any other.
    pub require_hashes: bool,
    /// The executable the install must leave in the venv's `bin`.
    pub executable: String,
}

/// Why a tool could not be installed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    #[error(
        "cannot create the python virtual environment at {dir}: {detail}; install python3 with its venv module (Debian: apt-get install python3-venv) and retry"
    )]
    Venv { dir: PathBuf, detail: String },
    #[error(
        "installing {tool} ({source_}) into {dir} failed: {detail}; check access to the Python package index and retry (log: {log})"
    )]
    Install {
        tool: String,
        source_: String,
        dir: PathBuf,
        detail: String,
        log: PathBuf,
    },
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VenvError {
    let path = path.to_path_buf();
    move |source| VenvError::Io {
        context,
        path,
        source,
    }
}

impl PythonTool {
    /// A tool installed from one pin, `<package>==<version>`, whose executable is named after the package.
    pub fn pinned(package: &str, version: &str, venv: PathBuf) -> Self {
        let pin = format!("{package}=={version}");
        PythonTool {
            name: package.into(),
            source: pin.clone(),
            venv,
            requirements: pin,
            require_hashes: false,
            executable: package.into(),
        }
    }

    /// The executable, installed or not.
    pub fn executable_path(&self) -> PathBuf {
        self.venv.join("bin").join(&self.executable)
    }

    /// The stamp a finished install of these requirements leaves in the venv.
    pub fn stamp(&self) -> PathBuf {
        let digest =
            sha256_hex(format!("{}\n{}", self.require_hashes, self.requirements).as_bytes());
        self.venv.join(format!(".installed-{}", &digest[..16]))
    }

    /// Whether the venv holds a finished install of exactly these requirements.
    pub fn is_current(&self) -> bool {
        self.executable_path().exists() && self.stamp().exists()
    }

    /// `<venv's parent>/<venv name>-install.log`: pip's output of the last install.
    pub fn log_path(&self) -> PathBuf {
        self.sibling("install.log")
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let name = self
            .venv
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "venv".into());
        self.venv
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{name}-{suffix}"))
    }

    /// Installs the tool unless the venv already holds it, and returns its executable. `progress` hears one line
    /// when an install starts (it takes a while) and one when it ends; nothing when the tool is already there.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn ensure(&self, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, VenvError> {
        let exe = self.executable_path();
        if self.is_current() {
            return Ok(exe);
        }
        let parent = self.venv.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io("creating the tool directory", parent))?;
        let lock_path = self.sibling("install.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening the install lock", &lock_path))?;
        lock.lock()
            .map_err(io("taking the install lock", &lock_path))?;
        if self.is_current() {
            return Ok(exe);
        }
        progress(&format!(
            "installing {} ({}) into {} (first use only) ...",
            self.name,
            self.source,
            self.venv.display()
        ));
        let started = std::time::Instant::now();
        let mut python = Command::new("python3");
        python.args(["-m", "venv"]);
        // Another pin's venv, or an install cut off: emptied first, so nothing it had stays importable.
        if self.venv.join("pyvenv.cfg").exists() {
            python.arg("--clear");
        }
        let venv_error = |detail: String| VenvError::Venv {
            dir: self.venv.clone(),
            detail,
        };
        let out = python
            .arg(&self.venv)
            .output()
            .map_err(|e| venv_error(e.to_string()))?;
        if !out.status.success() {
            return Err(venv_error(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let requirements = self.venv.join("requirements.txt");
        fs::write(&requirements, &self.requirements)
            .map_err(io("writing the requirements", &requirements))?;
        let log = self.log_path();
        let log_file = File::create(&log).map_err(io("creating the install log", &log))?;
        let mut pip = Command::new(self.venv.join("bin/pip"));
        pip.args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ]);
        if self.require_hashes {
            pip.arg("--require-hashes");
        }
        let install_error = |detail: String| VenvError::Install {
            tool: self.name.clone(),
            source_: self.source.clone(),
            dir: self.venv.clone(),
            detail,
            log: log.clone(),
        };
        let status = pip
            .arg("-r")
            .arg(&requirements)
            .stdout(log_file.try_clone().map_err(io("the install log", &log))?)
            .stderr(log_file)
            .status()
            .map_err(|e| install_error(e.to_string()))?;
        if !status.success() || !exe.exists() {
            let detail = fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("pip {status}, and {} is not there", exe.display()));
            return Err(install_error(detail));
        }
        let stamp = self.stamp();
        fs::write(&stamp, &self.source).map_err(io("writing the install stamp", &stamp))?;
        progress(&format!(
            "{} installed in {:.1} s",
            self.name,
            started.elapsed().as_secs_f64()
        ));
        Ok(exe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_follows_the_requirements_and_the_files_sit_beside_the_venv() {
        let a = PythonTool::pinned("cfn-lint", "1.58.0", PathBuf::from("/t/tools/cfn-lint"));
        let b = PythonTool::pinned("cfn-lint", "1.58.1", PathBuf::from("/t/tools/cfn-lint"));
        assert_ne!(
            a.stamp(),
            b.stamp(),
            "a new pin makes the old install stale"
        );
        assert_eq!(a.stamp(), a.clone().stamp());
        let hashed = PythonTool {
            require_hashes: true,
            ..a.clone()
        };
        assert_ne!(a.stamp(), hashed.stamp());
        assert_eq!(
            a.executable_path(),
            PathBuf::from("/t/tools/cfn-lint/bin/cfn-lint")
        );
        assert_eq!(a.log_path(), PathBuf::from("/t/tools/cfn-lint-install.log"));
        assert_eq!(
            a.sibling("install.lock"),
            PathBuf::from("/t/tools/cfn-lint-install.lock")
        );
    }

    #[test]
    fn a_failed_install_names_the_tool_the_log_and_pips_last_line() {
        let dir = tempfile::tempdir().unwrap();
        // A requirement no index has: pip fails quickly (offline or not) and says why.
        let tool = PythonTool {
            name: "nothing".into(),
            source: "a test".into(),
            venv: dir.path().join("nothing"),
            requirements: "./no-such-directory-here\n".into(),
            require_hashes: false,
            executable: "nothing".into(),
        };
        let err = tool.ensure(&mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("installing nothing (a test)"), "{err}");
        assert!(err.contains("nothing-install.log"), "{err}");
        assert!(!tool.is_current());
    }
}
