//! The run's core: every decision of a run, as a state machine with no I/O.
//!
//! [`Core::step`] takes one [`Input`] (a worktree is ready, an agent printed usage or ended,
//! a check, merge or `verify` finished, a timer went off, a stop was asked for) and the time
//! it happened, updates the [`RunState`] and returns the [`Effect`]s to carry out (record an
//! event, make a worktree, start or stop an agent, check, merge, verify, set a timer). It
//! reads no clock, touches no file, starts no process and prints nothing; the driver
//! (`run::driver`) does all of that and feeds the results back.
//!
//! Where each decision is made:
//!
//! - why a workstream starts, or waits: `Core::launch` (dependencies merged, a slot free
//!   under `-j`, the agent's and the account's `max-parallel`, longest remaining path
//!   first, then priority; a spent budget refuses it);
//! - what an attempt's end means (retry, fail, check its work): `job.rs`;
//! - why an agent is stopped: budgets in `ledger.rs` via `Core::weigh`, the failure policy
//!   in `Core::react` (`--abort-on-failure`), Ctrl-C in `Core::interrupt`;
//! - what merges next and what a merge or `verify` result means: `merge_queue.rs`;
//! - what a person's retry or message means for a run going on: `person.rs`;
//! - what a resume does with each workstream: `run::resume::decide` (a pure function too).
//!
//! Every change of state is an [`Event`], applied here and recorded by the driver before
//! anything that depends on it happens.

mod handoff;
mod job;
mod ledger;
mod merge_queue;
mod person;
mod protocol;
mod review;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use flow_dsl::OnConflict;

pub use self::handoff::handoffs;
pub use self::ledger::{Ledger, priced};
pub use self::person::{MESSAGE_MAX, tidy};
pub use self::protocol::{
    Action, AgentEnd, AgentOutcome, Conflicts, Effect, Handoff, Input, Inspection, MergeOutcome, Resolution,
    SyncOutcome, Timer, Workspace,
};
pub use self::review::read_verdict;

use self::job::{Job, Reopen};
use self::merge_queue::MergeQueue;
use crate::git::Oid;
use crate::plan::Plan;
use crate::run::state::{Event, EventKind, Failure, FailureKind, Phase, RunState, RunStatus};
use crate::time::Timestamp;

/// How the run reacts to failures and how much runs at once.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides the workflow's `max-parallel`.
    pub max_parallel: Option<usize>,
    /// Keep starting workstreams that do not depend on a failure.
    pub keep_going: bool,
    /// On a failure, stop the agents still running too.
    pub abort_on_failure: bool,
    /// Run only these workstreams (indices; the caller adds what they depend on).
    pub only: Option<Vec<usize>>,
    /// The first retry waits this long; each later one twice as long (at most 30 s), with jitter.
    pub retry_base: Duration,
    /// A workstream whose last attempt passed a budget fails (its work is not merged);
    /// without it, the work the money paid for is kept and the overrun reported.
    pub deny_overrun: bool,
}

/// A workstream ready to start, ordered for the ready heap: longest remaining path first,
/// then higher priority, then declaration order.
#[derive(Debug, PartialEq)]
struct ReadyItem {
    remaining: f64,
    priority: u8,
    index: usize,
}

impl Eq for ReadyItem {}

impl Ord for ReadyItem {
    fn cmp(&self, other: &Self) -> Ordering {
        self.remaining
            .total_cmp(&other.remaining)
            .then(other.priority.cmp(&self.priority))
            .then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for ReadyItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Why the core stopped a workstream's work from outside.
#[derive(Debug, Clone, PartialEq)]
enum StopReason {
    /// A budget it counts against was passed: it fails (kind budget).
    Budget(crate::run::state::BudgetBreach),
    /// Another workstream failed under `--abort-on-failure`: it is cancelled.
    Abort(String),
    /// A person asked for it to stop: it is cancelled, the rest of the run goes on.
    Person,
}

/// The state machine of one run.
pub struct Core {
    plan: Arc<Plan>,
    state: RunState,
    options: Options,
    /// The run has a repository: worktree workstreams get worktrees and merge.
    has_git: bool,
    /// Mixed into retry jitter, so that runs differ but a run is reproducible.
    seed: u64,
    selected: Vec<bool>,
    /// Dependencies of each workstream that have not succeeded yet.
    missing: Vec<usize>,
    ready: BinaryHeap<ReadyItem>,
    /// The workstreams being worked on (preparing, running, checking, waiting to retry).
    jobs: Vec<Option<Box<Job>>>,
    running: usize,
    per_agent: HashMap<String, usize>,
    per_account: HashMap<String, usize>,
    merges: MergeQueue,
    /// Finished workstreams sent back to be brought up to date and fixed, waiting for a slot.
    reopened: VecDeque<(usize, Reopen)>,
    /// The integration head each workstream was last brought up to (so a conflict with the
    /// same head is not synced twice).
    sync_tried: Vec<Option<Oid>>,
    /// The resolver's final message, for the decision log.
    resolver_message: Option<String>,
    ledger: Ledger,
    base_commit: Option<Oid>,
    /// Ctrl-C: every process is stopped and nothing new starts.
    cancelled: bool,
    /// The workstreams a person stopped or skipped: not failures for the failure policy.
    by_person: Vec<bool>,
    /// Nothing new starts (a failure without `--keep-going`, Ctrl-C, a broken event log).
    stopping: bool,
    /// The event log could not be written: nothing may start again, whatever a person asks.
    log_broken: bool,
    /// The time of the input being handled.
    now: Timestamp,
    /// The effects of the input being handled.
    out: Vec<Effect>,
}

impl Core {
    /// A core for a plan; `state` is fresh or loaded for a resume.
    pub fn new(plan: Arc<Plan>, state: RunState, options: Options, has_git: bool, seed: u64) -> Core {
        let n = plan.workflow.workstreams.len();
        let selected = match &options.only {
            Some(only) => {
                let mut s = vec![false; n];
                for &i in only {
                    s[i] = true;
                }
                s
            }
            None => vec![true; n],
        };
        let base_commit = state.base_commit.as_deref().and_then(|c| c.parse().ok());
        let now = state.started_at;
        Core {
            merges: MergeQueue::new(),
            reopened: VecDeque::new(),
            sync_tried: vec![None; n],
            resolver_message: None,
            plan,
            state,
            options,
            has_git,
            seed,
            selected,
            missing: vec![0; n],
            ready: BinaryHeap::new(),
            jobs: (0..n).map(|_| None).collect(),
            running: 0,
            per_agent: HashMap::new(),
            per_account: HashMap::new(),
            ledger: Ledger::new(n),
            base_commit,
            cancelled: false,
            by_person: vec![false; n],
            stopping: false,
            log_broken: false,
            now,
            out: vec![],
        }
    }

    /// The run's state as it stands.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Gives the state back once the run is over.
    pub fn into_state(self) -> RunState {
        self.state
    }

    /// Starts (or resumes) the run: records its start and launches what can start.
    pub fn begin(&mut self, at: Timestamp, pid: u32, resumed: bool, workflow_hash: Option<String>) -> Vec<Effect> {
        self.now = at;
        self.record(EventKind::RunStarted {
            pid,
            resumed,
            workflow_hash,
        });
        let n = self.plan.workflow.workstreams.len();
        for i in 0..n {
            self.missing[i] = self.plan.workflow.workstreams[i]
                .dependencies
                .iter()
                .filter(|&&d| !self.state.workstreams[d].phase.is_success())
                .count();
        }
        for i in 0..n {
            if !self.selected[i] {
                continue;
            }
            let ws = &self.state.workstreams[i];
            match ws.phase {
                Phase::Ready => self.merges.push(i),
                // A resume of a resolution whose resolver ended: finished, not redone.
                Phase::Resolving => self.finish_resolution(i),
                // A resume of a fix attempt that was cut short: the same feedback again.
                Phase::Pending if self.missing[i] == 0 && !ws.agent_finished && ws.fixes > 0 => match &ws.feedback {
                    Some(feedback) => self.reopened.push_back((i, Reopen::Fix(feedback.clone()))),
                    None => self.push_ready(i),
                },
                Phase::Pending if self.missing[i] == 0 => self.push_ready(i),
                _ => {}
            }
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    /// Handles one input that happened at `at`; returns what to do, in order.
    pub fn step(&mut self, at: Timestamp, input: Input) -> Vec<Effect> {
        self.now = at;
        match input {
            Input::Prepared { workstream, result } => self.prepared(workstream, result),
            Input::Usage { workstream, usage } => self.usage(workstream, usage),
            Input::AgentEnded { workstream, outcome } => self.agent_ended(workstream, outcome),
            Input::Inspected { workstream, result } => self.inspected(workstream, result),
            Input::Reverted { workstream, result } => self.reverted(workstream, result),
            Input::Tested { workstream, result } => self.tested(workstream, result),
            Input::Reset { workstream, result } => self.reset(workstream, result),
            Input::Synced { workstream, result } => self.synced(workstream, result),
            Input::SyncAborted { workstream, result } => match result {
                Ok(()) => self.sync_aborted(workstream),
                Err(message) => self.git_failed(workstream, format!("cannot give up the sync: {message}")),
            },
            Input::ResolutionPrepared { workstream, result } => self.resolution_prepared(workstream, result),
            Input::Resolved { workstream, result } => self.resolved(workstream, result),
            Input::Merged { workstream, outcome } => self.merged(workstream, outcome),
            Input::Verified { workstream, result } => self.verified(workstream, result),
            Input::RolledBack { workstream, ok } => self.rolled_back(workstream, ok),
            Input::Forecast { workstream, conflicts } => self.forecasted(workstream, conflicts),
            Input::Timer(timer) => self.timer(timer),
            Input::Interrupt => self.interrupt(),
            Input::Request { workstream, action } => self.request(workstream, action),
            Input::Message { workstream, text } => self.message(workstream, &text),
            Input::RecordFailed(_) => {
                self.stopping = true;
                self.log_broken = true;
            }
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    /// Tells whether nothing is under way and nothing more will start: time for [`Core::finish`].
    pub fn is_over(&self) -> bool {
        self.running == 0
            && !self.merges.is_busy()
            && ((self.ready.is_empty() && self.reopened.is_empty()) || self.stopping)
    }

    /// Ends the run: says why what did not run or merge did not, and records the end.
    pub fn finish(&mut self, at: Timestamp) -> Vec<Effect> {
        self.now = at;
        let reason = if self.cancelled {
            "not started: the run was interrupted"
        } else {
            "not started: the run stopped after a failure"
        };
        for i in 0..self.state.workstreams.len() {
            let ws = &self.state.workstreams[i];
            if self.selected[i] && ws.phase == Phase::Pending && ws.reason.is_none() {
                self.record(EventKind::Phase {
                    workstream: i,
                    phase: Phase::Pending,
                    reason: Some(reason.to_string()),
                });
            }
        }
        // Work sent back to be fixed that never got a slot: still ready (it merges, or is
        // sent back again, on resume).
        while let Some((i, _)) = self.reopened.pop_front() {
            self.record(EventKind::Phase {
                workstream: i,
                phase: Phase::Ready,
                reason: Some("not fixed: the run stopped first".into()),
            });
        }
        // Finished work that did not merge says why (it merges on resume).
        let unmerged = if self.cancelled {
            "not merged: the run was interrupted".to_string()
        } else {
            self.merges.why_unmerged(&self.plan)
        };
        for i in 0..self.state.workstreams.len() {
            let ws = &self.state.workstreams[i];
            if self.selected[i] && ws.phase == Phase::Ready && ws.reason.is_none() {
                self.record(EventKind::Phase {
                    workstream: i,
                    phase: Phase::Ready,
                    reason: Some(unmerged.clone()),
                });
            }
        }
        self.undelivered_messages();
        let all_good = (0..self.state.workstreams.len())
            .all(|i| !self.selected[i] || self.state.workstreams[i].phase.is_success());
        let status = if all_good {
            RunStatus::Succeeded
        } else if self.cancelled {
            RunStatus::Cancelled
        } else {
            RunStatus::Failed
        };
        self.record(EventKind::RunEnded { status });
        std::mem::take(&mut self.out)
    }

    /// Applies an event to the state, asks for it to be recorded, and draws its consequences.
    fn record(&mut self, kind: EventKind) {
        let event = Event {
            seq: self.state.last_event + 1,
            at: self.now,
            kind,
        };
        self.state.apply(&event);
        let kind = event.kind.clone();
        self.out.push(Effect::Record(event));
        self.react(&kind);
    }

    /// The consequences of an event: dependents released or skipped, merges queued, the
    /// failure policy applied.
    fn react(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Phase { workstream, phase, .. } => match phase {
                Phase::Ready => {
                    self.merges.push(*workstream);
                    self.forecast(*workstream);
                }
                Phase::Done => self.succeeded(*workstream),
                Phase::Cancelled => self.failed(*workstream),
                _ => {}
            },
            EventKind::Merged { workstream, .. } => self.succeeded(*workstream),
            EventKind::Failed { workstream, .. } => self.failed(*workstream),
            EventKind::Conflicted { workstream, .. } => {
                if self.plan.workflow.integrate.on_conflict == OnConflict::Stop {
                    self.merges.stop();
                }
                self.failed(*workstream);
            }
            _ => {}
        }
    }

    fn succeeded(&mut self, index: usize) {
        let dependents: Vec<usize> = self.plan.dependents(index).collect();
        for d in dependents {
            self.missing[d] -= 1;
            if self.missing[d] == 0 && self.selected[d] && self.state.workstreams[d].phase == Phase::Pending {
                self.push_ready(d);
            }
        }
    }

    /// A workstream did not succeed: its dependents are skipped, and the failure policy says
    /// whether anything else starts or keeps running.
    fn failed(&mut self, index: usize) {
        let name = self.plan.workflow.workstreams[index].name.clone();
        let mut queue: VecDeque<usize> = self.plan.dependents(index).collect();
        while let Some(d) = queue.pop_front() {
            if self.state.workstreams[d].phase != Phase::Pending || !self.selected[d] {
                continue;
            }
            self.record(EventKind::Phase {
                workstream: d,
                phase: Phase::Skipped,
                reason: Some(format!("dependency `{name}` did not succeed")),
            });
            queue.extend(self.plan.dependents(d));
        }
        if !self.options.keep_going && !self.cancelled && !self.by_person[index] {
            self.stopping = true;
            if self.options.abort_on_failure {
                let reason = format!("stopped: `{name}` failed (--abort-on-failure)");
                for i in 0..self.jobs.len() {
                    if self.jobs[i].is_some() {
                        self.stop_job(i, StopReason::Abort(reason.clone()));
                    }
                }
            }
        }
    }

    fn push_ready(&mut self, index: usize) {
        self.ready.push(ReadyItem {
            remaining: self.plan.remaining[index],
            priority: self.plan.workflow.workstreams[index].priority.rank(),
            index,
        });
    }

    /// Starts what can start, then the next merge.
    fn advance(&mut self) {
        self.launch();
        self.pump_merges();
    }

    /// Starts ready workstreams while slots are free: `-j`, then the agent's and the
    /// account's `max-parallel`; a workstream whose budget is spent is refused.
    fn launch(&mut self) {
        if self.stopping {
            return;
        }
        let limit = self
            .options
            .max_parallel
            .unwrap_or(self.plan.workflow.max_parallel)
            .max(1);
        let mut waiting = VecDeque::new();
        while self.running < limit {
            let Some((i, reopen)) = self.reopened.pop_front() else {
                break;
            };
            if self.busy(i) {
                waiting.push_back((i, reopen));
                continue;
            }
            self.start_job(i, Some(reopen));
        }
        waiting.extend(self.reopened.drain(..));
        self.reopened = waiting;
        let mut deferred = vec![];
        while self.running < limit {
            let Some(item) = self.ready.pop() else { break };
            let i = item.index;
            if self.state.workstreams[i].phase != Phase::Pending {
                continue;
            }
            if self.busy(i) {
                deferred.push(item);
                continue;
            }
            let plan = self.plan.clone();
            let workflow = &plan.workflow;
            if let Some(breach) = self.ledger.refusal(workflow, &self.state, i) {
                self.record(EventKind::Failed {
                    workstream: i,
                    failure: Failure {
                        kind: FailureKind::Budget,
                        message: breach.to_string(),
                        budget: Some(breach),
                        exit: None,
                    },
                });
                continue;
            }
            self.start_job(i, None);
        }
        self.ready.extend(deferred);
    }

    /// Tells whether the agent's or the account's `max-parallel` is reached for workstream `i`.
    fn busy(&self, i: usize) -> bool {
        let workflow = &self.plan.workflow;
        let ws = &workflow.workstreams[i];
        let agent_limit = workflow.agents.get(&ws.agent).and_then(|a| a.max_parallel);
        let account_limit = ws
            .account
            .as_ref()
            .and_then(|a| workflow.accounts.get(a))
            .and_then(|a| a.max_parallel);
        let agent_busy = agent_limit.is_some_and(|l| self.per_agent.get(&ws.agent).copied().unwrap_or(0) >= l);
        let account_busy = account_limit.is_some_and(|l| {
            ws.account
                .as_ref()
                .and_then(|a| self.per_account.get(a))
                .copied()
                .unwrap_or(0)
                >= l
        });
        agent_busy || account_busy
    }

    /// Sends a finished workstream back: its job opens again when a slot is free.
    fn reopen(&mut self, index: usize, why: Reopen, reason: String) {
        self.record(EventKind::Phase {
            workstream: index,
            phase: Phase::Fixing,
            reason: Some(reason),
        });
        self.reopened.push_back((index, why));
    }

    /// A git step of a workstream failed: it fails, whatever it was doing.
    fn git_failed(&mut self, index: usize, message: String) {
        self.end_job(index);
        self.record(EventKind::Failed {
            workstream: index,
            failure: Failure::new(FailureKind::Git, message),
        });
    }

    /// Takes a slot for workstream `index` and prepares its worktree; a reopened one keeps its
    /// worktree as it is.
    fn start_job(&mut self, index: usize, reopen: Option<Reopen>) {
        let plan = self.plan.clone();
        let ws = &plan.workflow.workstreams[index];
        let recorded = &self.state.workstreams[index];
        let in_worktree = ws.isolation == flow_dsl::Isolation::Worktree && self.has_git;
        // A worktree's work is checked from its recorded start; a scratch folder has none.
        let agent_finished =
            reopen.is_none() && recorded.agent_finished && (!in_worktree || recorded.start_commit.is_some());
        let keeps_its_start = agent_finished || reopen.is_some();
        let start = if !in_worktree {
            None
        } else if keeps_its_start {
            recorded.start_commit.as_deref().and_then(|c| c.parse().ok())
        } else if ws.dependencies.is_empty() {
            self.base_commit
        } else {
            self.last_good()
        };
        self.running += 1;
        *self.per_agent.entry(ws.agent.clone()).or_default() += 1;
        if let Some(a) = &ws.account {
            *self.per_account.entry(a.clone()).or_default() += 1;
        }
        // A sync its agent was resolving when the run stopped stays in progress for it.
        let conflicts = if keeps_its_start && in_worktree {
            recorded.sync_conflicts.clone()
        } else {
            vec![]
        };
        let keep_merge = !conflicts.is_empty();
        let reopened = reopen.is_some();
        self.jobs[index] = Some(Box::new(Job::new(agent_finished, reopen, recorded.attempts, conflicts)));
        if !reopened {
            self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Preparing,
                reason: None,
            });
        }
        let handoffs = self.handoffs(index);
        self.out.push(Effect::Prepare {
            workstream: index,
            start,
            fresh: !keeps_its_start,
            keep_merge,
            handoffs,
        });
    }

    /// Gives a workstream's slot back: its job is over (its last event said how).
    fn end_job(&mut self, index: usize) {
        if self.jobs[index].take().is_none() {
            return;
        }
        self.running -= 1;
        let ws = &self.plan.workflow.workstreams[index];
        if let Some(n) = self.per_agent.get_mut(&ws.agent) {
            *n -= 1;
        }
        if let Some(n) = ws.account.as_ref().and_then(|a| self.per_account.get_mut(a)) {
            *n -= 1;
        }
        self.ledger.clear_live(index);
    }

    /// Asks a workstream's work to stop for `reason`: its process now, if one runs; otherwise
    /// the reason is kept and its job ends at its next step. The first reason wins.
    fn stop_job(&mut self, index: usize, reason: StopReason) {
        let Some(job) = self.jobs[index].as_mut() else { return };
        if job.stop.is_some() {
            return;
        }
        job.stop = Some(reason);
        if job.runs_a_process() {
            self.out.push(Effect::Stop { workstream: index });
        } else if job.is_waiting() {
            self.resolve_stop(index);
        }
    }

    /// A person's request: stop a workstream at work (its process now, else at its next
    /// step), or skip one that has not started; its dependents are skipped, and the run goes
    /// on as if it had been left out. What cannot be done (it merges, it is over) is an alert.
    fn request(&mut self, index: usize, action: Action) {
        let Some(ws) = self.state.workstreams.get(index) else {
            return;
        };
        let (name, phase) = (ws.name.clone(), ws.phase);
        match action {
            Action::Retry => return self.retry(index),
            Action::Message => {
                return self.record(EventKind::Alert {
                    workstream: Some(index),
                    message: format!("a message for `{name}` came without its text: nothing was sent"),
                });
            }
            _ => {}
        }
        if phase == Phase::Pending && self.jobs[index].is_none() && !self.cancelled {
            self.by_person[index] = true;
            self.record(EventKind::Phase {
                workstream: index,
                phase: Phase::Skipped,
                reason: Some(format!(
                    "{} by a person",
                    match action {
                        Action::Stop => "stopped before it started",
                        _ => "skipped",
                    }
                )),
            });
            self.failed(index);
        } else if action == Action::Stop && self.jobs[index].is_some() && !phase.is_final() {
            self.by_person[index] = true;
            self.stop_job(index, StopReason::Person);
        } else {
            self.record(EventKind::Alert {
                workstream: Some(index),
                message: format!("`{name}` is {phase}: it cannot be asked to {} now", action.as_str()),
            });
        }
    }

    /// Ctrl-C (or SIGTERM, SIGHUP): every process stops, nothing new starts.
    fn interrupt(&mut self) {
        if self.cancelled {
            // Asked again: what is still stopping is killed now.
            self.out.push(Effect::Hurry);
            self.record(EventKind::Alert {
                workstream: None,
                message: "interrupted again: killing every process now".into(),
            });
            return;
        }
        self.cancelled = true;
        self.stopping = true;
        for i in 0..self.jobs.len() {
            let Some(job) = &self.jobs[i] else { continue };
            if job.runs_a_process() {
                self.out.push(Effect::Stop { workstream: i });
            } else if job.is_waiting() {
                self.resolve_stop(i);
            }
        }
        if self.merges.is_verifying() {
            self.out.push(Effect::StopVerify);
        }
        if let Some(i) = self.merges.resolving() {
            self.out.push(Effect::Stop { workstream: i });
        }
        self.record(EventKind::Alert {
            workstream: None,
            message: "interrupted: stopping every agent (interrupt again to kill them at once)".into(),
        });
    }

    /// Weighs a workstream's spending against every budget it counts against: the running
    /// members of a passed budget are stopped; budgets at 80% raise an alert.
    ///
    /// `ended`: `index`'s attempt has ended, its usage final. Its work is then kept (the money
    /// is spent) unless `deny_overrun`, and the overrun recorded; no further attempt of any
    /// member starts.
    fn weigh(&mut self, index: usize, ended: bool) {
        let plan = self.plan.clone();
        let workflow = &plan.workflow;
        for breach in self.ledger.breaches(workflow, &self.state, index) {
            if !self.state.overruns.iter().any(|o| o.scope == breach.scope) {
                self.record(EventKind::Overrun {
                    workstream: index,
                    breach: breach.clone(),
                });
            }
            for m in 0..self.jobs.len() {
                let keeps = ended && m == index && !self.options.deny_overrun;
                if !keeps && self.jobs[m].is_some() && Ledger::is_member(workflow, &breach.scope, m) {
                    self.stop_job(m, StopReason::Budget(breach.clone()));
                    if m == index
                        && let Some(job) = self.jobs[m].as_mut()
                    {
                        // Its own report passed the budget: if it finishes its work anyway
                        // (a result line comes last), the work is kept.
                        job.overran = true;
                    }
                }
            }
        }
        for message in self.ledger.alerts(workflow, &self.state, index) {
            self.record(EventKind::Alert {
                workstream: Some(index),
                message,
            });
        }
    }

    /// The integration branch's last verified commit.
    fn last_good(&self) -> Option<Oid> {
        self.state
            .last_good
            .as_deref()
            .and_then(|c| c.parse().ok())
            .or(self.base_commit)
    }
}

#[cfg(test)]
mod tests;
