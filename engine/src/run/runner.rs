//! Starting and resuming runs: everything between a validated workflow and the scheduler
//! (repository, base and integration branches, the run folder, the lock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flow_dsl::{Isolation, Workflow};
use miette::Diagnostic;
use tokio::sync::watch;

use crate::git::{Git, GitError, Oid};
use crate::plan::Plan;
use crate::run::job::{RunContext, worktrees_dir};
use crate::run::lock::{LockError, RunLock};
use crate::run::scheduler::{Observer, Options, Scheduler};
use crate::run::spec_hash::{spec_hashes, text_hash};
use crate::run::state::{Phase, RunState, RunStatus, WorkstreamState, now};
use crate::run::store::{EventLog, RunDir, new_run_id};

/// Why a run could not start.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RunError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] LockError),
    #[error("HEAD is detached and the workflow names no `base`")]
    #[diagnostic(
        code(flow::run::no_base),
        help("check out a branch, or add `base \"main\"` to the `workflow` block")
    )]
    NoBase,
    #[error("{what} already exist from an earlier run: {names}")]
    #[diagnostic(
        code(flow::run::leftovers),
        help("continue that run with `flow resume`, or remove them with `flow clean {file}` to start over")
    )]
    Leftovers {
        what: &'static str,
        names: String,
        file: String,
    },
    #[error("cannot {action} {path}: {error}")]
    #[diagnostic(code(flow::run::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("no run to resume in {0}")]
    #[diagnostic(code(flow::run::no_run), help("start one with `flow run`"))]
    NoRun(PathBuf),
    #[error("unknown workstream `{0}` in --only")]
    #[diagnostic(code(flow::run::unknown_workstream))]
    UnknownWorkstream(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub options: Options,
    /// Between SIGINT and SIGKILL when stopping an agent.
    pub grace: Duration,
    /// The first retry's delay.
    pub retry_base: Duration,
}

impl Default for RunSettings {
    fn default() -> RunSettings {
        RunSettings {
            options: Options::default(),
            grace: Duration::from_secs(5),
            retry_base: Duration::from_secs(1),
        }
    }
}

/// Where a workflow runs: its repository (if any) and its `.flow/` folder.
pub struct Site {
    pub git: Option<Git>,
    pub root: PathBuf,
    pub flow_dir: PathBuf,
}

impl Site {
    /// Finds the repository from `dir`; a workflow that needs no git may run outside one.
    pub fn find(dir: &Path, workflow: &Workflow) -> Result<Site, RunError> {
        let needs_git = workflow.workstreams.iter().any(|w| w.isolation == Isolation::Worktree);
        match Git::discover(dir) {
            Ok(git) => {
                let root = git.root().to_path_buf();
                Ok(Site {
                    flow_dir: root.join(".flow"),
                    root,
                    git: Some(git),
                })
            }
            Err(e) if needs_git => Err(e.into()),
            Err(_) => {
                let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                Ok(Site {
                    flow_dir: root.join(".flow"),
                    root,
                    git: None,
                })
            }
        }
    }
}

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

/// Starts a new run of a plan.
pub async fn start(
    plan: Plan,
    site: Site,
    settings: RunSettings,
    observer: &mut dyn Observer,
) -> Result<RunState, RunError> {
    let workflow = &plan.workflow;
    let file = workflow
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let lock = RunLock::acquire(&site.flow_dir, &workflow.name)?;
    let (base, base_commit) = match &site.git {
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
    let worktrees = worktrees_dir(workflow, &site.root);
    if let (Some(git), Some(commit)) = (&site.git, base_commit) {
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
            Some(head) if head != commit => {
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
    let run_dir = RunDir::new(&site.flow_dir, &id);
    run_dir.create().map_err(|error| RunError::Io {
        action: "create",
        path: run_dir.dir.clone(),
        error,
    })?;
    let hashes = spec_hashes(workflow);
    let t = now();
    let workflow_text = workflow
        .path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let state = RunState {
        version: 1,
        id: id.clone(),
        workflow: workflow.name.clone(),
        workflow_file: workflow.path.as_ref().map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        }),
        workflow_hash: text_hash(&workflow_text),
        repository: site.root.display().to_string(),
        base,
        base_commit: base_commit.map(|c| c.to_string()),
        into: workflow.into.clone(),
        last_good: base_commit.map(|c| c.to_string()),
        status: RunStatus::Running,
        started_at: t,
        ended_at: None,
        last_event: 0,
        workstreams: workflow
            .workstreams
            .iter()
            .zip(hashes)
            .map(|(w, h)| WorkstreamState::new(&w.name, h, t))
            .collect(),
        alerts: vec![],
    };
    run_dir.save(&state).map_err(|error| RunError::Io {
        action: "write",
        path: run_dir.state_path(),
        error,
    })?;
    let result = drive(plan, site, worktrees, state, run_dir, settings, observer, false).await;
    drop(lock);
    result
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    plan: Plan,
    site: Site,
    worktrees: PathBuf,
    state: RunState,
    run_dir: RunDir,
    settings: RunSettings,
    observer: &mut dyn Observer,
    resumed: bool,
) -> Result<RunState, RunError> {
    let log = EventLog::open(&run_dir.events_path()).map_err(|error| RunError::Io {
        action: "open",
        path: run_dir.events_path(),
        error,
    })?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let plan = Arc::new(plan);
    let ctx = Arc::new(RunContext {
        workflow: Arc::new(plan.workflow.clone()),
        git: site.git,
        run_dir: run_dir.clone(),
        worktrees_dir: worktrees,
        parent_env,
        cancel: cancel_rx,
        grace: settings.grace,
        retry_base: settings.retry_base,
    });
    let scheduler = Scheduler::new(plan, ctx, state, run_dir, log, observer, settings.options, cancel_tx);
    Ok(scheduler.run(resumed).await)
}

/// Tells whether a recorded commit id still names a commit.
pub fn still_there(git: &Git, commit: Option<&str>) -> Option<Oid> {
    let oid: Oid = commit?.parse().ok()?;
    git.resolve(&oid.to_string()).ok()
}

/// Counts the workstreams of a state in each final phase, for summaries.
pub fn failed_count(state: &RunState) -> usize {
    state
        .workstreams
        .iter()
        .filter(|w| {
            matches!(
                w.phase,
                Phase::Failed | Phase::Conflicted | Phase::Skipped | Phase::Cancelled
            )
        })
        .count()
}
