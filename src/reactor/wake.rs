//! An eventfd the ring keeps a read posted on, so another thread can wake the reactor.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

pub struct WakeFd {
    fd: Arc<File>,
}

impl WakeFd {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(WakeFd {
            fd: Arc::new(File::from(owned)),
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A closure that wakes the ring from any thread.
    pub fn waker(&self) -> Box<dyn Fn() + Send> {
        let fd = self.fd.clone();
        Box::new(move || {
            // EAGAIN means the counter is already non-zero: the ring will wake anyway.
            let _ = (&*fd).write(&1u64.to_ne_bytes());
        })
    }
}
