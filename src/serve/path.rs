//! From a request path to a file under the root, refusing every way out of it: `..`
//! segments (plain or percent-encoded), backslashes, NUL bytes, and symlinks that resolve
//! outside the root. Dotfiles are served like any other file (as nginx does).

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a path leads to no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Nothing there (or something that is neither a file nor a folder).
    NotFound,
    /// A traversal attempt, a symlink leading out of the root, or no permission.
    Forbidden,
}

/// The request path (as sent, percent-encoded) as a path relative to the root: decoded,
/// with empty and `.` segments dropped. `Err` for `..` segments (however encoded), `\` and
/// NUL, which no file under the root needs.
pub(crate) fn relative(request_path: &str) -> Result<PathBuf, Miss> {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(request_path).collect();
    if decoded.iter().any(|&b| b == 0 || b == b'\\') {
        return Err(Miss::Forbidden);
    }
    let mut out = PathBuf::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(Miss::Forbidden),
            name => out.push(OsStr::from_bytes(name)),
        }
    }
    Ok(out)
}

/// What a path under the root leads to, symlinks resolved.
#[derive(Debug)]
pub(crate) struct Found {
    /// The resolved path, inside the root.
    pub(crate) path: PathBuf,
    pub(crate) meta: Metadata,
}

impl Found {
    pub(crate) fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }
}

/// Resolves `path` (the canonical `root` joined with a [`relative`] path): a regular file or
/// a folder inside `root`.
pub(crate) fn locate(root: &Path, path: &Path) -> Result<Found, Miss> {
    let resolved = std::fs::canonicalize(path).map_err(miss)?;
    if !resolved.starts_with(root) {
        return Err(Miss::Forbidden);
    }
    let meta = std::fs::metadata(&resolved).map_err(miss)?;
    if !meta.is_file() && !meta.is_dir() {
        // A FIFO or a device would block or stream forever.
        return Err(Miss::NotFound);
    }
    Ok(Found {
        path: resolved,
        meta,
    })
}

/// Opens a file [`locate`] found. The final component must still not be a symlink (it was
/// none when resolved), and must still be a regular file; the metadata is the open file's.
pub(crate) fn open(found: &Found) -> Result<(std::fs::File, Metadata), Miss> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&found.path)
        .map_err(miss)?;
    let meta = file.metadata().map_err(miss)?;
    if !meta.is_file() {
        return Err(Miss::NotFound);
    }
    Ok((file, meta))
}

fn miss(e: io::Error) -> Miss {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Miss::Forbidden,
        // ELOOP from O_NOFOLLOW: the file was replaced by a symlink since it was resolved.
        _ if e.raw_os_error() == Some(libc::ELOOP) => Miss::Forbidden,
        _ => Miss::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_traversal_refused() {
        assert_eq!(relative("/").unwrap(), PathBuf::new());
        assert_eq!(relative("/a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        assert_eq!(relative("//a/./b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative("/a%20b/%C3%A9").unwrap(), PathBuf::from("a b/é"));
        assert_eq!(relative("/.hidden").unwrap(), PathBuf::from(".hidden"));
        assert_eq!(relative("/a..b/...").unwrap(), PathBuf::from("a..b/..."));
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/%2E./x",
            "/.%2e",
            "/a/..%2f..%2fetc",
            "/a/..%2F",
            "/..",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/a%00.txt",
        ] {
            assert_eq!(relative(bad), Err(Miss::Forbidden), "{bad}");
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let base = std::env::temp_dir().join(format!("strait-serve-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        std::fs::write(root.join("sub/in.txt"), "i").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/in.txt", root.join("in")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();

        assert_eq!(
            locate(&root, &root.join("out")).unwrap_err(),
            Miss::Forbidden
        );
        let found = locate(&root, &root.join("in")).unwrap();
        assert!(found.path.ends_with("sub/in.txt"));
        assert!(open(&found).is_ok());
        assert!(locate(&root, &root.join("sub")).unwrap().is_dir());
        assert_eq!(
            locate(&root, &root.join("nope")).unwrap_err(),
            Miss::NotFound
        );
        assert_eq!(
            locate(&root, &root.join("sub/in.txt/x")).unwrap_err(),
            Miss::NotFound
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
