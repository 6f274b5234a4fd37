//! The markdown status board (`worktree_status.md`), in the layout people following the
//! `.ai/coordination/` convention expect.

use std::fmt::Write;

use crate::report::run_table::{dollars, tokens};
use crate::run::state::RunState;

/// Renders the board of a run.
pub fn markdown_board(state: &RunState) -> String {
    let mut out = format!("# Worktree status: {}\n\nRun `{}`", state.workflow, state.id);
    let status = state.status.as_str();
    let _ = writeln!(out, ", {status}. Integration branch `{}`.\n", state.into);
    out.push_str("| Workstream | State | Branch | Files changed | Tests | Ready to merge | Merged | Tokens | Cost |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for ws in &state.workstreams {
        let tests = match &ws.test {
            Some(t) if t.passed => "passed",
            Some(_) => "failed",
            None => "-",
        };
        let ready = matches!(
            ws.phase,
            crate::run::state::Phase::Ready | crate::run::state::Phase::Merging
        );
        let merged = ws
            .merge_commit
            .as_ref()
            .map_or("-".to_string(), |c| format!("`{}`", &c[..c.len().min(8)]));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {tests} | {} | {merged} | {} | {} |",
            ws.name,
            ws.phase,
            ws.branch.as_ref().map_or("-".to_string(), |b| format!("`{b}`")),
            ws.files_changed.len(),
            if ready { "yes" } else { "no" },
            tokens(ws.usage.total_tokens()),
            dollars(ws.usage.cost_usd)
        );
    }
    let problems: Vec<String> = state
        .workstreams
        .iter()
        .filter_map(|w| w.failure.as_ref().map(|f| format!("- **{}**: {}", w.name, f.message)))
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\n## Problems\n\n{}", problems.join("\n"));
    }
    out
}
