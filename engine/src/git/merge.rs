//! Merging branches into an integration branch, in memory.

use std::collections::BTreeSet;

use git2::{Index, MergeOptions, Repository};

use super::branch::{compare_and_swap, read_ref};
use super::error::GitContext;
use super::paths::repo_path;
use super::repo::{branch_ref, flow_signature, short_branch};
use super::trees::{Entry, FOLDER_MODE, entries_by_name, is_folder};
use super::{Git, GitError, Oid};

/// Says what merging a branch into another did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MergeOutcome {
    /// The target was an ancestor and now points at the merged head.
    FastForward {
        /// The target's new head.
        to: Oid,
    },
    /// A merge commit was written and the target now points at it.
    Merged {
        /// The merge commit.
        commit: Oid,
    },
    /// The merged head already was part of the target; nothing changed.
    UpToDate,
    /// The merge conflicts; the target was left untouched.
    Conflict {
        /// The conflicting paths, sorted.
        paths: Vec<String>,
    },
}

impl Git {
    /// Merges the commit `branch_head` into the branch `into` without touching any
    /// working tree: a fast-forward when possible, otherwise a merge commit with parents
    /// `[into's head, branch_head]` written as `flow <flow@localhost>`.
    ///
    /// `into` must exist and must not be checked out anywhere
    /// (`GitError::BranchCheckedOut`). On conflicts `into` is left untouched and the
    /// paths are returned. The branch is moved with compare-and-swap.
    pub fn merge_into(&self, into: &str, branch_head: Oid, message: &str) -> Result<MergeOutcome, GitError> {
        let full = branch_ref(into)?;
        let Some(expected) = self.branch_head(&full)? else {
            return Err(GitError::UnknownBranch(short_branch(&full).to_owned()));
        };
        self.merge_into_expecting(into, expected, branch_head, message)
    }

    /// Works as `merge_into`, but merges onto `expected_into_head` and only moves `into`
    /// if it still points there; otherwise it fails with `GitError::RefMoved`. This lets
    /// a caller insist on the last integration commit it recorded.
    pub fn merge_into_expecting(
        &self,
        into: &str,
        expected_into_head: Oid,
        branch_head: Oid,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        let full = branch_ref(into)?;
        let short = short_branch(&full).to_owned();
        let repo = self.open()?;
        if let Some(path) = self.checked_out_at(&repo, &full)? {
            return Err(GitError::BranchCheckedOut { branch: short, path });
        }
        let actual = read_ref(&repo, &full)?;
        if actual != Some(expected_into_head) {
            return Err(GitError::RefMoved {
                branch: short,
                expected: Some(expected_into_head),
                actual,
            });
        }
        if self.is_ancestor(branch_head, expected_into_head)? {
            return Ok(MergeOutcome::UpToDate);
        }
        let first_line = message.lines().next().unwrap_or_default();
        if self.is_ancestor(expected_into_head, branch_head)? {
            compare_and_swap(
                &repo,
                &full,
                branch_head,
                Some(expected_into_head),
                &format!("flow: fast-forward: {first_line}"),
            )?;
            return Ok(MergeOutcome::FastForward { to: branch_head });
        }

        let ours = repo
            .find_commit(expected_into_head.raw())
            .context(|| format!("read commit {expected_into_head}"))?;
        let theirs = repo
            .find_commit(branch_head.raw())
            .context(|| format!("read commit {branch_head}"))?;
        let tree_id = match merge_trees_by_folder(&repo, &ours, &theirs)
            .context(|| format!("merge {} into `{short}`", branch_head.short()))?
        {
            Some(tree_id) => tree_id,
            None => {
                let mut index = repo
                    .merge_commits(&ours, &theirs, Some(&MergeOptions::new()))
                    .context(|| format!("merge {} into `{short}`", branch_head.short()))?;
                let paths = conflict_paths(&index)?;
                if !paths.is_empty() {
                    return Ok(MergeOutcome::Conflict { paths });
                }
                index
                    .write_tree_to(&repo)
                    .context(|| format!("write the merged tree for `{short}`"))?
            }
        };
        let tree = repo.find_tree(tree_id).context(|| format!("read tree {tree_id}"))?;
        let signature = flow_signature()?;
        let commit = repo
            .commit(None, &signature, &signature, message, &tree, &[&ours, &theirs])
            .context(|| format!("write the merge commit for `{short}`"))?;
        compare_and_swap(
            &repo,
            &full,
            commit.into(),
            Some(expected_into_head),
            &format!("flow: merge: {first_line}"),
        )?;
        Ok(MergeOutcome::Merged { commit: commit.into() })
    }

    /// Lists the paths that would conflict when merging `b` into `a`, computed in
    /// memory; an empty list means the merge is clean.
    pub fn trial_merge(&self, a: Oid, b: Oid) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let index = merge_in_memory(&repo, a, b)?;
        conflict_paths(&index)
    }
}

/// Merges two commits with a single merge base without looking into any file: where one
/// side left a path (file or whole folder) as the base had it, the other side's version is
/// taken, and folders changed on both sides are merged the same way, entry by entry. This
/// is the tree `git merge` writes whenever no file changed on both sides, found by reading
/// only the folders both sides changed. Returns `None` when some path changed on both
/// sides (differently), or the commits have several merge bases or none: then libgit2's
/// full merge must decide.
fn merge_trees_by_folder(
    repo: &Repository,
    ours: &git2::Commit<'_>,
    theirs: &git2::Commit<'_>,
) -> Result<Option<git2::Oid>, git2::Error> {
    let bases = repo.merge_bases(ours.id(), theirs.id())?;
    let [base] = bases.iter().as_slice() else {
        return Ok(None);
    };
    let base = repo.find_commit(*base)?.tree()?;
    match merge_folders(repo, Some(&base), &ours.tree()?, &theirs.tree()?)? {
        None => Ok(None),
        Some(Some(tree)) => Ok(Some(tree)),
        // Everything deleted: the empty tree.
        Some(None) => repo.treebuilder(None)?.write().map(Some),
    }
}

/// Merges one folder as [`merge_trees_by_folder`] says; `Some(None)` is a folder left
/// empty (which git leaves out of its parent).
fn merge_folders(
    repo: &Repository,
    base: Option<&git2::Tree<'_>>,
    ours: &git2::Tree<'_>,
    theirs: &git2::Tree<'_>,
) -> Result<Option<Option<git2::Oid>>, git2::Error> {
    let entries = entries_by_name([base, Some(ours), Some(theirs)]);
    let mut builder = repo.treebuilder(None)?;
    // Modes git writes; anything else (an old 100664) is left to libgit2, which normalises it.
    let known_mode = |entry: &Entry| {
        entry.is_none_or(|(mode, _)| matches!(mode, 0o100644 | 0o100755 | 0o120000 | 0o160000 | FOLDER_MODE))
    };
    for (name, [b, o, t]) in entries {
        if !(known_mode(&b) && known_mode(&o) && known_mode(&t)) {
            return Ok(None);
        }
        // The same change on both sides (a path deleted on both, added on both alike, or a
        // folder changed alike, which may hide such a path) can be half of a rename on one
        // side that git reports as a conflict (rename/delete, rename/rename): libgit2 decides.
        if o == t && o != b {
            return Ok(None);
        }
        let merged = if o == t || b == t {
            o
        } else if b == o {
            t
        } else if let (Some((FOLDER_MODE, our_id)), Some((FOLDER_MODE, their_id))) = (o, t)
            && (b.is_none() || is_folder(&b))
        {
            let base_tree = b.map(|(_, id)| repo.find_tree(id)).transpose()?;
            let (our_tree, their_tree) = (repo.find_tree(our_id)?, repo.find_tree(their_id)?);
            match merge_folders(repo, base_tree.as_ref(), &our_tree, &their_tree)? {
                None => return Ok(None),
                Some(folder) => folder.map(|id| (FOLDER_MODE, id)),
            }
        } else {
            return Ok(None);
        };
        if let Some((mode, id)) = merged {
            builder.insert(&name, id, mode)?;
        }
    }
    if builder.is_empty() {
        return Ok(Some(None));
    }
    builder.write().map(|tree| Some(Some(tree)))
}

/// Merges commit `b` into commit `a` in memory and returns the resulting index.
pub(super) fn merge_in_memory(repo: &Repository, a: Oid, b: Oid) -> Result<Index, GitError> {
    let ours = repo.find_commit(a.raw()).context(|| format!("read commit {a}"))?;
    let theirs = repo.find_commit(b.raw()).context(|| format!("read commit {b}"))?;
    repo.merge_commits(&ours, &theirs, Some(&MergeOptions::new()))
        .context(|| format!("merge {} into {}", b.short(), a.short()))
}

/// Collects the sorted paths of every conflict in a merged index (all sides' paths, so
/// a rename conflict names both).
pub(super) fn conflict_paths(index: &Index) -> Result<Vec<String>, GitError> {
    if !index.has_conflicts() {
        return Ok(Vec::new());
    }
    let mut paths = BTreeSet::new();
    let conflicts = index.conflicts().context(|| "list merge conflicts".to_owned())?;
    for conflict in conflicts {
        let conflict = conflict.context(|| "read a merge conflict".to_owned())?;
        for entry in [&conflict.ancestor, &conflict.our, &conflict.their]
            .into_iter()
            .flatten()
        {
            paths.insert(repo_path(&entry.path));
        }
    }
    Ok(paths.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small pseudo-random generator, so the cases are the same on every run.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    /// Writes a commit whose tree holds `files` (path -> content), with `parents`.
    fn commit(
        repo: &Repository,
        files: &std::collections::BTreeMap<String, String>,
        parents: &[git2::Oid],
    ) -> git2::Oid {
        let mut index = Index::new().expect("index");
        for (path, content) in files {
            let id = repo.blob(content.as_bytes()).expect("blob");
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id,
                flags: path.len() as u16,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).expect("add");
        }
        let tree = repo.find_tree(index.write_tree_to(repo).expect("tree")).expect("tree");
        let signature = git2::Signature::new("t", "t@t", &git2::Time::new(0, 0)).expect("signature");
        let parents: Vec<git2::Commit<'_>> = parents.iter().map(|p| repo.find_commit(*p).expect("parent")).collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(None, &signature, &signature, "c", &tree, &parents)
            .expect("commit")
    }

    /// Changes one to three files at random (edit, new file, delete, rename); returns the paths.
    fn change(files: &mut std::collections::BTreeMap<String, String>, rng: &mut Lcg, tag: &str) -> Vec<String> {
        let mut touched = vec![];
        for k in 0..1 + rng.below(3) {
            let path = format!("f{}/g{}/x{}.txt", rng.below(3), rng.below(2), rng.below(3));
            match rng.below(4) {
                0 => {
                    files.remove(&path);
                    touched.push(path);
                }
                // A rename: the same content under a new name.
                3 => {
                    if let Some(content) = files.remove(&path) {
                        let new = format!("f{}/moved-{tag}-{k}.txt", rng.below(3));
                        files.insert(new.clone(), content);
                        touched.extend([path, new]);
                    }
                }
                1 => {
                    let new = format!("f{}/new-{tag}-{k}.txt", rng.below(3));
                    files.insert(new.clone(), format!("{tag}\n"));
                    touched.push(new);
                }
                _ => {
                    files.insert(path.clone(), format!("{tag} {k}\n"));
                    touched.push(path);
                }
            }
        }
        touched
    }

    #[test]
    fn merging_by_folder_gives_libgit2s_tree_and_skips_it_only_when_a_file_changed_on_both_sides() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init(dir.path()).expect("init");
        let mut base_files = std::collections::BTreeMap::new();
        for a in 0..3 {
            for b in 0..2 {
                for c in 0..3 {
                    base_files.insert(format!("f{a}/g{b}/x{c}.txt"), format!("{a}{b}{c}\n"));
                }
            }
        }
        let base = commit(&repo, &base_files, &[]);
        let mut rng = Lcg(11);
        let (mut by_folder, mut full) = (0, 0);
        for _ in 0..200 {
            let (mut ours_files, mut theirs_files) = (base_files.clone(), base_files.clone());
            let ours_paths = change(&mut ours_files, &mut rng, "ours");
            let theirs_paths = change(&mut theirs_files, &mut rng, "theirs");
            let ours = repo.find_commit(commit(&repo, &ours_files, &[base])).expect("ours");
            let theirs = repo.find_commit(commit(&repo, &theirs_files, &[base])).expect("theirs");
            let fast = merge_trees_by_folder(&repo, &ours, &theirs).expect("merge by folder");
            let mut index = repo
                .merge_commits(&ours, &theirs, Some(&MergeOptions::new()))
                .expect("libgit2 merge");
            let disjoint = ours_paths.iter().all(|p| !theirs_paths.contains(p));
            if disjoint {
                assert!(
                    fast.is_some(),
                    "no file changed on both sides: {ours_paths:?} {theirs_paths:?}"
                );
            }
            match fast {
                Some(tree) => {
                    assert!(!index.has_conflicts(), "{ours_paths:?} {theirs_paths:?}");
                    assert_eq!(tree, index.write_tree_to(&repo).expect("tree"));
                    by_folder += 1;
                }
                None => full += 1,
            }
        }
        assert!(
            by_folder > 100 && full > 5,
            "{by_folder} merged by folder, {full} left to libgit2"
        );
    }
}
