//! `flow clean`: remove a workflow's worktrees and branches.

use std::process::ExitCode;

use flow_engine::Site;
use flow_engine::by_hand::clean::clean;

use crate::cli::CleanArgs;
use crate::error::{CommandError, git_failed};
use crate::load::load_layout;
use crate::output::print_stdout;

/// Removes what it safely can and says what it kept and why; exits 1 when something was kept.
pub fn run(args: CleanArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (workflow, layout) = load_layout(site, &args.file)?;
    let items = clean(&workflow, &layout, args.force).map_err(git_failed)?;
    let mut out = String::new();
    for i in &items {
        out.push_str(&format!(
            "{} {}: {}\n",
            if i.removed { "removed" } else { "kept   " },
            i.what,
            i.detail
        ));
    }
    if items.is_empty() {
        out.push_str("nothing to clean\n");
    }
    print_stdout(&out)?;
    Ok(if items.iter().any(|i| !i.removed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
