//! The `Git` handle: finding a repository and reading revisions.

use std::path::{Path, PathBuf};

use git2::{ErrorClass, ErrorCode, Repository, Signature};

use super::error::GitContext;
use super::paths::normalize;
use super::{GitError, Oid};

/// Name and e-mail of every commit flow writes.
pub(crate) const FLOW_NAME: &str = "flow";
/// E-mail of every commit flow writes.
pub(crate) const FLOW_EMAIL: &str = "flow@localhost";

/// Points at one git repository: its working tree root and its common git directory.
///
/// It holds only paths, so it is cheap to clone and can be shared between threads;
/// every operation opens its own `git2::Repository` (which is `Send` but not `Sync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Git {
    root: PathBuf,
    common_dir: PathBuf,
}

/// What a worktree's HEAD points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Head {
    /// HEAD names a branch by its full ref (which may not exist yet).
    Branch(String),
    /// HEAD holds a commit id.
    Detached(Oid),
}

impl Git {
    /// Finds the repository that contains `path`, searching upwards from it.
    ///
    /// Returns `GitError::NotARepository` outside any repository and
    /// `GitError::BareRepository` for a repository without a working tree.
    pub fn discover(path: &Path) -> Result<Git, GitError> {
        let repo = match Repository::discover(path) {
            Ok(repo) => repo,
            Err(error) if error.code() == ErrorCode::NotFound => {
                return Err(GitError::NotARepository {
                    path: path.to_path_buf(),
                });
            }
            Err(error) => {
                return Err(GitError::Git {
                    action: format!("open the repository containing `{}`", path.display()),
                    error,
                });
            }
        };
        let Some(workdir) = repo.workdir() else {
            return Err(GitError::BareRepository {
                path: repo.path().to_path_buf(),
            });
        };
        Ok(Git {
            root: normalize(workdir),
            common_dir: normalize(repo.commondir()),
        })
    }

    /// Returns the root folder of the working tree the repository was discovered from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the git directory shared by all worktrees (usually `<root>/.git`).
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// Returns the branch checked out at the root, or `None` when HEAD is detached.
    ///
    /// A branch without commits yet (a fresh `git init`) is still returned by name.
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let repo = self.open()?;
        match read_head(&repo, &self.root)? {
            Head::Branch(full) => Ok(Some(short_branch(&full).to_owned())),
            Head::Detached(_) => Ok(None),
        }
    }

    /// Resolves a branch name, full ref, tag or commit id to a commit id.
    ///
    /// Anything git cannot resolve to a commit gives `GitError::UnknownRevision`.
    pub fn resolve(&self, rev: &str) -> Result<Oid, GitError> {
        let repo = self.open()?;
        let unknown = |error: git2::Error| match error.code() {
            ErrorCode::NotFound
            | ErrorCode::InvalidSpec
            | ErrorCode::Ambiguous
            | ErrorCode::UnbornBranch
            | ErrorCode::Peel
            | ErrorCode::Invalid => GitError::UnknownRevision(rev.to_owned()),
            _ if error.class() == ErrorClass::Object => GitError::UnknownRevision(rev.to_owned()),
            _ => GitError::Git {
                action: format!("resolve `{rev}`"),
                error,
            },
        };
        let object = repo.revparse_single(rev).map_err(unknown)?;
        let commit = object.peel_to_commit().map_err(unknown)?;
        Ok(commit.id().into())
    }

    /// Tells whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool, GitError> {
        if ancestor == descendant {
            return Ok(true);
        }
        let repo = self.open()?;
        repo.graph_descendant_of(descendant.raw(), ancestor.raw())
            .context(|| format!("check whether {ancestor} is an ancestor of {descendant}"))
    }

    /// Opens a fresh handle on the repository at the root.
    pub(crate) fn open(&self) -> Result<Repository, GitError> {
        Repository::open(&self.root).context(|| format!("open the repository at `{}`", self.root.display()))
    }

    /// Opens a fresh handle on the main repository (the one owning the common dir).
    pub(crate) fn open_main(&self) -> Result<Repository, GitError> {
        Repository::open(&self.common_dir).context(|| format!("open the repository at `{}`", self.common_dir.display()))
    }
}

/// Reads what HEAD of `repo` points at, without requiring the branch to exist.
pub(crate) fn read_head(repo: &Repository, path: &Path) -> Result<Head, GitError> {
    let head = repo
        .find_reference("HEAD")
        .context(|| format!("read HEAD of `{}`", path.display()))?;
    if let Some(target) = head.symbolic_target_bytes() {
        return Ok(Head::Branch(String::from_utf8_lossy(target).into_owned()));
    }
    match head.target() {
        Some(oid) => Ok(Head::Detached(oid.into())),
        None => Err(GitError::Git {
            action: format!("read HEAD of `{}`", path.display()),
            error: git2::Error::from_str("HEAD is neither symbolic nor direct"),
        }),
    }
}

/// Returns a branch's name without `refs/heads/`.
pub(crate) fn short_branch(full: &str) -> &str {
    full.strip_prefix("refs/heads/").unwrap_or(full)
}

/// Returns `refs/heads/<branch>` for a short or full branch name, checking its validity.
pub(crate) fn branch_ref(branch: &str) -> Result<String, GitError> {
    let short = short_branch(branch);
    match git2::Branch::name_is_valid(short) {
        Ok(true) => Ok(format!("refs/heads/{short}")),
        _ => Err(GitError::InvalidBranchName(branch.to_owned())),
    }
}

/// Returns the signature flow writes commits with: `flow <flow@localhost>`, now.
pub(crate) fn flow_signature() -> Result<Signature<'static>, GitError> {
    Signature::now(FLOW_NAME, FLOW_EMAIL).context(|| "build flow's commit signature".to_owned())
}
