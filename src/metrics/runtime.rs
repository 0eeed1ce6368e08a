//! `strait_runtime_*`: the proxy's tokio runtime, read at scrape time.
//!
//! Pingora builds the runtime its proxy service runs on and hands out no handle to it; the
//! head guard notes the runtime it finds itself on at the first connection
//! ([`note_proxy_runtime`]). Only tokio's stable metrics are used: the number of tasks alive
//! (one per open client connection, plus Pingora's pooled-connection watchers) and the depth
//! of the shared queue. A deep shared queue under load means ready connections wait behind a
//! worker's full local queue: the cause of the 1 000-connection tail in benches/README.md.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pingora_prometheus::prometheus::core::{Collector, Desc};
use pingora_prometheus::prometheus::{proto, Counter, IntGauge, Opts};
use tokio::runtime::Handle;

static PROXY_RUNTIME: OnceLock<Handle> = OnceLock::new();

/// Remembers the runtime the caller runs on as the proxy's (the first call wins; later calls
/// are one atomic load).
pub(crate) fn note_proxy_runtime() {
    if PROXY_RUNTIME.get().is_none() {
        if let Ok(handle) = Handle::try_current() {
            let _ = PROXY_RUNTIME.set(handle);
        }
    }
}

pub(crate) struct RuntimeCollector {
    descs: Vec<Desc>,
    workers: IntGauge,
    alive_tasks: IntGauge,
    global_queue: IntGauge,
    busy: Counter,
    parks: Counter,
    /// The totals already added to `busy` and `parks` (counters only go up by deltas).
    seen: Mutex<(Duration, u64)>,
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid runtime metric name")
}

fn counter(name: &str, help: &str) -> Counter {
    Counter::with_opts(Opts::new(name, help)).expect("valid runtime metric name")
}

impl RuntimeCollector {
    pub(crate) fn new() -> Self {
        let workers = gauge(
            "strait_runtime_workers",
            "Worker threads of the proxy's runtime.",
        );
        let alive_tasks = gauge(
            "strait_runtime_alive_tasks",
            "Tasks alive on the proxy's runtime (about one per open client connection).",
        );
        let global_queue = gauge(
            "strait_runtime_global_queue_depth",
            "Tasks ready to run waiting in the runtime's shared queue.",
        );
        let busy = counter(
            "strait_runtime_busy_seconds_total",
            "Time the proxy's worker threads spent running tasks, summed over workers.",
        );
        let parks = counter(
            "strait_runtime_parks_total",
            "Times a worker thread of the proxy's runtime ran out of work and parked.",
        );
        let mut descs = Vec::new();
        for c in [
            &workers as &dyn Collector,
            &alive_tasks,
            &global_queue,
            &busy,
            &parks,
        ] {
            descs.extend(c.desc().into_iter().cloned());
        }
        RuntimeCollector {
            descs,
            workers,
            alive_tasks,
            global_queue,
            busy,
            parks,
            seen: Mutex::new((Duration::ZERO, 0)),
        }
    }
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        // Nothing before the first connection: the runtime is not known yet.
        let Some(handle) = PROXY_RUNTIME.get() else {
            return Vec::new();
        };
        let m = handle.metrics();
        let workers = m.num_workers();
        self.workers.set(workers as i64);
        self.alive_tasks.set(m.num_alive_tasks() as i64);
        self.global_queue.set(m.global_queue_depth() as i64);
        let busy: Duration = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
        let parks: u64 = (0..workers).map(|w| m.worker_park_count(w)).sum();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if busy > seen.0 {
                self.busy.inc_by((busy - seen.0).as_secs_f64());
                seen.0 = busy;
            }
            if parks > seen.1 {
                self.parks.inc_by((parks - seen.1) as f64);
                seen.1 = parks;
            }
        }
        let mut out = Vec::new();
        for c in [
            &self.workers as &dyn Collector,
            &self.alive_tasks,
            &self.global_queue,
            &self.busy,
            &self.parks,
        ] {
            out.extend(c.collect());
        }
        out
    }
}
