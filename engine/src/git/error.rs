//! Errors of the git layer.

use std::path::PathBuf;

use super::Oid;

/// Describes why a git operation of flow failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GitError {
    /// The path is not inside a git repository.
    #[error("`{}` is not inside a git repository", path.display())]
    #[diagnostic(
        code("flow::git::not_a_repository"),
        help("run flow inside a git repository, or create one with `git init`")
    )]
    NotARepository {
        /// The path the search started from.
        path: PathBuf,
    },

    /// The repository has no working tree.
    #[error("`{}` is a bare repository", path.display())]
    #[diagnostic(
        code("flow::git::bare_repository"),
        help("flow needs a working tree: run it inside a normal clone or a worktree")
    )]
    BareRepository {
        /// The repository's git directory.
        path: PathBuf,
    },

    /// A revision does not name a commit.
    #[error("unknown revision `{0}`")]
    #[diagnostic(
        code("flow::git::unknown_revision"),
        help("name a branch, a full ref such as `refs/heads/main`, or a commit id")
    )]
    UnknownRevision(String),

    /// A branch that must exist does not.
    #[error("branch `{0}` does not exist")]
    #[diagnostic(code("flow::git::unknown_branch"))]
    UnknownBranch(String),

    /// A string is not a valid branch name.
    #[error("`{0}` is not a valid branch name")]
    #[diagnostic(
        code("flow::git::invalid_branch_name"),
        help("see `git check-ref-format --branch` for the rules")
    )]
    InvalidBranchName(String),

    /// The branch is checked out in a working tree, so flow must not move or take it.
    #[error("branch `{branch}` is checked out in `{}`", path.display())]
    #[diagnostic(
        code("flow::git::branch_checked_out"),
        help(
            "switch that checkout to another branch, or remove that worktree \
             (`flow clean` removes the worktrees of flow's runs)"
        )
    )]
    BranchCheckedOut {
        /// The short branch name.
        branch: String,
        /// The working tree that has it checked out.
        path: PathBuf,
    },

    /// Something already occupies the folder where a worktree should go.
    #[error("cannot use `{}` as a worktree: it is {found}", path.display())]
    #[diagnostic(
        code("flow::git::path_in_the_way"),
        help("move or delete it, or run `flow clean` if an earlier run left it behind")
    )]
    PathInTheWay {
        /// The folder that was asked for.
        path: PathBuf,
        /// What was found there, as a phrase ("a non-empty folder").
        found: String,
    },

    /// A locked worktree record whose folder is gone blocks a name, path or branch.
    #[error(
        "worktree record `{name}` for `{}` is locked but its folder is gone",
        path.display()
    )]
    #[diagnostic(
        code("flow::git::stale_worktree_locked"),
        help(
            "if that folder is not on removable media, run `git worktree unlock {name}` \
             and `git worktree prune`, or `flow clean`"
        )
    )]
    StaleWorktreeLocked {
        /// The record's name under `.git/worktrees/`.
        name: String,
        /// The folder the record points at.
        path: PathBuf,
    },

    /// The path is not a linked worktree of this repository.
    #[error("`{}` is not a worktree of this repository", path.display())]
    #[diagnostic(
        code("flow::git::not_a_worktree"),
        help("`git worktree list` shows the worktrees of this repository")
    )]
    NotAWorktree {
        /// The folder that was asked for.
        path: PathBuf,
    },

    /// The folder is the user's own checkout, which flow never writes to.
    #[error("`{}` is your own checkout; flow only changes its own worktrees", path.display())]
    #[diagnostic(
        code("flow::git::user_checkout"),
        help("pass the folder of one of flow's worktrees instead")
    )]
    UserCheckout {
        /// The folder that was asked for.
        path: PathBuf,
    },

    /// The worktree is locked and the operation was not forced.
    #[error("worktree `{}` is locked{}", path.display(), reason_suffix(reason))]
    #[diagnostic(
        code("flow::git::worktree_locked"),
        help("a running flow may be using it; if not, unlock it with `git worktree unlock` or force the removal")
    )]
    WorktreeLocked {
        /// The worktree folder.
        path: PathBuf,
        /// The reason stored with the lock, if any.
        reason: Option<String>,
    },

    /// The worktree has uncommitted changes.
    #[error(
        "`{}` has uncommitted changes in {} path(s): {}",
        path.display(),
        paths.len(),
        list_paths(paths)
    )]
    #[diagnostic(
        code("flow::git::dirty"),
        help("commit or discard them first, or force the removal to throw them away")
    )]
    Dirty {
        /// The worktree folder.
        path: PathBuf,
        /// The uncommitted paths, relative to the worktree.
        paths: Vec<String>,
    },

    /// The worktree contains git repositories of its own, which cannot be committed.
    #[error(
        "`{}` contains {} git repositor{} of its own: {}",
        path.display(),
        paths.len(),
        if paths.len() == 1 { "y" } else { "ies" },
        list_paths(paths)
    )]
    #[diagnostic(
        code("flow::git::nested_repository"),
        help(
            "delete the `.git` folder inside to commit the files, or list the folder in \
             `.gitignore` to leave it out"
        )
    )]
    NestedRepository {
        /// The worktree folder.
        path: PathBuf,
        /// The nested repositories, relative to the worktree.
        paths: Vec<String>,
    },

    /// The worktree's HEAD is detached where a branch is needed.
    #[error("HEAD of `{}` is detached; expected a branch to be checked out", path.display())]
    #[diagnostic(
        code("flow::git::detached_head"),
        help("check out the workstream's branch in that worktree again")
    )]
    DetachedHead {
        /// The worktree folder.
        path: PathBuf,
    },

    /// The worktree is in the middle of a merge, rebase or similar operation.
    #[error("`{}` is in the middle of a {operation}", path.display())]
    #[diagnostic(
        code("flow::git::operation_in_progress"),
        help("finish or abort it in that worktree (for example `git merge --abort`)")
    )]
    OperationInProgress {
        /// The worktree folder.
        path: PathBuf,
        /// The operation, as git names it ("merge", "rebase", ...).
        operation: String,
    },

    /// A compare-and-swap on a branch failed because the branch moved.
    #[error(
        "branch `{branch}` moved: expected {}, found {}",
        describe_oid(expected),
        describe_oid(actual)
    )]
    #[diagnostic(
        code("flow::git::ref_moved"),
        help("something else changed the branch meanwhile; read it again and retry")
    )]
    RefMoved {
        /// The short branch name.
        branch: String,
        /// The value the caller expected (`None`: absent).
        expected: Option<Oid>,
        /// The value found (`None`: absent).
        actual: Option<Oid>,
    },

    /// A filesystem operation failed.
    #[error("could not {action} `{}`: {error}", path.display())]
    #[diagnostic(code("flow::git::io"))]
    Io {
        /// What was being done.
        action: String,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },

    /// libgit2 reported an error.
    #[error("could not {action}: {}", error.message())]
    #[diagnostic(code(flow::git::libgit2))]
    Git {
        /// What was being done.
        action: String,
        /// The underlying libgit2 error.
        error: git2::Error,
    },
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason {
        Some(reason) if !reason.is_empty() => format!(" ({reason})"),
        _ => String::new(),
    }
}

fn list_paths(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = paths
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(", and {} more", paths.len() - SHOWN));
    }
    text
}

fn describe_oid(oid: &Option<Oid>) -> String {
    match oid {
        Some(oid) => oid.to_string(),
        None => "no branch".to_owned(),
    }
}

/// Adds what was being done to a `git2::Error`.
pub(crate) trait GitContext<T> {
    /// Wraps the error into `GitError::Git` with the action built by `action`.
    fn context(self, action: impl FnOnce() -> String) -> Result<T, GitError>;
}

impl<T> GitContext<T> for Result<T, git2::Error> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, GitError> {
        self.map_err(|error| GitError::Git {
            action: action(),
            error,
        })
    }
}

/// Builds a `GitError::Io` from an I/O error.
pub(crate) fn io_error(action: &str, path: &std::path::Path, error: std::io::Error) -> GitError {
    GitError::Io {
        action: action.to_owned(),
        path: path.to_path_buf(),
        error,
    }
}
