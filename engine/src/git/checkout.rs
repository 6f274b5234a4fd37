//! The detached integration worktree where `verify` runs on a merged tree.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use git2::build::CheckoutBuilder;

use super::error::{GitContext, io_error};
use super::paths::normalize;
use super::repo::{Head, short_branch};
use super::{Git, GitError, Oid};

/// Distinguishes temporary branches made by one process.
static TEMPORARY_BRANCH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prefix of the short-lived branch a new detached worktree is created on.
const TEMPORARY_BRANCH_PREFIX: &str = "flow-tmp/checkout-";

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
            None => {
                self.create_detached_worktree(&repo, &dir, commit)?;
                self.require_record(&repo, &dir)?
            }
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

    /// Creates a worktree at `dir` detached at `commit`. libgit2 only creates worktrees
    /// on a branch, so it goes through a temporary branch that is deleted afterwards.
    fn create_detached_worktree(&self, repo: &git2::Repository, dir: &Path, commit: Oid) -> Result<(), GitError> {
        match fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => {
                let mut entries = fs::read_dir(dir).map_err(|error| io_error("read folder", dir, error))?;
                if entries.next().is_some() {
                    return Err(GitError::PathInTheWay {
                        path: dir.to_path_buf(),
                        found: "a non-empty folder that is not a worktree of this repository".to_owned(),
                    });
                }
            }
            Ok(_) => {
                return Err(GitError::PathInTheWay {
                    path: dir.to_path_buf(),
                    found: "a file".to_owned(),
                });
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("inspect", dir, error)),
        }

        let folder = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix: String = folder
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let temporary = format!(
            "refs/heads/{TEMPORARY_BRANCH_PREFIX}{suffix}-{}-{}",
            std::process::id(),
            TEMPORARY_BRANCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        repo.reference(&temporary, commit.raw(), true, "flow: temporary branch")
            .context(|| format!("create temporary branch `{temporary}`"))?;
        let created = self.create_worktree(repo, dir, &temporary).and_then(|()| {
            let record = self.require_record(repo, dir)?;
            let worktree_repo = self.open_record(&record)?;
            worktree_repo
                .set_head_detached(commit.raw())
                .context(|| format!("detach HEAD of `{}`", dir.display()))
        });
        let deleted = repo
            .find_reference(&temporary)
            .and_then(|mut reference| reference.delete())
            .context(|| format!("delete temporary branch `{temporary}`"));
        created.and(deleted)
    }
}
