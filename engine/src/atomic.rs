//! Files written whole or not at all: a temporary file in the same folder, fsync, rename.
//! Used for every record flow keeps (`state.json`, requests, by-hand records, guard
//! snapshots) and for the one git file it edits (`objects/info/alternates`).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes a file atomically: a temporary file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes a file atomically as [`write_atomic`] does, its content written by `write`.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    write(temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
