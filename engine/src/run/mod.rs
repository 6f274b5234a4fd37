//! Running a plan.
//!
//! The decisions are in [`core`], a state machine with no I/O; [`driver`] carries its effects
//! out with tokio, [`work`] is the real work behind them (worktrees, agents, checks, merges),
//! and [`session`] puts them together for [`start`] and [`resume`]. What happened is recorded
//! as events ([`state`]) in the run's folder ([`store`]) and shown to [`observer`]s.

pub mod api_agent;
pub mod core;
pub mod driver;
pub mod error;
pub(crate) mod guard;
pub mod lock;
pub mod observer;
pub mod prompt;
pub mod recover;
pub mod requests;
pub mod resume;
pub mod session;
pub mod spec_hash;
pub mod start;
pub mod state;
pub mod store;
pub mod work;
