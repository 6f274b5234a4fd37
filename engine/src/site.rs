//! Where flow works: the repository, its `.flow/` folder with the runs, and the folders of a
//! workflow's worktrees. Every path flow uses is derived here, from one [`Site`] the command
//! line finds once.

use std::path::{Path, PathBuf};

use flow_dsl::Workflow;

use crate::git::{Git, GitError};
use crate::run::store::{self, RunDir};

/// A repository (or, for workflows that need none, a plain folder) and flow's places in it.
#[derive(Debug, Clone)]
pub struct Site {
    git: Option<Git>,
    /// Where the search started, for the error when a repository is needed.
    searched_from: PathBuf,
    root: PathBuf,
    flow_dir: PathBuf,
}

impl Site {
    /// Finds the repository containing `dir`; outside one, the site is `dir` itself (enough
    /// for workflows whose workstreams all have `isolation "none"`).
    pub fn find(dir: &Path) -> Site {
        let git = Git::discover(dir).ok();
        let root = match &git {
            Some(g) => g.root().to_path_buf(),
            None => std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        };
        Site {
            flow_dir: root.join(".flow"),
            searched_from: dir.to_path_buf(),
            root,
            git,
        }
    }

    /// The repository, if there is one.
    pub fn git(&self) -> Option<&Git> {
        self.git.as_ref()
    }

    /// The repository, or the reason there is none.
    pub fn require_git(&self) -> Result<&Git, GitError> {
        match &self.git {
            Some(git) => Ok(git),
            None => Err(Git::discover(&self.searched_from)
                .err()
                .unwrap_or(GitError::NotARepository {
                    path: self.searched_from.clone(),
                })),
        }
    }

    /// The repository's root folder (or the folder itself outside a repository).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.flow/` at the root: runs, locks, the latest run's id.
    pub fn flow_dir(&self) -> &Path {
        &self.flow_dir
    }

    /// The folder of run `id`.
    pub fn run_dir(&self, id: &str) -> RunDir {
        RunDir::new(&self.flow_dir, id)
    }

    /// The id of the newest run, if any.
    pub fn latest_run(&self) -> Option<String> {
        store::latest_run(&self.flow_dir)
    }

    /// Every run id, oldest first.
    pub fn runs(&self) -> Vec<String> {
        store::list_runs(&self.flow_dir)
    }

    /// The folder holding a workflow's worktrees: `worktrees` from the workflow, relative to
    /// the root, else `<repo>-worktrees/` next to the repository; then the workflow's name.
    pub fn worktrees_dir(&self, workflow: &Workflow) -> PathBuf {
        let base = match &workflow.worktrees {
            Some(dir) => self.root.join(dir),
            None => {
                let name = self
                    .root
                    .file_name()
                    .map_or("repository".into(), |n| n.to_string_lossy().into_owned());
                self.root
                    .parent()
                    .unwrap_or(&self.root)
                    .join(format!("{name}-worktrees"))
            }
        };
        base.join(&workflow.name)
    }

    /// The worktree folder of a workstream.
    pub fn worktree_of(&self, workflow: &Workflow, workstream: &str) -> PathBuf {
        self.worktrees_dir(workflow).join(workstream)
    }

    /// The integration worktree, where `verify` runs on merged trees.
    pub fn integration_dir(&self, workflow: &Workflow) -> PathBuf {
        self.worktrees_dir(workflow).join("_integration")
    }
}
