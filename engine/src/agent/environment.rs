//! The clean environment an agent runs with, and the secrets that must stay out of logs.
//!
//! An agent never inherits flow's whole environment. [`agent_environment`] starts from
//! nothing and lets through the variables in [`ALLOWED`] (plus every `LC_*` locale variable),
//! the extra names a workflow asks for, and the values it sets explicitly. The markers in
//! [`BLOCKED`] are removed last, whatever asked for them: they are what a parent agent session
//! leaves in its children's environment, and a child agent that sees them refuses to start or
//! behaves as a nested session.
//!
//! [`secret_values`] picks the values of that environment that look like credentials, and
//! a [`Redactor`] hides them in output before it reaches a log.

use std::borrow::Cow;
use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};

/// Variables passed through from flow's own environment to every agent when set.
///
/// Locale variables (`LC_ALL`, `LC_CTYPE`, any `LC_*`) pass too, though not listed here.
pub const ALLOWED: &[&str] = &[
    // Identity, shell and terminal.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "TMPDIR",
    "TZ",
    // Language.
    "LANG",
    "LANGUAGE",
    // Where tools keep their configuration, caches and state.
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    // Certificates, for agents behind a TLS-inspecting proxy.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    // Proxies: without them no agent reaches its API from a proxied network.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// Variables never passed, even when named or set, because a parent agent session leaves them
/// behind and they make a child agent refuse to start or change its behaviour.
///
/// - `CLAUDECODE`: Claude Code refuses to start ("cannot be launched inside another Claude Code
///   session") when it is set.
/// - `CLAUDE_CODE_ENTRYPOINT`, `CLAUDE_CODE_SSE_PORT`, `CLAUDE_CODE_SESSION*`,
///   `CLAUDE_CODE_CHILD_SESSION`, `CLAUDE_CODE_HOST_SESSION_ID`, `CLAUDE_CODE_EXECPATH`,
///   `CLAUDE_SESSION_ID`, `CLAUDE_PID`: the parent session's identity; a child that sees them
///   believes it is nested (one of them turns off transcript saving, another attaches to the
///   parent's IDE).
/// - `CODEX_SANDBOX`, `CODEX_SANDBOX_NETWORK_DISABLED`: set by Codex for the commands it runs;
///   a child Codex would believe it is already sandboxed.
/// - `GEMINI_CLI`: set by Gemini CLI for the commands it runs.
///
/// Other `CLAUDE_CODE_*` variables are not blocked: some are legitimate configuration that a
/// workflow may want to pass (`CLAUDE_CODE_OAUTH_TOKEN`, `CLAUDE_CODE_USE_BEDROCK`).
pub const BLOCKED: &[&str] = &[
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SSE_PORT",
    "CLAUDE_CODE_SESSION",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_SESSION_ACCESS_TOKEN",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_HOST_SESSION_ID",
    "CLAUDE_CODE_EXECPATH",
    "CLAUDE_SESSION_ID",
    "CLAUDE_PID",
    "CODEX_SANDBOX",
    "CODEX_SANDBOX_NETWORK_DISABLED",
    "GEMINI_CLI",
];

/// Words that mark a variable's value as a secret when they appear in its name (any case).
const SECRET_NAME_WORDS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"];

/// The shortest secret a [`Redactor`] replaces; shorter values would mangle ordinary output.
const MIN_SECRET_LEN: usize = 6;

/// Builds the complete environment of an agent from flow's own environment.
///
/// The result holds the `parent` variables named in [`ALLOWED`], the `LC_*` ones and those
/// named in `pass`, then every variable of `set` (which wins over a parent value), minus the
/// names in [`BLOCKED`]. Names that cannot be environment variables (empty, or containing `=`
/// or a NUL byte) and values containing a NUL byte are dropped. Last come the git settings
/// that keep a git started there from running planted hooks and commands
/// ([`crate::git::agent_git_env`]): agents, tests and `verify` all get this environment.
pub fn agent_environment(
    parent: impl IntoIterator<Item = (String, String)>,
    pass: &[String],
    set: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut environment: BTreeMap<String, String> = parent
        .into_iter()
        .filter(|(name, _)| {
            ALLOWED.contains(&name.as_str()) || name.starts_with("LC_") || pass.iter().any(|passed| passed == name)
        })
        .collect();
    environment.extend(set.iter().map(|(name, value)| (name.clone(), value.clone())));
    environment.retain(|name, value| !BLOCKED.contains(&name.as_str()) && is_valid_name(name) && !value.contains('\0'));
    let git = crate::git::agent_git_env(None, &environment);
    environment.extend(git);
    environment
}

/// Returns the values in `env` that must not appear in logs, longest first, for a [`Redactor`].
///
/// A value is secret when its variable's name contains `KEY`, `TOKEN`, `SECRET`, `PASSWORD`,
/// `PASSWD` or `CREDENTIAL` (in any case). The password of a URL with credentials
/// (`scheme://user:password@host`, as in `HTTPS_PROXY`) is secret whatever the name. Values
/// that came from an account but sit under another name are not recognisable here: the caller
/// adds them to the list.
pub fn secret_values(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut secrets: Vec<String> = secret_variables(env).into_iter().map(|(_, value)| value).collect();
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
}

/// Returns the variables of `env` whose values are secret by [`secret_values`]'s rules, each
/// with its value (a password in a URL under the URL's variable), the empty ones left out.
pub fn secret_variables(env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    for (name, value) in env {
        let upper = name.to_ascii_uppercase();
        if SECRET_NAME_WORDS.iter().any(|word| upper.contains(word)) && !is_config_name(&upper) {
            secrets.push((name.clone(), value.clone()));
        }
        if let Some(password) = url_password(value) {
            secrets.push((name.clone(), password.to_owned()));
        }
    }
    secrets.retain(|(_, secret)| !secret.trim().is_empty());
    secrets
}

/// Returns the variables `names` declares secret (`secret "DB_PASS"`) with their values, taken
/// from `env` (what the process gets) or else `parent` (flow's own environment: a value the
/// process never got can still reach it through a file), the empty ones left out.
pub fn declared_secrets(
    names: &[String],
    env: &BTreeMap<String, String>,
    parent: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| {
            let value = env.get(name).or_else(|| parent.get(name))?;
            (!value.trim().is_empty()).then(|| (name.clone(), value.clone()))
        })
        .collect()
}

/// Returns the values of [`declared_secrets`], for redaction.
pub fn declared_secret_values(
    names: &[String],
    env: &BTreeMap<String, String>,
    parent: &BTreeMap<String, String>,
) -> Vec<String> {
    declared_secrets(names, env, parent)
        .into_iter()
        .map(|(_, value)| value)
        .collect()
}

/// Hides secrets in text: wherever a secret of at least six characters occurs, it becomes
/// `***`. Secrets that overlap, or one inside another, are hidden together, so no part of any
/// of them shows; secrets side by side each become `***`.
///
/// Made once per process, for all of its output: an Aho-Corasick automaton answers in one
/// pass over a line whether it holds any secret (nearly every line holds none). Searching
/// each secret in turn, per line, took half of flow's time on `bench/output.sh`'s many short
/// lines with 14 secrets (`perf`: `str::contains` 28%, counting each secret's characters 22%).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    finder: Option<Finder>,
}

#[derive(Debug, Clone)]
enum Finder {
    /// `any` answers whether a text holds a secret at all (leftmost-first matching, which
    /// can use a vectorised search); `all` then finds every place, overlapping ones too.
    Automaton { any: AhoCorasick, all: AhoCorasick },
    /// The secrets themselves, searched one by one: only if the automaton cannot be built
    /// (secrets of hundreds of megabytes).
    Each(Vec<String>),
}

impl Redactor {
    /// Makes a redactor of `secrets`; those shorter than six characters are left out (they
    /// would hide ordinary words).
    pub fn new(secrets: &[String]) -> Self {
        let secrets: Vec<&String> = secrets
            .iter()
            .filter(|secret| secret.chars().count() >= MIN_SECRET_LEN)
            .collect();
        if secrets.is_empty() {
            return Self::default();
        }
        let any = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&secrets);
        let all = AhoCorasick::builder().match_kind(MatchKind::Standard).build(&secrets);
        let finder = match (any, all) {
            (Ok(any), Ok(all)) => Finder::Automaton { any, all },
            _ => Finder::Each(secrets.into_iter().cloned().collect()),
        };
        Self { finder: Some(finder) }
    }

    /// Tells whether `text` holds any of the secrets.
    pub fn holds_secret(&self, text: &str) -> bool {
        match &self.finder {
            None => false,
            Some(Finder::Automaton { any, .. }) => any.is_match(text),
            Some(Finder::Each(secrets)) => secrets.iter().any(|secret| text.contains(secret.as_str())),
        }
    }

    /// Returns `text` with its secrets replaced by `***`; borrowed unchanged when it holds
    /// none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.holds_secret(text) {
            return Cow::Borrowed(text);
        }
        let mut found: Vec<(usize, usize)> = match &self.finder {
            None => return Cow::Borrowed(text),
            Some(Finder::Automaton { all, .. }) => all
                .find_overlapping_iter(text)
                .map(|found| (found.start(), found.end()))
                .collect(),
            Some(Finder::Each(secrets)) => {
                let mut found = vec![];
                for secret in secrets {
                    // Overlapping places too, as the automaton finds them.
                    let mut from = 0;
                    while let Some(at) = text[from..].find(secret.as_str()) {
                        let start = from + at;
                        found.push((start, start + secret.len()));
                        from = text.ceil_char_boundary(start + 1);
                    }
                }
                found
            }
        };
        found.sort_unstable();
        let mut redacted = String::with_capacity(text.len());
        let mut shown = 0;
        let mut places = found.into_iter().peekable();
        while let Some((start, mut end)) = places.next() {
            // Places that overlap this one are hidden with it.
            while let Some(&(next_start, next_end)) = places.peek()
                && next_start < end
            {
                end = end.max(next_end);
                places.next();
            }
            redacted.push_str(&text[shown..start]);
            redacted.push_str("***");
            shown = end;
        }
        redacted.push_str(&text[shown..]);
        Cow::Owned(redacted)
    }
}

/// Tells whether `upper`, a variable's name in capitals, is `GIT_CONFIG_KEY_<n>`: its value
/// names a git setting (`core.hooksPath`, which flow gives every agent), never a secret, and
/// hiding it would turn every mention of the setting in the output into `***`.
fn is_config_name(upper: &str) -> bool {
    upper
        .strip_prefix("GIT_CONFIG_KEY_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Tells whether `name` can be the name of an environment variable.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

/// Returns the password of a URL written `scheme://user:password@host...`, if any.
fn url_password(value: &str) -> Option<&str> {
    let (_, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (user_info, _) = authority.rsplit_once('@')?;
    let (_, password) = user_info.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_found() {
        assert_eq!(url_password("http://user:hunter22@proxy:3128"), Some("hunter22"));
        assert_eq!(url_password("http://proxy:3128"), None);
        assert_eq!(url_password("http://user@proxy"), None);
        assert_eq!(url_password("plain value"), None);
        assert_eq!(url_password("http://proxy/a:b@c"), None);
    }

    #[test]
    fn redact_hides_the_longest_secret_whole() {
        let secrets = vec!["abcdef".to_owned(), "abcdefghij".to_owned(), "xyz".to_owned()];
        let redactor = Redactor::new(&secrets);
        assert_eq!(redactor.redact("k=abcdefghij xyz"), "k=*** xyz");
        assert_eq!(redactor.redact("k=abcdef!"), "k=***!");
        assert!(matches!(redactor.redact("nothing"), Cow::Borrowed("nothing")));
    }

    #[test]
    fn overlapping_secrets_are_hidden_together_and_neighbours_each() {
        let secrets = vec!["aaaaaabbb".to_owned(), "bbbcccccc".to_owned(), "zzzzzz".to_owned()];
        let redactor = Redactor::new(&secrets);
        // Neither secret shows any part of itself, whichever is longer.
        assert_eq!(redactor.redact("<aaaaaabbbcccccc>"), "<***>");
        assert_eq!(redactor.redact("zzzzzzzzzzzz zzzzzz"), "*** ***");
        assert_eq!(redactor.redact("zzzzzzaaaaaabbb."), "******.");
        assert_eq!(redactor.redact("é zzzzzz é"), "é *** é");
        let each = Redactor {
            finder: Some(Finder::Each(secrets.clone())),
        };
        for text in ["<aaaaaabbbcccccc>", "zzzzzzzzzzzz zzzzzz", "zzzzzzaaaaaabbb.", "none"] {
            assert_eq!(each.redact(text), redactor.redact(text), "{text}");
        }
    }

    #[test]
    fn secret_values_by_name() {
        let env: BTreeMap<String, String> = [
            ("ANTHROPIC_API_KEY", "sk-ant-123456"),
            ("github_token", "ghp_abcdef"),
            ("HOME", "/home/someone"),
            ("DB_PASSWORD", "  "),
            ("HTTPS_PROXY", "http://me:proxypass@proxy:8080"),
            // A git setting's name, as flow gives every agent: not a secret.
            ("GIT_CONFIG_KEY_0", "core.hooksPath"),
            ("GIT_CONFIG_KEY_X", "not-a-setting-number"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(
            secret_values(&env),
            ["not-a-setting-number", "sk-ant-123456", "ghp_abcdef", "proxypass"]
        );
    }
}
