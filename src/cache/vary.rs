//! `Vary`: the secondary key of a stored response, built from the request's values of the
//! header fields the response names (RFC 9111 §4.1).
//!
//! `Accept-Encoding` is left out: strait always fetches cacheable responses as `identity` and
//! picks the encoding itself (see `precompress`), so every client gets the same stored
//! representation. It is kept when the origin sent an encoded body anyway.
//! `Vary: *` responses are never stored; should one be met, it gets a key no request matches.

use http::header;
use pingora::cache::key::HashBinary;
use pingora::cache::VarianceBuilder;
use pingora::http::{RequestHeader, ResponseHeader};

/// Stands for "the request did not send this field", which no field value can contain.
const ABSENT: &[u8] = b"\0absent";

/// The variance of `resp` for `req`; `None` when the response does not vary.
pub(crate) fn variance(resp: &ResponseHeader, req: &RequestHeader) -> Option<HashBinary> {
    let mut names: Vec<String> = super::policy::list_items(&resp.headers, header::VARY)
        .map(str::to_ascii_lowercase)
        .collect();
    names.sort();
    names.dedup();
    if names.iter().any(|n| n == "*") {
        let mut b = VarianceBuilder::new();
        b.add_owned_value("*", rand::random::<[u8; 16]>().to_vec());
        return b.finalize();
    }
    let encoded = super::precompress::is_encoded(resp);
    let mut b = VarianceBuilder::new();
    for name in &names {
        if name == "accept-encoding" {
            if encoded {
                let gzip = super::precompress::accepts_gzip(req);
                b.add_value(name, if gzip { "gzip" } else { "identity" });
            }
            continue;
        }
        let values: Vec<&[u8]> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if values.is_empty() {
            b.add_value(name, ABSENT);
        } else {
            b.add_owned_value(name, normalize(&values));
        }
    }
    // Always `Some` when the response varies: `None` would tell Pingora "no variance" and
    // serve the primary variant to everyone.
    b.finalize()
}

/// Whether a stored response (its header and the variance it was stored under) is the one a
/// lookup for `req` finds: the same secondary key the proxy computes for the request
/// (`cache_vary_filter`), or no variance at all.
pub(crate) fn serves(
    resp: &ResponseHeader,
    stored: Option<HashBinary>,
    req: &RequestHeader,
) -> bool {
    match stored {
        None => true,
        Some(v) => variance(resp, req) == Some(v),
    }
}

/// Joins repeated field lines with `,` and drops the optional whitespace around list items.
fn normalize(values: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        for (j, item) in v.split(|b| *b == b',').enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item.trim_ascii());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(vary: &[&str], encoding: Option<&str>) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for v in vary {
            r.append_header("vary", *v).unwrap();
        }
        if let Some(e) = encoding {
            r.append_header("content-encoding", e).unwrap();
        }
        r
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn no_vary_no_variance() {
        assert!(variance(&resp(&[], None), &req(&[("accept-language", "fr")])).is_none());
    }

    #[test]
    fn listed_fields_split_variants() {
        let r = resp(&["Accept-Language"], None);
        let fr = variance(&r, &req(&[("accept-language", "fr")])).unwrap();
        let de = variance(&r, &req(&[("accept-language", "de")])).unwrap();
        let none = variance(&r, &req(&[])).unwrap();
        let empty = variance(&r, &req(&[("accept-language", "")])).unwrap();
        assert_ne!(fr, de);
        assert_ne!(fr, none);
        assert_ne!(none, empty);
        // Unrelated fields do not matter; whitespace and field-line splits do not either.
        assert_eq!(
            fr,
            variance(&r, &req(&[("accept-language", "fr"), ("x-other", "1")])).unwrap()
        );
        let r2 = resp(&["accept-language, x-a"], None);
        assert_eq!(
            variance(&r2, &req(&[("accept-language", "fr, de"), ("x-a", "1")])),
            variance(
                &r2,
                &req(&[
                    ("accept-language", "fr"),
                    ("accept-language", "de"),
                    ("x-a", "1")
                ])
            )
        );
    }

    #[test]
    fn accept_encoding_only_matters_for_encoded_bodies() {
        let plain = resp(&["Accept-Encoding"], None);
        assert!(variance(&plain, &req(&[("accept-encoding", "gzip")])).is_none());
        let gz = resp(&["Accept-Encoding"], Some("gzip"));
        let a = variance(&gz, &req(&[("accept-encoding", "gzip, br")])).unwrap();
        let b = variance(&gz, &req(&[("accept-encoding", "gzip")])).unwrap();
        let c = variance(&gz, &req(&[])).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn vary_star_never_matches() {
        let r = resp(&["*"], None);
        assert_ne!(variance(&r, &req(&[])), variance(&r, &req(&[])));
    }
}
