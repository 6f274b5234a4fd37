//! `flow check`: validate workflow files.

use std::process::ExitCode;

use crate::cli::CheckArgs;
use crate::diagnostics::{print_problems, summary};
use crate::error::CommandError;

/// Checks every file and reports all problems; the worst outcome sets the exit code.
pub fn run(args: CheckArgs) -> Result<ExitCode, CommandError> {
    let mut worst = 0u8;
    for file in &args.files {
        match flow_dsl::check_file(file) {
            Ok(checked) => {
                print_problems(&checked.warnings);
                let warnings = checked.warnings.len();
                if warnings > 0 && args.deny_warnings {
                    worst = worst.max(1);
                }
                if !args.quiet {
                    let n = checked.workflow.workstreams.len();
                    let status = if warnings == 0 {
                        "ok".to_string()
                    } else {
                        summary(0, warnings)
                    };
                    eprintln!(
                        "{}: {status} (workflow `{}`, {n} workstream{})",
                        file.display(),
                        checked.workflow.name,
                        if n == 1 { "" } else { "s" }
                    );
                }
            }
            Err(problems) => {
                print_problems(&problems.problems);
                eprintln!(
                    "{}: {}",
                    file.display(),
                    summary(problems.error_count(), problems.warning_count())
                );
                worst = 2;
            }
        }
    }
    if worst == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CommandError::Exit(worst))
    }
}
