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

/// Formats a duration the way workflow files write it: `1h30m`, `45s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
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
        assert_eq!(format_duration(Duration::from_millis(5_400_000)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1s500ms");
    }

    #[test]
    fn rejects_bad_text() {
        for text in ["", "45", "m", "1x", "1h 30m", "-1s", "99999999999999999999999d"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}
