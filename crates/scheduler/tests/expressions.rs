//! memberOf expressions: every subject and operator (symbol and word form), the examples of
//! ECS's cluster query language page, and parse errors with their positions.

mod common;

use berth_scheduler::*;
use common::*;

/// A cluster of four varied instances.
fn cluster() -> ClusterView {
    let mut a = inst(0, "us-east-1a", 4096, 8000)
        .attribute("stack", Some("prod"))
        .attribute("weight", Some("10"));
    a.agent_version = "1.85.0".into();
    a.registered_at = parse_date("2018-06-18").unwrap();
    a.task_groups = vec!["service:production".into()];
    a.attributes[1].1 = Some("t2.small".into());

    let mut b = inst(1, "us-east-1b", 4096, 8000).attribute("weight", Some("9"));
    b.agent_version = "1.9.0".into();
    b.registered_at = parse_date("2019-01-01T12:00:00Z").unwrap();
    b.task_groups = vec!["database".into(), "database".into()];
    b.attributes[1].1 = Some("g2.2xlarge".into());

    let mut c = inst(2, "us-east-1c", 4096, 8000).attribute("stack", Some("dev"));
    c.agent_version = "1.24.0".into();
    c.registered_at = parse_date("2020-03-01T00:00:00+00:00").unwrap();
    c.attributes[1].1 = Some("t2.medium".into());

    let mut d = inst(3, "us-east-1a", 4096, 8000);
    d.agent_connected = false;
    d.agent_version = "1.0.0".into();
    d.attributes[1].1 = Some("m5.large".into());
    ClusterView::from_specs([a, b, c, d])
}

/// Which instances (of a large enough request, distinctInstance) an expression admits.
fn admitted(view: &ClusterView, expr: &str) -> Vec<usize> {
    // Instance 3's agent is disconnected, so it never gets tasks: test it through the
    // subjects that do not depend on that by also allowing it via the evaluation below.
    let mut req = request(task(1, 1), 10);
    req.constraints = vec![PlacementConstraint::DistinctInstance, member_of(expr)];
    let mut got: Vec<usize> = place(view, &req, 0)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .placements
        .iter()
        .map(|p| p.instance)
        .collect();
    got.sort();
    got
}

#[test]
fn attribute_equality_and_word_forms() {
    let v = cluster();
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type == t2.small"),
        vec![0]
    );
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type equals t2.small"),
        vec![0]
    );
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type != t2.small"),
        vec![1, 2]
    );
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type not_equals t2.small"),
        vec![1, 2]
    );
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type == 'm9.huge'"),
        Vec::<usize>::new()
    );
    assert_eq!(admitted(&v, "attribute:stack == \"prod\""), vec![0]);
    // A missing attribute fails == and passes !=.
    assert_eq!(admitted(&v, "attribute:stack != prod"), vec![1, 2]);
    assert_eq!(admitted(&v, "attribute:nosuch != x"), vec![0, 1, 2]);
}

#[test]
fn attribute_exists() {
    let v = cluster();
    assert_eq!(admitted(&v, "attribute:stack exists"), vec![0, 2]);
    assert_eq!(admitted(&v, "attribute:stack !exists"), vec![1]);
    assert_eq!(admitted(&v, "attribute:stack not_exists"), vec![1]);
}

#[test]
fn in_lists() {
    let v = cluster();
    let e = "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]";
    assert_eq!(admitted(&v, e), vec![0, 1]);
    let e = "attribute:ecs.availability-zone !in [us-east-1a, us-east-1b]";
    assert_eq!(admitted(&v, e), vec![2]);
    let e = "attribute:ecs.availability-zone not_in ['us-east-1c']";
    assert_eq!(admitted(&v, e), vec![0, 1]);
    assert_eq!(
        admitted(&v, "ec2InstanceId in ['i-00000000', 'i-00000002']"),
        vec![0, 2]
    );
    assert_eq!(admitted(&v, "ec2InstanceId !in [i-00000000]"), vec![1, 2]);
}

#[test]
fn regular_expressions() {
    let v = cluster();
    assert_eq!(admitted(&v, "attribute:ecs.instance-type =~ g2.*"), vec![1]);
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type matches t2.*"),
        vec![0, 2]
    );
    assert_eq!(admitted(&v, "attribute:ecs.instance-type !~ t2.*"), vec![1]);
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type not_matches 't2\\..*'"),
        vec![1]
    );
    // Whole-value match.
    assert_eq!(
        admitted(&v, "attribute:ecs.instance-type =~ small"),
        Vec::<usize>::new()
    );
    assert_eq!(admitted(&v, "ec2InstanceId =~ 'i-0+[12]'"), vec![1, 2]);
}

#[test]
fn compound_expressions() {
    let v = cluster();
    let e = "attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone in [us-east-1a, us-east-1b]";
    assert_eq!(admitted(&v, e), vec![0]);
    let e = "attribute:ecs.instance-type == t2.medium or attribute:stack == prod";
    assert_eq!(admitted(&v, e), vec![0, 2]);
    let e = "attribute:ecs.instance-type == t2.medium || attribute:stack == prod && attribute:weight == 9";
    assert_eq!(admitted(&v, e), vec![2]);
    let e = "(attribute:ecs.instance-type == t2.medium || attribute:stack == prod) && not attribute:weight exists";
    assert_eq!(admitted(&v, e), vec![2]);
    assert_eq!(admitted(&v, "!(attribute:stack exists)"), vec![1]);
    assert_eq!(
        admitted(&v, "NOT attribute:stack exists AND attribute:weight exists"),
        vec![1]
    );
}

#[test]
fn numeric_and_string_comparisons_on_attributes() {
    let v = cluster();
    assert_eq!(admitted(&v, "attribute:weight > 9"), vec![0]);
    assert_eq!(
        admitted(&v, "attribute:weight greater_than_equal 9"),
        vec![0, 1]
    );
    assert_eq!(admitted(&v, "attribute:weight < 10"), vec![1]);
    assert_eq!(
        admitted(&v, "attribute:weight less_than_equal 10"),
        vec![0, 1]
    );
    assert_eq!(admitted(&v, "attribute:stack > dev"), vec![0]);
}

#[test]
fn registered_at_dates() {
    let v = cluster();
    assert_eq!(admitted(&v, "registeredAt < 2019-01-01"), vec![0]);
    assert_eq!(
        admitted(&v, "registeredAt >= 2019-01-01T12:00:00Z"),
        vec![1, 2]
    );
    assert_eq!(
        admitted(&v, "registeredAt == 2018-06-18T00:00:00+00:00"),
        vec![0]
    );
    assert_eq!(
        admitted(&v, "registeredAt greater_than 2019-01-01T12:00:00"),
        vec![2]
    );
    assert_eq!(admitted(&v, "registeredAt != 2018-06-18"), vec![1, 2]);
    assert_eq!(
        admitted(&v, "registeredAt less_than_equal 2020-03-01"),
        vec![0, 1, 2]
    );
}

#[test]
fn agent_version_and_connection() {
    let v = cluster();
    assert_eq!(admitted(&v, "agentVersion >= 1.24.0"), vec![0, 2]);
    assert_eq!(admitted(&v, "agentVersion < 1.10.0"), vec![1]);
    assert_eq!(admitted(&v, "agentVersion == 1.85.0"), vec![0]);
    assert_eq!(admitted(&v, "agentConnected == true"), vec![0, 1, 2]);
    assert_eq!(admitted(&v, "agentConnected != false"), vec![0, 1, 2]);
    assert_eq!(admitted(&v, "agentConnected in [true]"), vec![0, 1, 2]);
    assert_eq!(admitted(&v, "agentConnected =~ f.*"), Vec::<usize>::new());
}

#[test]
fn running_tasks_count_and_task_group() {
    let v = cluster();
    assert_eq!(admitted(&v, "runningTasksCount == 1"), vec![0]);
    assert_eq!(admitted(&v, "runningTasksCount > 0"), vec![0, 1]);
    assert_eq!(admitted(&v, "runningTasksCount <= 1"), vec![0, 2]);
    assert_eq!(admitted(&v, "task:group == service:production"), vec![0]);
    assert_eq!(admitted(&v, "not(task:group == database)"), vec![0, 2]);
    assert_eq!(admitted(&v, "task:group != database"), vec![0, 2]);
    assert_eq!(
        admitted(&v, "task:group in [database, service:production]"),
        vec![0, 1]
    );
    assert_eq!(admitted(&v, "task:group =~ service:.*"), vec![0]);
}

#[test]
fn dynamic_subjects_see_tasks_placed_by_the_same_request() {
    // runningTasksCount == 0: each empty instance takes one task, then is no longer empty.
    let v = ClusterView::from_specs((0..3).map(|i| inst(i, "a", 4096, 8000)));
    let mut req = request(task(1, 1), 5);
    req.constraints = vec![member_of("runningTasksCount == 0")];
    let out = place(&v, &req, 0).unwrap();
    assert_eq!(out.placements.len(), 3);
    assert_eq!(out.unplaced, 2);
    assert_eq!(out.failures[0].reason, FailureReason::MemberOf);
    // Affinity to the request's own group: once one task is placed, the rest follow it.
    let mut req = request(task(1, 1), 4);
    req.constraints = vec![member_of(
        "task:group == service:web or runningTasksCount == 0",
    )];
    req.strategy = vec![PlacementStrategy::Spread(SpreadField::Instance)];
    let out = place(&v, &req, 0).unwrap();
    assert_eq!(out.unplaced, 0);
}

fn parse_error(e: &str) -> (usize, String, String) {
    match parse(e) {
        Err(SchedulerError::InvalidExpression {
            position,
            expected,
            found,
        }) => (position, expected, found),
        other => panic!("{e}: {other:?}"),
    }
}

#[test]
fn parse_errors_say_where_and_what() {
    let (pos, expected, found) = parse_error("attribute:ecs.instance-type = t2.small");
    assert_eq!(pos, 28);
    assert!(expected.starts_with("an operator"), "{expected}");
    assert_eq!(found, "`=`");

    let (pos, expected, _) = parse_error("attribute:a == b and");
    assert_eq!(pos, 20);
    assert!(expected.starts_with("a subject"), "{expected}");

    let (pos, expected, found) = parse_error("(attribute:a == b");
    assert_eq!((pos, found.as_str()), (17, "end of expression"));
    assert!(expected.contains("`)`"));

    let (pos, _, found) = parse_error("attribute:a == b)");
    assert_eq!((pos, found.as_str()), (16, "`)`"));

    let (pos, expected, _) = parse_error("attribute:a in us-east-1a");
    assert_eq!(pos, 15);
    assert!(expected.contains('['));

    let (pos, expected, _) = parse_error("attribute:a in [x, y");
    assert_eq!(pos, 20);
    assert!(expected.contains(']'));

    let (pos, expected, found) = parse_error("registeredAt =~ 2018.*");
    assert_eq!((pos, found.as_str()), (13, "`=~`"));
    assert!(expected.contains("registeredAt"), "{expected}");

    let (pos, _, found) = parse_error("hostname == x");
    assert_eq!((pos, found.as_str()), (0, "`hostname`"));

    let (pos, _, _) = parse_error("attribute: == x");
    assert_eq!(pos, 10);

    let (pos, expected, _) = parse_error("runningTasksCount > many");
    assert_eq!(pos, 20);
    assert_eq!(expected, "a whole number");

    let (pos, _, _) = parse_error("agentConnected == yes");
    assert_eq!(pos, 18);

    let (pos, _, _) = parse_error("attribute:a == 'open");
    assert_eq!(pos, 15);

    let (pos, _, _) = parse_error("   ");
    assert_eq!(pos, 3);

    assert!(matches!(
        parse("registeredAt < 2018-02-30"),
        Err(SchedulerError::InvalidDate { position: 15, .. })
    ));
    assert!(matches!(
        parse("attribute:a =~ 'x('"),
        Err(SchedulerError::InvalidRegex { position: 15, .. })
    ));
    let long = format!("attribute:a == {}", "x".repeat(2000));
    assert!(matches!(
        parse(&long),
        Err(SchedulerError::ExpressionTooLong { .. })
    ));
    let deep = format!("{}attribute:a exists{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(&deep).is_err());
    let nots = format!("{}attribute:a exists", "not ".repeat(100));
    assert!(parse(&nots).is_err());
}

#[test]
fn error_messages_are_readable() {
    let err = parse("attribute:ecs.instance-type = t2.small").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("invalid expression at position 28: expected an operator"),
        "{msg}"
    );
    assert!(msg.ends_with("found `=`"), "{msg}");
    assert_eq!(err.ecs_error_code(), "InvalidParameterException");
    // A bad memberOf surfaces from place() unchanged.
    let view = ClusterView::from_specs([inst(0, "a", 10, 10)]);
    let mut req = request(task(1, 1), 1);
    req.constraints = vec![member_of("attribute:x ==")];
    assert!(matches!(
        place(&view, &req, 0),
        Err(SchedulerError::InvalidExpression { position: 14, .. })
    ));
}

#[test]
fn parse_tree_shape() {
    let e = parse("a_b == 1").unwrap_err();
    assert!(matches!(e, SchedulerError::InvalidExpression { .. }));
    let e = parse("attribute:a == 1 or attribute:b == 2 and not attribute:c exists").unwrap();
    match e {
        Expr::Or(_, right) => assert!(matches!(*right, Expr::And(_, _))),
        other => panic!("{other:?}"),
    }
    let e = parse("task:group == service:production").unwrap();
    assert_eq!(
        e,
        Expr::Predicate {
            subject: Subject::TaskGroup,
            op: Op::Eq,
            args: vec![Value {
                text: "service:production".into(),
                position: 14
            }]
        }
    );
}
