//! flow-dsl: the workflow language.
mod glob;
mod output_format;

pub use glob::{glob_covers, globs_may_overlap};
pub use output_format::OutputFormat;
