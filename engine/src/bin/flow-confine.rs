//! Runs a program confined by a sandbox policy given as arguments: the wrapper the engine's
//! tests start through `flow_engine::sandbox::wrap`. Flow's own binary plays this part in a run
//! (`Wrapper::this_program`), so this one is never installed.

fn main() {
    eprintln!("{}", flow_engine::sandbox::run_wrapper(std::env::args_os().skip(1)));
    std::process::exit(flow_engine::sandbox::WRAPPER_FAILED);
}
