//! Choosing a content coding from `Accept-Encoding` (RFC 9110 §12.5.3), with quality values.

use http::header::{HeaderMap, ACCEPT_ENCODING};

use crate::config::Coding;

/// Quality values in thousandths (`q=0.5` is 500).
type Q = u16;

/// What one request's `Accept-Encoding` says of the codings strait knows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Weights {
    /// Explicit weights of zstd, br and gzip (`Coding::ALL` order).
    coding: [Option<Q>; 3],
    star: Option<Q>,
    identity: Option<Q>,
}

fn index(c: Coding) -> usize {
    match c {
        Coding::Zstd => 0,
        Coding::Br => 1,
        Coding::Gzip => 2,
    }
}

/// The coding to compress with, among `offered` (preferred first), for a request with these
/// headers; `None` sends the response as it is.
///
/// - No `Accept-Encoding`: `None` (RFC 9110 allows any coding, but clients that send none
///   rarely decode one).
/// - A coding's weight is its own entry's, else that of `*`, else 0; `q=0` refuses it.
/// - The highest weight wins; between equal weights the earlier in `offered` does.
/// - `identity` listed with a weight above the winner's keeps the response as it is.
/// - An entry whose `q` is malformed is ignored.
pub(crate) fn choose(headers: &HeaderMap, offered: &[Coding]) -> Option<Coding> {
    let mut values = headers.get_all(ACCEPT_ENCODING).iter().peekable();
    values.peek()?;
    let mut w = Weights::default();
    for value in values {
        // Not visible ASCII: not something a client means; skip the field line.
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            read_item(item, &mut w);
        }
    }
    let mut best: Option<(Coding, Q)> = None;
    for &c in offered {
        let q = w.coding[index(c)].or(w.star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((c, q));
        }
    }
    let (coding, q) = best?;
    if w.identity.is_some_and(|i| i > q) {
        return None;
    }
    Some(coding)
}

fn read_item(item: &str, w: &mut Weights) {
    let mut parts = item.split(';');
    let name = parts.next().unwrap_or("").trim();
    if name.is_empty() {
        return;
    }
    let mut q: Q = 1000;
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            match qvalue(value.trim()) {
                Some(v) => q = v,
                None => return,
            }
        }
    }
    let slot = if name == "*" {
        &mut w.star
    } else if name.eq_ignore_ascii_case("identity") {
        &mut w.identity
    } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
        &mut w.coding[index(Coding::Gzip)]
    } else if name.eq_ignore_ascii_case("br") {
        &mut w.coding[index(Coding::Br)]
    } else if name.eq_ignore_ascii_case("zstd") {
        &mut w.coding[index(Coding::Zstd)]
    } else {
        return;
    };
    // Listed twice: the more cautious weight holds.
    *slot = Some(slot.map_or(q, |old| old.min(q)));
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(text: &str) -> Option<Q> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Q = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += Q::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn pick(values: &[&str], offered: &[Coding]) -> Option<&'static str> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        choose(&h, offered).map(Coding::as_str)
    }

    const ALL: &[Coding] = &Coding::ALL;

    #[test]
    fn quality_values_and_the_configured_order() {
        assert_eq!(pick(&[], ALL), None);
        assert_eq!(pick(&[""], ALL), None);
        assert_eq!(pick(&["gzip"], ALL), Some("gzip"));
        assert_eq!(pick(&["gzip, deflate, br, zstd"], ALL), Some("zstd"));
        assert_eq!(
            pick(&["gzip, br"], &[Coding::Gzip, Coding::Br]),
            Some("gzip")
        );
        assert_eq!(pick(&["br;q=0.5, gzip"], ALL), Some("gzip"));
        assert_eq!(pick(&["br;q=0.5", "gzip;q=0.4"], ALL), Some("br"));
        assert_eq!(pick(&["zstd;q=0, br;q=0, gzip;q=0"], ALL), None);
        assert_eq!(pick(&["br;q=0"], ALL), None);
        assert_eq!(pick(&["*"], ALL), Some("zstd"));
        assert_eq!(pick(&["*;q=0.1, zstd;q=0"], ALL), Some("br"));
        assert_eq!(pick(&["*;q=0"], ALL), None);
        assert_eq!(pick(&["x-gzip"], ALL), Some("gzip"));
        assert_eq!(pick(&["GZIP;Q=1.000"], ALL), Some("gzip"));
        assert_eq!(pick(&["identity"], ALL), None);
        assert_eq!(pick(&["identity;q=0, gzip"], ALL), Some("gzip"));
        assert_eq!(pick(&["identity;q=1, gzip;q=0.5"], ALL), None);
        assert_eq!(pick(&["identity;q=0.5, gzip"], ALL), Some("gzip"));
        assert_eq!(pick(&["gzip"], &[Coding::Br]), None);
        // A malformed weight drops its entry, not the header.
        assert_eq!(pick(&["br;q=2, gzip;q=0.3"], ALL), Some("gzip"));
        assert_eq!(pick(&["br;q=abc"], ALL), None);
        assert_eq!(pick(&["br;q=0.0001"], ALL), None);
        // Listed twice: the lower weight holds.
        assert_eq!(pick(&["br", "br;q=0"], ALL), None);
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.0"), Some(1000));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("2"), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue(""), None);
        assert_eq!(qvalue("0.x"), None);
    }
}
