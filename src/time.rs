//! Wall-clock milliseconds, RFC 3339 rendering and our duration syntax.

use crate::error::{Code, Error, Result};
use jiff::Timestamp;
use std::time::Duration;

/// Milliseconds since the Unix epoch; every stored time uses this unit.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// `2026-11-25T15:09:20.123Z`: RFC 3339, UTC, milliseconds.
pub fn rfc3339(ms: i64) -> String {
    // Beyond jiff's ±9999 years no stored time can come from a clock: clamp, don't fail.
    let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    format!("{ts:.3}")
}

/// Parses `90`, `90s`, `15m`, `2h`, `1h30m` (and `500ms`, `1d` as conveniences).
/// A bare number is seconds. Zero is allowed; callers that need a positive value check.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        Error::new(Code::InvalidInput, format!("invalid duration {text:?}"))
            .hint("use a number of seconds or units like 90s, 15m, 2h, 1h30m")
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|_| bad())?;
        return secs
            .checked_mul(1000)
            .map(Duration::from_millis)
            .ok_or_else(bad);
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(bad)?;
    }
    // Keep far below i64 milliseconds so deadline arithmetic never overflows.
    if total_ms > 100 * 365 * 86_400_000 {
        return Err(bad());
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339_with_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_619_360_123), "2026-11-25T15:09:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert!(rfc3339(i64::MAX).starts_with("9999-12-"));
        assert!(rfc3339(i64::MIN).starts_with("-009999-01-"));
    }

    #[test]
    fn parses_durations() {
        let ms = |s| parse_duration(s).unwrap().as_millis();
        assert_eq!(ms("90"), 90_000);
        assert_eq!(ms("90s"), 90_000);
        assert_eq!(ms("15m"), 900_000);
        assert_eq!(ms("2h"), 7_200_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("250ms"), 250);
        for bad in ["", "m", "1x", "-5", "1.5s", "h1", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
