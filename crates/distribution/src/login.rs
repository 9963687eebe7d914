//! `login`: checks credentials against a registry the way Docker does — `GET /v2/`; when the
//! registry challenges, basic credentials are tried on `/v2/` itself (`Basic`) or a token is
//! asked of the realm with them (`Bearer`). A registry that answers `/v2/` without a challenge
//! accepts anyone, so the login succeeds.

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::challenge::{self, Challenge};
use crate::endpoint::normalize_server;
use crate::session::{error_message, fetch_token, transport_error};
use crate::{Credentials, DistributionError, RegistryClient};

/// Checks `credentials` against `server` (a registry domain, empty for Docker Hub).
pub async fn login(
    client: &RegistryClient,
    server: &str,
    credentials: &Credentials,
) -> Result<(), DistributionError> {
    let endpoint = client.endpoint(&normalize_server(server));
    let unauthorized = |message: String| DistributionError::Unauthorized {
        server: endpoint.login_hint(),
        message,
    };
    let url = format!("{}/v2/", endpoint.base_url());
    let resp = client
        .http()
        .get(&url)
        .send()
        .await
        .map_err(|e| transport_error(&endpoint, e))?;
    if resp.status().is_success() {
        return Ok(());
    }
    if resp.status() != StatusCode::UNAUTHORIZED {
        let status = resp.status().as_u16();
        return Err(DistributionError::Registry {
            registry: endpoint.domain.clone(),
            what: "GET /v2/".into(),
            status,
            message: error_message(resp).await,
        });
    }
    let challenge = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(challenge::parse)
        .ok_or_else(|| {
            DistributionError::Unsupported(format!(
                "registry {} asks for an authentication scheme berth does not speak",
                endpoint.domain
            ))
        })?;
    if credentials.is_empty() {
        return Err(unauthorized("no username or password given".into()));
    }
    match challenge {
        Challenge::Basic => {
            let mut req = client.http().get(&url);
            if let Some(h) = credentials.basic_header() {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| transport_error(&endpoint, e))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                let m = error_message(resp).await;
                Err(unauthorized(if m.is_empty() {
                    "incorrect username or password".into()
                } else {
                    m
                }))
            }
        }
        Challenge::Bearer { realm, service, .. } => {
            fetch_token(client.http(), &realm, service.as_deref(), None, credentials)
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    DistributionError::Unauthorized { message, .. } => unauthorized(message),
                    other => other,
                })
        }
    }
}
