//! The table of a run's workstreams, printed when a run ends and by `flow status`.

use std::fmt::Write;

use flow_dsl::format_duration;

use crate::run::state::{Phase, RunState, Verdict, WorkstreamState};
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
    for breach in &state.overruns {
        let _ = writeln!(out, "OVER BUDGET: {}", breach.overrun());
    }
    out.push_str(&attempts(state));
    out
}

/// Every agent attempt of the workstreams that needed more than one, and every review:
/// what each attempt was for, what it was told to fix, what it spent and how it ended.
/// Empty when every workstream got through on its first attempt without a reviewer.
pub fn attempts(state: &RunState) -> String {
    let mut out = String::new();
    for ws in &state.workstreams {
        if ws.attempt_log.len() < 2 && ws.review.is_none() {
            continue;
        }
        if out.is_empty() {
            out.push_str("\nattempts:\n");
        }
        for (i, a) in ws.attempt_log.iter().enumerate() {
            let name = if i == 0 { ws.name.as_str() } else { "" };
            let what = match a.feedback {
                Some(kind) => format!("{} ({})", a.purpose.as_str(), kind.as_str()),
                None => a.purpose.as_str().to_string(),
            };
            let time = a
                .ended_at
                .map_or("-".to_string(), |e| format_duration(elapsed(a.started_at, e)));
            let end = match (&a.error, a.ended_at) {
                (Some(e), _) => format!("failed: {e}"),
                (None, Some(_)) => "ok".to_string(),
                (None, None) => "under way or cut".to_string(),
            };
            let _ = writeln!(
                out,
                "  {name:<16} #{:<2} {what:<18} {time:>7}  {:>7} tokens  {:>8}  {end}",
                a.number,
                tokens(a.usage.total_tokens()),
                dollars(a.usage.cost_usd),
            );
        }
        if let Some(review) = &ws.review {
            let verdict = match review.verdict {
                Verdict::Approve => "approved",
                Verdict::ChangesRequested => "changes requested",
            };
            let first = review.comments.lines().next().unwrap_or("").trim();
            let _ = writeln!(
                out,
                "  {:<16} review by {}: {verdict}{}{first}",
                if ws.attempt_log.is_empty() {
                    ws.name.as_str()
                } else {
                    ""
                },
                review.reviewer,
                if first.is_empty() { "" } else { ": " },
            );
        }
    }
    out
}
