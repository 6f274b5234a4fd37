//! Glob algebra (placeholder).
pub fn globs_may_overlap(_a: &str, _b: &str) -> bool { true }
pub fn glob_covers(_outer: &str, _inner: &str) -> bool { false }
