//! `flow done`: a workstream worked on by hand is finished: checked, then merged.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_engine::by_hand::done::done;
use flow_engine::by_hand::prepare::SetupSettings;
use flow_engine::by_hand::record::DoneState;
use flow_engine::integrate::Integration;
use flow_engine::{Plan, Site};

use crate::cli::DoneArgs;
use crate::error::CommandError;
use crate::load::{file_and_names, load_layout, workflow_file, workstream_index};
use crate::output::{print_stdout, print_versioned};

/// Checks the workstream, merges what is ready, and says what happened.
pub async fn run(args: DoneArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (given, names) = file_and_names(&args.words);
    let file = workflow_file(given.as_deref(), site);
    let [name] = names.as_slice() else {
        return Err(CommandError::Usage(miette::miette!(
            help = "`flow done [FILE] WORKSTREAM`",
            "name one workstream that is done"
        )));
    };
    let (workflow, layout) = load_layout(site, &given)?;
    let index = workstream_index(&workflow, name, &file)?;
    let plan = Plan::new(workflow);
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let integration = Integration::by_hand(site, &layout.git, &plan.workflow, &parent_env, "flow done")
        .map_err(|e| CommandError::System(miette::miette!("cannot create {}: {e}", site.flow_dir().display())))?;
    let log_path = integration.log_path.clone();
    let confiner = integration.confiner.clone();
    let settings = SetupSettings {
        parent_env: &parent_env,
        confiner: &confiner,
        grace: std::time::Duration::from_secs(5),
    };
    let stop = crate::interrupt::stop_on_ctrl_c();
    let outcome = done(&plan, &layout, index, &settings, integration, stop)
        .await
        .map_err(|refusal| {
            let mut message = refusal.message;
            if !refusal.tail.trim().is_empty() {
                message.push('\n');
                message.push_str(refusal.tail.trim_end());
            }
            CommandError::Failed(match refusal.help {
                Some(help) => miette::miette!(help = help, "{message}"),
                None => miette::miette!("{message}"),
            })
        })?;
    if args.json {
        print_versioned(&outcome)?;
    } else {
        let mut out = format!("{name}  {}  {}\n", outcome.state.as_str(), outcome.detail);
        for item in outcome.merges.iter().filter(|m| m.workstream != *name) {
            out.push_str(&format!(
                "{}  {}  {}\n",
                item.workstream,
                item.result.as_str(),
                item.detail
            ));
        }
        if plan.workflow.integrate.verify.is_some() && !outcome.merges.is_empty() {
            out.push_str(&format!("verify output in {}\n", log_path.display()));
        }
        print_stdout(&out)?;
    }
    Ok(match outcome.state {
        DoneState::Failed => ExitCode::from(1),
        DoneState::Merged | DoneState::Queued => ExitCode::SUCCESS,
    })
}
