//! Asynchronous image I/O and the way its completions reach the reactor that issued it.
//!
//! Each operation gets a librbd completion whose callback argument is a small heap context: the
//! issuing reactor's queue and the operation's token. librbd runs the callback once, on one of
//! its threads; the callback takes the result, releases the completion, queues
//! `(token, result)` and writes the reactor's eventfd. Nothing else happens on librbd's threads.

use std::ffi::{c_char, c_void};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::Image;

/// One finished operation: its token and librbd's result (bytes or 0 on success, `-errno`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    pub token: u64,
    pub result: i64,
}

/// What a callback needs: where to queue the result and which eventfd to write.
struct Sink {
    tx: Sender<Completed>,
    eventfd: File,
}

impl Sink {
    fn deliver(&self, c: Completed) {
        // The receiver lives as long as the reactor, which waits for all its operations.
        let _ = self.tx.send(c);
        // EAGAIN means the counter is already non-zero: the reactor will wake anyway.
        let _ = (&self.eventfd).write(&1u64.to_ne_bytes());
    }
}

/// One reactor's inbox of finished operations, with the eventfd its ring reads to learn that
/// there are some.
pub struct Completions {
    sink: Arc<Sink>,
    rx: Receiver<Completed>,
}

impl Completions {
    pub fn new() -> std::io::Result<Completions> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(Completions {
            sink: Arc::new(Sink {
                tx,
                eventfd: File::from(owned),
            }),
            rx,
        })
    }

    /// The eventfd to read (8 bytes, a counter) for notice that completions are queued.
    pub fn eventfd(&self) -> RawFd {
        self.sink.eventfd.as_raw_fd()
    }

    /// The next queued completion, if any.
    pub fn try_next(&self) -> Option<Completed> {
        self.rx.try_recv().ok()
    }

    /// The next completion, waiting up to `timeout` (only for draining at shutdown).
    pub fn wait_next(&self, timeout: Duration) -> Option<Completed> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// The callback's argument, owned by librbd from submission until the callback.
struct Pending {
    sink: Arc<Sink>,
    token: u64,
    /// Where a COMPARE AND WRITE's mismatch offset goes: librbd writes it before calling back,
    /// so it must live until then, and the callback's argument does.
    mismatch: u64,
}

/// librbd's completion callback: hand the result to the issuing reactor, nothing more.
unsafe extern "C" fn on_complete(c: rbd_sys::rbd_completion_t, arg: *mut c_void) {
    // SAFETY: `arg` is the `Pending` that `submit` leaked for this completion, and librbd calls
    // back exactly once per completion, so it is reclaimed exactly once.
    let pending = unsafe { Box::from_raw(arg.cast::<Pending>()) };
    // SAFETY: `c` is this callback's completion, valid until released just below (releasing
    // it inside the callback is allowed: librbd holds its own reference while calling back).
    let result = unsafe {
        let r = rbd_sys::rbd_aio_get_return_value(c);
        rbd_sys::rbd_aio_release(c);
        r
    };
    pending.sink.deliver(Completed {
        token: pending.token,
        result: result as i64,
    });
}

impl Image {
    /// Creates a completion routed to `to` with `token` and hands it to `start`, which issues
    /// one librbd call with it. On `Err(errno)` no completion will be delivered.
    fn submit(
        &self,
        to: &Completions,
        token: u64,
        start: impl FnOnce(rbd_sys::rbd_completion_t, *mut u64) -> i64,
    ) -> Result<(), i32> {
        let pending = Box::into_raw(Box::new(Pending {
            sink: to.sink.clone(),
            token,
            mismatch: 0,
        }));
        let mut c: rbd_sys::rbd_completion_t = std::ptr::null_mut();
        // SAFETY: `c` is a valid out-pointer; the callback argument stays valid until the
        // callback reclaims it.
        let r = unsafe {
            rbd_sys::rbd_aio_create_completion(pending.cast(), Some(on_complete), &mut c)
        };
        if r < 0 {
            // SAFETY: no completion exists, so nothing else will ever see `pending`.
            drop(unsafe { Box::from_raw(pending) });
            return Err(-r);
        }
        // SAFETY: `pending` is the live allocation made above; no reference to it exists.
        let mismatch = unsafe { &raw mut (*pending).mismatch };
        let r = start(c, mismatch);
        if r < 0 {
            // librbd 16's aio calls always return 0 and report errors through the completion;
            // should one refuse synchronously, whether it still calls back is not documented,
            // so the completion and its argument are leaked rather than risk a double free.
            return Err(i32::try_from(-r).unwrap_or(libc::EIO));
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into `buf`.
    ///
    /// # Safety
    /// `buf..buf + len` must stay valid, and be neither read nor written by anyone else, until
    /// the completion for `token` has been taken from `to`.
    pub unsafe fn read(
        &self,
        offset: u64,
        buf: *mut u8,
        len: usize,
        to: &Completions,
        token: u64,
    ) -> Result<(), i32> {
        self.submit(to, token, |c, _| {
            // SAFETY: the caller keeps the buffer valid and untouched until the completion.
            i64::from(unsafe {
                rbd_sys::rbd_aio_read(self.handle, offset, len, buf.cast::<c_char>(), c)
            })
        })
    }

    /// Writes `len` bytes from `buf` at `offset`. librbd may use the memory without copying it
    /// until the operation completes.
    ///
    /// # Safety
    /// `buf..buf + len` must stay valid and unchanged until the completion for `token` has been
    /// taken from `to`.
    pub unsafe fn write(
        &self,
        offset: u64,
        buf: *const u8,
        len: usize,
        to: &Completions,
        token: u64,
    ) -> Result<(), i32> {
        self.submit(to, token, |c, _| {
            // SAFETY: the caller keeps the buffer valid and unchanged until the completion.
            i64::from(unsafe {
                rbd_sys::rbd_aio_write(self.handle, offset, len, buf.cast::<c_char>(), c)
            })
        })
    }

    /// Makes every write completed so far durable in the cluster (flushes librbd's cache).
    pub fn flush(&self, to: &Completions, token: u64) -> Result<(), i32> {
        self.submit(to, token, |c, _| {
            // SAFETY: the image is open; no memory of ours is involved.
            i64::from(unsafe { rbd_sys::rbd_aio_flush(self.handle, c) })
        })
    }

    /// Zeroes `len` bytes at `offset`, deallocating every whole object in the range: later
    /// reads return zeros. (Unlike `rbd_aio_discard`, which may skip the parts of a range that
    /// are not aligned to `rbd_discard_granularity_bytes` and leave their data in place.)
    pub fn write_zeroes(
        &self,
        offset: u64,
        len: u64,
        to: &Completions,
        token: u64,
    ) -> Result<(), i32> {
        let len = usize::try_from(len).map_err(|_| libc::EINVAL)?;
        self.submit(to, token, |c, _| {
            // SAFETY: the image is open; no memory of ours is involved. Flags 0: zero (and
            // deallocate), not thick-provision.
            i64::from(unsafe { rbd_sys::rbd_aio_write_zeroes(self.handle, offset, len, c, 0, 0) })
        })
    }

    /// Atomically in the cluster: if the `len` bytes at `offset` equal `compare`, writes
    /// `write` there; otherwise completes with `-EILSEQ` and changes nothing. librbd 16 refuses
    /// (`-EINVAL`) a range that spans two objects.
    ///
    /// # Safety
    /// `compare..compare + len` and `write..write + len` must stay valid and unchanged until
    /// the completion for `token` has been taken from `to`.
    pub unsafe fn compare_and_write(
        &self,
        offset: u64,
        compare: *const u8,
        write: *const u8,
        len: usize,
        to: &Completions,
        token: u64,
    ) -> Result<(), i32> {
        self.submit(to, token, |c, mismatch| {
            // SAFETY: the caller keeps both buffers valid and unchanged until the completion;
            // `mismatch` lives in the callback's argument, which outlives the operation.
            let r = unsafe {
                rbd_sys::rbd_aio_compare_and_write(
                    self.handle,
                    offset,
                    len,
                    compare.cast::<c_char>(),
                    write.cast::<c_char>(),
                    c,
                    mismatch,
                    0,
                )
            };
            i64::try_from(r).unwrap_or(i64::from(-libc::EIO))
        })
    }
}
