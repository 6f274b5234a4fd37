//! `flow report`: a run's HTML page (see `flow_engine::report::html`).

use std::process::ExitCode;

use flow_dsl::Workflow;
use flow_engine::report::html::{Extras, render};
use flow_engine::report::usage::usage_report;
use flow_engine::run::store::read_events;
use flow_engine::view::RunView;
use flow_engine::{RunDir, RunState, Site};

use crate::cli::ReportArgs;
use crate::commands::status::load_run;
use crate::error::CommandError;
use crate::output::{print_stdout, say};

/// A recorded run with everything a view of it needs: its folder, state, events folded into
/// a view, and its workflow when the file still reads.
pub struct Seen {
    pub run_dir: RunDir,
    pub state: RunState,
    pub workflow: Option<Workflow>,
    pub view: RunView,
}

/// Reads a run (the one named, else the latest) and folds it into a view at this moment.
pub fn see(site: &Site, run: Option<&str>) -> Result<Seen, CommandError> {
    let (run_dir, state) = load_run(site, run)?;
    let events = read_events(&run_dir.events_path())
        .map_err(|e| CommandError::System(miette::miette!("cannot read run {}: {e}", state.id)))?;
    let workflow = state
        .workflow_file
        .as_ref()
        .and_then(|f| flow_dsl::check_file(std::path::Path::new(f)).ok())
        .map(|c| c.workflow);
    let view = RunView::build(&state, &events, workflow.as_ref(), flow_engine::time::now());
    Ok(Seen {
        run_dir,
        state,
        workflow,
        view,
    })
}

/// Writes the page and says where.
pub fn run(args: ReportArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let seen = see(site, args.run.id())?;
    let usage = usage_report(&seen.state, seen.workflow.as_ref());
    let extras = Extras::gather(
        &seen.view,
        &seen.run_dir,
        site.git(),
        seen.workflow.as_ref().map(|_| usage),
    );
    let page = render(&seen.view, &extras);
    match args.output.as_deref() {
        Some(path) if path.as_os_str() == "-" => print_stdout(&page)?,
        output => {
            let path = output.map_or_else(|| seen.run_dir.dir.join("report.html"), |p| p.to_path_buf());
            std::fs::write(&path, page).map_err(|e| {
                CommandError::System(miette::miette!("cannot write the report to {}: {e}", path.display()))
            })?;
            print_stdout(&format!("{}\n", path.display()))?;
            say("open it in a browser: it needs no network");
        }
    }
    Ok(ExitCode::SUCCESS)
}
