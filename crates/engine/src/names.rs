//! Container ids and generated names (Docker style: `adjective_surname`).

use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "admiring", "brave", "calm", "clever", "dazzling", "eager", "elated", "focused", "gallant",
    "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "relaxed", "serene", "sharp",
    "stoic", "tender", "upbeat", "vibrant", "wizardly", "zealous",
];
const NAMES: &[&str] = &[
    "albattani",
    "babbage",
    "curie",
    "darwin",
    "einstein",
    "fermi",
    "galileo",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
];

/// A new 64-hex-digit container id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// A random Docker-style name.
pub fn random_name() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}_{}",
        ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())],
        NAMES[rng.gen_range(0..NAMES.len())]
    )
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("x"));
        assert!(!valid_name("has space"));
        assert!(valid_name(&random_name()));
        assert_eq!(new_id().len(), 64);
    }
}
