//! What keeps cache entries apart: `Vary` variants and the host.

use crate::support::origin::Reply;

use super::{by_path, cached, expect, expect_not_stored, get, header, send, start, SMALL_CACHE};

#[test]
fn vary_keeps_variants_apart_and_vary_star_is_never_served() {
    let o = by_path("o", |req| {
        let lang = header(req, "accept-language").unwrap_or("none").to_string();
        let r = Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(format!("lang={lang}"));
        if req.target == "/star" {
            r.header("Vary", "*")
        } else {
            r.header("Vary", "Accept-Language")
        }
    });
    let s = start(SMALL_CACHE, &[cached("vary.test", &o)], None);
    let ask = |lang: Option<&str>| {
        let h: Vec<(&str, &str)> = lang
            .map(|l| vec![("Accept-Language", l)])
            .unwrap_or_default();
        send(&s, "GET", "vary.test", "/page", &h)
    };
    expect(&ask(Some("fr")), "MISS");
    expect(&ask(Some("de")), "MISS");
    expect(&ask(None), "MISS");
    for (lang, body) in [
        (Some("fr"), "lang=fr"),
        (Some("de"), "lang=de"),
        (None, "lang=none"),
    ] {
        let r = ask(lang);
        expect(&r, "HIT");
        assert_eq!(r.text(), body);
    }
    assert_eq!(o.hits_path("/page"), 3);
    for _ in 0..2 {
        let r = send(
            &s,
            "GET",
            "vary.test",
            "/star",
            &[("Accept-Language", "fr")],
        );
        expect_not_stored(&r, "vary-star");
    }
    assert_eq!(o.hits_path("/star"), 2);
}

#[test]
fn hosts_never_share_entries() {
    let o = by_path("o", |req| {
        let host = header(req, "x-forwarded-host").unwrap_or("?").to_string();
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(host)
    });
    let s = start(
        SMALL_CACHE,
        &[cached("a.test", &o), cached("\"*.w.test\"", &o)],
        None,
    );
    for host in ["a.test", "x.w.test", "y.w.test"] {
        let r = get(&s, host, "/same");
        expect(&r, "MISS");
        assert_eq!(r.text(), host);
    }
    for host in ["a.test", "x.w.test", "y.w.test"] {
        let r = get(&s, host, "/same");
        expect(&r, "HIT");
        assert_eq!(r.text(), host, "no entry crosses hosts");
    }
    // Port and letter case are not part of the host.
    let r = get(&s, "A.TEST:8080", "/same");
    expect(&r, "HIT");
    assert_eq!(r.text(), "a.test");
    assert_eq!(o.hits_path("/same"), 3);
}
