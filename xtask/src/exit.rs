//! The documented exit codes of every `cargo xtask` command (also listed in README.md).

/// Exit statuses, in the spirit of nextest's `NextestExitCode`: distinct codes for outcomes CI must tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command did what was asked (deployed, validated, tore down, ...). Also "up to date" unless
    /// `--detailed-exitcode` was given.
    Success,
    /// 1: the command failed (AWS error, failed stack operation, failed smoke test, ...).
    Failed,
    /// 2: invalid input: bad config, bad arguments, invalid template.
    InvalidInput,
    /// 3: refused by a safety guard (data loss without `--allow-data-loss`, no confirmation without `--yes`,
    /// promotion order, missing smoke test, protected data).
    Refused,
    /// 4: nothing to do: the deployed stack already matches (only with `--detailed-exitcode`).
    UpToDate,
    /// 5: `drift` found resources changed outside the pipeline (only with `--detailed-exitcode`).
    Drifted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::InvalidInput => 2,
            ExitStatus::Refused => 3,
            ExitStatus::UpToDate => 4,
            ExitStatus::Drifted => 5,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}
