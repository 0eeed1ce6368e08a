//! `browse: true`: a plain HTML page listing a folder, names HTML-escaped and links
//! percent-encoded, folders first, then files, each by name.

use std::fmt::Write;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What stays as is in a link: RFC 3986's unreserved characters. Everything else, `/`, `?`,
/// `#`, `:` and `%` included, is encoded, so each name is one relative path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The page for folder `dir`, shown as `shown` (the decoded request path). `at_root`: no
/// link to the parent.
pub(crate) fn page(dir: &Path, shown: &str, at_root: bool) -> io::Result<String> {
    let mut entries: Vec<(bool, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Follows symlinks for the folder mark; a dangling one shows as a file.
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        entries.push((is_dir, entry.file_name().as_bytes().to_vec()));
    }
    entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let title = escape(shown);
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if !at_root {
        out.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (is_dir, name) in entries {
        let href = percent_encode(&name, SEGMENT).to_string();
        let text = escape(&String::from_utf8_lossy(&name));
        let slash = if is_dir { "/" } else { "" };
        let _ = writeln!(
            out,
            "<li><a href=\"./{href}{slash}\">{text}{slash}</a></li>"
        );
    }
    out.push_str("</ul>\n</body></html>\n");
    Ok(out)
}

/// Text safe in HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let dir = std::env::temp_dir().join(format!("strait-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub dir")).unwrap();
        std::fs::write(dir.join("<b>&x?.txt"), "").unwrap();
        std::fs::write(dir.join("a#b%c"), "").unwrap();
        let html = page(&dir, "/<x>/", false).unwrap();
        assert!(html.contains("Index of /&lt;x&gt;/"), "{html}");
        assert!(
            html.contains("href=\"./sub%20dir/\">sub dir/</a>"),
            "{html}"
        );
        assert!(
            html.contains("href=\"./%3Cb%3E%26x%3F.txt\">&lt;b&gt;&amp;x?.txt</a>"),
            "{html}"
        );
        assert!(html.contains("href=\"./a%23b%25c\">a#b%c</a>"), "{html}");
        assert!(html.contains("href=\"../\""));
        assert!(html.find("sub dir").unwrap() < html.find("a#b").unwrap());
        assert!(!page(&dir, "/", true).unwrap().contains("href=\"../\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
