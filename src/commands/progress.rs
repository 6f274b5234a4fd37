//! What `flow run`, `flow resume` and `flow demo` show while a run goes and when it ends.
//!
//! The plain progress lines are printed here rather than by the engine's `PlainProgress`:
//! they take the command line's colour and verbosity (the words come from the engine's
//! [`describe`], so both say the same thing).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use flow_engine::report::board::BoardWriter;
use flow_engine::report::progress::{BarProgress, describe};
use flow_engine::report::run_table::run_table;
use flow_engine::run::state::{Event, EventKind};
use flow_engine::{Action, LinesWanted, Observer, Observers, Phase, Plan, RunState, RunStatus, Site, plan_resume};

use crate::cli::ProgressMode;
use crate::output::{Stream, Tone, paint, print_stderr, print_stdout, quiet, verbose};
use crate::states::{paint_states, phase_tone, status_tone};

/// The observers of a run: progress in the chosen mode (`-q` makes `auto` quiet), and the
/// markdown board.
pub fn observers(mode: ProgressMode, total: usize, site: &Site, run_status_file: &str) -> Observers {
    let terminal = std::io::stderr().is_terminal();
    let mode = match mode {
        ProgressMode::Auto if quiet() => ProgressMode::Quiet,
        ProgressMode::Auto if terminal => ProgressMode::Bars,
        ProgressMode::Auto => ProgressMode::Plain,
        chosen => chosen,
    };
    let progress: Box<dyn Observer> = match mode {
        ProgressMode::Bars => Box::new(BarProgress::new(total)),
        ProgressMode::Quiet => Box::new(Lines::new(false)),
        _ => Box::new(Lines::new(true)),
    };
    Observers(vec![progress, Box::new(BoardWriter::for_site(site, run_status_file))])
}

/// One line per event on standard error, each with the time since the run started; with
/// `-v`, every line the agents print too. Quiet, only flow's own notices.
struct Lines {
    start: Instant,
    events: bool,
    width: Option<usize>,
}

impl Lines {
    fn new(events: bool) -> Lines {
        Lines {
            start: Instant::now(),
            events,
            width: None,
        }
    }

    fn write(&mut self, state: &RunState, who: Option<&str>, what: &str) {
        let width = *self.width.get_or_insert_with(|| {
            state
                .workstreams
                .iter()
                .map(|w| w.name.len())
                .max()
                .unwrap_or(0)
                .clamp(4, 24)
        });
        let t = self.start.elapsed().as_secs_f64();
        let time = format!("[{:>4}:{:05.2}]", (t / 60.0) as u64, t % 60.0);
        let who = format!("{:<width$}", who.unwrap_or("flow"));
        print_stderr(&format!("{} {who}  {what}\n", paint(Stream::Stderr, Tone::Dim, &time)));
    }
}

impl Observer for Lines {
    fn event(&mut self, state: &RunState, event: &Event) {
        if !self.events {
            return;
        }
        let Some((who, what)) = describe(state, event) else {
            return;
        };
        // What an event says can carry an agent's text (a failed test's last line): its
        // control characters go before flow's colour is added.
        let what: String = what.chars().filter(|c| !c.is_control()).collect();
        let what = match event_tone(&event.kind) {
            Some(tone) => paint(Stream::Stderr, tone, &what),
            None => what,
        };
        self.write(state, who.as_deref(), &what);
    }

    fn lines_wanted(&self) -> LinesWanted {
        if self.events && verbose() {
            LinesWanted::All
        } else {
            LinesWanted::Nothing
        }
    }

    fn lines(&mut self, state: &RunState, workstream: usize, lines: &str) {
        if !self.events || !verbose() {
            return;
        }
        let who = state.workstreams[workstream].name.clone();
        for line in lines.split_terminator('\n') {
            // The agent's text is untrusted: none of its control characters is printed.
            let text: String = line.chars().filter(|c| !c.is_control()).collect();
            self.write(
                state,
                Some(&who),
                &format!("{} {text}", paint(Stream::Stderr, Tone::Dim, "|")),
            );
        }
    }

    fn notice(&mut self, message: &str) {
        // Said whatever the progress mode: these are repairs and problems of flow itself.
        print_stderr(&format!("flow: {message}\n"));
    }
}

/// The colour of an event's line, if it has one.
fn event_tone(kind: &EventKind) -> Option<Tone> {
    match kind {
        EventKind::Failed { .. } | EventKind::Conflicted { .. } => Some(Tone::Bad),
        EventKind::Merged { .. } => Some(Tone::Good),
        EventKind::Alert { .. }
        | EventKind::Reset { .. }
        | EventKind::Retried { .. }
        | EventKind::IntegrationReset { .. } => Some(Tone::Warn),
        EventKind::Phase { phase, .. } => phase_tone(*phase),
        EventKind::RunEnded { status } => Some(status_tone(*status)),
        _ => None,
    }
}

/// Prints the final table and where to look; the exit code says whether everything
/// succeeded. `flow resume` is suggested only when it would keep something (a merge, a
/// finished agent's work): else it would run everything again, as a new run would.
pub fn finish(state: &RunState, plan: &Plan, site: &Site) -> ExitCode {
    let dir = std::path::Path::new(&state.repository)
        .join(".flow")
        .join("runs")
        .join(&state.id);
    let mut out = paint_states(&run_table(state, flow_engine::time::now()), state);
    out.push_str(&format!(
        "run {} {}; logs in {}\n",
        state.id,
        paint(Stream::Stdout, status_tone(state.status), status_word(state.status)),
        dir.join("logs").display()
    ));
    if state.status != RunStatus::Succeeded {
        for ws in &state.workstreams {
            if let Some(hint) = hint(ws) {
                out.push_str(&hint);
                out.push('\n');
            }
        }
    }
    let code = match state.status {
        RunStatus::Succeeded => {
            out.push_str(&format!("merged into `{}`\n", state.into));
            ExitCode::SUCCESS
        }
        status => {
            if !quiet() {
                let keeps = plan_resume(plan, site, Some(&state.id))
                    .is_ok_and(|resume| resume.decided.decisions.iter().any(|d| d.action != Action::Run));
                if keeps {
                    out.push_str(
                        "continue with `flow resume` (it keeps what is done); see `flow status` for details\n",
                    );
                } else {
                    out.push_str("see `flow status` for details\n");
                }
            }
            // As a shell reports a command ended by Ctrl-C.
            if status == RunStatus::Cancelled {
                ExitCode::from(crate::error::INTERRUPTED)
            } else {
                ExitCode::from(crate::error::FAILED)
            }
        }
    };
    // A reader that went away (`| head`) loses the table, not the exit code.
    let _ = print_stdout(&out);
    code
}

/// What to do about workstream `ws`'s failure, when its kind says more than `flow status`.
fn hint(ws: &flow_engine::run::state::WorkstreamState) -> Option<String> {
    use flow_engine::run::state::FailureKind;
    let name = &ws.name;
    if ws.phase == Phase::Conflicted {
        return Some(format!(
            "to resolve `{name}`'s conflict yourself: `flow resolve {name}`, then commit it and resume (or set a `resolver` in `integrate`)"
        ));
    }
    let failure = ws.failure.as_ref().filter(|_| ws.phase == Phase::Failed)?;
    Some(match failure.kind {
        FailureKind::Scope => format!(
            "`{name}` changed files outside its scope (listed in `flow status`): if they are its work, add them to its `owns`; else say so in its task; then `flow resume`"
        ),
        FailureKind::Setup => format!(
            "`{name}` could not start: {}; its setup's output: `flow logs {name} --setup`",
            failure.message
        ),
        FailureKind::Integrity => format!(
            "`{name}` did what an agent must not (see `flow status`); nothing of it merged, and flow undid what it could"
        ),
        FailureKind::Test | FailureKind::Verify | FailureKind::Review => format!(
            "`{name}` still failed its {} after its fixes: its log is `flow logs {name}`; raise `fix-attempts` or change its task, then `flow resume`",
            failure.kind.as_str()
        ),
        FailureKind::Budget => {
            format!("`{name}` ran out of budget: raise `budget` in the workflow, then `flow resume`")
        }
        _ => return None,
    })
}

fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "is still running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "was interrupted",
    }
}
