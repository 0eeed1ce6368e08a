//! The top-level `tracing` section (docs/tracing.md).

use super::fields::{Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{OtlpEndpoint, Scheme, Tracing};
use crate::config::yaml::{Node, Value};

/// The path spans are POSTed to when the endpoint's URL has none (OTLP/HTTP's default).
const DEFAULT_PATH: &str = "/v1/traces";

pub(super) fn tracing(e: &mut Errors, node: Option<&Node>) -> Tracing {
    let mut tracing = Tracing {
        otlp_endpoint: None,
        sample_ratio: 1.0,
        service_name: keys::default_text(Section::Tracing, "service_name").to_string(),
    };
    if let Some(keys::DefaultValue::Number(n)) =
        keys::find(Section::Tracing, "sample_ratio").map(|k| k.default)
    {
        tracing.sample_ratio = n.parse().unwrap_or(1.0);
    }
    let Some(f) = node.and_then(|n| Fields::new(e, n, "tracing", Section::Tracing)) else {
        return tracing;
    };
    if let Some(n) = f.get("sample_ratio") {
        if let Some(r) = ratio(e, n, &f.path("sample_ratio")) {
            tracing.sample_ratio = r;
        }
    }
    if let Some(name) = f.string(e, "service_name") {
        if name.is_empty() {
            let at = f.get("service_name").map_or(f.node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("service_name"),
                "expected a name, found an empty string",
            );
        } else {
            tracing.service_name = name;
        }
    }
    if let (Some(n), Some(url)) = (f.get("otlp_endpoint"), f.string(e, "otlp_endpoint")) {
        match endpoint(&url) {
            Ok(endpoint) => tracing.otlp_endpoint = Some(endpoint),
            Err(message) => e.push(n.pos, &f.path("otlp_endpoint"), message),
        }
    }
    tracing
}

/// A plain number from 0 to 1: `0`, `0.25`, `1.0`, `.5`.
fn ratio(e: &mut Errors, node: &Node, path: &str) -> Option<f64> {
    let text = match &node.value {
        Value::Scalar(s) if s.plain => s.text.as_str(),
        _ => "",
    };
    let numeric = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match text.parse::<f64>() {
        Ok(r) if numeric && (0.0..=1.0).contains(&r) => Some(r),
        Ok(_) if numeric => {
            e.push(
                node.pos,
                path,
                format!("sample_ratio must be between 0.0 and 1.0, found {text}"),
            );
            None
        }
        _ => {
            e.push(
                node.pos,
                path,
                format!(
                    "expected a number from 0.0 to 1.0, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// `http://host[:port][/path]`: the exporter speaks plain HTTP/1.1 only.
pub(super) fn endpoint(url: &str) -> Result<OtlpEndpoint, String> {
    let example = "like http://127.0.0.1:4318/v1/traces";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("expected an http:// URL {example}, found {url:?}"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "https is not supported by the OTLP exporter (plain http:// to a local collector or agent), found {url:?}"
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("expected an http:// URL {example}, found {url:?}"));
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    if tail.contains('#') {
        return Err(format!(
            "an OTLP endpoint cannot have a fragment, found {url:?}"
        ));
    }
    if tail.starts_with('?') {
        return Err(format!(
            "an OTLP endpoint's query needs a path before it, found {url:?}"
        ));
    }
    if tail.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "an OTLP endpoint's path must be printable ASCII without spaces, found {url:?}"
        ));
    }
    let (scheme, host, port) = super::parse_url(&format!("http://{authority}"))
        .map_err(|m| m.replace("backend address", "OTLP endpoint"))?;
    debug_assert_eq!(scheme, Scheme::Http);
    let path = if tail.is_empty() || tail == "/" {
        DEFAULT_PATH.to_string()
    } else {
        tail.to_string()
    };
    Ok(OtlpEndpoint {
        url: url.to_string(),
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = endpoint("http://127.0.0.1:4318/v1/traces").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 4318, "/v1/traces")
        );
        let e = endpoint("http://collector").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("collector", 80, "/v1/traces")
        );
        let e = endpoint("HTTP://[::1]:4318/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 4318, "/v1/traces")
        );
        let e = endpoint("http://c:1/otlp/v1/traces?x=1").unwrap();
        assert_eq!(e.path, "/otlp/v1/traces?x=1");
        for bad in [
            "https://c:4318/v1/traces",
            "grpc://c:4317",
            "127.0.0.1:4318",
            "http://",
            "http://c:0/",
            "http://c:99999/",
            "http://c/a b",
            "http://c/#x",
            "http://u@c/",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        assert!(endpoint("https://c")
            .unwrap_err()
            .contains("https is not supported"));
    }
}
