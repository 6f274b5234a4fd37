//! Budgets end to end: fake agent CLIs replay recorded outputs (streaming ones line by line, as
//! the tools print them while they work), and flow stops them once a workstream, account or run
//! budget is crossed, refuses to start more, alerts at 80%, and accounts for every token and
//! dollar. Plus `flow plan`'s cost estimate and the agent's own budget flag.
//!
//! Every figure the tests expect is computed here from the fixtures, independently of flow's
//! readers: the running usage after each line ([`running_usage`]) and the cost from a price table
//! when the tool reports none ([`Prices::cost`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{TestEnv, fake_agent, recorded_output, repo_root};

/// A fixture of `tests/fixtures/budget/`.
fn budget_fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/budget").join(name)
}

/// The fake streaming agent: `stream-agent.sh OUTPUT PRINTED [DELAY]`.
fn stream_agent() -> PathBuf {
    budget_fixture("stream-agent.sh")
}

/// The lines of a fixture.
fn fixture_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Dollars per million tokens, as a `model` definition gives them.
#[derive(Debug, Clone, Copy)]
struct Prices {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
}

impl Prices {
    /// The `model` node defining these prices under `name`.
    fn model_node(&self, name: &str) -> String {
        format!(
            "model \"{name}\" provider=\"test\" id=\"{name}-id\" input-usd={} output-usd={} cache-read-usd={} cache-write-usd={}",
            self.input, self.output, self.cache_read, self.cache_write
        )
    }

    /// What some usage costs at these prices.
    fn cost(&self, usage: &Tally) -> f64 {
        (usage.input as f64 * self.input
            + usage.output as f64 * self.output
            + usage.cache_read as f64 * self.cache_read
            + usage.cache_write as f64 * self.cache_write)
            / 1e6
    }
}

/// Claude Sonnet 4.5's list prices.
const SONNET: Prices = Prices {
    input: 3.0,
    output: 15.0,
    cache_read: 0.3,
    cache_write: 3.75,
};

/// GPT-5-Codex's list prices.
const CODEX: Prices = Prices {
    input: 1.25,
    output: 10.0,
    cache_read: 0.125,
    cache_write: 0.0,
};

/// Gemini 2.5 Pro's list prices.
const GEMINI: Prices = Prices {
    input: 1.25,
    output: 10.0,
    cache_read: 0.31,
    cache_write: 0.0,
};

/// Tokens and cost, as the test reckons them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    /// What the tool reported, if anything.
    cost: Option<f64>,
}

impl Tally {
    fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    fn add(&mut self, other: &Tally) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.cost = match (self.cost, other.cost) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    /// The cost flow records: the tool's, else the price table's.
    fn cost_with(&self, prices: Option<Prices>) -> Option<f64> {
        self.cost
            .or_else(|| prices.filter(|_| self.tokens() > 0).map(|p| p.cost(self)))
    }

    /// Reads a `usage` object of `state.json` or `flow usage --json`.
    fn from_json(usage: &Value) -> Tally {
        let count = |key: &str| usage[key].as_u64().unwrap_or_else(|| panic!("{key} in {usage}"));
        Tally {
            input: count("input_tokens"),
            output: count("output_tokens"),
            cache_read: count("cache_read_tokens"),
            cache_write: count("cache_write_tokens"),
            cost: usage["cost_usd"].as_f64(),
        }
    }
}

/// Checks recorded usage against the expected tokens and cost (to 1e-9 dollars).
#[track_caller]
fn assert_usage(recorded: &Value, expected: Tally, cost: Option<f64>, what: &str) {
    let got = Tally::from_json(recorded);
    assert_eq!(
        (got.input, got.output, got.cache_read, got.cache_write),
        (
            expected.input,
            expected.output,
            expected.cache_read,
            expected.cache_write
        ),
        "{what}: tokens of {recorded}"
    );
    match (got.cost, cost) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what}: cost {a} recorded, {b} expected"),
        (a, b) => assert_eq!(a, b, "{what}: cost"),
    }
}

/// A JSON field as a token count (0 when absent).
fn count(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

/// The usage a tool has reported after each line of its output, computed from the fixture:
/// element `i` is the usage once lines `0..=i` were read.
///
/// - claude-stream-json: each API message counts once, with the largest figure any of its
///   `message_start`, `assistant` or `message_delta` events gave; the `result` replaces it all.
/// - codex-jsonl: `turn.completed` usages summed; cached tokens are inside `input_tokens`.
/// - opencode-jsonl: `step_finish` tokens (reasoning as output) and costs summed.
fn running_usage(format: &str, lines: &[String]) -> Vec<Tally> {
    let mut out = Vec::with_capacity(lines.len());
    let mut total = Tally::default();
    // claude-stream-json: the largest usage seen per message id, in order of appearance.
    let mut messages: Vec<(String, Tally)> = vec![];
    let mut current: Option<String> = None;
    let mut result: Option<Tally> = None;
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        match format {
            "claude-stream-json" => {
                let anthropic = |u: &Value| Tally {
                    input: count(u, "input_tokens"),
                    output: count(u, "output_tokens"),
                    cache_read: count(u, "cache_read_input_tokens"),
                    cache_write: count(u, "cache_creation_input_tokens"),
                    cost: None,
                };
                let mut seen = |id: &str, u: Tally| match messages.iter_mut().find(|(m, _)| m == id) {
                    Some((_, t)) => {
                        t.input = t.input.max(u.input);
                        t.output = t.output.max(u.output);
                        t.cache_read = t.cache_read.max(u.cache_read);
                        t.cache_write = t.cache_write.max(u.cache_write);
                    }
                    None => messages.push((id.to_string(), u)),
                };
                match event["type"].as_str() {
                    Some("stream_event") => {
                        let inner = &event["event"];
                        match inner["type"].as_str() {
                            Some("message_start") => {
                                let id = inner["message"]["id"].as_str().expect("message id").to_string();
                                seen(&id, anthropic(&inner["message"]["usage"]));
                                current = Some(id);
                            }
                            Some("message_delta") => {
                                let id = current.clone().expect("a delta follows a message_start");
                                seen(&id, anthropic(&inner["usage"]));
                            }
                            _ => {}
                        }
                    }
                    Some("assistant") => {
                        let message = &event["message"];
                        seen(message["id"].as_str().expect("id"), anthropic(&message["usage"]));
                    }
                    Some("result") => {
                        let mut t = anthropic(&event["usage"]);
                        t.cost = event["total_cost_usd"].as_f64();
                        result = Some(t);
                    }
                    _ => {}
                }
                total = result.unwrap_or_else(|| {
                    let mut sum = Tally::default();
                    for (_, t) in &messages {
                        sum.add(t);
                    }
                    sum
                });
            }
            "codex-jsonl" => {
                if event["type"] == "turn.completed" {
                    let u = &event["usage"];
                    let cached = count(u, "cached_input_tokens");
                    total.add(&Tally {
                        input: count(u, "input_tokens") - cached,
                        output: count(u, "output_tokens"),
                        cache_read: cached,
                        cache_write: 0,
                        cost: None,
                    });
                }
            }
            "opencode-jsonl" => {
                if event["type"] == "step_finish" {
                    let part = &event["part"];
                    let tokens = &part["tokens"];
                    total.add(&Tally {
                        input: count(tokens, "input"),
                        output: count(tokens, "output") + count(tokens, "reasoning"),
                        cache_read: count(&tokens["cache"], "read"),
                        cache_write: count(&tokens["cache"], "write"),
                        cost: part["cost"].as_f64(),
                    });
                }
            }
            other => panic!("no running usage for {other}"),
        }
        out.push(total);
    }
    out
}

/// The usage of a gemini-json answer: summed over `stats.models`.
fn gemini_usage(path: &Path) -> Tally {
    let text = std::fs::read_to_string(path).expect("read the gemini fixture");
    let answer: Value = serde_json::from_str(&text).expect("gemini JSON");
    let mut total = Tally::default();
    for stats in answer["stats"]["models"].as_object().expect("models").values() {
        let t = &stats["tokens"];
        total.add(&Tally {
            input: count(t, "prompt") - count(t, "cached") + count(t, "tool"),
            output: count(t, "candidates") + count(t, "thoughts"),
            cache_read: count(t, "cached"),
            cache_write: 0,
            cost: None,
        });
    }
    total
}

/// The usage of a claude-json result printed on one line.
fn claude_json_usage(path: &Path) -> Tally {
    let text = std::fs::read_to_string(path).expect("read the claude fixture");
    let result: Value = serde_json::from_str(&text).expect("claude JSON");
    let u = &result["usage"];
    Tally {
        input: count(u, "input_tokens"),
        output: count(u, "output_tokens"),
        cache_read: count(u, "cache_read_input_tokens"),
        cache_write: count(u, "cache_creation_input_tokens"),
        cost: result["total_cost_usd"].as_f64(),
    }
}

/// A workstream limit: `budget usd=X` or `budget tokens=N`.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Usd(f64),
    Tokens(u64),
}

impl Limit {
    fn kdl(&self) -> String {
        match self {
            Limit::Usd(usd) => format!("usd={usd}"),
            Limit::Tokens(tokens) => format!("tokens={tokens}"),
        }
    }

    fn crossed_by(&self, usage: &Tally, prices: Option<Prices>) -> bool {
        match *self {
            Limit::Usd(limit) => usage.cost_with(prices).is_some_and(|spent| spent > limit),
            Limit::Tokens(limit) => usage.tokens() > limit,
        }
    }
}

/// The numbers a fake streaming agent wrote before each line it printed.
fn printed_lines(env: &TestEnv, file: &str) -> Vec<usize> {
    env.read_outside(file)
        .lines()
        .map(|l| l.trim().parse().expect("a line number"))
        .collect()
}

/// The JSON lines of a workstream's log: the agent's stdout as flow read it.
fn logged_json(env: &TestEnv, workstream: &str) -> Vec<String> {
    env.log(workstream)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_string)
        .collect()
}

/// The events of the latest run.
fn events(env: &TestEnv) -> Vec<Value> {
    let dir = env.latest_run_dir().expect("a run");
    std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event is JSON"))
        .collect()
}

/// `flow ARGS --json`'s output.
fn flow_json(env: &TestEnv, args: &[&str]) -> Value {
    let out = env.flow().args(args).output().expect("flow runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The line of `flow usage --json`'s `budgets` for a scope.
#[track_caller]
fn budget_line(usage: &Value, scope: &str) -> Value {
    usage["budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .find(|b| b["scope"] == scope)
        .unwrap_or_else(|| panic!("no budget line {scope} in {usage:#}"))
        .clone()
}

/// Whether a branch has a file (false when the branch does not exist).
fn branch_has(env: &TestEnv, branch: &str, path: &str) -> bool {
    env.rev_parse(branch).is_some() && env.show_file(branch, path).is_some()
}

/// One streaming agent whose workstream budget is crossed mid-run.
struct StreamCase {
    format: &'static str,
    fixture: &'static str,
    /// The workstream's model, when the tool reports no cost and a `usd=` budget needs prices.
    prices: Option<Prices>,
    limit: Limit,
}

/// Runs the case and checks: stopped within one line of the crossing, failed for its budget,
/// not merged, and its recorded usage is the fixture's up to the last line it printed.
fn stops_mid_run(case: StreamCase) {
    let env = TestEnv::new();
    let fixture = budget_fixture(case.fixture);
    let lines = fixture_lines(&fixture);
    let running = running_usage(case.format, &lines);
    let crossing = running
        .iter()
        .position(|u| case.limit.crossed_by(u, case.prices))
        .expect("the fixture crosses the budget")
        + 1;
    assert!(
        crossing + 3 < lines.len(),
        "the budget is crossed mid-run (line {crossing} of {})",
        lines.len()
    );
    let model = match case.prices {
        Some(p) => format!("{}\n", p.model_node("priced")),
        None => String::new(),
    };
    let model_line = if case.prices.is_some() { "model \"priced\"" } else { "" };
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
}}
{model}
agent "stream" {{
    command "sh" "{agent}" "{fixture}" "{printed}"
    output "{format}"
}}
workstream "spender" {{
    agent "stream"
    {model_line}
    owns "fake-spender.txt"
    task "Fix the header parser."
    budget {limit}
}}
"#,
        agent = stream_agent().display(),
        fixture = fixture.display(),
        printed = env.outside("printed.txt"),
        format = case.format,
        limit = case.limit.kdl(),
    ));
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("spender"), "failed", "{}", run.text());
    assert_eq!(state.failure_kind("spender"), Some("budget"), "{}", run.text());
    let message = state.failure_message("spender");
    assert!(message.contains("budget exhausted"), "{message}");

    // Stopped within one event: the last line it printed is the crossing line or the next.
    let printed = printed_lines(&env, "printed.txt");
    let last = *printed.last().expect("the agent printed something");
    assert_eq!(printed, (1..=last).collect::<Vec<_>>());
    assert!(
        (crossing..=crossing + 1).contains(&last),
        "{}: the budget was crossed on line {crossing}, the agent printed up to line {last}",
        case.fixture
    );
    // And it stays stopped.
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(
        printed_lines(&env, "printed.txt").len(),
        last,
        "the agent kept printing"
    );

    // Flow read exactly what was printed, and recorded exactly that usage.
    assert_eq!(logged_json(&env, "spender"), lines[..last].to_vec());
    let expected = running[last - 1];
    assert_usage(
        &state.ws("spender")["usage"],
        expected,
        expected.cost_with(case.prices),
        case.fixture,
    );

    // Nothing it did merged.
    assert!(!branch_has(&env, "integration/t", "fake-spender.txt"));
}

#[test]
fn claude_stream_json_is_stopped_when_its_usd_budget_is_crossed() {
    // Claude reports its cost only in the final result: the running cost is the price table's.
    stops_mid_run(StreamCase {
        format: "claude-stream-json",
        fixture: "claude-stream-json-five-turns.jsonl",
        prices: Some(SONNET),
        limit: Limit::Usd(0.05),
    });
}

#[test]
fn claude_stream_json_is_stopped_when_its_token_budget_is_crossed() {
    stops_mid_run(StreamCase {
        format: "claude-stream-json",
        fixture: "claude-stream-json-five-turns.jsonl",
        prices: None,
        limit: Limit::Tokens(60_000),
    });
}

#[test]
fn codex_jsonl_is_stopped_when_its_token_budget_is_crossed() {
    stops_mid_run(StreamCase {
        format: "codex-jsonl",
        fixture: "codex-jsonl-four-turns.jsonl",
        prices: None,
        limit: Limit::Tokens(40_000),
    });
}

#[test]
fn codex_jsonl_is_stopped_when_its_usd_budget_priced_from_the_model_is_crossed() {
    stops_mid_run(StreamCase {
        format: "codex-jsonl",
        fixture: "codex-jsonl-four-turns.jsonl",
        prices: Some(CODEX),
        limit: Limit::Usd(0.03),
    });
}

#[test]
fn opencode_jsonl_is_stopped_when_its_usd_budget_is_crossed() {
    // opencode reports each step's cost itself: no price table needed.
    stops_mid_run(StreamCase {
        format: "opencode-jsonl",
        fixture: "opencode-jsonl-five-steps.jsonl",
        prices: None,
        limit: Limit::Usd(0.06),
    });
}

#[test]
fn opencode_jsonl_is_stopped_when_its_token_budget_is_crossed() {
    stops_mid_run(StreamCase {
        format: "opencode-jsonl",
        fixture: "opencode-jsonl-five-steps.jsonl",
        prices: None,
        limit: Limit::Tokens(30_000),
    });
}

#[test]
fn non_streaming_outputs_over_budget_fail_after_the_agent_ends_and_do_not_merge() {
    let env = TestEnv::new();
    let script = fake_agent("fake-agent.sh");
    // A pretty-printed array of messages and a pretty-printed Gemini answer: neither has a
    // line holding the usage on its own, so it is known only once the agent has ended.
    let claude = recorded_output("claude-json-array.json");
    let gemini = recorded_output("gemini-json-success.json");
    let claude_usage = {
        let items: Value = serde_json::from_str(&std::fs::read_to_string(&claude).unwrap()).unwrap();
        let result = items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "result")
            .expect("a result")
            .clone();
        result["total_cost_usd"].as_f64().expect("a cost")
    };
    let gemini_tokens = gemini_usage(&gemini).tokens();
    assert!(claude_usage > 0.001 && gemini_tokens > 1000);
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
}}
{gemini_model}
agent "claude" {{
    command "sh" "{script}" "{claude}" "0" "{{prompt_file}}"
    output "claude-json"
}}
agent "gemini" {{
    command "sh" "{script}" "{gemini}" "0" "{{prompt_file}}"
    output "gemini-json"
}}
workstream "claude-over" {{ agent "claude"; owns "fake-claude-over.txt"; task "Spend."; budget usd=0.001 }}
workstream "gemini-over" {{ agent "gemini"; model "gem"; owns "fake-gemini-over.txt"; task "Spend."; budget tokens=1000 }}
workstream "gemini-usd" {{ agent "gemini"; model "gem"; owns "fake-gemini-usd.txt"; task "Spend."; budget usd=0.0001 }}
workstream "gemini-under" {{ agent "gemini"; model "gem"; owns "fake-gemini-under.txt"; task "Spend."; budget tokens={under} }}
"#,
        gemini_model = GEMINI.model_node("gem"),
        script = script.display(),
        claude = claude.display(),
        gemini = gemini.display(),
        under = gemini_tokens,
    ));
    let run = env.run(&["--keep-going", "--deny-overrun"]);
    run.assert_code(1);
    let state = env.state();
    for name in ["claude-over", "gemini-over", "gemini-usd"] {
        assert_eq!(state.phase(name), "failed", "{name}\n{}", run.text());
        assert_eq!(state.failure_kind(name), Some("budget"), "{name}");
        assert!(
            state.failure_message(name).contains("budget exhausted"),
            "{name}: {}",
            state.failure_message(name)
        );
        assert!(
            !branch_has(&env, "integration/t", &format!("fake-{name}.txt")),
            "{name}"
        );
    }
    // The usage is still recorded in full.
    assert_eq!(
        state.ws("claude-over")["usage"]["cost_usd"].as_f64(),
        Some(claude_usage)
    );
    let gemini_expected = gemini_usage(&gemini);
    assert_usage(
        &state.ws("gemini-over")["usage"],
        gemini_expected,
        Some(GEMINI.cost(&gemini_expected)),
        "gemini-over",
    );
    // Exactly at the limit is not over it.
    assert_eq!(state.phase("gemini-under"), "merged", "{}", run.text());
    assert!(branch_has(&env, "integration/t", "fake-gemini-under.txt"));
}

#[test]
fn a_spent_run_budget_launches_no_further_agent_while_work_under_budget_merges() {
    let env = TestEnv::new();
    let fixture = budget_fixture("opencode-jsonl-five-steps.jsonl");
    let lines = fixture_lines(&fixture);
    let running = running_usage("opencode-jsonl", &lines);
    let full = *running.last().unwrap();
    let full_cost = full.cost.unwrap();
    // The first agent spends its whole output under the budget; the second crosses it on its
    // first step; the others never start.
    let budget = full_cost + 0.01;
    let crossing = running
        .iter()
        .position(|u| full_cost + u.cost.unwrap_or(0.0) > budget)
        .unwrap()
        + 1;
    let agent = stream_agent();
    // Started longest remaining path first (by estimate), then by priority: first, second (whose
    // dependent makes its path longer than third's and fourth's), third, fourth.
    let ws = |name: &str, priority: &str, more: &str| {
        format!(
            r#"workstream "{name}" {{ agent "stream"; priority "{priority}"; {more} owns "fake-{name}.txt"; task "Work."; env PRINTED="{printed}" }}"#,
            printed = env.outside(&format!("{name}.printed")),
        )
    };
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
    max-parallel 1
    budget usd={budget}
}}
agent "stream" {{
    command "sh" "-c" "sh {agent} {fixture} \"$PRINTED\" 0.05"
    output "opencode-jsonl"
}}
{first}
{second}
{third}
{fourth}
{after}
"#,
        agent = agent.display(),
        fixture = fixture.display(),
        first = ws("first", "critical", r#"estimate "1h";"#),
        second = ws("second", "high", r#"estimate "1m";"#),
        third = ws("third", "medium", r#"estimate "1m";"#),
        fourth = ws("fourth", "low", r#"estimate "1m";"#),
        after = ws("after-second", "low", r#"estimate "1m"; depends-on "second";"#),
    ));
    let run = env.run(&["--keep-going"]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("first"), "merged", "{}", run.text());
    assert!(branch_has(&env, "integration/t", "fake-first.txt"));
    assert_usage(&state.ws("first")["usage"], full, full.cost, "first");

    assert_eq!(state.phase("second"), "failed", "{}", run.text());
    assert_eq!(state.failure_kind("second"), Some("budget"));
    let message = state.failure_message("second");
    assert!(
        message.contains("run") && message.contains("budget exhausted"),
        "{message}"
    );
    assert!(!branch_has(&env, "integration/t", "fake-second.txt"));
    let printed = printed_lines(&env, "second.printed");
    let last = *printed.last().expect("second printed");
    assert!(
        (crossing..=crossing + 1).contains(&last),
        "crossing {crossing}, last {last}"
    );
    assert_usage(
        &state.ws("second")["usage"],
        running[last - 1],
        running[last - 1].cost,
        "second",
    );

    // No further agent is launched: those that could start are refused, those waiting for the
    // workstream that crossed the budget are skipped.
    for name in ["third", "fourth", "after-second"] {
        assert!(
            env.read_outside(&format!("{name}.printed")).is_empty(),
            "{name} was launched"
        );
        assert_eq!(state.started_at(name), None, "{name}");
    }
    for name in ["third", "fourth"] {
        assert_eq!(state.phase(name), "failed", "{name}\n{}", run.text());
        assert_eq!(state.failure_kind(name), Some("budget"), "{name}");
        let failure = state.failure_message(name);
        assert!(
            failure.starts_with("not started: the run's budget is spent"),
            "{name}: {failure}"
        );
    }
    assert_eq!(state.phase("after-second"), "skipped", "{}", run.text());

    // `flow usage` shows the run's budget passed.
    let usage = flow_json(&env, &["usage", "--json"]);
    let line = budget_line(&usage, "run");
    let spent = full_cost + running[last - 1].cost.unwrap();
    assert!((line["spent_usd"].as_f64().unwrap() - spent).abs() < 1e-9, "{line}");
    assert_eq!(line["limit_usd"].as_f64(), Some(budget));
    assert!(
        (line["percent"].as_f64().unwrap() - 100.0 * spent / budget).abs() < 1e-6,
        "{line}"
    );
}

#[test]
fn an_account_budget_stops_and_refuses_only_that_accounts_workstreams() {
    let env = TestEnv::new();
    let fixture = budget_fixture("opencode-jsonl-five-steps.jsonl");
    let lines = fixture_lines(&fixture);
    let running = running_usage("opencode-jsonl", &lines);
    let limit = 0.05;
    let crossing = running.iter().position(|u| u.cost.unwrap_or(0.0) > limit).unwrap() + 1;
    let agent = stream_agent();
    let ws = |name: &str, priority: &str, account: &str| {
        format!(
            r#"workstream "{name}" {{ agent "stream"; priority "{priority}"; {account} owns "fake-{name}.txt"; task "Work."; env PRINTED="{printed}" }}"#,
            printed = env.outside(&format!("{name}.printed")),
        )
    };
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
}}
account "acct" env="ACCT_KEY" max-parallel=1 budget-usd={limit}
agent "stream" {{
    command "sh" "-c" "sh {agent} {fixture} \"$PRINTED\" 0.05"
    output "opencode-jsonl"
}}
{spender}
{refused}
{free}
"#,
        agent = agent.display(),
        fixture = fixture.display(),
        spender = ws("spender", "critical", r#"account "acct";"#),
        refused = ws("refused", "high", r#"account "acct";"#),
        free = ws("free", "low", ""),
    ));
    let run = env
        .flow()
        .env("ACCT_KEY", "acct-secret-key")
        .args(["run", "--progress", "plain", "--grace", "1s", "--keep-going"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("flow runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(1), "{text}");
    let state = env.state();

    assert_eq!(state.phase("spender"), "failed", "{text}");
    assert_eq!(state.failure_kind("spender"), Some("budget"));
    let message = state.failure_message("spender");
    assert!(
        message.contains("account `acct`") && message.contains("budget exhausted"),
        "{message}"
    );
    // The account's limit is checked by the scheduler, a message away from the agent: it may
    // print one more line than a workstream limit allows.
    let last = *printed_lines(&env, "spender.printed").last().expect("spender printed");
    assert!(
        (crossing..=crossing + 2).contains(&last),
        "crossing {crossing}, last {last}"
    );
    assert_usage(
        &state.ws("spender")["usage"],
        running[last - 1],
        running[last - 1].cost,
        "spender",
    );

    assert_eq!(state.phase("refused"), "failed", "{text}");
    assert_eq!(state.failure_kind("refused"), Some("budget"));
    let message = state.failure_message("refused");
    assert!(
        message.contains("not started") && message.contains("account `acct`"),
        "{message}"
    );
    assert!(env.read_outside("refused.printed").is_empty(), "refused was launched");

    // The workstream on no account ran to its end and merged.
    assert_eq!(state.phase("free"), "merged", "{text}");
    assert_eq!(printed_lines(&env, "free.printed").len(), lines.len());
    assert!(branch_has(&env, "integration/t", "fake-free.txt"));
    assert!(!branch_has(&env, "integration/t", "fake-spender.txt"));
    assert!(!text.contains("acct-secret-key"));

    // `flow usage` counts the account's spending against its budget.
    let usage = flow_json(&env, &["usage", "--json"]);
    let line = budget_line(&usage, "account acct");
    let spent = running[last - 1].cost.unwrap();
    assert!((line["spent_usd"].as_f64().unwrap() - spent).abs() < 1e-9, "{line}");
    assert_eq!(line["limit_usd"].as_f64(), Some(limit));
    assert_eq!(line["spent_tokens"].as_u64(), Some(running[last - 1].tokens()));
    assert!(
        (usage["by_account"]["acct"]["cost_usd"].as_f64().unwrap() - spent).abs() < 1e-9,
        "{usage:#}"
    );
}

#[test]
fn eighty_percent_of_a_budget_raises_an_alert_in_the_events_and_the_progress() {
    let env = TestEnv::new();
    let fixture = budget_fixture("opencode-jsonl-five-steps.jsonl");
    let lines = fixture_lines(&fixture);
    let full = running_usage("opencode-jsonl", &lines).last().copied().unwrap();
    // The whole output stays under the limit but passes 80% of it.
    let limit = full.cost.unwrap() / 0.9;
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
}}
agent "stream" {{
    command "sh" "{agent}" "{fixture}" "{printed}" "0"
    output "opencode-jsonl"
}}
workstream "careful" {{ agent "stream"; owns "fake-careful.txt"; task "Work."; budget usd={limit} }}
"#,
        agent = stream_agent().display(),
        fixture = fixture.display(),
        printed = env.outside("printed.txt"),
    ));
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("careful"), "merged");
    let alerts: Vec<String> = events(&env)
        .into_iter()
        .filter(|e| e["event"] == "alert")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    assert_eq!(alerts.len(), 1, "one alert: {alerts:?}");
    assert!(
        alerts[0].contains("workstream `careful`") && alerts[0].contains("has used 80%"),
        "{alerts:?}"
    );
    assert_eq!(state.alerts(), alerts);
    // The plain progress shows it too.
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.contains("careful") && l.contains("note: workstream `careful` has used 80%")),
        "{}",
        run.text()
    );
}

#[test]
fn usage_totals_agree_between_flow_usage_flow_status_and_the_fixtures() {
    let env = TestEnv::new();
    let stream = stream_agent();
    let fake = fake_agent("fake-agent.sh");
    let claude_json = recorded_output("claude-json-success.json");
    let gemini_json = recorded_output("gemini-json-success.json");
    let claude_stream = budget_fixture("claude-stream-json-five-turns.jsonl");
    let codex = budget_fixture("codex-jsonl-four-turns.jsonl");
    let opencode = budget_fixture("opencode-jsonl-five-steps.jsonl");
    let printed = env.outside("printed.txt");
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
    max-parallel 5
}}
{sonnet}
{codex_model}
{gemini_model}
agent "claude" {{
    command "sh" "{fake}" "{claude_json}" "0" "{{prompt_file}}"
    output "claude-json"
}}
agent "gemini" {{
    command "sh" "{fake}" "{gemini_json}" "0" "{{prompt_file}}"
    output "gemini-json"
}}
agent "claude-stream" {{
    command "sh" "{stream}" "{claude_stream}" "{printed}" "0"
    output "claude-stream-json"
}}
agent "codex" {{
    command "sh" "{stream}" "{codex}" "{printed}" "0"
    output "codex-jsonl"
}}
agent "opencode" {{
    command "sh" "{stream}" "{opencode}" "{printed}" "0"
    output "opencode-jsonl"
}}
workstream "w-claude" {{ agent "claude"; model "sonnet"; owns "fake-w-claude.txt"; task "Work." }}
workstream "w-gemini" {{ agent "gemini"; model "gem"; owns "fake-w-gemini.txt"; task "Work." }}
workstream "w-stream" {{ agent "claude-stream"; model "sonnet"; owns "fake-w-stream.txt"; task "Work." }}
workstream "w-codex" {{ agent "codex"; model "codex"; owns "fake-w-codex.txt"; task "Work." }}
workstream "w-opencode" {{ agent "opencode"; owns "fake-w-opencode.txt"; task "Work." }}
"#,
        sonnet = SONNET.model_node("sonnet"),
        codex_model = CODEX.model_node("codex"),
        gemini_model = GEMINI.model_node("gem"),
        fake = fake.display(),
        stream = stream.display(),
        claude_json = claude_json.display(),
        gemini_json = gemini_json.display(),
        claude_stream = claude_stream.display(),
        codex = codex.display(),
        opencode = opencode.display(),
    ));
    let run = env.run(&[]);
    run.assert_code(0);

    // What each workstream should have recorded, from the fixtures alone.
    let last = |format: &str, path: &Path| *running_usage(format, &fixture_lines(path)).last().unwrap();
    let gemini = gemini_usage(&gemini_json);
    let codex_usage = last("codex-jsonl", &codex);
    let expected: Vec<(&str, Tally, f64)> = vec![
        (
            "w-claude",
            claude_json_usage(&claude_json),
            claude_json_usage(&claude_json).cost.unwrap(),
        ),
        ("w-gemini", gemini, GEMINI.cost(&gemini)),
        (
            "w-stream",
            last("claude-stream-json", &claude_stream),
            last("claude-stream-json", &claude_stream).cost.unwrap(),
        ),
        ("w-codex", codex_usage, CODEX.cost(&codex_usage)),
        (
            "w-opencode",
            last("opencode-jsonl", &opencode),
            last("opencode-jsonl", &opencode).cost.unwrap(),
        ),
    ];
    let mut expected_total = Tally::default();
    let mut expected_cost = 0.0;
    for (_, usage, cost) in &expected {
        expected_total.add(usage);
        expected_cost += cost;
    }

    let status = flow_json(&env, &["status", "--json"]);
    let usage = flow_json(&env, &["usage", "--json"]);

    let mut status_total = Tally::default();
    let mut status_cost = 0.0;
    for ws in status["workstreams"].as_array().expect("workstreams") {
        let name = ws["name"].as_str().unwrap();
        let (_, tally, cost) = expected
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("unexpected workstream {name}"));
        assert_usage(&ws["usage"], *tally, Some(*cost), name);
        assert_eq!(usage["by_workstream"][name], ws["usage"], "{name}");
        let recorded = Tally::from_json(&ws["usage"]);
        status_total.add(&recorded);
        status_cost += recorded.cost.unwrap();
    }
    assert_usage(
        &usage["total"],
        status_total,
        Some(status_cost),
        "flow usage vs flow status",
    );
    assert_usage(
        &usage["total"],
        expected_total,
        Some(expected_cost),
        "flow usage vs fixtures",
    );
    assert_eq!(
        usage["total"]["input_tokens"].as_u64().unwrap()
            + usage["total"]["output_tokens"].as_u64().unwrap()
            + usage["total"]["cache_read_tokens"].as_u64().unwrap()
            + usage["total"]["cache_write_tokens"].as_u64().unwrap(),
        expected_total.tokens()
    );
}

#[test]
fn flow_plan_estimates_the_cost_and_warns_past_a_budget() {
    let env = TestEnv::new();
    // sonnet: $3 in, $15 out per million. 100k tokens: $0.30 (all input) to $1.50 (all output).
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
    budget usd=2 tokens=150_000
}}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
agent "coder" {{
    command "sh" "-c" "true" "{{model}}"
    output "text"
}}
{sonnet}
account "team" env="TEAM_KEY" budget-usd=1
workstream "parser" {{ agent "coder"; model "sonnet"; owns "p/**"; task "Parse."; estimate "20m" tokens=100_000; budget usd=1 }}
workstream "docs" {{ agent "coder"; model "sonnet"; owns "d/**"; task "Document."; account "team"; estimate usd=2 }}
workstream "glue" {{ agent "shell"; owns "g/**"; script "true" }}
"#,
        sonnet = SONNET.model_node("sonnet"),
    ));
    let out = env.flow().args(["plan"]).output().expect("flow plan runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("Cost estimate  $2.30–$3.50 for 2 workstreams; no estimate for glue"),
        "{text}"
    );
    assert!(
        text.contains("warning: workstream `parser` is estimated at $0.30–$1.50, which may pass its $1.00 budget"),
        "{text}"
    );
    assert!(
        text.contains("warning: the run is estimated at $2.30–$3.50, over its $2.00 budget"),
        "{text}"
    );
    assert!(
        text.contains("warning: account `team` is estimated at $2.00–$2.00, over its $1.00 budget"),
        "{text}"
    );
    assert!(
        !text.contains("tokens exceed"),
        "100k tokens are under the run's 150k: {text}"
    );

    let out = env.flow().args(["plan", "--json"]).output().expect("flow plan runs");
    assert!(out.status.success());
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    let cost = &plan["cost"];
    let close = |v: &Value, x: f64| v.as_f64().is_some_and(|v| (v - x).abs() < 1e-9);
    assert!(close(&cost["total"]["low_usd"], 2.3), "{cost:#}");
    assert!(close(&cost["total"]["high_usd"], 3.5), "{cost:#}");
    assert!(close(&cost["workstreams"]["parser"]["low_usd"], 0.3), "{cost:#}");
    assert!(close(&cost["workstreams"]["parser"]["high_usd"], 1.5), "{cost:#}");
    assert!(close(&cost["workstreams"]["docs"]["low_usd"], 2.0), "{cost:#}");
    assert!(close(&cost["workstreams"]["docs"]["high_usd"], 2.0), "{cost:#}");
    assert_eq!(cost["tokens"], 100_000);
    assert_eq!(cost["unestimated"], serde_json::json!(["glue"]));
    assert_eq!(cost["warnings"].as_array().map(Vec::len), Some(3), "{cost:#}");
    assert_eq!(plan["budget"], serde_json::json!({ "usd": 2.0, "tokens": 150_000 }));
    let parser = plan["workstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "parser")
        .unwrap();
    assert_eq!(parser["estimate"]["tokens"], 100_000);
    assert_eq!(parser["budget"]["usd"], 1.0);

    // Under every budget: an estimate, no warning.
    let env = TestEnv::new();
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
    budget usd=10
}}
agent "coder" {{
    command "sh" "-c" "true" "{{model}}"
    output "text"
}}
{sonnet}
workstream "parser" {{ agent "coder"; model "sonnet"; task "Parse."; estimate tokens=100_000; budget usd=2 }}
"#,
        sonnet = SONNET.model_node("sonnet"),
    ));
    let out = env.flow().args(["plan", "--json"]).output().expect("flow plan runs");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    assert_eq!(plan["cost"]["warnings"], serde_json::json!([]), "{:#}", plan["cost"]);
    assert!(close(&plan["cost"]["total"]["high_usd"], 1.5));

    // Token estimates against token budgets: the run's, a workstream's and an account's, with
    // or without prices.
    let env = TestEnv::new();
    env.workflow(
        r#"
workflow "t" {
    base "main"
    budget tokens=400_000
}
agent "coder" {
    command "sh" "-c" "true"
    output "text"
}
account "team" env="TEAM_KEY" budget-tokens=100_000
workstream "big" { agent "coder"; owns "b/**"; task "Big."; estimate tokens=300_000; budget tokens=200_000 }
workstream "teamwork" { agent "coder"; owns "t/**"; task "Team."; account "team"; estimate tokens=150_000 }
"#,
    );
    let out = env.flow().args(["plan", "--json"]).output().expect("flow plan runs");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    assert_eq!(plan["cost"]["tokens"], 450_000);
    assert_eq!(plan["cost"]["unestimated"], serde_json::json!(["big", "teamwork"]));
    assert_eq!(
        plan["cost"]["warnings"],
        serde_json::json!([
            "the estimated 300000 tokens of workstream `big` exceed its budget of 200000 tokens",
            "the estimated 450000 tokens exceed the run's budget of 400000 tokens",
            "the estimated 150000 tokens of account `team` exceed its budget of 100000 tokens",
        ]),
        "{:#}",
        plan["cost"]
    );
    let out = env.flow().args(["plan"]).output().expect("flow plan runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: the estimated 300000 tokens of workstream `big` exceed its budget of 200000 tokens"),
        "{text}"
    );
}

#[test]
fn the_claude_code_preset_puts_its_budget_flag_first() {
    let env = TestEnv::new();
    // A fake `claude` found first on PATH: it writes its arguments, one per line, outside the
    // repository, leaves a change, and answers like `claude -p --output-format json`.
    let bin = env.base().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let claude = bin.join("claude");
    std::fs::write(
        &claude,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"{outside}/$FLOW_WORKSTREAM.args\"\necho x > \"fake-$FLOW_WORKSTREAM.txt\"\ncat \"{answer}\"\n",
            outside = env.outside.display(),
            answer = recorded_output("claude-json-success.json").display(),
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.workflow(
        r#"
workflow "t" {
    base "main"
}
import "std:agents" "std:models"
defaults {
    agent "claude-code"
    model "sonnet"
}
workstream "capped" { owns "fake-capped.txt"; task "Work within two dollars."; budget usd=2 }
workstream "fraction" { owns "fake-fraction.txt"; task "Work within half a dollar."; budget usd=0.5 tokens=900_000 }
workstream "free" { owns "fake-free.txt"; task "Work." }
"#,
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = env
        .flow()
        .env("PATH", path)
        .args(["run", "--progress", "plain", "--grace", "1s"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("flow runs");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let args = |name: &str| -> Vec<String> {
        env.read_outside(&format!("{name}.args"))
            .lines()
            .map(str::to_string)
            .collect()
    };
    let capped = args("capped");
    assert_eq!(capped[..3], ["--max-budget-usd", "2", "-p"], "{capped:?}");
    assert_eq!(capped[3], "--model", "{capped:?}");
    assert!(capped.join("\n").contains("Work within two dollars."), "{capped:?}");
    let fraction = args("fraction");
    assert_eq!(fraction[..3], ["--max-budget-usd", "0.5", "-p"], "{fraction:?}");
    let free = args("free");
    assert_eq!(free.first().map(String::as_str), Some("-p"), "{free:?}");
    assert!(!free.contains(&"--max-budget-usd".to_string()), "{free:?}");
    assert_eq!(env.state().phase("capped"), "merged");
}

#[test]
fn a_workstream_budget_covers_all_its_attempts() {
    let env = TestEnv::new();
    // A pretty-printed claude-json answer (its usage is known only at the end), printed by an
    // agent that fails its first attempt: each attempt is under the budget, both together over.
    let answer = recorded_output("claude-json-array.json");
    let items: Value = serde_json::from_str(&std::fs::read_to_string(&answer).unwrap()).unwrap();
    let cost = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "result")
        .and_then(|r| r["total_cost_usd"].as_f64())
        .expect("a cost");
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
}}
agent "flaky" {{
    command "sh" "-c" "echo x > fake-twice.txt; cat {answer}; [ \"$FLOW_ATTEMPT\" = 2 ]"
    output "claude-json"
}}
workstream "twice" {{ agent "flaky"; owns "fake-twice.txt"; task "Work."; retries 1; budget usd={limit} }}
"#,
        answer = answer.display(),
        limit = cost * 1.5,
    ));
    let run = env.run(&["--deny-overrun"]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.ws("twice")["attempts"], 2, "{}", run.text());
    assert_eq!(state.phase("twice"), "failed", "{}", run.text());
    assert_eq!(state.failure_kind("twice"), Some("budget"), "{}", run.text());
    assert!(
        state.failure_message("twice").contains("budget exhausted"),
        "{}",
        state.failure_message("twice")
    );
    let spent = state.ws("twice")["usage"]["cost_usd"].as_f64().unwrap();
    assert!((spent - 2.0 * cost).abs() < 1e-9, "{spent}");
    assert!(!branch_has(&env, "integration/t", "fake-twice.txt"));
}

/// Without `--deny-overrun`, the work an attempt that passed its budget delivered is kept,
/// the overrun is in the final table and `flow status`, and nothing more starts on the spent
/// budget.
#[test]
fn an_overrun_keeps_the_finished_work_and_says_so_and_stops_further_spending() {
    let env = TestEnv::new();
    let answer = |cost: f64| {
        format!(
            r#"{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done\",\"session_id\":\"s\",\"total_cost_usd\":{cost},\"usage\":{{\"input_tokens\":10,\"output_tokens\":1}}}}"#
        )
    };
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
    budget usd=0.30
}}
agent "json" {{
    command "sh" "-c" "{{script}}"
    output "claude-json"
}}
workstream "first" {{ agent "json"; owns "first.txt"; script "echo x > first.txt; echo '{first}'" }}
workstream "second" {{ agent "json"; owns "second.txt"; depends-on "first"; script "echo x > second.txt; echo '{second}'" }}
"#,
        first = answer(0.37),
        second = answer(0.01),
    ));
    let run = env.run(&["--keep-going"]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("first"), "merged", "{}", run.text());
    assert!(branch_has(&env, "integration/t", "first.txt"));
    assert!(
        run.text()
            .contains("OVER BUDGET: the run spent $0.3700 of its $0.30 budget"),
        "{}",
        run.text()
    );
    // Nothing more starts on the spent budget.
    assert_eq!(state.failure_kind("second"), Some("budget"), "{}", run.text());
    assert_eq!(state.ws("second")["attempts"], 0);
    assert_eq!(state.0["overruns"].as_array().map(Vec::len), Some(1));
}
