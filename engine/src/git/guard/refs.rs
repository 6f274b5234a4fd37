//! Refs as the guard sees them: every ref of the repository with its target, the stash list,
//! and whether `packed-refs` is a file git reads the way libgit2 does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;

use git2::{ErrorClass, ErrorCode, Repository};

use super::{RefTarget, StashEntry, places};
use crate::git::error::GitContext;
use crate::git::repo::{branch_ref, flow_signature};
use crate::git::{GitError, Oid};

/// The ref whose reflog is the stash list.
pub(crate) const STASH: &str = "refs/stash";

/// What the reflog message of an undo says.
const UNDO_MESSAGE: &str = "flow: undo a change made to the git directory while an agent ran";

/// The refs a comparison leaves out: the workstream's own branch and what flow moves.
pub(crate) struct RefFilter {
    names: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl RefFilter {
    /// Builds the filter from the guarded branch and flow's refs (full names, short branch
    /// names, or prefixes ending in `/`); the stash is always left to [`stash_entries`].
    pub(crate) fn new(branch: &str, flow_refs: &[String]) -> Result<RefFilter, GitError> {
        let mut names = BTreeSet::from([branch_ref(branch)?, STASH.to_owned()]);
        let mut prefixes = Vec::new();
        for entry in flow_refs {
            let full = if entry.starts_with("refs/") {
                entry.clone()
            } else {
                format!("refs/heads/{entry}")
            };
            if full.ends_with('/') {
                prefixes.push(full);
            } else {
                names.insert(full);
            }
        }
        Ok(RefFilter { names, prefixes })
    }

    /// Tells whether a ref is left out.
    pub(crate) fn skips(&self, name: &str) -> bool {
        self.names.contains(name) || self.prefixes.iter().any(|prefix| name.starts_with(prefix.as_str()))
    }
}

/// Reads every ref of the repository the filter does not skip, loose and packed, and HEAD
/// of the main checkout.
pub(crate) fn scan(repo: &Repository, filter: &RefFilter) -> Result<BTreeMap<String, RefTarget>, GitError> {
    let mut refs = BTreeMap::new();
    if let Some(head) = read(repo, "HEAD")? {
        refs.insert("HEAD".to_owned(), head);
    }
    let all = repo.references().context(|| "list the refs".to_owned())?;
    for reference in all {
        // A ref deleted while the list is read, or one libgit2 cannot parse, is left out: it
        // then reads as removed, and the comparison reads it once more on its own.
        let Ok(reference) = reference else { continue };
        let name = String::from_utf8_lossy(reference.name_bytes()).into_owned();
        if filter.skips(&name) {
            continue;
        }
        if let Some(target) = target_of(&reference) {
            refs.insert(name, target);
        }
    }
    Ok(refs)
}

/// Reads one ref, `None` when it does not exist or its file is not a ref any more (git
/// then ignores it too, as broken).
pub(crate) fn read(repo: &Repository, name: &str) -> Result<Option<RefTarget>, GitError> {
    match repo.find_reference(name) {
        Ok(reference) => Ok(target_of(&reference)),
        Err(error)
            if matches!(error.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec)
                || error.class() == ErrorClass::Reference =>
        {
            Ok(None)
        }
        Err(error) => Err(GitError::Git {
            action: format!("read `{name}`"),
            error,
        }),
    }
}

fn target_of(reference: &git2::Reference<'_>) -> Option<RefTarget> {
    if let Some(target) = reference.symbolic_target_bytes() {
        return Some(RefTarget::Symbolic(String::from_utf8_lossy(target).into_owned()));
    }
    reference.target().map(|oid| RefTarget::Object(oid.into()))
}

/// Reads the stash list, newest first.
pub(crate) fn stash_entries(repo: &Repository) -> Result<Vec<StashEntry>, GitError> {
    if read(repo, STASH)?.is_none() {
        return Ok(Vec::new());
    }
    let reflog = repo.reflog(STASH).context(|| "read the stash list".to_owned())?;
    Ok(reflog
        .iter()
        .map(|entry| {
            let committer = entry.committer();
            StashEntry {
                id: entry.id_new().into(),
                name: String::from_utf8_lossy(committer.name_bytes()).into_owned(),
                email: String::from_utf8_lossy(committer.email_bytes()).into_owned(),
                time: committer.when().seconds(),
                offset_minutes: committer.when().offset_minutes(),
                message: entry
                    .message_bytes()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
            }
        })
        .collect())
}

/// Says what in `packed-refs` git would read differently from libgit2, which the comparison
/// goes by: a ref listed twice, names out of order in a file whose header says they are
/// sorted (git then looks names up by bisection and misses some), or a line that is not a ref.
pub(crate) fn packed_refs_problem(common: &Path) -> Option<String> {
    let path = common.join("packed-refs");
    let bytes = fs::read(&path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.is_empty() && !text.ends_with('\n') {
        return Some("its last line does not end".to_owned());
    }
    let mut lines = text.lines().enumerate().peekable();
    let mut sorted = false;
    if let Some((_, header)) = lines.peek()
        && let Some(traits) = header.strip_prefix("# pack-refs with:")
    {
        sorted = traits.split_whitespace().any(|t| t == "sorted");
        lines.next();
    }
    let mut names: Vec<&str> = Vec::new();
    let mut after_ref = false;
    for (index, line) in lines {
        let number = index + 1;
        if let Some(peeled) = line.strip_prefix('^') {
            if !after_ref || !is_hex_id(peeled) {
                return Some(format!("line {number} is not a ref: {}", shorten(line)));
            }
            after_ref = false;
            continue;
        }
        let Some((id, name)) = line.split_once(' ') else {
            return Some(format!("line {number} is not a ref: {}", shorten(line)));
        };
        if !is_hex_id(id) || !name.starts_with("refs/") {
            return Some(format!("line {number} is not a ref: {}", shorten(line)));
        }
        if sorted && let Some(previous) = names.last().copied() {
            if name == previous {
                return Some(format!("it lists {name} twice"));
            }
            if name < previous {
                return Some(format!(
                    "its header says the refs are sorted, but {name} comes after {previous}"
                ));
            }
        }
        names.push(name);
        after_ref = true;
    }
    if !sorted {
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Some(format!("it lists {} twice", pair[0]));
        }
    }
    None
}

fn is_hex_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn shorten(line: &str) -> String {
    let mut short: String = line.chars().take(80).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    format!("`{short}`")
}

/// Rewrites `packed-refs` from libgit2's reading of the refs, which is what the comparison
/// checked.
pub(crate) fn rewrite_packed_refs(repo: &Repository) -> Result<(), GitError> {
    repo.refdb_compress().context(|| "rewrite packed-refs".to_owned())
}

/// Puts one ref back to `before` if it still is at `after` (under the ref's lock); says what
/// it did, `Ok(None)` when the ref already was back, `Err` with why it left it.
pub(crate) fn put_back(
    repo: &Repository,
    name: &str,
    before: Option<&RefTarget>,
    after: Option<&RefTarget>,
    stash: Option<&[StashEntry]>,
) -> Result<Option<()>, String> {
    let failed = |error: git2::Error| error.message().to_owned();
    let symbolic = match before {
        Some(RefTarget::Symbolic(target)) => target.as_str(),
        _ => "",
    };
    if name.contains('\0') || symbolic.contains('\0') {
        return Err("its name holds a NUL byte".to_owned());
    }
    if let Some(done) = rewrite_unreadable(repo, name, before, after)? {
        return Ok(Some(done));
    }
    let mut transaction = repo.transaction().map_err(failed)?;
    transaction.lock_ref(name).map_err(failed)?;
    let now = read(repo, name).map_err(|error| error.to_string())?;
    if now.as_ref() == before && stash.is_none() {
        return Ok(None);
    }
    if now.as_ref() != after {
        return Err(match now {
            Some(target) => format!("it changed again since (now {})", target.describe()),
            None => "it was deleted since".to_owned(),
        });
    }
    let signature = flow_signature().map_err(|error| error.to_string())?;
    match before {
        None => transaction.remove(name).map_err(failed)?,
        Some(RefTarget::Object(id)) => transaction
            .set_target(name, id.raw(), Some(&signature), UNDO_MESSAGE)
            .map_err(failed)?,
        Some(RefTarget::Symbolic(target)) => transaction
            .set_symbolic_target(name, target, Some(&signature), UNDO_MESSAGE)
            .map_err(failed)?,
    }
    if let Some(entries) = stash
        && before.is_some()
    {
        let mut reflog = repo.reflog(name).map_err(failed)?;
        while !reflog.is_empty() {
            reflog.remove(0, false).map_err(failed)?;
        }
        for entry in entries.iter().rev() {
            let time = git2::Time::new(entry.time, entry.offset_minutes);
            let committer = git2::Signature::new(&entry.name, &entry.email, &time).map_err(failed)?;
            reflog
                .append(entry.id.raw(), &committer, entry.message.as_deref())
                .map_err(failed)?;
        }
        transaction.set_reflog(name, reflog).map_err(failed)?;
    }
    transaction.commit().map_err(failed)?;
    Ok(Some(()))
}

/// Writes a loose ref file libgit2 cannot read (so neither lock nor update it) the way git
/// does, under `<ref>.lock`: `Ok(None)` when the ref file is not such a file.
fn rewrite_unreadable(
    repo: &Repository,
    name: &str,
    before: Option<&RefTarget>,
    after: Option<&RefTarget>,
) -> Result<Option<()>, String> {
    let file = repo.commondir().join(name);
    let unreadable = after.is_none()
        && git2::Reference::is_valid_name(name)
        && fs::symlink_metadata(&file).is_ok_and(|meta| meta.is_file())
        && read(repo, name).is_ok_and(|target| target.is_none());
    if !unreadable {
        return Ok(None);
    }
    places::check_folders_above(&file)?;
    let failed = |error: std::io::Error| format!("could not write it: {error}");
    let mut lock_name = file.clone().into_os_string();
    lock_name.push(".lock");
    let lock = std::path::PathBuf::from(lock_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    let mut locked = options
        .open(&lock)
        .map_err(|error| format!("could not lock it: {error}"))?;
    let written = match before {
        Some(RefTarget::Object(id)) => locked.write_all(format!("{id}\n").as_bytes()),
        Some(RefTarget::Symbolic(target)) => locked.write_all(format!("ref: {target}\n").as_bytes()),
        None => Ok(()),
    };
    let done = written.and_then(|()| match before {
        Some(_) => fs::rename(&lock, &file),
        None => fs::remove_file(&file),
    });
    // A rename took the lock file along; otherwise it is still ours to remove.
    if done.is_err() || before.is_none() {
        let _ = fs::remove_file(&lock);
    }
    done.map_err(failed)?;
    Ok(Some(()))
}

/// The ids of a stash list, for comparing lists.
pub(crate) fn stash_ids(entries: &[StashEntry]) -> Vec<Oid> {
    entries.iter().map(|entry| entry.id).collect()
}
