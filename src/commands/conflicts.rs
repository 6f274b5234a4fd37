//! `flow conflicts`: declared and live overlaps between workstreams, live ones counting
//! what worktrees hold uncommitted.

use std::fmt::Write;
use std::process::ExitCode;

use flow_engine::Site;
use flow_engine::by_hand::conflicts::conflicts;

use crate::cli::ConflictsArgs;
use crate::error::{CommandError, git_failed};
use crate::load::load_layout;
use crate::output::{print_stdout, print_versioned};

/// Prints the overlaps; exits 1 when a trial merge of two branches conflicts.
pub fn run(args: ConflictsArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (workflow, layout) = load_layout(site, &args.file)?;
    let report = conflicts(&workflow, &layout).map_err(git_failed)?;
    let conflicting = report.live.iter().any(|l| !l.conflicts.is_empty());
    if args.json {
        print_versioned(&report)?;
    } else {
        let mut out = String::new();
        if report.declared.is_empty() {
            out.push_str("declared: no two workstreams that may run at once own overlapping paths\n");
        } else {
            let _ = writeln!(
                out,
                "declared: {} overlap{} between workstreams that may run at once",
                report.declared.len(),
                if report.declared.len() == 1 { "" } else { "s" }
            );
            for d in &report.declared {
                let files = if d.existing_files.is_empty() {
                    format!("no existing file yet (e.g. {})", d.example)
                } else {
                    format!("existing: {}", d.existing_files.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  {} ({}) and {} ({}): {files}",
                    d.first, d.first_glob, d.second, d.second_glob
                );
            }
        }
        if report.branches.is_empty() {
            out.push_str("live: no workstream branch exists yet\n");
        } else if report.live.is_empty() {
            let _ = writeln!(
                out,
                "live: {} branch{} compared, no path changed by more than one",
                report.branches.len(),
                if report.branches.len() == 1 { "" } else { "es" }
            );
        } else {
            let _ = writeln!(
                out,
                "live: {} pair{} of workstreams changed the same paths (committed or not)",
                report.live.len(),
                if report.live.len() == 1 { "" } else { "s" }
            );
            for l in &report.live {
                let verdict = if l.conflicts.is_empty() {
                    "merge cleanly".to_string()
                } else {
                    format!("CONFLICT in {}", l.conflicts.join(", "))
                };
                let uncommitted: Vec<String> = l
                    .uncommitted
                    .iter()
                    .map(|(ws, paths)| format!("uncommitted in {ws}'s worktree: {}", paths.join(", ")))
                    .collect();
                let uncommitted = if uncommitted.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", uncommitted.join("; "))
                };
                let _ = writeln!(
                    out,
                    "  {} and {}: {}{uncommitted} — {verdict}",
                    l.first,
                    l.second,
                    l.paths.join(", ")
                );
            }
        }
        print_stdout(&out)?;
    }
    Ok(if conflicting {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
