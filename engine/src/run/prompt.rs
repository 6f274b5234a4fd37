//! What a workstream's agent is told, as a run tells it: the rendered context with what its
//! dependencies did (their handoffs, read from the latest run of the workflow), so that
//! `flow context` shows exactly what the agent sees.

use flow_dsl::Workflow;

use crate::context::{self, Context};
use crate::run::core::handoffs;
use crate::site::Site;

/// The context of workstream `index` as the latest run of its workflow would give it.
pub fn context_for(workflow: &Workflow, index: usize, site: &Site) -> Context {
    let state = site
        .runs()
        .into_iter()
        .rev()
        .filter_map(|id| site.run_dir(&id).load().ok())
        .find(|s| s.workflow == workflow.name && s.workstreams.len() == workflow.workstreams.len());
    let text = match &state {
        Some(state) => {
            let decisions = std::fs::read_to_string(site.run_dir(&state.id).decision_log_path()).unwrap_or_default();
            crate::handoff::render(
                &handoffs(workflow, state, index),
                site.git(),
                &decisions,
                workflow.workstreams[index].handoff_tokens,
            )
        }
        None => String::new(),
    };
    context::render_with(workflow, index, site.root(), &text)
}
