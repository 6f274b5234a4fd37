//! `flow graph`: draw the dependency graph.

use std::process::ExitCode;

use flow_engine::report::graph;
use flow_engine::{Plan, Site};

use crate::cli::{GraphArgs, GraphFormat};
use crate::error::CommandError;
use crate::load::{load, workflow_file};
use crate::output::print_stdout;

/// Prints the graph in DOT or Mermaid.
pub fn run(args: GraphArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let plan = Plan::new(load(&workflow_file(args.file.as_deref(), site))?.workflow);
    let text = match args.format {
        GraphFormat::Dot => graph::dot(&plan),
        GraphFormat::Mermaid => graph::mermaid(&plan),
    };
    print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
