//! What a resume does with each workstream, and why: a pure function of the record (the
//! state and its merges), the workflow as it is now, and the git facts read before
//! ([`GitFacts`]).

use std::collections::{HashMap, HashSet};

use flow_dsl::Isolation;
use serde::Serialize;

use crate::git::Oid;
use crate::plan::Plan;
use crate::run::spec_hash::spec_hash_with;
use crate::run::state::{EventKind, Phase, Purpose, RunState, WorkstreamState};

/// What git says about the run's branches, read before deciding.
#[derive(Debug, Clone, Default)]
pub struct GitFacts {
    /// The run has a repository.
    pub has_git: bool,
    /// The integration branch's head now.
    pub into_head: Option<Oid>,
    /// Each workstream's branch head now (`None`: no branch, or `isolation "none"`).
    pub branch_heads: Vec<Option<Oid>>,
    /// For pairs `(commit, head)` of recorded commits and candidate integration heads:
    /// whether `commit` is `head` or in its history.
    pub ancestry: HashMap<(Oid, Oid), bool>,
    /// For each workstream: its worktree is not there whole (gone, or half-made and about to
    /// be removed), so nothing its agent left uncommitted is left (`false` when not read).
    pub worktree_gone: Vec<bool>,
    /// For each workstream recorded as conflicted: what a person did about it since
    /// (`flow resolve`), read from its branch and its worktree (`None`: nothing to read).
    pub by_hand: Vec<Option<ByHand>>,
}

/// What git says about a conflicted workstream a person may have resolved (`flow resolve`
/// merges the integration branch into its branch, in its worktree, for the person to commit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByHand {
    /// A merge is in progress in its worktree: the resolution is not committed yet.
    pub merging: bool,
    /// Its branch head is past its recorded result (the result is in its history).
    pub moved_on: bool,
    /// Its branch head holds the integration branch's head: the conflict was merged.
    pub holds_into: bool,
    /// The files its recorded result conflicts on with the integration branch.
    pub files: Vec<String>,
    /// Those of `files` that hold conflict markers as committed on its branch.
    pub markers: Vec<String>,
}

impl GitFacts {
    /// Tells whether `commit` is `head` or in its history (as read; unknown pairs are not).
    pub fn contains(&self, commit: Oid, head: Oid) -> bool {
        commit == head || self.ancestry.get(&(commit, head)).copied().unwrap_or(false)
    }

    /// The pairs [`decide`] may ask about: every commit the record names, against the
    /// integration heads a resume may continue from (the recorded one and `into_head`, the one
    /// git has).
    pub fn pairs_needed(state: &RunState, into_head: Option<Oid>) -> Vec<(Oid, Oid)> {
        let parse = |c: &Option<String>| c.as_deref().and_then(|c| c.parse::<Oid>().ok());
        let recorded_good = parse(&state.last_good);
        let heads: Vec<Oid> = [recorded_good, into_head].into_iter().flatten().collect();
        let mut commits: Vec<Oid> = recorded_good.into_iter().collect();
        for ws in &state.workstreams {
            commits.extend(
                [
                    parse(&ws.result_commit),
                    parse(&ws.merge_commit),
                    parse(&ws.start_commit),
                ]
                .into_iter()
                .flatten(),
            );
        }
        let mut seen = HashSet::new();
        let mut pairs = vec![];
        for commit in &commits {
            for head in &heads {
                if commit != head && seen.insert((*commit, *head)) {
                    pairs.push((*commit, *head));
                }
            }
        }
        pairs
    }
}

/// What a resume does with one workstream, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub workstream: String,
    pub action: Action,
    pub why: String,
}

/// The actions of a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Finished and still valid: not run again.
    Keep,
    /// Its work is checked and kept; only its merge is (re)done.
    Merge,
    /// Its agent finished before the run stopped: its work is checked, the agent is not run again.
    Check,
    /// Its fix attempt was cut short: the fix runs again on its work, with the same feedback.
    Fix,
    /// Its resolver finished before the run stopped: the resolution is committed (unless it
    /// is already) and verified; the resolver does not run again.
    Finish,
    /// Run from the start.
    Run,
    /// Nothing is resumed until a person finishes what they started (a resolution with a merge
    /// still in progress, or with conflict markers committed).
    Wait,
}

impl Action {
    /// The word shown in `flow resume`'s list.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Merge => "merge",
            Action::Check => "check",
            Action::Fix => "fix",
            Action::Finish => "finish",
            Action::Run => "run",
            Action::Wait => "wait",
        }
    }
}

/// A resume worked out.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decisions: Vec<Decision>,
    /// Events that bring the recorded state in line with the decisions.
    pub events: Vec<EventKind>,
    /// Where the integration branch is moved back to, if anywhere, and why.
    pub integration_reset: Option<(Oid, String)>,
    /// Merges to take back out of the integration branch because their workstreams run
    /// again, latest first: workstream, the branch's head before and after that merge.
    pub undo_merges: Vec<(String, Oid, Oid)>,
    /// Entries for the run's decision log: conflicts a person resolved, each with the commit
    /// that holds the resolution.
    pub log: Vec<(Oid, String)>,
}

impl Decided {
    /// The first decision that keeps the resume from going on, if there is one.
    pub fn waiting(&self) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.action == Action::Wait)
    }
}

/// Decides, for every workstream of a recorded run, what continuing it means.
///
/// `hashes` are the workstreams' spec hashes now; `merges` are the recorded merges in the
/// order they happened (workstream, merge commit), as the event log has them.
pub fn decide(plan: &Plan, state: &RunState, hashes: &[String], facts: &GitFacts, merges: &[(usize, Oid)]) -> Decided {
    let workflow = &plan.workflow;
    let n = workflow.workstreams.len();
    let has_git = facts.has_git;
    let recorded_good: Option<Oid> = state.last_good.as_deref().and_then(|c| c.parse().ok());
    // The integration branch as git has it, checked against the record: past it, a merge
    // (or a resolution) the interrupted run did not finish verifying, or a move by hand.
    let result_of = |w: &WorkstreamState| w.result_commit.as_deref().and_then(|c| c.parse::<Oid>().ok());
    let mut unverified = None;
    let mut good = recorded_good;
    if let (true, Some(head), Some(recorded)) = (has_git, facts.into_head, recorded_good)
        && head != recorded
    {
        let pending_results: Vec<Oid> = state
            .workstreams
            .iter()
            .filter(|w| matches!(w.phase, Phase::Ready | Phase::Merging | Phase::Resolving))
            .filter_map(result_of)
            .collect();
        if facts.contains(recorded, head) && pending_results.iter().any(|r| facts.contains(*r, head)) {
            unverified = Some((recorded, head));
        } else {
            // Moved by hand: continue from where it is; merged workstreams are checked against it.
            good = Some(head);
        }
    }
    // Past an unverified merge, the resume continues from the record's last good commit.
    let into_now = good;

    let mut rerun = vec![false; n];
    let mut topo: Vec<usize> = plan
        .merge_order
        .iter()
        .copied()
        .chain((0..n).filter(|i| plan.merge_position[*i].is_none()))
        .collect();
    // Dependencies before dependents: sort by wave, stable.
    topo.sort_by_key(|&i| plan.wave_of[i]);
    let mut chosen: Vec<Option<Decision>> = vec![None; n];
    let mut log = vec![];
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
        let branch_head = match (has_git, ws.isolation) {
            (true, Isolation::Worktree) => facts.branch_heads.get(i).copied().flatten(),
            _ => None,
        };
        let result: Option<Oid> = recorded.result_commit.as_deref().and_then(|c| c.parse().ok());
        let start: Option<Oid> = recorded.start_commit.as_deref().and_then(|c| c.parse().ok());
        // A finished agent's work is in its branch's commits past its start, or uncommitted
        // in its worktree: with neither, there is nothing left to check.
        let work_lost =
            branch_head.is_some() && branch_head == start && facts.worktree_gone.get(i).copied().unwrap_or(false);
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
        // A conflict a person resolved, logged if it is merged.
        let mut by_hand_entry = None;
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
                    let still_in = match (has_git, merge, into_now) {
                        (true, Some(m), Some(head)) => facts.contains(m, head),
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
                Phase::Resolving if resolver_finished(recorded) && result.is_some() && branch_head == result => decide(
                    Action::Finish,
                    "its resolver finished before the run stopped; its resolution is committed and verified, the resolver does not run again".into(),
                ),
                Phase::Ready | Phase::Merging | Phase::Resolving => {
                    if result.is_some() && branch_head == result {
                        decide(
                            Action::Merge,
                            match recorded.phase {
                                Phase::Merging => "its merge was interrupted; merged again".into(),
                                Phase::Resolving => {
                                    "its conflict resolution was interrupted; merged again (the resolver runs again)"
                                        .into()
                                }
                                _ => "ready; merged now".into(),
                            },
                        )
                    } else {
                        decide(Action::Run, "its branch changed since it was checked".into())
                    }
                }
                // Pending too: a resume that decided to check it was itself interrupted before
                // the check started.
                Phase::Checking
                | Phase::Running
                | Phase::Preparing
                | Phase::Pending
                | Phase::Fixing
                | Phase::Reviewing
                    if recorded.agent_finished && work_lost =>
                {
                    decide(
                        Action::Run,
                        "its agent finished, but its worktree is gone and nothing of its work was committed; it runs again"
                            .into(),
                    )
                }
                Phase::Checking
                | Phase::Running
                | Phase::Preparing
                | Phase::Pending
                | Phase::Fixing
                | Phase::Reviewing
                    if recorded.agent_finished && (start.is_none() || branch_head.is_some()) =>
                {
                    decide(
                        Action::Check,
                        "its agent finished before the run stopped; its work is checked, the agent is not run again"
                            .into(),
                    )
                }
                // A fix cut short: its work and the feedback are kept, the fix runs again.
                Phase::Fixing | Phase::Pending
                    if recorded.fixes > 0 && recorded.feedback.is_some() && branch_head.is_some() =>
                {
                    decide(
                        Action::Fix,
                        "its fix attempt was cut short; it runs again on its work, with the same feedback".into(),
                    )
                }
                Phase::Running | Phase::Preparing | Phase::Checking | Phase::Fixing | Phase::Reviewing => {
                    decide(Action::Run, "it was interrupted".into())
                }
                Phase::Failed => decide(
                    Action::Run,
                    format!(
                        "it failed: {}",
                        recorded.failure.as_ref().map_or("", |f| f.message.as_str())
                    ),
                ),
                Phase::Conflicted => match (facts.by_hand.get(i).cloned().flatten(), branch_head) {
                    (Some(hand), _) if hand.merging => decide(
                        Action::Wait,
                        "a merge is in progress in its worktree (`flow resolve`): commit your resolution \
                         (`git commit`), or give it up (`git merge --abort`), then resume"
                            .into(),
                    ),
                    (Some(hand), Some(head)) if hand.moved_on && !hand.markers.is_empty() => decide(
                        Action::Wait,
                        format!(
                            "its branch (at {}) still has conflict markers committed in {}: resolve them, \
                             commit, then resume",
                            head.short(),
                            hand.markers.join(", ")
                        ),
                    ),
                    (Some(hand), Some(head)) if hand.moved_on && hand.holds_into => {
                        if !hand.files.is_empty() {
                            let by = format!("a person (`flow resolve`), in commit {}", head.short());
                            let entry = crate::decision_log::entry(&ws.name, &hand.files, &by, None);
                            by_hand_entry = Some((head, entry));
                        }
                        decide(
                            Action::Merge,
                            format!(
                                "its conflict was resolved by hand (its branch is at {}); merged now",
                                head.short()
                            ),
                        )
                    }
                    (Some(hand), Some(head)) if hand.moved_on => decide(
                        Action::Merge,
                        format!("its branch moved on by hand (to {}); merged again", head.short()),
                    ),
                    _ => decide(Action::Run, "it conflicted".into()),
                },
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
        let decision = match (decision.action, has_git, start, into_now) {
            (Action::Merge | Action::Finish, true, Some(s), Some(head))
                if !(ws.dependencies.is_empty() || facts.contains(s, head)) =>
            {
                decide(
                    Action::Run,
                    "the integration commit it started from is no longer in the integration branch".into(),
                )
            }
            _ => decision,
        };
        rerun[i] = decision.action == Action::Run;
        if decision.action == Action::Merge {
            log.extend(by_hand_entry);
        }
        chosen[i] = Some(decision);
    }
    let decisions: Vec<Decision> = chosen.into_iter().flatten().collect();

    // An unverified merge is undone and redone, but a resolution whose resolver finished
    // stays and is verified, unless merged work runs again (its merge is undone first).
    let reruns_merged = merges.iter().any(|&(i, _)| decisions[i].action == Action::Run);
    let integration_reset = unverified.and_then(|(recorded, head)| {
        let finishing = (0..n).any(|i| {
            decisions[i].action == Action::Finish
                && result_of(&state.workstreams[i]).is_some_and(|r| facts.contains(r, head))
        });
        (reruns_merged || !finishing).then(|| {
            (
                recorded,
                "a merge the interrupted run did not finish verifying is undone and redone".to_string(),
            )
        })
    });

    // A merged workstream that runs again must leave the integration branch: its merge is
    // undone in a new commit (latest first), so the merges after it stay as they are.
    let mut undo_merges = vec![];
    if let (true, Some(base)) = (
        has_git,
        state.base_commit.as_deref().and_then(|c| c.parse::<Oid>().ok()),
    ) && integration_reset.is_none()
    {
        for (k, &(i, after)) in merges.iter().enumerate().rev() {
            if decisions[i].action == Action::Run {
                let before = if k == 0 { base } else { merges[k - 1].1 };
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
                // Merged from where a person left its branch: that is its result now.
                if recorded.phase == Phase::Conflicted
                    && let Some(head) = facts.branch_heads.get(i).copied().flatten()
                {
                    // Its work is measured from the integration commit the person merged in.
                    let holds_into = facts
                        .by_hand
                        .get(i)
                        .and_then(Option::as_ref)
                        .is_some_and(|h| h.holds_into);
                    let base_commit = match (holds_into, facts.into_head) {
                        (true, Some(into)) => Some(into.to_string()),
                        _ => recorded.base_commit.clone(),
                    };
                    events.push(EventKind::Checked {
                        workstream: i,
                        result_commit: Some(head.to_string()),
                        base_commit,
                        files_changed: recorded.files_changed.clone(),
                        test: recorded.test.clone(),
                    });
                }
                if recorded.phase != Phase::Ready {
                    events.push(EventKind::Phase {
                        workstream: i,
                        phase: Phase::Ready,
                        reason: Some(d.why.clone()),
                    });
                }
            }
            Action::Finish => events.push(EventKind::Phase {
                workstream: i,
                phase: Phase::Resolving,
                reason: Some(d.why.clone()),
            }),
            Action::Check | Action::Fix => events.push(EventKind::Phase {
                workstream: i,
                phase: Phase::Pending,
                reason: Some(d.why.clone()),
            }),
            Action::Run => events.push(EventKind::Reset {
                workstream: i,
                spec_hash: hashes[i].clone(),
                reason: d.why.clone(),
            }),
            Action::Wait => {}
        }
    }
    Decided {
        decisions,
        events,
        integration_reset,
        undo_merges,
        log,
    }
}

/// Tells whether the workstream's latest attempt is its resolver's, ended without error.
fn resolver_finished(recorded: &WorkstreamState) -> bool {
    recorded
        .attempt_log
        .last()
        .is_some_and(|a| a.purpose == Purpose::Resolve && a.ended_at.is_some() && a.error.is_none())
}

/// The recorded merges in the order they happened: workstream and merge commit, only those
/// still recorded as merged with that commit.
pub fn merge_sequence(events: &[crate::run::state::Event], state: &RunState) -> Vec<(usize, Oid)> {
    let mut sequence: Vec<(usize, Oid)> = vec![];
    for event in events {
        if let EventKind::Merged {
            workstream,
            merge_commit,
            ..
        } = &event.kind
            && let Ok(commit) = merge_commit.parse::<Oid>()
        {
            sequence.retain(|(w, _)| w != workstream);
            sequence.push((*workstream, commit));
        }
    }
    sequence.retain(|(w, c)| {
        let recorded = &state.workstreams[*w];
        recorded.phase == Phase::Merged && recorded.merge_commit.as_deref() == Some(c.to_string().as_str())
    });
    sequence
}
