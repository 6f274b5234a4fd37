//! Reads a workflow file and everything it imports, each file once, after the standard
//! library's modules, which every workflow has without importing them.
//!
//! The text of each file is guarded against what would make the KDL parser slow or overflow
//! its stack, parsed, and read into its syntax tree; a file that does not parse has its
//! errors explained by the `syntax_error` module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdl::KdlDocument;
use miette::{LabeledSpan, NamedSource, Severity, SourceSpan};

use crate::ast::{FileAst, FileId, Spanned};
use crate::problem::{Code, Problem, Source, unknown_help};
use crate::reader::Reader;

/// One file read for a workflow.
#[derive(Clone)]
pub struct LoadedFile {
    pub source: Source,
    pub path: Option<PathBuf>,
    pub ast: FileAst,
    /// The spans of top-level nodes that had a problem while being read.
    pub flawed: Vec<SourceSpan>,
}

/// Every file of a workflow, with imported files before the files that import them.
pub struct Loaded {
    pub files: Vec<LoadedFile>,
    /// File ids in the order definitions apply: imports first, the main file last.
    pub order: Vec<FileId>,
    /// The main file's id.
    pub main: FileId,
    pub problems: Vec<Problem>,
    /// True when some file could not be parsed; later checks would only add noise.
    pub syntax_failed: bool,
}

enum Origin {
    Std(String),
    Disk(PathBuf),
    Text,
}

#[derive(Clone)]
struct Loader {
    files: Vec<LoadedFile>,
    order: Vec<FileId>,
    by_key: HashMap<String, FileId>,
    stack: Vec<(String, FileId)>,
    problems: Vec<Problem>,
    syntax_failed: bool,
}

/// The standard-library modules every workflow has without importing them, read first so
/// that any definition in the workflow's own files replaces a preset of the same name.
const IMPLICIT_MODULES: [&str; 3] = ["models", "agents", "roles"];

/// Loads a workflow from a file on disk.
pub fn load_path(path: &Path) -> Result<Loaded, Box<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Box::new(unreadable(path, &e)))?;
    Ok(load_text(&path.display().to_string(), &text, Some(path)))
}

/// Loads a workflow from text; `path` (when given) anchors relative imports.
pub fn load_text(name: &str, text: &str, path: Option<&Path>) -> Loaded {
    let mut loader = with_standard_library();
    let origin = match path {
        Some(p) => Origin::Disk(p.to_path_buf()),
        None => Origin::Text,
    };
    let main = loader.load(name, text.to_string(), origin, true);
    Loaded {
        files: loader.files,
        order: loader.order,
        main,
        problems: loader.problems,
        syntax_failed: loader.syntax_failed,
    }
}

/// A loader that has read the standard library's modules, as every workflow starts.
///
/// The modules are read once per process and copied: reading them took 2.2 ms in a debug
/// build and a copy 0.13 ms (measured over 200 loads of a one-workstream file), and the tests
/// check workflows thousands of times. A copy gives the same file ids as reading them
/// afresh, since they are always the first files read.
fn with_standard_library() -> Loader {
    static PRELUDE: std::sync::OnceLock<Loader> = std::sync::OnceLock::new();
    PRELUDE
        .get_or_init(|| {
            let mut loader = Loader {
                files: vec![],
                order: vec![],
                by_key: HashMap::new(),
                stack: vec![],
                problems: vec![],
                syntax_failed: false,
            };
            for module in IMPLICIT_MODULES {
                let key = format!("std:{module}");
                if !loader.by_key.contains_key(&key) {
                    let text = flow_stdlib::module(module).expect("the implicit modules are in the standard library");
                    loader.load(&key, text.to_string(), Origin::Std(module.to_string()), false);
                }
            }
            loader
        })
        .clone()
}

fn unreadable(path: &Path, error: &std::io::Error) -> Problem {
    let source: Source = NamedSource::new(path.display().to_string(), Arc::new(String::new()));
    Problem {
        code: Code::UnreadableFile,
        severity: Severity::Error,
        message: format!("cannot read `{}`: {error}", path.display()),
        source,
        labels: vec![],
        help: if error.kind() == std::io::ErrorKind::NotFound {
            Some("run `flow init` to write a workflow file, or pass its path".into())
        } else {
            None
        },
    }
}

impl Loader {
    fn load(&mut self, name: &str, text: String, origin: Origin, main: bool) -> FileId {
        let id = self.files.len();
        let source: Source = NamedSource::new(name, Arc::new(text)).with_language("kdl");
        let path = match &origin {
            Origin::Disk(p) => Some(p.clone()),
            _ => None,
        };
        self.files.push(LoadedFile {
            source: source.clone(),
            path: path.clone(),
            ast: FileAst::default(),
            flawed: vec![],
        });
        let key = match &origin {
            Origin::Std(n) => format!("std:{n}"),
            Origin::Disk(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            Origin::Text => format!("text:{name}"),
        };
        self.by_key.insert(key.clone(), id);
        if let Some((at, what)) = too_deep(source.inner()) {
            self.syntax_failed = true;
            self.problems.push(Problem {
                code: Code::Syntax,
                severity: Severity::Error,
                message: format!("{what} are nested more than {MAX_DEPTH} deep"),
                source: source.clone(),
                labels: vec![LabeledSpan::new_primary_with_span(
                    Some("too deep".into()),
                    (at, if what == "blocks" { 1 } else { 2 }),
                )],
                help: Some("a workflow needs only a few levels, such as `workstream \"name\" { task \"...\" }`".into()),
            });
            self.order.push(id);
            return id;
        }
        // The kdl crate slows down without bound on long runs of quotes (seconds for
        // thousands): no workflow has one outside a raw string, so it is reported here.
        if let Some(at) = quote_run(source.inner(), QUOTE_RUN_LIMIT) {
            self.syntax_failed = true;
            self.problems.push(Problem {
                code: Code::Syntax,
                severity: Severity::Error,
                message: format!("more than {QUOTE_RUN_LIMIT} `\"` in a row"),
                source: source.clone(),
                labels: vec![LabeledSpan::new_primary_with_span(
                    Some("a run of quotes starts here".into()),
                    (at, 1),
                )],
                help: Some("a string is `\"text\"`, or `\"\"\"` on a line of its own around several lines".into()),
            });
            self.order.push(id);
            return id;
        }
        // The fast path reads the common subset of KDL; anything else, errors included, goes
        // to the kdl crate, so every syntax error still comes from it.
        let parsed = crate::fast_kdl::parse(source.inner()).map_or_else(
            || {
                source
                    .inner()
                    .parse::<KdlDocument>()
                    .map(|d| crate::node::Document::from(&d))
            },
            Ok,
        );
        let document = match parsed {
            Ok(d) => d,
            Err(error) => {
                self.syntax_failed = true;
                self.problems
                    .extend(crate::syntax_error::syntax_problems(&source, &error));
                self.order.push(id);
                return id;
            }
        };
        let (ast, flawed) = Reader::new(id, &source, main, &mut self.problems).read(&document);
        self.files[id].flawed = flawed;
        self.stack.push((key, id));
        let base_dir = path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        for import in &ast.imports {
            self.import(import, &base_dir, &source);
        }
        self.stack.pop();
        self.files[id].ast = ast;
        self.order.push(id);
        id
    }

    fn import(&mut self, import: &Spanned<String>, base_dir: &Path, source: &Source) {
        let target = import.value.as_str();
        let (key, name, text, origin) = if let Some(module) = target.strip_prefix("std:") {
            let Some(text) = flow_stdlib::module(module) else {
                self.problems.push(
                    Problem::error(
                        Code::UnknownImport,
                        source,
                        import.span,
                        "no such module",
                        format!("the standard library has no module `{module}`"),
                    )
                    .with_help(
                        unknown_help("module", module, flow_stdlib::MODULES.iter().copied())
                            .replace("known modules", "its modules"),
                    ),
                );
                return;
            };
            (
                format!("std:{module}"),
                format!("std:{module}"),
                text.to_string(),
                Origin::Std(module.to_string()),
            )
        } else {
            let path = base_dir.join(target);
            let key = std::fs::canonicalize(&path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string();
            if self.in_progress(&key, import, source) || self.by_key.contains_key(&key) {
                return;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => (key, path.display().to_string(), text, Origin::Disk(path)),
                Err(e) => {
                    self.problems.push(
                        Problem::error(
                            Code::UnknownImport,
                            source,
                            import.span,
                            "cannot read this file",
                            format!("cannot import `{target}`: {e}"),
                        )
                        .with_help(format!(
                            "paths are relative to the importing file's folder; looked for `{}`",
                            path.display()
                        )),
                    );
                    return;
                }
            }
        };
        if self.in_progress(&key, import, source) || self.by_key.contains_key(&key) {
            return;
        }
        self.load(&name, text, origin, false);
    }

    /// Reports an import cycle when `key` is being loaded right now.
    fn in_progress(&mut self, key: &str, import: &Spanned<String>, source: &Source) -> bool {
        let Some(position) = self.stack.iter().position(|(k, _)| k == key) else {
            return false;
        };
        let mut chain: Vec<String> = self.stack[position..]
            .iter()
            .map(|(_, id)| self.files[*id].source.name().to_string())
            .collect();
        chain.push(self.files[self.stack[position].1].source.name().to_string());
        self.problems.push(
            Problem::error(
                Code::ImportCycle,
                source,
                import.span,
                "this import closes the cycle",
                format!("import cycle: {}", chain.join(" → ")),
            )
            .with_help("remove this import; each file is read once, so importing it again adds nothing"),
        );
        true
    }
}

/// The deepest nesting of `{ ... }` blocks (or `/* ... */` comments) read; the KDL parser
/// recurses once per level, and would overflow the stack on deep nesting.
const MAX_DEPTH: usize = 32;

/// The offset of the first `{` (outside strings and comments) or `/*` nested deeper than
/// [`MAX_DEPTH`], with what is nested.
fn too_deep(text: &str) -> Option<(usize, &'static str)> {
    let bytes = text.as_bytes();
    let find = |from: usize, pattern: &[u8]| {
        bytes
            .get(from..)
            .and_then(|rest| rest.windows(pattern.len()).position(|w| w == pattern))
            .map_or(bytes.len(), |n| from + n + pattern.len())
    };
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        let rest = &bytes[i..];
        i = if rest.starts_with(b"\"\"\"") {
            find(i + 3, b"\"\"\"")
        } else if rest.starts_with(b"#") && rest.iter().find(|b| **b != b'#') == Some(&b'"') {
            let hashes = rest.iter().take_while(|b| **b == b'#').count();
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            find(i + hashes + 1, &close)
        } else if rest.starts_with(b"\"") {
            let mut j = i + 1;
            while j < bytes.len() && !matches!(bytes[j], b'"' | b'\n') {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else if rest.starts_with(b"//") {
            find(i, b"\n")
        } else if rest.starts_with(b"/*") {
            let (mut j, mut comments) = (i + 2, 1);
            while j < bytes.len() && comments > 0 {
                match &bytes[j..(j + 2).min(bytes.len())] {
                    b"*/" => (comments, j) = (comments - 1, j + 2),
                    b"/*" if comments == MAX_DEPTH => return Some((j, "comments")),
                    b"/*" => (comments, j) = (comments + 1, j + 2),
                    _ => j += 1,
                }
            }
            j
        } else {
            match bytes[i] {
                b'{' if depth == MAX_DEPTH => return Some((i, "blocks")),
                b'{' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            i + 1
        };
    }
    None
}

/// The longest run of `"` a workflow file may have.
const QUOTE_RUN_LIMIT: usize = 64;

/// Where the first run of more than `limit` quotes starts, if any.
fn quote_run(text: &str, limit: usize) -> Option<usize> {
    let mut run = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'"' {
            run += 1;
            if run > limit {
                return Some(i + 1 - run);
            }
        } else {
            run = 0;
        }
    }
    None
}
