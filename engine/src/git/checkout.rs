//! The detached integration worktree where `verify` runs on a merged tree.

use std::path::Path;

use git2::build::CheckoutBuilder;

use super::error::GitContext;
use super::paths::normalize;
use super::repo::{Head, short_branch};
use super::worktree::{refuse_occupied, remove_half_made_worktree, remove_if_half_made};
use super::{Git, GitError, Oid};

impl Git {
    /// Makes `dir` a worktree whose HEAD is detached at `commit` and whose files equal
    /// that commit's tree: tracked changes are overwritten and untracked files removed,
    /// while files matched by `.gitignore` (build caches) are kept.
    ///
    /// A missing `dir` (or an empty folder) becomes a new worktree; an existing detached
    /// worktree of this repository is reused. A worktree with a branch checked out (a
    /// workstream's) and anything else at `dir` are refused with
    /// `GitError::PathInTheWay`, and the user's checkout with `GitError::UserCheckout`.
    pub fn checkout_detached(&self, dir: &Path, commit: Oid) -> Result<(), GitError> {
        let dir = normalize(dir);
        self.refuse_user_checkout(&dir)?;
        let repo = self.open()?;
        if repo.find_commit(commit.raw()).is_err() {
            return Err(GitError::UnknownRevision(commit.to_string()));
        }

        let mut record = self.find_record(&repo, &dir)?;
        if let Some(half_made) = &record
            && remove_if_half_made(half_made)?
        {
            record = None;
        }
        if let Some(stale) = record.as_ref().filter(|record| !record.exists) {
            self.prune_record(&repo, stale)?;
            record = None;
        }
        let record = match record {
            Some(record) => {
                // Never force a checkout over a workstream's branch and its work.
                if let Head::Branch(full) = self.record_head(&record)? {
                    return Err(GitError::PathInTheWay {
                        path: dir,
                        found: format!("a worktree of branch `{}`", short_branch(&full)),
                    });
                }
                record
            }
            None => return self.create_detached_worktree(&dir, commit),
        };

        let worktree_repo = self.open_record(&record)?;
        // Objects must come from the handle that checks them out.
        let target = worktree_repo
            .find_commit(commit.raw())
            .context(|| format!("read commit {commit}"))?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force().remove_untracked(true);
        worktree_repo
            .checkout_tree(target.as_object(), Some(&mut checkout))
            .context(|| format!("check out {} in `{}`", commit.short(), dir.display()))?;
        worktree_repo
            .set_head_detached(commit.raw())
            .context(|| format!("detach HEAD of `{}` at {}", dir.display(), commit.short()))
    }

    /// Creates a worktree at `dir` detached at `commit`, with its files.
    fn create_detached_worktree(&self, dir: &Path, commit: Oid) -> Result<(), GitError> {
        refuse_occupied(dir)?;
        let record = self.create_worktree(dir, &Head::Detached(commit))?;
        self.populate_worktrees(commit, &[dir.to_path_buf()])
            .and_then(|()| self.finish_worktree(&record.admin_dir))
            .inspect_err(|_| remove_half_made_worktree(&record.admin_dir, dir))
    }
}
