//! Handoffs: what a dependent workstream's agent is told about the work it builds on — for
//! each dependency, its agent's final message, the files it changed with a diffstat, its
//! commits, its test and review, and the decisions logged about it — fitted to the
//! workstream's `handoff-tokens` (about 4 characters a token).

use std::fmt::Write;

use serde::Serialize;

use crate::git::{Git, Oid};

/// What a dependency did, as its dependents' context tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handoff {
    pub workstream: String,
    /// Its agent's final message.
    pub summary: Option<String>,
    pub files_changed: Vec<String>,
    /// Where its branch started and ended, for its commits and diffstat.
    pub start: Option<String>,
    pub result: Option<String>,
    /// Its test, in words.
    pub test: Option<String>,
    /// Its review, in words.
    pub review: Option<String>,
}

/// Characters per token, for fitting text to a token budget.
const CHARS_PER_TOKEN: usize = 4;

/// The "what your dependencies did" section of a prompt: empty without handoffs. `git` adds
/// commits and line counts; `decisions` is the run's decision log, whose entries about a
/// dependency are quoted with it.
pub fn render(handoffs: &[Handoff], git: Option<&Git>, decisions: &str, budget_tokens: u32) -> String {
    if handoffs.is_empty() || budget_tokens == 0 {
        return String::new();
    }
    let budget = budget_tokens as usize * CHARS_PER_TOKEN;
    let share = budget / handoffs.len();
    let mut out = String::from("## What your dependencies did\n\n");
    for handoff in handoffs {
        let mut part = format!("### `{}`\n\n", handoff.workstream);
        if let Some(summary) = handoff.summary.as_deref().filter(|s| !s.trim().is_empty()) {
            let _ = writeln!(part, "Its agent's summary:\n\n{}\n", summary.trim());
        }
        let range = match (&handoff.start, &handoff.result) {
            (Some(s), Some(r)) => s.parse::<Oid>().ok().zip(r.parse::<Oid>().ok()),
            _ => None,
        };
        let stats = match (git, range) {
            (Some(g), Some((s, r))) => g.diffstat(s, r).unwrap_or_default(),
            _ => vec![],
        };
        if !stats.is_empty() {
            let _ = writeln!(part, "Files changed ({}):", stats.len());
            for stat in &stats {
                let _ = writeln!(part, "- `{}` (+{} -{})", stat.path, stat.added, stat.removed);
            }
            part.push('\n');
        } else if !handoff.files_changed.is_empty() {
            let _ = writeln!(part, "Files changed ({}):", handoff.files_changed.len());
            for file in &handoff.files_changed {
                let _ = writeln!(part, "- `{file}`");
            }
            part.push('\n');
        }
        if let (Some(g), Some((s, r))) = (git, range)
            && let Ok(commits) = g.commit_subjects(s, r, 20)
            && !commits.is_empty()
        {
            let _ = writeln!(part, "Commits:");
            for commit in commits {
                let _ = writeln!(part, "- {commit}");
            }
            part.push('\n');
        }
        if let Some(test) = &handoff.test {
            let _ = writeln!(part, "Test: {test}\n");
        }
        if let Some(review) = &handoff.review {
            let _ = writeln!(part, "Review: {review}\n");
        }
        let about = decisions_about(decisions, &handoff.workstream);
        if !about.is_empty() {
            let _ = writeln!(part, "Decisions about it:\n\n{about}\n");
        }
        out.push_str(&fit(&part, share));
    }
    out
}

/// The decision-log entries (`## ...` sections) that name `workstream`.
pub fn decisions_about(log: &str, workstream: &str) -> String {
    let needle = format!("`{workstream}`");
    log.split("\n## ")
        .filter(|entry| entry.contains(&needle))
        .map(|entry| {
            let entry = entry.trim_start_matches("## ").trim();
            format!("## {entry}")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `text` cut to `limit` characters, marked where it was cut.
fn fit(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let kept: String = text.chars().take(limit.saturating_sub(60)).collect();
    format!("{kept}\n[... cut to fit the workstream's handoff-tokens]\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(name: &str, summary: &str) -> Handoff {
        Handoff {
            workstream: name.into(),
            summary: Some(summary.into()),
            files_changed: vec!["a.txt".into()],
            start: None,
            result: None,
            test: Some("`make test` passed".into()),
            review: None,
        }
    }

    #[test]
    fn each_dependency_gets_its_share_of_the_budget() {
        let long = "word ".repeat(2000);
        let text = render(
            &[handoff("api", &long), handoff("db", "Added the schema.")],
            None,
            "",
            500,
        );
        assert!(text.contains("### `api`") && text.contains("### `db`"), "{text}");
        assert!(text.contains("Added the schema."), "{text}");
        assert!(text.contains("cut to fit"), "{text}");
        assert!(text.len() <= 500 * 4 + 200, "{}", text.len());
        assert_eq!(render(&[], None, "", 500), "");
    }

    #[test]
    fn decisions_about_a_dependency_are_quoted() {
        let log = "# Decisions\n\n## `api` and the integration branch\n\n- files: x\n\n## `web` and the integration branch\n\n- files: y\n";
        let about = decisions_about(log, "api");
        assert!(about.contains("`api`") && !about.contains("`web`"), "{about}");
        let text = render(&[handoff("api", "done")], None, log, 1000);
        assert!(text.contains("Decisions about it"), "{text}");
    }
}
