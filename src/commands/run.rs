//! `flow run`: run a workflow to its end.

use std::process::ExitCode;

use flow_engine::preflight::{Context, preflight};
use flow_engine::{Plan, Site, select, start};

use crate::cli::RunArgs;
use crate::commands::progress::{finish, observers};
use crate::diagnostics::{print_findings, summary};
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
    if args.push {
        return crate::commands::land::run_and_push(workflow, args, site).await;
    }
    let only = select(&workflow, &args.only).map_err(run_failed)?;
    // What would fail once worktrees exist, found before any is made.
    let findings = preflight(
        &workflow,
        &Context {
            git: site.git(),
            root: site.root(),
            path: std::env::var_os("PATH"),
            selected: only.as_deref(),
            branches: false,
        },
    );
    let errors = print_findings(&findings);
    if errors > 0 {
        eprintln!("{}", summary(errors, findings.len() - errors));
        return Err(CommandError::Exit(2));
    }
    let settings = args.run_options.settings(only);
    let progress = if args.watch {
        crate::commands::watch::require_terminal()?;
        crate::cli::ProgressMode::Quiet
    } else {
        args.run_options.progress
    };
    let mut observers = observers(progress, workflow.workstreams.len(), site, &workflow.status_file);
    let dashboard = args.watch.then(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        observers
            .0
            .push(Box::new(crate::commands::watch::StartDashboard { tx: Some(tx) }));
        crate::commands::watch::dashboard_for(site, rx)
    });
    if let Some(notifier) = flow_engine::notifier::Notifier::for_workflow(&workflow) {
        observers.0.push(Box::new(notifier));
    }
    let plan = Plan::new(workflow);
    let state = start(plan.clone(), site, settings, &mut observers).await;
    drop(observers);
    if let Some(dashboard) = dashboard
        && let Ok(Err(e)) = dashboard.await
    {
        eprintln!("the dashboard stopped: {e}");
    }
    let state = state.map_err(run_failed)?;
    let code = finish(&state, &plan, site);
    // `integrate { push "REMOTE" }`: a run that merged everything lands.
    if state.status == flow_engine::RunStatus::Succeeded && plan.workflow.integrate.push.is_some() {
        let workflow = &plan.workflow;
        crate::commands::land::land_workflow(workflow, site, None, workflow.integrate.pull_request.as_ref()).await?;
    }
    Ok(code)
}
