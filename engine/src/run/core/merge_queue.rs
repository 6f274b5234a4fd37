//! The merge queue: which ready branch merges next (one at a time, in the plan's merge order
//! or as each is ready), and what a merge and its `verify` mean for the integration branch.

use std::collections::VecDeque;

use flow_dsl::MergeOrder;

use super::{Core, Effect, MergeOutcome};
use crate::git::Oid;
use crate::plan::Plan;
use crate::run::state::{EventKind, Failure, FailureKind, Phase, TestResult};

/// The merge under way.
#[derive(Debug)]
struct Merging {
    workstream: usize,
    /// The integration branch's head before the merge.
    expected: Oid,
    /// The merged commit, once the merge is done (not yet verified).
    merged: Option<Oid>,
    /// The failed `verify` being rolled back (`None`: rolled back because it was stopped).
    failed_verify: Option<TestResult>,
    /// `verify` runs.
    verifying: bool,
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

    /// Merging stops for the rest of the run.
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    pub(super) fn is_busy(&self) -> bool {
        self.merging.is_some()
    }

    pub(super) fn is_verifying(&self) -> bool {
        self.merging.as_ref().is_some_and(|m| m.verifying)
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
            merged: None,
            failed_verify: None,
            verifying: false,
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
                self.record(EventKind::Conflicted {
                    workstream: index,
                    paths,
                });
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
}
