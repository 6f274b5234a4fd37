//! `flow tell`: sends a message to a workstream's agent during a run (a request the run's core
//! decides on, as `flow watch`'s m).

use std::process::ExitCode;

use flow_engine::Site;
use flow_engine::run::requests::{self, Action};

use crate::cli::TellArgs;
use crate::commands::retry::{cannot_ask, target};
use crate::error::CommandError;

/// Leaves the message for the run and says so.
pub fn run(args: TellArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let text = args.text.join(" ");
    if requests::tidy(&text).is_empty() {
        return Err(CommandError::Usage(miette::miette!("the message is empty")));
    }
    let run_dir = target(site, args.run.as_deref(), &args.workstream, Action::Message)?;
    requests::send_message(&run_dir, &args.workstream, &text).map_err(|e| cannot_ask(&run_dir, e))?;
    println!(
        "sent run {} a message for {}: its agent gets it when its current attempt ends",
        run_dir.id, args.workstream
    );
    Ok(ExitCode::SUCCESS)
}
