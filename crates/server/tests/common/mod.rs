//! A real server on 127.0.0.1:0 with a MemoryStore and no authentication, and a small JSON
//! client for it.

#![allow(dead_code)]

use std::sync::Arc;

use berth_server::{Auth, ServerConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct TestServer {
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["__type"].as_str().unwrap_or("")
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_store(Arc::new(berth_store::MemoryStore::new())).await
    }

    pub async fn with_store(store: Arc<dyn berth_store::Store>) -> TestServer {
        Self::with(store, Auth::Disabled).await
    }

    pub async fn with(store: Arc<dyn berth_store::Store>, auth: Auth) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = ServerConfig {
            store,
            account_id: "123456789012".into(),
            default_region: "us-east-1".into(),
            auth,
        };
        let handle = tokio::spawn(async move {
            berth_server::run(listener, config, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            url,
            shutdown: Some(tx),
            handle: Some(handle),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }

    pub async fn raw(&self, target: Option<&str>, body: &str) -> Reply {
        let mut req = hyper::Request::post(format!("{}/", self.url))
            .header("content-type", "application/x-amz-json-1.1");
        if let Some(t) = target {
            req = req.header("x-amz-target", t);
        }
        let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        self.send(req).await
    }

    /// Sends a request signed with SigV4 (region `region`, service `ecs`).
    pub async fn signed(
        &self,
        op: &str,
        body: &str,
        key: &str,
        secret: &str,
        region: &str,
    ) -> Reply {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let identity =
            aws_credential_types::Credentials::new(key, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("ecs")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let uri = format!("{}/", self.url);
        let target = format!("AmazonEC2ContainerServiceV20141113.{op}");
        let mut req = hyper::Request::post(&uri)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", &target)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut req);
        self.send(req).await
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Reply {
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `http://HOST:PORT` without the scheme.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Opens the agent channel (`GET /v1/agent/watch?QUERY`) on its own connection.
    pub async fn watch(&self, query: &str) -> Watch {
        Watch::open(self.authority(), "GET", query, None).await
    }

    /// Opens the agent channel with a SigV4-signed request.
    pub async fn watch_signed(&self, query: &str, key: &str, secret: &str, region: &str) -> Watch {
        Watch::open(self.authority(), "GET", query, Some((key, secret, region))).await
    }

    /// Calls an ECS operation.
    pub async fn call(&self, op: &str, body: Value) -> Reply {
        let target = format!("AmazonEC2ContainerServiceV20141113.{op}");
        self.raw(Some(&target), &body.to_string()).await
    }

    /// Calls an operation that must succeed; returns its body.
    pub async fn ok(&self, op: &str, body: Value) -> Value {
        let r = self.call(op, body).await;
        assert_eq!(r.status, 200, "{op} failed: {}", r.body);
        r.body
    }

    /// Calls an operation that must fail with `code`.
    pub async fn err(&self, op: &str, body: Value, code: &str) -> Reply {
        let r = self.call(op, body).await;
        assert_eq!(
            r.code(),
            code,
            "{op}: expected {code}, got {} {}",
            r.status,
            r.body
        );
        assert_eq!(r.status, if code == "ServerException" { 500 } else { 400 });
        assert!(r.body["message"].is_string());
        r
    }
}

/// Percent-encodes a query parameter value.
pub fn enc(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An agent channel (or the error that refused it) on a connection of its own; dropping it
/// closes the connection.
pub struct Watch {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    body: Option<hyper::body::Incoming>,
    buf: Vec<u8>,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Watch {
    pub async fn open(
        authority: &str,
        method: &str,
        query: &str,
        sign: Option<(&str, &str, &str)>,
    ) -> Watch {
        let stream = tokio::net::TcpStream::connect(authority).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let uri = format!("http://{authority}/v1/agent/watch?{query}");
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("/v1/agent/watch?{query}"))
            .header("host", authority)
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Some((key, secret, region)) = sign {
            use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
            use aws_sigv4::sign::v4;
            let identity =
                aws_credential_types::Credentials::new(key, secret, None, None, "test").into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(region)
                .name("ecs")
                .time(std::time::SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            let signable = SignableRequest::new(
                method,
                &uri,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(b""),
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            instructions.apply_to_request_http1x(&mut req);
        }
        let resp = sender.send_request(req).await.unwrap();
        Watch {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: Some(resp.into_body()),
            buf: Vec::new(),
            conn,
        }
    }

    /// The next line as JSON; `None` once the channel ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line[..pos]).unwrap());
            }
            let body = self.body.as_mut()?;
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                _ => {
                    self.body = None;
                    assert!(self.buf.is_empty(), "the channel ended mid-line");
                    return None;
                }
            }
        }
    }

    /// The next line, which must come within `secs` seconds.
    pub async fn expect(&mut self, secs: u64) -> Value {
        tokio::time::timeout(std::time::Duration::from_secs(secs), self.next())
            .await
            .expect("no event in time")
            .expect("the channel ended")
    }

    /// The whole body as JSON (an error response).
    pub async fn error(mut self) -> Value {
        let body = self.body.take().unwrap();
        let bytes = body.collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    pub async fn code(self) -> String {
        self.error().await["__type"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}
