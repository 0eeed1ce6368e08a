//! Streaming a file's bytes to the client in chunks, never the whole file in memory: each
//! chunk is read on tokio's blocking pool while the one before it is written, so at most
//! two chunks are held per request. Written through `Session::write_response_body`, so
//! Pingora's downstream modules (compression) see the body like a backend's.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tokio::task::JoinHandle;

/// The largest file (or range) read at once on the worker thread instead of streamed: a read
/// this small from the page cache costs less than a hand-off to the blocking pool.
pub(crate) const READ_AT_ONCE: u64 = 64 << 10;

/// The size of one streamed read and one body write. Each chunk is a round trip to tokio's
/// blocking pool, so fewer, larger chunks cost less CPU per byte; two are held per request.
pub(crate) const CHUNK: u64 = 256 << 10;

/// Reads `len` bytes at `offset` from `file`, fully or not at all (a file that shrank
/// under us is an error: the response head already promised `len` bytes).
pub(crate) fn read_exact_at(file: &File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    read_into(file, offset, vec![0u8; len])
}

fn read_into(file: &File, offset: u64, mut buf: Vec<u8>) -> std::io::Result<Bytes> {
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

/// Starts reading the chunk at `at` on the blocking pool. The buffer is allocated here, on the
/// worker thread that frees it once written: allocated on a blocking-pool thread, each chunk
/// was freed across threads, and the allocator kept those threads' pages (a 1 MiB file
/// benchmark peaked at 269 MiB resident).
fn start_read(file: &Arc<File>, at: u64, len: usize) -> JoinHandle<std::io::Result<Bytes>> {
    let file = file.clone();
    let buf = vec![0u8; len];
    tokio::task::spawn_blocking(move || read_into(&file, at, buf))
}

fn read_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Box<Error> {
    Error::because(ErrorType::FileReadError, "serve: reading a file", e)
}

/// Writes bytes `offset..offset + len` of `file` as the response body (the head is written).
pub(crate) async fn file(session: &mut Session, file: File, offset: u64, len: u64) -> Result<()> {
    if len == 0 {
        return session.write_response_body(None, true).await;
    }
    let file = Arc::new(file);
    let mut at = offset;
    let end = offset + len;
    let next = |at: u64| CHUNK.min(end - at) as usize;
    let mut pending = Some(start_read(&file, at, next(at)));
    while let Some(reading) = pending.take() {
        let chunk = reading.await.map_err(read_error)?.map_err(read_error)?;
        at += chunk.len() as u64;
        if at < end {
            pending = Some(start_read(&file, at, next(at)));
        }
        // On a write error the read in flight finishes on its own and is dropped.
        session.write_response_body(Some(chunk), at >= end).await?;
    }
    Ok(())
}
