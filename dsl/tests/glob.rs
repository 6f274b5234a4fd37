//! Tests of the glob algebra (`globs_may_overlap`, `glob_covers`,
//! `example_path`) against tables of known answers and against globset
//! itself, built the way flow builds globs (`flow_dsl::scope::glob`).

use flow_dsl::{example_path, glob_covers, globs_may_overlap};
use globset::{Candidate, GlobMatcher};
use proptest::prelude::*;

/// globset's matcher for `glob`, as flow builds it, or `None` if invalid.
fn matcher(glob: &str) -> Option<GlobMatcher> {
    flow_dsl::scope::glob(glob).ok().map(|g| g.compile_matcher())
}

fn matches(m: &GlobMatcher, path: &str) -> bool {
    m.is_match_candidate(&Candidate::from_bytes(path.as_bytes()))
}

#[test]
fn overlap_table() {
    let table: &[(&str, &str, bool)] = &[
        // Directories and extensions.
        ("src/ui/**", "src/**/*.py", true),
        ("src/ui/**", "src/api/**", false),
        ("src/ui/**", "src/ui/**", true),
        ("src/**", "src/ui/x.py", true),
        ("src/**", "src", false),
        ("src/**", "srcx/a", false),
        ("src/**", "**", true),
        ("**", "a", true),
        ("**/*.py", "tests/**", true),
        ("**/*.py", "**/*.rs", false),
        ("**/*.py", "x.py", true),
        ("**/*.py", "/x.py", true),
        ("*.py", "src/*.py", false),
        ("*.py", "*.rs", false),
        ("*", "a/b", false),
        ("*", "**/a", true),
        ("*/*", "a", false),
        ("?", "ab", false),
        ("?", "a", true),
        ("??", "*", true),
        ("?", "/", false),
        // Recursive wildcards in the middle.
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/x/b", true),
        ("a/**/b", "a/x/y/b", true),
        ("a/**/b", "a/xb", false),
        ("a/**/b", "a//b", true),
        ("a/**", "a", false),
        ("a/**", "a/", true),
        ("**/a/**", "b/a/c", true),
        ("**/a/**", "b/c", false),
        ("x**", "x/y", false),
        ("x**", "xyz", true),
        // Classes.
        ("src/[a-m]*.rs", "src/[n-z]*.rs", false),
        ("src/[a-m]*.rs", "src/[m-z]*.rs", true),
        ("src/[!a]*", "src/a*", false),
        ("src/[!a]*", "src/ab", false),
        ("src/[!a]*", "src/ba", true),
        ("[/]", "**", false),
        ("a[/]b", "a/b", false),
        ("a[!b]c", "a/c", false),
        ("[[:digit:]]", "[a-z]", false),
        ("[[:alpha:]]", "[x]", true),
        ("[]]", "]", true),
        ("[-a]", "-", true),
        // Alternatives.
        ("docs/*.md", "docs/{a,b}.md", true),
        ("docs/*.md", "docs/{a,b}.txt", false),
        ("{src,tests}/**", "tests/x", true),
        ("{src,tests}/**", "docs/x", false),
        ("src/{api,db}/*.rs", "src/ui/**", false),
        ("src/{api,db}/*.rs", "src/db/**", true),
        ("{a,b/**}", "b/c/d", true),
        ("{,a}", "a", true),
        ("x{a,{b,c}}", "xc", true),
        // Escapes.
        (r"a\*", "a*", true),
        (r"a\*", "ab", false),
        (r"\[a]", r"\[*", true),
        (r"\[a]", "a", false),
        // Unparseable globs: conservatively overlapping.
        ("src/[a", "docs/x", true),
        ("a}", "b", true),
        ("{a", "b", true),
        ("a\\", "b", true),
        ("[z-a]", "b", true),
    ];
    for &(a, b, expected) in table {
        assert_eq!(globs_may_overlap(a, b), expected, "overlap({a:?}, {b:?})");
        assert_eq!(globs_may_overlap(b, a), expected, "overlap({b:?}, {a:?})");
    }
}

#[test]
fn cover_table() {
    let table: &[(&str, &str, bool)] = &[
        ("src/**", "src/ui/**/*.py", true),
        ("src/ui/**", "src/**", false),
        ("src/**", "src/ui/**", true),
        ("**", "src/**", true),
        ("**", "*.py", true),
        ("**", "a", true),
        ("**", "", true),
        ("*.py", "src/x.py", false),
        ("**/*.py", "src/x.py", true),
        ("**/*.py", "src/**/*.py", true),
        ("**/*.py", "src/**", false),
        ("src/**/*.py", "**/*.py", false),
        ("src/*", "src/a.rs", true),
        ("src/*", "src/a/b.rs", false),
        ("src/*", "src/{a,b}.rs", true),
        ("src/*", "src/{a,b/c}.rs", false),
        ("src/{a,b}.rs", "src/[ab].rs", true),
        ("src/[ab].rs", "src/{a,b}.rs", true),
        ("src/[a-z]*", "src/[b-y]?", true),
        ("src/[b-y]*", "src/[a-z]?", false),
        ("*", "?", true),
        ("?", "*", false),
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/*/b", true),
        ("a/*/b", "a/**/b", false),
        ("a/**", "a/**/b", true),
        ("a/**/b", "a/**/**/b", true),
        ("a/**/**/b", "a/**/b", true),
        ("src/**", "src", false),
        ("docs/*.md", "docs/[a-c]*.md", true),
        ("[!a]", "b", true),
        ("[!a]", "a", false),
        ("a", "[/]", true),
        ("a", "a", true),
        ("a", "b", false),
        // Unparseable globs: conservatively not covered.
        ("src/[a", "src/[a", false),
        ("**", "src/[a", false),
        ("src/[a", "src/x", false),
    ];
    for &(outer, inner, expected) in table {
        assert_eq!(glob_covers(outer, inner), expected, "covers({outer:?}, {inner:?})");
    }
}

#[test]
fn examples_match() {
    for (glob, example) in [
        ("src/ui/**/*.py", "src/ui/x.py"),
        ("src/{api,db}/*.rs", "src/api/x.rs"),
        ("docs/[a-c]*.md", "docs/ax.md"),
        ("tests/**", "tests/x"),
        ("**/*.py", "x.py"),
        ("a/b.txt", "a/b.txt"),
        ("src/[a", "src/[a"),
    ] {
        assert_eq!(example_path(glob), example, "example_path({glob:?})");
    }
}

#[test]
fn long_globs_do_not_hang() {
    let a = "**/".repeat(40) + "*.py";
    let b = "{a,b,c}/".repeat(30) + "**";
    let _ = globs_may_overlap(&a, &b);
    let _ = glob_covers(&a, &b);
    let _ = glob_covers(&b, &a);
    let deep = "{".repeat(120) + &"}".repeat(120);
    let _ = globs_may_overlap(&deep, "a");
    let _ = glob_covers(&deep, &deep);
}

/// All paths over `a`, `b`, `c`, `/` of at most `max_len` bytes.
fn small_paths(max_len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..max_len {
        layer = layer
            .iter()
            .flat_map(|p| ["a", "b", "c", "/"].map(|c| format!("{p}{c}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    all
}

fn glob_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", "/", "*", "**", "?", "[ab]", "[!a]", "{a,b}", "{a/,}", "/**", "**/",
        ]),
        0..5,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Checked against globset on every path of up to 5 bytes: an overlap
    /// or a non-inclusion visible on a small path is always reported.
    #[test]
    fn agrees_with_globset(a in glob_strategy(), b in glob_strategy()) {
        let (Some(ma), Some(mb)) = (matcher(&a), matcher(&b)) else {
            return Ok(());
        };
        let overlap = globs_may_overlap(&a, &b);
        prop_assert_eq!(overlap, globs_may_overlap(&b, &a), "symmetry");
        let a_covers_b = glob_covers(&a, &b);
        let b_covers_a = glob_covers(&b, &a);
        for path in small_paths(5) {
            let (in_a, in_b) = (matches(&ma, &path), matches(&mb, &path));
            if in_a && in_b {
                prop_assert!(overlap, "{a:?} and {b:?} both match {path:?}");
            }
            if in_b && !in_a {
                prop_assert!(!a_covers_b, "{a:?} covers {b:?} but not {path:?}");
            }
            if in_a && !in_b {
                prop_assert!(!b_covers_a, "{b:?} covers {a:?} but not {path:?}");
            }
        }
        // Every glob covers itself, and `**` covers every glob.
        prop_assert!(glob_covers(&a, &a));
        prop_assert!(glob_covers("**", &a));
        // The example matches whenever the glob matches anything.
        if globs_may_overlap(&a, &a) {
            let example = example_path(&a);
            prop_assert!(matches(&ma, &example), "example {example:?} of {a:?}");
        }
        if a_covers_b && b_covers_a {
            prop_assert_eq!(overlap, globs_may_overlap(&a, &a));
        }
    }

    /// No input string makes the functions panic; invalid globs get the
    /// conservative answers.
    #[test]
    fn never_panics(a in "\\PC{0,12}", b in "[a-c/*?\\[\\]{},!\\\\^-]{0,10}") {
        let valid = matcher(&a).is_some() && matcher(&b).is_some();
        let overlap = globs_may_overlap(&a, &b);
        let covers = glob_covers(&a, &b);
        let _ = example_path(&a);
        let _ = example_path(&b);
        if !valid {
            prop_assert!(overlap);
            prop_assert!(!covers);
        }
    }
}
