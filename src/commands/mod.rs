//! One module per verb, each with a `run` function; [`run()`] dispatches to them.

mod check;
mod clean;
mod completions;
mod conflicts;
mod context;
mod demo;
mod done;
mod export;
mod graph;
mod help;
mod hook;
mod init;
mod land;
mod man;
mod merge;
mod open;
mod plan;
mod prepare;
mod progress;
mod report;
mod resolve;
mod resume;
mod retry;
mod run;
mod status;
mod sync;
mod tell;
mod watch;

use std::process::ExitCode;

use flow_engine::Site;

use crate::cli::Command;
use crate::error::CommandError;

/// Runs one verb, in the site (repository and `.flow/`) of the current folder.
pub async fn run(command: Command) -> Result<ExitCode, CommandError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CommandError::System(miette::miette!("cannot read the current folder: {e}")))?;
    let site = Site::find(&cwd);
    match command {
        Command::Init(args) => init::run(args, &site),
        Command::Check(args) => check::run(args, &site),
        Command::Plan(args) => plan::run(args, &site),
        Command::Graph(args) => graph::run(args, &site),
        Command::Run(args) => run::run(args, &site).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Prepare(args) => prepare::run(args, &site).await,
        Command::Context(args) => context::run(args, &site),
        Command::Merge(args) => merge::run(args, &site).await,
        Command::Land(args) => land::land(args, &site).await,
        Command::Export(args) => export::run(args, &site),
        Command::Conflicts(args) => conflicts::run(args, &site),
        Command::Sync(args) => sync::run(args, &site).await,
        Command::Resolve(args) => resolve::run(args, &site),
        Command::Open(args) => open::run(args, &site).await,
        Command::Done(args) => done::run(args, &site).await,
        Command::Clean(args) => clean::run(args, &site).await,
        Command::Resume(args) => resume::run(args, &site).await,
        Command::Status(args) => status::status(args, &site),
        Command::Logs(args) => status::logs(args, &site).await,
        Command::Watch(args) => watch::run(args, &site).await,
        Command::Retry(args) => retry::run(args, &site),
        Command::Tell(args) => tell::run(args, &site),
        Command::Report(args) => report::run(args, &site),
        Command::Runs(args) => status::runs(args, &site),
        Command::Usage(args) => status::usage(args, &site),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::Help(args) => help::run(args),
        Command::Hook(args) => hook::run(args),
    }
}
