//! The command line as a newcomer meets it: completions and manual pages, help topics, the
//! global options (`--color`, `-q`, `-v`), `flow check --json`, the JSON of every verb, the
//! workflow file found from any folder, and exit codes that mean one thing each.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::{TestEnv, repo_root};

/// What one `flow` command did.
struct Out {
    out: Output,
}

impl Out {
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn text(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }

    #[track_caller]
    fn assert_code(&self, code: i32) -> &Out {
        assert_eq!(self.code(), code, "exit code\n{}", self.text());
        self
    }

    /// Standard output as one JSON document.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.text()))
    }

    /// Standard output as JSON lines.
    #[track_caller]
    fn json_lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.text())))
            .collect()
    }
}

/// Runs `flow` in `dir` with the tests' environment, changed by `env_change`.
fn flow_with(env: &TestEnv, dir: &Path, args: &[&str], env_change: &[(&str, Option<&str>)]) -> Out {
    let mut cmd = env.flow();
    cmd.current_dir(dir)
        .args(args)
        .timeout(std::time::Duration::from_secs(120));
    for (name, value) in env_change {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    Out {
        out: cmd.output().expect("flow runs"),
    }
}

/// Runs `flow` at the repository's root.
fn flow(env: &TestEnv, args: &[&str]) -> Out {
    flow_with(env, &env.root, args, &[])
}

/// Two independent workstreams that succeed.
const TWO: &str = r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt && echo made a" }
workstream "b" { owns "b/**"; script "mkdir -p b && echo B > b/b.txt" }
"#;

fn has_escape(text: &str) -> bool {
    text.contains("\u{1b}[")
}

#[test]
fn bash_loads_the_completions_and_zsh_fish_and_manual_pages_are_made() {
    let env = TestEnv::new();
    let script = flow(&env, &["completions", "bash"]);
    script.assert_code(0);
    let file = env.base().join("flow.bash");
    std::fs::write(&file, script.stdout()).expect("write the script");
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p flow", file.display()))
        .output()
        .expect("bash runs");
    let said = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        loaded.status.success() && said.contains("-F _flow") && said.trim_end().ends_with(" flow"),
        "{loaded:?}"
    );
    // Every verb is offered after `flow `.
    let words = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(flow ''); COMP_CWORD=1; COMP_LINE='flow '; COMP_POINT=5; _flow flow '' flow; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .expect("bash runs");
    let offered = String::from_utf8_lossy(&words.stdout);
    for verb in ["run", "check", "status", "completions", "man", "help"] {
        assert!(offered.lines().any(|l| l == verb), "`{verb}` not offered:\n{offered}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = flow(&env, &["completions", shell]);
        script.assert_code(0);
        assert!(script.stdout().contains("flow"), "{shell}:\n{}", script.text());
    }
    flow(&env, &["completions", "tcsh"]).assert_code(2);

    let page = flow(&env, &["man"]);
    page.assert_code(0);
    assert!(page.stdout().contains(".TH flow 1"), "{}", page.text());
    let pages = env.base().join("man");
    flow(&env, &["man", "--dir", &pages.display().to_string()]).assert_code(0);
    for name in ["flow.1", "flow-run.1", "flow-check.1", "flow-status.1"] {
        let text = std::fs::read_to_string(pages.join(name)).unwrap_or_default();
        assert!(text.contains(".TH"), "{name} is a manual page");
    }
}

#[test]
fn help_topics_are_built_in_and_the_exit_codes_are_the_readmes() {
    let env = TestEnv::new();
    let grammar = std::fs::read_to_string(repo_root().join("dsl/GRAMMAR.md")).expect("GRAMMAR.md");
    let workflow = flow(&env, &["help", "workflow"]);
    workflow.assert_code(0);
    assert_eq!(workflow.stdout(), grammar);

    let codes = flow(&env, &["help", "exit-codes"]);
    codes.assert_code(0);
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split("## Exit codes")
        .nth(1)
        .expect("the README has an Exit codes section");
    // Each row of the README's table says what `flow help exit-codes` says.
    let printed = codes.stdout().split_whitespace().collect::<Vec<_>>().join(" ");
    let mut rows = 0;
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line
            .split(" | ")
            .map(|c| c.trim_matches(|c| c == '|' || c == ' '))
            .collect();
        let [code, meaning] = cells[..] else { continue };
        if code.parse::<u8>().is_err() {
            continue;
        }
        rows += 1;
        assert!(
            printed.contains(&format!("{code} {meaning}")),
            "README's {code}: {meaning}\nnot in `flow help exit-codes`:\n{printed}"
        );
    }
    assert_eq!(rows, 6, "0, 1, 2, 3, 101 and 130:\n{section}");

    let run = flow(&env, &["help", "run"]);
    run.assert_code(0);
    assert!(run.stdout().contains("Usage: flow run"), "{}", run.text());
    let top = flow(&env, &["help"]);
    top.assert_code(0);
    assert!(
        top.stdout().contains("exit-codes") && top.stdout().contains("completions"),
        "{}",
        top.text()
    );
    let unknown = flow(&env, &["help", "nope"]);
    unknown.assert_code(2);
    assert!(unknown.stderr().contains("exit-codes"), "{}", unknown.text());
}

#[test]
fn check_json_is_one_object_per_problem_then_a_summary_and_keeps_the_exit_codes() {
    let env = TestEnv::new();
    env.workflow(TWO);
    let ok = flow(&env, &["check", "--json"]);
    ok.assert_code(0);
    assert_eq!(ok.stderr(), "", "JSON mode says nothing on standard error");
    let lines = ok.json_lines();
    assert_eq!(lines.len(), 2, "{}", ok.text());
    assert_eq!(lines[0]["type"], "file");
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[0]["workstreams"], 2);
    let summary = &lines[1];
    assert_eq!(
        (
            &summary["type"],
            &summary["version"],
            &summary["errors"],
            &summary["exit_code"]
        ),
        (&"summary".into(), &1.into(), &0.into(), &0.into())
    );

    env.write(
        "bad.kdl",
        "workflow \"x\" { base \"main\"; }\nworkstream \"a\" { task \"t\"; depends-on \"zz\"; ownz \"a/**\"; }\n",
    );
    let bad = flow(&env, &["check", "bad.kdl", "--json"]);
    bad.assert_code(2);
    let lines = bad.json_lines();
    let diagnostics: Vec<&Value> = lines.iter().filter(|l| l["type"] == "diagnostic").collect();
    let dependency = diagnostics
        .iter()
        .find(|d| d["code"] == "flow::unknown_dependency")
        .unwrap_or_else(|| panic!("{}", bad.text()));
    assert_eq!(dependency["severity"], "error");
    assert_eq!(dependency["file"], "bad.kdl");
    assert_eq!((&dependency["line"], &dependency["column"]), (&2.into(), &39.into()));
    assert!(dependency["message"].as_str().is_some_and(|m| m.contains("zz")));
    let node = diagnostics
        .iter()
        .find(|d| d["code"] == "flow::unknown_node")
        .unwrap_or_else(|| panic!("{}", bad.text()));
    assert_eq!(node["help"], "did you mean `owns`?");
    for d in &diagnostics {
        assert_eq!(d["version"], 1);
    }
    let last = lines.last().expect("a summary");
    assert_eq!((&last["type"], &last["exit_code"]), (&"summary".into(), &2.into()));

    // A warning: exit 0, or 1 when warnings are denied.
    env.write(
        "warn.kdl",
        &format!(
            "{}\nworkstream \"a\" {{ owns \"src/**\"; script \"true\" }}\nworkstream \"b\" {{ owns \"src/**\"; script \"true\" }}\n",
            crate::support::HEADER
        ),
    );
    let warned = flow(&env, &["check", "warn.kdl", "--json"]);
    warned.assert_code(0);
    assert!(warned.json_lines()[0]["severity"] == "warning", "{}", warned.text());
    let denied = flow(&env, &["check", "warn.kdl", "--json", "--deny-warnings"]);
    denied.assert_code(1);
    assert_eq!(denied.json_lines().last().expect("summary")["exit_code"], 1);
}

#[test]
fn color_follows_the_option_then_no_color_and_clicolor_force() {
    let env = TestEnv::new();
    env.write("bad.kdl", "workstream \"a\" { ownz \"a/**\"; }\n");
    let check = |args: &[&str], vars: &[(&str, Option<&str>)]| {
        let out = flow_with(&env, &env.root, &[&["check", "bad.kdl"], args].concat(), vars);
        out.assert_code(2);
        has_escape(&out.stderr())
    };
    // Into a pipe: no colour unless asked for.
    assert!(!check(&[], &[("NO_COLOR", None)]));
    assert!(check(&["--color", "always"], &[]), "--color always beats NO_COLOR");
    assert!(!check(&["--color", "never"], &[("CLICOLOR_FORCE", Some("1"))]));
    assert!(check(&[], &[("NO_COLOR", None), ("CLICOLOR_FORCE", Some("1"))]));
    assert!(
        !check(&[], &[("CLICOLOR_FORCE", Some("1"))]),
        "NO_COLOR wins over CLICOLOR_FORCE"
    );

    // The states of the run table are coloured, the rest of the table stays aligned.
    env.workflow(TWO);
    flow(&env, &["run", "--progress", "quiet"]).assert_code(0);
    let plain = flow(&env, &["status"]);
    let colored = flow(&env, &["status", "--color", "always"]);
    assert!(
        !has_escape(&plain.stdout()) && has_escape(&colored.stdout()),
        "{}",
        colored.text()
    );
    assert!(
        colored.stdout().contains("\u{1b}[32mmerged\u{1b}[0m"),
        "{}",
        colored.text()
    );
    let stripped = strip(&colored.stdout());
    assert_eq!(stripped, plain.stdout());
    let runs = flow(&env, &["runs", "--color", "always"]);
    assert_eq!(strip(&runs.stdout()), flow(&env, &["runs"]).stdout());
}

/// Text without its ANSI colour sequences.
fn strip(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("\u{1b}[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('m').map_or(after.len(), |e| e + 1);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn quiet_says_only_errors_and_the_result_and_verbose_shows_the_agents_lines() {
    let env = TestEnv::new();
    env.workflow(TWO);
    let checked = flow(&env, &["check", "-q"]);
    checked.assert_code(0);
    assert_eq!(checked.text(), "--- stdout\n--- stderr\n");

    let quiet = flow(&env, &["-q", "run", "--grace", "1s"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr(), "", "no progress with -q");
    assert!(
        quiet.stdout().contains("WORKSTREAM") && quiet.stdout().contains("merged"),
        "{}",
        quiet.text()
    );
    flow(&env, &["clean", "--force", "-q"]).assert_code(0);

    let normal = flow(&env, &["run", "--progress", "plain"]);
    normal.assert_code(0);
    assert!(normal.stderr().contains("merged as"), "{}", normal.text());
    assert!(!normal.stderr().contains("| made a"), "{}", normal.text());
    flow(&env, &["clean", "--force"]).assert_code(0);
    let verbose = flow(&env, &["run", "--progress", "plain", "-v"]);
    verbose.assert_code(0);
    assert!(verbose.stderr().contains("| made a"), "{}", verbose.text());

    flow(&env, &["-q", "-v", "runs"]).assert_code(2);
}

#[test]
fn the_workflow_file_is_found_from_any_folder_of_the_repository() {
    let env = TestEnv::new();
    env.workflow(TWO);
    let deep = env.root.join("src/deep");
    std::fs::create_dir_all(&deep).expect("mkdir");
    let at = |args: &[&str]| flow_with(&env, &deep, args, &[]);

    let check = at(&["check"]);
    check.assert_code(0);
    assert!(check.stderr().contains("../../parallel.kdl: ok"), "{}", check.text());
    let plan = at(&["plan", "--json"]);
    plan.assert_code(0);
    assert_eq!(plan.json()["file"], "../../parallel.kdl");
    at(&["graph"]).assert_code(0);
    let context = at(&["context", "a"]);
    context.assert_code(0);
    assert_eq!(context.stdout(), flow(&env, &["context", "parallel.kdl", "a"]).stdout());
    at(&["context", "nope"]).assert_code(2);
    at(&["run", "--progress", "quiet"]).assert_code(0);
    assert_eq!(env.show_file("integration/t", "a/a.txt").as_deref(), Some("A\n"));
    let status = at(&["status"]);
    status.assert_code(0);
    assert!(status.stdout().contains("succeeded"), "{}", status.text());
    at(&["clean"]).assert_code(0);

    // `flow init` from a subfolder writes where the others look: at the root.
    std::fs::remove_file(env.root.join("parallel.kdl")).expect("rm");
    at(&["init"]).assert_code(0);
    assert!(env.root.join("parallel.kdl").is_file() && !deep.join("parallel.kdl").exists());
    // The nearest file wins.
    std::fs::write(deep.join("parallel.kdl"), "not a workflow {").expect("write");
    at(&["check"]).assert_code(2);

    // Outside a repository, only the current folder counts.
    let outside = env.base().join("plain");
    std::fs::create_dir_all(outside.join("sub")).expect("mkdir");
    std::fs::copy(env.root.join("parallel.kdl"), outside.join("parallel.kdl")).expect("copy");
    flow_with(&env, &outside, &["check"], &[]).assert_code(0);
    let missing = flow_with(&env, &outside.join("sub"), &["check"], &[]);
    missing.assert_code(2);
    assert!(missing.stderr().contains("flow init"), "{}", missing.text());
}

#[test]
fn plan_json_shows_the_base_a_run_would_use() {
    let env = TestEnv::new();
    let no_base = crate::support::HEADER.replace("base \"main\"", "");
    env.workflow(&format!("{no_base}\n{TWO}"));
    let plan = flow(&env, &["plan", "--json"]);
    plan.assert_code(0);
    assert_eq!(plan.json()["base"], "main");
    env.git(&["checkout", "-q", "-b", "topic"]);
    assert_eq!(flow(&env, &["plan", "--json"]).json()["base"], "topic");
    assert!(flow(&env, &["plan"]).stdout().contains("created from topic"));
}

#[test]
fn every_json_output_has_a_version_and_rfc_3339_times() {
    let env = TestEnv::new();
    env.workflow(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt && printf 'one\ntwo \\377\n'" }
workstream "b" { owns "b/**"; depends-on "a"; script "echo failing; exit 3" }
"#,
    );
    flow(&env, &["run", "--progress", "quiet", "--grace", "1s"]).assert_code(1);
    let id = env.state().0["id"].as_str().expect("id").to_string();

    for args in [
        &["plan", "--json"][..],
        &["status", "--json"],
        &["usage", "--json"],
        &["runs", "--json"],
        &["conflicts", "--json"],
        &["resume", "--dry-run", "--json"],
        &["merge", "--json"],
        &["prepare", "--json"],
    ] {
        let out = flow(&env, args);
        let json = out.json();
        assert!(
            json["version"].is_u64(),
            "flow {}: no version\n{}",
            args.join(" "),
            out.text()
        );
    }
    let runs = flow(&env, &["runs", "--json"]).json();
    let run = &runs["runs"][0];
    assert_eq!(run["id"], id.as_str());
    for time in [&run["started_at"], &run["ended_at"]] {
        let text = time.as_str().unwrap_or_default();
        assert!(text.parse::<jiff::Timestamp>().is_ok(), "not RFC 3339: {time}");
    }

    let resume = flow(&env, &["resume", "--dry-run", "--json"]).json();
    assert_eq!(resume["run"], id.as_str());
    let decisions: Vec<(String, String)> = resume["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            (
                d["workstream"].as_str().unwrap_or("").into(),
                d["action"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(decisions, [("a".into(), "keep".into()), ("b".into(), "run".into())]);
    flow(&env, &["resume", "--json"]).assert_code(2);

    // Logs as JSON lines: the run, the workstream and the text; bytes that are not UTF-8
    // are shown replaced, not dropped.
    let logs = flow(&env, &["logs", "a", "--json"]);
    logs.assert_code(0);
    let lines = logs.json_lines();
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap_or("")).collect();
    assert!(texts.contains(&"one"), "{}", logs.text());
    assert!(texts.contains(&"two \u{fffd}"), "{}", logs.text());
    for line in &lines {
        assert_eq!(
            (&line["version"], &line["run"], &line["workstream"]),
            (&1.into(), &id.as_str().into(), &"a".into())
        );
    }
    let plain = flow(&env, &["logs", "a"]);
    assert!(plain.stdout().contains("two \u{fffd}\n"), "{}", plain.text());

    let clean = flow(&env, &["clean", "--json", "--force"]);
    clean.assert_code(0);
    let json = clean.json();
    assert_eq!(json["version"], 1);
    assert!(json["items"].as_array().is_some_and(|i| !i.is_empty()), "{json:#}");
}

#[test]
fn runs_are_named_the_same_way_everywhere_and_an_unknown_one_lists_the_recent_ones() {
    let env = TestEnv::new();
    env.workflow(TWO);
    // No run yet: `flow status` says what `flow runs` says, and both succeed.
    let status = flow(&env, &["status"]);
    status.assert_code(0);
    assert_eq!(status.stdout(), flow(&env, &["runs"]).assert_code(0).stdout());
    assert!(status.stdout().starts_with("no runs yet"), "{}", status.text());
    assert_eq!(flow(&env, &["status", "--json"]).json()["runs"], Value::Array(vec![]));

    flow(&env, &["run", "--progress", "quiet"]).assert_code(0);
    let id = env.state().0["id"].as_str().expect("id").to_string();
    let runs = flow(&env, &["runs"]);
    let header = runs.stdout().lines().next().unwrap_or_default().to_string();
    assert!(
        header.split_whitespace().collect::<Vec<_>>()
            == ["RUN", "WORKFLOW", "STATUS", "DONE", "TIME", "TOKENS", "COST"],
        "{}",
        runs.text()
    );
    assert!(
        runs.stdout().lines().nth(1).is_some_and(|l| l.starts_with(&id)),
        "{}",
        runs.text()
    );

    let positional = flow(&env, &["status", &id]);
    positional.assert_code(0);
    assert_eq!(flow(&env, &["status", "--run", &id]).stdout(), positional.stdout());
    assert_eq!(
        flow(&env, &["usage", "--run", &id]).stdout(),
        flow(&env, &["usage", &id]).stdout()
    );
    let logs = flow(&env, &["logs", "a", "--run", &id]);
    logs.assert_code(0);
    assert_eq!(flow(&env, &["logs", "a", &id]).stdout(), logs.stdout());
    flow(&env, &["status", &id, "--run", &id]).assert_code(2);

    for args in [
        &["status", "nope"][..],
        &["logs", "a", "--run", "nope"],
        &["usage", "nope"],
        &["resume", "nope", "--dry-run"],
        &["status", "../../x"],
    ] {
        let unknown = flow(&env, args);
        unknown.assert_code(2);
        let stderr = unknown.stderr();
        assert!(
            stderr.contains("no run `") && stderr.contains(&id) && !stderr.contains("os error"),
            "flow {}:\n{}",
            args.join(" "),
            unknown.text()
        );
    }
    let typo = flow(&env, &["logs", "aa"]);
    typo.assert_code(2);
    assert!(typo.stderr().contains("did you mean `a`"), "{}", typo.text());
}

#[test]
fn exit_codes_tell_failed_work_from_bad_input_from_a_failing_system() {
    let env = TestEnv::new();
    env.workflow(TWO);
    flow(&env, &["run", "--nope"]).assert_code(2);
    flow(&env, &["run", "missing.kdl"]).assert_code(2);
    flow(&env, &["run", "--only", "zz"]).assert_code(2);

    // Outside a repository, a verb that needs git: git failed (3), not "usage".
    let outside = env.base().join("plain");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::copy(env.root.join("parallel.kdl"), outside.join("parallel.kdl")).expect("copy");
    let no_git = flow_with(&env, &outside, &["prepare"], &[]);
    no_git.assert_code(3);
    assert!(
        no_git.stderr().contains("not inside a git repository"),
        "{}",
        no_git.text()
    );
    flow_with(&env, &outside, &["run", "--progress", "quiet"], &[]).assert_code(3);
    // A base branch that does not exist.
    env.workflow(&format!(
        "{}\n{TWO}",
        crate::support::HEADER.replace("\"main\"", "\"nowhere\"")
    ));
    flow(&env, &["prepare"]).assert_code(3);
}

#[test]
fn clean_succeeds_when_all_it_keeps_is_the_result() {
    let env = TestEnv::new();
    env.workflow(TWO);
    flow(&env, &["run", "--progress", "quiet"]).assert_code(0);
    let clean = flow(&env, &["clean"]);
    clean.assert_code(0);
    let text = clean.stdout();
    assert!(
        text.contains("kept    branch integration/t: it holds the result"),
        "{text}"
    );
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            !words.iter().skip(1).any(|w| w.trim_matches(':') == words[0]),
            "a line says its word twice: {line}"
        );
    }
    assert_eq!(env.git(&["branch", "--list", "flow/*"]), "");
    assert!(env.rev_parse("integration/t").is_some(), "the result is kept");
}

#[test]
fn resume_is_suggested_only_when_it_would_keep_something() {
    let env = TestEnv::new();
    env.workflow(r#"workstream "a" { owns "a/**"; script "exit 3" }"#);
    let failed = flow(&env, &["run", "--progress", "quiet", "--grace", "1s"]);
    failed.assert_code(1);
    assert!(
        !failed.stdout().contains("flow resume"),
        "nothing to keep:\n{}",
        failed.text()
    );
    assert!(failed.stdout().contains("flow status"), "{}", failed.text());
    flow(&env, &["clean", "--force"]).assert_code(0);

    env.workflow(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt" }
workstream "b" { owns "b/**"; depends-on "a"; script "exit 3" }
"#,
    );
    let half = flow(&env, &["run", "--progress", "quiet", "--grace", "1s"]);
    half.assert_code(1);
    assert!(
        half.stdout().contains("continue with `flow resume`"),
        "a is kept:\n{}",
        half.text()
    );
}

/// Runs `flow ARGS` under a pseudo-terminal of `columns` columns (util-linux `script`), with
/// the tests' environment but no `COLUMNS`, and returns what the terminal got.
fn in_a_terminal(env: &TestEnv, args: &str, columns: u16) -> String {
    let home = env.base().join("home");
    let command = format!(
        "stty rows 40 cols {columns}; '{}' {args}",
        crate::support::flow_bin().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&env.root)
        .env_clear()
        .envs(crate::support::hermetic_env(&home))
        .env_remove("COLUMNS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

#[test]
fn a_terminal_gets_diagnostics_at_its_width_and_no_escape_sequence_of_an_agent() {
    let env = TestEnv::new();
    // The help lists every workstream: a long line to wrap.
    let mut bad = String::from("workstream \"a\" { depends-on \"zz\"; }\n");
    for i in 0..12 {
        bad.push_str(&format!("workstream \"stream-{i:02}\" {{ task \"t\"; }}\n"));
    }
    env.write("bad.kdl", &bad);
    let narrow = in_a_terminal(&env, "check bad.kdl", 70);
    let wide = in_a_terminal(&env, "check bad.kdl", 160);
    let widest = |text: &str| text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(narrow.contains("known workstreams"), "{narrow}");
    assert!(
        widest(&narrow) <= 70 && widest(&wide) > 70,
        "{} and {} wide\n70:\n{narrow}\n160:\n{wide}",
        widest(&narrow),
        widest(&wide)
    );

    // An agent that prints a window title, a screen clear and a bell, and whose test fails
    // with them in its last line.
    env.write("hostile.sh", "printf 'before \\033]0;pwned\\007 \\033[2J after\\n'\n");
    env.workflow(r#"workstream "a" { owns "a/**"; script "sh hostile.sh"; test "sh hostile.sh; exit 1" }"#);
    flow(&env, &["run", "--progress", "quiet", "--grace", "1s"]).assert_code(1);
    let raw = flow(&env, &["logs", "a"]);
    assert!(
        raw.stdout().contains("\u{1b}]0;pwned\u{7}"),
        "a pipe gets the log as it is:\n{}",
        raw.text()
    );
    for args in ["logs a", "status", "resume --dry-run", "--color always status"] {
        let shown = in_a_terminal(&env, args, 100);
        assert!(shown.contains("after"), "flow {args}:\n{shown}");
        assert!(
            !shown.contains("\u{1b}]") && !shown.contains('\u{7}') && !shown.contains("\u{1b}[2J"),
            "flow {args} let an escape sequence through:\n{shown:?}"
        );
    }
    let colored = in_a_terminal(&env, "--color always status", 100);
    assert!(
        colored.contains("\u{1b}[31;1m") || colored.contains("\u{1b}[1;31m") || colored.contains("\u{1b}[31m"),
        "{colored:?}"
    );
}
