//! The command line: clap types only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run a team of AI coding agents in parallel on one git repository.
///
/// A workflow file (`parallel.kdl`) declares workstreams: a task, the files it owns, the
/// agent and model that run it, and what it depends on. flow checks and plans the file,
/// gives each workstream its own git worktree and branch, launches the agents as their
/// dependencies allow, and merges the branches into an integration branch in dependency
/// order, testing the merged tree.
#[derive(Debug, Parser)]
#[command(name = "flow", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(CheckArgs),
    Plan(PlanArgs),
    Graph(GraphArgs),
}

/// Check a workflow file and report every problem in it.
///
/// Exit status: 0 when the file is valid, 1 when it has warnings and --deny-warnings is
/// given, 2 when it is invalid.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The workflow file(s).
    #[arg(default_value = "parallel.kdl", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print nothing when the file is valid.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Show what a run would do, without touching anything: waves, critical path, merge order,
/// predicted overlaps.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The workflow file.
    #[arg(default_value = "parallel.kdl")]
    pub file: PathBuf,
    /// Print the plan as JSON on standard output (the shape is versioned; see the README).
    #[arg(long)]
    pub json: bool,
}

/// Draw the dependency graph, with waves and merge order.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file.
    #[arg(default_value = "parallel.kdl")]
    pub file: PathBuf,
    /// The output language.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

/// A graph language.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`flow graph | dot -Tsvg > plan.svg`).
    Dot,
    /// Mermaid flowchart (renders in GitHub markdown).
    Mermaid,
}
