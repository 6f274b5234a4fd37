//! The verbs for people who start agents themselves, in worktrees flow prepares for them
//! (the "Option A" way): [`prepare`] makes worktrees and context without launching anything,
//! [`merge`] integrates whatever branches are ready, [`conflicts`] predicts and detects
//! overlaps, [`sync`] brings the integration branch into the workstreams' branches (a
//! conflict refused, or resolved by the resolver agent: [`resolver`]), [`resolve`] sets a
//! conflict up for a person, [`clean`] removes what a workflow left behind.
//!
//! They share a [`Layout`] (the workflow's places in the repository, its base resolved) and
//! the rule for where a branch's own work starts (`start_of`).

pub mod clean;
pub mod conflicts;
pub mod done;
pub(crate) mod guard;
pub mod merge;
pub mod open;
pub mod prepare;
pub mod record;
pub mod resolve;
pub mod resolver;
pub mod sync;
pub mod sync_outcome;

use std::path::PathBuf;

use flow_dsl::{Workflow, Workstream};

use crate::git::{Git, GitError, Oid};
use crate::run::error::RunError;
use crate::site::Site;

/// The places of one workflow in one repository.
#[derive(Debug, Clone)]
pub struct Layout {
    pub git: Git,
    pub site: Site,
    pub base: String,
    pub base_commit: Oid,
    pub into: String,
    pub worktrees_dir: PathBuf,
}

impl Layout {
    /// Resolves the base branch (the workflow's, else the current one) in the site's repository.
    pub fn new(workflow: &Workflow, site: &Site) -> Result<Layout, RunError> {
        let git = site.require_git()?.clone();
        let base = match &workflow.base {
            Some(b) => b.clone(),
            None => git.current_branch()?.ok_or(RunError::NoBase)?,
        };
        let base_commit = git.resolve(&base)?;
        Ok(Layout {
            site: site.clone(),
            worktrees_dir: site.worktrees_dir(workflow),
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

/// The commit a workstream's branch started from, so that only its own commits count as its
/// work: where the branch was created (the oldest entry of its reflog) when that is still in
/// its history; else where it leaves base or, for a workstream that started from the
/// integration branch and is not merged yet, where it leaves that branch.
///
/// A workstream with dependencies starts from the integration branch, whose history holds
/// its dependencies' work: measured from base, a dependent that did nothing would look
/// already merged and would seem to change every path its dependencies changed.
pub(crate) fn start_of(
    workflow: &Workflow,
    layout: &Layout,
    ws: &Workstream,
    head: Oid,
    into_head: Option<Oid>,
) -> Result<Oid, GitError> {
    if let Some(created) = created_at(layout, &workflow.branch_of(ws))
        && layout.git.is_ancestor(created, head)?
    {
        return Ok(created);
    }
    let from = match into_head {
        Some(into) if !ws.dependencies.is_empty() && !layout.is_merged(head, into)? => into,
        _ => layout.base_commit,
    };
    Ok(layout.git.merge_base(head, from)?.unwrap_or(layout.base_commit))
}

/// Where a branch was created, from its reflog; `None` when the reflog does not go back to
/// its creation (reflogs disabled or expired).
fn created_at(layout: &Layout, branch: &str) -> Option<Oid> {
    let name = if branch.starts_with("refs/") {
        branch.to_string()
    } else {
        format!("refs/heads/{branch}")
    };
    let repo = layout.git.open().ok()?;
    let reflog = repo.reflog(&name).ok()?;
    let oldest = reflog.get(reflog.len().checked_sub(1)?)?;
    oldest.id_old().is_zero().then(|| oldest.id_new().into())
}
