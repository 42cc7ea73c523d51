//! What a backing store accepts and prefers, read from the kernel when it is opened: block sizes
//! (`BLKSSZGET`, `BLKPBSZGET`), the `O_DIRECT` alignment of files (`statx` with
//! `STATX_DIOALIGN`), and the request queue's limits and traits in sysfs
//! (`/sys/dev/block/MAJ:MIN/queue/`).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The smallest logical block a LUN may have.
pub const MIN_BLOCK: u32 = 512;
/// The largest logical block a LUN may have (the configuration takes 512 or 4096).
pub const MAX_BLOCK: u32 = 4096;
/// The physical block assumed where the kernel does not tell one: the page size, which is what
/// the page cache, tmpfs and most filesystems work in.
const DEFAULT_PHYSICAL_BLOCK: u32 = 4096;

/// A store's geometry. Sizes are in bytes; 0 means "not known" where a field allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// The smallest block the store takes I/O in: a block device's logical block size, the
    /// `O_DIRECT` offset alignment of a file, else 512.
    pub logical_block: u32,
    /// The block the medium writes in (LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT).
    pub physical_block: u32,
    /// The address alignment `O_DIRECT` needs of I/O buffers (`STATX_DIOALIGN`'s
    /// `dio_mem_align`; 4096, which every pool buffer has, when the kernel does not say); 1 when
    /// the store takes any address (buffered files, RAM, null, RBD).
    pub memory_align: u32,
    /// The device's preferred request size (`queue/optimal_io_size`); 0 = none given.
    pub optimal_io: u32,
    /// The largest request the device takes unsplit (`queue/max_sectors_kb`); 0 = unknown.
    pub max_io: u32,
    /// Ranges can be deallocated so that they read back as zeros (the reactor punches holes:
    /// files deallocate, block devices need discard and write-zeroes support).
    pub thin: bool,
    /// The device's discard granularity (`queue/discard_granularity`); 0 = unknown.
    pub discard_granularity: u32,
    /// The medium spins (`queue/rotational`); `None` when the kernel does not say.
    pub rotational: Option<bool>,
    /// The device has a volatile write cache (`queue/write_cache` is "write back"); `None`
    /// when the kernel does not say (files, RAM).
    pub volatile_cache: Option<bool>,
}

impl Default for Geometry {
    /// RAM, null and buffered files: any 512-byte multiple works, pages are 4 KiB, holes can be
    /// punched, nothing spins.
    fn default() -> Self {
        Geometry {
            logical_block: MIN_BLOCK,
            physical_block: DEFAULT_PHYSICAL_BLOCK,
            memory_align: 1,
            optimal_io: 0,
            max_io: 0,
            thin: true,
            discard_granularity: 0,
            rotational: None,
            volatile_cache: None,
        }
    }
}

impl Geometry {
    /// The logical block size a LUN gets when its configuration names none: the store's own,
    /// rounded up to one the configuration could name (512 or 4096); `None` when the store
    /// needs blocks larger than 4096.
    pub fn default_block_size(&self) -> Option<u32> {
        match self.logical_block {
            0..=MIN_BLOCK => Some(MIN_BLOCK),
            b if b <= MAX_BLOCK => Some(MAX_BLOCK),
            _ => None,
        }
    }

    /// A block device: sizes from the ioctls, the rest from its queue in sysfs.
    pub(super) fn of_block_device(file: &File, rdev: u64) -> Geometry {
        let logical = rustix::fs::ioctl_blksszget(file).unwrap_or(MIN_BLOCK);
        let physical = rustix::fs::ioctl_blkpbszget(file).unwrap_or(logical);
        let queue = Queue::of(rdev);
        let discard = queue.number("discard_max_bytes").unwrap_or(0) > 0;
        let zeroes = queue.number("write_zeroes_max_bytes").unwrap_or(0) > 0;
        Geometry {
            logical_block: logical,
            physical_block: physical.max(logical),
            memory_align: dio_align(file).map_or(DEFAULT_MEMORY_ALIGN, |a| a.memory),
            optimal_io: queue.bytes("optimal_io_size", 1),
            max_io: queue.bytes("max_sectors_kb", 1024),
            // FALLOC_FL_PUNCH_HOLE on a block device is a write-zeroes request that may not
            // fall back to writing zeros; without discard it would not deallocate anything.
            thin: discard && zeroes,
            discard_granularity: queue.bytes("discard_granularity", 1),
            rotational: queue.flag("rotational"),
            volatile_cache: queue.text("write_cache").map(|s| s == "write back"),
        }
    }

    /// A regular file: its `O_DIRECT` alignment, and the traits of the device it lives on.
    pub(super) fn of_file(file: &File, meta: &std::fs::Metadata, direct: bool) -> Geometry {
        let dio = direct.then(|| dio_align(file));
        let logical = match dio {
            Some(a) => a.map_or(MIN_BLOCK, |a| a.offset).max(MIN_BLOCK),
            None => MIN_BLOCK,
        };
        let queue = Queue::of(meta.dev());
        Geometry {
            logical_block: logical,
            physical_block: DEFAULT_PHYSICAL_BLOCK.max(logical),
            memory_align: dio.map_or(1, |a| a.map_or(DEFAULT_MEMORY_ALIGN, |a| a.memory)),
            optimal_io: queue.bytes("optimal_io_size", 1),
            max_io: queue.bytes("max_sectors_kb", 1024),
            rotational: queue.flag("rotational"),
            ..Geometry::default()
        }
    }
}

/// The offset alignment `O_DIRECT` I/O on this file needs (Linux 6.1 `STATX_DIOALIGN`).
/// What `O_DIRECT` I/O on a file (Linux 6.1) or block device (6.11) must be aligned to.
fn dio_align(file: &File) -> Option<DioAlign> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let st = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
    let known = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN);
    (known && st.stx_dio_offset_align > 0 && st.stx_dio_mem_align > 0).then_some(DioAlign {
        offset: st.stx_dio_offset_align,
        memory: st.stx_dio_mem_align,
    })
}

#[derive(Debug, Clone, Copy)]
struct DioAlign {
    /// Of file offsets and lengths.
    offset: u32,
    /// Of buffer addresses.
    memory: u32,
}

/// Buffer alignment assumed for direct I/O when the kernel does not say: a page, which every
/// I/O buffer but a view of received bytes has.
const DEFAULT_MEMORY_ALIGN: u32 = 4096;

/// A block device's request queue in sysfs (a partition's is its disk's).
struct Queue(Option<PathBuf>);

impl Queue {
    fn of(dev: u64) -> Queue {
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        let base = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
        let dir = [base.join("queue"), base.join("../queue")]
            .into_iter()
            .find(|d| d.is_dir());
        Queue(dir)
    }

    fn text(&self, name: &str) -> Option<String> {
        let path: &Path = self.0.as_deref()?;
        let s = std::fs::read_to_string(path.join(name)).ok()?;
        Some(s.trim().to_string())
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.text(name)?.parse().ok()
    }

    /// A size attribute in units of `unit` bytes, as bytes (0 when absent or out of range).
    fn bytes(&self, name: &str, unit: u64) -> u32 {
        self.number(name)
            .and_then(|n| n.checked_mul(unit))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    }

    fn flag(&self, name: &str) -> Option<bool> {
        match self.number(name)? {
            0 => Some(false),
            _ => Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_block_size_rounds_up_to_512_or_4096() {
        let with = |logical_block| Geometry {
            logical_block,
            ..Geometry::default()
        };
        assert_eq!(with(0).default_block_size(), Some(512));
        assert_eq!(with(512).default_block_size(), Some(512));
        assert_eq!(with(1024).default_block_size(), Some(4096));
        assert_eq!(with(4096).default_block_size(), Some(4096));
        assert_eq!(with(8192).default_block_size(), None);
    }

    #[test]
    fn a_file_needs_at_least_512_byte_blocks() {
        let f = tempfile::tempfile().unwrap();
        let meta = f.metadata().unwrap();
        let g = Geometry::of_file(&f, &meta, false);
        assert_eq!(g.logical_block, 512);
        assert!(g.thin);
        assert!(g.physical_block >= g.logical_block);
    }

    #[test]
    fn direct_io_says_how_its_buffers_must_be_aligned() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let buffered = std::fs::File::open(&path).unwrap();
        assert_eq!(Geometry::of_file(&buffered, &meta, false).memory_align, 1);
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("the temporary directory's filesystem takes O_DIRECT");
        let align = Geometry::of_file(&direct, &meta, true).memory_align;
        assert!(align.is_power_of_two() && align <= 4096, "{align}");
    }
}
