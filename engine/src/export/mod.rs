//! Workflows written for other engines that run job graphs: [`github_actions`] (GitHub
//! Actions), from the plan, through the small YAML writer in [`yaml`].

pub mod github_actions;
pub mod yaml;
