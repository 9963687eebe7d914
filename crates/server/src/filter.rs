//! Evaluates a cluster query language expression (parsed by [`berth_scheduler::parse`])
//! against one stored container instance: the `filter` of ListContainerInstances.
//!
//! Semantics follow the scheduler's: a missing attribute fails every positive test, negated
//! operators are the negation of the positive ones, `=~` matches the whole value, comparisons
//! are numeric when both sides are numbers (versions for `agentVersion`), else by string.

use std::cmp::Ordering;

use berth_scheduler::{parse_date, Expr, Op, Subject, Value, Version};
use regex::Regex;

use crate::records::InstanceRecord;

/// Parses a `filter` with [`berth_scheduler::parse`], also refusing an unquoted value made only
/// of operator characters (`attribute:zone === x` is a typo, not a test for `=`).
pub fn parse(src: &str) -> Result<Expr, berth_api::EcsError> {
    let e = berth_scheduler::parse(src)?;
    check_values(&e, src)?;
    Ok(e)
}

fn check_values(e: &Expr, src: &str) -> Result<(), berth_api::EcsError> {
    match e {
        Expr::Not(inner) => check_values(inner, src),
        Expr::And(a, b) | Expr::Or(a, b) => {
            check_values(a, src)?;
            check_values(b, src)
        }
        Expr::Predicate { args, .. } => {
            for v in args {
                let is_quote = |i: Option<usize>| {
                    matches!(i.and_then(|i| src.as_bytes().get(i)), Some(b'\'' | b'"'))
                };
                let quoted = is_quote(Some(v.position)) || is_quote(v.position.checked_sub(1));
                if !quoted && !v.text.is_empty() && v.text.chars().all(|c| "=!<>~".contains(c)) {
                    return Err(berth_api::EcsError::invalid(format!(
                        "invalid expression at position {}: expected a value, found `{}` (quote it if it is meant)",
                        v.position, v.text
                    )));
                }
            }
            Ok(())
        }
    }
}

/// Whether the instance satisfies the expression.
pub fn matches(e: &Expr, inst: &InstanceRecord) -> bool {
    match e {
        Expr::Not(inner) => !matches(inner, inst),
        Expr::And(a, b) => matches(a, inst) && matches(b, inst),
        Expr::Or(a, b) => matches(a, inst) || matches(b, inst),
        Expr::Predicate { subject, op, args } => {
            let (positive, negate) = positive(*op);
            let holds = match subject {
                Subject::TaskGroup => inst
                    .groups
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .any(|(g, _)| test(positive, g, args, subject)),
                _ => match subject_value(subject, inst) {
                    Some(v) => test(positive, &v, args, subject),
                    None => false,
                },
            };
            holds != negate
        }
    }
}

fn positive(op: Op) -> (Op, bool) {
    match op {
        Op::Ne => (Op::Eq, true),
        Op::NotExists => (Op::Exists, true),
        Op::NotIn => (Op::In, true),
        Op::NotMatches => (Op::Matches, true),
        other => (other, false),
    }
}

fn subject_value(s: &Subject, inst: &InstanceRecord) -> Option<String> {
    let i = &inst.instance;
    match s {
        Subject::AgentConnected => Some(i.agent_connected.to_string()),
        Subject::AgentVersion => i.version_info.as_ref()?.agent_version.clone(),
        Subject::Attribute(name) => i
            .attributes
            .iter()
            .find(|a| &a.name == name)
            .map(|a| a.value.clone().unwrap_or_default()),
        Subject::Ec2InstanceId => Some(i.ec2_instance_id.clone()),
        Subject::RegisteredAt => Some((i.registered_at as i64).to_string()),
        Subject::RunningTasksCount => Some(i.running_tasks_count.to_string()),
        Subject::TaskGroup => None,
    }
}

fn compare(subject: &Subject, have: &str, want: &str) -> Ordering {
    match subject {
        Subject::RegisteredAt => {
            let h: i64 = have.parse().unwrap_or(0);
            let w = parse_date(want).unwrap_or(0);
            h.cmp(&w)
        }
        Subject::AgentVersion => match (Version::parse(have), Version::parse(want)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => have.cmp(want),
        },
        _ => match (have.parse::<f64>(), want.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            _ => have.cmp(want),
        },
    }
}

fn test(op: Op, have: &str, args: &[Value], subject: &Subject) -> bool {
    let first = args.first().map(|v| v.text.as_str()).unwrap_or("");
    match op {
        Op::Exists => true,
        Op::Eq => compare(subject, have, first) == Ordering::Equal,
        Op::Gt => compare(subject, have, first) == Ordering::Greater,
        Op::Ge => compare(subject, have, first) != Ordering::Less,
        Op::Lt => compare(subject, have, first) == Ordering::Less,
        Op::Le => compare(subject, have, first) != Ordering::Greater,
        Op::In => args
            .iter()
            .any(|a| compare(subject, have, &a.text) == Ordering::Equal),
        Op::Matches => Regex::new(&format!("^(?:{first})$")).is_ok_and(|r| r.is_match(have)),
        // Negated operators were turned positive by the caller.
        Op::Ne | Op::NotExists | Op::NotIn | Op::NotMatches => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_only_values_need_quotes() {
        assert!(parse("attribute:zone === ").is_err());
        assert!(parse("attribute:zone == '='").is_ok());
        assert!(parse("attribute:zone == a").is_ok());
    }
}
