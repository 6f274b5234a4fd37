//! Taking the objects an agent's git wrote into a folder of its own into the shared store.
//!
//! A confined agent's git writes new objects to its own folder and reads the shared store as
//! an alternate (see `crate::sandbox`'s git module), so it cannot delete or rewrite anyone
//! else's objects. Once its processes are gone, flow copies every loose object of that folder
//! into the shared store: only regular files named like objects, in folders named like
//! fan-outs, nothing followed through a link, each object read back (libgit2 checks that its
//! content hashes to its name) and written anew, so what lands in the store is exactly what
//! its name says. What the agent packed itself (`git repack` in its own folder; `git gc`
//! needs the shared folder, which it cannot write) is taken too: the pack and its index are
//! copied, and each object in it read back whole from the copy, hashed again and written
//! loose into the store.
//!
//! While the agent runs, its folder is listed in the shared `objects/info/alternates`
//! ([`Git::lend_objects`]; flow writes that file, the agent cannot), so the repository stays
//! whole for everyone: the agent's branch names objects of its folder, and `git log`, `git
//! gc` or `git fsck` in the user's checkout read them there, after a crash of flow as well.
//! The adoption takes the line out again.
//!
//! Every git and libgit2 that opens the repository reads that file, other flow processes and
//! this one's other threads among them, and libgit2 reads it racily: it takes the file's size,
//! then opens it and reads that many bytes, and fails when the file is gone or shorter ("could
//! not find `.../alternates` to stat", which failed a workstream's check while another's
//! agent ended). So flow only ever replaces the file (by a rename) with one as long or longer
//! that begins the same: a lent folder's line is appended, and a line taken out is overwritten
//! by a comment of its own length (`#flow-----`), which git and libgit2 skip. `flow clean`
//! drops those comments ([`Git::compact_alternates`]).
//!
//! Cost: a copy, an inflate and a deflate per new object. An agent's commit of 200 files adds
//! about 200 blobs and a few trees.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use super::error::{GitContext, io_error};
use super::{Git, GitError};

/// What [`Git::adopt_objects`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// Objects written into the shared store.
    pub taken: usize,
    /// Objects the store held already, loose.
    pub known: usize,
    /// Files left out, and why (not an object, content that does not match its name).
    pub refused: Vec<String>,
}

/// Serializes this process's rewrites of `objects/info/alternates`.
static ALTERNATES: Mutex<()> = Mutex::new(());

/// Tells whether a line of `objects/info/alternates` is one [`Git::lend_objects`] wrote: an
/// agent's object folder under the run folders of `.flow/` in `root`.
pub fn is_lent_line(root: &Path, line: &str) -> bool {
    let runs = root.join(".flow").join("runs");
    line.starts_with(&*runs.to_string_lossy()) && line.ends_with(crate::confine::OWN_OBJECTS)
}

/// Copies the packs in `own`'s `pack` folder (what `git gc` or `git repack` in the agent made)
/// to `into`: each `pack-<hex>.pack` that is a regular file, with its `.idx`, nothing followed
/// through a link. Returns how many it copied; what it could not copy goes to `refused`.
fn copy_packs(own: &Path, into: &Path, refused: &mut Vec<String>) -> usize {
    let mut copied = 0;
    for entry in fs::read_dir(own.join("pack")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".pack") else {
            continue;
        };
        let is_file = |path: &Path| fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file());
        let index = own.join("pack").join(format!("{stem}.idx"));
        let named = stem
            .strip_prefix("pack-")
            .is_some_and(|hex| is_hex(hex, 40) || is_hex(hex, 64));
        if !named || !is_file(&entry.path()) || !is_file(&index) {
            refused.push(format!("pack/{name}: not a pack with its index"));
            continue;
        }
        let result = fs::create_dir_all(into)
            .and_then(|()| fs::copy(&index, into.join(format!("{stem}.idx"))))
            .and_then(|_| fs::copy(entry.path(), into.join(&name)));
        match result {
            Ok(_) => copied += 1,
            Err(e) => refused.push(format!("pack/{name}: {e}")),
        }
    }
    copied
}

/// Writes a loose object's file, `bytes` as they are, to `target` as git writes objects: a
/// temporary file in the fan-out folder, named as git names them (`git fsck` and `git prune`
/// know what one left by a crash is), linked to its name (a loose object is never
/// overwritten), read-only.
fn write_loose(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = target.parent().unwrap_or(target);
    fs::create_dir_all(folder)?;
    let mut temp = tempfile::Builder::new().prefix("tmp_obj_").tempfile_in(folder)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.as_file().sync_all()?;
    drop(temp.persist_noclobber(target).map_err(|e| e.error)?);
    let _ = fs::set_permissions(target, std::os::unix::fs::PermissionsExt::from_mode(0o444));
    Ok(())
}

/// The file of a loose object of `kind` holding `data`: its header and data, deflated.
fn deflated(kind: git2::ObjectType, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, format!("{} {}\0", kind.str(), data.len()).as_bytes())?;
    std::io::Write::write_all(&mut encoder, data)?;
    encoder.finish()
}

/// Each line of an `objects/info/alternates` text: the line with its ending, and without.
fn alternates_lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n')
        .map(|piece| (piece, piece.trim_end_matches(['\n', '\r'])))
}

/// Writes `text` as `objects/info/alternates` at `path` (atomically).
fn write_alternates(path: &Path, text: &str) -> Result<(), GitError> {
    crate::atomic::write_atomic(path, text.as_bytes()).map_err(|e| io_error("write", path, e))
}

/// Reads `objects/info/alternates` at `path`; empty when there is none.
fn read_alternates(path: &Path) -> Result<String, GitError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// Tells whether a line of `objects/info/alternates` is what flow left of a line it took out:
/// `#flow` and dashes, as long as the line was.
pub fn is_taken_out_line(line: &str) -> bool {
    line.strip_prefix(TAKEN_OUT)
        .is_some_and(|rest| rest.bytes().all(|b| b == b'-'))
}

/// How a line taken out of `objects/info/alternates` begins.
const TAKEN_OUT: &str = "#flow";

/// A comment of `len` bytes that stands in for a line taken out.
fn taken_out(len: usize) -> String {
    if len < TAKEN_OUT.len() {
        return "#".repeat(len);
    }
    format!("{TAKEN_OUT}{}", "-".repeat(len - TAKEN_OUT.len()))
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Git {
    /// Lists `own`, an agent's object folder, in the shared `objects/info/alternates`, so that
    /// every git reading the repository finds the objects the agent writes there.
    pub fn lend_objects(&self, own: &Path) -> Result<(), GitError> {
        let _held = ALTERNATES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.alternates_path();
        let mut text = read_alternates(&path)?;
        let own = own.to_string_lossy();
        if text.lines().any(|line| line == own) {
            return Ok(());
        }
        // In place of a comment of its length (the file keeps its length), or else appended
        // (what the file held stays its beginning): see the module doc.
        let mut start = 0;
        let slot = alternates_lines(&text).find_map(|(piece, line)| {
            let at = start;
            start += piece.len();
            (line.len() == own.len() && is_taken_out_line(line)).then(|| at..at + line.len())
        });
        if let Some(slot) = slot {
            text.replace_range(slot, &own);
            return write_alternates(&path, &text);
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&own);
        text.push('\n');
        write_alternates(&path, &text)
    }

    /// Takes the lines of `objects/info/alternates` that `out` picks out of it, each overwritten
    /// by a comment of its length (see the module doc); returns how many it took out.
    fn take_out_alternates(&self, out: impl Fn(&str) -> bool) -> Result<usize, GitError> {
        let _held = ALTERNATES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.alternates_path();
        let text = read_alternates(&path)?;
        let mut taken = 0;
        let mut kept = String::with_capacity(text.len());
        for (piece, line) in alternates_lines(&text) {
            if out(line) {
                kept.push_str(&taken_out(line.len()));
                kept.push_str(&piece[line.len()..]);
                taken += 1;
            } else {
                kept.push_str(piece);
            }
        }
        if taken > 0 {
            write_alternates(&path, &kept)?;
        }
        Ok(taken)
    }

    /// Drops from `objects/info/alternates` the comments left of the lines flow took out, and
    /// the file itself when nothing else is left: for `flow clean`, when no run is at work (a
    /// shorter file can fail a libgit2 that reads it at that moment; see the module doc).
    pub fn compact_alternates(&self) -> Result<(), GitError> {
        let _held = ALTERNATES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.alternates_path();
        let text = read_alternates(&path)?;
        let kept: String = alternates_lines(&text)
            .filter(|(_, line)| !is_taken_out_line(line))
            .map(|(piece, _)| piece)
            .collect();
        if kept.len() == text.len() {
            return Ok(());
        }
        if kept.trim().is_empty() {
            return fs::remove_file(&path).map_err(|e| io_error("remove", &path, e));
        }
        write_alternates(&path, &kept)
    }

    /// The shared `objects/info/alternates`.
    pub(crate) fn alternates_path(&self) -> std::path::PathBuf {
        self.common_dir().join("objects").join("info").join("alternates")
    }

    /// Takes out of `objects/info/alternates` the agent object folders that flow listed
    /// there ([`Git::lend_objects`]) and that no longer exist: a run killed while an agent ran
    /// leaves its line (so its objects stay readable until `flow resume` takes them), and
    /// once its folder is gone (`.flow/` deleted by hand) every git command would complain
    /// about it. Lines anyone else wrote, and folders that still exist, are left alone. A
    /// folder exists before its line is written and after it is taken out, so a line whose
    /// folder is missing belongs to no live agent. Returns how many lines it took out.
    pub fn forget_lost_lent_objects(&self, root: &Path) -> Result<usize, GitError> {
        if !self.alternates_path().exists() {
            return Ok(0);
        }
        self.take_out_alternates(|line| is_lent_line(root, line) && !Path::new(line).exists())
    }

    /// Copies the loose objects of `own`, an agent's object folder, into the shared store,
    /// then takes it out of `objects/info/alternates` and deletes it (in that order, so that
    /// a crash at any point leaves every object readable). Its agent must be gone. Nothing is
    /// copied when `own` is not a real folder.
    ///
    /// Fails only when the shared store cannot be opened or written.
    pub fn adopt_objects(&self, own: &Path) -> Result<Adopted, GitError> {
        let mut adopted = Adopted::default();
        let own_line = own.to_string_lossy().into_owned();
        if !fs::symlink_metadata(own).is_ok_and(|meta| meta.is_dir()) {
            self.take_out_alternates(|line| line == own_line)?;
            return Ok(adopted);
        }
        // A copy in a folder flow made: no `info/alternates` of the agent's is ever read.
        let staging = tempfile::tempdir().map_err(|e| io_error("make a temporary folder for", own, e))?;
        let mut ids = Vec::new();
        for fan_out in fs::read_dir(own).into_iter().flatten().flatten() {
            let fan_name = fan_out.file_name().to_string_lossy().into_owned();
            if !is_hex(&fan_name, 2) || !fan_out.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            for object in fs::read_dir(fan_out.path()).into_iter().flatten().flatten() {
                let name = object.file_name().to_string_lossy().into_owned();
                if name.starts_with("tmp_obj_") {
                    continue;
                }
                if !is_hex(&name, 38) || !object.file_type().is_ok_and(|kind| kind.is_file()) {
                    adopted.refused.push(format!("{fan_name}/{name}: not an object file"));
                    continue;
                }
                let folder = staging.path().join(&fan_name);
                let copied = fs::create_dir_all(&folder).and_then(|()| fs::copy(object.path(), folder.join(&name)));
                match (copied, git2::Oid::from_str(&format!("{fan_name}{name}"))) {
                    (Ok(_), Ok(id)) => ids.push(id),
                    (Err(e), _) => adopted.refused.push(format!("{fan_name}/{name}: {e}")),
                    (_, Err(e)) => adopted.refused.push(format!("{fan_name}/{name}: {e}")),
                }
            }
        }
        let packs = copy_packs(own, &staging.path().join("pack"), &mut adopted.refused);
        if !ids.is_empty() || packs > 0 {
            let theirs = git2::Odb::new().context(|| "make an object database".to_owned())?;
            theirs
                .add_disk_alternate(&staging.path().to_string_lossy())
                .context(|| "read the agent's objects".to_owned())?;
            let loose: std::collections::HashSet<git2::Oid> = ids.iter().copied().collect();
            // Every object the copied packs hold that is not loose too.
            let mut packed = Vec::new();
            if packs > 0 {
                let listed = theirs.foreach(|id| {
                    if !loose.contains(id) {
                        packed.push(*id);
                    }
                    true
                });
                if let Err(e) = listed {
                    adopted
                        .refused
                        .push(format!("the agent's packs cannot be read: {}", e.message()));
                }
            }
            let objects = self.common_dir().join("objects");
            let loose_then_packed = ids
                .into_iter()
                .map(|id| (id, true))
                .chain(packed.into_iter().map(|id| (id, false)));
            for (id, is_loose) in loose_then_packed {
                let text = id.to_string();
                let (fan_name, name) = text.split_at(2);
                let target = objects.join(fan_name).join(name);
                if target.exists() {
                    adopted.known += 1;
                    continue;
                }
                // Read back, and hashed again: what lands in the store is what its name says.
                let object = match theirs.read(id) {
                    Ok(object) => object,
                    Err(e) => {
                        adopted.refused.push(format!("{id}: {}", e.message()));
                        continue;
                    }
                };
                match git2::Oid::hash_object(object.kind(), object.data()) {
                    Ok(hashed) if hashed == id => {}
                    Ok(_) => {
                        adopted.refused.push(format!("{id}: its content is another object"));
                        continue;
                    }
                    Err(e) => {
                        adopted.refused.push(format!("{id}: {}", e.message()));
                        continue;
                    }
                }
                // A loose object's file as it was read; a packed one deflated here (the
                // store's own writer would take it for written while the agent's folder,
                // still listed, holds it).
                let bytes = if is_loose {
                    drop(object);
                    fs::read(staging.path().join(fan_name).join(name))
                } else {
                    deflated(object.kind(), object.data())
                };
                match bytes.and_then(|bytes| write_loose(&target, &bytes)) {
                    Ok(()) => adopted.taken += 1,
                    Err(_) if target.exists() => adopted.known += 1,
                    Err(e) => return Err(io_error("write", &target, e)),
                }
            }
        }
        // In the store now: the folder is no longer needed to read them.
        self.take_out_alternates(|line| line == own_line)?;
        let _ = fs::remove_dir_all(own);
        Ok(adopted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_agent_folders_that_are_gone_are_forgotten_and_nothing_else() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().canonicalize().expect("a real path");
        let repo = git2::Repository::init(&root).expect("a repository");
        drop(repo);
        let git = Git::discover(&root).expect("the repository");
        let runs = root.join(".flow").join("runs");
        let live = runs.join("r1").join("tmp").join("a").join(crate::confine::OWN_OBJECTS);
        let gone = runs.join("r2").join("tmp").join("b").join(crate::confine::OWN_OBJECTS);
        let foreign = root.join("elsewhere").join(crate::confine::OWN_OBJECTS);
        fs::create_dir_all(&live).expect("a live folder");
        git.lend_objects(&live).expect("lent");
        git.lend_objects(&gone).expect("lent");
        git.lend_objects(&foreign).expect("lent");
        let alternates = git.common_dir().join("objects").join("info").join("alternates");

        let lent = fs::read_to_string(&alternates).expect("the lines");
        assert_eq!(git.forget_lost_lent_objects(&root).expect("tidied"), 1);
        let text = fs::read_to_string(&alternates).expect("the file stays");
        let lines: Vec<&str> = text.lines().collect();
        // Overwritten by a comment of its length: the file is as long as it was.
        assert_eq!(text.len(), lent.len());
        assert_eq!(lines[0], live.to_str().unwrap());
        assert!(is_taken_out_line(lines[1]), "{}", lines[1]);
        assert_eq!(lines[1].len(), gone.to_str().unwrap().len());
        assert_eq!(lines[2], foreign.to_str().unwrap());

        // Nothing more to do: the file is not rewritten.
        assert_eq!(git.forget_lost_lent_objects(&root).expect("tidied"), 0);
        // A folder lent again takes the place of a comment of its length, and another is
        // appended: what was there stays the file's beginning.
        git.lend_objects(&gone).expect("lent");
        assert_eq!(fs::read_to_string(&alternates).expect("the lines"), lent);
        assert_eq!(git.forget_lost_lent_objects(&root).expect("tidied"), 1);
        let longer = gone.with_file_name(format!("{}-longer", crate::confine::OWN_OBJECTS));
        git.lend_objects(&longer).expect("lent");
        let again = fs::read_to_string(&alternates).expect("the lines");
        assert!(again.starts_with(&text), "{again}");
        assert_eq!(again.lines().count(), 4);

        // `flow clean` drops the comments, and the file once nothing else is left.
        git.compact_alternates().expect("compacted");
        let compact = fs::read_to_string(&alternates).expect("the lines");
        let lines: Vec<&str> = compact.lines().collect();
        assert_eq!(
            lines,
            [
                live.to_str().unwrap(),
                foreign.to_str().unwrap(),
                longer.to_str().unwrap()
            ]
        );
        git.adopt_objects(&longer).expect("adopted");
        git.adopt_objects(&live).expect("adopted");
        fs::write(&alternates, format!("{}\n", taken_out(12))).expect("only a comment");
        git.compact_alternates().expect("compacted");
        assert!(!alternates.exists());
    }

    #[test]
    fn the_repository_opens_while_folders_are_lent_and_taken_out() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().canonicalize().expect("a real path");
        let repo = git2::Repository::init(&root).expect("a repository");
        let signature = git2::Signature::now("t", "t@example.com").expect("a signature");
        let tree = repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .and_then(|id| repo.find_tree(id))
            .expect("a tree");
        let commit = repo
            .commit(None, &signature, &signature, "empty", &tree, &[])
            .expect("a commit");
        let git = Git::discover(&root).expect("the repository");
        let done = std::sync::atomic::AtomicBool::new(false);
        let mut opened = 0;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for attempt in 0..200 {
                    let own = root
                        .join(".flow/runs/r/tmp")
                        .join(attempt.to_string())
                        .join(crate::confine::OWN_OBJECTS);
                    fs::create_dir_all(&own).expect("a folder");
                    git.lend_objects(&own).expect("lent");
                    git.adopt_objects(&own).expect("taken");
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            // Each open reads `objects/info/alternates` while the other thread rewrites it.
            while !done.load(std::sync::atomic::Ordering::SeqCst) || opened == 0 {
                let repo = git2::Repository::open(&root).expect("the repository opens");
                repo.find_commit(commit).expect("its object database loads");
                opened += 1;
            }
        });
        assert!(opened > 0);
    }

    #[test]
    fn what_an_agent_packed_in_its_own_folder_is_taken_into_the_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().canonicalize().expect("a real path");
        let git_cli = |args: &[&str], env: &[(&str, &std::path::PathBuf)]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(&root)
                .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .expect("git runs");
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        git_cli(&["init", "-q", "-b", "main"], &[]);
        fs::write(root.join("a.txt"), "the user's\n").expect("a file");
        git_cli(&["add", "a.txt"], &[]);
        git_cli(&["commit", "-qm", "base"], &[]);
        let git = Git::discover(&root).expect("the repository");
        let shared = git.common_dir().join("objects");
        let own = root.join(".flow/runs/r/tmp/w").join(crate::confine::OWN_OBJECTS);
        fs::create_dir_all(&own).expect("the agent's folder");
        git.lend_objects(&own).expect("lent");
        // The agent commits into its own folder, then packs what it wrote there.
        let agent = [
            ("GIT_OBJECT_DIRECTORY", &own),
            ("GIT_ALTERNATE_OBJECT_DIRECTORIES", &shared),
        ];
        fs::write(root.join("b.txt"), "the agent's\n").expect("a file");
        git_cli(&["add", "b.txt"], &agent);
        git_cli(&["commit", "-qm", "work"], &agent);
        let head = git_cli(&["rev-parse", "HEAD"], &agent);
        git_cli(&["repack", "-a", "-d", "-l", "-q"], &agent);
        git_cli(&["prune-packed"], &agent);
        let loose_left = fs::read_dir(&own)
            .expect("the folder")
            .flatten()
            .filter(|e| e.file_name().len() == 2)
            .count();
        assert_eq!(loose_left, 0, "everything the agent wrote is packed");

        let adopted = git.adopt_objects(&own).expect("adopted");
        assert!(adopted.refused.is_empty(), "{:?}", adopted.refused);
        assert!(adopted.taken >= 3, "a commit, a tree and a blob: {adopted:?}");
        assert!(!own.exists(), "the folder is gone");
        // The store alone holds the agent's commit, whole.
        assert_eq!(git_cli(&["show", &format!("{head}:b.txt")], &[]), "the agent's");
        git_cli(&["fsck", "--strict", "--no-dangling"], &[]);
    }
}
