//! The verbs for people who launch agents by hand: `flow prepare`, `flow context`,
//! `flow merge`, `flow conflicts` and `flow clean` here, `flow sync` in [`sync`], `flow resolve`
//! and the resume after it in [`resolve`], against real temporary repositories whose worktrees
//! the tests change as an agent (or a person) would. Every verb must leave the user's checkout
//! (HEAD, index, working files, stash) byte for byte as it was.

mod guard;
mod open;
mod resolve;
mod sync;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::TestEnv;

/// A workflow `t` on `main` whose agent is a person: nothing is launched, every workstream
/// has a task.
const HEADER: &str = r#"
workflow "t" {
    base "main"
}
agent "human" {
    command "true"
}
defaults {
    agent "human"
}
"#;

const INTO: &str = "integration/t";

/// Writes and commits `parallel.kdl` (the manual header plus `body`) and the given files.
fn setup(files: &[(&str, &str)], body: &str) -> TestEnv {
    let env = TestEnv::new();
    for (path, text) in files {
        env.write(path, text);
    }
    env.workflow(&format!("{HEADER}\n{body}"));
    env
}

/// Leaves the user's checkout in a state flow must not disturb: a stash entry, a modified
/// tracked file, a staged new file and an untracked file.
fn dirty_the_checkout(env: &TestEnv) {
    env.write("README.md", "# stashed edit\n");
    env.git(&["stash", "push", "-q", "-m", "the user's stash"]);
    env.write("README.md", "# test repository\nan edit in progress\n");
    env.write("staged.txt", "staged by the user\n");
    env.git(&["add", "staged.txt"]);
    env.write("scratch.txt", "untracked notes\n");
}

/// Everything of the user's checkout, byte for byte: `.git/HEAD`, the commit it names,
/// `.git/index`, every working file (but `.git/` and flow's own `.flow/`) and the stash.
#[derive(Debug, PartialEq, Eq)]
struct Checkout {
    head_file: Vec<u8>,
    head: String,
    index: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    stash: String,
}

fn checkout(env: &TestEnv) -> Checkout {
    fn walk(dir: &Path, rel: &str, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if rel == ".git" || rel == ".flow" {
                continue;
            }
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                files.insert(format!("{rel}/"), vec![]);
                walk(&entry.path(), &rel, files);
            } else {
                files.insert(rel, std::fs::read(entry.path()).expect("read file"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(&env.root, "", &mut files);
    Checkout {
        head_file: std::fs::read(env.root.join(".git/HEAD")).expect(".git/HEAD"),
        head: env.git(&["rev-parse", "HEAD"]),
        index: std::fs::read(env.root.join(".git/index")).expect(".git/index"),
        files,
        stash: env.git(&["stash", "list", "--format=%H %gs"]),
    }
}

/// What one `flow` command did.
struct Run {
    out: Output,
}

impl Run {
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn text(&self) -> String {
        format!(
            "--- stdout\n{}--- stderr\n{}",
            self.stdout(),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    #[track_caller]
    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), code, "exit code\n{}", self.text());
        self
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.text()))
    }

    /// The line of the output about one workstream (`name  result  detail`), as its words
    /// after the name.
    #[track_caller]
    fn line(&self, workstream: &str) -> String {
        let stdout = self.stdout();
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(workstream))
            .unwrap_or_else(|| panic!("no line for {workstream}:\n{}", self.text()));
        line.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    }

    /// The result word of a workstream's line (`created`, `merged`, `skipped`, ...).
    #[track_caller]
    fn result(&self, workstream: &str) -> String {
        self.line(workstream).split(' ').next().unwrap_or("").to_string()
    }
}

/// Runs `flow` in `dir` (the repository's root unless given) and checks the user's checkout
/// is byte-identical afterwards.
#[track_caller]
fn flow_in(env: &TestEnv, dir: Option<&Path>, args: &[&str]) -> Run {
    let before = checkout(env);
    let mut cmd = env.flow();
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .args(args)
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("flow runs");
    let run = Run { out };
    let after = checkout(env);
    assert!(
        before == after,
        "`flow {}` changed the user's checkout:\nbefore {before:#?}\nafter {after:#?}\n{}",
        args.join(" "),
        run.text()
    );
    run
}

#[track_caller]
fn flow(env: &TestEnv, args: &[&str]) -> Run {
    flow_in(env, None, args)
}

/// The worktree folder of a workstream of workflow `t`.
fn worktree(env: &TestEnv, ws: &str) -> PathBuf {
    env.root.parent().expect("a parent").join("repo-worktrees/t").join(ws)
}

/// Runs git in a folder (a worktree, a clone) with the tests' hermetic environment.
#[track_caller]
fn git_at(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = env
        .git_command()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// Writes a file in a workstream's worktree, as its agent would.
fn write_in(env: &TestEnv, ws: &str, path: &str, text: &str) {
    let full = worktree(env, ws).join(path);
    std::fs::create_dir_all(full.parent().expect("a parent")).expect("create dirs");
    std::fs::write(full, text).expect("write file");
}

/// Commits everything in a workstream's worktree, as an agent that commits would (flow
/// starts agents with no hooks, so the worktree's scope hook does not run).
fn agent_commit(env: &TestEnv, ws: &str, message: &str) {
    let dir = worktree(env, ws);
    git_at(env, &dir, &["add", "-A", "--", ".", ":!.ai"]);
    git_at(env, &dir, &["commit", "-q", "--no-verify", "-m", message]);
}

fn branch(ws: &str) -> String {
    format!("flow/t/{ws}")
}

/// Every path any commit of any ref touches.
fn paths_in_history(env: &TestEnv) -> Vec<String> {
    let mut paths: Vec<String> = env
        .git(&["log", "--all", "--name-only", "--format="])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The folders `git worktree list` shows.
fn worktree_list(env: &TestEnv) -> Vec<String> {
    env.git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(str::to_string)
        .collect()
}

const FILES: &[(&str, &str)] = &[
    ("src/api/handlers.txt", "handlers v1\n"),
    ("src/api/old.txt", "the old routes\n"),
    ("src/ui/view.txt", "view v1\n"),
    ("src/ui/gone.txt", "to be deleted\n"),
];

/// `api` and `ui` start at once (`ui` merges first: higher priority); `tests` waits for both.
const THREE: &str = r#"
workstream "api" { owns "src/api/**"; task "Write the API."; context "README.md" "src/api/handlers.txt"; }
workstream "ui" { owns "src/ui/**"; task "Write the UI."; priority "high"; }
workstream "tests" { owns "tests/**"; task "Test the API and the UI."; depends-on "api" "ui"; }
"#;

#[test]
fn prepare_makes_worktrees_branches_and_context_for_what_can_start() {
    let env = setup(FILES, THREE);
    dirty_the_checkout(&env);
    let main = env.rev_parse("main").expect("main");

    let prepared = flow(&env, &["prepare"]);
    prepared.assert_code(0);
    assert!(
        prepared.result("api") == "created" && prepared.result("ui") == "created",
        "{}",
        prepared.text()
    );
    assert_eq!(prepared.result("tests"), "waiting", "{}", prepared.text());
    assert!(prepared.line("tests").contains("api, ui"), "{}", prepared.text());
    assert_eq!(
        env.rev_parse(INTO).as_deref(),
        Some(main.as_str()),
        "the integration branch starts at base"
    );

    for ws in ["api", "ui"] {
        let dir = worktree(&env, ws);
        assert_eq!(
            git_at(&env, &dir, &["symbolic-ref", "HEAD"]),
            format!("refs/heads/{}", branch(ws))
        );
        assert_eq!(git_at(&env, &dir, &["rev-parse", "HEAD"]), main, "{ws} starts at base");
        let context = dir.join(".ai/worktrees").join(ws);
        for file in ["context.md", "current_task.md", "agent_config.json", "prompt.md"] {
            let text = std::fs::read_to_string(context.join(file)).unwrap_or_default();
            assert!(!text.trim().is_empty(), "{ws}: {file} is missing or empty");
        }
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(context.join("agent_config.json")).expect("config"))
                .expect("agent_config.json is JSON");
        assert_eq!(config["workstream"], ws);
        // The context files ignore themselves: the worktree is clean, nothing is staged.
        assert_eq!(git_at(&env, &dir, &["status", "--porcelain"]), "", "{ws}");

        // `flow context` prints exactly the prompt the worktree got, from anywhere in the repo.
        let prompt = std::fs::read_to_string(context.join("prompt.md")).expect("prompt.md");
        assert!(prompt.contains(&format!("workstream `{ws}`")), "{prompt}");
        let printed = flow(&env, &["context", "parallel.kdl", ws]);
        printed.assert_code(0);
        assert_eq!(printed.stdout(), prompt, "flow context {ws} at the root");
        let printed = flow_in(&env, Some(&env.root.join("src")), &["context", "../parallel.kdl", ws]);
        printed.assert_code(0);
        assert_eq!(printed.stdout(), prompt, "flow context {ws} in a subfolder");
        let config_text = flow(&env, &["context", "parallel.kdl", ws, "--config"]);
        assert_eq!(
            config_text.stdout().trim_end(),
            std::fs::read_to_string(context.join("agent_config.json"))
                .expect("config")
                .trim_end()
        );
    }
    let api_prompt =
        std::fs::read_to_string(worktree(&env, "api").join(".ai/worktrees/api/prompt.md")).expect("prompt");
    assert!(api_prompt.contains("`src/api/handlers.txt` (12 bytes"), "{api_prompt}");
    assert!(
        !worktree(&env, "tests").exists(),
        "a waiting workstream gets no worktree"
    );
    assert_eq!(env.rev_parse(&branch("tests")), None, "nor a branch");

    // Again: everything is reused, untouched.
    let heads: Vec<_> = ["api", "ui"].iter().map(|ws| env.rev_parse(&branch(ws))).collect();
    let again = flow(&env, &["prepare"]);
    again.assert_code(0);
    assert_eq!(
        (again.result("api"), again.result("ui"), again.result("tests")),
        ("reused".into(), "reused".into(), "waiting".into()),
        "{}",
        again.text()
    );
    let after: Vec<_> = ["api", "ui"].iter().map(|ws| env.rev_parse(&branch(ws))).collect();
    assert_eq!(heads, after);
    assert_eq!(worktree_list(&env).len(), 3, "the checkout and two worktrees");
    let unknown = flow(&env, &["context", "parallel.kdl", "apj"]);
    assert_eq!(unknown.code(), 2);
    assert!(unknown.text().contains("did you mean `api`"), "{}", unknown.text());
}

#[test]
fn prepare_refuses_a_non_empty_folder_in_the_way() {
    let env = setup(FILES, THREE);
    dirty_the_checkout(&env);
    let blocked = worktree(&env, "ui");
    std::fs::create_dir_all(&blocked).expect("create folder");
    std::fs::write(blocked.join("precious.txt"), "mine\n").expect("write");

    let prepared = flow(&env, &["prepare"]);
    prepared.assert_code(1);
    assert_eq!(prepared.result("ui"), "failed", "{}", prepared.text());
    let line = prepared.line("ui");
    assert!(
        line.contains(&blocked.display().to_string()) && line.contains("non-empty folder"),
        "{line}"
    );
    assert_eq!(
        prepared.result("api"),
        "created",
        "the others are prepared: {}",
        prepared.text()
    );
    assert_eq!(
        std::fs::read_to_string(blocked.join("precious.txt")).as_deref().ok(),
        Some("mine\n"),
        "the folder is left alone"
    );
    assert_eq!(env.rev_parse(&branch("ui")), None, "no branch is left behind");
    assert_eq!(worktree_list(&env).len(), 2, "the checkout and api's worktree");
}

#[test]
fn merge_commits_leftovers_and_merges_in_plan_order_like_git_merge_then_dependents_follow() {
    let env = setup(FILES, THREE);
    dirty_the_checkout(&env);
    let main = env.rev_parse("main").expect("main");
    assert_eq!(env.merge_order(), ["ui", "api", "tests"]);
    flow(&env, &["prepare"]).assert_code(0);

    // api: one commit by the agent, then a rename (a plain `mv`) and a new file left as they are.
    write_in(&env, "api", "src/api/handlers.txt", "handlers v2\n");
    agent_commit(&env, "api", "api: handlers v2");
    std::fs::rename(
        worktree(&env, "api").join("src/api/old.txt"),
        worktree(&env, "api").join("src/api/routes.txt"),
    )
    .expect("rename");
    write_in(&env, "api", "src/api/new.txt", "brand new\n");
    // ui: a committed deletion, then an edit left unstaged and a new file left staged.
    git_at(&env, &worktree(&env, "ui"), &["rm", "-q", "src/ui/gone.txt"]);
    git_at(
        &env,
        &worktree(&env, "ui"),
        &["commit", "-q", "-m", "ui: drop gone.txt"],
    );
    write_in(&env, "ui", "src/ui/view.txt", "view v2\n");
    write_in(&env, "ui", "src/ui/widget.txt", "a widget\n");
    git_at(&env, &worktree(&env, "ui"), &["add", "src/ui/widget.txt"]);

    let merged = flow(&env, &["merge"]);
    merged.assert_code(0);
    assert_eq!(merged.result("ui"), "merged", "{}", merged.text());
    assert_eq!(merged.result("api"), "merged", "{}", merged.text());
    assert_eq!(merged.result("tests"), "skipped", "{}", merged.text());
    let stdout = merged.stdout();
    let position = |ws: &str| stdout.find(&format!("{ws} ")).expect("a line");
    assert!(
        position("ui") < position("api") && position("api") < position("tests"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{INTO} is at ")), "{stdout}");

    // Everything left in the worktrees was committed; the context files ignore themselves.
    for ws in ["api", "ui"] {
        assert_eq!(
            git_at(&env, &worktree(&env, ws), &["status", "--porcelain"]),
            "",
            "{ws}"
        );
    }
    let api_changes = env.git(&["diff", "--name-status", "-M", &main, &branch("api")]);
    assert!(
        api_changes.contains("R100\tsrc/api/old.txt\tsrc/api/routes.txt"),
        "{api_changes}"
    );
    // In the plan's order: ui first (a fast-forward), then api in a merge commit.
    let head = env.rev_parse(INTO).expect("integration branch");
    let ui_head = env.rev_parse(&branch("ui")).expect("ui");
    let api_head = env.rev_parse(&branch("api")).expect("api");
    assert_eq!(env.parents(&head), [ui_head.clone(), api_head.clone()]);
    let files = env.files_at(INTO);
    for (path, text) in [
        ("src/api/handlers.txt", "handlers v2\n"),
        ("src/api/routes.txt", "the old routes\n"),
        ("src/api/new.txt", "brand new\n"),
        ("src/ui/view.txt", "view v2\n"),
        ("src/ui/widget.txt", "a widget\n"),
    ] {
        assert_eq!(env.show_file(INTO, path).as_deref(), Some(text), "{path}");
    }
    assert!(
        !files.iter().any(|f| f == "src/api/old.txt" || f == "src/ui/gone.txt"),
        "{files:?}"
    );
    let history = paths_in_history(&env);
    assert!(
        !history.iter().any(|p| p.starts_with(".ai/")),
        "context files were committed: {history:?}"
    );

    // `git merge --no-ff` of the same branches in the same order, in a clone, gives the same tree.
    let clone = env.outside.join("clone");
    env.git(&[
        "clone",
        "-q",
        &env.root.display().to_string(),
        &clone.display().to_string(),
    ]);
    git_at(&env, &clone, &["checkout", "-q", "-b", "cli", "origin/main"]);
    for ws in ["ui", "api"] {
        git_at(
            &env,
            &clone,
            &["merge", "-q", "--no-ff", "--no-edit", &format!("origin/{}", branch(ws))],
        );
    }
    assert_eq!(
        git_at(&env, &clone, &["rev-parse", "HEAD^{tree}"]),
        env.git(&["rev-parse", &format!("{INTO}^{{tree}}")]),
        "flow merge and git merge --no-ff give the same tree"
    );

    // Now tests can start, from the integration branch.
    let prepared = flow(&env, &["prepare"]);
    prepared.assert_code(0);
    assert_eq!(
        (prepared.result("api"), prepared.result("ui"), prepared.result("tests")),
        ("reused".into(), "reused".into(), "created".into()),
        "{}",
        prepared.text()
    );
    assert_eq!(git_at(&env, &worktree(&env, "tests"), &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git_at(&env, &worktree(&env, "tests"), &["symbolic-ref", "HEAD"]),
        format!("refs/heads/{}", branch("tests"))
    );
    // Before it changes anything, there is nothing of its own to merge or to overlap.
    let early = flow(&env, &["merge"]);
    early.assert_code(0);
    assert_eq!(early.result("tests"), "skipped", "{}", early.text());
    assert!(early.line("tests").contains("no commits"), "{}", early.text());
    let conflicts = flow(&env, &["conflicts", "--json"]);
    conflicts.assert_code(0);
    assert_eq!(conflicts.json()["live"], serde_json::json!([]), "{}", conflicts.text());
    assert_eq!(env.rev_parse(INTO).as_deref(), Some(head.as_str()));

    write_in(&env, "tests", "tests/test_all.txt", "it works\n");
    let second = flow(&env, &["merge"]);
    second.assert_code(0);
    assert_eq!(
        (second.result("ui"), second.result("api"), second.result("tests")),
        ("already-merged".into(), "already-merged".into(), "merged".into()),
        "{}",
        second.text()
    );
    let final_head = env.rev_parse(INTO).expect("integration branch");
    assert_eq!(
        env.rev_parse(&branch("tests")).as_deref(),
        Some(final_head.as_str()),
        "a fast-forward"
    );
    assert_eq!(env.parents(&final_head), [head]);
    assert_eq!(env.show_file(INTO, "tests/test_all.txt").as_deref(), Some("it works\n"));
    let history = paths_in_history(&env);
    assert!(
        !history.iter().any(|p| p.starts_with(".ai/")),
        "context files were committed: {history:?}"
    );
    assert_eq!(
        env.rev_parse("main").as_deref(),
        Some(main.as_str()),
        "base is untouched"
    );
    env.assert_fsck_clean();
}

#[test]
fn merge_leaves_out_a_branch_that_changed_files_outside_its_scope() {
    let env = setup(
        &[],
        r#"
workstream "a" { owns "a/**"; task "Write a."; }
workstream "b" { owns "b/**"; task "Write b."; }
"#,
    );
    dirty_the_checkout(&env);
    flow(&env, &["prepare"]).assert_code(0);
    write_in(&env, "a", "a/a.txt", "A\n");
    write_in(&env, "a", "README.md", "rewritten by a\n");
    agent_commit(&env, "a", "a: a.txt and the README");
    write_in(&env, "b", "b/b.txt", "B\n");

    let merged = flow(&env, &["merge"]);
    merged.assert_code(1);
    assert_eq!(merged.result("a"), "failed", "{}", merged.text());
    assert!(
        merged.line("a").contains("outside its scope: README.md"),
        "{}",
        merged.text()
    );
    assert_eq!(merged.result("b"), "merged", "{}", merged.text());
    let head = env.rev_parse(INTO).expect("integration branch");
    assert_eq!(env.rev_parse(&branch("b")).as_deref(), Some(head.as_str()));
    assert_eq!(env.show_file(INTO, "README.md").as_deref(), Some("# test repository\n"));
    assert_eq!(env.show_file(INTO, "a/a.txt"), None);

    // Still out of scope the next time; b is already in.
    let again = flow(&env, &["merge", "--json"]);
    again.assert_code(1);
    let items = again.json();
    assert_eq!(items["version"], 1, "{items:#}");
    let result = |ws: &str| {
        items["workstreams"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|i| i["workstream"] == ws)
            .map(|i| i["result"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(result("a").as_deref(), Some("failed"));
    assert_eq!(result("b").as_deref(), Some("already-merged"));
}

#[test]
fn merge_rolls_back_a_branch_that_fails_verify_and_merges_the_others() {
    let env = setup(
        &[],
        r#"
workstream "a" { owns "a/**"; task "Write a."; priority "high"; }
workstream "v" { owns "v/**"; task "Write v."; priority "medium"; }
workstream "z" { owns "z/**"; task "Write z."; priority "low"; }
integrate {
    verify "test ! -e v/bad"
}
"#,
    );
    dirty_the_checkout(&env);
    assert_eq!(env.merge_order(), ["a", "v", "z"]);
    flow(&env, &["prepare"]).assert_code(0);
    write_in(&env, "a", "a/a.txt", "A\n");
    write_in(&env, "v", "v/bad", "breaks verify\n");
    write_in(&env, "z", "z/z.txt", "Z\n");

    let merged = flow(&env, &["merge"]);
    merged.assert_code(1);
    assert_eq!(merged.result("a"), "merged", "{}", merged.text());
    assert!(merged.line("a").contains("verified"), "{}", merged.text());
    assert_eq!(merged.result("v"), "failed", "{}", merged.text());
    assert!(
        merged.line("v").contains("verify failed (rolled back)"),
        "{}",
        merged.text()
    );
    assert_eq!(merged.result("z"), "merged", "{}", merged.text());

    // z's merge commit sits right on a's work: v's merge was undone before z came.
    let head = env.rev_parse(INTO).expect("integration branch");
    let a_head = env.rev_parse(&branch("a")).expect("a");
    let z_head = env.rev_parse(&branch("z")).expect("z");
    let v_head = env.rev_parse(&branch("v")).expect("v");
    assert_eq!(env.parents(&head), [a_head, z_head]);
    let out = env.git_output(&["merge-base", "--is-ancestor", &v_head, INTO]);
    assert!(!out.status.success(), "v is not in the integration branch");
    assert_eq!(env.show_file(INTO, "v/bad"), None);
    let reflog = env.git(&["reflog", "show", "--format=%gs", INTO]);
    assert!(reflog.contains("verify failed, roll back"), "{reflog}");

    // clean --force removes the verify checkout too.
    flow(&env, &["clean", "--force"]).assert_code(0);
    assert_eq!(worktree_list(&env), [env.root.display().to_string()]);
    assert_eq!(env.git(&["branch", "--list", "flow/*", INTO]), "");
}

/// `a` and `b` both own `shared.txt` and edit its first line; `c` merges after them.
fn conflicting(on_conflict: &str) -> String {
    format!(
        r#"
workstream "a" {{ owns "shared.txt" "a/**"; task "Edit shared.txt."; priority "high"; }}
workstream "b" {{ owns "shared.txt" "b/**"; task "Edit shared.txt too."; priority "medium"; }}
workstream "c" {{ owns "c/**"; task "Write c."; priority "low"; }}
integrate {{
    on-conflict "{on_conflict}"
}}
"#
    )
}

#[test]
fn conflicts_and_merge_report_two_branches_that_edit_the_same_line() {
    let env = setup(&[("shared.txt", "line one\nline two\n")], &conflicting("stop"));
    // The same workflow with on-conflict "skip", in a second file.
    env.write("skip.kdl", &format!("{HEADER}\n{}", conflicting("skip")));
    env.commit_all("add skip.kdl");
    dirty_the_checkout(&env);
    assert_eq!(env.merge_order(), ["a", "b", "c"]);
    flow(&env, &["prepare"]).assert_code(0);
    write_in(&env, "a", "shared.txt", "line one by a\nline two\n");
    agent_commit(&env, "a", "a: line one");
    write_in(&env, "b", "shared.txt", "line one by b\nline two\n");
    write_in(&env, "b", "b/b.txt", "B\n");
    agent_commit(&env, "b", "b: line one");
    write_in(&env, "c", "c/c.txt", "C\n");
    agent_commit(&env, "c", "c: c.txt");

    let report = flow(&env, &["conflicts"]);
    report.assert_code(1);
    let text = report.stdout();
    assert!(
        text.contains("a and b: shared.txt") && text.contains("CONFLICT in shared.txt"),
        "{text}"
    );
    let json = flow(&env, &["conflicts", "--json"]);
    json.assert_code(1);
    let live = json.json()["live"].clone();
    assert_eq!(
        live,
        serde_json::json!([{ "first": "a", "second": "b", "paths": ["shared.txt"], "conflicts": ["shared.txt"] }]),
        "{}",
        json.text()
    );

    let merged = flow(&env, &["merge"]);
    merged.assert_code(1);
    assert_eq!(merged.result("a"), "merged", "{}", merged.text());
    assert_eq!(merged.result("b"), "conflicted", "{}", merged.text());
    assert!(
        merged.line("b").contains("conflicts in shared.txt (also written by a)"),
        "{}",
        merged.text()
    );
    assert_eq!(merged.result("c"), "skipped", "{}", merged.text());
    assert!(merged.line("c").contains("stopped at a conflict"), "{}", merged.text());
    let a_head = env.rev_parse(&branch("a")).expect("a");
    assert_eq!(env.rev_parse(INTO).as_deref(), Some(a_head.as_str()), "only a is in");
    assert_eq!(
        env.show_file(INTO, "shared.txt").as_deref(),
        Some("line one by a\nline two\n")
    );

    // With on-conflict "skip" the conflicted one is passed over and c merges.
    let skipping = flow(&env, &["merge", "skip.kdl"]);
    skipping.assert_code(1);
    assert_eq!(skipping.result("a"), "already-merged", "{}", skipping.text());
    assert_eq!(skipping.result("b"), "conflicted", "{}", skipping.text());
    assert_eq!(skipping.result("c"), "merged", "{}", skipping.text());
    let head = env.rev_parse(INTO).expect("integration branch");
    let c_head = env.rev_parse(&branch("c")).expect("c");
    assert_eq!(env.parents(&head), [a_head, c_head]);
    assert_eq!(env.show_file(INTO, "b/b.txt"), None, "nothing of b");
}

#[test]
fn conflicts_lists_declared_overlaps_with_the_files_that_exist() {
    let env = setup(
        &[
            ("src/shared/x.txt", "x\n"),
            ("src/shared/y.md", "y\n"),
            ("src/other.txt", "other\n"),
        ],
        r#"
workstream "a" { owns "src/**/*.txt"; task "Write a."; }
workstream "b" { owns "src/shared/**"; task "Write b."; }
workstream "c" { owns "src/**"; task "Write c."; depends-on "a" "b"; }
"#,
    );
    dirty_the_checkout(&env);
    let report = flow(&env, &["conflicts", "--json"]);
    report.assert_code(0);
    let json = report.json();
    let declared = json["declared"].as_array().expect("declared");
    assert_eq!(declared.len(), 1, "c runs after both: {json:#}");
    assert_eq!(declared[0]["first"], "a");
    assert_eq!(declared[0]["second"], "b");
    assert_eq!(declared[0]["first_glob"], "src/**/*.txt");
    assert_eq!(declared[0]["second_glob"], "src/shared/**");
    assert_eq!(declared[0]["existing_files"], serde_json::json!(["src/shared/x.txt"]));
    assert_eq!(json["live"], serde_json::json!([]));
    assert_eq!(json["branches"], serde_json::json!([]));

    let text = flow(&env, &["conflicts"]);
    text.assert_code(0);
    let stdout = text.stdout();
    assert!(
        stdout.contains("a (src/**/*.txt) and b (src/shared/**): existing: src/shared/x.txt"),
        "{stdout}"
    );
    assert!(stdout.contains("live: no workstream branch exists yet"), "{stdout}");
}

#[test]
fn clean_keeps_unfinished_work_unless_forced_and_prunes_folders_deleted_by_hand() {
    let env = setup(
        &[],
        r#"
workstream "m" { owns "m/**"; task "Merged work."; }
workstream "d" { owns "d/**"; task "Dirty work."; }
workstream "u" { owns "u/**"; task "Unmerged work."; }
workstream "h" { owns "h/**"; task "Deleted by hand."; }
"#,
    );
    dirty_the_checkout(&env);
    flow(&env, &["prepare"]).assert_code(0);
    write_in(&env, "m", "m/m.txt", "M\n");
    flow(&env, &["merge"]).assert_code(0);
    assert!(env.show_file(INTO, "m/m.txt").is_some());
    write_in(&env, "d", "d/d.txt", "not committed\n");
    write_in(&env, "u", "u/u.txt", "committed, not merged\n");
    agent_commit(&env, "u", "u: work");
    std::fs::remove_dir_all(worktree(&env, "h")).expect("rm -rf h");

    let cleaned = flow(&env, &["clean"]);
    cleaned.assert_code(1);
    let text = cleaned.stdout();
    let has = |needle: &str| assert!(text.contains(needle), "no {needle:?} in\n{text}");
    has("worktree record");
    has("its folder was deleted by hand; pruned");
    has(&format!("removed worktree {}\n", worktree(&env, "m").display()));
    has(&format!("removed branch {}: deleted (merged)", branch("m")));
    has(&format!(
        "kept    worktree {}: uncommitted changes in d/d.txt",
        worktree(&env, "d").display()
    ));
    has(&format!("kept    branch {}: its worktree was kept", branch("d")));
    has(&format!("removed worktree {}\n", worktree(&env, "u").display()));
    has(&format!(
        "kept    branch {}: it has commits not merged anywhere",
        branch("u")
    ));
    has(&format!("removed branch {}: deleted (merged)", branch("h")));
    has(&format!(
        "kept    branch {INTO}: it holds the result: merges not in main"
    ));
    assert!(
        !text.contains("kept: ") && !text.contains(": removed"),
        "no word said twice:\n{text}"
    );
    assert!(!worktree(&env, "m").exists() && !worktree(&env, "u").exists());
    assert_eq!(
        std::fs::read_to_string(worktree(&env, "d").join("d/d.txt"))
            .as_deref()
            .ok(),
        Some("not committed\n")
    );
    assert_eq!(env.rev_parse(&branch("m")), None);
    assert_eq!(env.rev_parse(&branch("h")), None);
    assert!(env.rev_parse(&branch("u")).is_some() && env.rev_parse(&branch("d")).is_some());
    assert_eq!(
        worktree_list(&env),
        [
            env.root.display().to_string(),
            worktree(&env, "d").display().to_string()
        ]
    );

    let forced = flow(&env, &["clean", "--force"]);
    forced.assert_code(0);
    let text = forced.stdout();
    assert!(
        text.contains(&format!(
            "removed branch {}: deleted (unmerged work dropped: --force)",
            branch("u")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "removed branch {INTO}: deleted (merges not in base dropped: --force)"
        )),
        "{text}"
    );
    assert_eq!(worktree_list(&env), [env.root.display().to_string()]);
    assert_eq!(env.git(&["branch", "--list", "flow/*"]), "");
    assert_eq!(env.rev_parse(INTO), None);
    assert!(
        !env.root.parent().expect("parent").join("repo-worktrees").exists(),
        "the worktrees folder is gone"
    );
    let fsck = env.git_output(&["fsck", "--strict", "--no-dangling"]);
    assert!(
        fsck.status.success() && fsck.stdout.is_empty() && fsck.stderr.is_empty(),
        "{fsck:?}"
    );

    let nothing = flow(&env, &["clean"]);
    nothing.assert_code(0);
    assert_eq!(nothing.stdout(), "nothing to clean\n");
}

#[test]
fn a_dependent_that_has_done_nothing_yet_is_neither_merged_nor_a_finished_dependency() {
    let env = setup(
        &[],
        r#"
workstream "a" { owns "a/**"; task "Write a."; }
workstream "b" { owns "b/**"; task "Write b on a."; depends-on "a"; }
workstream "c" { owns "c/**"; task "Write c on b."; depends-on "b"; }
"#,
    );
    dirty_the_checkout(&env);
    flow(&env, &["prepare"]).assert_code(0);
    write_in(&env, "a", "a/a.txt", "A\n");
    flow(&env, &["merge"]).assert_code(0);
    let prepared = flow(&env, &["prepare"]);
    prepared.assert_code(0);
    assert_eq!(prepared.result("b"), "created", "{}", prepared.text());
    // b starts at the integration branch's head, which is in the integration branch: that
    // does not make b merged, so c still waits for it.
    assert_eq!(prepared.result("c"), "waiting", "{}", prepared.text());
    let again = flow(&env, &["prepare"]);
    assert_eq!(again.result("c"), "waiting", "{}", again.text());
    let merged = flow(&env, &["merge"]);
    merged.assert_code(0);
    assert_eq!(merged.result("b"), "skipped", "{}", merged.text());
    assert!(merged.line("b").contains("no commits"), "{}", merged.text());
    assert_eq!(merged.result("c"), "skipped", "{}", merged.text());

    write_in(&env, "b", "b/b.txt", "B\n");
    let merged = flow(&env, &["merge"]);
    merged.assert_code(0);
    assert_eq!(merged.result("b"), "merged", "{}", merged.text());
    let prepared = flow(&env, &["prepare"]);
    assert_eq!(prepared.result("c"), "created", "{}", prepared.text());
    let b_head = env.rev_parse(&branch("b")).expect("b");
    assert_eq!(git_at(&env, &worktree(&env, "c"), &["rev-parse", "HEAD"]), b_head);
}

/// The number of objects the repository stores, loose and packed.
fn stored_objects(env: &TestEnv) -> String {
    env.git(&["count-objects", "-v"])
        .lines()
        .filter(|l| l.starts_with("count:") || l.starts_with("in-pack:"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn conflicts_counts_what_a_worktree_holds_uncommitted_and_touches_nothing() {
    let env = setup(
        &[("shared.txt", "line one\nline two\nline three\n")],
        &conflicting("stop"),
    );
    dirty_the_checkout(&env);
    flow(&env, &["prepare"]).assert_code(0);
    // a committed its edit; b edited the same line and did not commit; c left a new file.
    write_in(&env, "a", "shared.txt", "line one by a\nline two\nline three\n");
    agent_commit(&env, "a", "a: line one");
    write_in(&env, "b", "shared.txt", "line one by b\nline two\nline three\n");
    write_in(&env, "c", "c/c.txt", "C\n");
    let b = worktree(&env, "b");
    let index_file = git_at(&env, &b, &["rev-parse", "--git-path", "index"]);
    let index_before = std::fs::read(b.join(&index_file)).expect("b's index");
    let objects = stored_objects(&env);

    let report = flow(&env, &["conflicts", "--json"]);
    report.assert_code(1);
    assert_eq!(
        report.json()["live"],
        serde_json::json!([{
            "first": "a", "second": "b", "paths": ["shared.txt"], "conflicts": ["shared.txt"],
            "uncommitted": { "b": ["shared.txt"] }
        }]),
        "{}",
        report.text()
    );
    let text = flow(&env, &["conflicts"]);
    text.assert_code(1);
    assert!(
        text.stdout()
            .contains("a and b: shared.txt (uncommitted in b's worktree: shared.txt) — CONFLICT in shared.txt"),
        "{}",
        text.text()
    );
    // Nothing was written: not b's index, not its files, not one object.
    assert_eq!(std::fs::read(b.join(&index_file)).expect("b's index"), index_before);
    assert_eq!(
        std::fs::read_to_string(b.join("shared.txt")).expect("b's file"),
        "line one by b\nline two\nline three\n"
    );
    assert_eq!(stored_objects(&env), objects);

    // b's uncommitted edit moved to the last line: still an overlap, now a clean one.
    write_in(&env, "b", "shared.txt", "line one\nline two\nline three by b\n");
    let clean = flow(&env, &["conflicts", "--json"]);
    clean.assert_code(0);
    assert_eq!(
        clean.json()["live"],
        serde_json::json!([{
            "first": "a", "second": "b", "paths": ["shared.txt"], "conflicts": [],
            "uncommitted": { "b": ["shared.txt"] }
        }]),
        "{}",
        clean.text()
    );
}
