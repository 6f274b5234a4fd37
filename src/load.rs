//! Finding and loading the workflow a command works on.

use std::path::{Path, PathBuf};

use flow_dsl::Checked;
use flow_engine::Site;

use crate::diagnostics::print_problems;
use crate::error::{CommandError, run_failed};

/// The name of the workflow file a command reads when none is named.
pub const DEFAULT_FILE: &str = "parallel.kdl";

/// The workflow file a command works on: the one named, else the nearest `parallel.kdl` from
/// the current folder up to the repository's root (as git finds its repository, so that
/// every command works from any subfolder). Found above the current folder, it is named
/// relatively (`../../parallel.kdl`); found nowhere, it is `parallel.kdl`, whose reading
/// then fails with the usual diagnostic.
pub fn workflow_file(named: Option<&Path>, site: &Site) -> PathBuf {
    if let Some(file) = named {
        return file.to_path_buf();
    }
    for up in folders_up_to_root(site) {
        let candidate = up.join(DEFAULT_FILE);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(DEFAULT_FILE)
}

/// Where `flow init` writes when no file is named: `parallel.kdl` at the repository's root,
/// where the other commands find it from any folder (the current folder outside a
/// repository).
pub fn init_file(named: Option<&Path>, site: &Site) -> PathBuf {
    match (named, site.git()) {
        (Some(file), _) => file.to_path_buf(),
        (None, Some(_)) => folders_up_to_root(site).pop().unwrap_or_default().join(DEFAULT_FILE),
        (None, None) => PathBuf::from(DEFAULT_FILE),
    }
}

/// The current folder and each one above it up to the repository's root, named relatively
/// (``, `..`, `../..`); only the current folder when it is not inside the site's root.
fn folders_up_to_root(site: &Site) -> Vec<PathBuf> {
    let here = vec![PathBuf::new()];
    let Ok(cwd) = std::env::current_dir() else {
        return here;
    };
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let root = std::fs::canonicalize(site.root()).unwrap_or_else(|_| site.root().to_path_buf());
    let Ok(inside) = cwd.strip_prefix(&root) else {
        return here;
    };
    let depth = inside.components().count();
    (0..=depth)
        .map(|up| std::iter::repeat_n("..", up).collect::<PathBuf>())
        .collect()
}

/// Loads and validates a workflow, printing its warnings; invalid input is an error.
pub fn load(file: &Path) -> Result<Checked, CommandError> {
    let checked = flow_dsl::check_file(file).map_err(CommandError::Invalid)?;
    print_problems(&checked.warnings);
    Ok(checked)
}

/// Loads a workflow (the file named, else the nearest `parallel.kdl`) and finds where it
/// lives in the site's repository.
pub fn load_layout(
    site: &Site,
    file: &Option<PathBuf>,
) -> Result<(flow_dsl::Workflow, flow_engine::by_hand::Layout), CommandError> {
    let workflow = load(&workflow_file(file.as_deref(), site))?.workflow;
    let layout = flow_engine::by_hand::Layout::new(&workflow, site).map_err(run_failed)?;
    Ok((workflow, layout))
}

/// Splits a verb's positional words into the workflow file and workstream names: the first
/// word is the file when it ends in `.kdl` or names a file, else there is none (the default,
/// found as [`workflow_file`] finds it).
pub fn file_and_names(words: &[String]) -> (Option<PathBuf>, Vec<String>) {
    match words.split_first() {
        Some((first, rest)) if first.ends_with(".kdl") || Path::new(first).is_file() => {
            (Some(PathBuf::from(first)), rest.to_vec())
        }
        _ => (None, words.to_vec()),
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
