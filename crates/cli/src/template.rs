//! A small evaluator for the Go `text/template` subset that `--format` users need, over a
//! `serde_json::Value`: field chains (`{{.State.Status}}`), `{{.}}`, `$`, pipelines
//! (`{{.Config | json}}`), functions (`json`, `join`, `split`, `upper`, `lower`, `title`, `len`,
//! `index`, `eq`, `ne`, `not`, `and`, `or`, `print`, `println`, `printf` with `%s %v %d %q`,
//! `truncate`), and the `if`/`else`/`range`/`with`/`end` actions, with `{{-`/`-}}` trimming.
//!
//! Values print as Go's `fmt` prints decoded JSON: lists as `[a b]`, maps as `map[k:v]`, null as
//! `<nil>`. A missing key is an error like Go's: `template: :1:8: executing "" at <.State.Foo>:
//! map has no entry for key "Foo"`.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

#[derive(Debug, Clone)]
enum Operand {
    Dot,
    /// `.A.B` (from dot) or `$.A.B` (from the root); `pos` is the offset of the last segment.
    Field {
        from_root: bool,
        names: Vec<String>,
        text: String,
        pos: usize,
    },
    Root,
    Lit(Value),
    Ident(String, usize),
    Sub(Pipe),
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Operand>,
}

#[derive(Debug, Clone)]
struct Pipe {
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

enum Piece {
    Text(String),
    Action(String, usize),
}

fn split_pieces(src: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let after = &rest[start + 2..];
        let trim_left = after.starts_with('-') && after[1..].starts_with(char::is_whitespace);
        let body_start = if trim_left { 1 } else { 0 };
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("template: :1: unclosed action"))?;
        let mut body_end = end;
        let trim_right = end >= 2
            && after[..end].ends_with('-')
            && after[..end - 1].ends_with(char::is_whitespace);
        if trim_right {
            body_end -= 1;
        }
        if trim_left {
            text = text.trim_end().to_string();
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let body = &after[body_start..body_end.max(body_start)];
        pieces.push(Piece::Action(
            body.to_string(),
            offset + start + 2 + body_start,
        ));
        let consumed = start + 2 + end + 2;
        rest = &rest[consumed..];
        offset += consumed;
        if trim_right {
            let trimmed = rest.trim_start();
            offset += rest.len() - trimmed.len();
            rest = trimmed;
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    base: usize,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while self.i < self.src.len() && self.src.as_bytes()[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.i..].chars().next()
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '-' && self.i > start {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
        self.src[start..self.i].to_string()
    }

    fn field_chain(&mut self) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        let mut last = self.base + self.i;
        while self.peek() == Some('.') {
            last = self.base + self.i;
            self.i += 1;
            let start = self.i;
            while let Some(c) = self.peek() {
                if c.is_alphanumeric() || c == '_' {
                    self.i += c.len_utf8();
                } else {
                    break;
                }
            }
            if start == self.i {
                // bare "." ends the chain
                break;
            }
            names.push(self.src[start..self.i].to_string());
        }
        (names, last)
    }

    fn pipe(&mut self, in_paren: bool) -> Result<Pipe> {
        let mut cmds = Vec::new();
        let mut args = Vec::new();
        loop {
            self.skip_ws();
            let Some(c) = self.peek() else { break };
            match c {
                ')' if in_paren => {
                    self.i += 1;
                    break;
                }
                '|' => {
                    self.i += 1;
                    if args.is_empty() {
                        bail!("template: :1: missing command before '|'");
                    }
                    cmds.push(Cmd {
                        args: std::mem::take(&mut args),
                    });
                }
                '(' => {
                    self.i += 1;
                    args.push(Operand::Sub(self.pipe(true)?));
                }
                '.' => {
                    let start = self.i;
                    let (names, pos) = self.field_chain();
                    if names.is_empty() {
                        args.push(Operand::Dot);
                    } else {
                        args.push(Operand::Field {
                            from_root: false,
                            names,
                            text: self.src[start..self.i].to_string(),
                            pos,
                        });
                    }
                }
                '$' => {
                    let start = self.i;
                    self.i += 1;
                    let (names, pos) = self.field_chain();
                    if names.is_empty() {
                        args.push(Operand::Root);
                    } else {
                        args.push(Operand::Field {
                            from_root: true,
                            names,
                            text: self.src[start..self.i].to_string(),
                            pos,
                        });
                    }
                }
                '"' => {
                    let start = self.i;
                    self.i += 1;
                    let mut escaped = false;
                    loop {
                        let Some(c) = self.peek() else {
                            bail!("template: :1: unterminated quoted string");
                        };
                        self.i += c.len_utf8();
                        if escaped {
                            escaped = false;
                        } else if c == '\\' {
                            escaped = true;
                        } else if c == '"' {
                            break;
                        }
                    }
                    let s: String = serde_json::from_str(&self.src[start..self.i])
                        .map_err(|_| anyhow!("template: :1: bad quoted string"))?;
                    args.push(Operand::Lit(Value::String(s)));
                }
                '`' => {
                    self.i += 1;
                    let end = self.src[self.i..]
                        .find('`')
                        .ok_or_else(|| anyhow!("template: :1: unterminated raw quoted string"))?;
                    let s = self.src[self.i..self.i + end].to_string();
                    self.i += end + 1;
                    args.push(Operand::Lit(Value::String(s)));
                }
                c if c.is_ascii_digit() || c == '-' => {
                    let start = self.i;
                    self.i += 1;
                    while let Some(c) = self.peek() {
                        if c.is_ascii_digit() || c == '.' {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                    let text = &self.src[start..self.i];
                    let v: Value = serde_json::from_str(text)
                        .map_err(|_| anyhow!("template: :1: bad number syntax: {text:?}"))?;
                    args.push(Operand::Lit(v));
                }
                c if c.is_alphabetic() => {
                    let pos = self.base + self.i;
                    let w = self.word();
                    match w.as_str() {
                        "true" => args.push(Operand::Lit(Value::Bool(true))),
                        "false" => args.push(Operand::Lit(Value::Bool(false))),
                        "nil" => args.push(Operand::Lit(Value::Null)),
                        _ => args.push(Operand::Ident(w, pos)),
                    }
                }
                other => bail!("template: :1: unexpected {other:?} in command"),
            }
        }
        if !args.is_empty() {
            cmds.push(Cmd { args });
        }
        if cmds.is_empty() {
            bail!("template: :1: missing value for command");
        }
        Ok(Pipe { cmds })
    }
}

fn parse_pipe(src: &str, base: usize) -> Result<Pipe> {
    let mut lx = Lexer { src, i: 0, base };
    lx.pipe(false)
}

enum Stop {
    End,
    Else,
    Eof,
}

fn parse_list(
    pieces: &mut std::iter::Peekable<std::vec::IntoIter<Piece>>,
) -> Result<(Vec<Node>, Stop)> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.next() {
        match piece {
            Piece::Text(t) => nodes.push(Node::Text(t)),
            Piece::Action(body, pos) => {
                let trimmed = body.trim();
                let lead = body.len() - body.trim_start().len();
                let kw = trimmed.split_whitespace().next().unwrap_or("");
                let rest_pos = pos + lead + kw.len();
                let rest = trimmed[kw.len()..].to_string();
                match kw {
                    "end" => return Ok((nodes, Stop::End)),
                    "else" => return Ok((nodes, Stop::Else)),
                    "if" | "range" | "with" => {
                        let pipe = parse_pipe(&rest, rest_pos)?;
                        let (body_nodes, stop) = parse_list(pieces)?;
                        let else_nodes = match stop {
                            Stop::End => Vec::new(),
                            Stop::Else => match parse_list(pieces)? {
                                (n, Stop::End) => n,
                                _ => bail!("template: :1: expected end after else"),
                            },
                            Stop::Eof => bail!("template: :1: unexpected EOF: missing {{{{end}}}}"),
                        };
                        nodes.push(match kw {
                            "if" => Node::If(pipe, body_nodes, else_nodes),
                            "range" => Node::Range(pipe, body_nodes, else_nodes),
                            _ => Node::With(pipe, body_nodes, else_nodes),
                        });
                    }
                    _ if trimmed.starts_with("/*") => {}
                    _ => nodes.push(Node::Action(parse_pipe(&body, pos)?)),
                }
            }
        }
    }
    Ok((nodes, Stop::Eof))
}

impl Template {
    /// Parses a template.
    pub fn parse(src: &str) -> Result<Template> {
        let mut pieces = split_pieces(src)?.into_iter().peekable();
        let (nodes, stop) = parse_list(&mut pieces)?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => bail!("template: :1: unexpected {{{{end}}}}"),
            Stop::Else => bail!("template: :1: unexpected {{{{else}}}}"),
        }
    }

    /// Renders the template against `data`.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        exec_list(&self.nodes, data, data, &mut out)?;
        Ok(out)
    }
}

/// Parses and renders in one go.
pub fn render(src: &str, data: &Value) -> Result<String> {
    Template::parse(src)?.render(data)
}

fn exec_list(nodes: &[Node], dot: &Value, root: &Value, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipe(p, dot, root)?;
                out.push_str(&go_print(&v));
            }
            Node::If(p, then, els) => {
                let v = eval_pipe(p, dot, root)?;
                if truthy(&v) {
                    exec_list(then, dot, root, out)?;
                } else {
                    exec_list(els, dot, root, out)?;
                }
            }
            Node::With(p, then, els) => {
                let v = eval_pipe(p, dot, root)?;
                if truthy(&v) {
                    exec_list(then, &v, root, out)?;
                } else {
                    exec_list(els, dot, root, out)?;
                }
            }
            Node::Range(p, body, els) => {
                let v = eval_pipe(p, dot, root)?;
                let items: Vec<Value> = match &v {
                    Value::Array(a) => a.clone(),
                    Value::Object(m) => m.values().cloned().collect(),
                    Value::Null => Vec::new(),
                    other => bail!("range can't iterate over {}", go_print(other)),
                };
                if items.is_empty() {
                    exec_list(els, dot, root, out)?;
                }
                for item in &items {
                    exec_list(body, item, root, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipe(p: &Pipe, dot: &Value, root: &Value) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for cmd in &p.cmds {
        prev = Some(eval_cmd(cmd, dot, root, prev)?);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn exec_error(pos: usize, text: &str, msg: &str) -> anyhow::Error {
    anyhow!("template: :1:{pos}: executing \"\" at <{text}>: {msg}")
}

fn eval_operand(op: &Operand, dot: &Value, root: &Value) -> Result<Value> {
    match op {
        Operand::Dot => Ok(dot.clone()),
        Operand::Root => Ok(root.clone()),
        Operand::Lit(v) => Ok(v.clone()),
        Operand::Sub(p) => eval_pipe(p, dot, root),
        Operand::Ident(name, pos) => call(name, *pos, Vec::new()),
        Operand::Field {
            from_root,
            names,
            text,
            pos,
        } => {
            let mut cur = if *from_root { root } else { dot };
            for name in names {
                cur = match cur {
                    Value::Object(m) => m.get(name).ok_or_else(|| {
                        exec_error(*pos, text, &format!("map has no entry for key {name:?}"))
                    })?,
                    Value::Null => {
                        return Err(exec_error(
                            *pos,
                            text,
                            &format!("nil pointer evaluating interface {{}}.{name}"),
                        ))
                    }
                    other => {
                        return Err(exec_error(
                            *pos,
                            text,
                            &format!("can't evaluate field {name} in type {}", go_type(other)),
                        ))
                    }
                };
            }
            Ok(cur.clone())
        }
    }
}

fn eval_cmd(cmd: &Cmd, dot: &Value, root: &Value, piped: Option<Value>) -> Result<Value> {
    let first = &cmd.args[0];
    if let Operand::Ident(name, pos) = first {
        let mut args = Vec::new();
        for a in &cmd.args[1..] {
            args.push(eval_operand(a, dot, root)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        return call(name, *pos, args);
    }
    if cmd.args.len() > 1 || piped.is_some() {
        bail!("template: :1: can't give argument to non-function");
    }
    eval_operand(first, dot, root)
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Prints a value as Go's `fmt.Sprint` prints decoded JSON.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn want_args(name: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        bail!(
            "template: :1: wrong number of args for {name}: want {n} got {}",
            args.len()
        );
    }
    Ok(())
}

fn as_str(v: &Value) -> String {
    go_print(v)
}

fn call(name: &str, pos: usize, args: Vec<Value>) -> Result<Value> {
    let s = |v: &str| Value::String(v.to_string());
    Ok(match name {
        "json" => {
            want_args(name, &args, 1)?;
            s(&serde_json::to_string(&args[0])?)
        }
        "join" => {
            want_args(name, &args, 2)?;
            let list = match &args[0] {
                Value::Array(a) => a.iter().map(as_str).collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                other => vec![as_str(other)],
            };
            s(&list.join(&as_str(&args[1])))
        }
        "split" => {
            want_args(name, &args, 2)?;
            let text = as_str(&args[0]);
            let sep = as_str(&args[1]);
            Value::Array(text.split(sep.as_str()).map(s).collect())
        }
        "upper" => {
            want_args(name, &args, 1)?;
            s(&as_str(&args[0]).to_uppercase())
        }
        "lower" => {
            want_args(name, &args, 1)?;
            s(&as_str(&args[0]).to_lowercase())
        }
        "title" => {
            want_args(name, &args, 1)?;
            let text = as_str(&args[0]);
            let mut out = String::new();
            let mut start = true;
            for c in text.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            s(&out)
        }
        "truncate" => {
            want_args(name, &args, 2)?;
            let n = args[1].as_u64().unwrap_or(0) as usize;
            s(&as_str(&args[0]).chars().take(n).collect::<String>())
        }
        "len" => {
            want_args(name, &args, 1)?;
            let n = match &args[0] {
                Value::String(t) => t.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => bail!("len of type {}", go_type(other)),
            };
            Value::from(n)
        }
        "index" => {
            if args.is_empty() {
                bail!("template: :1: wrong number of args for index: want at least 1 got 0");
            }
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Object(m), key) => m.get(&as_str(key)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        a.get(i).cloned().ok_or_else(|| {
                            anyhow!("error calling index: index out of range: {n}")
                        })?
                    }
                    _ => bail!(
                        "error calling index: cannot index {} with {}",
                        go_type(&cur),
                        go_print(k)
                    ),
                };
            }
            cur
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                bail!(
                    "template: :1: wrong number of args for {name}: want 2 got {}",
                    args.len()
                );
            }
            let eq = args[1..].iter().any(|b| values_equal(&args[0], b));
            Value::Bool(if name == "eq" { eq } else { !eq })
        }
        "not" => {
            want_args(name, &args, 1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => args
            .iter()
            .find(|v| !truthy(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|v| truthy(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "print" => s(&args.iter().map(as_str).collect::<Vec<_>>().join("")),
        "println" => s(&format!(
            "{}\n",
            args.iter().map(as_str).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            if args.is_empty() {
                bail!("template: :1: wrong number of args for printf: want at least 1 got 0");
            }
            s(&printf(&as_str(&args[0]), &args[1..]))
        }
        other => bail!("template: :1:{pos}: function {other:?} not defined"),
    })
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'v' | 'd' | 'q')) => match it.next() {
                Some(v) if verb == 'q' => out.push_str(&format!("{:?}", as_str(v))),
                Some(v) => out.push_str(&as_str(v)),
                None => out.push_str(&format!("%!{verb}(MISSING)")),
            },
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "Id": "abc123",
            "State": {"Status": "running", "OOMKilled": false, "Health": {"Status": "healthy"}, "ExitCode": 0},
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"x": "y"}, "Healthcheck": null},
            "Mounts": [{"Source": "/a"}, {"Source": "/b"}]
        })
    }

    #[test]
    fn fields_and_text() {
        let d = data();
        assert_eq!(render("{{.State.Status}}", &d).unwrap(), "running");
        assert_eq!(render("{{.State.OOMKilled}}", &d).unwrap(), "false");
        assert_eq!(render("{{.State.Health.Status}}", &d).unwrap(), "healthy");
        assert_eq!(render("{{.Config.Env}}", &d).unwrap(), "[A=1 B=2]");
        assert_eq!(render("{{.Config.Labels}}", &d).unwrap(), "map[x:y]");
        assert_eq!(
            render("id={{.Id}} exit={{.State.ExitCode}}!", &d).unwrap(),
            "id=abc123 exit=0!"
        );
        assert_eq!(render("{{ .Id }}", &d).unwrap(), "abc123");
        assert_eq!(render("{{.Config.Healthcheck}}", &d).unwrap(), "<nil>");
    }

    #[test]
    fn functions_and_pipes() {
        let d = data();
        assert_eq!(
            render("{{json .Config.Env}}", &d).unwrap(),
            r#"["A=1","B=2"]"#
        );
        assert_eq!(
            render("{{json .Config}}", &d).unwrap(),
            r#"{"Env":["A=1","B=2"],"Healthcheck":null,"Labels":{"x":"y"}}"#
        );
        assert_eq!(
            render("{{.Config.Env | json}}", &d).unwrap(),
            r#"["A=1","B=2"]"#
        );
        assert_eq!(render("{{join .Config.Env \",\"}}", &d).unwrap(), "A=1,B=2");
        assert_eq!(render("{{upper .State.Status}}", &d).unwrap(), "RUNNING");
        assert_eq!(render("{{len .Mounts}}", &d).unwrap(), "2");
        assert_eq!(render("{{index .Config.Labels \"x\"}}", &d).unwrap(), "y");
        assert_eq!(
            render("{{printf \"%s-%d\" .Id 3}}", &d).unwrap(),
            "abc123-3"
        );
    }

    #[test]
    fn control_flow() {
        let d = data();
        assert_eq!(
            render("{{range .Mounts}}{{.Source}} {{end}}", &d).unwrap(),
            "/a /b "
        );
        assert_eq!(
            render(
                "{{if eq .State.Status \"running\"}}up{{else}}down{{end}}",
                &d
            )
            .unwrap(),
            "up"
        );
        assert_eq!(
            render("{{if .State.OOMKilled}}oom{{else}}ok{{end}}", &d).unwrap(),
            "ok"
        );
        assert_eq!(
            render("{{with .State}}{{.Status}}{{end}}", &d).unwrap(),
            "running"
        );
        assert_eq!(render("a {{- .Id -}} b", &d).unwrap(), "aabc123b");
        assert_eq!(
            render("{{range .Mounts}}{{$.Id}}{{end}}", &d).unwrap(),
            "abc123abc123"
        );
    }

    #[test]
    fn errors_like_go() {
        let d = data();
        assert_eq!(
            render("{{.State.Foo}}", &d).unwrap_err().to_string(),
            "template: :1:8: executing \"\" at <.State.Foo>: map has no entry for key \"Foo\""
        );
        let e = render("{{.Config.Healthcheck.Test}}", &d)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nil pointer evaluating interface {}.Test"),
            "{e}"
        );
        assert!(render("{{.Id", &d).is_err());
        assert!(render("{{if .Id}}x", &d).is_err());
        assert!(render("{{nosuch .Id}}", &d)
            .unwrap_err()
            .to_string()
            .contains("not defined"));
    }
}
