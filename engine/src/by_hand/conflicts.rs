//! `flow conflicts`: overlaps declared by `owns` (with the files that exist) and live ones
//! (paths changed by more than one existing branch, each pair trial-merged in memory).

use std::collections::BTreeSet;

use flow_dsl::Workflow;
use serde::Serialize;

use super::{Layout, start_of};
use crate::git::{GitError, Oid};

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
