//! The driver: carries out the core's effects with tokio and feeds their results back.
//!
//! It owns the [`Core`], a [`Journal`] (the event log and the state snapshots), the
//! observers, and a [`Work`] that does the slow things (worktrees, agents, checks, merges).
//! Each effect that takes time runs as a task that reports through one channel; the driver
//! hands each result to [`Core::step`] in the order it arrives and carries out what comes
//! back, in order.
//!
//! One rule is the driver's own, because it is about I/O and not a decision: an effect that
//! starts a process ([`Effect::StartAgent`]) is carried out only when every event recorded
//! before it reached the event log, so an agent never runs without its attempt on record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::agent::Usage;
use crate::git::Oid;
use crate::run::core::{
    AgentEnd, AgentOutcome, Conflicts, Core, Effect, Handoff, Input, Inspection, MergeOutcome, Resolution, SyncOutcome,
    Workspace,
};
use crate::run::observer::{LinesWanted, Observer};
use crate::run::state::{Event, EventKind, Failure, Feedback, Purpose, RunState, TestResult};
use crate::run::store::Journal;

/// One agent attempt to run, as the core asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    pub workstream: usize,
    pub attempt: u32,
    /// What the workstream's own budget has left, for tools with a spending cap of their own.
    pub budget_usd: Option<f64>,
    /// The workstream's own agent (work, fix), its reviewer, or the resolver.
    pub purpose: Purpose,
    /// What a fix (or the resolver) is told.
    pub feedback: Option<Feedback>,
    /// The agent's session to continue, for a fix.
    pub session: Option<String>,
}
use crate::time;

/// The slow work a run does, one method per effect; each reports its result as a value.
///
/// `ProcessWork` (in `run::work`) does it for real; tests put fakes in its place.
pub trait Work: Send + Sync + 'static {
    /// Makes the workstream's worktree (or scratch folder) and context, with its dependencies'
    /// handoffs, and runs its setup, which `stop` ends.
    fn prepare(
        self: Arc<Self>,
        workstream: usize,
        start: Option<Oid>,
        fresh: bool,
        keep_merge: bool,
        handoffs: Vec<Handoff>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<Workspace, Failure>>;
    /// Runs one agent attempt until it ends or `stop` turns true, reporting its usage and
    /// lines as they come.
    fn run_agent(
        self: Arc<Self>,
        run: AgentRun,
        report: Reporter,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, AgentOutcome>;
    /// Commits what the agent left, checks the worktree, lists what the agent changed (not
    /// what a sync brought in of `integration`, the last good integration commit), and finds
    /// the conflict markers left in `markers_in`.
    fn inspect(
        self: Arc<Self>,
        workstream: usize,
        markers_in: Vec<String>,
        integration: Option<Oid>,
    ) -> BoxFuture<'static, Result<Inspection, String>>;
    /// Brings `onto` into the workstream's branch in its worktree.
    fn sync(self: Arc<Self>, workstream: usize, onto: Oid) -> BoxFuture<'static, Result<SyncOutcome, String>>;
    /// Gives a conflicting sync up: the worktree back at its branch's head.
    fn abort_sync(self: Arc<Self>, workstream: usize) -> BoxFuture<'static, Result<(), String>>;
    /// Sets the conflicting merge of `result` into `onto` up for the resolver.
    fn prepare_resolution(
        self: Arc<Self>,
        workstream: usize,
        onto: Oid,
        result: Oid,
    ) -> BoxFuture<'static, Result<Conflicts, String>>;
    /// Checks the resolver's work and commits it as the merge, moving the integration branch.
    fn finish_resolution(
        self: Arc<Self>,
        workstream: usize,
        onto: Oid,
        result: Oid,
        files: Vec<String>,
    ) -> BoxFuture<'static, Result<Resolution, String>>;
    /// Appends an entry about the resolution that `commit` holds to the run's decision log,
    /// unless the log names that commit already.
    fn log_decision(&self, commit: Oid, entry: &str);
    /// Reverts these paths to the start commit and commits that; returns the new head.
    fn revert(self: Arc<Self>, workstream: usize, paths: Vec<String>) -> BoxFuture<'static, Result<Oid, String>>;
    /// Runs the workstream's test; `None` when `stop` ended it.
    fn test(self: Arc<Self>, workstream: usize, stop: watch::Receiver<bool>) -> BoxFuture<'static, Option<TestResult>>;
    /// Resets the worktree to `to` for a retry.
    fn reset(self: Arc<Self>, workstream: usize, to: Oid) -> BoxFuture<'static, Result<(), String>>;
    /// Merges `result` into the integration branch, whose head must be `expected`.
    fn merge(self: Arc<Self>, workstream: usize, expected: Oid, result: Oid) -> BoxFuture<'static, MergeOutcome>;
    /// Runs `verify` on `commit`; `None` when `stop` ended it.
    fn verify(
        self: Arc<Self>,
        workstream: usize,
        commit: Oid,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, Option<TestResult>>;
    /// Moves the integration branch from `from` back to `to`, saying `why` in its reflog.
    fn roll_back(self: Arc<Self>, to: Oid, from: Oid, why: &'static str) -> BoxFuture<'static, bool>;
    /// Lists the paths `head` would conflict on when merged with each of `against`, in
    /// memory; only the pairs that conflict.
    fn forecast(
        self: Arc<Self>,
        head: Oid,
        against: Vec<(Option<usize>, Oid)>,
    ) -> BoxFuture<'static, Vec<(Option<usize>, Vec<String>)>>;
    /// Lets go of what the run held (worktree locks) once it is over.
    fn finish(&self, state: &RunState);
    /// Kills every agent and test being stopped now, without the rest of their grace (the run
    /// was interrupted twice).
    fn hurry(&self) {}
}

/// What the tasks of a run send the driver.
#[derive(Debug)]
enum Message {
    Input(Input),
    /// Lines an agent printed, each ended by `\n`.
    Lines {
        workstream: usize,
        text: String,
    },
}

/// Gives the core inputs from outside the run (a person's requests), from any thread.
#[derive(Debug, Clone)]
pub struct Inputs {
    tx: mpsc::UnboundedSender<Message>,
}

impl Inputs {
    /// Sends one input; after the run is over it goes nowhere.
    pub fn send(&self, input: Input) {
        let _ = self.tx.send(Message::Input(input));
    }
}

/// How a running agent reports its usage and lines.
#[derive(Debug, Clone)]
pub struct Reporter {
    workstream: usize,
    tx: mpsc::UnboundedSender<Message>,
    wanted: LinesWanted,
}

impl Reporter {
    /// The usage the agent has reported so far in this attempt.
    pub fn usage(&self, usage: Usage) {
        let _ = self.tx.send(Message::Input(Input::Usage {
            workstream: self.workstream,
            usage,
        }));
    }

    /// Which of the agent's lines the observers want: others need not be gathered.
    pub fn wanted(&self) -> LinesWanted {
        self.wanted
    }

    /// A line the agent printed, without its line ending (secrets already redacted), for
    /// progress.
    pub fn line(&self, mut text: String) {
        let wanted = match self.wanted {
            LinesWanted::Nothing => false,
            LinesWanted::Last => !text.trim().is_empty(),
            LinesWanted::All => true,
        };
        if wanted {
            text.push('\n');
            self.lines(text);
        }
    }

    /// Lines the agent printed, each ended by `\n` (secrets already redacted), for progress:
    /// one message for a whole read of its output, as many lines as [`Self::wanted`] says.
    pub fn lines(&self, text: String) {
        if !text.is_empty() && self.wanted != LinesWanted::Nothing {
            let _ = self.tx.send(Message::Lines {
                workstream: self.workstream,
                text,
            });
        }
    }
}

/// The most often `state.json` is rewritten (events between are in the event log).
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// A snapshot waits at least this many times as long as the previous one took, so that
/// rewriting a large state (megabytes for thousands of workstreams, plus an fsync) takes
/// at most about 1/20 of the driver's time, however large the run.
const SNAPSHOT_COST_FACTOR: u32 = 20;

/// The longest wait between snapshots, however slow one was (a stalled disk).
const SNAPSHOT_EVERY_MAX: Duration = Duration::from_secs(5);

/// How a run begins, for its first event.
#[derive(Debug, Clone)]
pub struct Begin {
    pub resumed: bool,
    /// The workflow file's hash, recorded when a resume starts.
    pub workflow_hash: Option<String>,
}

/// Runs a core to its end.
pub struct Driver<'o> {
    core: Core,
    work: Arc<dyn Work>,
    journal: Box<dyn Journal>,
    observer: &'o mut dyn Observer,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    tasks: JoinSet<()>,
    /// The stop switch of each workstream's running process.
    stops: HashMap<usize, watch::Sender<bool>>,
    verify_stop: Option<watch::Sender<bool>>,
    /// An event could not be written: nothing more starts.
    log_failed: bool,
    last_snapshot: Instant,
    /// The least time between two snapshots: [`SNAPSHOT_EVERY`], or more when they are slow.
    snapshot_every: Duration,
    /// Events were applied since the last snapshot.
    dirty: bool,
}

impl<'o> Driver<'o> {
    /// A driver for a core, with what does the work and where the record goes.
    pub fn new(
        core: Core,
        work: Arc<dyn Work>,
        journal: Box<dyn Journal>,
        observer: &'o mut dyn Observer,
    ) -> Driver<'o> {
        let (tx, rx) = mpsc::unbounded_channel();
        Driver {
            core,
            work,
            journal,
            observer,
            tx,
            rx,
            tasks: JoinSet::new(),
            stops: HashMap::new(),
            verify_stop: None,
            log_failed: false,
            last_snapshot: Instant::now(),
            snapshot_every: SNAPSHOT_EVERY,
            dirty: false,
        }
    }

    /// A way to give the core inputs from outside the run's tasks (a person's requests).
    pub fn inputs(&self) -> Inputs {
        Inputs { tx: self.tx.clone() }
    }

    /// Runs until the core says the run is over; `interrupts` yields once per Ctrl-C (or
    /// SIGTERM, SIGHUP). Returns the final state.
    pub async fn run(mut self, begin: Begin, mut interrupts: mpsc::UnboundedReceiver<()>) -> RunState {
        let effects = self
            .core
            .begin(time::now(), std::process::id(), begin.resumed, begin.workflow_hash);
        self.carry_out(effects);
        let mut interrupts_open = true;
        while !self.core.is_over() {
            // Finished tasks are let go of as the run goes (a large run spawns tens of thousands).
            while self.tasks.try_join_next().is_some() {}
            let snapshot_at = self.last_snapshot + self.snapshot_every;
            tokio::select! {
                message = self.rx.recv() => match message {
                    Some(Message::Input(input)) => self.feed(input),
                    Some(Message::Lines { workstream, text }) => self.observer.lines(self.core.state(), workstream, &text),
                    None => break,
                },
                // Events recorded within `snapshot_every` of a snapshot reach state.json this late
                // at most, even when nothing else happens for a long time.
                () = tokio::time::sleep_until(snapshot_at), if self.dirty => self.snapshot(),
                interrupt = interrupts.recv(), if interrupts_open => match interrupt {
                    Some(()) => self.feed(Input::Interrupt),
                    None => interrupts_open = false,
                },
            }
        }
        let effects = self.core.finish(time::now());
        self.carry_out(effects);
        self.tasks.abort_all();
        self.work.finish(self.core.state());
        self.snapshot();
        self.observer.finish(self.core.state());
        self.core.into_state()
    }

    fn feed(&mut self, input: Input) {
        if let Input::AgentEnded { workstream, .. }
        | Input::Tested { workstream, .. }
        | Input::Prepared { workstream, .. } = &input
        {
            self.stops.remove(workstream);
        }
        let effects = self.core.step(time::now(), input);
        self.carry_out(effects);
    }

    /// Carries out effects in order.
    fn carry_out(&mut self, effects: Vec<Effect>) {
        let mut important = false;
        for effect in effects {
            match effect {
                Effect::Record(event) => important |= self.record(&event),
                other => self.start(other),
            }
        }
        if important {
            let _ = self.journal.sync();
        }
        if important || (self.dirty && self.last_snapshot.elapsed() > self.snapshot_every) {
            self.snapshot();
        }
    }

    /// Appends an event to the log and shows it; says whether it must reach the disk at once.
    fn record(&mut self, event: &Event) -> bool {
        if let Err(e) = self.journal.append(event) {
            if !self.log_failed {
                self.observer.notice(&format!("cannot write the event log: {e}"));
                let _ = self.tx.send(Message::Input(Input::RecordFailed(e.to_string())));
            }
            self.log_failed = true;
        }
        self.dirty = true;
        self.observer.event(self.core.state(), event);
        // A merge moves a branch the record must agree with; the end closes the run.
        matches!(event.kind, EventKind::Merged { .. } | EventKind::RunEnded { .. })
    }

    fn snapshot(&mut self) {
        let started = Instant::now();
        if let Err(e) = self.journal.snapshot(self.core.state()) {
            self.observer.notice(&format!("cannot write the run state: {e}"));
        }
        self.observer.checkpoint(self.core.state());
        self.last_snapshot = Instant::now();
        self.snapshot_every = (self.last_snapshot.duration_since(started) * SNAPSHOT_COST_FACTOR)
            .clamp(SNAPSHOT_EVERY, SNAPSHOT_EVERY_MAX);
        self.dirty = false;
    }

    /// A stop switch for a workstream's next process.
    fn stop_switch(&mut self, workstream: usize) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.stops.insert(workstream, tx);
        rx
    }

    /// Starts an effect that takes time; its result comes back as an input.
    fn start(&mut self, effect: Effect) {
        let work = self.work.clone();
        let tx = self.tx.clone();
        let send = move |input: Input| {
            let _ = tx.send(Message::Input(input));
        };
        match effect {
            Effect::Record(_) => unreachable!("records are carried out in order by carry_out"),
            Effect::Prepare {
                workstream,
                start,
                fresh,
                keep_merge,
                handoffs,
            } => {
                let stop = self.stop_switch(workstream);
                self.tasks.spawn(async move {
                    let result = work.prepare(workstream, start, fresh, keep_merge, handoffs, stop).await;
                    send(Input::Prepared { workstream, result });
                });
            }
            Effect::StartAgent {
                workstream,
                attempt,
                budget_usd,
                purpose,
                feedback,
                session,
            } => {
                if self.log_failed {
                    send(Input::AgentEnded {
                        workstream,
                        outcome: AgentOutcome::unstarted(AgentEnd::Unrecorded),
                    });
                    return;
                }
                let stop = self.stop_switch(workstream);
                let report = Reporter {
                    workstream,
                    tx: self.tx.clone(),
                    wanted: self.observer.lines_wanted(),
                };
                let run = AgentRun {
                    workstream,
                    attempt,
                    budget_usd,
                    purpose,
                    feedback,
                    session,
                };
                self.tasks.spawn(async move {
                    let outcome = work.run_agent(run, report, stop).await;
                    send(Input::AgentEnded { workstream, outcome });
                });
            }
            Effect::Stop { workstream } => {
                if let Some(stop) = self.stops.get(&workstream) {
                    let _ = stop.send(true);
                }
            }
            Effect::Inspect {
                workstream,
                markers_in,
                integration,
            } => {
                self.tasks.spawn(async move {
                    let result = work.inspect(workstream, markers_in, integration).await;
                    send(Input::Inspected { workstream, result });
                });
            }
            Effect::Sync { workstream, onto } => {
                self.tasks.spawn(async move {
                    let result = work.sync(workstream, onto).await;
                    send(Input::Synced { workstream, result });
                });
            }
            Effect::AbortSync { workstream } => {
                self.tasks.spawn(async move {
                    let result = work.abort_sync(workstream).await;
                    send(Input::SyncAborted { workstream, result });
                });
            }
            Effect::PrepareResolution {
                workstream,
                onto,
                result,
            } => {
                self.tasks.spawn(async move {
                    let result = work.prepare_resolution(workstream, onto, result).await;
                    send(Input::ResolutionPrepared { workstream, result });
                });
            }
            Effect::FinishResolution {
                workstream,
                onto,
                result,
                files,
            } => {
                self.tasks.spawn(async move {
                    let result = work.finish_resolution(workstream, onto, result, files).await;
                    send(Input::Resolved { workstream, result });
                });
            }
            Effect::LogDecision { commit, entry } => self.work.log_decision(commit, &entry),
            Effect::Forecast {
                workstream,
                head,
                against,
            } => {
                self.tasks.spawn(async move {
                    let conflicts = work.forecast(head, against).await;
                    send(Input::Forecast { workstream, conflicts });
                });
            }
            Effect::Revert { workstream, paths } => {
                self.tasks.spawn(async move {
                    let result = work.revert(workstream, paths).await;
                    send(Input::Reverted { workstream, result });
                });
            }
            Effect::Test { workstream } => {
                let stop = self.stop_switch(workstream);
                self.tasks.spawn(async move {
                    let result = work.test(workstream, stop).await;
                    send(Input::Tested { workstream, result });
                });
            }
            Effect::Reset { workstream, to } => {
                self.tasks.spawn(async move {
                    let result = work.reset(workstream, to).await;
                    send(Input::Reset { workstream, result });
                });
            }
            Effect::Merge {
                workstream,
                expected,
                result,
            } => {
                self.tasks.spawn(async move {
                    let outcome = work.merge(workstream, expected, result).await;
                    send(Input::Merged { workstream, outcome });
                });
            }
            Effect::Verify { workstream, commit } => {
                let (stop_tx, stop) = watch::channel(false);
                self.verify_stop = Some(stop_tx);
                self.tasks.spawn(async move {
                    let result = work.verify(workstream, commit, stop).await;
                    send(Input::Verified { workstream, result });
                });
            }
            Effect::StopVerify => {
                if let Some(stop) = &self.verify_stop {
                    let _ = stop.send(true);
                }
            }
            Effect::Hurry => self.work.hurry(),
            Effect::RollBack {
                workstream,
                to,
                from,
                why,
            } => {
                self.tasks.spawn(async move {
                    let ok = work.roll_back(to, from, why).await;
                    send(Input::RolledBack { workstream, ok });
                });
            }
            Effect::Wake { timer, after } => {
                self.tasks.spawn(async move {
                    tokio::time::sleep(after).await;
                    send(Input::Timer(timer));
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
