//! `flow plan`: show what a run would do without touching anything.

use std::process::ExitCode;

use flow_engine::report::{plan_json, plan_text};
use flow_engine::{Plan, Site};

use crate::cli::PlanArgs;
use crate::error::CommandError;
use crate::load::{load, workflow_file};
use crate::output::print_stdout;

/// Prints the plan as text, or as JSON on standard output with `--json`.
pub fn run(args: PlanArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let mut workflow = load(&workflow_file(args.file.as_deref(), site))?.workflow;
    // The base a run would use: the workflow's, else the branch checked out.
    if workflow.base.is_none() {
        workflow.base = site.git().and_then(|git| git.current_branch().ok().flatten());
    }
    let plan = Plan::new(workflow);
    if args.json {
        // Indented for people at a terminal; compact when piped to a program.
        let document = plan_json::plan_json(&plan);
        let json = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            serde_json::to_string_pretty(&document)
        } else {
            serde_json::to_string(&document)
        }
        .expect("plan JSON serializes: it has no maps with non-string keys");
        print_stdout(&json)?;
        print_stdout("\n")?;
        std::mem::forget((document, json));
    } else {
        print_stdout(&plan_text::plan_text(&plan))?;
        // What a run would find before making anything (on stderr, as warnings: `flow run`
        // refuses to start on the errors among them).
        if !crate::output::quiet() {
            let mut findings = flow_engine::preflight::preflight(
                &plan.workflow,
                &flow_engine::preflight::Context {
                    git: site.git(),
                    root: site.root(),
                    path: std::env::var_os("PATH"),
                    selected: None,
                    branches: false,
                },
            );
            for finding in &mut findings {
                finding.severity = flow_engine::preflight::Severity::Warning;
            }
            crate::diagnostics::print_findings(&findings);
        }
    }
    // The process ends right after and its memory goes back with it: freeing a plan of
    // thousands of workstreams, entry by entry, would only add to the wait.
    std::mem::forget(plan);
    Ok(ExitCode::SUCCESS)
}
