//! The two timestamp forms SigV4 uses: ISO-8601 basic (`20150830T123600Z`, in `X-Amz-Date`
//! and the string to sign) and the HTTP `Date` header form (RFC 7231 IMF-fixdate and its
//! obsolete variants), as seconds since the Unix epoch. No clock is read here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the epoch; `None` unless exactly that form
/// with a valid calendar date and time.
pub(crate) fn parse_basic(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')),
        )
    };
    let (y, mo, d) = (i64::from(num(0..4)?), num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + se))
}

/// Formats seconds since the epoch as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_basic(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of a `SystemTime` (negative before 1970).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Parses an HTTP `Date` header value into seconds since the epoch.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    httpdate::parse_http_date(s).ok().map(unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_round_trips() {
        for s in [
            "19700101T000000Z",
            "20150830T123600Z",
            "20000229T235959Z",
            "21000301T000000Z",
            "99991231T235959Z",
        ] {
            assert_eq!(format_basic(parse_basic(s).unwrap()), s);
        }
        assert_eq!(parse_basic("20150830T123600Z"), Some(1_440_938_160));
    }

    #[test]
    fn basic_rejects_garbage() {
        for s in [
            "",
            "20150830",
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20150230T123600Z",
            "20190229T000000Z",
            "20151330T123600Z",
            "20150830T243600Z",
            "20150830T126000Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "２0150830T12360Z",
        ] {
            assert_eq!(parse_basic(s), None, "{s}");
        }
    }

    #[test]
    fn http_date() {
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
