//! Loading the workflow a command works on.

use std::path::Path;

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
