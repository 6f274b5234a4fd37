//! Seeing a run end to end: `flow report`'s page parsed and checked against the run's
//! `events.jsonl` (and shown in headless Chromium when it is installed), and `flow watch`
//! driven in a real terminal (tmux) through select, follow, stop and quit during a run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use scraper::{Html, Selector};
use serde_json::Value;

use crate::support::{HANG_GUARD, TestEnv, flow_bin};

/// Three workstreams: `a` merges, `b` fails its agent with a line on standard error, `c`
/// (on `b`) is skipped, `d` is fixed once after its test fails.
fn mixed_run(env: &TestEnv) {
    env.workflow(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo one > a/x && echo two >> a/x && echo made a" }
workstream "b" { owns "b/**"; script "echo compiling b; echo 'error: cannot find value total' >&2; exit 3" }
workstream "c" { owns "c/**"; depends-on "b"; script "mkdir -p c && echo > c/x" }
workstream "d" { owns "d/**"; script "mkdir -p d && if [ -n \"$FLOW_FEEDBACK_KIND\" ]; then echo fixed > d/ok; fi; echo > d/x"; test "test -f d/ok" }
"#,
    );
    let out = env.run(&["--keep-going"]);
    assert_eq!(
        out.out.status.code(),
        Some(1),
        "b fails:\n{}",
        String::from_utf8_lossy(&out.out.stderr)
    );
}

fn events(env: &TestEnv) -> Vec<Value> {
    let dir = env.latest_run_dir().expect("a run");
    std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect()
}

fn time(event: &Value) -> jiff::Timestamp {
    event["at"].as_str().expect("a time").parse().expect("an RFC 3339 time")
}

fn select(selector: &str) -> Selector {
    Selector::parse(selector).expect("a selector")
}

fn text(element: scraper::ElementRef) -> String {
    element.text().collect::<String>().trim().to_string()
}

#[test]
fn the_report_page_shows_every_workstream_with_the_times_of_its_events() {
    let env = TestEnv::new();
    mixed_run(&env);
    let page_path = env.base().join("report.html");
    let out = env
        .flow()
        .args(["report", "-o"])
        .arg(&page_path)
        .output()
        .expect("flow report runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&page_path).expect("the page");
    assert!(!page.contains("<script"), "it needs no script");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "it fetches nothing"
    );
    let html = Html::parse_document(&page);
    let events = events(&env);
    let names = ["a", "b", "c", "d"];
    for (index, name) in names.iter().enumerate() {
        let row = html
            .select(&select(&format!("tr#ws-{name}")))
            .next()
            .unwrap_or_else(|| panic!("a row for {name}"));
        let cells: Vec<String> = row.select(&select("td")).map(text).collect();
        let mine: Vec<&Value> = events.iter().filter(|e| e["workstream"] == index).collect();
        // Its time: from its setup to its last event, as the record says.
        let started = mine.iter().find(|e| e["phase"] == "preparing").map(|e| time(e));
        let ended = mine.last().map(|e| time(e));
        let expected = match (started, ended) {
            (Some(s), Some(e)) => flow_dsl::format_duration(e.duration_since(s).unsigned_abs()),
            _ => "-".to_string(),
        };
        assert_eq!(cells[4], expected, "{name}'s time, from {mine:#?}");
        // Its agent attempts on the timeline, one bar each.
        let attempts = mine.iter().filter(|e| e["event"] == "attempt-started").count();
        let bars = html
            .select(&select(&format!("rect.span[data-workstream=\"{name}\"]")))
            .filter(|r| !r.value().attr("data-attempt").unwrap_or("").is_empty())
            .count();
        assert_eq!(bars, attempts, "{name}'s attempts on the timeline");
    }
    let state = |name: &str| {
        let row = html.select(&select(&format!("tr#ws-{name}"))).next().expect("a row");
        text(row.select(&select("td.state")).next().expect("a state cell"))
    };
    assert_eq!(
        [state("a"), state("b"), state("c"), state("d")],
        ["merged", "failed", "skipped", "merged"]
    );
    // The failure with why and the end of its log.
    let failure = html.select(&select("#fail-b")).next().map(text).expect("b's failure");
    assert!(failure.contains("exited with code 3"), "{failure}");
    assert!(failure.contains("cannot find value total"), "{failure}");
    assert!(failure.contains("compiling b"), "its log's tail: {failure}");
    let c_row = html.select(&select("tr#ws-c")).next().map(text).expect("c's row");
    assert!(c_row.contains("dependency `b` did not succeed"), "{c_row}");
    // The changes of a, with lines counted.
    let a_row = html.select(&select("tr#ws-a")).next().map(text).expect("a's row");
    assert!(a_row.contains("a/x") && a_row.contains("+2"), "{a_row}");
    // The summary counts.
    let summary = html.select(&select("#summary")).next().map(text).expect("a summary");
    assert!(summary.contains("failed"), "{summary}");
    assert!(html.select(&select("#graph svg")).next().is_none() || page.contains("wave 2"));

    screenshot(&page_path, &env.base().join("report.png"));

    // The same run followed in other ways: every log with its name, the graph in its
    // states, the status redrawn until the run is over (it is: once).
    let flow = |args: &[&str]| {
        let out = env.flow().args(args).output().expect("flow runs");
        assert!(
            out.status.success(),
            "flow {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let logs = flow(&["logs", "--all", "-f"]);
    assert!(logs.lines().any(|l| l == "a       | made a"), "{logs}");
    assert!(logs.lines().any(|l| l == "b       | compiling b"), "{logs}");
    let dot = flow(&["graph", "--run", "latest"]);
    assert!(
        dot.contains("\"b\" [label=\"b\\nmerge #2\\nfailed\"") && dot.contains("fillcolor"),
        "{dot}"
    );
    assert!(dot.contains("cluster_legend"), "{dot}");
    let status = flow(&["status", "--watch"]);
    assert_eq!(status.matches("WORKSTREAM").count(), 1, "{status}");
}

/// Opens the page in headless Chromium and takes a screenshot, when Chromium is installed:
/// the page must load with no script error and paint something.
fn screenshot(page: &Path, png: &Path) {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(|name| which::which(name).ok())
    else {
        eprintln!("skipped the screenshot: no chromium on PATH (Debian: apt-get install chromium)");
        return;
    };
    let profile = tempfile::tempdir().expect("a profile folder");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < HANG_GUARD, "chromium hangs");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Uncaught"), "a script error:\n{stderr}");
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "a screenshot of {size} bytes:\n{stderr}");
}

/// A tmux server of the test's own, on a socket in the test's folder.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "watch"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .command()
            .args(["send-keys", "-t", "watch"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Waits until the screen shows all of `texts`; returns it.
    fn wait_for(&self, texts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                start.elapsed() < HANG_GUARD,
                "the screen never showed {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Tells whether `stty -a` on the screen shows a terminal in its usual (cooked) mode: lines
/// read whole and echoed (flags `icanon` and `echo`, not `-icanon` or `-echo`).
fn terminal_restored(screen: &str) -> bool {
    let flags: Vec<&str> = screen.split_whitespace().collect();
    flags.contains(&"icanon") && flags.contains(&"echo")
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

#[test]
fn flow_watch_selects_follows_stops_a_workstream_and_quits_leaving_the_run_going() {
    if which::which("tmux").is_err() {
        eprintln!("skipped: no tmux on PATH (Debian: apt-get install tmux) to drive flow watch in a terminal");
        return;
    }
    let env = TestEnv::new();
    let release = env.outside("release");
    env.workflow(&format!(
        r#"
workstream "looper" {{ owns "l/**"; script "echo looping-started; while true; do sleep 0.2; done" }}
workstream "after" {{ owns "f/**"; depends-on "looper"; script "true" }}
workstream "quick" {{ owns "q/**"; script "mkdir -p q && echo > q/x; echo quick-said-this; while [ ! -f {release} ]; do sleep 0.1; done" }}
"#
    ));
    let mut run = env.spawn_flow(&["run", "--keep-going", "--grace", "1s"]);
    // The run's record exists once its state does.
    let start = Instant::now();
    while env.try_state().is_none() {
        assert!(start.elapsed() < HANG_GUARD, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let tmux = Tmux {
        socket: env.base().join("tmux.sock"),
    };
    let home = env.base().join("home");
    let mut shell = format!("cd '{}' && env -i", env.root.display());
    for (key, value) in crate::support::hermetic_env(&home) {
        shell.push_str(&format!(" {key}='{value}'"));
    }
    shell.push_str(&format!(
        " TERM=xterm-256color '{}' watch; echo watch-exited-$?; stty -a; sleep 600",
        flow_bin().display()
    ));
    let status = tmux
        .command()
        .args(["new-session", "-d", "-s", "watch", "-x", "120", "-y", "32", &shell])
        .status()
        .expect("tmux starts");
    assert!(status.success());

    // Both agents at work; the first workstream is selected and its output followed.
    tmux.wait_for(&["looper", "quick", "output of looper (following)", "looping-started"]);
    // Select: down to quick (the last), its output.
    tmux.keys(&["j"]);
    tmux.wait_for(&["output of after"]);
    tmux.keys(&["j"]);
    tmux.wait_for(&["output of quick", "quick-said-this"]);
    // Follow toggles; back up to looper.
    tmux.keys(&["f"]);
    tmux.wait_for(&["output of quick (paused"]);
    tmux.keys(&["g"]);
    tmux.wait_for(&["output of looper (following)"]);
    // Stop it: the run cancels it, skips its dependent, and goes on with the rest.
    tmux.keys(&["s"]);
    let screen = tmux.wait_for(&["stopped by a person", "dependency `looper`"]);
    assert!(
        screen.contains("asked the run to stop looper") || screen.contains("cancelled"),
        "{screen}"
    );
    // state.json is a snapshot written a little after the events the screen shows.
    let start = Instant::now();
    while env.state().0["workstreams"][0]["phase"] != "cancelled" {
        assert!(
            start.elapsed() < HANG_GUARD,
            "looper is never cancelled: {:#}",
            env.state().0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.state().0["status"], "running", "quick still runs");
    // Quit: the dashboard ends, the terminal is as it was, the run goes on.
    tmux.keys(&["q"]);
    // `stty -a` prints after the exit line: both are waited for.
    let screen = tmux.wait_for(&["watch-exited-0", "icanon"]);
    assert!(
        terminal_restored(&screen),
        "the terminal is back in its mode:\n{screen}"
    );
    assert_eq!(
        env.state().0["status"],
        "running",
        "quitting the dashboard stops nothing"
    );
    std::fs::write(env.outside.join("release"), "").expect("release quick");
    let start = Instant::now();
    while env.state().0["status"] == "running" {
        assert!(start.elapsed() < HANG_GUARD, "the run never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = env.state();
    assert_eq!(state.0["workstreams"][2]["phase"], "merged", "{:#}", state.0);
    assert_eq!(state.0["workstreams"][1]["phase"], "skipped", "{:#}", state.0);
    run.wait();
}

#[test]
fn notify_runs_its_command_with_each_chosen_event_as_json() {
    let env = TestEnv::new();
    let notices = env.outside("notices");
    let all = env.outside("all");
    env.workflow(&format!(
        r#"
notify {{
    on "workstream-failed" "run-finished"
    command "sh" "-c" "cat >> {notices}"
}}
notify {{
    command "sh" "-c" "cat >> {all}"
    bell
}}
workstream "a" {{ owns "a/**"; script "mkdir -p a && echo > a/x" }}
workstream "b" {{ owns "b/**"; script "echo 'a message with \"quotes\" and $(no shell)' >&2; exit 3" }}
"#
    ));
    env.run(&["--keep-going"]);
    // The commands run beside the run, not waited for: their lines come a little later.
    let start = Instant::now();
    let read = |name: &str| -> Vec<Value> {
        env.read_outside(name)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
            .collect()
    };
    while read("notices").len() < 2 {
        assert!(
            start.elapsed() < HANG_GUARD,
            "the notices never came: {:?}",
            read("notices")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = read("notices");
    let events: Vec<&str> = got.iter().map(|n| n["event"].as_str().expect("an event")).collect();
    assert_eq!(events, ["workstream-failed", "run-finished"], "{got:#?}");
    assert_eq!(got[0]["workstream"], "b");
    assert_eq!(got[0]["kind"], "agent");
    assert!(
        got[0]["message"].as_str().expect("a message").contains("$(no shell)"),
        "the agent's text arrives as it was, never run: {got:#?}"
    );
    assert_eq!(got[1]["status"], "failed");
    assert!(
        got[1]["message"]
            .as_str()
            .expect("a message")
            .contains("1 of 2 workstreams done")
    );
    // A block with no `on` hears every event.
    while read("all").len() < 2 {
        assert!(
            start.elapsed() < HANG_GUARD,
            "the notices never came: {:?}",
            read("all")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An event it does not know is an error with the known ones; a block with nothing to do too.
    env.workflow(
        r#"
notify { on "run-finsihed"; command "true" }
notify { on "budget-alert" }
workstream "a" { owns "a/**"; script "true" }
"#,
    );
    let out = env.flow().arg("check").output().expect("flow check runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("did you mean `run-finished`"), "{text}");
    assert!(text.contains("needs a `command`, a `bell`, or both"), "{text}");
}

/// Waits until the latest run's state satisfies `done`; returns it.
fn wait_state(env: &TestEnv, what: &str, done: impl Fn(&crate::support::State) -> bool) -> crate::support::State {
    let start = Instant::now();
    loop {
        if let Some(state) = env.try_state()
            && done(&state)
        {
            return state;
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "never {what}: {:#}",
            env.try_state().map(|s| s.0).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A script that fails the first time it runs (counting its runs in `count`), then makes
/// its file.
fn fails_once(name: &str, count: &str) -> String {
    format!(
        "n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}; \
         if [ $n -eq 0 ]; then echo first-time-fails; exit 3; fi; mkdir -p {name} && echo ok > {name}/x"
    )
}

#[test]
fn flow_retry_runs_a_failed_workstream_again_during_the_run_and_its_dependent_after_it() {
    let env = TestEnv::new();
    let (count, release) = (env.outside("count"), env.outside("release"));
    env.workflow(&format!(
        r#"
workstream "flaky" {{ owns "flaky/**"; script "{}" }}
workstream "after" {{ owns "after/**"; depends-on "flaky"; script "mkdir -p after && echo > after/x" }}
workstream "holder" {{ owns "holder/**"; script "mkdir -p holder && echo > holder/x; while [ ! -f {release} ]; do sleep 0.1; done" }}
"#,
        fails_once("flaky", &count)
    ));
    // Without --keep-going: the failure stops new starts until it is retried.
    let mut run = env.spawn_flow(&["run", "--grace", "1s"]);
    wait_state(&env, "flaky failed and after skipped", |s| {
        s.phase("flaky") == "failed" && s.phase("after") == "skipped"
    });
    let ask = |args: &[&str]| env.flow().args(args).output().expect("flow runs");
    // What is not failed is refused, and says why.
    let out = ask(&["retry", "holder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("holder is running: only a failed, stopped or skipped workstream"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ask(&["retry", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    // Retrying the skipped dependent retries the failure it waits on.
    let out = ask(&["retry", "after"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = wait_state(&env, "flaky and after merged", |s| {
        s.phase("flaky") == "merged" && s.phase("after") == "merged"
    });
    assert_eq!(state.phase("holder"), "running", "all this while the run goes on");
    assert_eq!(env.read_outside("count").trim(), "2", "a second attempt, which passed");
    std::fs::write(env.outside.join("release"), "").expect("release holder");
    let status = run.wait();
    assert_eq!(status.code(), Some(0), "everything merged: {:#}", env.state().0);
    let state = env.state();
    assert_eq!(state.status(), "succeeded");
    let attempts = state.ws("flaky")["attempt_log"].as_array().expect("attempts").len();
    assert_eq!(attempts, 2, "the failed attempt stays in the record");
    let retried: Vec<Value> = events(&env).into_iter().filter(|e| e["event"] == "retried").collect();
    assert_eq!(retried.len(), 1, "{retried:#?}");
    assert_eq!(retried[0]["workstream"], 0);
    assert_eq!(retried[0]["reason"], "retried by a person");
    // The run is over: a retry now is refused, pointing at resume.
    let out = ask(&["retry", "flaky"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the run is over"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flow_tell_gives_a_running_agent_a_message_as_it_is_never_through_a_shell() {
    let env = TestEnv::new();
    let (received, purpose, go) = (env.outside("received"), env.outside("purpose"), env.outside("go"));
    env.workflow(&format!(
        r#"
workstream "talker" {{ owns "talker/**"; script "if [ \"$FLOW_FEEDBACK_KIND\" = message ]; then cp \"$FLOW_PROMPT_FILE\" {received}; echo $FLOW_PURPOSE > {purpose}; mkdir -p talker && echo told > talker/x; else while [ ! -f {go} ]; do sleep 0.1; done; fi" }}
"#
    ));
    let mut run = env.spawn_flow(&["run", "--grace", "1s"]);
    wait_state(&env, "talker running", |s| s.phase("talker") == "running");
    let hostile = "use $(touch PWNED) and `touch PWNED2`; \"quoted\" 'single' \u{1b}]0;title\u{7}done";
    let out = env
        .flow()
        .args(["tell", "talker", hostile, "second"])
        .output()
        .expect("flow tell runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_state(&env, "the message queued", |s| {
        s.0["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m.as_str().unwrap_or("").contains("message for `talker` is queued"))
        })
    });
    // The running attempt was not cut short: it ends when told to, and the message follows.
    std::fs::write(env.outside.join("go"), "").expect("let the attempt end");
    let status = run.wait();
    assert_eq!(status.code(), Some(0), "{:#}", env.state().0);
    let told = env.read_outside("received");
    let expected = "use $(touch PWNED) and `touch PWNED2`; \"quoted\" 'single' ]0;titledone second";
    assert!(
        told.contains(expected),
        "the text as it was typed, controls dropped:\n{told}"
    );
    assert!(!told.contains('\u{1b}'), "{told:?}");
    assert_eq!(env.read_outside("purpose").trim(), "fix");
    let found = Command::new("find")
        .arg(env.base())
        .args(["-name", "PWNED*"])
        .output()
        .expect("find runs");
    assert!(
        found.stdout.is_empty(),
        "a shell ran the text: {}",
        String::from_utf8_lossy(&found.stdout)
    );
    let state = env.state();
    assert_eq!(state.phase("talker"), "merged");
    let log = state.ws("talker")["attempt_log"].as_array().expect("attempts").clone();
    let kinds: Vec<(&str, Option<&str>)> = log
        .iter()
        .map(|a| (a["purpose"].as_str().unwrap_or(""), a["feedback"].as_str()))
        .collect();
    assert_eq!(kinds, [("work", None), ("fix", Some("message"))]);
    assert_eq!(state.ws("talker")["fixes"], 0, "a message is not a fix");
    // Merged: a message now is refused.
    let out = env
        .flow()
        .args(["tell", "talker", "more"])
        .output()
        .expect("flow tell runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn flow_run_watch_shows_the_run_retries_messages_searches_and_quits_leaving_it_going() {
    if which::which("tmux").is_err() {
        eprintln!("skipped: no tmux on PATH (Debian: apt-get install tmux) to drive flow run --watch in a terminal");
        return;
    }
    let env = TestEnv::new();
    let (count, release, told) = (env.outside("count"), env.outside("release"), env.outside("told"));
    env.workflow(&format!(
        r#"
workstream "waiter" {{ owns "waiter/**"; script "if [ -n \"$FLOW_FEEDBACK_KIND\" ]; then cp \"$FLOW_PROMPT_FILE\" {told}; fi; echo waiter-started; while [ ! -f {release} ]; do sleep 0.1; done; mkdir -p waiter && echo > waiter/x" }}
workstream "second" {{ owns "second/**"; depends-on "waiter"; script "mkdir -p second && echo > second/x" }}
workstream "flaky" {{ owns "flaky/**"; script "{}" }}
"#,
        fails_once("flaky", &count)
    ));
    let tmux = Tmux {
        socket: env.base().join("tmux.sock"),
    };
    let home = env.base().join("home");
    let mut shell = format!("cd '{}' && env -i", env.root.display());
    for (key, value) in crate::support::hermetic_env(&home) {
        shell.push_str(&format!(" {key}='{value}'"));
    }
    shell.push_str(&format!(
        " TERM=xterm-256color '{}' run --watch --keep-going --grace 1s; echo run-exited-$?; stty -a; sleep 600",
        flow_bin().display()
    ));
    let status = tmux
        .command()
        .args(["new-session", "-d", "-s", "watch", "-x", "120", "-y", "32", &shell])
        .status()
        .expect("tmux starts");
    assert!(status.success());

    // The dashboard comes up with the run: every workstream, the first one's output followed.
    tmux.wait_for(&[
        "waiter",
        "second",
        "flaky",
        "output of waiter (following)",
        "waiter-started",
    ]);
    wait_state(&env, "flaky failed", |s| s.phase("flaky") == "failed");
    // r on the failed one: the run tries it again, and it passes.
    tmux.keys(&["G"]);
    tmux.wait_for(&["output of flaky", "first-time-fails"]);
    tmux.keys(&["r"]);
    tmux.wait_for(&["asked the run to retry flaky"]);
    // Its merge waits for its turn after waiter's and second's, in the plan's order.
    wait_state(&env, "flaky passed", |s| matches!(s.phase("flaky"), "ready" | "merged"));
    // m on the running one: a line to type, sent with Enter.
    tmux.keys(&["g"]);
    tmux.wait_for(&["output of waiter"]);
    tmux.keys(&["m"]);
    tmux.wait_for(&["message for waiter:", "Enter sends"]);
    tmux.keys(&["-l", "please $(say) hello"]);
    tmux.wait_for(&["message for waiter: please $(say) hello"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["sent waiter a message"]);
    wait_state(&env, "the message queued", |s| {
        s.0["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m.as_str().unwrap_or("").contains("message for `waiter` is queued"))
        })
    });
    // / searches the output; Esc clears the search, then quits.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "waiter-started"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["/waiter-started: 1/1", "▶waiter-started"]);
    tmux.keys(&["Escape"]);
    tmux.wait_for(&["search cleared"]);
    assert_eq!(env.state().status(), "running");
    tmux.keys(&["q"]);
    // The dashboard is gone; the run goes on in the terminal until its agents are done.
    let start = Instant::now();
    while tmux.screen().contains("output of waiter") {
        assert!(
            start.elapsed() < HANG_GUARD,
            "the dashboard never quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.state().status(), "running", "quitting the dashboard stops nothing");
    std::fs::write(env.outside.join("release"), "").expect("release waiter");
    let screen = tmux.wait_for(&["run-exited-0", "icanon"]);
    assert!(
        terminal_restored(&screen),
        "the terminal is back in its mode:\n{screen}"
    );
    let state = env.state();
    for name in ["waiter", "second", "flaky"] {
        assert_eq!(state.phase(name), "merged", "{:#}", state.0);
    }
    assert!(
        env.read_outside("told").contains("please $(say) hello"),
        "the message reached waiter's agent: {:?}",
        env.read_outside("told")
    );
}

#[test]
fn flow_run_watch_ends_the_run_when_its_terminal_goes_away() {
    if which::which("tmux").is_err() {
        eprintln!("skipped: no tmux on PATH (Debian: apt-get install tmux) to drive flow run --watch in a terminal");
        return;
    }
    let env = TestEnv::new();
    let release = env.outside("release");
    env.workflow(&format!(
        r#"
workstream "waiter" {{ owns "waiter/**"; script "echo waiter-started; echo $$ > {release}.pid; while [ ! -f {release} ]; do sleep 0.1; done" }}
"#
    ));
    let tmux = Tmux {
        socket: env.base().join("tmux.sock"),
    };
    let home = env.base().join("home");
    let pid_file = env.base().join("flow.pid");
    let mut shell = format!("cd '{}' && env -i", env.root.display());
    for (key, value) in crate::support::hermetic_env(&home) {
        shell.push_str(&format!(" {key}='{value}'"));
    }
    shell.push_str(&format!(
        " TERM=xterm-256color sh -c 'echo $$ > {}; exec {} run --watch --grace 1s'",
        pid_file.display(),
        flow_bin().display()
    ));
    let status = tmux
        .command()
        .args(["new-session", "-d", "-s", "watch", "-x", "120", "-y", "32", &shell])
        .status()
        .expect("tmux starts");
    assert!(status.success());
    tmux.wait_for(&["output of waiter (following)", "waiter-started"]);
    let gone = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    };
    let flow_pid = std::fs::read_to_string(&pid_file).expect("flow's pid");
    let agent_pid = std::fs::read_to_string(format!("{release}.pid")).expect("the agent's pid");
    // The terminal goes away (a closed window, a killed tmux): the run is interrupted and
    // ends, its agent stopped, and flow with it; the dashboard neither spins on the dead
    // terminal nor dies writing to it before the run is over.
    let _ = tmux.command().arg("kill-server").status();
    let start = Instant::now();
    while !gone(&flow_pid) || !gone(&agent_pid) {
        if start.elapsed() >= HANG_GUARD {
            let _ = Command::new("kill")
                .args(["-9", flow_pid.trim(), agent_pid.trim()])
                .status();
            panic!("flow run --watch or its agent outlived the terminal");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.state().status(), "cancelled", "the run ended with its terminal");
}
