//! The verbs for people who run agents by hand (the "Option A" way): `flow prepare` makes
//! worktrees and context without launching anything, `flow merge` integrates whatever
//! branches are ready, `flow conflicts` predicts and detects overlaps, `flow clean` removes
//! what a workflow left behind.

use std::collections::BTreeSet;
use std::path::PathBuf;

use flow_dsl::{Isolation, OnConflict, ScopePolicy, Workflow, Workstream};
use globset::GlobBuilder;
use serde::Serialize;

use crate::context;
use crate::git::{GitError, Oid};
use crate::layout::Layout;
use crate::plan::Plan;
use crate::run::job::scope_violations;
use crate::run::merge::{Integrated, Integration, integration_dir, merge_and_verify};

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
    let made = layout.git.add_worktrees(&requests)?;
    for ((&(i, start), (dir, branch, _)), result) in jobs.iter().zip(requests).zip(made) {
        items[i] = Some(prepare_one(workflow, layout, i, start, dir, branch, result));
    }
    Ok(items.into_iter().flatten().collect())
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
    let rendered = context::render(workflow, index, &layout.root);
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

/// The commit a workstream's branch started from, so that only its own commits count as its
/// work: where the branch was created (the oldest entry of its reflog) when that is still in
/// its history; else where it leaves base or, for a workstream that started from the
/// integration branch and is not merged yet, where it leaves that branch.
///
/// A workstream with dependencies starts from the integration branch, whose history holds
/// its dependencies' work: measured from base, a dependent that did nothing would look
/// already merged and would seem to change every path its dependencies changed.
fn start_of(
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

/// Merges every ready branch into the integration branch, in the plan's merge order, with
/// `verify` after each; says for each workstream what happened and why.
pub async fn merge_ready(
    plan: &Plan,
    layout: &Layout,
    integration: Integration<'_>,
) -> Result<Vec<MergeItem>, GitError> {
    let workflow = &plan.workflow;
    let mut into_head = layout.ensure_into()?;
    let mut out = vec![];
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    let mut stopped = false;
    let worktrees: BTreeSet<PathBuf> = layout.git.worktrees()?.into_iter().map(|w| w.path).collect();
    let excluded = context::excluded_prefixes(workflow);
    let clean = clean_worktrees(plan, layout, &worktrees, &excluded);
    for &i in &plan.merge_order {
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
        let start = layout.git.merge_base(head, into_head)?.unwrap_or(layout.base_commit);
        let changes = layout.git.changed_paths(start, head)?;
        let paths: Vec<String> = changes.iter().flat_map(|c| c.paths().map(str::to_string)).collect();
        let violations = scope_violations(&ws.owns, &ws.forbid, &paths);
        if !violations.is_empty() && workflow.scope_policy != ScopePolicy::Warn {
            blocked.insert(i);
            say(
                MergeResult::Failed,
                format!("changed files outside its scope: {}", violations.join(", ")),
                None,
            );
            continue;
        }
        match merge_and_verify(&integration, i, into_head, head).await {
            Integrated::Merged { commit, verify } => {
                into_head = commit;
                let verified = if verify.is_some() { ", verified" } else { "" };
                say(
                    MergeResult::Merged,
                    format!(
                        "{} file{} changed{verified}",
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

/// A predicted overlap between two workstreams' `owns`, with the existing files in both.
#[derive(Debug, Clone, Serialize)]
pub struct DeclaredOverlap {
    pub first: String,
    pub second: String,
    pub first_glob: String,
    pub second_glob: String,
    pub example: String,
    /// Files in the base commit that both globs match (at most 20).
    pub existing_files: Vec<String>,
}

/// Two existing branches that changed the same paths.
#[derive(Debug, Clone, Serialize)]
pub struct LiveOverlap {
    pub first: String,
    pub second: String,
    pub paths: Vec<String>,
    /// The paths a trial merge of the two branches conflicts on (empty: it merges cleanly).
    pub conflicts: Vec<String>,
}

/// Everything `flow conflicts` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Conflicts {
    pub declared: Vec<DeclaredOverlap>,
    pub live: Vec<LiveOverlap>,
    /// Workstreams with a branch, compared for live overlaps.
    pub branches: Vec<String>,
}

/// Finds declared overlaps (from `owns`, with the files that exist) and live ones (from the
/// branches that exist, with a trial merge of each overlapping pair).
pub fn conflicts(workflow: &Workflow, layout: &Layout) -> Result<Conflicts, GitError> {
    let files = layout.git.tree_paths(layout.base_commit)?;
    let matcher = |glob: &str| {
        GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .ok()
            .map(|g| g.compile_matcher())
    };
    let mut declared = vec![];
    for o in &workflow.overlaps {
        let (a, b) = (matcher(&o.first_glob), matcher(&o.second_glob));
        let existing = match (a, b) {
            (Some(a), Some(b)) => files
                .iter()
                .filter(|f| a.is_match(f.as_str()) && b.is_match(f.as_str()))
                .take(20)
                .cloned()
                .collect(),
            _ => vec![],
        };
        declared.push(DeclaredOverlap {
            first: workflow.workstreams[o.first].name.clone(),
            second: workflow.workstreams[o.second].name.clone(),
            first_glob: o.first_glob.clone(),
            second_glob: o.second_glob.clone(),
            example: o.example.clone(),
            existing_files: existing,
        });
    }
    let into_head = layout.git.branch_head(&layout.into)?;
    let mut changed: Vec<(usize, Oid, BTreeSet<String>)> = vec![];
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        let Some(head) = layout.git.branch_head(&workflow.branch_of(ws))? else {
            continue;
        };
        let start = start_of(workflow, layout, ws, head, into_head)?;
        let paths: BTreeSet<String> = layout
            .git
            .changed_paths(start, head)?
            .iter()
            .flat_map(|c| c.paths().map(str::to_string))
            .collect();
        changed.push((i, head, paths));
    }
    let mut live = vec![];
    for (x, (i, head_i, paths_i)) in changed.iter().enumerate() {
        for (j, head_j, paths_j) in &changed[x + 1..] {
            let shared: Vec<String> = paths_i.intersection(paths_j).cloned().collect();
            if shared.is_empty() {
                continue;
            }
            let conflicts = layout.git.trial_merge(*head_i, *head_j)?;
            live.push(LiveOverlap {
                first: workflow.workstreams[*i].name.clone(),
                second: workflow.workstreams[*j].name.clone(),
                paths: shared,
                conflicts,
            });
        }
    }
    let branches = changed
        .iter()
        .map(|(i, _, _)| workflow.workstreams[*i].name.clone())
        .collect();
    Ok(Conflicts {
        declared,
        live,
        branches,
    })
}

/// What `flow clean` did with one thing.
#[derive(Debug, Clone, Serialize)]
pub struct CleanItem {
    pub what: String,
    pub removed: bool,
    pub detail: String,
}

/// Removes a workflow's worktrees and branches (and its integration branch when it holds
/// nothing that is not in base), refusing to drop uncommitted or unmerged work unless `force`.
pub fn clean(workflow: &Workflow, layout: &Layout, force: bool) -> Result<Vec<CleanItem>, GitError> {
    let mut out = vec![];
    let mut say = |what: String, removed: bool, detail: String| out.push(CleanItem { what, removed, detail });
    let pruned = layout.git.prune_stale_worktrees()?;
    for name in pruned {
        say(
            format!("worktree record {name}"),
            true,
            "its folder was deleted by hand; pruned".into(),
        );
    }
    let into_head = layout.git.branch_head(&layout.into)?;
    let worktrees = layout.git.worktrees()?;
    let mut kept_any = false;
    for ws in &workflow.workstreams {
        if ws.isolation == Isolation::None {
            continue;
        }
        let dir = layout.worktree_of(&ws.name);
        let branch = workflow.branch_of(ws);
        let mut worktree_kept = false;
        if worktrees.iter().any(|w| w.path == dir) {
            match layout
                .git
                .remove_worktree_ignoring(&dir, force, &context::excluded_prefixes(workflow))
            {
                Ok(()) => say(format!("worktree {}", dir.display()), true, "removed".into()),
                Err(GitError::Dirty { paths, .. }) => {
                    worktree_kept = true;
                    say(
                        format!("worktree {}", dir.display()),
                        false,
                        format!(
                            "kept: uncommitted changes in {} (use --force to drop them)",
                            paths.join(", ")
                        ),
                    );
                }
                Err(e) => {
                    worktree_kept = true;
                    say(format!("worktree {}", dir.display()), false, format!("kept: {e}"));
                }
            }
        }
        let Some(head) = layout.git.branch_head(&branch)? else {
            continue;
        };
        if worktree_kept {
            kept_any = true;
            say(format!("branch {branch}"), false, "kept: its worktree was kept".into());
            continue;
        }
        let merged = head == layout.base_commit
            || layout.git.is_ancestor(head, layout.base_commit)?
            || into_head.is_some_and(|i| head == i || layout.git.is_ancestor(head, i).unwrap_or(false));
        if !merged && !force {
            kept_any = true;
            say(
                format!("branch {branch}"),
                false,
                "kept: it has commits not merged anywhere (use --force to delete it)".into(),
            );
            continue;
        }
        match layout.git.delete_branch(&branch) {
            Ok(()) => say(
                format!("branch {branch}"),
                true,
                if merged {
                    "deleted (merged)".into()
                } else {
                    "deleted (unmerged work dropped: --force)".into()
                },
            ),
            Err(e) => {
                kept_any = true;
                say(format!("branch {branch}"), false, format!("kept: {e}"));
            }
        }
    }
    let verify_dir = integration_dir(&layout.worktrees_dir);
    if worktrees.iter().any(|w| w.path == verify_dir) {
        match layout.git.remove_worktree(&verify_dir, true) {
            Ok(()) => say(
                format!("worktree {}", verify_dir.display()),
                true,
                "removed (integration checkout)".into(),
            ),
            Err(e) => say(
                format!("worktree {}", verify_dir.display()),
                false,
                format!("kept: {e}"),
            ),
        }
    }
    if let Some(head) = into_head {
        let in_base = head == layout.base_commit || layout.git.is_ancestor(head, layout.base_commit)?;
        if (in_base || force) && !kept_any {
            match layout.git.delete_branch(&layout.into) {
                Ok(()) => say(
                    format!("branch {}", layout.into),
                    true,
                    if in_base {
                        "deleted (nothing beyond base)".into()
                    } else {
                        "deleted (merges not in base dropped: --force)".into()
                    },
                ),
                Err(e) => say(format!("branch {}", layout.into), false, format!("kept: {e}")),
            }
        } else if !in_base {
            say(
                format!("branch {}", layout.into),
                false,
                format!(
                    "kept: it holds merges not in {} (merge it, or use --force)",
                    layout.base
                ),
            )
        }
    }
    let _ = std::fs::remove_dir(&layout.worktrees_dir);
    if let Some(parent) = layout.worktrees_dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(out)
}
