//! Starting a new run: everything between a validated workflow and its driver (the lock, the
//! base and integration branches, leftovers of earlier runs, the run folder).

use flow_dsl::{Isolation, Workflow};

use crate::plan::Plan;
use crate::run::driver::Begin;
use crate::run::error::RunError;
use crate::run::lock::RunLock;
use crate::run::observer::Observer;
use crate::run::recover::repair_git;
use crate::run::session::{RunSettings, drive};
use crate::run::spec_hash::{spec_hashes, text_hash};
use crate::run::state::{RunState, RunStatus, WorkstreamState};
use crate::run::store::new_run_id;
use crate::site::Site;
use crate::time;

/// The version of `state.json` this flow writes: 2 writes times as RFC 3339 text.
pub const STATE_VERSION: u32 = 2;

/// The workstreams `--only` selects, with everything they depend on.
pub fn select(workflow: &Workflow, only: &[String]) -> Result<Option<Vec<usize>>, RunError> {
    if only.is_empty() {
        return Ok(None);
    }
    let mut selected = vec![false; workflow.workstreams.len()];
    let mut stack = vec![];
    for name in only {
        stack.push(
            workflow
                .index_of(name)
                .ok_or_else(|| RunError::UnknownWorkstream(name.clone()))?,
        );
    }
    while let Some(i) = stack.pop() {
        if !selected[i] {
            selected[i] = true;
            stack.extend(workflow.workstreams[i].dependencies.iter().copied());
        }
    }
    Ok(Some(
        selected
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| i)
            .collect(),
    ))
}

/// Starts a new run of a plan and drives it to its end.
pub async fn start(
    plan: Plan,
    site: &Site,
    settings: RunSettings,
    observer: &mut dyn Observer,
) -> Result<RunState, RunError> {
    start_after(plan, site, settings, observer, vec![]).await
}

/// Starts a new run whose `done` workstreams were run elsewhere and are already merged into
/// the integration branch (their states as they were recorded there): the dependencies of a
/// workstream run alone with `--push` (see `crate::exchange`).
pub async fn start_after(
    plan: Plan,
    site: &Site,
    settings: RunSettings,
    observer: &mut dyn Observer,
    done: Vec<(usize, WorkstreamState)>,
) -> Result<RunState, RunError> {
    let workflow = &plan.workflow;
    let file = workflow
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if workflow.workstreams.iter().any(|w| w.isolation == Isolation::Worktree) {
        site.require_git()?;
    }
    let lock = RunLock::acquire(site.flow_dir(), &workflow.name)?;
    let (base, base_commit) = match site.git() {
        Some(git) => {
            let base = match &workflow.base {
                Some(b) => b.clone(),
                None => git.current_branch()?.ok_or(RunError::NoBase)?,
            };
            let commit = git.resolve(&base)?;
            (Some(base), Some(commit))
        }
        None => (workflow.base.clone(), None),
    };
    if let Some(git) = site.git() {
        for line in repair_git(git, workflow, site) {
            observer.notice(&line);
        }
    }
    if let (Some(git), Some(commit)) = (site.git(), base_commit) {
        let selection = settings.options.only.clone();
        let mut leftovers = vec![];
        for (i, ws) in workflow.workstreams.iter().enumerate() {
            let chosen = selection.as_ref().is_none_or(|s| s.contains(&i));
            if chosen && ws.isolation == Isolation::Worktree && git.branch_head(&workflow.branch_of(ws))?.is_some() {
                leftovers.push(workflow.branch_of(ws));
            }
        }
        if !leftovers.is_empty() {
            return Err(RunError::Leftovers {
                what: "workstream branches",
                names: leftovers.join(", "),
                file,
            });
        }
        match git.branch_head(&workflow.into)? {
            Some(head) if head != commit && done.is_empty() => {
                return Err(RunError::Leftovers {
                    what: "the integration branch with merges",
                    names: workflow.into.clone(),
                    file,
                });
            }
            Some(_) => {}
            None => {
                git.set_branch(&workflow.into, commit, None, "flow: create the integration branch")?;
            }
        }
    }
    let id = new_run_id();
    let run_dir = site.run_dir(&id);
    run_dir.create().map_err(RunError::io("create", &run_dir.dir))?;
    let t = time::now();
    let workflow_text = workflow
        .path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let last_good = match (site.git(), done.is_empty()) {
        (Some(git), false) => git.branch_head(&workflow.into)?.map(|c| c.to_string()),
        _ => base_commit.map(|c| c.to_string()),
    };
    let mut state = RunState {
        version: STATE_VERSION,
        id: id.clone(),
        workflow: workflow.name.clone(),
        workflow_file: workflow.path.as_ref().map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        }),
        workflow_hash: text_hash(&workflow_text),
        repository: site.root().display().to_string(),
        base,
        base_commit: base_commit.map(|c| c.to_string()),
        into: workflow.into.clone(),
        last_good,
        status: RunStatus::Running,
        started_at: t,
        ended_at: None,
        last_event: 0,
        workstreams: workflow
            .workstreams
            .iter()
            .zip(spec_hashes(workflow))
            .map(|(w, h)| WorkstreamState::new(&w.name, h, t))
            .collect(),
        alerts: vec![],
        overruns: vec![],
    };
    for (i, recorded) in done {
        state.workstreams[i] = recorded;
    }
    run_dir
        .save(&state)
        .map_err(RunError::io("write", run_dir.state_path()))?;
    run_dir
        .make_latest()
        .map_err(RunError::io("write", site.flow_dir().join("latest")))?;
    let begin = Begin {
        resumed: false,
        workflow_hash: None,
    };
    let result = drive(plan, site, state, run_dir, settings, observer, begin).await;
    drop(lock);
    result
}
