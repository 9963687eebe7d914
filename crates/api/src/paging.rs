//! Pagination: `maxResults` limits and opaque `nextToken`s.
//!
//! A token is the hex encoding of `v1:` plus the last store key a page returned; the next page
//! starts strictly after it. Clients treat it as opaque.

use crate::EcsError;

const TOKEN_PREFIX: &str = "v1:";

/// Encodes the last key of a page as a `nextToken`.
pub fn encode_token(last_key: &str) -> String {
    hex::encode(format!("{TOKEN_PREFIX}{last_key}"))
}

/// Decodes a `nextToken` back into the key to start after.
pub fn decode_token(token: &str) -> Result<String, EcsError> {
    let bad = || {
        EcsError::invalid("invalid nextToken: pass the nextToken of a previous response unchanged")
    };
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    s.strip_prefix(TOKEN_PREFIX)
        .map(str::to_owned)
        .ok_or_else(bad)
}

/// Validates `maxResults` against `1..=max`; `None` gives `default`.
pub fn max_results(value: Option<i64>, default: usize, max: usize) -> Result<usize, EcsError> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) => Err(EcsError::invalid(format!(
            "maxResults must be between 1 and {max}, got {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = encode_token("tasks/demo/abc");
        assert_eq!(decode_token(&t).unwrap(), "tasks/demo/abc");
        assert!(decode_token("zz").is_err());
        assert!(decode_token(&hex::encode("tasks/x")).is_err());
    }

    #[test]
    fn max_results_ranges() {
        assert_eq!(max_results(None, 100, 100).unwrap(), 100);
        assert_eq!(max_results(Some(5), 100, 100).unwrap(), 5);
        assert!(max_results(Some(0), 100, 100).is_err());
        assert!(max_results(Some(101), 100, 100).is_err());
        assert!(max_results(Some(-1), 100, 100).is_err());
    }
}
