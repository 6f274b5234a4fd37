//! The decision log, `conflict_resolution.md`: every conflict resolution, by an agent or a
//! person, one entry appended as it is made (the files, the sides, who decided, what). A run
//! keeps its own in its folder; its later agents read the entries about their dependencies.

use std::io::Write;
use std::path::Path;

use crate::git::Oid;

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

/// Appends an entry about the resolution that `commit` holds to the log at `path`, with the
/// commit named, unless the log names that commit already; returns the whole log when it
/// appended. A run that is killed after logging a resolution and before recording it checks
/// the same commit again on resume: the log keeps one entry for it.
pub fn append_once(path: &Path, commit: Oid, entry: &str) -> std::io::Result<Option<String>> {
    let key = format!("- commit: {commit}\n");
    match std::fs::read_to_string(path) {
        Ok(log) if log.contains(&key) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    append(path, &format!("{entry}{key}")).map(Some)
}

/// The first line of a text that is not blank.
fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_log_takes_each_resolution_once() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("conflict_resolution.md");
        let (first, second): (Oid, Oid) = (
            "1".repeat(40).parse().expect("an id"),
            "2".repeat(40).parse().expect("an id"),
        );
        let entry = "## `w` and the integration branch\n\n- files: a.txt\n";
        assert!(append_once(&path, first, entry).expect("written").is_some());
        assert!(
            append_once(&path, first, entry).expect("read").is_none(),
            "the same resolution again"
        );
        assert!(
            append_once(&path, second, entry).expect("written").is_some(),
            "another one"
        );
        let log = std::fs::read_to_string(&path).expect("the log");
        assert_eq!(log.matches("# Conflict resolutions").count(), 1, "{log}");
        assert_eq!(log.matches("## `w`").count(), 2, "{log}");
        assert!(
            log.contains(&format!("- files: a.txt\n- commit: {first}\n\n## `w`")),
            "{log}"
        );
    }
}
