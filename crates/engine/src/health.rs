//! Health checks with Docker's HEALTHCHECK semantics: a probe every interval (run through the
//! exec path with a timeout); `retries` consecutive failures make the container unhealthy, one
//! success makes it healthy; failures during the start period do not count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine_client::{HealthConfig, HealthLogEntry};
use berth_runtime::container::ExecSpec;

use crate::engine::Engine;
use crate::record::ContainerRecord;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const LOG_ENTRIES: usize = 5;

fn nanos_or(n: u64, default: Duration) -> Duration {
    if n == 0 {
        default
    } else {
        Duration::from_nanos(n)
    }
}

/// The probe's argv: `CMD args...` as is, `CMD-SHELL cmd` through `/bin/sh -c`.
pub fn probe_args(test: &[String]) -> Option<Vec<String>> {
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")])
        }
        _ => None,
    }
}

/// Starts the health loop of a freshly started (or restored) container, if it has a check.
pub fn spawn(engine: &Arc<Engine>, rec: &ContainerRecord) {
    let Some(cfg) = rec.config.healthcheck.clone() else {
        return;
    };
    let Some(args) = probe_args(&cfg.test) else {
        return;
    };
    let engine2 = engine.clone();
    let id = rec.id.clone();
    let spec = ExecSpec {
        args,
        env: rec.config.env.clone(),
        cwd: Some(rec.config.working_dir.clone()),
        uid: Some(rec.uid),
        gid: Some(rec.gid),
        additional_gids: rec.additional_gids.clone(),
        terminal: false,
    };
    let handle = tokio::spawn(async move { run(engine2, id, cfg, spec).await });
    if let Some(slot) = engine.lock().get_mut(&rec.id) {
        if let Some(old) = slot.health_task.replace(handle.abort_handle()) {
            old.abort();
        }
    }
}

async fn run(engine: Arc<Engine>, id: String, cfg: HealthConfig, spec: ExecSpec) {
    let interval = nanos_or(cfg.interval, DEFAULT_INTERVAL);
    let timeout = nanos_or(cfg.timeout, DEFAULT_TIMEOUT);
    let retries = if cfg.retries == 0 {
        DEFAULT_RETRIES
    } else {
        cfg.retries
    };
    let start_period = Duration::from_nanos(cfg.start_period);
    let started = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let begin = chrono::Utc::now();
        let result = engine.exec_capture(&id, &spec, timeout).await;
        let end = chrono::Utc::now();
        let (exit_code, output) = match result {
            Ok(c) => match c.exit_code {
                Some(code) => (code, c.output),
                None => (
                    -1,
                    format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()),
                ),
            },
            Err(e) => (-1, e.to_string()),
        };
        let in_start_period = started.elapsed() < start_period;
        let (changed, rec) = {
            let mut slots = engine.lock();
            let Some(slot) = slots.get_mut(&id) else {
                return;
            };
            if !slot.rec.state.running {
                return;
            }
            let health = slot.rec.state.health.get_or_insert_with(Default::default);
            let before = health.status.clone();
            health.log.push(HealthLogEntry {
                start: begin.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                end: end.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                exit_code,
                output,
            });
            if health.log.len() > LOG_ENTRIES {
                let excess = health.log.len() - LOG_ENTRIES;
                health.log.drain(..excess);
            }
            if exit_code == 0 {
                health.failing_streak = 0;
                health.status = "healthy".into();
            } else if !(in_start_period && health.status == "starting") {
                health.failing_streak += 1;
                if health.failing_streak >= retries {
                    health.status = "unhealthy".into();
                }
            }
            (before != health.status, slot.rec.clone())
        };
        let _ = rec.save(&engine.paths.container(&id));
        if changed {
            let status = rec
                .state
                .health
                .as_ref()
                .map(|h| h.status.clone())
                .unwrap_or_default();
            let mut attrs = std::collections::BTreeMap::new();
            attrs.insert("name".into(), rec.name.clone());
            engine
                .events
                .publish("container", &format!("health_status: {status}"), &id, attrs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_forms() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(probe_args(&s(&["CMD", "true"])), Some(s(&["true"])));
        assert_eq!(
            probe_args(&s(&["CMD-SHELL", "test -f /x"])),
            Some(s(&["/bin/sh", "-c", "test -f /x"]))
        );
        assert_eq!(probe_args(&s(&["NONE"])), None);
        assert_eq!(probe_args(&s(&["CMD"])), None);
    }
}
