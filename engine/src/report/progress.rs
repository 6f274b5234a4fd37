//! Live progress of a run: bars on a terminal, timestamped lines elsewhere (CI, pipes).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::run_table::{dollars, tokens};
use crate::run::observer::{LinesWanted, Observer};
use crate::run::state::{Event, EventKind, FeedbackKind, Phase, Purpose, RunState};

/// The first non-empty line of a text, for one-line progress.
fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// One line per event, each with the time since the run started.
pub struct PlainProgress {
    start: Instant,
    out: Box<dyn Write + Send>,
    width: usize,
}

impl PlainProgress {
    /// Writes progress lines to `out` (usually standard error).
    pub fn new(out: Box<dyn Write + Send>) -> PlainProgress {
        PlainProgress {
            start: Instant::now(),
            out,
            width: 12,
        }
    }
}

/// Describes an event in a few words, or nothing for events not worth a line.
pub fn describe(state: &RunState, event: &Event) -> Option<(Option<String>, String)> {
    let name = |i: &usize| Some(state.workstreams[*i].name.clone());
    Some(match &event.kind {
        EventKind::RunStarted { resumed, .. } => (
            None,
            format!(
                "{} run {} of workflow `{}`",
                if *resumed { "resumed" } else { "started" },
                state.id,
                state.workflow
            ),
        ),
        EventKind::Phase {
            workstream,
            phase,
            reason,
        } => {
            if matches!(phase, Phase::Running | Phase::Merging) {
                return None;
            }
            let reason = reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            (name(workstream), format!("{phase}{reason}"))
        }
        EventKind::Prepared {
            workstream,
            branch,
            worktree,
            ..
        } => {
            let at = branch.clone().unwrap_or_else(|| "scratch folder".into());
            let _ = worktree;
            (name(workstream), format!("prepared ({at})"))
        }
        EventKind::AttemptStarted {
            workstream,
            attempt,
            purpose,
            feedback,
        } => {
            let of = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            let what = match (purpose, feedback) {
                (Purpose::Work, _) => format!("running{of}"),
                // The note just before said what failed.
                (Purpose::Fix, Some(f)) => format!(
                    "fixing{of}, given {}",
                    match f.kind {
                        FeedbackKind::Test => "the test's output",
                        FeedbackKind::Scope => "the paths outside its scope",
                        FeedbackKind::Verify => "verify's output",
                        FeedbackKind::Conflict => "the conflicting hunks",
                        FeedbackKind::Review => "the reviewer's comments",
                        FeedbackKind::Message => "a person's message",
                    }
                ),
                (Purpose::Fix, None) => format!("fixing again{of}"),
                (Purpose::Review, _) => format!("in review{of}"),
                (Purpose::Resolve, _) => format!("the resolver works on its conflict{of}"),
            };
            (name(workstream), what)
        }
        EventKind::Reviewed { workstream, review } => (
            name(workstream),
            format!("review: {} ({})", review.verdict.as_str(), first_line(&review.comments)),
        ),
        EventKind::Synced {
            workstream, conflicts, ..
        } => (
            name(workstream),
            if conflicts.is_empty() {
                "brought the integration branch in".to_string()
            } else {
                format!(
                    "brought the integration branch in: conflicts in {}",
                    conflicts.join(", ")
                )
            },
        ),
        EventKind::AttemptEnded {
            workstream,
            usage,
            error,
            ..
        } => {
            let spent = if usage.total_tokens() > 0 {
                format!(", {} tokens, {}", tokens(usage.total_tokens()), dollars(usage.cost_usd))
            } else {
                String::new()
            };
            let how = error
                .as_ref()
                .map_or("agent finished".to_string(), |e| format!("agent failed: {e}"));
            (name(workstream), format!("{how}{spent}"))
        }
        EventKind::Checked {
            workstream,
            files_changed,
            test,
            ..
        } => {
            let test = test.as_ref().map_or(String::new(), |t| {
                if t.passed {
                    ", test passed".into()
                } else {
                    ", test FAILED".into()
                }
            });
            (
                name(workstream),
                format!(
                    "checked: {} file{} changed{test}",
                    files_changed.len(),
                    if files_changed.len() == 1 { "" } else { "s" }
                ),
            )
        }
        EventKind::Failed { workstream, failure } => (name(workstream), format!("FAILED: {}", failure.message)),
        EventKind::Merged {
            workstream,
            merge_commit,
            verify,
        } => {
            let verified = if verify.is_some() { ", verified" } else { "" };
            (
                name(workstream),
                format!("merged as {}{verified}", &merge_commit[..merge_commit.len().min(8)]),
            )
        }
        EventKind::Conflicted { workstream, paths } => (name(workstream), format!("CONFLICT in {}", paths.join(", "))),
        EventKind::Alert { workstream, message } => (workstream.as_ref().and_then(name), format!("note: {message}")),
        // Said by the alert recorded with it.
        EventKind::Told { .. } => return None,
        EventKind::Overrun { workstream, breach } => (name(workstream), format!("OVER BUDGET: {}", breach.overrun())),
        EventKind::RunEnded { status } => (None, format!("run ended: {status}")),
        EventKind::Usage { .. } => return None,
        EventKind::Reset { workstream, reason, .. } => (name(workstream), format!("runs again: {reason}")),
        EventKind::Retried { workstream, reason } => (name(workstream), format!("runs again: {reason}")),
        EventKind::IntegrationReset { commit, reason } => (
            None,
            format!(
                "integration branch moved back to {}: {reason}",
                &commit[..commit.len().min(8)]
            ),
        ),
    })
}

impl Observer for PlainProgress {
    fn event(&mut self, state: &RunState, event: &Event) {
        if self.width == 12 {
            self.width = state
                .workstreams
                .iter()
                .map(|w| w.name.len())
                .max()
                .unwrap_or(0)
                .clamp(4, 24);
        }
        let Some((who, what)) = describe(state, event) else {
            return;
        };
        let t = self.start.elapsed().as_secs_f64();
        let who = who.unwrap_or_else(|| "flow".to_string());
        let _ = writeln!(
            self.out,
            "[{:>4}:{:05.2}] {who:<width$}  {what}",
            (t / 60.0) as u64,
            t % 60.0,
            width = self.width
        );
    }

    fn notice(&mut self, message: &str) {
        // Said whatever the progress mode: these are repairs and problems of flow itself.
        eprintln!("flow: {message}");
    }

    fn finish(&mut self, _state: &RunState) {
        let _ = self.out.flush();
    }
}

/// A bar per active workstream and an overall bar, on a terminal.
pub struct BarProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: HashMap<usize, ProgressBar>,
    /// Finished bars are kept alive: a dropped bar can vanish from the screen.
    finished: Vec<ProgressBar>,
    style: ProgressStyle,
    width: usize,
}

impl BarProgress {
    /// Draws to standard error.
    pub fn new(total: usize) -> BarProgress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} finished {msg}")
                .expect("the overall template is valid")
                .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        let style = ProgressStyle::with_template("{spinner:.green} {prefix:.bold} {elapsed:>5} {wide_msg}")
            .expect("the bar template is valid");
        BarProgress {
            multi,
            overall,
            bars: HashMap::new(),
            finished: vec![],
            style,
            width: 12,
        }
    }

    fn bar(&mut self, index: usize, state: &RunState) -> &ProgressBar {
        let width = self.width;
        let style = self.style.clone();
        let multi = self.multi.clone();
        self.bars.entry(index).or_insert_with(|| {
            let bar = multi.insert_from_back(1, ProgressBar::new_spinner());
            bar.set_style(style);
            bar.set_prefix(format!("{:<width$}", state.workstreams[index].name));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }
}

impl Observer for BarProgress {
    fn event(&mut self, state: &RunState, event: &Event) {
        if self.bars.is_empty() && self.finished.is_empty() {
            self.width = state
                .workstreams
                .iter()
                .map(|w| w.name.len())
                .max()
                .unwrap_or(0)
                .clamp(4, 24);
        }
        let finished = state.workstreams.iter().filter(|w| w.phase.is_final()).count();
        self.overall.set_position(finished as u64);
        let total = state.total_usage();
        self.overall.set_message(if total.total_tokens() > 0 {
            format!(
                "· {} tokens · {}",
                tokens(total.total_tokens()),
                dollars(total.cost_usd)
            )
        } else {
            String::new()
        });
        let workstream = match &event.kind {
            EventKind::Phase { workstream, .. }
            | EventKind::Prepared { workstream, .. }
            | EventKind::AttemptStarted { workstream, .. }
            | EventKind::AttemptEnded { workstream, .. }
            | EventKind::Checked { workstream, .. }
            | EventKind::Failed { workstream, .. }
            | EventKind::Merged { workstream, .. }
            | EventKind::Conflicted { workstream, .. }
            | EventKind::Usage { workstream, .. } => *workstream,
            EventKind::Alert { message, .. } => {
                self.multi.suspend(|| eprintln!("note: {message}"));
                return;
            }
            EventKind::Overrun { breach, .. } => {
                self.multi.suspend(|| eprintln!("OVER BUDGET: {}", breach.overrun()));
                return;
            }
            _ => return,
        };
        let ws = &state.workstreams[workstream];
        if ws.phase == Phase::Pending {
            return;
        }
        let summary = match &event.kind {
            EventKind::Usage { usage, .. } => format!(
                "{} · {} tokens · {}",
                ws.phase,
                tokens(usage.total_tokens()),
                dollars(usage.cost_usd)
            ),
            _ => describe(state, event)
                .map(|(_, what)| what)
                .unwrap_or_else(|| ws.phase.to_string()),
        };
        let bar = self.bar(workstream, state).clone();
        bar.set_message(summary);
        if ws.phase.is_final() {
            bar.finish();
            if let Some(b) = self.bars.remove(&workstream) {
                self.finished.push(b);
            }
        }
    }

    fn lines_wanted(&self) -> LinesWanted {
        LinesWanted::Last
    }

    fn lines(&mut self, state: &RunState, workstream: usize, lines: &str) {
        // A bar shows the newest line only: the others of the same read would be overwritten
        // at once.
        let Some(line) = lines.split_terminator('\n').next_back() else {
            return;
        };
        let ws = &state.workstreams[workstream];
        let spent = if ws.usage.total_tokens() > 0 {
            format!(" · {} tok", tokens(ws.usage.total_tokens()))
        } else {
            String::new()
        };
        let text: String = line.chars().filter(|c| !c.is_control()).take(120).collect();
        let bar = self.bar(workstream, state).clone();
        bar.set_message(format!("{}{spent} · {text}", ws.phase));
    }

    fn notice(&mut self, message: &str) {
        self.multi.suspend(|| eprintln!("flow: {message}"));
    }

    fn finish(&mut self, _state: &RunState) {
        self.overall.finish();
        for bar in self.bars.values() {
            bar.finish();
        }
        let _ = self.multi.clear();
    }
}
