//! What a workstream's agent is told, as a run tells it: the rendered context with what its
//! dependencies did (their handoffs, read from the latest run of the workflow, or from the
//! record of those finished by hand with `flow done`), so that `flow context` and
//! `flow open` show exactly what the agent sees.

use flow_dsl::Workflow;

use crate::by_hand::record::{ByHandRecord, DoneState};
use crate::context::{self, Context};
use crate::handoff::Handoff;
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
    let (mut list, decisions) = match &state {
        Some(state) => (
            handoffs(workflow, state, index),
            std::fs::read_to_string(site.run_dir(&state.id).decision_log_path()).unwrap_or_default(),
        ),
        None => (vec![], String::new()),
    };
    // A dependency finished by hand (`flow done`) hands off what it merged.
    for &d in &workflow.workstreams[index].dependencies {
        if let Some(handoff) = by_hand_handoff(workflow, d, site) {
            match list.iter_mut().find(|h| h.workstream == handoff.workstream) {
                Some(h) => *h = handoff,
                None => list.push(handoff),
            }
        }
    }
    let text = crate::handoff::render(
        &list,
        site.git(),
        &decisions,
        workflow.workstreams[index].handoff_tokens,
    );
    context::render_with(workflow, index, site.root(), &text)
}

/// The handoff of workstream `index` when `flow done` merged it: its commits from where its
/// work started to the head that merged, and its test.
fn by_hand_handoff(workflow: &Workflow, index: usize, site: &Site) -> Option<Handoff> {
    let ws = &workflow.workstreams[index];
    let record = ByHandRecord::load(site.flow_dir(), &workflow.name, &ws.name).ok()?;
    let done = record.done.filter(|d| d.state == DoneState::Merged)?;
    Some(Handoff {
        workstream: ws.name.clone(),
        summary: None,
        files_changed: vec![],
        start: done.start,
        result: Some(done.head),
        test: ws.test.as_ref().map(|t| format!("`{t}` passed")),
        review: None,
    })
}
