//! Bounded polling: wait for a condition instead of sleeping for a guessed time.

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How often a condition is re-evaluated.
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it returns true; panics (at the caller's line) after `timeout`.
#[track_caller]
pub fn eventually(timeout: Duration, cond: impl FnMut() -> bool) {
    eventually_msg(timeout, "condition", cond)
}

/// Like [`eventually`], naming what was awaited in the panic message.
#[track_caller]
pub fn eventually_msg(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !try_eventually(timeout, cond) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Polls `cond` until it returns true (→ true) or `timeout` passes (→ false).
/// The condition is always evaluated at least once, and once more at the deadline.
pub fn try_eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(POLL.min(deadline - now));
    }
}

/// Polls `child` until it exits (→ its status) or `timeout` passes (→ None; the child is left
/// running, for the caller to kill or keep).
pub fn exit_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    try_eventually(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Sleeps for `total` in small steps, returning early (false) once `stop()` is true.
/// Used by origins so a delayed response never outlives `Origin::stop`.
pub fn sleep_unless(total: Duration, stop: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + total;
    loop {
        if stop() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep(Duration::from_millis(5).min(deadline - now));
    }
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it after `timeout`.
/// Returns (exit code, stdout, stderr); the code is None when it was killed.
pub fn output_within(
    cmd: &mut std::process::Command,
    timeout: Duration,
) -> (Option<i32>, String, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (None, String::new(), format!("cannot spawn {cmd:?}: {e}")),
    };
    // Readers on threads so a full pipe cannot stall the child while we wait.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let status = exit_within(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    (status.and_then(|s| s.code()), stdout, stderr)
}
