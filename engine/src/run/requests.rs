//! Requests from a person to a run going on: stop a workstream, or skip one that has not
//! started. `flow watch` (or anything else) leaves each as a small JSON file in the run's
//! `requests/` folder; the run follows that folder with file notifications, takes each file
//! (reads it, deletes it) and gives the request to its core as an input, which decides what
//! it means as it decides everything else.
//!
//! A file is written whole under a temporary name and renamed, so the run never reads half
//! of one. A request the run cannot read or that names no workstream of it is dropped with
//! an alert. The folder is the run's own (under `.flow/`), out of every worktree; an agent
//! confined by the sandbox cannot write there.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::run::store::write_atomic;
use crate::site::RunDir;

/// What is asked of a workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Stop its work now (its agent, its check); its dependents are skipped, the rest of
    /// the run goes on.
    Stop,
    /// Do not start it; its dependents are skipped.
    Skip,
}

impl Action {
    /// The verb, as a person says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Skip => "skip",
        }
    }
}

/// One request, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub action: Action,
    pub workstream: String,
}

/// The folder of a run's requests.
pub fn folder(run_dir: &RunDir) -> PathBuf {
    run_dir.dir.join("requests")
}

/// Leaves a request for the run.
pub fn send(run_dir: &RunDir, workstream: &str, action: Action) -> io::Result<()> {
    let request = Request {
        action,
        workstream: workstream.to_string(),
    };
    let json = serde_json::to_vec(&request).map_err(io::Error::other)?;
    let now = crate::time::now();
    let name = format!(
        "{}-{:09}-{}.json",
        now.as_second(),
        now.subsec_nanosecond(),
        std::process::id()
    );
    write_atomic(&folder(run_dir).join(name), &json)
}

/// Takes every request in the folder, oldest first: each file is read and deleted. A file
/// that does not hold a request gives `Err` with its text cut short.
pub fn take(folder: &Path) -> Vec<Result<Request, String>> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return vec![];
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut out = vec![];
    for path in names {
        // A request is a few dozen bytes: no more is read of a file, whatever it holds.
        let mut bytes = vec![];
        let Ok(file) = std::fs::File::open(&path) else { continue };
        if io::Read::read_to_end(&mut io::Read::take(file, 4096), &mut bytes).is_err() {
            continue;
        }
        if std::fs::remove_file(&path).is_err() {
            // Someone else took it.
            continue;
        }
        out.push(serde_json::from_slice::<Request>(&bytes).map_err(|_| {
            let text = String::from_utf8_lossy(&bytes);
            text.chars().take(80).collect()
        }));
    }
    out
}

/// Follows the requests folder (made if missing; requests left by an earlier session are
/// dropped): each request is given to `deliver` as it arrives. The watcher stops when
/// dropped.
pub fn follow(
    run_dir: &RunDir,
    deliver: impl Fn(Result<Request, String>) + Send + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = folder(run_dir);
    std::fs::create_dir_all(&dir).map_err(notify::Error::io)?;
    drop(take(&dir));
    let watched = dir.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            for request in take(&watched) {
                deliver(request);
            }
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
