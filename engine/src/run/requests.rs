//! Requests from a person to a run going on: stop a workstream, skip one that has not
//! started, retry a failed one, or send its agent a message. `flow watch`, `flow retry`,
//! `flow tell` (or anything else) leave each as a small JSON file in the run's
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

use crate::atomic::write_atomic;
pub use crate::run::core::{Action, MESSAGE_MAX, tidy};
use crate::run::state::{Phase, RunStatus};
use crate::site::RunDir;

/// One request, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub action: Action,
    pub workstream: String,
    /// What a person tells the agent (`message`), already cut by [`tidy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The folder of a run's requests.
pub fn folder(run_dir: &RunDir) -> PathBuf {
    run_dir.dir.join("requests")
}

/// Leaves a request for the run.
pub fn send(run_dir: &RunDir, workstream: &str, action: Action) -> io::Result<()> {
    write(
        run_dir,
        &Request {
            action,
            workstream: workstream.to_string(),
            text: None,
        },
    )
}

/// Leaves a message for a workstream's agent, tidied (see [`tidy`]).
pub fn send_message(run_dir: &RunDir, workstream: &str, text: &str) -> io::Result<()> {
    write(
        run_dir,
        &Request {
            action: Action::Message,
            workstream: workstream.to_string(),
            text: Some(tidy(text)),
        },
    )
}

fn write(run_dir: &RunDir, request: &Request) -> io::Result<()> {
    let json = serde_json::to_vec(request).map_err(io::Error::other)?;
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
        // A request is a few dozen bytes, a message at most a few KB (2000 characters of up
        // to 4 bytes, quotes escaped): no more is read of a file, whatever it holds.
        let mut bytes = vec![];
        let Ok(file) = std::fs::File::open(&path) else { continue };
        if io::Read::read_to_end(&mut io::Read::take(file, 16 * 1024), &mut bytes).is_err() {
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

/// Why a request cannot be asked of a workstream as things stand (the run over, the
/// workstream in a phase where it means nothing), in words for the person; `None` when it may
/// be sent. The run's core decides again when it takes the request: things may have moved.
pub fn refusal(status: RunStatus, name: &str, phase: Phase, action: Action) -> Option<String> {
    if status != RunStatus::Running {
        return Some(match action {
            Action::Retry => format!("the run is over ({status}): `flow resume` runs {name} again"),
            _ => format!("the run is over ({status}): nothing to {}", action.as_str()),
        });
    }
    match action {
        Action::Retry
            if !matches!(
                phase,
                Phase::Failed | Phase::Conflicted | Phase::Skipped | Phase::Cancelled
            ) =>
        {
            Some(format!(
                "{name} is {phase}: only a failed, stopped or skipped workstream (or one skipped because of those) can be retried"
            ))
        }
        Action::Retry => None,
        Action::Message if phase.is_success() || matches!(phase, Phase::Ready | Phase::Merging) => Some(format!(
            "{name} is {phase}: its work is done, a message cannot change it"
        )),
        Action::Message if phase == Phase::Resolving => Some(format!(
            "{name} is {phase}: the resolver is at work, not its agent; send it once that is over"
        )),
        Action::Message if phase.is_final() => {
            Some(format!("{name} is {phase}: retry it first (r, or `flow retry {name}`)"))
        }
        Action::Message => None,
        _ if phase.is_final() => Some(format!("{name} is already {phase}")),
        Action::Skip if phase != Phase::Pending => Some(format!("{name} has started: stop it with s")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_through_its_file_tidied_and_an_oversized_file_is_dropped() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let run_dir = RunDir::new(temp.path(), "r");
        send(&run_dir, "a", Action::Retry).expect("sent");
        send_message(&run_dir, "b", "hello \u{1b}[2J\"there\"\n$(not run)").expect("sent");
        // Something else wrote a file too big for a request: not read past its limit, dropped.
        let huge = format!(
            r#"{{"action":"message","workstream":"b","text":"{}"}}"#,
            "y".repeat(20_000)
        );
        std::fs::write(folder(&run_dir).join("9999999999-000000000-1.json"), huge).expect("written");
        let taken = take(&folder(&run_dir));
        assert_eq!(taken.len(), 3);
        assert_eq!(
            taken[0],
            Ok(Request {
                action: Action::Retry,
                workstream: "a".into(),
                text: None,
            })
        );
        assert_eq!(
            taken[1].as_ref().map(|r| r.text.as_deref()),
            Ok(Some("hello [2J\"there\"\n$(not run)"))
        );
        assert!(taken[2].is_err());
        assert!(take(&folder(&run_dir)).is_empty(), "each file is taken once");
    }

    #[test]
    fn what_may_be_asked_of_a_workstream_in_each_phase() {
        use Action::{Message, Retry, Skip, Stop};
        let running = RunStatus::Running;
        let cases = [
            (running, Phase::Failed, Retry, None),
            (running, Phase::Skipped, Retry, None),
            (running, Phase::Conflicted, Retry, None),
            (
                running,
                Phase::Running,
                Retry,
                Some("only a failed, stopped or skipped workstream"),
            ),
            (running, Phase::Cancelled, Retry, None),
            (
                RunStatus::Failed,
                Phase::Failed,
                Retry,
                Some("`flow resume` runs w again"),
            ),
            (running, Phase::Running, Message, None),
            (running, Phase::Pending, Message, None),
            (running, Phase::Checking, Message, None),
            (running, Phase::Merged, Message, Some("its work is done")),
            (running, Phase::Ready, Message, Some("its work is done")),
            (running, Phase::Failed, Message, Some("retry it first")),
            (running, Phase::Resolving, Message, Some("the resolver is at work")),
            (running, Phase::Running, Stop, None),
            (running, Phase::Merged, Stop, Some("already merged")),
            (running, Phase::Running, Skip, Some("has started")),
            (running, Phase::Pending, Skip, None),
        ];
        for (status, phase, action, expected) in cases {
            let got = refusal(status, "w", phase, action);
            match expected {
                None => assert_eq!(got, None, "{phase} {action:?}"),
                Some(text) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(text)),
                    "{phase} {action:?}: {got:?}"
                ),
            }
        }
    }
}
