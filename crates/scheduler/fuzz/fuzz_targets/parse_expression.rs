//! Fuzzes the cluster query language: parsing must never panic, and an expression that parses
//! must also place (compile and evaluate) without panicking.
#![no_main]

use berth_scheduler::{
    parse, place, ClusterView, InstanceSpec, PlacementConstraint, PlacementRequest, TaskSpec,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if parse(text).is_err() {
        return;
    }
    let view = ClusterView::from_specs((0..3).map(|i| {
        InstanceSpec::new(format!("arn:{i}"), format!("i-{i}"), 1024, 1024)
            .attribute("ecs.availability-zone", Some(["a", "b", "c"][i]))
            .attribute("flag", None)
    }));
    let mut req = PlacementRequest::new(TaskSpec::default(), 3, "service:web");
    req.constraints = vec![PlacementConstraint::MemberOf(text.to_owned())];
    let _ = place(&view, &req, 0);
});
