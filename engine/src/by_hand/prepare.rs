//! `flow prepare`: every workstream's worktree, branch and context, without launching anything.

use std::path::PathBuf;

use flow_dsl::{Isolation, Workflow};
use serde::Serialize;

use super::guard::{SessionGuard, Verdict};
use super::{Layout, start_of};
use crate::context;
use crate::git::{GitError, Oid};
use crate::plan::Plan;
use crate::worktree_setup::copy::CopyList;
use crate::worktree_setup::hook::install_scope_hook;

/// What `flow prepare` did for one workstream.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareItem {
    pub workstream: String,
    pub status: PrepareStatus,
    pub branch: Option<String>,
    pub worktree: Option<PathBuf>,
    pub start: Option<String>,
    pub detail: String,
}

/// The outcome of preparing one workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrepareStatus {
    Created,
    Reused,
    Waiting,
    Skipped,
    Failed,
}

impl PrepareStatus {
    /// Returns the kebab-case name shown by `flow prepare` and written to its JSON, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PrepareStatus::Created => "created",
            PrepareStatus::Reused => "reused",
            PrepareStatus::Waiting => "waiting",
            PrepareStatus::Skipped => "skipped",
            PrepareStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PrepareStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.pad(self.as_str())
    }
}

/// Creates the worktree, branch and context of every workstream whose dependencies have
/// merged (in parallel); the others wait for `flow merge`.
pub fn prepare(plan: &Plan, layout: &Layout) -> Result<Vec<PrepareItem>, GitError> {
    let workflow = &plan.workflow;
    let into_head = layout.ensure_into()?;
    let mut items: Vec<Option<PrepareItem>> = vec![None; workflow.workstreams.len()];
    let mut jobs: Vec<(usize, Oid)> = vec![];
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        if ws.isolation == Isolation::None {
            items[i] = Some(item(
                ws.name.clone(),
                PrepareStatus::Skipped,
                None,
                None,
                None,
                "isolation \"none\": no worktree",
            ));
            continue;
        }
        let waiting = unmerged_dependencies(workflow, layout, i, into_head)?;
        if !waiting.is_empty() {
            items[i] = Some(item(
                ws.name.clone(),
                PrepareStatus::Waiting,
                Some(workflow.branch_of(ws)),
                None,
                None,
                &format!("waits for {} to merge (`flow merge`)", waiting.join(", ")),
            ));
            continue;
        }
        let start = if ws.dependencies.is_empty() {
            layout.base_commit
        } else {
            into_head
        };
        jobs.push((i, start));
    }
    // The worktrees first, all together (their files are written on several threads), then
    // each one's context.
    let requests: Vec<(PathBuf, String, Oid)> = jobs
        .iter()
        .map(|&(i, start)| {
            let ws = &workflow.workstreams[i];
            (layout.worktree_of(&ws.name), workflow.branch_of(ws), start)
        })
        .collect();
    // Compared before any worktree is made: a new one is no change of the others'.
    let guard = SessionGuard::new(layout, workflow);
    let verdicts: Vec<Verdict> = jobs.iter().map(|&(i, _)| guard.verdict(i)).collect();
    let made = layout.git.add_worktrees(&requests)?;
    for ((&(i, start), (dir, branch, _)), result) in jobs.iter().zip(requests).zip(made) {
        items[i] = Some(prepare_one(workflow, layout, i, start, dir, branch, result));
    }
    guard_sessions(&guard, &jobs, &verdicts, &mut items);
    Ok(items.into_iter().flatten().collect())
}

/// Takes the snapshot of the git directory `flow merge` compares with, for every worktree
/// prepared now: a new one where the git directory is as the last snapshot had it (or there
/// was none); where it changed, the old one stays, for `flow merge` to refuse and undo.
fn guard_sessions(
    guard: &SessionGuard<'_>,
    jobs: &[(usize, Oid)],
    verdicts: &[Verdict],
    items: &mut [Option<PrepareItem>],
) {
    let mut take = vec![];
    for (&(i, _), verdict) in jobs.iter().zip(verdicts) {
        let Some(item) = items[i].as_mut() else { continue };
        if !matches!(item.status, PrepareStatus::Created | PrepareStatus::Reused) {
            continue;
        }
        match verdict {
            Verdict::Changed(changes) if item.status == PrepareStatus::Reused => {
                item.detail.push_str(&format!(
                    "; the git directory changed since its snapshot, `flow merge` will refuse it: {}",
                    changes.join("; ")
                ));
            }
            Verdict::Unreadable(why) => {
                item.detail
                    .push_str(&format!("; took a new snapshot of the git directory ({why})"));
                take.push(i);
            }
            _ => take.push(i),
        }
    }
    for (i, why) in guard.take(&take) {
        if let Some(item) = items[i].as_mut() {
            item.status = PrepareStatus::Failed;
            item.detail = why;
        }
    }
}

fn item(
    workstream: String,
    status: PrepareStatus,
    branch: Option<String>,
    worktree: Option<PathBuf>,
    start: Option<Oid>,
    detail: &str,
) -> PrepareItem {
    PrepareItem {
        workstream,
        status,
        branch,
        worktree,
        start: start.map(|s| s.to_string()),
        detail: detail.to_string(),
    }
}

/// Writes the context of one workstream whose worktree `made` says how it went.
fn prepare_one(
    workflow: &Workflow,
    layout: &Layout,
    index: usize,
    start: Oid,
    dir: PathBuf,
    branch: String,
    made: Result<crate::git::WorktreeState, GitError>,
) -> PrepareItem {
    let ws = &workflow.workstreams[index];
    let status = match made {
        Ok(crate::git::WorktreeState::Reused) => PrepareStatus::Reused,
        Ok(_) => PrepareStatus::Created,
        Err(e) => {
            return item(
                ws.name.clone(),
                PrepareStatus::Failed,
                Some(branch),
                Some(dir),
                Some(start),
                &e.to_string(),
            );
        }
    };
    if let Err(e) = ready(workflow, layout, index, &dir) {
        return item(
            ws.name.clone(),
            PrepareStatus::Failed,
            Some(branch),
            Some(dir),
            Some(start),
            &e,
        );
    }
    let rendered = context::render(workflow, index, layout.site.root());
    if let Err(e) = context::write(&rendered, &dir, &ws.name) {
        return item(
            ws.name.clone(),
            PrepareStatus::Failed,
            Some(branch),
            Some(dir),
            Some(start),
            &format!("cannot write the context: {e}"),
        );
    }
    let detail = format!(
        "prompt in {}",
        dir.join(context::context_dir(&ws.name)).join("prompt.md").display()
    );
    item(ws.name.clone(), status, Some(branch), Some(dir), Some(start), &detail)
}

/// Copies the workstream's files from the user's checkout into its worktree and installs
/// its scope hook.
fn ready(workflow: &Workflow, layout: &Layout, index: usize, dir: &std::path::Path) -> Result<(), String> {
    let ws = &workflow.workstreams[index];
    let root = layout.site.root();
    let skip = [
        layout.site.flow_dir().to_path_buf(),
        layout.site.worktrees_dir(workflow),
    ];
    let copy = CopyList::find(root, &ws.copy, &skip).map_err(|e| format!("cannot find the files to copy: {e}"))?;
    copy.copy_into(root, dir)?;
    install_scope_hook(layout.site.flow_dir(), &layout.git, workflow, index, dir, &copy.paths)
        .map_err(|e| format!("cannot install the scope hook: {e}"))
}

/// The dependencies of a workstream whose branches are not (yet) in the integration branch.
fn unmerged_dependencies(
    workflow: &Workflow,
    layout: &Layout,
    index: usize,
    into_head: Oid,
) -> Result<Vec<String>, GitError> {
    let mut waiting = vec![];
    for &d in &workflow.workstreams[index].dependencies {
        let dep = &workflow.workstreams[d];
        if dep.isolation == Isolation::None {
            continue;
        }
        let merged = match layout.git.branch_head(&workflow.branch_of(dep))? {
            Some(head) => {
                head != start_of(workflow, layout, dep, head, Some(into_head))? && layout.is_merged(head, into_head)?
            }
            None => false,
        };
        if !merged {
            waiting.push(dep.name.clone());
        }
    }
    Ok(waiting)
}
