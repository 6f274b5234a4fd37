//! Uncommitted changes in a worktree.

use std::collections::BTreeSet;
use std::path::Path;

use git2::{Repository, Status, StatusOptions};

use super::error::GitContext;
use super::paths::{is_under_any, repo_path};
use super::{Git, GitError};

impl Git {
    /// Lists the uncommitted paths of the worktree at `dir` (staged, unstaged and
    /// untracked; ignored files excluded), leaving out paths under the `ignore`
    /// prefixes. An empty list means clean. `dir` may also be the checkout at the root.
    pub fn is_dirty(&self, dir: &Path, ignore: &[&str]) -> Result<Vec<String>, GitError> {
        let (repo, path) = self.open_worktree(dir)?;
        dirty_paths(&repo, &path, ignore)
    }
}

/// Lists the uncommitted paths of `repo`, sorted, without the `ignore` prefixes.
pub(crate) fn dirty_paths(repo: &Repository, path: &Path, ignore: &[&str]) -> Result<Vec<String>, GitError> {
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false)
        .exclude_submodules(false);
    let statuses = repo
        .statuses(Some(&mut options))
        .context(|| format!("read the status of `{}`", path.display()))?;
    let mut paths = BTreeSet::new();
    for entry in statuses.iter() {
        let status = entry.status();
        if status.is_empty() || status.contains(Status::IGNORED) {
            continue;
        }
        let file = repo_path(entry.path_bytes());
        if !is_under_any(&file, ignore) {
            paths.insert(file);
        }
    }
    Ok(paths.into_iter().collect())
}
