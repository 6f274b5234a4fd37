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
//! classes drop `/`, ...), each glob is compiled by globset itself and the
//! regular expression it would match with ([`globset::Glob::regex`]) is read
//! back into a small byte-level automaton (an NFA whose transitions are sets
//! of bytes). Questions are then decided on automata:
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
//! # Conservative answers
//!
//! Both questions are decided exactly. The answers are conservative
//! (`globs_may_overlap` says `true`, `glob_covers` says `false`) only when:
//!
//! * a glob does not parse (for example `src/[a`, `a}` or a trailing `\`);
//! * globset produced a regular expression outside the small subset it uses
//!   today (a future globset version might);
//! * an automaton or a search exceeds its size limit (thousands of states;
//!   not reached by globs of realistic length).

use std::collections::{HashMap, HashSet, VecDeque};

/// Largest number of NFA states one glob may compile to.
const MAX_NFA_STATES: usize = 2048;
/// Largest number of transitions of one glob's epsilon-free NFA.
const MAX_NFA_EDGES: usize = 50_000;
/// Largest number of product states a search may visit before giving up.
const MAX_SEARCH_STATES: usize = 50_000;
/// Largest number of transition pairs a search may examine before giving up.
const MAX_SEARCH_WORK: usize = 2_000_000;
/// Deepest nesting of groups accepted in globset's regular expression.
const MAX_GROUP_DEPTH: usize = 128;

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

/// A path both globs match (the shortest one found), for messages; `None` when they do
/// not overlap or the answer is unknown.
pub fn overlap_example(a: &str, b: &str) -> Option<String> {
    if !prefixes_nested(literal_prefix(a), literal_prefix(b)) {
        return None;
    }
    match overlap_witness(&Nfa::from_glob(a)?, &Nfa::from_glob(b)?) {
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
/// (`{a,b}.md` gives `a.md`), a class by `x` or else its first readable
/// member (`[a-m]*.rs` gives `ax.rs`). The result always matches the glob
/// when it matches any path; a glob that matches no path (such as `[/]`) or
/// does not parse is returned unchanged.
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
    fn full() -> Self {
        ByteSet([u64::MAX; 4])
    }

    fn single(b: u8) -> Self {
        let mut s = ByteSet::default();
        s.insert(b);
        s
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
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

    fn complement(&self) -> Self {
        let mut r = *self;
        for x in &mut r.0 {
            *x = !*x;
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
/// when it uses syntax outside the subset globset emits.
fn parse_regex(re: &str) -> Option<Ast> {
    let body = re.strip_prefix("(?-u)")?.strip_prefix('^')?.strip_suffix('$')?;
    if !body.is_ascii() {
        return None;
    }
    let mut p = RegexParser {
        s: body.as_bytes(),
        pos: 0,
    };
    let ast = p.alternation(0)?;
    (p.pos == p.s.len()).then_some(ast)
}

/// A recursive-descent parser for globset's regex subset: literals (raw or
/// `\`-escaped, `\xNN` bytes), `.`, classes `[...]` / `[^...]` with ranges
/// and `\s` / `\S`, non-capturing groups `(?:...|...)`, and the postfix
/// operators `*` and `?`.
struct RegexParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl RegexParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        let ok = self.peek() == Some(b);
        if ok {
            self.pos += 1;
        }
        ok
    }

    /// `branch ('|' branch)*`, up to a `)` or the end.
    fn alternation(&mut self, depth: usize) -> Option<Ast> {
        if depth > MAX_GROUP_DEPTH {
            return None;
        }
        let mut branches = vec![self.concat(depth)?];
        while self.eat(b'|') {
            branches.push(self.concat(depth)?);
        }
        Some(if branches.len() == 1 {
            branches.pop()?
        } else {
            Ast::Alt(branches)
        })
    }

    /// A sequence of atoms with their postfix operators.
    fn concat(&mut self, depth: usize) -> Option<Ast> {
        let mut parts = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'|' || b == b')' {
                break;
            }
            let mut atom = self.atom(depth)?;
            loop {
                if self.eat(b'*') {
                    atom = Ast::Star(Box::new(atom));
                } else if self.eat(b'?') {
                    // `x?` is optional; `x*?` / `x??` are lazy forms with
                    // the same language, which `Opt` preserves.
                    atom = Ast::Opt(Box::new(atom));
                } else {
                    break;
                }
            }
            // `x*x*` is `x*`: globset writes `***` as two stars, and long
            // runs of them would only make the automata dense.
            if matches!(atom, Ast::Star(_)) && parts.last() == Some(&atom) {
                continue;
            }
            parts.push(atom);
        }
        Some(Ast::Concat(parts))
    }

    fn atom(&mut self, depth: usize) -> Option<Ast> {
        match self.bump()? {
            b'(' => {
                if !(self.eat(b'?') && self.eat(b':')) {
                    return None;
                }
                let inner = self.alternation(depth + 1)?;
                self.eat(b')').then_some(inner)
            }
            b'[' => self.class().map(Ast::Set),
            b'.' => Some(Ast::Set(ByteSet::full())),
            b'\\' => self.escape().map(Ast::Set),
            b'*' | b'?' | b'+' | b'{' | b'}' | b'^' | b'$' | b']' => None,
            b => Some(Ast::Set(ByteSet::single(b))),
        }
    }

    /// The set an escape denotes (the `\` already consumed).
    fn escape(&mut self) -> Option<ByteSet> {
        match self.bump()? {
            b'x' => {
                let hi = hex(self.bump()?)?;
                let lo = hex(self.bump()?)?;
                Some(ByteSet::single(hi << 4 | lo))
            }
            b's' => Some(whitespace()),
            b'S' => Some(whitespace().complement()),
            b if b.is_ascii_punctuation() || b == b' ' => Some(ByteSet::single(b)),
            _ => None,
        }
    }

    /// One class member usable as a range endpoint.
    fn class_byte(&mut self) -> Option<u8> {
        match self.bump()? {
            b'\\' => {
                let set = self.escape()?;
                let b = set.pick()?;
                (set == ByteSet::single(b)).then_some(b)
            }
            // Nested classes and set operations are not emitted by globset.
            b'[' | b'&' | b'~' => None,
            b => Some(b),
        }
    }

    /// A class body (the `[` already consumed), through its `]`.
    fn class(&mut self) -> Option<ByteSet> {
        let negated = self.eat(b'^');
        let mut set = ByteSet::default();
        let mut first = true;
        loop {
            match self.peek()? {
                b']' if !first => {
                    self.pos += 1;
                    break;
                }
                b'\\' if matches!(self.s.get(self.pos + 1), Some(b's' | b'S')) => {
                    self.pos += 1;
                    set = set.union(&self.escape()?);
                }
                b'-' if !first && self.s.get(self.pos + 1) != Some(&b']') => return None,
                _ => {
                    let lo = self.class_byte()?;
                    if self.peek() == Some(b'-') && self.s.get(self.pos + 1) != Some(&b']') {
                        self.pos += 1;
                        let hi = self.class_byte()?;
                        if hi < lo {
                            return None;
                        }
                        set.insert_range(lo, hi);
                    } else {
                        set.insert(lo);
                    }
                }
            }
            first = false;
        }
        Some(if negated { set.complement() } else { set })
    }
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// `(?-u)\s`: ASCII whitespace.
fn whitespace() -> ByteSet {
    let mut s = ByteSet::default();
    for b in [b'\t', b'\n', 0x0B, 0x0C, b'\r', b' '] {
        s.insert(b);
    }
    s
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
