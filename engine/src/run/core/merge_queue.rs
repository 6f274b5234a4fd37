//! The merge queue: which ready branch merges next (one at a time, in the plan's merge order
//! or as each is ready), and what a merge and its `verify` mean for the integration branch:
//! a conflict or a failed `verify` first sends the workstream back to bring the integration
//! branch in and fix what breaks (`sync`, `fix-attempts`); a conflict that is left goes to
//! the resolver agent (`on-conflict "agent"`) or stops or skips as `on-conflict` says.

use std::collections::VecDeque;

use flow_dsl::{Isolation, MergeOrder, OnConflict, SyncMode};

use super::job::{Reopen, clip, conflict_feedback};
use super::{AgentEnd, AgentOutcome, Conflicts, Core, Effect, MergeOutcome, Resolution};
use crate::git::Oid;
use crate::plan::Plan;
use crate::run::state::{EventKind, Failure, FailureKind, Feedback, FeedbackKind, Phase, Purpose, TestResult};

/// The merge under way.
#[derive(Debug)]
struct Merging {
    workstream: usize,
    /// The integration branch's head before the merge.
    expected: Oid,
    /// The branch being merged.
    result: Oid,
    /// The merged commit, once the merge is done (not yet verified).
    merged: Option<Oid>,
    /// The failed `verify` being rolled back (`None`: rolled back because it was stopped).
    failed_verify: Option<TestResult>,
    /// `verify` runs.
    verifying: bool,
    /// The resolver runs (or its work is being checked).
    resolving: bool,
    /// The conflicting files the resolver works on.
    files: Vec<String>,
    /// The resolver's attempt number.
    attempt: u32,
}

/// Ready branches and the merge under way.
#[derive(Debug)]
pub(super) struct MergeQueue {
    merging: Option<Merging>,
    /// Ready workstreams in the order they became ready (merge order `ready`).
    ready: VecDeque<usize>,
    /// The next position in the plan's merge order (merge order `plan`).
    next: usize,
    /// A conflict stopped merging (`on-conflict "stop"`).
    stopped: bool,
}

impl MergeQueue {
    pub(super) fn new() -> MergeQueue {
        MergeQueue {
            merging: None,
            ready: VecDeque::new(),
            next: 0,
            stopped: false,
        }
    }

    /// A workstream became ready to merge.
    pub(super) fn push(&mut self, index: usize) {
        self.ready.push_back(index);
    }

    /// A workstream at `position` of the plan's merge order is to merge after all (a person
    /// retried it): the plan order comes back to it; what merged since stays merged.
    pub(super) fn rewind(&mut self, position: Option<usize>) {
        if let Some(p) = position {
            self.next = self.next.min(p);
        }
    }

    /// Merging stops for the rest of the run.
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    /// Tells whether merging stopped at a conflict for the rest of the run.
    pub(super) fn is_stopped(&self) -> bool {
        self.stopped
    }

    pub(super) fn is_busy(&self) -> bool {
        self.merging.is_some()
    }

    pub(super) fn is_verifying(&self) -> bool {
        self.merging.as_ref().is_some_and(|m| m.verifying)
    }

    /// Tells whether the resolver runs for workstream `index`.
    pub(super) fn is_resolving(&self, index: usize) -> bool {
        self.merging
            .as_ref()
            .is_some_and(|m| m.workstream == index && m.resolving)
    }

    /// The workstream whose resolver runs, if one does.
    pub(super) fn resolving(&self) -> Option<usize> {
        self.merging.as_ref().filter(|m| m.resolving).map(|m| m.workstream)
    }

    /// Why finished work did not merge, said once the run is over.
    pub(super) fn why_unmerged(&self, plan: &Plan) -> String {
        if self.stopped {
            return "not merged: merging stopped at a conflict (on-conflict \"stop\")".to_string();
        }
        match plan
            .merge_order
            .get(self.next)
            .map(|&w| &plan.workflow.workstreams[w].name)
        {
            Some(name) => format!("not merged: `{name}` comes first in the merge order and did not finish"),
            None => "not merged: the run stopped".to_string(),
        }
    }
}

impl Core {
    /// Starts the next merge, if none runs and one is ready.
    pub(super) fn pump_merges(&mut self) {
        if self.merges.merging.is_some() || self.merges.stopped || self.cancelled {
            return;
        }
        let plan = self.plan.clone();
        let candidate = match plan.workflow.integrate.order {
            MergeOrder::Plan => {
                while let Some(&i) = plan.merge_order.get(self.merges.next) {
                    if self.selected[i] && !self.state.workstreams[i].phase.is_final() {
                        break;
                    }
                    self.merges.next += 1;
                }
                plan.merge_order
                    .get(self.merges.next)
                    .copied()
                    .filter(|&i| self.state.workstreams[i].phase == Phase::Ready)
            }
            MergeOrder::Ready => {
                let state = &self.state;
                self.merges
                    .ready
                    .retain(|&i| state.workstreams[i].phase == Phase::Ready);
                let best = self
                    .merges
                    .ready
                    .iter()
                    .copied()
                    .min_by_key(|&i| plan.merge_position[i]);
                if let Some(b) = best {
                    self.merges.ready.retain(|&i| i != b);
                }
                best
            }
        };
        let Some(index) = candidate else { return };
        let ws = &self.state.workstreams[index];
        let result = ws
            .result_commit
            .as_deref()
            .and_then(|c| c.parse().ok())
            .or(ws.start_commit.as_deref().and_then(|c| c.parse().ok()));
        let (Some(expected), Some(result), true) = (self.last_good(), result, self.has_git) else {
            let message = if self.has_git {
                "nothing to merge: no result commit recorded"
            } else {
                "no repository"
            };
            return self.record(EventKind::Failed {
                workstream: index,
                failure: Failure::new(FailureKind::Git, message),
            });
        };
        self.merges.merging = Some(Merging {
            workstream: index,
            expected,
            result,
            merged: None,
            failed_verify: None,
            verifying: false,
            resolving: false,
            files: vec![],
            attempt: 0,
        });
        self.record(EventKind::Phase {
            workstream: index,
            phase: Phase::Merging,
            reason: None,
        });
        self.out.push(Effect::Merge {
            workstream: index,
            expected,
            result,
        });
    }

    /// The merge under way, if it is workstream `index`'s.
    fn merging(&mut self, index: usize) -> Option<&mut Merging> {
        self.merges.merging.as_mut().filter(|m| m.workstream == index)
    }

    pub(super) fn merged(&mut self, index: usize, outcome: MergeOutcome) {
        let has_verify = self.plan.workflow.integrate.verify.is_some();
        let cancelled = self.cancelled;
        let Some(merging) = self.merging(index) else { return };
        let expected = merging.expected;
        match outcome {
            MergeOutcome::Merged(commit) => {
                merging.merged = Some(commit);
                if !has_verify {
                    return self.merge_done(index, commit, None);
                }
                if cancelled {
                    // Not verified: taken back out, and merged again on resume.
                    self.out.push(Effect::RollBack {
                        workstream: index,
                        to: expected,
                        from: commit,
                        why: "flow: verify interrupted, roll back",
                    });
                    return;
                }
                merging.verifying = true;
                self.out.push(Effect::Verify {
                    workstream: index,
                    commit,
                });
            }
            MergeOutcome::UpToDate => self.merge_done(index, expected, None),
            MergeOutcome::Conflict(paths) => {
                self.merges.merging = None;
                self.merge_conflicted(index, expected, paths);
            }
            MergeOutcome::Error(message) => {
                self.merges.merging = None;
                self.record(EventKind::Failed {
                    workstream: index,
                    failure: Failure::new(FailureKind::Git, message),
                });
            }
        }
    }

    /// A branch conflicts with the integration branch at `onto`: it is brought up to date
    /// and fixed first (unless `sync "off"`, or it was brought up to `onto` already), then
    /// the conflict is the resolver's or stops or skips.
    fn merge_conflicted(&mut self, index: usize, onto: Oid, paths: Vec<String>) {
        let workflow = &self.plan.workflow;
        let syncs = workflow.integrate.sync != SyncMode::Off
            && workflow.workstreams[index].isolation == Isolation::Worktree
            && self.sync_tried[index] != Some(onto);
        if syncs {
            self.sync_tried[index] = Some(onto);
            let list = paths.join(", ");
            let feedback = Feedback {
                kind: FeedbackKind::Conflict,
                summary: format!("its merge conflicts with the integration branch in {list}"),
                detail: format!("Merging this workstream into the integration branch conflicts in: {list}."),
                files: vec![],
            };
            return self.reopen(
                index,
                Reopen::Sync(feedback),
                format!("its merge conflicts in {list}: bringing the integration branch in"),
            );
        }
        self.conflicted(index, paths);
    }

    /// A conflict that stays: the resolver's (`on-conflict "agent"`), else the workstream
    /// conflicts (and `on-conflict` stops or skips).
    pub(super) fn conflicted(&mut self, index: usize, paths: Vec<String>) {
        let workflow = &self.plan.workflow;
        let ws = &self.state.workstreams[index];
        let result: Option<Oid> = ws
            .result_commit
            .as_deref()
            .or(ws.start_commit.as_deref())
            .and_then(|c| c.parse().ok());
        let resolver = workflow.integrate.on_conflict == OnConflict::Agent && workflow.integrate.resolver.is_some();
        match (
            resolver,
            self.last_good(),
            result,
            self.merges.merging.is_none(),
            self.cancelled,
        ) {
            (true, Some(onto), Some(result), true, false) => {
                self.merges.merging = Some(Merging {
                    workstream: index,
                    expected: onto,
                    result,
                    merged: None,
                    failed_verify: None,
                    verifying: false,
                    resolving: true,
                    files: paths,
                    attempt: 0,
                });
                self.record(EventKind::Phase {
                    workstream: index,
                    phase: Phase::Resolving,
                    reason: Some("its merge conflicts: the resolver resolves it".into()),
                });
                self.out.push(Effect::PrepareResolution {
                    workstream: index,
                    onto,
                    result,
                });
            }
            _ => self.record(EventKind::Conflicted {
                workstream: index,
                paths,
            }),
        }
    }

    pub(super) fn resolution_prepared(&mut self, index: usize, result: Result<Conflicts, String>) {
        if !self.merges.is_resolving(index) {
            return;
        }
        let conflicts = match result {
            Ok(c) => c,
            Err(message) => {
                self.merges.merging = None;
                return self.record(EventKind::Failed {
                    workstream: index,
                    failure: Failure::new(
                        FailureKind::Git,
                        format!("cannot set up the conflict for the resolver: {message}"),
                    ),
                });
            }
        };
        if conflicts.paths.is_empty() {
            // It merges cleanly after all: the resolver has nothing to do.
            self.merges.merging = None;
            return self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Ready,
                reason: Some("merges cleanly now".into()),
            });
        }
        let feedback = conflict_feedback(&conflicts, None);
        let attempt = self.state.workstreams[index].attempts + 1;
        let merging = self.merging(index).expect("the resolver's merge");
        merging.files = conflicts.paths.clone();
        merging.attempt = attempt;
        self.ledger.clear_live(index);
        self.record(EventKind::AttemptStarted {
            workstream: index,
            attempt,
            purpose: Purpose::Resolve,
            feedback: None,
        });
        self.out.push(Effect::StartAgent {
            workstream: index,
            attempt,
            budget_usd: self.ledger.left_usd(&self.plan.workflow, &self.state, index),
            purpose: Purpose::Resolve,
            feedback: Some(feedback),
            session: None,
        });
    }

    /// The resolver ended: its work is checked and committed, or the conflict stays.
    pub(super) fn resolver_ended(&mut self, index: usize, outcome: AgentOutcome) {
        let attempt = self.merging(index).map_or(0, |m| m.attempt);
        if outcome.end == AgentEnd::Unrecorded {
            self.merges.merging = None;
            return self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Ready,
                reason: Some("not merged: the run's event log cannot be written".into()),
            });
        }
        let error = self.record_attempt_end(index, attempt, &outcome);
        let merging = self.merging(index).expect("the resolver's merge");
        let (onto, result, files) = (merging.expected, merging.result, merging.files.clone());
        if outcome.end == AgentEnd::Stopped {
            self.merges.merging = None;
            return self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Ready,
                reason: Some("its conflict resolution was interrupted; redone on resume".into()),
            });
        }
        if error.is_some() || outcome.end != AgentEnd::Exited(0) {
            self.merges.merging = None;
            let why = error.map_or_else(|| format!("{:?}", outcome.end), |e| e.to_string());
            self.record(EventKind::Alert {
                workstream: Some(index),
                message: format!(
                    "{}: the resolver failed ({why}); `flow resolve {}` gives you the conflict",
                    self.plan.workflow.workstreams[index].name, self.plan.workflow.workstreams[index].name
                ),
            });
            return self.record(EventKind::Conflicted {
                workstream: index,
                paths: files,
            });
        }
        let message = outcome.result.as_deref().map(clip);
        if let Some(m) = self.merging(index) {
            m.failed_verify = None;
        }
        self.resolver_message = message;
        self.out.push(Effect::FinishResolution {
            workstream: index,
            onto,
            result,
            files,
        });
    }

    /// A resume of a workstream whose resolver ended before the run stopped: its resolution
    /// is committed (unless it is already) and verified; the resolver does not run again.
    pub(super) fn finish_resolution(&mut self, index: usize) {
        let result: Option<Oid> = self.state.workstreams[index]
            .result_commit
            .as_deref()
            .and_then(|c| c.parse().ok());
        match (self.last_good(), result, self.merges.merging.is_none(), self.has_git) {
            (Some(onto), Some(result), true, true) => {
                self.merges.merging = Some(Merging {
                    workstream: index,
                    expected: onto,
                    result,
                    merged: None,
                    failed_verify: None,
                    verifying: false,
                    resolving: true,
                    files: vec![],
                    attempt: self.state.workstreams[index].attempts,
                });
                self.out.push(Effect::FinishResolution {
                    workstream: index,
                    onto,
                    result,
                    files: vec![],
                });
            }
            _ => self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Ready,
                reason: Some("its resolution cannot be finished; merged again".into()),
            }),
        }
    }

    pub(super) fn resolved(&mut self, index: usize, result: Result<Resolution, String>) {
        if !self.merges.is_resolving(index) {
            return;
        }
        match result {
            Ok(Resolution::Merged { commit, files }) => {
                let workflow = &self.plan.workflow;
                let resolver = workflow.integrate.resolver.as_ref().map_or("", |r| r.agent.as_str());
                let name = workflow.workstreams[index].name.clone();
                let entry = crate::decision_log::entry(
                    &name,
                    &files,
                    &format!("the resolver agent `{resolver}`"),
                    self.resolver_message.take().as_deref(),
                );
                self.out.push(Effect::LogDecision { commit, entry });
                let merging = self.merging(index).expect("the resolver's merge");
                merging.resolving = false;
                self.merged(index, MergeOutcome::Merged(commit));
            }
            Ok(Resolution::Gone) => {
                self.merges.merging = None;
                self.record(EventKind::Phase {
                    workstream: index,
                    phase: Phase::Ready,
                    reason: Some("its resolution is gone; merged again (the resolver runs again)".into()),
                });
            }
            Ok(Resolution::Markers(left)) => {
                self.merges.merging = None;
                self.record(EventKind::Alert {
                    workstream: Some(index),
                    message: format!("the resolver left conflict markers in {}", left.join(", ")),
                });
                self.record(EventKind::Conflicted {
                    workstream: index,
                    paths: left,
                });
            }
            Err(message) => {
                self.merges.merging = None;
                self.record(EventKind::Failed {
                    workstream: index,
                    failure: Failure::new(FailureKind::Git, format!("cannot commit the resolution: {message}")),
                });
            }
        }
    }

    pub(super) fn verified(&mut self, index: usize, result: Option<TestResult>) {
        let Some(merging) = self.merging(index) else { return };
        merging.verifying = false;
        let (expected, Some(commit)) = (merging.expected, merging.merged) else {
            return;
        };
        match result {
            Some(result) if result.passed => self.merge_done(index, commit, Some(result)),
            failed => {
                let why = if failed.is_some() {
                    "flow: verify failed, roll back"
                } else {
                    "flow: verify interrupted, roll back"
                };
                merging.failed_verify = failed;
                self.out.push(Effect::RollBack {
                    workstream: index,
                    to: expected,
                    from: commit,
                    why,
                });
            }
        }
    }

    pub(super) fn rolled_back(&mut self, index: usize, ok: bool) {
        let Some(merging) = self.merging(index) else { return };
        let failed_verify = merging.failed_verify.take();
        self.merges.merging = None;
        match failed_verify {
            Some(result) => {
                let back = if ok {
                    "the integration branch was moved back to its last good commit"
                } else {
                    "moving the integration branch back FAILED"
                };
                let workflow = &self.plan.workflow;
                let ws = &workflow.workstreams[index];
                let fixable = ok
                    && workflow.integrate.sync != SyncMode::Off
                    && ws.isolation == Isolation::Worktree
                    && self.state.workstreams[index].fixes < ws.fix_attempts
                    && !self.cancelled;
                if fixable {
                    let feedback = Feedback {
                        kind: FeedbackKind::Verify,
                        summary: format!("`verify` failed after its merge: {}", result.detail),
                        detail: format!(
                            "After merging this workstream into the integration branch, `{}` failed ({}). \
                             The integration branch has been merged into your branch; make `verify` pass. \
                             The end of its output:\n\n{}",
                            result.command,
                            result.detail,
                            if result.tail.is_empty() {
                                "(no output)"
                            } else {
                                result.tail.as_str()
                            }
                        ),
                        files: vec![],
                    };
                    return self.reopen(
                        index,
                        Reopen::Sync(feedback),
                        format!(
                            "`verify` failed after its merge ({back}): bringing the integration branch in to fix it"
                        ),
                    );
                }
                self.record(EventKind::Failed {
                    workstream: index,
                    failure: Failure::new(
                        FailureKind::Verify,
                        format!("verify failed after merging: {}; {back}", result.detail),
                    ),
                });
            }
            None => self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Ready,
                reason: Some("merge interrupted; redone on resume".into()),
            }),
        }
    }

    fn merge_done(&mut self, index: usize, commit: Oid, verify: Option<TestResult>) {
        self.merges.merging = None;
        self.record(EventKind::Merged {
            workstream: index,
            merge_commit: commit.to_string(),
            verify,
        });
    }

    /// Asks for the trial merges of a branch that just became ready, against the integration
    /// branch, the branch being merged and the other ready branches (the latest
    /// [`FORECAST_AT_MOST`]), so that a coming conflict is known before its merge.
    pub(super) fn forecast(&mut self, index: usize) {
        let ws = &self.plan.workflow.workstreams[index];
        if ws.isolation != Isolation::Worktree {
            return;
        }
        let head = |i: usize| -> Option<Oid> { self.state.workstreams[i].result_commit.as_deref()?.parse().ok() };
        let Some(own) = head(index) else { return };
        let mut against: Vec<(Option<usize>, Oid)> = self.last_good().map(|tip| (None, tip)).into_iter().collect();
        // The branch being merged is about to be on the integration branch.
        if let Some(m) = self.merges.merging.as_ref().filter(|m| m.workstream != index) {
            against.push((Some(m.workstream), m.result));
        }
        let others = self
            .merges
            .ready
            .iter()
            .rev()
            .filter(|&&i| i != index && self.state.workstreams[i].phase == Phase::Ready)
            .filter_map(|&i| head(i).map(|h| (Some(i), h)))
            .take(FORECAST_AT_MOST);
        against.extend(others);
        self.out.push(Effect::Forecast {
            workstream: index,
            head: own,
            against,
        });
    }

    /// Records a warning for each coming conflict a forecast found.
    pub(super) fn forecasted(&mut self, index: usize, conflicts: Vec<(Option<usize>, Vec<String>)>) {
        let plan = self.plan.clone();
        let workflow = &plan.workflow;
        let name = workflow.workstreams[index].name.clone();
        let then = if workflow.integrate.sync == SyncMode::Off {
            "its merge will conflict"
        } else {
            "it will be brought up to date and fixed at its merge"
        };
        for (other, paths) in conflicts {
            let with = match other {
                Some(i) if self.state.workstreams[i].phase == Phase::Ready => {
                    format!("`{}`'s branch (also ready)", workflow.workstreams[i].name)
                }
                Some(i) => format!("`{}`'s branch (being merged)", workflow.workstreams[i].name),
                None => "the integration branch".to_string(),
            };
            self.record(EventKind::Alert {
                workstream: Some(index),
                message: format!(
                    "{name}: its branch conflicts with {with} in {}: {then}",
                    paths.join(", ")
                ),
            });
        }
    }
}

/// How many other ready branches a branch that becomes ready is trial-merged with.
const FORECAST_AT_MOST: usize = 8;
