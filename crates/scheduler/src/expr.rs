//! ECS's cluster query language: parsing ([`parse`]) into an [`Expr`], and compiling an
//! expression against a view into a [`Cond`] evaluated per instance without allocation.
//!
//! Grammar (keywords and operator words are case-insensitive):
//!
//! ```text
//! expr     := and (("or" | "||") and)*
//! and      := unary (("and" | "&&") unary)*
//! unary    := ("not" | "!") unary | "(" expr ")" | predicate
//! predicate:= subject operator [argument]
//! subject  := agentConnected | agentVersion | attribute:<name> | ec2InstanceId
//!           | registeredAt | runningTasksCount | task:group
//! operator := == equals | != not_equals | > greater_than | >= greater_than_equal
//!           | < less_than | <= less_than_equal | exists | !exists not_exists
//!           | in | !in not_in | =~ matches | !~ not_matches
//! argument := value | "[" value ("," value)* "]"       (lists only after in / !in)
//! value    := 'quoted' | "quoted" | run of characters other than space ( ) [ ] , ' "
//! ```
//!
//! Semantics: a missing attribute fails every positive test (`==`, `in`, `=~`, comparisons,
//! `exists`), and the negated operators are the negation of the positive ones. `=~` matches the
//! whole value. `task:group OP x` holds when some running task of the instance (including tasks
//! placed earlier in the same request) has a group satisfying the positive operator.
//! Comparisons on attributes are numeric when both sides are numbers, else by string.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;

use crate::error::SchedulerError;
use crate::intern::{Interner, Sym};
use crate::util::{parse_date, Version};
use crate::view::{ClusterView, Slot};

/// ECS's limit on an expression's length.
pub const MAX_EXPRESSION_LEN: usize = 2000;
const MAX_DEPTH: usize = 64;

/// The thing a predicate tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    Attribute(String),
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

/// A predicate's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Exists => "exists",
            Op::NotExists => "!exists",
            Op::In => "in",
            Op::NotIn => "!in",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
        }
    }
}

/// A parsed argument value with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub position: usize,
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Predicate {
        subject: Subject,
        op: Op,
        /// Empty for `exists`/`!exists`, one value for scalar operators, the list for `in`.
        args: Vec<Value>,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// Parses (and checks the values of) a cluster query language expression.
pub fn parse(src: &str) -> Result<Expr, SchedulerError> {
    let length = src.chars().count();
    if length > MAX_EXPRESSION_LEN {
        return Err(SchedulerError::ExpressionTooLong {
            length,
            limit: MAX_EXPRESSION_LEN,
        });
    }
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.pos == src.len() {
        return Err(p.error("an expression"));
    }
    let e = p.or()?;
    p.skip_ws();
    if p.pos != src.len() {
        return Err(p.error(if p.peek() == Some(b')') {
            "`and`, `or` or end of expression (unbalanced `)`)"
        } else {
            "`and`, `or` or end of expression"
        }));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

fn is_delim(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b'[' | b']' | b',' | b'\'' | b'"')
}

fn is_subject_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/' | b'\\' | b'@')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// A description of what is at the current position, for messages.
    fn found(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return "end of expression".into();
        }
        let b = rest.as_bytes()[0];
        let len = if is_delim(b) {
            rest.chars().next().map_or(1, char::len_utf8)
        } else {
            rest.bytes().take_while(|&b| !is_delim(b)).count()
        };
        let token: String = rest[..len].chars().take(40).collect();
        format!("`{token}`")
    }

    fn error(&self, expected: &str) -> SchedulerError {
        SchedulerError::InvalidExpression {
            position: self.pos,
            expected: expected.into(),
            found: self.found(),
        }
    }

    /// Consumes keyword `word` (case-insensitive) if it stands alone at the current position.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest().as_bytes();
        if rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && rest
                .get(word.len())
                .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn symbol(&mut self, sym: &str) -> bool {
        if self.rest().starts_with(sym) {
            self.pos += sym.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, SchedulerError> {
        let mut left = self.and()?;
        loop {
            self.skip_ws();
            if self.symbol("||") || self.keyword("or") {
                let right = self.and()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Expr, SchedulerError> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            if self.symbol("&&") || self.keyword("and") {
                let right = self.unary()?;
                left = Expr::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn enter(&mut self) -> Result<(), SchedulerError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("less nesting (at most 64 levels of `(` and `not`)"));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, SchedulerError> {
        self.skip_ws();
        if self.keyword("not") || (self.peek() == Some(b'!') && self.symbol("!")) {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.symbol("(") {
            self.enter()?;
            let inner = self.or()?;
            self.skip_ws();
            if !self.symbol(")") {
                return Err(self.error("`)`, `and` or `or`"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.predicate()
    }

    fn subject(&mut self) -> Result<Subject, SchedulerError> {
        const EXPECTED: &str = "a subject (agentConnected, agentVersion, attribute:<name>, \
                                ec2InstanceId, registeredAt, runningTasksCount, task:group), \
                                `not` or `(`";
        let start = self.pos;
        let len = self
            .rest()
            .bytes()
            .take_while(|&b| is_subject_char(b))
            .count();
        let word = &self.rest()[..len];
        let lower = word.to_ascii_lowercase();
        let subject = match lower.as_str() {
            "agentconnected" => Subject::AgentConnected,
            "agentversion" => Subject::AgentVersion,
            "ec2instanceid" => Subject::Ec2InstanceId,
            "registeredat" => Subject::RegisteredAt,
            "runningtaskscount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            _ if lower.starts_with("attribute:") => {
                let name = &word["attribute:".len()..];
                if name.is_empty() {
                    self.pos = start + len;
                    return Err(self.error("an attribute name after `attribute:`"));
                }
                Subject::Attribute(name.to_owned())
            }
            _ => return Err(self.error(EXPECTED)),
        };
        self.pos = start + len;
        Ok(subject)
    }

    fn operator(&mut self) -> Option<Op> {
        const SYMBOLS: [(&str, Op); 8] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=~", Op::Matches),
            ("!~", Op::NotMatches),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        const WORDS: [(&str, Op); 14] = [
            ("!exists", Op::NotExists),
            ("!in", Op::NotIn),
            ("equals", Op::Eq),
            ("not_equals", Op::Ne),
            ("greater_than_equal", Op::Ge),
            ("greater_than", Op::Gt),
            ("less_than_equal", Op::Le),
            ("less_than", Op::Lt),
            ("exists", Op::Exists),
            ("not_exists", Op::NotExists),
            ("in", Op::In),
            ("not_in", Op::NotIn),
            ("matches", Op::Matches),
            ("not_matches", Op::NotMatches),
        ];
        for (w, op) in WORDS {
            if self.keyword(w) {
                return Some(op);
            }
        }
        for (s, op) in SYMBOLS {
            if self.symbol(s) {
                return Some(op);
            }
        }
        None
    }

    fn value(&mut self) -> Result<Value, SchedulerError> {
        self.skip_ws();
        let position = self.pos;
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                let body = &self.rest()[1..];
                match body.find(q as char) {
                    Some(end) => {
                        let text = body[..end].to_owned();
                        self.pos += end + 2;
                        Ok(Value { text, position })
                    }
                    None => Err(SchedulerError::InvalidExpression {
                        position,
                        expected: format!("a closing {}", q as char),
                        found: "end of expression".into(),
                    }),
                }
            }
            _ => {
                let len = self.rest().bytes().take_while(|&b| !is_delim(b)).count();
                if len == 0 {
                    return Err(self.error("a value"));
                }
                let text = self.rest()[..len].to_owned();
                self.pos += len;
                Ok(Value { text, position })
            }
        }
    }

    fn predicate(&mut self) -> Result<Expr, SchedulerError> {
        let subject = self.subject()?;
        self.skip_ws();
        let op_pos = self.pos;
        let Some(op) = self.operator() else {
            return Err(self.error(
                "an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~ or a word form)",
            ));
        };
        if !valid_op(&subject, op) {
            self.pos = op_pos;
            return Err(self.error(&format!(
                "an operator valid for {} ({})",
                subject_name(&subject),
                valid_ops_text(&subject)
            )));
        }
        let args = match op {
            Op::Exists | Op::NotExists => Vec::new(),
            Op::In | Op::NotIn => {
                self.skip_ws();
                if !self.symbol("[") {
                    return Err(self.error("`[` starting a list"));
                }
                let mut list = vec![self.value()?];
                loop {
                    self.skip_ws();
                    if self.symbol(",") {
                        list.push(self.value()?);
                    } else if self.symbol("]") {
                        break;
                    } else {
                        return Err(self.error("`,` or `]`"));
                    }
                }
                list
            }
            _ => {
                self.skip_ws();
                if self.peek() == Some(b'[') {
                    return Err(self.error("a single value (lists go with `in` and `!in`)"));
                }
                vec![self.value()?]
            }
        };
        let expr = Expr::Predicate { subject, op, args };
        check_values(&expr)?;
        Ok(expr)
    }
}

fn subject_name(s: &Subject) -> String {
    match s {
        Subject::AgentConnected => "agentConnected".into(),
        Subject::AgentVersion => "agentVersion".into(),
        Subject::Attribute(n) => format!("attribute:{n}"),
        Subject::Ec2InstanceId => "ec2InstanceId".into(),
        Subject::RegisteredAt => "registeredAt".into(),
        Subject::RunningTasksCount => "runningTasksCount".into(),
        Subject::TaskGroup => "task:group".into(),
    }
}

const ORDERED: [Op; 6] = [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];
const SETLIKE: [Op; 6] = [
    Op::Eq,
    Op::Ne,
    Op::In,
    Op::NotIn,
    Op::Matches,
    Op::NotMatches,
];

fn valid_ops(s: &Subject) -> &'static [Op] {
    match s {
        Subject::AgentConnected | Subject::Ec2InstanceId | Subject::TaskGroup => &SETLIKE,
        Subject::AgentVersion | Subject::RegisteredAt | Subject::RunningTasksCount => &ORDERED,
        Subject::Attribute(_) => &[
            Op::Eq,
            Op::Ne,
            Op::Gt,
            Op::Ge,
            Op::Lt,
            Op::Le,
            Op::Exists,
            Op::NotExists,
            Op::In,
            Op::NotIn,
            Op::Matches,
            Op::NotMatches,
        ],
    }
}

fn valid_op(s: &Subject, op: Op) -> bool {
    valid_ops(s).contains(&op)
}

fn valid_ops_text(s: &Subject) -> String {
    valid_ops(s)
        .iter()
        .map(|o| o.symbol())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks dates, versions, numbers, booleans and regular expressions where they are written.
fn check_values(e: &Expr) -> Result<(), SchedulerError> {
    let Expr::Predicate { subject, op, args } = e else {
        return Ok(());
    };
    for v in args {
        if matches!(op, Op::Matches | Op::NotMatches) {
            build_regex(v)?;
            continue;
        }
        let bad = |expected: &str| SchedulerError::InvalidExpression {
            position: v.position,
            expected: expected.into(),
            found: format!("`{}`", v.text),
        };
        match subject {
            Subject::RegisteredAt if parse_date(&v.text).is_none() => {
                return Err(SchedulerError::InvalidDate {
                    position: v.position,
                    found: v.text.clone(),
                });
            }
            Subject::AgentVersion if Version::parse(&v.text).is_none() => {
                return Err(bad("an agent version such as 1.85.0"));
            }
            Subject::RunningTasksCount if v.text.parse::<i64>().is_err() => {
                return Err(bad("a whole number"));
            }
            Subject::AgentConnected
                if !v.text.eq_ignore_ascii_case("true")
                    && !v.text.eq_ignore_ascii_case("false") =>
            {
                return Err(bad("true or false"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// How many compiled regular expressions [`build_regex`] keeps (all are dropped when full).
const REGEX_CACHE: usize = 256;

/// Compiles `v` as a whole-value regular expression. Compiling costs tens of microseconds, more
/// than placing a request, and a cluster's expressions repeat, so successful compilations are
/// kept by pattern text (a `Regex` is immutable and cheap to clone; this changes no result).
fn build_regex(v: &Value) -> Result<Regex, SchedulerError> {
    static CACHE: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Mutex::default);
    if let Some(re) = CACHE.lock().ok().and_then(|c| c.get(&v.text).cloned()) {
        return Ok(re);
    }
    let re = compile_regex(v)?;
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= REGEX_CACHE {
            cache.clear();
        }
        cache.insert(v.text.clone(), re.clone());
    }
    Ok(re)
}

fn compile_regex(v: &Value) -> Result<Regex, SchedulerError> {
    regex::RegexBuilder::new(&format!("^(?:{})$", v.text))
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| SchedulerError::InvalidRegex {
            position: v.position,
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_owned(),
        })
}

// ---------------------------------------------------------------------------------------------
// Compiled form.

#[derive(Clone, Copy, Debug)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Cmp::Eq => o == Ordering::Equal,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Ge => o != Ordering::Less,
            Cmp::Lt => o == Ordering::Less,
            Cmp::Le => o != Ordering::Greater,
        }
    }
}

/// A string test on an interned value: symbols resolved once per request, regex results cached
/// per symbol.
#[derive(Debug)]
pub(crate) enum SymTest {
    Exists,
    /// `None`: the value is interned nowhere in the view, so nothing equals it.
    Eq(Option<Sym>),
    In(Box<[Sym]>),
    Match(Regex, RefCell<Vec<u8>>),
    Cmp(Cmp, Box<str>, Option<f64>),
}

impl SymTest {
    pub(crate) fn test(&self, sym: Sym, strings: &Interner) -> bool {
        match self {
            SymTest::Exists => true,
            SymTest::Eq(v) => *v == Some(sym),
            SymTest::In(list) => list.contains(&sym),
            SymTest::Match(re, cache) => {
                let i = sym.index();
                if let Some(&c) = cache.borrow().get(i) {
                    if c != 0 {
                        return c == 1;
                    }
                }
                let hit = re.is_match(strings.resolve(sym));
                let mut cache = cache.borrow_mut();
                if cache.len() <= i {
                    cache.resize(i + 1, 0);
                }
                cache[i] = if hit { 1 } else { 2 };
                hit
            }
            SymTest::Cmp(cmp, text, num) => {
                let s = strings.resolve(sym);
                let ord = match (num, s.parse::<f64>().ok()) {
                    (Some(b), Some(a)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
                    _ => s.cmp(text),
                };
                cmp.holds(ord)
            }
        }
    }
}

#[derive(Debug)]
pub(crate) enum StrTest {
    Eq(Box<str>),
    In(Box<[Box<str>]>),
    Match(Regex),
}

impl StrTest {
    fn test(&self, s: &str) -> bool {
        match self {
            StrTest::Eq(v) => **v == *s,
            StrTest::In(list) => list.iter().any(|v| **v == *s),
            StrTest::Match(re) => re.is_match(s),
        }
    }
}

/// A compiled expression, evaluated per instance.
#[derive(Debug)]
pub(crate) enum Cond {
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    AgentConnected {
        if_true: bool,
        if_false: bool,
    },
    AgentVersion(Cmp, Version),
    /// `None` name: no instance has the attribute.
    Attribute(Option<Sym>, SymTest),
    Ec2InstanceId(StrTest),
    RegisteredAt(Cmp, i64),
    RunningTasks(Cmp, i64),
    /// The group test, and whether the request's own group passes it.
    TaskGroup(SymTest, bool),
}

/// Per-instance state that changes while a request is placed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dynamic {
    /// Tasks of the request already placed on the instance.
    pub placed: u32,
}

impl Cond {
    /// Whether the result depends on tasks placed during the request.
    pub(crate) fn is_dynamic(&self) -> bool {
        match self {
            Cond::Not(c) => c.is_dynamic(),
            Cond::And(a, b) | Cond::Or(a, b) => a.is_dynamic() || b.is_dynamic(),
            Cond::RunningTasks(..) | Cond::TaskGroup(..) => true,
            _ => false,
        }
    }

    pub(crate) fn eval(&self, view: &ClusterView, inst: &Slot, dynamic: Dynamic) -> bool {
        let strings = &view.strings;
        match self {
            Cond::Not(c) => !c.eval(view, inst, dynamic),
            Cond::And(a, b) => a.eval(view, inst, dynamic) && b.eval(view, inst, dynamic),
            Cond::Or(a, b) => a.eval(view, inst, dynamic) || b.eval(view, inst, dynamic),
            Cond::AgentConnected { if_true, if_false } => {
                if inst.agent_connected {
                    *if_true
                } else {
                    *if_false
                }
            }
            Cond::AgentVersion(cmp, v) => cmp.holds(inst.version.cmp(v)),
            Cond::Attribute(name, test) => match name.and_then(|n| view.attribute_sym(inst, n)) {
                Some(v) => test.test(v, strings),
                None => false,
            },
            Cond::Ec2InstanceId(t) => t.test(&inst.ec2_instance_id),
            Cond::RegisteredAt(cmp, t) => cmp.holds(inst.registered_at.cmp(t)),
            Cond::RunningTasks(cmp, n) => {
                let count = i64::from(inst.running_tasks) + i64::from(dynamic.placed);
                cmp.holds(count.cmp(n))
            }
            Cond::TaskGroup(test, own) => {
                (dynamic.placed > 0 && *own)
                    || view
                        .tasks_of(inst)
                        .iter()
                        .any(|(g, _)| test.test(*g, strings))
            }
        }
    }
}

fn cmp_of(op: Op) -> (Cmp, bool) {
    match op {
        Op::Eq => (Cmp::Eq, false),
        Op::Ne => (Cmp::Eq, true),
        Op::Gt => (Cmp::Gt, false),
        Op::Ge => (Cmp::Ge, false),
        Op::Lt => (Cmp::Lt, false),
        Op::Le => (Cmp::Le, false),
        _ => (Cmp::Eq, false),
    }
}

fn negated(op: Op) -> bool {
    matches!(op, Op::Ne | Op::NotExists | Op::NotIn | Op::NotMatches)
}

fn sym_test(op: Op, args: &[Value], strings: &Interner) -> Result<SymTest, SchedulerError> {
    Ok(match op {
        Op::Exists | Op::NotExists => SymTest::Exists,
        Op::Eq | Op::Ne => SymTest::Eq(strings.get(&args[0].text)),
        Op::In | Op::NotIn => {
            let mut syms: Vec<Sym> = args.iter().filter_map(|v| strings.get(&v.text)).collect();
            syms.sort_unstable();
            syms.dedup();
            SymTest::In(syms.into_boxed_slice())
        }
        Op::Matches | Op::NotMatches => SymTest::Match(build_regex(&args[0])?, RefCell::default()),
        Op::Gt | Op::Ge | Op::Lt | Op::Le => SymTest::Cmp(
            cmp_of(op).0,
            args[0].text.as_str().into(),
            args[0].text.parse::<f64>().ok(),
        ),
    })
}

fn str_test(op: Op, args: &[Value]) -> Result<StrTest, SchedulerError> {
    Ok(match op {
        Op::In | Op::NotIn => StrTest::In(args.iter().map(|v| v.text.as_str().into()).collect()),
        Op::Matches | Op::NotMatches => StrTest::Match(build_regex(&args[0])?),
        _ => StrTest::Eq(args[0].text.as_str().into()),
    })
}

/// Compiles a parsed expression against a view's strings; `group` is the request's own group.
pub(crate) fn compile(e: &Expr, strings: &Interner, group: &str) -> Result<Cond, SchedulerError> {
    Ok(match e {
        Expr::Not(inner) => Cond::Not(Box::new(compile(inner, strings, group)?)),
        Expr::And(a, b) => Cond::And(
            Box::new(compile(a, strings, group)?),
            Box::new(compile(b, strings, group)?),
        ),
        Expr::Or(a, b) => Cond::Or(
            Box::new(compile(a, strings, group)?),
            Box::new(compile(b, strings, group)?),
        ),
        Expr::Predicate { subject, op, args } => {
            let op = *op;
            let positive = match subject {
                Subject::AgentConnected => {
                    let t = str_test(op, args)?;
                    let test = |b: bool| {
                        let s = if b { "true" } else { "false" };
                        match &t {
                            StrTest::Match(re) => re.is_match(s),
                            StrTest::Eq(v) => v.eq_ignore_ascii_case(s),
                            StrTest::In(l) => l.iter().any(|v| v.eq_ignore_ascii_case(s)),
                        }
                    };
                    Cond::AgentConnected {
                        if_true: test(true),
                        if_false: test(false),
                    }
                }
                Subject::AgentVersion => Cond::AgentVersion(
                    cmp_of(op).0,
                    Version::parse(&args[0].text).unwrap_or_default(),
                ),
                Subject::Attribute(name) => {
                    Cond::Attribute(strings.get(name), sym_test(op, args, strings)?)
                }
                Subject::Ec2InstanceId => Cond::Ec2InstanceId(str_test(op, args)?),
                Subject::RegisteredAt => {
                    Cond::RegisteredAt(cmp_of(op).0, parse_date(&args[0].text).unwrap_or(0))
                }
                Subject::RunningTasksCount => {
                    Cond::RunningTasks(cmp_of(op).0, args[0].text.parse().unwrap_or(0))
                }
                Subject::TaskGroup => {
                    let own = str_test(op, args)?.test(group);
                    Cond::TaskGroup(sym_test(op, args, strings)?, own)
                }
            };
            if negated(op) {
                Cond::Not(Box::new(positive))
            } else {
                positive
            }
        }
    })
}
