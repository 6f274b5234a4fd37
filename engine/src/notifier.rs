//! The `notify` blocks of a workflow at work: an observer that, on the events a block chose,
//! runs its command with the event as one line of JSON on its standard input, and rings the
//! terminal bell for the blocks that ask for it.
//!
//! The command is started directly (no shell), so nothing of the event — which carries text
//! an agent controls, such as a failure's message — is ever read as shell code by flow; a
//! command that hands it to a shell must quote it itself. The run never waits for a command:
//! each is started, given its line and reaped on a thread of its own.

use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};

use flow_dsl::{Notify, NotifyEvent, Workflow};
use serde::Serialize;

use crate::run::observer::Observer;
use crate::run::state::{Event, EventKind, FailureKind, RunState};

/// What a notify command reads on its standard input: one JSON object and a newline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub version: u32,
    /// `run-finished`, `workstream-failed`, `needs-person` or `budget-alert`.
    pub event: &'static str,
    pub run: String,
    pub workflow: String,
    /// The run's status (`running`, or how it ended).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workstream: Option<String>,
    /// The failure's class, for a failed workstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// One line for a person.
    pub message: String,
    pub at: String,
}

/// The notices an event gives, in order.
pub fn notices(state: &RunState, event: &Event) -> Vec<(NotifyEvent, Notice)> {
    let notice = |what: NotifyEvent, workstream: Option<usize>, kind: Option<&'static str>, message: String| {
        (
            what,
            Notice {
                version: 1,
                event: what.name(),
                run: state.id.clone(),
                workflow: state.workflow.clone(),
                status: state.status.as_str(),
                workstream: workstream
                    .and_then(|w| state.workstreams.get(w))
                    .map(|w| w.name.clone()),
                kind,
                message,
                at: event.at.to_string(),
            },
        )
    };
    let name = |w: usize| state.workstreams.get(w).map_or("?", |w| w.name.as_str()).to_string();
    match &event.kind {
        EventKind::RunEnded { status } => {
            let done = state.workstreams.iter().filter(|w| w.phase.is_success()).count();
            vec![notice(
                NotifyEvent::RunFinished,
                None,
                None,
                format!(
                    "run {} of {} {status}: {done} of {} workstreams done",
                    state.id,
                    state.workflow,
                    state.workstreams.len()
                ),
            )]
        }
        EventKind::Failed { workstream, failure } => {
            let first = failure.message.lines().next().unwrap_or("").to_string();
            let mut out = vec![notice(
                NotifyEvent::WorkstreamFailed,
                Some(*workstream),
                Some(failure.kind.as_str()),
                format!("{} failed ({}): {first}", name(*workstream), failure.kind),
            )];
            if failure.kind == FailureKind::Review {
                out.push(notice(
                    NotifyEvent::NeedsPerson,
                    Some(*workstream),
                    Some(failure.kind.as_str()),
                    format!(
                        "{}: its review rejected the work for the last time: {first}",
                        name(*workstream)
                    ),
                ));
            }
            out
        }
        EventKind::Conflicted { workstream, paths } => {
            let message = format!("{} conflicts in {}", name(*workstream), paths.join(", "));
            vec![
                notice(
                    NotifyEvent::WorkstreamFailed,
                    Some(*workstream),
                    Some("conflict"),
                    message.clone(),
                ),
                notice(
                    NotifyEvent::NeedsPerson,
                    Some(*workstream),
                    Some("conflict"),
                    format!("{message}: `flow resolve {}` sets it up for you", name(*workstream)),
                ),
            ]
        }
        EventKind::Alert { workstream, message } if message.contains("budget") => {
            vec![notice(NotifyEvent::BudgetAlert, *workstream, None, message.clone())]
        }
        EventKind::Overrun { workstream, breach } => {
            vec![notice(
                NotifyEvent::BudgetAlert,
                Some(*workstream),
                Some("budget"),
                breach.overrun(),
            )]
        }
        _ => vec![],
    }
}

/// Runs the workflow's `notify` blocks on the events they chose.
pub struct Notifier {
    blocks: Vec<Notify>,
}

impl Notifier {
    /// The notifier of a workflow; `None` when it has no `notify` block.
    pub fn for_workflow(workflow: &Workflow) -> Option<Notifier> {
        (!workflow.notify.is_empty()).then(|| Notifier {
            blocks: workflow.notify.clone(),
        })
    }
}

impl Observer for Notifier {
    fn event(&mut self, state: &RunState, event: &Event) {
        for (what, notice) in notices(state, event) {
            let Ok(mut line) = serde_json::to_vec(&notice) else {
                continue;
            };
            line.push(b'\n');
            for block in self.blocks.iter().filter(|b| b.on.contains(&what)) {
                if block.bell {
                    ring();
                }
                if let Some((program, args)) = block.command.split_first() {
                    start(program, args, line.clone());
                }
            }
        }
    }
}

/// Rings the terminal bell, on standard error when it is a terminal.
fn ring() {
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = stderr.write_all(b"\x07");
        let _ = stderr.flush();
    }
}

/// Starts a command with `line` on its standard input; a thread waits for it.
fn start(program: &str, args: &[String], line: Vec<u8>) {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        // A notification is a courtesy: a command that cannot start does not stop the run.
        return;
    };
    std::thread::spawn(move || {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&line);
        }
        let _ = child.wait();
    });
}
