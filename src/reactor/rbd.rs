//! Ceph RBD logical units: the same `IoRequest`s as `block.rs`, performed with librbd's
//! asynchronous calls on the LUN's image handle (shared by every reactor, see `crate::ceph`).
//! librbd reports each completion on this reactor's eventfd, which the ring reads like any other
//! event; the completion is then handled here, on this core, like a block completion.
//!
//! - READ → `rbd_aio_read`; WRITE → `rbd_aio_write`, with FUA followed by `rbd_aio_flush`
//!   before it completes; SYNCHRONIZE CACHE → `rbd_aio_flush`.
//! - COMPARE AND WRITE → `rbd_aio_compare_and_write` (its buffer holds the compare half, then
//!   the write half): atomic in the cluster, so against every client of the image.
//! - Deallocation (UNMAP, WRITE SAME with UNMAP, SANITIZE BLOCK ERASE) → `rbd_aio_write_zeroes`:
//!   whole objects are deallocated and partial ones zeroed, so the range reads back as zeros
//!   (LBPRZ) whatever its alignment.
//! - Each operation owns its task's buffer until librbd has completed it; a reactor that stops
//!   waits for its operations before its buffers can be freed.

use std::sync::Arc;
use std::time::Duration;

use slab::Slab;

use super::token::Kind;
use super::{Reactor, StoreTable};
use crate::backstore::{Extent, IoBuf};
use crate::ceph::{Completions, Image};
use crate::session::{IoCompletion, IoOp, IoRequest, IoToken, WriteLock};

/// This reactor's RBD operations in flight and the inbox of their completions.
pub struct RbdPort {
    completions: Completions,
    ops: Slab<RbdOp>,
    /// Where the ring reads the eventfd's counter into.
    counter: Box<[u8; 8]>,
}

struct RbdOp {
    conn: usize,
    conn_generation: u32,
    token: IoToken,
    image: Arc<Image>,
    kind: OpKind,
    offset: u64,
    buf: Option<IoBuf>,
    lock: Option<WriteLock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read,
    Write {
        fua: bool,
    },
    CompareAndWrite {
        fua: bool,
    },
    /// The flush after a FUA write whose data is written.
    FuaFlush,
    Flush,
    Zero {
        len: u64,
    },
}

impl RbdPort {
    /// A port for a reactor whose stores include an RBD image; `None` if none does.
    pub fn for_stores(stores: &StoreTable) -> std::io::Result<Option<RbdPort>> {
        let any = stores.units().any(|(_, _, s)| s.rbd_image().is_some());
        if !any {
            return Ok(None);
        }
        Ok(Some(RbdPort {
            completions: Completions::new()?,
            ops: Slab::new(),
            counter: Box::new([0; 8]),
        }))
    }

    /// Issues operation `oi`'s librbd call; `Err(errno)` if librbd refused it at once.
    fn submit(&mut self, oi: usize) -> Result<(), i32> {
        let op = &mut self.ops[oi];
        let token = oi as u64;
        let to = &self.completions;
        match (op.kind, op.buf.as_mut()) {
            (OpKind::Read, Some(buf)) => {
                let bytes = buf.as_mut_slice();
                // SAFETY: the buffer belongs to this op, which stays in `ops` (and is neither
                // read nor written) until its completion is taken from `completions`; a
                // stopping reactor waits for that (`Drop`).
                unsafe {
                    op.image
                        .read(op.offset, bytes.as_mut_ptr(), bytes.len(), to, token)
                }
            }
            (OpKind::Write { .. }, Some(buf)) => {
                let bytes = buf.as_slice();
                // SAFETY: as for reads: the op owns the buffer, unchanged, until the
                // completion has been taken.
                unsafe {
                    op.image
                        .write(op.offset, bytes.as_ptr(), bytes.len(), to, token)
                }
            }
            (OpKind::CompareAndWrite { .. }, Some(buf)) => {
                let (compare, write) = buf.as_slice().split_at(buf.len() / 2);
                // SAFETY: as for writes: the op owns the buffer, unchanged, until the
                // completion has been taken; both halves have the same length.
                unsafe {
                    op.image.compare_and_write(
                        op.offset,
                        compare.as_ptr(),
                        write.as_ptr(),
                        write.len(),
                        to,
                        token,
                    )
                }
            }
            (OpKind::Zero { len }, _) => op.image.write_zeroes(op.offset, len, to, token),
            _ => op.image.flush(to, token),
        }
    }
}

impl Drop for RbdPort {
    /// librbd may still write into, or read from, the buffers of operations in flight: wait for
    /// each of them (the cluster's operation timeouts bound the wait) before the buffers go.
    fn drop(&mut self) {
        let mut waited = Duration::ZERO;
        while !self.ops.is_empty() {
            match self.completions.wait_next(Duration::from_secs(1)) {
                Some(c) => {
                    let oi = c.token as usize;
                    if self.ops.contains(oi) {
                        self.ops.remove(oi);
                    }
                }
                None => {
                    waited += Duration::from_secs(1);
                    tracing::warn!(
                        in_flight = self.ops.len(),
                        waited_secs = waited.as_secs(),
                        "waiting for RBD operations to finish before stopping"
                    );
                }
            }
        }
    }
}

impl Reactor {
    /// Performs `io` with librbd if its LUN is an RBD image; otherwise hands it back.
    pub(super) fn try_start_rbd(&mut self, idx: usize, io: IoRequest) -> Option<IoRequest> {
        let Some(image) = self
            .stores
            .get(io.target, io.lun)
            .and_then(|s| s.rbd_image())
            .cloned()
        else {
            return Some(io);
        };
        let IoRequest {
            token, op, lock, ..
        } = io;
        let (kind, offset, buf) = match op {
            IoOp::Read { offset, buf } => (OpKind::Read, offset, Some(buf)),
            IoOp::Write { offset, buf, fua } => (OpKind::Write { fua }, offset, Some(buf)),
            IoOp::Flush => (OpKind::Flush, 0, None),
            IoOp::Discard { offset, len } => (OpKind::Zero { len }, offset, None),
            IoOp::CompareAndWrite { offset, buf, fua } => {
                (OpKind::CompareAndWrite { fua }, offset, Some(buf))
            }
            IoOp::FindExtent { len, .. } => {
                // Every range is reported as mapped ("mapped or unknown", SBC-3 GET LBA STATUS):
                // true of what was written, and a copy of a deallocated range reads zeros.
                self.complete_inline(
                    idx,
                    IoCompletion {
                        token,
                        result: Ok(()),
                        buf: None,
                        lock,
                        extent: Some(Extent {
                            allocated: true,
                            len,
                        }),
                    },
                );
                return None;
            }
        };
        let conn_generation = self.conns[idx].generation;
        let Some(port) = self.rbd.as_mut() else {
            // Not reached: a port exists whenever a store is an RBD image.
            tracing::error!("RBD I/O on a reactor without an RBD port");
            self.complete_inline(
                idx,
                IoCompletion {
                    token,
                    result: Err(libc::ENODEV),
                    buf,
                    lock,
                    extent: None,
                },
            );
            return None;
        };
        let oi = port.ops.insert(RbdOp {
            conn: idx,
            conn_generation,
            token,
            image,
            kind,
            offset,
            buf,
            lock,
        });
        self.conns[idx].blocks_in_flight += 1;
        self.submit_rbd(oi);
        None
    }

    /// Issues operation `oi`; if librbd refuses it at once, it completes with the error from
    /// the loop (like the null store's operations, never by recursion).
    fn submit_rbd(&mut self, oi: usize) {
        let Some(port) = self.rbd.as_mut() else {
            return;
        };
        if let Err(errno) = port.submit(oi) {
            let op = port.ops.remove(oi);
            tracing::warn!(
                image = op.image.label(),
                errno,
                "librbd refused an operation"
            );
            // Still counted in `blocks_in_flight`, which the loop's handling takes back.
            let c = IoCompletion {
                token: op.token,
                result: Err(errno),
                buf: op.buf,
                lock: op.lock,
                extent: None,
            };
            self.inline_done.push_back((op.conn, op.conn_generation, c));
        }
    }

    /// Opens this reactor's port once its stores include an RBD image (a LUN added live to a
    /// reactor that started without one).
    pub(super) fn open_rbd_port(&mut self) {
        if self.rbd.is_some() || self.stopping {
            return;
        }
        match RbdPort::for_stores(&self.stores) {
            Ok(Some(port)) => {
                self.rbd = Some(port);
                self.post_rbd_read();
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(reactor = self.index, error = %e, "cannot open the RBD completion port; I/O to RBD LUNs will fail")
            }
        }
    }

    /// Keeps a read posted on the completion eventfd (when this reactor has RBD stores).
    pub(super) fn post_rbd_read(&mut self) {
        let Some(port) = self.rbd.as_mut() else {
            return;
        };
        let (fd, counter) = (port.completions.eventfd(), port.counter.as_mut_ptr());
        self.post_counter_read(fd, counter, Kind::Rbd);
    }

    /// The eventfd fired: handle every queued completion, then listen again.
    pub(super) fn on_rbd(&mut self, res: i32) {
        if res < 0 && res != -libc::EAGAIN && res != -libc::EINTR {
            tracing::error!(errno = -res, "reading the RBD completion eventfd failed");
        }
        while let Some(c) = self.rbd.as_ref().and_then(|p| p.completions.try_next()) {
            let result = if c.result < 0 {
                Err(i32::try_from(-c.result).unwrap_or(libc::EIO))
            } else {
                Ok(())
            };
            self.on_rbd_done(c.token as usize, result);
        }
        if !self.stopping {
            self.post_rbd_read();
        }
    }

    fn on_rbd_done(&mut self, oi: usize, result: Result<(), i32>) {
        let Some(op) = self.rbd.as_mut().and_then(|p| p.ops.get_mut(oi)) else {
            return;
        };
        if let (Ok(()), OpKind::Write { fua: true } | OpKind::CompareAndWrite { fua: true }) =
            (result, op.kind)
        {
            // The data is written; FUA also wants it out of librbd's cache before answering.
            op.kind = OpKind::FuaFlush;
            self.submit_rbd(oi);
            return;
        }
        self.finish_rbd(oi, result);
    }

    /// Ends operation `oi`: its buffer and lock go back to the session with the result.
    fn finish_rbd(&mut self, oi: usize, result: Result<(), i32>) {
        let Some(port) = self.rbd.as_mut() else {
            return;
        };
        let op = port.ops.remove(oi);
        if let Err(errno) = result {
            tracing::debug!(image = op.image.label(), ?op.kind, offset = op.offset, errno, "RBD operation failed");
        }
        // Like a completion that needed no kernel call: back to the session if the connection
        // is still there.
        self.on_inline_done(
            op.conn,
            op.conn_generation,
            IoCompletion {
                token: op.token,
                result,
                buf: op.buf,
                lock: op.lock,
                extent: None,
            },
        );
    }
}
