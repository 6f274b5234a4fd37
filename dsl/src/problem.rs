//! Problems found in workflow files, as miette diagnostics.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceSpan};

/// The stable code of a problem, printed as `flow::<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Syntax,
    UnknownNode,
    UnknownProperty,
    MisplacedNode,
    DuplicateNode,
    MissingNode,
    ArgumentCount,
    ArgumentType,
    InvalidName,
    InvalidValue,
    InvalidNumber,
    InvalidDuration,
    InvalidPriority,
    InvalidGlob,
    DuplicateWorkstream,
    DuplicateDefinition,
    UnknownDependency,
    SelfDependency,
    DependencyCycle,
    DuplicateDependency,
    UnknownModel,
    UnknownAgent,
    UnknownRole,
    UnknownAccount,
    UnknownImport,
    ImportCycle,
    UnreadableFile,
    UnknownPlaceholder,
    EmptyWorkflow,
    MissingTask,
    ScopeContradiction,
    OwnsOverlap,
    UnpricedModel,
}

impl Code {
    /// The code as printed: `flow::unknown_dependency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "flow::syntax",
            Code::UnknownNode => "flow::unknown_node",
            Code::UnknownProperty => "flow::unknown_property",
            Code::MisplacedNode => "flow::misplaced_node",
            Code::DuplicateNode => "flow::duplicate_node",
            Code::MissingNode => "flow::missing_node",
            Code::ArgumentCount => "flow::argument_count",
            Code::ArgumentType => "flow::argument_type",
            Code::InvalidName => "flow::invalid_name",
            Code::InvalidValue => "flow::invalid_value",
            Code::InvalidNumber => "flow::invalid_number",
            Code::InvalidDuration => "flow::invalid_duration",
            Code::InvalidPriority => "flow::invalid_priority",
            Code::InvalidGlob => "flow::invalid_glob",
            Code::DuplicateWorkstream => "flow::duplicate_workstream",
            Code::DuplicateDefinition => "flow::duplicate_definition",
            Code::UnknownDependency => "flow::unknown_dependency",
            Code::SelfDependency => "flow::self_dependency",
            Code::DependencyCycle => "flow::dependency_cycle",
            Code::DuplicateDependency => "flow::duplicate_dependency",
            Code::UnknownModel => "flow::unknown_model",
            Code::UnknownAgent => "flow::unknown_agent",
            Code::UnknownRole => "flow::unknown_role",
            Code::UnknownAccount => "flow::unknown_account",
            Code::UnknownImport => "flow::unknown_import",
            Code::ImportCycle => "flow::import_cycle",
            Code::UnreadableFile => "flow::unreadable_file",
            Code::UnknownPlaceholder => "flow::unknown_placeholder",
            Code::EmptyWorkflow => "flow::empty_workflow",
            Code::MissingTask => "flow::missing_task",
            Code::ScopeContradiction => "flow::scope_contradiction",
            Code::OwnsOverlap => "flow::owns_overlap",
            Code::UnpricedModel => "flow::unpriced_model",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source file as diagnostics see it: a display name and its text.
pub type Source = NamedSource<Arc<String>>;

/// One problem in a workflow file: an error or a warning, with labelled spans in one file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub source: Source,
    pub labels: Vec<LabeledSpan>,
    pub help: Option<String>,
}

impl Problem {
    /// Creates an error with a primary label.
    pub fn error(
        code: Code,
        source: &Source,
        span: SourceSpan,
        label: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            code,
            severity: Severity::Error,
            message: message.into(),
            source: source.clone(),
            labels: vec![LabeledSpan::new_primary_with_span(Some(label.into()), span)],
            help: None,
        }
    }

    /// Creates a warning with a primary label.
    pub fn warning(
        code: Code,
        source: &Source,
        span: SourceSpan,
        label: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, source, span, label, message)
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label in the same file.
    pub fn with_label(mut self, span: SourceSpan, label: impl Into<String>) -> Problem {
        self.labels.push(LabeledSpan::new_with_span(Some(label.into()), span));
        self
    }

    /// Tells whether this problem is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The offset of the primary label, for sorting problems by position.
    pub fn offset(&self) -> usize {
        self.labels.first().map(|l| l.offset()).unwrap_or(0)
    }

    /// The 1-based line of the primary label.
    pub fn line(&self) -> usize {
        let text = self.source.inner();
        let end = self.offset().min(text.len());
        text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    }

    /// The name of the file the problem is in.
    pub fn file_name(&self) -> &str {
        self.source.name()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// Everything wrong with a workflow: at least one error, and any warnings found with it.
#[derive(Debug, Clone)]
pub struct Problems {
    pub problems: Vec<Problem>,
}

impl Problems {
    /// The number of errors.
    pub fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    /// The number of warnings.
    pub fn warning_count(&self) -> usize {
        self.problems.len() - self.error_count()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.error_count();
        write!(
            f,
            "the workflow has {errors} error{}",
            if errors == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Problems {}

impl Diagnostic for Problems {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("flow::invalid_workflow"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

/// Suggests the closest of `candidates` to `word`, when one is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // One edit per three letters, rounded up from two: `owned` is two edits from `owns`.
    let length = word.chars().count();
    let limit = ((length + 1) / 3).max(1);
    // Or a long shared start: `retry` for `retries`, `isolate` for `isolation`.
    let shared = |c: &str| word.chars().zip(c.chars()).take_while(|(a, b)| a == b).count();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| {
            *d <= limit || (c.starts_with(word) && word.len() >= 3) || (shared(c) >= 4 && shared(c) * 2 >= length)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The help line for an unknown name: a suggestion, else the list of known names.
pub fn unknown_help<'a>(what: &str, word: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    if let Some(s) = did_you_mean(word, known.clone()) {
        return format!("did you mean `{s}`?");
    }
    let mut names: Vec<&str> = known.into_iter().collect();
    if names.is_empty() {
        return format!("no {what} is defined; define one or import the standard library");
    }
    names.sort_unstable();
    names.dedup();
    let shown = names.len().min(12);
    let more = if names.len() > shown {
        format!(", and {} more", names.len() - shown)
    } else {
        String::new()
    };
    format!("known {what}s: {}{more}", names[..shown].join(", "))
}
