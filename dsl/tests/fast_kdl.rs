//! Differential tests of `flow_dsl::fast_kdl::parse`, the fast path for reading workflow files,
//! against the `kdl` crate it stands in for.
//!
//! Whenever the fast parser gives a document, the `kdl` crate must parse the same text too and
//! give the same names, values, entry order, children, and spans (document, node, node name,
//! entry, property key). The fast parser may give `None` for anything (the caller then uses the
//! `kdl` crate), but it must accept every document generated from the subset it claims.
//!
//! The speed check prints both parsers' times on a 5,000-workstream workflow; run it with
//! `cargo test --release -p flow-dsl --test dsl fast_kdl -- --nocapture`.

use std::path::Path;
use std::time::{Duration, Instant};

use flow_dsl::fast_kdl;
use flow_dsl::node::{Document, Entry, Node as LightNode};
use kdl::{KdlDocument, KdlValue};
use miette::SourceSpan;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn show(span: SourceSpan) -> String {
    format!("{}..{}", span.offset(), span.offset() + span.len())
}

fn same_value(a: &KdlValue, b: &KdlValue) -> bool {
    match (a, b) {
        (KdlValue::Float(x), KdlValue::Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (KdlValue::Float(_), _) | (_, KdlValue::Float(_)) => false,
        _ => a == b,
    }
}

fn same_span(what: &str, at: &str, fast: SourceSpan, slow: SourceSpan) -> Result<(), String> {
    if fast == slow {
        Ok(())
    } else {
        Err(format!(
            "{at}: {what} span {} but the kdl crate says {}",
            show(fast),
            show(slow)
        ))
    }
}

/// Walks both documents; the first difference, as a message.
fn same_document(fast: &Document, slow: &Document, at: &str) -> Result<(), String> {
    same_span("document", at, fast.span(), slow.span())?;
    if fast.nodes().len() != slow.nodes().len() {
        return Err(format!(
            "{at}: {} nodes but the kdl crate has {}",
            fast.nodes().len(),
            slow.nodes().len()
        ));
    }
    for (i, (f, s)) in fast.nodes().iter().zip(slow.nodes()).enumerate() {
        same_node(f, s, &format!("{at}/{i}"))?;
    }
    Ok(())
}

fn same_node(fast: &LightNode, slow: &LightNode, at: &str) -> Result<(), String> {
    if fast.name().value() != slow.name().value() {
        return Err(format!(
            "{at}: node name {:?} but the kdl crate says {:?}",
            fast.name().value(),
            slow.name().value()
        ));
    }
    let at = format!("{at} `{}`", slow.name().value());
    same_span("node name", &at, fast.name().span(), slow.name().span())?;
    same_span("node", &at, fast.span(), slow.span())?;
    if fast.entries().len() != slow.entries().len() {
        return Err(format!(
            "{at}: {} entries but the kdl crate has {}",
            fast.entries().len(),
            slow.entries().len()
        ));
    }
    for (i, (f, s)) in fast.entries().iter().zip(slow.entries()).enumerate() {
        same_entry(f, s, &format!("{at} entry {i}"))?;
    }
    match (fast.children(), slow.children()) {
        (None, None) => Ok(()),
        (Some(f), Some(s)) => same_document(f, s, &at),
        (f, s) => Err(format!(
            "{at}: children {} but the kdl crate says {}",
            f.is_some(),
            s.is_some()
        )),
    }
}

fn same_entry(fast: &Entry, slow: &Entry, at: &str) -> Result<(), String> {
    if !same_value(fast.value(), slow.value()) {
        return Err(format!(
            "{at}: value {:?} but the kdl crate says {:?}",
            fast.value(),
            slow.value()
        ));
    }
    same_span("entry", at, fast.span(), slow.span())?;
    match (fast.name(), slow.name()) {
        (None, None) => Ok(()),
        (Some(f), Some(s)) if f.value() == s.value() => same_span("property key", at, f.span(), s.span()),
        (f, s) => Err(format!(
            "{at}: property key {:?} but the kdl crate says {:?}",
            f.map(|k| k.value()),
            s.map(|k| k.value())
        )),
    }
}

/// Parses `text` both ways. The fast parser may decline; when it accepts, the `kdl` crate must
/// accept too and agree. Returns whether the fast parser accepted.
fn check(text: &str) -> Result<bool, String> {
    let Some(fast) = fast_kdl::parse(text) else {
        return Ok(false);
    };
    match text.parse::<KdlDocument>() {
        Ok(slow) => same_document(&fast, &Document::from(&slow), "")
            .map(|()| true)
            .map_err(|e| format!("{e}\nin {text:?}")),
        Err(e) => Err(format!(
            "the fast parser accepted text the kdl crate rejects ({e:?})\nin {text:?}"
        )),
    }
}

/// Like [`check`], and the fast parser must accept.
fn check_accepted(text: &str) -> Result<(), String> {
    if check(text)? {
        Ok(())
    } else {
        let slow = text
            .parse::<KdlDocument>()
            .map(|_| "parses")
            .unwrap_or_else(|_| "rejects");
        Err(format!(
            "the fast parser declined text in its subset (the kdl crate {slow} it)\nin {text:?}"
        ))
    }
}

fn kdl_files(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<(String, String)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(&p).ok()?)))
        .collect();
    files.sort();
    files
}

#[test]
fn example_workflows_parse_the_same() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.parent().expect("the workspace folder");
    let mut files = kdl_files(&root.join("workflows"));
    files.extend(kdl_files(&root.join("stdlib/std")));
    files.extend(kdl_files(&crate_dir.join("tests/corpus")));
    for name in flow_stdlib::MODULES {
        files.push((
            format!("std:{name}"),
            flow_stdlib::module(name).unwrap_or_default().to_string(),
        ));
    }
    let mut accepted = 0;
    let mut valid = 0;
    for (name, text) in &files {
        let ok = check(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        accepted += usize::from(ok);
        if text.parse::<KdlDocument>().is_ok() {
            valid += 1;
            // Slashdash comments and type annotations are outside the subset; anything else a
            // real workflow uses should stay on the fast path.
            assert!(
                ok || text.contains("/-") || text.contains('('),
                "{name}: the fast path declines this valid file, so it is read by the slow kdl crate"
            );
        }
    }
    println!(
        "{accepted} of {} files ({valid} valid KDL) taken by the fast path",
        files.len()
    );
}

/// Hand-picked texts within the subset, each checked against the kdl crate.
const ACCEPTED: &[&str] = &[
    "",
    "  \n ",
    "// only a comment\n",
    "/* c */",
    "a",
    "a b",
    "a \"b\" k=\"v\" k2 = 3;",
    "  node 1 2 {\n  child x=1 ; c2\n} ; next",
    "n /* c */ 1 /* d */ // hi\nm",
    "a {\n}\n\n",
    "a {\n  b\n  }  \n",
    "\"a b\" \"k\"=\"v\" #\"r\"#=#true",
    "a 1 \\\n 2",
    "a 1 \\ // c\n 2 \\",
    "a 1 \\",
    "a \\\n",
    "a \\ \n\n b",
    "\\\na",
    "a {} ;",
    "a{}",
    "a b{}",
    "a \"b\"{}",
    "a #true{}",
    "a 1{}",
    "a b=c{}",
    "a .a -. +.x .. - + -- +- ,",
    "a 1e3 1_000.5_0 -0 +5 1_e5 1E+5 2.5e-3 0.0 -0.0 007 1__2",
    "a 170141183460469231731687303715884105 -99999999999999999999999999999999999999",
    "a #true #false #null #inf #-inf #nan",
    "a \"x\\sy\\u{1F600}\\b\\f\\r\\\"\\\\\\n\\t\\u{0}\"",
    "a \"a\\   \n   b\"",
    "a \"\\  \"",
    "a \"tab\there\"",
    "a \"\"\"\n  foo\n    bar\n\n   \n  baz\n  \"\"\" b",
    "a \"\"\"\n\tfoo\n\t\"\"\"",
    "a \"\"\"\n\"\"\"",
    "a \"\"\"\n\n\"\"\"",
    "a \"\"\"\n  \n  \"\"\"",
    "a \"\"\"\n  x\"\"\n  \"\"y\n  \"\"\"",
    "a \"\"\"\n  x\n \"\"\"",
    "a \"\"\"\n  x\n  \\n\\t\\u{41}\n  \"\"\"",
    "a \"\"\"\n  \\\"\"\"\n  \"\"\"",
    "a \"\"\"\r\n  x\r\n  y\r\n  \"\"\"",
    "a #\"\"\"\n  x\\n \"\" \"\"\"\n  \"\"\"#",
    "a #\"\"\"\n  x\n  \"\"\"# 1",
    "a ##\"x\"#y\"##",
    "a #\"C:\\path\"#",
    "a #\"\"# ##\"\"## #\"\"x\"# ##\"\"x\"#\"##",
    "a\n\"\"\"\nx\n\"\"\" 1",
    "a\t\u{a0}b\u{3000}c",
    "a\u{2028}b\u{85}c\u{b}d\u{c}e\rf\r\ng",
    "é 日本語 \"😀\" k😀=v",
    "a /* /* nested */ */ b /*/ */ c",
    "a; b; c",
    "p { a; b }",
    "p {a}",
    "p { a {} }",
    "workflow \"bench\" {\n    max-parallel 64\n}\nagent \"shell\" {\n    command \"sh\" \"-c\" \"{script}\"\n}\n",
];

/// Texts the fast parser must decline: invalid KDL or outside its subset.
const DECLINED: &[&str] = &[
    "\u{FEFF}a",
    "a;;",
    "a; ;",
    "a;\n;",
    "a #truex",
    "a -inf",
    "a +nan",
    "a true",
    "true",
    "a null",
    "a \"\\u{D800}\"",
    "a \"\\u{1234567}\"",
    "a \"\\/\"",
    "a \"\\q\"",
    "a \"unterminated",
    "a \"line\nbreak\"",
    "(t)a",
    "a (t)1",
    "/- a",
    "a /-b c",
    "a 0x10",
    "a 0b1",
    "a 0o7",
    "a 1.",
    "a .5",
    "a +.5",
    "a 1e",
    "a 1abc",
    "a 1.5.3",
    "a 1_000_000_000_000_000_000_000_000_000_000_000_000_000",
    "a {} b",
    "a {} {}",
    "a b\\c",
    "a /* unterminated",
    "n\n\n  {}",
    "a }",
    "a {",
    "{ a }",
    "a=1",
    "a 1=2",
    "a k=",
    "a k=\n1",
    "a \"b\"c",
    "a \"b\"\"c\"",
    "a #\"\"\"#",
    "a #\"\"\"\"#",
    "a ##\"\"\"x\"##",
    "a #\"\"\"x\"\"\"#",
    "a \"\"\" x\n\"\"\"",
    "a \"\"\"\n  a\n\t\"\"\"",
    "a \"\"\"\n  x\n  \\   \n  y\n  \"\"\"",
    "a \"\"\"\n  x \"\"\" y\n  \"\"\"",
    "a #\"\"\"\n  x\n \t \"\"\"#",
    "a [b]",
    "a b\u{7f}",
    "a \"\u{7f}\"",
    "a \u{200e}",
    "a \"\u{feff}\"",
    "a #",
    "a ##x",
    "a #yes",
];

#[test]
fn hand_picked_texts() {
    for text in ACCEPTED {
        check_accepted(text).unwrap_or_else(|e| panic!("{e}"));
    }
    for text in DECLINED {
        assert!(fast_kdl::parse(text).is_none(), "the fast parser accepted {text:?}");
    }
}

#[test]
fn deep_nesting_is_declined() {
    let depth = fast_kdl::MAX_DEPTH + 1;
    let text = format!("{}{}", "a {".repeat(depth), "}".repeat(depth));
    assert!(fast_kdl::parse(&text).is_none());
    let depth = fast_kdl::MAX_DEPTH;
    let text = format!("{}{}", "a {".repeat(depth), "}".repeat(depth));
    check_accepted(&text).unwrap_or_else(|e| panic!("{e}"));
}

// ---- generated documents in the subset ----

fn identifier() -> impl Strategy<Value = String> {
    let keyword = |s: &String| matches!(s.as_str(), "true" | "false" | "null" | "inf" | "nan");
    prop_oneof![
        4 => "[a-z][a-z0-9_-]{0,8}".prop_filter("a keyword", move |s| !keyword(s)),
        1 => prop::sample::select(vec![
            "-", "+", "--", "-x", "+y", ".", "..", ".a", "-.", "+.z", "a.b", "x'y", "é", "日本", "a,b", "<>", "a:b",
            "std:agents", "-_", "_", "truex", "nulls", "info", "-infinity", "x😀",
        ])
        .prop_map(str::to_string),
    ]
}

/// Pieces of a quoted string, as source text. `ws_escapes`: allow `\` + whitespace.
fn string_piece(ws_escapes: bool) -> impl Strategy<Value = String> {
    let plain = prop_oneof![
        6 => "[a-zA-Z0-9 ,.:/{}=#;()-]{1,6}",
        1 => prop::sample::select(vec!["é", "😀", "日本", "\t", "\u{a0}", "\u{3000}", "'", "*", "//", "/*", "*/"])
            .prop_map(str::to_string),
    ];
    let escape = prop::sample::select(vec![
        "\\n",
        "\\t",
        "\\\\",
        "\\\"",
        "\\r",
        "\\b",
        "\\f",
        "\\s",
        "\\u{41}",
        "\\u{1F600}",
        "\\u{e9}",
        "\\u{0}",
        "\\u{10FFFF}",
        "\\u{00000A}",
    ])
    .prop_map(str::to_string);
    let ws_escape =
        prop::sample::select(vec!["\\ ", "\\\n", "\\   \n   ", "\\\t\n\n  ", "\\\r\n"]).prop_map(str::to_string);
    if ws_escapes {
        prop_oneof![6 => plain, 2 => escape, 1 => ws_escape].boxed()
    } else {
        prop_oneof![6 => plain, 2 => escape].boxed()
    }
}

fn quoted() -> impl Strategy<Value = String> {
    prop::collection::vec(string_piece(true), 0..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// A line of a multi-line string: empty, whitespace only, or indented content.
#[derive(Debug, Clone)]
enum Line {
    Empty,
    Blank(String),
    Text(String, String),
}

fn multi_line(raw: bool) -> impl Strategy<Value = String> {
    let content = if raw {
        prop::collection::vec(
            prop_oneof![
                4 => "[a-zA-Z0-9 ,.:/{}=;()-]{1,6}",
                1 => prop::sample::select(vec!["\"x", "\"\"y", "\\n", "\\x", "é", "#", "\"\"\" "])
                    .prop_map(str::to_string),
            ],
            1..4,
        )
        .prop_map(|p| p.concat())
        .boxed()
    } else {
        prop::collection::vec(
            prop_oneof![
                4 => string_piece(false),
                1 => prop::sample::select(vec!["\"x", "\"\"y"]).prop_map(str::to_string),
            ],
            1..4,
        )
        .prop_map(|p| p.concat())
        .boxed()
    };
    let line = prop_oneof![
        1 => Just(Line::Empty),
        1 => "[ \t]{1,5}".prop_map(Line::Blank),
        4 => ("[ \t]{0,3}", content).prop_map(|(indent, text)| Line::Text(indent, text)),
    ];
    (
        prop::sample::select(vec!["", "  ", "    ", "\t", " \t", "\u{3000}"]),
        prop::collection::vec(line, 0..5),
        prop::sample::select(vec!["\n", "\r\n", "\r", "\u{2028}"]),
        1..3usize,
    )
        .prop_map(move |(prefix, lines, newline, hashes)| {
            let hashes = if raw { "#".repeat(hashes) } else { String::new() };
            let mut text = format!("{hashes}\"\"\"{newline}");
            for line in lines {
                match line {
                    Line::Empty => {}
                    Line::Blank(ws) => text.push_str(&ws),
                    Line::Text(indent, content) => {
                        // A content line must not look like the closing line.
                        let content = if content.trim_start_matches([' ', '\t']).starts_with("\"\"\"") {
                            format!("x{content}")
                        } else {
                            content
                        };
                        text.push_str(&format!("{prefix}{indent}{content}"));
                    }
                }
                text.push_str(newline);
            }
            text.push_str(&format!("{prefix}\"\"\"{hashes}"));
            text
        })
}

fn raw_string() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z0-9 \\\\/'{}=;.-]{0,8}",
        prop::sample::select(vec!["", "\"", "\"#", "x\"y", "\"x"]),
        1..3usize,
    )
        .prop_map(|(a, b, hashes)| {
            let hashes_text = "#".repeat(hashes);
            // The body may not contain `"` followed by the hashes, nor start with `""`.
            let body = if hashes == 1 && b.contains("\"#") {
                format!("{a}{}", b.replace('#', ""))
            } else {
                format!("{a}{b}")
            };
            let body = if body.starts_with("\"\"") {
                format!("x{body}")
            } else {
                body
            };
            let body = if body.ends_with('"') { format!("{body}x") } else { body };
            format!("{hashes_text}\"{body}\"{hashes_text}")
        })
}

/// Any string, for a name, a key or a value.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => identifier(),
        6 => quoted(),
        1 => multi_line(false),
        1 => multi_line(true),
        1 => raw_string(),
    ]
}

/// Inserts `_` separators at random places after the first digit.
fn underscored(digits: &str, seed: u64) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        out.push(c);
        if (seed >> (i % 64)) & 3 == 0 {
            out.push('_');
        }
    }
    out
}

fn number() -> impl Strategy<Value = String> {
    let sign = prop::sample::select(vec!["", "", "-", "+"]);
    prop_oneof![
        (sign.clone(), any::<u64>(), any::<u64>())
            .prop_map(|(s, n, seed)| format!("{s}{}", underscored(&n.to_string(), seed))),
        (sign.clone(), 0..1000u32, "[0-9]{1,4}", any::<u64>()).prop_map(|(s, i, f, seed)| format!(
            "{s}{}.{}",
            underscored(&i.to_string(), seed),
            underscored(&f, seed >> 7)
        )),
        (
            sign,
            0..100u32,
            prop::option::of("[0-9]{1,3}"),
            prop::sample::select(vec!["e", "E", "e+", "e-", "E-"]),
            0..400u32
        )
            .prop_map(|(s, i, f, e, x)| match f {
                Some(f) => format!("{s}{i}.{f}{e}{x}"),
                None => format!("{s}{i}{e}{x}"),
            }),
        Just("0".to_string()),
        Just("1_000_000".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => string(),
        3 => number(),
        1 => prop::sample::select(vec!["#true", "#false", "#null", "#inf", "#-inf", "#nan"]).prop_map(str::to_string),
    ]
}

/// Node space between entries (never empty).
fn gap() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        " ",
        " ",
        " ",
        "  ",
        "\t",
        " /* c */ ",
        "/* c */",
        " /* a /* b */ */ ",
        " \\\n    ",
        " \\ // note\n  ",
        "\u{3000}",
        " \\\r\n",
    ])
    .prop_map(str::to_string)
}

/// Space around `=` (may be empty).
fn eq_gap() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", "", " ", "/**/", " \\\n "]).prop_map(str::to_string)
}

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => value(),
        2 => (string(), eq_gap(), eq_gap(), value()).prop_map(|(k, a, b, v)| format!("{k}{a}={b}{v}")),
    ]
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    entries: Vec<(String, String)>,
    children: Option<Vec<Node>>,
    before_children: String,
    trailing: String,
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (
        string(),
        prop::collection::vec((gap(), entry()), 0..4),
        prop::sample::select(vec!["", "", " ", " /* t */", " \\\n"]),
    )
        .prop_map(|(name, entries, trailing)| Node {
            name,
            entries,
            children: None,
            before_children: String::new(),
            trailing: trailing.to_string(),
        });
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            string(),
            prop::collection::vec((gap(), entry()), 0..3),
            prop::collection::vec(inner, 0..4),
            prop::sample::select(vec!["", " ", "  ", " /* c */ "]),
            prop::sample::select(vec!["", " ", " /* t */"]),
        )
            .prop_map(|(name, entries, children, before, trailing)| Node {
                name,
                entries,
                children: Some(children),
                before_children: before.to_string(),
                trailing: trailing.to_string(),
            })
    })
}

/// What ends a node (or, for the last node in a block, maybe nothing).
fn terminators() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "\n",
            "\n",
            "\n",
            ";",
            "; ",
            ";\n",
            " // comment\n",
            "\r\n",
            "\n\n",
            "\n  // c\n",
            "\u{2028}",
            "\u{85}",
            "\n/* block */\n",
            "\r",
        ]),
        32,
    )
}

fn render_nodes(nodes: &[Node], terms: &[&str], indent: &str, out: &mut String, k: &mut usize, in_block: bool) {
    for (i, node) in nodes.iter().enumerate() {
        out.push_str(indent);
        render_node(node, terms, indent, out, k);
        let last = i + 1 == nodes.len();
        let term = terms[*k % terms.len()];
        *k += 1;
        if last && (*k).is_multiple_of(3) {
            // The last node needs no terminator; in a block, a space before `}` is fine.
            if in_block {
                out.push(' ');
            }
        } else {
            out.push_str(term);
            if term.ends_with(';') && !in_block && !last {
                out.push(' ');
            }
        }
    }
}

fn render_node(node: &Node, terms: &[&str], indent: &str, out: &mut String, k: &mut usize) {
    out.push_str(&node.name);
    for (gap, entry) in &node.entries {
        out.push_str(gap);
        out.push_str(entry);
    }
    if let Some(children) = &node.children {
        // An identifier name or value needs no space before `{`; other strings neither.
        out.push_str(&node.before_children);
        out.push('{');
        if !children.is_empty() {
            out.push('\n');
        }
        render_nodes(children, terms, &format!("{indent}    "), out, k, true);
        out.push('}');
    }
    // A line continuation at the very end needs something after it to stay a node space.
    out.push_str(&node.trailing);
}

fn document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "", "\n", "// head\n", "/* c */ ", "  ", "\n\n  \n"]),
        prop::collection::vec(node(), 0..6),
        terminators(),
        prop::sample::select(vec!["", "", "\n", "\n// tail", "\n/* tail */\n", "  "]),
    )
        .prop_map(|(leading, nodes, terms, trailing)| {
            let mut out = leading.to_string();
            let mut k = 0;
            render_nodes(&nodes, &terms, "", &mut out, &mut k, false);
            if !nodes.is_empty() && !out.ends_with(['\n', '\r', '\u{2028}', '\u{85}', ';', ' ']) {
                out.push('\n');
            }
            out.push_str(trailing);
            out
        })
}

/// `default` cases (`PROPTEST_CASES` when set), without saving failures to a file.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    // `PROPTEST_CASES=100000` runs more.
    #![proptest_config(config(400))]

    /// Every generated document is valid KDL in the subset: both parsers take it and agree (a
    /// failure that says the kdl crate rejects the text is a bug in the generator).
    #[test]
    fn generated_documents_parse_the_same(text in document()) {
        check_accepted(&text).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(800))]

    /// Near-valid text: a generated document with a few characters changed. Whatever the fast
    /// parser accepts, the kdl crate accepts and reads the same.
    #[test]
    fn mutated_documents_are_never_misread(
        text in document(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(MUTATIONS)), 1..4),
    ) {
        let mut chars: Vec<char> = text.chars().collect();
        for (at, kind, with) in edits {
            let at = if chars.is_empty() { 0 } else { at.index(chars.len() + 1) };
            match kind {
                0 if at < chars.len() => { chars.remove(at); }
                1 if at < chars.len() => chars[at] = with,
                _ => chars.insert(at.min(chars.len()), with),
            }
        }
        let text: String = chars.into_iter().collect();
        check(&text).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(3000))]

    /// Random text over KDL's significant characters.
    #[test]
    fn garbage_is_never_misread(text in prop::collection::vec(prop::sample::select(MUTATIONS), 0..40)) {
        let text: String = text.into_iter().collect();
        check(&text).map_err(TestCaseError::fail)?;
    }
}

const MUTATIONS: &[char] = &[
    'a', 'b', 'e', 'E', 'x', 'u', 'n', 't', 'r', 'f', 's', '0', '1', '9', '_', '.', '+', '-', ' ', ' ', '\t', '\n',
    '\r', '"', '"', '#', '#', '=', '{', '}', ';', '/', '/', '*', '\\', '\\', '(', ')', '[', ',', '\'', '\u{a0}',
    '\u{85}', '\u{2028}', '\u{7f}', '\u{0}', '\u{feff}', 'é', '😀',
];

// ---- speed ----

/// The workflow `bench/gen_graph.py N 2 DIR` writes: N workstreams, each depending on up to two
/// of the 200 before it (chosen here with a fixed pseudo-random sequence, not Python's).
fn generated_workflow(n: usize) -> String {
    let mut state: u64 = 42;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % bound
    };
    let mut out = String::new();
    out.push_str("workflow \"bench\" {\n    max-parallel 64\n}\n");
    out.push_str("agent \"shell\" {\n    command \"sh\" \"-c\" \"{script}\"\n}\n");
    out.push_str("defaults {\n    agent \"shell\"\n    isolation \"none\"\n}\n");
    for i in 0..n {
        let window: Vec<usize> = (i.saturating_sub(200)..i).collect();
        let mut deps: Vec<usize> = vec![];
        while deps.len() < 2.min(window.len()) {
            let d = window[next(window.len())];
            if !deps.contains(&d) {
                deps.push(d);
            }
        }
        deps.sort();
        let dep = if deps.is_empty() {
            String::new()
        } else {
            format!(
                "\n    depends-on {}",
                deps.iter().map(|d| format!("\"t{d}\"")).collect::<Vec<_>>().join(" ")
            )
        };
        out.push_str(&format!(
            "workstream \"t{i}\" {{\n    script \"true\"\n    owns \"gen/t{i}/**\"{dep}\n}}\n"
        ));
    }
    out
}

/// The shortest of `runs` timings of `f`, not counting dropping what it returns.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let value = std::hint::black_box(f());
            let elapsed = start.elapsed();
            drop(value);
            elapsed
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn speed_on_5000_workstreams() {
    let text = generated_workflow(5000);
    let start = Instant::now();
    let slow = text.parse::<KdlDocument>().expect("the kdl crate parses the workflow");
    let mut slow_time = start.elapsed();
    if !cfg!(debug_assertions) {
        slow_time = slow_time.min(best_of(2, || text.parse::<KdlDocument>()));
    }
    let fast = fast_kdl::parse(&text).expect("the fast path takes the workflow");
    same_document(&fast, &Document::from(&slow), "").unwrap_or_else(|e| panic!("{e}"));
    let fast_time = best_of(5, || fast_kdl::parse(&text));
    let build = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    println!(
        "5,000 workstreams ({} KB): fast path {:.2} ms, kdl crate {:.1} ms, {:.0}x faster ({build})",
        text.len() / 1000,
        fast_time.as_secs_f64() * 1e3,
        slow_time.as_secs_f64() * 1e3,
        slow_time.as_secs_f64() / fast_time.as_secs_f64().max(1e-9),
    );
}
