//! Splits a child's output into lines while holding at most a fixed part of any one line.
//!
//! A [`PipeReader`] per stream reads the pipe in blocks of up to [`READ_SIZE`] bytes and turns
//! each block into one [`Batch`]: the text of the block, decoded as UTF-8, and the pieces it is
//! made of. A line of up to [`LINE_LIMIT`] bytes is one piece, [`PieceKind::Line`], handed to
//! the callback and written to the log. A longer line is held only up to the limit: its first
//! part becomes a [`PieceKind::Head`] (the callback gets it, marked as cut) as soon as the limit
//! is passed, and the rest streams through as [`PieceKind::Rest`] pieces, for the log only, as it
//! arrives. So a 300 MB line costs a reader one line's limit (1 MiB) plus one block, not 300 MB,
//! and a batch holds at most one block plus one head (three times that when every byte is
//! invalid UTF-8 and becomes a three-byte U+FFFD; the head the callback gets stays within the
//! limit, what decoding added goes on as rest).
//!
//! A read takes what the pipe holds, then what came meanwhile (reads that do not wait), so a
//! child that writes in small pieces still makes few, large batches. On `bench/output.sh`'s 300 MB of 88-byte lines, which
//! `head` writes 8 KiB at a time, this took flow from 280 to 430 MB/s. The whole lines of a
//! block that is valid UTF-8 without `\r\n` are checked and copied at once, their line ends
//! kept, as one piece ([`PieceKind::Lines`]): nothing is done per line unless a reader of the
//! batch asks for the lines one by one, and the log writes them with one copy. From 400 to
//! 455 MB/s with a piece per line, 9% less wall time again once the end of the line a previous
//! read left under way no longer kept a block off that path, and 12% less again (wall; user
//! CPU 0.23 to 0.14 s) once the callback took a read's lines at once and plain text gave only
//! its last line to the output reader (`farm-bench -n 10`, paired against the previous build).
//! The pipes are read by the task that runs the callback (8% less wall time than a reader
//! task per pipe, which woke that task at each read, `farm-bench -n 12`).
//!
//! Output that is not UTF-8 (binary, a cut multi-byte character) is decoded lossily: each
//! invalid sequence becomes U+FFFD, in what the callback sees and in the log, so the log stays
//! readable as text (`flow logs` reads it as UTF-8). NUL bytes are valid UTF-8 and are kept.
//! A line ending `\r\n` loses its `\r`, except at the end of a cut line.
//!
//! Hand-written rather than `BufRead::read_until`, which keeps the whole line however long it
//! is (a 300 MB line of NUL bytes took flow to 2.35 GB), or `tokio_util`'s `LinesCodec` with a
//! maximum length, which discards what passes the maximum instead of streaming it to the log.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use memchr::memchr;
use rustix::io::Errno;
use rustix::pipe::fcntl_getpipe_size;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Stream;

/// The most bytes of one line handed to the callback; the rest of the line only reaches the log.
pub const LINE_LIMIT: usize = 1 << 20;

/// The most bytes read from a pipe at once, and so about the most text in one batch.
const READ_SIZE: usize = 256 * 1024;

/// The capacity asked for the pipe of a child that prints a lot (the kernel gives 64 KiB): it
/// writes on while flow handles what it read, and flow's reads are larger and fewer.
/// `bench/output.sh`'s cases, each paired against 64 KiB pipes and reads with
/// `farm-bench -n 10`: 12% less wall time for NUL bytes, 7% for short lines, 8% for one long
/// line.
const PIPE_SIZE: usize = 256 * 1024;

/// How many pipes flow enlarges at once at most. The kernel counts a user's pipe buffers
/// together, and past `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default) every new pipe
/// of the user gets a single page: flow's large pipes take at most 8 MiB of that.
const LARGE_PIPES: usize = 32;

/// How many pipes flow has enlarged and not yet closed.
static LARGE_PIPES_OPEN: AtomicUsize = AtomicUsize::new(0);

/// The bytes read from a pipe at once until a read fills them.
const FIRST_READ_SIZE: usize = 4096;

/// Says what a piece of a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceKind {
    /// A whole line, without its line ending.
    Line,
    /// The first [`LINE_LIMIT`] bytes (or a little less, at a character boundary) of a longer
    /// line.
    Head,
    /// More of a cut line, which goes on.
    Rest,
    /// The end of a cut line.
    RestEnd,
    /// Whole lines, one after the other, each with its `\n` (a `\r\n` written as `\n`): the
    /// common case, kept as one run of text so that nothing is done per line unless a reader
    /// asks for the lines one by one ([`Batch::pieces`]).
    Lines,
}

/// The text one read of a stream gave, cut into pieces.
#[derive(Debug)]
pub(super) struct Batch {
    /// The stream the text came from.
    pub stream: Stream,
    /// The text of all pieces, one after the other.
    text: String,
    /// Each piece's kind, and where its text starts and ends in `text`.
    pieces: Vec<(PieceKind, usize, usize)>,
}

impl Batch {
    /// Creates an empty batch of `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            text: String::new(),
            pieces: Vec::new(),
        }
    }

    /// Adds `lines`, whole lines each ended by `\n` or `\r\n` (and no other `\r`), as one
    /// piece, without the `\r`s.
    fn push_lines(&mut self, lines: &str) {
        let start = self.text.len();
        let mut from = 0;
        for at in memchr::memchr_iter(b'\r', lines.as_bytes()) {
            self.text.push_str(&lines[from..at]);
            from = at + 1;
        }
        self.text.push_str(&lines[from..]);
        self.pieces.push((PieceKind::Lines, start, self.text.len()));
    }

    /// About the memory the batch holds: its text, and its pieces (an empty line is a piece
    /// of no text).
    pub fn weight(&self) -> usize {
        self.text.len() + self.pieces.len() * std::mem::size_of::<(PieceKind, usize, usize)>()
    }

    /// Tells whether the batch holds no piece.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Returns each piece's kind and text, in order, a run of whole lines as one piece of kind
    /// [`PieceKind::Lines`] (its text with each line's `\n`).
    pub fn runs(&self) -> impl DoubleEndedIterator<Item = (PieceKind, &str)> + '_ {
        self.pieces
            .iter()
            .map(|&(kind, start, end)| (kind, &self.text[start..end]))
    }

    /// Returns each piece's kind and text, in order, a run of whole lines as a
    /// [`PieceKind::Line`] per line (without its `\n`): never [`PieceKind::Lines`].
    pub fn pieces(&self) -> impl DoubleEndedIterator<Item = (PieceKind, &str)> + '_ {
        self.runs().flat_map(|(kind, text)| {
            let (one, lines) = match kind {
                // A run is never empty and ends with `\n`: its lines are what the `\n`s end.
                PieceKind::Lines => (None, Some(text[..text.len() - 1].split('\n'))),
                _ => (Some((kind, text)), None),
            };
            one.into_iter()
                .chain(lines.into_iter().flatten().map(|line| (PieceKind::Line, line)))
        })
    }

    /// Adds a piece of `kind` whose text is `bytes`, decoded lossily.
    fn push(&mut self, kind: PieceKind, bytes: &[u8]) {
        let start = self.text.len();
        push_lossy(&mut self.text, bytes);
        self.pieces.push((kind, start, self.text.len()));
    }

    /// Adds a piece of `kind` whose text `decode` appends to the batch's text.
    fn push_with(&mut self, kind: PieceKind, decode: impl FnOnce(&mut String)) {
        let start = self.text.len();
        decode(&mut self.text);
        self.pieces.push((kind, start, self.text.len()));
    }
}

/// Cuts a stream of bytes into lines, keeping at most `limit` bytes of the line it is in.
#[derive(Debug)]
pub(super) struct LineSplitter {
    limit: usize,
    /// The start of the current line, while it is within the limit.
    partial: Vec<u8>,
    /// Whether the current line was cut: what follows, up to its end, is rest.
    cutting: bool,
    /// The decoder of the rest of a cut line, which may end a block in a character.
    rest: Utf8Stream,
}

impl LineSplitter {
    /// Creates a splitter that hands over at most `limit` bytes of a line as a whole.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            partial: Vec::new(),
            cutting: false,
            rest: Utf8Stream::default(),
        }
    }

    /// Adds the pieces that `bytes`, the next bytes of the stream, complete to `batch`.
    pub fn feed(&mut self, mut bytes: &[u8], batch: &mut Batch) {
        // The end of the line under way (a read rarely ends at a line's end).
        if self.cutting || !self.partial.is_empty() {
            let Some(end) = memchr(b'\n', bytes) else {
                return self.segment(bytes, false, batch);
            };
            self.segment(&bytes[..end], true, batch);
            bytes = &bytes[end + 1..];
        }
        // The common case: the block's whole lines valid UTF-8 and within the limit, a `\r`
        // only before a `\n` (ends `\r\n` lose it): copied and checked at once instead of
        // line by line.
        if let Some(last) = memchr::memrchr(b'\n', bytes)
            && last < self.limit
            && memchr::memchr_iter(b'\r', &bytes[..last]).all(|at| bytes[at + 1] == b'\n')
            && let Ok(lines) = std::str::from_utf8(&bytes[..=last])
        {
            batch.push_lines(lines);
            bytes = &bytes[last + 1..];
        }
        while let Some(end) = memchr(b'\n', bytes) {
            self.segment(&bytes[..end], true, batch);
            bytes = &bytes[end + 1..];
        }
        if !bytes.is_empty() {
            self.segment(bytes, false, batch);
        }
    }

    /// Adds what is left at the end of the stream to `batch`: a last line without a line
    /// ending, or the end of a cut line.
    pub fn finish(&mut self, batch: &mut Batch) {
        if self.cutting {
            let rest = &mut self.rest;
            batch.push_with(PieceKind::RestEnd, |text| rest.finish(text));
            self.cutting = false;
        } else if !self.partial.is_empty() {
            batch.push(PieceKind::Line, without_cr(&self.partial));
            self.partial.clear();
        }
    }

    /// Handles `bytes`, a part of one line, which ends the line when `ends_line`.
    fn segment(&mut self, bytes: &[u8], ends_line: bool, batch: &mut Batch) {
        if self.cutting {
            let rest = &mut self.rest;
            if ends_line {
                batch.push_with(PieceKind::RestEnd, |text| {
                    rest.push(text, bytes);
                    rest.finish(text);
                });
                self.cutting = false;
            } else {
                batch.push_with(PieceKind::Rest, |text| rest.push(text, bytes));
            }
            return;
        }
        if ends_line && self.partial.is_empty() && bytes.len() <= self.limit {
            // The common case: a whole line within one block, never copied but into the batch.
            batch.push(PieceKind::Line, without_cr(bytes));
            return;
        }
        self.partial.extend_from_slice(bytes);
        let line = if ends_line {
            without_cr(&self.partial)
        } else {
            &self.partial[..]
        };
        if line.len() <= self.limit {
            if ends_line {
                batch.push(PieceKind::Line, line);
                self.partial.clear();
            }
            return;
        }
        // Past the limit: the head goes to the callback, the rest to the log. Decoding may
        // make the head longer (U+FFFD takes three bytes): what passes the limit is rest.
        let cut = char_start_at_or_before(line, self.limit);
        let head = String::from_utf8_lossy(&line[..cut]);
        let head_end = head.floor_char_boundary(self.limit);
        batch.push_with(PieceKind::Head, |text| text.push_str(&head[..head_end]));
        if head_end < head.len() {
            batch.push_with(PieceKind::Rest, |text| text.push_str(&head[head_end..]));
        }
        let rest = &mut self.rest;
        let kind = if ends_line { PieceKind::RestEnd } else { PieceKind::Rest };
        batch.push_with(kind, |text| {
            rest.push(text, &line[cut..]);
            if ends_line {
                rest.finish(text);
            }
        });
        self.cutting = !ends_line;
        self.partial.clear();
        if self.partial.capacity() > 2 * READ_SIZE {
            // A long line is over: give back what it took.
            self.partial = Vec::new();
        }
    }
}

/// Reads one of a child's output pipes, a batch per read.
///
/// Read by the task that runs the child, between its other work (the callback, the timers):
/// a reader task of its own woke that task at every read, a hand-off between threads per
/// batch.
pub(super) struct PipeReader<R> {
    pipe: R,
    stream: Stream,
    splitter: LineSplitter,
    block: Vec<u8>,
    /// The pipe reached its end (or cannot be read any more), and what the splitter held was
    /// taken.
    done: bool,
    /// Whether the pipe was enlarged to [`PIPE_SIZE`] (and counts in [`LARGE_PIPES_OPEN`]).
    enlarged: bool,
}

impl<R> Drop for PipeReader<R> {
    fn drop(&mut self) {
        if self.enlarged {
            LARGE_PIPES_OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<R: AsyncRead + AsFd + Unpin> PipeReader<R> {
    /// Creates a reader of `pipe`, the child's `stream`.
    pub fn new(pipe: R, stream: Stream) -> Self {
        Self {
            pipe,
            stream,
            splitter: LineSplitter::new(LINE_LIMIT),
            // Small at first: most children print little or nothing (thousands of no-op steps).
            block: vec![0; FIRST_READ_SIZE],
            done: false,
            enlarged: false,
        }
    }

    /// Tells whether the pipe was read to its end.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Waits for output and returns the batch of one read, with what came meanwhile (reads that
    /// do not wait); at the end of the pipe, what the splitter held, once, then nothing.
    ///
    /// Cancel safe: the only wait is for the pipe to be readable, and nothing is read before.
    /// A batch may hold no piece (the start of a line that goes on): it says the child is not
    /// idle.
    pub async fn next(&mut self) -> Option<Batch> {
        if self.done {
            return None;
        }
        loop {
            let mut read = match self.pipe.read(&mut self.block).await {
                Ok(0) => return Some(self.finish()),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // It cannot be read any more: its end.
                Err(_) => return Some(self.finish()),
            };
            if read == self.block.len() && self.block.len() < READ_SIZE {
                // A child that prints a lot: larger reads, and a larger pipe.
                self.block.resize(READ_SIZE, 0);
                self.enlarge();
            }
            // What came meanwhile joins this batch (the pipe does not wait: `EAGAIN` ends it).
            while read < self.block.len() {
                match rustix::io::read(&self.pipe, &mut self.block[read..]) {
                    Ok(more) if more > 0 => read += more,
                    _ => break,
                }
            }
            return Some(self.batch(read));
        }
    }

    /// Reads what the pipe holds now, without waiting, and ends the reading: the batches, and
    /// what the splitter held.
    ///
    /// For a pipe that may be held open by a process that escaped, once the child has exited:
    /// what it holds was written before, and is read whatever a timer or the scheduling did.
    /// The reads stop at the first empty one, or after as many bytes as the pipe can hold (more
    /// can only be written meanwhile, by a process that floods it).
    pub fn empty(&mut self) -> Vec<Batch> {
        let mut batches = Vec::new();
        if self.done {
            return batches;
        }
        self.block.resize(READ_SIZE, 0);
        let mut left = fcntl_getpipe_size(&self.pipe).unwrap_or(READ_SIZE);
        while left > 0 {
            let read = match rustix::io::read(&self.pipe, &mut self.block[..]) {
                Ok(0) => break,
                Ok(read) => read,
                Err(Errno::INTR) => continue,
                // Empty (`EAGAIN`: the pipe is non-blocking), or it cannot be read any more.
                Err(_) => break,
            };
            left = left.saturating_sub(read);
            batches.push(self.batch(read));
        }
        batches.push(self.finish());
        batches
    }

    /// Enlarges the pipe to [`PIPE_SIZE`] unless [`LARGE_PIPES`] are open (or the kernel
    /// refuses).
    fn enlarge(&mut self) {
        if self.enlarged {
            return;
        }
        if LARGE_PIPES_OPEN.fetch_add(1, Ordering::Relaxed) < LARGE_PIPES
            && rustix::pipe::fcntl_setpipe_size(&self.pipe, PIPE_SIZE).is_ok()
        {
            self.enlarged = true;
        } else {
            LARGE_PIPES_OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The batch of the first `read` bytes of the block.
    fn batch(&mut self, read: usize) -> Batch {
        let mut batch = Batch::new(self.stream);
        self.splitter.feed(&self.block[..read], &mut batch);
        batch
    }

    /// The batch of what the splitter holds at the end of the stream, and the end.
    fn finish(&mut self) -> Batch {
        self.done = true;
        self.block = Vec::new();
        let mut batch = Batch::new(self.stream);
        self.splitter.finish(&mut batch);
        batch
    }
}

/// A child's two output pipes, read as one.
pub(super) struct Pipes<O, E> {
    pub stdout: Option<PipeReader<O>>,
    pub stderr: Option<PipeReader<E>>,
}

impl<O: AsyncRead + AsFd + Unpin, E: AsyncRead + AsFd + Unpin> Pipes<O, E> {
    /// Tells whether both pipes were read to their end.
    pub fn is_done(&self) -> bool {
        self.stdout.as_ref().is_none_or(PipeReader::is_done) && self.stderr.as_ref().is_none_or(PipeReader::is_done)
    }

    /// Waits for the next batch of either pipe; `None` once both were read to their end.
    /// Cancel safe, as [`PipeReader::next`].
    pub async fn next(&mut self) -> Option<Batch> {
        let stdout = async {
            match &mut self.stdout {
                Some(reader) => reader.next().await,
                None => None,
            }
        };
        let stderr = async {
            match &mut self.stderr {
                Some(reader) => reader.next().await,
                None => None,
            }
        };
        tokio::select! {
            Some(batch) = stdout => Some(batch),
            Some(batch) = stderr => Some(batch),
            else => None,
        }
    }

    /// Reads what both pipes hold now, without waiting, and ends the reading (see
    /// [`PipeReader::empty`]).
    pub fn empty(&mut self) -> Vec<Batch> {
        let mut batches = Vec::new();
        if let Some(reader) = &mut self.stdout {
            batches.extend(reader.empty());
        }
        if let Some(reader) = &mut self.stderr {
            batches.extend(reader.empty());
        }
        batches
    }
}

/// Appends `bytes` to `text`, decoded as UTF-8, each invalid sequence replaced by U+FFFD.
///
/// Valid text (nearly all output) takes the standard library's validation, which has a fast
/// path for ASCII that the decoder of `String::from_utf8_lossy` lacks: on `bench/output.sh`'s
/// many lines, decoding went from 3.6% of flow's samples (`perf`) to 1.4%.
fn push_lossy(text: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(valid) => text.push_str(valid),
        Err(_) => text.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Returns `line` without the `\r` of a `\r\n` ending.
fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Returns the largest index at most `index` where no UTF-8 continuation byte starts, looking
/// back at most three bytes (further back, the bytes are not UTF-8 anyway).
pub(super) fn char_start_at_or_before(bytes: &[u8], index: usize) -> usize {
    let mut cut = index.min(bytes.len());
    for _ in 0..3 {
        if cut == 0 || cut == bytes.len() || !is_continuation(bytes[cut]) {
            break;
        }
        cut -= 1;
    }
    cut
}

/// Tells whether `byte` continues a multi-byte UTF-8 character.
pub(super) fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// Returns how many bytes the UTF-8 character that `lead` starts takes; 1 for a byte that cannot
/// start one.
fn char_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Decodes bytes that come in blocks as UTF-8, lossily, keeping a character cut by the end of a
/// block until the next one.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Stream {
    /// Appends the text of `bytes` to `text`, holding back an incomplete character at the end.
    fn push(&mut self, text: &mut String, mut bytes: &[u8]) {
        while self.pending_len > 0 {
            let Some((&byte, after)) = bytes.split_first() else {
                return;
            };
            if !is_continuation(byte) {
                text.push(char::REPLACEMENT_CHARACTER);
                self.pending_len = 0;
                break;
            }
            self.pending[self.pending_len] = byte;
            self.pending_len += 1;
            bytes = after;
            if self.pending_len == char_width(self.pending[0]) {
                text.push_str(&String::from_utf8_lossy(&self.pending[..self.pending_len]));
                self.pending_len = 0;
            }
        }
        let held = incomplete_end(bytes);
        let (body, end) = bytes.split_at(bytes.len() - held);
        push_lossy(text, body);
        self.pending[..held].copy_from_slice(end);
        self.pending_len = held;
    }

    /// Ends the stream: a character left incomplete becomes U+FFFD.
    fn finish(&mut self, text: &mut String) {
        if self.pending_len > 0 {
            text.push(char::REPLACEMENT_CHARACTER);
            self.pending_len = 0;
        }
    }
}

/// Returns how many bytes at the end of `bytes` start a UTF-8 character they do not complete.
fn incomplete_end(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if !is_continuation(byte) {
            return if char_width(byte) > back { back } else { 0 };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `blocks`, one after the other, with a line limit of `limit`.
    fn split(blocks: &[&[u8]], limit: usize) -> Vec<(PieceKind, String)> {
        let mut splitter = LineSplitter::new(limit);
        let mut pieces = Vec::new();
        for block in blocks {
            let mut batch = Batch::new(Stream::Stdout);
            splitter.feed(block, &mut batch);
            pieces.extend(batch.pieces().map(|(kind, text)| (kind, text.to_owned())));
        }
        let mut batch = Batch::new(Stream::Stdout);
        splitter.finish(&mut batch);
        pieces.extend(batch.pieces().map(|(kind, text)| (kind, text.to_owned())));
        pieces
    }

    fn pieces(expected: &[(PieceKind, &str)]) -> Vec<(PieceKind, String)> {
        expected.iter().map(|&(kind, text)| (kind, text.to_owned())).collect()
    }

    use PieceKind::{Head, Line, Rest, RestEnd};

    #[test]
    fn lines_are_split_across_blocks() {
        assert_eq!(
            split(&[b"one\ntw", b"o\r\n\nthr", b"ee"], 100),
            pieces(&[(Line, "one"), (Line, "two"), (Line, ""), (Line, "three")])
        );
    }

    #[test]
    fn whole_lines_ended_by_crlf_are_one_piece_without_their_cr() {
        let mut splitter = LineSplitter::new(100);
        let mut batch = Batch::new(Stream::Stdout);
        splitter.feed(b"one\r\ntwo\n\r\nthree", &mut batch);
        let runs: Vec<(PieceKind, &str)> = batch.runs().collect();
        assert_eq!(runs, [(PieceKind::Lines, "one\ntwo\n\n")]);
        // A `\r` that does not end a line keeps the block off that path, as it was printed.
        let mut batch = Batch::new(Stream::Stdout);
        splitter.feed(b"\nprogress 10%\rprogress 20%\r\n", &mut batch);
        assert!(batch.runs().all(|(kind, _)| kind != PieceKind::Lines));
        assert_eq!(
            batch.pieces().map(|(_, text)| text).collect::<Vec<_>>(),
            ["three", "progress 10%\rprogress 20%"]
        );
    }

    #[test]
    fn a_line_past_the_limit_is_cut_and_its_rest_streamed() {
        assert_eq!(
            split(&[b"short\n0123456789abc", b"def", b"gh\nnext\n"], 8),
            pieces(&[
                (Line, "short"),
                (Head, "01234567"),
                (Rest, "89abc"),
                (Rest, "def"),
                (RestEnd, "gh"),
                (Line, "next")
            ])
        );
        // Cut within one block, and at the end of the stream.
        assert_eq!(
            split(&[b"0123456789\n0123456789"], 8),
            pieces(&[
                (Head, "01234567"),
                (RestEnd, "89"),
                (Head, "01234567"),
                (Rest, "89"),
                (RestEnd, "")
            ])
        );
        // Exactly at the limit: whole.
        assert_eq!(split(&[b"01234567\n"], 8), pieces(&[(Line, "01234567")]));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "é" is two bytes: a limit that falls inside it cuts before it.
        assert_eq!(
            split(&["abcé".as_bytes(), b"xyz\n"], 4),
            pieces(&[(Head, "abc"), (Rest, "é"), (RestEnd, "xyz")])
        );
        // A character cut by the end of a block of the rest is decoded whole.
        let euro = "€".as_bytes();
        assert_eq!(
            split(&[b"abcdefgh", &euro[..1], &euro[1..2], &euro[2..], b"\n"], 4),
            pieces(&[
                (Head, "abcd"),
                (Rest, "efgh"),
                (Rest, ""),
                (Rest, ""),
                (Rest, "€"),
                (RestEnd, "")
            ])
        );
    }

    #[test]
    fn a_head_of_replaced_bytes_is_held_to_the_limit() {
        // Each invalid byte becomes U+FFFD, three bytes: the head keeps what fits.
        assert_eq!(
            split(&[b"\xff\xff\xff\xff\xff\xffabc\n"], 7),
            pieces(&[
                (Head, "\u{FFFD}\u{FFFD}"),
                (Rest, "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}a"),
                (RestEnd, "bc")
            ])
        );
    }

    /// Reads what `pipe` holds, as a reader does once the child has exited: without waiting.
    fn read_late(pipe: tokio::net::unix::pipe::Receiver) -> Vec<(PieceKind, String)> {
        let mut reader = PipeReader::new(pipe, Stream::Stdout);
        let batches = reader.empty();
        assert!(reader.is_done());
        batches
            .iter()
            .flat_map(|batch| batch.pieces().map(|(kind, text)| (kind, text.to_owned())))
            .collect()
    }

    #[tokio::test]
    async fn what_the_pipe_holds_is_read_however_late_the_reader_runs() {
        // The writer stays open, as a process that escaped would hold it: no end of stream.
        let (mut writer, pipe) = tokio::net::unix::pipe::pipe().expect("a pipe");
        let lines: String = (1..=5000).map(|number| format!("{number}\n")).collect();
        // More than one read; less than a pipe holds (64 KiB), so the write cannot block.
        assert!(lines.len() > FIRST_READ_SIZE && lines.len() < 60_000);
        tokio::io::AsyncWriteExt::write_all(&mut writer, lines.as_bytes())
            .await
            .expect("the pipe takes it");
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"no line ending")
            .await
            .expect("the pipe takes it");
        let pieces = read_late(pipe);
        let mut expected: Vec<(PieceKind, String)> = (1..=5000).map(|number| (Line, number.to_string())).collect();
        expected.push((Line, "no line ending".to_owned()));
        assert_eq!(pieces, expected);
        drop(writer);
    }

    #[test]
    fn a_read_is_seen_whole_line_by_line_by_its_last_line_and_as_text() {
        use super::super::{Output, OutputLine};
        use crate::agent::environment::Redactor;
        let mut splitter = LineSplitter::new(8);
        let mut batch = Batch::new(Stream::Stdout);
        splitter.feed(b"first\n\nsecret 1\n  \n0123456789", &mut batch);
        let output = Output { batch: &batch };
        let line = |text, cut| OutputLine {
            stream: Stream::Stdout,
            text,
            cut,
        };
        let lines: Vec<OutputLine<'_>> = output.lines().collect();
        assert_eq!(
            lines,
            [
                line("first", false),
                line("", false),
                line("secret 1", false),
                line("  ", false),
                line("01234567", true)
            ]
        );
        // The whole lines are one piece of the batch, read backwards as well.
        assert_eq!(output.lines().rev().nth(1), Some(line("  ", false)));
        assert_eq!(output.last_line(), Some(line("01234567", true)));
        let mut text = String::new();
        output.push_text(&mut text, &Redactor::new(&["secret".to_owned()]));
        assert_eq!(text, "first\n\n*** 1\n  \n01234567\n");

        // Blank lines are never the last line; a read of blank lines has none.
        let mut batch = Batch::new(Stream::Stdout);
        splitter.feed(b"89\nlast\n \n\t\n", &mut batch);
        assert_eq!(Output { batch: &batch }.last_line(), Some(line("last", false)));
        let mut batch = Batch::new(Stream::Stdout);
        splitter.feed(b"\n \n", &mut batch);
        assert_eq!(Output { batch: &batch }.last_line(), None);
    }

    #[tokio::test]
    async fn a_child_that_prints_a_lot_gets_a_larger_pipe_and_flow_only_so_many() {
        use tokio::io::AsyncWriteExt;
        /// A reader of a pipe that filled its first read, and the pipe's writer.
        async fn chatty() -> (
            PipeReader<tokio::net::unix::pipe::Receiver>,
            tokio::net::unix::pipe::Sender,
        ) {
            let (mut writer, pipe) = tokio::net::unix::pipe::pipe().expect("a pipe");
            writer
                .write_all(&[b'x'; FIRST_READ_SIZE])
                .await
                .expect("the pipe takes it");
            let mut reader = PipeReader::new(pipe, Stream::Stdout);
            reader.next().await.expect("a batch");
            (reader, writer)
        }
        let quiet = {
            let (writer, pipe) = tokio::net::unix::pipe::pipe().expect("a pipe");
            drop(writer);
            let mut reader = PipeReader::new(pipe, Stream::Stdout);
            reader.next().await;
            reader
        };
        assert!(!quiet.enlarged, "a pipe that never filled a read keeps its size");
        let mut open = Vec::new();
        loop {
            let (reader, writer) = chatty().await;
            let enlarged = reader.enlarged;
            if enlarged {
                assert_eq!(fcntl_getpipe_size(&reader.pipe).expect("its size"), PIPE_SIZE);
            }
            open.push((reader, writer));
            if !enlarged {
                break;
            }
            assert!(
                open.len() <= LARGE_PIPES,
                "more than {LARGE_PIPES} pipes enlarged at once"
            );
        }
        assert!(open.len() > 1, "the first chatty pipe is enlarged");
        // Once closed, they no longer count.
        open.clear();
        let (reader, _writer) = chatty().await;
        assert!(reader.enlarged);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        assert_eq!(
            split(&[b"a\xffb\n\0\0\n"], 100),
            pieces(&[(Line, "a\u{FFFD}b"), (Line, "\0\0")])
        );
        // In the rest of a cut line, and an incomplete character at the end of the stream.
        assert_eq!(
            split(&[b"abcd\xff\xe2\x82", b"x\xe2"], 4),
            pieces(&[
                (Head, "abcd"),
                (Rest, "\u{FFFD}"),
                (Rest, "\u{FFFD}x"),
                (RestEnd, "\u{FFFD}")
            ])
        );
    }
}
