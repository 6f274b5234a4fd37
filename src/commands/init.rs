//! `flow init`: write a commented starting workflow.

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
    std::fs::write(&file, flow_stdlib::INIT_TEMPLATE)
        .map_err(|e| CommandError::System(miette::miette!("cannot write {}: {e}", file.display())))?;
    say(&format!(
        "wrote {}: edit its workstreams, then `flow check`, `flow plan` and `flow run`",
        file.display()
    ));
    Ok(ExitCode::SUCCESS)
}
