//! Berth build, the pure parts (no I/O): the Dockerfile parser ([`dockerfile`]), Docker's
//! word processing and variable substitution ([`shell`]), `.dockerignore` matching
//! ([`ignore`]) and Go duration parsing for HEALTHCHECK options. The executor that runs the
//! instructions lives in the engine (`berth-engine`'s `build` module).

pub mod dockerfile;
pub mod ignore;
pub mod shell;

pub use dockerfile::{parse, CommandForm, Dockerfile, Instruction, Kind, Stage};
pub use ignore::IgnoreMatcher;

/// A malformed Dockerfile, `.dockerignore` or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A parse error at a (1-based) line.
    #[error("Dockerfile parse error on line {line}: {msg}")]
    Parse { line: usize, msg: String },
    /// A bad value (variable substitution, pattern) without a line.
    #[error("{0}")]
    Invalid(String),
}

/// Parses a Go duration (`30s`, `1m30s`, `500ms`, `1h`) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, BuildError> {
    let bad = || {
        BuildError::Invalid(format!(
            "invalid duration {s:?}: use e.g. 30s, 1m30s, 500ms"
        ))
    };
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add((num * mult) as u64);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
