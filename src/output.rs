//! Writing what commands say: results on standard output, problems on standard error, with
//! the colour and the amount of detail the global options (`--color`, `-q`, `-v`) ask for.
//!
//! The options are read once, in `main`, and kept here for the whole process: every command
//! and printer asks [`quiet`], [`verbose`] or [`colored`] instead of carrying them around.

use std::io::IsTerminal;
use std::sync::OnceLock;

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::cli::ColorWhen;

/// How much a command says besides its result and its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors and the result only (`-q`).
    Quiet,
    /// The default.
    Normal,
    /// More detail where there is more (`-v`).
    Verbose,
}

/// The global output options of this process.
#[derive(Debug, Clone, Copy)]
struct Settings {
    color: ColorWhen,
    verbosity: Verbosity,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or(Settings {
        color: ColorWhen::Auto,
        verbosity: Verbosity::Normal,
    })
}

/// Records the global options; the first call wins.
pub fn init(color: ColorWhen, verbosity: Verbosity) {
    let _ = SETTINGS.set(Settings { color, verbosity });
    ColorChoice::write_global(match color {
        ColorWhen::Auto => ColorChoice::Auto,
        ColorWhen::Always => ColorChoice::AlwaysAnsi,
        ColorWhen::Never => ColorChoice::Never,
    });
    // The progress bars draw with `console`: the same choice for them.
    console::set_colors_enabled_stderr(colored(Stream::Stderr));
    console::set_colors_enabled(colored(Stream::Stdout));
}

/// Tells whether `-q` was given.
pub fn quiet() -> bool {
    settings().verbosity == Verbosity::Quiet
}

/// Tells whether `-v` was given.
pub fn verbose() -> bool {
    settings().verbosity == Verbosity::Verbose
}

/// One of the two streams a command writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Tells whether what goes to `stream` is coloured: `--color always` or `never` decide;
/// `auto` colours a terminal unless `NO_COLOR` is set, and anything when `CLICOLOR_FORCE` is
/// (anstream's reading of those conventions).
pub fn colored(stream: Stream) -> bool {
    match settings().color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            let choice = match stream {
                Stream::Stdout => anstream::AutoStream::choice(&std::io::stdout()),
                Stream::Stderr => anstream::AutoStream::choice(&std::io::stderr()),
            };
            choice != ColorChoice::Never
        }
    }
}

/// What a word is, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Done well: merged, succeeded, passed.
    Good,
    /// Went wrong: failed, conflicted.
    Bad,
    /// Needs a look: cancelled, skipped, a note.
    Warn,
    /// Under way: running, checking, merging.
    Busy,
    /// Less important: times, hints.
    Dim,
}

impl Tone {
    fn style(self) -> Style {
        match self {
            Tone::Good => AnsiColor::Green.on_default(),
            Tone::Bad => AnsiColor::Red.on_default().bold(),
            Tone::Warn => AnsiColor::Yellow.on_default(),
            Tone::Busy => AnsiColor::Cyan.on_default(),
            Tone::Dim => Style::new().dimmed(),
        }
    }
}

/// Wraps `text` in the tone's colour when `stream` is coloured.
pub fn paint(stream: Stream, tone: Tone, text: &str) -> String {
    if colored(stream) {
        let style = tone.style();
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// The width to lay diagnostics out in: `COLUMNS` when set, else the terminal's, else 100.
pub fn terminal_width() -> usize {
    let from_env = std::env::var("COLUMNS").ok().and_then(|c| c.parse::<usize>().ok());
    let from_terminal = || terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0));
    from_env.or_else(from_terminal).filter(|w| *w >= 40).unwrap_or(100)
}

/// Text made safe for a terminal. What flow prints carries text agents control (a test's last
/// line in a failure, a log, a review's comments, file names): on a terminal, no escape
/// sequence of theirs may move the cursor, rewrite a line, retitle the window or hide what
/// follows. Colour sequences (`ESC [ digits ; m`, flow's own) are kept; any other escape
/// loses its ESC, and every other control character but newline and tab is dropped.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\u{1b}' {
            let sequence = rest[1..].strip_prefix('[').and_then(|after| {
                let digits = after.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
                after[digits..].starts_with('m').then_some(2 + digits + 1)
            });
            if let Some(length) = sequence {
                out.push_str(&rest[..length]);
                rest = &rest[length..];
                continue;
            }
        } else if !unsafe_char(c) {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// Writes to standard error, made [`terminal_safe`] on a terminal.
pub fn print_stderr(text: &str) {
    use std::io::Write;
    let stderr = std::io::stderr();
    let text = if stderr.is_terminal() {
        terminal_safe(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let _ = stderr.lock().write_all(text.as_bytes());
}

/// Why standard output could not take a command's result.
#[derive(Debug)]
pub enum PrintError {
    /// The reader went away (`flow plan --json | head`): the command ends quietly.
    Closed,
    /// Anything else, in words.
    Failed(String),
}

/// Writes to standard output, made [`terminal_safe`] on a terminal; a reader that went away
/// (`flow plan --json | head`) ends the command quietly instead of failing.
pub fn print_stdout(text: &str) -> Result<(), PrintError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let text = if stdout.is_terminal() {
        terminal_safe(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(PrintError::Closed),
        Err(e) => Err(PrintError::Failed(format!("cannot write to standard output: {e}"))),
    }
}

/// Says something on standard error that is neither an error nor the result (a note, a
/// hint, what a command did); nothing with `-q`.
pub fn say(text: &str) {
    if !quiet() {
        print_stderr(&format!("{text}\n"));
    }
}

/// The version of every JSON document flow prints that has no version of its own. Fields
/// are only added within a version; a removal or a change of meaning increases it.
pub const JSON_VERSION: u32 = 1;

/// A JSON object with `"version"` first and the fields of `body` after it.
#[derive(Serialize)]
pub struct Versioned<'a, T: Serialize> {
    pub version: u32,
    #[serde(flatten)]
    pub body: &'a T,
}

/// Prints a JSON value on standard output, indented.
pub fn print_json(value: &impl Serialize) -> Result<(), PrintError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| PrintError::Failed(format!("cannot write JSON: {e}")))?;
    print_stdout(&format!("{text}\n"))
}

/// Prints a JSON object on standard output with `"version"` added as its first field.
pub fn print_versioned(body: &impl Serialize) -> Result<(), PrintError> {
    print_json(&Versioned {
        version: JSON_VERSION,
        body,
    })
}

/// Prints one JSON object on one line of standard output (for JSON lines).
pub fn print_json_line(value: &impl Serialize) -> Result<(), PrintError> {
    let text = serde_json::to_string(value).map_err(|e| PrintError::Failed(format!("cannot write JSON: {e}")))?;
    print_stdout(&format!("{text}\n"))
}

/// A table for people: a header, then rows, each column as wide as its widest cell and two
/// spaces from the next; a cell's tone is painted after the padding, so colour never moves
/// a column.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<(String, Option<Tone>)>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: vec![],
        }
    }

    /// Adds a row: one cell per column, each with its tone, if any.
    pub fn row(&mut self, cells: Vec<(String, Option<Tone>)>) {
        self.rows.push(cells);
    }

    /// Renders the table for `stream`, one line per row with a newline after each.
    pub fn render(&self, stream: Stream) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, (cell, _)) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<(String, Option<Tone>)>| {
            let mut text = String::new();
            for (i, (cell, tone)) in cells.into_iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                match tone {
                    Some(tone) => text.push_str(&paint(stream, tone, &cell)),
                    None => text.push_str(&cell),
                }
                if i + 1 < widths.len() {
                    text.push_str(&" ".repeat(pad + 2));
                }
            }
            text.trim_end().to_string() + "\n"
        };
        let mut out = line(self.header.iter().map(|h| (h.to_string(), None)).collect());
        for row in &self.rows {
            out.push_str(&line(row.clone()));
        }
        out
    }
}
