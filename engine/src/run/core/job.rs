//! One workstream from its start to ready: its worktree, its agent's attempts and what each
//! attempt's end means (retry, fail, or check its work), the check (integrity, scope, test).

use std::time::Duration;

use flow_dsl::ScopePolicy;

use super::{AgentEnd, AgentOutcome, Core, Effect, Inspection, StopReason, Timer, Workspace, priced};
use crate::agent::Usage;
use crate::agent::output::ErrorClass;
use crate::git::Oid;
use crate::run::state::{EventKind, ExitStatus, Failure, FailureKind, Phase, TestResult};

/// Where a workstream's job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Its worktree and context are being made.
    Preparing,
    /// Its agent runs.
    Agent,
    /// Its work is being committed and read.
    Inspecting,
    /// Its out-of-scope changes are being reverted.
    Reverting,
    /// Its test runs.
    Testing,
    /// It waits before its next attempt.
    Waiting,
    /// Its worktree is being reset for the next attempt.
    Resetting,
}

/// A workstream being worked on.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) stage: Stage,
    /// The number of the latest attempt started (0 before the first).
    pub(super) attempt: u32,
    /// Its agent finished before the run was interrupted: check its work, do not run it again.
    check_only: bool,
    workspace: Option<Workspace>,
    /// Why the core asked it to stop, if it did.
    pub(super) stop: Option<StopReason>,
    /// The branch head its check found.
    head: Option<Oid>,
    /// The changed paths kept (all, or those in scope after a revert).
    files: Vec<String>,
    /// The paths a revert is taking out.
    reverting: Vec<String>,
}

impl Job {
    pub(super) fn new(check_only: bool) -> Job {
        Job {
            stage: Stage::Preparing,
            attempt: 0,
            check_only,
            workspace: None,
            stop: None,
            head: None,
            files: vec![],
            reverting: vec![],
        }
    }

    /// Tells whether a process of the job runs (its agent or its test), which a stop must end.
    pub(super) fn runs_a_process(&self) -> bool {
        matches!(self.stage, Stage::Agent | Stage::Testing)
    }

    /// Tells whether it only waits for a timer, so a stop can end it at once.
    pub(super) fn is_waiting(&self) -> bool {
        self.stage == Stage::Waiting
    }
}

impl Core {
    fn job(&mut self, index: usize) -> Option<&mut Job> {
        self.jobs[index].as_deref_mut()
    }

    /// The job at `index` if it is at `stage`: inputs that do not fit are ignored.
    fn job_at(&mut self, index: usize, stage: Stage) -> Option<&mut Job> {
        self.jobs[index].as_deref_mut().filter(|j| j.stage == stage)
    }

    /// Tells whether the job must stop before its next step (Ctrl-C or a stop reason).
    fn must_stop(&self, index: usize) -> bool {
        self.cancelled || self.jobs[index].as_ref().is_some_and(|j| j.stop.is_some())
    }

    pub(super) fn prepared(&mut self, index: usize, result: Result<Workspace, String>) {
        if self.job_at(index, Stage::Preparing).is_none() {
            return;
        }
        let workspace = match result {
            Ok(w) => w,
            Err(message) => return self.fail(index, Failure::new(FailureKind::Git, message)),
        };
        self.record(EventKind::Prepared {
            workstream: index,
            branch: workspace.branch.clone(),
            worktree: workspace.dir.display().to_string(),
            start_commit: workspace.start.map(|s| s.to_string()),
        });
        let job = self.job(index).expect("the job is preparing");
        job.workspace = Some(workspace);
        if self.must_stop(index) {
            return self.resolve_stop(index);
        }
        let job = self.job(index).expect("the job is preparing");
        if job.check_only {
            job.check_only = false;
            self.check(index);
        } else {
            self.start_attempt(index);
        }
    }

    /// Starts the next attempt of the workstream's agent, recorded first.
    fn start_attempt(&mut self, index: usize) {
        let job = self.job(index).expect("a job starts an attempt");
        job.attempt += 1;
        job.stage = Stage::Agent;
        let attempt = job.attempt;
        self.ledger.clear_live(index);
        self.record(EventKind::AttemptStarted {
            workstream: index,
            attempt,
        });
        let budget_usd = self.ledger.left_usd(&self.plan.workflow, &self.state, index);
        self.out.push(Effect::StartAgent {
            workstream: index,
            attempt,
            budget_usd,
        });
    }

    pub(super) fn usage(&mut self, index: usize, usage: Usage) {
        if self.job_at(index, Stage::Agent).is_none() {
            return;
        }
        let workflow = self.plan.workflow.clone();
        let usage = priced(usage, workflow.model_of(&workflow.workstreams[index]));
        self.ledger.set_live(index, usage);
        self.record(EventKind::Usage {
            workstream: index,
            usage,
        });
        self.weigh(index);
    }

    pub(super) fn agent_ended(&mut self, index: usize, outcome: AgentOutcome) {
        let Some(job) = self.job_at(index, Stage::Agent) else {
            return;
        };
        let attempt = job.attempt;
        if outcome.end == AgentEnd::Unrecorded {
            // Nothing started that the record would not know of.
            return self.cancel(index, "the run's event log cannot be written");
        }
        let workflow = self.plan.workflow.clone();
        let ws = &workflow.workstreams[index];
        let usage = priced(outcome.usage, workflow.model_of(ws));
        self.ledger.clear_live(index);
        let error = match &outcome.end {
            AgentEnd::Failed(message) if outcome.error.is_none() => Some(crate::agent::output::AgentError::new(
                ErrorClass::Crash,
                message.clone(),
            )),
            _ => outcome.error.clone(),
        };
        self.record(EventKind::AttemptEnded {
            workstream: index,
            attempt,
            usage,
            session_id: outcome.session_id.clone(),
            error: error.clone(),
            last_line: outcome.last_line.clone(),
        });
        // Formats read as a whole (claude-json, gemini-json) report their usage only now.
        self.weigh(index);
        let exit = match outcome.end {
            AgentEnd::Exited(code) => Some(ExitStatus::Code(code)),
            AgentEnd::Signaled(signal) => Some(ExitStatus::Signal(signal)),
            _ => None,
        };
        let failure = match &outcome.end {
            AgentEnd::Stopped => return self.resolve_stop(index),
            AgentEnd::Unrecorded => unreachable!("handled above"),
            AgentEnd::TimedOut => Some(Failure::new(
                FailureKind::Timeout,
                format!(
                    "timed out after {}",
                    flow_dsl::format_duration(ws.timeout.unwrap_or_default())
                ),
            )),
            AgentEnd::Hung => Some(Failure::new(
                FailureKind::Hung,
                format!(
                    "printed nothing for {}: treated as hung",
                    flow_dsl::format_duration(ws.idle_timeout.unwrap_or_default())
                ),
            )),
            AgentEnd::Failed(message) => Some(Failure::new(FailureKind::Agent, message.clone())),
            AgentEnd::Exited(_) | AgentEnd::Signaled(_) => match &error {
                Some(e) if e.class == ErrorClass::Budget => Some(Failure::new(FailureKind::Budget, e.to_string())),
                Some(e) => Some(Failure {
                    exit,
                    ..Failure::new(FailureKind::Agent, e.to_string())
                }),
                None if outcome.end != AgentEnd::Exited(0) => {
                    let how = exit.map_or_else(String::new, |e| e.to_string());
                    Some(Failure {
                        exit,
                        ..Failure::new(FailureKind::Agent, how)
                    })
                }
                None => None,
            },
        };
        match failure {
            Some(failure) => self.attempt_failed(index, failure),
            None if self.must_stop(index) => self.resolve_stop(index),
            None => self.check(index),
        }
    }

    /// Checks an attempt's work: commit and read the worktree, then scope, then the test.
    fn check(&mut self, index: usize) {
        let ws = &self.plan.workflow.workstreams[index];
        let has_test = ws.test.is_some();
        let job = self.job(index).expect("a job is checked");
        let has_branch = job.workspace.as_ref().is_some_and(|w| w.branch.is_some());
        // A scratch folder with no test has nothing to check: no events for it.
        if !has_branch && !has_test {
            return self.succeed(index);
        }
        job.stage = if has_branch { Stage::Inspecting } else { Stage::Testing };
        self.record(EventKind::Phase {
            workstream: index,
            phase: Phase::Checking,
            reason: None,
        });
        self.out.push(if has_branch {
            Effect::Inspect { workstream: index }
        } else {
            Effect::Test { workstream: index }
        });
    }

    pub(super) fn inspected(&mut self, index: usize, result: Result<Inspection, String>) {
        if self.job_at(index, Stage::Inspecting).is_none() {
            return;
        }
        if self.must_stop(index) {
            return self.resolve_stop(index);
        }
        let inspection = match result {
            Ok(i) => i,
            Err(message) => return self.attempt_failed(index, Failure::new(FailureKind::Git, message)),
        };
        if !inspection.integrity.is_empty() {
            let failure = Failure::new(FailureKind::Integrity, inspection.integrity.join("; "));
            return self.attempt_failed(index, failure);
        }
        let plan = self.plan.clone();
        let workflow = &plan.workflow;
        let ws = &workflow.workstreams[index];
        let violations: Vec<String> = ws
            .scope
            .breaches(&inspection.changed)
            .into_iter()
            .map(|b| b.path)
            .collect();
        let job = self.job(index).expect("the job is inspecting");
        job.head = Some(inspection.head);
        if violations.is_empty() {
            job.files = inspection.changed;
            return self.after_scope(index);
        }
        let list = violations.join(", ");
        match workflow.scope_policy {
            ScopePolicy::Fail => self.attempt_failed(
                index,
                Failure::new(FailureKind::Scope, format!("changed files outside its scope: {list}")),
            ),
            ScopePolicy::Warn => {
                job.files = inspection.changed;
                self.record(EventKind::Alert {
                    workstream: Some(index),
                    message: format!("{}: changed files outside its scope: {list}", ws.name),
                });
                self.after_scope(index)
            }
            ScopePolicy::Revert => {
                job.files = inspection
                    .changed
                    .into_iter()
                    .filter(|p| !violations.contains(p))
                    .collect();
                job.reverting = violations.clone();
                job.stage = Stage::Reverting;
                self.out.push(Effect::Revert {
                    workstream: index,
                    paths: violations,
                });
            }
        }
    }

    pub(super) fn reverted(&mut self, index: usize, result: Result<Oid, String>) {
        let Some(job) = self.job_at(index, Stage::Reverting) else {
            return;
        };
        match result {
            Ok(head) => {
                job.head = Some(head);
                let list = std::mem::take(&mut job.reverting).join(", ");
                let name = self.plan.workflow.workstreams[index].name.clone();
                self.record(EventKind::Alert {
                    workstream: Some(index),
                    message: format!("{name}: reverted changes outside its scope: {list}"),
                });
                if self.must_stop(index) {
                    return self.resolve_stop(index);
                }
                self.after_scope(index);
            }
            Err(message) => self.attempt_failed(index, Failure::new(FailureKind::Git, message)),
        }
    }

    /// The scope holds (or was made to): the test, if any, decides.
    fn after_scope(&mut self, index: usize) {
        if self.plan.workflow.workstreams[index].test.is_some() {
            let job = self.job(index).expect("the job is checked");
            job.stage = Stage::Testing;
            self.out.push(Effect::Test { workstream: index });
        } else {
            self.checked(index, None);
        }
    }

    pub(super) fn tested(&mut self, index: usize, result: Option<TestResult>) {
        if self.job_at(index, Stage::Testing).is_none() {
            return;
        }
        match result {
            None => self.resolve_stop(index),
            Some(result) => self.checked(index, Some(result)),
        }
    }

    /// Records the check's result; a failed test fails the attempt.
    fn checked(&mut self, index: usize, test: Option<TestResult>) {
        let job = self.job(index).expect("the job is checked");
        let result_commit = job.head.map(|h| h.to_string());
        let files_changed = job.files.clone();
        self.record(EventKind::Checked {
            workstream: index,
            result_commit,
            files_changed,
            test: test.clone(),
        });
        match test {
            Some(t) if !t.passed => self.attempt_failed(
                index,
                Failure::new(FailureKind::Test, format!("test failed: {}", t.detail)),
            ),
            _ if self.must_stop(index) => self.resolve_stop(index),
            _ => self.succeed(index),
        }
    }

    /// The work passed its checks: ready to merge (or done, without a branch).
    fn succeed(&mut self, index: usize) {
        let has_branch = self.jobs[index]
            .as_ref()
            .and_then(|j| j.workspace.as_ref())
            .is_some_and(|w| w.branch.is_some());
        self.end_job(index);
        self.record(EventKind::Phase {
            workstream: index,
            phase: if has_branch { Phase::Ready } else { Phase::Done },
            reason: None,
        });
    }

    /// An attempt failed: another one follows after a wait when the failure is one another
    /// attempt may fix and attempts are left, unless the job must stop; else it fails.
    fn attempt_failed(&mut self, index: usize, failure: Failure) {
        let ws = &self.plan.workflow.workstreams[index];
        let attempts = ws.retries + 1;
        let name = ws.name.clone();
        let attempt = self.jobs[index].as_ref().map_or(attempts, |j| j.attempt);
        if !failure.kind.is_retryable() || attempt >= attempts {
            return self.fail(index, failure);
        }
        if self.must_stop(index) {
            return self.resolve_stop(index);
        }
        let wait = backoff(self.options.retry_base, attempt, index, self.seed);
        self.record(EventKind::Alert {
            workstream: Some(index),
            message: format!(
                "{name}: attempt {attempt} failed ({}); retrying in {:.1}s",
                failure.message,
                wait.as_secs_f64()
            ),
        });
        let job = self.job(index).expect("a failed attempt has a job");
        job.stage = Stage::Waiting;
        self.out.push(Effect::Wake {
            timer: Timer::Retry {
                workstream: index,
                attempt,
            },
            after: wait,
        });
    }

    pub(super) fn timer(&mut self, timer: Timer) {
        let Timer::Retry { workstream, attempt } = timer;
        let Some(job) = self.job_at(workstream, Stage::Waiting) else {
            return;
        };
        if job.attempt != attempt {
            return;
        }
        let start = job
            .workspace
            .as_ref()
            .filter(|w| w.branch.is_some())
            .and_then(|w| w.start);
        if self.must_stop(workstream) {
            return self.resolve_stop(workstream);
        }
        match start {
            Some(to) => {
                self.job(workstream).expect("the job waits").stage = Stage::Resetting;
                self.out.push(Effect::Reset { workstream, to });
            }
            None => self.start_attempt(workstream),
        }
    }

    pub(super) fn reset(&mut self, index: usize, result: Result<(), String>) {
        if self.job_at(index, Stage::Resetting).is_none() {
            return;
        }
        match result {
            Err(message) => self.fail(
                index,
                Failure::new(
                    FailureKind::Git,
                    format!("cannot reset the worktree for a retry: {message}"),
                ),
            ),
            Ok(()) if self.must_stop(index) => self.resolve_stop(index),
            Ok(()) => self.start_attempt(index),
        }
    }

    /// Ends a job that was asked to stop, the way its stop reason says.
    pub(super) fn resolve_stop(&mut self, index: usize) {
        let Some(job) = self.jobs[index].as_ref() else { return };
        if self.cancelled {
            let why = if job.attempt == 0 {
                "stopped before it started"
            } else {
                "stopped by Ctrl-C"
            };
            return self.cancel(index, why);
        }
        match job.stop.clone() {
            Some(StopReason::Budget(breach)) => self.fail(
                index,
                Failure {
                    kind: FailureKind::Budget,
                    message: breach.to_string(),
                    budget: Some(breach),
                    exit: None,
                },
            ),
            Some(StopReason::Abort(reason)) => self.cancel(index, &reason),
            None => self.cancel(index, "stopped by Ctrl-C"),
        }
    }

    fn fail(&mut self, index: usize, failure: Failure) {
        self.end_job(index);
        self.record(EventKind::Failed {
            workstream: index,
            failure,
        });
    }

    fn cancel(&mut self, index: usize, reason: &str) {
        self.end_job(index);
        self.record(EventKind::Phase {
            workstream: index,
            phase: Phase::Cancelled,
            reason: Some(reason.to_string()),
        });
    }
}

/// The delay before retry number `attempt` (1-based): exponential, at most 30 s, with ±20%
/// jitter drawn from the workstream, the attempt and the run's seed (so no two workstreams
/// retry in lockstep, yet a run is reproducible).
fn backoff(base: Duration, attempt: u32, index: usize, seed: u64) -> Duration {
    let exponential = base
        .saturating_mul(1 << (attempt - 1).min(10))
        .min(Duration::from_secs(30));
    let mut x = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(attempt).rotate_left(32);
    // splitmix64's finaliser: a well-mixed 64-bit value from the inputs.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let jitter = (x % 401) as f64 / 1000.0 - 0.2;
    exponential.mul_f64(1.0 + jitter)
}
