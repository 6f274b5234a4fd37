//! Committing what an agent left uncommitted in its worktree.

use std::path::Path;

use git2::{IndexAddOption, RepositoryState};

use super::error::GitContext;
use super::paths::is_under_any;
use super::repo::{Head, flow_signature, read_head};
use super::{Git, GitError, Oid};

impl Git {
    /// Stages everything in the worktree at `dir` (new, modified and deleted files,
    /// respecting `.gitignore`) except paths under `exclude_prefixes`, and commits it on
    /// the branch checked out there as `flow <flow@localhost>`.
    ///
    /// Returns `None` when there is nothing to commit. No hooks run. A git repository
    /// nested inside the worktree fails with `GitError::NestedRepository` (nothing is
    /// committed) unless it is ignored or excluded. It refuses the
    /// user's own checkout (`GitError::UserCheckout`), a detached HEAD
    /// (`GitError::DetachedHead`) and a worktree in the middle of a merge or rebase
    /// (`GitError::OperationInProgress`).
    pub fn commit_all(&self, dir: &Path, message: &str, exclude_prefixes: &[&str]) -> Result<Option<Oid>, GitError> {
        self.commit_everything(dir, message, exclude_prefixes, false)
    }

    /// Works as [`Git::commit_all`] but also finishes a merge in progress (the one flow
    /// started to bring the integration branch in): the commit's second parent is
    /// `MERGE_HEAD`. The caller has checked that no conflict marker is left.
    pub fn commit_all_finishing_merge(
        &self,
        dir: &Path,
        message: &str,
        exclude_prefixes: &[&str],
    ) -> Result<Option<Oid>, GitError> {
        self.commit_everything(dir, message, exclude_prefixes, true)
    }

    fn commit_everything(
        &self,
        dir: &Path,
        message: &str,
        exclude_prefixes: &[&str],
        finish_merge: bool,
    ) -> Result<Option<Oid>, GitError> {
        let (repo, path) = self.open_flow_worktree(dir)?;
        let state = repo.state();
        let merging = finish_merge && state == RepositoryState::Merge;
        if state != RepositoryState::Clean && !merging {
            return Err(GitError::OperationInProgress {
                path,
                operation: operation_name(state).to_owned(),
            });
        }
        let merge_head = if merging {
            let file = repo.path().join("MERGE_HEAD");
            let text =
                std::fs::read_to_string(&file).map_err(|e| super::error::io_error("read MERGE_HEAD", &file, e))?;
            let id: Oid = text.lines().next().unwrap_or_default().trim().parse()?;
            Some(repo.find_commit(id.raw()).context(|| format!("read commit {id}"))?)
        } else {
            None
        };
        let Head::Branch(full) = read_head(&repo, &path)? else {
            return Err(GitError::DetachedHead { path });
        };
        let parent = super::branch::read_ref(&repo, &full)?;
        let parent = match parent {
            Some(oid) => Some(repo.find_commit(oid.raw()).context(|| format!("read commit {oid}"))?),
            None => None,
        };

        // The common case, nothing left: one status walk instead of staging walks.
        if merge_head.is_none() && super::status::dirty_paths(&repo, &path, exclude_prefixes)?.is_empty() {
            return Ok(None);
        }
        let mut index = repo
            .index()
            .context(|| format!("read the index of `{}`", path.display()))?;
        // libgit2 reports a nested repository as one untracked folder ("vendor/x/") and
        // fails to add it, so such folders are skipped here and reported below.
        let mut nested = Vec::new();
        let mut select = |file: &Path, _spec: &[u8]| -> i32 {
            let name = file.to_string_lossy();
            if is_under_any(&name, exclude_prefixes) {
                1
            } else if name.ends_with('/') {
                nested.push(name.trim_end_matches('/').to_owned());
                1
            } else {
                0
            }
        };
        index
            .add_all(["*"], IndexAddOption::DEFAULT, Some(&mut select))
            .context(|| format!("stage the files of `{}`", path.display()))?;
        if !nested.is_empty() {
            nested.sort();
            return Err(GitError::NestedRepository { path, paths: nested });
        }
        let mut skip_excluded =
            |file: &Path, _spec: &[u8]| -> i32 { i32::from(is_under_any(&file.to_string_lossy(), exclude_prefixes)) };
        index
            .update_all(["*"], Some(&mut skip_excluded))
            .context(|| format!("stage the deletions in `{}`", path.display()))?;
        let tree_id = index
            .write_tree()
            .context(|| format!("write the staged tree of `{}`", path.display()))?;

        let unchanged = match &parent {
            Some(parent) => parent.tree_id() == tree_id,
            None => index.is_empty(),
        };
        if unchanged && merge_head.is_none() {
            return Ok(None);
        }
        index
            .write()
            .context(|| format!("write the index of `{}`", path.display()))?;
        let tree = repo.find_tree(tree_id).context(|| format!("read tree {tree_id}"))?;
        let signature = flow_signature()?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().chain(merge_head.iter()).collect();
        // Updating HEAD moves the checked-out branch; libgit2 refuses if it moved meanwhile.
        let commit = repo
            .commit(Some("HEAD"), &signature, &signature, message, &tree, &parents)
            .context(|| format!("commit in `{}`", path.display()))?;
        if merging {
            repo.cleanup_state()
                .context(|| format!("end the merge in `{}`", path.display()))?;
        }
        Ok(Some(commit.into()))
    }
}

/// Names an unfinished operation the way git's messages do.
pub(crate) fn operation_name(state: RepositoryState) -> &'static str {
    match state {
        RepositoryState::Clean => "clean state",
        RepositoryState::Merge => "merge",
        RepositoryState::Revert | RepositoryState::RevertSequence => "revert",
        RepositoryState::CherryPick | RepositoryState::CherryPickSequence => "cherry-pick",
        RepositoryState::Bisect => "bisect",
        RepositoryState::Rebase | RepositoryState::RebaseInteractive | RepositoryState::RebaseMerge => "rebase",
        RepositoryState::ApplyMailbox | RepositoryState::ApplyMailboxOrRebase => "`git am`",
    }
}
