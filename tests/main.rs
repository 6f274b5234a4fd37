//! End-to-end tests of the `flow` binary.

mod budget;
mod cli;
mod crash;
mod examples;
mod feedback;
mod hostile;
mod manual;
mod minimal;
mod run;
mod run_agents;
mod run_checks;
mod support;
mod worktree_setup;
