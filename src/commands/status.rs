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
use crate::output::{print_json, print_stdout};

fn load_run(site: &Site, run: Option<&str>) -> Result<(RunDir, RunState), CommandError> {
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
    let run_dir = site.run_dir(&id);
    let state = run_dir
        .load()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read run {id}: {e}")))?;
    Ok((run_dir, state))
}

/// Prints where a run stands.
pub fn status(args: StatusArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (_, state) = load_run(site, args.run.as_deref())?;
    if args.json {
        print_json(&state)?;
    } else if args.markdown {
        print_stdout(&markdown_board(&state))?;
    } else {
        let mut out = format!("run {} of workflow `{}`: {}\n", state.id, state.workflow, state.status);
        out.push_str(&format!(
            "integration branch {} at {}\n\n",
            state.into,
            state.last_good.as_deref().map_or("-", |c| &c[..c.len().min(8)])
        ));
        out.push_str(&run_table(&state, now()));
        if !state.alerts.is_empty() {
            out.push_str("\nnotes:\n");
            for alert in &state.alerts {
                out.push_str(&format!("  {alert}\n"));
            }
        }
        print_stdout(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a workstream's log, following it while the run is going.
pub async fn logs(args: LogsArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (run_dir, state) = load_run(site, args.run.as_deref())?;
    if args.workstream != "_verify" && state.workstream(&args.workstream).is_none() {
        let known: Vec<&str> = state.workstreams.iter().map(|w| w.name.as_str()).collect();
        return Err(CommandError::Usage(miette::miette!(
            "run {} has no workstream `{}`; it has {}",
            state.id,
            args.workstream,
            known.join(", ")
        )));
    }
    let path = run_dir.log_path(&args.workstream);
    let mut offset = 0u64;
    loop {
        if let Ok(mut file) = std::fs::File::open(&path) {
            let _ = file.seek(SeekFrom::Start(offset));
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            offset += text.len() as u64;
            print_stdout(&text)?;
        } else if !args.follow {
            // The log is created with the first line of output.
            print_stdout(&format!(
                "(no output from {} yet: its log {} is made with the first line)\n",
                args.workstream,
                path.display()
            ))?;
        }
        if !args.follow {
            break;
        }
        let running = run_dir.load().map(|s| s.status == RunStatus::Running).unwrap_or(false);
        if !running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists past runs.
pub fn runs(args: RunsArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let mut rows = vec![];
    for id in site.runs() {
        if let Ok(state) = site.run_dir(&id).load() {
            rows.push(state);
        }
    }
    if args.json {
        let summary: Vec<serde_json::Value> = rows
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id, "workflow": s.workflow, "status": s.status, "started_at": s.started_at,
                    "ended_at": s.ended_at, "workstreams": s.workstreams.len(), "usage": s.total_usage(),
                })
            })
            .collect();
        print_json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no runs yet\n");
    }
    for s in &rows {
        let status = s.status.as_str();
        let took = s
            .ended_at
            .map_or("-".to_string(), |e| format_duration(elapsed(s.started_at, e)));
        let done = s.workstreams.iter().filter(|w| w.phase.is_success()).count();
        let usage = s.total_usage();
        out.push_str(&format!(
            "{}  {:<20} {status:<10} {done}/{} done  {took:>7}  {} tokens  {}\n",
            s.id,
            s.workflow,
            s.workstreams.len(),
            tokens(usage.total_tokens()),
            dollars(usage.cost_usd)
        ));
    }
    print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a run spent.
pub fn usage(args: UsageArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (_, state) = load_run(site, args.run.as_deref())?;
    let workflow = state
        .workflow_file
        .as_ref()
        .and_then(|f| flow_dsl::check_file(std::path::Path::new(f)).ok())
        .map(|c| c.workflow);
    let report = flow_engine::report::usage::usage_report(&state, workflow.as_ref());
    if args.json {
        print_json(&report)?;
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
