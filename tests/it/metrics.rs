//! `/metrics`: valid Prometheus text (checked by a strict parser of the exposition format),
//! the names of design §5, counters that move by exactly the requests sent, bounded labels.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::admin::{json, Ports};
use crate::support::{backends, config, eventually_msg, send_many, Origin, Strait};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: samples in order and the declared type of each family.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// The family a sample belongs to (`x_bucket` → `x` for histograms, etc.).
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base;
            }
        }
    }
    name
}

/// Parses the text format (version 0.0.4) strictly: every line is a comment, `# HELP`,
/// `# TYPE` (before its samples, once per family), or `name{label="value",...} value [ts]`
/// with valid names and escapes; a family's samples are contiguous; histogram buckets are
/// cumulative with `+Inf` equal to `_count`.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut finished: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if let Some(def) = rest.strip_prefix("TYPE ") {
                let (name, kind) = def
                    .split_once(' ')
                    .ok_or_else(|| at("TYPE without type".into()))?;
                if !is_metric_name(name) {
                    return Err(at("bad metric name".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at(format!("unknown type {kind}")));
                }
                if out
                    .types
                    .insert(name.to_string(), kind.to_string())
                    .is_some()
                {
                    return Err(at("second TYPE for a family".into()));
                }
                if out
                    .samples
                    .iter()
                    .any(|s| family(&s.name, &out.types) == name)
                {
                    return Err(at("TYPE after the family's samples".into()));
                }
            } else if let Some(def) = rest.strip_prefix("HELP ") {
                let name = def.split(' ').next().unwrap_or("");
                if !is_metric_name(name) {
                    return Err(at("bad metric name in HELP".into()));
                }
            }
            continue;
        }
        // name, optional {labels}, value, optional timestamp
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at("bad metric name".into()));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let consumed;
            loop {
                // label name
                let start = match chars.peek() {
                    Some(&(_, '}')) => {
                        consumed = chars.next().map_or(0, |(i, _)| i + 1);
                        break;
                    }
                    Some(&(i, _)) => i,
                    None => return Err(at("unterminated labels".into())),
                };
                let mut eq = None;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        eq = Some(i);
                        break;
                    }
                }
                let eq = eq.ok_or_else(|| at("label without =".into()))?;
                let lname = &body[start..eq];
                if !is_label_name(lname) {
                    return Err(at(format!("bad label name {lname:?}")));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(at("label value not quoted".into()));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(at("bad escape".into())),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) | None => {
                            return Err(at("unterminated label value".into()))
                        }
                        Some((_, c)) => value.push(c),
                    }
                }
                if labels.insert(lname.to_string(), value).is_some() {
                    return Err(at(format!("label {lname} twice")));
                }
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        consumed = i + 1;
                        break;
                    }
                    _ => return Err(at("expected , or }".into())),
                }
            }
            rest = &body[consumed..];
        }
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        let fam = family(name, &out.types).to_string();
        if current.as_deref() != Some(&fam) {
            if finished.contains(&fam) {
                return Err(at(format!("family {fam} is not contiguous")));
            }
            if let Some(prev) = current.replace(fam.clone()) {
                finished.push(prev);
            }
        }
        out.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&out)?;
    Ok(out)
}

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (name, kind) in &e.types {
        if kind != "histogram" {
            continue;
        }
        // Group buckets by their labels without `le`.
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let le = s
                .labels
                .get("le")
                .ok_or(format!("{name}_bucket without le"))?;
            let mut key = s.labels.clone();
            key.remove("le");
            series
                .entry(key)
                .or_default()
                .push((parse_value(le)?, s.value));
        }
        for (labels, buckets) in series {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for &(le, count) in &buckets {
                if le <= last.0 || count < last.1 {
                    return Err(format!("{name}{labels:?}: buckets not cumulative"));
                }
                last = (le, count);
            }
            if last.0 != f64::INFINITY {
                return Err(format!("{name}{labels:?}: no +Inf bucket"));
            }
            let count = e
                .samples
                .iter()
                .find(|s| s.name == format!("{name}_count") && s.labels == labels)
                .ok_or(format!("{name}{labels:?}: no _count"))?;
            if count.value != last.1 {
                return Err(format!("{name}{labels:?}: +Inf bucket != _count"));
            }
        }
    }
    Ok(())
}

impl Exposition {
    /// The value of `name` with exactly these labels (0 when absent: a counter not yet used).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map_or(0.0, |s| s.value)
    }

    /// Every value a label takes across the samples of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[track_caller]
pub fn scrape(p: &Ports) -> Exposition {
    let r = p.probe("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    parse(&r.text()).unwrap_or_else(|e| panic!("/metrics is not valid text format: {e}"))
}

#[test]
fn parser_rejects_malformed_text() {
    for bad in [
        "x{a=\"1\"} one",
        "x{a=1} 1",
        "9x 1",
        "x{a=\"1\",a=\"2\"} 1",
        "x{a=\"1\" 1",
        "x 1 2 3",
        "x{a=\"\\q\"} 1",
        "# TYPE x counter\n# TYPE x counter\nx 1",
        "x 1\ny 1\nx 2",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 3\nh_sum 0",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
    let ok = parse(
        "# HELP x a thing\n# TYPE x counter\nx{a=\"q\\\"\\\\\\n\",b=\"\"} 1.5e3 1700000000\n",
    )
    .unwrap();
    assert_eq!(ok.samples[0].value, 1500.0);
    assert_eq!(ok.samples[0].labels["a"], "q\"\\\n");
}

#[test]
fn metrics_parse_and_count_exactly_the_requests_sent() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}domains:
  - hosts: [m.test, \"*.m.test\"]
    load_balancer: round_robin
    backends: {}
    health_check: {{ type: http, path: /health, interval: 1s, timeout: 1s }}
    routes:
      - {{ path_prefix: /ping, respond: {{ status: 200, body: pong }} }}
      - {{ path_prefix: /api/, backends: [] }}
",
        p.yaml(true),
        backends(&[&a, &b])
    )));
    p.wait_up();
    eventually_msg(Duration::from_secs(5), "ready", || {
        p.probe("/ready").status == 200
    });
    // State gauges and process metrics are there from the start.
    let before = scrape(&p);
    for family in [
        "strait_backend_healthy",
        "strait_cache_bytes",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            before.samples.iter().any(|s| s.name == family),
            "{family} missing"
        );
    }
    for backend in [a.url(), b.url()] {
        assert_eq!(
            before.value(
                "strait_backend_healthy",
                &[("domain", "m.test"), ("backend", &backend)]
            ),
            1.0
        );
    }

    let (proxied, pinged, empty_pool, unknown) = (40usize, 7usize, 3usize, 5usize);
    send_many(&s, "m.test", "/", proxied / 2);
    send_many(&s, "x.m.test", "/other", proxied / 2);
    assert!(send_many(&s, "m.test", "/ping", pinged)
        .iter()
        .all(|r| r.status == 200));
    assert!(send_many(&s, "m.test", "/api/x", empty_pool)
        .iter()
        .all(|r| r.status == 503));
    for i in 0..unknown {
        // Client-chosen strings must never become label values.
        let host = format!("evil-{i}.example");
        assert_eq!(s.get(&host, &format!("/p{i}?q={i}")).status, 404);
    }

    let total = |e: &crate::metrics::Exposition| {
        e.samples
            .iter()
            .filter(|s| s.name == "strait_requests_total")
            .map(|s| s.value)
            .sum::<f64>()
    };
    let sent = (proxied + pinged + empty_pool + unknown) as f64;
    // Metrics are recorded in the logging phase, just after the response is sent.
    let mut after = scrape(&p);
    eventually_msg(Duration::from_secs(5), "all requests counted", || {
        after = scrape(&p);
        total(&after) - total(&before) >= sent
    });
    // Vector families appear with their first series; all of these have one by now.
    for (family, kind) in [
        ("strait_requests_total", "counter"),
        ("strait_request_duration_seconds", "histogram"),
        ("strait_upstream_requests_total", "counter"),
        ("strait_backend_healthy", "gauge"),
        ("strait_cache_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("strait_runtime_workers", "gauge"),
        ("strait_runtime_alive_tasks", "gauge"),
        ("strait_runtime_global_queue_depth", "gauge"),
        ("strait_runtime_busy_seconds_total", "counter"),
    ] {
        assert_eq!(
            after.types.get(family).map(String::as_str),
            Some(kind),
            "TYPE of {family}"
        );
    }
    // The proxy's runtime has run the requests just sent.
    assert!(after.value("strait_runtime_workers", &[]) >= 1.0);
    assert!(after.value("strait_runtime_alive_tasks", &[]) >= 1.0);
    assert!(after.value("strait_runtime_busy_seconds_total", &[]) > 0.0);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        total(&after) - total(&before),
        sent,
        "total requests counted"
    );
    let req = |route: &str, status: &str| {
        delta(
            "strait_requests_total",
            &[("domain", "m.test"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(req("(none)", "200"), proxied as f64);
    assert_eq!(req("/ping", "200"), pinged as f64);
    assert_eq!(req("/api/", "503"), empty_pool as f64);
    assert_eq!(
        delta(
            "strait_requests_total",
            &[
                ("domain", "(unknown)"),
                ("route", "(none)"),
                ("status", "404")
            ]
        ),
        unknown as f64
    );
    assert_eq!(
        delta(
            "strait_request_duration_seconds_count",
            &[("domain", "m.test")]
        ),
        (proxied + pinged + empty_pool) as f64
    );
    let upstream_ok: f64 = [a.url(), b.url()]
        .iter()
        .map(|u| {
            delta(
                "strait_upstream_requests_total",
                &[("backend", u), ("outcome", "ok")],
            )
        })
        .sum();
    assert_eq!(
        upstream_ok, proxied as f64,
        "one upstream attempt per proxied request"
    );
    assert_eq!(
        delta(
            "strait_upstream_requests_total",
            &[("backend", &a.url()), ("outcome", "ok")]
        ),
        (proxied / 2) as f64,
        "round robin splits evenly"
    );
    assert_eq!(a.hits() + b.hits(), proxied);

    // Bounded labels: only configured names (and the fixed placeholders) appear.
    let mut domains = after.label_values("strait_requests_total", "domain");
    domains.sort();
    assert_eq!(domains, vec!["(unknown)", "m.test"]);
    let routes = after.label_values("strait_requests_total", "route");
    assert_eq!(routes, vec!["(none)", "/api/", "/ping"]);
    let body = p.probe("/metrics").text();
    assert!(
        !body.contains("evil-"),
        "a client-chosen Host became a label"
    );
    assert!(!body.contains("/other"), "a client path became a label");

    // /stats agrees with the counters.
    let stats = json(&p.call("GET", "/stats", ""));
    let m = stats["domains"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["domain"] == "m.test"))
        .cloned()
        .expect("m.test in /stats");
    assert_eq!(m["requests"], (proxied + pinged + empty_pool) as u64, "{m}");
    assert_eq!(m["errors"], empty_pool as u64, "{m}");
    assert_eq!(m["status"]["2xx"], (proxied + pinged) as u64);
    let p50 = m["latency_ms"]["p50"].as_f64().unwrap();
    let p99 = m["latency_ms"]["p99"].as_f64().unwrap();
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 <= m["latency_ms"]["max"].as_f64().unwrap(),
        "{m}"
    );
    eprintln!(
        "metrics: sent {sent} requests, strait_requests_total moved by {}; {m}",
        total(&after) - total(&before)
    );
}

#[test]
fn upstream_failures_are_counted_by_outcome() {
    let a = Origin::plain("a");
    let dead = Origin::plain("dead");
    let dead_url = dead.url();
    dead.stop();
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}domains:
  - hosts: [f.test]
    load_balancer: round_robin
    max_retries: 1
    backends: [{{ addr: {dead_url} }}, {{ addr: {} }}]
",
        p.yaml(true),
        a.url()
    )));
    p.wait_up();
    let before = scrape(&p);
    let n = 6;
    assert!(send_many(&s, "f.test", "/", n)
        .iter()
        .all(|r| r.status == 200));
    let mut after = scrape(&p);
    eventually_msg(Duration::from_secs(5), "all counted", || {
        after = scrape(&p);
        after.value(
            "strait_requests_total",
            &[("domain", "f.test"), ("route", "(none)"), ("status", "200")],
        ) - before.value(
            "strait_requests_total",
            &[("domain", "f.test"), ("route", "(none)"), ("status", "200")],
        ) >= n as f64
    });
    let d = |u: &str, o: &str| {
        after.value(
            "strait_upstream_requests_total",
            &[("backend", u), ("outcome", o)],
        ) - before.value(
            "strait_upstream_requests_total",
            &[("backend", u), ("outcome", o)],
        )
    };
    assert_eq!(d(&a.url(), "ok"), n as f64);
    // Some first attempts went to the dead backend and were retried on a.
    let failed = d(&dead_url, "error");
    assert!((1.0..=n as f64).contains(&failed), "{failed}");
    assert_eq!(d(&dead_url, "ok"), 0.0);
}
