//! Reports: plans and runs turned into text for people, JSON for programs, and graphs.

pub mod board;
pub mod graph;
pub mod html;
pub mod plan_json;
pub mod plan_text;
pub mod progress;
pub mod run_table;
pub mod usage;
