//! The standard `process_*` metrics, read from `/proc/self` at scrape time.
//!
//! The `prometheus` crate has a collector for these behind its `process` feature, which
//! `pingora-prometheus` does not enable and which would add `procfs` to the build; the handful
//! of numbers needed are a few lines of `/proc` parsing. On systems without `/proc` the
//! collector reports nothing.

use std::sync::Mutex;

use pingora_prometheus::prometheus::core::{Collector, Desc};
use pingora_prometheus::prometheus::{proto, Counter, IntGauge, Opts};

pub(crate) struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: Counter,
    /// The CPU total already added to `cpu` (a counter only goes up by deltas).
    cpu_seen: Mutex<f64>,
    rss: IntGauge,
    vsize: IntGauge,
    threads: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    start_time: IntGauge,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid process metric name")
}

impl ProcessCollector {
    pub(crate) fn new() -> Self {
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("valid process metric name");
        let rss = gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        let vsize = gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        );
        let threads = gauge("process_threads", "Number of OS threads in the process.");
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.");
        let max_fds = gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
        let start_time = gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
        );
        if let Some(t) = start_time_secs() {
            start_time.set(t as i64);
        }
        let mut descs = Vec::new();
        for c in [
            &cpu as &dyn Collector,
            &rss,
            &vsize,
            &threads,
            &open_fds,
            &max_fds,
            &start_time,
        ] {
            descs.extend(c.desc().into_iter().cloned());
        }
        ProcessCollector {
            descs,
            cpu,
            cpu_seen: Mutex::new(0.0),
            rss,
            vsize,
            threads,
            open_fds,
            max_fds,
            start_time,
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let Some(stat) = Stat::read() else {
            return Vec::new();
        };
        let ticks = clock_ticks();
        let cpu_now = (stat.utime + stat.stime) as f64 / ticks;
        {
            let mut seen = self.cpu_seen.lock().unwrap_or_else(|e| e.into_inner());
            if cpu_now > *seen {
                self.cpu.inc_by(cpu_now - *seen);
                *seen = cpu_now;
            }
        }
        self.rss.set(stat.rss_pages as i64 * page_size());
        self.vsize.set(stat.vsize as i64);
        self.threads.set(stat.threads as i64);
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            self.open_fds.set(dir.count().saturating_sub(1) as i64);
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max as i64);
        }
        let mut out = Vec::new();
        for c in [
            &self.cpu as &dyn Collector,
            &self.rss,
            &self.vsize,
            &self.threads,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
        ] {
            out.extend(c.collect());
        }
        out
    }
}

/// The fields used from `/proc/self/stat`.
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    /// Clock ticks after boot.
    start: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn read() -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        Stat::parse(&text)
    }

    /// `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so fields are
    /// counted from the last `)`; the first field after it is field 3 (`state`).
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> i64 {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as i64
    } else {
        4096
    }
}

fn start_time_secs() -> Option<u64> {
    let stat = Stat::read()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + (stat.start as f64 / clock_ticks()) as u64)
}

fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_an_awkward_command_name() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 1234 567890 89 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = Stat::parse(line).expect("parse");
        assert_eq!((s.utime, s.stime, s.threads), (7, 3, 5));
        assert_eq!((s.start, s.vsize, s.rss_pages), (1234, 567890, 89));
    }

    #[test]
    fn collects_on_linux() {
        let c = ProcessCollector::new();
        let families = c.collect();
        if std::path::Path::new("/proc/self/stat").exists() {
            let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
            assert!(
                names.contains(&"process_resident_memory_bytes"),
                "{names:?}"
            );
            assert!(names.contains(&"process_cpu_seconds_total"), "{names:?}");
        }
    }
}
