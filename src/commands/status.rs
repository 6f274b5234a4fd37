//! `flow status`, `flow logs`, `flow runs`: reading what runs recorded.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;

use flow_engine::report::board::markdown_board;
use flow_engine::report::run_table::{dollars, run_table, seconds, tokens};
use flow_engine::run::state::{RunState, RunStatus};
use flow_engine::run::store::{RunDir, latest_run, list_runs};

use crate::cli::{LogsArgs, RunsArgs, StatusArgs};
use crate::commands::{CommandError, print_json, print_stdout};

fn flow_dir() -> Result<PathBuf, CommandError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read the current folder: {e}")))?;
    Ok(flow_engine::git::Git::discover(&cwd)
        .map(|g| g.root().join(".flow"))
        .unwrap_or_else(|_| cwd.join(".flow")))
}

fn load_run(run: Option<&str>) -> Result<(RunDir, RunState), CommandError> {
    let dir = flow_dir()?;
    let id = match run {
        Some(id) => id.to_string(),
        None => latest_run(&dir).ok_or_else(|| {
            CommandError::Usage(miette::miette!(
                help = "start one with `flow run`",
                "no run recorded in {}",
                dir.display()
            ))
        })?,
    };
    let run_dir = RunDir::new(&dir, &id);
    let state = run_dir
        .load()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read run {id}: {e}")))?;
    Ok((run_dir, state))
}

/// Prints where a run stands.
pub fn status(args: StatusArgs) -> Result<ExitCode, CommandError> {
    let (_, state) = load_run(args.run.as_deref())?;
    if args.json {
        print_json(&state)?;
    } else if args.markdown {
        print_stdout(&markdown_board(&state))?;
    } else {
        let status = serde_json::to_value(state.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut out = format!("run {} of workflow `{}`: {status}\n", state.id, state.workflow);
        out.push_str(&format!(
            "integration branch {} at {}\n\n",
            state.into,
            state.last_good.as_deref().map_or("-", |c| &c[..c.len().min(8)])
        ));
        out.push_str(&run_table(&state));
        print_stdout(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a workstream's log, following it while the run is going.
pub async fn logs(args: LogsArgs) -> Result<ExitCode, CommandError> {
    let (run_dir, state) = load_run(args.run.as_deref())?;
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
            print_stdout(&format!("(no log yet at {})\n", path.display()))?;
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
pub fn runs(args: RunsArgs) -> Result<ExitCode, CommandError> {
    let dir = flow_dir()?;
    let mut rows = vec![];
    for id in list_runs(&dir) {
        if let Ok(state) = RunDir::new(&dir, &id).load() {
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
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let took = s.ended_at.map_or("-".to_string(), |e| seconds(e - s.started_at));
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
