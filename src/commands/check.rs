//! `flow check`: validate workflow files.

use std::process::ExitCode;

use flow_engine::Site;
use flow_engine::preflight::{Context, Severity, preflight};

use crate::cli::CheckArgs;
use crate::diagnostics::{ProblemJson, eprint, print_findings, summary};
use crate::error::CommandError;
use crate::load::workflow_file;
use crate::output::{JSON_VERSION, print_json_line, quiet};

/// The line of `flow check --json` that ends a file's problems.
#[derive(serde::Serialize)]
struct FileJson<'a> {
    version: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    file: String,
    valid: bool,
    workflow: Option<&'a str>,
    workstreams: Option<usize>,
    errors: usize,
    warnings: usize,
}

/// The last line of `flow check --json`: the totals and the exit code.
#[derive(serde::Serialize)]
struct SummaryJson {
    version: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    files: usize,
    errors: usize,
    warnings: usize,
    exit_code: u8,
}

/// Checks every file and reports all problems; the worst outcome sets the exit code.
pub fn run(args: CheckArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let files = if args.files.is_empty() {
        vec![workflow_file(None, site)]
    } else {
        args.files.clone()
    };
    let mut worst = 0u8;
    let (mut all_errors, mut all_warnings) = (0, 0);
    for file in &files {
        let (problems, workflow) = match flow_dsl::check_file(file) {
            Ok(checked) => (checked.warnings, Some(checked.workflow)),
            Err(problems) => (problems.problems, None),
        };
        // What a run would find before making anything: the agents' programs, the base
        // branch, a dirty checkout, the sandbox. They are about this machine and repository,
        // not the file: warnings here (`flow run` refuses to start on the errors among them),
        // and not counted by --deny-warnings.
        let mut findings = match &workflow {
            Some(workflow) => preflight(
                workflow,
                &Context {
                    git: site.git(),
                    root: site.root(),
                    path: std::env::var_os("PATH"),
                    selected: None,
                    branches: false,
                },
            ),
            None => Vec::new(),
        };
        for finding in &mut findings {
            finding.severity = Severity::Warning;
        }
        let errors = problems.iter().filter(|p| p.is_error()).count();
        let warnings = problems.len() - errors;
        (all_errors, all_warnings) = (all_errors + errors, all_warnings + warnings);
        if workflow.is_none() {
            worst = 2;
        } else if warnings > 0 && args.deny_warnings {
            worst = worst.max(1);
        }
        if args.json {
            for problem in &problems {
                print_json_line(&ProblemJson::new(problem))?;
            }
            let name = file.display().to_string();
            for finding in &findings {
                print_json_line(&ProblemJson::finding(finding, &name))?;
            }
            print_json_line(&FileJson {
                version: JSON_VERSION,
                kind: "file",
                file: file.display().to_string(),
                valid: workflow.is_some(),
                workflow: workflow.as_ref().map(|w| w.name.as_str()),
                workstreams: workflow.as_ref().map(|w| w.workstreams.len()),
                errors,
                warnings,
            })?;
            continue;
        }
        // With -q, warnings are said only when --deny-warnings makes them count.
        for problem in &problems {
            if problem.is_error() || args.deny_warnings || !quiet() {
                eprint(problem);
            }
        }
        if !quiet() {
            print_findings(&findings);
        }
        match &workflow {
            Some(workflow) if !quiet() => {
                let n = workflow.workstreams.len();
                let status = if warnings == 0 {
                    "ok".to_string()
                } else {
                    summary(0, warnings)
                };
                eprintln!(
                    "{}: {status} (workflow `{}`, {n} workstream{})",
                    file.display(),
                    workflow.name,
                    if n == 1 { "" } else { "s" }
                );
            }
            Some(_) => {}
            None => eprintln!("{}: {}", file.display(), summary(errors, warnings)),
        }
    }
    if args.json {
        print_json_line(&SummaryJson {
            version: JSON_VERSION,
            kind: "summary",
            files: files.len(),
            errors: all_errors,
            warnings: all_warnings,
            exit_code: worst,
        })?;
    }
    if worst == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CommandError::Exit(worst))
    }
}
