//! The colours of run and workstream states, shared by the progress lines, the final table
//! and `flow status`.

use flow_engine::{Phase, RunState, RunStatus};

use crate::output::{Stream, Tone, paint};

/// The tone of a run's status, for its colour.
pub fn status_tone(status: RunStatus) -> Tone {
    match status {
        RunStatus::Succeeded => Tone::Good,
        RunStatus::Failed => Tone::Bad,
        RunStatus::Cancelled => Tone::Warn,
        RunStatus::Running => Tone::Busy,
    }
}

/// The colour of a workstream's state.
pub fn phase_tone(phase: Phase) -> Option<Tone> {
    match phase {
        Phase::Merged | Phase::Done => Some(Tone::Good),
        Phase::Failed | Phase::Conflicted => Some(Tone::Bad),
        Phase::Cancelled | Phase::Skipped => Some(Tone::Warn),
        Phase::Pending => Some(Tone::Dim),
        Phase::Preparing
        | Phase::Running
        | Phase::Checking
        | Phase::Fixing
        | Phase::Reviewing
        | Phase::Resolving
        | Phase::Ready
        | Phase::Merging => Some(Tone::Busy),
    }
}

/// Colours the STATE column of a run table (the engine's
/// [`run_table`](flow_engine::report::run_table::run_table)) for standard output: the column
/// is found under its title, and a cell is painted only where the row holds exactly its
/// workstream's state there, so a table of another shape stays as it is.
pub fn paint_states(table: &str, state: &RunState) -> String {
    let mut lines = table.split_inclusive('\n');
    let Some(header) = lines.next() else {
        return table.to_string();
    };
    let Some(column) = header.find("STATE") else {
        return table.to_string();
    };
    let mut out = header.to_string();
    for (i, line) in lines.enumerate() {
        let phase = state.workstreams.get(i).map(|w| w.phase);
        let painted = phase.and_then(|phase| {
            let name = phase.name();
            let (before, after) = (line.get(..column)?, line.get(column..)?);
            let rest = after.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('\n') || rest.is_empty()) {
                return None;
            }
            Some(format!(
                "{before}{}{rest}",
                paint(Stream::Stdout, phase_tone(phase)?, name)
            ))
        });
        out.push_str(&painted.unwrap_or_else(|| line.to_string()));
    }
    out
}
