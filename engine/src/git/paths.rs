//! Path helpers: comparable absolute paths and repository-relative prefixes.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Returns an absolute path with symlinks resolved as far as the path exists.
///
/// Paths are compared after this, so `/tmp/x/../y` and a symlinked `/tmp` agree with
/// the paths libgit2 stores. The part that does not exist yet is kept lexically.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other.as_os_str()),
        }
    }
    let mut existing = lexical.clone();
    let mut missing: Vec<OsString> = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(&existing) {
            let mut out = canonical;
            for name in missing.iter().rev() {
                out.push(name);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return lexical,
        }
    }
}

/// Tells whether a repository-relative path lies under a prefix such as `.ai/worktrees/`.
///
/// A prefix matches itself and everything below it, never a sibling that merely
/// starts with the same letters (`.ai/worktreesX`). An empty prefix matches nothing.
pub(crate) fn is_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_start_matches("./").trim_end_matches('/');
    if prefix.is_empty() {
        return false;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Tells whether a path lies under any of the prefixes.
pub(crate) fn is_under_any(path: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| is_under(path, prefix))
}

/// Converts a path git reported as bytes into a `/`-separated string.
pub(crate) fn repo_path(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::is_under;

    #[test]
    fn prefixes_match_whole_components() {
        assert!(is_under(".ai/worktrees/gui/context.md", ".ai/worktrees/"));
        assert!(is_under(".ai/worktrees", ".ai/worktrees/"));
        assert!(is_under(".ai/worktrees/x", "./.ai/worktrees"));
        assert!(!is_under(".ai/worktreesX/a", ".ai/worktrees/"));
        assert!(!is_under("src/a", ""));
        assert!(!is_under("src", "src/a"));
    }
}
