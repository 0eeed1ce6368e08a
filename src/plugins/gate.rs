//! Connection gating: the plugins a listener lists are asked about each new connection
//! (`POST /v1/connection`, docs/plugins.md) before a request is read from it (on TLS, right
//! after the handshake), in order; the first
//! `deny` closes it. A plugin that fails applies its `on_error`: `allow` goes on, `deny`
//! answers an HTTP/1 connection `403` with `X-Strait-Error: plugin-unavailable` (an HTTP/2
//! one is closed) and closes.

use pingora::protocols::Stream;

use super::ConnectionInfo;
use crate::config::{Listener, PluginOnError};
use crate::snapshot::Snapshot;

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Serve,
    /// A plugin said `deny`: close without a word.
    Close,
    /// A plugin failed and its `on_error` is `deny`: 403, then close.
    Refuse,
}

/// The listener, when it has connection plugins for [`connection`] to ask; a connection on
/// any other is served without a call.
pub(crate) fn asking(listener: Option<&Listener>) -> Option<&Listener> {
    listener.filter(|l| !l.plugins.is_empty())
}

/// Asks the plugins of `listener` (one [`asking`] returned), the one `stream` arrived on.
pub(crate) async fn connection(snapshot: &Snapshot, listener: &Listener, stream: &Stream) -> Gate {
    let digest = stream.get_socket_digest();
    let client_ip = digest
        .as_ref()
        .and_then(|d| d.peer_addr())
        .and_then(|a| a.as_inet().map(|a| a.ip()));
    let sni = crate::tls::Handshake::sni_of(stream);
    let name = listener
        .name
        .clone()
        .unwrap_or_else(|| listener.addr.to_string());
    let info = ConnectionInfo {
        client_ip,
        listener: &name,
        sni: sni.as_deref(),
    };
    for plugin in listener
        .plugins
        .iter()
        .filter_map(|n| snapshot.plugins.get(n))
    {
        match plugin.on_connection(&info).await {
            Ok(Some(false)) => return Gate::Close,
            Ok(_) => {}
            Err(_) if plugin.on_error() == PluginOnError::Allow => {}
            Err(_) => return Gate::Refuse,
        }
    }
    Gate::Serve
}

/// The 403 a refused HTTP/1 connection gets.
pub(crate) const REFUSED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nX-Strait-Error: plugin-unavailable\r\nContent-Length: 32\r\nConnection: close\r\n\r\nstrait: a plugin is unavailable\n";

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_frames_its_body() {
        let text = std::str::from_utf8(super::REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
