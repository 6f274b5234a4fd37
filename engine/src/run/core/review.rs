//! Reading a reviewer's answer.
//!
//! A reviewer ends with a JSON object, anywhere in its final message (the last one counts):
//!
//! ```text
//! {"verdict": "approve", "comments": "Reads well; the parser handles empty input."}
//! {"verdict": "changes-requested", "comments": "The test does not cover the error path."}
//! ```
//!
//! `verdict` must be exactly `approve` or `changes-requested`; `comments` is text (required
//! when changes are requested). An answer that does not read so counts as changes requested,
//! with the reason, so nothing merges on an answer nobody could read.

use serde_json::Value;

use crate::run::state::Verdict;

/// The verdict and comments of a reviewer's final message.
pub fn read_verdict(message: Option<&str>) -> (Verdict, String) {
    let Some(message) = message.filter(|m| !m.trim().is_empty()) else {
        return unreadable("the reviewer's final message is empty");
    };
    let Some(object) = last_json_object(message) else {
        return unreadable("its final message holds no JSON object");
    };
    let comments = object.get("comments").and_then(Value::as_str).map(str::to_string);
    match object.get("verdict").and_then(Value::as_str) {
        Some("approve") => (Verdict::Approve, comments.unwrap_or_default()),
        Some("changes-requested") => match comments.filter(|c| !c.trim().is_empty()) {
            Some(comments) => (Verdict::ChangesRequested, comments),
            None => unreadable("it requested changes without saying which (no \"comments\")"),
        },
        Some(other) => unreadable(&format!(
            "its verdict `{other}` is neither `approve` nor `changes-requested`"
        )),
        None => unreadable("its JSON object has no \"verdict\""),
    }
}

fn unreadable(why: &str) -> (Verdict, String) {
    (
        Verdict::ChangesRequested,
        format!(
            "the review could not be read: {why}; a reviewer ends with \
             {{\"verdict\": \"approve\" | \"changes-requested\", \"comments\": \"...\"}}"
        ),
    )
}

/// The last `{...}` in the text that parses as a JSON object with a `verdict`, else the last
/// that parses at all.
fn last_json_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    let mut found: Option<serde_json::Map<String, Value>> = None;
    let starts: Vec<usize> = text.match_indices('{').map(|(i, _)| i).collect();
    for &start in starts.iter().rev() {
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        if let Some(Ok(Value::Object(object))) = stream.next() {
            if object.contains_key("verdict") {
                return Some(object);
            }
            found.get_or_insert(object);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_strictly() {
        let cases: &[(&str, Verdict, &str)] = &[
            (r#"{"verdict": "approve"}"#, Verdict::Approve, ""),
            (
                "Looks good.\n```json\n{\"verdict\": \"approve\", \"comments\": \"fine\"}\n```",
                Verdict::Approve,
                "fine",
            ),
            (
                r#"{"verdict":"changes-requested","comments":"add a test"}"#,
                Verdict::ChangesRequested,
                "add a test",
            ),
            (
                r#"first {"verdict": "approve"} then {"verdict":"changes-requested","comments":"no"}"#,
                Verdict::ChangesRequested,
                "no",
            ),
            ("LGTM", Verdict::ChangesRequested, "holds no JSON object"),
            (r#"{"verdict": "yes"}"#, Verdict::ChangesRequested, "neither"),
            (
                r#"{"verdict": "changes-requested"}"#,
                Verdict::ChangesRequested,
                "without saying which",
            ),
            (r#"{"approved": true}"#, Verdict::ChangesRequested, "no \"verdict\""),
            ("", Verdict::ChangesRequested, "empty"),
        ];
        for (message, verdict, comments) in cases {
            let (v, c) = read_verdict(Some(message));
            assert_eq!(v, *verdict, "{message}");
            assert!(c.contains(comments), "{message}: {c}");
        }
        assert_eq!(read_verdict(None).0, Verdict::ChangesRequested);
    }
}
