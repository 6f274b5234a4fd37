//! A YAML document as data, and its text: the small part of YAML a CI workflow needs.
//!
//! Written by hand rather than through a YAML crate: the documents flow writes hold only
//! mappings (in the order written), sequences, numbers, booleans and strings, and every string
//! is written as a JSON string (which YAML 1.2 reads as the same string), or as a literal
//! block for a multi-line script. That keeps key order and quoting under control (no `on:`
//! read as `true`, no `${{ }}` left unquoted) in about sixty lines, with no dependency whose
//! serializer reorders keys or picks its own quoting. The exported files are checked by
//! GitHub's schema and by actionlint in the tests.

use std::fmt::Write;

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A mapping, its keys in the order given.
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    Str(String),
    /// A multi-line string, written as a literal block (`|`).
    Block(String),
    Int(u64),
    Bool(bool),
}

impl Yaml {
    /// A string value.
    pub fn str(text: impl Into<String>) -> Yaml {
        Yaml::Str(text.into())
    }

    /// A mapping from pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
        Yaml::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The document's text, ending with a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Map(pairs) if !pairs.is_empty() => write_pairs(&mut out, pairs, 0),
            other => {
                write_scalar(&mut out, other, 0);
                out.push('\n');
            }
        }
        out
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

fn key(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        && !matches!(
            text,
            "on" | "off" | "yes" | "no" | "true" | "false" | "null" | "y" | "n"
        );
    if plain { text.to_string() } else { quoted(text) }
}

fn write_pairs(out: &mut String, pairs: &[(String, Yaml)], indent: usize) {
    for (k, v) in pairs {
        let _ = write!(out, "{:indent$}{}:", "", key(k));
        write_nested(out, v, indent);
    }
}

/// Writes a value after `key:` or `-`: inline when scalar or empty, else on the next lines.
fn write_nested(out: &mut String, value: &Yaml, indent: usize) {
    match value {
        Yaml::Map(pairs) if !pairs.is_empty() => {
            out.push('\n');
            write_pairs(out, pairs, indent + 2);
        }
        Yaml::List(items) if !items.is_empty() => {
            out.push('\n');
            for item in items {
                let _ = write!(out, "{:indent$}  -", "");
                match item {
                    Yaml::Map(pairs) if !pairs.is_empty() => {
                        // The first pair on the dash's line, the rest under it.
                        let (k, v) = &pairs[0];
                        let _ = write!(out, " {}:", key(k));
                        write_nested(out, v, indent + 4);
                        write_pairs(out, &pairs[1..], indent + 4);
                    }
                    other => write_nested(out, other, indent + 2),
                }
            }
        }
        other => {
            out.push(' ');
            write_scalar(out, other, indent);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Yaml, indent: usize) {
    match value {
        Yaml::Map(_) => out.push_str("{}"),
        Yaml::List(_) => out.push_str("[]"),
        Yaml::Str(text) => out.push_str(&quoted(text)),
        Yaml::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Yaml::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Yaml::Block(text) if text.contains('\n') && !text.starts_with([' ', '\n']) => {
            out.push('|');
            if !text.ends_with('\n') {
                out.push('-');
            }
            for line in text.trim_end_matches('\n').split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    let _ = write!(out, "{:width$}{line}", "", width = indent + 2);
                }
            }
        }
        Yaml::Block(text) => out.push_str(&quoted(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_mappings_lists_and_blocks() {
        let doc = Yaml::map([
            ("on", Yaml::map([("workflow_dispatch", Yaml::Map(vec![]))])),
            (
                "steps",
                Yaml::List(vec![
                    Yaml::map([
                        ("uses", Yaml::str("a@v1")),
                        ("with", Yaml::map([("depth", Yaml::Int(0))])),
                    ]),
                    Yaml::map([("run", Yaml::Block("one\ntwo\n".into()))]),
                ]),
            ),
            ("needs", Yaml::List(vec![Yaml::str("x: y")])),
        ]);
        assert_eq!(
            doc.to_text(),
            "\"on\":\n  workflow_dispatch: {}\nsteps:\n  - uses: \"a@v1\"\n    with:\n      depth: 0\n  - run: |\n      one\n      two\nneeds:\n  - \"x: y\"\n"
        );
    }
}
