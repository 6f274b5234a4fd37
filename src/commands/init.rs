//! `flow init`: write a commented starting workflow.

use std::process::ExitCode;

use crate::cli::InitArgs;
use crate::error::CommandError;

/// `flow init`: writes the starting workflow.
pub fn run(args: InitArgs) -> Result<ExitCode, CommandError> {
    if args.file.exists() && !args.force {
        return Err(CommandError::Usage(miette::miette!(
            help = "edit it, or pass --force to replace it",
            "{} already exists",
            args.file.display()
        )));
    }
    std::fs::write(&args.file, flow_stdlib::INIT_TEMPLATE)
        .map_err(|e| CommandError::Failed(miette::miette!("cannot write {}: {e}", args.file.display())))?;
    eprintln!(
        "wrote {}: edit its workstreams, then `flow check`, `flow plan` and `flow run`",
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
