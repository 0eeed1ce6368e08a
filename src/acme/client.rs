//! The HTTP client instant-acme talks to the ACME server through: Pingora's own HTTP/1
//! connector over OpenSSL, so ACME adds no second HTTP or TLS stack. HTTPS is verified against
//! `acme.ca_roots` when set, else the system bundle (as https:// backends are).
//!
//! It also remembers the last `Retry-After` an error answer carried (rate limits, 503s): the
//! client library keeps it to itself, and the scheduler's backoff must respect it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use pingora::connectors::http::v1::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::tls::x509::X509;
use pingora::upstreams::peer::HttpPeer;

/// Each exchange with the ACME server (connect, request, answer) at most this long.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// An ACME answer larger than this is refused (a certificate chain is a few KiB).
const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
pub(super) struct AcmeHttp {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    ca: Option<Arc<Box<[X509]>>>,
    /// The latest `Retry-After` of an error answer, as a point in time.
    retry_after: Mutex<Option<SystemTime>>,
}

impl AcmeHttp {
    /// `ca`: the certificates of `acme.ca_roots`, if any; `system_ca`: the bundle otherwise.
    pub(super) fn new(ca: Option<Vec<X509>>, system_ca: Option<String>) -> AcmeHttp {
        let mut options = ConnectorOptions::new(4);
        options.ca_file = system_ca;
        AcmeHttp {
            inner: Arc::new(Inner {
                connector: Connector::new(Some(options)),
                ca: ca.map(|c| Arc::new(c.into_boxed_slice())),
                retry_after: Mutex::new(None),
            }),
        }
    }

    /// The `Retry-After` of the last refused request, taken (so it is used once).
    pub(super) fn take_retry_after(&self) -> Option<SystemTime> {
        self.inner
            .retry_after
            .lock()
            .map(|mut r| r.take())
            .unwrap_or(None)
    }
}

fn other(message: String) -> instant_acme::Error {
    instant_acme::Error::Other(message.into())
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(&inner, req)).await {
                Ok(result) => result,
                Err(_) => Err(other(format!(
                    "no answer from the ACME server within {}s",
                    EXCHANGE_TIMEOUT.as_secs()
                ))),
            }
        })
    }
}

async fn exchange(
    inner: &Inner,
    req: Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, instant_acme::Error> {
    let (parts, mut body) = req.into_parts();
    let uri = &parts.uri;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(other(format!("not an http(s) URL: {uri}"))),
    };
    let host = uri
        .host()
        .ok_or_else(|| other(format!("no host in {uri}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| other(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(other(format!("{host} has no address")));
    }

    let mut payload = BytesMut::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await
    {
        let Ok(frame) = frame;
        if let Ok(data) = frame.into_data() {
            payload.extend_from_slice(&data);
        }
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = RequestHeader::build(parts.method.as_str(), path.as_bytes(), None)
        .map_err(|e| other(format!("request {path}: {e}")))?;
    for (name, value) in &parts.headers {
        let _ = head.append_header(name.clone(), value.clone());
    }
    let authority = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let _ = head.insert_header("Host", authority);
    let _ = head.insert_header("Content-Length", payload.len().to_string());
    let _ = head.insert_header("User-Agent", concat!("strait/", env!("CARGO_PKG_VERSION")));

    // Each address in turn (`localhost` may list ::1 first for a server on 127.0.0.1).
    let mut connected = None;
    let mut last_error = String::new();
    for addr in &addrs {
        let mut peer = HttpPeer::new(*addr, tls, host.clone());
        peer.options.ca = inner.ca.clone();
        peer.options.connection_timeout = Some(Duration::from_secs(10));
        match inner.connector.get_http_session(&peer).await {
            Ok((session, _)) => {
                connected = Some((session, peer));
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let Some((mut session, peer)) = connected else {
        return Err(other(format!(
            "cannot connect to {host}:{port}: {last_error}"
        )));
    };
    let broken = |e: pingora::BError| other(format!("{host}:{port}: {e}"));
    session
        .write_request_header(Box::new(head))
        .await
        .map_err(broken)?;
    if !payload.is_empty() {
        session.write_body(&payload).await.map_err(broken)?;
    }
    session.finish_body().await.map_err(broken)?;
    loop {
        session.read_response().await.map_err(broken)?;
        match session.get_status() {
            Some(s) if s.is_informational() => continue,
            _ => break,
        }
    }
    let header = session
        .resp_header()
        .cloned()
        .ok_or_else(|| other(format!("{host}:{port}: no answer head")))?;
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_body_bytes().await.map_err(broken)? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(other(format!("{host}:{port}: answer over 1 MiB")));
        }
        buf.extend_from_slice(&chunk);
    }
    inner
        .connector
        .release_http_session(session, &peer, Some(Duration::from_secs(30)))
        .await;

    let status = header.status;
    if !(status.is_success() || status.is_redirection() || status.is_informational()) {
        if let Some(at) = header
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_at)
        {
            if let Ok(mut slot) = inner.retry_after.lock() {
                *slot = Some(at);
            }
        }
    }
    let mut rsp = Response::builder().status(status);
    for (name, value) in &header.headers {
        rsp = rsp.header(name, value);
    }
    let rsp = rsp
        .body(BodyWrapper::from(buf.to_vec()))
        .map_err(|e| other(format!("{host}:{port}: {e}")))?;
    Ok(BytesResponse::from(rsp))
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after_at(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(secs) => Some(SystemTime::now() + Duration::from_secs(secs)),
        Err(_) => httpdate::parse_http_date(value).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let at = retry_after_at("120").expect("seconds");
        let ahead = at.duration_since(SystemTime::now()).unwrap_or_default();
        assert!(ahead > Duration::from_secs(100) && ahead <= Duration::from_secs(120));
        assert!(retry_after_at("Fri, 31 Dec 1999 23:59:59 GMT").is_some());
        assert!(retry_after_at("soon").is_none());
    }
}
