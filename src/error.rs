//! Why a command did not succeed, and the one place where that becomes an exit code.
//!
//! Each exit status means one thing ([`EXIT_CODES`], shown by `flow help exit-codes` and in
//! the README): a script can tell "the work failed" (1) from "you asked wrong" (2) from "git
//! or the system failed" (3) without reading the text.

use std::process::ExitCode;

use flow_dsl::Problems;
use flow_engine::git::GitError;
use flow_engine::run::error::RunError;

use crate::diagnostics::{self, print_problems, summary};

/// The work failed.
pub const FAILED: u8 = 1;
/// A bad command line or invalid input.
pub const USAGE: u8 = 2;
/// Git or the system failed.
pub const SYSTEM: u8 = 3;
/// A run was interrupted (Ctrl-C, SIGTERM, SIGHUP), as a shell reports a command Ctrl-C ended.
pub const INTERRUPTED: u8 = 130;

/// Every exit status flow ends with and what it means, one line each.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "success: the command did what was asked (every workstream of a run merged or finished, the workflow is valid, clean removed everything or kept only the integration branch with the result)",
    ),
    (
        1,
        "the work failed: a workstream failed, conflicted or was cancelled; a merge conflicted or broke `verify`; `check --deny-warnings` found warnings; `clean` kept unfinished work; `conflicts` found branches that conflict; `prepare` could not prepare a workstream",
    ),
    (
        2,
        "usage or invalid input: a bad command line, an invalid workflow file, an unknown run or workstream, or a request flow refuses as things stand (the file exists, an earlier run left worktrees, the workflow is already running, no base branch)",
    ),
    (
        3,
        "git or the system failed: not a git repository, a branch or commit git cannot find or change, a file that cannot be read or written",
    ),
    (101, "flow itself broke: a bug, please report it"),
    (130, "interrupted (Ctrl-C)"),
];

/// Why a command did not succeed, and so which exit code it ends with.
#[derive(Debug)]
pub enum CommandError {
    /// The workflow file is invalid: exit 2.
    Invalid(Problems),
    /// Bad input that is not a workflow problem (a missing run, a bad argument): exit 2.
    Usage(miette::Report),
    /// The work itself failed (a workstream failed, a merge conflicted): exit 1.
    Failed(miette::Report),
    /// Git or the system failed (a git error, a file that cannot be read or written): exit 3.
    System(miette::Report),
    /// The command already reported what happened; exit with this code.
    Exit(u8),
}

impl From<crate::output::PrintError> for CommandError {
    fn from(error: crate::output::PrintError) -> CommandError {
        match error {
            crate::output::PrintError::Closed => CommandError::Exit(0),
            crate::output::PrintError::Failed(message) => CommandError::System(miette::miette!("{message}")),
        }
    }
}

impl CommandError {
    /// Prints the error and gives the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            CommandError::Invalid(problems) => {
                print_problems(&problems.problems);
                let (errors, warnings) = (problems.error_count(), problems.warning_count());
                eprintln!("{}", summary(errors, warnings));
                ExitCode::from(USAGE)
            }
            CommandError::Usage(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(USAGE)
            }
            CommandError::Failed(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(FAILED)
            }
            CommandError::System(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(SYSTEM)
            }
            CommandError::Exit(code) => ExitCode::from(code),
        }
    }
}

/// Maps a git error to its exit code: git failed or refused (3).
pub fn git_failed(error: GitError) -> CommandError {
    CommandError::System(error.into())
}

/// Maps an error that stopped a run (or `flow resume`, or the by-hand verbs' setup) to its
/// exit code: git and files are the system's (3); what flow refuses as things stand is a
/// matter of what was asked (2).
pub fn run_failed(error: RunError) -> CommandError {
    use flow_engine::run::lock::LockError;
    match error {
        RunError::Git(e) => git_failed(e),
        RunError::Io { .. } | RunError::Lock(LockError::Io { .. }) => CommandError::System(error.into()),
        RunError::Lock(LockError::Held { .. })
        | RunError::NoBase
        | RunError::Leftovers { .. }
        | RunError::NoRun(_)
        | RunError::UndoConflict { .. }
        | RunError::WaitsForPerson { .. }
        | RunError::UnknownWorkstream(_) => CommandError::Usage(error.into()),
    }
}
