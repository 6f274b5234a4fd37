//! The `flow` binary: parses the command line, runs one verb, maps its outcome to an exit code.

mod cli;
mod commands;
mod diagnostics;
mod error;
mod load;
mod output;
mod states;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Started again as the sandbox's wrapper, flow confines itself and becomes the agent.
    flow_engine::sandbox::exec_if_wrapper();
    let cli = cli::Cli::parse();
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => output::Verbosity::Quiet,
        (false, true) => output::Verbosity::Verbose,
        (false, false) => output::Verbosity::Normal,
    };
    output::init(cli.color, verbosity);
    if let Some(dir) = &cli.directory
        && let Err(e) = std::env::set_current_dir(dir)
    {
        eprintln!("error: cannot change to {}: {e}", dir.display());
        return ExitCode::from(error::USAGE);
    }
    flow_engine::git::configure_process();
    // Orphans of agents come to flow, which stops them when their agent ends. A kernel that
    // refuses leaves them to init, as before: nothing to tell the user.
    let _ = flow_engine::agent::process::become_subreaper();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::SYSTEM);
        }
    };
    // The command runs on a thread with a large stack: the KDL parser recurses, and a
    // pathological file (a million quotes) must be an error, not a stack overflow. Only the
    // pages used are ever touched.
    let work = std::thread::Builder::new()
        .name("flow".into())
        .stack_size(1 << 30)
        .spawn(move || match runtime.block_on(commands::run(cli.command)) {
            Ok(code) => code,
            Err(error) => error.report(),
        });
    match work.map(|handle| handle.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start flow's main thread: {e}");
            ExitCode::from(error::SYSTEM)
        }
    }
}
