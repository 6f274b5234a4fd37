//! `flow retry`: asks a run going on to run a failed workstream again (a request the run's core
//! decides on, as `flow watch`'s r).

use std::process::ExitCode;

use flow_engine::Site;
use flow_engine::run::requests::{self, Action};
use flow_engine::site::RunDir;

use crate::cli::RetryArgs;
use crate::commands::status::load_run;
use crate::error::CommandError;

/// Leaves the request for the run and says so.
pub fn run(args: RetryArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let run_dir = target(site, args.run.as_deref(), &args.workstream, Action::Retry)?;
    requests::send(&run_dir, &args.workstream, Action::Retry).map_err(|e| cannot_ask(&run_dir, e))?;
    println!(
        "asked run {} to retry {}: `flow watch` or `flow status` shows what it does",
        run_dir.id, args.workstream
    );
    Ok(ExitCode::SUCCESS)
}

/// The run a request goes to, once the request makes sense as the run's record stands: the
/// run goes on, the workstream is one of it, in a phase where the request means something.
pub fn target(site: &Site, run: Option<&str>, workstream: &str, action: Action) -> Result<RunDir, CommandError> {
    let (run_dir, state) = load_run(site, run)?;
    let Some(ws) = state.workstream(workstream) else {
        let names: Vec<&str> = state.workstreams.iter().map(|w| w.name.as_str()).collect();
        return Err(CommandError::Usage(miette::miette!(
            help = format!("its workstreams: {}", names.join(", ")),
            "run {} has no workstream `{workstream}`",
            run_dir.id
        )));
    };
    if let Some(why) = requests::refusal(state.status, &ws.name, ws.phase, action) {
        return Err(CommandError::Usage(miette::miette!("{why}")));
    }
    Ok(run_dir)
}

/// A request that could not be written.
pub fn cannot_ask(run_dir: &RunDir, e: std::io::Error) -> CommandError {
    CommandError::System(miette::miette!(
        "cannot leave a request in {}: {e}",
        run_dir.dir.display()
    ))
}
