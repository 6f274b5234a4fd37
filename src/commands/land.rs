//! `flow land`, and the exchange through the remote: `flow run --only WS --push` and
//! `flow merge --fetch`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_dsl::{Isolation, Workflow};
use flow_engine::by_hand::Layout;
use flow_engine::exchange::{self, ResultNote};
use flow_engine::integrate::Integration;
use flow_engine::preflight::{Context, preflight};
use flow_engine::{Plan, Site, start_after};

use crate::cli::RunArgs;
use crate::commands::progress::{finish, observers};
use crate::diagnostics::{print_findings, summary};
use crate::error::{CommandError, git_failed, run_failed};
use crate::output::say;

/// A stop signal that Ctrl-C sets.
pub fn ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
        }
    });
    cancel_rx
}

/// The merge step's settings for `flow merge` and for the dependencies of a pushed run.
pub fn integration<'a>(
    plan: &'a Plan,
    layout: &'a Layout,
    site: &Site,
    parent_env: &'a BTreeMap<String, String>,
    note: &str,
) -> Result<Integration<'a>, CommandError> {
    let flow_dir = site.flow_dir();
    flow_engine::run::store::ensure_flow_dir(flow_dir)
        .map_err(|e| CommandError::Failed(miette::miette!("cannot create {}: {e}", flow_dir.display())))?;
    Ok(Integration {
        git: &layout.git,
        workflow: &plan.workflow,
        verify_dir: site.integration_dir(&plan.workflow),
        log_path: flow_dir.join("merge.log"),
        parent_env,
        grace: std::time::Duration::from_secs(5),
        note: note.to_string(),
    })
}

/// `flow run --only WS --push`: merges WS's dependencies from their pushed branches, runs
/// WS alone, and pushes its branch and result.
pub async fn run_and_push(workflow: Workflow, args: RunArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let [name] = args.only.as_slice() else {
        return Err(CommandError::Usage(miette::miette!(
            "--push runs one workstream (one job of the graph): name exactly one with --only"
        )));
    };
    let index = workflow
        .index_of(name)
        .ok_or_else(|| run_failed(flow_engine::RunError::UnknownWorkstream(name.clone())))?;
    let findings = preflight(
        &workflow,
        &Context {
            git: site.git(),
            root: site.root(),
            path: std::env::var_os("PATH"),
            selected: Some(&[index]),
            branches: false,
        },
    );
    let errors = print_findings(&findings);
    if errors > 0 {
        eprintln!("{}", summary(errors, findings.len() - errors));
        return Err(CommandError::Exit(2));
    }
    let plan = Plan::new(workflow);
    let layout = Layout::new(&plan.workflow, site).map_err(run_failed)?;
    if let Some(head) = layout.git.branch_head(&layout.into).map_err(git_failed)?
        && head != layout.base_commit
    {
        return Err(run_failed(flow_engine::RunError::Leftovers {
            what: "the integration branch with merges",
            names: layout.into.clone(),
            file: plan
                .workflow
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }));
    }
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let done = {
        let integration = integration(&plan, &layout, site, &parent_env, "flow run --push (a dependency)")?;
        exchange::merge_dependencies(&plan, &layout, integration, &args.remote, index, ctrl_c())
            .await
            .map_err(CommandError::Failed)?
    };
    for (i, _) in &done {
        say(&format!(
            "merged `{}` from {} (pushed by its job)",
            plan.workflow.workstreams[*i].name, args.remote
        ));
    }
    let settings = args.run_options.settings(Some(vec![index]));
    let mut observers = observers(
        args.run_options.progress,
        plan.workflow.workstreams.len(),
        site,
        &plan.workflow.status_file,
    );
    let state = start_after(plan.clone(), site, settings, &mut observers, done)
        .await
        .map_err(run_failed)?;
    let code = finish(&state, &plan, site);
    let ws_state = &state.workstreams[index];
    if !ws_state.phase.is_success() {
        say(&format!("`{name}` did not succeed: nothing pushed"));
        return Ok(code);
    }
    let ws = &plan.workflow.workstreams[index];
    let commit = if ws.isolation == Isolation::Worktree {
        layout
            .git
            .branch_head(&plan.workflow.branch_of(ws))
            .map_err(git_failed)?
    } else {
        layout.git.branch_head(&layout.into).map_err(git_failed)?
    };
    let Some(commit) = commit else {
        return Err(CommandError::Failed(miette::miette!(
            "`{name}` succeeded but its branch is gone"
        )));
    };
    let decision_log = std::fs::read_to_string(site.run_dir(&state.id).decision_log_path()).ok();
    let note = ResultNote {
        version: exchange::NOTE_VERSION,
        workflow: plan.workflow.name.clone(),
        workstream: name.clone(),
        run: state.id.clone(),
        start: ws_state.start_commit.clone(),
        state: ws_state.clone(),
        decision_log,
    };
    let pushed = exchange::write_note(&layout.git, &plan.workflow, index, commit, &note)
        .and_then(|()| exchange::push_workstream(&layout.git, &args.remote, &plan.workflow, index));
    match pushed {
        Ok(()) => {
            let what = if ws.isolation == Isolation::Worktree {
                format!("{} and its result", plan.workflow.branch_of(ws))
            } else {
                "its result".to_string()
            };
            say(&format!("pushed {what} to {}", args.remote));
            Ok(code)
        }
        Err(e) => Err(CommandError::Failed(e.into())),
    }
}

/// `flow land`: pushes the integration branch, then opens or updates its pull request.
pub async fn land(args: crate::cli::LandArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let workflow = crate::load::load(&crate::load::workflow_file(args.file.as_deref(), site))?.workflow;
    let layout = Layout::new(&workflow, site).map_err(run_failed)?;
    let remote = args.remote.clone().unwrap_or_else(|| "origin".to_string());
    if layout.git.branch_head(&layout.into).map_err(git_failed)?.is_none() {
        return Err(CommandError::Failed(miette::miette!(
            "no integration branch {} to land: run the workflow (or `flow merge`) first",
            layout.into
        )));
    }
    exchange::push_branch(&layout.git, &remote, &layout.into).map_err(|e| CommandError::Failed(e.into()))?;
    say(&format!("pushed {} to {remote}", layout.into));
    Ok(ExitCode::SUCCESS)
}
