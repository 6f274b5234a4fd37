//! Checks that an agent left its worktree's git plumbing as flow set it up.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::branch::read_ref;
use super::error::io_error;
use super::paths::normalize;
use super::repo::{Head, branch_ref, short_branch};
use super::{Git, GitError, Oid};

/// Names one way a worktree no longer matches what flow set up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum IntegrityProblem {
    /// The worktree folder is gone.
    FolderMissing,
    /// `<dir>/.git` is no longer the file that links the folder to this repository.
    GitFileTouched {
        /// What was found instead, as a phrase.
        detail: String,
    },
    /// HEAD names another branch than the workstream's.
    SwitchedBranch {
        /// The branch now checked out (short name).
        now: String,
    },
    /// HEAD is detached.
    Detached {
        /// The commit HEAD points at.
        at: Oid,
    },
    /// The workstream's branch no longer exists.
    BranchMissing,
    /// The branch head no longer descends from the commit the workstream started at
    /// (a reset or rebase below the start).
    RewroteHistory {
        /// The branch's current head.
        head: Oid,
    },
}

impl Git {
    /// Lists what is wrong with the worktree at `dir` for a workstream on `branch` that
    /// started at `start`; an empty list means intact.
    ///
    /// Fails with `GitError::NotAWorktree` when no worktree record points at `dir`.
    pub fn check_worktree_integrity(
        &self,
        dir: &Path,
        branch: &str,
        start: Oid,
    ) -> Result<Vec<IntegrityProblem>, GitError> {
        let full = branch_ref(branch)?;
        let repo = self.open()?;
        let record = self.require_record(&repo, dir)?;
        let mut problems = Vec::new();

        if !record.exists {
            problems.push(IntegrityProblem::FolderMissing);
        } else if let Some(detail) = gitfile_problem(&record.path, &record.admin_dir)? {
            problems.push(IntegrityProblem::GitFileTouched { detail });
        }

        match self.record_head(&record)? {
            Head::Branch(now) if now != full => problems.push(IntegrityProblem::SwitchedBranch {
                now: short_branch(&now).to_owned(),
            }),
            Head::Branch(_) => {}
            Head::Detached(at) => problems.push(IntegrityProblem::Detached { at }),
        }

        match read_ref(&repo, &full)? {
            None => problems.push(IntegrityProblem::BranchMissing),
            Some(head) => {
                if !self.is_ancestor(start, head)? {
                    problems.push(IntegrityProblem::RewroteHistory { head });
                }
            }
        }
        Ok(problems)
    }
}

/// Describes what is wrong with `<dir>/.git`, or `None` when it is the gitlink file
/// pointing at `admin_dir`.
fn gitfile_problem(dir: &Path, admin_dir: &Path) -> Result<Option<String>, GitError> {
    let gitfile = dir.join(".git");
    let meta = match fs::symlink_metadata(&gitfile) {
        Ok(meta) => meta,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Ok(Some("`.git` is missing".to_owned()));
        }
        Err(error) => return Err(io_error("inspect", &gitfile, error)),
    };
    if meta.is_dir() {
        return Ok(Some(
            "`.git` is a folder (a repository of its own was created there)".to_owned(),
        ));
    }
    if !meta.is_file() {
        return Ok(Some("`.git` is not a regular file".to_owned()));
    }
    let content = fs::read(&gitfile).map_err(|error| io_error("read", &gitfile, error))?;
    let content = String::from_utf8_lossy(&content);
    let Some(target) = content.trim_end().strip_prefix("gitdir: ") else {
        return Ok(Some("`.git` does not start with `gitdir: `".to_owned()));
    };
    let target = Path::new(target);
    let target = if target.is_absolute() {
        target.to_path_buf()
    } else {
        dir.join(target)
    };
    if normalize(&target) == normalize(admin_dir) {
        Ok(None)
    } else {
        Ok(Some(format!(
            "`.git` points at `{}` instead of `{}`",
            target.display(),
            admin_dir.display()
        )))
    }
}
