//! The core's receive ring: an io_uring provided-buffer ring (Linux 5.19) from which the kernel
//! picks a buffer for a connection's receive when its data arrives, so that a connection waiting
//! for input holds no receive memory, and the buffers can all be registered: write data received
//! together with its header is written from where it arrived with `WRITE_FIXED`.
//!
//! The memory of the buffers belongs to `backstore::buf` (a filled buffer is a `RecvBuf`, and
//! write data lent from it keeps it); this module only tells the kernel which buffers it may use.
//! Buffer lifetime: a buffer id is given to the kernel only while `buf`'s ring slot holds its
//! memory, and the kernel hands it back in exactly one receive completion, after which it is a
//! `RecvBuf` until dropped; so the kernel never receives into memory anyone reads.

use std::alloc::Layout;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

use crate::backstore::buf::{self, Region};

/// The buffer group id of the receive ring (the only provided-buffer group).
pub const GROUP: u16 = 0;
/// Buffers the kernel is given at least (more while receives find it empty).
const HOT_MIN: usize = 1;

/// The kernel takes provided buffers first in, first out. Giving it every free buffer would make
/// each receive land in the buffer used longest ago, out of the CPU's caches (measured: the
/// kernel's copy into the receive buffer took 70 % longer with 128 buffers cycling than with one
/// buffer per connection). So it is given only as many as receives have lately needed at once
/// (`hot`), the most recently used first; the rest wait in `stash`.
pub struct RecvRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    mask: u16,
    /// The next tail to publish.
    tail: u16,
    /// Address and length of each buffer, by id.
    bufs: Vec<(u64, u32)>,
    /// Free buffers not given to the kernel, the most recently used last.
    stash: Vec<u16>,
    /// Buffers given to the kernel and not yet taken by a receive.
    provided: usize,
    /// How many the kernel is to have.
    hot: usize,
    /// A receive found the ring empty since the last `tick`.
    starved: bool,
}

impl RecvRing {
    /// Registers a provided-buffer ring for `regions` (this thread's receive-ring buffers, by
    /// id) and provides them all. Fails on kernels without buffer rings.
    pub fn new(ring: &IoUring, regions: &[Region]) -> std::io::Result<RecvRing> {
        let count = regions.len();
        if count == 0 || count > 1 << 15 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let entries = count.next_power_of_two();
        let layout =
            Layout::from_size_align(entries * std::mem::size_of::<BufRingEntry>(), buf::IO_ALIGN)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: the layout has a non-zero size. Zeroed memory is a valid empty ring (tail 0).
        let mem = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if mem.is_null() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        }
        let mut r = RecvRing {
            entries: mem,
            layout,
            mask: (entries - 1) as u16,
            tail: 0,
            bufs: regions
                .iter()
                .map(|g| (g.addr as u64, g.len as u32))
                .collect(),
            stash: (0..count as u16).rev().collect(),
            provided: 0,
            hot: HOT_MIN.min(count),
            starved: false,
        };
        // SAFETY: the ring memory is page-aligned, `entries` long, and lives until `self` is
        // dropped, which happens after the io_uring is (the reactor declares the ring first), so
        // it outlives the registration.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(mem as u64, entries as u16, GROUP, 0)
        }?;
        r.replenish();
        Ok(r)
    }

    /// Takes back the buffers dropped since the last call and tops the kernel's up to `hot`,
    /// the most recently used first.
    pub fn replenish(&mut self) {
        buf::take_returned_recv_bufs(&mut self.stash);
        let mut any = false;
        while self.provided < self.hot {
            let Some(bid) = self.stash.pop() else { break };
            self.provide(bid);
            any = true;
        }
        if any {
            self.publish();
        }
    }

    /// A receive completed into one of the kernel's buffers.
    pub fn took(&mut self) {
        self.provided = self.provided.saturating_sub(1);
    }

    /// A receive found the ring empty: the kernel gets twice as many from now on.
    pub fn starved(&mut self) {
        self.starved = true;
        self.hot = (self.hot * 2).min(self.bufs.len());
    }

    /// Every timer tick: without receives that found the ring empty since the last, the kernel
    /// is to have a quarter fewer (it keeps those it has until receives take them).
    pub fn tick(&mut self) {
        if !std::mem::take(&mut self.starved) {
            self.hot = (self.hot - self.hot / 4).max(HOT_MIN.min(self.bufs.len()));
        }
    }

    fn provide(&mut self, bid: u16) {
        let Some(&(addr, len)) = self.bufs.get(usize::from(bid)) else {
            return;
        };
        let at = usize::from(self.tail & self.mask);
        // SAFETY: `at` is within the ring's entries; the kernel reads entries only up to the
        // published tail, and this one is past it until `publish`. A buffer id is provided
        // again only after a receive took it and it was dropped, so at most `count` (≤ entries)
        // are provided at a time and an entry not yet consumed is never overwritten.
        let entry = unsafe { &mut *self.entries.add(at) };
        entry.set_addr(addr);
        entry.set_len(len);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.provided += 1;
    }

    /// Makes the entries provided so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved bytes, which the kernel
        // reads and we alone write; the release store orders the entries' writes before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The kernel pinned the ring's pages when
        // it was registered and keeps them until the io_uring (dropped before this) is gone.
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
    }
}
