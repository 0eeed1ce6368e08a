//! Request framing rules (RFC 9110, RFC 9112) checked on the raw bytes of every HTTP/1 request
//! head before Pingora parses it, so a request two origins could read differently never
//! reaches one. `docs/security.md` lists each rule with its RFC section and says which ones
//! Pingora enforced already.
//!
//! A head that passes is handed on unchanged, except that a `Content-Length` sent as a list
//! or in several fields (all equal) is rewritten to one field with one value, and an
//! absolute-form target is rewritten to origin-form (its authority being the `Host`), so
//! every later phase and the backend see the same path strait routed by.

use bytes::{BufMut, BytesMut};

/// Header fields strait looks at, at most; more is refused (Pingora's own limit is 256).
const MAX_FIELDS: usize = 256;

/// Why a head is refused: the status, the `X-Strait-Error` code, and a line for the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) why: &'static str,
}

const fn refuse(status: u16, code: &'static str, why: &'static str) -> Refusal {
    Refusal { status, code, why }
}

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    None,
    Length(u64),
    Chunked,
}

/// A head that passed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) body: Body,
    /// An `Upgrade` request: what follows the head belongs to the tunnel, if one opens.
    pub(crate) upgrade: bool,
    /// The head to hand on, when it had to be normalised.
    pub(crate) rewritten: Option<BytesMut>,
}

/// Checks one complete request head (request line, fields, empty line).
pub(crate) fn check(head: &[u8]) -> Result<Checked, Refusal> {
    // Uninitialised: filling 256 empty fields first would cost more than the parse.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let parsed =
        match req.parse_with_uninit_headers(head, &mut fields) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err(refuse(400, "bad-request", "the request head is incomplete"))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(refuse(431, "header-too-large", "too many header fields"))
            }
            Err(httparse::Error::Token | httparse::Error::Version) => return Err(refuse(
                400,
                "bad-request-line",
                "the request line is malformed (bytes a target may not contain, or not HTTP/1.x)",
            )),
            Err(_) => {
                return Err(refuse(
                    400,
                    "bad-header",
                    "a header field is malformed (control bytes, obs-fold or a bad name)",
                ))
            }
        };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let http10 = req.version == Some(0);
    let form = target_form(method, target)?;
    if matches!(form, Form::Authority) {
        // strait is not a forward proxy; Pingora would refuse it with a bare 405.
        return Err(refuse(
            405,
            "method-not-allowed",
            "CONNECT is not supported",
        ));
    }

    let mut hosts = Vec::new();
    let mut lengths = Vec::new();
    let mut length_fields = 0;
    let mut codings = Vec::new();
    let mut te_fields = 0;
    let mut upgrade = false;
    for f in req.headers.iter() {
        if f.value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return Err(refuse(
                400,
                "bad-header",
                "a header value holds NUL, CR or LF",
            ));
        }
        if f.name.eq_ignore_ascii_case("host") {
            hosts.push(f.value);
        } else if f.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if f.name.eq_ignore_ascii_case("content-length") {
            length_fields += 1;
            for v in f.value.split(|&b| b == b',') {
                lengths.push(content_length(v.trim_ascii())?);
            }
        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
            te_fields += 1;
            for c in f.value.split(|&b| b == b',') {
                codings.push(c.trim_ascii());
            }
        }
    }

    // Host (RFC 9112 §3.2): exactly one in HTTP/1.1, and a valid host[:port].
    match hosts.as_slice() {
        [] if !http10 => return Err(refuse(400, "missing-host", "HTTP/1.1 requires a Host")),
        [] => {}
        [one] => {
            if !valid_authority(one) {
                return Err(refuse(
                    400,
                    "bad-host",
                    "the Host is not a valid host[:port]",
                ));
            }
        }
        _ => return Err(refuse(400, "duplicate-host", "more than one Host field")),
    }

    // Transfer-Encoding (RFC 9112 §6.1): only `chunked`, once, last; never in HTTP/1.0.
    let body = if te_fields > 0 {
        if http10 {
            return Err(refuse(
                400,
                "bad-transfer-encoding",
                "HTTP/1.0 requests cannot carry Transfer-Encoding",
            ));
        }
        let chunked = codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count();
        if chunked > 1 || codings.iter().any(|c| c.is_empty()) {
            return Err(refuse(
                400,
                "bad-transfer-encoding",
                "chunked applied more than once, or an empty coding",
            ));
        }
        if codings.len() != 1 || chunked != 1 {
            return Err(refuse(
                501,
                "unsupported-transfer-encoding",
                "only a single `chunked` transfer coding is implemented",
            ));
        }
        // With Content-Length too, chunked frames the body (RFC 9112 §6.3) and Pingora drops
        // the Content-Length and closes the connection after the response.
        Body::Chunked
    } else {
        match lengths.split_first() {
            None => Body::None,
            Some((first, rest)) => {
                if rest.iter().any(|n| n != first) {
                    return Err(refuse(
                        400,
                        "bad-content-length",
                        "Content-Length values differ",
                    ));
                }
                Body::Length(*first)
            }
        }
    };

    let normalise_length = te_fields == 0 && lengths.len() > 1;
    let absolute = matches!(form, Form::Absolute { .. });
    if let Form::Absolute { authority, .. } = form {
        // RFC 9112 §3.2.2 lets the target's authority win; Pingora refuses a Host that differs,
        // and two names for one request are what smuggling is made of, so strait refuses too.
        if let Some(host) = hosts.first() {
            if !host.eq_ignore_ascii_case(authority.as_bytes()) {
                return Err(refuse(
                    400,
                    "host-mismatch",
                    "the Host differs from the target's authority",
                ));
            }
        }
    }
    let rewritten = (normalise_length || absolute).then(|| {
        rewrite(
            head,
            parsed,
            &req,
            &form,
            match body {
                Body::Length(n) if normalise_length => Some((n, length_fields)),
                _ => None,
            },
        )
    });
    Ok(Checked {
        body,
        upgrade,
        rewritten,
    })
}

/// The four request-target forms (RFC 9112 §3.2).
#[derive(Debug)]
enum Form<'a> {
    Origin,
    Absolute { authority: &'a str, path: &'a str },
    Asterisk,
    Authority,
}

fn target_form<'a>(method: &str, target: &'a str) -> Result<Form<'a>, Refusal> {
    const BAD: Refusal = refuse(
        400,
        "bad-request-target",
        "the request target is not origin-, absolute-, authority- or asterisk-form",
    );
    // Visible ASCII only: no control bytes, spaces or bytes above 0x7E (httparse lets
    // obs-text through; strait does not percent-encode and forward it).
    if target.is_empty() || !target.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(BAD);
    }
    if method == "CONNECT" {
        return if valid_authority(target.as_bytes()) && target.contains(':') {
            Ok(Form::Authority)
        } else {
            Err(BAD)
        };
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(Form::Asterisk)
        } else {
            Err(BAD)
        };
    }
    if target.starts_with('/') {
        return Ok(Form::Origin);
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return Err(BAD);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if !valid_authority(authority.as_bytes()) {
        return Err(BAD);
    }
    Ok(Form::Absolute { authority, path })
}

/// `host[:port]`: a reg-name (letters, digits, `-._~`, sub-delims, percent-escapes), an IPv4
/// address, or an `[IPv6]` literal; the port all digits, at most 65535. No userinfo.
pub(crate) fn valid_authority(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        let ok = !inner.is_empty()
            && std::str::from_utf8(inner).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        if !ok {
            return false;
        }
        match &v[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..=close], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.first() == Some(&b'[')
            || host.iter().all(|&b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b'~'
                            | b'%'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b'\''
                            | b'('
                            | b')'
                            | b'*'
                            | b'+'
                            | b','
                            | b';'
                            | b'='
                    )
            }));
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|n| n <= 65535)
    });
    host_ok && port_ok
}

/// One Content-Length value: digits only, no sign, fits in a u64 (RFC 9110 §8.6).
fn content_length(v: &[u8]) -> Result<u64, Refusal> {
    const BAD: Refusal = refuse(400, "bad-content-length", "Content-Length is not a number");
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(BAD)
}

/// The head again, with an absolute-form target made origin-form and one Content-Length.
fn rewrite(
    head: &[u8],
    parsed: usize,
    req: &httparse::Request<'_, '_>,
    form: &Form<'_>,
    length: Option<(u64, usize)>,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(head.len());
    out.put_slice(req.method.unwrap_or("GET").as_bytes());
    out.put_u8(b' ');
    match form {
        Form::Absolute { path: "", .. } => out.put_u8(b'/'),
        Form::Absolute { path, .. } if path.starts_with('?') => {
            out.put_u8(b'/');
            out.put_slice(path.as_bytes());
        }
        Form::Absolute { path, .. } => out.put_slice(path.as_bytes()),
        _ => out.put_slice(req.path.unwrap_or("/").as_bytes()),
    }
    out.put_slice(if req.version == Some(0) {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let mut host_written = false;
    for f in req.headers.iter() {
        let is_length = f.name.eq_ignore_ascii_case("content-length");
        if is_length && length.is_some() {
            continue;
        }
        if f.name.eq_ignore_ascii_case("host") {
            host_written = true;
        }
        out.put_slice(f.name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(f.value);
        out.put_slice(b"\r\n");
    }
    if let Form::Absolute { authority, .. } = form {
        if !host_written {
            out.put_slice(b"Host: ");
            out.put_slice(authority.as_bytes());
            out.put_slice(b"\r\n");
        }
    }
    if let Some((n, _)) = length {
        out.put_slice(b"Content-Length: ");
        out.put_slice(itoa::Buffer::new().format(n).as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    debug_assert!(parsed <= head.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(head: &str) -> Result<Body, &'static str> {
        check(head.as_bytes()).map(|c| c.body).map_err(|r| r.code)
    }

    fn status(head: &str) -> u16 {
        check(head.as_bytes()).map_or_else(|r| r.status, |_| 200)
    }

    #[test]
    fn ordinary_requests_pass_unchanged() {
        let c = check(b"GET /a?b=1 HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
        assert_eq!(
            c,
            Checked {
                body: Body::None,
                upgrade: false,
                rewritten: None
            }
        );
        assert_eq!(
            code("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Ok(Body::Length(5))
        );
        assert_eq!(
            code("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(Body::Chunked)
        );
        assert_eq!(code("GET / HTTP/1.0\r\n\r\n"), Ok(Body::None));
        assert_eq!(
            code("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Body::None)
        );
        assert_eq!(code("GET / HTTP/1.1\nHost: a\n\n"), Ok(Body::None));
    }

    #[test]
    fn transfer_encoding() {
        let te = |v: &str| code(&format!("POST / HTTP/1.1\r\nHost: a\r\n{v}\r\n\r\n"));
        assert_eq!(
            te("Transfer-Encoding: chunked, chunked"),
            Err("bad-transfer-encoding")
        );
        assert_eq!(
            te("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
            Err("bad-transfer-encoding")
        );
        assert_eq!(
            te("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked"),
            Err("bad-transfer-encoding")
        );
        assert_eq!(
            te("Transfer-Encoding: gzip, chunked"),
            Err("unsupported-transfer-encoding")
        );
        assert_eq!(
            te("Transfer-Encoding: identity"),
            Err("unsupported-transfer-encoding")
        );
        assert_eq!(
            te("Transfer-Encoding: chunked, gzip"),
            Err("unsupported-transfer-encoding")
        );
        assert_eq!(
            te("Transfer-Encoding: chunked,"),
            Err("bad-transfer-encoding")
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            code("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err("bad-transfer-encoding")
        );
        // Both: chunked frames the body.
        assert_eq!(
            te("Transfer-Encoding: chunked\r\nContent-Length: 10"),
            Ok(Body::Chunked)
        );
    }

    #[test]
    fn content_length() {
        let cl = |v: &str| code(&format!("POST / HTTP/1.1\r\nHost: a\r\n{v}\r\n\r\n"));
        for bad in [
            "+5",
            "-1",
            "1.5",
            "",
            "0x10",
            "5 5",
            "99999999999999999999",
            "５",
        ] {
            assert_eq!(
                cl(&format!("Content-Length: {bad}")),
                Err("bad-content-length"),
                "{bad}"
            );
        }
        assert_eq!(cl("Content-Length: 5, 6"), Err("bad-content-length"));
        assert_eq!(
            cl("Content-Length: 5\r\nContent-Length: 6"),
            Err("bad-content-length")
        );
        assert_eq!(cl("Content-Length: 1000, 1000"), Ok(Body::Length(1000)));
        let c = check(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nX: y\r\nContent-Length: 7\r\n\r\n")
            .unwrap();
        assert_eq!(
            &c.rewritten.unwrap()[..],
            b"POST /x HTTP/1.1\r\nHost: a\r\nX: y\r\nContent-Length: 7\r\n\r\n"
        );
    }

    #[test]
    fn host() {
        assert_eq!(code("GET / HTTP/1.1\r\n\r\n"), Err("missing-host"));
        assert_eq!(
            code("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            Err("duplicate-host")
        );
        for bad in [
            "a b", "a/b", "a:99999", "", "u@a", "a:", "[::1", "[zz]:80", "a:8o",
        ] {
            assert_eq!(
                code(&format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n")),
                Err("bad-host"),
                "{bad:?}"
            );
        }
        for good in [
            "a.test",
            "a.test:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "[::1]",
            "xn--bcher-kva.example",
        ] {
            assert!(
                code(&format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n")).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn targets() {
        for bad in [
            "!",
            "foo",
            "a/../admin",
            "*",
            "http:/x",
            "ht tp://a/",
            "http://u@a/",
        ] {
            let head = format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(
                matches!(code(&head), Err("bad-request-target" | "bad-request-line")),
                "{bad:?}: {:?}",
                code(&head)
            );
        }
        // `//a/` is origin-form (a path that starts with `/`): allowed.
        assert!(code("GET //a/ HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        // Bytes a target may not hold: control bytes, spaces, obs-text.
        for raw in [
            &b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(check(raw).map_err(|r| r.status), Err(400), "{raw:?}");
        }
        assert_eq!(
            code("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n"),
            Err("method-not-allowed")
        );
        assert_eq!(
            code("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err("bad-request-target")
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let c =
            check(b"GET http://A.test:8080/p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\nX: 1\r\n\r\n")
                .unwrap();
        assert_eq!(
            &c.rewritten.unwrap()[..],
            b"GET /p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\nX: 1\r\n\r\n"
        );
        let c = check(b"GET http://a.test HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            &c.rewritten.unwrap()[..],
            b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n"
        );
        assert_eq!(
            code("GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n"),
            Err("host-mismatch")
        );
    }

    #[test]
    fn field_values() {
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n").map_err(|r| r.code),
            Err("bad-header")
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n").map_err(|r| r.code),
            Err("bad-header")
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n").map_err(|r| r.code),
            Err("bad-header")
        );
    }
}
