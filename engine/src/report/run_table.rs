//! The table of a run's workstreams, printed when a run ends and by `flow status`.

use std::fmt::Write;

use flow_dsl::format_duration;

use crate::run::state::{Phase, RunState, WorkstreamState};
use crate::time::{Timestamp, elapsed};

/// Formats a token count: `950`, `12.3k`, `4.1M`.
pub fn tokens(n: u64) -> String {
    match n {
        0 => "-".to_string(),
        n if n < 1_000 => n.to_string(),
        n if n < 1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        n => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Formats dollars, or `-` when unknown.
pub fn dollars(usd: Option<f64>) -> String {
    match usd {
        None => "-".to_string(),
        Some(u) if u > 0.0 && u < 0.01 => format!("${u:.4}"),
        Some(u) => format!("${u:.2}"),
    }
}

fn duration(ws: &WorkstreamState, now: Timestamp) -> String {
    match (ws.started_at, ws.ended_at) {
        (Some(s), Some(e)) => format_duration(elapsed(s, e)),
        (Some(s), None) if ws.phase.is_active() => format_duration(elapsed(s, now)),
        _ => "-".to_string(),
    }
}

fn test(ws: &WorkstreamState) -> &'static str {
    match &ws.test {
        Some(t) if t.passed => "passed",
        Some(_) => "FAILED",
        None => "-",
    }
}

fn commit(ws: &WorkstreamState) -> String {
    let short = |c: &String| c.chars().take(8).collect::<String>();
    match ws.phase {
        Phase::Merged => ws.merge_commit.as_ref().map_or("-".into(), short),
        _ => ws
            .result_commit
            .as_ref()
            .map_or("-".into(), |c| format!("{} (branch)", short(c))),
    }
}

/// Renders the table and, under it, the reason for every workstream that did not succeed;
/// `now` gives the running time of what is still under way.
pub fn run_table(state: &RunState, now: Timestamp) -> String {
    let rows: Vec<[String; 8]> = state
        .workstreams
        .iter()
        .map(|ws| {
            [
                ws.name.clone(),
                ws.phase.name().to_string(),
                duration(ws, now),
                if ws.files_changed.is_empty() {
                    "-".into()
                } else {
                    ws.files_changed.len().to_string()
                },
                test(ws).to_string(),
                tokens(ws.usage.total_tokens()),
                dollars(ws.usage.cost_usd),
                commit(ws),
            ]
        })
        .collect();
    let header = [
        "WORKSTREAM",
        "STATE",
        "TIME",
        "FILES",
        "TEST",
        "TOKENS",
        "COST",
        "COMMIT",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String]| -> String {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let _ = write!(l, "{:<width$}  ", cell, width = widths[i]);
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let total = state.total_usage();
    let _ = writeln!(
        out,
        "total: {} tokens, {}",
        tokens(total.total_tokens()),
        dollars(total.cost_usd)
    );
    for ws in &state.workstreams {
        let why = match (&ws.failure, &ws.reason) {
            (Some(f), _) => Some(f.message.clone()),
            (None, Some(r)) if !ws.phase.is_success() => Some(r.clone()),
            _ => None,
        };
        if let Some(why) = why {
            let _ = writeln!(out, "  {}: {why}", ws.name);
        }
    }
    out
}
