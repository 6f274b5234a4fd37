//! `flow merge`: integrate whatever workstream branches are ready.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_engine::by_hand::merge::{MergeResult, MergeSelection, merge_selected};
use flow_engine::integrate::Integration;
use flow_engine::{Plan, Site};

use crate::cli::MergeArgs;
use crate::error::{CommandError, git_failed};
use crate::load::load_layout;
use crate::output::{print_stdout, print_versioned};

/// Merges ready branches in the plan's order and prints what happened to each.
pub async fn run(args: MergeArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (workflow, layout) = load_layout(site, &args.file)?;
    let plan = Plan::new(workflow);
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let cancel_rx = crate::interrupt::stop_on_ctrl_c();
    let integration = Integration::by_hand(site, &layout.git, &plan.workflow, &parent_env, "flow merge")
        .map_err(|e| CommandError::Failed(miette::miette!("cannot create {}: {e}", site.flow_dir().display())))?;
    let log_path = integration.log_path.clone();
    let mut selection = MergeSelection::default();
    if args.fetch {
        let all: Vec<usize> = (0..plan.workflow.workstreams.len()).collect();
        let fetched = flow_engine::exchange::fetch(&layout.git, &args.remote, &plan.workflow, &all, false)
            .map_err(|e| CommandError::Failed(e.into()))?;
        selection.starts = flow_engine::exchange::starts(&fetched);
        if !crate::output::quiet() {
            let names: Vec<&str> = fetched
                .iter()
                .map(|f| plan.workflow.workstreams[f.index].name.as_str())
                .collect();
            crate::output::say(&format!(
                "fetched from {}: {}",
                args.remote,
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
    }
    let items = merge_selected(&plan, &layout, integration, cancel_rx, &selection)
        .await
        .map_err(git_failed)?;
    let bad = items
        .iter()
        .any(|i| matches!(i.result, MergeResult::Conflicted | MergeResult::Failed));
    if args.json {
        print_versioned(&serde_json::json!({
            "workflow": plan.workflow.name, "into": layout.into,
            "workstreams": items,
        }))?;
    } else {
        let width = items.iter().map(|i| i.workstream.len()).max().unwrap_or(4);
        let mut out = String::new();
        for i in &items {
            let result = i.result.as_str();
            out.push_str(&format!("{:<width$}  {result:<14} {}\n", i.workstream, i.detail));
        }
        let head = layout
            .git
            .branch_head(&layout.into)
            .ok()
            .flatten()
            .map(|h| h.short())
            .unwrap_or_default();
        out.push_str(&format!("{} is at {head}", layout.into));
        if plan.workflow.integrate.verify.is_some() {
            out.push_str(&format!("; verify output in {}", log_path.display()));
        }
        out.push('\n');
        print_stdout(&out)?;
    }
    Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
