//! `flow run`: run a workflow to its end.

use std::process::ExitCode;

use flow_engine::{Plan, Site, select, start};

use crate::cli::RunArgs;
use crate::commands::progress::{finish, observers};
use crate::error::{CommandError, run_failed};
use crate::load::{load, workflow_file};

/// Starts a run (or, with `--resume`, continues the latest) and prints its progress and
/// final table.
pub async fn run(args: RunArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let file = workflow_file(args.file.as_deref(), site);
    if args.resume {
        return crate::commands::resume::continue_workflow(&file, args.run_options, site).await;
    }
    let workflow = load(&file)?.workflow;
    let only = select(&workflow, &args.only).map_err(run_failed)?;
    let settings = args.run_options.settings(only);
    let mut observers = observers(
        args.run_options.progress,
        workflow.workstreams.len(),
        site,
        &workflow.status_file,
    );
    let plan = Plan::new(workflow);
    let state = start(plan.clone(), site, settings, &mut observers)
        .await
        .map_err(run_failed)?;
    Ok(finish(&state, &plan, site))
}
