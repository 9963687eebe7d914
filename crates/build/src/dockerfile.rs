//! The Dockerfile parser: parser directives (`# escape=`, `# syntax=` ignored), comments, line
//! continuations, instructions with their `--flags`, shell and JSON (exec) forms, and stages.
//! Arguments are kept unexpanded: which variables are in effect depends on the build state, so
//! the executor expands them (with [`crate::shell`]) as it goes. Every error names the line.

use std::collections::BTreeMap;

use crate::shell::split_raw;
use crate::BuildError;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// One `FROM ...` and the instructions after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The base image as written (unexpanded).
    pub base: String,
    pub platform: Option<String>,
    /// The FROM instruction itself.
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

/// One instruction: its first line, its text (continuations joined) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub line: usize,
    /// `RUN echo hi` as written (continuations joined, the keyword upper-cased).
    pub text: String,
    pub kind: Kind,
}

/// Shell form (`RUN echo hi`) or exec form (`RUN ["echo", "hi"]`).
#[derive(Debug, Clone, PartialEq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

/// HEALTHCHECK's options and command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<CommandForm>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<String>,
}

/// What an instruction says (arguments unexpanded).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    From,
    Run(CommandForm),
    Copy {
        /// ADD rather than COPY.
        add: bool,
        sources: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
    },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    /// Raw words (unexpanded).
    Expose(Vec<String>),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Label(Vec<(String, String)>),
    Volume(Vec<String>),
    Healthcheck(Health),
    StopSignal(String),
    Shell(Vec<String>),
}

fn perr(line: usize, msg: impl Into<String>) -> BuildError {
    BuildError::Parse {
        line,
        msg: msg.into(),
    }
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let (escape, first) = directives(&lines)?;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (line, logical) in logical_lines(&lines[first..], first, escape) {
        let trimmed = logical.trim();
        let (word, rest) = match trimmed.find(char::is_whitespace) {
            Some(i) => (&trimmed[..i], trimmed[i..].trim()),
            None => (trimmed, ""),
        };
        let keyword = word.to_ascii_uppercase();
        let text = if rest.is_empty() {
            keyword.clone()
        } else {
            format!("{keyword} {rest}")
        };
        let kind = instruction(line, &keyword, rest, escape)?;
        let inst = Instruction { line, text, kind };
        if keyword == "FROM" {
            let (flags, args) = take_flags(line, rest, &["platform"])?;
            let words = split_raw(args, escape).map_err(|e| perr(line, e.to_string()))?;
            let name = match words.len() {
                1 => None,
                3 if words[1].eq_ignore_ascii_case("as") => {
                    let n = words[2].to_ascii_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(perr(
                            line,
                            format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", words[2]),
                        ));
                    }
                    if names.insert(n.clone(), stages.len()).is_some() {
                        return Err(perr(line, format!("duplicate name {n:?} for build stages")));
                    }
                    Some(n)
                }
                _ => {
                    return Err(perr(
                        line,
                        "FROM requires either one argument, or three: FROM <source> [AS <name>]",
                    ))
                }
            };
            stages.push(Stage {
                index: stages.len(),
                name,
                base: words[0].clone(),
                platform: flags.get("platform").cloned(),
                from: inst,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(inst);
        } else if keyword == "ARG" {
            meta_args.push(inst);
        } else {
            return Err(perr(
                line,
                format!("{keyword} before the first FROM: only ARG may come before FROM"),
            ));
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Invalid(
            "the Dockerfile has no FROM instruction: a build needs at least one stage".into(),
        ));
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        stages,
    })
}

fn valid_stage_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Reads the parser directives at the top; returns the escape character and the index of the
/// first line after them.
fn directives(lines: &[&str]) -> Result<(char, usize), BuildError> {
    let mut escape = '\\';
    let mut seen: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(body) = l.trim().strip_prefix('#') else {
            return Ok((escape, i));
        };
        let Some((k, v)) = body.split_once('=') else {
            return Ok((escape, i));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok((escape, i));
        }
        if seen.contains(&key) {
            return Err(perr(
                i + 1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        seen.push(key.clone());
        if key == "escape" {
            escape = match v.trim() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(perr(
                        i + 1,
                        format!("invalid escape token {other:?} does not match ` or \\"),
                    ))
                }
            };
        }
        // `syntax`, `check` and unknown directives are ignored.
    }
    Ok((escape, lines.len()))
}

/// Joins continuation lines; skips blank lines and comments. Yields (first line number, text).
fn logical_lines(lines: &[&str], offset: usize, escape: char) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in lines.iter().enumerate() {
        let n = offset + i + 1;
        let t = raw.trim_start();
        if t.starts_with('#') || (t.is_empty() && cur.is_some()) {
            continue;
        }
        if t.is_empty() {
            continue;
        }
        let r = raw.trim_end();
        let (body, cont) = match r.strip_suffix(escape) {
            Some(b) => (b, true),
            None => (r, false),
        };
        let entry = cur.get_or_insert((n, String::new()));
        entry.1.push_str(body);
        if !cont {
            if let Some(done) = cur.take() {
                out.push(done);
            }
        }
    }
    if let Some(done) = cur.take() {
        if !done.1.trim().is_empty() {
            out.push(done);
        }
    }
    out
}

/// Takes leading `--name=value` flags; only `allowed` names are accepted.
fn take_flags<'a>(
    line: usize,
    mut args: &'a str,
    allowed: &[&str],
) -> Result<(BTreeMap<String, String>, &'a str), BuildError> {
    let mut flags = BTreeMap::new();
    while let Some(rest) = args.strip_prefix("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let flag = &rest[..end];
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, v),
            None => (flag, ""),
        };
        if !allowed.contains(&name) {
            return Err(perr(line, format!("unknown flag: --{name}")));
        }
        if value.is_empty() {
            return Err(perr(
                line,
                format!("flag --{name} needs a value: --{name}=VALUE"),
            ));
        }
        flags.insert(name.to_string(), value.to_string());
        args = rest[end..].trim_start();
    }
    Ok((flags, args))
}

fn json_array(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command_form(line: usize, keyword: &str, args: &str) -> Result<CommandForm, BuildError> {
    if args.trim().is_empty() {
        return Err(perr(
            line,
            format!("{keyword} requires at least one argument"),
        ));
    }
    Ok(match json_array(args) {
        Some(v) => CommandForm::Exec(v),
        None => CommandForm::Shell(args.trim().to_string()),
    })
}

fn reject_heredoc(line: usize, keyword: &str, args: &str) -> Result<(), BuildError> {
    let mut rest = args;
    while let Some(i) = rest.find("<<") {
        let after = rest[i + 2..].trim_start_matches('-');
        let after = after.trim_start_matches(['"', '\'']);
        if after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return Err(perr(
                line,
                format!("heredocs ({keyword} <<EOF) are not supported by berth build: write the content to a file in the context and COPY it"),
            ));
        }
        rest = &rest[i + 2..];
    }
    Ok(())
}

/// `KEY=VALUE ...` pairs (or the old `KEY VALUE` form when `legacy` and the first word has no
/// `=`).
fn key_values(
    line: usize,
    keyword: &str,
    args: &str,
    escape: char,
) -> Result<Vec<(String, String)>, BuildError> {
    if args.trim().is_empty() {
        return Err(perr(
            line,
            format!("{keyword} requires at least one argument"),
        ));
    }
    let words = split_raw(args, escape).map_err(|e| perr(line, e.to_string()))?;
    if !words[0].contains('=') {
        // Legacy form: `ENV KEY the rest of the line`.
        let t = args.trim();
        let i = t.find(char::is_whitespace).ok_or_else(|| {
            perr(
                line,
                format!("{keyword} {t} has no value: write {keyword} {t}=VALUE"),
            )
        })?;
        return Ok(vec![(t[..i].to_string(), t[i..].trim().to_string())]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(perr(
                line,
                format!("{keyword}: {w:?} is not KEY=VALUE (mixing KEY=VALUE with the KEY VALUE form is not allowed)"),
            ));
        };
        if k.is_empty() {
            return Err(perr(line, format!("{keyword} names can not be blank")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn one_arg(line: usize, keyword: &str, args: &str) -> Result<String, BuildError> {
    let t = args.trim();
    if t.is_empty() {
        return Err(perr(
            line,
            format!("{keyword} requires exactly one argument"),
        ));
    }
    Ok(t.to_string())
}

fn instruction(line: usize, keyword: &str, args: &str, escape: char) -> Result<Kind, BuildError> {
    Ok(match keyword {
        "FROM" => Kind::From,
        "RUN" => {
            if args.starts_with("--") {
                let flag = args.split_whitespace().next().unwrap_or(args);
                return Err(perr(
                    line,
                    format!("RUN {flag} is not supported by berth build (a BuildKit extension)"),
                ));
            }
            reject_heredoc(line, keyword, args)?;
            Kind::Run(command_form(line, keyword, args)?)
        }
        "CMD" => Kind::Cmd(command_form(line, keyword, args)?),
        "ENTRYPOINT" => Kind::Entrypoint(command_form(line, keyword, args)?),
        "COPY" | "ADD" => {
            let allowed: &[&str] = if keyword == "COPY" {
                &["from", "chown", "chmod"]
            } else {
                &["chown", "chmod"]
            };
            let (flags, rest) = take_flags(line, args, allowed)?;
            reject_heredoc(line, keyword, rest)?;
            let mut words = match json_array(rest) {
                Some(v) => v,
                None => split_raw(rest, escape).map_err(|e| perr(line, e.to_string()))?,
            };
            if words.len() < 2 {
                return Err(perr(
                    line,
                    format!("{keyword} requires at least two arguments, but only {} provided: {keyword} <src>... <dest>", words.len()),
                ));
            }
            let dest = words.pop().unwrap_or_default();
            Kind::Copy {
                add: keyword == "ADD",
                sources: words,
                dest,
                from: flags.get("from").cloned(),
                chown: flags.get("chown").cloned(),
                chmod: flags.get("chmod").cloned(),
            }
        }
        "ENV" => Kind::Env(key_values(line, keyword, args, escape)?),
        "LABEL" => Kind::Label(key_values(line, keyword, args, escape)?),
        "ARG" => {
            let words = split_raw(args, escape).map_err(|e| perr(line, e.to_string()))?;
            if words.is_empty() {
                return Err(perr(line, "ARG requires at least one argument: ARG NAME[=DEFAULT]"));
            }
            let mut out = Vec::new();
            for w in words {
                let (name, default) = match w.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w.clone(), None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(perr(line, format!("ARG: invalid name {name:?}")));
                }
                out.push((name, default));
            }
            Kind::Arg(out)
        }
        "WORKDIR" => Kind::Workdir(one_arg(line, keyword, args)?),
        "USER" => Kind::User(one_arg(line, keyword, args)?),
        "STOPSIGNAL" => Kind::StopSignal(one_arg(line, keyword, args)?),
        "EXPOSE" => {
            let words = split_raw(args, escape).map_err(|e| perr(line, e.to_string()))?;
            if words.is_empty() {
                return Err(perr(line, "EXPOSE requires at least one argument"));
            }
            Kind::Expose(words)
        }
        "VOLUME" => {
            let words = match json_array(args) {
                Some(v) => v,
                None => split_raw(args, escape).map_err(|e| perr(line, e.to_string()))?,
            };
            if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                return Err(perr(line, "VOLUME requires at least one non-empty argument"));
            }
            Kind::Volume(words)
        }
        "SHELL" => match json_array(args) {
            Some(v) if !v.is_empty() => Kind::Shell(v),
            _ => {
                return Err(perr(
                    line,
                    "SHELL requires the arguments to be in JSON form: SHELL [\"executable\", \"param\"]",
                ))
            }
        },
        "HEALTHCHECK" => {
            let (flags, rest) = take_flags(
                line,
                args,
                &["interval", "timeout", "start-period", "start-interval", "retries"],
            )?;
            let (word, cmd) = match rest.find(char::is_whitespace) {
                Some(i) => (&rest[..i], rest[i..].trim()),
                None => (rest, ""),
            };
            match word.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !flags.is_empty() || !cmd.is_empty() {
                        return Err(perr(line, "HEALTHCHECK NONE takes no other arguments"));
                    }
                    Kind::Healthcheck(Health::default())
                }
                "CMD" => {
                    for (k, v) in &flags {
                        if k == "retries" {
                            if v.parse::<u32>().is_err() {
                                return Err(perr(line, format!("HEALTHCHECK --retries={v}: not a number")));
                            }
                        } else {
                            crate::parse_duration(v)
                                .map_err(|e| perr(line, format!("HEALTHCHECK --{k}: {e}")))?;
                        }
                    }
                    Kind::Healthcheck(Health {
                        test: Some(command_form(line, "HEALTHCHECK CMD", cmd)?),
                        interval: flags.get("interval").cloned(),
                        timeout: flags.get("timeout").cloned(),
                        start_period: flags.get("start-period").cloned(),
                        retries: flags.get("retries").cloned(),
                    })
                }
                _ => return Err(perr(line, "HEALTHCHECK requires CMD or NONE: HEALTHCHECK [OPTIONS] CMD command")),
            }
        }
        "ONBUILD" => {
            return Err(perr(line, "ONBUILD is not supported by berth build"));
        }
        "MAINTAINER" => Kind::Label(vec![("maintainer".into(), format!("{args:?}"))]),
        other => return Err(perr(line, format!("unknown instruction: {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_line(text: &str) -> (usize, String) {
        match parse(text) {
            Err(BuildError::Parse { line, msg }) => (line, msg),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn stages_and_instructions() {
        let df = parse(
            "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM $BASE AS Build\n# comment\nRUN echo a \\\n  && echo b\n\nCOPY --chown=1:2 --chmod=755 a b /dst/\nFROM --platform=linux/amd64 scratch\nCOPY --from=build /x /y\nCMD [\"/y\"]\n",
        )
        .unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.meta_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        let s0 = &df.stages[0];
        assert_eq!(s0.name.as_deref(), Some("build"));
        assert_eq!(s0.base, "$BASE");
        assert_eq!(s0.from.line, 3);
        assert_eq!(s0.instructions[0].line, 5);
        assert_eq!(
            s0.instructions[0].kind,
            Kind::Run(CommandForm::Shell("echo a   && echo b".into()))
        );
        assert_eq!(
            s0.instructions[1].kind,
            Kind::Copy {
                add: false,
                sources: vec!["a".into(), "b".into()],
                dest: "/dst/".into(),
                from: None,
                chown: Some("1:2".into()),
                chmod: Some("755".into())
            }
        );
        assert_eq!(s0.instructions[1].line, 8);
        let s1 = &df.stages[1];
        assert_eq!(s1.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(
            s1.instructions[1].kind,
            Kind::Cmd(CommandForm::Exec(vec!["/y".into()]))
        );
    }

    #[test]
    fn escape_directive() {
        let df = parse("# escape=`\nFROM scratch\nRUN echo a `\n  b\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.stages[0].instructions[0].kind,
            Kind::Run(CommandForm::Shell("echo a   b".into()))
        );
        assert_eq!(err_line("# escape=x\nFROM scratch").0, 1);
        assert_eq!(err_line("# escape=`\n# escape=\\\nFROM scratch").0, 2);
        // A directive after a comment is a comment.
        let df = parse("# hello\n# escape=`\nFROM scratch\nRUN a \\\n").unwrap();
        assert_eq!(df.escape, '\\');
    }

    #[test]
    fn comments_inside_continuations() {
        let df = parse("FROM scratch\nRUN echo a \\\n# inner comment\n\n  b\nUSER x").unwrap();
        let ins = &df.stages[0].instructions;
        assert_eq!(
            ins[0].kind,
            Kind::Run(CommandForm::Shell("echo a   b".into()))
        );
        assert_eq!(ins[1].line, 6);
    }

    #[test]
    fn env_label_arg_forms() {
        let df = parse(
            "FROM scratch\nENV A=1 B=\"x y\"\nENV C the rest\nLABEL a.b=c\nARG X Y=2\nEXPOSE 80 53/udp\nVOLUME [\"/a\", \"/b\"]\nVOLUME /c /d\nSHELL [\"/bin/ash\", \"-c\"]\nSTOPSIGNAL SIGINT\nWORKDIR /w\nUSER 1000:1000\nENTRYPOINT echo\n",
        )
        .unwrap();
        let k: Vec<Kind> = df.stages[0]
            .instructions
            .iter()
            .map(|i| i.kind.clone())
            .collect();
        assert_eq!(
            k[0],
            Kind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"x y\"".into())
            ])
        );
        assert_eq!(k[1], Kind::Env(vec![("C".into(), "the rest".into())]));
        assert_eq!(k[2], Kind::Label(vec![("a.b".into(), "c".into())]));
        assert_eq!(
            k[3],
            Kind::Arg(vec![("X".into(), None), ("Y".into(), Some("2".into()))])
        );
        assert_eq!(k[4], Kind::Expose(vec!["80".into(), "53/udp".into()]));
        assert_eq!(k[5], Kind::Volume(vec!["/a".into(), "/b".into()]));
        assert_eq!(k[6], Kind::Volume(vec!["/c".into(), "/d".into()]));
        assert_eq!(k[7], Kind::Shell(vec!["/bin/ash".into(), "-c".into()]));
        assert_eq!(k[8], Kind::StopSignal("SIGINT".into()));
        assert_eq!(k[11], Kind::Entrypoint(CommandForm::Shell("echo".into())));
    }

    #[test]
    fn healthcheck() {
        let df = parse("FROM scratch\nHEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost\nHEALTHCHECK NONE\n").unwrap();
        let ins = &df.stages[0].instructions;
        match &ins[0].kind {
            Kind::Healthcheck(h) => {
                assert_eq!(h.interval.as_deref(), Some("5s"));
                assert_eq!(h.retries.as_deref(), Some("3"));
                assert_eq!(h.test, Some(CommandForm::Shell("wget -q localhost".into())));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ins[1].kind, Kind::Healthcheck(Health::default()));
        assert_eq!(
            err_line("FROM scratch\nHEALTHCHECK --interval=5 CMD x").0,
            2
        );
        assert_eq!(err_line("FROM scratch\nHEALTHCHECK x").0, 2);
        assert_eq!(err_line("FROM scratch\nHEALTHCHECK NONE x").0, 2);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(err_line("FROM scratch\n\nFOO bar").0, 3);
        assert!(err_line("FROM scratch\n\nFOO bar")
            .1
            .contains("unknown instruction: FOO"));
        assert_eq!(err_line("RUN x\nFROM scratch").0, 1);
        assert_eq!(err_line("FROM a b").0, 1);
        assert_eq!(err_line("FROM a AS 1x").0, 1);
        assert_eq!(err_line("FROM a AS x\nFROM b AS x").0, 2);
        assert_eq!(err_line("FROM a\nCOPY onlyone").0, 2);
        assert_eq!(err_line("FROM a\nRUN").0, 2);
        assert_eq!(err_line("FROM a\nENV").0, 2);
        assert_eq!(err_line("FROM a\nENV A").0, 2);
        assert_eq!(err_line("FROM a\nENV A=1 B").0, 2);
        assert_eq!(err_line("FROM a\nENV =1").0, 2);
        assert_eq!(err_line("FROM a\nENV A=\"open").0, 2);
        assert_eq!(err_line("FROM a\nWORKDIR").0, 2);
        assert_eq!(err_line("FROM a\nSHELL /bin/sh").0, 2);
        assert_eq!(err_line("FROM a\nCOPY --link a b").0, 2);
        assert_eq!(err_line("FROM a\nADD --from=x a b").0, 2);
        assert_eq!(err_line("FROM a\nCOPY --chown a b").0, 2);
        assert_eq!(err_line("FROM a\nRUN --mount=type=cache x").0, 2);
        assert!(err_line("FROM a\nONBUILD RUN x")
            .1
            .contains("not supported"));
        assert!(err_line("FROM a\nRUN cat <<EOF\nhi\nEOF")
            .1
            .contains("heredoc"));
        assert_eq!(err_line("FROM a\nARG b-c").0, 2);
        assert_eq!(err_line("FROM a\nEXPOSE").0, 2);
        assert!(parse("").is_err());
        assert!(parse("# just a comment\n").is_err());
    }

    #[test]
    fn json_fallback_and_crlf() {
        let df = parse("FROM a\r\nRUN [\"echo\", 1]\r\nCMD [\"a\",\"b\"]\r\n").unwrap();
        let ins = &df.stages[0].instructions;
        assert_eq!(
            ins[0].kind,
            Kind::Run(CommandForm::Shell("[\"echo\", 1]".into()))
        );
        assert_eq!(
            ins[1].kind,
            Kind::Cmd(CommandForm::Exec(vec!["a".into(), "b".into()]))
        );
        assert_eq!(ins[1].text, "CMD [\"a\",\"b\"]");
        // Keywords are case-insensitive.
        let df = parse("from a as B\nrun echo").unwrap();
        assert_eq!(df.stages[0].name.as_deref(), Some("b"));
        assert_eq!(df.stages[0].instructions[0].text, "RUN echo");
    }
}
