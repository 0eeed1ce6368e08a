//! Fills in templates (`config::pattern::template`) for one request: redirect locations,
//! `respond` bodies and headers, rewrites and header-rule values.

use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::ctx::Ctx;
use super::host;
use crate::config::pattern::template;
use crate::config::TemplatePart;

/// What a template knows of the connection beside the request itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Vars<'a> {
    /// `http` or `https`.
    pub(crate) scheme: &'a str,
    /// The port the connection arrived on (used when `Host` names none).
    pub(crate) local_port: Option<u16>,
    pub(crate) remote: Option<std::net::IpAddr>,
    pub(crate) request_id: &'a str,
    /// `$1`..`$9`.
    pub(crate) captures: &'a [String],
    /// The client's verified certificate (`$ssl_client_s_dn`, `$ssl_client_fingerprint`).
    pub(crate) client_cert: Option<&'a crate::tls::ClientCert>,
}

impl<'a> Vars<'a> {
    pub(crate) fn of(session: &'a Session, ctx: &'a Ctx) -> Vars<'a> {
        Vars {
            scheme: host::scheme(session),
            local_port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
            remote: ctx.client_ip,
            request_id: &ctx.observe.request_id,
            captures: &ctx.captures,
            client_cert: ctx.client_cert.as_ref(),
        }
    }
}

/// `t` filled in for `req`.
pub(crate) fn render(t: &[TemplatePart], req: &RequestHeader, vars: &Vars<'_>) -> String {
    let mut out = String::new();
    let full_host = host::request_host(req);
    for part in t {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Host => out.push_str(host::without_port(full_host)),
            TemplatePart::Path => out.push_str(req.uri.path()),
            TemplatePart::Query => {
                if let Some(q) = req.uri.query() {
                    out.push('?');
                    out.push_str(q);
                }
            }
            TemplatePart::Uri => out.push_str(req.uri.path_and_query().map_or("/", |p| p.as_str())),
            TemplatePart::Scheme => out.push_str(vars.scheme),
            TemplatePart::Port => {
                let name = host::without_port(full_host);
                match (full_host.get(name.len() + 1..), vars.local_port) {
                    (Some(p), _) if !p.is_empty() => out.push_str(p),
                    (_, Some(p)) => out.push_str(&p.to_string()),
                    _ => {}
                }
            }
            TemplatePart::RemoteAddr => {
                if let Some(ip) = vars.remote {
                    out.push_str(&ip.to_string());
                }
            }
            TemplatePart::RequestId => out.push_str(vars.request_id),
            TemplatePart::SslClientSDn => {
                out.push_str(vars.client_cert.map_or("", |c| c.subject.as_str()))
            }
            TemplatePart::SslClientFingerprint => {
                out.push_str(vars.client_cert.map_or("", |c| c.fingerprint.as_str()))
            }
            TemplatePart::Capture(n) => {
                if let Some(c) = vars.captures.get(usize::from(*n) - 1) {
                    out.push_str(c);
                }
            }
        }
    }
    out
}

/// A header value from config: as written when it has no `$`, else filled in.
pub(crate) fn header_value<'v>(
    value: &'v str,
    req: &RequestHeader,
    vars: &Vars<'_>,
) -> std::borrow::Cow<'v, str> {
    if !value.contains('$') {
        return std::borrow::Cow::Borrowed(value);
    }
    // Validated when the config was loaded, with the route's captures.
    match template::parse(value, 9) {
        Ok(t) => std::borrow::Cow::Owned(render(&t, req, vars)),
        Err(_) => std::borrow::Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_the_request() {
        let location = template::parse("https://$host/new$path$query", 0).unwrap();
        let mut req = RequestHeader::build("GET", b"/a/b?x=1&y=2", None).unwrap();
        req.insert_header("Host", "old.example:8080").unwrap();
        let vars = Vars::default();
        assert_eq!(
            render(&location, &req, &vars),
            "https://old.example/new/a/b?x=1&y=2"
        );
        let port = template::parse("$scheme://$host:$port/$1", 1).unwrap();
        let captures = vec!["cap".to_string()];
        let vars = Vars {
            scheme: "https",
            local_port: Some(8443),
            captures: &captures,
            ..Vars::default()
        };
        assert_eq!(render(&port, &req, &vars), "https://old.example:8080/cap");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "[::1]").unwrap();
        assert_eq!(render(&port, &req, &vars), "https://[::1]:8443/cap");
        assert_eq!(
            render(&location, &req, &Vars::default()),
            "https://[::1]/new/"
        );
    }
}
