//! Backing stores: where a logical unit's blocks live. This module opens and sizes them; the
//! reactor moves the bytes (io_uring reads/writes at offsets on the descriptor given here).
//!
//! - file and block device: opened with `O_DIRECT` (buffered, with a warning, only where the
//!   filesystem refuses `O_DIRECT`); block devices exclusively (`O_EXCL`: not while mounted or
//!   exported by another program). Their [`Geometry`] (block sizes, limits, cache, rotation)
//!   is read from the kernel;
//! - `ram`: an anonymous tmpfs file (`O_TMPFILE`), so all reactors share one copy through the kernel;
//! - `null`: no storage at all; reads return zeros, writes are discarded;
//! - NVMe namespace (its generic character device, `/dev/ngXnY`): commands sent straight to
//!   the controller through io_uring passthrough (`crate::nvme`, `reactor/nvme.rs`); its block
//!   device, if it has one, is held open exclusively meanwhile;
//! - `rbd`: a Ceph RBD image (cargo feature `rbd`), opened through `crate::ceph`; it has no
//!   descriptor, and the reactor drives it with librbd's asynchronous calls instead.
#![forbid(unsafe_code)]

pub mod buf;
mod geometry;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use buf::{Budget, IoBuf, RecvBuf};
pub use geometry::{Geometry, MAX_BLOCK, MIN_BLOCK};

/// How a store holds the bytes from some offset on: data (`allocated`) or a hole, for `len`
/// bytes before that changes (or the range asked about ends). Holes read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub allocated: bool,
    pub len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    File,
    BlockDevice,
    Ram,
    Null,
    Rbd,
    /// An NVMe namespace through its generic character device.
    Nvme,
}

/// What to open (mirrors `config::Backing`, kept here so that this layer does not know the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Path(PathBuf),
    Null { size: u64 },
    Ram { size: u64 },
    Rbd(RbdSpec),
}

/// A Ceph RBD image and the client that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdSpec {
    pub pool: String,
    pub image: String,
    /// ceph.conf; `None` = librados's own search (which honours `$CEPH_CONF`).
    pub conf: Option<PathBuf>,
    /// cephx id, without `client.`.
    pub user: String,
    /// Keyring; `None` = the one the Ceph configuration names.
    pub keyring: Option<PathBuf>,
    /// librbd's cache as configured; `false` = off (a gateway's images: `ceph::Client::cache`).
    pub cache: bool,
}

impl RbdSpec {
    pub fn label(&self) -> String {
        format!("rbd:{}/{}", self.pool, self.image)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file, block device or NVMe generic device (/dev/ngXnY)")]
    NotABlockStore { path: PathBuf },
    #[error("{path}: size {size} bytes is smaller than one {block_size}-byte block")]
    TooSmall {
        path: PathBuf,
        size: u64,
        block_size: u32,
    },
    #[error("ram store of {size} bytes: {source}")]
    Ram { size: u64, source: std::io::Error },
    #[error(
        "{path}: block_size {block_size} is smaller than the {needed}-byte blocks it accepts for \
         direct I/O; set block_size = {needed} or leave it out to use the store's own"
    )]
    BlockSizeTooSmall {
        path: PathBuf,
        block_size: u32,
        needed: u32,
    },
    #[error("{path}: its {logical}-byte logical blocks are larger than the {MAX_BLOCK} bytes a LUN can have")]
    BlocksTooLarge { path: PathBuf, logical: u32 },
    #[error(
        "ram store of {size} bytes does not fit: {where_} has room for {room} bytes; a RAM LUN must fit in memory \
         (its writes would fail once it is full)"
    )]
    RamTooLarge {
        size: u64,
        room: u64,
        where_: String,
    },
    #[error(
        "{label}: this ringtgt was built without Ceph RBD support (build it with `--features rbd`)"
    )]
    RbdUnsupported { label: String },
    #[cfg(feature = "rbd")]
    #[error("{0}")]
    Rbd(crate::ceph::CephError),
    #[error("{0}")]
    Nvme(#[from] crate::nvme::NvmeError),
}

impl StoreError {
    /// Whether the store could not be reached (the cluster), rather than being misconfigured.
    pub fn is_unavailable(&self) -> bool {
        #[cfg(feature = "rbd")]
        if let StoreError::Rbd(e) = self {
            return matches!(
                e.errno(),
                Some(libc::ETIMEDOUT | libc::ENOTCONN | libc::ECONNREFUSED | libc::ESHUTDOWN)
            );
        }
        false
    }
}

/// What identifies the file behind a path, whatever the path: a block device by its device
/// number, a file by its filesystem and inode. Two LUNs with the same identity share a medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreId {
    Device(u64),
    /// A character device (an NVMe generic device), by its device number.
    CharDevice(u64),
    File {
        dev: u64,
        ino: u64,
    },
}

/// The identity of the store a spec names, if it names an existing file or block device
/// (symbolic links followed).
pub fn identify(spec: &StoreSpec) -> Option<StoreId> {
    let StoreSpec::Path(path) = spec else {
        return None;
    };
    let meta = std::fs::metadata(path).ok()?;
    if meta.file_type().is_block_device() {
        Some(StoreId::Device(meta.rdev()))
    } else if meta.file_type().is_char_device() {
        Some(StoreId::CharDevice(meta.rdev()))
    } else {
        meta.is_file().then(|| StoreId::File {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// An opened backing store. Its descriptor (if any) is shared by every reactor: I/O always names
/// an offset, so there is no shared file position to contend on.
#[derive(Debug)]
pub struct Store {
    kind: StoreKind,
    file: Option<File>,
    /// Changed only by [`Store::resize`] (the control thread); the data path never reads it.
    size: AtomicU64,
    direct: bool,
    label: String,
    geometry: Geometry,
    /// The image of an `rbd` store, shared by every reactor.
    #[cfg(feature = "rbd")]
    rbd: Option<std::sync::Arc<crate::ceph::Image>>,
    /// The namespace of an NVMe store and how the reactor reaches it (worked out once here,
    /// not per I/O).
    nvme: Option<(crate::nvme::Namespace, NvmeTarget)>,
}

/// What the reactor needs to send an NVMe store's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NvmeTarget {
    /// The generic character device.
    pub fd: RawFd,
    pub nsid: u32,
    /// log2 of the namespace's block size.
    pub block_shift: u8,
    /// The most bytes one command may move.
    pub max_transfer: u32,
}

impl Store {
    /// Opens the store of `spec`; a block device another program holds is refused at once.
    pub fn open(spec: &StoreSpec, read_only: bool) -> Result<Store, StoreError> {
        Self::open_waiting(spec, read_only, Duration::ZERO)
    }

    /// [`Store::open`], waiting up to `busy_wait` for a block device that is held (the daemon
    /// starting waits [`crate::retry::DEVICE_WINDOW`] for a previous process's ring to let its
    /// devices go; a running daemon never waits, as the control thread opens its live LUNs).
    pub fn open_waiting(
        spec: &StoreSpec,
        read_only: bool,
        busy_wait: Duration,
    ) -> Result<Store, StoreError> {
        match spec {
            StoreSpec::Null { size } => Ok(Store {
                kind: StoreKind::Null,
                file: None,
                size: AtomicU64::new(*size),
                direct: false,
                label: format!("null:{size}"),
                geometry: Geometry::default(),
                #[cfg(feature = "rbd")]
                rbd: None,
                nvme: None,
            }),
            StoreSpec::Ram { size } => open_ram(*size),
            StoreSpec::Path(path) => open_path(path, read_only, busy_wait),
            StoreSpec::Rbd(spec) => open_rbd(spec, read_only),
        }
    }

    /// The RBD image of an `rbd` store.
    #[cfg(feature = "rbd")]
    pub fn rbd_image(&self) -> Option<&std::sync::Arc<crate::ceph::Image>> {
        self.rbd.as_ref()
    }

    /// The logical block size of a LUN on this store: `configured`, or the store's own when
    /// `None`. Refused when direct I/O on the store needs larger blocks (every unaligned I/O
    /// would fail with EINVAL) or when the store is smaller than one block.
    pub fn block_size(&self, configured: Option<u32>) -> Result<u32, StoreError> {
        let path = || PathBuf::from(&self.label);
        let logical = self.geometry.logical_block;
        let block_size =
            match configured {
                Some(b) if b < logical => {
                    return Err(StoreError::BlockSizeTooSmall {
                        path: path(),
                        block_size: b,
                        needed: logical,
                    })
                }
                Some(b) => b,
                None => self.geometry.default_block_size().ok_or_else(|| {
                    StoreError::BlocksTooLarge {
                        path: path(),
                        logical,
                    }
                })?,
            };
        if self.size() < u64::from(block_size) {
            return Err(StoreError::TooSmall {
                path: path(),
                size: self.size(),
                block_size,
            });
        }
        Ok(block_size)
    }

    /// Block sizes, limits and traits read from the kernel when the store was opened.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The device number (`st_rdev`) of a block-device store, or of an NVMe store's block
    /// device; `None` for every other kind.
    pub fn device_number(&self) -> Option<u64> {
        match (self.kind, &self.file) {
            (StoreKind::BlockDevice, Some(f)) => f.metadata().ok().map(|m| m.rdev()),
            // An NVMe namespace's block device sits on the same controller (NUMA placement).
            (StoreKind::Nvme, _) => {
                let block = self.nvme.as_ref()?.0.block_device.as_ref()?;
                block.metadata().ok().map(|m| m.rdev())
            }
            _ => None,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Changes the size (`ringtgt ctl lun resize`): a file or RAM store is extended to `size`
    /// (never shrunk: that would cut off data an initiator wrote), a null store takes it as
    /// is; without `size`, a file or block device's own size is read again (it was grown
    /// outside the daemon). Returns the new size.
    pub fn resize(&self, size: Option<u64>) -> std::io::Result<u64> {
        let now = self.size();
        let new = match (self.kind, size, self.file.as_ref()) {
            (StoreKind::Null, Some(s), _) => s,
            (StoreKind::Null, None, _) => now,
            (StoreKind::Rbd, Some(_), _) => return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an RBD image's size is the cluster's: resize it with `rbd resize` (the LUN follows by itself)",
            )),
            (StoreKind::Rbd, None, _) => self.rbd_size()?,
            (StoreKind::Nvme, Some(_), _) => return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an NVMe namespace's size is its own: resize it, then resize the LUN without a size",
            )),
            (StoreKind::Nvme, None, _) => match &self.nvme {
                Some((ns, _)) => ns
                    .read_size(Path::new(&self.label))
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
                None => now,
            },
            (_, Some(s), _) if s < now => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "cannot shrink a {} store from {now} to {s} bytes",
                        self.kind_name()
                    ),
                ))
            }
            (StoreKind::BlockDevice, Some(_), _) => return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a block device's size is its own: resize it, then resize the LUN without a size",
            )),
            (StoreKind::File | StoreKind::Ram, Some(s), Some(f)) => {
                f.set_len(s)?;
                s
            }
            (_, _, Some(mut f)) => f.seek(SeekFrom::End(0))?,
            (_, _, None) => now,
        };
        self.size.store(new, Ordering::Relaxed);
        Ok(new)
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            StoreKind::File => "file",
            StoreKind::BlockDevice => "block device",
            StoreKind::Ram => "ram",
            StoreKind::Null => "null",
            StoreKind::Rbd => "rbd",
            StoreKind::Nvme => "nvme",
        }
    }

    /// An RBD image's size, read from the cluster again.
    #[cfg(feature = "rbd")]
    fn rbd_size(&self) -> std::io::Result<u64> {
        match &self.rbd {
            Some(image) => image
                .stat_size()
                .map_err(|e| std::io::Error::other(e.to_string())),
            None => Ok(self.size()),
        }
    }

    #[cfg(not(feature = "rbd"))]
    fn rbd_size(&self) -> std::io::Result<u64> {
        Ok(self.size())
    }

    /// Whether the descriptor bypasses the page cache (writes are then only as durable as the
    /// device's cache: FUA and SYNCHRONIZE CACHE still flush it).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes what the page cache and the device's volatile cache hold for this file or device,
    /// or what librbd acknowledged for an RBD image, to stable storage (what SYNCHRONIZE CACHE
    /// does); RAM and null stores keep nothing to lose.
    pub fn flush(&self) -> std::io::Result<()> {
        #[cfg(feature = "rbd")]
        if let Some(image) = &self.rbd {
            return image
                .flush_sync()
                .map_err(|e| std::io::Error::other(e.to_string()));
        }
        if let Some((ns, _)) = &self.nvme {
            return ns.flush();
        }
        match (self.kind, &self.file) {
            (StoreKind::File | StoreKind::BlockDevice, Some(f)) => f.sync_data(),
            _ => Ok(()),
        }
    }

    /// How the reactor reaches an NVMe store; `None` for every other kind.
    pub fn nvme_target(&self) -> Option<NvmeTarget> {
        self.nvme.as_ref().map(|(_, t)| *t)
    }

    /// The descriptor the reactor does reads and writes on; `None` for the null, rbd and NVMe
    /// stores.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.file.as_ref().map(|f| f.as_raw_fd())
    }

    pub fn label(&self) -> &str {
        &self.label
    }
}

fn open_ram(size: u64) -> Result<Store, StoreError> {
    let ram_err = |source| StoreError::Ram { size, source };
    // tmpfs keeps the pages in memory; O_TMPFILE makes the file anonymous so nothing is left
    // behind when the daemon exits.
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(&dir)
        .map_err(ram_err)?;
    check_ram_room(size, &file, &dir)?;
    file.set_len(size).map_err(ram_err)?;
    Ok(Store {
        kind: StoreKind::Ram,
        file: Some(file),
        size: AtomicU64::new(size),
        direct: false,
        label: format!("ram:{size}"),
        geometry: Geometry::default(),
        #[cfg(feature = "rbd")]
        rbd: None,
        nvme: None,
    })
}

/// A RAM store is sparse, but it can never hold more than the filesystem it lives in (tmpfs
/// caps itself, by default at half the memory) or than memory and swap together: writes past
/// that fail. Such a size is refused rather than failing an initiator's writes later.
fn check_ram_room(size: u64, file: &File, dir: &Path) -> Result<(), StoreError> {
    let mut limits = Vec::new();
    if let Ok(vfs) = rustix::fs::fstatvfs(file) {
        let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        limits.push((free, format!("{} (free space)", dir.display())));
    }
    if let Some(total) = memory_and_swap() {
        limits.push((total, "this machine (memory and swap)".to_string()));
    }
    match limits.into_iter().min_by_key(|(room, _)| *room) {
        Some((room, where_)) if size > room => Err(StoreError::RamTooLarge { size, room, where_ }),
        _ => Ok(()),
    }
}

/// MemTotal + SwapTotal from /proc/meminfo, in bytes.
fn memory_and_swap() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = info.lines().find_map(|l| l.strip_prefix(name))?;
        let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some(field("MemTotal:")? + field("SwapTotal:").unwrap_or(0))
}

fn open_path(path: &Path, read_only: bool, busy_wait: Duration) -> Result<Store, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if crate::nvme::is_generic_device(&meta) {
        return open_nvme(path, read_only, busy_wait);
    }
    let kind = if meta.file_type().is_block_device() {
        StoreKind::BlockDevice
    } else if meta.is_file() {
        StoreKind::File
    } else {
        return Err(StoreError::NotABlockStore {
            path: path.to_path_buf(),
        });
    };
    let exclusive = kind == StoreKind::BlockDevice;
    // A daemon that has just exited may still hold the device until its I/O has drained.
    let opened = crate::retry::while_errno(libc::EBUSY, busy_wait, || {
        open_file(path, read_only, true, exclusive)
    });
    let (mut file, direct) = match opened {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(path = %path.display(), "filesystem refuses O_DIRECT; using buffered I/O");
            let f = open_file(path, read_only, false, exclusive).map_err(open_err)?;
            (f, false)
        }
        Err(e) if exclusive && e.raw_os_error() == Some(libc::EBUSY) => {
            return Err(open_err(std::io::Error::other(
                "device is in use (mounted, or opened exclusively by another program)",
            )))
        }
        Err(e) => return Err(open_err(e)),
    };
    // lseek(SEEK_END) gives the size of block devices as well as files.
    let size = file.seek(SeekFrom::End(0)).map_err(open_err)?;
    let geometry = match kind {
        StoreKind::BlockDevice => Geometry::of_block_device(&file, meta.rdev()),
        _ => Geometry::of_file(&file, &meta, direct),
    };
    Ok(Store {
        kind,
        file: Some(file),
        size: AtomicU64::new(size),
        direct,
        label: path.display().to_string(),
        geometry,
        #[cfg(feature = "rbd")]
        rbd: None,
        nvme: None,
    })
}

/// An NVMe namespace through its generic device: identified with admin commands, its I/O sent
/// by the reactor as passthrough commands. Deallocation is Write Zeroes with Deallocate, so a
/// deallocated range reads zeros whatever the controller does with it.
fn open_nvme(path: &Path, read_only: bool, busy_wait: Duration) -> Result<Store, StoreError> {
    crate::nvme::check_kernel_support().map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let ns = crate::nvme::Namespace::open(path, read_only, busy_wait)?;
    let block = 1u32
        .checked_shl(u32::from(ns.format.block_shift))
        .unwrap_or(0);
    if !(MIN_BLOCK..=MAX_BLOCK).contains(&block) {
        return Err(StoreError::BlocksTooLarge {
            path: path.to_path_buf(),
            logical: block,
        });
    }
    let geometry = Geometry {
        logical_block: block,
        physical_block: block,
        // The kernel maps user pages for passthrough and bounces what the controller cannot
        // take (NVMe needs dword-aligned data pointers).
        memory_align: 4,
        optimal_io: 0,
        max_io: u32::try_from(ns.max_transfer()).unwrap_or(u32::MAX),
        thin: ns.controller.write_zeroes,
        discard_granularity: 0,
        rotational: Some(false),
        volatile_cache: Some(ns.controller.volatile_cache),
    };
    tracing::info!(
        path = %path.display(),
        nsid = ns.nsid,
        block_size = block,
        size = ns.size(),
        max_transfer = ns.max_transfer(),
        write_zeroes = ns.controller.write_zeroes,
        volatile_cache = ns.controller.volatile_cache,
        "NVMe passthrough: commands go to the namespace through io_uring"
    );
    let target = NvmeTarget {
        fd: ns.file.as_raw_fd(),
        nsid: ns.nsid,
        block_shift: ns.format.block_shift,
        // Whole blocks, and at least one: a command moves blocks.
        max_transfer: (u32::try_from(ns.max_transfer()).unwrap_or(u32::MAX) & !(block - 1))
            .max(block),
    };
    Ok(Store {
        kind: StoreKind::Nvme,
        file: None,
        size: AtomicU64::new(ns.size()),
        direct: true,
        label: path.display().to_string(),
        geometry,
        #[cfg(feature = "rbd")]
        rbd: None,
        nvme: Some((ns, target)),
    })
}

/// Connects to the cluster (one connection per distinct client, shared) and opens the image.
/// Any block size from 512 bytes works (librbd takes byte ranges); reads of deallocated
/// ranges return zeros, and the write cache is librbd's (`rbd_cache`, flushed by
/// `rbd_aio_flush`), so the default geometry describes it. A gateway's images have no cache,
/// and their units report none.
#[cfg(feature = "rbd")]
fn open_rbd(spec: &RbdSpec, read_only: bool) -> Result<Store, StoreError> {
    let client = crate::ceph::Client {
        conf: spec.conf.clone(),
        user: spec.user.clone(),
        keyring: spec.keyring.clone(),
        cache: spec.cache,
    };
    let image = crate::ceph::Image::open(&client, &spec.pool, &spec.image, read_only)
        .map_err(StoreError::Rbd)?;
    let geometry = Geometry {
        volatile_cache: (!spec.cache).then_some(false),
        ..Geometry::default()
    };
    Ok(Store {
        kind: StoreKind::Rbd,
        file: None,
        size: AtomicU64::new(image.size()),
        direct: false,
        label: spec.label(),
        geometry,
        rbd: Some(std::sync::Arc::new(image)),
        nvme: None,
    })
}

#[cfg(not(feature = "rbd"))]
fn open_rbd(spec: &RbdSpec, _read_only: bool) -> Result<Store, StoreError> {
    Err(StoreError::RbdUnsupported {
        label: spec.label(),
    })
}

/// Opens a store's path; `exclusive` (block devices) fails with EBUSY while the device is
/// mounted or held open exclusively elsewhere.
fn open_file(path: &Path, read_only: bool, direct: bool, exclusive: bool) -> std::io::Result<File> {
    let mut flags = libc::O_CLOEXEC;
    if direct {
        flags |= libc::O_DIRECT;
    }
    if exclusive {
        flags |= libc::O_EXCL;
    }
    OpenOptions::new()
        .read(true)
        .write(!read_only)
        .custom_flags(flags)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_store_has_no_descriptor() {
        let s = Store::open(&StoreSpec::Null { size: 1 << 30 }, false).unwrap();
        assert_eq!(s.kind(), StoreKind::Null);
        assert_eq!(s.size(), 1 << 30);
        assert!(s.raw_fd().is_none());
    }

    #[test]
    fn ram_store_is_an_anonymous_sized_file() {
        let s = Store::open(&StoreSpec::Ram { size: 8 << 20 }, false).unwrap();
        assert_eq!(s.kind(), StoreKind::Ram);
        assert_eq!(s.size(), 8 << 20);
        assert!(s.raw_fd().is_some());
    }

    #[test]
    fn file_store_reports_its_size() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        let s = Store::open(&StoreSpec::Path(f.path().into()), false).unwrap();
        assert_eq!(s.kind(), StoreKind::File);
        assert_eq!(s.size(), 1 << 20);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Store::open(&StoreSpec::Path("/nonexistent/x.img".into()), false).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.img"), "{err}");
    }

    #[test]
    fn store_smaller_than_a_block_is_refused() {
        let s = Store::open(&StoreSpec::Null { size: 100 }, false).unwrap();
        let err = s.block_size(None).unwrap_err();
        assert!(matches!(err, StoreError::TooSmall { .. }));
    }

    #[cfg(not(feature = "rbd"))]
    #[test]
    fn rbd_store_without_the_feature_says_how_to_get_it() {
        let spec = StoreSpec::Rbd(RbdSpec {
            pool: "rbd".into(),
            image: "disk".into(),
            conf: None,
            user: "admin".into(),
            keyring: None,
            cache: true,
        });
        let err = Store::open(&spec, false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("rbd:rbd/disk: "), "{msg}");
        assert!(msg.contains("--features rbd"), "{msg}");
    }

    #[test]
    fn files_grow_and_are_read_again_but_never_shrink() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        let s = Store::open(&StoreSpec::Path(f.path().into()), false).unwrap();
        assert_eq!(s.resize(Some(2 << 20)).unwrap(), 2 << 20);
        assert_eq!(f.as_file().metadata().unwrap().len(), 2 << 20);
        assert!(s.resize(Some(1 << 20)).is_err());
        f.as_file().set_len(3 << 20).unwrap();
        assert_eq!(s.resize(None).unwrap(), 3 << 20);
        assert_eq!(s.size(), 3 << 20);
        let null = Store::open(&StoreSpec::Null { size: 1 << 20 }, false).unwrap();
        assert_eq!(null.resize(Some(4096)).unwrap(), 4096);
    }

    #[test]
    fn directory_is_not_a_store() {
        let d = tempfile::tempdir().unwrap();
        let err = Store::open(&StoreSpec::Path(d.path().into()), false).unwrap_err();
        assert!(matches!(err, StoreError::NotABlockStore { .. }));
    }

    #[test]
    fn block_size_defaults_to_the_stores_and_may_not_be_smaller() {
        let mut s = Store::open(&StoreSpec::Null { size: 1 << 20 }, false).unwrap();
        assert_eq!(s.block_size(None).unwrap(), 512);
        assert_eq!(s.block_size(Some(4096)).unwrap(), 4096);
        s.geometry.logical_block = 4096;
        assert_eq!(s.block_size(None).unwrap(), 4096);
        let err = s.block_size(Some(512)).unwrap_err().to_string();
        assert_eq!(
            err,
            "null:1048576: block_size 512 is smaller than the 4096-byte blocks it accepts for \
             direct I/O; set block_size = 4096 or leave it out to use the store's own"
        );
    }

    #[test]
    fn ram_store_larger_than_memory_is_refused() {
        let err = Store::open(&StoreSpec::Ram { size: 1 << 60 }, false).unwrap_err();
        assert!(matches!(err, StoreError::RamTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("must fit in memory"), "{err}");
    }

    #[test]
    fn a_symlink_has_the_identity_of_its_file() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("disk.img");
        std::fs::write(&file, [0u8; 4096]).unwrap();
        let link = d.path().join("link.img");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let id = |p: &Path| identify(&StoreSpec::Path(p.into()));
        assert!(id(&file).is_some());
        assert_eq!(id(&file), id(&link));
        assert_eq!(id(&d.path().join("missing")), None);
        assert_eq!(identify(&StoreSpec::Ram { size: 4096 }), None);
    }
}
