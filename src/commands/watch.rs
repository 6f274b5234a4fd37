//! `flow watch` and `flow run --watch`: the full-screen dashboard (see `flow_engine::tui`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc;

use flow_engine::run::state::{Event, RunState};
use flow_engine::tui::{Source, watch};
use flow_engine::{Observer, Site};

use crate::cli::WatchArgs;
use crate::commands::status::load_run;
use crate::error::CommandError;

/// Shows the dashboard until the person quits; the run goes on.
pub async fn run(args: WatchArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (run_dir, _) = load_run(site, args.run.id())?;
    require_terminal()?;
    let source = Source {
        run_dir,
        git: site.git().cloned(),
    };
    tokio::task::spawn_blocking(move || watch(source))
        .await
        .map_err(|e| CommandError::System(miette::miette!("the dashboard stopped: {e}")))?
        .map_err(|e| CommandError::System(miette::miette!("the dashboard stopped: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// The dashboard needs a terminal on both ends.
pub fn require_terminal() -> Result<(), CommandError> {
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(CommandError::Usage(miette::miette!(
            help = "`flow status` prints where a run stands, `flow logs --all -f` follows its output, `flow report` writes a page",
            "the dashboard needs a terminal"
        )))
    }
}

/// Tells the dashboard of `flow run --watch` which run to show, once its first event is
/// recorded (its folder exists then).
pub struct StartDashboard {
    pub tx: Option<mpsc::Sender<String>>,
}

impl Observer for StartDashboard {
    fn event(&mut self, state: &RunState, _event: &Event) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(state.id.clone());
        }
    }
}

/// Starts the dashboard of `flow run --watch` on its own thread: it shows the run whose id
/// arrives on `rx`, and returns when the person quits it (the run goes on).
pub fn dashboard_for(site: &Site, rx: mpsc::Receiver<String>) -> tokio::task::JoinHandle<Result<(), String>> {
    let site = site.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(id) = rx.recv() else { return Ok(()) };
        let source = Source {
            run_dir: site.run_dir(&id),
            git: site.git().cloned(),
        };
        watch(source).map_err(|e| e.to_string())
    })
}
