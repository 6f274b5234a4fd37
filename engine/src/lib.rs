//! flow-engine: everything `flow` does after a workflow has been validated.
//!
//! Data flows one way: a [`flow_dsl::Workflow`] becomes a [`plan::Plan`] (the dependency
//! graph with waves, critical path and merge order); [`run::core`] decides, one input at a
//! time, what a run does next; [`run::driver`] carries those decisions out (worktrees from
//! [`git`], context from [`context`], agent processes from [`agent`], checks and merges
//! through [`checks`] and [`integrate`], each process in the sandbox [`confine`] decides) and feeds the results back; every step is an event
//! recorded in [`run::state`] and on disk ([`run::store`]) and shown to observers, such as
//! [`report`]'s progress and board. [`by_hand`] holds the verbs for people who start agents
//! themselves. [`site::Site`] says where all of it lives.

pub mod agent;
pub mod atomic;
pub mod by_hand;
pub mod checks;
pub mod confine;
pub mod context;
pub mod decision_log;
pub mod exchange;
pub mod export;
pub mod git;
pub mod handoff;
pub mod integrate;
pub mod land;
pub mod notifier;
mod parallel;
pub mod plan;
pub mod preflight;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod site;
pub mod time;
pub mod tui;
pub mod view;
pub mod worktree_setup;

// The front door: what the command line calls.
pub use crate::plan::Plan;
pub use crate::run::core::Options as RunOptions;
pub use crate::run::error::RunError;
pub use crate::run::observer::{LinesWanted, Observer, Observers};
pub use crate::run::resume::{Action, ResumePlan, plan_resume, resume};
pub use crate::run::session::RunSettings;
pub use crate::run::start::{select, start, start_after};
pub use crate::run::state::{Phase, RunState, RunStatus};
pub use crate::site::{RunDir, Site};
