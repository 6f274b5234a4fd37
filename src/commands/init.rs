//! `flow init`: write a commented starting workflow for an agent preset.

use std::process::ExitCode;

use flow_engine::Site;

use crate::cli::InitArgs;
use crate::error::CommandError;
use crate::load::init_file;
use crate::output::say;

/// `flow init`: writes the starting workflow.
pub fn run(args: InitArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let file = init_file(args.file.as_deref(), site);
    if file.exists() && !args.force {
        return Err(CommandError::Usage(miette::miette!(
            help = "edit it, or pass --force to replace it",
            "{} already exists",
            file.display()
        )));
    }
    // The parser accepts only preset names, so there is always a template.
    let template = flow_stdlib::init_template(&args.agent)
        .ok_or_else(|| CommandError::Usage(miette::miette!("`{}` is not an agent preset", args.agent)))?;
    std::fs::write(&file, template)
        .map_err(|e| CommandError::System(miette::miette!("cannot write {}: {e}", file.display())))?;
    say(&format!(
        "wrote {} for agent `{}`: edit its workstreams, then `flow check`, `flow plan` and `flow run` \
         (the language: `flow help workflow`)",
        file.display(),
        args.agent
    ));
    Ok(ExitCode::SUCCESS)
}
