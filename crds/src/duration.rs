//! Durations as written in profiles: `500ms`, `30s`, `5m`, `1h`, or sums like `1m30s` (Go/Kubernetes style).

use std::time::Duration;

/// Schema pattern for duration strings; the parser below accepts exactly this language.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// Parses `1m30s`-style durations. Returns a message saying what was expected on bad input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected =
        || format!("invalid duration {text:?}: expected a number and a unit (ms, s, m, h), e.g. 30s or 1m30s");
    if text.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?;
        if digits == 0 {
            return Err(expected());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let (unit, millis) = if rest.starts_with("ms") {
            ("ms", 1)
        } else if rest.starts_with('s') {
            ("s", 1_000)
        } else if rest.starts_with('m') {
            ("m", 60_000)
        } else if rest.starts_with('h') {
            ("h", 3_600_000)
        } else {
            return Err(expected());
        };
        rest = &rest[unit.len()..];
        let part = value.checked_mul(millis).ok_or_else(expected)?;
        total = total.checked_add(Duration::from_millis(part)).ok_or_else(expected)?;
    }
    Ok(total)
}

/// Schema for a duration string field.
pub fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "pattern": DURATION_PATTERN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn rejects_what_the_pattern_rejects() {
        for bad in ["", "10", "s", "1d", "1.5s", "-1s", "1m 30s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
