//! Time as flow records it: instants are [`jiff::Timestamp`]s, written as RFC 3339 text in
//! every JSON output (`state.json`, `events.jsonl`, `--json`), and durations are shown by one
//! formatter, [`flow_dsl::format_duration`].
//!
//! Only the edges read the clock ([`now`]); the run's core gets the time as an input.

use std::time::Duration;

pub use jiff::Timestamp;

/// The current time, read from the system clock.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// The time from `from` to `to`, zero when `to` is earlier.
pub fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// Reading timestamps recorded by earlier versions of flow too, which wrote seconds since the
/// Unix epoch as a number: `#[serde(with = "crate::time::compat")]`.
pub mod compat {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Recorded {
        Text(Timestamp),
        Seconds(f64),
    }

    impl Recorded {
        fn timestamp<E: serde::de::Error>(self) -> Result<Timestamp, E> {
            match self {
                Recorded::Text(t) => Ok(t),
                Recorded::Seconds(s) => Timestamp::from_millisecond((s * 1000.0).round() as i64).map_err(E::custom),
            }
        }
    }

    /// Writes RFC 3339.
    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        at.serialize(serializer)
    }

    /// Reads RFC 3339 or seconds since the epoch.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        Recorded::deserialize(deserializer)?.timestamp()
    }

    /// The same for optional timestamps: `#[serde(default, with = "crate::time::compat::option")]`.
    pub mod option {
        use super::*;

        /// Writes RFC 3339 or null.
        pub fn serialize<S: Serializer>(at: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
            at.serialize(serializer)
        }

        /// Reads RFC 3339, seconds since the epoch, or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
            Option::<Recorded>::deserialize(deserializer)?
                .map(Recorded::timestamp)
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Record {
        #[serde(with = "compat")]
        at: Timestamp,
        #[serde(default, with = "compat::option")]
        end: Option<Timestamp>,
    }

    #[test]
    fn timestamps_are_written_as_rfc3339_and_read_from_seconds_too() {
        let old: Record = serde_json::from_str(r#"{"at": 1700000000.25, "end": null}"#).unwrap();
        assert_eq!(old.at.as_millisecond(), 1_700_000_000_250);
        let text = serde_json::to_string(&old).unwrap();
        assert_eq!(text, r#"{"at":"2023-11-14T22:13:20.25Z","end":null}"#);
        let again: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(again, old);
        let missing: Record = serde_json::from_str(r#"{"at": "2023-11-14T22:13:20Z"}"#).unwrap();
        assert_eq!(missing.end, None);
    }

    #[test]
    fn elapsed_never_goes_negative() {
        let a = Timestamp::from_second(100).unwrap();
        let b = Timestamp::from_second(103).unwrap();
        assert_eq!(elapsed(a, b), Duration::from_secs(3));
        assert_eq!(elapsed(b, a), Duration::ZERO);
    }
}
