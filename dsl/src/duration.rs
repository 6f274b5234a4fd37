//! Durations as written in workflow files: `"90s"`, `"45m"`, `"1h30m"`, `"500ms"`.

use std::time::Duration;

/// Parses a duration made of numbers with units (`ms`, `s`, `m`, `h`, `d`), e.g. `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the duration is empty".into());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis_per_unit: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{}` has no unit", &text[..text.len() - rest.len()])),
            other => return Err(format!("`{other}` is not a unit")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(millis_per_unit)
            .and_then(|n| total.checked_add(n))
            .filter(|n| *n <= u64::MAX as u128)
            .ok_or_else(|| "the duration is too long".to_string())?;
    }
    Ok(Duration::from_millis(total as u64))
}

/// Formats a duration for people, in the units workflow files use: `45m`, `1h30m`, `3m05s`,
/// `4.2s`, `2d3h`. Below a minute it keeps a tenth of a second; above, it drops what is
/// smaller than the next unit but one (a run of `1h02m` does not show its seconds). This
/// is flow's one duration formatter: timeouts in messages, elapsed times in tables.
pub fn format_duration(duration: Duration) -> String {
    let tenths = (duration.as_millis() + 50) / 100;
    if tenths < 600 {
        return if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let seconds = duration.as_secs_f64().round() as u64;
    let (days, hours, minutes, secs) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (days, hours) {
        (0, 0) if secs == 0 => format!("{minutes}m"),
        (0, 0) => format!("{minutes}m{secs:02}s"),
        (0, _) if minutes == 0 => format!("{hours}h"),
        (0, _) => format!("{hours}h{minutes:02}m"),
        (_, 0) => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, ms) in [
            ("90s", 90_000),
            ("45m", 2_700_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2d", 172_800_000),
            ("1m30s", 90_000),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        for (ms, text) in [
            (0, "0s"),
            (500, "0.5s"),
            (1_500, "1.5s"),
            (4_240, "4.2s"),
            (45_000, "45s"),
            (59_960, "1m"),
            (185_000, "3m05s"),
            (2_700_000, "45m"),
            (3_600_000, "1h"),
            (3_720_000, "1h02m"),
            (5_400_000, "1h30m"),
            (183_600_000, "2d3h"),
            (172_800_000, "2d"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(ms)), text, "{ms} ms");
        }
    }

    #[test]
    fn rejects_bad_text() {
        for text in ["", "45", "m", "1x", "1h 30m", "-1s", "99999999999999999999999d"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}
