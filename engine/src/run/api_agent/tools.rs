//! The tools an API agent's model may call, run by flow in the workstream's worktree.
//!
//! Every path is relative to the worktree: an absolute path, a `..` component, a path into
//! `.git`, or one whose folders lead out through a symbolic link is refused. Writes
//! (`write_file`, `edit_file`) are weighed against the workstream's [`Scope`], the same
//! compiled `owns` and `forbid` the run's scope check uses, on the path as written and on the
//! path it resolves to; a write outside it is refused before anything is touched, and the
//! model is told why and what it may write. `run_command` runs `sh -c` through the same
//! process runner and clean environment as a CLI agent (its own process group, killed on
//! stop), with a time limit; the files it changed outside the scope (new in `git status`)
//! are put back as the branch has them once it ends, and the model is told.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use flow_dsl::Scope;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::conversation::ToolSpec;
use crate::agent::environment::Redactor;
use crate::agent::process::{Control, ProcessEnd, ProcessSpec, each_line, run_process};

/// The most characters of a tool's answer the model is sent.
const ANSWER_LIMIT: usize = 60_000;

/// The most bytes `read_file` reads: more than the answer holds, however the text is made.
const READ_LIMIT: u64 = 4 * ANSWER_LIMIT as u64;

/// The largest file `edit_file` reads whole.
const EDIT_LIMIT: u64 = 64 * 1024 * 1024;

/// The most paths `list_files` names.
const LIST_LIMIT: usize = 2_000;

/// The most matching lines `search` gives.
const SEARCH_LIMIT: usize = 200;

/// Files larger than this are not searched.
const SEARCH_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// What a tool answered: its text for the model, and whether it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub content: String,
    pub is_error: bool,
}

impl Answer {
    fn ok(content: impl Into<String>) -> Answer {
        Answer {
            content: content.into(),
            is_error: false,
        }
    }

    fn error(content: impl Into<String>) -> Answer {
        Answer {
            content: content.into(),
            is_error: true,
        }
    }
}

/// The tools of one attempt: where they work and what they may touch.
pub struct Tools {
    /// The worktree, resolved (no symbolic link in it).
    root: PathBuf,
    scope: Scope,
    /// How `run_command` runs a command: a CLI agent's process (environment, limits, and
    /// whatever confinement the runner applies) with the program and arguments replaced.
    commands: ProcessSpec,
    /// Hides secrets in every answer.
    redactor: Redactor,
    stop: watch::Receiver<bool>,
}

impl Tools {
    /// The tools working in `root`, writing only where `scope` allows, running commands as
    /// `commands` says.
    pub fn new(
        root: &Path,
        scope: Scope,
        commands: ProcessSpec,
        secrets: Vec<String>,
        stop: watch::Receiver<bool>,
    ) -> Result<Tools, String> {
        let root = root
            .canonicalize()
            .map_err(|e| format!("cannot resolve the worktree {}: {e}", root.display()))?;
        Ok(Tools {
            root,
            scope,
            commands,
            redactor: Redactor::new(&secrets),
            stop,
        })
    }

    /// The tools' names, descriptions and input schemas, as the model is given them.
    pub fn specs() -> Vec<ToolSpec> {
        let path = json!({"type": "string", "description": "a path relative to the worktree root"});
        vec![
            ToolSpec {
                name: "read_file",
                description: "Read a text file of the worktree.",
                schema: json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
            },
            ToolSpec {
                name: "write_file",
                description: "Create or replace a file of the worktree with `content`. Only paths in this workstream's scope may be written.",
                schema: json!({"type": "object", "properties": {"path": path, "content": {"type": "string"}}, "required": ["path", "content"]}),
            },
            ToolSpec {
                name: "edit_file",
                description: "Replace the one occurrence of `old` in a file with `new`. `old` must appear exactly once: include enough surrounding text.",
                schema: json!({"type": "object", "properties": {"path": path, "old": {"type": "string"}, "new": {"type": "string"}}, "required": ["path", "old", "new"]}),
            },
            ToolSpec {
                name: "list_files",
                description: "List the files under a folder of the worktree (the root by default), skipping what .gitignore ignores.",
                schema: json!({"type": "object", "properties": {"path": path}}),
            },
            ToolSpec {
                name: "search",
                description: "Search the worktree's files (under `path`, the root by default) for lines matching a regular expression; answers path:line: text.",
                schema: json!({"type": "object", "properties": {"pattern": {"type": "string"}, "path": path}, "required": ["pattern"]}),
            },
            ToolSpec {
                name: "run_command",
                description: "Run a shell command (sh -c) in the worktree root; answers its exit status and output.",
                schema: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
            },
        ]
    }

    /// Runs the tool `name` with `input` and answers.
    pub async fn call(&self, name: &str, input: &Value) -> Answer {
        if !input.is_object() {
            return Answer::error(format!("the arguments of `{name}` are not a JSON object: {input}"));
        }
        let text = |key: &str| input.get(key).and_then(Value::as_str);
        let need = |key: &str| text(key).ok_or_else(|| format!("`{name}` needs a string `{key}`"));
        let answer = match name {
            "read_file" => need("path").and_then(|p| self.read_file(p)),
            "write_file" => need("path").and_then(|p| self.write_file(p, need("content")?)),
            "edit_file" => need("path").and_then(|p| self.edit_file(p, need("old")?, need("new")?)),
            "list_files" => self.list_files(text("path").unwrap_or("")).await,
            "search" => match need("pattern") {
                Ok(pattern) => self.search(pattern, text("path").unwrap_or("")).await,
                Err(e) => Err(e),
            },
            "run_command" => match need("command") {
                Ok(command) => Ok(self.run_command(command).await),
                Err(e) => Err(e),
            },
            other => Err(format!(
                "there is no tool `{other}`; the tools are read_file, write_file, edit_file, list_files, search and run_command"
            )),
        };
        let mut answer = answer.unwrap_or_else(Answer::error);
        answer.content = clip(&self.redactor.redact(&answer.content), ANSWER_LIMIT);
        answer
    }

    /// The path as a `/`-separated path relative to the worktree, checked lexically.
    fn relative(&self, raw: &str) -> Result<String, String> {
        let path = Path::new(raw);
        if path.is_absolute() {
            return Err(format!("`{raw}` is absolute: give paths relative to the worktree root"));
        }
        let mut parts = vec![];
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(
                    part.to_str()
                        .ok_or_else(|| format!("`{raw}` is not UTF-8"))?
                        .to_string(),
                ),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("`{raw}` leaves the worktree: `..` is not allowed"));
                }
            }
        }
        if parts.iter().any(|p| p == ".git") {
            return Err(format!("`{raw}` is inside `.git`, which no tool reads or writes"));
        }
        Ok(parts.join("/"))
    }

    /// The real place of an existing path, which must be inside the worktree.
    fn existing(&self, raw: &str) -> Result<(String, PathBuf), String> {
        let relative = self.relative(raw)?;
        let real = self
            .root
            .join(&relative)
            .canonicalize()
            .map_err(|e| format!("cannot open `{raw}`: {e}"))?;
        if !real.starts_with(&self.root) {
            return Err(format!("`{raw}` leads outside the worktree through a symbolic link"));
        }
        Ok((relative, real))
    }

    /// The place a write to `raw` goes, once the write is known to be allowed: in the
    /// worktree, in the scope, not through a link. Makes its folders.
    fn writable(&self, raw: &str) -> Result<PathBuf, String> {
        let relative = self.relative(raw)?;
        if relative.is_empty() {
            return Err("a write needs a file's path".into());
        }
        self.allowed(&relative)?;
        let target = self.root.join(&relative);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        // The deepest folder that exists must be inside the worktree before any is made.
        let mut existing = parent.as_path();
        while !existing.exists() {
            existing = existing.parent().unwrap_or(&self.root);
        }
        self.inside(existing, raw)?;
        std::fs::create_dir_all(&parent).map_err(|e| format!("cannot make the folders of `{raw}`: {e}"))?;
        let real_parent = self.inside(&parent, raw)?;
        let name = target.file_name().ok_or_else(|| format!("`{raw}` names no file"))?;
        let real = real_parent.join(name);
        // The path the write really reaches must be in the scope too (a link inside the
        // worktree can lead from an owned folder to a forbidden one).
        let real_relative = real
            .strip_prefix(&self.root)
            .map_err(|_| format!("`{raw}` leads outside the worktree"))?
            .to_string_lossy()
            .into_owned();
        if real_relative != relative {
            self.allowed(&real_relative)?;
        }
        if std::fs::symlink_metadata(&real).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("`{raw}` is a symbolic link: no tool writes through one"));
        }
        Ok(real)
    }

    /// Resolves `path` and checks that it is inside the worktree.
    fn inside(&self, path: &Path, raw: &str) -> Result<PathBuf, String> {
        let real = path
            .canonicalize()
            .map_err(|e| format!("cannot resolve `{raw}`: {e}"))?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(format!("`{raw}` leads outside the worktree through a symbolic link"))
        }
    }

    /// Refuses a write to `relative` outside the scope, saying what the workstream may write.
    fn allowed(&self, relative: &str) -> Result<(), String> {
        let Some(breach) = self.scope.breach(relative) else {
            return Ok(());
        };
        Err(format!(
            "refused: {breach}, so this workstream may not write it. {} Nothing was written.",
            self.may_write()
        ))
    }

    /// What the workstream may write, in a sentence for the model.
    fn may_write(&self) -> String {
        let owns = if self.scope.owns_everything() {
            "every path".to_string()
        } else {
            flow_dsl::ScopeGlob::join(self.scope.owns(), ", ")
        };
        let forbid = if self.scope.forbid().is_empty() {
            String::new()
        } else {
            format!(", except {}", flow_dsl::ScopeGlob::join(self.scope.forbid(), ", "))
        };
        format!("It may write: {owns}{forbid}.")
    }

    fn read_file(&self, raw: &str) -> Result<Answer, String> {
        use std::io::Read;
        let (_, real) = self.existing(raw)?;
        let file = std::fs::File::open(&real).map_err(|e| format!("cannot read `{raw}`: {e}"))?;
        // Only what the answer can hold is read: a huge file costs no memory.
        let mut bytes = vec![];
        file.take(READ_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read `{raw}`: {e}"))?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Answer::ok(text)),
            // A cut in the middle of a character is not a binary file.
            Err(e) if e.utf8_error().error_len().is_none() => {
                let valid = e.utf8_error().valid_up_to();
                let mut bytes = e.into_bytes();
                bytes.truncate(valid);
                Ok(Answer::ok(String::from_utf8(bytes).unwrap_or_default()))
            }
            Err(_) => Err(format!("`{raw}` is not a text file")),
        }
    }

    fn write_file(&self, raw: &str, content: &str) -> Result<Answer, String> {
        let real = self.writable(raw)?;
        std::fs::write(&real, content).map_err(|e| format!("cannot write `{raw}`: {e}"))?;
        Ok(Answer::ok(format!("wrote {raw} ({} bytes)", content.len())))
    }

    fn edit_file(&self, raw: &str, old: &str, new: &str) -> Result<Answer, String> {
        let real = self.writable(raw)?;
        if std::fs::metadata(&real).is_ok_and(|m| m.len() > EDIT_LIMIT) {
            return Err(format!(
                "`{raw}` is larger than {EDIT_LIMIT} bytes: edit it with run_command"
            ));
        }
        let text = std::fs::read_to_string(&real).map_err(|e| format!("cannot read `{raw}`: {e}"))?;
        if old.is_empty() {
            return Err("`old` is empty: give the text to replace".into());
        }
        match text.matches(old).count() {
            0 => Err(format!("`old` does not appear in `{raw}`: nothing was changed")),
            1 => {
                std::fs::write(&real, text.replacen(old, new, 1)).map_err(|e| format!("cannot write `{raw}`: {e}"))?;
                Ok(Answer::ok(format!("edited {raw}")))
            }
            n => Err(format!(
                "`old` appears {n} times in `{raw}`: include more of the text around it so that it appears once; nothing was changed"
            )),
        }
    }

    async fn list_files(&self, raw: &str) -> Result<Answer, String> {
        let (_, real) = self.existing(if raw.is_empty() { "." } else { raw })?;
        let root = self.root.clone();
        let paths = tokio::task::spawn_blocking(move || walk(&root, &real, LIST_LIMIT + 1))
            .await
            .map_err(|e| format!("the listing stopped: {e}"))?;
        let mut text: Vec<String> = paths.into_iter().map(|(relative, _)| relative).collect();
        if text.len() > LIST_LIMIT {
            text.truncate(LIST_LIMIT);
            text.push(format!("(more than {LIST_LIMIT} files: list a folder)"));
        }
        if text.is_empty() {
            return Ok(Answer::ok("(no files)"));
        }
        Ok(Answer::ok(text.join("\n")))
    }

    async fn search(&self, pattern: &str, raw: &str) -> Result<Answer, String> {
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("`{pattern}` is not a valid regular expression: {e}"))?;
        let (_, real) = self.existing(if raw.is_empty() { "." } else { raw })?;
        let root = self.root.clone();
        let lines = tokio::task::spawn_blocking(move || {
            let mut found = vec![];
            for (relative, path) in walk(&root, &real, usize::MAX) {
                if std::fs::metadata(&path).map_or(true, |m| m.len() > SEARCH_FILE_LIMIT) {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                for (number, line) in text.lines().enumerate() {
                    if regex.is_match(line) {
                        found.push(format!("{relative}:{}: {}", number + 1, clip(line, 300)));
                        if found.len() > SEARCH_LIMIT {
                            return found;
                        }
                    }
                }
            }
            found
        })
        .await
        .map_err(|e| format!("the search stopped: {e}"))?;
        let mut text = lines;
        if text.len() > SEARCH_LIMIT {
            text.truncate(SEARCH_LIMIT);
            text.push(format!(
                "(more than {SEARCH_LIMIT} matches: narrow the pattern or the path)"
            ));
        }
        if text.is_empty() {
            return Ok(Answer::ok("(no match)"));
        }
        Ok(Answer::ok(text.join("\n")))
    }

    async fn run_command(&self, command: &str) -> Answer {
        let mut spec = self.commands.clone();
        spec.program = "sh".into();
        spec.args = vec!["-c".into(), command.into()];
        spec.cwd = self.root.clone();
        spec.stdin = None;
        spec.log_path = None;
        let limit = spec.timeout;
        let before = self.changed_paths().await;
        let mut output = String::new();
        let on_line = each_line(|line: crate::agent::process::OutputLine<'_>| {
            if output.len() < ANSWER_LIMIT {
                output.push_str(line.text());
                output.push('\n');
            }
            Control::Continue
        });
        match run_process(spec, on_line, self.stop.clone()).await {
            Ok(outcome) => {
                let failed = outcome.end != ProcessEnd::Exited(0);
                let how = match outcome.end {
                    ProcessEnd::Exited(code) => format!("exit status {code}"),
                    ProcessEnd::Signaled(signal) => format!("killed by signal {signal}"),
                    ProcessEnd::TimedOut => format!(
                        "stopped after {} (the command time limit)",
                        flow_dsl::format_duration(limit.unwrap_or_default())
                    ),
                    ProcessEnd::Hung => "stopped: it printed nothing for too long".into(),
                    ProcessEnd::Cancelled => "stopped: the run is stopping".into(),
                    ProcessEnd::Stopped(reason) => format!("stopped: {reason}"),
                };
                let answer = format!("{how}\n{output}");
                let undone = self.undo_out_of_scope(before).await;
                match undone {
                    Some(refusal) => Answer::error(format!("{answer}{refusal}")),
                    None if failed => Answer::error(answer),
                    None => Answer::ok(answer),
                }
            }
            Err(e) => Answer::error(format!("cannot run the command: {e}")),
        }
    }

    /// The paths `git status` lists as changed, new or deleted in the worktree (what flow
    /// would commit); `None` where git cannot say (a scratch folder).
    async fn changed_paths(&self) -> Option<BTreeSet<String>> {
        let output = self
            .git(&[
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--no-renames",
            ])
            .await?;
        Some(
            output
                .split(|b| *b == 0)
                .filter(|entry| entry.len() > 3)
                .map(|entry| String::from_utf8_lossy(&entry[3..]).into_owned())
                .collect(),
        )
    }

    /// Undoes what a command changed outside the scope (paths that `before` did not list as
    /// changed): tracked files come back as the branch has them, new ones are removed. Says
    /// what was undone, for the model.
    async fn undo_out_of_scope(&self, before: Option<BTreeSet<String>>) -> Option<String> {
        let before = before?;
        let after = self.changed_paths().await?;
        let breaches: Vec<_> = after
            .difference(&before)
            .filter_map(|path| self.scope.breach(path))
            .collect();
        if breaches.is_empty() {
            return None;
        }
        for breach in &breaches {
            let literal = format!(":(literal){}", breach.path);
            let tracked = self
                .git(&["cat-file", "-e", &format!("HEAD:{}", breach.path)])
                .await
                .is_some();
            if tracked {
                self.git(&["checkout", "-q", "HEAD", "--", &literal]).await;
            } else {
                self.git(&["rm", "-q", "--cached", "--ignore-unmatch", "--", &literal])
                    .await;
                let _ = std::fs::remove_file(self.root.join(&breach.path));
            }
        }
        let list: Vec<String> = breaches.iter().map(ToString::to_string).collect();
        Some(format!(
            "\nrefused: the command changed files outside this workstream's scope ({}); those changes were undone. {}",
            list.join("; "),
            self.may_write()
        ))
    }

    /// Runs git in the worktree with the commands' environment; its output when it succeeded.
    async fn git(&self, args: &[&str]) -> Option<Vec<u8>> {
        let output = tokio::process::Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .env_clear()
            .envs(&self.commands.env)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .ok()?;
        output.status.success().then_some(output.stdout)
    }
}

/// The files under `from` that .gitignore does not ignore, relative to `root`, sorted, at
/// most `limit`.
fn walk(root: &Path, from: &Path, limit: usize) -> Vec<(String, PathBuf)> {
    let mut paths = vec![];
    let walker = ignore::WalkBuilder::new(from)
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        paths.push((relative.to_string_lossy().into_owned(), entry.path().to_path_buf()));
        if paths.len() >= limit {
            break;
        }
    }
    paths
}

/// The first `limit` characters of `text`, with a note when cut.
fn clip(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}\n(cut at {limit} characters)", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_dsl::ScopeGlob;

    fn tools(dir: &Path, owns: &[&str], forbid: &[&str]) -> Tools {
        let globs = |texts: &[&str]| texts.iter().map(|t| ScopeGlob::new(*t)).collect();
        let scope = Scope::new(globs(owns), globs(forbid)).expect("valid globs");
        let (_tx, stop) = watch::channel(false);
        Tools::new(dir, scope, ProcessSpec::new("sh", vec![], dir), vec![], stop).expect("a worktree")
    }

    #[tokio::test]
    async fn writes_are_confined_to_the_worktree_and_the_scope() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let outside = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir_all(dir.path().join("src")).expect("a folder");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("src/out")).expect("a link");
        std::os::unix::fs::symlink(dir.path().join("docs"), dir.path().join("src/docs")).expect("a link");
        std::fs::create_dir_all(dir.path().join("docs")).expect("a folder");
        let t = tools(dir.path(), &["src/**"], &["src/secret/**"]);
        let write = |path: &str| json!({"path": path, "content": "x"});
        assert!(!t.call("write_file", &write("src/a.rs")).await.is_error);
        for path in [
            "/etc/passwd",
            "../x",
            "src/../../x",
            ".git/hooks/pre-commit",
            "docs/a.md",
            "src/secret/k",
            "src/out/x",
            "src/docs/a.md",
        ] {
            let answer = t.call("write_file", &write(path)).await;
            assert!(answer.is_error, "{path} was written: {}", answer.content);
        }
        let refused = t.call("write_file", &write("docs/a.md")).await;
        assert!(refused.content.contains("It may write: src/**"), "{}", refused.content);
        assert!(!dir.path().join("docs/a.md").exists());
        assert!(std::fs::read_dir(outside.path()).expect("a folder").next().is_none());
    }

    #[tokio::test]
    async fn what_a_command_changes_outside_the_scope_is_undone() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .current_dir(root)
                .output()
                .expect("git runs");
            assert!(status.status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(root.join("src")).expect("a folder");
        for (path, text) in [("README.md", "readme"), ("other.txt", "other"), ("src/a.rs", "a")] {
            std::fs::write(root.join(path), text).expect("a file");
        }
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "start"]);
        let mut t = tools(root, &["src/**"], &[]);
        t.commands
            .env
            .insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        let command = "echo x > README.md; echo y > new.txt; rm other.txt; echo z > src/b.rs; git add -A";
        let answer = t.call("run_command", &json!({"command": command})).await;
        assert!(answer.is_error, "{}", answer.content);
        assert!(
            answer.content.contains("those changes were undone"),
            "{}",
            answer.content
        );
        assert!(
            answer.content.contains("`README.md` is outside `owns` (src/**)"),
            "{}",
            answer.content
        );
        assert_eq!(
            std::fs::read_to_string(root.join("README.md")).expect("a file"),
            "readme"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("other.txt")).expect("a file"),
            "other"
        );
        assert!(!root.join("new.txt").exists());
        assert_eq!(std::fs::read_to_string(root.join("src/b.rs")).expect("a file"), "z\n");
        // A command that keeps to the scope is answered as it ran.
        let answer = t.call("run_command", &json!({"command": "echo w > src/c.rs"})).await;
        assert!(!answer.is_error, "{}", answer.content);
    }

    #[tokio::test]
    async fn a_huge_file_is_read_only_as_far_as_the_answer_holds() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("big.txt"), "é".repeat(5_000_000)).expect("a file");
        let t = tools(dir.path(), &[], &[]);
        let answer = t.call("read_file", &json!({"path": "big.txt"})).await;
        assert!(!answer.is_error);
        assert!(
            answer.content.ends_with("(cut at 60000 characters)"),
            "{}",
            &answer.content[..40]
        );
        std::fs::write(dir.path().join("bin"), [0xff, 0xfe, 0x00]).expect("a file");
        assert!(t.call("read_file", &json!({"path": "bin"})).await.is_error);
    }

    #[tokio::test]
    async fn edit_replaces_exactly_one_occurrence() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("a.txt"), "one two two").expect("a file");
        let t = tools(dir.path(), &[], &[]);
        let edit = |old: &str| json!({"path": "a.txt", "old": old, "new": "three"});
        assert!(t.call("edit_file", &edit("two")).await.is_error);
        assert!(t.call("edit_file", &edit("four")).await.is_error);
        assert!(!t.call("edit_file", &edit("one")).await.is_error);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).expect("a file"),
            "three two two"
        );
        let found = t.call("search", &json!({"pattern": "thr+ee"})).await;
        assert_eq!(found.content, "a.txt:1: three two two");
        let listed = t.call("list_files", &json!({})).await;
        assert_eq!(listed.content, "a.txt");
    }
}
