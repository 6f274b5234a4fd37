//! A run seen from outside: [`RunView`] folds a run's record (its state and its
//! `events.jsonl`) into what a person watching wants at a glance — each workstream's stages
//! on a timeline with its attempts apart, what it waits on, what it spent, why it failed,
//! the merge queue, the critical path as it actually ran, and the alerts.
//!
//! The fold is pure: it reads no clock and no file (the caller passes the time "now" and
//! what it read), so the dashboard (`tui`), the report page (`report::html`) and tests all
//! see the same picture of the same record.

use flow_dsl::Workflow;

use crate::agent::Usage;
use crate::run::state::{AttemptRecord, BudgetBreach, Event, EventKind, Failure, Phase, Purpose, RunState, RunStatus};
use crate::time::{Timestamp, elapsed};

/// A stage of a workstream's life, as the timeline draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Waiting for its dependencies or a free slot.
    Waiting,
    /// Its worktree and context being made.
    Setup,
    /// Its agent doing the task (a retry too).
    Agent,
    /// Its agent fixing what a check, `verify`, a conflict or a review found.
    Fix,
    /// A reviewer reading its work.
    Review,
    /// The resolver resolving its conflict.
    Resolve,
    /// Its work committed, its scope and test checked.
    Check,
    /// Checked, waiting for its turn to merge.
    Queued,
    /// Being merged into the integration branch, and `verify` run on the result.
    Merge,
}

impl Stage {
    /// Every stage, in the order of a workstream's life (for legends).
    pub const ALL: [Stage; 9] = [
        Stage::Waiting,
        Stage::Setup,
        Stage::Agent,
        Stage::Fix,
        Stage::Review,
        Stage::Resolve,
        Stage::Check,
        Stage::Queued,
        Stage::Merge,
    ];

    /// The name shown in legends.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Waiting => "waiting",
            Stage::Setup => "setup",
            Stage::Agent => "agent",
            Stage::Fix => "fix",
            Stage::Review => "review",
            Stage::Resolve => "resolve",
            Stage::Check => "check",
            Stage::Queued => "queued for merge",
            Stage::Merge => "merge + verify",
        }
    }

    /// The stage a phase is drawn as; none for a phase that ends the workstream.
    pub fn of(phase: Phase) -> Option<Stage> {
        match phase {
            Phase::Pending => Some(Stage::Waiting),
            Phase::Preparing => Some(Stage::Setup),
            Phase::Running => Some(Stage::Agent),
            Phase::Fixing => Some(Stage::Fix),
            Phase::Reviewing => Some(Stage::Review),
            Phase::Resolving => Some(Stage::Resolve),
            Phase::Checking => Some(Stage::Check),
            Phase::Ready => Some(Stage::Queued),
            Phase::Merging => Some(Stage::Merge),
            Phase::Merged | Phase::Done | Phase::Failed | Phase::Skipped | Phase::Cancelled | Phase::Conflicted => None,
        }
    }

    /// Tells whether an agent process runs in this stage.
    pub fn is_agent(self) -> bool {
        matches!(self, Stage::Agent | Stage::Fix | Stage::Review | Stage::Resolve)
    }
}

/// One stretch of time a workstream spent in one stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Span {
    pub stage: Stage,
    pub start: Timestamp,
    /// When it ended; `None` while it goes on.
    pub end: Option<Timestamp>,
    /// The agent attempt it belongs to, for agent stages.
    pub attempt: Option<u32>,
}

impl Span {
    /// Its end, or `now` while it goes on.
    pub fn end_or(&self, now: Timestamp) -> Timestamp {
        self.end.unwrap_or(now).max(self.start)
    }
}

/// What a workstream is waiting for, when it waits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "for", content = "on")]
pub enum Wait {
    /// Dependencies that have not merged yet (their names).
    Dependencies(Vec<String>),
    /// A free slot: its dependencies are done.
    Slot,
    /// Its turn in the merge queue (its place, from 1).
    Merge(usize),
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Dependencies(names) => write!(f, "waits on {}", names.join(", ")),
            Wait::Slot => f.write_str("waits for a free slot"),
            Wait::Merge(place) => write!(f, "queued for merge (#{place})"),
        }
    }
}

/// One workstream as a person watching sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkstreamView {
    pub name: String,
    pub phase: Phase,
    /// Its stages in order, attempts apart.
    pub spans: Vec<Span>,
    pub attempts: Vec<AttemptRecord>,
    /// What its finished attempts spent.
    pub usage: Usage,
    /// What its running attempt has spent so far, as the agent streams it.
    pub live_usage: Option<Usage>,
    /// What it waits on, while it waits.
    pub wait: Option<Wait>,
    pub failure: Option<Failure>,
    /// Why it is in its phase, when that is not obvious (skipped, cancelled).
    pub reason: Option<String>,
    pub last_line: Option<String>,
    pub files_changed: Vec<String>,
    /// The indices of the workstreams it depends on (empty when the workflow cannot be read).
    pub dependencies: Vec<usize>,
    /// Its wave in the plan.
    pub wave: usize,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub account: Option<String>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub start_commit: Option<String>,
    pub base_commit: Option<String>,
    pub result_commit: Option<String>,
    pub worktree: Option<String>,
    /// On the path of dependencies that decided when the run ended.
    pub critical: bool,
}

impl WorkstreamView {
    /// What it spent: its finished attempts and its running one.
    pub fn spent(&self) -> Usage {
        let mut total = self.usage;
        if let Some(live) = &self.live_usage {
            total.add(live);
        }
        total
    }

    /// How long it has been at work: from its setup to its end (or `now`), zero before.
    pub fn busy(&self, now: Timestamp) -> std::time::Duration {
        match (self.started_at, self.ended_at) {
            (Some(s), Some(e)) => elapsed(s, e),
            (Some(s), None) => elapsed(s, now),
            _ => std::time::Duration::ZERO,
        }
    }

    /// The number of its agent attempts.
    pub fn attempt_count(&self) -> usize {
        self.attempts.len()
    }
}

/// A run as a person watching sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunView {
    pub id: String,
    pub workflow: String,
    pub status: RunStatus,
    pub into: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The time the view was taken: the end of the run, or the time given.
    pub now: Timestamp,
    pub workstreams: Vec<WorkstreamView>,
    /// Workstreams checked and waiting to merge, in the order they will merge.
    pub queue: Vec<usize>,
    /// The workstreams whose chain of dependencies decided when the run ended, first to last.
    pub critical_path: Vec<usize>,
    pub alerts: Vec<String>,
    pub overruns: Vec<BudgetBreach>,
    /// The number of waves in the plan.
    pub waves: usize,
}

impl RunView {
    /// Folds a run's state and its events into a view at time `now` (ignored once the run
    /// has ended). `workflow` gives the dependencies, agents and models; without it the
    /// view has no graph.
    pub fn build(state: &RunState, events: &[Event], workflow: Option<&Workflow>, now: Timestamp) -> RunView {
        let now = match (state.status, state.ended_at) {
            (RunStatus::Running, _) | (_, None) => now.max(state.started_at),
            (_, Some(end)) => end,
        };
        let n = state.workstreams.len();
        // The workflow's workstream of each recorded one, by name (the file may have changed).
        let spec: Vec<Option<&flow_dsl::Workstream>> = state
            .workstreams
            .iter()
            .map(|w| workflow.and_then(|wf| wf.workstreams.iter().find(|s| s.name == w.name)))
            .collect();
        let index_of = |name: &str| state.workstreams.iter().position(|w| w.name == name);
        let dependencies: Vec<Vec<usize>> = spec
            .iter()
            .map(|s| match (s, workflow) {
                (Some(s), Some(wf)) => s
                    .dependencies
                    .iter()
                    .filter_map(|&d| wf.workstreams.get(d).and_then(|d| index_of(&d.name)))
                    .collect(),
                _ => vec![],
            })
            .collect();
        let waves = waves(&dependencies);

        let timeline = Timeline::fold(n, events);
        let mut workstreams: Vec<WorkstreamView> = state
            .workstreams
            .iter()
            .enumerate()
            .map(|(i, w)| WorkstreamView {
                name: w.name.clone(),
                phase: w.phase,
                spans: timeline.spans[i].clone(),
                attempts: w.attempt_log.clone(),
                usage: w.usage,
                live_usage: timeline.live[i].filter(|_| w.phase.is_active()),
                wait: None,
                failure: w.failure.clone(),
                reason: w.reason.clone(),
                last_line: w.last_line.clone(),
                files_changed: w.files_changed.clone(),
                dependencies: dependencies[i].clone(),
                wave: waves[i],
                agent: spec[i].map(|s| s.agent.clone()),
                model: spec[i].and_then(|s| s.model.clone()),
                account: spec[i].and_then(|s| s.account.clone()),
                started_at: w.started_at,
                ended_at: w.ended_at,
                start_commit: w.start_commit.clone(),
                base_commit: w.base_commit.clone(),
                result_commit: w.result_commit.clone(),
                worktree: w.worktree.clone(),
                critical: false,
            })
            .collect();

        // The merge queue: checked workstreams, in the order they became ready.
        let mut queue: Vec<usize> = (0..n).filter(|&i| workstreams[i].phase == Phase::Ready).collect();
        queue.sort_by_key(|&i| (workstreams[i].spans.last().map(|s| s.start), i));
        for i in 0..n {
            let phase = workstreams[i].phase;
            workstreams[i].wait = match phase {
                Phase::Pending if state.status == RunStatus::Running => {
                    let missing: Vec<String> = workstreams[i]
                        .dependencies
                        .iter()
                        .filter(|&&d| !workstreams[d].phase.is_success())
                        .map(|&d| workstreams[d].name.clone())
                        .collect();
                    Some(if missing.is_empty() {
                        Wait::Slot
                    } else {
                        Wait::Dependencies(missing)
                    })
                }
                Phase::Ready if state.status == RunStatus::Running => {
                    queue.iter().position(|&q| q == i).map(|p| Wait::Merge(p + 1))
                }
                _ => None,
            };
        }

        let critical_path = critical_path(&workstreams, now);
        for &i in &critical_path {
            workstreams[i].critical = true;
        }
        RunView {
            id: state.id.clone(),
            workflow: state.workflow.clone(),
            status: state.status,
            into: state.into.clone(),
            started_at: state.started_at,
            ended_at: state.ended_at,
            now,
            workstreams,
            queue,
            critical_path,
            alerts: state.alerts.clone(),
            overruns: state.overruns.clone(),
            waves: waves.iter().max().map_or(0, |w| w + 1),
        }
    }

    /// What the run spent, the running attempts included.
    pub fn spent(&self) -> Usage {
        let mut total = Usage::default();
        for w in &self.workstreams {
            total.add(&w.spent());
        }
        total
    }

    /// How long the run has taken (so far).
    pub fn duration(&self) -> std::time::Duration {
        elapsed(self.started_at, self.ended_at.unwrap_or(self.now))
    }

    /// Counts the workstreams that are running, waiting, done, failed and other (stopped, skipped).
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for w in &self.workstreams {
            match w.phase {
                p if p.is_success() => c.done += 1,
                Phase::Failed | Phase::Conflicted => c.failed += 1,
                Phase::Skipped | Phase::Cancelled => c.stopped += 1,
                Phase::Pending => c.waiting += 1,
                Phase::Ready => c.queued += 1,
                _ => c.running += 1,
            }
        }
        c
    }
}

/// How many workstreams stand where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub running: usize,
    pub waiting: usize,
    pub queued: usize,
    pub done: usize,
    pub failed: usize,
    pub stopped: usize,
}

/// The spans of every workstream, built one event at a time.
struct Timeline {
    spans: Vec<Vec<Span>>,
    phase: Vec<Phase>,
    attempt: Vec<Option<u32>>,
    live: Vec<Option<Usage>>,
}

impl Timeline {
    fn fold(n: usize, events: &[Event]) -> Timeline {
        let mut t = Timeline {
            spans: vec![vec![]; n],
            phase: vec![Phase::Pending; n],
            attempt: vec![None; n],
            live: vec![None; n],
        };
        let mut started = false;
        for event in events {
            let at = event.at;
            match &event.kind {
                EventKind::RunStarted { .. } => {
                    // A resumed run picks every unfinished workstream up where it was.
                    for i in 0..n {
                        t.close(i, at);
                        if !t.phase[i].is_final() {
                            let phase = if started { t.phase[i] } else { Phase::Pending };
                            t.enter(i, phase, at);
                        }
                    }
                    started = true;
                }
                EventKind::RunEnded { .. } => {
                    for i in 0..n {
                        t.close(i, at);
                    }
                }
                EventKind::Reset { workstream, .. } | EventKind::Retried { workstream, .. } => {
                    t.set(*workstream, Phase::Pending, at)
                }
                EventKind::Phase { workstream, phase, .. } => t.set(*workstream, *phase, at),
                EventKind::AttemptStarted {
                    workstream,
                    attempt,
                    purpose,
                    ..
                } => {
                    if let Some(a) = t.attempt.get_mut(*workstream) {
                        *a = Some(*attempt);
                    }
                    if let Some(l) = t.live.get_mut(*workstream) {
                        *l = None;
                    }
                    let phase = match purpose {
                        Purpose::Work => Phase::Running,
                        Purpose::Fix => Phase::Fixing,
                        Purpose::Review => Phase::Reviewing,
                        Purpose::Resolve => Phase::Resolving,
                    };
                    // A new attempt is a span of its own even in the same phase.
                    t.close(*workstream, at);
                    t.set(*workstream, phase, at);
                }
                EventKind::Usage { workstream, usage } => {
                    if let Some(l) = t.live.get_mut(*workstream) {
                        *l = Some(*usage);
                    }
                }
                EventKind::AttemptEnded { workstream, .. } => {
                    if let Some(l) = t.live.get_mut(*workstream) {
                        *l = None;
                    }
                }
                EventKind::Failed { workstream, .. } => t.set(*workstream, Phase::Failed, at),
                EventKind::Merged { workstream, .. } => t.set(*workstream, Phase::Merged, at),
                EventKind::Conflicted { workstream, .. } => t.set(*workstream, Phase::Conflicted, at),
                _ => {}
            }
        }
        t
    }

    /// Moves a workstream to a phase: the open span ends and, unless the phase is final, a new one starts.
    fn set(&mut self, i: usize, phase: Phase, at: Timestamp) {
        if i >= self.phase.len() {
            return;
        }
        let same = self.phase[i] == phase && self.spans[i].last().is_some_and(|s| s.end.is_none());
        self.phase[i] = phase;
        if same {
            return;
        }
        self.close(i, at);
        self.enter(i, phase, at);
    }

    fn enter(&mut self, i: usize, phase: Phase, at: Timestamp) {
        self.phase[i] = phase;
        if let Some(stage) = Stage::of(phase) {
            self.spans[i].push(Span {
                stage,
                start: at,
                end: None,
                attempt: if stage.is_agent() { self.attempt[i] } else { None },
            });
        }
    }

    fn close(&mut self, i: usize, at: Timestamp) {
        if let Some(span) = self.spans.get_mut(i).and_then(|s| s.last_mut())
            && span.end.is_none()
        {
            span.end = Some(at.max(span.start));
        }
    }
}

/// The wave of each workstream: the number of links in its longest chain of dependencies.
fn waves(dependencies: &[Vec<usize>]) -> Vec<usize> {
    let n = dependencies.len();
    let mut wave: Vec<Option<usize>> = vec![None; n];
    // A validated workflow has no cycle; a changed file might: n rounds at most.
    for _ in 0..n {
        let mut changed = false;
        for i in 0..n {
            let w = dependencies[i]
                .iter()
                .map(|&d| wave[d].map(|w| w + 1))
                .try_fold(0, |acc, w| w.map(|w| acc.max(w)));
            if w.is_some() && wave[i] != w {
                wave[i] = w;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    wave.into_iter().map(|w| w.unwrap_or(0)).collect()
}

/// The chain that decided when the run ended: from the workstream that ended last, back
/// through the dependency that ended last before it, to one that waited on none.
fn critical_path(workstreams: &[WorkstreamView], now: Timestamp) -> Vec<usize> {
    let end = |i: usize| workstreams[i].ended_at.unwrap_or(now);
    let worked = |i: usize| workstreams[i].started_at.is_some();
    let Some(last) = (0..workstreams.len())
        .filter(|&i| worked(i))
        .max_by_key(|&i| (end(i), i))
    else {
        return vec![];
    };
    let mut path = vec![last];
    let mut at = last;
    while let Some(&before) = workstreams[at]
        .dependencies
        .iter()
        .filter(|&&d| worked(d) && !path.contains(&d))
        .max_by_key(|&&d| (end(d), d))
    {
        path.push(before);
        at = before;
    }
    path.reverse();
    path
}
