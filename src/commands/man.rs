//! `flow man`: manual pages in roff, made by clap_mangen from the command line's own
//! definition.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::CommandError;
use crate::output::{print_stdout, say};

/// Prints `flow.1`, or writes a page for flow and one for each command into a folder.
pub fn run(args: ManArgs) -> Result<ExitCode, CommandError> {
    let command = Cli::command();
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(|e| CommandError::System(miette::miette!("cannot render the manual page: {e}")))?;
        print_stdout(&String::from_utf8_lossy(&page))?;
        return Ok(ExitCode::SUCCESS);
    };
    let cannot = |e: std::io::Error| {
        CommandError::System(miette::miette!("cannot write manual pages into {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(cannot)?;
    clap_mangen::generate_to(command, &dir).map_err(cannot)?;
    say(&format!("wrote flow.1 and a page per command into {}", dir.display()));
    Ok(ExitCode::SUCCESS)
}
