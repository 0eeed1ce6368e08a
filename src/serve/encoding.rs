//! `Accept-Encoding` against the precompressed siblings a `serve` offers.

use crate::config::Encoding;

/// The offered codings the client accepts, best first: by quality value, ties in the order
/// `offered` lists them (the config's preference). A coding is accepted when it is listed
/// with q > 0, or when `*` is and the coding is not listed itself; `q=0` refuses. No
/// `Accept-Encoding` at all: none (a client that says nothing gets the plain file).
pub(crate) fn accepted(accept: Option<&str>, offered: &[Encoding]) -> Vec<Encoding> {
    let Some(accept) = accept else {
        return Vec::new();
    };
    let listed = parse(accept);
    let q_of = |coding: Encoding| -> f32 {
        let names: &[&str] = match coding {
            Encoding::Gzip => &["gzip", "x-gzip"],
            other => &[other.name()],
        };
        listed
            .iter()
            .find(|(name, _)| names.iter().any(|n| name.eq_ignore_ascii_case(n)))
            .or_else(|| listed.iter().find(|(name, _)| name == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut out: Vec<(Encoding, f32)> = offered
        .iter()
        .map(|&c| (c, q_of(c)))
        .filter(|(_, q)| *q > 0.0)
        .collect();
    // Stable: equal qualities keep the offered order.
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.into_iter().map(|(c, _)| c).collect()
}

/// `gzip;q=0.8, br` as (coding, quality). A quality that does not parse counts as 0.
fn parse(header: &str) -> Vec<(String, f32)> {
    header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let name = parts.next()?.trim();
            if name.is_empty() {
                return None;
            }
            let mut q = 1.0;
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v
                            .trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0);
                    }
                }
            }
            Some((name.to_ascii_lowercase(), q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    #[test]
    fn quality_values_are_honoured() {
        let both = [Br, Gzip];
        assert_eq!(accepted(Some("gzip, deflate, br"), &both), vec![Br, Gzip]);
        assert_eq!(accepted(Some("gzip"), &both), vec![Gzip]);
        assert_eq!(accepted(Some("br;q=0.5, gzip"), &both), vec![Gzip, Br]);
        assert_eq!(accepted(Some("br;q=0, gzip"), &both), vec![Gzip]);
        assert_eq!(accepted(Some("BR; Q=0.0, GZIP;q=1"), &both), vec![Gzip]);
        assert_eq!(accepted(Some("*"), &both), vec![Br, Gzip]);
        assert_eq!(accepted(Some("*, br;q=0"), &both), vec![Gzip]);
        assert_eq!(accepted(Some("*;q=0"), &both), Vec::<Encoding>::new());
        assert_eq!(accepted(Some("identity"), &both), Vec::<Encoding>::new());
        assert_eq!(accepted(Some("x-gzip"), &both), vec![Gzip]);
        assert_eq!(accepted(Some("gzip;q=bad, br"), &both), vec![Br]);
        assert_eq!(accepted(Some(""), &both), Vec::<Encoding>::new());
        assert_eq!(accepted(None, &both), Vec::<Encoding>::new());
        assert_eq!(accepted(Some("br, zstd"), &[Gzip]), Vec::<Encoding>::new());
        assert_eq!(accepted(Some("gzip, br"), &[Gzip, Br]), vec![Gzip, Br]);
    }
}
