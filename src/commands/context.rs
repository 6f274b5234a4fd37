//! `flow context`: the exact prompt (or config) a workstream's agent gets.

use std::process::ExitCode;

use flow_engine::Site;

use crate::cli::ContextArgs;
use crate::error::CommandError;
use crate::load::{load, workflow_file, workstream_index};
use crate::output::print_stdout;

/// Prints the rendered prompt of one workstream.
pub fn run(args: ContextArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let file = workflow_file(args.file.as_deref(), site);
    let workflow = load(&file)?.workflow;
    let index = workstream_index(&workflow, &args.workstream, &file)?;
    // Context files are sized from the repository's root, as `flow prepare` and `flow run` do,
    // so that the prompt printed here is the one they write, from any folder of the repository.
    // As a run gives it: with what its dependencies did, from the latest run of the workflow.
    let rendered = flow_engine::run::prompt::context_for(&workflow, index, site);
    print_stdout(if args.config {
        &rendered.agent_config_json
    } else {
        &rendered.prompt
    })?;
    if args.config {
        print_stdout("\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
