pub mod command;
pub mod environment;
pub mod output;
pub mod process;
