//! A workstream's scope: the globs it `owns` and `forbid`, where each was written, and the
//! matchers that decide whether a changed path breaks it.
//!
//! Validation builds one [`Scope`] per workstream; every later stage asks it (the run's scope
//! check, `flow merge`, a report) instead of compiling the globs again. A [`ScopeGlob`]
//! keeps the file and byte span of its string, so a message about a broken rule can point
//! at the rule. [`glob`] is the one place that sets globset's options: the matchers here and
//! the glob algebra (overlap and inclusion) both build their globs with it, so what
//! `flow check` proves about globs holds for the paths a run matches.

use std::fmt;
use std::sync::{Arc, OnceLock};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use miette::SourceSpan;
use serde::{Serialize, Serializer};

/// Builds a glob with the options flow matches every path with.
///
/// `literal_separator(true)`: `*`, `?` and classes never match `/`, and only `**` crosses
/// folders. All other options keep globset's defaults.
pub fn glob(text: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(text).literal_separator(true).build()
}

/// One `owns` or `forbid` glob, as written.
///
/// It serializes as its text alone, so JSON shows a list of globs as a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGlob {
    pub text: String,
    /// Where it was written; `None` for a glob that came from no file.
    pub span: Option<GlobSpan>,
}

/// Where a glob was written: a file, and the byte span of the glob's string in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobSpan {
    /// The file's name as diagnostics show it: its path, `std:NAME`, or the name text was
    /// checked under.
    pub file: Arc<str>,
    pub span: SourceSpan,
}

impl ScopeGlob {
    /// Makes a glob that came from no file.
    pub fn new(text: impl Into<String>) -> ScopeGlob {
        ScopeGlob {
            text: text.into(),
            span: None,
        }
    }

    /// Makes a glob written in `file` at `span`.
    pub fn written(text: impl Into<String>, file: Arc<str>, span: SourceSpan) -> ScopeGlob {
        ScopeGlob {
            text: text.into(),
            span: Some(GlobSpan { file, span }),
        }
    }

    /// Joins the texts of `globs` with `separator`.
    pub fn join(globs: &[ScopeGlob], separator: &str) -> String {
        let texts: Vec<&str> = globs.iter().map(|g| g.text.as_str()).collect();
        texts.join(separator)
    }
}

impl fmt::Display for ScopeGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ScopeGlob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// A glob globset does not accept, given to [`Scope::new`].
#[derive(Debug, thiserror::Error)]
#[error("`{glob}` is not a valid glob: {source}")]
pub struct ScopeError {
    pub glob: ScopeGlob,
    #[source]
    pub source: globset::Error,
}

/// What a workstream may change: paths matching one of its `owns` globs (every path when it
/// has none), except paths matching one of its `forbid` globs.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    owns: Vec<ScopeGlob>,
    forbid: Vec<ScopeGlob>,
    /// The matchers, compiled on first use: a workflow of thousands of workstreams is
    /// validated in a few milliseconds, and compiling every matcher then would take longer
    /// than all the rest while most commands match no path at all.
    matchers: OnceLock<Matchers>,
}

/// The compiled `owns` and `forbid` globs of a scope.
#[derive(Debug, Clone)]
struct Matchers {
    owns: GlobSet,
    forbid: GlobSet,
}

impl Scope {
    /// Makes a scope, checking that globset accepts every glob.
    pub fn new(owns: Vec<ScopeGlob>, forbid: Vec<ScopeGlob>) -> Result<Scope, ScopeError> {
        for g in owns.iter().chain(&forbid) {
            if !plainly_valid(&g.text)
                && let Err(source) = glob(&g.text)
            {
                return Err(ScopeError {
                    glob: g.clone(),
                    source,
                });
            }
        }
        Ok(Scope {
            owns,
            forbid,
            matchers: OnceLock::new(),
        })
    }

    /// The scope that allows every path: no `owns`, no `forbid`.
    pub fn everything() -> Scope {
        Scope::default()
    }

    /// The `owns` globs, in the order written.
    pub fn owns(&self) -> &[ScopeGlob] {
        &self.owns
    }

    /// The `forbid` globs, in the order written.
    pub fn forbid(&self) -> &[ScopeGlob] {
        &self.forbid
    }

    /// Tells whether no `owns` was given, so that every path not forbidden is allowed.
    pub fn owns_everything(&self) -> bool {
        self.owns.is_empty()
    }

    /// Tells whether changing `path` (relative to the repository root, `/`-separated) keeps
    /// within the scope.
    pub fn allows(&self, path: &str) -> bool {
        let m = self.matchers();
        !m.forbid.is_match(path) && (self.owns.is_empty() || m.owns.is_match(path))
    }

    /// Says how changing `path` breaks the scope, or `None` when it does not. A path both
    /// outside `owns` and forbidden is reported as forbidden.
    pub fn breach(&self, path: &str) -> Option<ScopeBreach> {
        let m = self.matchers();
        let rule = if let Some(index) = m.forbid.matches(path).into_iter().min() {
            BreachRule::Forbidden {
                glob: self.forbid[index].clone(),
            }
        } else if !self.owns.is_empty() && !m.owns.is_match(path) {
            BreachRule::OutsideOwns {
                owns: self.owns.clone(),
            }
        } else {
            return None;
        };
        Some(ScopeBreach {
            path: path.to_string(),
            rule,
        })
    }

    /// The breaches among `paths`, in their order.
    pub fn breaches<P: AsRef<str>>(&self, paths: impl IntoIterator<Item = P>) -> Vec<ScopeBreach> {
        paths.into_iter().filter_map(|p| self.breach(p.as_ref())).collect()
    }

    fn matchers(&self) -> &Matchers {
        self.matchers.get_or_init(|| Matchers {
            owns: glob_set(&self.owns),
            forbid: glob_set(&self.forbid),
        })
    }
}

/// Compiles globs into one matcher. [`Scope::new`] checked every glob; should globset still
/// fail to compile the set (a regex past its size limit), the set matches nothing.
fn glob_set(globs: &[ScopeGlob]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        if let Ok(g) = glob(&g.text) {
            builder.add(g);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Tells, without compiling it, that a glob is valid: relative, with no classes,
/// alternatives or escapes, and every `**` a whole path segment. Most real globs are like
/// this, and compiling thousands of them costs more than the rest of validation.
pub(crate) fn plainly_valid(glob: &str) -> bool {
    !glob.is_empty()
        && !glob.starts_with('/')
        && !glob.contains(['[', ']', '{', '}', '\\'])
        && glob
            .split('/')
            .all(|segment| !segment.contains("**") || segment == "**")
}

/// A changed path that breaks a scope, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeBreach {
    pub path: String,
    pub rule: BreachRule,
}

/// The rule a path breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreachRule {
    /// No `owns` glob matches the path; these are the scope's `owns` globs.
    OutsideOwns { owns: Vec<ScopeGlob> },
    /// The path matches this `forbid` glob (the first written, when several match).
    Forbidden { glob: ScopeGlob },
}

impl fmt::Display for ScopeBreach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            BreachRule::OutsideOwns { owns } => {
                write!(f, "`{}` is outside `owns` ({})", self.path, ScopeGlob::join(owns, ", "))
            }
            BreachRule::Forbidden { glob } => write!(f, "`{}` matches `forbid {:?}`", self.path, glob.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::{example_path, glob_covers, overlap_example};

    fn scope(owns: &[&str], forbid: &[&str]) -> Scope {
        let globs = |texts: &[&str]| texts.iter().map(|t| ScopeGlob::new(*t)).collect();
        Scope::new(globs(owns), globs(forbid)).expect("the test's globs are valid")
    }

    /// The breach as `None`, `"outside"` or `"forbid GLOB"`, for tables.
    fn rule(breach: Option<ScopeBreach>) -> Option<String> {
        breach.map(|b| match b.rule {
            BreachRule::OutsideOwns { .. } => "outside".to_string(),
            BreachRule::Forbidden { glob } => format!("forbid {glob}"),
        })
    }

    /// A path, the scope's `owns` and `forbid`, and the breach expected (see [`rule`]).
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        Option<&'static str>,
    );

    #[test]
    fn breaches() {
        let table: &[Row] = &[
            // No owns: everything is owned.
            ("anything/at/all.rs", &[], &[], None),
            ("", &[], &[], None),
            (".env", &[], &[".env"], Some("forbid .env")),
            ("a/.env", &[], &[".env"], None),
            ("a/.env", &[], &["**/.env"], Some("forbid **/.env")),
            // Owns: a path must match one of them.
            ("src/ui/x.py", &["src/ui/**"], &[], None),
            ("src/ui/a/b/x.py", &["src/ui/**"], &[], None),
            ("src/ui", &["src/ui/**"], &[], Some("outside")),
            ("src/api/x.py", &["src/ui/**"], &[], Some("outside")),
            ("docs/x.md", &["src/ui/**", "tests/**"], &[], Some("outside")),
            ("tests/t.py", &["src/ui/**", "tests/**"], &[], None),
            // `*` and `?` stay within a folder; `**` crosses folders.
            ("x.py", &["*.py"], &[], None),
            ("src/x.py", &["*.py"], &[], Some("outside")),
            ("src/x.py", &["**/*.py"], &[], None),
            ("x.py", &["**/*.py"], &[], None),
            ("a/b", &["a?b"], &[], Some("outside")),
            ("a/b", &["a[/]b"], &[], Some("outside")),
            ("a/x/y/b", &["a/**/b"], &[], None),
            ("a/b", &["a/**/b"], &[], None),
            ("src/api/x.rs", &["src/{ui,api}/*.rs"], &[], None),
            // Forbid wins over owns, and the first forbid written is named.
            (
                "src/ui/secret.py",
                &["src/ui/**"],
                &["**/secret.py"],
                Some("forbid **/secret.py"),
            ),
            (
                "docs/secret.py",
                &["src/ui/**"],
                &["**/secret.py"],
                Some("forbid **/secret.py"),
            ),
            (
                "src/ui/s.py",
                &["src/**"],
                &["src/ui/**", "**/*.py"],
                Some("forbid src/ui/**"),
            ),
            (
                "src/ui/s.py",
                &["src/**"],
                &["**/*.py", "src/ui/**"],
                Some("forbid **/*.py"),
            ),
            ("src/ui/s.rs", &["src/**"], &["**/*.py"], None),
        ];
        for &(path, owns, forbid, expected) in table {
            let s = scope(owns, forbid);
            let got = rule(s.breach(path));
            assert_eq!(
                got.as_deref(),
                expected,
                "{path:?} with owns {owns:?}, forbid {forbid:?}"
            );
            assert_eq!(s.allows(path), expected.is_none(), "allows({path:?})");
        }
    }

    #[test]
    fn breaches_keep_order_and_skip_allowed_paths() {
        let s = scope(&["src/**"], &["src/gen/**"]);
        let found = s.breaches(["README.md", "src/a.rs", "src/gen/b.rs"]);
        let paths: Vec<&str> = found.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(paths, ["README.md", "src/gen/b.rs"]);
        assert!(Scope::everything().breaches(["a", "b/c"]).is_empty());
        assert!(Scope::everything().owns_everything());
        assert!(!s.owns_everything());
    }

    #[test]
    fn breaches_say_the_rule() {
        let s = scope(&["src/ui/**", "tests/**"], &[".env"]);
        let text: Vec<String> = s
            .breaches(["docs/x.md", ".env"])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            text,
            [
                "`docs/x.md` is outside `owns` (src/ui/**, tests/**)",
                "`.env` matches `forbid \".env\"`",
            ]
        );
    }

    #[test]
    fn invalid_globs_are_refused() {
        for bad in ["src/[a", "a}", "{a", "a\\"] {
            let error = Scope::new(vec![ScopeGlob::new(bad)], vec![]).expect_err(bad);
            assert_eq!(error.glob.text, bad);
            assert!(
                Scope::new(vec![], vec![ScopeGlob::new(bad)]).is_err(),
                "{bad:?} in forbid"
            );
        }
        assert!(Scope::new(vec![ScopeGlob::new("/abs/**")], vec![]).is_ok());
    }

    #[test]
    fn plainly_valid_globs() {
        for (text, plain) in [
            ("src/**", true),
            ("**/*.py", true),
            ("a/b.txt", true),
            ("?.md", true),
            ("a//b", true),
            ("a**", false),
            ("**b/c", false),
            ("/etc/*", false),
            ("", false),
            ("{a,b}", false),
            ("[ab]", false),
            ("a\\*", false),
        ] {
            assert_eq!(plainly_valid(text), plain, "{text:?}");
            if plain {
                assert!(glob(text).is_ok(), "{text:?}");
            }
        }
    }

    #[test]
    fn globs_serialize_as_their_text() {
        let file: Arc<str> = Arc::from("parallel.kdl");
        let globs = vec![
            ScopeGlob::written("src/**", file.clone(), (10, 8).into()),
            ScopeGlob::new("*.md"),
        ];
        assert_eq!(serde_json::to_string(&globs).unwrap(), r#"["src/**","*.md"]"#);
        assert_eq!(ScopeGlob::join(&globs, "\u{1}"), "src/**\u{1}*.md");
    }

    /// The scope matches with the options the glob algebra reasons about: the algebra's
    /// example of a glob is in a scope owning that glob or any glob covering it, and a path
    /// it finds two globs both match is in a scope owning either and forbidden by a scope
    /// forbidding either.
    #[test]
    fn agrees_with_the_glob_algebra() {
        let globs = [
            "src/ui/**",
            "src/**/*.py",
            "**/x",
            "*.py",
            "a/**/b",
            "{a,b}.md",
            "[a-m]*.rs",
            "docs/**",
            "x**",
            "?",
            "[!x]",
        ];
        for a in globs {
            let example = example_path(a);
            assert!(scope(&[a], &[]).allows(&example), "example {example:?} of {a:?}");
            for b in globs {
                if glob_covers(b, a) {
                    assert!(scope(&[b], &[]).allows(&example), "{example:?} in {b:?} ⊇ {a:?}");
                }
                let Some(both) = overlap_example(a, b) else { continue };
                assert!(
                    scope(&[a], &[]).allows(&both) && scope(&[b], &[]).allows(&both),
                    "{both:?} in {a:?} and {b:?}"
                );
                assert_eq!(
                    rule(scope(&[], &[b, a]).breach(&both)),
                    Some(format!("forbid {b}")),
                    "{both:?} forbidden by {b:?}"
                );
            }
        }
    }
}
