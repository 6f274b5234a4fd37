//! `flow sync`: the integration branch brought into workstreams' branches, in their
//! worktrees, so their work goes on on top of what has merged.
//!
//! A worktree is only ever changed by a merge that is certain to go through: one holding
//! uncommitted changes, an operation in progress (a merge, a rebase) or another branch is
//! refused untouched, and so is a merge that would conflict, found by a trial merge in memory
//! before the worktree is touched, unless the resolver agent is asked to resolve it
//! ([`super::resolver`]).

use std::path::PathBuf;

use flow_dsl::{Isolation, Workflow};

use super::Layout;
use super::resolver::{Conflicting, ResolverSettings, resolve_with_agent};
pub use super::sync_outcome::{SyncItem, SyncResult};
use crate::context;
use crate::git::{GitError, Oid, WorktreeInfo, WorktreeMerge};
use crate::run::error::RunError;
use crate::run::lock::RunLock;

/// The workstreams `flow sync` works on by default: every one with a worktree.
pub fn prepared(workflow: &Workflow, layout: &Layout) -> Result<Vec<usize>, GitError> {
    let worktrees = layout.git.worktrees()?;
    Ok((0..workflow.workstreams.len())
        .filter(|&i| {
            let dir = layout.worktree_of(&workflow.workstreams[i].name);
            worktrees.iter().any(|w| w.path == dir)
        })
        .collect())
}

/// Brings the integration branch into the branches of the workstreams `selected` (indices),
/// each in its worktree, holding the workflow's run lock so no run works there meanwhile. A
/// merge that would conflict is refused, or, given `resolver`, handed to the resolver agent.
pub async fn sync(
    workflow: &Workflow,
    layout: &Layout,
    selected: &[usize],
    resolver: Option<&ResolverSettings>,
) -> Result<Vec<SyncItem>, RunError> {
    let _lock = RunLock::acquire(layout.site.flow_dir(), &workflow.name)?;
    let worktrees = layout.git.worktrees()?;
    let into_head = layout.git.branch_head(&layout.into)?;
    let mut out = vec![];
    for &i in selected {
        out.push(sync_one(workflow, layout, &worktrees, into_head, i, resolver).await?);
    }
    Ok(out)
}

/// What stands in the way of merging into a workstream's worktree, checked before anything
/// is touched: the worktree's folder and head, and its branch's head.
pub(crate) struct Ready {
    pub(crate) dir: PathBuf,
    pub(crate) branch: String,
    pub(crate) head: Oid,
}

/// Checks that workstream `index` has its worktree, on its branch, with nothing uncommitted
/// and no operation in progress; otherwise says why not (the item to report).
pub(crate) fn check_worktree(
    workflow: &Workflow,
    layout: &Layout,
    worktrees: &[WorktreeInfo],
    index: usize,
) -> Result<Result<Ready, SyncItem>, GitError> {
    let ws = &workflow.workstreams[index];
    let dir = layout.worktree_of(&ws.name);
    let refuse = |result: SyncResult, detail: String, files: Vec<String>| SyncItem {
        workstream: ws.name.clone(),
        result,
        detail,
        files,
        head: None,
        worktree: Some(dir.clone()),
    };
    if ws.isolation == Isolation::None {
        return Ok(Err(SyncItem {
            worktree: None,
            ..refuse(SyncResult::Skipped, "isolation \"none\": no worktree".into(), vec![])
        }));
    }
    let branch = workflow.branch_of(ws);
    let Some(record) = worktrees.iter().find(|w| w.path == dir) else {
        return Ok(Err(refuse(
            SyncResult::Refused,
            format!("no worktree at {} (`flow prepare` makes it)", dir.display()),
            vec![],
        )));
    };
    if record.missing || !dir.is_dir() {
        return Ok(Err(refuse(
            SyncResult::Refused,
            format!(
                "its worktree folder {} is gone (`flow clean` prunes the record, `flow prepare` makes it again)",
                dir.display()
            ),
            vec![],
        )));
    }
    if record.branch.as_deref() != Some(branch.as_str()) {
        let now = record
            .branch
            .as_deref()
            .map_or_else(|| "a detached HEAD".to_string(), |b| format!("branch `{b}`"));
        return Ok(Err(refuse(
            SyncResult::Refused,
            format!("its worktree has {now} checked out, not its branch `{branch}`"),
            vec![],
        )));
    }
    let Some(head) = layout.git.branch_head(&branch)? else {
        return Ok(Err(refuse(
            SyncResult::Refused,
            format!("its branch `{branch}` does not exist"),
            vec![],
        )));
    };
    if let Some(operation) = layout.git.operation_in_progress(&dir)? {
        return Ok(Err(refuse(
            SyncResult::Refused,
            format!(
                "a {operation} is in progress in its worktree: finish it (`git commit`) or give it up \
                 (`git {operation} --abort`) first"
            ),
            vec![],
        )));
    }
    let dirty = layout.git.is_dirty(&dir, &context::excluded_prefixes(workflow))?;
    if !dirty.is_empty() {
        return Ok(Err(refuse(
            SyncResult::Refused,
            format!(
                "uncommitted changes in its worktree: {}; commit or stash them first",
                dirty.join(", ")
            ),
            dirty,
        )));
    }
    Ok(Ok(Ready { dir, branch, head }))
}

async fn sync_one(
    workflow: &Workflow,
    layout: &Layout,
    worktrees: &[WorktreeInfo],
    into_head: Option<Oid>,
    index: usize,
    resolver: Option<&ResolverSettings>,
) -> Result<SyncItem, GitError> {
    let ws = &workflow.workstreams[index];
    let Ready { dir, branch, head } = match check_worktree(workflow, layout, worktrees, index)? {
        Ok(ready) => ready,
        Err(item) => return Ok(item),
    };
    let item = |result: SyncResult, detail: String, files: Vec<String>, head: Oid| SyncItem {
        workstream: ws.name.clone(),
        result,
        detail,
        files,
        head: Some(head.to_string()),
        worktree: Some(dir.clone()),
    };
    let into = &layout.into;
    let Some(onto) = into_head else {
        return Ok(item(
            SyncResult::UpToDate,
            format!("nothing to bring in: {into} does not exist yet"),
            vec![],
            head,
        ));
    };
    if head == onto || layout.git.is_ancestor(onto, head)? {
        return Ok(item(
            SyncResult::UpToDate,
            format!("already holds {into} ({})", onto.short()),
            vec![],
            head,
        ));
    }
    let conflicts = layout.git.trial_merge(head, onto)?;
    if let (false, Some(settings)) = (conflicts.is_empty(), resolver) {
        let conflicting = Conflicting {
            index,
            dir: &dir,
            branch: &branch,
            head,
            onto,
        };
        return resolve_with_agent(workflow, layout, conflicting, settings).await;
    }
    if !conflicts.is_empty() {
        return Ok(item(
            SyncResult::Refused,
            format!(
                "merging {into} ({}) in would conflict in {}; nothing was changed (`flow sync --agent {}` \
                 hands it to the resolver agent, `flow resolve {}` to you)",
                onto.short(),
                conflicts.join(", "),
                ws.name,
                ws.name
            ),
            conflicts,
            head,
        ));
    }
    let message = format!("flow: bring {into} into {} (flow sync)", ws.name);
    match layout.git.merge_into_worktree(&dir, onto, &message)? {
        WorktreeMerge::Clean(new_head) => Ok(item(
            SyncResult::Synced,
            format!("merged {into} ({}) in; now at {}", onto.short(), new_head.short()),
            vec![],
            new_head,
        )),
        // The trial merge said it merges cleanly; whatever changed since, nothing is left.
        WorktreeMerge::Conflicted(paths) => {
            layout.git.abort_merge_in(&dir, context::CONTEXT_PREFIXES)?;
            Ok(item(
                SyncResult::Refused,
                format!("merging {into} in conflicted in {}; given up", paths.join(", ")),
                paths,
                head,
            ))
        }
    }
}
