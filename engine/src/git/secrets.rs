//! Finds secret values in a workstream's own work before it can merge: in the files its commits
//! add or change and in their messages, as written or base64-encoded.
//!
//! A merge brings a branch's whole history along, so a secret committed once and removed later
//! would still be merged: the check reads every commit between the work's start and its head,
//! not only the final tree. What is reported names the variable and the place, never the value.

use git2::Sort;

use super::changes::tree_of;
use super::error::GitContext;
use super::{Git, GitError, Oid};

/// Values shorter than this are not looked for: they would be found by chance.
pub const SHORTEST_SECRET: usize = 6;

/// The forms a secret is looked for in: as written, and base64-encoded (standard and URL-safe
/// alphabets, the three ways its bytes can fall on base64's 3-byte groups; the encoded
/// characters that depend on its neighbours are left out).
fn forms(value: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut forms = vec![value.as_bytes().to_vec()];
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3usize {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(value.as_bytes());
            let encoded = engine.encode(&padded);
            // Drop the characters mixing in the padding (before) and the unknown next bytes
            // (after): 4 characters per 3 bytes, so ceil(shift*4/3) and 2 at the end.
            let skip = (shift * 4).div_ceil(3);
            let core = encoded.as_bytes().get(skip..encoded.len().saturating_sub(2));
            if let Some(core) = core.filter(|c| c.len() >= SHORTEST_SECRET) {
                forms.push(core.to_vec());
            }
        }
    }
    forms
}

impl Git {
    /// Lists where the commits from `base` (excluded) to `head` put one of `secrets` (a
    /// variable's name and its value): `"the value of NAME is in path"` or `"... in the
    /// message of commit abc1234"`; empty when none does.
    pub fn find_secrets(&self, base: Oid, head: Oid, secrets: &[(String, String)]) -> Result<Vec<String>, GitError> {
        let secrets: Vec<(&str, Vec<Vec<u8>>)> = secrets
            .iter()
            .filter(|(_, value)| value.len() >= SHORTEST_SECRET)
            .map(|(name, value)| (name.as_str(), forms(value)))
            .collect();
        if secrets.is_empty() || base == head {
            return Ok(Vec::new());
        }
        let repo = self.open()?;
        let mut found = Vec::new();
        let mut walk = repo.revwalk().context(|| "walk the history".to_owned())?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .context(|| "walk the history".to_owned())?;
        walk.push(head.raw())
            .context(|| format!("walk from {}", head.short()))?;
        walk.hide(base.raw())
            .context(|| format!("walk past {}", base.short()))?;
        for id in walk {
            let id = id.context(|| "walk the history".to_owned())?;
            let commit = repo.find_commit(id).context(|| format!("read commit {id}"))?;
            let short = &id.to_string()[..7];
            for (name, forms) in &secrets {
                if forms.iter().any(|f| contains(commit.message_raw_bytes(), f)) {
                    found.push(format!("the value of {name} is in the message of commit {short}"));
                }
            }
            let parent_tree = match commit.parent(0) {
                Ok(parent) => Some(parent.tree().context(|| format!("read the tree of {short}^"))?),
                Err(_) => None,
            };
            let tree = tree_of(&repo, Oid::from(id))?;
            let diff = repo
                .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)
                .context(|| format!("diff commit {short}"))?;
            for delta in diff.deltas() {
                let file = delta.new_file();
                if file.id().is_zero() {
                    continue;
                }
                let path = file.path().map(|p| p.display().to_string()).unwrap_or_default();
                let Ok(blob) = repo.find_blob(file.id()) else { continue };
                for (name, forms) in &secrets {
                    let line = format!("the value of {name} is in {path}");
                    if forms.iter().any(|f| contains(blob.content(), f)) && !found.contains(&line) {
                        found.push(line);
                    }
                }
            }
        }
        Ok(found)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_found_written_and_base64_encoded_at_any_offset() {
        use base64::Engine;
        let secret = "hunter2-db-pass";
        let forms = forms(secret);
        for prefix in ["", "x", "xy", "xyz"] {
            let text = format!("{prefix}{secret}!");
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE,
            ] {
                let encoded = engine.encode(text.as_bytes());
                assert!(
                    forms.iter().any(|f| contains(encoded.as_bytes(), f)),
                    "{prefix:?} {encoded}"
                );
            }
        }
        assert!(!forms.iter().any(|f| contains(b"nothing to see here", f)));
    }
}
