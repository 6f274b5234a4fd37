//! `flow merge`: integrate whatever workstream branches are ready.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_engine::by_hand::merge::{MergeResult, merge_ready};
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
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
        }
    });
    let flow_dir = site.flow_dir();
    flow_engine::run::store::ensure_flow_dir(flow_dir)
        .map_err(|e| CommandError::Failed(miette::miette!("cannot create {}: {e}", flow_dir.display())))?;
    let log_path = flow_dir.join("merge.log");
    let integration = Integration {
        git: &layout.git,
        workflow: &plan.workflow,
        verify_dir: site.integration_dir(&plan.workflow),
        log_path: log_path.clone(),
        parent_env: &parent_env,
        grace: std::time::Duration::from_secs(5),
        note: "flow merge".to_string(),
        confiner: flow_engine::confine::Confiner::new(&parent_env, site.root()),
        tmp_dir: flow_dir.join("tmp").join("verify"),
    };
    let items = merge_ready(&plan, &layout, integration, cancel_rx)
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
