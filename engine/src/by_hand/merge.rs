//! `flow merge`: every ready branch into the integration branch, in the plan's order, with
//! `verify` after each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use flow_dsl::{OnConflict, ScopePolicy, Workflow};
use serde::Serialize;

use super::guard::SessionGuard;
use super::{Layout, start_of};
use crate::context;
use crate::git::{GitError, Oid};
use crate::integrate::{Integrated, Integration, merge_and_verify};
use crate::plan::Plan;

/// What `flow merge` did with one workstream.
#[derive(Debug, Clone, Serialize)]
pub struct MergeItem {
    pub workstream: String,
    pub result: MergeResult,
    pub detail: String,
    pub commit: Option<String>,
}

/// The outcome of trying to merge one workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeResult {
    Merged,
    AlreadyMerged,
    Skipped,
    Conflicted,
    Failed,
}

impl MergeResult {
    /// Returns the kebab-case name shown by `flow merge` and written to its JSON, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeResult::Merged => "merged",
            MergeResult::AlreadyMerged => "already-merged",
            MergeResult::Skipped => "skipped",
            MergeResult::Conflicted => "conflicted",
            MergeResult::Failed => "failed",
        }
    }
}

impl std::fmt::Display for MergeResult {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.pad(self.as_str())
    }
}

/// Which branches a merge takes, and where their own work starts when a note says so.
#[derive(Debug, Clone, Default)]
pub struct MergeSelection {
    /// Only these workstreams (all when `None`).
    pub only: Option<BTreeSet<usize>>,
    /// Where a workstream's own work starts, as its pushed result recorded it (see
    /// `crate::exchange`): its changes are measured from there.
    pub starts: BTreeMap<usize, Oid>,
}

/// Merges every ready branch into the integration branch, in the plan's merge order, with
/// `verify` after each; says for each workstream what happened and why.
pub async fn merge_ready(
    plan: &Plan,
    layout: &Layout,
    integration: Integration<'_>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<MergeItem>, GitError> {
    merge_selected(plan, layout, integration, stop, &MergeSelection::default()).await
}

/// Merges the selected ready branches, as [`merge_ready`] does.
pub async fn merge_selected(
    plan: &Plan,
    layout: &Layout,
    integration: Integration<'_>,
    stop: tokio::sync::watch::Receiver<bool>,
    selection: &MergeSelection,
) -> Result<Vec<MergeItem>, GitError> {
    let workflow = &plan.workflow;
    let mut into_head = layout.ensure_into()?;
    let mut out = vec![];
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    let mut stopped = false;
    let worktrees: BTreeSet<PathBuf> = layout.git.worktrees()?.into_iter().map(|w| w.path).collect();
    let excluded = context::excluded_prefixes(workflow);
    let clean = clean_worktrees(plan, layout, &worktrees, &excluded);
    // Before anything runs in a worktree or merges: what an agent changed in the git
    // directory since `flow prepare` refuses its workstream.
    let prepared: Vec<usize> = plan
        .merge_order
        .iter()
        .copied()
        .filter(|i| selection.only.as_ref().is_none_or(|only| only.contains(i)))
        .filter(|&i| worktrees.contains(&layout.worktree_of(&workflow.workstreams[i].name)))
        .collect();
    let (refused, unchecked) = SessionGuard::new(layout, workflow).refuse_tampered(&prepared);
    for &i in &plan.merge_order {
        if selection.only.as_ref().is_some_and(|only| !only.contains(&i)) {
            continue;
        }
        let ws = &workflow.workstreams[i];
        let branch = workflow.branch_of(ws);
        let mut say = |result: MergeResult, detail: String, commit: Option<Oid>| {
            out.push(MergeItem {
                workstream: ws.name.clone(),
                result,
                detail,
                commit: commit.map(|c| c.to_string()),
            });
        };
        if stopped {
            blocked.insert(i);
            say(
                MergeResult::Skipped,
                "not tried: merging stopped at a conflict (on-conflict \"stop\")".into(),
                None,
            );
            continue;
        }
        if let Some(&d) = ws.dependencies.iter().find(|d| blocked.contains(d)) {
            blocked.insert(i);
            say(
                MergeResult::Skipped,
                format!("its dependency `{}` is not merged", workflow.workstreams[d].name),
                None,
            );
            continue;
        }
        if let Some(why) = refused.get(&i) {
            blocked.insert(i);
            say(MergeResult::Failed, why.clone(), None);
            continue;
        }
        let dir = layout.worktree_of(&ws.name);
        if worktrees.contains(&dir) && dir.exists() && !clean.contains(&i) {
            let message = format!("flow: work of {} (committed by flow merge)", ws.name);
            if let Err(e) = layout.git.commit_all(&dir, &message, &excluded) {
                blocked.insert(i);
                say(
                    MergeResult::Failed,
                    format!("cannot commit what is left in its worktree: {e}"),
                    None,
                );
                continue;
            }
        }
        let Some(head) = layout.git.branch_head(&branch)? else {
            blocked.insert(i);
            say(
                MergeResult::Skipped,
                format!("no branch {branch} (run `flow prepare` first)"),
                None,
            );
            continue;
        };
        if layout.is_merged(head, into_head)? {
            let start = start_of(workflow, layout, ws, head, Some(into_head))?;
            if head == start || layout.git.is_ancestor(head, layout.base_commit)? {
                blocked.insert(i);
                say(
                    MergeResult::Skipped,
                    "nothing to merge: no commits on its branch yet".into(),
                    None,
                );
            } else {
                say(
                    MergeResult::AlreadyMerged,
                    "already in the integration branch".into(),
                    Some(head),
                );
            }
            continue;
        }
        let start = match selection.starts.get(&i) {
            Some(&start) if trusted_start(layout, start, head, into_head)? => start,
            _ => layout.git.merge_base(head, into_head)?.unwrap_or(layout.base_commit),
        };
        let changes = layout.git.changed_paths(start, head)?;
        let paths: Vec<String> = changes.iter().flat_map(|c| c.paths().map(str::to_string)).collect();
        let violations: Vec<String> = ws.scope.breaches(&paths).into_iter().map(|b| b.path).collect();
        if !violations.is_empty() && workflow.scope_policy != ScopePolicy::Warn {
            blocked.insert(i);
            say(
                MergeResult::Failed,
                format!("changed files outside its scope: {}", violations.join(", ")),
                None,
            );
            continue;
        }
        match merge_and_verify(&integration, i, into_head, head, stop.clone()).await {
            Integrated::Merged { commit, verify } => {
                into_head = commit;
                let verified = if verify.is_some() { ", verified" } else { "" };
                let unguarded = if unchecked.contains(&i) {
                    " (its git directory not compared: no snapshot from `flow prepare`)"
                } else {
                    ""
                };
                say(
                    MergeResult::Merged,
                    format!(
                        "{} file{} changed{verified}{unguarded}",
                        paths.len(),
                        if paths.len() == 1 { "" } else { "s" }
                    ),
                    Some(commit),
                );
            }
            Integrated::Conflict { paths } => {
                blocked.insert(i);
                let writers = writers_of(workflow, layout, &paths, i);
                say(
                    MergeResult::Conflicted,
                    format!("conflicts in {}{writers}", paths.join(", ")),
                    None,
                );
                if workflow.integrate.on_conflict == OnConflict::Stop {
                    stopped = true;
                }
            }
            Integrated::VerifyFailed { result, rolled_back } => {
                blocked.insert(i);
                let back = if rolled_back { "rolled back" } else { "ROLLBACK FAILED" };
                say(
                    MergeResult::Failed,
                    format!("verify failed ({back}): {}", result.detail),
                    None,
                );
            }
            Integrated::Interrupted => {
                blocked.insert(i);
                stopped = true;
                say(
                    MergeResult::Skipped,
                    "interrupted during verify; rolled back".into(),
                    None,
                );
            }
            Integrated::Error(message) => {
                blocked.insert(i);
                say(MergeResult::Failed, message, None);
            }
        }
    }
    Ok(out)
}

/// Tells whether a start commit that a pushed result claims can be trusted: it is in the
/// branch's history, and everything it holds beyond base is in the integration branch as it
/// is (its dependencies' merged work). A start that carried other changes would hide them
/// from the scope check, so it is not taken, and the branch is measured from where it leaves
/// the integration branch instead.
fn trusted_start(layout: &Layout, start: Oid, head: Oid, into_head: Oid) -> Result<bool, GitError> {
    if !layout.git.is_ancestor(start, head)? {
        return Ok(false);
    }
    let carried: BTreeSet<String> = layout
        .git
        .changed_paths(layout.base_commit, start)?
        .iter()
        .flat_map(|c| c.paths().map(str::to_string))
        .collect();
    let differs = layout.git.changed_paths(start, into_head)?;
    Ok(!differs.iter().flat_map(|c| c.paths()).any(|p| carried.contains(p)))
}

/// The workstreams whose worktrees hold nothing uncommitted, found on a few threads: looking
/// means a walk over every file of every worktree, the bulk of `flow merge`'s time.
fn clean_worktrees(plan: &Plan, layout: &Layout, worktrees: &BTreeSet<PathBuf>, excluded: &[&str]) -> BTreeSet<usize> {
    let workflow = &plan.workflow;
    let candidates: Vec<(usize, PathBuf)> = plan
        .merge_order
        .iter()
        .map(|&i| (i, layout.worktree_of(&workflow.workstreams[i].name)))
        .filter(|(_, dir)| worktrees.contains(dir))
        .collect();
    // Anything unreadable counts as dirty: `commit_all` then reports it.
    let Ok(clean) = crate::parallel::in_parallel::<_, _, std::convert::Infallible>(
        candidates.len(),
        || Ok(()),
        |(), k| {
            Ok(layout
                .git
                .has_uncommitted(&candidates[k].1, excluded)
                .is_ok_and(|dirty| !dirty))
        },
    );
    candidates
        .iter()
        .zip(clean)
        .filter_map(|((i, _), clean)| clean.then_some(*i))
        .collect()
}

/// Names the merged workstreams that last changed the conflicting paths.
fn writers_of(workflow: &Workflow, layout: &Layout, paths: &[String], except: usize) -> String {
    let mut writers = BTreeSet::new();
    for (j, other) in workflow.workstreams.iter().enumerate() {
        if j == except {
            continue;
        }
        let Ok(Some(head)) = layout.git.branch_head(&workflow.branch_of(other)) else {
            continue;
        };
        let into_head = layout.git.branch_head(&layout.into).ok().flatten();
        let Ok(start) = start_of(workflow, layout, other, head, into_head) else {
            continue;
        };
        let Ok(changes) = layout.git.changed_paths(start, head) else {
            continue;
        };
        if changes.iter().any(|c| c.paths().any(|p| paths.iter().any(|q| q == p))) {
            writers.insert(other.name.clone());
        }
    }
    if writers.is_empty() {
        String::new()
    } else {
        format!(
            " (also written by {})",
            writers.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}
