//! The pull request on GitHub, through its REST API: find the open pull request of a branch,
//! update it or open one, and label it.
//!
//! The API's address is `FLOW_GITHUB_API`, else `GITHUB_API_URL` (set by GitHub Actions, and
//! by GitHub Enterprise), else `https://api.github.com`; the token is `GITHUB_TOKEN`, else
//! `GH_TOKEN`, else what `gh auth token` prints.

use serde::Deserialize;
use serde_json::json;

/// Why the pull request could not be opened or updated.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GithubError {
    #[error("no GitHub token: GITHUB_TOKEN is not set and `gh auth token` gave none")]
    #[diagnostic(
        code("flow::land::no_token"),
        help("set GITHUB_TOKEN to a token that may write pull requests, or log in with `gh auth login`")
    )]
    NoToken,
    #[error("GitHub refused the token ({status}): {message}")]
    #[diagnostic(
        code("flow::land::auth"),
        help(
            "the token in GITHUB_TOKEN (or `gh auth token`) is wrong, expired, or may not write pull requests to this repository"
        )
    )]
    Auth { status: u16, message: String },
    #[error("GitHub answered {status} to {what}: {message}")]
    #[diagnostic(code("flow::land::api"))]
    Api { what: String, status: u16, message: String },
    #[error("cannot reach GitHub at {url}: {message}")]
    #[diagnostic(code("flow::land::network"), help("check the network, or FLOW_GITHUB_API"))]
    Network { url: String, message: String },
    #[error("cannot tell the GitHub repository from remote `{remote}` ({url})")]
    #[diagnostic(
        code("flow::land::repository"),
        help("push to a github.com remote, or set FLOW_GITHUB_REPOSITORY=OWNER/NAME")
    )]
    Repository { remote: String, url: String },
}

/// Where the pull request goes and who asks.
#[derive(Debug, Clone)]
pub struct GitHub {
    pub api: String,
    pub token: String,
    /// `OWNER/NAME`.
    pub repository: String,
}

/// What to open or update.
#[derive(Debug, Clone)]
pub struct PullRequestSpec {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub labels: Vec<String>,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub number: u64,
    pub url: String,
    /// True when it existed and was updated.
    pub updated: bool,
}

#[derive(Deserialize)]
struct PullRequest {
    number: u64,
    html_url: String,
}

/// The API address from the environment.
pub fn api_from_env() -> String {
    std::env::var("FLOW_GITHUB_API")
        .or_else(|_| std::env::var("GITHUB_API_URL"))
        .unwrap_or_else(|_| "https://api.github.com".to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The token from the environment, else from the GitHub CLI.
pub fn token_from_env() -> Result<String, GithubError> {
    for name in ["GITHUB_TOKEN", "GH_TOKEN"] {
        if let Ok(token) = std::env::var(name)
            && !token.trim().is_empty()
        {
            return Ok(token.trim().to_string());
        }
    }
    let output = std::process::Command::new("gh")
        .args(["auth", "token"])
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() && !out.stdout.trim_ascii().is_empty() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        _ => Err(GithubError::NoToken),
    }
}

/// `OWNER/NAME` of a GitHub remote URL (https, ssh or scp-like).
pub fn repository_of(url: &str) -> Option<String> {
    let url = url.trim();
    let path = url
        .strip_prefix("git@github.com:")
        .or_else(|| url.split_once("github.com/").map(|(_, p)| p))?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.split('/');
    let (owner, name) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !owner.is_empty() && !name.is_empty()).then(|| format!("{owner}/{name}"))
}

impl GitHub {
    fn client(&self) -> Result<reqwest::Client, GithubError> {
        reqwest::Client::builder()
            .user_agent(concat!("flow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GithubError::Network {
                url: self.api.clone(),
                message: e.to_string(),
            })
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
    ) -> Result<serde_json::Value, GithubError> {
        let url = format!("{}{path}", self.api);
        let mut request = client
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| GithubError::Network {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let message = || {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    let main = v["message"].as_str()?.to_string();
                    let details: Vec<String> = v["errors"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(|e| e["message"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some(if details.is_empty() {
                        main
                    } else {
                        format!("{main} ({})", details.join("; "))
                    })
                })
                .unwrap_or_else(|| text.chars().take(300).collect())
        };
        match status {
            200..=299 => Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)),
            401 | 403 => Err(GithubError::Auth {
                status,
                message: message(),
            }),
            _ => Err(GithubError::Api {
                what: what.to_string(),
                status,
                message: message(),
            }),
        }
    }

    /// Opens the pull request of `spec.head` into `spec.base`, or updates the open one (its
    /// title, body and base; GitHub's REST API cannot change the draft flag), then adds the
    /// labels.
    pub async fn open_or_update(&self, spec: &PullRequestSpec) -> Result<Landed, GithubError> {
        let client = self.client()?;
        let repo = &self.repository;
        let owner = repo.split('/').next().unwrap_or_default();
        let head_query = format!("{owner}:{}", spec.head);
        let list = self
            .call(
                &client,
                reqwest::Method::GET,
                &format!("/repos/{repo}/pulls?state=open&head={}", url_component(&head_query)),
                None,
                "the search for an open pull request",
            )
            .await?;
        let existing: Vec<PullRequest> = serde_json::from_value(list).unwrap_or_default();
        let (pr, updated) = match existing.into_iter().next() {
            Some(pr) => {
                let value = self
                    .call(
                        &client,
                        reqwest::Method::PATCH,
                        &format!("/repos/{repo}/pulls/{}", pr.number),
                        Some(json!({"title": spec.title, "body": spec.body, "base": spec.base})),
                        "the update of the pull request",
                    )
                    .await?;
                (serde_json::from_value(value).unwrap_or(pr), true)
            }
            None => {
                let value = self
                    .call(
                        &client,
                        reqwest::Method::POST,
                        &format!("/repos/{repo}/pulls"),
                        Some(json!({
                            "title": spec.title, "head": spec.head, "base": spec.base,
                            "body": spec.body, "draft": spec.draft,
                        })),
                        "the new pull request",
                    )
                    .await?;
                let pr: PullRequest = serde_json::from_value(value).map_err(|e| GithubError::Api {
                    what: "the new pull request".into(),
                    status: 200,
                    message: format!("unexpected answer: {e}"),
                })?;
                (pr, false)
            }
        };
        if !spec.labels.is_empty() {
            self.call(
                &client,
                reqwest::Method::POST,
                &format!("/repos/{repo}/issues/{}/labels", pr.number),
                Some(json!({"labels": spec.labels})),
                "the labels",
            )
            .await?;
        }
        Ok(Landed {
            number: pr.number,
            url: pr.html_url,
            updated,
        })
    }
}

/// Percent-encodes a query value (`owner:branch`, whose branch may hold `/`).
fn url_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_of_github_remotes_only() {
        for (url, want) in [
            ("https://github.com/acme/shop.git", Some("acme/shop")),
            ("https://github.com/acme/shop", Some("acme/shop")),
            ("git@github.com:acme/shop.git", Some("acme/shop")),
            ("ssh://git@github.com/acme/shop.git", Some("acme/shop")),
            ("/tmp/origin.git", None),
            ("https://github.com/acme", None),
        ] {
            assert_eq!(repository_of(url).as_deref(), want, "{url}");
        }
    }
}
