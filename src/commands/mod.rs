//! One module per verb, each with a `run` function; errors map to exit codes here.

mod check;
mod clean;
mod conflicts;
mod context;
mod demo;
mod graph;
mod merge;
mod plan;
mod prepare;
mod progress;
mod resume;
mod run;
mod status;

use std::path::Path;
use std::process::ExitCode;

use flow_dsl::{Checked, Problems};
use flow_engine::Site;

use crate::cli::Command;
use crate::diagnostics;

/// Why a command did not succeed, and so which exit code it ends with.
#[derive(Debug)]
pub enum CommandError {
    /// The workflow file is invalid: exit 2.
    Invalid(Problems),
    /// Bad input that is not a workflow problem (a missing run, a bad argument): exit 2.
    Usage(miette::Report),
    /// The work itself failed (a workstream failed, a merge conflicted): exit 1.
    Failed(miette::Report),
    /// The command already reported what happened; exit with this code.
    Exit(u8),
}

impl CommandError {
    /// Prints the error and gives the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            CommandError::Invalid(problems) => {
                print_problems(&problems.problems);
                let (errors, warnings) = (problems.error_count(), problems.warning_count());
                eprintln!("{}", summary(errors, warnings));
                ExitCode::from(2)
            }
            CommandError::Usage(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(2)
            }
            CommandError::Failed(report) => {
                diagnostics::eprint(report.as_ref());
                ExitCode::from(1)
            }
            CommandError::Exit(code) => ExitCode::from(code),
        }
    }
}

/// Runs one verb, in the site (repository and `.flow/`) of the current folder.
pub async fn run(command: Command) -> Result<ExitCode, CommandError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CommandError::Usage(miette::miette!("cannot read the current folder: {e}")))?;
    let site = Site::find(&cwd);
    match command {
        Command::Init(args) => init(args),
        Command::Check(args) => check::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Run(args) => run::run(args, &site).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Prepare(args) => prepare::run(args, &site),
        Command::Context(args) => context::run(args, &site),
        Command::Merge(args) => merge::run(args, &site).await,
        Command::Conflicts(args) => conflicts::run(args, &site),
        Command::Clean(args) => clean::run(args, &site),
        Command::Resume(args) => resume::run(args, &site).await,
        Command::Status(args) => status::status(args, &site),
        Command::Logs(args) => status::logs(args, &site).await,
        Command::Runs(args) => status::runs(args, &site),
        Command::Usage(args) => status::usage(args, &site),
    }
}

/// Writes to standard output; a reader that went away (`flow plan --json | head`) ends the
/// command quietly instead of failing.
pub fn print_stdout(text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CommandError::Exit(0)),
        Err(e) => Err(CommandError::Failed(miette::miette!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// Prints problems, each as its own report.
pub fn print_problems(problems: &[flow_dsl::Problem]) {
    for problem in problems {
        diagnostics::eprint(problem);
    }
}

/// "2 errors, 1 warning".
pub fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => "no problems".to_string(),
        (e, 0) => format!("error: {}", plural(e, "error")),
        (0, w) => format!("warning: {}", plural(w, "warning")),
        (e, w) => format!("error: {}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// Loads a workflow and finds where it lives in the site's repository.
pub fn load_layout(
    site: &Site,
    file: &Path,
) -> Result<(flow_dsl::Workflow, flow_engine::by_hand::Layout), CommandError> {
    let workflow = load(file)?.workflow;
    let layout = flow_engine::by_hand::Layout::new(&workflow, site).map_err(|e| CommandError::Usage(e.into()))?;
    Ok((workflow, layout))
}

/// Maps a git error to a failed command.
pub fn git_failed(error: flow_engine::git::GitError) -> CommandError {
    CommandError::Failed(error.into())
}

/// Prints a JSON value on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CommandError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CommandError::Failed(miette::miette!("cannot write JSON: {e}")))?;
    print_stdout(&format!("{text}\n"))
}

/// Loads and validates a workflow, printing its warnings; invalid input is an error.
pub fn load(file: &Path) -> Result<Checked, CommandError> {
    let checked = flow_dsl::check_file(file).map_err(CommandError::Invalid)?;
    print_problems(&checked.warnings);
    Ok(checked)
}

/// `flow init`: writes the starting workflow.
fn init(args: crate::cli::InitArgs) -> Result<ExitCode, CommandError> {
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
