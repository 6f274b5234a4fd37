//! Loading the workflow a command works on.

use std::path::{Path, PathBuf};

use flow_dsl::Checked;
use flow_engine::Site;

use crate::diagnostics::print_problems;
use crate::error::CommandError;

/// Loads and validates a workflow, printing its warnings; invalid input is an error.
pub fn load(file: &Path) -> Result<Checked, CommandError> {
    let checked = flow_dsl::check_file(file).map_err(CommandError::Invalid)?;
    print_problems(&checked.warnings);
    Ok(checked)
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

/// Splits a verb's positional words into the workflow file and workstream names: the first
/// word is the file when it ends in `.kdl` or names a file, else the file is `parallel.kdl`.
pub fn file_and_names(words: &[String]) -> (PathBuf, Vec<String>) {
    match words.split_first() {
        Some((first, rest)) if first.ends_with(".kdl") || Path::new(first).is_file() => {
            (PathBuf::from(first), rest.to_vec())
        }
        _ => (PathBuf::from("parallel.kdl"), words.to_vec()),
    }
}

/// The index of the workstream `name`, or a usage error naming the closest one.
pub fn workstream_index(workflow: &flow_dsl::Workflow, name: &str, file: &Path) -> Result<usize, CommandError> {
    workflow.index_of(name).ok_or_else(|| {
        let known = workflow.workstreams.iter().map(|w| w.name.as_str());
        let hint = flow_dsl::did_you_mean(name, known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        CommandError::Usage(miette::miette!("no workstream `{name}` in {}{hint}", file.display()))
    })
}
