//! `flow hook pre-commit`: the scope check a worktree's `pre-commit` hook runs before a
//! person's commit (see `flow_engine::worktree_setup::hook`). It only reads: the workflow
//! file of the user's checkout, the staged paths, and the list of copied files.

use std::process::{Command, ExitCode};

use flow_engine::worktree_setup::hook::check_commit;

use crate::cli::HookArgs;
use crate::error::CommandError;
use crate::load::load;

/// Checks the staged paths against the workstream's scope; exit 1 refuses the commit.
pub fn run(args: HookArgs) -> Result<ExitCode, CommandError> {
    let workflow = load(&args.workflow)?.workflow;
    // The paths the commit changes, as git stages them (the hook's index, GIT_INDEX_FILE,
    // for `git commit -a` or a commit of named paths).
    let output = Command::new("git")
        .args(["diff", "--cached", "--name-only", "--no-renames", "-z", "--no-ext-diff"])
        .output()
        .map_err(|e| CommandError::System(miette::miette!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(CommandError::System(miette::miette!(
            "git diff --cached failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let staged: Vec<String> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let copied = copied_paths(&args);
    match check_commit(&workflow, &args.workstream, &staged, &copied) {
        None => Ok(ExitCode::SUCCESS),
        Some((message, refuse)) => {
            eprintln!("{message}");
            Ok(if refuse { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

/// The copied files flow listed beside the hook.
fn copied_paths(args: &HookArgs) -> Vec<String> {
    let Some(file) = &args.copied else { return vec![] };
    std::fs::read_to_string(file)
        .map(|text| text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}
