//! What the core hears ([`Input`]) and what it asks for ([`Effect`]): the whole vocabulary
//! between the pure core and the driver that carries its effects out.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::Usage;
use crate::agent::output::AgentError;
use crate::git::Oid;
use crate::run::state::{Event, Failure, Feedback, Purpose, TestResult};

/// Something that happened outside the core, fed to [`super::Core::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A workstream's worktree (or scratch folder) and context are ready, or could not be made.
    Prepared {
        workstream: usize,
        result: Result<Workspace, Failure>,
    },
    /// The usage an agent has reported so far in its current attempt (not priced yet).
    Usage { workstream: usize, usage: Usage },
    /// An agent's process ended.
    AgentEnded { workstream: usize, outcome: AgentOutcome },
    /// What the agent left was committed, and the worktree read.
    Inspected {
        workstream: usize,
        result: Result<Inspection, String>,
    },
    /// Changes outside the scope were reverted in a new commit (`scope-policy "revert"`): the
    /// branch's new head.
    Reverted {
        workstream: usize,
        result: Result<Oid, String>,
    },
    /// A workstream's `test` ended; `None` when it was stopped.
    Tested {
        workstream: usize,
        result: Option<TestResult>,
    },
    /// A worktree was reset to its start for a retry.
    Reset {
        workstream: usize,
        result: Result<(), String>,
    },
    /// The integration branch was brought into the workstream's branch.
    Synced {
        workstream: usize,
        result: Result<SyncOutcome, String>,
    },
    /// A conflicting sync was given up: the worktree is back at its branch's head.
    SyncAborted {
        workstream: usize,
        result: Result<(), String>,
    },
    /// A conflicting merge was set up in the integration worktree for the resolver.
    ResolutionPrepared {
        workstream: usize,
        result: Result<Conflicts, String>,
    },
    /// The resolver's work was checked and, without markers left, committed as the merge.
    Resolved {
        workstream: usize,
        result: Result<Resolution, String>,
    },
    /// A branch was merged into the integration branch in memory (not yet verified).
    Merged { workstream: usize, outcome: MergeOutcome },
    /// `verify` ended on the merged tree; `None` when it was stopped.
    Verified {
        workstream: usize,
        result: Option<TestResult>,
    },
    /// The integration branch was moved back after an unverified merge; `ok` says whether it
    /// could be.
    RolledBack { workstream: usize, ok: bool },
    /// The trial merges of a ready branch: the paths it would conflict on with each other
    /// ready branch (`Some`) or the integration branch (`None`); only the conflicting ones.
    Forecast {
        workstream: usize,
        conflicts: Vec<(Option<usize>, Vec<String>)>,
    },
    /// A timer the core set went off.
    Timer(Timer),
    /// flow was asked to stop (Ctrl-C, SIGTERM, SIGHUP).
    Interrupt,
    /// A person asked to stop or skip one workstream (`flow watch`, through the run's
    /// `requests/` folder).
    Request { workstream: usize, action: Action },
    /// A person's message for a workstream's agent (`flow watch`'s m, `flow tell`), given to
    /// it as a fix attempt once its current attempt ends.
    Message { workstream: usize, text: String },
    /// The event log could not be written: nothing more may start.
    RecordFailed(String),
}

/// Something the core asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append an event to the event log, then show it to the observers. Everything after it
    /// in the same batch happens only once it is written (an agent never runs unrecorded).
    Record(Event),
    /// Make the workstream's worktree at `start` (reset to it when `fresh` and it exists
    /// elsewhere), or its scratch folder, and write its context.
    Prepare {
        workstream: usize,
        start: Option<Oid>,
        fresh: bool,
        /// Keep the merge in progress there (flow's sync, whose conflicts its agent resolves);
        /// otherwise a merge an interrupted run left is given up.
        keep_merge: bool,
        /// What its dependencies did, for its context.
        handoffs: Vec<Handoff>,
    },
    /// Start attempt `attempt` of an agent for the workstream: its own (work, fix), its
    /// reviewer, or the resolver. `budget_usd` is what its budget has left, for tools that
    /// take a spending cap of their own; `session` is the agent's session to continue (a fix).
    StartAgent {
        workstream: usize,
        attempt: u32,
        budget_usd: Option<f64>,
        purpose: Purpose,
        feedback: Option<Feedback>,
        session: Option<String>,
    },
    /// Stop whatever process the workstream runs (its agent or its test); the core keeps why.
    Stop { workstream: usize },
    /// Commit what the agent left in the worktree (finishing a merge in progress), check that
    /// the worktree was not rewired, list the paths the agent changed (since its start, or
    /// since the latest commit of `integration`, the last good one, that a sync brought in),
    /// and look for conflict markers left in `markers_in`.
    Inspect {
        workstream: usize,
        markers_in: Vec<String>,
        integration: Option<Oid>,
    },
    /// Bring `onto` (the integration branch's head) into the workstream's branch, in its
    /// worktree: a clean merge is committed; a conflicting one is left with its markers.
    Sync { workstream: usize, onto: Oid },
    /// Give up a conflicting sync: the worktree back at the branch's head.
    AbortSync { workstream: usize },
    /// Set up the conflicting merge of `result` into `onto` in the integration worktree,
    /// with its markers, for the resolver.
    PrepareResolution { workstream: usize, onto: Oid, result: Oid },
    /// Check the resolver's work in the integration worktree and, with no marker left in
    /// `files`, commit it as the merge of `result` into `onto` and move the integration
    /// branch there. `files` empty (a resume): the conflicts of that merge; and what a
    /// stopped run already did of this is not done again.
    FinishResolution {
        workstream: usize,
        onto: Oid,
        result: Oid,
        files: Vec<String>,
    },
    /// Append an entry about the resolution that `commit` holds to the run's decision log
    /// (`conflict_resolution.md`), unless the log names that commit already (a resume
    /// checking or finishing the same resolution again).
    LogDecision { commit: Oid, entry: String },
    /// Restore these paths to the start commit and commit that.
    Revert { workstream: usize, paths: Vec<String> },
    /// Run the workstream's `test` in its worktree.
    Test { workstream: usize },
    /// Reset the worktree to `to` (keeping flow's context files) before a retry.
    Reset { workstream: usize, to: Oid },
    /// Merge `result` into the integration branch, whose head must be `expected`.
    Merge {
        workstream: usize,
        expected: Oid,
        result: Oid,
    },
    /// Run `verify` on `commit` in the integration worktree.
    Verify { workstream: usize, commit: Oid },
    /// Stop `verify`.
    StopVerify,
    /// Kill every process being stopped now, without waiting for the rest of its grace.
    Hurry,
    /// Move the integration branch from `from` back to `to`, saying `why` in its reflog.
    RollBack {
        workstream: usize,
        to: Oid,
        from: Oid,
        why: &'static str,
    },
    /// Trial-merge the ready branch `head` in memory with each of `against` (another ready
    /// branch, or `None`: the integration branch), to warn of conflicts before the merges.
    Forecast {
        workstream: usize,
        head: Oid,
        against: Vec<(Option<usize>, Oid)>,
    },
    /// Feed [`Input::Timer`] back after `after`.
    Wake { timer: Timer, after: Duration },
}

/// The timers the core sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The wait before attempt `attempt + 1` of a workstream.
    Retry { workstream: usize, attempt: u32 },
}

/// Where a workstream works, once prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The worktree or scratch folder.
    pub dir: PathBuf,
    /// Its branch; `None` for a scratch folder.
    pub branch: Option<String>,
    /// The commit its branch started from; `None` for a scratch folder.
    pub start: Option<Oid>,
}

/// How an agent's attempt went, as read from its process and output.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    pub end: AgentEnd,
    /// The usage its output reported, not priced.
    pub usage: Usage,
    pub session_id: Option<String>,
    /// The error its output stated (or the reader inferred from the exit).
    pub error: Option<AgentError>,
    /// The last line it printed, secrets redacted.
    pub last_line: Option<String>,
    /// Its final message (the answer of a reviewer), secrets redacted.
    pub result: Option<String>,
    /// It continued an earlier session (its tool may report the session's running cost).
    pub resumed: bool,
    /// Its output held its final result (the tool said it was done), whatever stopped it after.
    pub delivered: bool,
    /// What it changed in the shared git directory (a hook, a configuration, a ref), which
    /// flow undid, and what could not be undone; empty when it kept to its worktree.
    pub tampered: Vec<String>,
}

impl AgentOutcome {
    /// An attempt that ended before its process ran, or without a process to read.
    pub fn unstarted(end: AgentEnd) -> AgentOutcome {
        AgentOutcome {
            end,
            usage: Usage::default(),
            session_id: None,
            error: None,
            last_line: None,
            result: None,
            resumed: false,
            delivered: false,
            tampered: vec![],
        }
    }
}

/// How an agent's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEnd {
    /// It exited on its own with this code.
    Exited(i32),
    /// It was killed by a signal flow did not send.
    Signaled(i32),
    /// flow stopped it at the workstream's `timeout`.
    TimedOut,
    /// flow stopped it after printing nothing for `idle-timeout`.
    Hung,
    /// flow stopped it on the core's [`Effect::Stop`] (or Ctrl-C).
    Stopped,
    /// It could not be started or watched (a bad command, its log could not be written): the
    /// message says why.
    Failed(String),
    /// Its program does not exist or may not be run: starting it again cannot help.
    CannotStart(String),
    /// It was not started, because the event log could not record its attempt.
    Unrecorded,
}

/// What [`Effect::Inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The branch's head after committing what the agent left.
    pub head: Oid,
    /// The integration commit its work is measured from: where it started, or the latest
    /// integration commit a sync brought into it.
    pub base: Oid,
    /// Every path its own work changed (since `base`), sorted.
    pub changed: Vec<String>,
    /// How the agent rewired its worktree (switched branch, rewrote history...), in words.
    pub integrity: Vec<String>,
    /// The files asked about that still hold conflict markers.
    pub markers: Vec<String>,
}

/// What bringing the integration branch into a workstream's branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Merged cleanly and committed: the branch's new head.
    Clean(Oid),
    /// The merge conflicts: left in the worktree with its markers.
    Conflicted(Conflicts),
}

/// The files of a conflicting merge, and its hunks as the agent reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts {
    pub paths: Vec<String>,
    /// The conflicting hunks with their markers, cut to a readable size.
    pub hunks: String,
}

/// A resolver's merge, committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Committed and the integration branch moved to it (not yet verified), resolving the
    /// conflicts in `files`.
    Merged { commit: Oid, files: Vec<String> },
    /// These files still hold conflict markers: nothing was committed.
    Markers(Vec<String>),
    /// A resume finishing a resolution found none: neither on the integration branch nor in
    /// the integration worktree.
    Gone,
}

pub use crate::handoff::Handoff;

/// What a merge into the integration branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The integration branch moved to this commit (a fast-forward or a merge commit).
    Merged(Oid),
    /// The branch was already in the integration branch.
    UpToDate,
    /// The branch conflicts on these paths; nothing moved.
    Conflict(Vec<String>),
    /// git failed or refused.
    Error(String),
}

/// What is asked of a workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Stop its work now (its agent, its check); its dependents are skipped, the rest of
    /// the run goes on.
    Stop,
    /// Do not start it; its dependents are skipped.
    Skip,
    /// Run a failed workstream again (a new attempt, from a clean worktree); its skipped
    /// dependents wait for it again. Asked of a workstream skipped because of a failure, it
    /// retries the failed workstreams it waits on.
    Retry,
    /// Give the request's text to the workstream's agent, as a fix attempt once its current
    /// attempt ends.
    Message,
}

impl Action {
    /// The verb, as a person says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Skip => "skip",
            Action::Retry => "retry",
            Action::Message => "message",
        }
    }
}
