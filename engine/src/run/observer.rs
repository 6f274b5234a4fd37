//! Observers: whatever follows a run as it happens (progress on the terminal, the markdown
//! board, dashboards) subscribes here to the events the core records, the lines agents print
//! and the notices the driver gives.

use crate::run::state::{Event, RunState};

/// Sees every event as it is recorded, and the agents' output lines.
pub trait Observer: Send {
    /// Called after an event is applied to the state and appended to the log.
    fn event(&mut self, state: &RunState, event: &Event);
    /// Called for each line an agent prints on standard output.
    fn line(&mut self, _state: &RunState, _workstream: usize, _line: &str) {}
    /// Called for several lines at once, each ended by `\n`; by default, [`Observer::line`]
    /// for each.
    fn lines(&mut self, state: &RunState, workstream: usize, lines: &str) {
        for line in lines.split_terminator('\n') {
            self.line(state, workstream, line);
        }
    }
    /// Called for what flow itself has to say that is not an event of the run (a repair made
    /// before it started, a record it cannot write).
    fn notice(&mut self, _message: &str) {}
    /// Called after the state was saved (a few times a second at most), for observers that
    /// write files of their own and need not do it at every event.
    fn checkpoint(&mut self, _state: &RunState) {}
    /// Called once when the run is over.
    fn finish(&mut self, _state: &RunState) {}
}

/// Several observers, each told everything in turn.
#[derive(Default)]
pub struct Observers(pub Vec<Box<dyn Observer>>);

impl Observer for Observers {
    fn event(&mut self, state: &RunState, event: &Event) {
        for o in &mut self.0 {
            o.event(state, event);
        }
    }

    fn line(&mut self, state: &RunState, workstream: usize, line: &str) {
        for o in &mut self.0 {
            o.line(state, workstream, line);
        }
    }

    fn lines(&mut self, state: &RunState, workstream: usize, lines: &str) {
        for o in &mut self.0 {
            o.lines(state, workstream, lines);
        }
    }

    fn notice(&mut self, message: &str) {
        for o in &mut self.0 {
            o.notice(message);
        }
    }

    fn checkpoint(&mut self, state: &RunState) {
        for o in &mut self.0 {
            o.checkpoint(state);
        }
    }

    fn finish(&mut self, state: &RunState) {
        for o in &mut self.0 {
            o.finish(state);
        }
    }
}
