//! Where a workflow's branches and worktrees are in a repository: the base branch and
//! commit, the integration branch, the worktrees folder.

use std::path::PathBuf;

use flow_dsl::Workflow;

use crate::git::{Git, GitError, Oid};
use crate::run::job::worktrees_dir;
use crate::run::runner::{RunError, Site};

/// The places of one workflow in one repository.
#[derive(Debug, Clone)]
pub struct Layout {
    pub git: Git,
    pub root: PathBuf,
    pub base: String,
    pub base_commit: Oid,
    pub into: String,
    pub worktrees_dir: PathBuf,
}

impl Layout {
    /// Resolves the base branch (the workflow's, else the current one) in the site's repository.
    pub fn new(workflow: &Workflow, site: &Site) -> Result<Layout, RunError> {
        let git = site.git.clone().ok_or_else(|| GitError::NotARepository {
            path: site.root.clone(),
        })?;
        let base = match &workflow.base {
            Some(b) => b.clone(),
            None => git.current_branch()?.ok_or(RunError::NoBase)?,
        };
        let base_commit = git.resolve(&base)?;
        Ok(Layout {
            root: site.root.clone(),
            worktrees_dir: worktrees_dir(workflow, &site.root),
            base,
            base_commit,
            into: workflow.into.clone(),
            git,
        })
    }

    /// The integration branch's head, creating the branch from base when it does not exist.
    pub fn ensure_into(&self) -> Result<Oid, GitError> {
        match self.git.branch_head(&self.into)? {
            Some(head) => Ok(head),
            None => {
                self.git.set_branch(
                    &self.into,
                    self.base_commit,
                    None,
                    "flow: create the integration branch",
                )?;
                Ok(self.base_commit)
            }
        }
    }

    /// The worktree folder of a workstream.
    pub fn worktree_of(&self, name: &str) -> PathBuf {
        self.worktrees_dir.join(name)
    }

    /// Tells whether a branch's head is already part of the integration branch.
    pub fn is_merged(&self, head: Oid, into_head: Oid) -> Result<bool, GitError> {
        Ok(head == into_head || self.git.is_ancestor(head, into_head)?)
    }
}
