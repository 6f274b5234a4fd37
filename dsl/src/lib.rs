//! flow-dsl: the workflow language.
//!
//! A workflow is a KDL 2 document (usually `parallel.kdl`) that declares workstreams: a
//! task, an agent and model, the files it owns, and what it depends on. This crate reads
//! such a file and everything it imports into a validated [`Workflow`], or reports every
//! problem at once as miette diagnostics ([`Problems`]).
//!
//! The pipeline is `text -> kdl::KdlDocument -> ast::FileAst (spanned) -> Workflow`:
//!
//! - [`loader`] reads the main file and its imports (`std:NAME` from the embedded standard
//!   library, or relative paths), each once;
//! - `syntax_error` turns the KDL syntax errors of a file that does not parse into problems
//!   that name the root cause;
//! - `reader` walks each document into the spanned syntax tree, checking node names,
//!   argument counts and types;
//! - `validate` resolves names, applies defaults, and checks dependencies, cycles, scopes
//!   and overlaps.
//!
//! Each workstream's `owns` and `forbid` globs become a [`Scope`], which later stages ask
//! whether a changed path breaks them; the glob algebra (`glob`: overlap, inclusion and
//! example paths) proves things about the same globs before anything runs.
//!
//! Nothing here touches git or starts a process; the language is documented in
//! `dsl/GRAMMAR.md`.

pub mod ast;
mod command_template;
mod duration;
#[doc(hidden)]
pub mod fast_kdl;
mod glob;
mod keywords;
pub mod loader;
pub mod node;
mod output_format;
mod problem;
mod reader;
pub mod scope;
mod syntax_error;
mod validate;
mod workflow;

use std::path::Path;

pub use command_template::{MODEL_PLACEHOLDERS, uses_model, without_model};
pub use duration::{format_duration, parse_duration};
pub use glob::{example_path, glob_covers, globs_may_overlap, overlap_example};
pub use keywords::{
    Isolation, MergeOrder, OnConflict, Priority, SandboxMode, ScopePolicy, StdinMode, SyncMode, TaskKind,
};
pub use output_format::OutputFormat;
pub use problem::{Code, Problem, Problems, did_you_mean};
pub use scope::{BreachRule, GlobSpan, Scope, ScopeBreach, ScopeError, ScopeGlob};
pub use validate::Checked;
pub use workflow::*;

/// Reads and validates the workflow file at `path`, with everything it imports.
pub fn check_file(path: &Path) -> Result<Checked, Problems> {
    let loaded = loader::load_path(path).map_err(|p| Problems { problems: vec![*p] })?;
    validate::validate(loaded)
}

/// Validates workflow text; `name` is shown in diagnostics and relative imports resolve
/// against the current folder.
pub fn check_text(name: &str, text: &str) -> Result<Checked, Problems> {
    validate::validate(loader::load_text(name, text, None))
}
