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
pub struct IoBuf {
    pages: Vec<Page>,
    len: usize,
    /// Index of the registered buffer these pages are, when they came from the pool.
    registered: Option<u16>,
    /// The budget this buffer's bytes are counted against, released when the buffer is dropped.
    charge: Option<Charge>,
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
        self.used() + bytes <= self.0.limit || self.0.gated.get() == 0
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
}

/// Budget charged for memory that is not an `IoBuf`; released on drop.
#[derive(Debug)]
pub struct Hold(#[allow(dead_code)] Charge);

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
}

/// This thread's pool: (registered buffers, of which free now, heap fallbacks so far).
pub fn pool_usage() -> (usize, usize, u64) {
    let (total, free) = POOL.with(|p| {
        let p = p.borrow();
        let free = p.classes.iter().map(|c| c.free.len()).sum();
        (p.registered, free)
    });
    (total, free, HEAP_FALLBACKS.with(Cell::get))
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
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes, a multiple of the alignment.
    pub fn capacity(&self) -> usize {
        self.pages.len() * IO_ALIGN
    }

    /// The registration index for `READ_FIXED` / `WRITE_FIXED`, if this is a pool buffer.
    pub fn registered_index(&self) -> Option<u16> {
        self.registered
    }

    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice::<Page, u8>(&self.pages)[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Page, u8>(&mut self.pages)[..self.len]
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
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
            "IoBuf({} bytes, registered {:?})",
            self.len, self.registered
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
