//! Ceph RADOS block devices through librados and librbd (cargo feature `rbd`), with the bindings
//! of the `rados-sys` and `rbd-sys` crates. Besides the reactor's io_uring calls, this is the only
//! place with `unsafe` code: each block calls into librados/librbd and says why that is sound.
//!
//! - [`Image::open`] connects to the cluster a [`Client`] names (one connection per process and
//!   distinct client, shared by every image that names it) and opens one handle on the image.
//!   That handle is shared by every reactor: librbd's image handles are thread-safe, and a single
//!   handle per image keeps one exclusive lock, one cache and one watch. (Handles per reactor
//!   would hand the image's exclusive lock back and forth between them on every write, and their
//!   caches would not see each other's writes.)
//! - Asynchronous I/O ([`Image::read`], [`Image::write`], [`Image::flush`],
//!   [`Image::write_zeroes`]) completes on a librbd thread. Its callback only queues
//!   `(token, result)` for the reactor that issued the operation and writes that reactor's
//!   eventfd ([`Completions`]); the reactor reads the eventfd through its ring and does all the
//!   rest on its own core.
//! - A resize in the cluster reaches the daemon through `rbd_update_watch` ([`Image::watch_size`]):
//!   librbd calls back on its own thread, which reads the new size with `rbd_stat` (as rbd-nbd
//!   does) and hands it to the daemon's hook.
//! - Nothing waits forever on the cluster: unless the Ceph configuration sets them, connecting
//!   gives up after `client_mount_timeout` = 10 s and each operation after
//!   `rados_osd_op_timeout` / `rados_mon_op_timeout` = 30 s (Ceph's defaults are 300 s and
//!   never). `rbd_non_blocking_aio` is always on, so submitting never blocks a reactor on the
//!   client's throttles.

mod aio;
mod lock;
mod object;

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub use aio::{Completed, Completions};
pub use lock::Taken;
pub use object::{Notification, ObjectWatch, MAX_OBJECT_BYTES};

/// Who connects to which cluster: one connection per distinct `Client` in the process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client {
    /// The Ceph configuration file; `None` = librados's own search (`$CEPH_CONF`,
    /// `/etc/ceph/ceph.conf`, `~/.ceph/config`, `./ceph.conf`).
    pub conf: Option<PathBuf>,
    /// The cephx id, without `client.` (`admin` = `client.admin`).
    pub user: String,
    /// The keyring holding the user's key; `None` = the configuration's `keyring` setting.
    pub keyring: Option<PathBuf>,
    /// librbd's cache as the configuration sets it (`rbd_cache`, on by default: write-around,
    /// writes acknowledged before the OSDs have them), or off whatever it says (`false`): a
    /// gateway's images, whose acknowledged writes must be in the cluster should the gateway
    /// die, since another gateway then serves the same unit without the initiator being told
    /// of any power loss (tcmu-runner turns it off for the same reason).
    pub cache: bool,
}

impl Client {
    fn describe(&self) -> String {
        let conf = self
            .conf
            .as_ref()
            .map_or_else(|| "default search".to_owned(), |c| c.display().to_string());
        let cache = if self.cache { "" } else { ", no rbd_cache" };
        format!("client.{} (ceph.conf: {conf}{cache})", self.user)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CephError {
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*.errno))]
    Call { what: String, errno: i32 },
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
}

impl CephError {
    /// The same error, described as what was being done.
    fn context(self, what: String) -> CephError {
        match self {
            CephError::Call { errno, .. } => CephError::Call { what, errno },
            other => other,
        }
    }

    /// The errno of a failed call (None for a name that cannot be passed to C).
    pub fn errno(&self) -> Option<i32> {
        match self {
            CephError::Call { errno, .. } => Some(*errno),
            CephError::Nul(_) => None,
        }
    }
}

fn cstring(s: &str) -> Result<CString, CephError> {
    CString::new(s).map_err(|_| CephError::Nul(s.to_owned()))
}

fn check(r: i32, what: impl FnOnce() -> String) -> Result<(), CephError> {
    if r < 0 {
        Err(CephError::Call {
            what: what(),
            errno: -r,
        })
    } else {
        Ok(())
    }
}

/// Settings that keep a dead or hung cluster from hanging the daemon: (option, our value, Ceph's
/// default). Ours applies only where the configuration left Ceph's default.
const TIMEOUTS: [(&str, &str, f64); 3] = [
    ("client_mount_timeout", "10", 300.0),
    ("rados_osd_op_timeout", "30", 0.0),
    ("rados_mon_op_timeout", "30", 0.0),
];

/// A connected librados cluster handle.
struct Cluster {
    handle: rados_sys::rados_t,
    client: Client,
}

// SAFETY: a connected `rados_t` may be used from any thread (librados serialises internally);
// the handle is only shut down in `Drop`, when no image uses it any more.
unsafe impl Send for Cluster {}
// SAFETY: as above: every librados call on the handle is thread-safe.
unsafe impl Sync for Cluster {}

/// The process's cluster connections, by client; an entry lives as long as an image uses it.
static CLUSTERS: Mutex<Vec<Weak<Cluster>>> = Mutex::new(Vec::new());

impl Cluster {
    /// The process's connection for `client`, connecting on first use.
    fn shared(client: &Client) -> Result<Arc<Cluster>, CephError> {
        let mut all = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        if let Some(c) = all
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.client == *client)
        {
            return Ok(c);
        }
        let c = Arc::new(Cluster::connect(client)?);
        all.push(Arc::downgrade(&c));
        Ok(c)
    }

    fn connect(client: &Client) -> Result<Cluster, CephError> {
        let name = cstring(&format!("client.{}", client.user))?;
        let mut handle: rados_sys::rados_t = std::ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer and both strings are NUL-terminated and live
        // for the call.
        let r =
            unsafe { rados_sys::rados_create2(&mut handle, c"ceph".as_ptr(), name.as_ptr(), 0) };
        check(r, || {
            format!("creating a cluster handle for {}", client.describe())
        })?;
        // From here on `Drop` shuts the handle down, whatever fails.
        let cluster = Cluster {
            handle,
            client: client.clone(),
        };
        cluster.configure()?;
        // SAFETY: the handle is configured and not connected yet; the call blocks at most
        // `client_mount_timeout`.
        let r = unsafe { rados_sys::rados_connect(cluster.handle) };
        check(r, || {
            format!("connecting to the Ceph cluster as {}", client.describe())
        })?;
        Ok(cluster)
    }

    fn configure(&self) -> Result<(), CephError> {
        let client = &self.client;
        let conf = client
            .conf
            .as_ref()
            .map(|p| cstring(&p.to_string_lossy()))
            .transpose()?;
        let conf_ptr = conf.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: the handle is not connected yet; a null path asks for librados's own search.
        let r = unsafe { rados_sys::rados_conf_read_file(self.handle, conf_ptr) };
        check(r, || {
            format!("reading the Ceph configuration of {}", client.describe())
        })?;
        // SAFETY: a null name means CEPH_ARGS; the handle is not connected yet. (librados
        // documents this call as not thread-safe: it runs only at start-up, under `CLUSTERS`.)
        let r = unsafe { rados_sys::rados_conf_parse_env(self.handle, std::ptr::null()) };
        check(r, || "parsing CEPH_ARGS".to_owned())?;
        if let Some(k) = &client.keyring {
            self.set_conf("keyring", &k.to_string_lossy())?;
        }
        for (option, ours, ceph_default) in TIMEOUTS {
            let current = self.get_conf(option)?;
            if current.trim().parse::<f64>().ok() == Some(ceph_default) {
                self.set_conf(option, ours)?;
            }
        }
        if !client.cache {
            self.set_conf("rbd_cache", "false")?;
        }
        // Submissions must never wait for librados's throttles on the reactor's thread.
        self.set_conf("rbd_non_blocking_aio", "true")
    }

    fn set_conf(&self, option: &str, value: &str) -> Result<(), CephError> {
        let (o, v) = (cstring(option)?, cstring(value)?);
        // SAFETY: both strings are NUL-terminated and outlive the call; not connected yet.
        let r = unsafe { rados_sys::rados_conf_set(self.handle, o.as_ptr(), v.as_ptr()) };
        check(r, || format!("setting {option} = {value}"))
    }

    fn get_conf(&self, option: &str) -> Result<String, CephError> {
        let o = cstring(option)?;
        let mut buf = [0 as c_char; 128];
        // SAFETY: `buf` is writable for its whole length, which is what we pass.
        let r = unsafe {
            rados_sys::rados_conf_get(self.handle, o.as_ptr(), buf.as_mut_ptr(), buf.len())
        };
        check(r, || format!("reading the setting {option}"))?;
        // SAFETY: on success librados wrote a NUL-terminated string into `buf`.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        Ok(s.to_string_lossy().into_owned())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the last image using the handle has been closed (each holds an `Arc`).
        unsafe { rados_sys::rados_shutdown(self.handle) };
    }
}

/// An open RBD image, shared by every reactor.
pub struct Image {
    handle: rbd_sys::rbd_image_t,
    ioctx: rados_sys::rados_ioctx_t,
    /// Bytes, as `rbd_stat` last said (updated by the size watch).
    size: Arc<AtomicU64>,
    /// The registered size watch: librbd's handle and the callback's argument.
    watch: Mutex<Option<(u64, *mut SizeWatch)>>,
    label: String,
    /// Keeps the connection alive while the image is open.
    _cluster: Arc<Cluster>,
}

// SAFETY: librbd image handles are thread-safe: the asynchronous I/O calls may be made from any
// thread, concurrently (librbd serialises on its own locks and work queues).
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("image", &self.label)
            .field("size", &self.size())
            .finish()
    }
}

impl Image {
    /// Connects (or reuses the connection) and opens `pool/image`, read-only if asked.
    pub fn open(
        client: &Client,
        pool: &str,
        image: &str,
        read_only: bool,
    ) -> Result<Image, CephError> {
        let label = format!("rbd:{pool}/{image}");
        let cluster = Cluster::shared(client)?;
        let pool_c = cstring(pool)?;
        let image_c = cstring(image)?;
        let mut ioctx: rados_sys::rados_ioctx_t = std::ptr::null_mut();
        // SAFETY: the cluster is connected; `ioctx` is a valid out-pointer.
        let r =
            unsafe { rados_sys::rados_ioctx_create(cluster.handle, pool_c.as_ptr(), &mut ioctx) };
        check(r, || format!("{label}: opening pool {pool:?}"))?;
        let mut handle: rbd_sys::rbd_image_t = std::ptr::null_mut();
        // SAFETY: `ioctx` was just created; `handle` is a valid out-pointer; no snapshot (null).
        let r = unsafe {
            if read_only {
                rbd_sys::rbd_open_read_only(ioctx, image_c.as_ptr(), &mut handle, std::ptr::null())
            } else {
                rbd_sys::rbd_open(ioctx, image_c.as_ptr(), &mut handle, std::ptr::null())
            }
        };
        if r < 0 {
            // SAFETY: the context is ours and nothing uses it.
            unsafe { rados_sys::rados_ioctx_destroy(ioctx) };
            check(r, || format!("{label}: opening the image"))?;
        }
        let image = Image {
            handle,
            ioctx,
            size: Arc::default(),
            watch: Mutex::new(None),
            label,
            _cluster: cluster,
        };
        let size = stat_size(image.handle)
            .map_err(|e| e.context(format!("{}: reading its size", image.label)))?;
        image.size.store(size, Ordering::Release);
        Ok(image)
    }

    /// Size in bytes (from `rbd_stat`; follows resizes once [`Image::watch_size`] is on).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Reads the size from the cluster again (`rbd_stat`), e.g. for `ringtgt ctl lun resize`.
    pub fn stat_size(&self) -> Result<u64, CephError> {
        let size = stat_size(self.handle)
            .map_err(|e| e.context(format!("{}: reading its size", self.label)))?;
        self.size.store(size, Ordering::Release);
        Ok(size)
    }

    /// Calls `on_change` with the new size in bytes whenever the image is resized in the
    /// cluster. `on_change` runs on a librbd thread and must return promptly. A second call
    /// replaces the first hook.
    pub fn watch_size(
        &self,
        on_change: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(), CephError> {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((handle, arg)) = watch.take() {
            // SAFETY: `handle` and `arg` were registered together on this open image.
            unsafe { unwatch(self.handle, handle, arg) };
        }
        let arg = Box::into_raw(Box::new(SizeWatch {
            image: self.handle,
            size: self.size.clone(),
            on_change: Box::new(on_change),
        }));
        let mut handle = 0u64;
        // SAFETY: the image is open; `arg` stays valid until `unwatch` (in `Drop` at the
        // latest) has unregistered the watch, after which librbd no longer calls back.
        let r = unsafe {
            rbd_sys::rbd_update_watch(self.handle, &mut handle, Some(on_update), arg.cast())
        };
        if r < 0 {
            // SAFETY: registration failed, so librbd never saw `arg`.
            drop(unsafe { Box::from_raw(arg) });
            return check(r, || format!("{}: watching for resizes", self.label));
        }
        *watch = Some((handle, arg));
        Ok(())
    }

    /// Waits until every write librbd acknowledged is in the cluster (`rbd_flush`; at most
    /// `rados_osd_op_timeout` when the cluster does not answer).
    pub fn flush_sync(&self) -> Result<(), CephError> {
        // SAFETY: the image is open; this blocks the calling thread (the control thread, at
        // shutdown), never a reactor.
        let r = unsafe { rbd_sys::rbd_flush(self.handle) };
        check(r, || format!("{}: flushing", self.label))
    }

    /// `rbd:POOL/IMAGE`.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let watch = self.watch.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((handle, arg)) = watch.take() {
            // SAFETY: registered together on this image, which is still open.
            unsafe { unwatch(self.handle, handle, arg) };
        }
        // SAFETY: every reactor has drained its operations on this image before the last `Arc`
        // goes (`Completions` users wait for theirs), so nothing uses the handle or context.
        unsafe {
            rbd_sys::rbd_close(self.handle);
            rados_sys::rados_ioctx_destroy(self.ioctx);
        }
    }
}

/// The size watch's callback argument.
struct SizeWatch {
    image: rbd_sys::rbd_image_t,
    size: Arc<AtomicU64>,
    on_change: Box<dyn Fn(u64) + Send + Sync>,
}

/// librbd's image-update callback (header changes: resize, snapshots, features, ...).
unsafe extern "C" fn on_update(arg: *mut c_void) {
    // SAFETY: `arg` is the `SizeWatch` registered with this watch; it is freed only after
    // `rbd_update_unwatch` has returned, and librbd waits for running callbacks before that.
    let watch = unsafe { &*arg.cast::<SizeWatch>() };
    match stat_size(watch.image) {
        Ok(size) => {
            if watch.size.swap(size, Ordering::AcqRel) != size {
                (watch.on_change)(size);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading the size of a changed RBD image failed"),
    }
}

/// Unregisters a size watch and frees its argument.
///
/// # Safety
/// `handle` and `arg` must come from one successful `rbd_update_watch` on the open `image`,
/// and this must not run on the callback's own thread.
unsafe fn unwatch(image: rbd_sys::rbd_image_t, handle: u64, arg: *mut SizeWatch) {
    // SAFETY: per this function's contract; librbd waits for a running callback to return.
    let r = unsafe { rbd_sys::rbd_update_unwatch(image, handle) };
    if r < 0 {
        // The watch may still fire: leaking its argument is the safe choice.
        tracing::warn!(errno = -r, "unregistering an RBD size watch failed");
        return;
    }
    // SAFETY: no callback runs any more, and `arg` came from `Box::into_raw`.
    drop(unsafe { Box::from_raw(arg) });
}

/// The image's size in bytes, from `rbd_stat`.
fn stat_size(image: rbd_sys::rbd_image_t) -> Result<u64, CephError> {
    // SAFETY: a plain C struct of integers and byte arrays: all zeros is a valid value.
    let mut info: rbd_sys::rbd_image_info_t = unsafe { std::mem::zeroed() };
    // SAFETY: `image` is open and `info` is writable for the size we pass.
    let r = unsafe { rbd_sys::rbd_stat(image, &mut info, std::mem::size_of_val(&info)) };
    check(r, || "rbd_stat".to_owned())?;
    Ok(info.size)
}
