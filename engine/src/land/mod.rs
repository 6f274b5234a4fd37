//! Landing a run: the integration branch pushed with the git CLI
//! ([`crate::exchange::push_branch`]), then its pull request opened or updated on GitHub
//! ([`github`]), whose body is the run's summary ([`summary`]).

pub mod github;

use std::fmt::Write;

use crate::report::run_table::{dollars, tokens};
use crate::run::state::{Verdict, WorkstreamState};

/// The most characters of one agent's text the summary keeps.
const AGENT_TEXT_LIMIT: usize = 1500;
/// GitHub refuses a body over 65,536 characters; the summary stays under it.
const BODY_LIMIT: usize = 60_000;

/// What a summary is made from: a run's record, or the results its jobs pushed.
pub struct SummaryInput<'a> {
    pub workflow: &'a str,
    pub into: &'a str,
    /// Where it came from ("run 2026…", "the results pushed to origin").
    pub source: String,
    pub workstreams: Vec<&'a WorkstreamState>,
    pub decision_log: Option<String>,
}

/// Text an agent wrote, shown as text and never rendered: in a fence longer than any run of
/// backticks in it (so it cannot close the fence, mention people or load images), cut to a
/// length.
fn verbatim(text: &str) -> String {
    let mut cut: String = text.chars().take(AGENT_TEXT_LIMIT).collect();
    if cut.len() < text.len() {
        cut.push_str("\n[...]");
    }
    let longest = cut.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{}\n{fence}\n", cut.trim_end())
}

/// The pull request body: a table of the workstreams (state, files, test, review, tokens,
/// cost), then what each did, then the decision log.
pub fn summary(input: &SummaryInput<'_>) -> String {
    let mut out = format!(
        "Integration branch `{}` of workflow `{}`, landed by flow from {}.\n\n",
        input.into, input.workflow, input.source
    );
    out.push_str("| Workstream | State | Files | Test | Review | Tokens | Cost |\n|---|---|---|---|---|---|---|\n");
    let mut total_tokens = 0;
    let mut total_cost: Option<f64> = None;
    for ws in &input.workstreams {
        let test = match &ws.test {
            Some(t) if t.passed => "passed",
            Some(_) => "failed",
            None => "-",
        };
        let review = match &ws.review {
            Some(r) if r.verdict == Verdict::Approve => "approved",
            Some(_) => "changes requested",
            None => "-",
        };
        total_tokens += ws.usage.total_tokens();
        if let Some(cost) = ws.usage.cost_usd {
            *total_cost.get_or_insert(0.0) += cost;
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {test} | {review} | {} | {} |",
            ws.name,
            ws.phase,
            ws.files_changed.len(),
            tokens(ws.usage.total_tokens()),
            dollars(ws.usage.cost_usd)
        );
    }
    let _ = writeln!(
        out,
        "| **total** | | | | | {} | {} |\n",
        tokens(total_tokens),
        dollars(total_cost)
    );
    for ws in &input.workstreams {
        let _ = writeln!(out, "### `{}`\n", ws.name);
        if !ws.files_changed.is_empty() {
            let files: Vec<String> = ws.files_changed.iter().take(50).map(|f| format!("`{f}`")).collect();
            let more = ws.files_changed.len().saturating_sub(50);
            let _ = write!(out, "Files: {}", files.join(", "));
            if more > 0 {
                let _ = write!(out, " and {more} more");
            }
            out.push_str("\n\n");
        }
        if let Some(test) = &ws.test {
            let _ = writeln!(
                out,
                "Test: {} ({})\n",
                if test.passed { "passed" } else { "failed" },
                test.detail
            );
        }
        if let Some(summary) = ws.summary.as_deref().filter(|s| !s.trim().is_empty()) {
            out.push_str("What its agent said it did:\n\n");
            out.push_str(&verbatim(summary));
            out.push('\n');
        }
        if let Some(review) = &ws.review {
            let verdict = match review.verdict {
                Verdict::Approve => "approved",
                Verdict::ChangesRequested => "asked for changes",
            };
            let _ = writeln!(out, "Review by `{}`: {verdict}\n", review.reviewer);
            if !review.comments.trim().is_empty() {
                out.push_str(&verbatim(&review.comments));
                out.push('\n');
            }
        }
    }
    match input.decision_log.as_deref().filter(|l| !l.trim().is_empty()) {
        Some(log) => {
            out.push_str("### Decision log\n\n");
            out.push_str(&verbatim(log));
        }
        None => out.push_str("### Decision log\n\nNo conflict had to be resolved.\n"),
    }
    if out.len() > BODY_LIMIT {
        let mut end = BODY_LIMIT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str("\n\n[summary cut: `flow status` has the rest]\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_cannot_close_its_fence() {
        let hostile = "done\n```\n@org/everyone ![x](https://evil.test/x.png)\n````";
        let shown = verbatim(hostile);
        assert!(shown.starts_with("`````text\n"), "{shown}");
        assert!(shown.ends_with("\n`````\n"), "{shown}");
        assert_eq!(shown.matches("`````").count(), 2, "{shown}");
    }

    #[test]
    fn agent_text_is_cut_to_its_limit() {
        let long = "x".repeat(AGENT_TEXT_LIMIT * 3);
        let shown = verbatim(&long);
        assert!(shown.len() < AGENT_TEXT_LIMIT + 40, "{}", shown.len());
        assert!(shown.contains("[...]"));
    }
}
