//! Object ids that print, parse and serialize as hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::GitError;

/// Identifies a git object (in flow: almost always a commit) by its hash.
///
/// It displays, parses and serializes as the full lowercase hex string, so run state
/// can store it as text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(git2::Oid);

impl Oid {
    /// Parses a full hex object id.
    pub fn from_hex(hex: &str) -> Result<Oid, GitError> {
        hex.parse()
    }

    /// Returns the first seven hex digits, for messages meant for people.
    pub fn short(&self) -> String {
        let mut text = self.0.to_string();
        text.truncate(7);
        text
    }

    /// Returns the git2 id this wraps.
    pub fn raw(self) -> git2::Oid {
        self.0
    }
}

impl From<git2::Oid> for Oid {
    fn from(oid: git2::Oid) -> Oid {
        Oid(oid)
    }
}

impl From<Oid> for git2::Oid {
    fn from(oid: Oid) -> git2::Oid {
        oid.0
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({})", self.0)
    }
}

impl FromStr for Oid {
    type Err = GitError;

    fn from_str(hex: &str) -> Result<Oid, GitError> {
        // git2 accepts prefixes and pads them with zeros; a stored id must be complete.
        let complete = hex.len() == 40 || hex.len() == 64;
        match git2::Oid::from_str(hex) {
            Ok(oid) if complete => Ok(Oid(oid)),
            _ => Err(GitError::UnknownRevision(hex.to_owned())),
        }
    }
}

impl Serialize for Oid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Oid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Oid, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a full git object id")))
    }
}
