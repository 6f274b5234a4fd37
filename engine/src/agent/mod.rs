pub mod output;
pub mod process;
