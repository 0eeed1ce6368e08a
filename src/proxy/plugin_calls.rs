//! Where the proxy phases call the plugins (`crate::plugins`, docs/plugins.md).
//!
//! The request phase runs in `request_filter` after the limits and before the `on_request`
//! hooks (so hooks see what plugins set, e.g. a forward_auth `X-User`), for every request
//! that matched a domain or route listing plugins, in the listed order; the first `respond`
//! (or refusal) ends it. The response phase runs once per response the client gets after
//! the request phase let it through: in `response_filter` (backend and cache) or in
//! `answer::write` (strait's own answers), before the hooks. Background cache refreshes run
//! none.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::ctx::Ctx;
use super::host;
use crate::config::PluginOnError;
use crate::hooks::Reject;
use crate::plugins::{Decision, RequestInfo, ResponseInfo};

/// What the request phase decided.
pub(crate) enum Verdict {
    Go,
    /// A plugin answered (its `respond`, or a forward_auth refusal).
    Respond(Reject),
    /// A plugin failed and its `on_error` is `deny`.
    Unavailable,
}

/// The request phase: each plugin of the matched domain or route, in order.
pub(crate) async fn on_request(session: &mut Session, ctx: &mut Ctx) -> Verdict {
    if session.subrequest_ctx.is_some() {
        return Verdict::Go;
    }
    let (Some(snapshot), Some(hit)) = (ctx.snapshot.clone(), ctx.hit) else {
        return Verdict::Go;
    };
    let Some(handler) = snapshot.handler(hit) else {
        return Verdict::Go;
    };
    if handler.plugins.is_empty() {
        return Verdict::Go;
    }
    let (domain, route) = snapshot.names(hit).unwrap_or(("", None));
    let scheme = host::scheme(session);
    for plugin in handler.plugins.iter() {
        let result = {
            let req = session.req_header();
            let original = ctx.original_uri.as_ref().unwrap_or(&req.uri);
            let uri = original
                .path_and_query()
                .map_or_else(|| original.path(), |pq| pq.as_str());
            let info = RequestInfo {
                method: req.method.as_str(),
                path: req.uri.path(),
                query: req.uri.query(),
                scheme,
                host: host::request_host(req),
                uri,
                client_ip: ctx.client_ip,
                tls_client: ctx.client_cert.as_ref(),
                domain,
                route,
                request_id: &ctx.observe.request_id,
            };
            // Boxed (as in `on_response`): a plugin call's future is several KiB, and held
            // inline it would enlarge the filter's future, which Pingora allocates for every
            // request, plugins or not.
            Box::pin(plugin.on_request(&info, req)).await
        };
        match result {
            // Not a request-phase plugin; one declaring only `response` still sees responses.
            Ok(None) => {
                if plugin.handles_response() {
                    ctx.plugin.response_phase.push(plugin.clone());
                }
            }
            Ok(Some(Decision::Continue(edits))) => {
                let req = session.req_header_mut();
                for name in &edits.remove {
                    req.remove_header(name.as_str());
                }
                for (name, value) in &edits.set {
                    if req.insert_header(name.clone(), value.as_str()).is_err() {
                        log::warn!(
                            "plugin {}: invalid request header {name:?} ignored",
                            plugin.name()
                        );
                    }
                }
                ctx.plugin
                    .response_headers
                    .extend(edits.response.iter().cloned());
                if plugin.handles_response() {
                    ctx.plugin.response_phase.push(plugin.clone());
                }
            }
            Ok(Some(Decision::Respond(reject))) => return Verdict::Respond(reject),
            Err(_) => match plugin.on_error() {
                PluginOnError::Deny => return Verdict::Unavailable,
                PluginOnError::Allow => {}
            },
        }
    }
    Verdict::Go
}

/// The response phase, once per response: the request phase's `response_headers`, then each
/// plugin declaring `response`. A failing plugin leaves the response as it is.
pub(crate) async fn on_response(session: &Session, ctx: &mut Ctx, resp: &mut ResponseHeader) {
    if ctx.plugin.response_done
        || session.subrequest_ctx.is_some()
        || super::hook_calls::interim(resp)
    {
        return;
    }
    ctx.plugin.response_done = true;
    for (name, value) in &ctx.plugin.response_headers {
        if !crate::plugins::returnable(name) {
            continue;
        }
        if resp.insert_header(name.clone(), value.as_str()).is_err() {
            log::warn!("plugin: invalid response header {name:?} ignored");
        }
    }
    if ctx.plugin.response_phase.is_empty() {
        return;
    }
    let (Some(snapshot), Some(hit)) = (ctx.snapshot.clone(), ctx.hit) else {
        return;
    };
    let (domain, route) = snapshot.names(hit).unwrap_or(("", None));
    let req = session.req_header();
    for plugin in &ctx.plugin.response_phase {
        let info = ResponseInfo {
            status: resp.status.as_u16(),
            headers: &resp.headers,
            method: req.method.as_str(),
            path: req.uri.path(),
            domain,
            route,
            request_id: &ctx.observe.request_id,
        };
        let Ok(edits) = Box::pin(plugin.on_response(&info)).await else {
            continue;
        };
        for name in &edits.remove {
            resp.remove_header(name.as_str());
        }
        for (name, value) in edits
            .set
            .iter()
            .filter(|(n, _)| crate::plugins::returnable(n))
        {
            if resp.insert_header(name.clone(), value.as_str()).is_err() {
                log::warn!(
                    "plugin {}: invalid response header {name:?} ignored",
                    plugin.name()
                );
            }
        }
        // A 101's status cannot change: the tunnel is open.
        if let Some(status) = edits.status.filter(|_| resp.status.as_u16() != 101) {
            let _ = resp.set_status(status);
        }
    }
}
