//! Reads a workflow file and everything it imports, each file once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdl::KdlDocument;
use miette::{LabeledSpan, NamedSource, Severity};

use crate::ast::{FileAst, FileId, Spanned};
use crate::problem::{Code, Problem, Source, unknown_help};
use crate::reader::Reader;

/// One file read for a workflow.
pub struct LoadedFile {
    pub source: Source,
    pub path: Option<PathBuf>,
    pub ast: FileAst,
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

struct Loader {
    files: Vec<LoadedFile>,
    order: Vec<FileId>,
    by_key: HashMap<String, FileId>,
    stack: Vec<(String, FileId)>,
    problems: Vec<Problem>,
    syntax_failed: bool,
}

/// Loads a workflow from a file on disk.
pub fn load_path(path: &Path) -> Result<Loaded, Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))?;
    Ok(load_text(&path.display().to_string(), &text, Some(path)))
}

/// Loads a workflow from text; `path` (when given) anchors relative imports.
pub fn load_text(name: &str, text: &str, path: Option<&Path>) -> Loaded {
    let mut loader = Loader { files: vec![], order: vec![], by_key: HashMap::new(), stack: vec![], problems: vec![], syntax_failed: false };
    let origin = match path {
        Some(p) => Origin::Disk(p.to_path_buf()),
        None => Origin::Text,
    };
    let main = loader.load(name, text.to_string(), origin, true);
    Loaded { files: loader.files, order: loader.order, main, problems: loader.problems, syntax_failed: loader.syntax_failed }
}

fn unreadable(path: &Path, error: &std::io::Error) -> Problem {
    let source: Source = NamedSource::new(path.display().to_string(), Arc::new(String::new()));
    Problem {
        code: Code::UnreadableFile,
        severity: Severity::Error,
        message: format!("cannot read `{}`: {error}", path.display()),
        source,
        labels: vec![],
        help: if error.kind() == std::io::ErrorKind::NotFound { Some("run `flow init` to write a workflow file, or pass its path".into()) } else { None },
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
        self.files.push(LoadedFile { source: source.clone(), path: path.clone(), ast: FileAst::default() });
        let key = match &origin {
            Origin::Std(n) => format!("std:{n}"),
            Origin::Disk(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display().to_string(),
            Origin::Text => format!("text:{name}"),
        };
        self.by_key.insert(key.clone(), id);
        let document = match source.inner().parse::<KdlDocument>() {
            Ok(d) => d,
            Err(error) => {
                self.syntax_failed = true;
                self.problems.extend(syntax_problems(&source, &error));
                self.order.push(id);
                return id;
            }
        };
        let ast = Reader::new(id, &source, main, &mut self.problems).read(&document);
        self.stack.push((key, id));
        let base_dir = path.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
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
                    Problem::error(Code::UnknownImport, source, import.span, "no such module", format!("the standard library has no module `{module}`"))
                        .with_help(unknown_help("module", module, flow_stdlib::MODULES.iter().copied()).replace("known modules", "its modules")),
                );
                return;
            };
            (format!("std:{module}"), format!("std:{module}"), text.to_string(), Origin::Std(module.to_string()))
        } else {
            let path = base_dir.join(target);
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()).display().to_string();
            if self.in_progress(&key, import, source) || self.by_key.contains_key(&key) {
                return;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => (key, path.display().to_string(), text, Origin::Disk(path)),
                Err(e) => {
                    self.problems.push(
                        Problem::error(Code::UnknownImport, source, import.span, "cannot read this file", format!("cannot import `{target}`: {e}"))
                            .with_help(format!("paths are relative to the importing file's folder; looked for `{}`", path.display())),
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
        let Some(position) = self.stack.iter().position(|(k, _)| k == key) else { return false };
        let mut chain: Vec<String> = self.stack[position..].iter().map(|(_, id)| self.files[*id].source.name().to_string()).collect();
        chain.push(self.files[self.stack[position].1].source.name().to_string());
        self.problems.push(
            Problem::error(Code::ImportCycle, source, import.span, "this import closes the cycle", format!("import cycle: {}", chain.join(" → ")))
                .with_help("remove this import; each file is read once, so importing it again adds nothing"),
        );
        true
    }
}

/// Turns the kdl crate's parse errors into problems, without the cascade of follow-on errors.
fn syntax_problems(source: &Source, error: &kdl::KdlError) -> Vec<Problem> {
    let mut diagnostics: Vec<&kdl::KdlDiagnostic> = error.diagnostics.iter().collect();
    diagnostics.sort_by_key(|d| d.span.offset());
    let follow_on = |d: &&kdl::KdlDiagnostic| matches!(d.label.as_deref(), Some("not EOF") | Some("not closed"));
    let root_causes: Vec<&kdl::KdlDiagnostic> = diagnostics.iter().copied().filter(|d| !follow_on(d)).collect();
    // With only follow-on errors left, the first "not EOF" is where the parser got stuck.
    let stuck = diagnostics.iter().copied().find(|d| d.label.as_deref() == Some("not EOF"));
    let kept: Vec<&kdl::KdlDiagnostic> = match (root_causes.is_empty(), stuck) {
        (false, _) => root_causes.into_iter().take(3).collect(),
        (true, Some(d)) => vec![d],
        (true, None) => diagnostics.into_iter().take(1).collect(),
    };
    let len = source.inner().len();
    kept.into_iter()
        .map(|d| {
            let offset = d.span.offset().min(len);
            let span_len = d.span.len().min(len - offset);
            let mut message = d.message.clone().unwrap_or_else(|| "invalid KDL".to_string());
            let mut label = d.label.clone().unwrap_or_else(|| "here".to_string());
            let mut help = d.help.clone();
            match label.as_str() {
                "not EOF" => {
                    let found: String = source.inner()[offset..].chars().take_while(|c| !c.is_whitespace()).take(20).collect();
                    message = if found.is_empty() { "unexpected text".to_string() } else { format!("unexpected `{found}`") };
                    label = "KDL cannot read past this point".to_string();
                    help = help.or(Some("look for a stray `=`, `}` or quote, or a value that needs double quotes".to_string()));
                }
                "not closed" => {
                    label = "this block is never closed".to_string();
                    help = help.or(Some("add the missing `}`".to_string()));
                }
                _ => {}
            }
            Problem {
                code: Code::Syntax,
                severity: Severity::Error,
                message,
                source: source.clone(),
                labels: vec![LabeledSpan::new_primary_with_span(Some(label), (offset, span_len))],
                help,
            }
        })
        .collect()
}
