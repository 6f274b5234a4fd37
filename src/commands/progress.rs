//! What `flow run`, `flow resume` and `flow demo` show while a run goes and when it ends.

use std::io::IsTerminal;
use std::process::ExitCode;

use flow_engine::report::board::BoardWriter;
use flow_engine::report::progress::{BarProgress, PlainProgress};
use flow_engine::report::run_table::run_table;
use flow_engine::{Observer, Observers, Phase, RunState, RunStatus, Site};

use crate::cli::ProgressMode;

/// The observers of a run: progress in the chosen mode, and the markdown board.
pub fn observers(mode: ProgressMode, total: usize, site: &Site, run_status_file: &str) -> Observers {
    let terminal = std::io::stderr().is_terminal();
    let progress: Box<dyn Observer> = match mode {
        ProgressMode::Bars => Box::new(BarProgress::new(total)),
        ProgressMode::Auto if terminal => Box::new(BarProgress::new(total)),
        ProgressMode::Quiet => Box::new(PlainProgress::new(Box::new(std::io::sink()))),
        _ => Box::new(PlainProgress::new(Box::new(std::io::stderr()))),
    };
    Observers(vec![progress, Box::new(BoardWriter::for_site(site, run_status_file))])
}

/// Prints the final table and where to look; the exit code says whether everything succeeded.
pub fn finish(state: &RunState) -> ExitCode {
    let dir = std::path::Path::new(&state.repository)
        .join(".flow")
        .join("runs")
        .join(&state.id);
    let mut out = run_table(state, flow_engine::time::now());
    out.push_str(&format!(
        "run {} {}; logs in {}\n",
        state.id,
        status_word(state.status),
        dir.join("logs").display()
    ));
    if state.status != RunStatus::Succeeded {
        for ws in state.workstreams.iter().filter(|w| w.phase == Phase::Conflicted) {
            out.push_str(&format!(
                "to resolve `{0}`'s conflict yourself: `flow resolve {0}`, then commit it and resume\n",
                ws.name
            ));
        }
    }
    let code = match state.status {
        RunStatus::Succeeded => {
            out.push_str(&format!("merged into `{}`\n", state.into));
            ExitCode::SUCCESS
        }
        // As a shell reports a command ended by Ctrl-C.
        RunStatus::Cancelled => {
            out.push_str("continue with `flow resume`; see `flow status` for details\n");
            ExitCode::from(130)
        }
        _ => {
            out.push_str("continue with `flow resume`; see `flow status` for details\n");
            ExitCode::from(1)
        }
    };
    // A reader that went away (`| head`) loses the table, not the exit code.
    let _ = crate::output::print_stdout(&out);
    code
}

fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "is still running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "was interrupted",
    }
}
