//! What a person asks of a run going on, beyond stop and skip: run a failed workstream again,
//! or tell a workstream's agent something.
//!
//! - A retry is for a failed or conflicted workstream, one a person stopped or skipped (they
//!   changed their mind), or one skipped because of those (what it waits on is retried; a
//!   conflict is not retried once merging stopped at one). It is recorded ([`EventKind::Retried`]), its skipped dependents
//!   wait again, and it starts afresh from a clean worktree when a slot is free: a new attempt
//!   with its `retries` and `fix-attempts` whole again. Its budgets still count what it spent
//!   (a spent one refuses it at once). The failure it retries no longer holds the run back:
//!   without `--keep-going`, new work starts again if no other failure stands.
//! - A message is given to the agent as a fix attempt (feedback of kind `message`), in the same
//!   worktree and, where the agent can continue its session, the same session. It never cuts
//!   an attempt short: it waits for the current attempt (or check, or review) to end, and goes
//!   before the check of that work, which follows the message's attempt. A message for a
//!   workstream that has not started waits for its first attempt to end. Finished work (ready,
//!   merged, done) is not reopened for one; a failed or stopped workstream must be retried
//!   first. A message still kept when its workstream's job ends otherwise (it failed a check
//!   with no fix left) goes to the agent after the first attempt of a retry.

use std::collections::VecDeque;

use super::{Core, Phase};
use crate::run::state::{EventKind, Feedback, FeedbackKind, Purpose};

impl Core {
    /// A person asks for a failed workstream (or the failures a skipped one waits on) to run
    /// again; what cannot be retried is an alert.
    pub(super) fn retry(&mut self, index: usize) {
        let ws = &self.state.workstreams[index];
        let (name, phase) = (ws.name.clone(), ws.phase);
        let refuse = |why: String| EventKind::Alert {
            workstream: Some(index),
            message: format!("`{name}` cannot be retried: {why}"),
        };
        if self.cancelled || self.log_broken {
            return self.record(refuse("the run is stopping".into()));
        }
        let failed = match phase {
            Phase::Conflicted if self.merges.is_stopped() => {
                return self.record(refuse("merging stopped at a conflict (on-conflict \"stop\")".into()));
            }
            Phase::Failed | Phase::Conflicted => vec![index],
            // A person stopped or skipped it, and asks for it now: it, and what it waits on.
            Phase::Skipped | Phase::Cancelled if self.by_person[index] => {
                let mut list = self.failed_causes(index);
                list.push(index);
                list
            }
            Phase::Skipped => self.failed_causes(index),
            other => {
                return self.record(refuse(format!(
                    "it is {other}; only a failed workstream, or one a person stopped or skipped, can be"
                )));
            }
        };
        if failed.is_empty() {
            return self.record(refuse("no failed or stopped workstream holds it back".into()));
        }
        for i in failed {
            self.run_again(i);
        }
        // The failures retried no longer stop the run; another one still standing does.
        let n = self.state.workstreams.len();
        let standing = (0..n).any(|j| {
            self.selected[j]
                && !self.by_person[j]
                && matches!(self.state.workstreams[j].phase, Phase::Failed | Phase::Conflicted)
        });
        self.stopping = self.cancelled || self.log_broken || (standing && !self.options.keep_going);
    }

    /// The failed workstreams (and those a person stopped or skipped) that a skipped one waits
    /// on, through other skipped ones.
    fn failed_causes(&self, index: usize) -> Vec<usize> {
        let mut found = vec![];
        let mut seen = vec![false; self.state.workstreams.len()];
        let mut queue = VecDeque::from([index]);
        while let Some(i) = queue.pop_front() {
            for &d in &self.plan.workflow.workstreams[i].dependencies {
                if std::mem::replace(&mut seen[d], true) {
                    continue;
                }
                match self.state.workstreams[d].phase {
                    Phase::Failed | Phase::Conflicted => found.push(d),
                    Phase::Skipped | Phase::Cancelled if self.by_person[d] => found.push(d),
                    Phase::Skipped => queue.push_back(d),
                    _ => {}
                }
            }
        }
        found.sort_unstable();
        found
    }

    /// Records the retry of a failed workstream, puts back the dependents its failure skipped
    /// (those with no other failure to wait on), and queues it to start.
    fn run_again(&mut self, index: usize) {
        self.by_person[index] = false;
        self.sync_tried[index] = None;
        let ws = &self.state.workstreams[index];
        let note = match ws.phase {
            Phase::Skipped => format!("`{}` retried by a person after it was skipped", ws.name),
            Phase::Cancelled => format!("`{}` retried by a person after it was stopped", ws.name),
            _ => {
                let why = ws
                    .failure
                    .as_ref()
                    .map_or(String::new(), |f| format!(" ({})", preview(&f.message)));
                format!("`{}` retried by a person after it failed{why}", ws.name)
            }
        };
        self.record(EventKind::Retried {
            workstream: index,
            reason: "retried by a person".into(),
        });
        // Said among the alerts too, which the dashboard and the report show.
        self.record(EventKind::Alert {
            workstream: Some(index),
            message: note,
        });
        self.merges.rewind(self.plan.merge_position[index]);
        let mut queue: VecDeque<usize> = self.plan.dependents(index).collect();
        while let Some(d) = queue.pop_front() {
            let ws = &self.state.workstreams[d];
            if ws.phase != Phase::Skipped || self.by_person[d] || !self.selected[d] {
                continue;
            }
            let blocked = self.plan.workflow.workstreams[d].dependencies.iter().any(|&dep| {
                let phase = self.state.workstreams[dep].phase;
                phase.is_final() && !phase.is_success()
            });
            if blocked {
                continue;
            }
            self.merges.rewind(self.plan.merge_position[d]);
            self.record(EventKind::Phase {
                workstream: d,
                phase: Phase::Pending,
                reason: None,
            });
            queue.extend(self.plan.dependents(d));
        }
        if self.missing[index] == 0 {
            self.push_ready(index);
        }
    }

    /// A person's message for a workstream's agent: kept until its current attempt ends (see
    /// the module's documentation); what cannot take one is an alert.
    pub(super) fn message(&mut self, index: usize, text: &str) {
        let Some(ws) = self.state.workstreams.get(index) else {
            return;
        };
        let (name, phase) = (ws.name.clone(), ws.phase);
        let text = tidy(text);
        let refused = if text.is_empty() {
            Some("it is empty".to_string())
        } else if self.cancelled || self.log_broken {
            Some("the run is stopping".to_string())
        } else if phase.is_success() || matches!(phase, Phase::Ready | Phase::Merging) {
            Some(format!("it is {phase}: its work is done"))
        } else if phase == Phase::Resolving || self.merges.is_resolving(index) {
            Some(format!("it is {phase}: the resolver is at work, not its agent"))
        } else if phase.is_final() {
            Some(format!("it is {phase}: retry it first"))
        } else {
            None
        };
        if let Some(why) = refused {
            return self.record(EventKind::Alert {
                workstream: Some(index),
                message: format!("the message for `{name}` was not sent: {why}"),
            });
        }
        self.record(EventKind::Alert {
            workstream: Some(index),
            message: format!(
                "a person's message for `{name}` is queued: its agent gets it when its current attempt ends: {}",
                preview(&text)
            ),
        });
        self.record(EventKind::Told {
            workstream: index,
            text,
        });
    }

    /// Gives the messages kept for a workstream to its agent, as a fix attempt, if any are kept
    /// and its job can start an attempt; tells whether it did.
    pub(super) fn deliver_message(&mut self, index: usize) -> bool {
        if self.state.workstreams[index].told.is_empty() || self.jobs[index].is_none() || self.must_stop(index) {
            return false;
        }
        // The attempt's start takes them out of the record.
        let texts = self.state.workstreams[index].told.clone();
        let first = preview(&texts[0]);
        let feedback = Feedback {
            kind: FeedbackKind::Message,
            summary: format!("a person's message: {first}"),
            detail: texts.join("\n\n"),
            files: vec![],
        };
        self.start_attempt(index, Purpose::Fix, Some(feedback));
        true
    }
}

impl Core {
    /// Says, as the run ends, which messages no agent got (the workstream failed a check
    /// with no fix left, or the run stopped first).
    pub(super) fn undelivered_messages(&mut self) {
        for index in 0..self.state.workstreams.len() {
            let count = self.state.workstreams[index].told.len();
            if count > 0 {
                let name = self.state.workstreams[index].name.clone();
                self.record(EventKind::Alert {
                    workstream: Some(index),
                    message: format!("{count} message(s) for `{name}` never reached its agent: the run ended first"),
                });
            }
        }
    }
}

/// The first line of a message, cut for a one-line alert.
fn preview(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.chars().count() <= 80 {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(79).collect::<String>())
    }
}

/// The longest message a person sends an agent, in characters: a few paragraphs. What is
/// longer is cut, and says so.
pub const MESSAGE_MAX: usize = 2000;

/// A person's message made safe to keep and pass on: control characters other than newlines
/// and tabs dropped (no escape sequence reaches a terminal that shows it), cut to
/// [`MESSAGE_MAX`] characters, blank lines at its ends trimmed.
pub fn tidy(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let clean = clean.trim();
    let count = clean.chars().count();
    if count <= MESSAGE_MAX {
        return clean.to_string();
    }
    let cut: String = clean.chars().take(MESSAGE_MAX).collect();
    format!("{cut}… [cut: {} more characters]", count - MESSAGE_MAX)
}
