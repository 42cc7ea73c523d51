//! Backing stores: where a logical unit's blocks live. This module opens and sizes them; the
//! reactor moves the bytes (io_uring reads/writes at offsets on the descriptor given here).
//!
//! - file and block device: opened with `O_DIRECT` (buffered, with a warning, only where the
//!   filesystem refuses `O_DIRECT`);
//! - `ram`: an anonymous tmpfs file (`O_TMPFILE`), so all reactors share one copy through the kernel;
//! - `null`: no storage at all; reads return zeros, writes are discarded;
//! - `rbd`: a Ceph RBD image (cargo feature `rbd`), opened through `crate::ceph`; it has no
//!   descriptor, and the reactor drives it with librbd's asynchronous calls instead.
#![forbid(unsafe_code)]

pub mod buf;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use buf::{Budget, IoBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    File,
    BlockDevice,
    Ram,
    Null,
    Rbd,
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
    #[error("{path}: not a regular file or block device")]
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
        "{label}: this ringtgt was built without Ceph RBD support (build it with `--features rbd`)"
    )]
    RbdUnsupported { label: String },
    #[cfg(feature = "rbd")]
    #[error("{0}")]
    Rbd(crate::ceph::CephError),
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

/// An opened backing store. Its descriptor (if any) is shared by every reactor: I/O always names
/// an offset, so there is no shared file position to contend on.
#[derive(Debug)]
pub struct Store {
    kind: StoreKind,
    file: Option<File>,
    size: u64,
    direct: bool,
    label: String,
    /// The image of an `rbd` store, shared by every reactor.
    #[cfg(feature = "rbd")]
    rbd: Option<std::sync::Arc<crate::ceph::Image>>,
}

impl Store {
    pub fn open(spec: &StoreSpec, read_only: bool, block_size: u32) -> Result<Store, StoreError> {
        let store = match spec {
            StoreSpec::Null { size } => {
                Store::without_file(StoreKind::Null, *size, format!("null:{size}"))
            }
            StoreSpec::Ram { size } => open_ram(*size)?,
            StoreSpec::Path(path) => open_path(path, read_only)?,
            StoreSpec::Rbd(spec) => open_rbd(spec, read_only)?,
        };
        if store.size < u64::from(block_size) {
            return Err(StoreError::TooSmall {
                path: store.label.clone().into(),
                size: store.size,
                block_size,
            });
        }
        Ok(store)
    }

    fn without_file(kind: StoreKind, size: u64, label: String) -> Store {
        Store {
            kind,
            file: None,
            size,
            direct: false,
            label,
            #[cfg(feature = "rbd")]
            rbd: None,
        }
    }

    /// The RBD image of an `rbd` store.
    #[cfg(feature = "rbd")]
    pub fn rbd_image(&self) -> Option<&std::sync::Arc<crate::ceph::Image>> {
        self.rbd.as_ref()
    }

    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the descriptor bypasses the page cache (writes are then only as durable as the
    /// device's cache: FUA and SYNCHRONIZE CACHE still flush it).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The descriptor the reactor does I/O on; `None` for the null and rbd stores.
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
    file.set_len(size).map_err(ram_err)?;
    let mut store = Store::without_file(StoreKind::Ram, size, format!("ram:{size}"));
    store.file = Some(file);
    Ok(store)
}

/// Connects to the cluster (one connection per distinct client, shared) and opens the image.
#[cfg(feature = "rbd")]
fn open_rbd(spec: &RbdSpec, read_only: bool) -> Result<Store, StoreError> {
    let client = crate::ceph::Client {
        conf: spec.conf.clone(),
        user: spec.user.clone(),
        keyring: spec.keyring.clone(),
    };
    let image = crate::ceph::Image::open(&client, &spec.pool, &spec.image, read_only)
        .map_err(StoreError::Rbd)?;
    let mut store = Store::without_file(StoreKind::Rbd, image.size(), spec.label());
    store.rbd = Some(std::sync::Arc::new(image));
    Ok(store)
}

#[cfg(not(feature = "rbd"))]
fn open_rbd(spec: &RbdSpec, _read_only: bool) -> Result<Store, StoreError> {
    Err(StoreError::RbdUnsupported {
        label: spec.label(),
    })
}

fn open_path(path: &Path, read_only: bool) -> Result<Store, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    let kind = if meta.file_type().is_block_device() {
        StoreKind::BlockDevice
    } else if meta.is_file() {
        StoreKind::File
    } else {
        return Err(StoreError::NotABlockStore {
            path: path.to_path_buf(),
        });
    };
    let (mut file, direct) = match open_file(path, read_only, true) {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(path = %path.display(), "filesystem refuses O_DIRECT; using buffered I/O");
            (open_file(path, read_only, false).map_err(open_err)?, false)
        }
        Err(e) => return Err(open_err(e)),
    };
    // lseek(SEEK_END) gives the size of block devices as well as files.
    let size = file.seek(SeekFrom::End(0)).map_err(open_err)?;
    let mut store = Store::without_file(kind, size, path.display().to_string());
    store.file = Some(file);
    store.direct = direct;
    Ok(store)
}

fn open_file(path: &Path, read_only: bool, direct: bool) -> std::io::Result<File> {
    let mut flags = libc::O_CLOEXEC;
    if direct {
        flags |= libc::O_DIRECT;
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
        let s = Store::open(&StoreSpec::Null { size: 1 << 30 }, false, 512).unwrap();
        assert_eq!(s.kind(), StoreKind::Null);
        assert_eq!(s.size(), 1 << 30);
        assert!(s.raw_fd().is_none());
    }

    #[test]
    fn ram_store_is_an_anonymous_sized_file() {
        let s = Store::open(&StoreSpec::Ram { size: 8 << 20 }, false, 4096).unwrap();
        assert_eq!(s.kind(), StoreKind::Ram);
        assert_eq!(s.size(), 8 << 20);
        assert!(s.raw_fd().is_some());
    }

    #[test]
    fn file_store_reports_its_size() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        let s = Store::open(&StoreSpec::Path(f.path().into()), false, 512).unwrap();
        assert_eq!(s.kind(), StoreKind::File);
        assert_eq!(s.size(), 1 << 20);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err =
            Store::open(&StoreSpec::Path("/nonexistent/x.img".into()), false, 512).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.img"), "{err}");
    }

    #[test]
    fn store_smaller_than_a_block_is_refused() {
        let err = Store::open(&StoreSpec::Null { size: 100 }, false, 512).unwrap_err();
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
        });
        let err = Store::open(&spec, false, 512).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("rbd:rbd/disk: "), "{msg}");
        assert!(msg.contains("--features rbd"), "{msg}");
    }

    #[test]
    fn directory_is_not_a_store() {
        let d = tempfile::tempdir().unwrap();
        let err = Store::open(&StoreSpec::Path(d.path().into()), false, 512).unwrap_err();
        assert!(matches!(err, StoreError::NotABlockStore { .. }));
    }
}
