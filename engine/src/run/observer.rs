//! Observers: whatever follows a run as it happens (progress on the terminal, the markdown
//! board, dashboards) subscribes here to the events the core records, the lines agents print
//! and the notices the driver gives.

use crate::run::state::{Event, RunState};

/// Which of the lines agents print an observer is given ([`Observer::lines`]).
///
/// An agent printing as fast as it can makes hundreds of megabytes a minute: what no observer
/// wants is not copied nor sent (`bench/output.sh`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinesWanted {
    /// None.
    #[default]
    Nothing,
    /// The last line that is not blank of each read of an agent's output (a progress bar
    /// shows the newest line).
    Last,
    /// Every line.
    All,
}

/// Sees every event as it is recorded, and the agents' output lines.
pub trait Observer: Send {
    /// Called after an event is applied to the state and appended to the log.
    fn event(&mut self, state: &RunState, event: &Event);
    /// Says which lines [`Self::lines`] is called with; asked when an agent starts.
    fn lines_wanted(&self) -> LinesWanted {
        LinesWanted::Nothing
    }
    /// Called with lines an agent printed on standard output (secrets already redacted),
    /// each ended by `\n`: the lines of one read of its output at once, as many as
    /// [`Self::lines_wanted`] asked for (for several observers, the most any of them asked).
    /// An agent printing hundreds of megabytes makes millions, so none is split unless an
    /// observer does it.
    fn lines(&mut self, _state: &RunState, _workstream: usize, _lines: &str) {}
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

    fn lines_wanted(&self) -> LinesWanted {
        self.0.iter().map(|o| o.lines_wanted()).max().unwrap_or_default()
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
