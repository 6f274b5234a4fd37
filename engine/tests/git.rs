//! Tests of `flow_engine::git` on real temporary repositories.
//!
//! Repositories are set up and inspected with the git CLI under a hermetic
//! configuration; every operation under test goes through the library.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use flow_engine::git::{
    BranchState, Change, ChangeKind, Git, GitError, IntegrityProblem, MergeOutcome, MergeProgress, Oid,
    WORKTREE_BEING_MADE, WorktreeMerge, WorktreeState,
};
use tempfile::TempDir;

/// Runs git in `dir` with a hermetic configuration and a pinned identity and date.
fn run_git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .output()
        .expect("the git CLI runs")
}

/// Runs git and returns its trimmed stdout, failing the test when git fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = run_git(dir, args);
    assert!(
        output.status.success(),
        "git {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Writes a file, creating its folders.
fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent folder");
    }
    fs::write(path, content).expect("write file");
}

/// Ten numbered lines, with line `i` replaced when given.
fn lines(replace: Option<(usize, &str)>) -> String {
    (1..=10)
        .map(|i| match replace {
            Some((at, text)) if at == i => format!("{text}\n"),
            _ => format!("line {i}\n"),
        })
        .collect()
}

/// A temporary repository on `main` with two commits, and a folder for worktrees.
struct Fixture {
    _tmp: TempDir,
    root: PathBuf,
    worktrees: PathBuf,
    tmp_path: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new().expect("temp dir");
        let tmp_path = fs::canonicalize(tmp.path()).expect("canonical temp dir");
        let root = tmp_path.join("repo");
        fs::create_dir_all(&root).expect("create repo folder");
        git(&root, &["init", "-q", "-b", "main"]);
        write(&root.join("a.txt"), &lines(None));
        write(&root.join("b.txt"), "bee\n");
        write(
            &root.join("src/lib.rs"),
            "pub fn answer() -> u32 {\n    42\n}\n\npub fn question() -> &'static str {\n    \"six by nine\"\n}\n",
        );
        write(&root.join(".gitignore"), "*.log\ntarget/\n");
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "init"]);
        write(&root.join("c.txt"), "sea\n");
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "second"]);
        Fixture {
            _tmp: tmp,
            worktrees: tmp_path.join("worktrees"),
            root,
            tmp_path,
        }
    }

    fn git(&self) -> Git {
        Git::discover(&self.root).expect("discover the fixture repository")
    }

    fn wt(&self, name: &str) -> PathBuf {
        self.worktrees.join(name)
    }

    fn rev(&self, rev: &str) -> Oid {
        self.git().resolve(rev).expect("resolve")
    }

    /// Commits `files` (path, content or `None` to delete) in `dir` with the CLI.
    fn commit_in(&self, dir: &Path, files: &[(&str, Option<&str>)], message: &str) -> Oid {
        for (path, content) in files {
            match content {
                Some(content) => write(&dir.join(path), content),
                None => {
                    fs::remove_file(dir.join(path)).expect("delete file");
                }
            }
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", message]);
        Oid::from_hex(&git(dir, &["rev-parse", "HEAD"])).expect("hex id")
    }
}

#[test]
fn discovers_from_a_subfolder_and_reads_revisions() {
    let f = Fixture::new();
    let g = Git::discover(&f.root.join("src")).expect("discover from a subfolder");
    assert_eq!(g.root(), f.root.as_path());
    assert_eq!(g.current_branch().expect("branch"), Some("main".to_owned()));

    let head = git(&f.root, &["rev-parse", "HEAD"]);
    assert_eq!(g.resolve("main").expect("main").to_string(), head);
    assert_eq!(g.resolve("refs/heads/main").expect("full ref").to_string(), head);
    assert_eq!(g.resolve(&head).expect("sha").to_string(), head);
    assert_eq!(
        g.resolve("main~1").expect("parent").to_string(),
        git(&f.root, &["rev-parse", "HEAD~1"])
    );
    assert!(matches!(
        g.resolve("no-such-branch"),
        Err(GitError::UnknownRevision(rev)) if rev == "no-such-branch"
    ));

    git(&f.root, &["checkout", "-q", "--detach"]);
    assert_eq!(g.current_branch().expect("detached"), None);
    git(&f.root, &["checkout", "-q", "main"]);

    let outside = TempDir::new().expect("temp dir");
    assert!(matches!(
        Git::discover(outside.path()),
        Err(GitError::NotARepository { .. })
    ));
    let bare = f.tmp_path.join("bare.git");
    git(&f.tmp_path, &["init", "-q", "--bare", "bare.git"]);
    assert!(matches!(Git::discover(&bare), Err(GitError::BareRepository { .. })));

    let id: Oid = head.parse().expect("parse");
    let json = serde_json::to_string(&id).expect("serialize");
    assert_eq!(json, format!("\"{head}\""));
    assert_eq!(serde_json::from_str::<Oid>(&json).expect("deserialize"), id);
    assert!(serde_json::from_str::<Oid>("\"abc\"").is_err());
}

#[test]
fn branches_are_created_once_and_moved_only_by_compare_and_swap() {
    let f = Fixture::new();
    let g = f.git();
    let first = f.rev("main~1");
    let second = f.rev("main");

    assert_eq!(g.branch_head("flow/x").expect("absent"), None);
    assert_eq!(g.ensure_branch("flow/x", first).expect("create"), BranchState::Created);
    assert_eq!(
        g.ensure_branch("flow/x", second).expect("exists"),
        BranchState::Existing(first)
    );
    assert_eq!(g.branch_head("flow/x").expect("head"), Some(first));

    let moved = g.set_branch("flow/x", second, Some(second), "wrong expectation");
    assert!(matches!(
        moved,
        Err(GitError::RefMoved { expected: Some(e), actual: Some(a), .. }) if e == second && a == first
    ));
    assert_eq!(g.branch_head("flow/x").expect("head"), Some(first));
    assert!(matches!(
        g.set_branch("flow/x", second, None, "must not exist"),
        Err(GitError::RefMoved { expected: None, .. })
    ));
    g.set_branch("flow/x", second, Some(first), "advance")
        .expect("compare-and-swap succeeds");
    assert_eq!(g.branch_head("flow/x").expect("head"), Some(second));
    assert!(matches!(
        g.set_branch("flow/y", first, Some(second), "absent branch"),
        Err(GitError::RefMoved { actual: None, .. })
    ));
    g.set_branch("flow/y", first, None, "create").expect("create");
    assert_eq!(g.branch_head("refs/heads/flow/y").expect("head"), Some(first));

    assert!(matches!(
        g.set_branch("main", first, Some(second), "moving the user's branch"),
        Err(GitError::BranchCheckedOut { .. })
    ));
    assert!(matches!(
        g.delete_branch("main"),
        Err(GitError::BranchCheckedOut { .. })
    ));
    assert!(matches!(
        g.ensure_branch("bad..name", first),
        Err(GitError::InvalidBranchName(_))
    ));

    g.delete_branch("flow/y").expect("delete");
    g.delete_branch("flow/y").expect("deleting twice is fine");
    assert_eq!(g.branch_head("flow/y").expect("gone"), None);

    assert!(g.is_ancestor(first, second).expect("ancestor"));
    assert!(!g.is_ancestor(second, first).expect("not ancestor"));
    assert!(g.is_ancestor(second, second).expect("itself"));
}

#[test]
fn adds_reuses_and_refuses_worktrees() {
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main~1");
    let gui = f.wt("gui");

    assert_eq!(
        g.add_worktree(&gui, "flow/gui", base).expect("add"),
        WorktreeState::Created {
            branch: BranchState::Created
        }
    );
    assert_eq!(git(&gui, &["rev-parse", "HEAD"]), base.to_string());
    assert_eq!(git(&gui, &["symbolic-ref", "HEAD"]), "refs/heads/flow/gui");
    assert_eq!(git(&gui, &["status", "--porcelain"]), "");
    assert!(!gui.join("c.txt").exists(), "checked out at the start commit");
    let listed = git(&f.root, &["worktree", "list", "--porcelain"]);
    assert!(listed.contains(&format!("worktree {}", gui.display())));

    write(&gui.join("scratch.txt"), "agent work in progress\n");
    assert_eq!(
        g.add_worktree(&gui, "flow/gui", f.rev("main")).expect("reuse"),
        WorktreeState::Reused
    );
    assert!(gui.join("scratch.txt").exists(), "a reused worktree is not touched");

    // A folder of someone else's files is in the way.
    let occupied = f.wt("occupied");
    write(&occupied.join("keep.txt"), "mine\n");
    assert!(matches!(
        g.add_worktree(&occupied, "flow/occupied", base),
        Err(GitError::PathInTheWay { .. })
    ));
    assert_eq!(g.branch_head("flow/occupied").expect("head"), None);
    assert_eq!(fs::read_to_string(occupied.join("keep.txt")).expect("kept"), "mine\n");

    // The same folder with another branch is in the way too.
    assert!(matches!(
        g.add_worktree(&gui, "flow/other", base),
        Err(GitError::PathInTheWay { found, .. }) if found.contains("flow/gui")
    ));

    // An empty folder is fine.
    let empty = f.wt("empty");
    fs::create_dir_all(&empty).expect("create empty folder");
    assert!(matches!(
        g.add_worktree(&empty, "flow/empty", base).expect("empty folder"),
        WorktreeState::Created { .. }
    ));

    // A branch checked out elsewhere: in the user's checkout or another worktree.
    let err = g
        .add_worktree(&f.wt("main-again"), "main", base)
        .expect_err("main is checked out");
    assert!(
        matches!(&err, GitError::BranchCheckedOut { path, .. } if path == &f.root),
        "{err:?}"
    );
    assert!(err.to_string().contains("main"));
    let err = g
        .add_worktree(&f.wt("gui-again"), "flow/gui", base)
        .expect_err("flow/gui is checked out in gui");
    assert!(
        matches!(&err, GitError::BranchCheckedOut { path, .. } if path == &gui),
        "{err:?}"
    );
    assert!(!f.wt("gui-again").exists());

    // When creating the worktree fails after the branch was made, the branch goes too.
    write(&f.wt("a-file"), "not a folder\n");
    let err = g
        .add_worktree(&f.wt("a-file").join("child"), "flow/child", base)
        .expect_err("parent is a file");
    assert!(matches!(err, GitError::Io { .. }), "{err:?}");
    assert_eq!(g.branch_head("flow/child").expect("head"), None);

    // An existing branch is used where it is, not moved to `start`.
    g.ensure_branch("flow/existing", f.rev("main")).expect("create");
    assert_eq!(
        g.add_worktree(&f.wt("existing"), "flow/existing", base).expect("add"),
        WorktreeState::Created {
            branch: BranchState::Existing(f.rev("main"))
        }
    );
    assert_eq!(
        git(&f.wt("existing"), &["rev-parse", "HEAD"]),
        f.rev("main").to_string()
    );

    git(&f.root, &["worktree", "list"]);
    git(&f.root, &["fsck", "--strict"]);
}

#[test]
fn stale_records_are_pruned_unless_locked() {
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main");
    let gui = f.wt("gui");
    g.add_worktree(&gui, "flow/gui", base).expect("add");
    fs::remove_dir_all(&gui).expect("rm -rf by hand");

    let listed = g.worktrees().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "flow-gui");
    assert_eq!(listed[0].branch.as_deref(), Some("flow/gui"));
    assert!(listed[0].missing && listed[0].prunable);

    // Adding the same folder again prunes the stale record first.
    assert_eq!(
        g.add_worktree(&gui, "flow/gui", base).expect("re-add"),
        WorktreeState::Created {
            branch: BranchState::Existing(base)
        }
    );
    let listed = g.worktrees().expect("list");
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].missing);

    // A stale record that holds the branch is pruned for a new folder as well.
    fs::remove_dir_all(&gui).expect("rm -rf by hand");
    let moved = f.wt("gui-moved");
    g.add_worktree(&moved, "flow/gui", base).expect("add elsewhere");
    assert_eq!(g.worktrees().expect("list").len(), 1);

    // prune_stale_worktrees removes exactly the records whose folder is gone.
    g.add_worktree(&f.wt("api"), "flow/api", base).expect("add");
    fs::remove_dir_all(f.wt("api")).expect("rm -rf by hand");
    assert_eq!(g.prune_stale_worktrees().expect("prune"), vec!["flow-api"]);
    assert_eq!(g.prune_stale_worktrees().expect("prune"), Vec::<String>::new());
    assert_eq!(g.branch_head("flow/api").expect("kept"), Some(base));

    // A locked stale record is kept and blocks with a clear error.
    let db = f.wt("db");
    g.add_worktree(&db, "flow/db", base).expect("add");
    g.lock_worktree(&db, "flow run 7").expect("lock");
    fs::remove_dir_all(&db).expect("rm -rf by hand");
    assert!(g.prune_stale_worktrees().expect("prune").is_empty());
    let err = g.add_worktree(&db, "flow/db", base).expect_err("locked stale record");
    assert!(
        matches!(&err, GitError::StaleWorktreeLocked { name, .. } if name == "flow-db"),
        "{err:?}"
    );
    let listed = g.worktrees().expect("list");
    let db_info = listed.iter().find(|info| info.name == "flow-db").expect("listed");
    assert!(db_info.locked && db_info.missing && !db_info.prunable);
    assert_eq!(db_info.lock_reason.as_deref(), Some("flow run 7"));
    g.remove_worktree(&db, true).expect("forced removal clears it");
    assert!(g.worktrees().expect("list").iter().all(|i| i.name != "flow-db"));
    git(&f.root, &["fsck", "--strict"]);
}

#[test]
fn locks_and_removes_worktrees() {
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main");
    let gui = f.wt("gui");
    g.add_worktree(&gui, "flow/gui", base).expect("add");

    g.lock_worktree(&gui, "flow run 1").expect("lock");
    g.lock_worktree(&gui, "flow run 2").expect("relock with a new reason");
    let porcelain = git(&f.root, &["worktree", "list", "--porcelain"]);
    assert!(porcelain.contains("locked flow run 2"), "{porcelain}");
    assert!(matches!(
        g.remove_worktree(&gui, false),
        Err(GitError::WorktreeLocked { reason: Some(r), .. }) if r == "flow run 2"
    ));
    g.unlock_worktree(&gui).expect("unlock");
    g.unlock_worktree(&gui).expect("unlock twice");
    assert!(!g.worktrees().expect("list")[0].locked);

    write(&gui.join("new.txt"), "untracked\n");
    write(&gui.join("a.txt"), "changed\n");
    write(&gui.join("debug.log"), "ignored\n");
    write(&gui.join(".ai/worktrees/gui/context.md"), "seed\n");
    let err = g.remove_worktree(&gui, false).expect_err("dirty");
    match &err {
        GitError::Dirty { paths, .. } => assert_eq!(paths, &[".ai/worktrees/gui/context.md", "a.txt", "new.txt"]),
        other => panic!("expected Dirty, got {other:?}"),
    }
    assert!(err.to_string().contains("3 path(s)"));
    assert!(gui.join("new.txt").exists());

    assert_eq!(
        g.is_dirty(&gui, &[".ai/worktrees/"]).expect("dirty"),
        vec!["a.txt", "new.txt"]
    );
    fs::remove_file(gui.join("new.txt")).expect("rm");
    git(&gui, &["checkout", "-q", "--", "a.txt"]);
    g.remove_worktree_ignoring(&gui, false, &[".ai/worktrees/"])
        .expect("only flow's own files are left");
    assert!(!gui.exists());
    assert!(g.worktrees().expect("list").is_empty());
    assert_eq!(g.branch_head("flow/gui").expect("kept"), Some(base));
    g.remove_worktree(&gui, false).expect("removing twice is fine");

    let api = f.wt("api");
    g.add_worktree(&api, "flow/api", base).expect("add");
    g.lock_worktree(&api, "busy").expect("lock");
    write(&api.join("b.txt"), "changed\n");
    g.remove_worktree(&api, true).expect("forced");
    assert!(!api.exists());
    assert!(g.worktrees().expect("list").is_empty());
    g.delete_branch("flow/api").expect("branch is free again");

    assert!(matches!(
        g.remove_worktree(&f.root, true),
        Err(GitError::UserCheckout { .. })
    ));
    assert!(matches!(
        g.remove_worktree(&f.wt("never-made").join(".."), true),
        Err(GitError::NotAWorktree { .. })
    ));
    assert!(f.root.join("a.txt").exists());
    git(&f.root, &["worktree", "prune", "--dry-run"]);
    git(&f.root, &["fsck", "--strict"]);
}

#[test]
fn commit_all_stages_everything_but_excluded_and_ignored_paths() {
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main");
    let dir = f.wt("ws");
    g.add_worktree(&dir, "flow/ws", base).expect("add");

    assert_eq!(g.commit_all(&dir, "nothing", &[]).expect("clean"), None);

    write(&dir.join("a.txt"), &lines(Some((3, "changed"))));
    fs::remove_file(dir.join("b.txt")).expect("delete");
    write(&dir.join("docs/new/guide.md"), "# guide\n");
    write(&dir.join("build.log"), "ignored by *.log\n");
    write(&dir.join("target/debug/out"), "ignored folder\n");
    write(&dir.join(".ai/worktrees/ws/context.md"), "seed\n");
    write(&dir.join(".ai/coordination/worktree_status.md"), "status\n");
    write(&dir.join(".ai/patterns.md"), "not excluded\n");
    // An agent's own partial staging is overridden by the full content.
    git(&dir, &["add", "a.txt"]);
    write(&dir.join("a.txt"), &lines(Some((4, "changed again"))));

    let excluded = [".ai/worktrees/", ".ai/coordination/"];
    let commit = g
        .commit_all(&dir, "flow: leftovers of ws", &excluded)
        .expect("commit")
        .expect("something to commit");

    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), commit.to_string());
    assert_eq!(
        git(&f.root, &["rev-parse", "flow/ws"]),
        commit.to_string(),
        "the commit landed on the worktree's branch"
    );
    assert_eq!(
        git(&f.root, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s|%P", "flow/ws"]),
        format!("flow <flow@localhost>|flow <flow@localhost>|flow: leftovers of ws|{base}")
    );
    let files = git(&f.root, &["ls-tree", "-r", "--name-only", "flow/ws"]);
    let files: Vec<&str> = files.lines().collect();
    assert_eq!(
        files,
        [
            ".ai/patterns.md",
            ".gitignore",
            "a.txt",
            "c.txt",
            "docs/new/guide.md",
            "src/lib.rs"
        ]
    );
    assert_eq!(
        git(&f.root, &["show", "flow/ws:a.txt"]),
        lines(Some((4, "changed again"))).trim_end()
    );

    // Only the excluded files remain uncommitted; git agrees the index is consistent.
    assert_eq!(
        g.is_dirty(&dir, &[]).expect("dirty"),
        vec![".ai/coordination/worktree_status.md", ".ai/worktrees/ws/context.md"]
    );
    assert!(g.is_dirty(&dir, &excluded).expect("dirty").is_empty());
    assert_eq!(git(&dir, &["status", "--porcelain", "--untracked-files=no"]), "");
    assert_eq!(g.commit_all(&dir, "again", &excluded).expect("nothing new"), None);

    // Deletions of tracked files alone make a commit too.
    fs::remove_file(dir.join("c.txt")).expect("delete");
    let second = g
        .commit_all(&dir, "delete c", &excluded)
        .expect("commit")
        .expect("a deletion is a change");
    assert_eq!(
        g.changed_paths(commit, second).expect("diff"),
        vec![Change {
            path: "c.txt".to_owned(),
            old_path: None,
            kind: ChangeKind::Deleted
        }]
    );

    // The user's checkout, a detached HEAD or an unfinished merge is refused.
    write(&f.root.join("user.txt"), "the user's work\n");
    assert!(matches!(
        g.commit_all(&f.root, "never", &[]),
        Err(GitError::UserCheckout { .. })
    ));
    assert_eq!(git(&f.root, &["status", "--porcelain"]), "?? user.txt");
    git(&dir, &["checkout", "-q", "--detach"]);
    write(&dir.join("x.txt"), "x\n");
    assert!(matches!(
        g.commit_all(&dir, "detached", &excluded),
        Err(GitError::DetachedHead { .. })
    ));
    git(&dir, &["switch", "-q", "flow/ws"]);
    git(&dir, &["switch", "-q", "-c", "side", "HEAD~1"]);
    f.commit_in(&dir, &[("a.txt", Some("side\n"))], "side");
    git(&dir, &["switch", "-q", "flow/ws"]);
    write(&dir.join("a.txt"), "ours\n");
    git(&dir, &["commit", "-q", "-am", "ours"]);
    assert!(!run_git(&dir, &["merge", "-q", "side"]).status.success());
    assert!(matches!(
        g.commit_all(&dir, "mid-merge", &excluded),
        Err(GitError::OperationInProgress { operation, .. }) if operation == "merge"
    ));
    git(&f.root, &["fsck", "--strict"]);
}

#[test]
fn changed_paths_detect_renames_deletions_and_type_changes() {
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main");
    let dir = f.wt("ws");
    g.add_worktree(&dir, "flow/ws", base).expect("add");

    write(&dir.join("a.txt"), &lines(Some((1, "first"))));
    fs::remove_file(dir.join("b.txt")).expect("delete");
    fs::rename(dir.join("src/lib.rs"), dir.join("src/core.rs")).expect("rename");
    write(&dir.join("new/file.txt"), "new\n");
    fs::remove_file(dir.join("c.txt")).expect("delete");
    std::os::unix::fs::symlink("a.txt", dir.join("c.txt")).expect("symlink");
    let to = g.commit_all(&dir, "changes", &[]).expect("commit").expect("changed");

    let changes = g.changed_paths(base, to).expect("diff");
    let change = |path: &str, old: Option<&str>, kind| Change {
        path: path.to_owned(),
        old_path: old.map(str::to_owned),
        kind,
    };
    assert_eq!(
        changes,
        vec![
            change("a.txt", None, ChangeKind::Modified),
            change("b.txt", None, ChangeKind::Deleted),
            change("c.txt", None, ChangeKind::TypeChanged),
            change("new/file.txt", None, ChangeKind::Added),
            change("src/core.rs", Some("src/lib.rs"), ChangeKind::Renamed),
        ]
    );
    assert_eq!(changes[4].paths().collect::<Vec<_>>(), ["src/core.rs", "src/lib.rs"]);

    // The same answer as `git diff --name-status -M`.
    let cli = git(
        &f.root,
        &["diff", "--name-status", "-M", &base.to_string(), &to.to_string()],
    );
    let mut from_cli: Vec<String> = cli
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[0].chars().next() {
                Some('R') => format!("R {} <- {}", fields[2], fields[1]),
                Some(kind) => format!("{kind} {}", fields[1]),
                None => String::new(),
            }
        })
        .collect();
    from_cli.sort();
    let mut ours: Vec<String> = changes
        .iter()
        .map(|c| match c.kind {
            ChangeKind::Renamed => format!("R {} <- {}", c.path, c.old_path.clone().unwrap_or_default()),
            ChangeKind::Added => format!("A {}", c.path),
            ChangeKind::Deleted => format!("D {}", c.path),
            ChangeKind::Modified => format!("M {}", c.path),
            ChangeKind::TypeChanged => format!("T {}", c.path),
        })
        .collect();
    ours.sort();
    assert_eq!(ours, from_cli);

    let json = serde_json::to_value(&changes[4]).expect("serialize");
    assert_eq!(
        json,
        serde_json::json!({"path": "src/core.rs", "old_path": "src/lib.rs", "kind": "renamed"})
    );
    assert!(g.changed_paths(base, base).expect("same").is_empty());
}

#[test]
fn integrity_problems_are_reported() {
    let f = Fixture::new();
    let g = f.git();
    let start = f.rev("main");
    let dir = f.wt("ws");
    g.add_worktree(&dir, "flow/ws", start).expect("add");
    let check = || g.check_worktree_integrity(&dir, "flow/ws", start).expect("check");
    assert!(check().is_empty());
    f.commit_in(&dir, &[("a.txt", Some("agent\n"))], "agent work");
    assert!(check().is_empty(), "committing on the branch is fine");

    git(&dir, &["switch", "-q", "-c", "elsewhere"]);
    assert_eq!(
        check(),
        vec![IntegrityProblem::SwitchedBranch {
            now: "elsewhere".to_owned()
        }]
    );
    git(&dir, &["switch", "-q", "flow/ws"]);

    git(&dir, &["checkout", "-q", "--detach"]);
    let at = Oid::from_hex(&git(&dir, &["rev-parse", "HEAD"])).expect("hex");
    assert_eq!(check(), vec![IntegrityProblem::Detached { at }]);
    git(&dir, &["switch", "-q", "flow/ws"]);

    git(&dir, &["reset", "-q", "--hard", "HEAD~2"]);
    let head = Oid::from_hex(&git(&dir, &["rev-parse", "HEAD"])).expect("hex");
    assert_eq!(check(), vec![IntegrityProblem::RewroteHistory { head }]);
    git(&dir, &["reset", "-q", "--hard", &start.to_string()]);
    assert!(check().is_empty());

    let gitfile = dir.join(".git");
    let original = fs::read(&gitfile).expect("read .git");
    fs::write(&gitfile, "gitdir: /somewhere/else\n").expect("overwrite .git");
    assert!(matches!(
        check().as_slice(),
        [IntegrityProblem::GitFileTouched { detail }] if detail.contains("/somewhere/else")
    ));
    fs::remove_file(&gitfile).expect("rm .git");
    git(&dir, &["init", "-q"]);
    assert!(matches!(
        check().as_slice(),
        [IntegrityProblem::GitFileTouched { detail }] if detail.contains("folder")
    ));
    fs::remove_dir_all(&gitfile).expect("rm nested repo");
    fs::write(&gitfile, &original).expect("restore .git");
    assert!(check().is_empty());

    // The branch itself vanished (HEAD still names it).
    let tip = git(&f.root, &["rev-parse", "flow/ws"]);
    git(&f.root, &["update-ref", "-d", "refs/heads/flow/ws"]);
    assert_eq!(check(), vec![IntegrityProblem::BranchMissing]);
    git(&f.root, &["update-ref", "refs/heads/flow/ws", &tip]);
    assert!(check().is_empty());
    let json = serde_json::to_value(IntegrityProblem::SwitchedBranch { now: "x".to_owned() }).expect("serialize");
    assert_eq!(json, serde_json::json!({"problem": "switched_branch", "now": "x"}));

    assert!(matches!(
        g.check_worktree_integrity(&f.wt("nothing"), "flow/ws", start),
        Err(GitError::NotAWorktree { .. })
    ));
    fs::remove_dir_all(&dir).expect("rm -rf");
    assert_eq!(check(), vec![IntegrityProblem::FolderMissing]);
}

/// Sets up `integration/x` at main and three workstream branches made in worktrees:
/// `a` edits line 1 of a.txt and src/lib.rs, `b` edits line 10 of a.txt, deletes b.txt
/// and renames src/lib.rs, `c` edits line 1 of a.txt differently from `a`.
struct MergeFixture {
    f: Fixture,
    base: Oid,
    a: Oid,
    b: Oid,
    c: Oid,
}

impl MergeFixture {
    fn new() -> MergeFixture {
        let f = Fixture::new();
        let g = f.git();
        let base = f.rev("main");
        assert_eq!(
            g.ensure_branch("integration/x", base).expect("integration"),
            BranchState::Created
        );
        for name in ["a", "b", "c"] {
            g.add_worktree(&f.wt(name), &format!("flow/{name}"), base).expect("add");
        }
        write(&f.wt("a").join("a.txt"), &lines(Some((1, "alpha"))));
        write(
            &f.wt("a").join("src/lib.rs"),
            "pub fn answer() -> u32 {\n    42\n}\n\npub fn question() -> &'static str {\n    \"life\"\n}\n",
        );
        write(&f.wt("a").join("x.txt"), "from a\n");
        let a = g.commit_all(&f.wt("a"), "a", &[]).expect("commit").expect("changed");
        write(&f.wt("b").join("a.txt"), &lines(Some((10, "omega"))));
        fs::remove_file(f.wt("b").join("b.txt")).expect("delete");
        fs::create_dir_all(f.wt("b").join("core")).expect("mkdir");
        fs::rename(f.wt("b").join("src/lib.rs"), f.wt("b").join("core/lib.rs")).expect("mv");
        let b = g.commit_all(&f.wt("b"), "b", &[]).expect("commit").expect("changed");
        write(&f.wt("c").join("a.txt"), &lines(Some((1, "gamma"))));
        let c = g.commit_all(&f.wt("c"), "c", &[]).expect("commit").expect("changed");
        MergeFixture { f, base, a, b, c }
    }
}

#[test]
fn merges_fast_forward_then_like_git_merge_no_ff() {
    let m = MergeFixture::new();
    let g = m.f.git();

    assert_eq!(
        g.merge_into("integration/x", m.base, "nothing").expect("merge"),
        MergeOutcome::UpToDate
    );
    assert_eq!(
        g.merge_into("integration/x", m.a, "Merge flow/a").expect("merge"),
        MergeOutcome::FastForward { to: m.a }
    );
    assert_eq!(g.branch_head("integration/x").expect("head"), Some(m.a));
    assert_eq!(
        g.merge_into("integration/x", m.a, "again").expect("merge"),
        MergeOutcome::UpToDate
    );

    let commit = match g
        .merge_into("integration/x", m.b, "Merge flow/b into integration/x")
        .expect("merge")
    {
        MergeOutcome::Merged { commit } => commit,
        other => panic!("expected a merge commit, got {other:?}"),
    };
    let root = &m.f.root;
    assert_eq!(git(root, &["rev-parse", "integration/x"]), commit.to_string());
    assert_eq!(
        git(
            root,
            &["log", "-1", "--format=%P|%an <%ae>|%cn <%ce>|%B", "integration/x"]
        ),
        format!(
            "{} {}|flow <flow@localhost>|flow <flow@localhost>|Merge flow/b into integration/x",
            m.a, m.b
        )
    );

    // The CLI merges the same two commits in a separate clone to the same tree.
    let clone = m.f.tmp_path.join("clone");
    git(
        &m.f.tmp_path,
        &["clone", "-q", root.to_str().expect("utf-8 path"), "clone"],
    );
    git(&clone, &["checkout", "-q", "-b", "int", &m.a.to_string()]);
    git(&clone, &["merge", "-q", "--no-ff", "-m", "cli merge", &m.b.to_string()]);
    assert_eq!(
        git(&clone, &["rev-parse", "HEAD^{tree}"]),
        git(root, &["rev-parse", &format!("{commit}^{{tree}}")]),
        "libgit2's in-memory merge and `git merge --no-ff` agree on the tree"
    );
    assert_eq!(
        git(root, &["show", &format!("{commit}:core/lib.rs")]),
        git(root, &["show", &format!("{}:src/lib.rs", m.a)]),
        "the edit of a followed the rename of b"
    );
    assert!(!git(root, &["ls-tree", "-r", "--name-only", &commit.to_string()]).contains("b.txt"));

    // No working tree was touched to merge.
    for name in ["a", "b", "c"] {
        assert_eq!(git(&m.f.wt(name), &["status", "--porcelain"]), "");
    }
    assert_eq!(git(root, &["status", "--porcelain"]), "");
    git(root, &["fsck", "--strict"]);
}

#[test]
fn own_changes_are_read_from_the_integration_commit_a_sync_brought_in() {
    let f = Fixture::new();
    let g = f.git();
    let start = f.rev("HEAD");
    let wt = |name: &str| f.wt(name).to_str().expect("utf-8").to_string();
    git(
        &f.root,
        &["worktree", "add", "-q", "-b", "flow/w", &wt("w"), &start.to_string()],
    );
    let own = f.commit_in(&f.wt("w"), &[("w.txt", Some("mine\n"))], "w: work");
    assert_eq!(g.work_base_at(start, own, start).expect("read"), start);

    // Another workstream's work is verified on the integration branch, then comes into w's.
    git(
        &f.root,
        &["worktree", "add", "-q", "--detach", &wt("i"), &start.to_string()],
    );
    let other = f.commit_in(&f.wt("i"), &[("other.txt", Some("theirs\n"))], "other: work");
    assert_eq!(
        g.work_base_at(start, own, other).expect("read"),
        start,
        "not synced yet"
    );
    git(
        &f.wt("w"),
        &["merge", "-q", "--no-ff", "-m", "sync", &other.to_string()],
    );
    let synced = Oid::from_hex(&git(&f.wt("w"), &["rev-parse", "HEAD"])).expect("hex id");
    let from = g.work_base_at(start, synced, other).expect("read");
    assert_eq!(from, other);
    let paths: Vec<String> = g
        .changed_paths(from, synced)
        .expect("diff")
        .iter()
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(paths, ["w.txt"], "what the sync brought in is not w's");

    // The integration branch moves on: w's branch still holds only `other`.
    let later = f.commit_in(&f.wt("i"), &[("later.txt", Some("later\n"))], "later: work");
    assert_eq!(g.work_base_at(start, synced, later).expect("read"), other);
    // Named by its branch (outside a run), the same.
    git(&f.root, &["branch", "integration/x", &later.to_string()]);
    assert_eq!(g.work_base(start, synced, "integration/x").expect("read"), other);
    assert_eq!(g.work_base(start, synced, "no/such-branch").expect("read"), start);

    // A commit w merged that is no integration commit hides nothing: its files stay w's.
    git(
        &f.root,
        &["worktree", "add", "-q", "--detach", &wt("x"), &start.to_string()],
    );
    let stray = f.commit_in(&f.wt("x"), &[("stray.txt", Some("out of scope\n"))], "stray");
    git(
        &f.wt("w"),
        &["merge", "-q", "--no-ff", "-m", "not a sync", &stray.to_string()],
    );
    let head = Oid::from_hex(&git(&f.wt("w"), &["rev-parse", "HEAD"])).expect("hex id");
    let from = g.work_base_at(start, head, later).expect("read");
    assert_eq!(from, other);
    let paths: Vec<String> = g
        .changed_paths(from, head)
        .expect("diff")
        .iter()
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(paths, ["stray.txt", "w.txt"]);
}

#[test]
fn a_resolution_set_up_in_the_integration_worktree_is_found_at_each_step() {
    let m = MergeFixture::new();
    let g = m.f.git();
    let dir = m.f.wt("integration");
    let into = "integration/x";
    g.merge_into(into, m.a, "Merge flow/a").expect("merge");
    g.checkout_detached(&dir, m.a).expect("the integration worktree");
    let progress = |ours, theirs| g.merge_progress(&dir, into, ours, theirs).expect("read");
    assert_eq!(progress(m.a, m.c), MergeProgress::Absent, "not set up");

    assert_eq!(g.prepare_merge_in(&dir, m.a, m.c).expect("set up"), ["a.txt"]);
    assert_eq!(progress(m.a, m.c), MergeProgress::InProgress);
    assert_eq!(progress(m.a, m.b), MergeProgress::Absent, "another merge");
    assert_eq!(g.trial_merge(m.a, m.c).expect("trial"), ["a.txt"], "the same conflicts");

    write(&dir.join("a.txt"), &lines(Some((1, "alpha and gamma"))));
    let commit = g.commit_merge_in(&dir, "resolved").expect("commit");
    assert_eq!(g.parents(commit).expect("parents"), [m.a, m.c]);
    assert_eq!(progress(m.a, m.c), MergeProgress::Committed(commit));

    g.set_branch(into, commit, Some(m.a), "resolved").expect("move");
    assert_eq!(progress(m.a, m.c), MergeProgress::Landed(commit));
    g.checkout_detached(&dir, commit).expect("verify's checkout");
    assert_eq!(progress(m.a, m.c), MergeProgress::Landed(commit));
    assert_eq!(
        progress(m.a, m.b),
        MergeProgress::Absent,
        "the branch moved on to another merge"
    );
}

#[test]
fn a_sync_into_a_worktree_is_committed_clean_or_left_as_a_merge_in_progress() {
    let m = MergeFixture::new();
    let g = m.f.git();
    let status = |name: &str| git(&m.f.wt(name), &["status", "--porcelain"]);
    let merge_head =
        |name: &str| PathBuf::from(git(&m.f.wt(name), &["rev-parse", "--absolute-git-dir"])).join("MERGE_HEAD");

    // Clean: committed with both parents, checked out, nothing left of the merge.
    let clean = match g.merge_into_worktree(&m.f.wt("b"), m.a, "sync a into b").expect("sync") {
        WorktreeMerge::Clean(commit) => commit,
        other => panic!("expected a clean merge, got {other:?}"),
    };
    assert_eq!(g.parents(clean).expect("parents"), [m.b, m.a]);
    assert_eq!(g.branch_head("flow/b").expect("head"), Some(clean));
    assert_eq!(status("b"), "", "the merge is checked out");
    assert!(!merge_head("b").exists());
    assert!(!g.merge_in_progress(&m.f.wt("b")).expect("state"));

    // Conflicting: left in progress, with the markers.
    let conflicted = g.merge_into_worktree(&m.f.wt("c"), m.a, "sync a into c").expect("sync");
    assert_eq!(conflicted, WorktreeMerge::Conflicted(vec!["a.txt".into()]));
    assert!(g.merge_in_progress(&m.f.wt("c")).expect("state"));
    assert!(
        fs::read_to_string(m.f.wt("c").join("a.txt"))
            .expect("read")
            .contains("<<<<<<<")
    );
    g.abort_merge_in(&m.f.wt("c"), &[]).expect("give it up");
    assert_eq!(status("c"), "");
    assert_eq!(g.branch_head("flow/c").expect("head"), Some(m.c));

    // Cut half-way (MERGE_HEAD is written before any file changes): a merge in progress,
    // given up as one, never the other side's files taken for the worktree's own work.
    fs::write(merge_head("c"), format!("{}\n", m.a)).expect("MERGE_HEAD");
    fs::write(m.f.wt("c").join("x.txt"), "from a\n").expect("one of a's files");
    assert!(g.merge_in_progress(&m.f.wt("c")).expect("state"));
    g.abort_merge_in(&m.f.wt("c"), &[]).expect("give it up");
    assert_eq!(status("c"), "");
}

#[test]
fn a_rebase_cut_between_moving_the_branch_and_checking_it_out_is_given_up_as_a_merge() {
    let m = MergeFixture::new();
    let g = m.f.git();
    let wt = m.f.wt("b");
    let status = || git(&wt, &["status", "--porcelain"]);
    let merge_head = PathBuf::from(git(&wt, &["rev-parse", "--absolute-git-dir"])).join("MERGE_HEAD");

    // Replayed: one commit on top of `a`, checked out, nothing of the rebase left.
    let replayed = match g.rebase_worktree(&wt, m.a, "sync a into b").expect("rebase") {
        WorktreeMerge::Clean(commit) => commit,
        other => panic!("expected a clean replay, got {other:?}"),
    };
    assert_eq!(g.parents(replayed).expect("parents"), [m.a], "replayed, not merged");
    assert_eq!(status(), "");
    assert!(!merge_head.exists());
    assert!(wt.join("x.txt").exists(), "a's file is checked out");

    // Cut after the branch moved, before the checkout: the new head over the old files, and
    // MERGE_HEAD (written first) says a merge is in progress: given up, the files are the
    // new head's, none of the old tree's taken for uncommitted work.
    git(&wt, &["reset", "-q", "--hard", &m.b.to_string()]);
    fs::write(&merge_head, format!("{}\n", m.a)).expect("MERGE_HEAD");
    git(&wt, &["update-ref", "refs/heads/flow/b", &replayed.to_string()]);
    assert_ne!(status(), "", "torn: the old files under the new head");
    assert!(g.merge_in_progress(&wt).expect("state"));
    g.abort_merge_in(&wt, &[]).expect("give it up");
    assert_eq!(status(), "");
    assert!(!g.merge_in_progress(&wt).expect("state"));
    assert_eq!(g.branch_head("flow/b").expect("head"), Some(replayed));
    assert!(wt.join("x.txt").exists());
}

#[test]
fn conflicts_leave_the_target_untouched_and_name_the_paths() {
    let m = MergeFixture::new();
    let g = m.f.git();
    let refs_before = git(&m.f.root, &["for-each-ref"]);
    assert!(g.trial_merge(m.a, m.b).expect("trial").is_empty());
    assert_eq!(g.trial_merge(m.a, m.c).expect("trial"), vec!["a.txt"]);
    assert_eq!(g.trial_merge(m.c, m.a).expect("trial"), vec!["a.txt"]);
    assert_eq!(
        git(&m.f.root, &["for-each-ref"]),
        refs_before,
        "trial merges move nothing"
    );

    g.merge_into("integration/x", m.a, "Merge a").expect("ff");
    let before = g.branch_head("integration/x").expect("head");
    assert_eq!(
        g.merge_into("integration/x", m.c, "Merge c").expect("merge"),
        MergeOutcome::Conflict {
            paths: vec!["a.txt".to_owned()]
        }
    );
    assert_eq!(g.branch_head("integration/x").expect("head"), before);
    assert_eq!(git(&m.f.root, &["status", "--porcelain"]), "");
    let json = serde_json::to_value(MergeOutcome::Conflict {
        paths: vec!["a.txt".to_owned()],
    })
    .expect("serialize");
    assert_eq!(json, serde_json::json!({"outcome": "conflict", "paths": ["a.txt"]}));
}

#[test]
fn merges_refuse_moved_or_checked_out_targets() {
    let m = MergeFixture::new();
    let g = m.f.git();
    let recorded = g.branch_head("integration/x").expect("head").expect("exists");

    // Someone else moves the integration branch after flow recorded its head.
    g.set_branch("integration/x", m.a, Some(recorded), "elsewhere")
        .expect("move");
    let err = g
        .merge_into_expecting("integration/x", recorded, m.b, "Merge b")
        .expect_err("moved");
    assert!(
        matches!(
            &err,
            GitError::RefMoved { expected: Some(e), actual: Some(a), .. } if *e == recorded && *a == m.a
        ),
        "{err:?}"
    );
    assert_eq!(g.branch_head("integration/x").expect("head"), Some(m.a));

    // A branch checked out anywhere is never a merge target.
    assert!(matches!(
        g.merge_into("main", m.a, "into the user's branch"),
        Err(GitError::BranchCheckedOut { .. })
    ));
    assert!(matches!(
        g.merge_into("flow/b", m.a, "into a worktree's branch"),
        Err(GitError::BranchCheckedOut { .. })
    ));
    assert!(matches!(
        g.merge_into("integration/none", m.a, "absent"),
        Err(GitError::UnknownBranch(_))
    ));
    assert_eq!(git(&m.f.root, &["rev-parse", "main"]), m.base.to_string());
}

#[test]
fn checkout_detached_materialises_a_commit_and_removes_strays() {
    let m = MergeFixture::new();
    let g = m.f.git();
    let dir = m.f.wt("integration");

    g.checkout_detached(&dir, m.a).expect("create detached");
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), m.a.to_string());
    assert!(run_git(&dir, &["symbolic-ref", "-q", "HEAD"]).status.code() == Some(1));
    assert_eq!(git(&dir, &["status", "--porcelain"]), "");
    assert!(dir.join("b.txt").exists() && dir.join("x.txt").exists());
    assert_eq!(
        git(&m.f.root, &["branch", "--list", "flow-tmp/*"]),
        "",
        "the temporary branch is gone"
    );

    write(&dir.join("stray.txt"), "left by verify\n");
    write(&dir.join("a.txt"), "scribbled\n");
    write(&dir.join("target/cache.bin"), "ignored cache\n");
    fs::remove_file(dir.join("c.txt")).expect("delete");
    g.checkout_detached(&dir, m.b).expect("re-checkout");
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), m.b.to_string());
    assert_eq!(git(&dir, &["status", "--porcelain", "--ignored=no"]), "");
    assert!(!dir.join("stray.txt").exists(), "untracked files are removed");
    assert!(!dir.join("b.txt").exists(), "files deleted by the commit are removed");
    assert!(!dir.join("x.txt").exists(), "files of the old commit are removed");
    assert!(dir.join("core/lib.rs").exists());
    assert!(dir.join("c.txt").exists(), "deleted tracked files come back");
    assert_eq!(
        fs::read_to_string(dir.join("a.txt")).expect("read"),
        lines(Some((10, "omega")))
    );
    assert!(dir.join("target/cache.bin").exists(), "ignored files are kept");

    // A folder that is not a worktree is refused, the user's checkout above all.
    assert!(matches!(
        g.checkout_detached(&m.f.root, m.a),
        Err(GitError::UserCheckout { .. })
    ));
    assert!(matches!(
        g.checkout_detached(&m.f.root.join("src/.."), m.a),
        Err(GitError::UserCheckout { .. })
    ));
    write(&m.f.wt("a").join("unsaved.txt"), "agent work\n");
    assert!(matches!(
        g.checkout_detached(&m.f.wt("a"), m.b),
        Err(GitError::PathInTheWay { found, .. }) if found.contains("flow/a")
    ));
    assert!(
        m.f.wt("a").join("unsaved.txt").exists(),
        "a workstream's worktree is left alone"
    );
    let other = m.f.wt("other");
    write(&other.join("keep.txt"), "mine\n");
    assert!(matches!(
        g.checkout_detached(&other, m.a),
        Err(GitError::PathInTheWay { .. })
    ));
    assert!(other.join("keep.txt").exists());

    // A worktree deleted by hand is recreated.
    fs::remove_dir_all(&dir).expect("rm -rf");
    g.checkout_detached(&dir, m.c).expect("recreate");
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), m.c.to_string());
    git(&m.f.root, &["fsck", "--strict"]);
}

#[test]
fn handles_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Git>();
    assert_send_sync::<GitError>();
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main");
    // Eight threads at once reliably hit libgit2's racy "already checked out" test.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let g = g.clone();
            let dir = f.wt(&format!("t{i}"));
            std::thread::spawn(move || {
                g.add_worktree(&dir, &format!("flow/t{i}"), base)?;
                write(&dir.join("work.txt"), &format!("{i}\n"));
                g.commit_all(&dir, "work", &[])
            })
        })
        .collect();
    for handle in handles {
        let committed = handle.join().expect("thread finished");
        assert!(matches!(committed, Ok(Some(_))), "{committed:?}");
    }
    assert_eq!(g.worktrees().expect("list").len(), 8);
    for i in 0..8 {
        let dir = f.wt(&format!("t{i}"));
        g.remove_worktree(&dir, false).expect("remove");
        g.delete_branch(&format!("flow/t{i}")).expect("delete");
    }
    git(&f.root, &["fsck", "--strict"]);
}

/// Captures everything of the user's checkout that flow must never change.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let git_dir = root.join(".git");
    out.insert("HEAD file".to_owned(), fs::read(git_dir.join("HEAD")).expect("HEAD"));
    out.insert("index file".to_owned(), fs::read(git_dir.join("index")).expect("index"));
    out.insert("HEAD commit".to_owned(), git(root, &["rev-parse", "HEAD"]).into_bytes());
    out.insert(
        "stash list".to_owned(),
        git(root, &["stash", "list", "--format=%H %gs"]).into_bytes(),
    );
    out.insert(
        "refs/heads/main".to_owned(),
        git(root, &["rev-parse", "refs/heads/main"]).into_bytes(),
    );
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if path == git_dir {
                continue;
            }
            let relative = path.strip_prefix(root).expect("under root").display().to_string();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                out.insert(format!("dir {relative}"), Vec::new());
                pending.push(path);
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).expect("link");
                out.insert(format!("link {relative}"), target.display().to_string().into_bytes());
            } else {
                out.insert(format!("file {relative}"), fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[test]
fn the_users_checkout_is_byte_identical_after_a_full_run() {
    let f = Fixture::new();
    let root = &f.root;
    // The user is mid-work: a stash, a staged edit, an unstaged edit, an untracked file.
    write(&root.join("b.txt"), "stashed edit\n");
    git(root, &["stash", "-q"]);
    write(&root.join("a.txt"), &lines(Some((5, "staged by the user"))));
    git(root, &["add", "a.txt"]);
    write(&root.join("c.txt"), "unstaged edit\n");
    write(&root.join("notes.txt"), "untracked\n");
    write(&root.join("debug.log"), "ignored\n");
    let before = snapshot(root);

    let g = Git::discover(&root.join("src")).expect("discover");
    let base = g.resolve("main").expect("base");
    let user_dirty = g.is_dirty(root, &[]).expect("user's status");
    assert_eq!(user_dirty, vec!["a.txt", "c.txt", "notes.txt"]);
    g.ensure_branch("integration/run", base).expect("integration");
    let mut heads = Vec::new();
    for (name, file) in [("gui", "ui.txt"), ("api", "api.txt"), ("clash", "a.txt")] {
        let dir = f.wt(name);
        let branch = format!("flow/{name}");
        g.add_worktree(&dir, &branch, base).expect("add");
        g.lock_worktree(&dir, "flow run 1").expect("lock");
        write(&dir.join(file), &format!("{name}\n"));
        write(&dir.join(".ai/worktrees").join(name).join("context.md"), "seed\n");
        let head = g
            .commit_all(&dir, &format!("flow: {name}"), &[".ai/worktrees/"])
            .expect("commit")
            .expect("changed");
        assert!(
            g.check_worktree_integrity(&dir, &branch, base)
                .expect("check")
                .is_empty()
        );
        assert_eq!(g.changed_paths(base, head).expect("diff").len(), 1);
        heads.push(head);
    }
    assert!(g.trial_merge(heads[0], heads[1]).expect("trial").is_empty());
    let integration = f.wt("integration");
    assert_eq!(
        g.merge_into("integration/run", heads[0], "Merge gui").expect("merge"),
        MergeOutcome::FastForward { to: heads[0] }
    );
    g.checkout_detached(&integration, heads[0]).expect("verify tree");
    let merged = match g.merge_into("integration/run", heads[1], "Merge api").expect("merge") {
        MergeOutcome::Merged { commit } => commit,
        other => panic!("expected a merge, got {other:?}"),
    };
    g.checkout_detached(&integration, merged).expect("verify tree");
    assert_eq!(
        g.merge_into("integration/run", heads[2], "Merge clash").expect("merge"),
        MergeOutcome::Merged {
            commit: g.branch_head("integration/run").expect("head").expect("exists")
        },
        "a.txt was not changed on the integration side, so this merges cleanly"
    );
    for name in ["gui", "api", "clash"] {
        let dir = f.wt(name);
        g.unlock_worktree(&dir).expect("unlock");
        g.remove_worktree_ignoring(&dir, false, &[".ai/worktrees/"])
            .expect("remove");
    }
    g.remove_worktree(&integration, true).expect("remove");
    g.prune_stale_worktrees().expect("prune");
    assert!(g.worktrees().expect("list").is_empty());

    assert_eq!(snapshot(root), before, "the user's checkout did not change");
    git(root, &["fsck", "--strict"]);
    assert_eq!(git(root, &["worktree", "list", "--porcelain"]).lines().count(), 3);
}

#[test]
fn commit_all_names_nested_repositories_instead_of_failing_obscurely() {
    let f = Fixture::new();
    let g = f.git();
    let base = f.rev("main");
    let dir = f.wt("ws");
    g.add_worktree(&dir, "flow/ws", base).expect("add");
    let nested = dir.join("vendor/lib");
    fs::create_dir_all(&nested).expect("mkdir");
    git(&nested, &["init", "-q"]);
    write(&nested.join("x.txt"), "x\n");
    git(&nested, &["add", "-A"]);
    git(&nested, &["commit", "-q", "-m", "x"]);
    write(&dir.join("top.txt"), "top\n");

    let err = g.commit_all(&dir, "nested", &[]).expect_err("nested repository");
    assert!(
        matches!(&err, GitError::NestedRepository { paths, .. } if paths == &["vendor/lib"]),
        "{err:?}"
    );
    assert_eq!(g.branch_head("flow/ws").expect("head"), Some(base));

    // Excluded or ignored, it is simply left out.
    let committed = g
        .commit_all(&dir, "without vendor", &["vendor/"])
        .expect("commit")
        .expect("top.txt");
    let files = git(&f.root, &["ls-tree", "-r", "--name-only", &committed.to_string()]);
    assert!(files.contains("top.txt") && !files.contains("vendor"));
    write(&dir.join(".gitignore"), "*.log\ntarget/\nvendor/\n");
    assert!(g.commit_all(&dir, "ignore vendor", &[]).expect("commit").is_some());
}

/// The files, modes and symbolic links of a tree as `git ls-tree -r` lists them.
fn ls_tree(root: &Path, rev: &str) -> String {
    git(root, &["ls-tree", "-r", "--full-tree", rev])
}

#[test]
fn new_worktrees_hold_exactly_the_tree_with_a_stat_filled_index() {
    let f = Fixture::new();
    let root = &f.root;
    write(&root.join("deep/er/still/file.txt"), "deep\n");
    write(&root.join("empty.txt"), "");
    write(&root.join("run.sh"), "#!/bin/sh\necho hi\n");
    write(&root.join(".github/workflows/ci.yml"), "on: push\n");
    write(&root.join(".gitkeep"), "");
    std::os::unix::fs::symlink("deep/er/still/file.txt", root.join("link")).expect("symlink");
    git(root, &["add", "-A"]);
    git(root, &["update-index", "--chmod=+x", "run.sh"]);
    git(root, &["commit", "-q", "-m", "a richer tree"]);
    let g = f.git();
    let (old, new) = (f.rev("main~1"), f.rev("main"));

    // Three at once, two of them at one commit: the batch writes each commit's blobs once.
    let items: Vec<(PathBuf, String, Oid)> = [("one", new), ("two", new), ("three", old)]
        .iter()
        .map(|&(name, at)| (f.wt(name), format!("flow/{name}"), at))
        .collect();
    let results = g.add_worktrees(&items).expect("add");
    assert!(
        results.iter().all(|r| matches!(r, Ok(WorktreeState::Created { .. }))),
        "{results:?}"
    );

    let listed = git(root, &["worktree", "list", "--porcelain"]);
    for (dir, branch, at) in &items {
        assert!(
            listed.contains(&format!(
                "worktree {}\nHEAD {at}\nbranch refs/heads/{branch}",
                dir.display()
            )),
            "{listed}"
        );
        // The stat data of the files is in the index as written (before `git status`
        // refreshes it), so git compares stat data instead of content.
        let debug = git(dir, &["ls-files", "--debug", "a.txt"]);
        let meta = fs::metadata(dir.join("a.txt")).expect("stat");
        use std::os::unix::fs::MetadataExt;
        assert!(debug.contains(&format!("ino: {}", meta.ino())), "{debug}");
        assert!(debug.contains(&format!("size: {}", meta.size())), "{debug}");
        assert!(debug.contains(&format!("mtime: {}:", meta.mtime())), "{debug}");
        // Older (in whole seconds, as git compares) than the index: not racily clean, so
        // git trusts the stat data instead of hashing every file.
        let index_file = PathBuf::from(git(dir, &["rev-parse", "--git-path", "index"]));
        let index_file = if index_file.is_absolute() {
            index_file
        } else {
            dir.join(index_file)
        };
        assert!(meta.mtime() < fs::metadata(&index_file).expect("the index").mtime());
        assert_eq!(git(dir, &["status", "--porcelain", "--untracked-files=all"]), "");
        // The index holds the tree, entry for entry.
        let staged = git(dir, &["ls-files", "-s"]);
        let tree: Vec<String> = ls_tree(root, &at.to_string())
            .lines()
            .map(|line| {
                let (meta, path) = line.split_once('\t').expect("tab");
                let parts: Vec<&str> = meta.split(' ').collect();
                format!("{} {} 0\t{path}", parts[0], parts[2])
            })
            .collect();
        assert_eq!(staged, tree.join("\n"));
    }
    let one = f.wt("one");
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        fs::metadata(one.join("run.sh")).expect("stat").permissions().mode() & 0o111,
        0
    );
    assert_eq!(
        fs::metadata(one.join("a.txt")).expect("stat").permissions().mode() & 0o111,
        0
    );
    assert_eq!(
        fs::read_link(one.join("link")).expect("a link"),
        Path::new("deep/er/still/file.txt")
    );
    assert_eq!(
        fs::read_to_string(one.join("deep/er/still/file.txt")).expect("read"),
        "deep\n"
    );
    assert!(!f.wt("three").join("run.sh").exists(), "the older commit has no run.sh");

    // Work in a new worktree commits like anywhere else.
    write(&one.join("deep/new.txt"), "new\n");
    let commit = g.commit_all(&one, "work", &[]).expect("commit").expect("changed");
    assert_eq!(git(&one, &["rev-parse", "HEAD"]), commit.to_string());
    assert_eq!(git(&one, &["status", "--porcelain"]), "");
    git(root, &["fsck", "--strict"]);
}

#[test]
fn attributes_send_the_checkout_through_libgit2() {
    let f = Fixture::new();
    write(&f.root.join(".gitattributes"), "*.txt text eol=crlf\n");
    git(&f.root, &["add", "-A"]);
    git(&f.root, &["commit", "-q", "-m", "attributes"]);
    let g = f.git();
    let dir = f.wt("crlf");
    g.add_worktree(&dir, "flow/crlf", f.rev("main")).expect("add");
    assert_eq!(fs::read_to_string(dir.join("c.txt")).expect("read"), "sea\r\n");
    assert_eq!(git(&dir, &["status", "--porcelain"]), "");
    git(&f.root, &["fsck", "--strict"]);
}

/// A small pseudo-random generator, so the cases below are the same on every run.
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

/// Changes a few files of the worktree at `dir` at random: edits of one line, new files,
/// deletions, in a handful of folders (so two branches often touch the same folder, and
/// sometimes the same file).
fn random_changes(dir: &Path, rng: &mut Lcg, tag: &str) {
    for k in 0..1 + rng.below(4) {
        let path = dir.join(format!("f{}/g{}/x{}.txt", rng.below(3), rng.below(2), rng.below(3)));
        match rng.below(4) {
            0 if path.exists() => fs::remove_file(&path).expect("delete"),
            1 => write(
                &path.with_file_name(format!("new-{tag}-{k}.txt")),
                &format!("{tag} {k}\n"),
            ),
            _ => write(&path, &lines(Some((1 + rng.below(10), &format!("{tag} {k}"))))),
        }
    }
}

#[test]
fn merges_agree_with_git_merge_whether_or_not_files_changed_on_both_sides() {
    let f = Fixture::new();
    for a in 0..3 {
        for b in 0..2 {
            for c in 0..3 {
                write(&f.root.join(format!("f{a}/g{b}/x{c}.txt")), &lines(None));
            }
        }
    }
    git(&f.root, &["add", "-A"]);
    git(&f.root, &["commit", "-q", "-m", "folders"]);
    let g = f.git();
    let base = f.rev("main");
    let clone = f.tmp_path.join("clone");
    let mut rng = Lcg(7);
    let (mut merged, mut conflicted) = (0, 0);
    for case in 0..24 {
        let heads: Vec<Oid> = ["ours", "theirs"]
            .iter()
            .map(|side| {
                let dir = f.wt(&format!("{side}{case}"));
                g.add_worktree(&dir, &format!("flow/{side}{case}"), base).expect("add");
                random_changes(&dir, &mut rng, side);
                g.commit_all(&dir, side, &[]).expect("commit").expect("changed")
            })
            .collect();
        let into = format!("integration/{case}");
        g.ensure_branch(&into, heads[0]).expect("branch");
        let outcome = g.merge_into(&into, heads[1], "merge").expect("merge");
        if case == 0 {
            git(&f.tmp_path, &["clone", "-q", f.root.to_str().expect("utf-8"), "clone"]);
        } else {
            git(
                &clone,
                &["fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*"],
            );
        }
        git(&clone, &["checkout", "-q", "--detach", &heads[0].to_string()]);
        let cli = run_git(&clone, &["merge", "-q", "--no-ff", "-m", "cli", &heads[1].to_string()]);
        match outcome {
            MergeOutcome::Merged { commit } => {
                assert!(cli.status.success(), "case {case}: flow merged, git did not");
                assert_eq!(
                    git(&clone, &["rev-parse", "HEAD^{tree}"]),
                    git(&f.root, &["rev-parse", &format!("{commit}^{{tree}}")]),
                    "case {case}: the merged trees differ"
                );
                merged += 1;
            }
            MergeOutcome::Conflict { .. } => {
                assert!(!cli.status.success(), "case {case}: flow saw a conflict, git did not");
                git(&clone, &["merge", "--abort"]);
                conflicted += 1;
            }
            other => panic!("case {case}: {other:?}"),
        }
    }
    assert!(
        merged >= 8 && conflicted >= 2,
        "{merged} merged, {conflicted} conflicted"
    );
    git(&f.root, &["fsck", "--strict"]);
}

#[test]
fn has_uncommitted_agrees_with_the_full_status_in_every_case() {
    let f = Fixture::new();
    let g = f.git();
    let dir = f.wt("w");
    g.add_worktree(&dir, "flow/w", f.rev("main")).expect("add");
    let ignore = [".ai/worktrees/"];
    // Context files under an ignored prefix, in folders git does not track.
    write(&dir.join(".ai/worktrees/w/context.md"), "context\n");
    // Files older than the index, so their stat data is trusted (not racily clean).
    let aged = Command::new("sh")
        .arg("-c")
        .arg("git ls-files -z | xargs -0 touch -h -d 2020-01-02T00:00:00Z && git update-index --really-refresh")
        .current_dir(&dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .expect("sh");
    assert!(aged.success());
    let check = |case: &str, expect_dirty: bool| {
        let listed = g.is_dirty(&dir, &ignore).expect("status");
        let dirty = g.has_uncommitted(&dir, &ignore).expect("has_uncommitted");
        assert_eq!(dirty, !listed.is_empty(), "{case}: {listed:?}");
        assert_eq!(dirty, expect_dirty, "{case}: {listed:?}");
    };
    check("clean", false);
    write(&dir.join("debug.log"), "ignored by *.log\n");
    check("an ignored file", false);
    fs::create_dir_all(dir.join("empty/folder")).expect("mkdir");
    check("an empty folder", false);
    // Without these two (which stat data alone cannot clear), the cases below take the
    // fast way whenever it can answer.
    fs::remove_file(dir.join("debug.log")).expect("rm");
    fs::remove_dir_all(dir.join("empty")).expect("rm");
    write(&dir.join("src/new.rs"), "new\n");
    check("an untracked file in a tracked folder", true);
    fs::remove_file(dir.join("src/new.rs")).expect("rm");
    write(&dir.join("fresh/deep/new.rs"), "new\n");
    check("an untracked folder", true);
    fs::remove_dir_all(dir.join("fresh")).expect("rm");
    check("clean again", false);
    // Same size, same second: only the content (or the nanoseconds) tell.
    write(&dir.join("b.txt"), "BEE\n");
    check("an edit of the same size", true);
    let touch_old = Command::new("touch")
        .args(["-d", "2020-01-03T00:00:00Z"])
        .arg(dir.join("b.txt"))
        .status()
        .expect("touch");
    assert!(touch_old.success());
    check("an edit of the same size with an old time", true);
    git(&dir, &["checkout", "--", "b.txt"]);
    check("the edit undone", false);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.join("b.txt"), fs::Permissions::from_mode(0o755)).expect("chmod");
    check("an executable bit", true);
    fs::set_permissions(dir.join("b.txt"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::remove_file(dir.join("c.txt")).expect("rm");
    check("a deleted file", true);
    git(&dir, &["checkout", "--", "c.txt"]);
    write(&dir.join("b.txt"), "staged\n");
    git(&dir, &["add", "b.txt"]);
    git(&dir, &["checkout", "HEAD", "--", "b.txt"]);
    git(&dir, &["add", "b.txt"]);
    check("staged and unstaged back", false);
    write(&dir.join("b.txt"), "staged\n");
    git(&dir, &["add", "b.txt"]);
    check("a staged change", true);
}

#[test]
fn changed_paths_agree_with_git_diff_find_renames() {
    let f = Fixture::new();
    for a in 0..3 {
        for b in 0..2 {
            for c in 0..3 {
                write(
                    &f.root.join(format!("f{a}/g{b}/x{c}.txt")),
                    &format!("{a}{b}{c}\n{}", lines(None)),
                );
            }
        }
    }
    git(&f.root, &["add", "-A"]);
    git(&f.root, &["commit", "-q", "-m", "folders"]);
    let g = f.git();
    let base = f.rev("main");
    let mut rng = Lcg(3);
    for case in 0..16 {
        let dir = f.wt(&format!("c{case}"));
        g.add_worktree(&dir, &format!("flow/c{case}"), base).expect("add");
        random_changes(&dir, &mut rng, "c");
        // A move to another folder, and a whole folder deleted or replaced by a file.
        let moved = dir.join(format!("f{}/g{}/x{}.txt", rng.below(3), rng.below(2), rng.below(3)));
        if moved.exists() {
            fs::rename(&moved, dir.join(format!("moved-{case}.txt"))).expect("mv");
        }
        if rng.below(2) == 0 {
            let folder = dir.join(format!("f{}/g{}", rng.below(3), rng.below(2)));
            if folder.exists() {
                fs::remove_dir_all(&folder).expect("rm");
                if rng.below(2) == 0 {
                    write(&folder, "now a file\n");
                }
            }
        }
        let head = g.commit_all(&dir, "c", &[]).expect("commit").expect("changed");
        let ours: Vec<String> = g
            .changed_paths(base, head)
            .expect("changed paths")
            .iter()
            .map(|c| match (&c.kind, &c.old_path) {
                (ChangeKind::Renamed, Some(old)) => format!("R {old} -> {}", c.path),
                (kind, _) => format!("{} {}", &format!("{kind:?}")[..1], c.path),
            })
            .collect();
        let mut theirs: Vec<String> = git(
            &f.root,
            &["diff", "--name-status", "-M", &base.to_string(), &head.to_string()],
        )
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[0].chars().next() {
                Some('R') => format!("R {} -> {}", fields[1], fields[2]),
                Some('A') => format!("A {}", fields[1]),
                Some('D') => format!("D {}", fields[1]),
                Some('T') => format!("T {}", fields[1]),
                _ => format!("M {}", fields[1]),
            }
        })
        .collect();
        let key = |s: &String| s.rsplit(' ').next().unwrap_or_default().to_owned();
        theirs.sort_by_key(key);
        let mut ours_sorted = ours.clone();
        ours_sorted.sort_by_key(key);
        assert_eq!(ours_sorted, theirs, "case {case}");
    }

    // Names libgit2 would read as patterns (an exclusion, a comment, trailing blanks) hide nothing.
    let dir = f.wt("patterns");
    g.add_worktree(&dir, "flow/patterns", base).expect("add");
    write(&dir.join("f0/g0/x0.txt"), "changed\n");
    for name in ["!f0", "#notes.md", "blank "] {
        write(&dir.join(name), "odd name\n");
    }
    let head = g.commit_all(&dir, "odd names", &[]).expect("commit").expect("changed");
    let paths: Vec<String> = g
        .changed_paths(base, head)
        .expect("changed")
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(paths, ["!f0", "#notes.md", "blank ", "f0/g0/x0.txt"]);
}

#[test]
fn a_worktree_left_half_made_is_made_again_unless_its_maker_lives() {
    let f = Fixture::new();
    let g = f.git();
    let dir = f.wt("half");
    g.add_worktree(&dir, "flow/half", f.rev("main")).expect("add");
    let admin = PathBuf::from(
        fs::read_to_string(dir.join(".git"))
            .expect(".git")
            .trim_end()
            .trim_start_matches("gitdir: "),
    );
    // Files half written when its maker stopped.
    fs::remove_file(dir.join("a.txt")).expect("rm");
    let _ = fs::remove_file(admin.join("index"));

    // A maker that is alive (this process) is left alone.
    fs::write(
        admin.join("locked"),
        format!("{WORKTREE_BEING_MADE} by process {}\n", std::process::id()),
    )
    .expect("lock");
    let err = g
        .add_worktree(&dir, "flow/half", f.rev("main"))
        .expect_err("being made");
    assert!(
        matches!(&err, GitError::PathInTheWay { found, .. } if found.contains("another flow")),
        "{err:?}"
    );

    // A maker that is gone: the worktree is made again, whole.
    let mut gone = Command::new("true").spawn().expect("spawn");
    let pid = gone.id();
    gone.wait().expect("wait");
    fs::write(
        admin.join("locked"),
        format!("{WORKTREE_BEING_MADE} by process {pid}\n"),
    )
    .expect("lock");
    assert!(matches!(
        g.add_worktree(&dir, "flow/half", f.rev("main")).expect("made again"),
        WorktreeState::Created { .. }
    ));
    assert_eq!(fs::read_to_string(dir.join("a.txt")).expect("a.txt"), lines(None));
    assert_eq!(git(&dir, &["status", "--porcelain"]), "");
    let listed = git(&f.root, &["worktree", "list", "--porcelain"]);
    assert!(!listed.contains("locked"), "{listed}");
    git(&f.root, &["fsck", "--strict"]);
}

/// Every file under `dir` but `.git`, with its bytes and whether it is executable.
fn files_with_bytes(dir: &Path) -> Vec<(String, Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = vec![];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).expect("read folder") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir").display().to_string();
                let bytes = if meta.file_type().is_symlink() {
                    fs::read_link(&path).expect("link").display().to_string().into_bytes()
                } else {
                    fs::read(&path).expect("read")
                };
                found.push((relative, bytes, meta.permissions().mode() & 0o111 != 0));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn worktrees_are_byte_identical_to_git_worktree_add_for_each_kind_of_attributes() {
    // Each kind of attributes, and the file it converts on checkout, if any.
    let kinds = [
        ("*.txt text eol=lf\n", None),
        (
            "*.txt -text\n*.c whitespace=trailing-space,space-before-tab diff=cpp merge=union\n",
            None,
        ),
        (
            "*.md linguist-documentation linguist-generated=true export-ignore\n",
            None,
        ),
        ("* text=auto\n*.bin binary\n", None),
        ("[attr]mine text eol=lf\n*.txt mine\n", None),
        ("\"with space.txt\" text\n*.txt crlf=input\n", None),
        // Attributes that convert: libgit2 writes the files they match.
        ("*.txt text eol=crlf\n", Some("x.txt")),
        ("*.id ident\n", Some("s.id")),
        ("[attr]windows text eol=crlf\n*.txt windows\n", Some("x.txt")),
        // As real projects have it: one line for Windows batch files.
        ("* text=auto\n*.sh eol=lf\n*.bat text eol=crlf\n", Some("sub/w.bat")),
    ];
    for (k, (attributes, converted)) in kinds.iter().enumerate() {
        let f = Fixture::new();
        // Blobs with CRLF and LF, committed as they are, then the attributes.
        write(&f.root.join("w.txt"), "one\r\ntwo\r\n");
        write(&f.root.join("x.txt"), "x\n");
        write(&f.root.join("with space.txt"), "s\n");
        write(&f.root.join("sub/m.c"), "int x; \n");
        write(&f.root.join("doc.md"), "# doc\r\n");
        write(&f.root.join("s.id"), "$Id$\n");
        write(&f.root.join("data.bin"), "\0\r\n");
        write(&f.root.join("sub/w.bat"), "echo a\necho b\n");
        std::os::unix::fs::symlink("x.txt", f.root.join("link")).expect("symlink");
        write(&f.root.join("run.sh"), "#!/bin/sh\n");
        git(&f.root, &["update-index", "--add", "--chmod=+x", "run.sh"]);
        git(&f.root, &["add", "-A"]);
        git(&f.root, &["commit", "-q", "-m", "files"]);
        write(&f.root.join(".gitattributes"), attributes);
        write(&f.root.join("sub/.gitattributes"), "*.c diff\n");
        git(&f.root, &["add", "-A"]);
        git(&f.root, &["commit", "-q", "-m", "attributes"]);
        let ours = f.wt(&format!("flow-{k}"));
        let theirs = f.wt(&format!("git-{k}"));
        f.git()
            .add_worktree(&ours, &format!("flow/k{k}"), f.rev("main"))
            .expect("add");
        git(
            &f.root,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("git/k{k}"),
                theirs.to_str().expect("utf-8"),
                "main",
            ],
        );
        let (a, b) = (files_with_bytes(&ours), files_with_bytes(&theirs));
        assert_eq!(a, b, "attributes {attributes:?}");
        // Clean, and its index the commit's tree (git's own worktree may list a file whose
        // blob a commit would renormalize, when it was written in the index's second).
        assert_eq!(git(&ours, &["status", "--porcelain"]), "", "attributes {attributes:?}");
        assert_eq!(git(&ours, &["write-tree"]), git(&f.root, &["rev-parse", "main^{tree}"]));
        // flow's own writer (which dates files at a whole second; libgit2 alone does not)
        // wrote every file no attribute converts; libgit2 wrote the others, dated after it
        // so none is racily clean.
        let whole_second = |name: &str| {
            use std::os::unix::fs::MetadataExt;
            fs::symlink_metadata(ours.join(name)).expect(name).mtime_nsec() == 0
        };
        assert!(whole_second("run.sh"), "attributes {attributes:?}");
        if let Some(converted) = converted {
            assert!(whole_second(converted), "attributes {attributes:?}");
        }
    }
}
