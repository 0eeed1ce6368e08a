//! Request figures kept both per domain and per route for the admin `/stats`: counts, errors,
//! status classes and a latency histogram. One type so the two levels cannot count differently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use super::latency::Latency;

#[derive(Default)]
pub(crate) struct Traffic {
    pub requests: AtomicU64,
    /// Status 5xx, or no response at all.
    pub errors: AtomicU64,
    /// Index 0: no response; 1..=5: 1xx..5xx.
    pub classes: [AtomicU64; 6],
    pub latency: Latency,
}

impl Traffic {
    pub(crate) fn record(&self, status: u16, duration: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = (status / 100) as usize;
        if status == 0 || class >= 5 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = self.classes.get(class.min(5)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(duration);
    }

    /// The `/stats` fields: `requests`, `errors`, `status` (by class) and `latency_ms`.
    pub(crate) fn json_fields(&self, out: &mut serde_json::Map<String, Value>) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let p = self.latency.percentiles();
        out.insert("requests".into(), load(&self.requests).into());
        out.insert("errors".into(), load(&self.errors).into());
        out.insert(
            "status".into(),
            json!({
                "none": load(&self.classes[0]),
                "1xx": load(&self.classes[1]),
                "2xx": load(&self.classes[2]),
                "3xx": load(&self.classes[3]),
                "4xx": load(&self.classes[4]),
                "5xx": load(&self.classes[5]),
            }),
        );
        out.insert(
            "latency_ms".into(),
            json!({ "p50": p.p50_ms, "p90": p.p90_ms, "p99": p.p99_ms, "max": p.max_ms }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_classes() {
        let t = Traffic::default();
        t.record(200, Duration::from_millis(3));
        t.record(502, Duration::from_millis(5));
        t.record(0, Duration::from_millis(1));
        let mut m = serde_json::Map::new();
        t.json_fields(&mut m);
        let v = Value::Object(m);
        assert_eq!(v["requests"], 3);
        assert_eq!(v["errors"], 2);
        assert_eq!(v["status"]["2xx"], 1);
        assert_eq!(v["status"]["5xx"], 1);
        assert_eq!(v["status"]["none"], 1);
        assert_eq!(v["latency_ms"]["max"], 5.0);
    }
}
