//! One HTTP/1.1 exchange with a plugin, over Pingora's own HTTP/1 client connector
//! (`pingora::connectors::http::v1::Connector`): the connection pool the proxy uses for
//! backends, so plugin connections are kept alive and reused the same way, with no second
//! HTTP client in the build. Each call is bounded by the plugin's `timeout` as a whole
//! (connect, write, read); a call cut short drops its connection rather than pooling it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::v1::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

use super::CallError;
use crate::config;

/// An answer body larger than this is an error (a plugin's `respond` or a forward_auth
/// refusal is meant to be small).
pub(super) const MAX_BODY: usize = 64 << 10;
/// Idle pooled connections to a plugin are closed after this.
const IDLE: Duration = Duration::from_secs(60);
/// Pooled idle connections per plugin, at most.
const POOL: usize = 64;

/// A plugin's answer.
pub(crate) struct Answer {
    pub header: Box<ResponseHeader>,
    pub body: Bytes,
}

impl Answer {
    pub(crate) fn status(&self) -> u16 {
        self.header.status.as_u16()
    }
}

pub(super) struct Client {
    connector: Connector,
    peer: HttpPeer,
    timeout: Duration,
    /// The `Host` header of every call: the URL's authority.
    host: String,
}

impl Client {
    /// `peer`: the plugin's address (TCP for `url`, its Unix socket for `command`).
    pub(super) fn new(config: &config::Plugin, mut peer: HttpPeer) -> Client {
        peer.options.connection_timeout = Some(config.timeout);
        peer.options.idle_timeout = Some(IDLE);
        let host = match &config.target {
            config::PluginTarget::Url(url) if url.port == 80 => url.host.clone(),
            config::PluginTarget::Url(url) if url.host.contains(':') => {
                format!("[{}]:{}", url.host, url.port)
            }
            config::PluginTarget::Url(url) => format!("{}:{}", url.host, url.port),
            config::PluginTarget::Command(_) => "localhost".to_string(),
        };
        Client {
            connector: Connector::new(Some(ConnectorOptions::new(POOL))),
            peer,
            timeout: config.timeout,
            host,
        }
    }

    /// `GET path`.
    pub(super) async fn get(&self, path: &str) -> Result<Answer, CallError> {
        let req = RequestHeader::build("GET", path.as_bytes(), None)
            .map_err(|e| CallError::Bad(format!("request {path}: {e}")))?;
        self.exchange(req, None).await
    }

    /// `POST path` with a JSON body.
    pub(super) async fn post(&self, path: &str, body: Vec<u8>) -> Result<Answer, CallError> {
        let mut req = RequestHeader::build("POST", path.as_bytes(), None)
            .map_err(|e| CallError::Bad(format!("request {path}: {e}")))?;
        let _ = req.insert_header("Content-Type", "application/json");
        let _ = req.insert_header("Content-Length", body.len().to_string());
        self.exchange(req, Some(Bytes::from(body))).await
    }

    /// Sends `req` (its `Host` replaced by the plugin's) and reads the answer.
    pub(super) async fn exchange(
        &self,
        mut req: RequestHeader,
        body: Option<Bytes>,
    ) -> Result<Answer, CallError> {
        let _ = req.insert_header("Host", self.host.as_str());
        match tokio::time::timeout(self.timeout, self.exchange_pooled(req, body)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// On a pooled connection; once more on a fresh one when the pooled one turns out to
    /// have been closed by the plugin before it answered anything.
    async fn exchange_pooled(
        &self,
        req: RequestHeader,
        body: Option<Bytes>,
    ) -> Result<Answer, CallError> {
        let (session, reused) = self
            .connector
            .get_http_session(&self.peer)
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        match self.once(session, req.clone(), body.clone()).await {
            Err((e, false)) if reused => {
                log::debug!("plugin connection was stale ({e}); retrying on a new one");
                let (fresh, _) = self
                    .connector
                    .get_http_session(&self.peer)
                    .await
                    .map_err(|e| CallError::Unavailable(e.to_string()))?;
                self.once(fresh, req, body).await.map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// One exchange; the error says whether any answer byte had arrived.
    async fn once(
        &self,
        mut session: HttpSession,
        req: RequestHeader,
        body: Option<Bytes>,
    ) -> Result<Answer, (CallError, bool)> {
        let broken = |e: pingora::BError| CallError::Unavailable(e.to_string());
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| (broken(e), false))?;
        if let Some(body) = body {
            session
                .write_body(&body)
                .await
                .map_err(|e| (broken(e), false))?;
        }
        session
            .finish_body()
            .await
            .map_err(|e| (broken(e), false))?;
        // Interim (1xx) answers are skipped.
        loop {
            session
                .read_response()
                .await
                .map_err(|e| (broken(e), false))?;
            match session.get_status() {
                Some(s) if s.is_informational() => continue,
                _ => break,
            }
        }
        let header = session
            .resp_header()
            .cloned()
            .map(Box::new)
            .ok_or((CallError::Bad("no answer head".into()), true))?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = session
            .read_body_bytes()
            .await
            .map_err(|e| (broken(e), true))?
        {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err((
                    CallError::Bad(format!("answer body over {} KiB", MAX_BODY >> 10)),
                    true,
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        self.connector
            .release_http_session(session, &self.peer, Some(IDLE))
            .await;
        Ok(Answer {
            header,
            body: buf.freeze(),
        })
    }
}
