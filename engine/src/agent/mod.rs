pub mod command;
pub mod environment;
pub mod output;
pub mod process;
mod usage;

pub use usage::Usage;
