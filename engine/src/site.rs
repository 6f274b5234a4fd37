//! Where flow works: the repository, its `.flow/` folder with the runs, and the folders of a
//! workflow's worktrees. Every path flow uses is derived here, from one [`Site`] the command
//! line finds once.

use std::path::{Path, PathBuf};

use flow_dsl::Workflow;

use crate::git::{Git, GitError};

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
        if let Some(git) = &git {
            // A run killed while an agent ran, then its `.flow/` deleted by hand, would leave
            // every git command complaining of a missing object folder.
            let _ = git.forget_lost_lent_objects(&root);
        }
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

    /// The id of the newest run (`.flow/latest`), if any.
    pub fn latest_run(&self) -> Option<String> {
        std::fs::read_to_string(self.flow_dir.join("latest"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Every run id, oldest first.
    pub fn runs(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.flow_dir.join("runs"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
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

/// The folder of one run, `.flow/runs/<id>/`, and the files in it: `state.json`,
/// `events.jsonl`, `logs/<workstream>.log`, `scratch/<workstream>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub flow_dir: PathBuf,
    pub dir: PathBuf,
    pub id: String,
}

impl RunDir {
    /// The run folder of `id` under a repository's `.flow/`.
    pub fn new(flow_dir: &Path, id: &str) -> RunDir {
        RunDir {
            flow_dir: flow_dir.to_path_buf(),
            dir: flow_dir.join("runs").join(id),
            id: id.to_string(),
        }
    }

    /// `state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `events.jsonl`.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The log of one workstream.
    pub fn log_path(&self, workstream: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{workstream}.log"))
    }

    /// The run's decision log: every conflict resolution, by an agent or a person.
    pub fn decision_log_path(&self) -> PathBuf {
        self.dir.join(crate::decision_log::FILE_NAME)
    }

    /// The log of one workstream's `setup` (`flow logs WS --setup`).
    pub fn setup_log_path(&self, workstream: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{workstream}.setup.log"))
    }

    /// The mark a workstream's setup passed: it holds the setup's key, so a resume runs it
    /// again only when it changed.
    pub fn setup_mark_path(&self, workstream: &str) -> PathBuf {
        self.dir.join("setup").join(format!("{workstream}.done"))
    }

    /// The scratch folder of a workstream with `isolation "none"`.
    pub fn scratch_path(&self, workstream: &str) -> PathBuf {
        self.dir.join("scratch").join(workstream)
    }

    /// The temporary folder of a workstream's confined processes (their `TMPDIR`).
    pub fn tmp_path(&self, workstream: &str) -> PathBuf {
        self.dir.join("tmp").join(workstream)
    }

    /// Where the snapshots of the git directory of the agents at work are kept until their
    /// comparison is done (`flow resume` compares with what a crash left there).
    pub fn guard_dir(&self) -> PathBuf {
        self.dir.join("guard")
    }

    /// The kept snapshot of one agent: `guard/<workstream>-<attempt>-<purpose>.json`.
    pub fn guard_path(&self, workstream: &str, attempt: u32, purpose: &str) -> PathBuf {
        self.guard_dir().join(format!("{workstream}-{attempt}-{purpose}.json"))
    }
}
