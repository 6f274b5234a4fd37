//! `flow resume`: continue a run, saying first what happens to each workstream and why.

use std::path::PathBuf;
use std::process::ExitCode;

use flow_engine::{Plan, Site, plan_resume, resume};

use crate::cli::ResumeArgs;
use crate::commands::progress::{finish, observers};
use crate::commands::status::load_run;
use crate::error::{CommandError, run_failed};
use crate::load::load;
use crate::output::{print_stdout, print_versioned};

/// Continues the latest run of the workflow in `file` (`flow run FILE --resume`).
pub async fn continue_workflow(
    file: &std::path::Path,
    run_options: crate::cli::RunOptionArgs,
    site: &Site,
) -> Result<ExitCode, CommandError> {
    let workflow = load(file)?.workflow;
    let latest = site
        .runs()
        .into_iter()
        .rev()
        .find(|id| site.run_dir(id).load().is_ok_and(|s| s.workflow == workflow.name))
        .ok_or_else(|| {
            CommandError::Usage(miette::miette!(
                help = "start one with `flow run` (without --resume)",
                "no run of workflow `{}` to resume",
                workflow.name
            ))
        })?;
    run(
        ResumeArgs {
            run: crate::cli::RunChoice {
                positional: Some(latest),
                option: None,
            },
            file: Some(file.to_path_buf()),
            dry_run: false,
            json: false,
            run_options,
        },
        site,
    )
    .await
}

/// Decides, prints the decisions, and (unless `--dry-run`) continues the run.
pub async fn run(args: ResumeArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (_, state) = load_run(site, args.run.id())?;
    let id = state.id.clone();
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
    let plan = Plan::new(workflow);
    let resume_plan = plan_resume(&plan, site, Some(&id)).map_err(run_failed)?;
    let decided = &resume_plan.decided;
    if args.json {
        print_versioned(&serde_json::json!({
            "run": id,
            "workflow": plan.workflow.name,
            "integration_reset": decided.integration_reset.as_ref().map(|(commit, reason)| {
                serde_json::json!({ "commit": commit.to_string(), "reason": reason })
            }),
            "undone_merges": decided.undo_merges.iter().map(|(name, _, _)| name).collect::<Vec<_>>(),
            "decisions": decided.decisions,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
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
        out.push_str(&format!(
            "  {:<width$}  {:<6}  {}\n",
            d.workstream,
            d.action.as_str(),
            d.why
        ));
    }
    print_stdout(&out)?;
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let settings = args.run_options.settings(None);
    let mut observers = observers(
        args.run_options.progress,
        plan.workflow.workstreams.len(),
        site,
        &plan.workflow.status_file,
    );
    let state = resume(plan.clone(), site, resume_plan, settings, &mut observers)
        .await
        .map_err(run_failed)?;
    Ok(finish(&state, &plan, site))
}
