//! The store key layout (documented in the crate root). Every key the server writes is built
//! here.

/// `clusters/NAME`
pub fn cluster(name: &str) -> String {
    format!("clusters/{name}")
}
pub const CLUSTERS: &str = "clusters/";

/// `families/FAMILY`: the family's last revision and number of ACTIVE revisions.
pub fn family(family: &str) -> String {
    format!("families/{family}")
}
pub const FAMILIES: &str = "families/";

/// `taskdefs/FAMILY/REVISION` with the revision zero-padded to 10 digits (key order is
/// revision order).
pub fn taskdef(family: &str, revision: u32) -> String {
    format!("taskdefs/{family}/{revision:010}")
}
/// `taskdefs/FAMILY/`
pub fn taskdefs_of(family: &str) -> String {
    format!("taskdefs/{family}/")
}
pub const TASKDEFS: &str = "taskdefs/";

/// `instances/CLUSTER/ID`
pub fn instance(cluster: &str, id: &str) -> String {
    format!("instances/{cluster}/{id}")
}
pub const INSTANCES_PREFIX: &str = "instances/";
/// `instances/CLUSTER/`
pub fn instances_of(cluster: &str) -> String {
    format!("instances/{cluster}/")
}

/// `tasks/CLUSTER/ID`
pub fn task(cluster: &str, id: &str) -> String {
    format!("tasks/{cluster}/{id}")
}
/// `tasks/CLUSTER/`
pub fn tasks_of(cluster: &str) -> String {
    format!("tasks/{cluster}/")
}

/// `assignments/INSTANCE_ID/TASK_ID`: a task placed on an instance and not yet STOPPED (what
/// the node agent watches).
pub fn assignment(instance_id: &str, task_id: &str) -> String {
    format!("assignments/{instance_id}/{task_id}")
}
/// `assignments/INSTANCE_ID/`
pub fn assignments_of(instance_id: &str) -> String {
    format!("assignments/{instance_id}/")
}

/// `idempotency/CLUSTER/CLIENT_TOKEN`: the tasks a RunTask with this clientToken created.
pub fn idempotency(cluster: &str, token: &str) -> String {
    format!("idempotency/{cluster}/{token}")
}
/// `idempotency/CLUSTER/`
pub fn idempotency_of(cluster: &str) -> String {
    format!("idempotency/{cluster}/")
}

/// `settings/default/NAME` (PutAccountSettingDefault) and `settings/principal/ARN/NAME`.
pub fn setting_default(name: &str) -> String {
    format!("settings/default/{name}")
}
pub fn setting_principal(principal: &str, name: &str) -> String {
    format!("settings/principal/{principal}/{name}")
}
pub fn settings_of_principal(principal: &str) -> String {
    format!("settings/principal/{principal}/")
}

/// The last path segment of a key (the id or name).
pub fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// `secrets/NAME`: a Secrets Manager secret.
pub fn secret(name: &str) -> String {
    format!("secrets/{name}")
}
pub const SECRETS: &str = "secrets/";

/// `parameters/NAME`: an SSM parameter (NAME keeps its leading `/`).
pub fn parameter(name: &str) -> String {
    format!("parameters/{name}")
}
pub const PARAMETERS: &str = "parameters/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(taskdef("web", 3), "taskdefs/web/0000000003");
        assert!(taskdef("web", 9) < taskdef("web", 10));
        assert_eq!(task("demo", "abc"), "tasks/demo/abc");
        assert!(task("demo", "abc").starts_with(&tasks_of("demo")));
        assert_eq!(last_segment("tasks/demo/abc"), "abc");
        assert_eq!(assignment("i1", "t1"), "assignments/i1/t1");
    }
}
