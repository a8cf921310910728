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
    match utc_millis(ms) {
        Some(text) => text.iter().map(|&b| char::from(b)).collect(),
        None => {
            // Beyond jiff's ±9999 years no stored time can come from a clock: clamp,
            // don't fail.
            let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            });
            format!("{ts:.3}")
        }
    }
}

/// [`rfc3339`] appended to `out`, for output written byte by byte.
pub fn write_rfc3339(out: &mut Vec<u8>, ms: i64) {
    match utc_millis(ms) {
        Some(text) => out.extend_from_slice(&text),
        None => out.extend_from_slice(rfc3339(ms).as_bytes()),
    }
}

/// The last millisecond jiff represents (9999-12-30T22:00:00Z): past it [`rfc3339`]
/// clamps, as it always did.
const LAST_FOUR_DIGIT_MS: i64 = 253_402_207_200_000;

/// [`rfc3339`] from 1970 to the end of jiff's range, by arithmetic: jiff's formatting machinery was
/// a tenth of `status --json` at 100k tasks (three times per task). `None` outside
/// that range, which jiff renders.
fn utc_millis(ms: i64) -> Option<[u8; 24]> {
    if !(0..=LAST_FOUR_DIGIT_MS).contains(&ms) {
        return None;
    }
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, value: i64, width: usize| {
        let mut value = value;
        for slot in text[at..at + width].iter_mut().rev() {
            // `value % 10` is a digit: 0 <= value here.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, ms_of_day / 3_600_000, 2);
    put(14, ms_of_day / 60_000 % 60, 2);
    put(17, ms_of_day / 1000 % 60, 2);
    put(20, ms_of_day % 1000, 3);
    Some(text)
}

/// Year, month and day of the proleptic Gregorian calendar for days since 1970-01-01
/// (not negative): Howard Hinnant's `civil_from_days`, counted in 400-year eras that
/// start on March 1st, so the leap day ends a year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    fn jiff_rfc3339(ms: i64) -> String {
        format!("{:.3}", Timestamp::from_millisecond(ms).unwrap())
    }

    #[test]
    fn the_arithmetic_renders_what_jiff_renders() {
        let edges = [
            0,
            1,
            999,
            86_399_999,
            86_400_000,
            951_782_400_000,
            951_868_799_999,
            4_107_542_399_999,
            LAST_FOUR_DIGIT_MS,
        ];
        for ms in edges {
            assert_eq!(rfc3339(ms), jiff_rfc3339(ms), "{ms}");
        }
        // Every day of 1970 to 2500 at a varying time of day, and a spread beyond.
        let mut ms = 0_i64;
        while ms < 16_725_225_600_000 {
            assert_eq!(rfc3339(ms), jiff_rfc3339(ms), "{ms}");
            ms += 86_400_000 + 7_919;
        }
        let mut state = 42_u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ms = (state >> 16) as i64 % (LAST_FOUR_DIGIT_MS + 1);
            let mut bytes = Vec::new();
            write_rfc3339(&mut bytes, ms);
            assert_eq!(bytes, jiff_rfc3339(ms).into_bytes(), "{ms}");
        }
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
