//! `GET /` on the admin listener: the dashboard, one self-contained HTML page compiled into
//! the binary (no CDN, no build step). The page itself holds no data, so it is served without
//! the token; it asks for the token (kept in the tab's sessionStorage) and calls the admin
//! API with it, once a second.

use http::{Response, StatusCode};

/// The page (src/admin/dashboard.html).
pub(crate) const PAGE: &str = include_str!("dashboard.html");

/// The page, with headers that keep it from being framed or cached, and a policy that lets it
/// load nothing but itself and its own API.
pub(crate) fn response() -> Response<Vec<u8>> {
    let mut r = super::web::text_response(StatusCode::OK, PAGE);
    let headers = r.headers_mut();
    let set = |headers: &mut http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, http::HeaderValue::from_static(value));
    };
    set(headers, "content-type", "text/html; charset=utf-8");
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    r
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn the_page_is_small_and_self_contained() {
        assert!(PAGE.len() < 100 * 1024, "{} bytes", PAGE.len());
        // Nothing fetched from elsewhere: no external script, style or image.
        for needle in ["src=\"http", "href=\"http", "@import", "//cdn", "url(http"] {
            assert!(!PAGE.contains(needle), "{needle}");
        }
        // Data is written with textContent, never parsed as HTML.
        assert!(!PAGE.contains("innerHTML"));
        assert!(PAGE.contains("sessionStorage"));
    }
}
