//! The markdown status board (`worktree_status.md`), in the layout people following the
//! `.ai/coordination/` convention expect.

use std::fmt::Write;
use std::path::Path;

use crate::report::run_table::{dollars, tokens};
use crate::run::observer::Observer;
use crate::run::state::{Event, RunState};
use crate::site::Site;

/// Renders the board of a run.
pub fn markdown_board(state: &RunState) -> String {
    let mut out = format!("# Worktree status: {}\n\nRun `{}`", state.workflow, state.id);
    let _ = writeln!(out, ", {}. Integration branch `{}`.\n", state.status, state.into);
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

/// Keeps the markdown board up to date as a run goes: in the run folder
/// (`worktree_status.md`) and, following the `.ai/coordination/` convention, in every worktree
/// still in use (never in the user's checkout). Written at each checkpoint of the run, not at
/// every event.
pub struct BoardWriter {
    site: Site,
    /// The board's path inside a worktree (the workflow's `status-file`).
    status_file: String,
}

impl BoardWriter {
    /// A writer for the runs of a site, putting a copy at `status_file` in each worktree.
    pub fn for_site(site: &Site, status_file: &str) -> BoardWriter {
        BoardWriter {
            site: site.clone(),
            status_file: status_file.to_string(),
        }
    }

    fn write(&self, state: &RunState) {
        let board = markdown_board(state);
        let run_dir = self.site.run_dir(&state.id);
        let _ = std::fs::write(run_dir.dir.join("worktree_status.md"), &board);
        for ws in &state.workstreams {
            let (Some(dir), Some(_)) = (&ws.worktree, &ws.branch) else {
                continue;
            };
            if ws.phase.is_final() {
                continue;
            }
            let path = Path::new(dir).join(&self.status_file);
            // Flow's own `.ai/` folders ignore themselves; a board elsewhere is left to the user's rules.
            let ready = match path.parent() {
                Some(parent) if self.status_file.starts_with(".ai/") => crate::context::hide_from_git(parent).is_ok(),
                Some(parent) => std::fs::create_dir_all(parent).is_ok(),
                None => false,
            };
            if ready {
                let _ = std::fs::write(&path, &board);
            }
        }
    }
}

impl Observer for BoardWriter {
    fn event(&mut self, _state: &RunState, _event: &Event) {}

    fn checkpoint(&mut self, state: &RunState) {
        self.write(state);
    }
}
