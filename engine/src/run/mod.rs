//! Running a plan: the scheduler, the jobs it starts, the merge queue, and the run state
//! they record.

pub mod job;
pub mod lock;
pub mod merge;
pub mod recover;
pub mod runner;
pub mod scheduler;
pub mod spec_hash;
pub mod state;
pub mod store;
