//! `flow export`: the workflow for another engine that runs job graphs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use flow_engine::export::github_actions::{Install, Options, github_actions};
use flow_engine::{Plan, Site};

use crate::cli::{ExportArgs, ExportTarget, GithubActionsArgs};
use crate::error::CommandError;
use crate::load::{load, workflow_file};
use crate::output::{print_stdout, say};

/// Writes the export the target asks for.
pub fn run(args: ExportArgs, site: &Site) -> Result<ExitCode, CommandError> {
    match args.target {
        ExportTarget::GithubActions(args) => github(args, site),
    }
}

/// The file as the repository names it (relative to its root, with `/`), for the jobs.
fn in_repository(file: &Path, site: &Site) -> String {
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let root = std::fs::canonicalize(site.root()).unwrap_or_else(|_| site.root().to_path_buf());
    let relative = absolute.strip_prefix(&root).unwrap_or(file);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn github(args: GithubActionsArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let file = workflow_file(args.file.as_deref(), site);
    let plan = Plan::new(load(&file)?.workflow);
    let mut runs_on_for = std::collections::BTreeMap::new();
    for pair in &args.runs_on_for {
        let Some((name, label)) = pair.split_once('=') else {
            return Err(CommandError::Usage(miette::miette!(
                "--runs-on-for takes WORKSTREAM=LABEL, not `{pair}`"
            )));
        };
        if plan.workflow.index_of(name).is_none() {
            return Err(CommandError::Usage(miette::miette!(
                "--runs-on-for names `{name}`, which is not a workstream of {}",
                file.display()
            )));
        }
        runs_on_for.insert(name.to_string(), label.to_string());
    }
    let install = match (args.flow_git, args.flow_release) {
        (_, Some(url)) => Install::Release { url },
        (git, None) => Install::Cargo { git },
    };
    let options = Options {
        file: in_repository(&file, site),
        runs_on: args.runs_on,
        runs_on_for,
        install,
        remote: args.remote,
    };
    let export = github_actions(&plan, &options);
    for note in &export.notes {
        say(&format!("note: {note}"));
    }
    let output = match args.output {
        Some(path) => Some(path),
        None if !std::io::stdout().is_terminal() => None,
        None => Some(
            site.root()
                .join(".github/workflows")
                .join(format!("flow-{}.yml", plan.workflow.name)),
        ),
    };
    match output.filter(|p| p != Path::new("-")) {
        None => print_stdout(&export.yaml)?,
        Some(path) => {
            write(&path, &export.yaml)?;
            say(&format!("wrote {}", path.display()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &PathBuf, text: &str) -> Result<(), CommandError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CommandError::Failed(miette::miette!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| CommandError::Failed(miette::miette!("cannot write {}: {e}", path.display())))
}
