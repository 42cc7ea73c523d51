//! A small RADOS object next to an image, shared by every gateway of it: replaced whole with a
//! compare-and-swap on a version attribute (one atomic RADOS write operation), and announced
//! with watch/notify. Gateway targets keep their persistent reservations in one
//! (`control::cluster_pr`).

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::{check, cstring, CephError, Image};

/// The attribute holding the object's version (decimal), compared and replaced by each write.
const VERSION_XATTR: &std::ffi::CStr = c"ringtgt.version";
/// Largest object read (a reservation state with every registration fits many times over).
pub const MAX_OBJECT_BYTES: usize = 4 << 20;
/// librados.h LIBRADOS_CMPXATTR_OP_EQ.
const CMPXATTR_EQ: u8 = 1;

/// A notification another client sent on a watched object; acknowledge it with
/// [`Image::ack_notify`] once it has been acted on (the notifier waits for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub notify_id: u64,
    pub cookie: u64,
}

impl Image {
    /// The object's bytes; `None` if it does not exist.
    pub fn read_object(&self, name: &str) -> Result<Option<Vec<u8>>, CephError> {
        let oid = cstring(name)?;
        let mut size = 0u64;
        // SAFETY: the ioctx is open, `oid` NUL-terminated, `size` a valid out-pointer, and a
        // null mtime pointer is allowed.
        let r = unsafe {
            rados_sys::rados_stat(self.ioctx, oid.as_ptr(), &mut size, std::ptr::null_mut())
        };
        if r == -libc::ENOENT {
            return Ok(None);
        }
        check(r, || format!("{}: stat of object {name}", self.label))?;
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        if len > MAX_OBJECT_BYTES {
            return Err(CephError::Call {
                what: format!("{}: object {name} is {size} bytes", self.label),
                errno: libc::EFBIG,
            });
        }
        // One more byte than the size: a read that fills it means the object grew meanwhile.
        let mut buf = vec![0u8; len + 1];
        // SAFETY: `buf` is writable for the length passed.
        let r = unsafe {
            rados_sys::rados_read(
                self.ioctx,
                oid.as_ptr(),
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len(),
                0,
            )
        };
        if r == -libc::ENOENT {
            return Ok(None);
        }
        check(r, || format!("{}: reading object {name}", self.label))?;
        let read = usize::try_from(r).unwrap_or(0);
        if read > len {
            return Err(CephError::Call {
                what: format!("{}: object {name} changed while read", self.label),
                errno: libc::EAGAIN,
            });
        }
        buf.truncate(read);
        Ok(Some(buf))
    }

    /// Replaces the object with `bytes` as version `new`, if its version is still `expected`
    /// (`None`: if it does not exist yet). `Ok(false)`: another writer came first.
    pub fn write_object_if(
        &self,
        name: &str,
        expected: Option<u64>,
        new: u64,
        bytes: &[u8],
    ) -> Result<bool, CephError> {
        let oid = cstring(name)?;
        let expected_s = expected.map(|v| v.to_string());
        let new_s = new.to_string();
        // SAFETY: a fresh operation, released below whatever happens.
        let op = unsafe { rados_sys::rados_create_write_op() };
        if op.is_null() {
            return Err(CephError::Call {
                what: format!("{}: creating a write operation", self.label),
                errno: libc::ENOMEM,
            });
        }
        // SAFETY: `op` is valid; every buffer outlives `rados_write_op_operate`, which is where
        // librados reads them, and lengths match the buffers.
        let r = unsafe {
            match &expected_s {
                None => rados_sys::rados_write_op_create(
                    op,
                    rados_sys::LIBRADOS_CREATE_EXCLUSIVE as i32,
                    std::ptr::null(),
                ),
                Some(v) => rados_sys::rados_write_op_cmpxattr(
                    op,
                    VERSION_XATTR.as_ptr(),
                    CMPXATTR_EQ,
                    v.as_ptr().cast::<c_char>(),
                    v.len(),
                ),
            }
            rados_sys::rados_write_op_setxattr(
                op,
                VERSION_XATTR.as_ptr(),
                new_s.as_ptr().cast::<c_char>(),
                new_s.len(),
            );
            rados_sys::rados_write_op_write_full(op, bytes.as_ptr().cast::<c_char>(), bytes.len());
            let r = rados_sys::rados_write_op_operate(
                op,
                self.ioctx,
                oid.as_ptr(),
                std::ptr::null_mut(),
                0,
            );
            rados_sys::rados_release_write_op(op);
            r
        };
        if r == -libc::ECANCELED || r == -libc::EEXIST {
            return Ok(false);
        }
        check(r, || format!("{}: writing object {name}", self.label))?;
        Ok(true)
    }

    /// Tells every watcher of the object that it changed, and waits (at most `timeout_ms`) for
    /// their acknowledgements. A watcher that does not answer in time is only logged: it may be
    /// a gateway that is gone.
    pub fn notify_object(&self, name: &str, timeout_ms: u64) -> Result<(), CephError> {
        let oid = cstring(name)?;
        let mut reply: *mut c_char = std::ptr::null_mut();
        let mut reply_len = 0usize;
        // SAFETY: the ioctx is open; an empty payload; librados allocates `reply`, freed below.
        let r = unsafe {
            rados_sys::rados_notify2(
                self.ioctx,
                oid.as_ptr(),
                std::ptr::null(),
                0,
                timeout_ms,
                &mut reply,
                &mut reply_len,
            )
        };
        if !reply.is_null() {
            // SAFETY: allocated by librados for this call, freed once.
            unsafe { rados_sys::rados_buffer_free(reply) };
        }
        check(r, || {
            format!("{}: notifying the watchers of {name}", self.label)
        })
    }

    /// Acknowledges notification `n` of the object.
    pub fn ack_notify(&self, name: &str, n: Notification) -> Result<(), CephError> {
        let oid = cstring(name)?;
        // SAFETY: the ioctx is open; an empty payload.
        let r = unsafe {
            rados_sys::rados_notify_ack(
                self.ioctx,
                oid.as_ptr(),
                n.notify_id,
                n.cookie,
                std::ptr::null(),
                0,
            )
        };
        check(r, || {
            format!("{}: acknowledging a notification on {name}", self.label)
        })
    }

    /// Calls `on_notify` (on a librados thread; it must return promptly) for each notification
    /// another client sends on the object. This client's own are acknowledged at once.
    pub fn watch_object(
        self: &Arc<Self>,
        name: &str,
        on_notify: impl Fn(Notification) + Send + Sync + 'static,
    ) -> Result<ObjectWatch, CephError> {
        let oid = cstring(name)?;
        // SAFETY: the cluster behind the open ioctx is connected.
        let own_id = unsafe {
            rados_sys::rados_get_instance_id(rados_sys::rados_ioctx_get_cluster(self.ioctx))
        };
        let arg = Box::into_raw(Box::new(WatchArg {
            ioctx: self.ioctx,
            oid: oid.clone(),
            own_id,
            on_notify: Box::new(on_notify),
        }));
        let mut cookie = 0u64;
        // SAFETY: `arg` stays valid until `ObjectWatch::drop` has unwatched and flushed the
        // callbacks; the ioctx outlives the watch (the watch holds the image).
        let r = unsafe {
            rados_sys::rados_watch2(
                self.ioctx,
                oid.as_ptr(),
                &mut cookie,
                Some(on_watch_notify),
                Some(on_watch_error),
                arg.cast::<c_void>(),
            )
        };
        if r < 0 {
            // SAFETY: registration failed, so librados never saw `arg`.
            drop(unsafe { Box::from_raw(arg) });
            check(r, || format!("{}: watching object {name}", self.label))?;
        }
        Ok(ObjectWatch {
            image: self.clone(),
            cookie,
            arg,
        })
    }
}

/// A registered watch; dropping it unregisters it.
pub struct ObjectWatch {
    image: Arc<Image>,
    cookie: u64,
    arg: *mut WatchArg,
}

// SAFETY: the watch handle is only used to unregister, which librados allows from any thread;
// the callback argument is only read by librados's callback thread.
unsafe impl Send for ObjectWatch {}

impl Drop for ObjectWatch {
    fn drop(&mut self) {
        let ioctx = self.image.ioctx;
        // SAFETY: the watch was registered on this open ioctx; flushing waits for running
        // callbacks, after which none will use `arg`.
        let r = unsafe {
            let r = rados_sys::rados_unwatch2(ioctx, self.cookie);
            rados_sys::rados_watch_flush(rados_sys::rados_ioctx_get_cluster(ioctx));
            r
        };
        if r < 0 {
            // A watch that may still fire keeps its argument: leaking it is the safe choice.
            tracing::warn!(errno = -r, "unregistering a RADOS object watch failed");
            return;
        }
        // SAFETY: no callback runs any more, and `arg` came from `Box::into_raw`.
        drop(unsafe { Box::from_raw(self.arg) });
    }
}

struct WatchArg {
    ioctx: rados_sys::rados_ioctx_t,
    oid: CString,
    own_id: u64,
    on_notify: Box<dyn Fn(Notification) + Send + Sync>,
}

unsafe extern "C" fn on_watch_notify(
    arg: *mut c_void,
    notify_id: u64,
    cookie: u64,
    notifier_id: u64,
    _data: *mut c_void,
    _data_len: usize,
) {
    // SAFETY: `arg` is the `WatchArg` registered with this watch, alive until it is unwatched
    // and the callbacks flushed.
    let a = unsafe { &*arg.cast::<WatchArg>() };
    if notifier_id == a.own_id {
        // Our own change: nothing to learn, and the notifier (us) waits for this ack.
        // SAFETY: the ioctx is open while the watch exists; an empty payload.
        unsafe {
            rados_sys::rados_notify_ack(
                a.ioctx,
                a.oid.as_ptr(),
                notify_id,
                cookie,
                std::ptr::null(),
                0,
            )
        };
        return;
    }
    (a.on_notify)(Notification { notify_id, cookie });
}

unsafe extern "C" fn on_watch_error(_arg: *mut c_void, cookie: u64, err: i32) {
    // librados re-establishes the watch itself; notifications may have been missed meanwhile,
    // which the next change or the periodic re-read makes up for.
    tracing::warn!(cookie, errno = -err, "a RADOS object watch was interrupted");
}
