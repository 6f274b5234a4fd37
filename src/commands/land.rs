//! `flow land`, and the exchange through the remote: `flow run --only WS --push` and
//! `flow merge --fetch`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_dsl::{Isolation, Workflow};
use flow_engine::by_hand::Layout;
use flow_engine::exchange::{self, ResultNote};
use flow_engine::integrate::Integration;
use flow_engine::land::github;
use flow_engine::preflight::{Context, preflight};
use flow_engine::{Plan, Site, start_after};

use crate::cli::RunArgs;
use crate::commands::progress::{finish, observers};
use crate::diagnostics::{print_findings, summary};
use crate::error::{CommandError, git_failed, run_failed};
use crate::output::say;

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
        let integration = Integration::by_hand(
            site,
            &layout.git,
            &plan.workflow,
            &parent_env,
            "flow run --push (a dependency)",
        )
        .map_err(|e| CommandError::Failed(miette::miette!("cannot create {}: {e}", site.flow_dir().display())))?;
        exchange::merge_dependencies(
            &plan,
            &layout,
            integration,
            &args.remote,
            index,
            crate::interrupt::stop_on_ctrl_c(),
        )
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
    let (file, run) = match crate::load::file_and_names(args.target.as_slice()) {
        (Some(file), _) => (Some(file), None),
        (None, words) => match words.first() {
            Some(id) => {
                let state = site.run_dir(id).load().map_err(|e| {
                    CommandError::Usage(miette::miette!("no run `{id}` to land ({e}); `flow runs` lists them"))
                })?;
                (state.workflow_file.clone().map(std::path::PathBuf::from), Some(state))
            }
            None => (None, None),
        },
    };
    let workflow = crate::load::load(&crate::load::workflow_file(file.as_deref(), site))?.workflow;
    let pull_request = if args.no_pull_request {
        None
    } else if args.pull_request {
        Some(workflow.integrate.pull_request.clone().unwrap_or_default())
    } else {
        workflow.integrate.pull_request.clone()
    };
    land_run(&workflow, site, args.remote.as_deref(), pull_request.as_ref(), run).await?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes the workflow's integration branch to `remote` (else the workflow's `push`, else
/// `origin`) and, once that succeeded, opens or updates its pull request.
pub async fn land_workflow(
    workflow: &Workflow,
    site: &Site,
    remote: Option<&str>,
    pull_request: Option<&flow_dsl::PullRequest>,
) -> Result<(), CommandError> {
    land_run(workflow, site, remote, pull_request, None).await
}

/// Lands as [`land_workflow`] does, the summary taken from `run` when given.
async fn land_run(
    workflow: &Workflow,
    site: &Site,
    remote: Option<&str>,
    pull_request: Option<&flow_dsl::PullRequest>,
    run: Option<flow_engine::RunState>,
) -> Result<(), CommandError> {
    let layout = Layout::new(workflow, site).map_err(run_failed)?;
    let remote = remote
        .map(str::to_string)
        .or_else(|| workflow.integrate.push.clone())
        .unwrap_or_else(|| "origin".to_string());
    if layout.git.branch_head(&layout.into).map_err(git_failed)?.is_none() {
        return Err(CommandError::Failed(miette::miette!(
            "no integration branch {} to land: run the workflow (or `flow merge`) first",
            layout.into
        )));
    }
    exchange::push_branch(&layout.git, &remote, &layout.into).map_err(|e| CommandError::Failed(e.into()))?;
    say(&format!("pushed {} to {remote}", layout.into));
    let Some(pull_request) = pull_request else {
        return Ok(());
    };
    let github = github_for(&layout, &remote).map_err(|e| CommandError::Failed(e.into()))?;
    let states;
    let notes: Vec<ResultNote>;
    let recorded = match run {
        Some(state) => {
            let log = std::fs::read_to_string(site.run_dir(&state.id).decision_log_path()).ok();
            Some((state, log))
        }
        None => latest_run_of(workflow, site),
    };
    let (source, workstreams, decision_log) = match recorded {
        Some((state, log)) => {
            states = state;
            (
                format!("run `{}`", states.id),
                states.workstreams.iter().collect::<Vec<_>>(),
                log,
            )
        }
        None => {
            notes = (0..workflow.workstreams.len())
                .filter_map(|i| exchange::read_note(&layout.git, workflow, i).ok().flatten())
                .collect();
            let log: Vec<String> = notes.iter().filter_map(|n| n.decision_log.clone()).collect();
            (
                format!("the results its jobs pushed to {remote}"),
                notes.iter().map(|n| &n.state).collect(),
                (!log.is_empty()).then(|| log.join("\n")),
            )
        }
    };
    let body = flow_engine::land::summary(&flow_engine::land::SummaryInput {
        workflow: &workflow.name,
        into: &layout.into,
        source,
        workstreams,
        decision_log,
    });
    let spec = github::PullRequestSpec {
        head: layout.into.clone(),
        base: pull_request.base.clone().unwrap_or_else(|| layout.base.clone()),
        title: pull_request
            .title
            .clone()
            .unwrap_or_else(|| format!("flow: {}", workflow.name)),
        body,
        draft: pull_request.draft,
        labels: pull_request.labels.clone(),
    };
    let landed = github
        .open_or_update(&spec)
        .await
        .map_err(|e| CommandError::Failed(e.into()))?;
    let verb = if landed.updated { "updated" } else { "opened" };
    say(&format!("{verb} pull request #{}: {}", landed.number, landed.url));
    Ok(())
}

/// The latest recorded run of this workflow in this repository, with its decision log.
fn latest_run_of(workflow: &Workflow, site: &Site) -> Option<(flow_engine::RunState, Option<String>)> {
    let id = site.latest_run()?;
    let dir = site.run_dir(&id);
    let state = dir.load().ok()?;
    (state.workflow == workflow.name).then(|| {
        let log = std::fs::read_to_string(dir.decision_log_path()).ok();
        (state, log)
    })
}

/// The GitHub repository, API and token for a remote.
fn github_for(layout: &Layout, remote: &str) -> Result<github::GitHub, github::GithubError> {
    let repository = match std::env::var("FLOW_GITHUB_REPOSITORY") {
        Ok(named) if !named.trim().is_empty() => named.trim().to_string(),
        _ => {
            let url = std::process::Command::new("git")
                .arg("-C")
                .arg(layout.git.root())
                .args(["remote", "get-url", remote])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            github::repository_of(&url)
                .or_else(|| std::env::var("GITHUB_REPOSITORY").ok())
                .ok_or_else(|| github::GithubError::Repository {
                    remote: remote.to_string(),
                    url,
                })?
        }
    };
    Ok(github::GitHub {
        api: github::api_from_env(),
        token: github::token_from_env()?,
        repository,
    })
}
