//! Runs a program confined by a sandbox policy given as arguments
//! (`flow_engine::sandbox::run_wrapper`): the wrapper `flow_engine::sandbox::wrap` starts. The
//! engine's tests start this one; installed beside `flow`, it is what a run starts too
//! (`Wrapper::beside_this_program`), as it costs less than starting flow's own binary again.

fn main() {
    eprintln!("{}", flow_engine::sandbox::run_wrapper(std::env::args_os().skip(1)));
    std::process::exit(flow_engine::sandbox::WRAPPER_FAILED);
}
