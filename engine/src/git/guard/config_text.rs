//! Reads the variables of one git configuration file, without following its includes.
//!
//! The guard names the keys an agent changed (`core.fsmonitor set to ...`). libgit2 could
//! parse the text, but it reads every file an `include.path` names as it goes, and that path
//! is the agent's choice: a FIFO there would stall the guard for good. This reader only
//! reads the text it is given. It follows git's syntax (sections with and without quoted
//! subsections, the old `[section.subsection]` form, quoting, escapes, continued lines,
//! comments) closely enough to name keys; it never decides whether anything is safe: the
//! guard compares and restores the files byte for byte, and a text this reader refuses is
//! still reported and restored, only without its keys.

/// One `key = value` line: the key as git names it (`section.subsection.key`, section and
/// key in lower case) and its value (`None` for a key written without `=`, which git reads
/// as `true`).
pub(crate) type Variable = (String, Option<String>);

/// Reads every variable of a configuration text, in order, or says why it cannot.
pub(crate) fn parse(text: &[u8]) -> Result<Vec<Variable>, String> {
    let text = String::from_utf8_lossy(text);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = Reader {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
    };
    let mut section: Option<String> = None;
    let mut variables = Vec::new();
    while let Some(c) = reader.peek() {
        match c {
            c if c.is_whitespace() => reader.bump(),
            '#' | ';' => reader.skip_line(),
            '[' => section = Some(reader.header()?),
            c if c.is_ascii_alphabetic() => {
                let key = reader.key();
                let value = reader.value()?;
                // git reads a key before any section under its bare name.
                let name = match &section {
                    Some(section) => format!("{section}.{key}"),
                    None => key,
                };
                variables.push((name, value));
            }
            other => return Err(format!("line {}: unexpected `{other}`", reader.line)),
        }
    }
    Ok(variables)
}

/// A cursor over the text, counting lines for error messages.
struct Reader {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Moves past one character, a `\r\n` pair counting as one newline.
    fn bump(&mut self) {
        if self.peek() == Some('\n') {
            self.line += 1;
        }
        self.at += 1;
    }

    /// Returns the next character, reading `\r\n` as `\n`.
    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.bump();
        if c == '\r' && self.peek() == Some('\n') {
            self.bump();
            return Some('\n');
        }
        Some(c)
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.next() {
            if c == '\n' {
                break;
            }
        }
    }

    /// Reads `[section]`, `[section "subsection"]` or `[section.subsection]`, returning the
    /// prefix of the keys that follow.
    fn header(&mut self) -> Result<String, String> {
        self.bump();
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                name.push(c.to_ascii_lowercase());
                self.bump();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(format!("line {}: a section without a name", self.line));
        }
        match self.next() {
            Some(']') => Ok(name),
            Some(' ' | '\t') => {
                while matches!(self.peek(), Some(' ' | '\t')) {
                    self.bump();
                }
                if self.next() != Some('"') {
                    return Err(format!("line {}: a section header git does not accept", self.line));
                }
                let mut subsection = String::new();
                loop {
                    match self.next() {
                        Some('"') => break,
                        Some('\\') => match self.next() {
                            Some('\n') | None => return Err(format!("line {}: unterminated subsection", self.line)),
                            Some(c) => subsection.push(c),
                        },
                        Some('\n') | None => return Err(format!("line {}: unterminated subsection", self.line)),
                        Some(c) => subsection.push(c),
                    }
                }
                if self.next() != Some(']') {
                    return Err(format!("line {}: a section header git does not accept", self.line));
                }
                Ok(format!("{name}.{subsection}"))
            }
            _ => Err(format!("line {}: a section header git does not accept", self.line)),
        }
    }

    /// Reads a key name, in lower case.
    fn key(&mut self) -> String {
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' {
                key.push(c.to_ascii_lowercase());
                self.bump();
            } else {
                break;
            }
        }
        key
    }

    /// Reads what follows a key: nothing (`None`) or `= value`, up to the end of the line.
    fn value(&mut self) -> Result<Option<String>, String> {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
        match self.peek() {
            None => return Ok(None),
            Some('\n' | '\r' | '#' | ';') => {
                self.skip_line();
                return Ok(None);
            }
            Some('=') => self.bump(),
            Some(other) => return Err(format!("line {}: unexpected `{other}` after a key", self.line)),
        }
        let mut value = String::new();
        // Whitespace outside quotes is kept only when more of the value follows it.
        let mut spaces = String::new();
        let mut quoted = false;
        loop {
            match self.next() {
                None if quoted => return Err(format!("line {}: unterminated quote", self.line)),
                None => break,
                Some('\n') if quoted => return Err(format!("line {}: unterminated quote", self.line)),
                Some('\n') => break,
                Some(c @ (' ' | '\t')) if !quoted => {
                    if !value.is_empty() {
                        spaces.push(c);
                    }
                }
                Some('#' | ';') if !quoted => {
                    self.skip_line();
                    break;
                }
                Some('"') => {
                    value.push_str(&spaces);
                    spaces.clear();
                    quoted = !quoted;
                }
                Some('\\') => {
                    let escaped = match self.next() {
                        Some('\n') => continue,
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('b') => '\u{8}',
                        Some(c @ ('\\' | '"')) => c,
                        _ => return Err(format!("line {}: an escape git does not accept", self.line)),
                    };
                    value.push_str(&spaces);
                    spaces.clear();
                    value.push(escaped);
                }
                Some(c) => {
                    value.push_str(&spaces);
                    spaces.clear();
                    value.push(c);
                }
            }
        }
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn variables(text: &str) -> Vec<(String, Option<String>)> {
        parse(text.as_bytes()).expect("a text git reads")
    }

    fn pair(key: &str, value: Option<&str>) -> (String, Option<String>) {
        (key.to_owned(), value.map(str::to_owned))
    }

    #[test]
    fn reads_keys_as_git_names_them() {
        assert_eq!(
            variables("key = value\n[a.b \"c\"]\nk = 1\n"),
            vec![pair("key", Some("value")), pair("a.b.c.k", Some("1"))]
        );
        let text = "\u{feff}# comment\n[Core]\n\tBare = false ; trailing\n\tfsmonitor = \"touch /tmp/x\"\n\
                    [remote \"Origin\"]\n\turl = a b  \"c  d\" \\\n  e\n[branch.Main]\n\tflag\n\
                    [include] path = ~/x.cfg\r\n[x] k = \"a#b\" # c\n[y] v = tab\\there\n";
        assert_eq!(
            variables(text),
            vec![
                pair("core.bare", Some("false")),
                pair("core.fsmonitor", Some("touch /tmp/x")),
                pair("remote.Origin.url", Some("a b  c  d   e")),
                pair("branch.main.flag", None),
                pair("include.path", Some("~/x.cfg")),
                pair("x.k", Some("a#b")),
                pair("y.v", Some("tab\there")),
            ]
        );
    }

    #[test]
    fn refuses_what_git_refuses() {
        for text in [
            "[core\n",
            "[core]\nx = \"open\n",
            "[core]\nx = \\q\n",
            "[a]\nk = 1\n[a.b \"c\" ]\n",
            "[core]\n=x\n",
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{text:?} should be refused");
        }
    }
}
