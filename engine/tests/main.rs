//! The engine's tests, one binary for all (one link instead of four): the agent output
//! readers against recorded outputs, real child processes through `run_process`, the git
//! layer, the guard of the git directory and the agents' git environment against the git CLI,
//! and the names enums give themselves.

mod agent_output;
mod agent_process;
mod api_agent;
mod git;
mod github;
mod guard;
mod sandbox;
mod status_names;
mod watch;
