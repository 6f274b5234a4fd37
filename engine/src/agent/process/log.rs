//! Writes a child's output to its log at the speed of the disk, within a size limit, secrets
//! hidden.
//!
//! **Speed.** The batches of output go, once the callback has seen them, to a writer on a
//! blocking thread of its own, through a queue of a few batches. It formats them (`[stderr] `
//! before stderr lines, secrets replaced by `***`) into a 64 KiB buffer, which reaches the file
//! when it is full, when the output pauses ([`FLUSH_PAUSE`] without a batch) and at least every
//! [`FLUSH_EVERY`] while output flows, so `flow logs -f` follows a live agent. A flush per line
//! through tokio's file API, as before, wrote about 2 MB/s; `bench/output.sh` measures this one
//! against `cat > file`. A slow disk slows the child (the queue fills, then the pipes), never
//! flow's memory.
//!
//! **Limit.** With [`ProcessSpec::log_limit`](super::ProcessSpec::log_limit) set, this process
//! adds at most about that much to the log: its first half (the head, cut back to the end of a
//! line), a marker line saying how much was dropped, and the last half (the tail, from the start
//! of a line when one starts near the cut). The head is written to the log as it comes, so it is
//! live. The tail goes to a ring of unnamed temporary files next to the log (`O_TMPFILE`: they
//! vanish when closed, even if flow is killed), each a quarter of the tail, the oldest emptied and
//! reused when the newest is full; when the process ends, the marker and the last half are
//! appended to the log, copied file to file by the kernel (`copy_file_range`). So memory stays at
//! a buffer whatever the output, where a ring buffer in memory would hold 32 MiB per agent with
//! the default limit; the price is that output past the head is not in the log until the end
//! (`flow logs -f` shows the head, then the rest when the agent ends), and that the log never
//! shrinks, so a follower's position stays valid. On disk, the head and the ring take at most
//! about 1.1 times the limit while the process runs (the ring's five files hold 1.25 tails),
//! the log alone at the end.
//!
//! **Secrets.** A whole line is redacted as a whole. A cut line's rest comes in blocks of any
//! size, and a secret may straddle two of them: the writer holds back the last bytes of each
//! block (one less than the longest secret, more if a secret starts there) until the next one
//! comes, and redacts what it writes, so a secret is never written in two parts. A stream
//! interrupted by the other one in the middle of a cut line keeps what it held back.
//!
//! The log is valid UTF-8 (the readers decode lossily, and every cut is at a character
//! boundary), as `flow logs` reads it.
//!
//! Written here: crates that cap logs rotate whole files (`file-rotate`) and keep no head, or
//! cap lines in memory; none keeps a head and a tail of a stream.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use memchr::{memchr, memchr_iter, memrchr};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Stream;
use super::lines::{Batch, PieceKind, char_start_at_or_before, is_continuation};
use crate::agent::environment::Redactor;

/// How long the output may pause before what is buffered is written to the log.
pub(super) const FLUSH_PAUSE: Duration = Duration::from_millis(100);

/// The longest time buffered output waits before it is written to the log.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The size of the writer's buffer, and so of most writes to the log.
const BUFFER: usize = 64 * 1024;

/// How many batches may wait for the writer before the reading stops.
const QUEUE: usize = 4;

/// The least size of one file of the tail's ring.
const MIN_CHUNK: u64 = 64 * 1024;

/// How far past the cut the tail looks for the start of a line to begin with.
const ALIGN_WINDOW: usize = 64 * 1024;

/// What the writer is asked to do.
enum Message {
    /// Writes batches, in order.
    Batches(Vec<Batch>),
    /// Writes what is buffered to the file.
    Flush,
}

/// Hands output to the log's writer thread, and tells when to flush it.
pub(super) struct LogWriter {
    sender: Option<mpsc::Sender<Message>>,
    /// Batches not yet handed over: the writer is woken once per [`BUFFER`] of output at most,
    /// not once per read of a pipe.
    pending: Vec<Batch>,
    pending_bytes: usize,
    task: JoinHandle<io::Result<()>>,
    unflushed_since: Option<Instant>,
    last_batch: Instant,
}

impl LogWriter {
    /// Starts a writer appending to the log at `path` (created with its folder when missing),
    /// adding at most about `limit` bytes, with `secrets` replaced by `***`.
    pub fn start(path: PathBuf, limit: Option<u64>, secrets: Vec<String>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let task = tokio::task::spawn_blocking(move || write_log(&path, limit, &secrets, receiver));
        Self {
            sender: Some(sender),
            pending: Vec::new(),
            pending_bytes: 0,
            task,
            unflushed_since: None,
            last_batch: Instant::now(),
        }
    }

    /// Hands `batch` to the writer; `false` when the writer has stopped ([`Self::finish`] says
    /// why).
    pub async fn write(&mut self, batch: Batch) -> bool {
        let now = Instant::now();
        self.unflushed_since.get_or_insert(now);
        self.last_batch = now;
        self.pending_bytes += batch.weight();
        self.pending.push(batch);
        if self.pending_bytes < BUFFER {
            return self.sender.is_some();
        }
        self.hand_over().await
    }

    /// Hands the pending batches to the writer.
    async fn hand_over(&mut self) -> bool {
        if self.pending.is_empty() {
            return self.sender.is_some();
        }
        self.pending_bytes = 0;
        let batches = std::mem::take(&mut self.pending);
        self.send(Message::Batches(batches)).await
    }

    /// Returns when what was handed over must be flushed, if anything waits.
    pub fn flush_at(&self) -> Option<Instant> {
        self.unflushed_since
            .map(|since| (self.last_batch + FLUSH_PAUSE).min(since + FLUSH_EVERY))
    }

    /// Asks the writer to write what it buffers to the file; `false` when it has stopped.
    pub async fn flush(&mut self) -> bool {
        self.unflushed_since = None;
        self.hand_over().await && self.send(Message::Flush).await
    }

    /// Waits until the writer has written everything and completed the log.
    ///
    /// # Errors
    ///
    /// Fails when the log could not be opened or written; the message names the log.
    pub async fn finish(mut self) -> io::Result<()> {
        self.hand_over().await;
        self.sender = None;
        match (&mut self.task).await {
            Ok(written) => written,
            Err(error) => Err(io::Error::other(format!("the log writer failed: {error}"))),
        }
    }

    async fn send(&mut self, message: Message) -> bool {
        match &self.sender {
            Some(sender) => sender.send(message).await.is_ok(),
            None => false,
        }
    }
}

/// Writes what `receiver` brings to the log at `path` until every sender is gone.
fn write_log(
    path: &Path,
    limit: Option<u64>,
    secrets: &[String],
    mut receiver: mpsc::Receiver<Message>,
) -> io::Result<()> {
    let file = open_log(path)?;
    let directory = path
        .parent()
        .filter(|directory| !directory.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut log = Formatter::new(
        BufWriter::with_capacity(BUFFER, CappedLog::new(file, limit, directory)),
        secrets,
    );
    let written = || {
        while let Some(message) = receiver.blocking_recv() {
            match message {
                Message::Batches(batches) => {
                    for batch in &batches {
                        log.batch(batch)?;
                    }
                }
                Message::Flush => log.out.flush()?,
            }
        }
        receiver.close();
        log.finish()
    };
    written().map_err(|error| io::Error::new(error.kind(), format!("cannot write to {}: {error}", path.display())))
}

/// Opens `path` for appending, creating it and its folder when missing.
fn open_log(path: &Path) -> io::Result<File> {
    let opened = (|| {
        if let Some(directory) = path.parent().filter(|directory| !directory.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory)?;
        }
        File::options().create(true).append(true).open(path)
    })();
    opened.map_err(|error| io::Error::new(error.kind(), format!("cannot open the log {}: {error}", path.display())))
}

/// Turns batches into the lines of the log: stderr lines prefixed, secrets replaced.
struct Formatter<'a> {
    out: BufWriter<CappedLog>,
    secrets: &'a [String],
    redactor: Redactor,
    /// The length in bytes of the longest secret.
    longest: usize,
    /// The stream whose cut line is being written, its end not yet come.
    open: Option<Stream>,
    /// For each stream, the end of its cut line held back until more comes (see the module doc).
    held: [String; 2],
}

impl<'a> Formatter<'a> {
    fn new(out: BufWriter<CappedLog>, secrets: &'a [String]) -> Self {
        Self {
            out,
            secrets,
            redactor: Redactor::new(secrets),
            longest: secrets.iter().map(String::len).max().unwrap_or(0),
            open: None,
            held: [String::new(), String::new()],
        }
    }

    /// Writes the pieces of `batch`.
    fn batch(&mut self, batch: &Batch) -> io::Result<()> {
        let stream = batch.stream;
        for (kind, text) in batch.runs() {
            match kind {
                // Whole stdout lines: as they are, with one copy, unless they hold a secret.
                PieceKind::Lines if stream == Stream::Stdout => {
                    self.end_open_line()?;
                    if self.redactor.holds_secret(text) {
                        self.out.write_all(self.redactor.redact(text).as_bytes())?;
                    } else {
                        self.out.write_all(text.as_bytes())?;
                    }
                }
                PieceKind::Lines => {
                    self.end_open_line()?;
                    for line in text[..text.len() - 1].split('\n') {
                        self.line(stream, line)?;
                    }
                }
                PieceKind::Line => {
                    self.end_open_line()?;
                    self.line(stream, text)?;
                }
                PieceKind::Head | PieceKind::Rest | PieceKind::RestEnd => {
                    if self.open != Some(stream) {
                        self.end_open_line()?;
                        self.prefix(stream)?;
                        self.open = Some(stream);
                    }
                    self.stream_text(stream, text)?;
                    if kind == PieceKind::RestEnd {
                        self.write_held(stream)?;
                        self.out.write_all(b"\n")?;
                        self.open = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes one whole line of `stream`.
    fn line(&mut self, stream: Stream, text: &str) -> io::Result<()> {
        self.prefix(stream)?;
        self.out.write_all(self.redactor.redact(text).as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes what is left, ends the log's last line, and completes the log.
    fn finish(mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.held[stream as usize].is_empty() {
                if self.open != Some(stream) {
                    self.end_open_line()?;
                    self.prefix(stream)?;
                    self.open = Some(stream);
                }
                self.write_held(stream)?;
            }
        }
        self.end_open_line()?;
        let log = self.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        log.finish()
    }

    /// Ends the line a cut line of either stream left open (its stream keeps what it held).
    fn end_open_line(&mut self) -> io::Result<()> {
        if self.open.take().is_some() {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn prefix(&mut self, stream: Stream) -> io::Result<()> {
        if stream == Stream::Stderr {
            self.out.write_all(b"[stderr] ")?;
        }
        Ok(())
    }

    /// Writes `text`, more of a cut line of `stream`, but for an end that may start a secret.
    fn stream_text(&mut self, stream: Stream, text: &str) -> io::Result<()> {
        if self.longest == 0 {
            return self.out.write_all(text.as_bytes());
        }
        let held = &mut self.held[stream as usize];
        held.push_str(text);
        // What more text could complete into a secret waits for it.
        let end = secret_safe_cut(held, held.len() - (self.longest - 1).min(held.len()), self.secrets);
        self.out.write_all(self.redactor.redact(&held[..end]).as_bytes())?;
        held.drain(..end);
        Ok(())
    }

    /// Writes what `stream` held back, its line being over.
    fn write_held(&mut self, stream: Stream) -> io::Result<()> {
        let held = std::mem::take(&mut self.held[stream as usize]);
        self.out.write_all(self.redactor.redact(&held).as_bytes())
    }
}

/// Returns where to cut `text` at `at` or a little after, so that no secret straddles the cut:
/// past the end of any secret that starts before `at` and ends after it (`at` itself is taken
/// back to a character boundary).
pub(super) fn secret_safe_cut(text: &str, at: usize, secrets: &[String]) -> usize {
    let mut end = text.floor_char_boundary(at);
    loop {
        let mut moved = false;
        for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
            let mut from = text.floor_char_boundary(end.saturating_sub(secret.len() - 1));
            while let Some(found) = text[from..].find(secret.as_str()) {
                let start = from + found;
                if start >= end {
                    break;
                }
                if start + secret.len() > end {
                    end = start + secret.len();
                    moved = true;
                }
                from = text.ceil_char_boundary(start + 1);
            }
        }
        if !moved {
            return end;
        }
    }
}

/// The log file, taking a head and then keeping a rolling tail when it has a limit.
struct CappedLog {
    file: File,
    /// What the head may still take; `None` without a limit.
    head_room: Option<u64>,
    /// The nominal size of the head, for the marker.
    head: u64,
    /// Whether the head so far ends a line (or is empty).
    head_ends_line: bool,
    /// How much of the end the tail keeps.
    keep: u64,
    directory: PathBuf,
    tail: Option<Tail>,
}

impl CappedLog {
    fn new(file: File, limit: Option<u64>, directory: &Path) -> Self {
        let head = limit.map_or(0, |limit| limit / 2);
        Self {
            file,
            head_room: limit.map(|_| head),
            head,
            head_ends_line: true,
            keep: limit.map_or(0, |limit| limit - head),
            directory: directory.to_path_buf(),
            tail: None,
        }
    }

    /// Adds `bytes` to the head while it has room, then to the tail.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(tail) = &mut self.tail {
            return tail.write(bytes);
        }
        let Some(room) = self.head_room else {
            return self.file.write_all(bytes);
        };
        let fits = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        let cut = if fits == bytes.len() {
            fits
        } else {
            memrchr(b'\n', &bytes[..fits]).map_or_else(|| char_start_at_or_before(bytes, fits), |end| end + 1)
        };
        if cut > 0 {
            self.file.write_all(&bytes[..cut])?;
            self.head_ends_line = bytes[cut - 1] == b'\n';
        }
        self.head_room = Some(room - cut as u64);
        if cut < bytes.len() {
            let mut tail = Tail::new(self.keep, &self.directory);
            tail.write(&bytes[cut..])?;
            self.tail = Some(tail);
        }
        Ok(())
    }

    /// Appends the marker and the tail to the log when the head filled.
    fn finish(self) -> io::Result<()> {
        let Some(mut tail) = self.tail else {
            return Ok(());
        };
        let dropped = tail.drop_to_keep()?;
        // The kernel copies file to file (`copy_file_range`) only into a file not opened for
        // appending: the same file, opened again through its descriptor, at its end.
        let mut end = File::options()
            .write(true)
            .open(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .unwrap_or(self.file);
        end.seek(SeekFrom::End(0))?;
        if dropped.bytes > 0 {
            let mut marker = String::new();
            if !self.head_ends_line {
                marker.push('\n');
            }
            marker.push_str(&marker_line(dropped, self.head, self.keep));
            end.write_all(marker.as_bytes())?;
        }
        tail.copy_to(&mut end)
    }
}

impl Write for CappedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.put(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every write goes to the kernel at once.
        Ok(())
    }
}

/// How much output the limit left out of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dropped {
    bytes: u64,
    lines: u64,
}

/// Says where output was dropped and how much: `[flow: 225.2 MiB (3,120,004 lines) dropped here;
/// the log keeps its first and last 32 MiB]`.
fn marker_line(dropped: Dropped, head: u64, keep: u64) -> String {
    let lines = match dropped.lines {
        1 => "1 line".to_owned(),
        lines => format!("{} lines", thousands(lines)),
    };
    let kept = if head == keep {
        format!("first and last {}", size(head))
    } else {
        format!("first {} and last {}", size(head), size(keep))
    };
    format!(
        "[flow: {} ({lines}) dropped here; the log keeps its {kept}]\n",
        size(dropped.bytes)
    )
}

/// Writes a size in bytes the way people read it: `512 bytes`, `1.5 KiB`, `32 MiB`.
fn size(bytes: u64) -> String {
    let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, scale) in units {
        if bytes >= scale {
            let value = format!("{:.1}", bytes as f64 / scale as f64);
            return format!("{} {unit}", value.strip_suffix(".0").unwrap_or(&value));
        }
    }
    match bytes {
        1 => "1 byte".to_owned(),
        bytes => format!("{bytes} bytes"),
    }
}

/// Writes `number` with commas between thousands.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The end of the output past the head, in a ring of temporary files (see the module doc).
struct Tail {
    keep: u64,
    chunk_size: u64,
    max_chunks: usize,
    directory: PathBuf,
    chunks: VecDeque<Chunk>,
    /// What emptied files held.
    recycled: Dropped,
}

/// One file of the tail's ring.
struct Chunk {
    file: File,
    /// How much it holds.
    len: u64,
    /// How many line ends it holds.
    lines: u64,
    /// How much of its start is left out of the log.
    skip: u64,
}

impl Tail {
    /// Creates a tail keeping at least the last `keep` bytes, its files in `directory`.
    fn new(keep: u64, directory: &Path) -> Self {
        let chunk_size = keep.div_ceil(4).max(MIN_CHUNK);
        let max_chunks = usize::try_from(keep.div_ceil(chunk_size)).unwrap_or(usize::MAX - 1) + 1;
        Self {
            keep,
            chunk_size,
            max_chunks,
            directory: directory.to_path_buf(),
            chunks: VecDeque::new(),
            recycled: Dropped { bytes: 0, lines: 0 },
        }
    }

    /// Appends `bytes`, emptying the oldest file for reuse when the newest is full.
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.chunks.back().is_none_or(|chunk| chunk.len >= self.chunk_size) {
                self.rotate()?;
            }
            let chunk = self.chunks.back_mut().expect("rotate leaves a file with room last");
            let room = usize::try_from(self.chunk_size - chunk.len).unwrap_or(usize::MAX);
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            chunk.file.write_all(now)?;
            chunk.len += now.len() as u64;
            chunk.lines += memchr_iter(b'\n', now).count() as u64;
            bytes = later;
        }
        Ok(())
    }

    /// Adds an empty file at the end of the ring: a new one, or the oldest once all exist.
    fn rotate(&mut self) -> io::Result<()> {
        if self.chunks.len() < self.max_chunks {
            let file = tempfile::tempfile_in(&self.directory)?;
            self.chunks.push_back(Chunk {
                file,
                len: 0,
                lines: 0,
                skip: 0,
            });
            return Ok(());
        }
        let mut oldest = self.chunks.pop_front().expect("the ring holds at least one file");
        self.recycled.bytes += oldest.len;
        self.recycled.lines += oldest.lines;
        oldest.file.set_len(0)?;
        oldest.file.rewind()?;
        oldest.len = 0;
        oldest.lines = 0;
        oldest.skip = 0;
        self.chunks.push_back(oldest);
        Ok(())
    }

    /// Drops what is held beyond the last `keep` bytes (and up to the start of the next line
    /// when one starts within [`ALIGN_WINDOW`]), and returns all that was dropped.
    fn drop_to_keep(&mut self) -> io::Result<Dropped> {
        let held: u64 = self.chunks.iter().map(|chunk| chunk.len).sum();
        let mut skip = held.saturating_sub(self.keep);
        if self.recycled.bytes + skip == 0 {
            return Ok(self.recycled);
        }
        // Begin with a line, or at least with a character.
        let mut window = vec![0; ALIGN_WINDOW];
        let read = self.read_at(skip, &mut window)?;
        let window = &window[..read];
        skip += match memchr(b'\n', window) {
            // A line end that is not the last byte: what follows it starts a line.
            Some(end) if (skip + end as u64 + 1) < held => end + 1,
            _ => window
                .iter()
                .position(|&byte| !is_continuation(byte))
                .unwrap_or(window.len()),
        } as u64;
        let mut lines = 0;
        let mut position = 0;
        let mut block = vec![0; BUFFER];
        while position < skip {
            let want = usize::try_from(skip - position).unwrap_or(usize::MAX).min(block.len());
            let read = self.read_at(position, &mut block[..want])?;
            if read == 0 {
                break;
            }
            lines += memchr_iter(b'\n', &block[..read]).count() as u64;
            position += read as u64;
        }
        self.discard(skip);
        Ok(Dropped {
            bytes: self.recycled.bytes + skip,
            lines: self.recycled.lines + lines,
        })
    }

    /// Reads from `position` of what the ring holds into `buffer`; returns how much was read.
    fn read_at(&mut self, mut position: u64, buffer: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        for chunk in &mut self.chunks {
            if filled == buffer.len() {
                break;
            }
            if position >= chunk.len {
                position -= chunk.len;
                continue;
            }
            chunk.file.seek(SeekFrom::Start(position))?;
            let want = usize::try_from(chunk.len - position)
                .unwrap_or(usize::MAX)
                .min(buffer.len() - filled);
            chunk.file.read_exact(&mut buffer[filled..filled + want])?;
            filled += want;
            position = 0;
        }
        Ok(filled)
    }

    /// Forgets the first `skip` bytes the ring holds (the files stay; only what is copied
    /// changes).
    fn discard(&mut self, mut skip: u64) {
        for chunk in &mut self.chunks {
            let gone = skip.min(chunk.len);
            chunk.skip = gone;
            skip -= gone;
        }
    }

    /// Appends what the ring holds, oldest first, to `log`.
    fn copy_to(&mut self, log: &mut File) -> io::Result<()> {
        for chunk in &mut self.chunks {
            chunk.file.seek(SeekFrom::Start(chunk.skip))?;
            let length = chunk.len - chunk.skip;
            let copied = io::copy(&mut (&mut chunk.file).take(length), log)?;
            if copied != length {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a file of the tail was cut short",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::LineSplitter;
    use super::*;

    /// Formats `blocks` (each a stream and bytes read at once) with a line limit of `limit`,
    /// into a log with `log_limit`; returns the log.
    fn format(blocks: &[(Stream, &[u8])], limit: usize, log_limit: Option<u64>, secrets: &[String]) -> String {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("agent.log");
        let file = open_log(&path).expect("the log opens");
        let out = BufWriter::with_capacity(7, CappedLog::new(file, log_limit, directory.path()));
        let mut formatter = Formatter::new(out, secrets);
        let mut splitters = [LineSplitter::new(limit), LineSplitter::new(limit)];
        for &(stream, bytes) in blocks {
            let mut batch = Batch::new(stream);
            splitters[stream as usize].feed(bytes, &mut batch);
            formatter.batch(&batch).expect("the log is written");
        }
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut batch = Batch::new(stream);
            splitters[stream as usize].finish(&mut batch);
            formatter.batch(&batch).expect("the log is written");
        }
        formatter.finish().expect("the log is completed");
        std::fs::read_to_string(&path).expect("the log is UTF-8")
    }

    #[test]
    fn stderr_lines_are_marked_and_a_cut_line_is_whole_in_the_log() {
        let log = format(
            &[
                (Stream::Stdout, b"out\nabcdefghij"),
                (Stream::Stderr, b"err\n"),
                (Stream::Stdout, b"klm\n"),
            ],
            4,
            None,
            &[],
        );
        // The cut line is broken where the other stream spoke, and goes on after it.
        assert_eq!(log, "out\nabcdefghij\n[stderr] err\nklm\n");
    }

    #[test]
    fn lines_read_in_blocks_of_any_size_are_logged_as_they_were_printed() {
        let secret = "sk-supersecret-123".to_owned();
        // Plain lines (copied a read at once), then with CRLF endings and secrets among them
        // (line by line).
        for odd_lines in [false, true] {
            let mut output = String::new();
            let mut expected = String::new();
            for number in 0..400 {
                let line = match number % 7 {
                    0 if odd_lines => format!("line {number} holds {secret} here"),
                    1 if odd_lines => format!("line {number} ends with CRLF"),
                    2 => String::new(),
                    3 => format!("line {number}: é and ✓"),
                    _ => format!("line {number}"),
                };
                let ending = if odd_lines && number % 7 == 1 { "\r\n" } else { "\n" };
                output.push_str(&line);
                output.push_str(ending);
                expected.push_str(&line.replace(&secret, "***"));
                expected.push('\n');
            }
            for size in [1, 2, 3, 7, 64, 100, 1000, 4096, output.len()] {
                let blocks: Vec<(Stream, &[u8])> = output
                    .as_bytes()
                    .chunks(size)
                    .map(|block| (Stream::Stdout, block))
                    .collect();
                let log = format(&blocks, 1 << 20, None, std::slice::from_ref(&secret));
                assert_eq!(log, expected, "blocks of {size}, odd lines {odd_lines}");
            }
        }
    }

    #[test]
    fn a_secret_split_across_blocks_never_reaches_the_log() {
        let secret = "sk-supersecret-123".to_owned();
        let line = format!("{secret}..{secret}{secret}.{secret}").repeat(40);
        let bytes = line.as_bytes();
        // Blocks of every size from 1 to 23 bytes, the other stream speaking in between.
        for size in 1..24 {
            let mut blocks: Vec<(Stream, &[u8])> = Vec::new();
            for (index, block) in bytes.chunks(size).enumerate() {
                blocks.push((Stream::Stdout, block));
                if index % 5 == 4 {
                    blocks.push((Stream::Stderr, b"between\n"));
                }
            }
            blocks.push((Stream::Stdout, b"\n"));
            let log = format(&blocks, 10, None, std::slice::from_ref(&secret));
            assert!(!log.contains("supersecret"), "blocks of {size}: {log}");
            assert_eq!(log.matches("***").count(), 160, "blocks of {size}: {log}");
        }
    }

    #[test]
    fn past_its_limit_the_log_keeps_its_head_and_tail_and_says_what_it_dropped() {
        let output: String = (0..100_000).map(|number| format!("line {number:06}\n")).collect();
        // Read in blocks of an odd size.
        let blocks: Vec<(Stream, &[u8])> = output
            .as_bytes()
            .chunks(4099)
            .map(|block| (Stream::Stdout, block))
            .collect();
        let log = format(&blocks, 1 << 20, Some(200_000), &[]);

        assert!(log.len() <= 200_000 + 200, "{}", log.len());
        let marker_start = log.find("[flow: ").expect("a marker line");
        let marker_end = marker_start + log[marker_start..].find('\n').expect("the marker ends its line") + 1;
        // The head is the start of the output, the tail its end, from the start of a line.
        // The head ends its last line before the marker: with the line's own end when the cut
        // fell at one (whole lines written at once), else with one the marker adds.
        let before_marker = &log[..marker_start];
        assert!(before_marker.ends_with('\n'), "the marker starts a line");
        let head = if output.starts_with(before_marker) {
            before_marker
        } else {
            &before_marker[..before_marker.len() - 1]
        };
        let tail = &log[marker_end..];
        assert!(output.starts_with(head), "{}", &head[head.len() - 40..]);
        assert!(output.ends_with(tail));
        assert!(output[..output.len() - tail.len()].ends_with('\n'));
        assert!(
            head.len() > 90_000 && tail.len() > 90_000,
            "{} {}",
            head.len(),
            tail.len()
        );
        let dropped = &output[head.len()..output.len() - tail.len()];
        assert_eq!(
            &log[marker_start..marker_end],
            format!(
                "[flow: {} ({} lines) dropped here; the log keeps its first and last 97.7 KiB]\n",
                size(dropped.len() as u64),
                thousands(dropped.matches('\n').count() as u64)
            )
        );
    }

    #[test]
    fn within_its_limit_the_log_is_whole() {
        // More than the head, less than the limit: the tail follows the head seamlessly.
        let output = "x".repeat(150_000) + "\nend\n";
        let blocks: Vec<(Stream, &[u8])> = output
            .as_bytes()
            .chunks(1000)
            .map(|block| (Stream::Stdout, block))
            .collect();
        assert_eq!(format(&blocks, 1 << 20, Some(200_000), &[]), output);
    }

    #[test]
    fn one_long_line_past_the_limit_is_cut_at_characters() {
        let output = "é".repeat(300_000) + "\n";
        let blocks: Vec<(Stream, &[u8])> = output
            .as_bytes()
            .chunks(4097)
            .map(|block| (Stream::Stdout, block))
            .collect();
        // `format` reads the log as UTF-8: it fails if a cut split a character.
        let log = format(&blocks, 1 << 20, Some(100_000), &[]);
        assert!(log.len() <= 100_200, "{}", log.len());
        assert!(log.contains("\n[flow: "), "the head ends its line before the marker");
        assert!(log.ends_with("éé\n"), "{:?}", &log[log.len() - 300..]);
        assert!(log.len() >= 100_000, "the tail is kept: {}", log.len());
    }

    #[test]
    fn a_cut_goes_past_a_secret_that_straddles_it() {
        let secrets = ["secret-value".to_owned()];
        assert_eq!(secret_safe_cut("abc secret-value def", 6, &secrets), 16);
        assert_eq!(secret_safe_cut("abc secret-value def", 4, &secrets), 4);
        assert_eq!(secret_safe_cut("abc secret-value def", 16, &secrets), 16);
        assert_eq!(secret_safe_cut("abc secret-value def", 99, &secrets), 20);
        // At a character boundary.
        assert_eq!(secret_safe_cut("aé", 2, &[]), 1);
    }

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(32 << 20), "32 MiB");
        assert_eq!(size(236_126_345), "225.2 MiB");
        assert_eq!(thousands(3_120_004), "3,120,004");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}

#[cfg(test)]
mod handing_over {
    use super::super::lines::LineSplitter;
    use super::*;

    #[tokio::test]
    async fn batches_of_short_lines_are_handed_over_by_their_weight_not_only_their_text() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("agent.log");
        let mut writer = LogWriter::start(path.clone(), None, vec![]);
        let mut splitter = LineSplitter::new(1 << 20);
        // Lines of one `\r` each: a `\r` before another keeps them off the fast path, a piece
        // each of one byte of text.
        let short_lines = b"\r\r\n".repeat(1000);
        let mut most_waiting = 0;
        for _ in 0..1000 {
            let mut batch = Batch::new(Stream::Stdout);
            splitter.feed(&short_lines, &mut batch);
            assert!(writer.write(batch).await, "the writer takes it");
            most_waiting = most_waiting.max(writer.pending.len());
        }
        // Each batch is a thousand pieces of a byte of text: a few make a buffer's worth.
        assert!(most_waiting <= 4, "{most_waiting} batches waited at once");
        writer.finish().await.expect("the log is complete");
        let log = std::fs::read(&path).expect("the log");
        assert_eq!(log, b"\r\n".repeat(1000 * 1000), "every line, its `\\r` and a `\\n`");
    }
}
