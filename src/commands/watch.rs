//! `flow watch`: the full-screen dashboard (see `flow_engine::tui`).

use std::process::ExitCode;

use flow_engine::Site;

use crate::cli::WatchArgs;
use crate::error::CommandError;

/// Shows the dashboard until the person quits.
pub async fn run(args: WatchArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let _ = (args, site);
    Err(CommandError::Usage(miette::miette!("flow watch is not built yet: use `flow status` or `flow report`")))
}
