//! The `flow` binary: parses the command line, runs one verb, maps its outcome to an exit code.

mod cli;
mod commands;
mod diagnostics;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(error) => error.report(),
    }
}
