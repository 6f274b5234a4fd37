//! One workstream from its start to ready: its worktree, its agent's attempts and what each
//! attempt's end means (retry, fix, fail, or check its work), the check (integrity, scope,
//! conflict markers, test), the review, and bringing the integration branch in (sync).
//!
//! Two loops bound the attempts, and they are different things:
//!
//! - `retries`: an attempt that crashed, timed out, hung or hit a rate limit runs again from a
//!   clean worktree after a growing wait;
//! - `fix-attempts`: work that runs but fails a check (its test, its scope, `verify` after its
//!   merge, a conflict with the integration branch, a review) goes back to the agent with what
//!   failed, in the same worktree (and the same session where the agent can continue one).

use std::time::Duration;

use flow_dsl::ScopePolicy;

use super::review::read_verdict;
use super::{AgentEnd, AgentOutcome, Conflicts, Core, Effect, Inspection, StopReason, SyncOutcome, Timer, Workspace};
use super::{Handoff, priced};
use crate::agent::Usage;
use crate::agent::output::{AgentError, ErrorClass};
use crate::git::Oid;
use crate::run::state::{
    EventKind, ExitStatus, Failure, FailureKind, Feedback, FeedbackKind, Phase, Purpose, Review, TestResult, Verdict,
};

/// Where a workstream's job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Its worktree and context are being made.
    Preparing,
    /// An agent of it runs (its own, or its reviewer).
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
    /// The integration branch is being brought into its branch.
    Syncing,
    /// A conflicting sync is being given up.
    Aborting,
}

/// Why a finished workstream's job opens again.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reopen {
    /// Its merge conflicted or broke `verify`: bring the integration branch in, then fix
    /// what this feedback says if it is still needed.
    Sync(Feedback),
    /// A resume of a fix attempt that was cut short: give this feedback again.
    Fix(Feedback),
}

/// A workstream being worked on.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) stage: Stage,
    /// The number of the latest attempt started: the workstream's attempts are numbered on
    /// from those recorded before this job (a job opened again, a resume).
    pub(super) attempt: u32,
    /// The number of the workstream's latest attempt when this job opened.
    attempts_before: u32,
    /// What the latest attempt is for.
    purpose: Purpose,
    /// The feedback of the latest fix attempt (a retry of it gives it again).
    feedback: Option<Feedback>,
    /// Attempts that count against `retries`.
    tries: u32,
    /// Its agent finished before the run was interrupted: check its work, do not run it again.
    check_only: bool,
    /// Why the job opened again, until it is acted on.
    reopen: Option<Reopen>,
    workspace: Option<Workspace>,
    /// Why the core asked it to stop, if it did.
    pub(super) stop: Option<StopReason>,
    /// The branch head its check found.
    head: Option<Oid>,
    /// Its own attempt's usage passed a budget and it was asked to stop.
    pub(super) overran: bool,
    /// The integration commit its work is measured from (see [`Inspection::base`]).
    base: Option<Oid>,
    /// The changed paths kept (all, or those in scope after a revert).
    files: Vec<String>,
    /// The paths a revert is taking out.
    reverting: Vec<String>,
    /// The files of a conflicting sync its agent is resolving.
    conflicts: Vec<String>,
    /// The files of a sync's conflict its agent resolved, logged once its work is checked.
    resolved: Vec<String>,
}

impl Job {
    pub(super) fn new(check_only: bool, reopen: Option<Reopen>, attempts_before: u32, conflicts: Vec<String>) -> Job {
        Job {
            base: None,
            overran: false,
            stage: Stage::Preparing,
            attempt: attempts_before,
            attempts_before,
            purpose: Purpose::Work,
            feedback: None,
            tries: 0,
            check_only,
            reopen,
            workspace: None,
            stop: None,
            head: None,
            files: vec![],
            reverting: vec![],
            conflicts,
            resolved: vec![],
        }
    }

    /// Tells whether a process of the job runs (an agent or its test), which a stop must end.
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
    pub(super) fn must_stop(&self, index: usize) -> bool {
        self.cancelled || self.jobs[index].as_ref().is_some_and(|j| j.stop.is_some())
    }

    /// What the dependencies of workstream `index` did, for its context.
    pub(super) fn handoffs(&self, index: usize) -> Vec<Handoff> {
        super::handoff::handoffs(&self.plan.workflow, &self.state, index)
    }

    pub(super) fn prepared(&mut self, index: usize, result: Result<Workspace, Failure>) {
        if self.job_at(index, Stage::Preparing).is_none() {
            return;
        }
        let workspace = match result {
            Ok(w) => w,
            Err(failure) => return self.fail(index, failure),
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
        match job.reopen.take() {
            Some(Reopen::Sync(feedback)) => self.sync(index, feedback),
            // The fix a stop cut short runs again with its feedback: a retry of that fix, not
            // a new one (it does not count against `fix-attempts` again).
            Some(Reopen::Fix(feedback)) => {
                job.feedback = Some(feedback);
                self.start_attempt(index, Purpose::Fix, None)
            }
            None if job.check_only => {
                job.check_only = false;
                self.check(index);
            }
            None => self.start_attempt(index, Purpose::Work, None),
        }
    }

    /// Starts the next attempt of an agent of the workstream, recorded first. A fix attempt
    /// with `feedback` is a new fix; one without it runs the latest fix again (a retry).
    pub(super) fn start_attempt(&mut self, index: usize, purpose: Purpose, feedback: Option<Feedback>) {
        // Every attempt (a retry, a fix, a review) spends: none starts on a spent budget.
        if let Some(breach) = self.ledger.refusal(&self.plan.workflow, &self.state, index) {
            return self.fail(
                index,
                Failure {
                    budget: Some(breach.clone()),
                    ..Failure::new(FailureKind::Budget, breach.to_string())
                },
            );
        }
        let job = self.job(index).expect("a job starts an attempt");
        job.attempt += 1;
        job.stage = Stage::Agent;
        job.purpose = purpose;
        if feedback.is_some() {
            job.feedback = feedback.clone();
        }
        if purpose == Purpose::Work || (purpose == Purpose::Fix && feedback.is_none()) {
            job.tries += 1;
        }
        let given = if purpose == Purpose::Fix {
            job.feedback.clone()
        } else {
            None
        };
        let attempt = job.attempt;
        self.ledger.clear_live(index);
        let session = match purpose {
            Purpose::Fix => self.state.workstreams[index].session_id.clone(),
            _ => None,
        };
        self.record(EventKind::AttemptStarted {
            workstream: index,
            attempt,
            purpose,
            feedback: feedback.clone(),
        });
        let budget_usd = self.ledger.left_usd(&self.plan.workflow, &self.state, index);
        self.out.push(Effect::StartAgent {
            workstream: index,
            attempt,
            budget_usd,
            purpose,
            feedback: given,
            session,
        });
    }

    pub(super) fn usage(&mut self, index: usize, usage: Usage) {
        if self.job_at(index, Stage::Agent).is_none() && !self.merges.is_resolving(index) {
            return;
        }
        let workflow = self.plan.workflow.clone();
        let usage = priced(usage, workflow.model_of(&workflow.workstreams[index]));
        self.ledger.set_live(index, usage);
        self.record(EventKind::Usage {
            workstream: index,
            usage,
        });
        self.weigh(index, false);
    }

    /// Records how an attempt ended (its usage priced, a resumed session's running cost
    /// turned into this attempt's) and weighs the spending.
    pub(super) fn record_attempt_end(
        &mut self,
        index: usize,
        attempt: u32,
        outcome: &AgentOutcome,
    ) -> Option<AgentError> {
        let workflow = self.plan.workflow.clone();
        let ws = &workflow.workstreams[index];
        let mut usage = priced(outcome.usage, workflow.model_of(ws));
        let mut session_cost = None;
        if let Some(reported) = usage.cost_usd
            && workflow.agent_of(ws).output.reports_session_cost()
        {
            if outcome.resumed {
                // The tool reports the whole session's running total: this attempt cost what
                // the total grew by.
                let before = self.state.workstreams[index].session_cost.unwrap_or(0.0);
                usage.cost_usd = Some((reported - before).max(0.0));
            }
            session_cost = Some(reported);
        }
        self.ledger.clear_live(index);
        let error = match &outcome.end {
            AgentEnd::Failed(message) | AgentEnd::CannotStart(message) if outcome.error.is_none() => {
                Some(AgentError::new(ErrorClass::Crash, message.clone()))
            }
            _ => outcome.error.clone(),
        };
        self.record(EventKind::AttemptEnded {
            workstream: index,
            attempt,
            usage,
            session_id: outcome.session_id.clone(),
            error: error.clone(),
            last_line: outcome.last_line.clone(),
            result: outcome.result.as_deref().map(clip),
            session_cost,
        });
        // Formats read as a whole (claude-json, gemini-json) report their usage only now.
        self.weigh(index, true);
        error
    }

    pub(super) fn agent_ended(&mut self, index: usize, mut outcome: AgentOutcome) {
        if self.merges.is_resolving(index) {
            if !outcome.tampered.is_empty() {
                // A resolver that reached into the git directory resolved nothing.
                outcome.end = AgentEnd::Failed(tampered("the resolver", &outcome.tampered));
            }
            return self.resolver_ended(index, outcome);
        }
        let deny_overrun = self.options.deny_overrun;
        let Some(job) = self.job_at(index, Stage::Agent) else {
            return;
        };
        let (attempt, purpose) = (job.attempt, job.purpose);
        let finished = outcome.end == AgentEnd::Exited(0) || outcome.delivered;
        if job.overran && finished && !deny_overrun {
            // It passed its budget with its final report (the result comes last, and the stop
            // may reach it on its way out): the money is spent, the work is kept; no further
            // attempt starts on the spent budget.
            job.stop = None;
            job.overran = false;
            outcome.end = AgentEnd::Exited(0);
            outcome.error = None;
        }
        if outcome.end == AgentEnd::Unrecorded {
            // Nothing started that the record would not know of.
            return self.cancel(index, "the run's event log cannot be written");
        }
        let error = self.record_attempt_end(index, attempt, &outcome);
        if !outcome.tampered.is_empty() {
            // Hostile or broken: no retry and no fix; what it did is undone and recorded.
            let who = if purpose == Purpose::Review {
                "its reviewer"
            } else {
                "its agent"
            };
            let failure = Failure::new(FailureKind::Integrity, tampered(who, &outcome.tampered));
            return self.fail(index, failure);
        }
        if purpose == Purpose::Review {
            return self.reviewed(index, &outcome, error);
        }
        let ws = &self.plan.workflow.workstreams[index];
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
            AgentEnd::CannotStart(message) => Some(Failure::new(FailureKind::Setup, message.clone())),
            AgentEnd::Exited(_) | AgentEnd::Signaled(_) => match &error {
                Some(e) if e.class == ErrorClass::Budget => Some(Failure::new(FailureKind::Budget, e.to_string())),
                Some(e) => Some(Failure {
                    exit,
                    // How it ended, where the tool's own words do not say.
                    ..Failure::new(
                        FailureKind::Agent,
                        match exit {
                            Some(how) if outcome.end != AgentEnd::Exited(0) => format!("{e} ({how})"),
                            _ => e.to_string(),
                        },
                    )
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
            // A person's message waits for the attempt's end: the agent gets it now, and its
            // work is checked once it has acted on it.
            None if self.deliver_message(index) => {}
            None => self.check(index),
        }
    }

    /// Checks an attempt's work: commit and read the worktree, then scope and conflict
    /// markers, then the test, then the review.
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
        let markers_in = job.conflicts.clone();
        self.record(EventKind::Phase {
            workstream: index,
            phase: Phase::Checking,
            reason: None,
        });
        let integration = self.last_good();
        self.out.push(if has_branch {
            Effect::Inspect {
                workstream: index,
                markers_in,
                integration,
            }
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
        if !inspection.markers.is_empty() {
            let list = inspection.markers.join(", ");
            let files = self.jobs[index]
                .as_ref()
                .map(|j| j.conflicts.clone())
                .unwrap_or_default();
            let feedback = Feedback {
                kind: FeedbackKind::Conflict,
                summary: format!("conflict markers are still in {list}"),
                detail: format!(
                    "These files still hold conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`): {list}. \
                     Resolve each conflict, keeping what both sides meant, and remove every marker."
                ),
                files,
            };
            let failure = Failure::new(FailureKind::Conflict, format!("conflict markers left in {list}"));
            return self.fix_or_fail(index, feedback, failure);
        }
        let plan = self.plan.clone();
        let workflow = &plan.workflow;
        let ws = &workflow.workstreams[index];
        let breaches = ws.scope.breaches(&inspection.changed);
        let violations: Vec<String> = breaches.iter().map(|b| b.path.clone()).collect();
        let job = self.job(index).expect("the job is inspecting");
        job.head = Some(inspection.head);
        job.base = Some(inspection.base);
        if !job.conflicts.is_empty() {
            // Its agent resolved a conflict with the integration branch (this inspection
            // committed it): a decision, logged when its work is checked.
            job.resolved = std::mem::take(&mut job.conflicts);
        }
        if violations.is_empty() {
            job.files = inspection.changed;
            return self.after_scope(index);
        }
        let list = violations.join(", ");
        match workflow.scope_policy {
            ScopePolicy::Fail => {
                let rules: Vec<String> = breaches.iter().map(ToString::to_string).collect();
                let feedback = Feedback {
                    kind: FeedbackKind::Scope,
                    summary: format!("changed files outside its scope: {list}"),
                    detail: format!(
                        "Changes outside this workstream's scope are not allowed:\n{}\n\
                         Undo those changes (restore the files as they were at the start), and \
                         keep your work within what the workstream owns.",
                        rules.iter().map(|r| format!("- {r}")).collect::<Vec<_>>().join("\n")
                    ),
                    files: vec![],
                };
                let failure = Failure::new(FailureKind::Scope, format!("changed files outside its scope: {list}"));
                self.fix_or_fail(index, feedback, failure)
            }
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

    /// Records the check's result; a failed test goes back to the agent, a passed one to
    /// the reviewer (when there is one) or to the merge queue.
    fn checked(&mut self, index: usize, test: Option<TestResult>) {
        let job = self.job(index).expect("the job is checked");
        let head = job.head;
        let result_commit = head.map(|h| h.to_string());
        let base_commit = job.base.map(|b| b.to_string());
        let files_changed = job.files.clone();
        let resolved = std::mem::take(&mut job.resolved);
        if let (Some(commit), false) = (head, resolved.is_empty()) {
            // Logged before the check is recorded: a kill in between checks the same commit
            // again on resume, and the log takes an entry for a commit once.
            let ws = &self.plan.workflow.workstreams[index];
            let by = format!("the workstream's own agent (`{}`)", ws.agent);
            let entry = crate::decision_log::entry(&ws.name, &resolved, &by, None);
            self.out.push(Effect::LogDecision { commit, entry });
        }
        self.record(EventKind::Checked {
            workstream: index,
            result_commit: result_commit.clone(),
            base_commit,
            files_changed,
            test: test.clone(),
        });
        match test {
            Some(t) if !t.passed => {
                let feedback = Feedback {
                    kind: FeedbackKind::Test,
                    summary: format!("the test failed: {}", t.detail),
                    detail: format!(
                        "The workstream's test `{}` failed ({}). The end of its output:\n\n{}",
                        t.command,
                        t.detail,
                        if t.tail.is_empty() {
                            "(no output)"
                        } else {
                            t.tail.as_str()
                        }
                    ),
                    files: vec![],
                };
                let failure = Failure::new(FailureKind::Test, format!("test failed: {}", t.detail));
                self.fix_or_fail(index, feedback, failure)
            }
            _ if self.must_stop(index) => self.resolve_stop(index),
            _ => {
                let has_reviewer = self.plan.workflow.workstreams[index].review.is_some();
                // A verdict already given on this very commit stands (a resume checking the
                // work again): the reviewer does not read it twice.
                let given = self.state.workstreams[index]
                    .review
                    .as_ref()
                    .filter(|r| r.commit == result_commit)
                    .map(|r| (r.verdict, r.reviewer.clone(), r.comments.clone()));
                match (has_reviewer, head, given) {
                    (true, Some(_), None) => self.start_attempt(index, Purpose::Review, None),
                    (true, Some(_), Some((Verdict::ChangesRequested, reviewer, comments))) => {
                        self.changes_requested(index, &reviewer, &comments)
                    }
                    _ => self.succeed(index),
                }
            }
        }
    }

    /// What the reviewer's answer means: approved work is ready; requested changes go back
    /// to the agent.
    fn reviewed(&mut self, index: usize, outcome: &AgentOutcome, error: Option<AgentError>) {
        if outcome.end == AgentEnd::Stopped {
            return self.resolve_stop(index);
        }
        let ws = &self.plan.workflow.workstreams[index];
        let reviewer = ws.review.as_ref().map_or_else(String::new, |r| r.agent.clone());
        let (verdict, comments) = match (&error, outcome.end == AgentEnd::Exited(0)) {
            (None, true) => read_verdict(outcome.result.as_deref()),
            (Some(e), _) => (Verdict::ChangesRequested, format!("the reviewer failed: {e}")),
            (None, false) => (
                Verdict::ChangesRequested,
                "the reviewer ended without an answer".to_string(),
            ),
        };
        let commit = self.jobs[index].as_ref().and_then(|j| j.head).map(|h| h.to_string());
        self.record(EventKind::Reviewed {
            workstream: index,
            review: Review {
                verdict,
                comments: clip(&comments),
                reviewer: reviewer.clone(),
                commit,
            },
        });
        if self.must_stop(index) {
            return self.resolve_stop(index);
        }
        match verdict {
            Verdict::Approve => self.succeed(index),
            Verdict::ChangesRequested => self.changes_requested(index, &reviewer, &comments),
        }
    }

    /// The reviewer requested changes: they go back to the agent while `fix-attempts` allow.
    fn changes_requested(&mut self, index: usize, reviewer: &str, comments: &str) {
        let feedback = Feedback {
            kind: FeedbackKind::Review,
            summary: "the reviewer requested changes".to_string(),
            detail: format!("The reviewer (`{reviewer}`) requested changes:\n\n{comments}"),
            files: vec![],
        };
        let failure = Failure::new(
            FailureKind::Review,
            format!("the review requested changes: {}", first_line(comments)),
        );
        self.fix_or_fail(index, feedback, failure)
    }

    /// The work passed its checks: ready to merge (or done, without a branch), unless a
    /// person's message came meanwhile (it goes to the agent first).
    fn succeed(&mut self, index: usize) {
        if self.deliver_message(index) {
            return;
        }
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

    /// A check failed: the agent gets the feedback in a fix attempt while `fix-attempts`
    /// allow, then the failure stands.
    fn fix_or_fail(&mut self, index: usize, feedback: Feedback, failure: Failure) {
        let allowed = self.plan.workflow.workstreams[index].fix_attempts;
        let used = self.state.workstreams[index].fixes;
        if self.must_stop(index) {
            return self.resolve_stop(index);
        }
        if used < allowed {
            let name = self.plan.workflow.workstreams[index].name.clone();
            self.record(EventKind::Alert {
                workstream: Some(index),
                message: format!(
                    "{name}: {}; sent back to its agent (fix {} of {allowed})",
                    feedback.summary,
                    used + 1
                ),
            });
            return self.start_attempt(index, Purpose::Fix, Some(feedback));
        }
        if failure.kind == FailureKind::Conflict {
            // Its own agent could not resolve the conflict: the workstream conflicts.
            let paths = self.jobs[index]
                .as_ref()
                .map(|j| j.conflicts.clone())
                .unwrap_or_default();
            self.end_job(index);
            return self.record(EventKind::Conflicted {
                workstream: index,
                paths,
            });
        }
        self.attempt_failed(index, failure);
    }

    /// An attempt failed: another one follows after a wait when the failure is one another
    /// attempt may fix and retries are left, unless the job must stop; else it fails.
    fn attempt_failed(&mut self, index: usize, failure: Failure) {
        let ws = &self.plan.workflow.workstreams[index];
        let attempts = ws.retries + 1;
        let name = ws.name.clone();
        let (tries, attempt) = self.jobs[index]
            .as_ref()
            .map_or((attempts, 0), |j| (j.tries, j.attempt));
        if !failure.kind.is_retryable() || tries >= attempts {
            return self.fail(index, failure);
        }
        if self.must_stop(index) {
            return self.resolve_stop(index);
        }
        let wait = backoff(self.options.retry_base, tries, index, self.seed);
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
        // A retried fix attempt keeps its worktree: only a work attempt starts over clean.
        let start = job
            .workspace
            .as_ref()
            .filter(|w| w.branch.is_some() && job.purpose == Purpose::Work)
            .and_then(|w| w.start);
        if self.must_stop(workstream) {
            return self.resolve_stop(workstream);
        }
        match start {
            Some(to) => {
                self.job(workstream).expect("the job waits").stage = Stage::Resetting;
                self.out.push(Effect::Reset { workstream, to });
            }
            None => self.retry_attempt(workstream),
        }
    }

    /// Runs the failed attempt again, for the same purpose (a retried fix is not a new fix:
    /// it does not count against `fix-attempts`).
    fn retry_attempt(&mut self, index: usize) {
        let purpose = self.job(index).expect("a job retries").purpose;
        self.start_attempt(index, purpose, None);
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
            Ok(()) => self.retry_attempt(index),
        }
    }

    /// Brings the integration branch into a reopened workstream's branch.
    fn sync(&mut self, index: usize, why: Feedback) {
        let onto = self.last_good();
        let job = self.job(index).expect("a reopened job syncs");
        job.feedback = Some(why);
        match onto {
            Some(onto) => {
                job.stage = Stage::Syncing;
                self.out.push(Effect::Sync {
                    workstream: index,
                    onto,
                });
            }
            None => self.fail(
                index,
                Failure::new(FailureKind::Git, "no integration commit to sync with"),
            ),
        }
    }

    pub(super) fn synced(&mut self, index: usize, result: Result<SyncOutcome, String>) {
        let Some(job) = self.job_at(index, Stage::Syncing) else {
            return;
        };
        let why = job.feedback.clone();
        match result {
            Err(message) => self.fail(
                index,
                Failure::new(
                    FailureKind::Git,
                    format!("cannot sync with the integration branch: {message}"),
                ),
            ),
            Ok(SyncOutcome::Clean(head)) => {
                job.head = Some(head);
                self.record(EventKind::Synced {
                    workstream: index,
                    head: Some(head.to_string()),
                    conflicts: vec![],
                });
                if self.must_stop(index) {
                    return self.resolve_stop(index);
                }
                match why {
                    // Its merge broke `verify`: the agent sees why, on the updated branch.
                    Some(feedback) if feedback.kind == FeedbackKind::Verify => {
                        let failure = Failure::new(FailureKind::Verify, feedback.summary.clone());
                        self.fix_or_fail(index, feedback, failure)
                    }
                    // Its merge conflicted: merged cleanly now, checked again.
                    _ => self.check(index),
                }
            }
            Ok(SyncOutcome::Conflicted(conflicts)) => {
                job.conflicts = conflicts.paths.clone();
                self.record(EventKind::Synced {
                    workstream: index,
                    head: None,
                    conflicts: conflicts.paths.clone(),
                });
                let ws = &self.plan.workflow.workstreams[index];
                if self.state.workstreams[index].fixes < ws.fix_attempts && !self.must_stop(index) {
                    let feedback = conflict_feedback(&conflicts, why.as_ref());
                    let failure = Failure::new(FailureKind::Conflict, feedback.summary.clone());
                    return self.fix_or_fail(index, feedback, failure);
                }
                // No fix attempt left for it: give the sync up, and the conflict is the merge's.
                let job = self.job(index).expect("the job syncs");
                job.stage = Stage::Aborting;
                self.out.push(Effect::AbortSync { workstream: index });
            }
        }
    }

    pub(super) fn sync_aborted(&mut self, index: usize) {
        if self.job_at(index, Stage::Aborting).is_none() {
            return;
        }
        let paths = self.jobs[index]
            .as_ref()
            .map(|j| j.conflicts.clone())
            .unwrap_or_default();
        self.end_job(index);
        self.conflicted(index, paths);
    }

    /// Ends a job that was asked to stop, the way its stop reason says.
    pub(super) fn resolve_stop(&mut self, index: usize) {
        let Some(job) = self.jobs[index].as_ref() else { return };
        if self.cancelled {
            let why = if job.attempt == job.attempts_before {
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
            Some(StopReason::Person) => self.cancel(index, "stopped by a person"),
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

/// What a fix attempt for a conflict is told: the files, their hunks, and what caused it.
pub(super) fn conflict_feedback(conflicts: &Conflicts, why: Option<&Feedback>) -> Feedback {
    let list = conflicts.paths.join(", ");
    let cause = why.map_or(String::new(), |w| format!("{}\n\n", w.detail));
    Feedback {
        kind: FeedbackKind::Conflict,
        summary: format!("conflicts with the integration branch in {list}"),
        detail: format!(
            "{cause}The integration branch was merged into your branch and conflicts in: {list}.\n\
             The files hold conflict markers. Resolve each conflict, keeping what both sides \
             meant, remove every marker, and keep your work passing its test.\n\n{}",
            conflicts.hunks
        ),
        files: conflicts.paths.clone(),
    }
}

/// The first line of a text, for one-line messages.
fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// The longest agent text kept in the record (a final message, review comments).
const CLIP: usize = 4096;

/// A text cut to a few KB for the record, marked where it was cut.
pub(super) fn clip(text: &str) -> String {
    if text.len() <= CLIP {
        return text.to_string();
    }
    let mut end = CLIP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &text[..end], text.len() - end)
}

/// The delay before retry number `attempt` (1-based): exponential, at most 30 s, with ±20%
/// jitter drawn from the workstream, the attempt and the run's seed (so no two workstreams
/// retry in lockstep, yet a run is reproducible).
fn backoff(base: Duration, attempt: u32, index: usize, seed: u64) -> Duration {
    let exponential = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(30));
    let mut x = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(attempt).rotate_left(32);
    // splitmix64's finaliser: a well-mixed 64-bit value from the inputs.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let jitter = (x % 401) as f64 / 1000.0 - 0.2;
    exponential.mul_f64(1.0 + jitter)
}

/// The failure of an agent that changed the shared git directory.
fn tampered(who: &str, changes: &[String]) -> String {
    format!(
        "{who} changed the git directory it shares with your checkout (flow undid it; copies of what \
         it wrote are in the run's `undone` folder): {}",
        changes.join("; ")
    )
}
