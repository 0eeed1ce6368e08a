//! The server name of a TLS ClientHello, read from the bytes a client has sent so far without
//! terminating anything (RFC 8446 §4.1.2, RFC 6066 §3).
//!
//! Only the framing needed to reach the `server_name` extension is read: records, the
//! handshake header, and the length-prefixed fields before the extensions. The handshake
//! message may be split over several records and the records over any number of reads; the
//! caller feeds the growing buffer in again until the answer is not [`Hello::More`]. Written
//! here rather than taken from a TLS parsing crate: the one made for it (tls-parser) would add
//! eighteen crates, build-time code generation among them, for these few length fields.

/// The largest ClientHello accepted (its handshake message). Real ones are well under 2 KiB
/// (a few KiB with post-quantum key shares); the cap bounds what one connection may make
/// strait hold before it decides.
pub(crate) const MAX_HELLO: usize = 16 << 10;
/// The most bytes buffered while reading a ClientHello: the message plus its record headers
/// (records of a few bytes each would need more, and are refused as too large).
pub(crate) const MAX_BUFFER: usize = MAX_HELLO + 1024;

const RECORD_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_HOST: u8 = 0;

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// A ClientHello has begun and is not complete yet.
    More,
    /// A complete ClientHello, and the host name it asks for (lower-cased), if any.
    Done(Option<String>),
    /// Not a TLS ClientHello, or one strait refuses (the reason, for metrics and logs).
    Bad(&'static str),
}

/// Reads `buf` (every byte the client has sent so far).
pub(crate) fn parse(buf: &[u8]) -> Hello {
    let mut handshake: Vec<u8> = Vec::new();
    let mut at = 0;
    while buf.len() > at {
        if buf[at] != RECORD_HANDSHAKE {
            return Hello::Bad("not_tls");
        }
        if buf.len() < at + 5 {
            break;
        }
        if buf[at + 1] != 3 {
            return Hello::Bad("not_tls");
        }
        let len = usize::from(u16::from_be_bytes([buf[at + 3], buf[at + 4]]));
        // An empty handshake record is not allowed (RFC 8446 §5.1); 2^14 is the largest.
        if len == 0 || len > 1 << 14 {
            return Hello::Bad("malformed");
        }
        let Some(fragment) = buf.get(at + 5..at + 5 + len) else {
            break;
        };
        handshake.extend_from_slice(fragment);
        at += 5 + len;
        if handshake[0] != HANDSHAKE_CLIENT_HELLO {
            return Hello::Bad("not_client_hello");
        }
        if handshake.len() < 4 {
            continue;
        }
        let body_len = usize::from(handshake[1]) << 16
            | usize::from(handshake[2]) << 8
            | usize::from(handshake[3]);
        if body_len > MAX_HELLO {
            return Hello::Bad("too_large");
        }
        if handshake.len() >= 4 + body_len {
            return match server_name(&handshake[4..4 + body_len]) {
                Ok(name) => Hello::Done(name),
                Err(why) => Hello::Bad(why),
            };
        }
    }
    if buf.len() >= MAX_BUFFER {
        return Hello::Bad("too_large");
    }
    Hello::More
}

/// A cursor over one length-checked field after another.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("malformed");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<usize, &'static str> {
        Ok(usize::from(self.take(1)?[0]))
    }

    fn u16(&mut self) -> Result<usize, &'static str> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A field with a one- or two-byte length in front.
    fn vec8(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The `server_name` of a ClientHello body; `Ok(None)` when it has none.
fn server_name(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Ok(None); // no extensions at all (TLS 1.2 allows that)
    }
    let mut extensions = Reader(r.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != usize::from(EXT_SERVER_NAME) {
            continue;
        }
        let mut names = Reader(Reader(data).vec16()?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec16()?;
            if name_type != usize::from(NAME_HOST) {
                continue;
            }
            let ok = !name.is_empty()
                && name
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !ok {
                return Err("bad_server_name");
            }
            let text = String::from_utf8_lossy(name).to_ascii_lowercase();
            return Ok(Some(text.trim_end_matches('.').to_string()));
        }
        return Ok(None);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record as a client would send it, with `sni` when given.
    fn hello(sni: Option<&str>, padding: usize) -> Vec<u8> {
        let mut ext = Vec::new();
        if let Some(name) = sni {
            let mut list = vec![NAME_HOST];
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name.as_bytes());
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend_from_slice(&list);
            ext.extend_from_slice(&EXT_SERVER_NAME.to_be_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(&data);
        }
        // A padding extension (21) makes the message as large as asked.
        ext.extend_from_slice(&21u16.to_be_bytes());
        ext.extend_from_slice(&(padding as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, padding));
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![HANDSHAKE_CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        records(&hs, 1 << 14)
    }

    /// `handshake` split into records of at most `size` bytes.
    fn records(handshake: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in handshake.chunks(size) {
            out.extend_from_slice(&[RECORD_HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn finds_the_name() {
        let bytes = hello(Some("Legacy.Example.com"), 10);
        assert_eq!(
            parse(&bytes),
            Hello::Done(Some("legacy.example.com".into()))
        );
        assert_eq!(parse(&hello(None, 10)), Hello::Done(None));
    }

    #[test]
    fn every_prefix_asks_for_more() {
        let bytes = hello(Some("a.test"), 300);
        for n in 1..bytes.len() {
            assert_eq!(parse(&bytes[..n]), Hello::More, "after {n} bytes");
        }
    }

    #[test]
    fn handshake_split_over_records() {
        let one = hello(Some("split.test"), 200);
        let handshake = &one[5..];
        let bytes = records(handshake, 7);
        assert_eq!(parse(&bytes), Hello::Done(Some("split.test".into())));
        assert_eq!(parse(&bytes[..bytes.len() - 1]), Hello::More);
    }

    #[test]
    fn refuses_what_is_not_a_client_hello() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::Bad("not_tls"));
        assert_eq!(parse(&[22, 9, 1, 0, 5]), Hello::Bad("not_tls"));
        assert_eq!(parse(&[22, 3, 1, 0, 0]), Hello::Bad("malformed"));
        assert_eq!(
            parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
            Hello::Bad("not_client_hello")
        );
        // A message claiming more than MAX_HELLO.
        assert_eq!(
            parse(&[22, 3, 1, 0, 4, 1, 1, 0, 0]),
            Hello::Bad("too_large")
        );
        // Lengths inside the body that run past its end.
        let mut bytes = hello(Some("a.test"), 10);
        // cipher_suites' length: record (5), handshake (4), version (2), random (32), session id (1).
        bytes[45] = 0xff;
        assert_eq!(parse(&bytes), Hello::Bad("malformed"));
        // Tiny records that never finish a message stop at the buffer's bound.
        let dribble = records(&[1, 0, 0x3f, 0xff], 1);
        let mut long = dribble.clone();
        while long.len() < MAX_BUFFER {
            long.extend_from_slice(&records(&[0], 1));
        }
        assert_eq!(parse(&long), Hello::Bad("too_large"));
        let bad_name = hello(Some("a b"), 10);
        assert_eq!(parse(&bad_name), Hello::Bad("bad_server_name"));
    }
}
