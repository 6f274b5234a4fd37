//! `flow sync`: bring the integration branch into workstreams' branches, in their worktrees.

use std::process::ExitCode;

use flow_engine::by_hand::resolver::ResolverSettings;
use flow_engine::by_hand::sync::{prepared, sync};
use flow_engine::{RunError, Site};

use crate::cli::SyncArgs;
use crate::error::{CommandError, git_failed};
use crate::load::{file_and_names, load_layout, workflow_file, workstream_index};
use crate::output::{print_json, print_stdout};

/// Syncs the named workstreams (default: every one with a worktree) and says what each got;
/// exits 1 when one was refused or its resolver failed.
pub async fn run(args: SyncArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (given, names) = file_and_names(&args.words);
    let file = workflow_file(given.as_deref(), site);
    let (workflow, layout) = load_layout(site, &given)?;
    let selected = if names.is_empty() {
        prepared(&workflow, &layout).map_err(git_failed)?
    } else {
        names
            .iter()
            .map(|name| workstream_index(&workflow, name, &file))
            .collect::<Result<Vec<_>, _>>()?
    };
    if args.agent && workflow.integrate.resolver.is_none() {
        return Err(CommandError::Usage(miette::miette!(
            help = "name one in the workflow: `integrate { resolver \"AGENT\" }`",
            "--agent hands conflicts to the resolver agent, and {} names none",
            file.display()
        )));
    }
    let settings = args.agent.then(|| ResolverSettings {
        parent_env: std::env::vars().collect(),
        grace: args.grace,
        stop: crate::interrupt::stop_on_ctrl_c(),
    });
    let items = sync(&workflow, &layout, &selected, settings.as_ref())
        .await
        .map_err(|e| match e {
            RunError::Lock(_) => CommandError::Usage(e.into()),
            e => CommandError::Failed(e.into()),
        })?;
    let bad = items.iter().any(|i| i.result.is_bad());
    if args.json {
        print_json(&items)?;
    } else {
        let width = items.iter().map(|i| i.workstream.len()).max().unwrap_or(4);
        let mut out = String::new();
        for i in &items {
            out.push_str(&format!("{:<width$}  {:<10}  {}\n", i.workstream, i.result, i.detail));
        }
        if items.is_empty() {
            out.push_str("no workstream has a worktree yet (`flow prepare` makes them)\n");
        }
        print_stdout(&out)?;
    }
    Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
