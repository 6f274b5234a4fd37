//! Sending one request to a model API and reading its reply, streamed or whole: the key in a
//! header (never anywhere else), retries of 429, 529 and 5xx honouring `retry-after` with
//! exponential backoff, and a gate per account that every workstream on the account waits
//! at while the API has asked it to slow down.
//!
//! Waits use tokio's clock, so tests run them with a paused clock. Server-sent events are
//! parsed by the `eventsource-stream` crate.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use flow_dsl::ApiKind;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use super::conversation::Reply;
use super::{anthropic, openai};
use crate::agent::output::{AgentError, ErrorClass};

/// How many times a request is sent again after a retryable failure.
pub const MAX_RETRIES: u32 = 8;

/// The first wait before a retry the API did not time; it doubles each retry.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait before a retry, whatever the API asks.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The most bytes of an error body quoted in a message.
const ERROR_BODY_LIMIT: usize = 2_000;

/// One API endpoint with its key: what every request of an agent's attempt goes to.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub api: ApiKind,
    /// The full URL requests are posted to.
    pub url: String,
    key: Option<String>,
    gate: Arc<RateGate>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every debug print.
        f.debug_struct("Client")
            .field("api", &self.api)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A failure to get a reply, with the kind of failure for the run's record.
pub type SendError = AgentError;

impl Client {
    /// A client for `api` at `base_url` (the provider's own when `None`), sending `key`,
    /// waiting at the gate of `account` (shared by every client of the same account).
    pub fn new(api: ApiKind, base_url: Option<&str>, key: Option<String>, account: &str) -> Result<Client, String> {
        // No timeout of its own: the workstream's `timeout` bounds the whole attempt.
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Client {
            http,
            api,
            url: endpoint(api, base_url),
            key: key.filter(|k| !k.is_empty()),
            gate: RateGate::of(account),
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        match self.api {
            ApiKind::Anthropic => {
                headers.insert("anthropic-version", HeaderValue::from_static(anthropic::VERSION));
                if let Some(value) = self.key.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
                    headers.insert("x-api-key", sensitive(value));
                }
            }
            ApiKind::Openai => {
                if let Some(value) = self
                    .key
                    .as_deref()
                    .and_then(|k| HeaderValue::from_str(&format!("Bearer {k}")).ok())
                {
                    headers.insert("authorization", sensitive(value));
                }
            }
        }
        headers
    }

    /// Sends `body` until a reply comes, a failure that a retry cannot mend, or the retries
    /// are spent; `on_retry` hears of each wait.
    pub async fn send(&self, body: &Value, stream: bool, mut on_retry: impl FnMut(&str)) -> Result<Reply, SendError> {
        let mut retry = 0;
        loop {
            self.gate.wait().await;
            let failure = match self.send_once(body, stream).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            match failure {
                Failure::Retryable { message, after } if retry < MAX_RETRIES => {
                    let wait = after
                        .unwrap_or(FIRST_BACKOFF * 2u32.saturating_pow(retry))
                        .min(MAX_BACKOFF);
                    if after.is_some() {
                        // The API named a time: every request on the account waits for it.
                        self.gate.hold(wait);
                    }
                    retry += 1;
                    on_retry(&format!(
                        "{message}; retry {retry} of {MAX_RETRIES} in {}",
                        flow_dsl::format_duration(wait)
                    ));
                    tokio::time::sleep(wait).await;
                }
                Failure::Retryable { message, .. } => {
                    return Err(AgentError::new(
                        ErrorClass::RateLimit,
                        format!("{message} (gave up after {MAX_RETRIES} retries)"),
                    ));
                }
                Failure::Final(error) => return Err(error),
            }
        }
    }

    async fn send_once(&self, body: &Value, stream: bool) -> Result<Reply, Failure> {
        let response = self
            .http
            .post(&self.url)
            .headers(self.headers())
            .json(body)
            .send()
            .await
            .map_err(|e| Failure::Retryable {
                message: format!("cannot reach {}: {}", self.url, error_chain(&e)),
                after: None,
            })?;
        let status = response.status();
        if !status.is_success() {
            let after = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            let stated = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| self.error_of(&v))
                .unwrap_or_else(|| clip(&text).to_string());
            let message = format!("the API answered {status}: {stated}");
            return Err(match status.as_u16() {
                429 | 529 | 500..=599 => Failure::Retryable { message, after },
                401 | 403 => Failure::Final(AgentError::new(ErrorClass::Auth, message)),
                _ => Failure::Final(AgentError::new(ErrorClass::Api, message)),
            });
        }
        let malformed = |detail: String| {
            Failure::Final(AgentError::new(
                ErrorClass::Api,
                format!("the API's reply cannot be read: {detail}"),
            ))
        };
        // What the server sent decides how it is read: a server that ignores `stream` still
        // answers.
        let event_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map_or(stream, |t| t.contains("text/event-stream"));
        if !event_stream {
            let text = response.text().await.map_err(|e| Failure::Retryable {
                message: format!("the reply was cut: {}", error_chain(&e)),
                after: None,
            })?;
            let value: Value =
                serde_json::from_str(&text).map_err(|e| malformed(format!("not JSON ({e}): {}", clip(&text))))?;
            let parsed = match self.api {
                ApiKind::Anthropic => anthropic::parse(&value),
                ApiKind::Openai => openai::parse(&value),
            };
            return parsed.map_err(malformed);
        }
        let mut events = response.bytes_stream().eventsource();
        let mut anthropic_stream = anthropic::Stream::default();
        let mut openai_stream = openai::Stream::default();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| Failure::Retryable {
                message: format!("the stream was cut: {e}"),
                after: None,
            })?;
            let fed = match self.api {
                ApiKind::Anthropic => anthropic_stream.feed(&event.event, &event.data),
                ApiKind::Openai => openai_stream.feed(&event.data),
            };
            fed.map_err(|detail| {
                // An `overloaded_error` event mid-stream is the 529 of a stream.
                if detail.starts_with("overloaded_error") || detail.starts_with("rate_limit_error") {
                    Failure::Retryable {
                        message: format!("the API reported {detail}"),
                        after: None,
                    }
                } else {
                    malformed(detail)
                }
            })?;
        }
        let finished = match self.api {
            ApiKind::Anthropic => anthropic_stream.finish(),
            ApiKind::Openai => openai_stream.finish(),
        };
        finished.map_err(malformed)
    }

    fn error_of(&self, value: &Value) -> Option<String> {
        match self.api {
            ApiKind::Anthropic => anthropic::error_of(value),
            ApiKind::Openai => openai::error_of(value),
        }
    }
}

/// How one try failed.
enum Failure {
    /// Worth trying again: after `after` when the API said so.
    Retryable { message: String, after: Option<Duration> },
    /// Trying again cannot help.
    Final(AgentError),
}

/// The URL requests go to. A base URL that ends with its version (`.../v1`) gets the
/// API's path; one without gets `/v1` and the path, so both the SDKs' conventions work.
pub fn endpoint(api: ApiKind, base_url: Option<&str>) -> String {
    let (default, path) = match api {
        ApiKind::Anthropic => ("https://api.anthropic.com", anthropic::PATH),
        ApiKind::Openai => ("https://api.openai.com/v1", openai::PATH),
    };
    let base = base_url.unwrap_or(default).trim_end_matches('/');
    if base.ends_with(path) {
        return base.to_string();
    }
    let last = base.rsplit('/').next().unwrap_or("");
    let versioned = last.len() > 1 && last.starts_with('v') && last[1..].chars().all(|c| c.is_ascii_digit());
    if versioned {
        format!("{base}{path}")
    } else {
        format!("{base}/v1{path}")
    }
}

/// The wait an answer asks for: `retry-after-ms`, or `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let wait = read("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| read("retry-after"))?;
    (wait.is_finite() && wait >= 0.0).then(|| Duration::from_secs_f64(wait.min(MAX_BACKOFF.as_secs_f64())))
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

fn clip(text: &str) -> &str {
    match text.char_indices().nth(ERROR_BODY_LIMIT) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// An error with its causes, which reqwest keeps apart ("error sending request" alone says
/// nothing).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where the requests of one account wait while the API has asked it to slow down.
#[derive(Debug, Default)]
pub struct RateGate {
    open_at: Mutex<Option<Instant>>,
}

/// The gates by account, shared by every workstream of the run.
static GATES: LazyLock<Mutex<HashMap<String, Arc<RateGate>>>> = LazyLock::new(Default::default);

impl RateGate {
    /// The gate of `account`, made at first use.
    pub fn of(account: &str) -> Arc<RateGate> {
        let mut gates = GATES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(account.to_string()).or_default().clone()
    }

    /// Keeps the gate closed for `wait` from now (or longer, if it already was).
    pub fn hold(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut open_at = self.open_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if open_at.is_none_or(|at| at < until) {
            *open_at = Some(until);
        }
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        loop {
            let until = *self.open_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_both_conventions() {
        let cases = [
            (ApiKind::Anthropic, None, "https://api.anthropic.com/v1/messages"),
            (
                ApiKind::Anthropic,
                Some("http://127.0.0.1:9/"),
                "http://127.0.0.1:9/v1/messages",
            ),
            (ApiKind::Anthropic, Some("http://h/v1"), "http://h/v1/messages"),
            (ApiKind::Openai, None, "https://api.openai.com/v1/chat/completions"),
            (
                ApiKind::Openai,
                Some("http://h:11434/v1"),
                "http://h:11434/v1/chat/completions",
            ),
            (
                ApiKind::Openai,
                Some("http://h:8000"),
                "http://h:8000/v1/chat/completions",
            ),
            (
                ApiKind::Openai,
                Some("http://h/v1/chat/completions"),
                "http://h/v1/chat/completions",
            ),
        ];
        for (api, base, url) in cases {
            assert_eq!(endpoint(api, base), url, "{api} {base:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_accounts_gate_holds_every_client_of_the_account() {
        let (first, second) = (RateGate::of("gate test"), RateGate::of("gate test"));
        assert!(Arc::ptr_eq(&first, &second));
        let other = RateGate::of("another account");
        first.hold(Duration::from_secs(30));
        let started = Instant::now();
        other.wait().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "another account's gate is open");
        second.wait().await;
        assert!(started.elapsed() >= Duration::from_secs(30));
    }

    #[test]
    fn retry_after_in_seconds_or_milliseconds() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
