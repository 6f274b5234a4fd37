//! Explains the kdl crate's syntax errors in words a workflow author understands.
//!
//! The kdl crate reports a cascade of diagnostics for one mistake, worded for its own
//! grammar ("not identifier string", "not EOF"). This module keeps the root cause (at most
//! one problem per line, none after an error that swallows the rest of the file, three in
//! all), looks at the text each diagnostic points to, and turns it into a [`Problem`] that
//! says what is wrong and how to write it instead. It is apart from the loader, which only
//! decides which files to read and hands their syntax errors here.

use miette::{LabeledSpan, Severity};

use crate::problem::{Code, Problem, Source};

/// Turns the kdl crate's parse errors into problems, without the cascade of follow-on errors:
/// at most one per line, none after an error that swallows the rest of the file (an unclosed
/// string or comment), at most three in all.
pub fn syntax_problems(source: &Source, error: &kdl::KdlError) -> Vec<Problem> {
    let text = source.inner().as_str();
    let others = error
        .diagnostics
        .iter()
        .any(|d| d.label.as_deref() != Some("not closed"));
    let mut diagnostics: Vec<&kdl::KdlDiagnostic> = error
        .diagnostics
        .iter()
        // An unclosed block is a follow-on of any other error.
        .filter(|d| !others || d.label.as_deref() != Some("not closed"))
        .filter(|d| d.message.as_deref() != Some("Closing '}' was not found after nodes"))
        .collect();
    diagnostics.sort_by_key(|d| d.span.offset());
    let mut kept: Vec<Explained> = vec![];
    for e in diagnostics.into_iter().map(|d| explain(text, d)) {
        if kept
            .last()
            .is_some_and(|last| last.ends_parse || line_of(text, last.span.0) == line_of(text, e.span.0))
        {
            continue;
        }
        kept.push(e);
        if kept.len() == 3 {
            break;
        }
    }
    if kept.is_empty() {
        kept.push(Explained::new((0, 0), "invalid KDL", "here", None));
    }
    // Labels stay within the text and on character boundaries, whatever the guesses above did.
    let fit = |(offset, len): (usize, usize)| {
        let start = floor_boundary(text, offset);
        let mut end = (offset + len).clamp(start, text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        (start, end - start)
    };
    kept.into_iter()
        .map(|e| {
            let mut labels = vec![LabeledSpan::new_primary_with_span(Some(e.label), fit(e.span))];
            labels.extend(
                e.extra
                    .map(|(span, label)| LabeledSpan::new_with_span(Some(label), fit(span))),
            );
            Problem {
                code: Code::Syntax,
                severity: Severity::Error,
                message: e.message,
                source: source.clone(),
                labels,
                help: e.help,
            }
        })
        .collect()
}

/// A KDL syntax error in words a workflow author understands.
struct Explained {
    span: (usize, usize),
    message: String,
    label: String,
    help: Option<String>,
    extra: Option<((usize, usize), String)>,
    /// The parser lost track of the text after this error; later errors are noise.
    ends_parse: bool,
}

impl Explained {
    fn new(
        span: (usize, usize),
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Explained {
        Explained {
            span,
            message: message.into(),
            label: label.into(),
            help,
            extra: None,
            ends_parse: false,
        }
    }

    fn ending(mut self) -> Explained {
        self.ends_parse = true;
        self
    }
}

const KEYWORDS_HELP: &str = "KDL's keywords are `#true`, `#false`, `#null`, `#inf`, `#-inf` and `#nan`";

/// Rewrites one of the kdl crate's diagnostics, looking at the text it points to.
fn explain(text: &str, d: &kdl::KdlDiagnostic) -> Explained {
    let offset = floor_boundary(text, d.span.offset());
    let end = floor_boundary(text, d.span.offset() + d.span.len()).max(offset);
    let spanned = &text[offset..end];
    let word = token_at(text, offset);
    let message = d.message.clone().unwrap_or_else(|| "invalid KDL".to_string());
    let partial = d
        .help
        .as_deref()
        .is_some_and(|h| h.starts_with("A valid value was partially parsed"));
    let label = d.label.as_deref().unwrap_or("");
    if label == "not closed" {
        let (open, before) = unclosed_block(text, offset);
        let mut e = Explained::new(
            (open, 1),
            "this block is never closed",
            "this `{` has no matching `}`",
            Some("add the missing `}`".into()),
        );
        if let Some(at) = before {
            e.extra = Some((
                (at, token_at(text, at).len()),
                "the block probably ends before this line".into(),
            ));
        }
        return e;
    }
    if label == "not EOF" {
        return unexpected(text, offset, word);
    }
    if message == "Found invalid node name" {
        if word.starts_with(';') {
            return Explained::new(
                (offset, 1),
                "unexpected `;`",
                "nothing to end here",
                Some("`;` ends a node: remove the extra one".into()),
            );
        }
        return unexpected(text, offset, word);
    }
    if label == "not closing of multi-line comment" {
        let span = unclosed_comment(text).map_or((offset, end - offset), |at| (at, 2));
        return Explained::new(
            span,
            "this comment is never closed",
            "opened here",
            Some("close it with `*/`".into()),
        )
        .ending();
    }
    if label == "not property value" {
        let eq = spanned.rfind('=').map_or(end, |i| offset + i);
        let key_start = text[..eq]
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace() || "{;".contains(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = &text[key_start..eq];
        let value = token_at(text, eq + text[eq..].chars().next().map_or(0, char::len_utf8));
        if value.is_empty() {
            return Explained::new(
                (key_start, eq + 1 - key_start),
                format!("property `{key}` has no value"),
                "no value after `=`",
                Some(format!(
                    "write the value right after `=`: `{key}=10`, or `{key}=\"text\"`"
                )),
            );
        }
        let help = if value.starts_with('#') {
            KEYWORDS_HELP.to_string()
        } else {
            format!("put text in double quotes: `{key}=\"{value}\"`")
        };
        return Explained::new(
            (eq + 1, value.len()),
            format!("`{value}` is not a valid value"),
            "not a value",
            Some(help),
        );
    }
    if message == "Unexpected newline in single-line quoted string" {
        return Explained::new(
            (offset, end - offset),
            "this string is not closed on its line",
            "no closing `\"`",
            Some("add the closing `\"`; text over several lines goes between lines holding only `\"\"\"`".into()),
        )
        .ending();
    }
    if message == "Multi-line string opening quotes must be immediately followed by a newline" {
        return Explained::new(
            (offset, 3.min(text.len() - offset)),
            "`\"\"\"` must be followed by a new line",
            "text follows the opening `\"\"\"`",
            Some("write one line as `\"text\"`, or put the text on the lines between `\"\"\"` and `\"\"\"`".into()),
        )
        .ending();
    }
    if message == "matching multiline string prefix" {
        return Explained::new(
            (offset, 3.min(text.len() - offset)),
            "the lines of this multi-line string are indented less than its closing `\"\"\"`",
            "in this string",
            Some(
                "every line of a multi-line string starts with the same spaces as the line of its closing `\"\"\"`"
                    .into(),
            ),
        )
        .ending();
    }
    if label == "not keyword" {
        let name = word.trim_start_matches('#');
        return Explained::new(
            (offset, end - offset),
            format!("`{word}` is not a KDL keyword"),
            "unknown keyword",
            Some(format!("write text in double quotes: `\"{name}\"`; {KEYWORDS_HELP}")),
        );
    }
    if label == "not quoted string" {
        if let Some((at, escape)) = bad_escape(text, offset) {
            return Explained::new(
                (at, escape.len()),
                format!("`{escape}` is not an escape in a KDL string"),
                "invalid escape",
                Some(
                    "write a backslash as `\\\\`, or use a raw string where `\\` is literal: `#\"C:\\dir\\file\"#`"
                        .into(),
                ),
            )
            .ending();
        }
        if spanned.starts_with("\"\"\"") {
            return Explained::new(
                (offset, 3),
                "this multi-line string is never closed",
                "opened here",
                Some("close it with `\"\"\"` on a line of its own".into()),
            )
            .ending();
        }
        if partial {
            let close = string_end(text, offset);
            let tail = token_at(text, close);
            let help = match tail.chars().next() {
                Some(',') => "KDL separates values with spaces, not commas".to_string(),
                Some(']') => "KDL has no `[...]` lists: write the values one after another".to_string(),
                _ => "a `\"` inside a string is written `\\\"`; values are separated by spaces".to_string(),
            };
            return Explained::new(
                (close, tail.len()),
                format!("unexpected `{tail}` right after a string"),
                "expected a space or the end of the line",
                Some(help),
            );
        }
    }
    if label == "not identifier string" {
        if let Some(v1) = ["true", "false", "null", "inf", "-inf", "nan"]
            .iter()
            .find(|k| word.starts_with(**k) && word.len() == k.len())
        {
            return Explained::new(
                (offset, v1.len()),
                format!("bare `{v1}` is not allowed in KDL 2"),
                format!("write `#{v1}` or `\"{v1}\"`"),
                Some(format!(
                    "KDL 2 writes the keyword as `#{v1}`; for the text, write `\"{v1}\"`"
                )),
            );
        }
        if word.starts_with("r\"") || word.starts_with("r#") {
            return Explained::new(
                (offset, 1),
                "`r\"...\"` raw strings are KDL 1 syntax",
                "KDL 1 raw string",
                Some("KDL 2 writes raw strings as `#\"...\"#`".into()),
            );
        }
        if partial {
            let bad = word
                .char_indices()
                .find(|(_, c)| "\\/(){}[];\"#=".contains(*c))
                .map_or(word.len(), |(i, _)| i);
            let bad_char = word[bad..].chars().next().map_or(String::new(), |c| format!(" `{c}`"));
            return Explained::new(
                (offset, word.len()),
                format!("`{word}` needs double quotes"),
                format!("a bare word cannot contain{bad_char}"),
                Some(format!(
                    "write `\"{}\"`",
                    word.replace('\\', "\\\\").replace('"', "\\\"")
                )),
            );
        }
    }
    if partial && label.starts_with("not ") && word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return Explained::new(
            (offset, word.len()),
            format!("`{word}` is not a number"),
            "not a number",
            Some("write numbers like `3`, `2.5` or `1_000`, and text in double quotes".into()),
        );
    }
    Explained::new(
        (offset, end - offset),
        message,
        d.label.clone().unwrap_or_else(|| "here".into()),
        d.help.clone(),
    )
}

/// Text the parser could not read past: a stray `}`, `=` or other character.
fn unexpected(text: &str, offset: usize, word: &str) -> Explained {
    let shown: String = word.chars().take(20).collect();
    let first = word.chars().next().map_or(0, char::len_utf8);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..offset].trim();
    let help = match word.chars().next() {
        Some('}') => "this `}` closes no block: remove it, or add the `{` it should close".to_string(),
        Some('=') if !before.is_empty() && !before.contains(char::is_whitespace) => {
            let value = text[offset + 1..].lines().next().unwrap_or("").trim();
            format!("a node's value follows its name without `=`: `{before} {value}`")
        }
        Some('[') => "KDL has no `[...]` lists: write the values one after another".to_string(),
        Some('.') if word[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            format!("write a digit before the point: `0{word}`")
        }
        _ => "look for a stray `=`, `}` or quote, or a value that needs double quotes".to_string(),
    };
    let message = if shown.is_empty() {
        "unexpected text".to_string()
    } else {
        format!("unexpected `{shown}`")
    };
    // The parser gave up here; what it reports after this point is noise.
    Explained::new((offset, first), message, "KDL cannot read past this point", Some(help)).ending()
}

/// The largest char boundary at or before `offset`, within the text.
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The line (counted from 0) that `offset` is on.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// The run of non-blank characters starting at `offset`.
fn token_at(text: &str, offset: usize) -> &str {
    let rest = &text[offset..];
    &rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())]
}

/// Where a quoted string starting at `offset` ends (just past its closing quote).
fn string_end(text: &str, offset: usize) -> usize {
    let mut chars = text[offset..].char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return offset + i + 1,
            '\n' => return offset + i,
            _ => {}
        }
    }
    text.len()
}

/// The first invalid escape in the quoted string starting at `offset`, with its offset.
fn bad_escape(text: &str, offset: usize) -> Option<(usize, &str)> {
    let multi = text[offset..].starts_with("\"\"\"");
    let mut chars = text[offset..].char_indices().skip(if multi { 3 } else { 1 });
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if !multi || text[offset + i..].starts_with("\"\"\"") => return None,
            '\n' if !multi => return None,
            '\\' => {
                let at = offset + i;
                let (_, next) = chars.next()?;
                let valid = match next {
                    'u' => {
                        let rest = &text[at + 2..];
                        let hex = rest.strip_prefix('{').map(|r| {
                            r.find(|c: char| !c.is_ascii_hexdigit())
                                .map_or(("", r.len()), |n| (&r[n..], n))
                        });
                        matches!(hex, Some((after, n)) if (1..=6).contains(&n) && after.starts_with('}'))
                    }
                    c => "nrt\\\"bfs".contains(c) || c.is_whitespace(),
                };
                if !valid {
                    return Some((at, &text[at..at + 1 + next.len_utf8()]));
                }
            }
            _ => {}
        }
    }
    None
}

/// The `/*` of a block comment that is never closed, skipping strings and line comments.
fn unclosed_comment(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut outer) = (0, 0usize, 0);
    while i < bytes.len() {
        let pair = &bytes[i..(i + 2).min(bytes.len())];
        if depth > 0 {
            if pair == b"*/" {
                depth -= 1;
                i += 2;
            } else if pair == b"/*" {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        match bytes[i] {
            b'"' => i = string_end(text, i).max(i + 1),
            b'/' if pair == b"//" => i = text[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'/' if pair == b"/*" => {
                outer = i;
                depth = 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    (depth > 0).then_some(outer)
}

/// For a `{` that is never closed, guesses from the indentation which block lacks its `}`:
/// the innermost open block when a later line is indented no deeper than the line that
/// opened it, with that line, else the innermost block still open at the end of the file.
fn unclosed_block(text: &str, open: usize) -> (usize, Option<usize>) {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let line_start = text[..open].rfind('\n').map_or(0, |i| i + 1);
    let mut stack = vec![(indent(&text[line_start..]), open)];
    let Some(newline) = text[open..].find('\n') else {
        return (open, None);
    };
    let mut at = open + newline + 1;
    for line in text[at..].split_inclusive('\n') {
        let trimmed = line.trim();
        let start = at + indent(line);
        at += line.len();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with('}') {
            stack.pop();
            if stack.is_empty() {
                return (open, None);
            }
            continue;
        }
        let &(depth, block) = stack.last().expect("the stack is not empty");
        if indent(line) <= depth {
            return (block, Some(start));
        }
        if let Some(brace) = trimmed.strip_suffix('{').map(|t| start + t.len()) {
            stack.push((indent(line), brace));
        }
    }
    (stack.last().map_or(open, |&(_, block)| block), None)
}
