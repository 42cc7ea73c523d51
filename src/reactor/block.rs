//! Backing-store operations: each owns its task's buffer until its completion hands it back.
//! Short transfers are resubmitted for the remainder; the null store completes without the ring.

use std::os::fd::RawFd;
use std::time::Instant;

use io_uring::{opcode, squeue, types};

use super::token::{Kind, Token};
use super::Reactor;
use crate::backstore::{Extent, IoBuf, StoreKind};
use crate::session::{IoCompletion, IoOp, IoRequest, IoToken, WriteLock};

pub struct BlockOp {
    conn: usize,
    conn_generation: u32,
    token: IoToken,
    fd: BlockFd,
    kind: OpKind,
    offset: u64,
    buf: Option<IoBuf>,
    done: usize,
    lock: Option<WriteLock>,
}

/// A store's descriptor as the ring knows it: an index into its registered files when the
/// registration succeeded (saves a descriptor lookup per I/O), else the plain descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFd {
    Fixed(u32),
    Raw(RawFd),
}

/// Builds a submission with `$fd` as either a fixed-file index or a plain descriptor.
macro_rules! with_fd {
    ($fd:expr, |$f:ident| $body:expr) => {
        match $fd {
            BlockFd::Fixed(i) => {
                let $f = types::Fixed(i);
                $body
            }
            BlockFd::Raw(r) => {
                let $f = types::Fd(r);
                $body
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    Read,
    Write { fua: bool },
    Flush,
    Discard { len: u64 },
}

impl Reactor {
    pub(super) fn start_block(&mut self, idx: usize, io: IoRequest) {
        #[cfg(feature = "rbd")]
        let Some(io) = self.try_start_rbd(idx, io) else {
            return;
        };
        let store = self.stores.get(io.target, io.lun).map(|s| {
            (
                s.kind(),
                s.raw_fd(),
                s.geometry().memory_align,
                s.nvme_target(),
            )
        });
        let IoRequest {
            token,
            target,
            lun,
            op,
            lock,
        } = io;
        let (kind, offset, mut buf) = match op {
            IoOp::Read { offset, buf } => (OpKind::Read, offset, Some(buf)),
            IoOp::Write { offset, buf, fua } => (OpKind::Write { fua }, offset, Some(buf)),
            IoOp::Flush => (OpKind::Flush, 0, None),
            IoOp::Discard { offset, len } => (OpKind::Discard { len }, offset, None),
            IoOp::FindExtent { offset, len } => {
                let (result, extent) = match store.map(|(_, raw, _, nvme)| (raw, nvme)) {
                    // Passthrough has no cheap way to ask what is mapped: everything is.
                    Some((_, Some(_))) => (
                        Ok(()),
                        Some(Extent {
                            allocated: true,
                            len,
                        }),
                    ),
                    Some((Some(fd), None)) => match find_extent(fd, offset, len) {
                        Ok(e) => (Ok(()), Some(e)),
                        Err(errno) => (Err(errno), None),
                    },
                    // The null store holds nothing: every block reads zeros, as a deallocated
                    // block does (LBPRZ), whatever was written to it.
                    Some((None, None)) => (
                        Ok(()),
                        Some(Extent {
                            allocated: false,
                            len,
                        }),
                    ),
                    None => (Err(libc::ENODEV), None),
                };
                let c = IoCompletion {
                    token,
                    result,
                    buf: None,
                    lock,
                    extent,
                };
                self.complete_inline(idx, c);
                return;
            }
            IoOp::CompareAndWrite { buf, .. } => {
                // A file or device cannot compare and write in one operation (nor can an NVMe
                // namespace whose submission queues are the kernel's: Compare fuses with Write
                // only within one), so the SCSI layer does it in steps, under its range lock.
                self.complete_now(idx, token, Err(libc::EOPNOTSUPP), Some(buf), lock);
                return;
            }
        };
        if let Some((.., Some(nvme))) = store {
            self.start_nvme(idx, token, nvme, kind, offset, buf, lock);
            return;
        }
        let raw = match store.map(|(kind, raw, align, _)| (kind, raw, align)) {
            // A RAM store is a tmpfs file, which io_uring cannot read or write without blocking:
            // every read and write would be handed to an io-wq worker thread (a hand-off and two
            // context switches per I/O). Its I/O is a copy to or from memory that never waits
            // for a device, so the reactor does it itself, as it does the null store's.
            Some((StoreKind::Ram, Some(raw), _)) if buf.is_some() => {
                let result = buf
                    .as_mut()
                    .map_or(Ok(()), |b| copy_at(raw, kind, offset, b));
                self.complete_now(idx, token, result, buf, lock);
                return;
            }
            Some((_, Some(raw), align)) => {
                // Write data written from where it was received lies where the stream put it;
                // direct I/O that needs more alignment gets an aligned copy.
                if let Some(b) = buf.as_mut() {
                    if !b.is_aligned_to(align as usize) {
                        b.unshare();
                    }
                }
                raw
            }
            Some((_, None, _)) => {
                // Null store: reads return zeros, from the thread's shared zeros (a pooled
                // buffer may hold older data, and filling one costs a memset per read); writes
                // vanish.
                let mut buf = buf;
                if let (OpKind::Read, Some(b)) = (kind, buf.as_mut()) {
                    *b = IoBuf::zeros(b.len());
                }
                self.complete_now(idx, token, Ok(()), buf, lock);
                return;
            }
            None => {
                tracing::error!(target, lun, "I/O for a LUN without a backing store");
                let result = Err(libc::ENODEV);
                self.complete_now(idx, token, result, buf, lock);
                return;
            }
        };
        let fd = self
            .fixed_files
            .get(&(target, lun))
            .map_or(BlockFd::Raw(raw), |&i| BlockFd::Fixed(i));
        let conn_generation = self.conns[idx].generation;
        let op = BlockOp {
            conn: idx,
            conn_generation,
            token,
            fd,
            kind,
            offset,
            buf,
            done: 0,
            lock,
        };
        let bi = self.blocks.insert(op);
        self.conns[idx].blocks_in_flight += 1;
        self.submit_block(bi);
    }

    fn submit_block(&mut self, bi: usize) {
        let op = &mut self.blocks[bi];
        let fd = op.fd;
        let user_data = Token::new(Kind::Block, bi, 0).encode();
        let offset = op.offset + op.done as u64;
        // Registered buffers skip the kernel's per-I/O page pinning (READ_FIXED / WRITE_FIXED).
        let sqe: squeue::Entry = match (op.kind, op.buf.as_mut()) {
            (OpKind::Read, Some(buf)) => {
                let index = buf.registered_index();
                let rest = &mut buf.as_mut_slice()[op.done..];
                let (ptr, len) = (rest.as_mut_ptr(), rest.len() as u32);
                with_fd!(fd, |f| match index {
                    Some(i) => opcode::ReadFixed::new(f, ptr, len, i)
                        .offset(offset)
                        .build(),
                    None => opcode::Read::new(f, ptr, len).offset(offset).build(),
                })
            }
            (OpKind::Write { fua }, Some(buf)) => {
                let index = buf.registered_index();
                if index.is_none() && op.done == 0 {
                    self.counters.write_bytes_unregistered += buf.len() as u64;
                }
                let rest = &buf.as_slice()[op.done..];
                let (ptr, len) = (rest.as_ptr(), rest.len() as u32);
                // FUA: durable before completion (RWF_DSYNC becomes FUA or a cache flush).
                let flags = if fua { libc::RWF_DSYNC } else { 0 };
                with_fd!(fd, |f| match index {
                    Some(i) => opcode::WriteFixed::new(f, ptr, len, i)
                        .offset(offset)
                        .rw_flags(flags)
                        .build(),
                    None => opcode::Write::new(f, ptr, len)
                        .offset(offset)
                        .rw_flags(flags)
                        .build(),
                })
            }
            // Punching a hole deallocates file blocks and discards (or zeroes) device blocks;
            // either way the range reads back as zeros.
            (OpKind::Discard { len }, _) => with_fd!(fd, |f| opcode::Fallocate::new(f, len)
                .offset(offset)
                .mode(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE)
                .build()),
            _ => with_fd!(fd, |f| opcode::Fsync::new(f)
                .flags(types::FsyncFlags::DATASYNC)
                .build()),
        };
        self.push(sqe.user_data(user_data));
    }

    pub(super) fn on_block(&mut self, bi: usize, res: i32) {
        let Some(op) = self.blocks.get_mut(bi) else {
            return;
        };
        let len = op.buf.as_ref().map_or(0, |b| b.len());
        if res > 0 && op.kind != OpKind::Flush && op.done + (res as usize) < len {
            // Short transfer: carry on from where it stopped.
            op.done += res as usize;
            self.submit_block(bi);
            return;
        }
        let op = self.blocks.remove(bi);
        let result = match res {
            r if r < 0 => Err(-r),
            0 if len > 0 => Err(libc::EIO),
            _ => Ok(()),
        };
        let alive = self
            .conns
            .get(op.conn)
            .is_some_and(|s| s.generation == op.conn_generation);
        if !alive {
            return;
        }
        self.conns[op.conn].blocks_in_flight -= 1;
        self.finish_block(
            op.conn,
            IoCompletion {
                token: op.token,
                result,
                buf: op.buf,
                lock: op.lock,
                extent: None,
            },
        );
    }

    /// [`Reactor::complete_inline`] for an operation that reports no extent.
    pub(super) fn complete_now(
        &mut self,
        idx: usize,
        token: IoToken,
        result: Result<(), i32>,
        buf: Option<IoBuf>,
        lock: Option<WriteLock>,
    ) {
        let c = IoCompletion {
            token,
            result,
            buf,
            lock,
            extent: None,
        };
        self.complete_inline(idx, c);
    }

    /// An operation that completed without the kernel: its completion is handled by the loop,
    /// after the current one, as if it came from the ring.
    pub(super) fn complete_inline(&mut self, idx: usize, c: IoCompletion) {
        let slot = &mut self.conns[idx];
        slot.blocks_in_flight += 1;
        self.inline_done.push_back((idx, slot.generation, c));
    }

    pub(super) fn on_inline_done(&mut self, idx: usize, generation: u32, c: IoCompletion) {
        let alive = self
            .conns
            .get(idx)
            .is_some_and(|s| s.generation == generation);
        if !alive {
            return;
        }
        self.conns[idx].blocks_in_flight -= 1;
        self.finish_block(idx, c);
    }

    pub(super) fn finish_block(&mut self, idx: usize, c: IoCompletion) {
        self.conns[idx].conn.handle_io_completion(c, Instant::now());
        self.service(idx);
    }
}

/// Reads or writes all of `buf` at `offset` of `fd` with plain system calls (a RAM store's I/O,
/// see `start_block`); FUA needs nothing more, as memory is all a RAM store has.
fn copy_at(fd: RawFd, kind: OpKind, offset: u64, buf: &mut IoBuf) -> Result<(), i32> {
    let mut done = 0;
    let len = buf.len();
    while done < len {
        let at = (offset + done as u64) as libc::off_t;
        // SAFETY: each slice is valid for its length for the duration of the call. A write only
        // reads the buffer, so a view of received bytes is written as it is.
        let n = unsafe {
            match kind {
                OpKind::Read => {
                    let rest = &mut buf.as_mut_slice()[done..];
                    libc::pread(fd, rest.as_mut_ptr().cast(), rest.len(), at)
                }
                _ => {
                    let rest = &buf.as_slice()[done..];
                    libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), at)
                }
            }
        };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(libc::EIO),
            _ => {
                let errno = std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                if errno != libc::EINTR {
                    return Err(errno);
                }
            }
        }
    }
    Ok(())
}

/// How the store behind `fd` holds the `len` bytes from `offset`: data up to the next hole, or
/// a hole up to the next data (a file's end counts as a hole). Files and RAM stores answer from
/// their extents or pages; block devices report everything as data.
///
/// `lseek` is a synchronous system call on the reactor thread: io_uring has no opcode for it,
/// and SEEK_DATA/SEEK_HOLE only consult the filesystem's extent map (tmpfs: its page index),
/// which a file in use has in memory, without moving any data. Only GET LBA STATUS asks, at
/// most `lba_status::MAX_DESCRIPTORS` times per command, so the loop is never held for long.
fn find_extent(fd: RawFd, offset: u64, len: u64) -> Result<Extent, i32> {
    let hole = |to: u64| Extent {
        allocated: false,
        len: to.saturating_sub(offset).min(len),
    };
    match seek(fd, offset, libc::SEEK_DATA) {
        // No data from `offset` to the end of the file.
        Err(libc::ENXIO) => Ok(hole(u64::MAX)),
        Err(errno) => Err(errno),
        Ok(data) if data > offset => Ok(hole(data)),
        Ok(_) => {
            let end = seek(fd, offset, libc::SEEK_HOLE)?;
            Ok(Extent {
                allocated: true,
                len: end.saturating_sub(offset).clamp(1, len.max(1)),
            })
        }
    }
}

/// `lseek(2)`: the resulting offset, or the errno.
fn seek(fd: RawFd, offset: u64, whence: libc::c_int) -> Result<u64, i32> {
    let offset = libc::off_t::try_from(offset).map_err(|_| libc::EINVAL)?;
    // SAFETY: lseek takes no pointers; `fd` is a store descriptor the daemon keeps open for
    // the reactor's lifetime. It moves the descriptor's file position, which no other I/O uses
    // (every read and write names its offset).
    let r = unsafe { libc::lseek(fd, offset, whence) };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::AsRawFd;

    /// A sparse file where holes are tracked (tmpfs when there is one).
    fn sparse_file(len: u64) -> std::fs::File {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let f = tempfile::tempfile_in(dir).expect("temp file");
        f.set_len(len).expect("size");
        f
    }

    #[test]
    fn extents_follow_the_files_holes_and_data() {
        let mut f = sparse_file(1 << 20);
        f.seek(SeekFrom::Start(64 << 10)).unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        let fd = f.as_raw_fd();
        let at = |offset, len| find_extent(fd, offset, len).expect("lseek");
        let hole = |len| Extent {
            allocated: false,
            len,
        };
        let data = |len| Extent {
            allocated: true,
            len,
        };
        assert_eq!(at(0, 1 << 20), hole(64 << 10));
        assert_eq!(at(0, 4096), hole(4096), "no further than asked");
        assert_eq!(at(64 << 10, 1 << 20), data(8192));
        assert_eq!(at(68 << 10, 1 << 20), data(4096));
        assert_eq!(
            at(72 << 10, (1 << 20) - (72 << 10)),
            hole((1 << 20) - (72 << 10))
        );
    }
}
