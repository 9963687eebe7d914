//! Container listing (`ps`): summaries, Docker's human status strings and filters.

use std::collections::HashMap;

use berth_engine_client::ContainerSummary;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;

/// Docker's human duration: "Less than a second", "5 seconds", "About a minute", "3 hours".
pub fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s if s < 14 * 86400 => format!("{} days", s / 86400),
        s if s < 60 * 86400 => format!("{} weeks", s / (7 * 86400)),
        s if s < 730 * 86400 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    }
}

fn secs_since(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0)
}

/// `Up 3 seconds (healthy)`, `Exited (0) 2 minutes ago`, `Created`, `Restarting (1) ...`.
pub fn status_text(rec: &ContainerRecord) -> String {
    let s = &rec.state;
    if s.restarting {
        return format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(secs_since(&s.finished_at))
        );
    }
    if s.running {
        let health = s
            .health
            .as_ref()
            .map(|h| match h.status.as_str() {
                "starting" => " (health: starting)".to_string(),
                other => format!(" ({other})"),
            })
            .unwrap_or_default();
        return format!("Up {}{health}", human_duration(secs_since(&s.started_at)));
    }
    if rec.has_been_started {
        return format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(secs_since(&s.finished_at))
        );
    }
    "Created".into()
}

pub fn summary(rec: &ContainerRecord) -> ContainerSummary {
    let mut args = rec.config.entrypoint.clone();
    args.extend(rec.config.cmd.iter().cloned());
    ContainerSummary {
        id: rec.id.clone(),
        names: vec![format!("/{}", rec.name)],
        image: rec.config.image.clone(),
        image_id: rec.image_id.clone(),
        command: args.join(" "),
        created: chrono::DateTime::parse_from_rfc3339(&rec.created)
            .map(|t| t.timestamp())
            .unwrap_or(0),
        state: rec.state.status.clone(),
        status: status_text(rec),
        labels: rec.config.labels.clone(),
    }
}

/// Docker's `ps` filters: status, name, id, label, ancestor, exited, health.
pub fn matches(rec: &ContainerRecord, filters: &HashMap<String, Vec<String>>) -> Result<bool> {
    for (key, values) in filters {
        if values.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "status" => values.contains(&rec.state.status),
            "name" => values
                .iter()
                .any(|v| rec.name.contains(v.trim_start_matches('/'))),
            "id" => values.iter().any(|v| rec.id.starts_with(v)),
            "label" => values.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => rec.config.labels.get(k).map(|x| x == val).unwrap_or(false),
                None => rec.config.labels.contains_key(v),
            }),
            "ancestor" => values.iter().any(|v| {
                *v == rec.config.image
                    || rec.image_id == *v
                    || rec
                        .image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
                    || format!("{v}:latest") == rec.config.image
            }),
            "exited" => {
                !rec.state.running
                    && rec.has_been_started
                    && values
                        .iter()
                        .any(|v| v.parse::<i64>().ok() == Some(rec.state.exit_code))
            }
            "health" => values.iter().any(|v| {
                rec.state
                    .health
                    .as_ref()
                    .map(|h| h.status == *v)
                    .unwrap_or(v == "none")
            }),
            other => {
                return Err(EngineError::Invalid(format!(
                "invalid filter {other:?}: use status, name, id, label, ancestor, exited or health"
            )))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Engine {
    pub fn list(
        &self,
        all: bool,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>> {
        let mut out = Vec::new();
        for rec in self.records() {
            if (all || rec.state.running || !filters.is_empty() && filters.contains_key("status"))
                && matches(&rec, filters)?
            {
                out.push(summary(&rec));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3 * 3600), "3 hours");
    }

    #[test]
    fn filters_select() {
        let mut rec = ContainerRecord {
            id: "abcdef0123".into(),
            name: "web".into(),
            ..Default::default()
        };
        rec.state.status = "running".into();
        rec.config.labels.insert("tier".into(), "front".into());
        let f = |k: &str, v: &str| HashMap::from([(k.to_string(), vec![v.to_string()])]);
        assert!(matches(&rec, &f("status", "running")).unwrap());
        assert!(!matches(&rec, &f("status", "exited")).unwrap());
        assert!(matches(&rec, &f("label", "tier=front")).unwrap());
        assert!(!matches(&rec, &f("label", "tier=back")).unwrap());
        assert!(matches(&rec, &f("id", "abc")).unwrap());
        assert!(matches(&rec, &f("name", "we")).unwrap());
        assert!(matches(&rec, &f("bogus", "x")).is_err());
    }
}
