//! The state of a run: what each workstream is doing, what it produced, what it spent.
//!
//! State changes only through [`RunState::apply`], one [`Event`] at a time, so the
//! append-only event log is the truth and `state.json` a snapshot of it: after a crash the
//! state is the last snapshot with every later event applied again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agent::Usage;
use crate::agent::output::AgentError;
use crate::time::Timestamp;

/// Where a workstream is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Waiting for its dependencies or a free slot.
    Pending,
    /// Creating its worktree and writing its context.
    Preparing,
    /// Its agent is running.
    Running,
    /// Committing, checking scope, running its test.
    Checking,
    /// Its agent is fixing what a check, `verify`, a conflict or a review found (or flow is
    /// bringing the integration branch into its branch first).
    Fixing,
    /// A reviewer reads its work.
    Reviewing,
    /// The resolver agent resolves its conflict with the integration branch.
    Resolving,
    /// Finished and checked; waiting for its turn to merge.
    Ready,
    /// Being merged and verified.
    Merging,
    /// Merged into the integration branch.
    Merged,
    /// Finished; nothing to merge (`isolation "none"`).
    Done,
    /// Failed (agent error, scope violation, test or verify failure, budget).
    Failed,
    /// Not run because a dependency did not succeed.
    Skipped,
    /// Stopped by Ctrl-C or by the failure policy.
    Cancelled,
    /// Its branch conflicted with the integration branch.
    Conflicted,
}

impl Phase {
    /// The name shown in tables.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Preparing => "preparing",
            Phase::Running => "running",
            Phase::Checking => "checking",
            Phase::Fixing => "fixing",
            Phase::Reviewing => "reviewing",
            Phase::Resolving => "resolving",
            Phase::Ready => "ready",
            Phase::Merging => "merging",
            Phase::Merged => "merged",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Skipped => "skipped",
            Phase::Cancelled => "cancelled",
            Phase::Conflicted => "conflicted",
        }
    }

    /// Tells whether the workstream finished successfully (its dependents may start).
    pub fn is_success(self) -> bool {
        matches!(self, Phase::Merged | Phase::Done)
    }

    /// Tells whether the workstream is over for this run, successfully or not.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Merged | Phase::Done | Phase::Failed | Phase::Skipped | Phase::Cancelled | Phase::Conflicted
        )
    }

    /// Tells whether work is under way (an agent, a check or a merge).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Preparing
                | Phase::Running
                | Phase::Checking
                | Phase::Merging
                | Phase::Fixing
                | Phase::Reviewing
                | Phase::Resolving
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub use crate::checks::TestResult;

/// Why a workstream failed, in words and as a class, with the facts behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// The budget that stopped it or kept it from starting (kind `budget`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetBreach>,
    /// How its agent's process ended, when that is the failure (kind `agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
}

impl Failure {
    /// A failure with a message and nothing more.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            budget: None,
            exit: None,
        }
    }
}

/// How a process ended on its own: its exit code or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// Whose budget: the run's, an account's or a workstream's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetScope {
    Run,
    Account(String),
    Workstream(String),
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetScope::Run => f.write_str("run"),
            BudgetScope::Account(name) => write!(f, "account `{name}`"),
            BudgetScope::Workstream(name) => write!(f, "workstream `{name}`"),
        }
    }
}

/// An amount a budget limits: dollars or tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Amount {
    Usd(f64),
    Tokens(u64),
}

/// A budget that was reached: whose, its limit and what was spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetBreach {
    pub scope: BudgetScope,
    pub limit: Amount,
    pub spent: Amount,
    /// True when it kept a workstream from starting (spent up to the limit), false when it
    /// stopped one (spent past the limit).
    pub at_start: bool,
}

impl BudgetBreach {
    /// `the run spent $0.3700 of its $0.30 budget`.
    pub fn overrun(&self) -> String {
        let whose = match &self.scope {
            BudgetScope::Run => "the run".to_string(),
            other => other.to_string(),
        };
        match (self.spent, self.limit) {
            (Amount::Usd(spent), Amount::Usd(limit)) => format!("{whose} spent ${spent:.4} of its ${limit:.2} budget"),
            (Amount::Tokens(spent), Amount::Tokens(limit)) => {
                format!("{whose} used {spent} tokens of its budget of {limit}")
            }
            _ => format!("{whose} passed its budget"),
        }
    }
}

impl std::fmt::Display for BudgetBreach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match &self.scope {
            BudgetScope::Run => "the run's".to_string(),
            other => format!("{other}'s"),
        };
        match (self.at_start, self.spent, self.limit) {
            (true, Amount::Usd(spent), Amount::Usd(limit)) => {
                write!(f, "not started: {whose} budget is spent: ${spent:.4} of ${limit:.2}")
            }
            (true, Amount::Tokens(spent), Amount::Tokens(limit)) => {
                write!(f, "not started: {whose} budget is spent: {spent} tokens of {limit}")
            }
            (false, Amount::Usd(spent), Amount::Usd(limit)) => {
                write!(f, "{}: budget exhausted: ${spent:.4} spent of ${limit:.2}", self.scope)
            }
            (false, Amount::Tokens(spent), Amount::Tokens(limit)) => {
                write!(f, "{}: budget exhausted: {spent} tokens used of {limit}", self.scope)
            }
            _ => write!(f, "{}: budget reached", self.scope),
        }
    }
}

/// The kinds of failure, for tables and for deciding whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    Agent,
    Timeout,
    Hung,
    Budget,
    Scope,
    Integrity,
    Test,
    Verify,
    Conflict,
    Git,
    Cancelled,
    Dependency,
    Review,
    /// The agent's program does not exist or may not be run, or the worktree could not be
    /// made ready (a `setup` command failed, a file could not be copied): no agent started.
    Setup,
}

impl FailureKind {
    /// The spelling used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Agent => "agent",
            FailureKind::Timeout => "timeout",
            FailureKind::Hung => "hung",
            FailureKind::Budget => "budget",
            FailureKind::Scope => "scope",
            FailureKind::Integrity => "integrity",
            FailureKind::Test => "test",
            FailureKind::Verify => "verify",
            FailureKind::Conflict => "conflict",
            FailureKind::Git => "git",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Dependency => "dependency",
            FailureKind::Review => "review",
            FailureKind::Setup => "setup",
        }
    }

    /// Tells whether running the agent again from a clean worktree (`retries`) may help: a
    /// crash, a timeout, a hang, a git hiccup. Work that ran and failed a check (its test, its
    /// scope, `verify`, a conflict, a review) goes back to the agent instead (`fix-attempts`);
    /// a spent budget, a broken integrity, a missing program or a stop is final.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::Agent | FailureKind::Timeout | FailureKind::Hung | FailureKind::Git
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an agent attempt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// The workstream's task (a retry after a crash is one too).
    #[default]
    Work,
    /// Fixing what a check, `verify`, a conflict or a review found, with the feedback.
    Fix,
    /// The reviewer reading the work.
    Review,
    /// The resolver resolving a conflict with the integration branch.
    Resolve,
}

impl Purpose {
    /// The spelling used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Work => "work",
            Purpose::Fix => "fix",
            Purpose::Review => "review",
            Purpose::Resolve => "resolve",
        }
    }
}

/// What a fix attempt is told: what failed, and the details the agent needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub kind: FeedbackKind,
    /// One line: what failed.
    pub summary: String,
    /// What the agent reads: a test's output tail, the paths outside the scope with the rule
    /// they break, the conflict hunks, the reviewer's comments.
    pub detail: String,
    /// The files of the sync a conflict fix resolves (in progress in its worktree).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// What a piece of feedback is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedbackKind {
    Test,
    Scope,
    Verify,
    Conflict,
    Review,
    /// A person's message to the agent (`flow watch`'s m, `flow tell`): not a failed check,
    /// so it does not count against `fix-attempts`.
    Message,
}

impl FeedbackKind {
    /// The spelling used in JSON, tables and the `FLOW_FEEDBACK_KIND` variable.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Test => "test",
            FeedbackKind::Scope => "scope",
            FeedbackKind::Verify => "verify",
            FeedbackKind::Conflict => "conflict",
            FeedbackKind::Review => "review",
            FeedbackKind::Message => "message",
        }
    }
}

/// A reviewer's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub verdict: Verdict,
    pub comments: String,
    /// The reviewer agent.
    pub reviewer: String,
    /// The commit it reviewed.
    pub commit: Option<String>,
}

/// Approve, or ask for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approve,
    ChangesRequested,
}

impl Verdict {
    /// The spelling used in JSON and tables, and in a reviewer's answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::ChangesRequested => "changes-requested",
        }
    }
}

/// One agent attempt of a workstream, with what it spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub number: u32,
    pub purpose: Purpose,
    #[serde(with = "crate::time::compat")]
    pub started_at: Timestamp,
    #[serde(default, with = "crate::time::compat::option")]
    pub ended_at: Option<Timestamp>,
    pub usage: Usage,
    /// What a fix attempt was told to fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackKind>,
    /// Why it failed, in words, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything recorded about one workstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkstreamState {
    pub name: String,
    pub phase: Phase,
    pub attempts: u32,
    #[serde(default, with = "crate::time::compat::option")]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "crate::time::compat::option")]
    pub ended_at: Option<Timestamp>,
    #[serde(with = "crate::time::compat")]
    pub updated_at: Timestamp,
    /// The hash of the workstream's effective spec (and its dependencies' hashes).
    pub spec_hash: String,
    pub branch: Option<String>,
    pub worktree: Option<String>,
    pub start_commit: Option<String>,
    pub result_commit: Option<String>,
    /// The integration commit its work is measured from (its diff, its files, its handoff),
    /// when a sync moved it past `start_commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    pub merge_commit: Option<String>,
    pub files_changed: Vec<String>,
    pub test: Option<TestResult>,
    pub usage: Usage,
    pub session_id: Option<String>,
    pub failure: Option<Failure>,
    /// Why the workstream is in its phase, when that is not obvious (skipped, cancelled).
    pub reason: Option<String>,
    /// The last line its agent printed.
    pub last_line: Option<String>,
    /// True when its latest agent attempt ended without error (so a resume checks its work
    /// instead of running the agent again).
    #[serde(default)]
    pub agent_finished: bool,
    /// Every agent attempt, in order: work, retries, fixes, reviews, resolutions.
    #[serde(default)]
    pub attempt_log: Vec<AttemptRecord>,
    /// How many fix attempts it has had (bounded by `fix-attempts`).
    #[serde(default)]
    pub fixes: u32,
    /// The feedback of its latest fix attempt (a resume gives it again if that attempt was cut).
    #[serde(default)]
    pub feedback: Option<Feedback>,
    /// Its latest review.
    #[serde(default)]
    pub review: Option<Review>,
    /// The files of the sync (the integration branch merged into its branch) left
    /// conflicting in its worktree that its agent was given to resolve, until its work is
    /// checked: a resume keeps that merge in progress (and gives one no fix was left for up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_conflicts: Vec<String>,
    /// Its agent's final message (of its latest work or fix attempt), for its dependents.
    #[serde(default)]
    pub summary: Option<String>,
    /// The session's running cost as the agent last reported it (Claude Code reports the
    /// whole session's total after `--resume`: an attempt costs the difference).
    #[serde(default)]
    pub session_cost: Option<f64>,
    /// Messages a person sent its agent that it has not been given yet (`flow tell`, the
    /// dashboard's `m`): kept in the record, so a resume after a crash still gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<String>,
}

impl WorkstreamState {
    /// A workstream that has not started.
    pub fn new(name: &str, spec_hash: String, now: Timestamp) -> WorkstreamState {
        WorkstreamState {
            name: name.to_string(),
            phase: Phase::Pending,
            attempts: 0,
            started_at: None,
            ended_at: None,
            updated_at: now,
            spec_hash,
            branch: None,
            worktree: None,
            start_commit: None,
            result_commit: None,
            base_commit: None,
            merge_commit: None,
            files_changed: vec![],
            test: None,
            usage: Usage::default(),
            session_id: None,
            failure: None,
            reason: None,
            last_line: None,
            agent_finished: false,
            attempt_log: vec![],
            fixes: 0,
            feedback: None,
            review: None,
            sync_conflicts: vec![],
            summary: None,
            session_cost: None,
            told: vec![],
        }
    }
}

/// How the run as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// Returns the kebab-case name shown in reports and written to state files, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.pad(self.as_str())
    }
}

/// Everything recorded about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub version: u32,
    pub id: String,
    pub workflow: String,
    pub workflow_file: Option<String>,
    pub workflow_hash: String,
    pub repository: String,
    pub base: Option<String>,
    pub base_commit: Option<String>,
    pub into: String,
    /// The integration branch's last commit that passed verification.
    pub last_good: Option<String>,
    pub status: RunStatus,
    #[serde(with = "crate::time::compat")]
    pub started_at: Timestamp,
    #[serde(default, with = "crate::time::compat::option")]
    pub ended_at: Option<Timestamp>,
    /// The sequence number of the last event applied.
    pub last_event: u64,
    pub workstreams: Vec<WorkstreamState>,
    /// Warnings and alerts raised during the run (budget at 80%, scope warnings).
    pub alerts: Vec<String>,
    /// Budgets whose spending passed their limit, once each (an attempt's usage is known
    /// only at its end: the last one can pass the limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overruns: Vec<BudgetBreach>,
}

/// One thing that happened in a run. Applying events in order rebuilds the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(with = "crate::time::compat")]
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// A run started or resumed.
    RunStarted {
        pid: u32,
        resumed: bool,
        #[serde(default)]
        workflow_hash: Option<String>,
    },
    /// A resume decided to run a workstream again from the start.
    Reset {
        workstream: usize,
        spec_hash: String,
        reason: String,
    },
    /// A person asked the run going on to run a failed workstream again (`flow watch`'s r,
    /// `flow retry`): it waits to start afresh, its attempts so far kept in its record, its
    /// `retries` and `fix-attempts` whole again; its budgets still count what it spent.
    Retried { workstream: usize, reason: String },
    /// A resume moved the integration branch back (an unverified or unwanted merge).
    IntegrationReset { commit: String, reason: String },
    /// A workstream moved to a phase.
    Phase {
        workstream: usize,
        phase: Phase,
        reason: Option<String>,
    },
    /// A workstream's worktree is ready at its start commit.
    Prepared {
        workstream: usize,
        branch: Option<String>,
        worktree: String,
        start_commit: Option<String>,
    },
    /// An agent attempt started.
    AttemptStarted {
        workstream: usize,
        attempt: u32,
        #[serde(default)]
        purpose: Purpose,
        /// What a fix attempt is told.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<Feedback>,
    },
    /// Running usage of an agent attempt, as it streams.
    Usage { workstream: usize, usage: Usage },
    /// An agent attempt ended.
    AttemptEnded {
        workstream: usize,
        attempt: u32,
        usage: Usage,
        session_id: Option<String>,
        error: Option<AgentError>,
        last_line: Option<String>,
        /// The agent's final message, cut to a few KB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        /// The session's running cost as the tool reported it, for tools that report the
        /// whole session's total (the attempt's own cost is in `usage`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_cost: Option<f64>,
    },
    /// A reviewer answered.
    Reviewed { workstream: usize, review: Review },
    /// The integration branch was brought into the workstream's branch (`conflicts` empty:
    /// cleanly, at `head`).
    Synced {
        workstream: usize,
        head: Option<String>,
        conflicts: Vec<String>,
    },
    /// The workstream's work is committed and checked.
    Checked {
        workstream: usize,
        result_commit: Option<String>,
        /// The integration commit its work is measured from, when a sync moved it past the
        /// start commit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_commit: Option<String>,
        files_changed: Vec<String>,
        test: Option<TestResult>,
    },
    /// The workstream failed.
    Failed { workstream: usize, failure: Failure },
    /// The workstream's branch merged into the integration branch.
    Merged {
        workstream: usize,
        merge_commit: String,
        verify: Option<TestResult>,
    },
    /// The workstream's branch conflicted.
    Conflicted { workstream: usize, paths: Vec<String> },
    /// An alert (budget at 80%, scope warning).
    Alert { workstream: Option<usize>, message: String },
    /// A person's message for a workstream's agent, kept until the agent is given it (its
    /// next attempt, a fix of kind `message`, takes every message kept).
    Told { workstream: usize, text: String },
    /// A budget's spending passed its limit, with workstream `workstream`'s attempt.
    Overrun { workstream: usize, breach: BudgetBreach },
    /// The run ended.
    RunEnded { status: RunStatus },
}

impl RunState {
    /// Applies one event.
    pub fn apply(&mut self, event: &Event) {
        self.last_event = event.seq;
        let at = event.at;
        match &event.kind {
            EventKind::RunStarted { workflow_hash, .. } => {
                self.status = RunStatus::Running;
                self.ended_at = None;
                if let Some(h) = workflow_hash {
                    self.workflow_hash = h.clone();
                }
            }
            EventKind::Reset {
                workstream,
                spec_hash,
                reason,
            } => {
                let ws = &mut self.workstreams[*workstream];
                let usage = ws.usage;
                let attempts = ws.attempts;
                let told = std::mem::take(&mut ws.told);
                *ws = WorkstreamState::new(&ws.name.clone(), spec_hash.clone(), at);
                ws.usage = usage;
                ws.attempts = attempts;
                ws.told = told;
                ws.reason = Some(reason.clone());
            }
            EventKind::Retried { workstream, reason } => {
                let ws = &mut self.workstreams[*workstream];
                ws.phase = Phase::Pending;
                ws.reason = Some(reason.clone());
                ws.failure = None;
                ws.ended_at = None;
                ws.agent_finished = false;
                ws.fixes = 0;
                ws.feedback = None;
                ws.review = None;
                ws.sync_conflicts.clear();
                ws.result_commit = None;
                ws.base_commit = None;
                ws.merge_commit = None;
                ws.files_changed.clear();
                ws.test = None;
                ws.updated_at = at;
            }
            EventKind::IntegrationReset { commit, .. } => self.last_good = Some(commit.clone()),
            EventKind::Phase {
                workstream,
                phase,
                reason,
            } => {
                let ws = &mut self.workstreams[*workstream];
                let was = ws.phase;
                ws.phase = *phase;
                ws.reason = reason.clone();
                ws.updated_at = at;
                if *phase == Phase::Preparing && ws.started_at.is_none() {
                    ws.started_at = Some(at);
                }
                // A ready workstream given a reason keeps the time its work ended.
                if phase.is_final() || (*phase == Phase::Ready && was != Phase::Ready) {
                    ws.ended_at = Some(at);
                }
                if *phase == Phase::Pending {
                    ws.failure = None;
                    ws.ended_at = None;
                }
                // A sync's merge stays in progress while its job goes on (or waits for a
                // resume to go on); past that, or when it is sent back again, it is over.
                if !matches!(phase, Phase::Pending | Phase::Preparing | Phase::Checking) {
                    ws.sync_conflicts.clear();
                }
            }
            EventKind::Prepared {
                workstream,
                branch,
                worktree,
                start_commit,
            } => {
                let ws = &mut self.workstreams[*workstream];
                ws.branch = branch.clone();
                ws.worktree = Some(worktree.clone());
                ws.start_commit = start_commit.clone();
                ws.updated_at = at;
            }
            EventKind::AttemptStarted {
                workstream,
                attempt,
                purpose,
                feedback,
            } => {
                let ws = &mut self.workstreams[*workstream];
                ws.attempts = *attempt;
                ws.phase = match purpose {
                    Purpose::Work => Phase::Running,
                    Purpose::Fix => Phase::Fixing,
                    Purpose::Review => Phase::Reviewing,
                    Purpose::Resolve => Phase::Resolving,
                };
                // A review or a resolution leaves the work as it was: only a work or fix
                // attempt makes a resume run the agent again rather than check its work.
                if matches!(purpose, Purpose::Work | Purpose::Fix) {
                    ws.agent_finished = false;
                }
                // A fix attempt with feedback is a new fix; one without runs the latest again.
                // A person's message is not a failed check: it does not count as a fix.
                if *purpose == Purpose::Fix
                    && let Some(given) = feedback
                {
                    if given.kind == FeedbackKind::Message {
                        // Given now, every message kept.
                        ws.told.clear();
                    } else {
                        ws.fixes += 1;
                    }
                    ws.feedback = Some(given.clone());
                    if given.kind == FeedbackKind::Conflict && !given.files.is_empty() {
                        ws.sync_conflicts = given.files.clone();
                    }
                }
                let told = match purpose {
                    Purpose::Fix => ws.feedback.as_ref().map(|f| f.kind),
                    _ => feedback.as_ref().map(|f| f.kind),
                };
                // Most workstreams make one attempt: room for exactly one more each time,
                // not the four a first push makes (a run of 10,000 held 3 MB of empty room).
                ws.attempt_log.reserve_exact(1);
                ws.attempt_log.push(AttemptRecord {
                    number: *attempt,
                    purpose: *purpose,
                    started_at: at,
                    ended_at: None,
                    usage: Usage::default(),
                    feedback: told,
                    error: None,
                });
                ws.updated_at = at;
            }
            EventKind::Usage { workstream, usage } => {
                // Streaming usage is shown live; the attempt's final usage is added when it ends.
                let ws = &mut self.workstreams[*workstream];
                ws.updated_at = at;
                let _ = usage;
            }
            EventKind::AttemptEnded {
                workstream,
                usage,
                session_id,
                last_line,
                error,
                result,
                session_cost,
                ..
            } => {
                let ws = &mut self.workstreams[*workstream];
                ws.usage.add(usage);
                if session_cost.is_some() {
                    ws.session_cost = *session_cost;
                }
                let purpose = match ws.attempt_log.last_mut() {
                    Some(record) if record.ended_at.is_none() => {
                        record.ended_at = Some(at);
                        record.usage = *usage;
                        record.error = error.as_ref().map(|e| e.to_string());
                        record.purpose
                    }
                    _ => Purpose::Work,
                };
                if matches!(purpose, Purpose::Work | Purpose::Fix) {
                    // An attempt ends without error only when its agent exited 0 and reported
                    // no error (a signal, a timeout or a cancel always carries one): a resume
                    // then checks its work instead of running the agent again.
                    ws.agent_finished = error.is_none();
                    if result.is_some() {
                        ws.summary = result.clone();
                    }
                }
                if session_id.is_some() {
                    ws.session_id = session_id.clone();
                }
                if last_line.is_some() {
                    ws.last_line = last_line.clone();
                }
                ws.updated_at = at;
            }
            EventKind::Checked {
                workstream,
                result_commit,
                base_commit,
                files_changed,
                test,
            } => {
                let ws = &mut self.workstreams[*workstream];
                ws.result_commit = result_commit.clone();
                ws.base_commit = base_commit.clone();
                ws.files_changed = files_changed.clone();
                ws.test = test.clone();
                ws.sync_conflicts.clear();
                ws.updated_at = at;
            }
            EventKind::Failed { workstream, failure } => {
                let ws = &mut self.workstreams[*workstream];
                ws.failure = Some(failure.clone());
                ws.sync_conflicts.clear();
                ws.phase = Phase::Failed;
                ws.ended_at = Some(at);
                ws.updated_at = at;
            }
            EventKind::Merged {
                workstream,
                merge_commit,
                ..
            } => {
                let ws = &mut self.workstreams[*workstream];
                ws.merge_commit = Some(merge_commit.clone());
                ws.phase = Phase::Merged;
                ws.ended_at = Some(at);
                ws.updated_at = at;
                self.last_good = Some(merge_commit.clone());
            }
            EventKind::Conflicted { workstream, paths } => {
                let ws = &mut self.workstreams[*workstream];
                ws.phase = Phase::Conflicted;
                ws.sync_conflicts.clear();
                ws.failure = Some(Failure::new(
                    FailureKind::Conflict,
                    format!("conflicts in {}", paths.join(", ")),
                ));
                ws.ended_at = Some(at);
                ws.updated_at = at;
            }
            EventKind::Alert { message, .. } => self.alerts.push(message.clone()),
            EventKind::Overrun { breach, .. } => self.overruns.push(breach.clone()),
            EventKind::Reviewed { workstream, review } => {
                let ws = &mut self.workstreams[*workstream];
                ws.review = Some(review.clone());
                ws.updated_at = at;
            }
            EventKind::Synced { workstream, .. } => self.workstreams[*workstream].updated_at = at,
            EventKind::Told { workstream, text } => self.workstreams[*workstream].told.push(text.clone()),
            EventKind::RunEnded { status } => {
                self.status = *status;
                self.ended_at = Some(at);
                // What no agent got was said at the end; a later resume does not give it.
                for ws in &mut self.workstreams {
                    ws.told.clear();
                }
            }
        }
    }

    /// Finds a workstream by name.
    pub fn workstream(&self, name: &str) -> Option<&WorkstreamState> {
        self.workstreams.iter().find(|w| w.name == name)
    }

    /// The total usage over every workstream.
    pub fn total_usage(&self) -> Usage {
        let mut total = Usage::default();
        for ws in &self.workstreams {
            total.add(&ws.usage);
        }
        total
    }

    /// Counts workstreams per phase.
    pub fn phase_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for ws in &self.workstreams {
            *counts.entry(ws.phase.name()).or_default() += 1;
        }
        counts
    }
}
