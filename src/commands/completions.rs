//! `flow completions`: a shell's completion script, made by clap_complete from the command
//! line's own definition, so it never falls behind it.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::CommandError;
use crate::output::print_stdout;

/// Prints the completion script of one shell on standard output.
pub fn run(args: CompletionsArgs) -> Result<ExitCode, CommandError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "flow", &mut script);
    print_stdout(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}
