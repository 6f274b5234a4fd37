//! `flow status`, `flow logs`, `flow runs`: reading what runs recorded.

use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;

use flow_dsl::format_duration;
use flow_engine::report::board::markdown_board;
use flow_engine::report::run_table::{dollars, run_table, tokens};
use flow_engine::time::{elapsed, now};
use flow_engine::{RunDir, RunState, RunStatus, Site};

use crate::cli::{LogsArgs, RunsArgs, StatusArgs, UsageArgs};
use crate::error::CommandError;
use crate::output::{
    JSON_VERSION, Stream, Table, paint, print_json, print_json_line, print_stdout, print_versioned, say,
};
use crate::states::{paint_states, status_tone};

/// How many runs an unknown run's message lists.
const RECENT: usize = 5;

/// Finds a recorded run: the one named, else the latest. A name that is not a run says so
/// and lists the recent runs; a record that cannot be read is the system's failure.
pub fn load_run(site: &Site, run: Option<&str>) -> Result<(RunDir, RunState), CommandError> {
    let id = match run {
        Some(id) => id.to_string(),
        None => site.latest_run().ok_or_else(|| {
            CommandError::Usage(miette::miette!(
                help = "start one with `flow run`",
                "no run recorded in {}",
                site.flow_dir().display()
            ))
        })?,
    };
    // A run is a folder of `.flow/runs/`: a name with a separator or `..` is none of them.
    let plain = !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\']);
    let run_dir = site.run_dir(&id);
    if !plain || !run_dir.state_path().is_file() {
        let mut recent = site.runs();
        recent.reverse();
        let help = if recent.is_empty() {
            "no run is recorded yet: start one with `flow run`".to_string()
        } else {
            let more = if recent.len() > RECENT { ", ..." } else { "" };
            format!(
                "recent runs, newest first: {}{more} (`flow runs` lists them all)",
                recent.iter().take(RECENT).cloned().collect::<Vec<_>>().join(", ")
            )
        };
        let runs = site.flow_dir().join("runs");
        return Err(CommandError::Usage(match run {
            Some(_) => miette::miette!(help = help, "no run `{id}` in {}", runs.display()),
            None => miette::miette!(
                help = help,
                "the latest run, `{id}`, has no record in {}",
                runs.display()
            ),
        }));
    }
    let state = run_dir
        .load()
        .map_err(|e| CommandError::System(miette::miette!("cannot read run {id}: {e}")))?;
    Ok((run_dir, state))
}

/// Prints where a run stands; with no run recorded yet, what `flow runs` prints.
pub fn status(args: StatusArgs, site: &Site) -> Result<ExitCode, CommandError> {
    if args.run.id().is_none() && site.latest_run().is_none() && !args.markdown {
        return runs(RunsArgs { json: args.json }, site);
    }
    let (run_dir, state) = load_run(site, args.run.id())?;
    if args.watch {
        return watch_status(&run_dir, state);
    }
    if args.json {
        print_json(&state)?;
    } else if args.markdown {
        print_stdout(&markdown_board(&state))?;
    } else {
        print_stdout(&status_text(&state))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The status table of a run with its heading and notes.
fn status_text(state: &RunState) -> String {
    let mut out = format!(
        "run {} of workflow `{}`: {}\n",
        state.id,
        state.workflow,
        paint(Stream::Stdout, status_tone(state.status), state.status.as_str())
    );
    out.push_str(&format!(
        "integration branch {} at {}\n\n",
        state.into,
        state.last_good.as_deref().map_or("-", |c| &c[..c.len().min(8)])
    ));
    out.push_str(&paint_states(&run_table(state, now()), state));
    if !state.alerts.is_empty() {
        out.push_str("\nnotes:\n");
        for alert in &state.alerts {
            out.push_str(&format!("  {alert}\n"));
        }
    }
    out
}

/// `flow status --watch`: the table redrawn in place (on a terminal; printed again after a
/// blank line elsewhere) once a second while the run goes on, and a last time at its end.
fn watch_status(run_dir: &RunDir, mut state: RunState) -> Result<ExitCode, CommandError> {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let text = status_text(&state);
        if text != last {
            let frame = if terminal {
                // Home, the text with each line's rest cleared, then the rest of the screen cleared.
                format!("\u{1b}[H{}\u{1b}[J", text.replace('\n', "\u{1b}[K\n"))
            } else if last.is_empty() {
                text.clone()
            } else {
                format!("\n{text}")
            };
            if terminal && last.is_empty() {
                print_stdout("\u{1b}[2J")?;
            }
            print_stdout(&frame)?;
            last = text;
        }
        if state.status != RunStatus::Running {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Ok(next) = run_dir.load() {
            state = next;
        }
    }
}

/// One line of a log, as `flow logs --json` prints it.
#[derive(serde::Serialize)]
struct LogLine<'a> {
    version: u32,
    run: &'a str,
    workstream: &'a str,
    text: &'a str,
}

/// Prints a workstream's log, following it while the run is going. The log is read as bytes
/// and shown line by line (a line an agent has not finished yet waits for its end, or for
/// the end of the run); text that is not UTF-8 is shown with replacement characters rather
/// than hidden, and on a terminal without the agent's escape sequences.
pub async fn logs(args: LogsArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (run_dir, state) = load_run(site, args.run.id())?;
    let Some(workstream) = args.workstream.clone() else {
        return all_logs(&run_dir, &state, args.follow).await;
    };
    if workstream != "_verify" && state.workstream(&workstream).is_none() {
        let known: Vec<&str> = state.workstreams.iter().map(|w| w.name.as_str()).collect();
        let hint = flow_dsl::did_you_mean(&workstream, known.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(CommandError::Usage(miette::miette!(
            "run {} has no workstream `{}`{hint}; it has {}",
            state.id,
            workstream,
            known.join(", ")
        )));
    }
    let path = if args.setup {
        run_dir.setup_log_path(&workstream)
    } else {
        run_dir.log_path(&workstream)
    };
    let print = |text: &str| -> Result<(), CommandError> {
        if args.json {
            for line in text.lines() {
                print_json_line(&LogLine {
                    version: JSON_VERSION,
                    run: &state.id,
                    workstream: &workstream,
                    text: line,
                })?;
            }
            Ok(())
        } else {
            // On a terminal, without the agent's escape sequences (see `terminal_safe`).
            Ok(print_stdout(text)?)
        }
    };
    let mut offset = 0u64;
    let mut pending: Vec<u8> = vec![];
    let mut seen = false;
    loop {
        if let Ok(mut file) = std::fs::File::open(&path) {
            seen = true;
            let _ = file.seek(SeekFrom::Start(offset));
            let mut bytes = vec![];
            let _ = file.read_to_end(&mut bytes);
            offset += bytes.len() as u64;
            pending.extend_from_slice(&bytes);
            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = pending.drain(..=end).collect();
                print(&String::from_utf8_lossy(&complete))?;
            }
        }
        let running = args.follow && run_dir.load().map(|s| s.status == RunStatus::Running).unwrap_or(false);
        if !running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    if !pending.is_empty() {
        let mut rest = String::from_utf8_lossy(&pending).into_owned();
        if !args.json {
            rest.push('\n');
        }
        print(&rest)?;
    }
    if !seen && !args.json {
        // The log is created with the first line of output.
        say(&format!(
            "(no output from {} yet: its log {} is made with the first line)",
            workstream,
            path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The colours of the names before the lines of `flow logs --all`, one per workstream in turn.
const NAME_COLORS: [anstyle::AnsiColor; 6] = [
    anstyle::AnsiColor::Cyan,
    anstyle::AnsiColor::Magenta,
    anstyle::AnsiColor::Yellow,
    anstyle::AnsiColor::Green,
    anstyle::AnsiColor::Blue,
    anstyle::AnsiColor::BrightRed,
];

/// `flow logs --all [-f]`: every workstream's log (and verify's), each complete line after
/// its workstream's name, as turbo prints its tasks; following them until the run ends.
async fn all_logs(run_dir: &RunDir, state: &RunState, follow: bool) -> Result<ExitCode, CommandError> {
    let mut names: Vec<String> = state.workstreams.iter().map(|w| w.name.clone()).collect();
    names.push("_verify".into());
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut offsets = vec![0u64; names.len()];
    let mut pending: Vec<Vec<u8>> = vec![vec![]; names.len()];
    let colored = crate::output::colored(Stream::Stdout);
    let prefix = |k: usize| {
        let name = format!("{:<width$} |", names[k]);
        if colored {
            let style = NAME_COLORS[k % NAME_COLORS.len()].on_default();
            format!("{style}{name}{style:#} ")
        } else {
            format!("{name} ")
        }
    };
    loop {
        let mut out = String::new();
        for k in 0..names.len() {
            let Ok(mut file) = std::fs::File::open(run_dir.log_path(&names[k])) else {
                continue;
            };
            let _ = file.seek(SeekFrom::Start(offsets[k]));
            let mut bytes = vec![];
            let _ = file.read_to_end(&mut bytes);
            offsets[k] += bytes.len() as u64;
            pending[k].extend_from_slice(&bytes);
            if let Some(end) = pending[k].iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = pending[k].drain(..=end).collect();
                for line in String::from_utf8_lossy(&complete).lines() {
                    out.push_str(&prefix(k));
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        if !out.is_empty() {
            print_stdout(&out)?;
        }
        let running = follow && run_dir.load().map(|s| s.status == RunStatus::Running).unwrap_or(false);
        if !running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let mut rest = String::new();
    for (k, bytes) in pending.iter().enumerate() {
        if !bytes.is_empty() {
            rest.push_str(&format!("{}{}\n", prefix(k), String::from_utf8_lossy(bytes)));
        }
    }
    if !rest.is_empty() {
        print_stdout(&rest)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists past runs, oldest first, under a header.
pub fn runs(args: RunsArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let mut rows = vec![];
    for id in site.runs() {
        if let Ok(state) = site.run_dir(&id).load() {
            rows.push(state);
        }
    }
    if args.json {
        let runs: Vec<serde_json::Value> = rows
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id, "workflow": s.workflow, "status": s.status, "started_at": s.started_at,
                    "ended_at": s.ended_at, "workstreams": s.workstreams.len(),
                    "succeeded": s.workstreams.iter().filter(|w| w.phase.is_success()).count(),
                    "usage": s.total_usage(),
                })
            })
            .collect();
        print_versioned(&serde_json::json!({ "runs": runs }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        print_stdout(&format!("no runs yet in {}\n", site.flow_dir().display()))?;
        say("start one with `flow run`");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["RUN", "WORKFLOW", "STATUS", "DONE", "TIME", "TOKENS", "COST"]);
    for s in &rows {
        let took = s
            .ended_at
            .map_or("-".to_string(), |e| format_duration(elapsed(s.started_at, e)));
        let done = s.workstreams.iter().filter(|w| w.phase.is_success()).count();
        let usage = s.total_usage();
        table.row(vec![
            (s.id.clone(), None),
            (s.workflow.clone(), None),
            (s.status.as_str().to_string(), Some(status_tone(s.status))),
            (format!("{done}/{}", s.workstreams.len()), None),
            (took, None),
            (tokens(usage.total_tokens()), None),
            (dollars(usage.cost_usd), None),
        ]);
    }
    print_stdout(&table.render(Stream::Stdout))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a run spent.
pub fn usage(args: UsageArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (_, state) = load_run(site, args.run.id())?;
    let workflow = state
        .workflow_file
        .as_ref()
        .and_then(|f| flow_dsl::check_file(std::path::Path::new(f)).ok())
        .map(|c| c.workflow);
    let report = flow_engine::report::usage::usage_report(&state, workflow.as_ref());
    if args.json {
        print_versioned(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "run {} of workflow `{}`: {} tokens, {}\n",
        report.run,
        report.workflow,
        tokens(report.total.total_tokens()),
        dollars(report.total.cost_usd)
    );
    if workflow.is_none() {
        out.push_str("(the workflow file could not be read: no per-model, agent or budget figures)\n");
    }
    let groups = [
        ("workstream", &report.by_workstream),
        ("model", &report.by_model),
        ("agent", &report.by_agent),
        ("account", &report.by_account),
        ("purpose", &report.by_purpose),
    ];
    for (what, map) in groups {
        // By purpose says something only once there was more than the work itself.
        if map.is_empty() || (what == "purpose" && map.len() < 2) {
            continue;
        }
        out.push_str(&format!("\nby {what}:\n"));
        for (name, u) in map {
            out.push_str(&format!(
                "  {name:<24} {:>8} in  {:>8} out  {:>8} cache  {:>9}\n",
                tokens(u.input_tokens),
                tokens(u.output_tokens),
                tokens(u.cache_read_tokens + u.cache_write_tokens),
                dollars(u.cost_usd)
            ));
        }
    }
    let several = report.attempts.iter().filter(|(_, a)| a.len() > 1);
    for (i, (name, attempts)) in several.enumerate() {
        if i == 0 {
            out.push_str("\nattempts of the workstreams that needed more than one:\n");
        }
        for a in attempts {
            let what = match a.fixed {
                Some(fixed) => format!("#{} {} ({fixed})", a.number, a.purpose),
                None => format!("#{} {}", a.number, a.purpose),
            };
            out.push_str(&format!(
                "  {:<24} {what:<18} {:>8} in  {:>8} out  {:>8} cache  {:>9}\n",
                if a.number == attempts[0].number {
                    name.as_str()
                } else {
                    ""
                },
                tokens(a.usage.input_tokens),
                tokens(a.usage.output_tokens),
                tokens(a.usage.cache_read_tokens + a.usage.cache_write_tokens),
                dollars(a.usage.cost_usd)
            ));
        }
    }
    if !report.budgets.is_empty() {
        out.push_str("\nbudgets:\n");
        for b in &report.budgets {
            let usd = b
                .limit_usd
                .map_or(String::new(), |l| format!("{} of ${l:.2}", dollars(b.spent_usd)));
            let tok = b.limit_tokens.map_or(String::new(), |l| {
                format!("{} of {} tokens", tokens(b.spent_tokens), tokens(l))
            });
            let pct = b.percent.map_or(String::new(), |p| format!(" ({p:.0}%)"));
            out.push_str(&format!(
                "  {:<24} {usd}{}{tok}{pct}\n",
                b.scope,
                if !usd.is_empty() && !tok.is_empty() { ", " } else { "" }
            ));
        }
    }
    if !report.most_expensive.is_empty() {
        out.push_str("\nmost expensive:\n");
        for (name, cost) in &report.most_expensive {
            out.push_str(&format!("  {name:<24} ${cost:.4}\n"));
        }
    }
    for s in &report.suggestions {
        out.push_str(&format!(
            "\nsuggestion: `{}` (kind {}) used {} (${:.4}); the kind table maps it to {}, which would have cost ${:.4} for the same tokens\n",
            s.workstream, s.kind, s.used, s.spent_usd, s.suggested, s.would_cost_usd
        ));
    }
    print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
