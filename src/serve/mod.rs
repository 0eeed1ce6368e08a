//! The static file server of `serve:` (docs/routing.md, "Serving files"). [`Site::answer`]
//! turns a request into an [`Answer`] with blocking file-system calls (the proxy runs it on its
//! worker thread: page-cache syscalls, see `proxy/serve.rs`); `proxy/serve.rs` writes it,
//! streaming larger file bodies from the blocking pool with [`send`].
//!
//! - `path.rs`: the request path to a file under the root, refusing traversal and symlinks
//!   out of the root;
//! - `conditional.rs`: `ETag` / `Last-Modified`, 304s, `Range` and `If-Range`;
//! - `encoding.rs`: `Accept-Encoding` against the precompressed siblings;
//! - `listing.rs`: the `browse` page;
//! - `send.rs`: streaming a file to the client in chunks.

mod conditional;
mod encoding;
mod listing;
mod path;
pub(crate) mod send;

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::Serve;
use conditional::Ranged;
use path::{Found, Miss};

/// One `serve` of a domain or route, as requests use it (public only as the snapshot's
/// `RouteAction` is; the module is crate-private).
pub struct Site {
    pub(crate) config: Serve,
    /// The root, symlinks resolved: every file served resolves to a path under it.
    root: PathBuf,
    /// When the missing root was last logged (ms after `born`, plus one; 0: never).
    warned: AtomicU64,
    born: Instant,
}

/// What [`Site::answer`] needs of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    pub(crate) head: bool,
    /// The path as sent (percent-encoded), without the query.
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) if_none_match: Option<String>,
    pub(crate) if_modified_since: Option<String>,
    pub(crate) range: Option<String>,
    pub(crate) if_range: Option<String>,
    pub(crate) accept_encoding: Option<String>,
}

impl Request {
    /// The parts of `req` that matter here. The path is the request's as it stands now, so
    /// a rewrite made before serving is what is looked up.
    pub(crate) fn of(req: &RequestHeader) -> Request {
        let text = |name: header::HeaderName| -> Option<String> {
            let values: Vec<&str> = req
                .headers
                .get_all(&name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        Request {
            head: req.method == http::Method::HEAD,
            path: req.uri.path().to_string(),
            query: req.uri.query().map(str::to_string),
            if_none_match: text(header::IF_NONE_MATCH),
            if_modified_since: text(header::IF_MODIFIED_SINCE),
            range: text(header::RANGE),
            if_range: text(header::IF_RANGE),
            accept_encoding: text(header::ACCEPT_ENCODING),
        }
    }
}

/// What to send.
pub(crate) enum Answer {
    Reply {
        header: Box<ResponseHeader>,
        body: Body,
    },
    Refused(Refusal),
}

pub(crate) enum Body {
    /// No body (HEAD, 304); the head may still announce a length.
    Empty,
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, streamed by [`send::file`].
    File {
        file: File,
        offset: u64,
        len: u64,
    },
}

/// The error pages a `serve` gives (`proxy/error_class.rs` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 403: traversal, a symlink out of the root, no permission, a folder without an index
    /// when `browse` is off.
    Forbidden,
    /// 404.
    NotFound,
    /// 416, with `Content-Range: bytes */len`.
    RangeNotSatisfiable { len: u64, vary: bool },
    /// 500: a folder that cannot be listed, an unexpected error.
    Internal,
}

impl Site {
    /// The runtime form of `config`: its root resolved now (a root that is gone by then is
    /// used as written and answers 404).
    pub(crate) fn new(config: &Serve) -> Site {
        let root = std::fs::canonicalize(&config.root).unwrap_or_else(|_| {
            std::path::absolute(&config.root).unwrap_or_else(|_| config.root.clone())
        });
        Site {
            config: config.clone(),
            root,
            warned: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// The answer to `req` (a GET or HEAD). Blocking: stats, opens and reads files.
    pub(crate) fn answer(&self, req: &Request) -> Answer {
        let relative = match path::relative(&req.path) {
            Ok(r) => r,
            Err(miss) => return refused(miss),
        };
        let wanted = self.root.join(&relative);
        match path::locate(&self.root, &wanted) {
            Ok(found) if found.is_dir() => self.folder(req, &found),
            Ok(found) => self.file(req, &wanted, &found),
            Err(Miss::NotFound) => {
                self.check_root();
                if self.config.spa {
                    if let Some(index) = self.index_of(req, &self.root) {
                        return index;
                    }
                }
                Answer::Refused(Refusal::NotFound)
            }
            Err(miss) => refused(miss),
        }
    }

    /// A folder: its index file, else a listing (`browse`), else 403. Asked for without
    /// the trailing slash, a redirect to the slash form (so relative links in its pages
    /// work), as nginx does.
    fn folder(&self, req: &Request, found: &Found) -> Answer {
        if !req.path.ends_with('/') {
            return redirect_to_folder(req);
        }
        if let Some(index) = self.index_of(req, &found.path) {
            return index;
        }
        if !self.config.browse {
            return Answer::Refused(Refusal::Forbidden);
        }
        let shown = percent_encoding::percent_decode_str(&req.path).decode_utf8_lossy();
        let at_root = found.path == self.root;
        match listing::page(&found.path, &shown, at_root) {
            Ok(html) => {
                let body = Bytes::from(html);
                let mut h = reply(200);
                insert(&mut h, "Content-Type", "text/html; charset=utf-8");
                insert(&mut h, "Content-Length", &body.len().to_string());
                self.cache_control(&mut h);
                Answer::Reply {
                    header: Box::new(h),
                    body: Body::Bytes(body),
                }
            }
            Err(e) => {
                log::warn!("serve: cannot list {}: {e}", found.path.display());
                Answer::Refused(Refusal::Internal)
            }
        }
    }

    /// The first index file of folder `dir` (a resolved path under the root), served as any
    /// file is.
    fn index_of(&self, req: &Request, dir: &Path) -> Option<Answer> {
        self.config.index.iter().find_map(|name| {
            let wanted = dir.join(name);
            let found = path::locate(&self.root, &wanted).ok()?;
            (!found.is_dir()).then(|| self.file(req, &wanted, &found))
        })
    }

    /// A file: `wanted` is the path asked for (its name gives the `Content-Type`), `found`
    /// what it resolved to. A precompressed sibling the client accepts replaces it.
    fn file(&self, req: &Request, wanted: &Path, found: &Found) -> Answer {
        let offered = &self.config.precompressed;
        let variant = encoding::accepted(req.accept_encoding.as_deref(), offered)
            .into_iter()
            .find_map(|coding| {
                let mut name = wanted.as_os_str().to_owned();
                name.push(coding.suffix());
                let sibling = path::locate(&self.root, Path::new(&name)).ok()?;
                if sibling.is_dir() {
                    return None;
                }
                let (file, meta) = path::open(&sibling).ok()?;
                Some((Some(coding), file, meta))
            });
        let (coding, file, meta) = match variant {
            Some(v) => v,
            None => match path::open(found) {
                Ok((file, meta)) => (None, file, meta),
                Err(miss) => return refused(miss),
            },
        };
        self.send_file(req, wanted, coding, file, &meta)
    }

    fn send_file(
        &self,
        req: &Request,
        wanted: &Path,
        coding: Option<crate::config::Encoding>,
        file: File,
        meta: &Metadata,
    ) -> Answer {
        let vary = !self.config.precompressed.is_empty();
        let etag = conditional::etag(meta);
        let modified = conditional::modified(meta);
        let len = meta.len();
        let mut h = reply(200);
        insert(&mut h, "ETag", &etag);
        if let Some(m) = modified {
            insert(&mut h, "Last-Modified", &httpdate::fmt_http_date(m));
        }
        self.cache_control(&mut h);
        if vary {
            insert(&mut h, "Vary", "Accept-Encoding");
        }
        let (inm, ims) = (
            req.if_none_match.as_deref(),
            req.if_modified_since.as_deref(),
        );
        if conditional::not_modified(inm, ims, &etag, modified) {
            let _ = h.set_status(304);
            return Answer::Reply {
                header: Box::new(h),
                body: Body::Empty,
            };
        }
        insert(&mut h, "Content-Type", &content_type(wanted));
        insert(&mut h, "Accept-Ranges", "bytes");
        if let Some(c) = coding {
            insert(&mut h, "Content-Encoding", c.name());
        }
        // Range handling is defined for GET only (RFC 9110 §14.2).
        let ranged = if req.head {
            Ranged::Full
        } else {
            conditional::range(
                req.range.as_deref(),
                req.if_range.as_deref(),
                &etag,
                modified,
                len,
            )
        };
        let (offset, count) = match ranged {
            Ranged::Full => (0, len),
            Ranged::Unsatisfiable => {
                return Answer::Refused(Refusal::RangeNotSatisfiable { len, vary });
            }
            Ranged::Part { start, end } => {
                let _ = h.set_status(206);
                let range = format!("bytes {start}-{end}/{len}");
                insert(&mut h, "Content-Range", &range);
                (start, end - start + 1)
            }
        };
        insert(&mut h, "Content-Length", &count.to_string());
        let body = if req.head {
            Body::Empty
        } else if count <= send::READ_AT_ONCE {
            // Small enough for one read, here and now.
            match send::read_exact_at(&file, offset, count as usize) {
                Ok(bytes) => Body::Bytes(bytes),
                Err(e) => {
                    log::warn!("serve: cannot read {}: {e}", wanted.display());
                    return Answer::Refused(Refusal::Internal);
                }
            }
        } else {
            Body::File {
                file,
                offset,
                len: count,
            }
        };
        Answer::Reply {
            header: Box::new(h),
            body,
        }
    }

    /// Logs a missing root, at most once a second.
    fn check_root(&self) {
        if self.root.is_dir() {
            return;
        }
        let now = self.born.elapsed().as_millis() as u64 + 1;
        let last = self.warned.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "serve: root folder {} is missing; its requests get 404",
                self.root.display()
            );
        }
    }

    fn cache_control(&self, h: &mut ResponseHeader) {
        if let Some(cc) = &self.config.cache_control {
            insert(h, "Cache-Control", cc);
        }
    }
}

fn refused(miss: Miss) -> Answer {
    Answer::Refused(match miss {
        Miss::NotFound => Refusal::NotFound,
        Miss::Forbidden => Refusal::Forbidden,
    })
}

/// 301 to the path with a slash added, the query kept. Repeated slashes are collapsed, so
/// `//host/dir` cannot become a protocol-relative `Location` naming another site.
fn redirect_to_folder(req: &Request) -> Answer {
    let mut location = String::with_capacity(req.path.len() + 2);
    for c in req.path.chars() {
        if !(c == '/' && location.ends_with('/')) {
            location.push(c);
        }
    }
    location.push('/');
    if let Some(q) = &req.query {
        location.push('?');
        location.push_str(q);
    }
    let body = Bytes::from(format!("Redirecting to {location}\n"));
    let mut h = reply(301);
    insert(&mut h, "Location", &location);
    insert(&mut h, "Content-Type", "text/plain; charset=utf-8");
    insert(&mut h, "Content-Length", &body.len().to_string());
    Answer::Reply {
        header: Box::new(h),
        body: Body::Bytes(body),
    }
}

/// From the extension of the name asked for; `text/*` in UTF-8.
pub(crate) fn content_type(name: &Path) -> String {
    match mime_guess::from_path(name).first_raw() {
        Some(t) if t.starts_with("text/") => format!("{t}; charset=utf-8"),
        Some(t) => t.to_string(),
        None => "application/octet-stream".to_string(),
    }
}

fn reply(status: u16) -> ResponseHeader {
    // Statuses given here are all valid.
    ResponseHeader::build(status, Some(10))
        .unwrap_or_else(|_| ResponseHeader::build(500, None).expect("500"))
}

/// Values made here are valid header values (paths come from a parsed request target,
/// `cache_control` was checked at load). Names are written as given (Pingora keeps case).
fn insert(h: &mut ResponseHeader, name: &'static str, value: &str) {
    if h.insert_header(name, value).is_err() {
        log::debug!("serve: {name} {value:?} is not a header value");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_from_extensions() {
        assert_eq!(
            content_type(Path::new("a/b.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.CSS")), "text/css; charset=utf-8");
        assert_eq!(
            content_type(Path::new("x.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.json")), "application/json");
        assert_eq!(content_type(Path::new("x.png")), "image/png");
        assert_eq!(content_type(Path::new("x.svg")), "image/svg+xml");
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
