//! Property tests of the workflow checker:
//!
//! - arbitrary text never makes `check_text` panic, and every label of every problem lies
//!   within its file's text, on character boundaries;
//! - KDL documents built at random from the workflow vocabulary (and some junk) never make
//!   it panic, and a failed check always has at least one error;
//! - a random valid workflow (workstreams forming a DAG, run by an inline shell agent)
//!   always passes, with the dependencies it was given.

use std::collections::BTreeSet;
use std::fmt::Write;

use flow_dsl::{Problem, check_text};
use proptest::prelude::*;

/// Checks the invariants every report keeps, whatever the input.
fn check_invariants(text: &str) -> Result<(), TestCaseError> {
    let problems = match check_text("fuzz.kdl", text) {
        Ok(checked) => {
            prop_assert!(
                checked.warnings.iter().all(|p| !p.is_error()),
                "an accepted workflow came with an error"
            );
            checked.warnings
        }
        Err(problems) => {
            prop_assert!(problems.error_count() >= 1, "the check failed without an error");
            problems.problems
        }
    };
    let mut seen = BTreeSet::new();
    for problem in &problems {
        check_labels(problem)?;
        let key = (
            problem.code.as_str(),
            problem.file_name().to_string(),
            problem.offset(),
            problem.message.clone(),
        );
        prop_assert!(seen.insert(key), "{} reported twice: {}", problem.code, problem.message);
    }
    Ok(())
}

fn check_labels(problem: &Problem) -> Result<(), TestCaseError> {
    let source = problem.source.inner();
    prop_assert!(!problem.message.is_empty(), "{}: empty message", problem.code);
    for label in &problem.labels {
        let (start, end) = (label.offset(), label.offset() + label.len());
        prop_assert!(
            end <= source.len(),
            "{}: label {start}..{end} past the end ({})",
            problem.code,
            source.len()
        );
        prop_assert!(
            source.is_char_boundary(start) && source.is_char_boundary(end),
            "{}: label {start}..{end} splits a character",
            problem.code
        );
    }
    // Rendering must not panic either.
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    handler
        .render_report(&mut out, problem)
        .expect("rendering into a string cannot fail");
    Ok(())
}

/// Text made of the characters that matter to KDL and to flow, plus some unicode.
fn kdl_ish_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\"".to_string()),
        Just("\"\"\"".to_string()),
        Just("#".to_string()),
        Just("=".to_string()),
        Just(";".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("\\".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("//".to_string()),
        Just("/-".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("workstream".to_string()),
        Just("task".to_string()),
        Just("depends-on".to_string()),
        Just("#true".to_string()),
        Just("é".to_string()),
        Just("✓".to_string()),
        Just("🦀".to_string()),
        Just("\u{200b}".to_string()),
        "[a-z0-9_.-]{1,6}",
        "-?[0-9]{1,3}(\\.[0-9]{1,2})?",
    ];
    prop::collection::vec(pieces, 0..60).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_invariants(&text)?;
    }

    #[test]
    fn kdl_like_text_never_panics(text in kdl_ish_text()) {
        check_invariants(&text)?;
    }
}

// ---- random documents from the workflow vocabulary ----

const NODE_NAMES: &[&str] = &[
    "workflow",
    "import",
    "defaults",
    "workstream",
    "integrate",
    "model",
    "agent",
    "role",
    "account",
    "kind",
    "base",
    "into",
    "worktrees",
    "branch-prefix",
    "max-parallel",
    "budget",
    "scope-policy",
    "status-file",
    "description",
    "task",
    "script",
    "priority",
    "owns",
    "forbid",
    "context",
    "depends-on",
    "test",
    "timeout",
    "idle-timeout",
    "retries",
    "env",
    "estimate",
    "isolation",
    "verify",
    "on-conflict",
    "order",
    "command",
    "output",
    "stdin",
    "key-env",
    "pass-env",
    "expertise",
    "instructions",
    "workstrem",
    "dependson",
    "x",
];
const PROPERTY_NAMES: &[&str] = &[
    "provider",
    "id",
    "input-usd",
    "output-usd",
    "cache-read-usd",
    "cache-write-usd",
    "priced",
    "env",
    "max-parallel",
    "budget-usd",
    "budget-tokens",
    "model",
    "description",
    "usd",
    "tokens",
    "PATH",
    "junk",
];
const STRINGS: &[&str] = &[
    "a",
    "b",
    "c",
    "d",
    "e",
    "shell",
    "bot",
    "fast",
    "dev1",
    "tests",
    "feature",
    "high",
    "urgent",
    "low",
    "fail",
    "warn",
    "stop",
    "skip",
    "plan",
    "ready",
    "worktree",
    "none",
    "text",
    "claude-json",
    "prompt",
    "45m",
    "0s",
    "1h30m",
    "10min",
    "src/**",
    "src/a/**",
    "src/[a",
    "/abs/**",
    "**",
    "{a,b",
    "main",
    "main branch",
    "",
    "std:agents",
    "std:nope",
    "missing.kdl",
    "sh",
    "-c",
    "{script}",
    "{prompt}",
    "{promt}",
    "{model}",
    "é✓",
];

#[derive(Debug, Clone)]
enum Value {
    Str(&'static str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Str(s) => format!("{s:?}"),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Bool(b) => format!("#{b}"),
            Value::Null => "#null".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    name: &'static str,
    args: Vec<Value>,
    props: Vec<(&'static str, Value)>,
    children: Option<Vec<Node>>,
}

impl Node {
    fn render(&self, depth: usize, out: &mut String) {
        let indent = "    ".repeat(depth);
        write!(out, "{indent}{}", self.name).unwrap();
        for a in &self.args {
            write!(out, " {}", a.render()).unwrap();
        }
        for (k, v) in &self.props {
            write!(out, " {k}={}", v.render()).unwrap();
        }
        match &self.children {
            None => out.push('\n'),
            Some(children) => {
                out.push_str(" {\n");
                for c in children {
                    c.render(depth + 1, out);
                }
                writeln!(out, "{indent}}}").unwrap();
            }
        }
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::sample::select(STRINGS).prop_map(Value::Str),
        2 => prop_oneof![Just(0i64), Just(1), Just(3), Just(-1), Just(5_000_000_000), any::<i64>()].prop_map(Value::Int),
        1 => prop_oneof![Just(2.5f64), Just(-0.5), Just(0.0), Just(1e300)].prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    (
        prop::sample::select(NODE_NAMES),
        prop::collection::vec(value(), 0..4),
        prop::collection::vec((prop::sample::select(PROPERTY_NAMES), value()), 0..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(name, args, props, empty_block)| Node {
            name,
            args,
            props,
            children: empty_block.then(Vec::new),
        })
}

fn node() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(3, 40, 8, |inner| {
        (leaf(), prop::collection::vec(inner, 0..8)).prop_map(|(mut node, children)| {
            node.children = Some(children);
            node
        })
    })
}

/// A workstream whose dependencies are drawn from a small pool of names, so cycles,
/// self-dependencies and unknown names are common.
fn workstream() -> impl Strategy<Value = String> {
    let names = prop::sample::select(&["a", "b", "c", "d", "e", "f"][..]);
    (
        names.clone(),
        prop::collection::vec(names, 0..4),
        prop::collection::vec(node(), 0..3),
    )
        .prop_map(|(name, deps, extra)| {
            let mut out = format!("workstream {name:?} {{\n    task \"do it\"\n");
            if !deps.is_empty() {
                let deps: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
                writeln!(out, "    depends-on {}", deps.join(" ")).unwrap();
            }
            for n in extra {
                n.render(1, &mut out);
            }
            out.push_str("}\n");
            out
        })
}

fn document() -> impl Strategy<Value = String> {
    let agent = prop::bool::ANY.prop_map(|yes| {
        if yes {
            "agent \"shell\" { command \"sh\" \"-c\" \"{script}\" }\n"
        } else {
            ""
        }
    });
    (
        agent,
        prop::collection::vec(workstream(), 0..6),
        prop::collection::vec(node(), 0..5),
    )
        .prop_map(|(agent, streams, nodes)| {
            let mut out = agent.to_string();
            for s in streams {
                out.push_str(&s);
            }
            for n in nodes {
                n.render(0, &mut out);
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_never_panic(text in document()) {
        check_invariants(&text)?;
    }
}

// ---- random valid workflows ----

#[derive(Debug, Clone)]
struct Stream {
    deps: BTreeSet<usize>,
    priority: Option<&'static str>,
    timeout: Option<&'static str>,
    retries: Option<u8>,
    isolation: Option<&'static str>,
}

fn stream(index: usize) -> impl Strategy<Value = Stream> {
    (
        prop::collection::btree_set(0..index.max(1), 0..=index.min(3)),
        prop::option::of(prop::sample::select(&["critical", "high", "medium", "low"][..])),
        prop::option::of(prop::sample::select(&["90s", "45m", "1h30m", "500ms", "2d"][..])),
        prop::option::of(0u8..5),
        prop::option::of(prop::sample::select(&["worktree", "none"][..])),
    )
        .prop_map(move |(deps, priority, timeout, retries, isolation)| Stream {
            // Only earlier workstreams: the graph is acyclic.
            deps: deps.into_iter().filter(|d| *d < index).collect(),
            priority,
            timeout,
            retries,
            isolation,
        })
}

/// Workstreams with dependencies on earlier ones, and a permutation to declare them in.
fn dag() -> impl Strategy<Value = (Vec<Stream>, Vec<usize>)> {
    (1usize..10).prop_flat_map(|n| {
        let streams: Vec<_> = (0..n).map(stream).collect();
        (streams, Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
    })
}

fn render_dag(streams: &[Stream], order: &[usize]) -> String {
    let mut out = String::from(
        "workflow \"dag\" {\n    max-parallel 3\n}\n\nagent \"shell\" {\n    command \"sh\" \"-c\" \"{script}\"\n}\n\ndefaults {\n    agent \"shell\"\n}\n",
    );
    for &i in order {
        let s = &streams[i];
        writeln!(out, "\nworkstream \"w{i}\" {{").unwrap();
        writeln!(out, "    script \"echo {i} > src/w{i}/out.txt\"").unwrap();
        writeln!(out, "    owns \"src/w{i}/**\"").unwrap();
        if !s.deps.is_empty() {
            let deps: Vec<String> = s.deps.iter().map(|d| format!("\"w{d}\"")).collect();
            writeln!(out, "    depends-on {}", deps.join(" ")).unwrap();
        }
        if let Some(p) = s.priority {
            writeln!(out, "    priority \"{p}\"").unwrap();
        }
        if let Some(t) = s.timeout {
            writeln!(out, "    timeout \"{t}\"").unwrap();
        }
        if let Some(r) = s.retries {
            writeln!(out, "    retries {r}").unwrap();
        }
        if let Some(iso) = s.isolation {
            writeln!(out, "    isolation \"{iso}\"").unwrap();
        }
        out.push_str("}\n");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_dags_always_validate((streams, order) in dag()) {
        let text = render_dag(&streams, &order);
        let checked = match check_text("dag.kdl", &text) {
            Ok(c) => c,
            Err(problems) => {
                let messages: Vec<String> = problems.problems.iter().map(|p| format!("{} line {}: {}", p.code, p.line(), p.message)).collect();
                return Err(TestCaseError::fail(format!("rejected:\n{}\n{text}", messages.join("\n"))));
            }
        };
        prop_assert!(checked.warnings.is_empty(), "unexpected warnings: {:?}", checked.warnings.iter().map(|w| &w.message).collect::<Vec<_>>());
        let workflow = &checked.workflow;
        prop_assert_eq!(workflow.workstreams.len(), streams.len());
        for ws in &workflow.workstreams {
            let i: usize = ws.name[1..].parse().expect("workstreams are named w<N>");
            let deps: BTreeSet<usize> = ws.dependencies.iter().map(|&d| workflow.workstreams[d].name[1..].parse().expect("a w<N> name")).collect();
            prop_assert_eq!(&deps, &streams[i].deps, "dependencies of {}", ws.name);
            prop_assert_eq!(ws.agent.as_str(), "shell");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// One edge from a workstream back to one of its ancestors makes exactly one cycle,
    /// reported once, with nothing else.
    #[test]
    fn one_back_edge_makes_one_cycle((mut streams, order) in dag(), start in any::<prop::sample::Index>(), walk in prop::collection::vec(any::<prop::sample::Index>(), 1..5)) {
        let with_deps: Vec<usize> = (0..streams.len()).filter(|&i| !streams[i].deps.is_empty()).collect();
        prop_assume!(!with_deps.is_empty());
        let from = with_deps[start.index(with_deps.len())];
        // Walk down the dependencies to an ancestor of `from`.
        let mut to = from;
        for step in &walk {
            let deps: Vec<usize> = streams[to].deps.iter().copied().collect();
            if deps.is_empty() {
                break;
            }
            to = deps[step.index(deps.len())];
        }
        prop_assume!(to != from);
        streams[to].deps.insert(from);
        let text = render_dag(&streams, &order);
        let problems = match check_text("cycle.kdl", &text) {
            Ok(_) => return Err(TestCaseError::fail(format!("a cycle was accepted:\n{text}"))),
            Err(p) => p,
        };
        let errors: Vec<&Problem> = problems.problems.iter().filter(|p| p.is_error()).collect();
        prop_assert_eq!(errors.len(), 1, "{:?}", errors.iter().map(|p| &p.message).collect::<Vec<_>>());
        prop_assert_eq!(errors[0].code, flow_dsl::Code::DependencyCycle);
        let needle = format!("w{from}");
        prop_assert!(errors[0].message.contains(&needle), "{}", errors[0].message);
    }
}
