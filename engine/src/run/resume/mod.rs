//! Continuing a run after a failure, a crash or Ctrl-C.
//!
//! [`plan_resume`] reads the record and what git says now ([`GitFacts`]), then leaves every
//! decision to [`decide`], a pure function; [`resume`] carries the decisions out (stops what
//! the dead run left running, repairs git, moves the integration branch, records the
//! decisions and the conflicts a person resolved) and drives the run on.
//!
//! A conflict the run stopped on can be resolved by a person in between: `flow resolve`
//! merges the integration branch into the workstream's branch, in its worktree, and the
//! person commits. The resume then sees the branch past its recorded result, holding the
//! integration branch, and merges it (with `verify`); it waits, deciding nothing, while that
//! merge is still in progress or conflict markers are committed. What the dead run left is
//! made safe all the same, before the person goes on working in the same repository: its
//! processes stopped, what its cut agents changed in the git directory undone (their
//! workstreams failed). Its stale git lock files are taken away only when the resume goes on
//! (the person may hold one of theirs meanwhile).

mod decide;

use std::path::PathBuf;

use flow_dsl::Workflow;

use crate::git::{Git, GitError, Oid};
use crate::plan::Plan;
use crate::run::driver::Begin;
use crate::run::error::RunError;
use crate::run::guard::{charge_file, check_left};
use crate::run::lock::RunLock;
use crate::run::observer::Observer;
use crate::run::recover::{repair_git, stop_leftover_processes};
use crate::run::session::{RunSettings, drive};
use crate::run::spec_hash::{spec_hashes, text_hash};
use crate::run::state::{Event, EventKind, Failure, FailureKind, Phase, RunState};
use crate::run::store::{EventLog, read_events};
use crate::site::RunDir;
use crate::site::Site;
use crate::time;

pub use self::decide::{Action, ByHand, Decided, Decision, GitFacts, decide, merge_sequence};

/// A resume worked out: the state as it will be continued, and the decisions that led to it.
pub struct ResumePlan {
    pub run_dir: RunDir,
    pub state: RunState,
    pub decided: Decided,
}

/// Loads a run and decides, for every workstream, what continuing it means, checking the
/// record against git (branches and the integration branch may have changed by hand).
pub fn plan_resume(plan: &Plan, site: &Site, run_id: Option<&str>) -> Result<ResumePlan, RunError> {
    let id = match run_id {
        Some(id) => id.to_string(),
        None => site
            .latest_run()
            .ok_or_else(|| RunError::NoRun(site.flow_dir().to_path_buf()))?,
    };
    let run_dir = site.run_dir(&id);
    let state = run_dir.load().map_err(RunError::io("read", run_dir.state_path()))?;
    let workflow = &plan.workflow;
    let names_match = state.workstreams.len() == workflow.workstreams.len()
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
    let facts = match site.git() {
        Some(git) => git_facts(git, site, plan, &state)?,
        None => GitFacts::default(),
    };
    let events = read_events(&run_dir.events_path()).unwrap_or_default();
    let merges = merge_sequence(&events, &state);
    let decided = decide(plan, &state, &spec_hashes(workflow), &facts, &merges);
    Ok(ResumePlan {
        run_dir,
        state,
        decided,
    })
}

/// Reads what [`decide`] needs to know from git.
fn git_facts(git: &Git, site: &Site, plan: &Plan, state: &RunState) -> Result<GitFacts, GitError> {
    let workflow = &plan.workflow;
    let into_head = git.branch_head(&workflow.into)?;
    let mut branch_heads = Vec::with_capacity(workflow.workstreams.len());
    for ws in &workflow.workstreams {
        branch_heads.push(match ws.isolation {
            flow_dsl::Isolation::Worktree => git.branch_head(&workflow.branch_of(ws))?,
            flow_dsl::Isolation::None => None,
        });
    }
    let mut ancestry = std::collections::HashMap::new();
    for (commit, head) in GitFacts::pairs_needed(state, into_head) {
        ancestry.insert((commit, head), git.is_ancestor(commit, head)?);
    }
    let worktree_gone = workflow
        .workstreams
        .iter()
        .map(|ws| {
            ws.isolation == flow_dsl::Isolation::Worktree
                && !crate::run::recover::worktree_is_whole(&site.worktree_of(workflow, &ws.name))
        })
        .collect();
    let mut by_hand = Vec::with_capacity(workflow.workstreams.len());
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        let recorded = &state.workstreams[i];
        by_hand.push(match (recorded.phase, branch_heads[i]) {
            (Phase::Conflicted, Some(head)) => {
                let dir = site.worktree_of(workflow, &ws.name);
                let result = recorded.result_commit.as_deref().and_then(|c| c.parse().ok());
                Some(by_hand_facts(git, &dir, head, result, into_head)?)
            }
            _ => None,
        });
    }
    Ok(GitFacts {
        has_git: true,
        into_head,
        branch_heads,
        ancestry,
        worktree_gone,
        by_hand,
    })
}

/// What a person did about a conflicted workstream: a merge still in progress in its
/// worktree, or its branch moved past its recorded `result` (holding the integration branch
/// or not, with conflict markers committed in the files that conflict or not).
fn by_hand_facts(
    git: &Git,
    dir: &std::path::Path,
    head: Oid,
    result: Option<Oid>,
    into_head: Option<Oid>,
) -> Result<ByHand, GitError> {
    // A worktree gone, or one that is not flow's, holds no merge of the person's.
    let merging = dir.is_dir() && git.merge_in_progress(dir).unwrap_or(false);
    let Some(result) = result.filter(|r| *r != head) else {
        return Ok(ByHand {
            merging,
            ..ByHand::default()
        });
    };
    let moved_on = git.is_ancestor(result, head)?;
    if !moved_on {
        return Ok(ByHand {
            merging,
            ..ByHand::default()
        });
    }
    let holds_into = match into_head {
        Some(into) => into == head || git.is_ancestor(into, head)?,
        None => false,
    };
    let files = match into_head {
        Some(into) => git.trial_merge(result, into)?,
        None => vec![],
    };
    let markers = git.files_with_markers_at(head, &files)?;
    Ok(ByHand {
        merging,
        moved_on,
        holds_into,
        files,
        markers,
    })
}

/// Continues a run after [`plan_resume`].
pub async fn resume(
    plan: Plan,
    site: &Site,
    resume: ResumePlan,
    settings: RunSettings,
    observer: &mut dyn Observer,
) -> Result<RunState, RunError> {
    let workflow = &plan.workflow;
    let lock = RunLock::acquire(site.flow_dir(), &workflow.name)?;
    let waiting = resume
        .decided
        .waiting()
        .map(|waiting| (waiting.workstream.clone(), waiting.why.clone()));
    let ResumePlan {
        run_dir,
        mut state,
        decided,
    } = resume;
    // What the interrupted run left is made safe first, even when the resume then waits for a
    // person, who works in the same repository meanwhile: its agents stopped, what they
    // changed in the git directory undone.
    let left = clear_what_the_run_left(site, workflow, &run_dir, observer);
    if let Some((workstream, why)) = waiting {
        record(&run_dir, &mut state, left.failed)?;
        forget_compared(&left.compared);
        return Err(RunError::WaitsForPerson { workstream, why });
    }
    // The git lock files the dead run held, taken away only now: while the resume waits,
    // the person may hold one of theirs (a commit with its editor open).
    if let Some(git) = site.git() {
        for line in repair_git(git, workflow, site) {
            observer.notice(&line);
        }
    }
    let Decided {
        mut events,
        integration_reset,
        undo_merges,
        log: resolved_by_hand,
        ..
    } = decided;
    // After the decisions: a workstream whose cut agent tampered fails, whatever was decided.
    events.extend(left.failed);
    if let (Some(git), Some((commit, _))) = (site.git(), &integration_reset) {
        let head = git.branch_head(&workflow.into)?;
        git.set_branch(
            &workflow.into,
            *commit,
            head,
            "flow: resume moves the integration branch back to its last good commit",
        )?;
    }
    if let (Some(git), false) = (site.git(), undo_merges.is_empty()) {
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
            EventKind::IntegrationReset {
                commit: head.to_string(),
                reason: format!(
                    "undid the merges of {} (they run again)",
                    undo_merges.iter().map(|u| u.0.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
        );
    }
    // Resolutions by hand are logged before the decisions are recorded, once per commit: a
    // resume killed in between logs the same commit again (and the log keeps one entry); one
    // killed after the record sees no resolution left to log.
    for (commit, entry) in &resolved_by_hand {
        crate::decision_log::append_once(&run_dir.decision_log_path(), *commit, entry)
            .map_err(RunError::io("write", run_dir.decision_log_path()))?;
    }
    // Record the decisions, so the event log alone rebuilds this state.
    record(&run_dir, &mut state, events)?;
    // Recorded: the snapshots are done with.
    forget_compared(&left.compared);
    let workflow_text = workflow
        .path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let begin = Begin {
        resumed: true,
        workflow_hash: Some(text_hash(&workflow_text)),
    };
    let result = drive(plan, site, state, run_dir, settings, observer, begin).await;
    drop(lock);
    result
}

/// Takes the objects that the agents of a run left in their own object folders into the
/// shared store, deleting the folders; returns what it could not take.
fn adopt_left_objects(git: &Git, run_dir: &RunDir) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_dir.dir.join("tmp")) else {
        return vec![];
    };
    let mut problems = vec![];
    for entry in entries.flatten() {
        let own = crate::confine::own_objects(&entry.path());
        match git.adopt_objects(&own) {
            Ok(adopted) => problems.extend(
                adopted
                    .refused
                    .into_iter()
                    .map(|why| format!("an object left in {} was not taken: {why}", own.display())),
            ),
            Err(e) => problems.push(format!("cannot take the objects left in {}: {e}", own.display())),
        }
    }
    problems
}

/// What a resume found the interrupted run had left, once made safe.
struct Left {
    /// The failures of workstreams whose agents, cut, changed the git directory.
    failed: Vec<EventKind>,
    /// The snapshots compared, to delete once the failures are recorded.
    compared: Vec<PathBuf>,
}

/// Stops the processes the interrupted run left running, takes into the store the objects its
/// cut agents wrote to folders of their own, and compares the git directory with the snapshots
/// the run kept before each agent and undoes what they changed; says each on `observer`.
fn clear_what_the_run_left(site: &Site, workflow: &Workflow, run_dir: &RunDir, observer: &mut dyn Observer) -> Left {
    let mut left = Left {
        failed: vec![],
        compared: vec![],
    };
    // Its agents, still at work in the worktrees this resume reuses.
    let stopped = stop_leftover_processes(&run_dir.id);
    if stopped > 0 {
        observer.notice(&format!(
            "stopped {stopped} process(es) the interrupted run had left running"
        ));
    }
    let Some(git) = site.git() else {
        return left;
    };
    // The objects the cut agents' git wrote to folders of their own (listed in the shared
    // store meanwhile, so nothing read a branch of theirs in vain) join the store.
    for line in adopt_left_objects(git, run_dir) {
        observer.notice(&line);
    }
    // Before anything else touches git: what the cut agents changed in the git directory,
    // compared with the snapshots the dead run kept, undone, and their workstreams failed.
    for watch in check_left(git, workflow, &run_dir.guard_dir(), &run_dir.dir.join("undone")) {
        let lines = watch.tampering.lines();
        let index = workflow.workstreams.iter().position(|ws| ws.name == watch.workstream);
        match index {
            Some(workstream) if !lines.is_empty() => {
                observer.notice(&format!(
                    "`{}`: its agent, cut when the run stopped, changed the git directory: {}",
                    watch.workstream,
                    lines.join("; ")
                ));
                left.failed.push(EventKind::Failed {
                    workstream,
                    failure: Failure::new(FailureKind::Integrity, tampered_while_cut(&lines)),
                });
            }
            None if !lines.is_empty() => observer.notice(&format!(
                "the git directory changed while the run was stopped, not undone in full: {}",
                lines.join("; ")
            )),
            _ => {}
        }
        left.compared.push(watch.file);
    }
    left
}

/// Deletes the snapshots a resume compared (and what their agents were charged with), once
/// what they found is recorded.
fn forget_compared(compared: &[PathBuf]) {
    for file in compared {
        let _ = std::fs::remove_file(charge_file(file));
        let _ = std::fs::remove_file(file);
    }
}

/// Applies `events` to `state`, appends them to the run's event log, and saves the state.
fn record(run_dir: &RunDir, state: &mut RunState, events: Vec<EventKind>) -> Result<(), RunError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut log = EventLog::open(&run_dir.events_path()).map_err(RunError::io("open", run_dir.events_path()))?;
    for kind in events {
        let event = Event {
            seq: state.last_event + 1,
            at: time::now(),
            kind,
        };
        state.apply(&event);
        log.append(&event)
            .map_err(RunError::io("write", run_dir.events_path()))?;
    }
    drop(log);
    run_dir.save(state).map_err(RunError::io("write", run_dir.state_path()))
}

/// Says what a cut agent changed in the git directory, for the workstream's failure.
fn tampered_while_cut(lines: &[String]) -> String {
    format!(
        "its agent changed the git directory it shares with your checkout before the run stopped \
         (`flow resume` undid it; copies of what it wrote are in the run's `undone` folder): {}",
        lines.join("; ")
    )
}

#[cfg(test)]
mod tests;
