//! The pull request through GitHub's REST API, against a loopback stand-in of the endpoints
//! flow uses: open one, update the open one, and a refused token.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use flow_engine::land::github::{GitHub, GithubError, PullRequestSpec};
use serde_json::{Value, json};

/// What the stand-in saw and holds.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, String, Value)>,
    /// The open pull request of the branch, if any.
    open: Option<u64>,
}

type Shared = Arc<Mutex<Seen>>;

async fn answer(
    State(seen): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut seen = seen.lock().expect("not poisoned");
    seen.requests.push((method.to_string(), uri.to_string(), body));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer good-token") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        );
    }
    let path = uri.path();
    let pr = |n: u64| json!({"number": n, "html_url": format!("https://github.test/acme/shop/pull/{n}")});
    match (method.as_str(), path) {
        ("GET", "/repos/acme/shop/pulls") => {
            let list: Vec<Value> = seen.open.map(pr).into_iter().collect();
            (StatusCode::OK, axum::Json(Value::Array(list)))
        }
        ("POST", "/repos/acme/shop/pulls") => {
            seen.open = Some(7);
            (StatusCode::CREATED, axum::Json(pr(7)))
        }
        ("PATCH", p) if p.starts_with("/repos/acme/shop/pulls/") => {
            (StatusCode::OK, axum::Json(pr(seen.open.unwrap_or(0))))
        }
        ("POST", p) if p.starts_with("/repos/acme/shop/issues/") && p.ends_with("/labels") => {
            (StatusCode::OK, axum::Json(json!([])))
        }
        _ => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found"}))),
    }
}

/// Starts the stand-in on a loopback port; its address and what it sees.
async fn stand_in() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = Router::new().fallback(answer).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

fn spec() -> PullRequestSpec {
    PullRequestSpec {
        head: "integration/billing".into(),
        base: "main".into(),
        title: "Usage billing".into(),
        body: "the summary".into(),
        draft: true,
        labels: vec!["flow".into()],
    }
}

#[tokio::test]
async fn opens_a_pull_request_then_updates_it_the_next_time() {
    let (api, seen) = stand_in().await;
    let github = GitHub {
        api,
        token: "good-token".into(),
        repository: "acme/shop".into(),
    };
    let first = github.open_or_update(&spec()).await.expect("opened");
    assert_eq!((first.number, first.updated), (7, false));
    assert_eq!(first.url, "https://github.test/acme/shop/pull/7");
    let second = github.open_or_update(&spec()).await.expect("updated");
    assert_eq!((second.number, second.updated), (7, true));

    let requests = seen.lock().expect("not poisoned").requests.clone();
    let calls: Vec<(&str, &str)> = requests.iter().map(|(m, u, _)| (m.as_str(), u.as_str())).collect();
    assert_eq!(
        calls,
        [
            (
                "GET",
                "/repos/acme/shop/pulls?state=open&head=acme%3Aintegration%2Fbilling"
            ),
            ("POST", "/repos/acme/shop/pulls"),
            ("POST", "/repos/acme/shop/issues/7/labels"),
            (
                "GET",
                "/repos/acme/shop/pulls?state=open&head=acme%3Aintegration%2Fbilling"
            ),
            ("PATCH", "/repos/acme/shop/pulls/7"),
            ("POST", "/repos/acme/shop/issues/7/labels"),
        ]
    );
    assert_eq!(
        requests[1].2,
        json!({"title": "Usage billing", "head": "integration/billing", "base": "main", "body": "the summary", "draft": true})
    );
    assert_eq!(requests[2].2, json!({"labels": ["flow"]}));
    assert_eq!(
        requests[4].2,
        json!({"title": "Usage billing", "body": "the summary", "base": "main"})
    );
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_and_nothing_is_opened() {
    let (api, seen) = stand_in().await;
    let github = GitHub {
        api,
        token: "stale".into(),
        repository: "acme/shop".into(),
    };
    let error = github.open_or_update(&spec()).await.expect_err("refused");
    assert!(
        matches!(&error, GithubError::Auth { status: 401, message } if message == "Bad credentials"),
        "{error:?}"
    );
    let requests = seen.lock().expect("not poisoned").requests.clone();
    assert_eq!(requests.len(), 1, "stops at the first refusal: {requests:?}");
}
