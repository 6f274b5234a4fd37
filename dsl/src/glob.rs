//! Exact glob algebra: overlap, inclusion, literal prefixes and examples.
//!
//! Workstreams declare the files they `owns` and `forbid` with glob patterns,
//! and flow must know, before any agent runs, whether two workstreams can
//! touch the same path. This module answers such questions *exactly* for the
//! semantics flow matches paths with: [`globset`] built by
//! [`crate::scope::glob`] (`literal_separator(true)`, all other options at
//! their defaults). So `*` and `?` never match `/`; `**` spans directories
//! (`a/**/b` matches `a/b`, `a/x/b`, `a/x/y/b`; a leading `**/` matches any
//! directory prefix, including none; a trailing `/**` matches everything
//! under a directory); `{a,b}` alternatives, `[...]` / `[!...]` classes with
//! ranges and `\` escapes work as in globset.
//!
//! # Method
//!
//! Rather than re-implementing globset's context-sensitive parser (the
//! meaning of `**` depends on its neighbours, empty alternatives are dropped,
//! classes drop `/`, ...), each glob is compiled by globset itself, and the
//! regular expression it would match with ([`globset::Glob::regex`]) is
//! parsed by [`regex_syntax`], the parser of the regex engine globset matches
//! with, configured as globset configures it. Its high-level form
//! ([`regex_syntax::hir::Hir`]: literals, byte and character classes,
//! repetitions, alternations) is translated into a small byte-level automaton
//! (an NFA whose transitions are sets of bytes). Questions are then decided
//! on automata:
//!
//! * overlap: breadth-first search of the product of the two automata; a
//!   reachable pair of accepting states is a path both globs match;
//! * inclusion: the product of `inner` with the lazily determinised `outer`
//!   over a finite partition of the 256 byte values; a reachable state where
//!   `inner` accepts and `outer` does not is a counterexample.
//!
//! Like globset, the automata work on the bytes of a path, so `?` matches one
//! byte: it does not match a two-byte UTF-8 character such as `é`.
//!
//! The automata and the searches are written here, not taken from a regex
//! engine: an engine answers whether one path matches one expression, while
//! these questions are about every path at once (a path two automata both
//! accept, a path one accepts and the other rejects), which takes the
//! product constructions below, over transitions labelled with byte sets,
//! under size limits of their own.
//!
//! # Conservative answers
//!
//! Both questions are decided exactly. The answers are conservative
//! (`globs_may_overlap` says `true`, `glob_covers` says `false`) only when:
//!
//! * a glob does not parse (for example `src/[a`, `a}` or a trailing `\`);
//! * globset's regular expression nests deeper than its regex engine accepts,
//!   or uses what globset does not emit today (a look-around other than the
//!   anchors around the whole expression, a counted repetition), as a future
//!   globset version might;
//! * an automaton or a search exceeds its size limit (thousands of states;
//!   not reached by globs of realistic length).

use std::collections::{HashMap, HashSet, VecDeque};

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, ClassUnicode, Hir, HirKind, Literal, Look};
use regex_syntax::utf8::Utf8Sequences;

/// Largest number of NFA states one glob may compile to.
const MAX_NFA_STATES: usize = 2048;
/// Largest number of transitions of one glob's epsilon-free NFA.
const MAX_NFA_EDGES: usize = 50_000;
/// Largest number of product states a search may visit before giving up.
const MAX_SEARCH_STATES: usize = 50_000;
/// Largest number of transition pairs a search may examine before giving up.
const MAX_SEARCH_WORK: usize = 2_000_000;
/// Deepest nesting accepted in globset's regular expression: the nesting limit
/// of the regex parser globset's own matchers are built with, which also
/// bounds the recursion translating the expression.
const MAX_NESTING: u32 = 250;

/// Tells whether some path matches both globs.
///
/// The answer is exact, not a heuristic: `true` means a path matched by both
/// `a` and `b` exists (with globset's `literal_separator(true)` semantics),
/// `false` means none does. For example `src/ui/**` and `src/**/*.py`
/// overlap (on `src/ui/x.py`), while `*.py` and `src/*.py` do not, since `*`
/// never matches `/`. The relation is symmetric.
///
/// Conservative case: when either glob does not parse (or exceeds the size
/// limits described in the module documentation) the answer is `true`.
/// Never panics.
pub fn globs_may_overlap(a: &str, b: &str) -> bool {
    if !prefixes_nested(literal_prefix(a), literal_prefix(b)) {
        return false;
    }
    match (Nfa::from_glob(a), Nfa::from_glob(b)) {
        (Some(na), Some(nb)) => overlap_witness(&na, &nb) != Search::NotFound,
        _ => true,
    }
}

/// A path both globs match, for messages; `None` when they do not overlap or the answer is
/// unknown. The example of either glob (see [`example_path`]) is preferred when both match
/// it (`src/x` for `src/**` and `src/**`), else the shortest path found (which may be `src/`).
pub fn overlap_example(a: &str, b: &str) -> Option<String> {
    if !prefixes_nested(literal_prefix(a), literal_prefix(b)) {
        return None;
    }
    let (na, nb) = (Nfa::from_glob(a)?, Nfa::from_glob(b)?);
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for glob in [long, short] {
        let example = example_path(glob);
        if !example.is_empty() && na.accepts(example.as_bytes()) && nb.accepts(example.as_bytes()) {
            return Some(example);
        }
    }
    match overlap_witness(&na, &nb) {
        Search::Found(bytes) => String::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// Tells whether every path matching `inner` also matches `outer`
/// (`inner ⊆ outer`).
///
/// Inclusion is decided exactly: `src/**` covers `src/ui/**/*.py`, `**`
/// covers every glob, `src/ui/**` does not cover `src/**` and `*.py` does not
/// cover `src/x.py`. A glob matching no path at all (such as `[/]`, a class
/// containing only the separator) is covered by every glob.
///
/// Conservative case: when either glob does not parse (or exceeds the size
/// limits described in the module documentation) the answer is `false`; a
/// `true` answer is never wrong. Never panics.
pub fn glob_covers(outer: &str, inner: &str) -> bool {
    match (Nfa::from_glob(outer), Nfa::from_glob(inner)) {
        (Some(o), Some(i)) => cover_counterexample(&o, &i) == Search::NotFound,
        _ => false,
    }
}

/// The literal directory prefix of a glob: the glob's text before the last
/// `/` that precedes its first special character.
///
/// Special characters are `*`, `?`, `[`, `{`, `}` and `\`. Examples:
///
/// | glob              | prefix    |
/// |-------------------|-----------|
/// | `src/ui/**/*.py`  | `src/ui`  |
/// | `src/{api,db}/*`  | `src`     |
/// | `src/ui/x*.py`    | `src/ui`  |
/// | `a/b.txt`         | `a` (a fully literal glob gives its parent) |
/// | `**/x`, `*.py`, `README.md` | (empty) |
/// | `/etc/*`          | `/etc`    |
///
/// Guarantee: when the prefix `P` is not empty, every path the glob matches
/// starts with `P` followed by `/`. Two globs whose prefixes are not nested
/// (neither is `/`-segment-wise a prefix of the other, e.g. `src/ui` and
/// `src/api`) therefore cannot overlap, so an index keyed by prefix only has
/// to compare globs with nested prefixes. The empty prefix is compatible
/// with every glob, and is also what a glob that does not parse returns.
pub fn literal_prefix(glob: &str) -> &str {
    if build(glob).is_none() {
        return "";
    }
    let first_special = glob.find(['*', '?', '[', '{', '}', '\\']).unwrap_or(glob.len());
    match glob[..first_special].rfind('/') {
        Some(slash) => &glob[..slash],
        None => "",
    }
}

/// An example path the glob matches, for messages.
///
/// Each wildcard is replaced by a short readable choice: `*` and `?` by `x`,
/// `**` by no directory where it stands for directories (`src/ui/**/*.py`
/// gives `src/ui/x.py`, `**/x` gives `x`) and by `x` at the end of a glob
/// (`docs/**` gives `docs/x`), an alternative by its first branch
/// (`{src,tests}/*` gives `src/x`), a class by `x` or else its first readable
/// member (`[a-m]*.rs` gives `ax.rs`); branches of one character each are
/// read as a class (`{b,a}.md` gives `a.md`). The result always matches the
/// glob when it matches any path; a glob that matches no path (such as `[/]`)
/// or does not parse is returned unchanged.
pub fn example_path(glob: &str) -> String {
    let Some(ast) = build(glob).and_then(|re| parse_regex(&re)) else {
        return glob.to_string();
    };
    let Some(nfa) = Nfa::from_ast(&ast) else {
        return glob.to_string();
    };
    let mut out = Vec::new();
    let candidate = if ast.example(&mut out) && nfa.accepts(&out) {
        Some(out)
    } else {
        nfa.shortest_accepted()
    };
    candidate
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| glob.to_string())
}

/// Whether two literal prefixes (see [`literal_prefix`]) are nested: equal,
/// empty, or one a `/`-segment-wise prefix of the other.
fn prefixes_nested(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.is_empty() || long == short || (long.starts_with(short) && long.as_bytes()[short.len()] == b'/')
}

/// Compiles `glob` with flow's options and returns globset's regex for it.
fn build(glob: &str) -> Option<String> {
    crate::scope::glob(glob).ok().map(|g| g.regex().to_string())
}

// ---------------------------------------------------------------------------
// Byte sets
// ---------------------------------------------------------------------------

/// A set of byte values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn single(b: u8) -> Self {
        let mut s = ByteSet::default();
        s.insert(b);
        s
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    /// The bytes from `lo` to `hi`, both included.
    fn range(lo: u8, hi: u8) -> Self {
        let mut s = ByteSet::default();
        for b in lo..=hi {
            s.insert(b);
        }
        s
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn union(&self, other: &Self) -> Self {
        let mut r = *self;
        for (x, y) in r.0.iter_mut().zip(other.0) {
            *x |= y;
        }
        r
    }

    fn intersection(&self, other: &Self) -> Self {
        let mut r = *self;
        for (x, y) in r.0.iter_mut().zip(other.0) {
            *x &= y;
        }
        r
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The most readable member, for witnesses and examples.
    fn pick(&self) -> Option<u8> {
        PREFERRED
            .iter()
            .copied()
            .find(|&b| self.contains(b))
            .or_else(|| (0..=255).find(|&b| self.contains(b)))
    }
}

/// Bytes in the order examples prefer them: `x`, then other readable ASCII.
/// `/` comes last among them so that a wildcard prefers not to add
/// directories.
const PREFERRED: &[u8] = b"xabcdefghijklmnopqrstuvwyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_-.,+=@~%/";

// ---------------------------------------------------------------------------
// globset's regular expressions
// ---------------------------------------------------------------------------

/// A regular expression over bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ast {
    /// One byte from the set.
    Set(ByteSet),
    /// The parts in sequence.
    Concat(Vec<Ast>),
    /// Any one of the branches.
    Alt(Vec<Ast>),
    /// Zero or more repetitions.
    Star(Box<Ast>),
    /// Zero or one occurrence.
    Opt(Box<Ast>),
}

impl Ast {
    /// Appends a readable string this expression matches; `false` when it
    /// could not find one (the caller then falls back to a search).
    fn example(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Ast::Set(s) => match s.pick() {
                Some(b) => {
                    out.push(b);
                    true
                }
                None => false,
            },
            Ast::Concat(parts) => parts.iter().all(|p| p.example(out)),
            Ast::Alt(branches) => branches.iter().any(|b| {
                let mut tmp = Vec::new();
                let ok = b.example(&mut tmp);
                if ok {
                    out.extend(tmp);
                }
                ok
            }),
            Ast::Star(inner) => {
                // One repetition reads better than none (`*.py` -> `x.py`),
                // unless it would add a directory level.
                let mut tmp = Vec::new();
                if inner.example(&mut tmp) && !tmp.contains(&b'/') {
                    out.extend(tmp);
                }
                true
            }
            Ast::Opt(_) => true,
        }
    }
}

/// Reads back the regular expression globset generated for a glob, or `None`
/// when it does not parse or uses something outside what globset emits.
///
/// The parser is configured as globset configures the regex engine it
/// matches with (`utf8(false)`, `dot_matches_new_line(true)`), and globset's
/// expression turns Unicode off with `(?-u)`: so `.` is any byte, and
/// `[^/]` is any byte but `/`, as when globset matches.
fn parse_regex(re: &str) -> Option<Ast> {
    let hir = ParserBuilder::new()
        .utf8(false)
        .dot_matches_new_line(true)
        .nest_limit(MAX_NESTING)
        .build()
        .parse(re)
        .ok()?;
    // globset anchors the whole expression: `^...$`. The automata only ever
    // match whole paths, so the anchors are dropped; any other look-around is
    // outside what globset emits.
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let [start, body @ .., end] = parts.as_slice() else {
        return None;
    };
    if *start.kind() != HirKind::Look(Look::Start) || *end.kind() != HirKind::Look(Look::End) {
        return None;
    }
    concat(body)
}

/// Translates one node of regex-syntax's high-level expression.
fn translate(hir: &Hir) -> Option<Ast> {
    match hir.kind() {
        HirKind::Empty => Some(Ast::Concat(vec![])),
        HirKind::Literal(Literal(bytes)) => Some(Ast::Concat(
            bytes.iter().map(|&b| Ast::Set(ByteSet::single(b))).collect(),
        )),
        HirKind::Class(Class::Bytes(class)) => {
            Some(Ast::Set(class.ranges().iter().fold(ByteSet::default(), |set, r| {
                set.union(&ByteSet::range(r.start(), r.end()))
            })))
        }
        HirKind::Class(Class::Unicode(class)) => Some(unicode_class(class)),
        HirKind::Look(_) => None,
        HirKind::Repetition(rep) => {
            // Lazy and greedy repetitions match the same paths.
            let sub = translate(&rep.sub)?;
            match (rep.min, rep.max) {
                (0, None) => Some(Ast::Star(Box::new(sub))),
                (0, Some(1)) => Some(Ast::Opt(Box::new(sub))),
                (1, None) => Some(Ast::Concat(vec![sub.clone(), Ast::Star(Box::new(sub))])),
                (1, Some(1)) => Some(sub),
                (0, Some(0)) => Some(Ast::Concat(vec![])),
                _ => None,
            }
        }
        HirKind::Capture(capture) => translate(&capture.sub),
        HirKind::Concat(parts) => concat(parts),
        HirKind::Alternation(branches) => branches.iter().map(translate).collect::<Option<_>>().map(Ast::Alt),
    }
}

/// Translates a sequence of nodes.
fn concat(hirs: &[Hir]) -> Option<Ast> {
    let mut parts = Vec::with_capacity(hirs.len());
    for hir in hirs {
        let ast = translate(hir)?;
        // `x*x*` is `x*`: globset writes `***` as two stars, and long runs of
        // them would only make the automata dense.
        if matches!(ast, Ast::Star(_)) && parts.last() == Some(&ast) {
            continue;
        }
        parts.push(ast);
    }
    Some(Ast::Concat(parts))
}

/// A class of Unicode scalar values as the bytes of their UTF-8 encodings.
///
/// regex-syntax writes an alternation of single characters as a class of
/// characters even when Unicode is off, `(?:é|b)` as `[bé]`; it still
/// matches the UTF-8 bytes of one of them.
fn unicode_class(class: &ClassUnicode) -> Ast {
    let mut single = ByteSet::default();
    let mut longer = vec![];
    for r in class.ranges() {
        for sequence in Utf8Sequences::new(r.start(), r.end()) {
            match sequence.as_slice() {
                [byte] => single = single.union(&ByteSet::range(byte.start, byte.end)),
                bytes => longer.push(Ast::Concat(
                    bytes.iter().map(|b| Ast::Set(ByteSet::range(b.start, b.end))).collect(),
                )),
            }
        }
    }
    if longer.is_empty() {
        return Ast::Set(single);
    }
    if !single.is_empty() {
        longer.insert(0, Ast::Set(single));
    }
    Ast::Alt(longer)
}

// ---------------------------------------------------------------------------
// Automata
// ---------------------------------------------------------------------------

/// An epsilon-free NFA over bytes: state 0 is the start; from state `s`,
/// byte `c` leads to every `t` with `(set, t)` in `edges[s]` and `c` in `set`.
#[derive(Debug)]
struct Nfa {
    edges: Vec<Vec<(ByteSet, usize)>>,
    accepting: Vec<bool>,
}

/// A Thompson NFA under construction, with epsilon moves.
#[derive(Default)]
struct Builder {
    eps: Vec<Vec<usize>>,
    edges: Vec<Vec<(ByteSet, usize)>>,
}

impl Builder {
    fn state(&mut self) -> Option<usize> {
        if self.eps.len() >= MAX_NFA_STATES {
            return None;
        }
        self.eps.push(Vec::new());
        self.edges.push(Vec::new());
        Some(self.eps.len() - 1)
    }

    /// Adds states recognising `ast` between `from` and a new state it
    /// returns.
    fn add(&mut self, ast: &Ast, from: usize) -> Option<usize> {
        match ast {
            Ast::Set(set) => {
                let to = self.state()?;
                if !set.is_empty() {
                    self.edges[from].push((*set, to));
                }
                Some(to)
            }
            Ast::Concat(parts) => parts.iter().try_fold(from, |at, p| self.add(p, at)),
            Ast::Alt(branches) => {
                let to = self.state()?;
                for b in branches {
                    let start = self.state()?;
                    self.eps[from].push(start);
                    let end = self.add(b, start)?;
                    self.eps[end].push(to);
                }
                Some(to)
            }
            Ast::Star(inner) => {
                let hub = self.state()?;
                self.eps[from].push(hub);
                let end = self.add(inner, hub)?;
                self.eps[end].push(hub);
                Some(hub)
            }
            Ast::Opt(inner) => {
                let end = self.add(inner, from)?;
                self.eps[from].push(end);
                Some(end)
            }
        }
    }
}

impl Nfa {
    /// The automaton of the paths `glob` matches, or `None` when the glob
    /// does not parse or is too large.
    fn from_glob(glob: &str) -> Option<Nfa> {
        Nfa::from_ast(&parse_regex(&build(glob)?)?)
    }

    fn from_ast(ast: &Ast) -> Option<Nfa> {
        let mut b = Builder::default();
        let start = b.state()?;
        let accept = b.add(ast, start)?;
        let n = b.eps.len();
        let mut edges = Vec::with_capacity(n);
        let mut accepting = Vec::with_capacity(n);
        let mut seen = vec![usize::MAX; n];
        let mut total = 0;
        for s in 0..n {
            // Epsilon closure of `s`, marked with generation `s`.
            let mut stack = vec![s];
            seen[s] = s;
            let mut out = Vec::new();
            let mut acc = false;
            while let Some(q) = stack.pop() {
                acc |= q == accept;
                out.extend_from_slice(&b.edges[q]);
                for &t in &b.eps[q] {
                    if seen[t] != s {
                        seen[t] = s;
                        stack.push(t);
                    }
                }
            }
            // One transition per target, with the union of the byte sets.
            out.sort_unstable_by_key(|&(_, t)| t);
            let mut merged: Vec<(ByteSet, usize)> = Vec::with_capacity(out.len());
            for (set, t) in out {
                match merged.last_mut() {
                    Some(last) if last.1 == t => last.0 = last.0.union(&set),
                    _ => merged.push((set, t)),
                }
            }
            total += merged.len();
            if total > MAX_NFA_EDGES {
                return None;
            }
            edges.push(merged);
            accepting.push(acc);
        }
        // The searches start from state 0, the first one created.
        debug_assert_eq!(start, 0);
        Some(Nfa { edges, accepting })
    }

    fn step(&self, states: &[usize], byte: u8) -> Vec<usize> {
        let mut next: Vec<usize> = states
            .iter()
            .flat_map(|&s| &self.edges[s])
            .filter(|(set, _)| set.contains(byte))
            .map(|&(_, t)| t)
            .collect();
        next.sort_unstable();
        next.dedup();
        next
    }

    fn accepts(&self, input: &[u8]) -> bool {
        let states = input.iter().fold(vec![0], |s, &b| self.step(&s, b));
        states.iter().any(|&s| self.accepting[s])
    }

    /// A shortest accepted string, preferring readable bytes.
    fn shortest_accepted(&self) -> Option<Vec<u8>> {
        let mut parent: HashMap<usize, (usize, u8)> = HashMap::new();
        let mut queue = VecDeque::from([0]);
        let mut seen = HashSet::from([0]);
        while let Some(s) = queue.pop_front() {
            if self.accepting[s] {
                let mut out = Vec::new();
                let mut at = s;
                while let Some(&(prev, b)) = parent.get(&at) {
                    out.push(b);
                    at = prev;
                }
                out.reverse();
                return Some(out);
            }
            for &(set, t) in &self.edges[s] {
                if seen.insert(t) {
                    parent.insert(t, (s, set.pick()?));
                    queue.push_back(t);
                }
            }
        }
        None
    }
}

/// The outcome of a bounded search for a witness path.
#[derive(Debug, PartialEq, Eq)]
enum Search {
    /// A witness (as path bytes).
    Found(Vec<u8>),
    /// No witness exists.
    NotFound,
    /// The search hit its size limit.
    GaveUp,
}

/// Follows `parent` links back from `at` to rebuild the path bytes.
fn trace<K: std::hash::Hash + Eq + Clone>(parent: &HashMap<K, (K, u8)>, mut at: K) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((prev, b)) = parent.get(&at) {
        out.push(*b);
        at = prev.clone();
    }
    out.reverse();
    out
}

/// Searches for a path accepted by both automata (breadth-first, so the
/// witness is a shortest one).
fn overlap_witness(a: &Nfa, b: &Nfa) -> Search {
    let start = (0usize, 0usize);
    let mut parent: HashMap<(usize, usize), ((usize, usize), u8)> = HashMap::new();
    let mut seen = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut work = 0;
    while let Some((p, q)) = queue.pop_front() {
        if a.accepting[p] && b.accepting[q] {
            return Search::Found(trace(&parent, (p, q)));
        }
        work += a.edges[p].len() * b.edges[q].len();
        if work > MAX_SEARCH_WORK {
            return Search::GaveUp;
        }
        for &(s1, t1) in &a.edges[p] {
            for &(s2, t2) in &b.edges[q] {
                let common = s1.intersection(&s2);
                let Some(byte) = common.pick() else { continue };
                if seen.insert((t1, t2)) {
                    if seen.len() > MAX_SEARCH_STATES {
                        return Search::GaveUp;
                    }
                    parent.insert((t1, t2), ((p, q), byte));
                    queue.push_back((t1, t2));
                }
            }
        }
    }
    Search::NotFound
}

/// One readable representative byte per class of bytes that no transition
/// of either automaton distinguishes.
fn alphabet(nfas: &[&Nfa]) -> Vec<u8> {
    let mut class_of = [0usize; 256];
    let mut sets: Vec<ByteSet> = nfas
        .iter()
        .flat_map(|n| n.edges.iter().flatten().map(|&(s, _)| s))
        .collect();
    sets.sort_unstable_by_key(|s| s.0);
    sets.dedup();
    for set in &sets {
        let mut renumber: HashMap<(usize, bool), usize> = HashMap::new();
        for (b, class) in (0..=255u8).zip(class_of.iter_mut()) {
            let len = renumber.len();
            *class = *renumber.entry((*class, set.contains(b))).or_insert(len);
        }
    }
    let classes = class_of.iter().max().map_or(1, |m| m + 1);
    (0..classes)
        .filter_map(|c| {
            let mut members = ByteSet::default();
            for (b, &class) in (0..=255u8).zip(class_of.iter()) {
                if class == c {
                    members.insert(b);
                }
            }
            members.pick()
        })
        .collect()
}

/// Searches for a path `inner` accepts and `outer` rejects, determinising
/// `outer` on the fly.
fn cover_counterexample(outer: &Nfa, inner: &Nfa) -> Search {
    let symbols = alphabet(&[outer, inner]);
    // Subsets of `outer` states are interned; a search state is
    // (state of `inner`, id of a subset of `outer` states).
    let mut subsets: Vec<Vec<usize>> = vec![vec![0]];
    let mut subset_ids: HashMap<Vec<usize>, usize> = HashMap::from([(vec![0], 0)]);
    let mut outer_step: HashMap<(usize, u8), usize> = HashMap::new();
    let start = (0usize, 0usize);
    let mut parent: HashMap<(usize, usize), ((usize, usize), u8)> = HashMap::new();
    let mut seen = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut work = 0;
    while let Some((p, subset)) = queue.pop_front() {
        if inner.accepting[p] && !subsets[subset].iter().any(|&s| outer.accepting[s]) {
            return Search::Found(trace(&parent, (p, subset)));
        }
        work += symbols.len() * (1 + inner.edges[p].len());
        for &byte in &symbols {
            let next_inner = inner.step(&[p], byte);
            if next_inner.is_empty() {
                continue;
            }
            let next_subset = match outer_step.get(&(subset, byte)) {
                Some(&id) => id,
                None => {
                    let states = &subsets[subset];
                    work += states.iter().map(|&s| 1 + outer.edges[s].len()).sum::<usize>();
                    let next = outer.step(states, byte);
                    let id = match subset_ids.get(&next) {
                        Some(&id) => id,
                        None => {
                            subsets.push(next.clone());
                            subset_ids.insert(next, subsets.len() - 1);
                            subsets.len() - 1
                        }
                    };
                    outer_step.insert((subset, byte), id);
                    id
                }
            };
            for t in next_inner {
                if seen.insert((t, next_subset)) {
                    parent.insert((t, next_subset), ((p, subset), byte));
                    queue.push_back((t, next_subset));
                }
            }
        }
        if work > MAX_SEARCH_WORK || seen.len() > MAX_SEARCH_STATES {
            return Search::GaveUp;
        }
    }
    Search::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::GlobMatcher;
    use proptest::prelude::*;

    fn matcher(glob: &str) -> Option<GlobMatcher> {
        crate::scope::glob(glob).ok().map(|g| g.compile_matcher())
    }

    fn is_match(m: &GlobMatcher, bytes: &[u8]) -> bool {
        m.is_match_candidate(&globset::Candidate::from_bytes(bytes))
    }

    #[test]
    fn literal_prefixes() {
        for (glob, prefix) in [
            ("src/ui/**/*.py", "src/ui"),
            ("src/{api,db}/*.rs", "src"),
            ("src/ui/x*.py", "src/ui"),
            ("a/b.txt", "a"),
            ("a/b/", "a/b"),
            ("**/x", ""),
            ("**", ""),
            ("*.py", ""),
            ("README.md", ""),
            ("/etc/*", "/etc"),
            ("docs/[a-c]*.md", "docs"),
            (r"a/\*/b", "a"),
            ("src/[a", ""),
            ("", ""),
        ] {
            assert_eq!(literal_prefix(glob), prefix, "literal_prefix({glob:?})");
        }
    }

    #[test]
    fn examples() {
        for (glob, example) in [
            ("src/ui/**/*.py", "src/ui/x.py"),
            ("**/x", "x"),
            ("**", "x"),
            ("docs/**", "docs/x"),
            ("{a,b}.md", "a.md"),
            ("{b,a}.md", "a.md"),
            ("{src,tests}/*", "src/x"),
            ("{é,b}", "b"),
            ("[a-m]*.rs", "ax.rs"),
            ("a/**/b", "a/b"),
            ("a/b.txt", "a/b.txt"),
            ("[!x]", "a"),
            ("[/]", "[/]"),
            ("src/[a", "src/[a"),
        ] {
            assert_eq!(example_path(glob), example, "example_path({glob:?})");
        }
    }

    /// regex-syntax reads `{é,ü}` as a class of characters; it still stands
    /// for their UTF-8 bytes, as `?` stands for one byte.
    #[test]
    fn characters_are_their_utf8_bytes() {
        assert!(globs_may_overlap("{é,ü}", "ü"));
        assert!(!globs_may_overlap("{é,ü}", "u"));
        assert!(glob_covers("{é,ü}", "é"));
        assert!(glob_covers("??", "{é,ü}"));
        assert!(!glob_covers("?", "{é,ü}"));
        assert_eq!(overlap_example("{é,ü}", "*"), Some("é".to_string()));
    }

    #[test]
    fn witnesses_are_shortest_and_real() {
        let a = Nfa::from_glob("src/ui/**").unwrap();
        let b = Nfa::from_glob("src/**/*.py").unwrap();
        assert_eq!(overlap_witness(&a, &b), Search::Found(b"src/ui/.py".to_vec()));
    }

    fn glob_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "/", "*", "**", "?", "[ab]", "[!a]", "{a,b/}", "{,a}"]),
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every witness the searches report is confirmed by globset, so a
        /// `true` overlap and a `false` cover are never wrong.
        #[test]
        fn witnesses_agree_with_globset(a in glob_strategy(), b in glob_strategy()) {
            let (Some(ma), Some(mb)) = (matcher(&a), matcher(&b)) else { return Ok(()) };
            let (Some(na), Some(nb)) = (Nfa::from_glob(&a), Nfa::from_glob(&b)) else {
                return Err(TestCaseError::fail(format!("unparsed regex for {a:?} or {b:?}")));
            };
            match overlap_witness(&na, &nb) {
                Search::Found(w) => prop_assert!(is_match(&ma, &w) && is_match(&mb, &w),
                    "overlap witness {:?} for {a:?} / {b:?}", String::from_utf8_lossy(&w)),
                Search::NotFound => {}
                Search::GaveUp => prop_assert!(false, "gave up"),
            }
            match cover_counterexample(&na, &nb) {
                Search::Found(w) => prop_assert!(!is_match(&ma, &w) && is_match(&mb, &w),
                    "cover counterexample {:?} for {a:?} ⊇ {b:?}", String::from_utf8_lossy(&w)),
                Search::NotFound => {}
                Search::GaveUp => prop_assert!(false, "gave up"),
            }
            let example = example_path(&a);
            if na.shortest_accepted().is_some() {
                prop_assert!(is_match(&ma, example.as_bytes()), "example {example:?} for {a:?}");
                let prefix = literal_prefix(&a);
                if !prefix.is_empty() {
                    let with_slash = format!("{prefix}/");
                    prop_assert!(example.starts_with(&with_slash));
                }
            }
        }
    }
}
