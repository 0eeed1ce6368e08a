//! The probe listener (design §5): `/live`, `/ready` and `/metrics`, no auth (it is meant for
//! the load balancer and the scraper in front).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora_prometheus::prometheus::{self, Encoder, TextEncoder};

use super::web::text_response;
use crate::state::State;

pub(crate) struct ProbeApp {
    pub state: Arc<State>,
}

/// Whether strait should get traffic: the first health round is done and it is not draining.
pub(crate) fn ready(state: &State) -> Result<(), &'static str> {
    if state.draining() {
        Err("draining")
    } else if !state.health_ready() {
        Err("waiting for the first health checks")
    } else {
        Ok(())
    }
}

/// Scrapes refresh and read the state gauges; one at a time so none sees another's reset.
static SCRAPE: Mutex<()> = Mutex::new(());

#[async_trait]
impl ServeHttp for ProbeApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = &session.req_header().method;
        if method != Method::GET && method != Method::HEAD {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        match session.req_header().uri.path() {
            "/live" => text_response(StatusCode::OK, "live\n"),
            "/ready" => match ready(&self.state) {
                // Redis being down does not make a node unready (it falls back to its share
                // of each cluster limit), but whoever looks should see it.
                Ok(()) => match self.state.snapshot().cluster_counter() {
                    Some(c) => {
                        text_response(StatusCode::OK, &format!("ready\n{}\n", c.ready_line()))
                    }
                    None => text_response(StatusCode::OK, "ready\n"),
                },
                Err(why) => text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {why}\n"),
                ),
            },
            "/metrics" => metrics(&self.state),
            _ => text_response(
                StatusCode::NOT_FOUND,
                "not found: try /live, /ready or /metrics\n",
            ),
        }
    }
}

/// The text exposition of the one registry `pingora-prometheus` serves (its own app would
/// gather the same, but the state gauges must be refreshed under the same lock).
fn metrics(state: &State) -> Response<Vec<u8>> {
    let families = {
        let _one = SCRAPE.lock().unwrap_or_else(|e| e.into_inner());
        crate::metrics::refresh(state);
        prometheus::gather()
    };
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(16 * 1024);
    if let Err(e) = encoder.encode(&families, &mut body) {
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode metrics: {e}\n"),
        );
    }
    let mut r = Response::new(body);
    let len = r.body().len();
    if let Ok(v) = encoder.format_type().parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    r
}
