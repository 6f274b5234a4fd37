//! Putting a workstream's worktree back: the whole of it before a retry, or some paths when
//! out-of-scope changes are reverted.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{ObjectType, ResetType};

use super::error::{GitContext, io_error};
use super::paths::is_under_any;
use super::{Git, GitError, Oid};

impl Git {
    /// Moves the branch checked out in the flow worktree at `dir` back to `commit` and makes
    /// its files equal that commit's tree, removing untracked files except those under
    /// `keep_prefixes` (flow's context files) and those `.gitignore` matches.
    pub fn reset_worktree(&self, dir: &Path, commit: Oid, keep_prefixes: &[&str]) -> Result<(), GitError> {
        let (repo, path) = self.open_flow_worktree(dir)?;
        let object = repo
            .find_object(commit.raw(), Some(ObjectType::Commit))
            .context(|| format!("find commit {commit}"))?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force();
        repo.reset(&object, ResetType::Hard, Some(&mut checkout))
            .context(|| format!("reset {} to {commit}", path.display()))?;
        remove_untracked(&repo, &path, keep_prefixes)
    }

    /// Puts `paths` in the worktree at `dir` back as they are in `commit` (deleting those the
    /// commit does not have), without committing.
    pub fn restore_paths(&self, dir: &Path, commit: Oid, paths: &[String]) -> Result<(), GitError> {
        let (repo, path) = self.open_flow_worktree(dir)?;
        let tree = repo
            .find_commit(commit.raw())
            .and_then(|c| c.tree())
            .context(|| format!("read the tree of {commit}"))?;
        for relative in paths {
            let full = path.join(relative);
            match tree.get_path(Path::new(relative)) {
                Ok(entry) => {
                    let blob = entry
                        .to_object(&repo)
                        .and_then(|o| o.peel_to_blob())
                        .context(|| format!("read `{relative}` at {commit}"))?;
                    if let Some(parent) = full.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io_error("create a folder", parent, e))?;
                    }
                    std::fs::write(&full, blob.content()).map_err(|e| io_error("restore a file", &full, e))?;
                }
                Err(_) => {
                    if full.exists() {
                        std::fs::remove_file(&full).map_err(|e| io_error("remove a file", &full, e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Removes the untracked files of the worktree of `repo` at `path`, except those under
/// `keep_prefixes` and those `.gitignore` matches.
pub(super) fn remove_untracked(repo: &git2::Repository, path: &Path, keep_prefixes: &[&str]) -> Result<(), GitError> {
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut options))
        .context(|| format!("read the status of {}", path.display()))?;
    for entry in statuses.iter() {
        let Ok(relative) = entry.path() else { continue };
        if !entry.status().contains(git2::Status::WT_NEW) || is_under_any(relative, keep_prefixes) {
            continue;
        }
        let full = path.join(relative);
        let removed = if full.is_dir() {
            std::fs::remove_dir_all(&full)
        } else {
            std::fs::remove_file(&full)
        };
        removed.map_err(|e| io_error("remove an untracked file", &full, e))?;
    }
    Ok(())
}
