//! Why a command did not succeed, and the one place where that becomes an exit code.

use std::process::ExitCode;

use flow_dsl::Problems;

use crate::diagnostics::{self, print_problems, summary};

/// Why a command did not succeed, and so which exit code it ends with.
#[derive(Debug)]
pub enum CommandError {
    /// The workflow file is invalid: exit 2.
    Invalid(Problems),
    /// Bad input that is not a workflow problem (a missing run, a bad argument): exit 2.
    Usage(miette::Report),
    /// The work itself failed (a workstream failed, a merge conflicted): exit 1.
    Failed(miette::Report),
    /// The command already reported what happened; exit with this code.
    Exit(u8),
}

impl CommandError {
    /// Prints the error and gives the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            CommandError::Invalid(problems) => {
                print_problems(&problems.problems);
                let (errors, warnings) = (problems.error_count(), problems.warning_count());
                eprintln!("{}", summary(errors, warnings));
                ExitCode::from(2)
            }
            CommandError::Usage(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(2)
            }
            CommandError::Failed(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(1)
            }
            CommandError::Exit(code) => ExitCode::from(code),
        }
    }
}

/// Maps a git error to a failed command.
pub fn git_failed(error: flow_engine::git::GitError) -> CommandError {
    CommandError::Failed(error.into())
}
