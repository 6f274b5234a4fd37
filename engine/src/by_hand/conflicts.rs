//! `flow conflicts`: overlaps declared by `owns` (with the files that exist) and live ones
//! (paths changed by more than one workstream, committed on its branch or still uncommitted
//! in its worktree, each pair trial-merged in memory with the uncommitted files included).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use flow_dsl::Workflow;
use serde::Serialize;

use super::{Layout, start_of};
use crate::context;
use crate::git::{GitError, Oid, TrialSide};

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

/// Two workstreams that changed the same paths, on their branches or in their worktrees.
#[derive(Debug, Clone, Serialize)]
pub struct LiveOverlap {
    pub first: String,
    pub second: String,
    pub paths: Vec<String>,
    /// The paths a trial merge of the two conflicts on (empty: it merges cleanly), each side
    /// its branch with what its worktree holds uncommitted.
    pub conflicts: Vec<String>,
    /// For a side whose worktree changed some of `paths` without committing them: those paths.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub uncommitted: BTreeMap<String, Vec<String>>,
}

/// Everything `flow conflicts` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Conflicts {
    pub declared: Vec<DeclaredOverlap>,
    pub live: Vec<LiveOverlap>,
    /// Workstreams with a branch, compared for live overlaps.
    pub branches: Vec<String>,
}

/// What one workstream changed: on its branch, and uncommitted in its worktree.
struct Changed {
    index: usize,
    head: Oid,
    paths: BTreeSet<String>,
    /// The worktree and its uncommitted paths, when it has any.
    worktree: Option<(PathBuf, Vec<String>)>,
}

impl Changed {
    /// Its side of a trial merge: its branch, with its uncommitted files on top.
    fn side(&self) -> TrialSide<'_> {
        TrialSide {
            head: self.head,
            worktree: self
                .worktree
                .as_ref()
                .map(|(dir, dirty)| (dir.as_path(), dirty.as_slice())),
        }
    }
}

/// Finds declared overlaps (from `owns`, with the files that exist) and live ones (from the
/// branches that exist and what their worktrees hold uncommitted, with a trial merge of each
/// overlapping pair).
pub fn conflicts(workflow: &Workflow, layout: &Layout) -> Result<Conflicts, GitError> {
    let files = layout.git.tree_paths(layout.base_commit)?;
    let matcher = |glob: &str| flow_dsl::scope::glob(glob).ok().map(|g| g.compile_matcher());
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
    let worktrees = layout.git.worktrees()?;
    let excluded = context::excluded_prefixes(workflow);
    let mut changed: Vec<Changed> = vec![];
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        let branch = workflow.branch_of(ws);
        let Some(head) = layout.git.branch_head(&branch)? else {
            continue;
        };
        let start = work_start(workflow, layout, ws, head, into_head)?;
        let mut paths: BTreeSet<String> = layout
            .git
            .changed_paths(start, head)?
            .iter()
            .flat_map(|c| c.paths().map(str::to_string))
            .collect();
        // Its worktree, on its branch: what is there uncommitted counts too.
        let dir = layout.worktree_of(&ws.name);
        let on_branch = worktrees
            .iter()
            .any(|w| w.path == dir && !w.missing && w.branch.as_deref() == Some(branch.as_str()));
        let worktree = if on_branch {
            Some(layout.git.is_dirty(&dir, &excluded)?).filter(|dirty| !dirty.is_empty())
        } else {
            None
        };
        paths.extend(worktree.iter().flatten().cloned());
        changed.push(Changed {
            index: i,
            head,
            paths,
            worktree: worktree.map(|dirty| (dir, dirty)),
        });
    }
    let mut live = vec![];
    for (x, one) in changed.iter().enumerate() {
        for other in &changed[x + 1..] {
            let shared: Vec<String> = one.paths.intersection(&other.paths).cloned().collect();
            if shared.is_empty() {
                continue;
            }
            let conflicts = if one.worktree.is_none() && other.worktree.is_none() {
                layout.git.trial_merge(one.head, other.head)?
            } else {
                layout.git.trial_merge_sides(one.side(), other.side())?
            };
            let mut uncommitted = BTreeMap::new();
            for c in [one, other] {
                let Some((_, dirty)) = &c.worktree else { continue };
                let mine: Vec<String> = shared.iter().filter(|p| dirty.contains(p)).cloned().collect();
                if !mine.is_empty() {
                    uncommitted.insert(workflow.workstreams[c.index].name.clone(), mine);
                }
            }
            live.push(LiveOverlap {
                first: workflow.workstreams[one.index].name.clone(),
                second: workflow.workstreams[other.index].name.clone(),
                paths: shared,
                conflicts,
                uncommitted,
            });
        }
    }
    let branches = changed
        .iter()
        .map(|c| workflow.workstreams[c.index].name.clone())
        .collect();
    Ok(Conflicts {
        declared,
        live,
        branches,
    })
}

/// Where a branch's own work starts: [`start_of`], or, once the integration branch has been
/// merged into it, the latest integration commit it holds (`Git::work_base`), so that what
/// the merge brought in is not counted as its work. A branch merged already keeps its start:
/// what it changed still overlaps with the others.
fn work_start(
    workflow: &Workflow,
    layout: &Layout,
    ws: &flow_dsl::Workstream,
    head: Oid,
    into_head: Option<Oid>,
) -> Result<Oid, GitError> {
    let start = start_of(workflow, layout, ws, head, into_head)?;
    match into_head {
        Some(into) if !layout.is_merged(head, into)? => layout.git.work_base(start, head, &layout.into),
        _ => Ok(start),
    }
}
