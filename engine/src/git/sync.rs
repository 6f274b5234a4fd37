//! Bringing the integration branch into a workstream's branch, and setting a conflicting
//! merge up for whoever resolves it: the merge is computed by libgit2; a conflicting one is
//! left in the worktree the way `git merge` leaves it (files with conflict markers, the
//! conflicts in the index, `MERGE_HEAD`), so an agent or a person can resolve it with the
//! usual tools and `git commit`, or leave the files for flow to commit. `sync "rebase"`
//! replays the branch instead when it applies cleanly.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{Repository, RepositoryState};

use super::commit::operation_name;
use super::error::{GitContext, io_error};
use super::repo::{Head, flow_signature, read_head};
use super::{Git, GitError, Oid};

/// What a merge into a worktree did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorktreeMerge {
    /// Merged cleanly and committed (or there was nothing to bring in): the new head.
    Clean(Oid),
    /// It conflicts on these paths: the worktree holds the merge in progress.
    Conflicted(Vec<String>),
}

/// How far the merge of one commit into another, set up in a detached worktree to land on a
/// branch, has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeProgress {
    /// In progress in the worktree: HEAD at the first commit, `MERGE_HEAD` the second.
    InProgress,
    /// Committed in the worktree (HEAD is this commit, whose parents are the two); the
    /// branch is still at the first.
    Committed(Oid),
    /// The branch is at this commit, whose parents are the two.
    Landed(Oid),
    /// None of these.
    Absent,
}

/// The lines git writes around a conflict.
const MARKERS: [&str; 3] = ["<<<<<<< ", "=======", ">>>>>>> "];

impl Git {
    /// Merges `onto` into the branch checked out in the flow worktree at `dir`: a clean merge
    /// is committed as `message` (parents: the branch's head, then `onto`) and checked out; a
    /// conflicting one is left in progress. The worktree must hold nothing uncommitted.
    pub fn merge_into_worktree(&self, dir: &Path, onto: Oid, message: &str) -> Result<WorktreeMerge, GitError> {
        let (repo, path) = self.open_flow_worktree(dir)?;
        let Head::Branch(_) = read_head(&repo, &path)? else {
            return Err(GitError::DetachedHead { path });
        };
        let head = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context(|| format!("read the head of `{}`", path.display()))?;
        let head_id: Oid = head.id().into();
        if head_id == onto || self.is_ancestor(onto, head_id)? {
            return Ok(WorktreeMerge::Clean(head_id));
        }
        let theirs = repo.find_commit(onto.raw()).context(|| format!("read commit {onto}"))?;
        merge_in(&repo, &path, &head, &theirs, message, true)
    }

    /// Replays the branch checked out in the flow worktree at `dir` onto `onto`, commit by
    /// commit, in memory: when every commit applies cleanly the branch moves to the replayed
    /// head (compare-and-swap on its old head) and it is checked out. When one conflicts, or
    /// the branch holds a merge commit, nothing is replayed and the integration branch is
    /// merged in instead ([`Git::merge_into_worktree`]): a rebase stopped halfway is not a
    /// state to hand an agent, a merge in progress is. The worktree must hold nothing
    /// uncommitted.
    pub fn rebase_worktree(&self, dir: &Path, onto: Oid, message: &str) -> Result<WorktreeMerge, GitError> {
        if let Some(head) = self.replay_onto(dir, onto)? {
            return Ok(WorktreeMerge::Clean(head));
        }
        self.merge_into_worktree(dir, onto, message)
    }

    /// The replay of [`Git::rebase_worktree`]: the new head, or `None` when it cannot be done
    /// cleanly (nothing is changed then).
    fn replay_onto(&self, dir: &Path, onto: Oid) -> Result<Option<Oid>, GitError> {
        let (repo, path) = self.open_flow_worktree(dir)?;
        let Head::Branch(full) = read_head(&repo, &path)? else {
            return Err(GitError::DetachedHead { path });
        };
        let head = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context(|| format!("read the head of `{}`", path.display()))?;
        let head_id: Oid = head.id().into();
        if head_id == onto || self.is_ancestor(onto, head_id)? {
            return Ok(Some(head_id));
        }
        let Some(base) = self.merge_base(head_id, onto)? else {
            return Ok(None);
        };
        // The branch's own commits, oldest first.
        let mut walk = repo.revwalk().context(|| "walk the branch".to_string())?;
        walk.push(head.id()).context(|| "walk the branch".to_string())?;
        walk.hide(base.raw()).context(|| "walk the branch".to_string())?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .context(|| "walk the branch".to_string())?;
        let mut commits = vec![];
        for id in walk {
            let id = id.context(|| "walk the branch".to_string())?;
            let commit = repo.find_commit(id).context(|| format!("read commit {id}"))?;
            if commit.parent_count() != 1 {
                return Ok(None);
            }
            commits.push(commit);
        }
        let signature = flow_signature()?;
        let mut tip = repo.find_commit(onto.raw()).context(|| format!("read commit {onto}"))?;
        for commit in &commits {
            let mut index = repo
                .cherrypick_commit(commit, &tip, 0, None)
                .context(|| format!("replay commit {}", commit.id()))?;
            if index.has_conflicts() {
                return Ok(None);
            }
            let tree_id = index
                .write_tree_to(&repo)
                .context(|| "write the replayed tree".to_string())?;
            let tree = repo.find_tree(tree_id).context(|| format!("read tree {tree_id}"))?;
            let message = commit.message_raw().unwrap_or_default();
            let id = repo
                .commit(None, &commit.author(), &signature, message, &tree, &[&tip])
                .context(|| format!("commit the replay of {}", commit.id()))?;
            tip = repo.find_commit(id).context(|| format!("read commit {id}"))?;
        }
        let new_head: Oid = tip.id().into();
        // `MERGE_HEAD` first, gone last, as a merge has it: a process killed between moving
        // the branch and checking it out leaves a merge in progress that the next gives up
        // ([`Git::abort_merge_in`] puts the files back at the head, old or new), never the old
        // tree's files under the new head, which a commit would take for the agent's work (it
        // would take the integration branch's changes back out).
        let git_dir = repo.path().to_path_buf();
        std::fs::write(git_dir.join("MERGE_HEAD"), format!("{onto}\n"))
            .map_err(|e| io_error("write MERGE_HEAD", &git_dir.join("MERGE_HEAD"), e))?;
        let moved = super::branch::compare_and_swap(
            &repo,
            &full,
            new_head,
            Some(head_id),
            "flow: rebase onto the integration branch",
        );
        if let Err(error) = moved {
            // Nothing changed: no merge to leave in progress.
            let _ = repo.cleanup_state();
            return Err(error);
        }
        let mut checkout = CheckoutBuilder::new();
        checkout.force();
        repo.checkout_head(Some(&mut checkout))
            .context(|| format!("check the rebased branch out in `{}`", path.display()))?;
        repo.cleanup_state()
            .context(|| format!("end the rebase in `{}`", path.display()))?;
        Ok(Some(new_head))
    }

    /// Sets the merge of `result` into `onto` up in the detached worktree at `dir` (the
    /// integration worktree): checked out at `onto`, then merged, a conflict left in progress.
    /// Returns the conflicting paths (none: it merges cleanly, and nothing was committed).
    pub fn prepare_merge_in(&self, dir: &Path, onto: Oid, result: Oid) -> Result<Vec<String>, GitError> {
        self.checkout_detached(dir, onto)?;
        let (repo, path) = self.open_worktree(dir)?;
        let ours = repo.find_commit(onto.raw()).context(|| format!("read commit {onto}"))?;
        let theirs = repo
            .find_commit(result.raw())
            .context(|| format!("read commit {result}"))?;
        match merge_in(&repo, &path, &ours, &theirs, "", false)? {
            WorktreeMerge::Conflicted(paths) => Ok(paths),
            WorktreeMerge::Clean(_) => Ok(vec![]),
        }
    }

    /// Finishes a merge in progress in the worktree at `dir`: stages every file and commits
    /// it with the parents HEAD and `MERGE_HEAD`, as `message`. For a detached worktree HEAD
    /// moves; no branch does.
    pub fn commit_merge_in(&self, dir: &Path, message: &str) -> Result<Oid, GitError> {
        let (repo, path) = self.open_worktree(dir)?;
        let merge_head = std::fs::read_to_string(repo.path().join("MERGE_HEAD"))
            .map_err(|e| io_error("read MERGE_HEAD", &repo.path().join("MERGE_HEAD"), e))?;
        let theirs_id: Oid = merge_head.trim().parse()?;
        let mut index = repo
            .index()
            .context(|| format!("read the index of `{}`", path.display()))?;
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .context(|| format!("stage the files of `{}`", path.display()))?;
        index
            .update_all(["*"], None)
            .context(|| format!("stage the deletions in `{}`", path.display()))?;
        index
            .write()
            .context(|| format!("write the index of `{}`", path.display()))?;
        let tree_id = index
            .write_tree()
            .context(|| format!("write the tree of `{}`", path.display()))?;
        let tree = repo.find_tree(tree_id).context(|| format!("read tree {tree_id}"))?;
        let ours = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context(|| format!("read the head of `{}`", path.display()))?;
        let theirs = repo
            .find_commit(theirs_id.raw())
            .context(|| format!("read commit {theirs_id}"))?;
        let signature = flow_signature()?;
        let commit = repo
            .commit(Some("HEAD"), &signature, &signature, message, &tree, &[&ours, &theirs])
            .context(|| format!("commit the merge in `{}`", path.display()))?;
        repo.cleanup_state()
            .context(|| format!("end the merge in `{}`", path.display()))?;
        Ok(commit.into())
    }

    /// Gives a merge in progress up: the worktree back at its head, `MERGE_HEAD` gone.
    ///
    /// The files go back first and `MERGE_HEAD` last: a process killed half-way leaves a
    /// merge in progress, given up again by the next, never the other side's files without one.
    pub fn abort_merge_in(&self, dir: &Path, keep_prefixes: &[&str]) -> Result<(), GitError> {
        let (repo, path) = self.open_worktree(dir)?;
        let head = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context(|| format!("read the head of `{}`", path.display()))?;
        super::reset::remove_untracked(&repo, &path, keep_prefixes)?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force();
        repo.checkout_head(Some(&mut checkout))
            .context(|| format!("put `{}` back at its head", path.display()))?;
        // The index too (whatever was staged), and then the merge's state files.
        repo.reset(head.as_object(), git2::ResetType::Mixed, None)
            .context(|| format!("reset the index of `{}`", path.display()))?;
        repo.cleanup_state()
            .context(|| format!("end the merge in `{}`", path.display()))
    }

    /// How far the merge of `theirs` into `ours`, set up in the detached worktree at `dir`
    /// (the integration worktree: [`Git::prepare_merge_in`]) to land on `branch`, has come.
    pub fn merge_progress(&self, dir: &Path, branch: &str, ours: Oid, theirs: Oid) -> Result<MergeProgress, GitError> {
        match self.branch_head(branch)? {
            Some(head) if head == ours => {}
            Some(head) if self.parents(head)? == [ours, theirs] => return Ok(MergeProgress::Landed(head)),
            _ => return Ok(MergeProgress::Absent),
        }
        let (repo, _) = self.open_worktree(dir)?;
        let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else {
            return Ok(MergeProgress::Absent);
        };
        let parents: Vec<Oid> = head.parent_ids().map(Oid::from).collect();
        if parents == [ours, theirs] {
            return Ok(MergeProgress::Committed(head.id().into()));
        }
        if Oid::from(head.id()) != ours || repo.state() != RepositoryState::Merge {
            return Ok(MergeProgress::Absent);
        }
        let file = repo.path().join("MERGE_HEAD");
        let merging = std::fs::read_to_string(&file).map_err(|e| io_error("read MERGE_HEAD", &file, e))?;
        Ok(if merging.trim().parse::<Oid>().ok() == Some(theirs) {
            MergeProgress::InProgress
        } else {
            MergeProgress::Absent
        })
    }

    /// Tells whether the worktree at `dir` is in the middle of a merge.
    pub fn merge_in_progress(&self, dir: &Path) -> Result<bool, GitError> {
        let (repo, _) = self.open_worktree(dir)?;
        Ok(repo.state() == RepositoryState::Merge)
    }

    /// Names the operation under way in the worktree at `dir` as git does ("merge",
    /// "rebase", "cherry-pick", ...), if there is one.
    pub fn operation_in_progress(&self, dir: &Path) -> Result<Option<&'static str>, GitError> {
        let (repo, _) = self.open_worktree(dir)?;
        Ok(match repo.state() {
            RepositoryState::Clean => None,
            state => Some(operation_name(state)),
        })
    }

    /// The commit a merge in progress in the worktree at `dir` brings in (`MERGE_HEAD`).
    pub fn merge_head(&self, dir: &Path) -> Result<Option<Oid>, GitError> {
        let (repo, _) = self.open_worktree(dir)?;
        if repo.state() != RepositoryState::Merge {
            return Ok(None);
        }
        let file = repo.path().join("MERGE_HEAD");
        let text = std::fs::read_to_string(&file).map_err(|e| io_error("read MERGE_HEAD", &file, e))?;
        Ok(Some(text.lines().next().unwrap_or_default().trim().parse()?))
    }
}

/// Merges `theirs` into `ours` in the worktree of `repo`: clean and `commit`, it is committed
/// and checked out (only when `commit`; else nothing changes); conflicting, it is left in
/// progress with markers in the files.
///
/// `MERGE_HEAD` is written before any file of the worktree changes and removed only once the
/// merge is committed, so a process killed half-way leaves a merge in progress that the next
/// one gives up ([`Git::abort_merge_in`]), never files of the other side that look like
/// uncommitted work of the worktree's own.
fn merge_in(
    repo: &Repository,
    path: &Path,
    ours: &git2::Commit<'_>,
    theirs: &git2::Commit<'_>,
    message: &str,
    commit: bool,
) -> Result<WorktreeMerge, GitError> {
    let mut index = repo
        .merge_commits(ours, theirs, None)
        .context(|| format!("merge {} into {}", theirs.id(), ours.id()))?;
    let conflicts = index.has_conflicts();
    if !conflicts && !commit {
        return Ok(WorktreeMerge::Clean(ours.id().into()));
    }
    // `git add` and `git commit` (which sees MERGE_HEAD) finish the merge, and so does
    // flow's own commit of what is left.
    let git_dir = repo.path();
    std::fs::write(git_dir.join("MERGE_HEAD"), format!("{}\n", theirs.id()))
        .map_err(|e| io_error("write MERGE_HEAD", &git_dir.join("MERGE_HEAD"), e))?;
    let text = if message.is_empty() {
        format!("Merge {}\n", theirs.id())
    } else {
        format!("{message}\n")
    };
    std::fs::write(git_dir.join("MERGE_MSG"), text)
        .map_err(|e| io_error("write MERGE_MSG", &git_dir.join("MERGE_MSG"), e))?;
    if !conflicts {
        let tree_id = index
            .write_tree_to(repo)
            .context(|| "write the merged tree".to_string())?;
        let tree = repo.find_tree(tree_id).context(|| format!("read tree {tree_id}"))?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force();
        repo.checkout_tree(tree.as_object(), Some(&mut checkout))
            .context(|| format!("check the merge out in `{}`", path.display()))?;
        let signature = flow_signature()?;
        let merged = repo
            .commit(Some("HEAD"), &signature, &signature, message, &tree, &[ours, theirs])
            .context(|| format!("commit the merge in `{}`", path.display()))?;
        repo.cleanup_state()
            .context(|| format!("end the merge in `{}`", path.display()))?;
        return Ok(WorktreeMerge::Clean(merged.into()));
    }
    let mut paths: Vec<String> = index
        .conflicts()
        .context(|| "read the conflicts".to_string())?
        .filter_map(Result::ok)
        .filter_map(|c| c.our.or(c.their).or(c.ancestor))
        .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    // The repository's index stays at `ours`.
    let mut checkout = CheckoutBuilder::new();
    checkout.force().allow_conflicts(true).conflict_style_merge(true);
    repo.checkout_index(Some(&mut index), Some(&mut checkout))
        .context(|| format!("write the conflicts into `{}`", path.display()))?;
    Ok(WorktreeMerge::Conflicted(paths))
}

/// The files among `paths` (relative to `dir`) that still hold conflict markers.
pub fn files_with_markers(dir: &Path, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| std::fs::read(dir.join(p)).is_ok_and(|bytes| has_markers(&bytes)))
        .cloned()
        .collect()
}

/// Tells whether a file's bytes hold a line git writes around a conflict.
fn has_markers(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .lines()
        .any(|l| l.starts_with(MARKERS[0]) || l.starts_with(MARKERS[2]) || l == MARKERS[1])
}

impl Git {
    /// The files among `paths` that hold conflict markers as committed in `commit` (a path
    /// the commit does not have holds none).
    pub fn files_with_markers_at(&self, commit: Oid, paths: &[String]) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let tree = repo
            .find_commit(commit.raw())
            .and_then(|c| c.tree())
            .context(|| format!("read the tree of {commit}"))?;
        let mut found = vec![];
        for path in paths {
            let Ok(entry) = tree.get_path(Path::new(path)) else {
                continue;
            };
            let Ok(blob) = repo.find_blob(entry.id()) else {
                continue;
            };
            if has_markers(blob.content()) {
                found.push(path.clone());
            }
        }
        Ok(found)
    }
}

/// The conflicting hunks of `paths` in `dir`, each with a few lines around it, as an agent
/// reads them; at most `limit` bytes in all.
pub fn conflict_hunks(dir: &Path, paths: &[String], limit: usize) -> String {
    let mut out = String::new();
    for path in paths {
        let Ok(bytes) = std::fs::read(dir.join(path)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let mut shown = vec![false; lines.len()];
        let mut inside = false;
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with(MARKERS[0]) {
                inside = true;
                shown[i.saturating_sub(3)..i].fill(true);
            }
            if inside {
                shown[i] = true;
            }
            if line.starts_with(MARKERS[2]) {
                inside = false;
                shown[i + 1..(i + 4).min(lines.len())].fill(true);
            }
        }
        out.push_str(&format!("--- {path}\n"));
        let mut gap = false;
        for (i, line) in lines.iter().enumerate() {
            if shown[i] {
                out.push_str(&format!("{:>5}  {line}\n", i + 1));
                gap = false;
            } else if !gap {
                out.push_str("  ...\n");
                gap = true;
            }
        }
        if out.len() > limit {
            let mut end = limit;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push_str("\n[... more conflicts not shown: see the files]\n");
            break;
        }
    }
    out
}
