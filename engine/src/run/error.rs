//! Why a run could not start or continue.

use std::path::PathBuf;

use miette::Diagnostic;

use crate::git::GitError;
use crate::run::lock::LockError;

/// Why a run could not start or continue.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RunError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] LockError),
    #[error("HEAD is detached and the workflow names no `base`")]
    #[diagnostic(
        code("flow::run::no_base"),
        help("check out a branch, or add `base \"main\"` to the `workflow` block")
    )]
    NoBase,
    #[error("{what} already exist from an earlier run: {names}")]
    #[diagnostic(
        code("flow::run::leftovers"),
        help("continue that run with `flow resume`, or remove them with `flow clean {file}` to start over")
    )]
    Leftovers {
        what: &'static str,
        names: String,
        file: String,
    },
    #[error("cannot {action} {path}: {error}")]
    #[diagnostic(code("flow::run::io"))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("no run to resume in {0}")]
    #[diagnostic(code("flow::run::no_run"), help("start one with `flow run`"))]
    NoRun(PathBuf),
    #[error(
        "the earlier merge of `{workstream}` cannot be taken out of {into} cleanly: later merges changed the same lines"
    )]
    #[diagnostic(
        code("flow::run::undo_conflict"),
        help("start over with `flow clean --force` and `flow run`, or undo it by hand in {into} and resume")
    )]
    UndoConflict { workstream: String, into: String },
    #[error("the resume waits for you: `{workstream}`: {why}")]
    #[diagnostic(
        code("flow::run::waits_for_person"),
        help("nothing was decided; `flow resume --dry-run` shows what it will do once you are done")
    )]
    WaitsForPerson { workstream: String, why: String },
    #[error("unknown workstream `{0}` in --only")]
    #[diagnostic(code("flow::run::unknown_workstream"))]
    UnknownWorkstream(String),
}

impl RunError {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunError {
        let path = path.into();
        move |error| RunError::Io { action, path, error }
    }
}
