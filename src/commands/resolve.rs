//! `flow resolve`: a workstream's conflict with the integration branch, set up in its worktree
//! for you to resolve.

use std::fmt::Write;
use std::process::ExitCode;

use flow_engine::by_hand::resolve::{ResolveResult, resolve};
use flow_engine::{RunError, Site};

use crate::cli::ResolveArgs;
use crate::error::CommandError;
use crate::load::{file_and_names, load_layout, workflow_file, workstream_index};
use crate::output::{print_json, print_stdout};

/// Sets the conflict up and says where it is and what to do; exits 1 when it was refused.
pub fn run(args: ResolveArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (given, names) = file_and_names(&args.words);
    let file = workflow_file(given.as_deref(), site);
    let [name] = names.as_slice() else {
        return Err(CommandError::Usage(miette::miette!(
            help = "`flow resolve [FILE] WORKSTREAM`",
            "name one workstream to resolve"
        )));
    };
    let (workflow, layout) = load_layout(site, &given)?;
    let index = workstream_index(&workflow, name, &file)?;
    let resolution = resolve(&workflow, &layout, index).map_err(|e| match e {
        RunError::Lock(_) => CommandError::Usage(e.into()),
        e => CommandError::Failed(e.into()),
    })?;
    if args.json {
        print_json(&resolution)?;
    } else {
        let r = &resolution;
        let dir = r.worktree.display();
        let next = if r.next == "flow merge" && file.as_os_str() != "parallel.kdl" {
            format!("flow merge {}", file.display())
        } else {
            r.next.clone()
        };
        let mut out = format!("{}: {}\n", r.workstream, r.detail);
        match r.result {
            ResolveResult::Conflicted | ResolveResult::InProgress => {
                if r.files.is_empty() {
                    let _ = writeln!(out, "No file holds a conflict marker any more.");
                } else {
                    let _ = writeln!(out, "Conflicts in:");
                    for f in &r.files {
                        let _ = writeln!(out, "  {f}");
                    }
                }
                let _ = write!(
                    out,
                    "\nIn the worktree {dir} (branch {}), resolve each file: keep what both sides meant \
                     and remove every <<<<<<<, ======= and >>>>>>> line. Then commit the merge:\n\n  \
                     cd {dir}\n  git add -A\n  git commit --no-edit\n\n\
                     Then `{next}` merges the resolved branch (with verify) and logs your resolution. \
                     To give up instead: git -C {dir} merge --abort\n",
                    r.branch
                );
            }
            ResolveResult::Merged | ResolveResult::UpToDate => {
                let _ = writeln!(out, "`{next}` merges it.");
            }
            ResolveResult::Refused => {}
        }
        print_stdout(&out)?;
    }
    Ok(if resolution.result == ResolveResult::Refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
