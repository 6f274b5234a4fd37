//! End-to-end tests of the `flow` binary.

mod api_agents;
mod budget;
mod cli;
mod crash;
mod examples;
mod feedback;
mod hostile;
mod land;
mod manual;
mod minimal;
mod run;
mod run_agents;
mod run_checks;
mod support;
mod watch;
mod worktree_setup;
