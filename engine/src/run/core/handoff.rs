//! What a dependent workstream is told about its dependencies (the seed's "context carries
//! dependencies' results"): built from the record, before any git is read; the context writer
//! adds commits and a diffstat and fits it all to the workstream's `handoff-tokens`.

use flow_dsl::Workflow;

use super::Handoff;
use crate::run::state::RunState;

/// The handoffs of workstream `index`: one per dependency, in `depends-on` order.
pub fn handoffs(workflow: &Workflow, state: &RunState, index: usize) -> Vec<Handoff> {
    workflow.workstreams[index]
        .dependencies
        .iter()
        .filter_map(|&d| {
            let ws = state.workstreams.get(d)?;
            Some(Handoff {
                workstream: ws.name.clone(),
                summary: ws.summary.clone(),
                files_changed: ws.files_changed.clone(),
                start: ws.base_commit.clone().or_else(|| ws.start_commit.clone()),
                result: ws.result_commit.clone(),
                test: ws.test.as_ref().map(|t| {
                    if t.passed {
                        format!("`{}` passed", t.command)
                    } else {
                        format!("`{}` failed: {}", t.command, t.detail)
                    }
                }),
                review: ws
                    .review
                    .as_ref()
                    .map(|r| format!("{} by `{}`: {}", r.verdict.as_str(), r.reviewer, r.comments)),
            })
        })
        .collect()
}
