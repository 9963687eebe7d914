//! `.dockerignore`: one pattern a line (Go `filepath.Match` syntax per path component: `*`,
//! `?`, `[a-z]`, `[^a]`, `\` escapes; `**` matches any number of components), `#` comments,
//! `!` exceptions. As Docker: patterns are cleaned (leading `/` and `./`, trailing `/`
//! dropped), a pattern matching a directory matches everything below it, and the last
//! matching pattern decides. [`glob_match`] is the same matcher for COPY sources.

use crate::BuildError;

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    parts: Vec<String>,
    exclusion: bool,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

impl IgnoreMatcher {
    /// Parses a `.dockerignore` file; a malformed pattern is an error naming its line.
    pub fn parse(text: &str) -> Result<Self, BuildError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pat) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pat);
            if cleaned.is_empty() {
                continue;
            }
            let parts: Vec<String> = cleaned.split('/').map(str::to_string).collect();
            for part in &parts {
                if part != "**" {
                    validate(part).map_err(|msg| {
                        BuildError::Invalid(format!(
                            ".dockerignore line {}: bad pattern {pat:?}: {msg}",
                            i + 1
                        ))
                    })?;
                }
            }
            patterns.push(Pattern { parts, exclusion });
        }
        Ok(Self { patterns })
    }

    /// Whether a context path (relative, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        if path.is_empty() {
            return false;
        }
        let comps: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The path or one of its parents matches.
            let hit = (1..=comps.len()).any(|n| match_parts(&p.parts, &comps[..n]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether some exception pattern could re-include something below `dir` (then an
    /// excluded directory must still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

/// Whether `path` (relative, `/`-separated) matches the glob `pattern` as a whole.
pub fn glob_match(pattern: &str, path: &str) -> Result<bool, BuildError> {
    let pat = clean(pattern);
    let parts: Vec<String> = pat.split('/').map(str::to_string).collect();
    for part in &parts {
        if part != "**" {
            validate(part)
                .map_err(|m| BuildError::Invalid(format!("bad pattern {pattern:?}: {m}")))?;
        }
    }
    let path = clean(path);
    let comps: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    Ok(match_parts(&parts, &comps))
}

/// Whether a string has glob metacharacters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn match_parts(pat: &[String], comps: &[&str]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=comps.len()).any(|skip| match_parts(rest, &comps[skip..]))
        }
        Some((first, rest)) => match comps.split_first() {
            Some((c, crest)) => component_match(first, c) && match_parts(rest, crest),
            None => false,
        },
    }
}

fn validate(p: &str) -> Result<(), String> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("trailing backslash".into());
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if i < chars.len() && chars[i] == '^' {
                    i += 1;
                }
                let start = i;
                loop {
                    if i >= chars.len() {
                        return Err("unclosed [ character class".into());
                    }
                    if chars[i] == ']' && i > start {
                        break;
                    }
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i == start {
                    return Err("empty character class".into());
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Go's `filepath.Match` for one component (no `/` inside).
fn component_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, 0, &n, 0)
}

fn match_from(p: &[char], mut pi: usize, n: &[char], mut ni: usize) -> bool {
    while pi < p.len() {
        match p[pi] {
            '*' => {
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                if pi == p.len() {
                    return true;
                }
                return (ni..=n.len()).any(|k| match_from(p, pi, n, k));
            }
            '?' => {
                if ni >= n.len() {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
            '[' => {
                if ni >= n.len() {
                    return false;
                }
                let c = n[ni];
                pi += 1;
                let negate = pi < p.len() && p[pi] == '^';
                if negate {
                    pi += 1;
                }
                let mut matched = false;
                let mut first = true;
                while pi < p.len() && (p[pi] != ']' || first) {
                    first = false;
                    let mut lo = p[pi];
                    if lo == '\\' && pi + 1 < p.len() {
                        pi += 1;
                        lo = p[pi];
                    }
                    pi += 1;
                    let mut hi = lo;
                    if pi + 1 < p.len() && p[pi] == '-' && p[pi + 1] != ']' {
                        hi = p[pi + 1];
                        if hi == '\\' && pi + 2 < p.len() {
                            hi = p[pi + 2];
                            pi += 1;
                        }
                        pi += 2;
                    }
                    if lo <= c && c <= hi {
                        matched = true;
                    }
                }
                pi += 1; // the ']'
                if matched == negate {
                    return false;
                }
                ni += 1;
            }
            '\\' if pi + 1 < p.len() => {
                if ni >= n.len() || n[ni] != p[pi + 1] {
                    return false;
                }
                pi += 2;
                ni += 1;
            }
            c => {
                if ni >= n.len() || n[ni] != c {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    ni == n.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components() {
        assert!(component_match("*.txt", "a.txt"));
        assert!(!component_match("*.txt", "a.txt.bak"));
        assert!(component_match("a?c", "abc"));
        assert!(component_match("[a-c]x", "bx"));
        assert!(!component_match("[^a-c]x", "bx"));
        assert!(component_match("[^a-c]x", "dx"));
        assert!(component_match("\\*", "*"));
        assert!(!component_match("\\*", "a"));
        assert!(component_match("*", ""));
    }

    #[test]
    fn dockerignore_rules() {
        let m = IgnoreMatcher::parse(
            "# comment\n*.log\n/secret\nbuild/\n!build/keep.txt\n**/*.tmp\ndocs/**/draft\n./x/../y\n",
        )
        .unwrap();
        assert!(m.is_excluded("a.log"));
        assert!(!m.is_excluded("sub/a.log"), "* does not cross /");
        assert!(m.is_excluded("secret"));
        assert!(m.is_excluded("secret/inner/file"));
        assert!(m.is_excluded("build/out.o"));
        assert!(!m.is_excluded("build/keep.txt"));
        assert!(m.is_excluded("deep/dir/file.tmp"));
        assert!(m.is_excluded("file.tmp"));
        assert!(m.is_excluded("docs/draft"));
        assert!(m.is_excluded("docs/a/b/draft/x"));
        assert!(!m.is_excluded("docs/a/final"));
        assert!(m.is_excluded("y"));
        assert!(!m.is_excluded("Dockerfile"));
        assert!(m.has_exceptions());
    }

    #[test]
    fn last_match_wins() {
        let m = IgnoreMatcher::parse("*\n!src\nsrc/gen\n").unwrap();
        assert!(m.is_excluded("README"));
        assert!(!m.is_excluded("src/main.rs"));
        assert!(m.is_excluded("src/gen/x.rs"));
    }

    #[test]
    fn malformed_names_line() {
        let e = IgnoreMatcher::parse("ok\n\n[abc\n").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(IgnoreMatcher::parse("a\\").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt").unwrap());
        assert!(glob_match("src/*.rs", "src/main.rs").unwrap());
        assert!(!glob_match("src/*.rs", "src/x/main.rs").unwrap());
        assert!(glob_match("**/*.rs", "src/x/main.rs").unwrap());
        assert!(glob_match("./a", "a").unwrap());
        assert!(has_glob("a*"));
        assert!(!has_glob("abc"));
    }
}
