//! A fast path for reading workflow files: a hand-written, single-pass parser for the common
//! subset of KDL 2 that builds the `kdl` crate's own types.
//!
//! The `kdl` crate parses at about 1 MB/s, which dominates `flow plan` on large workflows.
//! [`parse`] reads the subset real workflow files use, 20 to 40 times faster, and gives back
//! exactly the names, values, entry order, children and spans (document, node, node name, entry
//! and property key) that `text.parse::<kdl::KdlDocument>()` gives for the same text. Only the
//! formatting the `kdl` crate keeps for printing (`KdlNodeFormat`, `KdlEntryFormat`, `repr`) is
//! left out.
//!
//! It returns `None` as soon as the text leaves the subset or is invalid, and the caller falls
//! back to the `kdl` crate, which then reports any error. So it must never accept text the
//! `kdl` crate rejects, nor read any text differently; `dsl/tests/fast_kdl.rs` checks both
//! against the `kdl` crate.
//!
//! The subset:
//!
//! - nodes named by an identifier or any string, with arguments and `key=value` properties
//!   (identifier or string keys, node space allowed around `=`), `{ }` children blocks,
//!   terminated by newlines, `;`, `//` comments, the end of the block or of the file;
//! - identifier strings (`foo`, `-`, `.x`, `+a`; never `true`, `false`, `null`, `inf`, `nan`,
//!   with or without a sign), quoted strings with the KDL 2 escapes (`\n \t \\ \" \r \b \f \s`,
//!   `\u{...}` and `\` followed by whitespace and newlines), multi-line `"""` strings (with the
//!   KDL 2 dedent, but without whitespace escapes), raw strings `#"..."#` and `#"""..."""#`;
//! - decimal integers and floats with `_` separators, a sign and an exponent (at most 38 digits
//!   per digit run); `#true`, `#false`, `#null`, `#inf`, `#-inf`, `#nan`;
//! - whitespace (all KDL 2 spaces and newlines), `//` and nested `/* */` comments, and line
//!   continuations (`\` before a newline or comment).
//!
//! Outside the subset, so `None`: a byte-order mark, type annotations `(t)`, slashdash `/-`
//! comments, hexadecimal, octal and binary numbers, numbers with a digit run longer than 38
//! digits, identifiers that are a sign and `true`, `false`, `null`, `inf` or `nan` (the kdl
//! crate and KDL 2 disagree on `-inf`), whitespace escapes in multi-line strings (and a
//! backslash before whitespace in multi-line raw strings), single-line raw strings whose body
//! starts with `""`, the character U+007F outside comments, children nested deeper than
//! [`MAX_DEPTH`], and anything invalid.

use std::ops::Range;

use kdl::KdlValue;

use crate::node::{Document, Entry, Identifier, Node};

/// The deepest nesting of children blocks read here; deeper documents go to the `kdl` crate.
pub const MAX_DEPTH: usize = 64;

/// Parses `text` as KDL 2 when it stays within the subset this module reads (see the module
/// documentation), giving the same document, spans included, as the `kdl` crate; otherwise
/// `None`.
pub fn parse(text: &str) -> Option<Document> {
    if text.starts_with('\u{FEFF}') {
        return None;
    }
    let mut parser = Parser {
        text,
        b: text.as_bytes(),
        pos: 0,
        depth: 0,
        // Room for the nodes of typical files up front (at most about 30 MB, of address space:
        // only what is written is touched).
        node_stack: Vec::with_capacity((text.len() / 32).min(1 << 16)),
        entry_stack: Vec::with_capacity(64),
    };
    let document = parser.nodes(false)?;
    (parser.pos == text.len()).then_some(document)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// Nodes and entries read so far whose parent is not finished yet. Each parent moves its
    /// own into a vector of exactly the right size: `KdlNode` and `KdlEntry` are large (about
    /// 400 bytes), and a vector grown by pushing holds room for at least four.
    node_stack: Vec<Node>,
    entry_stack: Vec<RawEntry>,
}

/// An entry read but not built yet: each `KdlEntry` is built once, in its node's vector.
struct RawEntry {
    key: Option<(String, Range<usize>)>,
    value: KdlValue,
    span: Range<usize>,
}

impl RawEntry {
    fn build(self) -> Entry {
        Entry {
            name: self.key.map(|(value, span)| Identifier {
                value,
                span: span.into(),
            }),
            value: self.value,
            span: self.span.into(),
        }
    }
}

/// KDL 2's `unicode-space`.
fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// KDL 2's `newline` characters (`\r\n` counts as one newline).
fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// KDL 2's disallowed literal code points as the `kdl` crate checks them, plus U+007F, which
/// the spec disallows but the crate accepts; it is left to the crate.
fn is_disallowed(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{E}'..='\u{1F}'
            | '\u{7F}'
            | '\u{200E}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Words that are never identifier strings, with or without a sign.
fn is_keyword_word(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    matches!(body, "true" | "false" | "null" | "inf" | "nan")
}

/// How a quoted string's body treats backslashes and quotes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// A single-line quoted string: escapes, and `\` + whitespace/newlines is skipped.
    Line,
    /// A line of a multi-line quoted string: escapes, no whitespace escapes, no `"""`.
    MultiLine,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    /// The character starting at byte `i`, which must be a character boundary before the end.
    fn ch(&self, i: usize) -> char {
        self.text[i..].chars().next().unwrap_or('\0')
    }

    fn starts_with(&self, i: usize, s: &[u8]) -> bool {
        self.b.get(i..).is_some_and(|rest| rest.starts_with(s))
    }

    /// Length of the newline at byte `i`, or 0.
    fn newline_len(&self, i: usize) -> usize {
        match self.byte(i) {
            Some(b'\n' | 0x0B | 0x0C) => 1,
            Some(b'\r') => {
                if self.byte(i + 1) == Some(b'\n') {
                    2
                } else {
                    1
                }
            }
            Some(0xC2 | 0xE2) => {
                let c = self.ch(i);
                if is_newline(c) { c.len_utf8() } else { 0 }
            }
            _ => 0,
        }
    }

    /// Length of the unicode space at byte `i`, or 0.
    fn space_len(&self, i: usize) -> usize {
        match self.byte(i) {
            Some(b' ' | b'\t') => 1,
            Some(c) if c >= 0x80 => {
                let c = self.ch(i);
                if is_unicode_space(c) { c.len_utf8() } else { 0 }
            }
            _ => 0,
        }
    }

    /// Length of the identifier character at byte `i`, or 0.
    fn ident_char_len(&self, i: usize) -> usize {
        match self.byte(i) {
            None => 0,
            Some(c) if c < 0x80 => match c {
                b'\\' | b'/' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b';' | b'"' | b'#' | b'=' => 0,
                0x21..=0x7E => 1,
                _ => 0,
            },
            Some(_) => {
                let c = self.ch(i);
                if is_unicode_space(c) || is_newline(c) || is_disallowed(c) {
                    0
                } else {
                    c.len_utf8()
                }
            }
        }
    }

    /// Skips `ws*`: unicode spaces and (nested) block comments.
    fn skip_ws(&mut self) -> Option<()> {
        loop {
            let n = self.space_len(self.pos);
            if n > 0 {
                self.pos += n;
            } else if self.starts_with(self.pos, b"/*") {
                self.block_comment()?;
            } else {
                return Some(());
            }
        }
    }

    /// Skips a `/* */` comment, nested ones included; `None` when it is not closed.
    fn block_comment(&mut self) -> Option<()> {
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < self.b.len() {
            match self.b[i] {
                b'*' if self.byte(i + 1) == Some(b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return Some(());
                    }
                }
                b'/' if self.byte(i + 1) == Some(b'*') => {
                    depth += 1;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        None
    }

    /// Skips a `//` comment and the newline that ends it.
    fn line_comment(&mut self) {
        let mut i = self.pos + 2;
        while i < self.b.len() {
            let n = self.newline_len(i);
            if n > 0 {
                self.pos = i + n;
                return;
            }
            i += 1;
        }
        self.pos = i;
    }

    /// Skips `node-space*`: whitespace, block comments and line continuations. `None` on a
    /// backslash that does not start a line continuation.
    fn skip_node_space(&mut self) -> Option<()> {
        loop {
            self.skip_ws()?;
            if self.peek() != Some(b'\\') {
                return Some(());
            }
            // escline := '\' ws* (single-line-comment | newline | eof) ws*
            self.pos += 1;
            self.skip_ws()?;
            let n = self.newline_len(self.pos);
            if n > 0 {
                self.pos += n;
            } else if self.starts_with(self.pos, b"//") {
                self.line_comment();
            } else if self.pos < self.b.len() {
                return None;
            }
        }
    }

    /// Skips `line-space*`: node space, newlines and `//` comments.
    fn skip_line_space(&mut self) -> Option<()> {
        loop {
            self.skip_node_space()?;
            let n = self.newline_len(self.pos);
            if n > 0 {
                self.pos += n;
            } else if self.starts_with(self.pos, b"//") {
                self.line_comment();
            } else {
                return Some(());
            }
        }
    }

    /// `nodes`: the document, or a children block's content up to its `}`.
    fn nodes(&mut self, in_children: bool) -> Option<Document> {
        self.skip_line_space()?;
        let start = self.pos;
        let mut end = start;
        let base = self.node_stack.len();
        loop {
            match self.peek() {
                None if in_children => return None,
                None => break,
                Some(b'}') if in_children => break,
                Some(b'}') => return None,
                _ => {}
            }
            self.node()?;
            end = self.pos;
            match self.peek() {
                None | Some(b'}') => continue,
                Some(b';') => self.pos += 1,
                Some(b'/') if self.byte(self.pos + 1) == Some(b'/') => self.line_comment(),
                _ => {
                    let n = self.newline_len(self.pos);
                    if n == 0 {
                        return None;
                    }
                    self.pos += n;
                }
            }
            self.skip_line_space()?;
        }
        let nodes = if in_children {
            self.node_stack.drain(base..).collect()
        } else {
            // The document's own nodes, usually most of them: the stack itself, not a copy.
            let mut nodes = std::mem::take(&mut self.node_stack);
            nodes.shrink_to_fit();
            nodes
        };
        Some(Document {
            nodes,
            span: (start..end).into(),
        })
    }

    /// One node, with the node space after it (its span ends there, before its terminator),
    /// pushed on the node stack.
    fn node(&mut self) -> Option<()> {
        let start = self.pos;
        let (name, name_span) = self.string()?;
        let base = self.entry_stack.len();
        let mut children = None;
        loop {
            let before = self.pos;
            self.skip_node_space()?;
            match self.peek() {
                None | Some(b';' | b'}') => break,
                Some(b'{') => {
                    children = Some(self.children()?);
                    self.skip_node_space()?;
                    break;
                }
                Some(b'/') if self.byte(self.pos + 1) == Some(b'/') => break,
                _ if self.newline_len(self.pos) > 0 => break,
                _ => {
                    if self.pos == before {
                        return None;
                    }
                    let entry = self.entry()?;
                    self.entry_stack.push(entry);
                }
            }
        }
        let entries = if self.entry_stack.len() > base {
            self.entry_stack.drain(base..).map(RawEntry::build).collect()
        } else {
            Vec::new()
        };
        self.node_stack.push(Node {
            name: Identifier {
                value: name,
                span: name_span.into(),
            },
            entries,
            children,
            span: (start..self.pos).into(),
        });
        Some(())
    }

    /// A children block at its `{`.
    fn children(&mut self) -> Option<Document> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        self.pos += 1;
        let children = self.nodes(true)?;
        self.pos += 1;
        self.depth -= 1;
        Some(children)
    }

    /// An argument or a property.
    fn entry(&mut self) -> Option<RawEntry> {
        let start = self.pos;
        if !self.is_string_start() {
            let value = self.non_string_value()?;
            return Some(RawEntry {
                key: None,
                value,
                span: start..self.pos,
            });
        }
        let (text, key_span) = self.string()?;
        let after = self.pos;
        self.skip_node_space()?;
        if self.peek() != Some(b'=') {
            self.pos = after;
            return Some(RawEntry {
                key: None,
                value: KdlValue::String(text),
                span: start..after,
            });
        }
        self.pos += 1;
        self.skip_node_space()?;
        let value = if self.is_string_start() {
            KdlValue::String(self.string()?.0)
        } else {
            self.non_string_value()?
        };
        Some(RawEntry {
            key: Some((text, key_span)),
            value,
            span: start..self.pos,
        })
    }

    /// Whether a string (identifier, quoted or raw) starts here. Numbers, keywords and
    /// anything else are not strings.
    fn is_string_start(&self) -> bool {
        let digit = |i: usize| self.byte(i).is_some_and(|c| c.is_ascii_digit());
        let i = self.pos;
        match self.byte(i) {
            None => false,
            Some(b'"') => true,
            Some(b'#') => matches!(self.byte(i + 1), Some(b'"' | b'#')),
            Some(b'0'..=b'9') => false,
            // A sign then a digit, or a sign, a dot and a digit, starts a number.
            Some(b'+' | b'-') => !digit(i + 1) && (self.byte(i + 1) != Some(b'.') || !digit(i + 2)),
            Some(b'.') => !digit(i + 1),
            Some(_) => self.ident_char_len(i) > 0,
        }
    }

    /// After a value: the next character must end it (space, newline, `;`, `{`, `}`, `=`,
    /// or the start of a comment or line continuation, which the caller then checks).
    fn check_follower(&self) -> Option<()> {
        match self.peek() {
            None => Some(()),
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | b';' | b'{' | b'}' | b'=' | b'\\' | b'/') => Some(()),
            Some(c) if c >= 0x80 => {
                let c = self.ch(self.pos);
                (is_unicode_space(c) || is_newline(c)).then_some(())
            }
            Some(_) => None,
        }
    }

    /// A string of any kind and its span; `None` when none starts here or it is invalid.
    fn string(&mut self) -> Option<(String, Range<usize>)> {
        if !self.is_string_start() {
            return None;
        }
        let start = self.pos;
        let text = match self.b[start] {
            b'"' => self.quoted()?,
            b'#' => self.raw()?,
            _ => self.identifier()?,
        };
        self.check_follower()?;
        Some((text, start..self.pos))
    }

    fn identifier(&mut self) -> Option<String> {
        let start = self.pos;
        loop {
            let n = self.ident_char_len(self.pos);
            if n == 0 {
                break;
            }
            self.pos += n;
        }
        let text = &self.text[start..self.pos];
        if text.is_empty() || is_keyword_word(text) {
            return None;
        }
        Some(text.to_string())
    }

    /// A quoted string, single-line or multi-line, at its opening `"`.
    fn quoted(&mut self) -> Option<String> {
        if self.starts_with(self.pos, b"\"\"\"") {
            self.pos += 3;
            return self.multi_line(0);
        }
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes, so the text between the quotes is the value.
        loop {
            match self.peek()? {
                b'"' => {
                    let text = self.text[start..self.pos].to_string();
                    self.pos += 1;
                    return Some(text);
                }
                b'\\' => break,
                b'\t' => self.pos += 1,
                c if c < 0x20 || c == 0x7F => return None,
                c if c >= 0x80 => {
                    let c = self.ch(self.pos);
                    if is_newline(c) || is_disallowed(c) {
                        return None;
                    }
                    self.pos += c.len_utf8();
                }
                _ => self.pos += 1,
            }
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        let end = self.body(&mut out, self.b.len(), Body::Line)?;
        if self.byte(end) != Some(b'"') {
            return None;
        }
        self.pos = end + 1;
        Some(out)
    }

    /// Reads a quoted string body from `self.pos` into `out`, stopping at an unescaped `"`
    /// or at `limit`; returns where it stopped.
    fn body(&mut self, out: &mut String, limit: usize, kind: Body) -> Option<usize> {
        let mut i = self.pos;
        while i < limit {
            let c = self.b[i];
            match c {
                b'"' => {
                    if kind == Body::Line {
                        break;
                    }
                    if self.starts_with(i, b"\"\"\"") {
                        return None;
                    }
                    out.push('"');
                    i += 1;
                }
                b'\\' => i = self.escape(i, limit, out, kind)?,
                b'\t' => {
                    out.push('\t');
                    i += 1;
                }
                _ if c < 0x20 || c == 0x7F => return None,
                _ if c >= 0x80 => {
                    let ch = self.ch(i);
                    if is_newline(ch) || is_disallowed(ch) {
                        return None;
                    }
                    out.push(ch);
                    i += ch.len_utf8();
                }
                _ => {
                    out.push(c as char);
                    i += 1;
                }
            }
        }
        Some(i)
    }

    /// One escape at the backslash at `i`; returns the byte after it.
    fn escape(&self, i: usize, limit: usize, out: &mut String, kind: Body) -> Option<usize> {
        let next = if i + 1 < limit { self.byte(i + 1)? } else { return None };
        let simple = match next {
            b'n' => Some('\n'),
            b't' => Some('\t'),
            b'\\' => Some('\\'),
            b'"' => Some('"'),
            b'r' => Some('\r'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{C}'),
            b's' => Some(' '),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            return Some(i + 2);
        }
        if next == b'u' {
            if self.byte(i + 2) != Some(b'{') {
                return None;
            }
            let digits_start = i + 3;
            let mut j = digits_start;
            while j < limit && j - digits_start < 6 && self.b[j].is_ascii_hexdigit() {
                j += 1;
            }
            if j == digits_start || j >= limit || self.b[j] != b'}' {
                return None;
            }
            let code = u32::from_str_radix(&self.text[digits_start..j], 16).ok()?;
            out.push(char::from_u32(code)?);
            return Some(j + 1);
        }
        // `\` followed by whitespace and newlines: all of it is skipped.
        if kind != Body::Line {
            return None;
        }
        let mut j = i + 1;
        loop {
            let n = self.space_len(j).max(self.newline_len(j));
            if n == 0 {
                break;
            }
            j += n;
        }
        (j > i + 1).then_some(j)
    }

    /// A raw string at its first `#`.
    fn raw(&mut self) -> Option<String> {
        let hashes = self.b[self.pos..].iter().take_while(|&&c| c == b'#').count();
        self.pos += hashes;
        if self.starts_with(self.pos, b"\"\"\"") && self.newline_len(self.pos + 3) > 0 {
            self.pos += 3;
            return self.multi_line(hashes);
        }
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        // A body may start with one `"` but not two (KDL 2 makes `#"""#` an error, the kdl crate
        // accepts `#""x"#`); those are left to the kdl crate.
        if self.peek() == Some(b'"') && self.byte(self.pos + 1) == Some(b'"') && !self.closes_raw(self.pos + 1, hashes)
        {
            return None;
        }
        loop {
            match self.peek()? {
                b'"' if self.closes_raw(self.pos + 1, hashes) => {
                    let text = self.text[start..self.pos].to_string();
                    self.pos += 1 + hashes;
                    return Some(text);
                }
                b'\t' => self.pos += 1,
                c if c < 0x20 || c == 0x7F => return None,
                c if c >= 0x80 => {
                    let c = self.ch(self.pos);
                    if is_newline(c) || is_disallowed(c) {
                        return None;
                    }
                    self.pos += c.len_utf8();
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Whether `hashes` `#`s start at byte `i` (the end of a raw string's closing quotes).
    fn closes_raw(&self, i: usize, hashes: usize) -> bool {
        self.b.get(i..i + hashes).is_some_and(|h| h.iter().all(|&c| c == b'#'))
    }

    /// The rest of a multi-line string after its opening `"""` (`hashes` > 0: a raw one),
    /// with the KDL 2 dedent: every line that is not whitespace-only must start with the
    /// whitespace before the closing `"""`, which is removed; whitespace-only lines become
    /// empty; the newlines after the opening and before the closing quotes are dropped.
    fn multi_line(&mut self, hashes: usize) -> Option<String> {
        let n = self.newline_len(self.pos);
        if n == 0 {
            return None;
        }
        let body_start = self.pos + n;
        let closes_at = |p: usize| self.starts_with(p, b"\"\"\"") && self.closes_raw(p + 3, hashes);
        // Find the closing line: the first line that is whitespace and then `"""`.
        let mut line = body_start;
        let quotes = loop {
            let mut p = line;
            loop {
                let n = self.space_len(p);
                if n == 0 {
                    break;
                }
                p += n;
            }
            if closes_at(p) {
                break p;
            }
            loop {
                if p >= self.b.len() {
                    return None;
                }
                let n = self.newline_len(p);
                if n > 0 {
                    p += n;
                    break;
                }
                p += 1;
            }
            line = p;
        };
        let text = self.text;
        let prefix = &text[line..quotes];
        let mut out = String::with_capacity(line - body_start);
        let mut start = body_start;
        while start < line {
            let mut end = start;
            while self.newline_len(end) == 0 {
                end += 1;
            }
            let content = &text[start..end];
            if !content.chars().all(is_unicode_space) {
                if !content.starts_with(prefix) {
                    return None;
                }
                let from = start + prefix.len();
                if hashes == 0 {
                    self.pos = from;
                    if self.body(&mut out, end, Body::MultiLine)? != end {
                        return None;
                    }
                } else {
                    self.check_raw_line(from, end, hashes)?;
                    out.push_str(&text[from..end]);
                }
            }
            out.push('\n');
            start = end + self.newline_len(end);
        }
        out.pop();
        self.pos = quotes + 3 + hashes;
        Some(out)
    }

    /// Checks one line of a multi-line raw string: no disallowed characters, no closing quotes,
    /// no backslash before whitespace or the end of the line.
    fn check_raw_line(&self, from: usize, end: usize, hashes: usize) -> Option<()> {
        let mut i = from;
        while i < end {
            let c = self.b[i];
            if c == b'"' && self.starts_with(i, b"\"\"\"") && self.closes_raw(i + 3, hashes) {
                return None;
            }
            // The `kdl` crate reads `\` + whitespace as an escape even in raw strings when it
            // looks for whitespace-only lines; such lines are left to it.
            if c == b'\\' && (i + 1 == end || self.space_len(i + 1) > 0) {
                return None;
            }
            if c < 0x80 {
                if (c < 0x20 && c != b'\t') || c == 0x7F {
                    return None;
                }
                i += 1;
            } else {
                let ch = self.ch(i);
                if is_disallowed(ch) {
                    return None;
                }
                i += ch.len_utf8();
            }
        }
        Some(())
    }

    /// A number or a `#` keyword.
    fn non_string_value(&mut self) -> Option<KdlValue> {
        match self.peek()? {
            b'#' => self.keyword(),
            b'0'..=b'9' | b'+' | b'-' => self.number(),
            _ => None,
        }
    }

    fn keyword(&mut self) -> Option<KdlValue> {
        let rest = &self.b[self.pos + 1..];
        let (len, value) = if rest.starts_with(b"true") {
            (4, KdlValue::Bool(true))
        } else if rest.starts_with(b"false") {
            (5, KdlValue::Bool(false))
        } else if rest.starts_with(b"null") {
            (4, KdlValue::Null)
        } else if rest.starts_with(b"nan") {
            (3, KdlValue::Float(f64::NAN))
        } else if rest.starts_with(b"inf") {
            (3, KdlValue::Float(f64::INFINITY))
        } else if rest.starts_with(b"-inf") {
            (4, KdlValue::Float(f64::NEG_INFINITY))
        } else {
            return None;
        };
        self.pos += 1 + len;
        self.check_follower()?;
        Some(value)
    }

    /// Skips `digit (digit | '_')*` from `i`, at most 38 digits; returns where it ends.
    fn digits(&self, mut i: usize) -> Option<usize> {
        if !self.byte(i)?.is_ascii_digit() {
            return None;
        }
        let mut count = 0;
        while let Some(c) = self.byte(i) {
            match c {
                b'0'..=b'9' => count += 1,
                b'_' => {}
                _ => break,
            }
            i += 1;
        }
        (count <= 38).then_some(i)
    }

    /// A decimal integer or float.
    fn number(&mut self) -> Option<KdlValue> {
        let start = self.pos;
        let mut i = start;
        let negative = self.byte(i) == Some(b'-');
        if matches!(self.byte(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if self.byte(i) == Some(b'0') && matches!(self.byte(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
            return None;
        }
        let integer_start = i;
        i = self.digits(i)?;
        let integer_end = i;
        let mut float = false;
        if self.byte(i) == Some(b'.') {
            i = self.digits(i + 1)?;
            float = true;
        }
        if matches!(self.byte(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(self.byte(i), Some(b'+' | b'-')) {
                i += 1;
            }
            i = self.digits(i)?;
            float = true;
        }
        self.pos = i;
        self.check_follower()?;
        if float {
            let text = &self.text[start..i];
            let value = if text.contains('_') {
                text.replace('_', "").parse()
            } else {
                text.parse()
            };
            return value.ok().map(KdlValue::Float);
        }
        let mut value: i128 = 0;
        for &c in &self.b[integer_start..integer_end] {
            if c != b'_' {
                value = value * 10 + i128::from(c - b'0');
            }
        }
        Some(KdlValue::Integer(if negative { -value } else { value }))
    }
}
