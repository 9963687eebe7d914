//! Getting a task's images into the engine before its containers are created, as the ECS
//! agent's `ECS_IMAGE_PULL_BEHAVIOR` decides:
//!
//! - `prefer-cached` (Berth's default): use the engine's image when it has one, pull only a
//!   missing image. Images imported, loaded or built on the host run without any registry.
//! - `default` (the ECS agent's default): pull every time; when the pull fails, run the cached
//!   image if there is one.
//! - `always`: pull every time; a failed pull fails the task.
//! - `once`: pull the first time this agent needs the image, then use the cached one.
//!
//! Pulls go through the engine (`POST /images/create`) with the task's own login
//! (`repositoryCredentials`, see [`super::secrets`]), else the login the agent was given for
//! the image's registry (`ECS_ENGINE_AUTH_TYPE`/`ECS_ENGINE_AUTH_DATA`, see
//! [`super::engine_auth`]), else the one Docker's config file holds for it (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
//! written by `berth login`/`docker login`). Tasks needing the same image share one pull.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use berth_engine_client::EngineClient;
use futures_util::StreamExt;

use super::engine_auth::EngineAuth;

/// When the agent pulls a task's image (`ECS_IMAGE_PULL_BEHAVIOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImagePullBehavior {
    #[default]
    PreferCached,
    Default,
    Always,
    Once,
}

impl FromStr for ImagePullBehavior {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "prefer-cached" => Ok(Self::PreferCached),
            "default" => Ok(Self::Default),
            "always" => Ok(Self::Always),
            "once" => Ok(Self::Once),
            other => Err(format!(
                "invalid image pull behavior {other:?}: expected prefer-cached, default, always or once"
            )),
        }
    }
}

/// Pulls in progress and images pulled so far, shared by the runner's tasks.
#[derive(Default)]
pub(crate) struct Pulls {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pulled: Mutex<HashSet<String>>,
}

impl Pulls {
    fn lock_for(&self, image: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, l| Arc::strong_count(l) > 1);
        m.entry(image.to_string()).or_default().clone()
    }

    fn pulled_before(&self, image: &str) -> bool {
        self.pulled
            .lock()
            .map(|s| s.contains(image))
            .unwrap_or(false)
    }

    fn note_pulled(&self, image: &str) {
        if let Ok(mut s) = self.pulled.lock() {
            s.insert(image.to_string());
        }
    }
}

/// Makes sure the engine has `image` as `behavior` says; returns its image id, or the
/// `CannotPullContainerError: ...` reason the task fails with.
/// `task_login` is the `X-Registry-Auth` of the task's `repositoryCredentials` for this image,
/// which wins over the agent's logins.
pub(crate) async fn ensure(
    engine: &EngineClient,
    behavior: ImagePullBehavior,
    logins: Option<&EngineAuth>,
    task_login: Option<&str>,
    pulls: &Pulls,
    image: &str,
) -> Result<String, String> {
    let lock = pulls.lock_for(image);
    let _one_pull_at_a_time = lock.lock().await;
    let cached = match engine.inspect_image(image).await {
        Ok(i) => Some(i.id),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(format!("CannotPullContainerError: {e}")),
    };
    let want_pull = match (behavior, &cached) {
        (_, None) | (ImagePullBehavior::Always | ImagePullBehavior::Default, _) => true,
        (ImagePullBehavior::Once, Some(_)) => !pulls.pulled_before(image),
        (ImagePullBehavior::PreferCached, Some(_)) => false,
    };
    if !want_pull {
        return cached.ok_or_else(|| format!("CannotPullContainerError: no image {image}"));
    }
    match pull(engine, logins, task_login, image).await {
        Ok(()) => {
            pulls.note_pulled(image);
            engine
                .inspect_image(image)
                .await
                .map(|i| i.id)
                .map_err(|e| format!("CannotPullContainerError: {e}"))
        }
        Err(e) => match (behavior, cached) {
            (ImagePullBehavior::Default | ImagePullBehavior::Once, Some(id)) => {
                tracing::warn!(image, "pull failed, running the cached image: {e}");
                Ok(id)
            }
            _ => Err(format!("CannotPullContainerError: pulling {image}: {e}")),
        },
    }
}

/// One pull through the engine, with the agent's login for the image's registry or else the
/// one stored in Docker's config file.
async fn pull(
    engine: &EngineClient,
    logins: Option<&EngineAuth>,
    task_login: Option<&str>,
    image: &str,
) -> Result<(), String> {
    let agent_login = || logins.and_then(|l| l.header_for(image));
    let auth = match task_login.map(str::to_string).or_else(agent_login) {
        Some(header) => Some(header),
        None => berth_distribution::credentials::header_for(image).map_err(|e| e.to_string())?,
    };
    let mut stream = engine
        .pull_image(image, auth.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    while let Some(m) = stream.next().await {
        let m = m.map_err(|e| e.to_string())?;
        if let Some(d) = m.error_detail.filter(|d| !d.message.is_empty()) {
            return Err(d.message);
        }
        if !m.error.is_empty() {
            return Err(m.error);
        }
    }
    tracing::info!(image, "pulled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviors_parse_like_the_ecs_agent_setting() {
        assert_eq!(
            "prefer-cached".parse::<ImagePullBehavior>(),
            Ok(ImagePullBehavior::PreferCached)
        );
        assert_eq!("once".parse(), Ok(ImagePullBehavior::Once));
        assert_eq!("always".parse(), Ok(ImagePullBehavior::Always));
        assert_eq!("default".parse(), Ok(ImagePullBehavior::Default));
        let e = "sometimes".parse::<ImagePullBehavior>().unwrap_err();
        assert!(
            e.contains("sometimes") && e.contains("prefer-cached"),
            "{e}"
        );
    }
}
