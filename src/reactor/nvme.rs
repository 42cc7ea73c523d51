//! NVMe logical units: the same `IoRequest`s as `block.rs`, sent to the namespace as NVMe
//! commands (`IORING_OP_URING_CMD` on its generic device, `crate::nvme` builds them).
//!
//! Passthrough needs a ring of 128-byte submissions and 32-byte completions, which the
//! reactor's own ring is not (that would need Linux 5.19 of every deployment, and double what
//! every other submission costs). A reactor that serves an NVMe unit makes a second ring for it
//! on its first command, on its own thread. The second ring reports each completion on an
//! eventfd, which the main ring keeps a read posted on, as it does librbd's (`rbd.rs`); its
//! submissions go to the kernel once per loop turn, just before the main ring's.
//!
//! - READ → Read, WRITE → Write (FUA → its FUA bit), SYNCHRONIZE CACHE → Flush, deallocation
//!   (UNMAP, WRITE SAME with UNMAP) → Write Zeroes with Deallocate (reads zeros afterwards).
//! - A transfer larger than one command may carry (the controller's MDTS, the kernel's limit,
//!   65,536 blocks) goes as several commands, one after another.
//! - Buffers from the registered pool go as fixed buffers (no page pinning per command), where
//!   the pool could be registered with the second ring too.
//! - Each operation owns its buffer until its last command has completed; a reactor that stops
//!   waits for its commands before its buffers can be freed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::token::Kind;
use super::wake::WakeFd;
use super::{block, Reactor};
use crate::backstore::{IoBuf, NvmeTarget};
use crate::nvme::{Command, MAX_BLOCKS_PER_COMMAND, URING_CMD_IO};
use crate::session::{IoCompletion, IoToken, WriteLock};

/// Submission queue size of the passthrough ring (more wait in its backlog).
const RING_ENTRIES: u32 = 256;
/// How long a stopping reactor waits for the controller to complete what it was sent (the
/// kernel's own command timeout, 30 s by default, and its recovery come first).
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// This reactor's passthrough ring and the operations in flight on it.
pub struct NvmePort {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    event: WakeFd,
    /// Where the main ring reads the eventfd's counter into.
    counter: Box<[u8; 8]>,
    ops: Slab<NvmeOp>,
    backlog: VecDeque<squeue::Entry128>,
    /// Submissions pushed since the last `io_uring_enter` on this ring.
    queued: u32,
    /// The pool's buffers are registered with this ring too.
    fixed: bool,
    /// Completions taken from the ring in one wake-up (kept for the next).
    reaped: Vec<(u64, i32)>,
}

struct NvmeOp {
    conn: usize,
    conn_generation: u32,
    token: IoToken,
    target: NvmeTarget,
    kind: OpKind,
    offset: u64,
    /// Bytes the operation covers: its buffer's length, or the range to deallocate.
    len: u64,
    buf: Option<IoBuf>,
    /// Bytes done by completed commands.
    done: u64,
    /// Bytes of the command in flight.
    chunk: u64,
    /// The command in flight names a fixed buffer.
    fixed: bool,
    lock: Option<WriteLock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read,
    Write { fua: bool },
    Flush,
    Deallocate,
}

impl NvmePort {
    /// A passthrough ring for this thread, with the pool's buffers (`regions`: address and
    /// length, in registration order) registered when that works.
    fn new(regions: &[(usize, usize)], reactor: usize) -> std::io::Result<NvmePort> {
        // SINGLE_ISSUER only: with DEFER_TASKRUN, completions would wait until this ring is
        // entered, and nothing would tell the reactor to enter it.
        let ring = IoUring::<squeue::Entry128, cqueue::Entry32>::builder()
            .setup_single_issuer()
            .build(RING_ENTRIES)?;
        let event = WakeFd::new()?;
        ring.submitter().register_eventfd(event.raw_fd())?;
        let iovecs: Vec<libc::iovec> = regions
            .iter()
            .map(|&(addr, len)| libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        let fixed = !iovecs.is_empty()
            && {
                // SAFETY: the regions are this thread's buffer pool, registered with the main ring
                // already: live for the thread's lifetime, which this ring (dropped with the
                // reactor, on this thread) does not outlive.
                match unsafe { ring.submitter().register_buffers(&iovecs) } {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(reactor, error = %e, "cannot register the I/O buffers with the NVMe passthrough ring; its commands pin their pages one by one");
                        false
                    }
                }
            };
        Ok(NvmePort {
            ring,
            event,
            counter: Box::new([0; 8]),
            ops: Slab::new(),
            backlog: VecDeque::new(),
            queued: 0,
            fixed,
            reaped: Vec::with_capacity(RING_ENTRIES as usize),
        })
    }

    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Sends operation `oi`'s next command.
    fn submit(&mut self, oi: usize) {
        let fixed = self.fixed;
        let op = &mut self.ops[oi];
        let t = op.target;
        let at = op.offset + op.done;
        let rest = op.len - op.done;
        let lba = at >> t.block_shift;
        let (command, index) = match (op.kind, op.buf.as_mut()) {
            (OpKind::Read, Some(buf)) => {
                let chunk = chunk_len(op.kind, rest, &t);
                op.chunk = chunk;
                let index = buf.registered_index().filter(|_| fixed);
                let bytes = &mut buf.as_mut_slice()[op.done as usize..(op.done + chunk) as usize];
                let blocks = (chunk >> t.block_shift) as u32;
                let c = Command::read(t.nsid, lba, blocks, bytes.as_mut_ptr() as u64, chunk as u32);
                (c, index)
            }
            (OpKind::Write { fua }, Some(buf)) => {
                let chunk = chunk_len(op.kind, rest, &t);
                op.chunk = chunk;
                let index = buf.registered_index().filter(|_| fixed);
                let bytes = &buf.as_slice()[op.done as usize..(op.done + chunk) as usize];
                let blocks = (chunk >> t.block_shift) as u32;
                let c = Command::write(
                    t.nsid,
                    lba,
                    blocks,
                    bytes.as_ptr() as u64,
                    chunk as u32,
                    fua,
                );
                (c, index)
            }
            (OpKind::Deallocate, _) => {
                let chunk = chunk_len(op.kind, rest, &t);
                op.chunk = chunk;
                let blocks = (chunk >> t.block_shift) as u32;
                (Command::write_zeroes_deallocate(t.nsid, lba, blocks), None)
            }
            _ => {
                op.chunk = 0;
                (Command::flush(t.nsid), None)
            }
        };
        op.fixed = index.is_some();
        let sqe = opcode::UringCmd80::new(types::Fd(t.fd), URING_CMD_IO)
            .cmd(command.to_uring_cmd())
            .buf_index(index)
            .build()
            .user_data(oi as u64);
        if self.backlog.is_empty() && self.push(&sqe) {
            return;
        }
        self.backlog.push_back(sqe);
    }

    fn push(&mut self, sqe: &squeue::Entry128) -> bool {
        // SAFETY: the buffer a command names belongs to its operation, which stays in `ops`
        // (its buffer neither moved nor freed: `IoBuf`'s bytes live on the heap or in the pool)
        // until the command's completion has been reaped; a dropped port waits for them.
        let pushed = unsafe { self.ring.submission().push(sqe) }.is_ok();
        self.queued += u32::from(pushed);
        pushed
    }

    /// Hands what this turn queued to the kernel (without waiting).
    pub fn flush_submissions(&mut self) {
        while let Some(sqe) = self.backlog.pop_front() {
            if !self.push(&sqe) {
                self.backlog.push_front(sqe);
                break;
            }
        }
        if self.queued == 0 {
            return;
        }
        match self.ring.submit() {
            Ok(n) => self.queued = self.queued.saturating_sub(n as u32),
            // EBUSY/EAGAIN: the completion queue is full; what is queued goes next turn, after
            // the completions have been reaped.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)
                ) => {}
            Err(e) => tracing::error!(error = %e, "submitting NVMe passthrough commands failed"),
        }
    }
}

/// Bytes the next command of an operation covers, with `rest` bytes left: as many as one
/// command may carry (data: the namespace's transfer limit; deallocation: 65,536 blocks).
fn chunk_len(kind: OpKind, rest: u64, t: &NvmeTarget) -> u64 {
    match kind {
        OpKind::Read | OpKind::Write { .. } => rest.min(u64::from(t.max_transfer)),
        OpKind::Deallocate => rest.min(u64::from(MAX_BLOCKS_PER_COMMAND) << t.block_shift),
        OpKind::Flush => 0,
    }
}

impl Drop for NvmePort {
    /// The controller may still read from, or write into, the buffers of commands in flight:
    /// wait for each of them before the buffers go. Past the limit, their buffers are leaked
    /// rather than freed under a device that may still use them.
    fn drop(&mut self) {
        let started = Instant::now();
        // Commands still in the backlog never reached the kernel: their buffers are free now
        // (and waiting for their completions would wait forever).
        for sqe in std::mem::take(&mut self.backlog) {
            self.ops.try_remove(sqe.get_user_data() as usize);
        }
        // Waits of a second at most, so that the limit is checked even if nothing completes.
        let second = types::Timespec::new().sec(1);
        let args = types::SubmitArgs::new().timespec(&second);
        while !self.ops.is_empty() && started.elapsed() < DRAIN_LIMIT {
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let done: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for oi in done {
                if let Some(op) = self.ops.try_remove(oi as usize) {
                    // The rest of a split transfer is not sent: the reactor is going away.
                    drop(op);
                }
            }
        }
        if !self.ops.is_empty() {
            tracing::error!(
                commands = self.ops.len(),
                "NVMe commands did not complete while the reactor stopped; their buffers are leaked"
            );
            for op in self.ops.drain() {
                std::mem::forget(op.buf);
            }
        }
    }
}

impl Reactor {
    /// Starts a read, write, flush or deallocation on an NVMe store.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_nvme(
        &mut self,
        idx: usize,
        token: IoToken,
        target: NvmeTarget,
        kind: block::OpKind,
        offset: u64,
        buf: Option<IoBuf>,
        lock: Option<WriteLock>,
    ) {
        let (kind, len) = match kind {
            block::OpKind::Read => (OpKind::Read, buf.as_ref().map_or(0, |b| b.len() as u64)),
            block::OpKind::Write { fua } => (
                OpKind::Write { fua },
                buf.as_ref().map_or(0, |b| b.len() as u64),
            ),
            block::OpKind::Flush => (OpKind::Flush, 0),
            block::OpKind::Discard { len } => (OpKind::Deallocate, len),
        };
        let block_mask = (1u64 << target.block_shift) - 1;
        let misaligned = offset & block_mask != 0 || len & block_mask != 0;
        // No command names zero blocks (NLB is 0's based): an empty transfer is done already.
        let empty = len == 0 && kind != OpKind::Flush;
        if misaligned || empty || self.nvme_port().is_none() {
            let result = match (misaligned, empty) {
                (true, _) => Err(libc::EINVAL),
                (false, true) => Ok(()),
                (false, false) => Err(libc::EIO),
            };
            self.complete_now(idx, token, result, buf, lock);
            return;
        }
        let conn_generation = self.conns[idx].generation;
        let Some(port) = self.nvme.as_mut() else {
            return;
        };
        let oi = port.ops.insert(NvmeOp {
            conn: idx,
            conn_generation,
            token,
            target,
            kind,
            offset,
            len,
            buf,
            done: 0,
            chunk: 0,
            fixed: false,
            lock,
        });
        self.conns[idx].blocks_in_flight += 1;
        port.submit(oi);
    }

    /// This reactor's passthrough ring, made on first use; `None` (logged) if it cannot be.
    fn nvme_port(&mut self) -> Option<&mut NvmePort> {
        if self.nvme.is_none() {
            match NvmePort::new(&self.pool_regions, self.index) {
                Ok(port) => {
                    self.nvme = Some(port);
                    self.post_nvme_read();
                }
                Err(e) => {
                    crate::warn_limited!(self.log, Instant::now(), error = %e, "cannot make the NVMe passthrough ring; I/O to NVMe LUNs fails");
                    return None;
                }
            }
        }
        self.nvme.as_mut()
    }

    /// Keeps a read posted on the passthrough ring's completion eventfd.
    fn post_nvme_read(&mut self) {
        let Some(port) = self.nvme.as_mut() else {
            return;
        };
        let (fd, counter) = (port.event.raw_fd(), port.counter.as_mut_ptr());
        self.post_counter_read(fd, counter, Kind::Nvme);
    }

    /// The passthrough ring's eventfd fired: handle every completion it holds, then listen
    /// again.
    pub(super) fn on_nvme(&mut self, res: i32) {
        if res < 0 && res != -libc::EAGAIN && res != -libc::EINTR {
            tracing::error!(errno = -res, "reading the NVMe completion eventfd failed");
        }
        let Some(port) = self.nvme.as_mut() else {
            return;
        };
        // The reaped list is the port's, reused: no allocation per wake-up.
        let mut done = std::mem::take(&mut port.reaped);
        done.clear();
        done.extend(port.ring.completion().map(|c| (c.user_data(), c.result())));
        for &(oi, res) in &done {
            self.on_nvme_done(oi as usize, res);
        }
        if let Some(port) = self.nvme.as_mut() {
            port.reaped = done;
        }
        if !self.stopping {
            self.post_nvme_read();
        }
    }

    fn on_nvme_done(&mut self, oi: usize, res: i32) {
        let Some(port) = self.nvme.as_mut() else {
            return;
        };
        let Some(op) = port.ops.get_mut(oi) else {
            return;
        };
        let result = crate::nvme::completion_errno(res);
        if result == Err(libc::EINVAL) && op.fixed {
            // A kernel that cannot map this fixed buffer for the device (its pages are not
            // in the shape the driver takes) refuses the command: send user addresses from now
            // on, starting with this command again.
            port.fixed = false;
            tracing::warn!("the kernel refused a registered buffer for NVMe passthrough; using plain buffers on this core");
            port.submit(oi);
            return;
        }
        if result.is_ok() && op.kind != OpKind::Flush && op.done + op.chunk < op.len {
            op.done += op.chunk;
            port.submit(oi);
            return;
        }
        let op = port.ops.remove(oi);
        let alive = self
            .conns
            .get(op.conn)
            .is_some_and(|s| s.generation == op.conn_generation);
        if !alive {
            return;
        }
        if let Err(errno) = result {
            crate::warn_limited!(
                self.log,
                Instant::now(),
                errno,
                status = res,
                offset = op.offset + op.done,
                "NVMe command failed"
            );
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

    /// Sends what this turn queued on the passthrough ring.
    pub(super) fn flush_nvme(&mut self) {
        if let Some(port) = self.nvme.as_mut() {
            port.flush_submissions();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(block_shift: u8, max_transfer: u32) -> NvmeTarget {
        NvmeTarget {
            fd: -1,
            nsid: 1,
            block_shift,
            max_transfer,
        }
    }

    /// Splits an operation of `len` bytes as `on_nvme_done` does: one command after another.
    fn commands(kind: OpKind, len: u64, t: &NvmeTarget) -> Vec<u64> {
        let (mut done, mut out) = (0, Vec::new());
        while done < len {
            let chunk = chunk_len(kind, len - done, t);
            out.push(chunk);
            done += chunk;
        }
        out
    }

    #[test]
    fn transfers_past_the_limit_go_as_several_commands() {
        let t = target(12, 512 << 10);
        assert_eq!(commands(OpKind::Read, 4096, &t), [4096]);
        assert_eq!(
            commands(OpKind::Write { fua: true }, (1 << 20) + 8192, &t),
            [512 << 10, 512 << 10, 8192]
        );
    }

    #[test]
    fn deallocation_is_split_at_65536_blocks() {
        let t = target(9, 128 << 10);
        let len = (3u64 << 16) * 512 + 1024;
        let c = commands(OpKind::Deallocate, len, &t);
        assert_eq!(c, [32 << 20, 32 << 20, 32 << 20, 1024]);
        assert_eq!(chunk_len(OpKind::Flush, 0, &t), 0);
    }
}
