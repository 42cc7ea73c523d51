//! Retrying, briefly, what a process that has just exited may still hold. The kernel tears an
//! io_uring down asynchronously, after its process is gone: the listening sockets its pending
//! accepts hold and the block devices registered with it stay busy for a few milliseconds more.
//! A daemon restarted at once (by systemd, or after a crash) waits for them instead of failing.

use std::time::{Duration, Instant};

/// How long a busy listening address is waited for.
pub const WINDOW: Duration = Duration::from_secs(1);
/// How long a busy block device is waited for. The ring of a process killed with I/O in flight
/// lets its registered files go only once that I/O has completed: a restart 2 s after a SIGKILL
/// found the VM harness's loop device still held after its 1 s (the loop's backing file on a
/// host busy with the test suite). A device another program holds is refused after this long
/// at start; a running daemon's live LUN changes do not wait (the control thread opens them).
pub const DEVICE_WINDOW: Duration = Duration::from_secs(5);
const PAUSE: Duration = Duration::from_millis(20);

/// Calls `f` until it succeeds, fails with another error than `errno`, or `window` has passed.
pub fn while_errno<T>(
    errno: i32,
    window: Duration,
    mut f: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let deadline = Instant::now() + window;
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(errno) && Instant::now() < deadline => {
                std::thread::sleep(PAUSE);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_the_named_error_and_only_for_a_while() {
        let mut calls = 0;
        let r = while_errno(libc::EBUSY, WINDOW, || {
            calls += 1;
            if calls < 3 {
                Err(std::io::Error::from_raw_os_error(libc::EBUSY))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: std::io::Result<()> = while_errno(libc::EBUSY, WINDOW, || {
            calls += 1;
            Err(std::io::Error::from_raw_os_error(libc::ENOENT))
        });
        assert_eq!(
            (r.unwrap_err().raw_os_error(), calls),
            (Some(libc::ENOENT), 1)
        );
        let start = Instant::now();
        let r: std::io::Result<()> = while_errno(libc::EBUSY, WINDOW, || {
            Err(std::io::Error::from_raw_os_error(libc::EBUSY))
        });
        assert!(r.is_err() && start.elapsed() >= WINDOW);
    }
}
