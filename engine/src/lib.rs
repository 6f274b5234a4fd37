//! flow-engine: everything `flow` does after a workflow has been validated.
//!
//! Data flows one way: a [`flow_dsl::Workflow`] becomes a [`plan::Plan`] (the dependency
//! graph with waves, critical path and merge order); `git` gives each workstream a worktree
//! and branch and merges them; `agent` launches and reads agent processes; reports turn
//! plans into text, JSON and graphs.

pub mod agent;
pub mod git;
pub mod plan;
pub mod report;
