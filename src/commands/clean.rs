//! `flow clean`: remove a workflow's worktrees and branches.

use std::process::ExitCode;

use flow_engine::Site;
use flow_engine::by_hand::clean::{clean, teardown};

use crate::cli::CleanArgs;
use crate::error::{CommandError, FAILED, git_failed};
use crate::load::load_layout;
use crate::output::{Stream, Tone, paint, print_stdout, print_versioned};

/// Removes what it safely can and says what it kept and why; exits 1 when it kept unfinished
/// work (the integration branch kept because it holds the result is not that).
pub async fn run(args: CleanArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (workflow, layout) = load_layout(site, &args.file)?;
    let mut items = teardown(&workflow, &layout, args.force).await;
    items.extend(clean(&workflow, &layout, args.force).map_err(git_failed)?);
    let unfinished = items.iter().any(|i| !i.removed && !i.result);
    if args.json {
        print_versioned(&serde_json::json!({
            "workflow": workflow.name,
            "items": items,
        }))?;
    } else {
        let mut out = String::new();
        for i in &items {
            let (word, tone) = match (i.removed, i.result) {
                (true, _) => ("removed", Tone::Good),
                (false, true) => ("kept   ", Tone::Dim),
                (false, false) => ("kept   ", Tone::Warn),
            };
            let detail = if i.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", i.detail)
            };
            out.push_str(&format!("{} {}{detail}\n", paint(Stream::Stdout, tone, word), i.what));
        }
        if items.is_empty() {
            out.push_str("nothing to clean\n");
        }
        print_stdout(&out)?;
    }
    Ok(if unfinished {
        ExitCode::from(FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
