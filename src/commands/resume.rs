//! `flow resume`: continue a run, saying first what happens to each workstream and why.

use std::path::PathBuf;
use std::process::ExitCode;

use flow_engine::plan::Plan;
use flow_engine::run::runner::{self, Action, Site};
use flow_engine::run::store::{RunDir, latest_run};

use crate::cli::ResumeArgs;
use crate::commands::run::{finish, observer};
use crate::commands::{CommandError, load, print_stdout};

/// Continues the latest run of the workflow in `file` (`flow run FILE --resume`).
pub async fn continue_workflow(
    file: &std::path::Path,
    run_options: crate::cli::RunOptionArgs,
) -> Result<ExitCode, CommandError> {
    let workflow = load(file)?.workflow;
    let cwd = std::env::current_dir()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read the current folder: {e}")))?;
    let flow_dir = flow_engine::git::Git::discover(&cwd)
        .map(|g| g.root().join(".flow"))
        .unwrap_or_else(|_| cwd.join(".flow"));
    let latest = flow_engine::run::store::list_runs(&flow_dir)
        .into_iter()
        .rev()
        .find(|id| {
            RunDir::new(&flow_dir, id)
                .load()
                .is_ok_and(|s| s.workflow == workflow.name)
        })
        .ok_or_else(|| {
            CommandError::Usage(miette::miette!(
                help = "start one with `flow run` (without --resume)",
                "no run of workflow `{}` to resume",
                workflow.name
            ))
        })?;
    run(ResumeArgs {
        run: Some(latest),
        file: Some(file.to_path_buf()),
        dry_run: false,
        run_options,
    })
    .await
}

/// Decides, prints the decisions, and (unless `--dry-run`) continues the run.
pub async fn run(args: ResumeArgs) -> Result<ExitCode, CommandError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read the current folder: {e}")))?;
    let flow_dir = flow_engine::git::Git::discover(&cwd)
        .map(|g| g.root().join(".flow"))
        .unwrap_or_else(|_| cwd.join(".flow"));
    let id = match &args.run {
        Some(id) => id.clone(),
        None => latest_run(&flow_dir).ok_or_else(|| {
            CommandError::Usage(miette::miette!(
                help = "start one with `flow run`",
                "no run to resume in {}",
                flow_dir.display()
            ))
        })?,
    };
    let state = RunDir::new(&flow_dir, &id)
        .load()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read run {id}: {e}")))?;
    let file = match (&args.file, &state.workflow_file) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => PathBuf::from(f),
        (None, None) => {
            return Err(CommandError::Usage(miette::miette!(
                "run {id} records no workflow file; pass it with --file"
            )));
        }
    };
    let workflow = load(&file)?.workflow;
    let site = Site::find(&cwd, &workflow).map_err(|e| CommandError::Usage(e.into()))?;
    let plan = Plan::new(workflow);
    let decided = runner::plan_resume(&plan, &site, Some(&id)).map_err(|e| CommandError::Usage(e.into()))?;
    let width = decided.decisions.iter().map(|d| d.workstream.len()).max().unwrap_or(4);
    let mut out = format!("resuming run {id} of workflow `{}`\n", plan.workflow.name);
    if let Some((commit, reason)) = &decided.integration_reset {
        out.push_str(&format!(
            "  integration branch: back to {} ({reason})\n",
            commit.short()
        ));
    }
    for (name, _, _) in &decided.undo_merges {
        out.push_str(&format!(
            "  integration branch: the merge of `{name}` is undone (it runs again)\n"
        ));
    }
    for d in &decided.decisions {
        let action = match d.action {
            Action::Keep => "keep",
            Action::Merge => "merge",
            Action::Check => "check",
            Action::Run => "run",
        };
        out.push_str(&format!("  {:<width$}  {action:<5}  {}\n", d.workstream, d.why));
    }
    print_stdout(&out)?;
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let settings = args.run_options.settings(None);
    let total = plan.workflow.workstreams.len();
    let mut progress = observer(args.run_options.progress, total);
    let state = runner::resume(plan, site, decided, settings, progress.as_mut())
        .await
        .map_err(|e| CommandError::Usage(e.into()))?;
    Ok(finish(&state))
}
