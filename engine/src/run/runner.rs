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
use crate::run::recover::{repair_git, stop_leftover_processes};
use crate::run::scheduler::{Observer, Options, Scheduler};
use crate::run::spec_hash::{spec_hash_with, spec_hashes, text_hash};
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
    #[error(
        "the earlier merge of `{workstream}` cannot be taken out of {into} cleanly: later merges changed the same lines"
    )]
    #[diagnostic(
        code(flow::run::undo_conflict),
        help("start over with `flow clean --force` and `flow run`, or undo it by hand in {into} and resume")
    )]
    UndoConflict { workstream: String, into: String },
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
    if let Some(git) = &site.git {
        report_repairs(&repair_git(git, workflow, &worktrees));
    }
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
    run_dir.make_latest().map_err(|error| RunError::Io {
        action: "write",
        path: site.flow_dir.join("latest"),
        error,
    })?;
    let result = drive(plan, site, worktrees, state, run_dir, settings, observer, None).await;
    drop(lock);
    result
}

/// Runs the scheduler over a prepared state; `resumed_with_hash` carries the workflow file's
/// hash when an earlier run is continued.
#[allow(clippy::too_many_arguments)]
async fn drive(
    plan: Plan,
    site: Site,
    worktrees: PathBuf,
    state: RunState,
    run_dir: RunDir,
    settings: RunSettings,
    observer: &mut dyn Observer,
    resumed_with_hash: Option<String>,
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
        workflow: plan.workflow.clone(),
        git: site.git,
        run_dir: run_dir.clone(),
        worktrees_dir: worktrees,
        parent_env,
        cancel: cancel_rx,
        grace: settings.grace,
        retry_base: settings.retry_base,
        spec_hashes: spec_hashes(&plan.workflow),
    });
    let mut scheduler = Scheduler::new(plan, ctx, state, run_dir, log, observer, settings.options, cancel_tx);
    let resumed = resumed_with_hash.is_some();
    if let Some(hash) = resumed_with_hash {
        scheduler = scheduler.with_workflow_hash(hash);
    }
    Ok(scheduler.run(resumed).await)
}

fn report_repairs(done: &[String]) {
    for line in done {
        eprintln!("flow: {line}");
    }
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

/// What a resume does with one workstream, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub workstream: String,
    pub action: Action,
    pub why: String,
}

/// The actions of a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Finished and still valid: not run again.
    Keep,
    /// Its work is checked and kept; only its merge is (re)done.
    Merge,
    /// Its agent finished before the run stopped: its work is checked, the agent is not run again.
    Check,
    /// Run from the start.
    Run,
}

/// A resume worked out: the state as it will be continued, and the decisions that led to it.
pub struct ResumePlan {
    pub decisions: Vec<Decision>,
    /// Events that bring the recorded state in line with the decisions.
    pub events: Vec<crate::run::state::EventKind>,
    pub run_dir: RunDir,
    pub state: RunState,
    /// Where the integration branch is moved back to, if anywhere.
    pub integration_reset: Option<(Oid, String)>,
    /// Merges to take back out of the integration branch because their workstreams run
    /// again, latest first: workstream, the branch's head before and after that merge.
    pub undo_merges: Vec<(String, Oid, Oid)>,
}

/// Loads a run and decides, for every workstream, what continuing it means, checking the
/// record against git (branches and the integration branch may have changed by hand).
pub fn plan_resume(plan: &Plan, site: &Site, run_id: Option<&str>) -> Result<ResumePlan, RunError> {
    use crate::run::state::EventKind;
    let id = match run_id {
        Some(id) => id.to_string(),
        None => crate::run::store::latest_run(&site.flow_dir).ok_or_else(|| RunError::NoRun(site.flow_dir.clone()))?,
    };
    let run_dir = RunDir::new(&site.flow_dir, &id);
    let state = run_dir.load().map_err(|error| RunError::Io {
        action: "read",
        path: run_dir.state_path(),
        error,
    })?;
    let workflow = &plan.workflow;
    let hashes = spec_hashes(workflow);
    let n = workflow.workstreams.len();
    let names_match = state.workstreams.len() == n
        && state
            .workstreams
            .iter()
            .zip(&workflow.workstreams)
            .all(|(s, w)| s.name == w.name);
    if !names_match {
        return Err(RunError::Leftovers {
            what: "workstreams that differ from the workflow's (added, removed or reordered)",
            names: state
                .workstreams
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            file: workflow
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        });
    }
    let git = site.git.as_ref();
    let recorded_good: Option<Oid> = state.last_good.as_deref().and_then(|c| c.parse().ok());
    let into_head = match git {
        Some(g) => g.branch_head(&workflow.into)?,
        None => None,
    };
    // The integration branch as git has it, checked against the record.
    let mut integration_reset = None;
    let mut good = recorded_good;
    if let (Some(g), Some(head), Some(recorded)) = (git, into_head, recorded_good)
        && head != recorded
    {
        let pending_results: Vec<Oid> = state
            .workstreams
            .iter()
            .filter(|w| matches!(w.phase, Phase::Ready | Phase::Merging))
            .filter_map(|w| w.result_commit.as_deref().and_then(|c| c.parse().ok()))
            .collect();
        let unrecorded_merge = g.is_ancestor(recorded, head)?
            && pending_results
                .iter()
                .any(|r| *r == head || g.is_ancestor(*r, head).unwrap_or(false));
        if unrecorded_merge {
            integration_reset = Some((
                recorded,
                "a merge the interrupted run did not finish verifying is undone and redone".to_string(),
            ));
        } else {
            // Moved by hand: continue from where it is; merged workstreams are checked against it.
            good = Some(head);
        }
    }
    let into_now = integration_reset.as_ref().map(|(c, _)| *c).or(good);

    // Decides every workstream against the integration branch as it will be (`into_now`).
    let decide_all = |into_now: Option<Oid>| -> Result<Vec<Decision>, RunError> {
        let mut decisions: Vec<Decision> = Vec::with_capacity(n);
        let mut rerun = vec![false; n];
        let order = plan
            .merge_order
            .iter()
            .copied()
            .chain((0..n).filter(|i| plan.merge_position[*i].is_none()));
        let mut topo: Vec<usize> = order.collect();
        // Dependencies before dependents: sort by wave, stable.
        topo.sort_by_key(|&i| plan.wave_of[i]);
        let mut chosen: Vec<Option<Decision>> = vec![None; n];
        for &i in &topo {
            let ws = &workflow.workstreams[i];
            let recorded = &state.workstreams[i];
            let decide = |action: Action, why: String| Decision {
                workstream: ws.name.clone(),
                action,
                why,
            };
            let changed = recorded.spec_hash != hashes[i];
            let rerun_dependency = ws
                .dependencies
                .iter()
                .find(|&&d| rerun[d])
                .map(|&d| workflow.workstreams[d].name.clone());
            let branch_head = match (git, ws.isolation) {
                (Some(g), Isolation::Worktree) => g.branch_head(&workflow.branch_of(ws))?,
                _ => None,
            };
            let result: Option<Oid> = recorded.result_commit.as_deref().and_then(|c| c.parse().ok());
            let start: Option<Oid> = recorded.start_commit.as_deref().and_then(|c| c.parse().ok());
            // Its own spec is unchanged when its hash over its dependencies' recorded hashes is.
            let recorded_dependencies: Vec<&str> = ws
                .dependencies
                .iter()
                .map(|&d| state.workstreams[d].spec_hash.as_str())
                .collect();
            let changed_dependency = ws
                .dependencies
                .iter()
                .find(|&&d| state.workstreams[d].spec_hash != hashes[d])
                .map(|&d| workflow.workstreams[d].name.clone());
            let own = if changed {
                match changed_dependency {
                    Some(d) if spec_hash_with(workflow, i, &recorded_dependencies) == recorded.spec_hash => {
                        decide(Action::Run, format!("its dependency `{d}` runs again"))
                    }
                    _ => decide(
                        Action::Run,
                        "its spec changed (task, agent, model, scope, test or a dependency's)".into(),
                    ),
                }
            } else {
                match recorded.phase {
                    Phase::Done => decide(Action::Keep, "done".into()),
                    Phase::Merged => {
                        let merge: Option<Oid> = recorded.merge_commit.as_deref().and_then(|c| c.parse().ok());
                        let still_in = match (git, merge, into_now) {
                            (Some(g), Some(m), Some(head)) => m == head || g.is_ancestor(m, head)?,
                            _ => true,
                        };
                        if still_in {
                            decide(Action::Keep, "merged".into())
                        } else if result.is_some() && branch_head == result {
                            decide(
                                Action::Merge,
                                "its merge is no longer in the integration branch; merged again".into(),
                            )
                        } else {
                            decide(
                                Action::Run,
                                "its merge is no longer in the integration branch and its branch changed".into(),
                            )
                        }
                    }
                    Phase::Ready | Phase::Merging => {
                        if result.is_some() && branch_head == result {
                            decide(
                                Action::Merge,
                                if recorded.phase == Phase::Merging {
                                    "its merge was interrupted; merged again".into()
                                } else {
                                    "ready; merged now".into()
                                },
                            )
                        } else {
                            decide(Action::Run, "its branch changed since it was checked".into())
                        }
                    }
                    // Pending too: a resume that decided to check it was itself interrupted before
                    // the check started.
                    Phase::Checking | Phase::Running | Phase::Preparing | Phase::Pending
                        if recorded.agent_finished && (start.is_none() || branch_head.is_some()) =>
                    {
                        decide(
                            Action::Check,
                            "its agent finished before the run stopped; its work is checked, the agent is not run again"
                                .into(),
                        )
                    }
                    Phase::Running | Phase::Preparing | Phase::Checking => decide(Action::Run, "it was interrupted".into()),
                    Phase::Failed => decide(
                        Action::Run,
                        format!(
                            "it failed: {}",
                            recorded.failure.as_ref().map_or("", |f| f.message.as_str())
                        ),
                    ),
                    Phase::Conflicted => decide(Action::Run, "it conflicted".into()),
                    Phase::Cancelled => decide(Action::Run, "it was cancelled".into()),
                    Phase::Skipped => decide(Action::Run, "it was skipped".into()),
                    Phase::Pending => decide(Action::Run, "it had not started".into()),
                }
            };
            let decision = match rerun_dependency {
                Some(d) if own.action != Action::Run => decide(Action::Run, format!("its dependency `{d}` runs again")),
                _ => own,
            };
            // A kept branch must still start inside the integration branch it will merge into.
            let decision = match (decision.action, git, start, into_now) {
                (Action::Merge, Some(g), Some(s), Some(head))
                    if !(ws.dependencies.is_empty() || s == head || g.is_ancestor(s, head)?) =>
                {
                    decide(
                        Action::Run,
                        "the integration commit it started from is no longer in the integration branch".into(),
                    )
                }
                _ => decision,
            };
            rerun[i] = decision.action == Action::Run;
            chosen[i] = Some(decision);
        }
        decisions.extend(chosen.into_iter().flatten());
        decisions.sort_by_key(|d| workflow.index_of(&d.workstream).unwrap_or(usize::MAX));
        Ok(decisions)
    };
    let decisions = decide_all(into_now)?;
    // A merged workstream that runs again must leave the integration branch: its merge is
    // undone in a new commit (latest first), so the merges after it stay as they are.
    let mut undo_merges = vec![];
    if let (Some(_), Some(base)) = (git, state.base_commit.as_deref().and_then(|c| c.parse::<Oid>().ok())) {
        let sequence = merge_sequence(&run_dir, &state);
        for (k, &(i, after)) in sequence.iter().enumerate().rev() {
            let reruns = decisions
                .iter()
                .any(|d| d.workstream == workflow.workstreams[i].name && d.action == Action::Run);
            if reruns && integration_reset.is_none() {
                let before = if k == 0 { base } else { sequence[k - 1].1 };
                undo_merges.push((workflow.workstreams[i].name.clone(), before, after));
            }
        }
    }

    let mut events = vec![];
    if let Some((commit, reason)) = &integration_reset {
        events.push(EventKind::IntegrationReset {
            commit: commit.to_string(),
            reason: reason.clone(),
        });
    } else if good != recorded_good
        && let Some(g) = good
    {
        events.push(EventKind::IntegrationReset {
            commit: g.to_string(),
            reason: "the integration branch was moved by hand; continuing from where it is".into(),
        });
    }
    for (i, d) in decisions.iter().enumerate() {
        let recorded = &state.workstreams[i];
        match d.action {
            Action::Keep => {}
            Action::Merge => {
                if recorded.phase != Phase::Ready {
                    events.push(EventKind::Phase {
                        workstream: i,
                        phase: Phase::Ready,
                        reason: Some(d.why.clone()),
                    });
                }
            }
            Action::Check => events.push(EventKind::Phase {
                workstream: i,
                phase: Phase::Pending,
                reason: Some(d.why.clone()),
            }),
            Action::Run => events.push(EventKind::Reset {
                workstream: i,
                spec_hash: hashes[i].clone(),
                reason: d.why.clone(),
            }),
        }
    }
    Ok(ResumePlan {
        decisions,
        events,
        run_dir,
        state,
        integration_reset,
        undo_merges,
    })
}

/// The recorded merges in the order they happened: workstream and merge commit, only those
/// still recorded as merged with that commit.
fn merge_sequence(run_dir: &RunDir, state: &RunState) -> Vec<(usize, Oid)> {
    let events = crate::run::store::read_events(&run_dir.events_path()).unwrap_or_default();
    let mut sequence: Vec<(usize, Oid)> = vec![];
    for event in events {
        if let crate::run::state::EventKind::Merged {
            workstream,
            merge_commit,
            ..
        } = event.kind
            && let Ok(commit) = merge_commit.parse::<Oid>()
        {
            sequence.retain(|(w, _)| *w != workstream);
            sequence.push((workstream, commit));
        }
    }
    sequence.retain(|(w, c)| {
        let recorded = &state.workstreams[*w];
        recorded.phase == Phase::Merged && recorded.merge_commit.as_deref() == Some(c.to_string().as_str())
    });
    sequence
}

/// Continues a run after `plan_resume`.
pub async fn resume(
    plan: Plan,
    site: Site,
    resume: ResumePlan,
    settings: RunSettings,
    observer: &mut dyn Observer,
) -> Result<RunState, RunError> {
    let workflow = &plan.workflow;
    let lock = RunLock::acquire(&site.flow_dir, &workflow.name)?;
    let ResumePlan {
        mut events,
        run_dir,
        mut state,
        integration_reset,
        undo_merges,
        ..
    } = resume;
    // What the interrupted run left: its agents, still at work in the worktrees this resume
    // reuses, and the git lock files it held when it died.
    let stopped = stop_leftover_processes(&run_dir.id);
    if stopped > 0 {
        eprintln!("flow: stopped {stopped} process(es) the interrupted run had left running");
    }
    if let Some(git) = &site.git {
        report_repairs(&repair_git(git, workflow, &worktrees_dir(workflow, &site.root)));
    }
    if let (Some(git), Some((commit, _))) = (&site.git, &integration_reset) {
        let head = git.branch_head(&workflow.into)?;
        git.set_branch(
            &workflow.into,
            *commit,
            head,
            "flow: resume moves the integration branch back to its last good commit",
        )?;
    }
    if let (Some(git), false) = (&site.git, undo_merges.is_empty()) {
        let mut head = git
            .branch_head(&workflow.into)?
            .ok_or_else(|| GitError::UnknownBranch(workflow.into.clone()))?;
        for (name, before, after) in &undo_merges {
            let message = format!("Undo the merge of {name}: it runs again\n\nflow run {}", run_dir.id);
            head = git
                .undo_merge(&workflow.into, head, *before, *after, &message)?
                .ok_or_else(|| RunError::UndoConflict {
                    workstream: name.clone(),
                    into: workflow.into.clone(),
                })?;
        }
        events.insert(
            0,
            crate::run::state::EventKind::IntegrationReset {
                commit: head.to_string(),
                reason: format!(
                    "undid the merges of {} (they run again)",
                    undo_merges.iter().map(|u| u.0.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
        );
    }
    // Record the decisions, so the event log alone rebuilds this state.
    let mut log = EventLog::open(&run_dir.events_path()).map_err(|error| RunError::Io {
        action: "open",
        path: run_dir.events_path(),
        error,
    })?;
    for kind in events {
        let event = crate::run::state::Event {
            seq: state.last_event + 1,
            at: now(),
            kind,
        };
        state.apply(&event);
        log.append(&event).map_err(|error| RunError::Io {
            action: "write",
            path: run_dir.events_path(),
            error,
        })?;
    }
    drop(log);
    run_dir.save(&state).map_err(|error| RunError::Io {
        action: "write",
        path: run_dir.state_path(),
        error,
    })?;
    let worktrees = worktrees_dir(workflow, &site.root);
    let workflow_text = workflow
        .path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let resumed = Some(text_hash(&workflow_text));
    let result = drive(plan, site, worktrees, state, run_dir, settings, observer, resumed).await;
    drop(lock);
    result
}
