//! The scheduler: the single owner of a run's state. It starts workstreams the moment their
//! dependencies have merged and a slot is free (longest remaining path first, then
//! priority), feeds finished branches to the merge queue one at a time, applies the failure
//! policy, and records every event before anything else sees it.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_dsl::{Isolation, MergeOrder, OnConflict};
use tokio::sync::{mpsc, watch};

use crate::agent::Usage;
use crate::git::Oid;
use crate::plan::Plan;
use crate::run::job::{JobStart, Msg, RunContext, Stop, over_budget, run_job};
use crate::run::merge;
use crate::run::state::{Event, EventKind, Phase, RunState, RunStatus, now};
use crate::run::store::{EventLog, RunDir};

/// The most often `state.json` is rewritten (events between are in the event log).
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// A snapshot waits at least this many times as long as the previous one took, so that
/// rewriting a large state (megabytes for thousands of workstreams, plus an fsync) takes
/// at most about 1/20 of the scheduler's time, however large the run.
const SNAPSHOT_COST_FACTOR: u32 = 20;

/// The longest wait between snapshots, however slow one was (a stalled disk).
const SNAPSHOT_EVERY_MAX: Duration = Duration::from_secs(5);

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
}

/// Sees every event as it is recorded, and the agents' output lines.
pub trait Observer: Send {
    /// Called after an event is applied to the state.
    fn event(&mut self, state: &RunState, event: &Event);
    /// Called for each line an agent prints on standard output.
    fn line(&mut self, state: &RunState, workstream: usize, line: &str);
    /// Called once when the run is over.
    fn finish(&mut self, state: &RunState);
}

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

/// Runs a plan to its end.
pub struct Scheduler<'o> {
    plan: Arc<Plan>,
    ctx: Arc<RunContext>,
    state: RunState,
    run_dir: RunDir,
    log: EventLog,
    observer: &'o mut dyn Observer,
    options: Options,
    selected: Vec<bool>,
    /// Dependencies of each workstream that have not succeeded yet.
    missing: Vec<usize>,
    ready: BinaryHeap<ReadyItem>,
    running: usize,
    per_agent: HashMap<String, usize>,
    per_account: HashMap<String, usize>,
    stops: Vec<Option<watch::Sender<Option<Stop>>>>,
    live_usage: Vec<Usage>,
    stopping: bool,
    merge_stopped: bool,
    merging: Option<usize>,
    ready_to_merge: VecDeque<usize>,
    next_merge: usize,
    cancel: watch::Sender<bool>,
    cancelled: bool,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    last_snapshot: Instant,
    /// The least time between two snapshots: [`SNAPSHOT_EVERY`], or more when they are slow.
    snapshot_every: Duration,
    /// Events were applied since the last snapshot.
    dirty: bool,
    base_commit: Option<Oid>,
    alerted: Vec<String>,
    /// The workflow file's hash, recorded when a resume starts.
    workflow_hash: Option<String>,
}

impl<'o> Scheduler<'o> {
    /// Prepares to run; `state` is fresh or loaded for a resume, `cancel` is the sender whose
    /// receiver `ctx.cancel` holds.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: Arc<Plan>,
        ctx: Arc<RunContext>,
        state: RunState,
        run_dir: RunDir,
        log: EventLog,
        observer: &'o mut dyn Observer,
        options: Options,
        cancel: watch::Sender<bool>,
    ) -> Scheduler<'o> {
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
        let (tx, rx) = mpsc::unbounded_channel();
        let base_commit = state.base_commit.as_deref().and_then(|c| c.parse().ok());
        Scheduler {
            plan,
            ctx,
            state,
            run_dir,
            log,
            observer,
            options,
            selected,
            missing: vec![0; n],
            ready: BinaryHeap::new(),
            running: 0,
            per_agent: HashMap::new(),
            per_account: HashMap::new(),
            stops: (0..n).map(|_| None).collect(),
            live_usage: vec![Usage::default(); n],
            stopping: false,
            merge_stopped: false,
            merging: None,
            ready_to_merge: VecDeque::new(),
            next_merge: 0,
            cancel,
            cancelled: false,
            tx,
            rx,
            last_snapshot: Instant::now(),
            snapshot_every: SNAPSHOT_EVERY,
            dirty: false,
            base_commit,
            alerted: vec![],
            workflow_hash: None,
        }
    }

    /// Records the workflow file's hash when the run (re)starts.
    pub fn with_workflow_hash(mut self, hash: String) -> Self {
        self.workflow_hash = Some(hash);
        self
    }

    /// Records an event: applied to the state, appended to the log, shown to the observer.
    /// Returns whether it reached the log.
    fn record(&mut self, kind: EventKind) -> bool {
        let event = Event {
            seq: self.state.last_event + 1,
            at: now(),
            kind,
        };
        self.state.apply(&event);
        let logged = match self.log.append(&event) {
            Ok(()) => true,
            Err(e) => {
                self.stopping = true;
                eprintln!("flow: cannot write the event log: {e}");
                false
            }
        };
        // A merge moves a branch the record must agree with; the end closes the run. Everything
        // else reaches the disk with the log's write and the next debounced snapshot.
        let important = matches!(event.kind, EventKind::Merged { .. } | EventKind::RunEnded { .. });
        if important {
            let _ = self.log.sync();
        }
        self.observer.event(&self.state, &event);
        self.react(&event);
        self.dirty = true;
        if important || self.last_snapshot.elapsed() > self.snapshot_every {
            self.snapshot();
        }
        logged
    }

    fn snapshot(&mut self) {
        let started = Instant::now();
        if let Err(e) = self.run_dir.save(&self.state) {
            eprintln!("flow: cannot write the run state: {e}");
        }
        self.write_boards();
        self.last_snapshot = Instant::now();
        self.snapshot_every = (self.last_snapshot.duration_since(started) * SNAPSHOT_COST_FACTOR)
            .clamp(SNAPSHOT_EVERY, SNAPSHOT_EVERY_MAX);
        self.dirty = false;
    }

    /// Writes the markdown board into the run folder and, following the `.ai/coordination/`
    /// convention, into every worktree still in use (never into the user's checkout).
    fn write_boards(&self) {
        let board = crate::report::board::markdown_board(&self.state);
        let _ = std::fs::write(self.run_dir.dir.join("worktree_status.md"), &board);
        let status_file = &self.plan.workflow.status_file;
        for ws in &self.state.workstreams {
            let (Some(dir), Some(_)) = (&ws.worktree, &ws.branch) else {
                continue;
            };
            if ws.phase.is_final() {
                continue;
            }
            let path = std::path::Path::new(dir).join(status_file);
            // Flow's own `.ai/` folders ignore themselves; a board elsewhere is left to the user's rules.
            let ready = match path.parent() {
                Some(parent) if status_file.starts_with(".ai/") => crate::context::hide_from_git(parent).is_ok(),
                Some(parent) => std::fs::create_dir_all(parent).is_ok(),
                None => false,
            };
            if ready {
                let _ = std::fs::write(&path, &board);
            }
        }
    }

    /// Runs until every selected workstream is over or the run stops; returns the final state.
    pub async fn run(mut self, resumed: bool) -> RunState {
        let workflow_hash = self.workflow_hash.take();
        self.record(EventKind::RunStarted {
            pid: std::process::id(),
            resumed,
            workflow_hash,
        });
        self.initialize();
        let mut interrupt = std::pin::pin!(interrupted());
        loop {
            self.launch();
            self.pump_merges();
            if self.running == 0 && self.merging.is_none() && (self.ready.is_empty() || self.stopping) {
                break;
            }
            tokio::select! {
                message = self.rx.recv() => match message {
                    Some(m) => self.handle(m),
                    None => break,
                },
                // Events recorded within `snapshot_every` of a snapshot reach state.json this late
                // at most, even when nothing else happens for a long time.
                () = tokio::time::sleep_until((self.last_snapshot + self.snapshot_every).into()), if self.dirty => {
                    self.snapshot();
                }
                _ = &mut interrupt, if !self.cancelled => {
                    self.cancelled = true;
                    self.stopping = true;
                    let _ = self.cancel.send(true);
                    self.record(EventKind::Alert { workstream: None, message: "interrupted: stopping every agent".into() });
                }
            }
        }
        self.finish();
        let state = self.state.clone();
        self.observer.finish(&state);
        state
    }

    fn initialize(&mut self) {
        let n = self.plan.workflow.workstreams.len();
        for i in 0..n {
            let ws = &self.plan.workflow.workstreams[i];
            self.missing[i] = ws
                .dependencies
                .iter()
                .filter(|&&d| !self.state.workstreams[d].phase.is_success())
                .count();
        }
        for i in 0..n {
            if !self.selected[i] {
                continue;
            }
            match self.state.workstreams[i].phase {
                Phase::Ready => self.queue_merge(i),
                Phase::Pending if self.missing[i] == 0 => self.push_ready(i),
                _ => {}
            }
        }
    }

    fn push_ready(&mut self, index: usize) {
        let ws = &self.plan.workflow.workstreams[index];
        self.ready.push(ReadyItem {
            remaining: self.plan.remaining[index],
            priority: ws.priority.rank(),
            index,
        });
    }

    fn launch(&mut self) {
        if self.stopping {
            return;
        }
        let limit = self
            .options
            .max_parallel
            .unwrap_or(self.plan.workflow.max_parallel)
            .max(1);
        let mut deferred = vec![];
        while self.running < limit {
            let Some(item) = self.ready.pop() else { break };
            let i = item.index;
            if self.state.workstreams[i].phase != Phase::Pending {
                continue;
            }
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
            if agent_busy || account_busy {
                deferred.push(item);
                continue;
            }
            if let Some(reason) = self.budget_refusal(i) {
                self.record(EventKind::Failed {
                    workstream: i,
                    failure: crate::run::state::Failure {
                        kind: crate::run::state::FailureKind::Budget,
                        message: reason,
                    },
                });
                continue;
            }
            self.start(i);
        }
        self.ready.extend(deferred);
    }

    /// Why a workstream may not start because a budget is already spent.
    fn budget_refusal(&self, index: usize) -> Option<String> {
        let workflow = &self.plan.workflow;
        // Summing every workstream's usage costs O(n): only when there is a run budget.
        if !workflow.budget.is_unlimited() {
            let spent = self.spent_total();
            if let Some(reason) = over_or_at(&spent, workflow.budget.usd, workflow.budget.tokens) {
                return Some(format!("not started: the run's {reason}"));
            }
        }
        let ws = &workflow.workstreams[index];
        if let Some(account) = ws.account.as_ref().and_then(|a| workflow.accounts.get(a)) {
            let spent = self.spent_by(|w| w.account.as_deref() == Some(account.name.as_str()));
            if let Some(reason) = over_or_at(&spent, account.budget.usd, account.budget.tokens) {
                return Some(format!("not started: account `{}`'s {reason}", account.name));
            }
        }
        None
    }

    fn start(&mut self, index: usize) {
        let workflow = self.plan.workflow.clone();
        let ws = &workflow.workstreams[index];
        let recorded = &self.state.workstreams[index];
        let in_worktree = ws.isolation == Isolation::Worktree && self.ctx.git.is_some();
        // A worktree's work is checked from its recorded start; a scratch folder has none.
        let agent_finished = recorded.agent_finished && (!in_worktree || recorded.start_commit.is_some());
        let start = if in_worktree {
            if agent_finished {
                recorded.start_commit.as_deref().and_then(|c| c.parse().ok())
            } else if ws.dependencies.is_empty() {
                self.base_commit
            } else {
                self.state
                    .last_good
                    .as_deref()
                    .and_then(|c| c.parse().ok())
                    .or(self.base_commit)
            }
        } else {
            None
        };
        let begin = JobStart { start, agent_finished };
        self.running += 1;
        *self.per_agent.entry(ws.agent.clone()).or_default() += 1;
        if let Some(a) = &ws.account {
            *self.per_account.entry(a.clone()).or_default() += 1;
        }
        let (stop_tx, stop_rx) = watch::channel(None);
        self.stops[index] = Some(stop_tx);
        self.live_usage[index] = Usage::default();
        tokio::spawn(run_job(self.ctx.clone(), index, begin, self.tx.clone(), stop_rx));
    }

    fn handle(&mut self, message: Msg) {
        match message {
            Msg::Event(kind) => {
                self.record(kind);
            }
            Msg::EventFirst(kind, done) => {
                let logged = self.record(kind);
                let _ = done.send(logged);
            }
            Msg::Line { workstream, line } => self.observer.line(&self.state, workstream, &line),
            Msg::JobEnded { workstream } => {
                self.running -= 1;
                let ws = &self.plan.workflow.workstreams[workstream];
                if let Some(n) = self.per_agent.get_mut(&ws.agent) {
                    *n -= 1;
                }
                if let Some(n) = ws.account.as_ref().and_then(|a| self.per_account.get_mut(a)) {
                    *n -= 1;
                }
                self.stops[workstream] = None;
                self.live_usage[workstream] = Usage::default();
            }
            Msg::MergeEnded { .. } => self.merging = None,
        }
    }

    /// The consequences of an event: dependents released or skipped, merges queued, budgets checked.
    fn react(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Phase { workstream, phase, .. } => match phase {
                Phase::Ready => self.queue_merge(*workstream),
                Phase::Done => self.succeeded(*workstream),
                Phase::Cancelled => self.failed(*workstream),
                _ => {}
            },
            EventKind::Merged { workstream, .. } => self.succeeded(*workstream),
            EventKind::Failed { workstream, .. } => self.failed(*workstream),
            EventKind::Conflicted { workstream, .. } => {
                if self.plan.workflow.integrate.on_conflict == OnConflict::Stop {
                    self.merge_stopped = true;
                }
                self.failed(*workstream);
            }
            EventKind::Usage { workstream, usage } => {
                self.live_usage[*workstream] = *usage;
                self.check_budgets(*workstream);
            }
            EventKind::AttemptEnded { workstream, .. } => {
                self.live_usage[*workstream] = Usage::default();
                // Formats read as a whole (claude-json, gemini-json) report usage only here.
                self.check_budgets(*workstream);
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
        if !self.options.keep_going && !self.cancelled {
            self.stopping = true;
            if self.options.abort_on_failure {
                for stop in self.stops.iter().flatten() {
                    let _ = stop.send(Some(Stop::Abort(format!(
                        "stopped: `{name}` failed (--abort-on-failure)"
                    ))));
                }
            }
        }
    }

    fn spent_by(&self, filter: impl Fn(&flow_dsl::Workstream) -> bool) -> Usage {
        let mut total = Usage::default();
        for (i, ws) in self.plan.workflow.workstreams.iter().enumerate() {
            if filter(ws) {
                total.add(&self.state.workstreams[i].usage);
                total.add(&self.live_usage[i]);
            }
        }
        total
    }

    fn spent_total(&self) -> Usage {
        self.spent_by(|_| true)
    }

    /// Stops agents whose run or account budget is crossed; alerts at 80%.
    fn check_budgets(&mut self, index: usize) {
        let workflow = self.plan.workflow.clone();
        let has_account_budget = workflow.workstreams[index]
            .account
            .as_ref()
            .and_then(|a| workflow.accounts.get(a))
            .is_some_and(|a| !a.budget.is_unlimited());
        if workflow.budget.is_unlimited() && workflow.workstreams[index].budget.is_unlimited() && !has_account_budget {
            return;
        }
        let mut scopes: Vec<(String, Usage, flow_dsl::Budget, Vec<usize>)> = vec![];
        let everyone: Vec<usize> = (0..workflow.workstreams.len()).collect();
        scopes.push(("run".to_string(), self.spent_total(), workflow.budget, everyone));
        let ws = &workflow.workstreams[index];
        if let Some(account) = ws.account.as_ref().and_then(|a| workflow.accounts.get(a)) {
            let members: Vec<usize> = (0..workflow.workstreams.len())
                .filter(|&i| workflow.workstreams[i].account.as_deref() == Some(account.name.as_str()))
                .collect();
            let spent = self.spent_by(|w| w.account.as_deref() == Some(account.name.as_str()));
            scopes.push((format!("account `{}`", account.name), spent, account.budget, members));
        }
        let mut own = self.state.workstreams[index].usage;
        own.add(&self.live_usage[index]);
        scopes.push((format!("workstream `{}`", ws.name), own, ws.budget, vec![index]));
        for (scope, spent, budget, members) in scopes {
            if let Some(reason) = over_budget(&spent, budget.usd, budget.tokens) {
                // Agents running are stopped; those not started yet are refused at launch
                // (`budget_refusal`), so each says why.
                for &m in &members {
                    if let Some(stop) = &self.stops[m] {
                        let _ = stop.send(Some(Stop::Budget(format!("{scope}: {reason}"))));
                    }
                }
            } else if let Some((limit, alert)) = near_budget(&spent, budget) {
                // Once per scope and limit, however the amount grows past 80%.
                let key = format!("{scope}:{limit}");
                if !self.alerted.contains(&key) {
                    self.alerted.push(key);
                    self.record(EventKind::Alert {
                        workstream: Some(index),
                        message: format!("{scope} has used {alert}"),
                    });
                }
            }
        }
    }

    fn queue_merge(&mut self, index: usize) {
        self.ready_to_merge.push_back(index);
    }

    fn pump_merges(&mut self) {
        if self.merging.is_some() || self.merge_stopped || self.cancelled {
            return;
        }
        let workflow = &self.plan.workflow;
        let candidate = match workflow.integrate.order {
            MergeOrder::Plan => {
                while self.next_merge < self.plan.merge_order.len() {
                    let i = self.plan.merge_order[self.next_merge];
                    let phase = self.state.workstreams[i].phase;
                    if !self.selected[i] || phase.is_final() {
                        self.next_merge += 1;
                    } else {
                        break;
                    }
                }
                self.plan
                    .merge_order
                    .get(self.next_merge)
                    .copied()
                    .filter(|&i| self.state.workstreams[i].phase == Phase::Ready)
            }
            MergeOrder::Ready => {
                self.ready_to_merge
                    .retain(|&i| self.state.workstreams[i].phase == Phase::Ready);
                let best = self
                    .ready_to_merge
                    .iter()
                    .copied()
                    .min_by_key(|&i| self.plan.merge_position[i]);
                if let Some(b) = best {
                    self.ready_to_merge.retain(|&i| i != b);
                }
                best
            }
        };
        let Some(index) = candidate else { return };
        let ws = &self.state.workstreams[index];
        let expected = self
            .state
            .last_good
            .as_deref()
            .and_then(|c| c.parse().ok())
            .or(self.base_commit);
        let result = ws
            .result_commit
            .as_deref()
            .and_then(|c| c.parse().ok())
            .or(ws.start_commit.as_deref().and_then(|c| c.parse().ok()));
        let (Some(expected), Some(result)) = (expected, result) else {
            self.record(EventKind::Failed {
                workstream: index,
                failure: crate::run::state::Failure {
                    kind: crate::run::state::FailureKind::Git,
                    message: "nothing to merge: no result commit recorded".into(),
                },
            });
            return;
        };
        self.merging = Some(index);
        tokio::spawn(merge::merge(self.ctx.clone(), index, expected, result, self.tx.clone()));
    }

    fn finish(&mut self) {
        let reason = if self.cancelled {
            "not started: the run was interrupted"
        } else {
            "not started: the run stopped after a failure"
        };
        for i in 0..self.state.workstreams.len() {
            if self.selected[i]
                && self.state.workstreams[i].phase == Phase::Pending
                && self.state.workstreams[i].reason.is_none()
            {
                self.record(EventKind::Phase {
                    workstream: i,
                    phase: Phase::Pending,
                    reason: Some(reason.to_string()),
                });
            }
        }
        // Finished work that did not merge says why (it merges on resume).
        let unmerged = if self.cancelled {
            "not merged: the run was interrupted".to_string()
        } else if self.merge_stopped {
            "not merged: merging stopped at a conflict (on-conflict \"stop\")".to_string()
        } else {
            let waiting = self.plan.merge_order.get(self.next_merge).copied();
            match waiting.map(|w| &self.plan.workflow.workstreams[w].name) {
                Some(name) => format!("not merged: `{name}` comes first in the merge order and did not finish"),
                None => "not merged: the run stopped".to_string(),
            }
        };
        for i in 0..self.state.workstreams.len() {
            if self.selected[i]
                && self.state.workstreams[i].phase == Phase::Ready
                && self.state.workstreams[i].reason.is_none()
            {
                self.record(EventKind::Phase {
                    workstream: i,
                    phase: Phase::Ready,
                    reason: Some(unmerged.clone()),
                });
            }
        }
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
        if let Some(git) = &self.ctx.git {
            for ws in &self.state.workstreams {
                if let (Some(dir), Some(_)) = (&ws.worktree, &ws.branch) {
                    let _ = git.unlock_worktree(std::path::Path::new(dir));
                }
            }
        }
        self.snapshot();
    }
}

/// Completes when flow is asked to stop: Ctrl-C (SIGINT), SIGTERM (`kill`, a CI timeout) or
/// SIGHUP (the terminal closed). Each stops every agent the same way; without a handler,
/// SIGTERM and SIGHUP would end flow at once and leave its agents running.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    async fn on(kind: SignalKind) {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    tokio::select! {
        () = on(SignalKind::interrupt()) => {}
        () = on(SignalKind::terminate()) => {}
        () = on(SignalKind::hangup()) => {}
    }
}

fn over_or_at(usage: &Usage, usd: Option<f64>, tokens: Option<u64>) -> Option<String> {
    if let (Some(limit), Some(spent)) = (usd, usage.cost_usd)
        && spent >= limit
    {
        return Some(format!("budget is spent: ${spent:.4} of ${limit:.2}"));
    }
    if let Some(limit) = tokens
        && usage.total_tokens() >= limit
    {
        return Some(format!("budget is spent: {} tokens of {limit}", usage.total_tokens()));
    }
    None
}

/// The alert for usage at 80% of a budget or more, and which limit it is about (`usd`, `tokens`).
fn near_budget(usage: &Usage, budget: flow_dsl::Budget) -> Option<(&'static str, String)> {
    if let (Some(limit), Some(spent)) = (budget.usd, usage.cost_usd)
        && spent >= 0.8 * limit
    {
        return Some(("usd", format!("80% of its ${limit:.2} budget (${spent:.2})")));
    }
    if let Some(limit) = budget.tokens
        && usage.total_tokens() as f64 >= 0.8 * limit as f64
    {
        return Some((
            "tokens",
            format!("80% of its {limit}-token budget ({})", usage.total_tokens()),
        ));
    }
    None
}
