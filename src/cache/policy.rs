//! Shared-cache semantics of RFC 9111: may a response be stored, for how long, and with which
//! stale windows. Pure functions of the settings, the matching rule and the response header,
//! so every decision is unit-tested without a network.
//!
//! Freshness precedence: `s-maxage` over `max-age` over `Expires - Date`; only when the origin
//! gives none of them does the matching rule's `ttl`, then `default_ttl`, apply, and only to the
//! statuses RFC 9110 §15.1 calls heuristically cacheable (or the rule's `statuses`). The result
//! is reduced by the response's `Age` and capped by `max_ttl`.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderName};
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora::http::ResponseHeader;

use crate::config::{CacheRule, CacheSettings};

/// Why a response is not stored (the `X-Cache-Reason` of a `MISS`).
pub(crate) type SkipReason = &'static str;

/// Statuses cacheable without explicit freshness (RFC 9110 §15.1), 206 left out: the cache
/// always fetches and stores whole representations.
const HEURISTIC_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Header fields never stored: hop-by-hop fields (RFC 9110 §7.6.1) and `Age`, which the cache
/// computes itself on every hit.
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "age",
];

/// Fields a 304 must not overwrite in the stored response: they describe the stored body.
const KEPT_ON_REVALIDATION: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
];

/// How long a stored response may be used, measured from the moment it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Remaining freshness: lifetime minus the age it arrived with, capped by `max_ttl`.
    /// Zero means "stored, but revalidate before every use".
    pub fresh_for: Duration,
    /// The age the response already had when it arrived (its `Age` header).
    pub age: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

/// Decides whether `resp` (the answer to a GET) may be stored.
/// `authorization`: the request carried `Authorization`.
/// The cache directives addressed to strait's cache: `Strait-Cache-Control` (strait's own
/// targeted field), else `CDN-Cache-Control` (RFC 9213), else `Cache-Control`. A targeted
/// field replaces `Cache-Control` whole for this cache; clients still get `Cache-Control`.
pub(crate) fn cache_control(resp: &ResponseHeader) -> Option<CacheControl> {
    TARGETED
        .iter()
        .find(|name| resp.headers.contains_key(**name))
        .and_then(|name| CacheControl::from_resp_headers_named(name, resp))
        .or_else(|| CacheControl::from_resp_headers(resp))
}

/// Targeted cache-control fields (RFC 9213), most specific first. Not forwarded to clients
/// unless `cache.forward_targeted_cache_control` says so.
pub(crate) const TARGETED: &[&str] = &["strait-cache-control", "cdn-cache-control"];

pub(crate) fn evaluate(
    settings: &CacheSettings,
    rule: Option<&CacheRule>,
    authorization: bool,
    resp: &ResponseHeader,
    now: SystemTime,
) -> Result<Freshness, SkipReason> {
    let status = resp.status.as_u16();
    let cc = cache_control(resp);
    if cc.as_ref().is_some_and(|c| c.no_store()) {
        return Err("no-store");
    }
    if cc.as_ref().is_some_and(|c| c.private()) {
        return Err("private");
    }
    if vary_star(resp) {
        return Err("vary-star");
    }
    // RFC 9111 §3.5: a shared cache stores an answer to an authenticated request only when
    // the response explicitly allows it.
    if authorization
        && !cc
            .as_ref()
            .is_some_and(|c| c.allow_caching_authorized_req())
    {
        return Err("authorization");
    }
    // Deliberately stricter than RFC 9111 (which allows it): a cookie set for one client
    // must never be replayed to another, unless the origin withholds the cookie from shared
    // caches itself (`private="Set-Cookie"` or `no-cache="Set-Cookie"`).
    if resp.headers.contains_key(header::SET_COOKIE) && !withheld(cc.as_ref(), "set-cookie") {
        return Err("set-cookie");
    }
    if !(200..600).contains(&status) || status == 206 || status == 304 {
        return Err("status");
    }
    if let Some(r) = rule {
        if !r.statuses.is_empty() && !r.statuses.contains(&status) {
            return Err("status");
        }
    }

    let no_cache = cc.as_ref().is_some_and(|c| c.no_cache());
    let lifetime = if no_cache {
        Some(Duration::ZERO)
    } else {
        explicit_lifetime(cc.as_ref(), resp, now)
    };
    let lifetime = match lifetime {
        Some(l) => l,
        None => {
            let configured = rule.and_then(|r| r.ttl).or(settings.default_ttl);
            let status_ok = match rule {
                Some(r) if !r.statuses.is_empty() => true, // checked above
                _ => HEURISTIC_STATUSES.contains(&status),
            };
            match configured {
                Some(ttl) if status_ok => ttl,
                Some(_) => return Err("status"),
                None => return Err("no-rule"),
            }
        }
    };

    let age = age_header(resp);
    let fresh_for = lifetime.saturating_sub(age).min(settings.max_ttl);

    // must-revalidate, proxy-revalidate, s-maxage (which implies proxy-revalidate) and
    // no-cache all forbid serving the response stale.
    let stale_forbidden = no_cache
        || cc.as_ref().is_some_and(|c| {
            c.must_revalidate() || c.proxy_revalidate() || c.s_maxage().ok().flatten().is_some()
        });
    let (swr, sie) = if stale_forbidden {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let secs = |v: pingora::Result<Option<u32>>| {
            v.ok().flatten().map(|s| Duration::from_secs(s.into()))
        };
        (
            cc.as_ref()
                .and_then(|c| secs(c.stale_while_revalidate()))
                .unwrap_or(settings.stale_while_revalidate),
            cc.as_ref()
                .and_then(|c| secs(c.stale_if_error()))
                .unwrap_or(settings.stale_if_error),
        )
    };

    // Something that is stale on arrival, cannot be served stale and cannot be revalidated
    // would only take space.
    let validator =
        resp.headers.contains_key(header::ETAG) || resp.headers.contains_key(header::LAST_MODIFIED);
    if fresh_for.is_zero() && swr.is_zero() && sie.is_zero() && !validator {
        return Err(if no_cache {
            "no-cache"
        } else {
            "stale-on-arrival"
        });
    }
    Ok(Freshness {
        fresh_for,
        age,
        stale_while_revalidate: swr,
        stale_if_error: sie,
    })
}

/// Whether `private="..."` or `no-cache="..."` names `field` (lower case).
fn withheld(cc: Option<&CacheControl>, field: &str) -> bool {
    let Some(cc) = cc else { return false };
    cc.private_field_names()
        .into_iter()
        .flatten()
        .chain(cc.no_cache_field_names().into_iter().flatten())
        .any(|name| unquote(name).eq_ignore_ascii_case(field.as_bytes()))
}

fn unquote(v: &[u8]) -> &[u8] {
    let v = v.trim_ascii();
    let v = v.strip_prefix(b"\"").unwrap_or(v);
    v.strip_suffix(b"\"").unwrap_or(v).trim_ascii()
}

/// `s-maxage`, else `max-age`, else `Expires - Date` (an invalid `Expires` means "already
/// expired", RFC 9111 §5.3). `None` when the response carries no freshness information.
fn explicit_lifetime(
    cc: Option<&CacheControl>,
    resp: &ResponseHeader,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(c) = cc {
        if let Some(secs) = c
            .s_maxage()
            .ok()
            .flatten()
            .or_else(|| c.max_age().ok().flatten())
        {
            return Some(Duration::from_secs(secs.into()));
        }
    }
    let mut expires = resp.headers.get_all(header::EXPIRES).iter();
    let first = expires.next()?;
    if expires.next().is_some() {
        return Some(Duration::ZERO);
    }
    let Some(expires) = first
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return Some(Duration::ZERO);
    };
    // Measured against the origin's own clock when it sent one, so clock skew between the
    // origin and strait does not change the lifetime.
    let date = resp
        .headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The `Age` the response arrived with; absent or invalid counts as zero. A list (`7200, 0`,
/// from a field repeated or combined on the way) counts by its first member, as RFC 9111
/// §1.2.2 and §5.1 say.
pub(crate) fn age_header(resp: &ResponseHeader) -> Duration {
    resp.headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::ZERO)
}

/// The items of a comma-separated list header (`Vary`, `Connection`) over all its lines,
/// trimmed, empty ones skipped (RFC 9110 §5.6.1). Lines that are not text are ignored.
pub(crate) fn list_items<'a>(
    headers: &'a http::HeaderMap,
    name: HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Whether `Vary` lists `*`: such a response can never be matched to a later request.
pub(crate) fn vary_star(resp: &ResponseHeader) -> bool {
    list_items(&resp.headers, header::VARY).any(|name| name == "*")
}

/// The header as stored: without hop-by-hop fields, `Age`, fields named by the `Connection`
/// header, and fields that `private="..."` / `no-cache="..."` withhold from shared caches.
pub(crate) fn stored_header(resp: &ResponseHeader) -> ResponseHeader {
    let mut out = resp.clone();
    let named: Vec<String> = list_items(&resp.headers, header::CONNECTION)
        .map(str::to_ascii_lowercase)
        .collect();
    for name in NOT_STORED
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        out.remove_header(name);
    }
    if let Some(cc) = cache_control(resp) {
        cc.strip_private_headers(&mut out);
    }
    out
}

/// RFC 9111 §4.3.4: a 304 updates the stored header, field by field, except the fields that
/// describe the stored body and the ones never stored.
pub(crate) fn merge_not_modified(stored: &mut ResponseHeader, not_modified: &ResponseHeader) {
    let mut names: Vec<&HeaderName> = not_modified.headers.keys().collect();
    names.dedup();
    for name in names {
        let lower = name.as_str();
        if NOT_STORED.contains(&lower) || KEPT_ON_REVALIDATION.contains(&lower) {
            continue;
        }
        let mut first = true;
        for value in not_modified.headers.get_all(name) {
            // Names and values come from a parsed header, so these cannot fail.
            if first {
                let _ = stored.insert_header(name.clone(), value.clone());
            } else {
                let _ = stored.append_header(name.clone(), value.clone());
            }
            first = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Precompress;

    fn settings() -> CacheSettings {
        CacheSettings {
            max_bytes: 1 << 20,
            max_entries: 100,
            max_entry_bytes: 1 << 16,
            default_ttl: None,
            max_ttl: Duration::from_secs(3600),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            precompress: Precompress {
                enabled: false,
                level: 6,
                min_bytes: 256,
            },
            rules: Vec::new(),
            forward_targeted_cache_control: false,
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn rule(ttl: Option<u64>, statuses: &[u16]) -> CacheRule {
        CacheRule {
            path_prefix: "/".into(),
            enabled: true,
            ttl: ttl.map(Duration::from_secs),
            methods: Vec::new(),
            statuses: statuses.to_vec(),
            max_entry_bytes: None,
        }
    }

    fn eval(
        s: &CacheSettings,
        r: Option<&CacheRule>,
        h: &ResponseHeader,
    ) -> Result<Freshness, SkipReason> {
        evaluate(s, r, false, h, SystemTime::now())
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let s = settings();
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let expires = httpdate::fmt_http_date(now + secs(500));
        let all = resp(
            200,
            &[
                ("cache-control", "max-age=100, s-maxage=200"),
                ("date", &date),
                ("expires", &expires),
            ],
        );
        assert_eq!(
            evaluate(&s, None, false, &all, now).unwrap().fresh_for,
            secs(200)
        );
        let two = resp(
            200,
            &[
                ("cache-control", "max-age=100"),
                ("date", &date),
                ("expires", &expires),
            ],
        );
        assert_eq!(
            evaluate(&s, None, false, &two, now).unwrap().fresh_for,
            secs(100)
        );
        let one = resp(200, &[("date", &date), ("expires", &expires)]);
        assert_eq!(
            evaluate(&s, None, false, &one, now).unwrap().fresh_for,
            secs(500)
        );
    }

    #[test]
    fn expires_is_measured_against_the_origins_date() {
        let s = settings();
        let now = SystemTime::now();
        // The origin's clock is an hour behind ours: Expires - Date is still 60 s.
        let origin_now = now - secs(3600);
        let r = resp(
            200,
            &[
                ("date", &httpdate::fmt_http_date(origin_now)),
                ("expires", &httpdate::fmt_http_date(origin_now + secs(60))),
            ],
        );
        assert_eq!(
            evaluate(&s, None, false, &r, now).unwrap().fresh_for,
            secs(60)
        );
    }

    #[test]
    fn invalid_or_repeated_expires_is_already_expired() {
        let s = settings();
        let bad = resp(200, &[("expires", "0"), ("etag", "\"a\"")]);
        assert_eq!(eval(&s, None, &bad).unwrap().fresh_for, Duration::ZERO);
        assert_eq!(
            eval(&s, None, &resp(200, &[("expires", "0")])).unwrap_err(),
            "stale-on-arrival"
        );
    }

    #[test]
    fn refusals_name_their_reason() {
        let s = settings();
        let cases = [
            (
                resp(200, &[("cache-control", "no-store, max-age=60")]),
                "no-store",
            ),
            (
                resp(200, &[("cache-control", "private, max-age=60")]),
                "private",
            ),
            (
                resp(
                    200,
                    &[("cache-control", "max-age=60"), ("vary", "Accept, *")],
                ),
                "vary-star",
            ),
            (
                resp(
                    200,
                    &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
                ),
                "set-cookie",
            ),
            (
                resp(
                    200,
                    &[
                        ("cache-control", "max-age=60, private=\"x-a\""),
                        ("set-cookie", "a=b"),
                    ],
                ),
                "set-cookie",
            ),
            (resp(206, &[("cache-control", "max-age=60")]), "status"),
            (resp(200, &[]), "no-rule"),
            (resp(200, &[("cache-control", "no-cache")]), "no-cache"),
        ];
        for (r, reason) in cases {
            assert_eq!(eval(&s, None, &r).unwrap_err(), reason, "{r:?}");
        }
    }

    #[test]
    fn a_cookie_withheld_from_shared_caches_does_not_block_storing() {
        let s = settings();
        for cc in [
            "max-age=60, private=\"Set-Cookie\"",
            "max-age=60, no-cache=\"x-a, set-cookie\"",
        ] {
            let r = resp(200, &[("cache-control", cc), ("set-cookie", "a=b")]);
            assert!(eval(&s, None, &r).is_ok(), "{cc}");
            assert!(
                !stored_header(&r).headers.contains_key("set-cookie"),
                "{cc}"
            );
        }
    }

    #[test]
    fn no_cache_with_a_validator_is_stored_for_revalidation() {
        let s = settings();
        let r = resp(
            200,
            &[
                ("cache-control", "no-cache, max-age=60"),
                ("etag", "\"v1\""),
            ],
        );
        let f = eval(&s, None, &r).unwrap();
        assert_eq!(f.fresh_for, Duration::ZERO);
        assert_eq!(f.stale_while_revalidate, Duration::ZERO);
    }

    #[test]
    fn authorization_needs_an_explicit_allowance() {
        let s = settings();
        let now = SystemTime::now();
        let plain = resp(200, &[("cache-control", "max-age=60")]);
        assert_eq!(
            evaluate(&s, None, true, &plain, now).unwrap_err(),
            "authorization"
        );
        for allow in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            let r = resp(200, &[("cache-control", allow)]);
            assert!(evaluate(&s, None, true, &r, now).is_ok(), "{allow}");
        }
    }

    #[test]
    fn default_ttl_applies_only_where_configured_and_to_heuristic_statuses() {
        let mut s = settings();
        assert_eq!(eval(&s, None, &resp(200, &[])).unwrap_err(), "no-rule");
        s.default_ttl = Some(secs(30));
        assert_eq!(eval(&s, None, &resp(200, &[])).unwrap().fresh_for, secs(30));
        assert_eq!(eval(&s, None, &resp(404, &[])).unwrap().fresh_for, secs(30));
        assert_eq!(eval(&s, None, &resp(500, &[])).unwrap_err(), "status");
        // Explicit freshness makes any final status storable.
        assert!(eval(&s, None, &resp(500, &[("cache-control", "max-age=5")])).is_ok());
    }

    #[test]
    fn rule_ttl_fills_in_only_when_the_origin_is_silent() {
        let s = settings();
        let r = rule(Some(600), &[]);
        assert_eq!(
            eval(&s, Some(&r), &resp(200, &[])).unwrap().fresh_for,
            secs(600)
        );
        let explicit = resp(200, &[("cache-control", "max-age=5")]);
        assert_eq!(eval(&s, Some(&r), &explicit).unwrap().fresh_for, secs(5));
    }

    #[test]
    fn rule_statuses_restrict_everything() {
        let s = settings();
        let r = rule(Some(60), &[200]);
        assert_eq!(
            eval(&s, Some(&r), &resp(404, &[("cache-control", "max-age=5")])).unwrap_err(),
            "status"
        );
        let r = rule(Some(60), &[200, 500]);
        assert_eq!(
            eval(&s, Some(&r), &resp(500, &[])).unwrap().fresh_for,
            secs(60)
        );
    }

    #[test]
    fn max_ttl_caps_and_age_is_subtracted() {
        let mut s = settings();
        s.max_ttl = secs(50);
        assert_eq!(
            eval(&s, None, &resp(200, &[("cache-control", "max-age=1000")]))
                .unwrap()
                .fresh_for,
            secs(50)
        );
        let s = settings();
        let aged = resp(200, &[("cache-control", "max-age=100"), ("age", "30")]);
        let f = eval(&s, None, &aged).unwrap();
        assert_eq!((f.fresh_for, f.age), (secs(70), secs(30)));
        let too_old = resp(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("age", "30"),
                ("etag", "\"x\""),
            ],
        );
        assert_eq!(eval(&s, None, &too_old).unwrap().fresh_for, Duration::ZERO);
    }

    #[test]
    fn stale_windows_from_headers_settings_and_forbidding_directives() {
        let mut s = settings();
        s.stale_while_revalidate = secs(30);
        s.stale_if_error = secs(300);
        let plain = eval(&s, None, &resp(200, &[("cache-control", "max-age=10")])).unwrap();
        assert_eq!(
            (plain.stale_while_revalidate, plain.stale_if_error),
            (secs(30), secs(300))
        );
        let own = resp(
            200,
            &[(
                "cache-control",
                "max-age=10, stale-while-revalidate=5, stale-if-error=7",
            )],
        );
        let own = eval(&s, None, &own).unwrap();
        assert_eq!(
            (own.stale_while_revalidate, own.stale_if_error),
            (secs(5), secs(7))
        );
        for forbid in [
            "max-age=10, must-revalidate",
            "max-age=10, proxy-revalidate",
            "s-maxage=10",
        ] {
            let f = eval(&s, None, &resp(200, &[("cache-control", forbid)])).unwrap();
            assert_eq!(
                (f.stale_while_revalidate, f.stale_if_error),
                (Duration::ZERO, Duration::ZERO)
            );
        }
    }

    #[test]
    fn stored_header_drops_hop_by_hop_age_and_withheld_fields() {
        let r = resp(
            200,
            &[
                ("connection", "x-conn"),
                ("x-conn", "1"),
                ("keep-alive", "timeout=5"),
                ("age", "3"),
                ("cache-control", "max-age=10, private=\"x-user\""),
                ("x-user", "alice"),
                ("x-kept", "yes"),
            ],
        );
        let h = stored_header(&r);
        for gone in ["connection", "x-conn", "keep-alive", "age", "x-user"] {
            assert!(!h.headers.contains_key(gone), "{gone}");
        }
        assert!(h.headers.contains_key("x-kept"));
    }

    #[test]
    fn a_304_updates_every_field_but_the_body_ones() {
        let mut stored = resp(
            200,
            &[
                ("content-length", "10"),
                ("etag", "\"1\""),
                ("x-v", "1"),
                ("x-other", "o"),
            ],
        );
        let nm = resp(
            304,
            &[
                ("content-length", "0"),
                ("etag", "\"2\""),
                ("x-v", "2"),
                ("x-new", "n"),
                ("connection", "close"),
            ],
        );
        merge_not_modified(&mut stored, &nm);
        let get = |n: &str| {
            stored
                .headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("content-length").as_deref(), Some("10"));
        assert_eq!(get("etag").as_deref(), Some("\"2\""));
        assert_eq!(get("x-v").as_deref(), Some("2"));
        assert_eq!(get("x-new").as_deref(), Some("n"));
        assert_eq!(get("x-other").as_deref(), Some("o"));
        assert!(get("connection").is_none());
    }

    #[test]
    fn age_lists_count_by_their_first_member() {
        assert_eq!(
            age_header(&resp(200, &[("age", "7200, 0")])),
            Duration::from_secs(7200)
        );
        assert_eq!(age_header(&resp(200, &[("age", "x")])), Duration::ZERO);
    }

    #[test]
    fn targeted_cache_control_wins_for_this_cache() {
        let now = SystemTime::now();
        let both = resp(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        );
        let f = evaluate(&settings(), None, false, &both, now).unwrap();
        assert_eq!(f.fresh_for, Duration::from_secs(60));
        let strait = resp(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "max-age=60"),
                ("strait-cache-control", "no-store"),
            ],
        );
        assert_eq!(
            evaluate(&settings(), None, false, &strait, now).err(),
            Some("no-store")
        );
        let plain = resp(200, &[("cache-control", "max-age=5")]);
        let f = evaluate(&settings(), None, false, &plain, now).unwrap();
        assert_eq!(f.fresh_for, Duration::from_secs(5));
    }
}
