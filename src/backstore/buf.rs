//! Page-aligned I/O buffers. `O_DIRECT` needs the memory address aligned to the device's logical
//! block size, and 4096 covers every device we serve.
//!
//! Each reactor thread installs a pool of buffers that its ring has registered with the kernel
//! (`IORING_REGISTER_BUFFERS`), so block I/O can use `READ_FIXED`/`WRITE_FIXED` and skip the
//! per-I/O page pinning. A buffer taken from the pool goes back to it when dropped; when the pool
//! has no buffer of the right size, an ordinary heap buffer is used instead of waiting.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytemuck::{Pod, Zeroable};

pub const IO_ALIGN: usize = 4096;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(4096))]
struct Page([u8; IO_ALIGN]);

/// An owned, 4096-aligned byte buffer of a fixed logical length. Moving an `IoBuf` never moves
/// its bytes, so it can be lent to the kernel while in flight.
///
/// It can also be a read-only view of part of a connection's [`RecvBuf`] (write data received
/// there together with its header, see [`Budget::lend`]): its bytes then stay where they were
/// received, keep that buffer alive, and are aligned only as the stream placed them. Writing
/// into a view first copies it into a buffer of its own, so no caller can change received bytes
/// another view shares.
pub struct IoBuf {
    pages: Vec<Page>,
    len: usize,
    /// Index of the registered buffer these pages are, when they came from the pool.
    registered: Option<u16>,
    /// The budget this buffer's bytes are counted against, released when the buffer is dropped.
    charge: Option<Charge>,
    /// For a view, the receive buffer and where in it the bytes start; `pages` is then empty.
    view: Option<(Rc<RecvBytes>, usize)>,
}

/// A connection's budget of buffered bytes: reads waiting to be sent and write data not yet on
/// disk. Every buffer taken for the connection is charged to it until dropped, wherever the drop
/// happens (after a send, after a disk write, with an aborted task, with the connection), so the
/// count is exact without the owner tracking each buffer's journey.
#[derive(Clone, Debug)]
pub struct Budget(Rc<BudgetState>);

#[derive(Debug)]
struct BudgetState {
    limit: usize,
    used: Cell<usize>,
    /// Bytes of buffers that were admitted by [`Budget::admits`] (as opposed to data the protocol
    /// obliges the target to accept, which is charged but never waits).
    gated: Cell<usize>,
}

/// One buffer's share of a [`Budget`].
#[derive(Debug)]
struct Charge {
    budget: Budget,
    bytes: usize,
    gated: bool,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let s = &self.budget.0;
        s.used.set(s.used.get() - self.bytes);
        if self.gated {
            s.gated.set(s.gated.get() - self.bytes);
        }
    }
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget(Rc::new(BudgetState {
            limit,
            used: Cell::new(0),
            gated: Cell::new(0),
        }))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held by live buffers charged to this budget.
    pub fn used(&self) -> usize {
        self.0.used.get()
    }

    /// Whether a gated buffer of `bytes` may be taken now: it fits, or no other gated buffer is
    /// held (so a single transfer larger than the whole budget still makes progress instead of
    /// waiting forever).
    pub fn admits(&self, bytes: usize) -> bool {
        self.admits_beside(bytes, 0)
    }

    /// [`Budget::admits`] for an asker that itself holds `own` gated bytes (the data a
    /// multi-step command keeps): they count against the limit, but are no other buffer, so
    /// they never keep the asker's own transfer waiting (nothing else would ever release them).
    pub fn admits_beside(&self, bytes: usize, own: usize) -> bool {
        self.used() + bytes <= self.0.limit || self.0.gated.get() <= own
    }

    /// A buffer for data that must be accepted whatever the budget says (immediate and
    /// unsolicited data, small command results): charged, never refused.
    pub fn alloc(&self, len: usize) -> IoBuf {
        self.charged(len, false)
    }

    /// A buffer that was admitted by [`Budget::admits`]: solicited data (R2T bursts) and reads.
    pub fn alloc_gated(&self, len: usize) -> IoBuf {
        self.charged(len, true)
    }

    /// Charges `bytes` that live outside any `IoBuf` (e.g. a command's data kept by the SCSI
    /// layer, which replaces the gated buffer it came in) until the returned `Hold` is dropped.
    /// Counted as gated, so that it keeps holding later work back like the buffer did.
    pub fn hold(&self, bytes: usize) -> Hold {
        Hold(self.charge(bytes, true))
    }

    fn charge(&self, bytes: usize, gated: bool) -> Charge {
        let s = &self.0;
        s.used.set(s.used.get() + bytes);
        if gated {
            s.gated.set(s.gated.get() + bytes);
        }
        Charge {
            budget: self.clone(),
            bytes,
            gated,
        }
    }

    fn charged(&self, len: usize, gated: bool) -> IoBuf {
        let mut b = IoBuf::alloc(len);
        b.charge = Some(self.charge(len, gated));
        b
    }

    /// The received bytes `rx[range]` as a read-only buffer, without copying them: charged like
    /// [`Budget::alloc`] (data the protocol obliges the target to take), or like
    /// [`Budget::alloc_gated`] when `gated` (solicited data). `None` when the range is not
    /// within what `rx` holds.
    pub fn lend(&self, rx: &RecvBuf, range: std::ops::Range<usize>, gated: bool) -> Option<IoBuf> {
        if range.start > range.end || range.end > rx.len() {
            return None;
        }
        let len = range.len();
        LENT_BYTES.with(|n| n.set(n.get() + len as u64));
        Some(IoBuf {
            pages: Vec::new(),
            len,
            // A buffer of the receive ring is registered: writes from it go as WRITE_FIXED.
            registered: rx.0.ring.and_then(|r| r.registered),
            charge: Some(self.charge(len, gated)),
            view: Some((Rc::clone(&rx.0), rx.0.head + range.start)),
        })
    }
}

/// A connection's receive buffer. Parts of it can be lent out as read-only [`IoBuf`] views
/// ([`Budget::lend`]); while any view lives, the buffer cannot be written (`spare_mut` says no)
/// and the connection moves on to a new one ([`RecvBuf::replace`]), so the kernel never receives
/// over bytes a write still has to write. The pages of a receive buffer nobody uses any more are
/// kept (a few per thread) for the next one, so that changing buffers costs neither an
/// allocation nor zeroing. Its bytes need no alignment (those of a view are where the stream put
/// them), so a new one is a zeroed allocation whose pages the kernel provides as they are
/// first received into.
pub struct RecvBuf(Rc<RecvBytes>);

/// A receive buffer's memory, shared by the buffer and the views lent from it; kept for the
/// next receive buffer when the last of them is dropped, or given back to the receive ring it
/// came from.
struct RecvBytes {
    bytes: Vec<u8>,
    /// Where the buffer starts in `bytes` (0 but for a receive-ring buffer, see
    /// [`ring_buffer_head`]); views index `bytes` itself.
    head: usize,
    /// It was replaced while lent (counted in `REPLACED_LENT` until dropped).
    replaced_lent: Cell<bool>,
    /// Set for a buffer of this thread's receive ring ([`install_recv_ring`]).
    ring: Option<RingBuf>,
}

/// Where a receive-ring buffer belongs: its buffer id in the ring and its registration index.
#[derive(Debug, Clone, Copy)]
struct RingBuf {
    bid: u16,
    registered: Option<u16>,
}

impl RecvBytes {
    fn heap(bytes: Vec<u8>) -> Rc<RecvBytes> {
        Rc::new(RecvBytes {
            bytes,
            head: 0,
            replaced_lent: Cell::new(false),
            ring: None,
        })
    }
}

impl Drop for RecvBytes {
    fn drop(&mut self) {
        if self.replaced_lent.get() {
            let _ = REPLACED_LENT.try_with(|n| n.set(n.get().saturating_sub(1)));
        }
        let bytes = std::mem::take(&mut self.bytes);
        if let Some(r) = self.ring {
            // Back to the ring (the reactor hands it to the kernel again). During thread
            // teardown the ring may be gone already; the memory is then just freed.
            let _ = RECV_RING.try_with(|ring| {
                let mut ring = ring.borrow_mut();
                if let Some(slot) = ring.slots.get_mut(usize::from(r.bid)) {
                    *slot = Some(bytes);
                    ring.returned.push(r.bid);
                }
            });
            return;
        }
        if bytes.is_empty() {
            return;
        }
        let _ = SPARE_RECV.try_with(|s| {
            let mut s = s.borrow_mut();
            // The oldest spare goes first: the newest are the likeliest still in the cache.
            if s.len() >= SPARE_RECV_BUFS {
                s.remove(0);
            }
            s.push(bytes);
        });
    }
}

/// Receive buffers a thread keeps for reuse (more are freed), and receive buffers its
/// connections may have moved on from while writes still hold views of them.
pub const SPARE_RECV_BUFS: usize = 16;

thread_local! {
    /// Zeros shared by the null store's reads on this thread ([`IoBuf::zeros`]): a zeroed
    /// allocation never written, grown to the longest read asked for.
    static ZEROS: RefCell<Option<Rc<RecvBytes>>> = const { RefCell::new(None) };
    static SPARE_RECV: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// Receive buffers replaced while lent out and not yet dropped, on this thread.
    static REPLACED_LENT: Cell<usize> = const { Cell::new(0) };
    /// Receive buffers allocated (not reused) on this thread.
    static RECV_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static RECV_RING: RefCell<RecvRing> = RefCell::new(RecvRing::default());
}

/// This thread's receive ring: buffers its reactor provides to the kernel (an io_uring provided
/// buffer ring), which picks one for a connection's receive when data arrives. A buffer the
/// kernel filled is a [`RecvBuf`] until it and every view lent from it are dropped; it then
/// goes back to `slots` and its id to `returned`, for the reactor to provide again. So an idle
/// connection holds no receive memory, and write data received with its header is in
/// registered memory.
#[derive(Default)]
struct RecvRing {
    /// By buffer id: the memory while the kernel may receive into it (`None` while a
    /// `RecvBuf` has it).
    slots: Vec<Option<Vec<u8>>>,
    /// Ids given back since the reactor last provided them again.
    returned: Vec<u16>,
    /// Registration index of buffer 0 (the others follow it).
    first_registered: Option<u16>,
}

/// Bytes of a PDU before its data segment when it has neither AHS nor header digest: the
/// common case, for which receive-ring buffers are placed (see [`ring_buffer_head`]).
const PLAIN_HEADER_LEN: usize = 48;

/// Where a receive-ring buffer starts in its memory at `addr`: so that the data segment of a
/// PDU received at its start (a ring buffer is only ever received into at a PDU boundary) lies
/// on an `IO_ALIGN` boundary when the PDU has a plain 48-byte header. Write data received with
/// its header then meets any direct-I/O memory alignment as it is, and goes to the device from
/// the ring buffer (`WRITE_FIXED`) instead of through an aligned copy. Later PDUs of the same
/// receive lie where the stream puts them. Costs under 4 KiB of each buffer.
fn ring_buffer_head(addr: usize) -> usize {
    (IO_ALIGN - (addr + PLAIN_HEADER_LEN) % IO_ALIGN) % IO_ALIGN
}

/// Creates this thread's receive ring of `count` buffers in `size` bytes of memory each;
/// returns the buffers (placed in that memory by [`ring_buffer_head`], so each is a little
/// shorter) by buffer id. Every buffer starts out provided (the caller provides them all to the
/// kernel). `count == 0` removes the ring.
pub fn install_recv_ring(count: u16, size: usize) -> Vec<Region> {
    assert!(
        count == 0 || size > IO_ALIGN,
        "receive-ring buffers larger than their placement"
    );
    let mut slots = Vec::with_capacity(usize::from(count));
    let mut regions = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let mut mem = vec![0u8; size];
        let head = ring_buffer_head(mem.as_ptr() as usize);
        regions.push(Region {
            addr: mem[head..].as_mut_ptr(),
            len: size - head,
        });
        slots.push(Some(mem));
    }
    RECV_RING.with(|r| {
        *r.borrow_mut() = RecvRing {
            slots,
            returned: Vec::new(),
            first_registered: None,
        }
    });
    regions
}

/// The receive ring's buffers were registered with the ring from index `first` on (or not).
pub fn set_recv_ring_registered(first: Option<u16>) {
    RECV_RING.with(|r| r.borrow_mut().first_registered = first);
}

/// Moves the ids of receive-ring buffers given back since the last call into `out`.
pub fn take_returned_recv_bufs(out: &mut Vec<u16>) {
    RECV_RING.with(|r| out.append(&mut r.borrow_mut().returned));
}

/// Receive-ring buffers, and how many of them are out of the ring now (held by a connection
/// or by write data lent from them).
pub fn recv_ring_usage() -> (usize, usize) {
    RECV_RING.with(|r| {
        let r = r.borrow();
        let out = r.slots.iter().filter(|s| s.is_none()).count();
        (r.slots.len(), out)
    })
}

impl RecvBuf {
    /// A receive buffer of at least `len` bytes (a multiple of the page size; a spare may be
    /// larger). Reused memory keeps older bytes: only what is received into it is ever read or
    /// lent. The spare given back last is taken first, as it is the likeliest still in the cache.
    pub fn new(len: usize) -> RecvBuf {
        let want = len.div_ceil(IO_ALIGN).max(1) * IO_ALIGN;
        let reused = SPARE_RECV
            .try_with(|s| {
                let mut s = s.borrow_mut();
                let i = s.iter().rposition(|b| b.len() >= want)?;
                Some(s.remove(i))
            })
            .ok()
            .flatten();
        let bytes = reused.unwrap_or_else(|| {
            RECV_ALLOCATIONS.with(|n| n.set(n.get() + 1));
            vec![0; want]
        });
        RecvBuf(RecvBytes::heap(bytes))
    }

    /// The receive-ring buffer `bid`, which the kernel has just received into; `None` if this
    /// thread's ring has no such buffer provided (a completion that names a buffer twice).
    pub fn from_ring(bid: u16) -> Option<RecvBuf> {
        RECV_RING.with(|r| {
            let mut r = r.borrow_mut();
            let registered = r.first_registered.and_then(|f| f.checked_add(bid));
            let bytes = r.slots.get_mut(usize::from(bid))?.take()?;
            Some(RecvBuf(Rc::new(RecvBytes {
                head: ring_buffer_head(bytes.as_ptr() as usize),
                bytes,
                replaced_lent: Cell::new(false),
                ring: Some(RingBuf { bid, registered }),
            })))
        })
    }

    /// Whether this is a buffer of the thread's receive ring.
    pub fn is_from_ring(&self) -> bool {
        self.0.ring.is_some()
    }

    pub fn len(&self) -> usize {
        self.0.bytes.len() - self.0.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0.bytes[self.0.head..]
    }

    /// The whole buffer for receiving into, unless a view of it is still alive.
    pub fn spare_mut(&mut self) -> Option<&mut [u8]> {
        Rc::get_mut(&mut self.0).map(|b| &mut b.bytes[b.head..])
    }

    /// Whether some of the buffer is lent out (so it must not be received into).
    pub fn is_lent(&self) -> bool {
        Rc::strong_count(&self.0) > 1
    }

    /// Copies `self[from]` to the start of `into` (grown to hold it if needed): the beginning of
    /// a PDU cut by the end of a receive-ring buffer, which the connection's own buffer
    /// receives the rest of. Counted (`PoolUsage::carried_bytes`).
    pub fn carry(&self, from: std::ops::Range<usize>, into: &mut RecvBuf) {
        if from.is_empty() {
            return;
        }
        if into.spare_mut().is_none_or(|b| b.len() < from.len()) {
            // (`replace` also counts a lent buffer left behind.)
            let len = from.len().max(into.len());
            into.replace(0..0, len);
        }
        if let Some(b) = into.spare_mut() {
            b[..from.len()].copy_from_slice(&self.as_slice()[from.clone()]);
            CARRIED_BYTES.with(|n| n.set(n.get() + from.len() as u64));
        }
    }

    /// Moves `self[keep]` to the start of a buffer of at least `len` bytes, which then replaces
    /// this one (views of the old buffer keep it alive until they are dropped).
    pub fn replace(&mut self, keep: std::ops::Range<usize>, len: usize) {
        let mut next = RecvBuf::new(len.max(keep.len()));
        if let Some(dst) = next.spare_mut() {
            dst[..keep.len()].copy_from_slice(&self.as_slice()[keep]);
        }
        // A receive-ring buffer is bounded by the ring, not by the spares.
        if self.is_lent() && !self.is_from_ring() {
            self.0.replaced_lent.set(true);
            REPLACED_LENT.with(|n| n.set(n.get() + 1));
        }
        *self = next;
    }

    /// Whether this thread's connections may lend out more of their receive buffers: fewer than
    /// [`SPARE_RECV_BUFS`] of them were replaced while lent and are still held. This bounds the
    /// memory lending adds per thread, and keeps the spares enough for every replacement, so that
    /// a core with many connections does not allocate (and zero) a receive buffer per receive.
    pub fn may_lend() -> bool {
        REPLACED_LENT.with(Cell::get) < SPARE_RECV_BUFS
    }
}

/// Budget charged for memory that is not an `IoBuf`; released on drop.
#[derive(Debug)]
pub struct Hold(Charge);

impl Hold {
    /// The bytes charged.
    pub fn bytes(&self) -> usize {
        self.0.bytes
    }
}

/// One size class of the pool: equal-sized buffers with their registration indexes.
struct SizeClass {
    size: usize,
    free: Vec<(u16, Vec<Page>)>,
}

/// The calling thread's pool of registered buffers, smallest size class first.
#[derive(Default)]
struct Pool {
    classes: Vec<SizeClass>,
    /// Buffers the pool was made with.
    registered: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
    /// Buffers this thread took from the heap because the pool had none that fitted.
    static HEAP_FALLBACKS: Cell<u64> = const { Cell::new(0) };
    /// Bytes lent out of receive buffers ([`Budget::lend`]), and of those, unshared again.
    static LENT_BYTES: Cell<u64> = const { Cell::new(0) };
    static REALIGNED_BYTES: Cell<u64> = const { Cell::new(0) };
    /// Bytes copied out of receive-ring buffers into connections' own ([`RecvBuf::carry`]).
    static CARRIED_BYTES: Cell<u64> = const { Cell::new(0) };
    /// Write data copied into the buffer it is written from ([`IoBuf::copy_write_data`]).
    static COPIED_WRITE_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// What this thread's buffers have done (its reactor's report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Registered buffers the pool was made with, and of those, how many are free now.
    pub registered: usize,
    pub free: usize,
    /// Buffers taken from the heap because the pool had none that fitted.
    pub heap_fallbacks: u64,
    /// Write data lent out of receive buffers (written from where it was received).
    pub lent_bytes: u64,
    /// Of those, bytes copied after all, into an aligned buffer for direct I/O.
    pub realigned_bytes: u64,
    /// Bytes of PDUs cut by the end of a receive-ring buffer, copied to a connection's own.
    pub carried_bytes: u64,
    /// Write data copied from where it was received into the buffer it is written from.
    pub copied_write_bytes: u64,
}

/// This thread's pool and lending so far.
pub fn pool_usage() -> PoolUsage {
    let (registered, free) = POOL.with(|p| {
        let p = p.borrow();
        let free = p.classes.iter().map(|c| c.free.len()).sum();
        (p.registered, free)
    });
    PoolUsage {
        registered,
        free,
        heap_fallbacks: HEAP_FALLBACKS.with(Cell::get),
        lent_bytes: LENT_BYTES.with(Cell::get),
        realigned_bytes: REALIGNED_BYTES.with(Cell::get),
        carried_bytes: CARRIED_BYTES.with(Cell::get),
        copied_write_bytes: COPIED_WRITE_BYTES.with(Cell::get),
    }
}

/// Memory of one registered buffer, for `io_uring_register_buffers`.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub addr: *mut u8,
    pub len: usize,
}

/// Creates this thread's pool: `count` buffers of each `size` (sizes rounded up to pages).
/// Returns their memory regions in registration-index order; the caller registers them with its
/// ring before any buffer is handed out. Called on the reactor's thread once it is pinned, so
/// that the pages are on that core's NUMA node.
pub fn install_pool(classes: &[(usize, usize)]) -> Vec<Region> {
    let mut regions = Vec::new();
    let mut pool = Pool::default();
    let mut sorted = classes.to_vec();
    sorted.sort_unstable();
    for (size, count) in sorted {
        let pages = size.div_ceil(IO_ALIGN);
        let mut class = SizeClass {
            size: pages * IO_ALIGN,
            free: Vec::with_capacity(count),
        };
        for _ in 0..count {
            let Ok(index) = u16::try_from(regions.len()) else {
                break;
            };
            let mut mem = vec![Page([0; IO_ALIGN]); pages];
            regions.push(Region {
                addr: mem.as_mut_ptr().cast::<u8>(),
                len: pages * IO_ALIGN,
            });
            class.free.push((index, mem));
        }
        pool.classes.push(class);
    }
    pool.registered = regions.len();
    POOL.with(|p| *p.borrow_mut() = pool);
    regions
}

fn take_from_pool(len: usize) -> Option<(u16, Vec<Page>)> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        p.classes
            .iter_mut()
            .find(|c| c.size >= len && !c.free.is_empty())
            .and_then(|c| c.free.pop())
    })
}

impl IoBuf {
    /// A buffer whose contents are unspecified (a reused pool buffer keeps earlier bytes): for
    /// reads that fill it, or writes that overwrite it, entirely.
    pub fn alloc(len: usize) -> Self {
        match take_from_pool(len) {
            Some((index, pages)) => IoBuf {
                pages,
                len,
                registered: Some(index),
                charge: None,
                view: None,
            },
            None => {
                HEAP_FALLBACKS.with(|n| n.set(n.get() + 1));
                Self::heap(len)
            }
        }
    }

    /// A zero-filled buffer.
    pub fn zeroed(len: usize) -> Self {
        let mut b = Self::alloc(len);
        if b.registered.is_some() {
            b.as_mut_slice().fill(0);
        }
        b
    }

    fn heap(len: usize) -> Self {
        IoBuf {
            pages: vec![Page([0; IO_ALIGN]); len.div_ceil(IO_ALIGN)],
            len,
            registered: None,
            charge: None,
            view: None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes: a multiple of the alignment, or a view's length.
    pub fn capacity(&self) -> usize {
        match self.view {
            Some(_) => self.len,
            None => self.pages.len() * IO_ALIGN,
        }
    }

    /// `len` zero bytes, read-only: a view of one zeroed region per thread, so that a null
    /// store's read neither fills a buffer nor holds memory of its own (the region's pages are
    /// never written, so they stay the kernel's shared zero page). Charged to no budget, as it
    /// takes no memory; writing into it copies it first, like any view.
    pub fn zeros(len: usize) -> IoBuf {
        let whole = ZEROS.with(|z| {
            let mut z = z.borrow_mut();
            match z.as_ref() {
                Some(whole) if whole.bytes.len() >= len => Rc::clone(whole),
                _ => {
                    let size = len.max(IO_ALIGN).next_power_of_two();
                    let whole = RecvBytes::heap(vec![0u8; size]);
                    *z = Some(Rc::clone(&whole));
                    whole
                }
            }
        });
        IoBuf {
            pages: Vec::new(),
            len,
            registered: None,
            charge: None,
            view: Some((whole, 0)),
        }
    }

    /// The registration index for `READ_FIXED` / `WRITE_FIXED`, if this is a pool buffer.
    pub fn registered_index(&self) -> Option<u16> {
        self.registered
    }

    /// Whether this is a view of received bytes ([`Budget::lend`]).
    pub fn is_view(&self) -> bool {
        self.view.is_some()
    }

    /// Whether the bytes start at an address that is a multiple of `align` (always so for
    /// 4096 and below, except for a view).
    pub fn is_aligned_to(&self, align: usize) -> bool {
        (self.as_slice().as_ptr() as usize).is_multiple_of(align.max(1))
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.view {
            Some((whole, start)) => &whole.bytes[*start..*start + self.len],
            None => &bytemuck::cast_slice::<Page, u8>(&self.pages)[..self.len],
        }
    }

    /// The bytes, writable; a view is first copied into a buffer of its own ([`IoBuf::unshare`]).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.unshare();
        &mut bytemuck::cast_slice_mut::<Page, u8>(&mut self.pages)[..self.len]
    }

    /// Copies received write data `data` into this buffer at `at` (the caller keeps it within
    /// the buffer). Every user-space copy of write payload goes through here, so that the
    /// reactor's report shows what receiving in place missed.
    pub fn copy_write_data(&mut self, at: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.as_mut_slice()[at..at + data.len()].copy_from_slice(data);
        COPIED_WRITE_BYTES.with(|n| n.set(n.get() + data.len() as u64));
    }

    /// Makes a view an ordinary, aligned buffer holding the same bytes (one copy); keeps its
    /// charge. Nothing to do for other buffers.
    pub fn unshare(&mut self) {
        let Some((whole, start)) = self.view.take() else {
            return;
        };
        REALIGNED_BYTES.with(|n| n.set(n.get() + self.len as u64));
        let mut own = IoBuf::alloc(self.len);
        own.as_mut_slice()
            .copy_from_slice(&whole.bytes[start..start + self.len]);
        self.pages = std::mem::take(&mut own.pages);
        self.registered = own.registered.take();
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        // A view's registration is its receive buffer's, which goes back on its own.
        if self.view.is_some() {
            return;
        }
        let Some(index) = self.registered else { return };
        let pages = std::mem::take(&mut self.pages);
        let size = pages.len() * IO_ALIGN;
        // During thread teardown the pool may already be gone; the memory is then just freed.
        let _ = POOL.try_with(|p| {
            if let Some(c) = p.borrow_mut().classes.iter_mut().find(|c| c.size == size) {
                c.free.push((index, pages));
            }
        });
    }
}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IoBuf({} bytes, registered {:?}, view {})",
            self.len,
            self.registered,
            self.view.is_some()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_buffers_share_one_region_and_copy_before_a_write() {
        std::thread::spawn(|| {
            let a = IoBuf::zeros(4096);
            let b = IoBuf::zeros(512);
            assert_eq!(
                a.as_slice().as_ptr(),
                b.as_slice().as_ptr(),
                "one shared region"
            );
            assert!(a.as_slice().iter().all(|&x| x == 0) && b.len() == 512);
            // A longer one grows the region; the views already out keep theirs.
            let big = IoBuf::zeros(1 << 20);
            assert!(big.as_slice().iter().all(|&x| x == 0));
            assert_eq!(
                IoBuf::zeros(8192).as_slice().as_ptr(),
                big.as_slice().as_ptr()
            );
            let mut c = IoBuf::zeros(4096);
            c.as_mut_slice().fill(9);
            assert!(c.as_slice().iter().all(|&x| x == 9));
            assert!(
                IoBuf::zeros(4096).as_slice().iter().all(|&x| x == 0),
                "still zeros"
            );
            assert!(a.as_slice().iter().all(|&x| x == 0));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn buffers_are_page_aligned_and_sized() {
        for len in [0, 1, 512, 4096, 4097, 1 << 20] {
            let mut b = IoBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_slice().as_ptr() as usize % IO_ALIGN, 0);
            assert!(b.capacity() >= len);
            b.as_mut_slice().fill(7);
            assert!(b.as_slice().iter().all(|&x| x == 7));
        }
    }

    #[test]
    fn pool_buffers_return_on_drop_and_heap_takes_over_when_empty() {
        std::thread::spawn(|| {
            let regions = install_pool(&[(8192, 2), (65536, 1)]);
            assert_eq!(regions.len(), 3);
            let a = IoBuf::alloc(4096);
            let b = IoBuf::alloc(8192);
            assert!(a.registered_index().is_some() && b.registered_index().is_some());
            assert_ne!(a.registered_index(), b.registered_index());
            // The 8 KiB class is empty, so the next small buffer comes from the 64 KiB class,
            // and after that from the heap.
            let c = IoBuf::alloc(100);
            assert_eq!(c.capacity(), 65536);
            let d = IoBuf::alloc(100);
            assert!(d.registered_index().is_none());
            let index = a.registered_index();
            drop(a);
            let e = IoBuf::alloc(10);
            assert_eq!(e.registered_index(), index);
            assert_eq!(
                e.as_slice().as_ptr(),
                regions[usize::from(index.unwrap())].addr.cast_const()
            );
            // Too large for every class: heap.
            assert!(IoBuf::alloc(1 << 20).registered_index().is_none());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn budget_counts_buffers_until_dropped_wherever_they_go() {
        let budget = Budget::new(10_000);
        let a = budget.alloc_gated(6_000);
        assert_eq!(budget.used(), 6_000);
        assert!(budget.admits(4_000));
        assert!(!budget.admits(4_001));
        // Data the protocol obliges the target to take is charged even past the limit.
        let b = budget.alloc(8_000);
        assert_eq!(budget.used(), 14_000);
        assert!(!budget.admits(1));
        let moved = vec![a];
        drop(moved);
        // No gated buffer left: the next one is admitted whatever its size, so that one transfer
        // larger than the budget still progresses.
        assert!(budget.admits(1 << 20));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn zeroed_pool_buffer_has_no_stale_bytes() {
        std::thread::spawn(|| {
            install_pool(&[(4096, 1)]);
            let mut a = IoBuf::alloc(4096);
            a.as_mut_slice().fill(0xee);
            drop(a);
            let b = IoBuf::zeroed(4096);
            assert!(b.registered_index().is_some());
            assert!(b.as_slice().iter().all(|&x| x == 0));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_lent_view_shares_received_bytes_until_written_to() {
        std::thread::spawn(|| {
            let budget = Budget::new(1 << 20);
            let mut rx = RecvBuf::new(8192);
            rx.spare_mut().unwrap()[100..200].fill(9);
            assert!(
                budget.lend(&rx, 8000..8193, false).is_none(),
                "past the buffer"
            );
            let mut view = budget.lend(&rx, 100..200, false).unwrap();
            assert!(view.is_view());
            assert_eq!(budget.used(), 100);
            assert_eq!(view.as_slice().as_ptr(), rx.as_slice()[100..].as_ptr());
            assert!(!view.is_aligned_to(512));
            // While lent, the buffer cannot be received into.
            assert!(rx.is_lent());
            assert!(rx.spare_mut().is_none());
            // Writing copies first: the receive buffer keeps its bytes.
            view.as_mut_slice()[0] = 1;
            assert!(!view.is_view());
            assert!(view.is_aligned_to(IO_ALIGN));
            assert_eq!(view.as_slice()[..2], [1, 9]);
            assert_eq!(rx.as_slice()[100], 9);
            assert!(!rx.is_lent());
            drop(view);
            assert_eq!(budget.used(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_replaced_receive_buffer_lives_while_lent_then_is_reused() {
        std::thread::spawn(|| {
            let budget = Budget::new(1 << 20);
            let mut rx = RecvBuf::new(4096);
            rx.spare_mut().unwrap()[..6].copy_from_slice(b"abcdef");
            let view = budget.lend(&rx, 0..3, false).unwrap();
            let old_addr = rx.as_slice().as_ptr();
            let mut others = Vec::new();
            for _ in 0..SPARE_RECV_BUFS - 1 {
                let mut other = RecvBuf::new(8192);
                others.push(budget.lend(&other, 0..1, false).unwrap());
                other.replace(0..0, 8192);
            }
            assert!(RecvBuf::may_lend());
            rx.replace(3..6, 4096);
            assert_eq!(&rx.as_slice()[..3], b"def");
            assert!(rx.spare_mut().is_some());
            assert!(
                !RecvBuf::may_lend(),
                "as many replaced buffers lent out as spares"
            );
            assert_eq!(view.as_slice(), b"abc");
            drop(view);
            assert!(RecvBuf::may_lend());
            // The old buffer is kept, and is the first taken for a receive buffer it can be.
            let next = RecvBuf::new(4096);
            assert_eq!(next.as_slice().as_ptr(), old_addr);
            drop(others);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn receive_ring_buffers_lend_registered_views_and_come_back_when_all_are_dropped() {
        std::thread::spawn(|| {
            // Room for a 4 KiB payload after the header wherever the allocator puts the
            // memory: the placement takes up to IO_ALIGN - 1 bytes of its start.
            const SIZE: usize = 8192 + IO_ALIGN;
            let regions = install_recv_ring(2, SIZE);
            set_recv_ring_registered(Some(10));
            assert_eq!(recv_ring_usage(), (2, 0));
            let budget = Budget::new(1 << 20);
            let mut rx = RecvBuf::from_ring(1).expect("provided");
            assert!(rx.is_from_ring());
            assert_eq!(rx.as_slice().as_ptr(), regions[1].addr.cast_const());
            assert!(RecvBuf::from_ring(1).is_none(), "the kernel has it once");
            assert!(RecvBuf::from_ring(2).is_none(), "no such buffer");
            assert_eq!(recv_ring_usage(), (2, 1));
            rx.spare_mut().unwrap()[48..4144].fill(5);
            let mut view = budget.lend(&rx, 48..4144, false).unwrap();
            assert_eq!(view.registered_index(), Some(11), "the ring buffer's index");
            assert_eq!(
                view.as_slice().as_ptr(),
                regions[1].addr.wrapping_add(48).cast_const()
            );
            // The data of a plain-header PDU received at the buffer's start meets any
            // direct-I/O alignment as it is: no copy before its write.
            for r in &regions {
                assert!(r.len > SIZE - IO_ALIGN && r.len <= SIZE);
                assert!((r.addr as usize + 48).is_multiple_of(IO_ALIGN));
            }
            assert!(view.is_aligned_to(IO_ALIGN));
            assert_eq!(rx.len(), regions[1].len);
            // Not back while the view holds it; a view's drop does not return it to the pool.
            drop(rx);
            let mut returned = Vec::new();
            take_returned_recv_bufs(&mut returned);
            assert!(returned.is_empty());
            let copy = {
                let mut c = budget
                    .lend(&RecvBuf::from_ring(0).unwrap(), 0..16, false)
                    .unwrap();
                c.as_mut_slice()[0] = 1;
                c
            };
            assert_eq!(
                copy.registered_index(),
                None,
                "a written view is a copy of its own"
            );
            assert!(view.as_slice().iter().all(|&b| b == 5));
            view.unshare();
            assert_eq!(view.registered_index(), None);
            take_returned_recv_bufs(&mut returned);
            assert_eq!(returned, [0, 1]);
            assert_eq!(recv_ring_usage(), (2, 0));
            assert_eq!(pool_usage().registered, 0, "nothing entered the pool");
            let again = RecvBuf::from_ring(1).unwrap();
            assert_eq!(again.as_slice().as_ptr(), regions[1].addr.cast_const());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn spares_of_another_size_do_not_stop_receive_buffers_being_reused() {
        std::thread::spawn(|| {
            let budget = Budget::new(1 << 20);
            // Idle connections' small buffers fill the spares.
            let small: Vec<RecvBuf> = (0..SPARE_RECV_BUFS).map(|_| RecvBuf::new(4096)).collect();
            drop(small);
            let mut rx = RecvBuf::new(256 << 10);
            let allocated = RECV_ALLOCATIONS.with(Cell::get);
            for _ in 0..8 {
                let view = budget.lend(&rx, 0..1, false).unwrap();
                let len = rx.len();
                rx.replace(0..0, len);
                drop(view);
            }
            let more = RECV_ALLOCATIONS.with(Cell::get) - allocated;
            assert!(
                more <= 1,
                "{more} receive buffers allocated for 8 replacements"
            );
        })
        .join()
        .unwrap();
    }
}
