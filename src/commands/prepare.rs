//! `flow prepare`: worktrees, branches, context and setup for every workstream, no agents.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_engine::Plan;
use flow_engine::Site;
use flow_engine::by_hand::prepare::{PrepareStatus, SetupSettings, prepare, set_up};

use crate::cli::PrepareArgs;
use crate::error::{CommandError, git_failed};
use crate::load::load_layout;
use crate::output::{print_stdout, print_versioned};

/// Prepares every workstream that can start, runs their setups (Ctrl-C stops them), and
/// says what each one got.
pub async fn run(args: PrepareArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (workflow, layout) = load_layout(site, &args.file)?;
    let plan = Plan::new(workflow);
    let mut items = prepare(&plan, &layout).map_err(git_failed)?;
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = SetupSettings {
        parent_env: &parent_env,
        confiner: &flow_engine::confine::Confiner::new(&parent_env, site.root()),
        grace: std::time::Duration::from_secs(5),
    };
    let stop = crate::interrupt::stop_on_ctrl_c();
    set_up(&plan, &layout, &mut items, &settings, stop).await;
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
