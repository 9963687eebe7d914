//! ECS ARNs: `arn:aws:ecs:<region>:<account>:<type>/<path>`, built and parsed.
//!
//! Berth always builds the long ARN format (cluster name inside task, container-instance and
//! container ARNs) and parses both forms.

use crate::EcsError;

/// What an ECS ARN names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    Cluster {
        name: String,
    },
    TaskDefinition {
        family: String,
        revision: u32,
    },
    /// `cluster` is `None` for the old short format (`task/ID`).
    Task {
        cluster: Option<String>,
        id: String,
    },
    ContainerInstance {
        cluster: Option<String>,
        id: String,
    },
    Container {
        cluster: String,
        task: String,
        id: String,
    },
    Service {
        cluster: Option<String>,
        name: String,
    },
}

/// A parsed ECS ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn {
    pub region: String,
    pub account: String,
    pub resource: Resource,
}

/// The region and account ARNs are built for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArnScope<'a> {
    pub region: &'a str,
    pub account: &'a str,
}

impl ArnScope<'_> {
    fn prefix(&self) -> String {
        format!("arn:aws:ecs:{}:{}:", self.region, self.account)
    }
    pub fn cluster(&self, name: &str) -> String {
        format!("{}cluster/{name}", self.prefix())
    }
    pub fn task_definition(&self, family: &str, revision: u32) -> String {
        format!("{}task-definition/{family}:{revision}", self.prefix())
    }
    pub fn task(&self, cluster: &str, id: &str) -> String {
        format!("{}task/{cluster}/{id}", self.prefix())
    }
    pub fn container_instance(&self, cluster: &str, id: &str) -> String {
        format!("{}container-instance/{cluster}/{id}", self.prefix())
    }
    pub fn container(&self, cluster: &str, task: &str, id: &str) -> String {
        format!("{}container/{cluster}/{task}/{id}", self.prefix())
    }
    pub fn service(&self, cluster: &str, name: &str) -> String {
        format!("{}service/{cluster}/{name}", self.prefix())
    }
}

impl Arn {
    /// Parses an ECS ARN; anything else is an `InvalidParameterException`.
    pub fn parse(s: &str) -> Result<Arn, EcsError> {
        let bad = || {
            EcsError::invalid(format!(
                "invalid arn `{s}`: expected arn:aws:ecs:REGION:ACCOUNT:TYPE/ID"
            ))
        };
        let mut parts = s.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("ecs"), Some(region), Some(account), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let (kind, path) = rest.split_once('/').ok_or_else(bad)?;
        let segs: Vec<&str> = path.split('/').collect();
        if segs.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let resource = match (kind, segs.as_slice()) {
            ("cluster", [name]) => Resource::Cluster {
                name: (*name).to_owned(),
            },
            ("task-definition", [fr]) => {
                let (family, rev) = fr.rsplit_once(':').ok_or_else(bad)?;
                Resource::TaskDefinition {
                    family: family.to_owned(),
                    revision: rev.parse().map_err(|_| bad())?,
                }
            }
            ("task", [id]) => Resource::Task {
                cluster: None,
                id: (*id).to_owned(),
            },
            ("task", [cluster, id]) => Resource::Task {
                cluster: Some((*cluster).to_owned()),
                id: (*id).to_owned(),
            },
            ("container-instance", [id]) => Resource::ContainerInstance {
                cluster: None,
                id: (*id).to_owned(),
            },
            ("container-instance", [cluster, id]) => Resource::ContainerInstance {
                cluster: Some((*cluster).to_owned()),
                id: (*id).to_owned(),
            },
            ("container", [cluster, task, id]) => Resource::Container {
                cluster: (*cluster).to_owned(),
                task: (*task).to_owned(),
                id: (*id).to_owned(),
            },
            ("service", [name]) => Resource::Service {
                cluster: None,
                name: (*name).to_owned(),
            },
            ("service", [cluster, name]) => Resource::Service {
                cluster: Some((*cluster).to_owned()),
                name: (*name).to_owned(),
            },
            _ => return Err(bad()),
        };
        Ok(Arn {
            region: region.to_owned(),
            account: account.to_owned(),
            resource,
        })
    }
}

/// The cluster name of a `cluster` parameter: a name or a cluster ARN; `None` means `default`.
pub fn cluster_name(param: Option<&str>) -> Result<String, EcsError> {
    match param {
        None | Some("") => Ok("default".to_owned()),
        Some(s) if s.starts_with("arn:") => match Arn::parse(s)?.resource {
            Resource::Cluster { name } => Ok(name),
            _ => Err(EcsError::invalid(format!("`{s}` is not a cluster arn"))),
        },
        Some(s) => Ok(s.to_owned()),
    }
}

/// The id of a task given as an id or an ARN, checking an ARN's cluster against `cluster`.
pub fn task_id(param: &str, cluster: &str) -> Result<String, EcsError> {
    if !param.starts_with("arn:") {
        return Ok(param.to_owned());
    }
    match Arn::parse(param)?.resource {
        Resource::Task { cluster: c, id } => {
            if c.as_deref().is_some_and(|c| c != cluster) {
                return Err(EcsError::invalid(format!(
                    "task `{param}` does not belong to cluster `{cluster}`"
                )));
            }
            Ok(id)
        }
        _ => Err(EcsError::invalid(format!("`{param}` is not a task arn"))),
    }
}

/// The id of a container instance given as an id or an ARN (see [`task_id`]).
pub fn container_instance_id(param: &str, cluster: &str) -> Result<String, EcsError> {
    if !param.starts_with("arn:") {
        return Ok(param.to_owned());
    }
    match Arn::parse(param)?.resource {
        Resource::ContainerInstance { cluster: c, id } => {
            if c.as_deref().is_some_and(|c| c != cluster) {
                return Err(EcsError::invalid(format!(
                    "container instance `{param}` does not belong to cluster `{cluster}`"
                )));
            }
            Ok(id)
        }
        _ => Err(EcsError::invalid(format!(
            "`{param}` is not a container instance arn"
        ))),
    }
}

/// A task definition reference: `family`, `family:revision` or an ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskDefinitionRef {
    pub family: String,
    /// `None`: the latest ACTIVE revision.
    pub revision: Option<u32>,
}

impl TaskDefinitionRef {
    pub fn parse(s: &str) -> Result<Self, EcsError> {
        if s.starts_with("arn:") {
            return match Arn::parse(s)?.resource {
                Resource::TaskDefinition { family, revision } => Ok(TaskDefinitionRef {
                    family,
                    revision: Some(revision),
                }),
                _ => Err(EcsError::invalid(format!(
                    "`{s}` is not a task definition arn"
                ))),
            };
        }
        let (family, revision) = match s.rsplit_once(':') {
            Some((f, r)) => {
                let rev = r.parse::<u32>().ok().filter(|r| *r > 0).ok_or_else(|| {
                    EcsError::client(format!(
                        "invalid revision `{r}` in task definition `{s}`: use FAMILY:N with N >= 1"
                    ))
                })?;
                (f, Some(rev))
            }
            None => (s, None),
        };
        if !crate::validate::is_name(family) {
            return Err(EcsError::client(format!(
                "invalid task definition family `{family}`: use up to 255 letters, digits, hyphens and underscores"
            )));
        }
        Ok(TaskDefinitionRef {
            family: family.to_owned(),
            revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: ArnScope<'static> = ArnScope {
        region: "us-east-1",
        account: "123456789012",
    };

    #[test]
    fn build_and_parse_round_trip() {
        let cases = [
            (
                SCOPE.cluster("demo"),
                Resource::Cluster {
                    name: "demo".into(),
                },
            ),
            (
                SCOPE.task_definition("web", 3),
                Resource::TaskDefinition {
                    family: "web".into(),
                    revision: 3,
                },
            ),
            (
                SCOPE.task("demo", "abc"),
                Resource::Task {
                    cluster: Some("demo".into()),
                    id: "abc".into(),
                },
            ),
            (
                SCOPE.container_instance("demo", "i1"),
                Resource::ContainerInstance {
                    cluster: Some("demo".into()),
                    id: "i1".into(),
                },
            ),
            (
                SCOPE.container("demo", "t1", "c1"),
                Resource::Container {
                    cluster: "demo".into(),
                    task: "t1".into(),
                    id: "c1".into(),
                },
            ),
        ];
        for (s, r) in cases {
            let arn = Arn::parse(&s).unwrap();
            assert_eq!(arn.resource, r, "{s}");
            assert_eq!(arn.region, "us-east-1");
            assert_eq!(arn.account, "123456789012");
        }
        assert_eq!(
            SCOPE.cluster("x"),
            "arn:aws:ecs:us-east-1:123456789012:cluster/x"
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "arn:aws:s3:::bucket",
            "arn:aws:ecs:us-east-1:1:cluster",
            "arn:aws:ecs:us-east-1:1:task-definition/web",
            "arn:aws:ecs:us-east-1:1:task-definition/web:x",
            "arn:aws:ecs:us-east-1:1:bogus/x",
            "arn:aws:ecs:us-east-1:1:cluster/a/b",
            "nope",
        ] {
            let e = Arn::parse(s).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterException", "{s}");
        }
    }

    #[test]
    fn cluster_and_ids() {
        assert_eq!(cluster_name(None).unwrap(), "default");
        assert_eq!(cluster_name(Some(&SCOPE.cluster("c"))).unwrap(), "c");
        assert_eq!(cluster_name(Some("c")).unwrap(), "c");
        assert!(cluster_name(Some(&SCOPE.task("c", "t"))).is_err());
        assert_eq!(task_id(&SCOPE.task("c", "t"), "c").unwrap(), "t");
        assert!(task_id(&SCOPE.task("other", "t"), "c").is_err());
        assert_eq!(task_id("t", "c").unwrap(), "t");
        assert_eq!(
            container_instance_id(&SCOPE.container_instance("c", "i"), "c").unwrap(),
            "i"
        );
    }

    #[test]
    fn task_definition_refs() {
        assert_eq!(
            TaskDefinitionRef::parse("web").unwrap(),
            TaskDefinitionRef {
                family: "web".into(),
                revision: None
            }
        );
        assert_eq!(TaskDefinitionRef::parse("web:2").unwrap().revision, Some(2));
        assert_eq!(
            TaskDefinitionRef::parse(&SCOPE.task_definition("web", 7))
                .unwrap()
                .revision,
            Some(7)
        );
        assert!(TaskDefinitionRef::parse("web:0").is_err());
        assert!(TaskDefinitionRef::parse("web:x").is_err());
        assert!(TaskDefinitionRef::parse("bad name").is_err());
    }
}
