//! `dependsOn`: validation (known containers, known conditions, no cycles) and the order in
//! which a task's containers stop (dependents before what they depend on). Pure.

use berth_api::shapes::taskdefs::ContainerDefinition;

/// A dependency condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The dependency has started.
    Start,
    /// The dependency has exited (any code).
    Complete,
    /// The dependency has exited with code 0.
    Success,
    /// The dependency's health check passed.
    Healthy,
}

impl Condition {
    pub fn parse(s: &str) -> Option<Condition> {
        match s {
            "START" => Some(Condition::Start),
            "COMPLETE" => Some(Condition::Complete),
            "SUCCESS" => Some(Condition::Success),
            "HEALTHY" => Some(Condition::Healthy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        }
    }
}

/// Each container's dependencies as (index of the dependency, condition).
pub fn dependencies(defs: &[ContainerDefinition]) -> Result<Vec<Vec<(usize, Condition)>>, String> {
    let index = |n: &str| defs.iter().position(|d| d.name.as_deref() == Some(n));
    let mut out = Vec::with_capacity(defs.len());
    for d in defs {
        let name = d.name.as_deref().unwrap_or_default();
        let mut deps = Vec::new();
        for dep in d.depends_on.iter().flatten() {
            let i = index(&dep.container_name).ok_or_else(|| {
                format!(
                    "container {name}: dependsOn names an unknown container {:?}",
                    dep.container_name
                )
            })?;
            let c = Condition::parse(&dep.condition).ok_or_else(|| {
                format!(
                    "container {name}: dependsOn condition {:?} is not one of START, COMPLETE, SUCCESS, HEALTHY",
                    dep.condition
                )
            })?;
            if c == Condition::Healthy && defs[i].health_check.is_none() {
                return Err(format!(
                    "container {name}: dependsOn {} HEALTHY needs a healthCheck on {}",
                    dep.container_name, dep.container_name
                ));
            }
            deps.push((i, c));
        }
        out.push(deps);
    }
    // Cycle check: Kahn's algorithm.
    levels(&out).map(|_| out)
}

/// Topological levels: level 0 has no dependencies, level n depends only on lower levels.
pub fn levels(deps: &[Vec<(usize, Condition)>]) -> Result<Vec<Vec<usize>>, String> {
    let n = deps.len();
    let mut level = vec![usize::MAX; n];
    let mut done = 0;
    let mut current = 0;
    let mut out = Vec::new();
    while done < n {
        let ready: Vec<usize> = (0..n)
            .filter(|&i| level[i] == usize::MAX)
            .filter(|&i| deps[i].iter().all(|(d, _)| level[*d] < current))
            .collect();
        if ready.is_empty() {
            return Err("dependsOn has a cycle".into());
        }
        for &i in &ready {
            level[i] = current;
        }
        done += ready.len();
        out.push(ready);
        current += 1;
    }
    Ok(out)
}

/// Stop order: the reverse of the start levels (dependents stop first).
pub fn stop_order(deps: &[Vec<(usize, Condition)>]) -> Vec<Vec<usize>> {
    let mut l = levels(deps).unwrap_or_else(|_| vec![(0..deps.len()).collect()]);
    l.reverse();
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs(v: serde_json::Value) -> Vec<ContainerDefinition> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn orders_and_refuses() {
        let d = defs(json!([
            {"name": "app", "dependsOn": [{"containerName": "db", "condition": "HEALTHY"},
                                          {"containerName": "init", "condition": "SUCCESS"}]},
            {"name": "db", "healthCheck": {"command": ["CMD", "true"]}},
            {"name": "init"}
        ]));
        let deps = dependencies(&d).unwrap();
        assert_eq!(
            deps[0],
            vec![(1, Condition::Healthy), (2, Condition::Success)]
        );
        assert_eq!(levels(&deps).unwrap(), vec![vec![1, 2], vec![0]]);
        assert_eq!(stop_order(&deps), vec![vec![0], vec![1, 2]]);

        let cyc = defs(json!([
            {"name": "a", "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "dependsOn": [{"containerName": "a", "condition": "START"}]}
        ]));
        assert!(dependencies(&cyc).unwrap_err().contains("cycle"));
        let unknown = defs(
            json!([{"name": "a", "dependsOn": [{"containerName": "x", "condition": "START"}]}]),
        );
        assert!(dependencies(&unknown).unwrap_err().contains("unknown"));
        let bad = defs(
            json!([{"name": "a", "dependsOn": [{"containerName": "a", "condition": "MAYBE"}]}]),
        );
        assert!(dependencies(&bad).unwrap_err().contains("MAYBE"));
        let nohc = defs(
            json!([{"name": "a", "dependsOn": [{"containerName": "b", "condition": "HEALTHY"}]}, {"name": "b"}]),
        );
        assert!(dependencies(&nohc).unwrap_err().contains("healthCheck"));
    }
}
