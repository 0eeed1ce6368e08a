//! A strait plugin (docs/plugins.md) in Rust: the strait protocol v1 by hand, on the standard
//! library alone, as a separate program (not a hook compiled into the proxy). It needs no
//! crate, so it builds with cargo or with rustc alone (`rustc examples/plugin_auth.rs`); a
//! plugin of your own would rather take `serde_json` than the small JSON reader below.
//!
//! A request with `Authorization: Bearer <PLUGIN_TOKEN>` goes on (without the credential, and
//! with `X-Authenticated: yes`); anything else gets a `401`. `PLUGIN_TOKEN` is required (strait
//! passes its own environment on to the plugins it starts).
//!
//! ```text
//! cargo build --example plugin_auth    # or: rustc -O examples/plugin_auth.rs
//! # run by strait, on the Unix socket it names in STRAIT_PLUGIN_SOCKET:
//! #   PLUGIN_TOKEN=s3cret strait -c strait.yaml, with
//! #   plugins: { auth: { command: [target/debug/examples/plugin_auth], timeout: 1s } }
//! # or on its own, over TCP:
//! PLUGIN_TOKEN=s3cret target/debug/examples/plugin_auth 9102
//! #   plugins: { auth: { url: http://127.0.0.1:9102, timeout: 1s } }
//! ```
//!
//! Every connection gets a thread and is kept alive (strait pools its connections to
//! plugins). The HTTP/1.1 spoken is the subset strait sends: a request line, headers, a body
//! of `Content-Length` bytes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

/// Requests over this are refused (strait's messages are a few KiB).
const MAX_BODY: usize = 1 << 20;

/// One parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Reads one request; `Ok(None)` when the peer closed the connection between requests.
fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut close = version == "HTTP/1.0";
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if r.read_line(&mut header)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if length > MAX_BODY {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

fn write_json(w: &mut impl Write, status: u16, body: &str) -> io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Error" };
    write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// The answer to `POST /v1/request`, as JSON text.
fn decide(token: &str, request: &Json) -> String {
    let auth = request
        .get("headers")
        .and_then(|h| h.get("authorization"))
        .and_then(Json::as_str)
        .unwrap_or("");
    let presented = auth
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if presented.is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) {
        r#"{"action":"continue","set_headers":{"X-Authenticated":"yes"},"remove_headers":["authorization"]}"#.to_string()
    } else {
        format!(
            r#"{{"action":"respond","status":401,"headers":{{"WWW-Authenticate":{},"Content-Type":"text/plain"}},"body":"unauthorized\n"}}"#,
            quote("Bearer realm=\"strait\"")
        )
    }
}

/// Compares without stopping at the first difference (the length still shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves one connection until the peer closes it.
fn serve(stream: impl Read + Write, token: &str) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader)? {
        let (status, answer) = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/hello") => (200, r#"{"phases":["request"]}"#.to_string()),
            ("POST", "/v1/request") => match Json::parse(&req.body) {
                Some(message) => (200, decide(token, &message)),
                None => (400, r#"{"error":"bad JSON"}"#.to_string()),
            },
            _ => (404, r#"{"error":"not found"}"#.to_string()),
        };
        write_json(reader.get_mut(), status, &answer)?;
        if req.close {
            break;
        }
    }
    Ok(())
}

fn main() {
    let token: Arc<str> = match std::env::var("PLUGIN_TOKEN") {
        Ok(t) if !t.is_empty() => t.into(),
        _ => {
            // No default secret: a plugin that let a well-known token in would be worse than none.
            eprintln!("plugin_auth: set PLUGIN_TOKEN to the bearer token to accept");
            std::process::exit(2);
        }
    };
    // strait logs a command plugin's stderr lines with the plugin's name.
    if let Ok(path) = std::env::var("STRAIT_PLUGIN_SOCKET") {
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("cannot listen on {path}: {e}"));
        eprintln!("plugin_auth listening on {path}");
        for stream in listener.incoming().flatten() {
            let token = Arc::clone(&token);
            std::thread::spawn(move || serve(stream, &token));
        }
    } else {
        let port = std::env::args()
            .nth(1)
            .or_else(|| std::env::var("PLUGIN_PORT").ok())
            .unwrap_or_else(|| "9102".to_string());
        let addr = format!("127.0.0.1:{port}");
        let listener =
            TcpListener::bind(&addr).unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        eprintln!("plugin_auth listening on {addr}");
        for stream in listener.incoming().flatten() {
            let token = Arc::clone(&token);
            std::thread::spawn(move || serve(stream, &token));
        }
    }
}

/// A JSON value: just enough of RFC 8259 to read strait's messages.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The whole of `bytes` as one value; `None` when it is not JSON.
    fn parse(bytes: &[u8]) -> Option<Json> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let v = p.value(0)?;
        p.space();
        (p.at == p.s.len()).then_some(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while matches!(self.s.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.space();
        (self.s.get(self.at) == Some(&b)).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &str, v: Json) -> Option<Json> {
        self.s[self.at..].starts_with(word.as_bytes()).then(|| {
            self.at += word.len();
            v
        })
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        match *self.s.get(self.at)? {
            b'n' => self.literal("null", Json::Null),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',').is_none() {
                        self.eat(b']')?;
                        return Some(Json::Array(items));
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.eat(b'}').is_some() {
                    return Some(Json::Object(members));
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    self.eat(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    if self.eat(b',').is_none() {
                        self.eat(b'}')?;
                        return Some(Json::Object(members));
                    }
                }
            }
            _ => self.number(),
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        while matches!(
            self.s.get(self.at),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).ok()?;
        text.parse().ok().map(Json::Number)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.at..self.at + 4)?;
        self.at += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        if self.s.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while !matches!(self.s.get(self.at), Some(b'"' | b'\\') | None) {
                self.at += 1;
            }
            // The input is UTF-8 and the run stops at an ASCII byte: a whole number of chars.
            out.push_str(std::str::from_utf8(&self.s[start..self.at]).ok()?);
            match *self.s.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                _ => {
                    self.at += 1;
                    let c = match *self.s.get(self.at)? {
                        b'u' => {
                            self.at += 1;
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair: \uD83D\uDE00.
                                if self.s.get(self.at..self.at + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.at += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code)?);
                            continue;
                        }
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return None,
                    };
                    self.at += 1;
                    out.push(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_strait_sends() {
        let msg = br#"{"version":1,"method":"GET","path":"/a","query":null,
            "headers":{"authorization":"Bearer t\u00f6k\"en","x":"\ud83d\ude00"},
            "client_ip":"127.0.0.1","n":[1.5e3,-2,true,false,{}]}"#;
        let v = Json::parse(msg).expect("JSON");
        let h = v.get("headers").expect("headers");
        assert_eq!(
            h.get("authorization").and_then(Json::as_str),
            Some("Bearer tök\"en")
        );
        assert_eq!(h.get("x").and_then(Json::as_str), Some("😀"));
        assert_eq!(v.get("query"), Some(&Json::Null));
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "[1,]",
            "\"\\x\"",
            "{} x",
            "\"\\ud83d\"",
        ] {
            assert_eq!(Json::parse(bad.as_bytes()), None, "{bad}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(Json::parse(deep.as_bytes()), None);
    }

    #[test]
    fn decides_by_the_token() {
        let with = |auth: &str| {
            Json::parse(format!(r#"{{"headers":{{"authorization":{}}}}}"#, quote(auth)).as_bytes())
                .unwrap()
        };
        assert!(decide("k", &with("Bearer k")).contains("\"continue\""));
        assert!(decide("k", &with("bearer  k ")).contains("\"continue\""));
        assert!(decide("k", &with("Bearer x")).contains("\"respond\""));
        assert!(decide("k", &with("Basic k")).contains("\"respond\""));
        let refusal = Json::parse(decide("k", &Json::Null).as_bytes()).expect("valid JSON");
        assert_eq!(
            refusal
                .get("headers")
                .and_then(|h| h.get("WWW-Authenticate"))
                .and_then(Json::as_str),
            Some("Bearer realm=\"strait\"")
        );
        assert_eq!(
            refusal.get("body").and_then(Json::as_str),
            Some("unauthorized\n")
        );
    }
}
