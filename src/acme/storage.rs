//! `acme.storage`: the account and each host's certificate and key, as files only strait's
//! user can read (0600, in a 0700 folder), written whole (a temporary file renamed over the
//! old one) so a reader never sees half a file. A lock file (`lock`, held with flock) makes
//! one process order while the others sharing the folder wait and read the files it writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub(crate) struct Storage {
    dir: PathBuf,
}

/// Held while this process orders; dropping it (closing the file) releases the lock.
pub(crate) struct OrderLock {
    _file: File,
}

impl Storage {
    pub(crate) fn new(dir: &Path) -> Storage {
        Storage {
            dir: dir.to_path_buf(),
        }
    }

    /// Creates the folder if needed and checks that a file can be written in it: what
    /// `strait -t` reports, and what every order needs.
    pub(crate) fn check_writable(&self) -> Result<(), String> {
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        }
        let probe = self.dir.join(format!(".write-test-{}", std::process::id()));
        let written = write_private(&probe, b"");
        let _ = fs::remove_file(&probe);
        written.map_err(|e| format!("{} is not writable: {e}", self.dir.display()))
    }

    /// What `strait -t` checks, changing nothing: the folder, or the nearest existing folder
    /// above it, is a folder strait's user may write in.
    pub(crate) fn check_usable(&self) -> Result<(), String> {
        let mut at = self.dir.as_path();
        loop {
            match fs::metadata(at) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(format!(
                        "cannot create {}: {} is not a folder",
                        self.dir.display(),
                        at.display()
                    ))
                }
                Err(_) => match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                    _ => {
                        at = Path::new(".");
                        break;
                    }
                },
            }
        }
        let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{} is not a usable path", self.dir.display()))?;
        // SAFETY: access(2) on a NUL-terminated path this function owns.
        let ok = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
        if ok {
            Ok(())
        } else {
            let verb = if at == self.dir { "write in" } else { "create" };
            Err(format!(
                "cannot {verb} {}: {} is not writable ({})",
                self.dir.display(),
                at.display(),
                std::io::Error::last_os_error()
            ))
        }
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    pub(crate) fn cert_path(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{host}.crt"))
    }

    pub(crate) fn key_path(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{host}.key"))
    }

    /// The stored account (JSON), if any.
    pub(crate) fn read_account(&self) -> Option<String> {
        fs::read_to_string(self.account_path()).ok()
    }

    pub(crate) fn write_account(&self, json: &str) -> Result<(), String> {
        self.check_writable()?;
        write_private(&self.account_path(), json.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.account_path().display()))
    }

    /// The stored chain and key of `host` (PEM), with the certificate file's modification time.
    pub(crate) fn read_cert(&self, host: &str) -> Option<(Vec<u8>, Vec<u8>, SystemTime)> {
        let cert = fs::read(self.cert_path(host)).ok()?;
        let key = fs::read(self.key_path(host)).ok()?;
        Some((cert, key, self.modified(host)?))
    }

    /// When `host`'s certificate file last changed (another process may have renewed it).
    pub(crate) fn modified(&self, host: &str) -> Option<SystemTime> {
        fs::metadata(self.cert_path(host)).ok()?.modified().ok()
    }

    /// The key first, then the certificate: a reader that sees the new certificate also finds
    /// its key (the pair is checked when read, and a mismatch waits for the next look).
    pub(crate) fn write_cert(&self, host: &str, chain: &[u8], key: &[u8]) -> Result<(), String> {
        self.check_writable()?;
        let (cert_path, key_path) = (self.cert_path(host), self.key_path(host));
        write_private(&key_path, key)
            .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
        write_private(&cert_path, chain)
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))
    }

    /// The order lock, if no other process holds it (`None` then: it is ordering).
    pub(crate) fn try_lock(&self) -> Result<Option<OrderLock>, String> {
        self.check_writable()?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(OrderLock { _file: file }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(format!("cannot lock {}: {e}", path.display()))
        }
    }
}

/// Writes `bytes` to a 0600 temporary file beside `path`, then renames it over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        // A file left by an older umask or by hand keeps its mode on open; set it.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("strait-acme-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_are_private_and_the_lock_is_exclusive() {
        let dir = temp_dir("storage");
        let storage = Storage::new(&dir.join("nested"));
        storage
            .write_cert("a.example", b"CERT", b"KEY")
            .expect("write");
        for path in [
            storage.cert_path("a.example"),
            storage.key_path("a.example"),
        ] {
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let (cert, key, _) = storage.read_cert("a.example").expect("read");
        assert_eq!(
            (cert.as_slice(), key.as_slice()),
            (&b"CERT"[..], &b"KEY"[..])
        );
        let held = storage.try_lock().expect("lock").expect("free");
        // flock locks belong to the open file, so a second open in this process conflicts.
        assert!(storage.try_lock().expect("lock").is_none());
        drop(held);
        assert!(storage.try_lock().expect("lock").is_some());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_check_changes_nothing_and_refuses_a_file_in_the_way() {
        let dir = temp_dir("check");
        let storage = Storage::new(&dir.join("a/b"));
        storage.check_usable().expect("creatable");
        assert!(!dir.exists(), "the check created something");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("file"), "x").expect("write");
        let err = Storage::new(&dir.join("file/acme"))
            .check_usable()
            .expect_err("a file in the way");
        assert!(err.contains("is not a folder"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
