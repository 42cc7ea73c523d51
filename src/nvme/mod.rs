//! NVMe namespaces reached through their generic character devices (`/dev/ngXnY`), the kernel's
//! passthrough interface (Linux 5.19 for io_uring, 6.1 for its full set of I/O commands). The
//! device is found and described here (identify data, limits); the reactor sends the I/O as
//! `IORING_OP_URING_CMD` with the commands [`Command`] builds (`reactor/nvme.rs`).
//!
//! Like `crate::ceph`, this is a boundary to the kernel's own structures: it holds the module's
//! few `unsafe` blocks (the admin and I/O ioctls), each with its reason.
//!
//! Only namespaces of the NVM command set with no per-block metadata are exported: a SCSI
//! logical block has nowhere to carry metadata or protection information.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// `NVME_URING_CMD_IO`: `_IOWR('N', 0x80, struct nvme_uring_cmd)` (include/uapi/linux/nvme_ioctl.h).
pub const URING_CMD_IO: u32 = 0xC048_4E80;
/// `NVME_IOCTL_ID`: `_IO('N', 0x40)`; returns the namespace ID.
const IOCTL_ID: libc::c_ulong = 0x4E40;
/// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)`.
const IOCTL_ADMIN_CMD: libc::c_ulong = 0xC048_4E41;
/// `NVME_IOCTL_IO_CMD`: `_IOWR('N', 0x43, struct nvme_passthru_cmd)`.
const IOCTL_IO_CMD: libc::c_ulong = 0xC048_4E43;

/// Opcodes (NVMe Base Specification 2.0 §5 for admin, NVM Command Set Specification 1.0 §3 for
/// I/O).
mod op {
    pub const FLUSH: u8 = 0x00;
    pub const WRITE: u8 = 0x01;
    pub const READ: u8 = 0x02;
    pub const WRITE_ZEROES: u8 = 0x08;
    pub const IDENTIFY: u8 = 0x06;
}

/// Identify's CNS values (NVMe Base 2.0 Figure 273).
const CNS_NAMESPACE: u32 = 0x00;
const CNS_CONTROLLER: u32 = 0x01;
const IDENTIFY_LEN: usize = 4096;

/// Read/Write CDW12: Force Unit Access (NVM Command Set 1.0 Figure 30).
const CDW12_FUA: u32 = 1 << 30;
/// Write Zeroes CDW12: Deallocate (NVM Command Set 1.0 Figure 47).
const CDW12_DEAC: u32 = 1 << 25;
/// The most blocks one Read, Write or Write Zeroes names (NLB is a 0's based 16-bit field).
pub const MAX_BLOCKS_PER_COMMAND: u32 = 1 << 16;

/// What the kernel waits for a passthrough command before it aborts it (0 = its default).
const TIMEOUT_MS: u32 = 0;

/// One NVMe command as the kernel's passthrough interfaces take it (`struct nvme_uring_cmd`,
/// whose first 72 bytes `struct nvme_passthru_cmd` shares).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Command {
    pub opcode: u8,
    pub nsid: u32,
    pub addr: u64,
    pub data_len: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
}

impl Command {
    /// Read `blocks` blocks from `lba` into the `len` bytes at `addr`.
    pub fn read(nsid: u32, lba: u64, blocks: u32, addr: u64, len: u32) -> Command {
        Command::rw(op::READ, nsid, lba, blocks, addr, len, 0)
    }

    /// Write `blocks` blocks at `lba` from the `len` bytes at `addr`; `fua`: on stable media
    /// before it completes.
    pub fn write(nsid: u32, lba: u64, blocks: u32, addr: u64, len: u32, fua: bool) -> Command {
        let flags = if fua { CDW12_FUA } else { 0 };
        Command::rw(op::WRITE, nsid, lba, blocks, addr, len, flags)
    }

    /// Zero `blocks` blocks at `lba`, deallocating them (they then read as zeros, whether or
    /// not the controller could deallocate them).
    pub fn write_zeroes_deallocate(nsid: u32, lba: u64, blocks: u32) -> Command {
        Command::rw(op::WRITE_ZEROES, nsid, lba, blocks, 0, 0, CDW12_DEAC)
    }

    /// Make everything the controller's volatile write cache holds durable.
    pub fn flush(nsid: u32) -> Command {
        Command {
            opcode: op::FLUSH,
            nsid,
            ..Command::default()
        }
    }

    fn rw(opcode: u8, nsid: u32, lba: u64, blocks: u32, addr: u64, len: u32, flags: u32) -> Self {
        debug_assert!((1..=MAX_BLOCKS_PER_COMMAND).contains(&blocks));
        Command {
            opcode,
            nsid,
            addr,
            data_len: len,
            cdw10: lba as u32,
            cdw11: (lba >> 32) as u32,
            cdw12: (blocks - 1) | flags,
        }
    }

    fn identify(nsid: u32, cns: u32, addr: u64) -> Command {
        Command {
            opcode: op::IDENTIFY,
            nsid,
            addr,
            data_len: IDENTIFY_LEN as u32,
            cdw10: cns,
            ..Command::default()
        }
    }

    /// The command in `struct nvme_uring_cmd`'s layout, in the 80 bytes an `SQE128` carries.
    pub fn to_uring_cmd(&self) -> [u8; 80] {
        let mut b = [0u8; 80];
        b[0] = self.opcode;
        b[4..8].copy_from_slice(&self.nsid.to_ne_bytes());
        b[24..32].copy_from_slice(&self.addr.to_ne_bytes());
        b[36..40].copy_from_slice(&self.data_len.to_ne_bytes());
        b[40..44].copy_from_slice(&self.cdw10.to_ne_bytes());
        b[44..48].copy_from_slice(&self.cdw11.to_ne_bytes());
        b[48..52].copy_from_slice(&self.cdw12.to_ne_bytes());
        b[64..68].copy_from_slice(&TIMEOUT_MS.to_ne_bytes());
        b
    }
}

/// What a passthrough command's completion means, as an errno for the SCSI layer: the kernel's
/// own failures come negative; positive values are the NVMe status field (status code type in
/// bits 10:8, status code in 7:0; More and Do Not Retry above).
pub fn completion_errno(res: i32) -> Result<(), i32> {
    match res {
        0 => Ok(()),
        r if r < 0 => Err(-r),
        status => Err(status_errno(status as u32)),
    }
}

/// An NVMe status as the errno the SCSI layer turns into sense (`scsi::store_error`): a path
/// or a namespace that is not ready may come back (NOT READY, becoming ready); the rest is a
/// medium error.
fn status_errno(status: u32) -> i32 {
    let sct = (status >> 8) & 0x7;
    let sc = status & 0xff;
    match (sct, sc) {
        // Generic: Namespace Not Ready (NVMe Base 2.0 Figure 102).
        (0, 0x82) => libc::ETIMEDOUT,
        // Generic: Capacity Exceeded.
        (0, 0x81) => libc::ENOSPC,
        // Generic: Namespace is Write Protected.
        (0, 0x20) => libc::EROFS,
        // Path Related Status (Figure 107): another path may answer.
        (3, _) => libc::ENOTCONN,
        _ => libc::EIO,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NvmeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: identify failed with NVMe status {status:#x}")]
    Status { path: PathBuf, status: u32 },
    #[error(
        "{path}: its LBA format has {metadata} bytes of metadata per block, which a SCSI logical \
         unit cannot carry; format the namespace without metadata (nvme format --lbaf=N)"
    )]
    Metadata { path: PathBuf, metadata: u16 },
    #[error("{path}: identify data names LBA format {index}, which it does not describe")]
    BadFormat { path: PathBuf, index: u8 },
}

/// A namespace's format and size (Identify Namespace, NVM Command Set 1.0 Figure 97).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceFormat {
    /// Namespace size (NSZE), in logical blocks.
    pub blocks: u64,
    /// log2 of the logical block size (LBADS).
    pub block_shift: u8,
    /// Metadata bytes per block (MS) of the format in use.
    pub metadata: u16,
    /// Deallocated blocks read as zeros (DLFEAT bits 2:0 = 001b).
    pub deallocated_reads_zero: bool,
}

impl NamespaceFormat {
    pub fn parse(data: &[u8]) -> Result<NamespaceFormat, u8> {
        let nsze = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
        let nlbaf = data[25];
        let flbas = data[26];
        // FLBAS bits 3:0, and 6:5 as the upper bits when there are more than 16 formats.
        let index = (flbas & 0x0f) | ((flbas >> 5) & 0x3) << 4;
        if index > nlbaf {
            return Err(index);
        }
        let at = 128 + 4 * usize::from(index);
        let lbaf = u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default());
        Ok(NamespaceFormat {
            blocks: nsze,
            block_shift: ((lbaf >> 16) & 0xff) as u8,
            metadata: (lbaf & 0xffff) as u16,
            deallocated_reads_zero: data[33] & 0x7 == 0x1,
        })
    }
}

/// What the controller supports (Identify Controller, NVMe Base 2.0 Figure 275).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerTraits {
    /// Maximum Data Transfer Size as a power of two of the minimum page size; 0 = no limit.
    pub mdts: u8,
    /// Write Zeroes is supported (ONCS bit 3).
    pub write_zeroes: bool,
    /// A volatile write cache is present (VWC bit 0).
    pub volatile_cache: bool,
}

impl ControllerTraits {
    pub fn parse(data: &[u8]) -> ControllerTraits {
        let oncs = u16::from_le_bytes([data[520], data[521]]);
        ControllerTraits {
            mdts: data[77],
            write_zeroes: oncs & (1 << 3) != 0,
            volatile_cache: data[525] & 1 != 0,
        }
    }

    /// The largest transfer by MDTS, assuming the smallest page a controller may have (4 KiB:
    /// CAP.MPSMIN is a register the passthrough interface does not show, and any larger page
    /// only allows more); `None` when the controller sets no limit.
    pub fn max_transfer(&self) -> Option<u64> {
        (self.mdts != 0).then(|| 4096u64 << self.mdts.min(20))
    }
}

/// Whether `meta` is an NVMe generic character device (`/dev/ngXnY`), by the kernel's class of
/// its device number.
pub fn is_generic_device(meta: &std::fs::Metadata) -> bool {
    if !meta.file_type().is_char_device() {
        return false;
    }
    let (major, minor) = (
        rustix::fs::major(meta.rdev()),
        rustix::fs::minor(meta.rdev()),
    );
    std::fs::read_link(format!("/sys/dev/char/{major}:{minor}/subsystem"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n == "nvme-generic"))
        .unwrap_or(false)
}

/// Whether this kernel can send passthrough commands through io_uring: rings of 128-byte
/// submissions and 32-byte completions (Linux 5.19).
pub fn check_kernel_support() -> std::io::Result<()> {
    use io_uring::{cqueue, squeue, IoUring};
    IoUring::<squeue::Entry128, cqueue::Entry32>::builder()
        .build(2)
        .map(drop)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("this kernel cannot send NVMe passthrough commands (io_uring with 128-byte submissions needs Linux 5.19): {e}"),
            )
        })
}

/// An opened namespace: its generic device, identity and traits.
#[derive(Debug)]
pub struct Namespace {
    pub file: File,
    pub nsid: u32,
    pub format: NamespaceFormat,
    pub controller: ControllerTraits,
    /// The kernel's own transfer limit for the namespace (`kernel_max_transfer`).
    pub kernel_max_transfer: u64,
    /// The namespace's block device (`/dev/nvmeXnY`), held open exclusively while it is
    /// exported so that nobody mounts it meanwhile; `None` if it has none.
    pub block_device: Option<File>,
}

impl Namespace {
    pub fn open(
        path: &Path,
        read_only: bool,
        busy_wait: std::time::Duration,
    ) -> Result<Namespace, NvmeError> {
        let io = |source| NvmeError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(io)?;
        // SAFETY: NVME_IOCTL_ID takes no argument; the descriptor is open for the call.
        let nsid = unsafe { libc::ioctl(file.as_raw_fd(), IOCTL_ID) };
        if nsid <= 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        let nsid = nsid as u32;
        let format = identify_namespace(&file, path, nsid)?;
        if format.metadata != 0 {
            return Err(NvmeError::Metadata {
                path: path.to_path_buf(),
                metadata: format.metadata,
            });
        }
        let mut data = vec![0u8; IDENTIFY_LEN];
        admin(
            &file,
            path,
            Command::identify(0, CNS_CONTROLLER, 0),
            &mut data,
        )?;
        let controller = ControllerTraits::parse(&data);
        let block = sibling_block_device(path);
        let kernel_max_transfer = kernel_max_transfer(block.as_deref());
        let block_device = match block {
            Some(b) => {
                let held = hold_exclusively(&b, busy_wait);
                Some(held.map_err(|e| NvmeError::Io { path: b, source: e })?)
            }
            None => None,
        };
        Ok(Namespace {
            file,
            nsid,
            format,
            controller,
            kernel_max_transfer,
            block_device,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.format.blocks << self.format.block_shift
    }

    /// The namespace's size read again (it may have been resized).
    pub fn read_size(&self, path: &Path) -> Result<u64, NvmeError> {
        let format = identify_namespace(&self.file, path, self.nsid)?;
        Ok(format.blocks << format.block_shift)
    }

    /// The largest transfer one command may carry: the controller's and the kernel's limits,
    /// and NLB's 65,536 blocks.
    pub fn max_transfer(&self) -> u64 {
        let nlb = u64::from(MAX_BLOCKS_PER_COMMAND) << self.format.block_shift;
        let kernel = self.kernel_max_transfer.min(nlb);
        self.controller
            .max_transfer()
            .map_or(kernel, |c| c.min(kernel))
    }

    /// Flushes the controller's volatile write cache (synchronously: the control thread's
    /// flush, not the data path's).
    pub fn flush(&self) -> std::io::Result<()> {
        let mut cmd = passthru(&Command::flush(self.nsid));
        // SAFETY: the command names no buffer (addr 0, data_len 0); the kernel reads and
        // writes only `cmd`, which lives across the call.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), IOCTL_IO_CMD, &mut cmd) };
        match r {
            0 => Ok(()),
            r if r < 0 => Err(std::io::Error::last_os_error()),
            status => Err(std::io::Error::from_raw_os_error(status_errno(
                status as u32,
            ))),
        }
    }
}

/// `struct nvme_passthru_cmd` (72 bytes) for the synchronous ioctls.
#[repr(C)]
#[derive(Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

fn passthru(c: &Command) -> PassthruCmd {
    PassthruCmd {
        opcode: c.opcode,
        nsid: c.nsid,
        addr: c.addr,
        data_len: c.data_len,
        cdw10: c.cdw10,
        cdw11: c.cdw11,
        cdw12: c.cdw12,
        timeout_ms: TIMEOUT_MS,
        ..PassthruCmd::default()
    }
}

/// The namespace's format and size, asked of the controller.
fn identify_namespace(file: &File, path: &Path, nsid: u32) -> Result<NamespaceFormat, NvmeError> {
    let mut data = vec![0u8; IDENTIFY_LEN];
    admin(
        file,
        path,
        Command::identify(nsid, CNS_NAMESPACE, 0),
        &mut data,
    )?;
    NamespaceFormat::parse(&data).map_err(|index| NvmeError::BadFormat {
        path: path.to_path_buf(),
        index,
    })
}

/// Runs an admin command that reads `data.len()` bytes into `data`.
fn admin(file: &File, path: &Path, c: Command, data: &mut [u8]) -> Result<(), NvmeError> {
    let mut cmd = passthru(&Command {
        addr: data.as_mut_ptr() as u64,
        data_len: data.len() as u32,
        ..c
    });
    // SAFETY: `cmd` points the kernel at `data`, valid and exclusively borrowed for `data_len`
    // bytes during the call; the kernel writes no further than that, and nothing else.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), IOCTL_ADMIN_CMD, &mut cmd) };
    match r {
        0 => Ok(()),
        r if r < 0 => Err(NvmeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        }),
        status => Err(NvmeError::Status {
            path: path.to_path_buf(),
            status: status as u32,
        }),
    }
}

/// The block device of the namespace a generic device (`ngXnY`) stands for (`nvmeXnY`), if
/// the kernel made one: a namespace in a format the block layer does not take has none.
fn sibling_block_device(path: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?;
    let rest = name.strip_prefix("ng")?;
    let block = real.with_file_name(format!("nvme{rest}"));
    std::fs::metadata(&block)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|_| block)
}

/// The kernel's limit on one passthrough command's data: the queue's `max_hw_sectors_kb`, and
/// its `max_segments`. Passthrough cannot be split by the block layer, and a user buffer maps as
/// one segment per page (plus one where it does not start on a page), so a command of more
/// pages than segments is refused with EINVAL. Without a block device to read them from, the
/// NVMe PCI driver's 127 segments are assumed.
fn kernel_max_transfer(block: Option<&Path>) -> u64 {
    let queue = |attr: &str| -> Option<u64> {
        let name = block?.file_name()?.to_str()?;
        let v: u64 = std::fs::read_to_string(format!("/sys/block/{name}/queue/{attr}"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (v > 0).then_some(v)
    };
    let segments = queue("max_segments").unwrap_or(DEFAULT_MAX_SEGMENTS);
    let by_segments = segments.saturating_sub(1).max(1) * PAGE;
    match queue("max_hw_sectors_kb") {
        Some(kb) => by_segments.min(kb * 1024),
        None => by_segments,
    }
}

/// The NVMe PCI driver's segment limit (NVME_MAX_SEGS, Linux 6.1).
const DEFAULT_MAX_SEGMENTS: u64 = 127;
/// The page a user buffer is mapped in.
const PAGE: u64 = 4096;

/// Opens a block device with `O_EXCL`: refused while it is mounted or held by another program,
/// and, while open, keeps others from mounting it. Waits up to `busy_wait` while it is held.
fn hold_exclusively(block: &Path, busy_wait: std::time::Duration) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    crate::retry::while_errno(libc::EBUSY, busy_wait, || {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(block)
    })
    .map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => std::io::Error::other(
            "the namespace's block device is in use (mounted, or opened exclusively by another program)",
        ),
        _ => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn a_write_lays_out_as_struct_nvme_uring_cmd() {
        let c = Command::write(1, 0x1_2345_6789, 8, 0xdead_b000, 32768, true);
        let b = c.to_uring_cmd();
        assert_eq!(b[0], 0x01);
        assert_eq!(u32_at(&b, 4), 1, "nsid");
        assert_eq!(
            u64::from_ne_bytes(b[24..32].try_into().unwrap()),
            0xdead_b000
        );
        assert_eq!(u32_at(&b, 36), 32768, "data_len");
        assert_eq!(u32_at(&b, 40), 0x2345_6789, "SLBA low");
        assert_eq!(u32_at(&b, 44), 0x1, "SLBA high");
        assert_eq!(u32_at(&b, 48), 7 | (1 << 30), "NLB is 0's based; FUA");
        assert!(b[72..].iter().all(|&x| x == 0));
    }

    #[test]
    fn reads_flushes_and_write_zeroes_carry_their_own_fields() {
        let r = Command::read(2, 10, MAX_BLOCKS_PER_COMMAND, 4096, 1 << 28);
        assert_eq!((r.opcode, r.cdw12), (0x02, 0xffff));
        assert_eq!(Command::write(1, 0, 1, 0, 512, false).cdw12, 0);
        let f = Command::flush(3);
        assert_eq!((f.opcode, f.nsid, f.data_len, f.cdw10), (0x00, 3, 0, 0));
        let z = Command::write_zeroes_deallocate(1, 5, 16);
        assert_eq!(
            (z.opcode, z.data_len, z.cdw10, z.cdw12),
            (0x08, 0, 5, 15 | (1 << 25))
        );
    }

    #[test]
    fn the_passthru_struct_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<PassthruCmd>(), 72);
        assert_eq!(URING_CMD_IO >> 16 & 0x3fff, 72);
    }

    #[test]
    fn statuses_become_errnos_the_scsi_layer_maps() {
        assert_eq!(completion_errno(0), Ok(()));
        assert_eq!(completion_errno(-libc::EINVAL), Err(libc::EINVAL));
        // Unrecovered Read Error (media, SCT 2) with Do Not Retry.
        assert_eq!(completion_errno(0x4281), Err(libc::EIO));
        assert_eq!(completion_errno(0x0082), Err(libc::ETIMEDOUT));
        assert_eq!(completion_errno(0x0081), Err(libc::ENOSPC));
        assert_eq!(completion_errno(0x0020), Err(libc::EROFS));
        assert_eq!(completion_errno(0x0371), Err(libc::ENOTCONN));
    }

    fn identify_namespace(nsze: u64, flbas: u8, formats: &[(u16, u8)], dlfeat: u8) -> Vec<u8> {
        let mut d = vec![0u8; IDENTIFY_LEN];
        d[0..8].copy_from_slice(&nsze.to_le_bytes());
        d[25] = formats.len() as u8 - 1;
        d[26] = flbas;
        d[33] = dlfeat;
        for (i, &(ms, lbads)) in formats.iter().enumerate() {
            let v = u32::from(ms) | u32::from(lbads) << 16;
            d[128 + 4 * i..132 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        d
    }

    #[test]
    fn the_format_in_use_gives_the_block_size() {
        let d = identify_namespace(1 << 16, 1, &[(0, 9), (0, 12), (8, 12)], 0x09);
        let f = NamespaceFormat::parse(&d).unwrap();
        assert_eq!(f.blocks, 1 << 16);
        assert_eq!(f.block_shift, 12);
        assert_eq!(f.metadata, 0);
        assert!(f.deallocated_reads_zero);
        let with_metadata =
            NamespaceFormat::parse(&identify_namespace(8, 2, &[(0, 9), (0, 12), (8, 12)], 0))
                .unwrap();
        assert_eq!(with_metadata.metadata, 8);
        assert!(!with_metadata.deallocated_reads_zero);
    }

    #[test]
    fn format_indexes_past_16_use_flbas_upper_bits() {
        let mut formats = vec![(0u16, 9u8); 18];
        formats[17] = (0, 12);
        // Index 17 = 0b01_0001: low bits 0001, upper bits 01 in FLBAS bits 6:5.
        let d = identify_namespace(4, 0x01 | (0x1 << 5), &formats, 0);
        assert_eq!(NamespaceFormat::parse(&d).unwrap().block_shift, 12);
        let d = identify_namespace(4, 0x05, &[(0, 9)], 0);
        assert_eq!(
            NamespaceFormat::parse(&d),
            Err(5),
            "a format it does not describe"
        );
    }

    #[test]
    fn controller_traits_and_transfer_limit() {
        let mut d = vec![0u8; IDENTIFY_LEN];
        d[77] = 7;
        d[520] = 1 << 3;
        d[525] = 1;
        let c = ControllerTraits::parse(&d);
        assert!(c.write_zeroes && c.volatile_cache);
        assert_eq!(c.max_transfer(), Some(512 << 10));
        d[77] = 0;
        d[520] = 1 << 2;
        d[525] = 0;
        let c = ControllerTraits::parse(&d);
        assert!(!c.write_zeroes && !c.volatile_cache);
        assert_eq!(c.max_transfer(), None);
    }

    #[test]
    fn without_a_block_device_the_drivers_segments_bound_a_command() {
        // 127 segments, one of them for a buffer that does not start on a page: 126 pages.
        assert_eq!(kernel_max_transfer(None), 126 * 4096);
    }

    #[test]
    fn files_and_block_devices_are_not_generic_nvme_devices() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(!is_generic_device(&f.as_file().metadata().unwrap()));
        assert!(!is_generic_device(&std::fs::metadata("/dev/null").unwrap()));
    }
}
