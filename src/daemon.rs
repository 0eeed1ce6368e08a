//! `-d`: the caller gets its terminal (or pipe) back only once the daemon listens, and learns
//! why when it cannot.
//!
//! Pingora's own daemonize returns in the parent right after forking, before anything is
//! bound, and (without an error log) leaves the daemon writing into the caller's stdout and
//! stderr, so `out=$(strait -d)` never returns. strait forks once more first: the original
//! process keeps the read end of a pipe and waits on it; the daemon, once its listeners
//! accept (or, under `-u`, once it is ready to take the sockets over), writes `ready` into
//! the write end, or `error MESSAGE` when it cannot start. The daemon's standard streams are
//! pointed at /dev/null and the error log by Pingora's daemonize (see `server::server_conf`).
//!
//! Every process between the two (ours, Pingora's intermediate ones) exits right after
//! forking, so the pipe reaches EOF without a word only if the daemon died: the parent then
//! says so and exits 1.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The write end of the readiness pipe in the daemon; -1 once used or when not daemonized.
static READY_FD: AtomicI32 = AtomicI32::new(-1);

/// Forks. The parent waits for the daemon's word (up to `timeout`) and exits: 0 when it is
/// ready, 1 with the reason printed otherwise. The child returns and goes on to daemonize.
pub(crate) fn fork_and_wait(timeout: Duration, error_log: Option<&Path>) {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the two-element array on success. O_CLOEXEC: nothing strait might
    // execute later inherits the pipe.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        exit_with(&format!(
            "cannot create the daemon's readiness pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fork in a process that has no other threads yet (the server's runtimes start
    // after this; the name-resolution runtime has been dropped), so the child is consistent.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => exit_with(&format!("cannot fork: {}", std::io::Error::last_os_error())),
        0 => {
            // SAFETY: the read end belongs to the parent's side; closing our copy.
            unsafe { libc::close(fds[0]) };
            READY_FD.store(fds[1], Ordering::SeqCst);
            install_panic_report();
        }
        _ => {
            // SAFETY: fds[0] is this process's open read end, owned from here on; our copy
            // of the write end is closed so EOF means every daemon-side copy is gone.
            let read = unsafe {
                libc::close(fds[1]);
                OwnedFd::from_raw_fd(fds[0])
            };
            let outcome = wait_for_word(&read, timeout);
            let mut status = 0;
            // SAFETY: reaping our own child, which exits right after Pingora's fork.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            match outcome {
                Word::Ready => std::process::exit(0),
                Word::Failed(why) => exit_with(&why),
                Word::Silent => exit_with(&format!(
                    "the daemon exited before it was listening{}",
                    see_log(error_log)
                )),
                Word::TimedOut => exit_with(&format!(
                    "the daemon did not report listening within {timeout:?}{}",
                    see_log(error_log)
                )),
            }
        }
    }
}

fn see_log(error_log: Option<&Path>) -> String {
    match error_log {
        Some(path) => format!(" (see the error log {})", path.display()),
        None => " (set logging.error_log to keep its log)".to_string(),
    }
}

fn exit_with(message: &str) -> ! {
    eprintln!("strait: {message}");
    std::process::exit(1)
}

enum Word {
    Ready,
    Failed(String),
    Silent,
    TimedOut,
}

fn wait_for_word(read: &OwnedFd, timeout: Duration) -> Word {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        if let Some(end) = got.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&got[..end]).into_owned();
            return match line.strip_prefix("error ") {
                Some(why) => Word::Failed(why.replace('\u{1f}', "\n")),
                None if line == "ready" => Word::Ready,
                None => Word::Failed(format!("unexpected word from the daemon: {line:?}")),
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Word::TimedOut;
        }
        let mut poll = libc::pollfd {
            fd: read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for an fd we own.
        let rc = unsafe { libc::poll(&mut poll, 1, ms.max(1)) };
        if rc < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Word::Silent;
        }
        if rc == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n > 0 => got.extend_from_slice(&buf[..n as usize]),
            0 => {
                // EOF: a partial last line still counts as the daemon's word.
                if got.is_empty() {
                    return Word::Silent;
                }
                got.push(b'\n');
            }
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Word::Silent,
        }
    }
}

/// Tells the waiting parent the daemon is ready. Only the first word counts; later calls and
/// calls in a process that was not started with `-d` do nothing.
pub(crate) fn report_ready() {
    send("ready");
}

/// Tells the waiting parent why the daemon cannot start (it prints the message and exits 1).
pub(crate) fn report_failure(message: &str) {
    // One line on the pipe; a multi-line message travels with its newlines swapped out.
    send(&format!("error {}", message.replace('\n', "\u{1f}")));
}

fn send(word: &str) {
    let fd = READY_FD.swap(-1, Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    // SAFETY: `fd` is the write end this process kept in `fork_and_wait`; taking it out of
    // READY_FD first means it is closed exactly once, here.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = file.write_all(format!("{word}\n").as_bytes());
}

/// A panic before the daemon is ready (Pingora's daemonize cannot write the pid file, say)
/// is the reason the parent should print.
fn install_panic_report() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report_failure(&info.to_string());
        previous(info);
    }));
}
