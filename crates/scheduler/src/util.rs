//! Small pure helpers: seeded mixing for tie-breaks, dates, agent versions.

/// SplitMix64's finaliser: a well-distributed 64-bit hash of `x`.
///
/// Tie-breaks and `random` use `mix(seed, instance, task)` rather than a stream RNG so the
/// choice does not depend on the order instances are visited in, only on the seed.
pub(crate) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str, len: usize) -> Option<i64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the date forms ECS accepts for `registeredAt` into seconds since the Unix epoch:
/// `2018-06-18`, `2018-06-18T22:28:28`, `2018-06-18T22:28:28Z`, `2018-06-18T22:28:28+00:00`
/// (also `-hh:mm` offsets and fractional seconds, which are dropped).
pub fn parse_date(s: &str) -> Option<i64> {
    let (date, rest) = match s.find(['T', 't']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = digits(parts.next()?, 4)?;
    let m = digits(parts.next()?, 2)?;
    let d = digits(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(time) = rest {
        let (clock, offset) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
            (t, 0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let off = &time[i + 1..];
            let (oh, om) = off.split_once(':')?;
            let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if time.as_bytes()[i] == b'+' { 1 } else { -1 };
            (&time[..i], sign * (oh * 3600 + om * 60))
        } else {
            (time, 0)
        };
        let clock = match clock.split_once('.') {
            Some((c, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => c,
            Some(_) => return None,
            None => clock,
        };
        let mut hms = clock.split(':');
        let h = digits(hms.next()?, 2)?;
        let mi = digits(hms.next()?, 2)?;
        let se = digits(hms.next()?, 2)?;
        if hms.next().is_some() || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se - offset;
    }
    Some(secs)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An agent version such as `1.85.0` (a leading `v` and a `-suffix` are ignored), compared
/// component by component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Version(pub [u32; 4]);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        let s = s.split(['-', '+']).next().unwrap_or(s);
        let mut out = [0u32; 4];
        for (n, part) in s.split('.').enumerate() {
            if n == 4 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            out[n] = part.parse().ok()?;
        }
        Some(Version(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_all_ecs_forms() {
        let day = parse_date("2018-06-18").unwrap();
        assert_eq!(day, 1_529_280_000);
        let t = day + 22 * 3600 + 28 * 60 + 28;
        assert_eq!(parse_date("2018-06-18T22:28:28"), Some(t));
        assert_eq!(parse_date("2018-06-18T22:28:28Z"), Some(t));
        assert_eq!(parse_date("2018-06-18T22:28:28+00:00"), Some(t));
        assert_eq!(parse_date("2018-06-18T23:28:28+01:00"), Some(t));
        assert_eq!(parse_date("2018-06-18T22:28:28.123Z"), Some(t));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        for bad in [
            "2018-13-01",
            "2018-02-30",
            "18-06-18",
            "2018-06-18T25:00:00",
            "2018-06-18T",
            "yesterday",
            "2018-06-18T22:28:28+0000",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("2020-02-29").is_some());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::parse("1.10.0").unwrap() > Version::parse("1.9.3").unwrap());
        assert_eq!(Version::parse("v1.2.3-beta"), Version::parse("1.2.3"));
        assert_eq!(Version::parse("1..2"), None);
        assert_eq!(Version::parse("one"), None);
    }

    #[test]
    fn mix_depends_on_every_input() {
        assert_ne!(mix(1, 2, 3), mix(1, 2, 4));
        assert_ne!(mix(1, 2, 3), mix(2, 2, 3));
        assert_eq!(mix(7, 8, 9), mix(7, 8, 9));
    }
}
