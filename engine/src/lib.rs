//! flow-engine.
pub mod agent;
pub mod git;
