//! flow's git layer, built on git2 (libgit2) alone.
//!
//! [`Git`] points at one repository and offers what a run needs:
//!
//! - reading revisions and branches, and moving branches with compare-and-swap
//!   ([`Git::resolve`], [`Git::ensure_branch`], [`Git::set_branch`]);
//! - one linked worktree per workstream ([`Git::add_worktree`], locks, listing,
//!   pruning records of folders deleted by hand, [`Git::remove_worktree`]);
//! - after an agent: committing what it left ([`Git::commit_all`]), listing what it
//!   changed ([`Git::changed_paths`]) and checking it did not rewire the worktree
//!   ([`Git::check_worktree_integrity`]);
//! - merging into the integration branch entirely in memory ([`Git::merge_into`],
//!   [`Git::trial_merge`], with worktrees' uncommitted files [`Git::trial_merge_sides`])
//!   and materialising a merged commit in a detached worktree for `verify`
//!   ([`Git::checkout_detached`]);
//! - around every agent: a snapshot of the git directory it shares with the user, the
//!   changes it made there and their undo ([`Git::snapshot_git_dir`],
//!   [`Git::git_dir_changes`], [`Git::undo_git_dir_changes`]), and the git settings that
//!   keep planted hooks and commands from running in its processes ([`agent_git_env`]).
//!
//! Nothing here touches the user's checkout: merges never need a working tree, and
//! every worktree operation refuses folders that are not flow's linked worktrees.
//! A `git2::Repository` is `Send` but not `Sync`, so `Git` holds only paths and each
//! operation opens a fresh handle; `Git` itself can be cloned and shared freely.
//! Commits flow writes carry `flow <flow@localhost>` as author and committer; libgit2
//! runs no hooks.

mod adopt;
mod branch;
mod changes;
mod checkout;
mod commit;
mod error;
mod guard;
mod history;
mod integrity;
mod merge;
mod oid;
mod paths;
mod populate;
mod repo;
mod reset;
mod secrets;
mod status;
mod sync;
mod trees;
mod trial;
mod worktree;

pub use adopt::{Adopted, is_lent_line, is_taken_out_line};
pub use branch::BranchState;
pub use changes::{Change, ChangeKind};
pub use error::GitError;
pub use guard::{
    AGENT_GIT_SETTINGS, ContentId, FileRole, FileState, GitDirChange, GitSnapshot, Guarded, KeyChange, NO_HOOKS,
    RefTarget, StashEntry, UndoReport, UserPlaces, agent_git_env,
};
pub use history::FileStat;
pub use integrity::IntegrityProblem;
pub use merge::MergeOutcome;
pub use oid::Oid;
pub use repo::Git;
pub use sync::{MergeProgress, WorktreeMerge, conflict_hunks, files_with_markers};
pub use trial::TrialSide;
pub use worktree::{STAGED_RECORD_PREFIX, WORKTREE_BEING_MADE, WorktreeInfo, WorktreeState, is_half_made};

/// Sets how libgit2 works for the whole process; called once when the program starts.
/// Objects are read as the git CLI reads them: without hashing each one again on every
/// read (libgit2's default), which costs a SHA-1 of every blob a worktree is made of.
pub fn configure_process() {
    git2::opts::strict_hash_verification(false);
}
