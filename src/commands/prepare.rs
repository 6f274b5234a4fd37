//! `flow prepare`: worktrees, branches and context for every workstream, no agents.

use std::process::ExitCode;

use flow_engine::Plan;
use flow_engine::Site;
use flow_engine::by_hand::prepare::{PrepareStatus, prepare};

use crate::cli::PrepareArgs;
use crate::error::{CommandError, git_failed};
use crate::load::load_layout;
use crate::output::{print_stdout, print_versioned};

/// Prepares every workstream that can start, and says what each one got.
pub fn run(args: PrepareArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (workflow, layout) = load_layout(site, &args.file)?;
    let plan = Plan::new(workflow);
    let items = prepare(&plan, &layout).map_err(git_failed)?;
    let failed = items.iter().any(|i| i.status == PrepareStatus::Failed);
    if args.json {
        print_versioned(&serde_json::json!({
            "workflow": plan.workflow.name, "base": layout.base, "into": layout.into,
            "workstreams": items,
        }))?;
    } else {
        let width = items.iter().map(|i| i.workstream.len()).max().unwrap_or(4);
        let mut out = String::new();
        for i in &items {
            let status = i.status.as_str();
            let place = i
                .worktree
                .as_ref()
                .map(|w| format!("{}  ", w.display()))
                .unwrap_or_default();
            out.push_str(&format!("{:<width$}  {status:<8} {place}{}\n", i.workstream, i.detail));
        }
        out.push_str(&format!("integration branch: {} (from {})\n", layout.into, layout.base));
        print_stdout(&out)?;
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
