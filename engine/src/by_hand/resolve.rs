//! `flow resolve`: a conflict with the integration branch handed to a person, in the
//! workstream's own worktree.
//!
//! The integration branch is merged into the workstream's branch the way `git merge` leaves a
//! conflicting merge (markers in the files, the conflicts in the index, `MERGE_HEAD`), so the
//! person resolves it with their usual tools and `git commit`. The workstream's worktree is
//! the place, rather than the integration worktree: the resolution then lives on the
//! workstream's branch, which is what a resume or `flow merge` merges (a fast-forward, with
//! `verify`), and the integration branch only ever moves through flow's checked merges; the
//! integration worktree is `verify`'s, checked out afresh for every merge.

use std::path::PathBuf;

use flow_dsl::Workflow;
use serde::Serialize;

use super::Layout;
use super::sync::{Ready, SyncResult, check_worktree};
use crate::git::{WorktreeMerge, files_with_markers};
use crate::run::error::RunError;
use crate::run::lock::RunLock;
use crate::run::state::Phase;

/// What `flow resolve` did.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub workstream: String,
    pub result: ResolveResult,
    pub detail: String,
    pub worktree: PathBuf,
    pub branch: String,
    /// The files that conflict (those still holding markers, when the merge was set up before).
    pub files: Vec<String>,
    /// What merges the branch once it is resolved: `flow resume` after a run, else `flow merge`.
    pub next: String,
}

/// The outcome of `flow resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolveResult {
    /// The merge is left in the worktree with conflict markers, for the person.
    Conflicted,
    /// `flow resolve` had set it up already: the merge is still in progress there.
    InProgress,
    /// It merged cleanly after all: committed, nothing to resolve.
    Merged,
    /// Its branch already holds the integration branch.
    UpToDate,
    /// Nothing was done, and why.
    Refused,
}

impl ResolveResult {
    /// Returns the kebab-case name written to `flow resolve`'s JSON, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveResult::Conflicted => "conflicted",
            ResolveResult::InProgress => "in-progress",
            ResolveResult::Merged => "merged",
            ResolveResult::UpToDate => "up-to-date",
            ResolveResult::Refused => "refused",
        }
    }
}

/// Merges the integration branch into workstream `index`'s branch in its worktree, leaving a
/// conflict there for a person; holds the workflow's run lock while it does.
pub fn resolve(workflow: &Workflow, layout: &Layout, index: usize) -> Result<Resolution, RunError> {
    let _lock = RunLock::acquire(layout.site.flow_dir(), &workflow.name)?;
    let ws = &workflow.workstreams[index];
    let branch = workflow.branch_of(ws);
    let next = next_step(workflow, layout, index);
    let out = |result: ResolveResult, detail: String, files: Vec<String>| Resolution {
        workstream: ws.name.clone(),
        result,
        detail,
        worktree: layout.worktree_of(&ws.name),
        branch: branch.clone(),
        files,
        next: next.clone(),
    };
    let into = &layout.into;
    let Some(onto) = layout.git.branch_head(into)? else {
        return Ok(out(
            ResolveResult::UpToDate,
            format!("nothing to resolve: {into} does not exist yet"),
            vec![],
        ));
    };
    let worktrees = layout.git.worktrees()?;
    let Ready { dir, head, .. } = match check_worktree(workflow, layout, &worktrees, index)? {
        Ok(ready) => ready,
        Err(refused) => {
            // Its own merge, set up before and not committed yet: said again, not redone.
            let dir = layout.worktree_of(&ws.name);
            let own = refused.result == SyncResult::Refused
                && worktrees
                    .iter()
                    .any(|w| w.path == dir && !w.missing && w.branch.as_deref() == Some(branch.as_str()))
                && layout.git.merge_head(&dir).ok().flatten() == Some(onto);
            if !own {
                return Ok(out(ResolveResult::Refused, refused.detail, refused.files));
            }
            let head = layout.git.branch_head(&branch)?.unwrap_or(onto);
            let files = files_with_markers(&dir, &layout.git.trial_merge(head, onto)?);
            return Ok(out(
                ResolveResult::InProgress,
                format!("the merge of {into} is already in progress in its worktree"),
                files,
            ));
        }
    };
    if head == onto || layout.git.is_ancestor(onto, head)? {
        return Ok(out(
            ResolveResult::UpToDate,
            format!("nothing to resolve: its branch already holds {into} ({})", onto.short()),
            vec![],
        ));
    }
    let message = format!(
        "Merge {into} into {branch}, conflicts resolved by hand\n\n(set up by flow resolve {})",
        ws.name
    );
    Ok(match layout.git.merge_into_worktree(&dir, onto, &message)? {
        WorktreeMerge::Clean(new_head) => out(
            ResolveResult::Merged,
            format!(
                "{into} ({}) merged in cleanly, nothing to resolve; its branch is at {}",
                onto.short(),
                new_head.short()
            ),
            vec![],
        ),
        WorktreeMerge::Conflicted(files) => out(
            ResolveResult::Conflicted,
            format!("{into} ({}) merged into {branch}, with conflicts", onto.short()),
            files,
        ),
    })
}

/// What merges the workstream's branch once it is resolved: `flow resume` when the latest run
/// of the workflow stopped on its conflict, else `flow merge`.
fn next_step(workflow: &Workflow, layout: &Layout, index: usize) -> String {
    let site = &layout.site;
    let latest = site
        .runs()
        .into_iter()
        .rev()
        .filter_map(|id| site.run_dir(&id).load().ok())
        .find(|s| s.workflow == workflow.name);
    match latest {
        Some(state)
            if state
                .workstreams
                .get(index)
                .is_some_and(|w| w.phase == Phase::Conflicted) =>
        {
            "flow resume".to_string()
        }
        _ => "flow merge".to_string(),
    }
}
