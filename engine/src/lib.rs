//! flow-engine: everything `flow` does after a workflow has been validated.
//!
//! Data flows one way: a [`flow_dsl::Workflow`] becomes a [`plan::Plan`] (the dependency
//! graph with waves, critical path and merge order); [`run::scheduler`] starts a job per
//! workstream ([`run::job`]: worktree from [`git`], context from [`context`], the agent
//! process from [`agent`]) and merges finished branches one at a time ([`run::merge`]);
//! every step is an event recorded in [`run::state`] and on disk ([`run::store`]);
//! [`report`] turns plans and runs into text, JSON and graphs.

pub mod agent;
pub mod context;
pub mod git;
pub mod layout;
pub mod manual;
mod parallel;
pub mod plan;
pub mod report;
pub mod run;
