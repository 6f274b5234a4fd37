//! `flow run`: run a workflow to its end.

use std::io::IsTerminal;
use std::process::ExitCode;

use flow_engine::plan::Plan;
use flow_engine::report::progress::{BarProgress, PlainProgress};
use flow_engine::report::run_table::run_table;
use flow_engine::run::runner::{self, Site};
use flow_engine::run::scheduler::Observer;
use flow_engine::run::state::{RunState, RunStatus};

use crate::cli::{ProgressMode, RunArgs};
use crate::commands::{CommandError, load};

/// Starts a run and prints its progress and final table.
pub async fn run(args: RunArgs) -> Result<ExitCode, CommandError> {
    if args.resume {
        return crate::commands::resume::continue_workflow(&args.file, args.run_options).await;
    }
    let checked = load(&args.file)?;
    let workflow = checked.workflow;
    let cwd = std::env::current_dir()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read the current folder: {e}")))?;
    let site = Site::find(&cwd, &workflow).map_err(|e| CommandError::Usage(e.into()))?;
    let only = runner::select(&workflow, &args.only).map_err(|e| CommandError::Usage(e.into()))?;
    let settings = args.run_options.settings(only);
    let total = workflow.workstreams.len();
    let mut observer = observer(args.run_options.progress, total);
    let state = runner::start(Plan::new(workflow), site, settings, observer.as_mut())
        .await
        .map_err(|e| CommandError::Usage(e.into()))?;
    Ok(finish(&state))
}

/// Picks how progress is shown.
pub fn observer(mode: ProgressMode, total: usize) -> Box<dyn Observer> {
    let terminal = std::io::stderr().is_terminal();
    match mode {
        ProgressMode::Bars => Box::new(BarProgress::new(total)),
        ProgressMode::Auto if terminal => Box::new(BarProgress::new(total)),
        ProgressMode::Quiet => Box::new(PlainProgress::new(Box::new(std::io::sink()))),
        _ => Box::new(PlainProgress::new(Box::new(std::io::stderr()))),
    }
}

/// Prints the final table and where to look; the exit code says whether everything succeeded.
pub fn finish(state: &RunState) -> ExitCode {
    let dir = std::path::Path::new(&state.repository)
        .join(".flow")
        .join("runs")
        .join(&state.id);
    let mut out = run_table(state);
    out.push_str(&format!(
        "run {} {}; logs in {}\n",
        state.id,
        status_word(state.status),
        dir.join("logs").display()
    ));
    let code = if state.status == RunStatus::Succeeded {
        out.push_str(&format!("merged into `{}`\n", state.into));
        ExitCode::SUCCESS
    } else {
        out.push_str("continue with `flow resume`; see `flow status` for details\n");
        ExitCode::from(1)
    };
    // A reader that went away (`| head`) loses the table, not the exit code.
    let _ = crate::commands::print_stdout(&out);
    code
}

fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "is still running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "was interrupted",
    }
}
