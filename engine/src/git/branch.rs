//! Branches: reading, creating, moving with compare-and-swap, deleting.

use git2::{ErrorCode, Repository};

use super::Git;
use super::GitError;
use super::Oid;
use super::error::GitContext;
use super::repo::{branch_ref, short_branch};

/// Says whether `ensure_branch` created a branch or found one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchState {
    /// The branch did not exist and now points at the requested start.
    Created,
    /// The branch already existed; it was left where it is, at this commit.
    Existing(Oid),
}

impl Git {
    /// Returns the commit a branch points at, or `None` when the branch does not exist.
    pub fn branch_head(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let full = branch_ref(branch)?;
        let repo = self.open()?;
        read_ref(&repo, &full)
    }

    /// Creates a branch at `start` unless it exists; an existing branch is never moved.
    pub fn ensure_branch(&self, branch: &str, start: Oid) -> Result<BranchState, GitError> {
        let full = branch_ref(branch)?;
        let repo = self.open()?;
        let message = format!("flow: create {} at {}", short_branch(&full), start.short());
        match repo.reference(&full, start.raw(), false, &message) {
            Ok(_) => Ok(BranchState::Created),
            Err(error) if error.code() == ErrorCode::Exists => match read_ref(&repo, &full)? {
                Some(existing) => Ok(BranchState::Existing(existing)),
                None => Err(GitError::Git {
                    action: format!("create branch `{}`", short_branch(&full)),
                    error,
                }),
            },
            Err(error) => Err(GitError::Git {
                action: format!("create branch `{}` at {start}", short_branch(&full)),
                error,
            }),
        }
    }

    /// Lists the local branches' short names, sorted.
    pub fn local_branches(&self) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let branches = repo
            .branches(Some(git2::BranchType::Local))
            .context(|| "list the branches".to_string())?;
        let mut names: Vec<String> = branches
            .filter_map(Result::ok)
            .filter_map(|(branch, _)| branch.name().ok().flatten().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Moves (or creates) a branch to `new` only if it still points at `expected_old`.
    ///
    /// `expected_old = None` means the branch must not exist yet. A mismatch gives
    /// `GitError::RefMoved` with what was found. A branch checked out in any worktree is
    /// refused with `GitError::BranchCheckedOut`, because moving it would make that
    /// checkout look as if it had undone the change.
    pub fn set_branch(
        &self,
        branch: &str,
        new: Oid,
        expected_old: Option<Oid>,
        log_message: &str,
    ) -> Result<(), GitError> {
        let full = branch_ref(branch)?;
        let repo = self.open()?;
        if let Some(path) = self.checked_out_at(&repo, &full)? {
            return Err(GitError::BranchCheckedOut {
                branch: short_branch(&full).to_owned(),
                path,
            });
        }
        compare_and_swap(&repo, &full, new, expected_old, log_message)
    }

    /// Deletes a branch; a branch that does not exist is not an error.
    ///
    /// A branch checked out in any worktree is refused with `GitError::BranchCheckedOut`.
    pub fn delete_branch(&self, branch: &str) -> Result<(), GitError> {
        let full = branch_ref(branch)?;
        let short = short_branch(&full).to_owned();
        let repo = self.open()?;
        if let Some(path) = self.checked_out_at(&repo, &full)? {
            return Err(GitError::BranchCheckedOut { branch: short, path });
        }
        // `git_branch_delete` repeats the checked-out test, and reads a worktree record
        // another process is still writing as holding every branch, so the ref is deleted
        // directly after our own test. flow's branches carry no `branch.<name>` configuration.
        let mut reference = match repo.find_reference(&full) {
            Ok(reference) => reference,
            Err(error) if error.code() == ErrorCode::NotFound => return Ok(()),
            Err(error) => {
                return Err(GitError::Git {
                    action: format!("find branch `{short}`"),
                    error,
                });
            }
        };
        reference.delete().context(|| format!("delete branch `{short}`"))
    }
}

/// Reads the commit a full ref points at, `None` when it does not exist.
pub(crate) fn read_ref(repo: &Repository, full: &str) -> Result<Option<Oid>, GitError> {
    match repo.refname_to_id(full) {
        Ok(oid) => Ok(Some(oid.into())),
        Err(error) if error.code() == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(GitError::Git {
            action: format!("read `{full}`"),
            error,
        }),
    }
}

/// Sets a full ref to `new` if it holds `expected_old` (`None`: absent), atomically.
pub(crate) fn compare_and_swap(
    repo: &Repository,
    full: &str,
    new: Oid,
    expected_old: Option<Oid>,
    log_message: &str,
) -> Result<(), GitError> {
    let result = match expected_old {
        None => repo.reference(full, new.raw(), false, log_message),
        Some(old) => repo.reference_matching(full, new.raw(), true, old.raw(), log_message),
    };
    match result {
        Ok(_) => Ok(()),
        Err(error) => {
            let actual = read_ref(repo, full)?;
            if actual != expected_old || matches!(error.code(), ErrorCode::Modified | ErrorCode::Exists) {
                Err(GitError::RefMoved {
                    branch: short_branch(full).to_owned(),
                    expected: expected_old,
                    actual,
                })
            } else {
                Err(GitError::Git {
                    action: format!("move `{}` to {new}", short_branch(full)),
                    error,
                })
            }
        }
    }
}
