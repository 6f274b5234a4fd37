//! What `flow sync` did with each workstream: its own module because the resolver agent's
//! sync ([`super::resolver`]) ends with the same answer as a plain one ([`super::sync`]).

use std::path::PathBuf;

use serde::Serialize;

/// What `flow sync` did with one workstream.
#[derive(Debug, Clone, Serialize)]
pub struct SyncItem {
    pub workstream: String,
    pub result: SyncResult,
    pub detail: String,
    /// The files behind a refusal: uncommitted ones, or those the merge would conflict on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Its branch's head afterwards.
    pub head: Option<String>,
    pub worktree: Option<PathBuf>,
}

/// The outcome of syncing one workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncResult {
    /// The integration branch was merged in and committed.
    Synced,
    /// The integration branch was merged in, its conflicts resolved by the resolver agent.
    Resolved,
    /// Its branch already holds the integration branch.
    UpToDate,
    /// Left untouched, and why (uncommitted changes, a conflict, no worktree).
    Refused,
    /// The resolver did not resolve the conflict: the sync was given up.
    Failed,
    /// Not a workstream with a worktree.
    Skipped,
}

impl SyncResult {
    /// Returns the kebab-case name shown by `flow sync` and written to its JSON, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncResult::Synced => "synced",
            SyncResult::Resolved => "resolved",
            SyncResult::UpToDate => "up-to-date",
            SyncResult::Refused => "refused",
            SyncResult::Failed => "failed",
            SyncResult::Skipped => "skipped",
        }
    }

    /// Tells whether the workstream did not end up holding the integration branch.
    pub fn is_bad(self) -> bool {
        matches!(self, SyncResult::Refused | SyncResult::Failed)
    }
}

impl std::fmt::Display for SyncResult {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.pad(self.as_str())
    }
}
