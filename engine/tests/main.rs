//! The engine's tests, one binary for all (one link instead of four): the agent output
//! readers against recorded outputs, real child processes through `run_process`, the git
//! layer against the git CLI, and the names enums give themselves.

mod agent_output;
mod agent_process;
mod git;
mod sandbox;
mod status_names;
