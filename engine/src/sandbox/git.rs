//! The places an agent must write to commit on its own branch in a linked git worktree, and
//! nothing else of the shared git directory.
//!
//! Found with git 2.47 under the sandbox (`strace -f -e trace=%file` of `git add` and
//! `git commit` in a linked worktree), and kept as small as git allows:
//!
//! - The worktree's private git directory, `<common>/worktrees/<name>/`, everything: git
//!   writes `index.lock`, `HEAD.lock`, `COMMIT_EDITMSG`, `AUTO_MERGE`, `logs/HEAD` and renames
//!   locks over `index` and `HEAD` there. So an agent controls every file of it, `commondir`,
//!   `gitdir` and `config.worktree` included: whatever flow later runs in that worktree must
//!   not trust them.
//! - Not the object store. An agent that could write the fan-out folders of the shared
//!   `objects/` could delete or rewrite any loose object there, the user's newest commits and
//!   other workstreams' included (`git prune --expire=now`, or `rm`: Landlock cannot tell
//!   making an object from removing one, and `chmod` is not something it controls). Instead
//!   the agent's git writes into a folder of its own ([`GitObjects`]: `GIT_OBJECT_DIRECTORY`),
//!   reading the shared store as an alternate (`GIT_ALTERNATE_OBJECT_DIRECTORIES`), which
//!   stays read-only; flow takes the new objects into the shared store, each read back and
//!   checked against its name, once the agent's processes are gone
//!   ([`crate::git::Git::adopt_objects`]).
//! - The branch's ref: git creates `refs/heads/<branch>.lock` beside the ref and renames it
//!   over the ref, so the folder holding the ref must allow making, writing and removing
//!   files. That exposes every sibling in that folder: with branches named `flow/<name>`, an
//!   agent can move, create or delete any other `flow/*` branch. A branch alone in its
//!   folder (`flow/<name>/work`) exposes nothing but refs it would create under it.
//! - The branch's reflog, `logs/refs/heads/<branch>`: appended to, so the file alone is
//!   writable. Git creates it when missing, which the sandbox would refuse (and the commit
//!   fails), so it is created here, empty, when missing.
//!
//! Everything else stays read-only: `config`, `hooks/`, `info/`, `packed-refs`, the object
//! store, other refs and reflogs, other worktrees' private folders. Two refusals are expected and harmless:
//! every `git commit` prints `error: Unable to create '<common>/packed-refs.lock'` (it
//! deletes the `AUTO_MERGE` pseudo-ref, and git locks `packed-refs` for every deletion) and
//! exits 0; and `git maintenance run --auto`, which `git commit` starts, cannot repack.
//! A repository whose refs are in a reftable (`extensions.refStorage=reftable`) is refused.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::Writable;

/// Describes why the git writable set cannot be computed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GitSetError {
    /// The branch name has a component that would lead out of the refs folder.
    #[error("`{0}` is not a branch name the sandbox can allow")]
    #[diagnostic(code("flow::sandbox::branch"))]
    Branch(String),

    /// The repository keeps its refs in a reftable.
    #[error("`{}` keeps its refs in a reftable, which the sandbox does not handle", .0.display())]
    #[diagnostic(
        code("flow::sandbox::reftable"),
        help("agents of a repository with reftable refs can only run unconfined")
    )]
    Reftable(PathBuf),

    /// A folder or the reflog could not be made.
    #[error("cannot make `{}`: {source}", path.display())]
    #[diagnostic(code("flow::sandbox::git_io"))]
    Io {
        /// What could not be made.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Returns the places an agent must write to commit on `branch` from a linked worktree whose
/// private git folder is `private_dir`, making the branch's reflog when it is missing. Its
/// objects go to a folder of its own ([`GitObjects`]), writable besides.
///
/// `common_dir` is the repository's shared git folder (`git rev-parse --git-common-dir`),
/// `private_dir` the worktree's (`git rev-parse --git-dir` in it), `branch` the short name
/// (`flow/name`). The worktree itself is not in the list: the caller adds it. The module doc
/// says what each place is for and what it exposes.
///
/// # Errors
///
/// Fails when `branch` has an empty, `.` or `..` component, when the repository's refs are in
/// a reftable, and when a folder or the reflog cannot be made.
pub fn git_writable(common_dir: &Path, private_dir: &Path, branch: &str) -> Result<Vec<Writable>, GitSetError> {
    if branch
        .split('/')
        .any(|component| component.is_empty() || component == "." || component == "..")
    {
        return Err(GitSetError::Branch(branch.to_owned()));
    }
    if common_dir.join("reftable").exists() {
        return Err(GitSetError::Reftable(common_dir.to_path_buf()));
    }
    let reference = common_dir.join("refs/heads").join(branch);
    let reflog = common_dir.join("logs/refs/heads").join(branch);
    let ref_folder = reference.parent().expect("a path joined with a branch has a parent");
    make_folder(ref_folder)?;
    make_folder(reflog.parent().expect("a path joined with a branch has a parent"))?;
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(&reflog)
        .map_err(|source| GitSetError::Io {
            path: reflog.clone(),
            source,
        })?;
    let mut places = vec![Writable::tree(private_dir)];
    places.push(Writable::entries(ref_folder));
    places.push(Writable::file(reflog));
    Ok(places)
}

/// Makes `folder` and its parents when missing.
fn make_folder(folder: &Path) -> Result<(), GitSetError> {
    fs::create_dir_all(folder).map_err(|source| GitSetError::Io {
        path: folder.to_path_buf(),
        source,
    })
}

/// The object folder of an agent's own, and the shared store it reads as an alternate: its
/// git writes new objects only there (the module doc says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitObjects {
    /// The agent's own folder (`GIT_OBJECT_DIRECTORY`), writable in its policy.
    pub own: PathBuf,
    /// The repository's shared `objects/` (`GIT_ALTERNATE_OBJECT_DIRECTORIES`), read-only.
    pub shared: PathBuf,
}

impl GitObjects {
    /// Makes the agent's own folder `own` (empty) for the repository whose shared git folder is
    /// `common_dir`, and returns it with the place the policy must allow.
    ///
    /// # Errors
    ///
    /// Fails when the folder cannot be made.
    pub fn make(common_dir: &Path, own: &Path) -> Result<(GitObjects, Writable), GitSetError> {
        make_folder(own)?;
        let objects = GitObjects {
            own: own.to_path_buf(),
            shared: common_dir.join("objects"),
        };
        Ok((objects, Writable::tree(own)))
    }

    /// Returns the variables that point git at the folders.
    pub fn env(&self) -> [(&'static str, &Path); 2] {
        [
            ("GIT_OBJECT_DIRECTORY", &self.own),
            ("GIT_ALTERNATE_OBJECT_DIRECTORIES", &self.shared),
        ]
    }
}
