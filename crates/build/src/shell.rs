//! Docker's word processing for Dockerfile arguments: quotes (`'...'` literal, `"..."` with
//! expansion), the escape character, and variable substitution — `$VAR`, `${VAR}`,
//! `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`.
//! An unset variable expands to nothing; a `$` not followed by a name stays literal.

use crate::BuildError;

/// Looks a variable up (`None`: unset).
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Lookup,
}

/// Processes one word: quotes removed, escapes applied, variables expanded, no splitting.
pub fn process_word(s: &str, escape: char, env: &dyn Lookup) -> Result<String, BuildError> {
    let mut lx = Lexer::new(s, escape, env);
    let words = lx.run(false)?;
    Ok(words.into_iter().next().unwrap_or_default())
}

/// Processes a line into words split on unquoted whitespace (EXPOSE, VOLUME, COPY sources).
pub fn process_words(s: &str, escape: char, env: &dyn Lookup) -> Result<Vec<String>, BuildError> {
    let mut lx = Lexer::new(s, escape, env);
    lx.run(true)
}

/// Splits a line into words on unquoted whitespace, keeping quotes and escapes as written
/// (for `KEY=VALUE` lists, whose values are then processed one by one).
pub fn split_raw(s: &str, escape: char) -> Result<Vec<String>, BuildError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = it.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                    continue;
                }
                in_word = true;
                cur.push(c);
                if c == escape {
                    if let Some(n) = it.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(BuildError::Invalid(format!(
            "unterminated quote {q} in {s:?}"
        )));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

impl<'a> Lexer<'a> {
    fn new(s: &str, escape: char, env: &'a dyn Lookup) -> Self {
        Self {
            chars: s.chars().collect(),
            pos: 0,
            escape,
            env,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn run(&mut self, split: bool) -> Result<Vec<String>, BuildError> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while let Some(c) = self.next() {
            if split && c.is_whitespace() {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            if c == self.escape {
                match self.next() {
                    Some(n) => cur.push(n),
                    None => cur.push(c),
                }
            } else if c == '\'' {
                loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => {
                            return Err(BuildError::Invalid(format!(
                                "unexpected end of statement while looking for matching single-quote in {:?}",
                                self.text()
                            )))
                        }
                    }
                }
            } else if c == '"' {
                loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => cur.push_str(&self.dollar()?),
                        Some(n) if n == self.escape => match self.next() {
                            Some(m) if m == '"' || m == '$' || m == self.escape => cur.push(m),
                            Some(m) => {
                                cur.push(n);
                                cur.push(m);
                            }
                            None => cur.push(n),
                        },
                        Some(n) => cur.push(n),
                        None => {
                            return Err(BuildError::Invalid(format!(
                                "unexpected end of statement while looking for matching double-quote in {:?}",
                                self.text()
                            )))
                        }
                    }
                }
            } else if c == '$' {
                cur.push_str(&self.dollar()?);
            } else {
                cur.push(c);
            }
        }
        if in_word || !split {
            words.push(cur);
        }
        Ok(words)
    }

    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, BuildError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(BuildError::Invalid(format!(
                        "bad substitution in {:?}: missing variable name after ${{",
                        self.text()
                    )));
                }
                let value = self.env.get(&name);
                match self.next() {
                    Some('}') => Ok(value.unwrap_or_default()),
                    Some(':') => {
                        let op = self.next();
                        let word = self.until_brace()?;
                        let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
                        match op {
                            Some('-') => Ok(if set_nonempty {
                                value.unwrap_or_default()
                            } else {
                                word
                            }),
                            Some('+') => Ok(if set_nonempty { word } else { String::new() }),
                            Some('?') => {
                                if set_nonempty {
                                    Ok(value.unwrap_or_default())
                                } else {
                                    Err(BuildError::Invalid(format!(
                                        "{name}: {}",
                                        if word.is_empty() {
                                            "is not allowed to be unset".into()
                                        } else {
                                            word
                                        }
                                    )))
                                }
                            }
                            _ => Err(BuildError::Invalid(format!(
                                "unsupported modifier in ${{{name}:...}} in {:?}: use :-, :+ or :?",
                                self.text()
                            ))),
                        }
                    }
                    Some(op @ ('-' | '+' | '?')) => {
                        let word = self.until_brace()?;
                        match op {
                            '-' => Ok(value.unwrap_or(word)),
                            '+' => Ok(if value.is_some() { word } else { String::new() }),
                            _ => value.ok_or_else(|| {
                                BuildError::Invalid(format!(
                                    "{name}: {}",
                                    if word.is_empty() {
                                        "is not allowed to be unset".into()
                                    } else {
                                        word
                                    }
                                ))
                            }),
                        }
                    }
                    _ => Err(BuildError::Invalid(format!(
                        "bad substitution in {:?}: missing '}}' or unsupported modifier",
                        self.text()
                    ))),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.env.get(&name).unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }

    /// The word of a `${VAR:-word}` up to its closing brace, itself processed.
    fn until_brace(&mut self) -> Result<String, BuildError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some('\'') => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(n) => out.push(n),
                        None => break,
                    }
                },
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n)
                    }
                }
                Some(c) => out.push(c),
                None => {
                    return Err(BuildError::Invalid(format!(
                        "bad substitution in {:?}: missing '}}'",
                        self.text()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        process_word(s, '\\', &env).unwrap()
    }

    #[test]
    fn substitutions() {
        assert_eq!(w("$A"), "alpha");
        assert_eq!(w("${A}x"), "alphax");
        assert_eq!(w("$Ax"), "");
        assert_eq!(w("$UNSET-x"), "-x");
        assert_eq!(w("${UNSET:-def}"), "def");
        assert_eq!(w("${EMPTY:-def}"), "def");
        assert_eq!(w("${EMPTY-def}"), "");
        assert_eq!(w("${A:-def}"), "alpha");
        assert_eq!(w("${A:+set}"), "set");
        assert_eq!(w("${UNSET:+set}"), "");
        assert_eq!(w("${EMPTY+set}"), "set");
        assert_eq!(w("${UNSET:-$A}"), "alpha");
        assert!(process_word("${UNSET:?needed}", '\\', &env).is_err());
        assert_eq!(w("${A:?x}"), "alpha");
        assert_eq!(w("cost $5"), "cost $5");
        assert_eq!(w("$"), "$");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A b\""), "alpha b");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"a\\\"b\""), "a\"b");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(process_word("`$A", '`', &env).unwrap(), "$A");
        assert!(process_word("'open", '\\', &env).is_err());
        assert!(process_word("\"open", '\\', &env).is_err());
        assert!(process_word("${", '\\', &env).is_err());
        assert!(process_word("${A", '\\', &env).is_err());
        assert!(process_word("${A:=x}", '\\', &env).is_err());
    }

    #[test]
    fn words() {
        assert_eq!(
            process_words("a  \"b c\" $A 'd e'", '\\', &env).unwrap(),
            vec!["a", "b c", "alpha", "d e"]
        );
        assert_eq!(
            process_words("  ", '\\', &env).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            split_raw("A=1 B=\"x y\" C='p q' D=a\\ b", '\\').unwrap(),
            vec!["A=1", "B=\"x y\"", "C='p q'", "D=a\\ b"]
        );
        assert!(split_raw("A=\"x", '\\').is_err());
    }
}
