//! The decision log, `conflict_resolution.md`: every conflict resolution, by an agent or a
//! person, one entry appended as it is made (the files, the sides, who decided, what). A run
//! keeps its own in its folder; its later agents read the entries about their dependencies.

use std::io::Write;
use std::path::Path;

/// The log's file name, in a run's folder (and in worktrees' `.ai/coordination/`).
pub const FILE_NAME: &str = "conflict_resolution.md";

/// What a new log starts with.
const HEADER: &str =
    "# Conflict resolutions\n\nEvery conflict resolved: the files, the sides, what was decided and by whom.\n\n";

/// Formats one entry: `workstream`'s branch against the integration branch, in `files`,
/// decided `by` someone, with the first line of `what` they said they decided.
pub fn entry(workstream: &str, files: &[String], by: &str, what: Option<&str>) -> String {
    let mut entry = format!(
        "## `{workstream}` and the integration branch\n\n- files: {}\n- sides: `{workstream}`'s branch, and the integration branch (the work merged before it)\n- decided by: {by}\n",
        files.join(", ")
    );
    if let Some(what) = what.filter(|w| !w.trim().is_empty()) {
        entry.push_str(&format!("- what was decided: {}\n", first_line(what)));
    }
    entry
}

/// Appends an entry to the log at `path` (its header first when the file is new) and returns
/// the whole log.
pub fn append(path: &Path, entry: &str) -> std::io::Result<String> {
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if new {
        file.write_all(HEADER.as_bytes())?;
    }
    file.write_all(entry.as_bytes())?;
    file.write_all(b"\n")?;
    drop(file);
    std::fs::read_to_string(path)
}

/// The first line of a text that is not blank.
fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}
