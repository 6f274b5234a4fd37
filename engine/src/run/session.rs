//! One session of a run, new or resumed: the core, the real work, the record on disk and the
//! signals, put together and driven to the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::plan::Plan;
use crate::run::core::{Core, Input, Options};
use crate::run::driver::{Begin, Driver};
use crate::run::error::RunError;
use crate::run::observer::Observer;
use crate::run::requests;
use crate::run::spec_hash::spec_hashes;
use crate::run::state::RunState;
use crate::run::store::RunJournal;
use crate::run::work::ProcessWork;
use crate::site::RunDir;
use crate::site::Site;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub options: Options,
    /// Between SIGINT and SIGKILL when stopping an agent.
    pub grace: Duration,
}

impl Default for RunSettings {
    fn default() -> RunSettings {
        RunSettings {
            options: Options {
                retry_base: Duration::from_secs(1),
                ..Options::default()
            },
            grace: Duration::from_secs(5),
        }
    }
}

/// Drives a prepared state to the end of the run.
pub(crate) async fn drive(
    plan: Plan,
    site: &Site,
    state: RunState,
    run_dir: RunDir,
    settings: RunSettings,
    observer: &mut dyn Observer,
    begin: Begin,
) -> Result<RunState, RunError> {
    let journal = RunJournal::open(run_dir.clone()).map_err(RunError::io("open", run_dir.events_path()))?;
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let plan = Arc::new(plan);
    let workflow = plan.workflow.clone();
    let hashes = spec_hashes(&workflow);
    let seed = seed_of(&run_dir.id);
    let requests_dir = run_dir.clone();
    let work = ProcessWork::new(workflow, site, run_dir, parent_env, settings.grace, hashes);
    let names: Vec<String> = state.workstreams.iter().map(|w| w.name.clone()).collect();
    let core = Core::new(plan, state, settings.options, site.git().is_some(), seed);
    let driver = Driver::new(core, Arc::new(work), Box::new(journal), observer);
    // A person's requests (`flow watch`): without notifications the run goes on without them.
    let inputs = driver.inputs();
    let _requests = requests::follow(&requests_dir, move |request| {
        if let Ok(request) = request
            && let Some(workstream) = names.iter().position(|n| *n == request.workstream)
        {
            inputs.send(match (request.action, request.text) {
                (requests::Action::Message, Some(text)) => Input::Message { workstream, text },
                (action, _) => Input::Request { workstream, action },
            });
        }
    });
    Ok(driver.run(begin, interrupts()).await)
}

/// A number drawn from the run's id, to make each run's retry jitter its own.
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One message per request to stop: Ctrl-C (SIGINT), SIGTERM (`kill`, a CI timeout) or
/// SIGHUP (the terminal closed). Each stops every agent the same way; without a handler,
/// SIGTERM and SIGHUP would end flow at once and leave its agents running.
fn interrupts() -> mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = mpsc::unbounded_channel();
    let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
    for kind in kinds {
        let Ok(mut stream) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}
