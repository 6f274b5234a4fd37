//! A run's record on disk (in the folders [`RunDir`] names): `state.json` (an atomic
//! snapshot), `events.jsonl` (append-only, one event per line), and `.flow/latest` naming the
//! newest run.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::Path;

use crate::atomic::{write_atomic, write_atomic_with};
use crate::run::state::{Event, RunState};
use crate::site::RunDir;

impl RunDir {
    /// Creates the folders.
    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(self.dir.join("logs"))?;
        ensure_flow_dir(&self.flow_dir)
    }

    /// Makes this the latest run: only once its first `state.json` is written, so that a
    /// crash in between never leaves `.flow/latest` naming a run that cannot be read.
    pub fn make_latest(&self) -> io::Result<()> {
        write_atomic(&self.flow_dir.join("latest"), format!("{}\n", self.id).as_bytes())
    }

    /// Writes the state snapshot atomically (temporary file, fsync, rename).
    /// The JSON is written through a small buffer straight into the file: a run of 10,000
    /// workstreams held a 16 MB copy of it in memory otherwise (bench/scheduler.sh's peak).
    pub fn save(&self, state: &RunState) -> io::Result<()> {
        write_atomic_with(&self.state_path(), |file| {
            let mut writer = io::BufWriter::with_capacity(64 * 1024, file);
            serde_json::to_writer(&mut writer, state).map_err(io::Error::other)?;
            writer.flush()
        })
    }

    /// Loads the state: the snapshot with every later event applied again.
    pub fn load(&self) -> io::Result<RunState> {
        let text = std::fs::read(self.state_path())?;
        let mut state: RunState = serde_json::from_slice(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", self.state_path().display()),
            )
        })?;
        for event in read_events(&self.events_path())? {
            if event.seq > state.last_event {
                state.apply(&event);
            }
        }
        Ok(state)
    }
}

/// Reads every complete event; a last line cut short by a crash is ignored.
pub fn read_events(path: &Path) -> io::Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut events = vec![];
    for line in io::BufReader::new(file).lines() {
        let line = line?;
        if let Ok(event) = serde_json::from_str::<Event>(&line) {
            events.push(event);
        }
    }
    Ok(events)
}

/// The append-only event log.
pub struct EventLog {
    file: File,
}

impl EventLog {
    /// Opens (or creates) the log for appending. A last line cut short by a crash is ended
    /// first, so that the next event starts a line of its own instead of being glued to it
    /// (and lost with it).
    pub fn open(path: &Path) -> io::Result<EventLog> {
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(EventLog { file })
    }

    /// Appends one event as a single write, so a crash leaves whole lines only (or a cut last line).
    pub fn append(&mut self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Forces the log to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Where the run's events and snapshots go.
pub trait Journal: Send {
    /// Appends one event to the event log.
    fn append(&mut self, event: &Event) -> io::Result<()>;
    /// Forces the event log to disk.
    fn sync(&mut self) -> io::Result<()>;
    /// Writes a snapshot of the state.
    fn snapshot(&mut self, state: &RunState) -> io::Result<()>;
}

/// A run's record on disk: its event log and its `state.json`.
pub struct RunJournal {
    log: EventLog,
    run_dir: RunDir,
}

impl RunJournal {
    /// Opens the event log of a run folder for appending.
    pub fn open(run_dir: RunDir) -> io::Result<RunJournal> {
        Ok(RunJournal {
            log: EventLog::open(&run_dir.events_path())?,
            run_dir,
        })
    }
}

impl Journal for RunJournal {
    fn append(&mut self, event: &Event) -> io::Result<()> {
        self.log.append(event)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.log.sync()
    }

    fn snapshot(&mut self, state: &RunState) -> io::Result<()> {
        self.run_dir.save(state)
    }
}

/// Creates `.flow/` with a `.gitignore` of its own, so it stays out of git (and out of
/// `git status`) without touching the user's `.gitignore`.
pub fn ensure_flow_dir(flow_dir: &Path) -> io::Result<()> {
    let path = flow_dir.join(".gitignore");
    if !path.exists() {
        std::fs::create_dir_all(flow_dir)?;
        std::fs::write(path, "*\n")?;
    }
    Ok(())
}

/// A new run id: UTC date and time, plus a short suffix so two runs in one second differ.
pub fn new_run_id() -> String {
    let now = crate::time::now();
    let suffix = (now.subsec_nanosecond() as u32 ^ std::process::id().wrapping_mul(2_654_435_761)) & 0xffff;
    format!("{}-{suffix:04x}", now.strftime("%Y%m%d-%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time() {
        let id = new_run_id();
        assert_eq!(id.len(), "20251124-130405-0a1b".len(), "{id}");
        assert!(id.starts_with("20"), "{id}");
    }
}
