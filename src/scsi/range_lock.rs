//! Logical-block range locks of one logical unit, shared by every core: what makes COMPARE AND
//! WRITE (VMware ATS) and ORWRITE atomic against every other writer (SBC-3: no other command
//! may change those blocks between the compare and the write).
//!
//! Ordinary writes pay one uncontended atomic increment of their own core's counter while no
//! exclusive lock exists. An exclusive locker first announces itself (`exclusive` > 0), which
//! sends every later write through the mutex-protected table, then waits for the writes that
//! took the fast path before its announcement. Both sides use SeqCst: a writer increments its
//! counter and then reads `exclusive`; a locker increments `exclusive` and then reads the
//! counters, so at least one of them sees the other (Dekker).
//!
//! Nothing here blocks: a request that cannot proceed is told so and retries later.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

/// Per-core counter slots; cores beyond this share slots, which stays correct (the counters are
/// atomic) at the cost of some contention.
const CORE_SLOTS: usize = 64;

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    id: u64,
    start: u64,
    end: u64,
    exclusive: bool,
}

impl Held {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }
}

pub struct RangeLocks {
    /// Exclusive locks held or being acquired.
    exclusive: AtomicU32,
    /// Fast-path writes in flight, per core.
    fast: [Padded; CORE_SLOTS],
    table: Mutex<Vec<Held>>,
    next_id: AtomicU64,
}

impl Default for RangeLocks {
    fn default() -> Self {
        RangeLocks {
            exclusive: AtomicU32::new(0),
            fast: std::array::from_fn(|_| Padded::default()),
            table: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }
}

impl std::fmt::Debug for RangeLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeLocks")
            .field("exclusive", &self.exclusive.load(SeqCst))
            .finish_non_exhaustive()
    }
}

/// How an ordinary write was admitted; hand it back to [`RangeLocks::end_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLock {
    /// No exclusive lock existed: counted on the core's counter.
    Fast { core: usize },
    /// Registered in the table (while exclusive locks existed).
    Shared { id: u64 },
}

impl RangeLocks {
    fn table(&self) -> MutexGuard<'_, Vec<Held>> {
        // A panic while holding the lock leaves a consistent Vec (every change is one push or
        // one retain).
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits an ordinary write of blocks [start, end) from `core`, or `None` while an
    /// overlapping exclusive lock is held (retry later).
    pub fn begin_write(&self, core: usize, start: u64, end: u64) -> Option<WriteLock> {
        let slot = &self.fast[core % CORE_SLOTS].0;
        slot.fetch_add(1, SeqCst);
        if self.exclusive.load(SeqCst) == 0 {
            return Some(WriteLock::Fast { core });
        }
        slot.fetch_sub(1, SeqCst);
        let mut table = self.table();
        if table.iter().any(|h| h.exclusive && h.overlaps(start, end)) {
            return None;
        }
        let id = self.next_id.fetch_add(1, SeqCst);
        table.push(Held {
            id,
            start,
            end,
            exclusive: false,
        });
        Some(WriteLock::Shared { id })
    }

    /// The write admitted with `lock` has reached the medium (or failed).
    pub fn end_write(&self, lock: WriteLock) {
        match lock {
            WriteLock::Fast { core } => {
                self.fast[core % CORE_SLOTS].0.fetch_sub(1, SeqCst);
            }
            WriteLock::Shared { id } => self.table().retain(|h| h.id != id),
        }
    }

    /// Starts acquiring an exclusive lock on [start, end). Poll the returned request with
    /// [`RangeLocks::poll_exclusive`] until it is granted; dropping it gives up.
    pub fn request_exclusive(self: &Arc<Self>, start: u64, end: u64) -> ExclusiveRequest {
        self.exclusive.fetch_add(1, SeqCst);
        ExclusiveRequest {
            locks: self.clone(),
            start,
            end,
            held: None,
        }
    }

    fn fast_writes(&self) -> u32 {
        self.fast.iter().map(|p| p.0.load(SeqCst)).sum()
    }
}

/// An exclusive lock being acquired or held; released (and its announcement withdrawn) when
/// dropped.
pub struct ExclusiveRequest {
    locks: Arc<RangeLocks>,
    start: u64,
    end: u64,
    held: Option<u64>,
}

impl std::fmt::Debug for ExclusiveRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ExclusiveRequest[{}, {}) held={:?}",
            self.start, self.end, self.held
        )
    }
}

impl ExclusiveRequest {
    /// Whether the lock is held now: no overlapping lock is registered and no write admitted
    /// on the fast path before the announcement is still in flight.
    pub fn poll(&mut self) -> bool {
        if self.held.is_some() {
            return true;
        }
        if self.locks.fast_writes() != 0 {
            return false;
        }
        let mut table = self.locks.table();
        if table.iter().any(|h| h.overlaps(self.start, self.end)) {
            return false;
        }
        let id = self.locks.next_id.fetch_add(1, SeqCst);
        table.push(Held {
            id,
            start: self.start,
            end: self.end,
            exclusive: true,
        });
        self.held = Some(id);
        true
    }

    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

impl Drop for ExclusiveRequest {
    fn drop(&mut self) {
        if let Some(id) = self.held {
            self.locks.table().retain(|h| h.id != id);
        }
        self.locks.exclusive.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_take_the_fast_path_until_an_exclusive_lock_is_announced() {
        let locks = Arc::new(RangeLocks::default());
        let w = locks.begin_write(0, 0, 8).unwrap();
        assert_eq!(w, WriteLock::Fast { core: 0 });
        let mut caw = locks.request_exclusive(4, 5);
        assert!(!caw.poll(), "a fast write admitted before may overlap");
        // Writes arriving now go through the table; one that does not overlap proceeds.
        let other = locks.begin_write(1, 100, 108).unwrap();
        assert!(matches!(other, WriteLock::Shared { .. }));
        locks.end_write(w);
        assert!(caw.poll(), "the write in the table does not overlap");
        locks.end_write(other);
    }

    #[test]
    fn an_exclusive_lock_waits_for_overlapping_writes_and_blocks_new_ones() {
        let locks = Arc::new(RangeLocks::default());
        let mut caw = locks.request_exclusive(4, 5);
        let w = locks.begin_write(0, 0, 8).unwrap();
        assert!(matches!(w, WriteLock::Shared { .. }));
        assert!(!caw.poll(), "an overlapping write is in flight");
        locks.end_write(w);
        assert!(caw.poll());
        assert!(
            locks.begin_write(1, 4, 5).is_none(),
            "overlapping writes wait"
        );
        assert!(locks.begin_write(1, 5, 6).is_some(), "others do not");
        let mut second = locks.request_exclusive(0, 8);
        assert!(!second.poll());
        drop(caw);
        assert!(
            !second.poll(),
            "the non-overlapping write [5,6) is still registered"
        );
    }

    #[test]
    fn writers_and_lockers_on_many_threads_never_overlap() {
        // A shared "medium" of one word: a locker reads, checks and writes it back incremented
        // while holding the lock; writers add to it only when admitted. Counting everything
        // that happened checks that no write landed inside a lock.
        use std::sync::atomic::AtomicI64;
        let locks = Arc::new(RangeLocks::default());
        let inside = Arc::new(AtomicI64::new(0));
        let violations = Arc::new(AtomicI64::new(0));
        let mut threads = Vec::new();
        for t in 0..4usize {
            let (locks, inside, violations) = (locks.clone(), inside.clone(), violations.clone());
            threads.push(std::thread::spawn(move || {
                for _ in 0..2000 {
                    if t % 2 == 0 {
                        let mut req = locks.request_exclusive(0, 1);
                        while !req.poll() {
                            std::hint::spin_loop();
                        }
                        inside.fetch_add(1, SeqCst);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, SeqCst);
                    } else if let Some(w) = locks.begin_write(t, 0, 1) {
                        if inside.load(SeqCst) != 0 {
                            violations.fetch_add(1, SeqCst);
                        }
                        locks.end_write(w);
                    }
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(violations.load(SeqCst), 0);
        assert_eq!(locks.exclusive.load(SeqCst), 0);
        assert_eq!(locks.fast_writes(), 0);
        assert!(locks.table().is_empty());
    }
}
