//! State of a logical unit shared by every core (DESIGN.md §1 "Shared LU state"): reservations
//! and the unit attentions one nexus's action raises for the others.
//!
//! One writer (the control thread) publishes immutable snapshots; every core reads the current
//! one on each command with a single atomic load of the generation, taking the lock only when
//! the generation moved. Unit attentions for other nexuses travel as a bounded log of events in
//! the snapshot: each session imports the events addressed to its nexus that it has not seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::medium::MediumState;
use super::pr::{ItNexus, PrState};
use super::range_lock::RangeLocks;
use super::ua::UnitAttention;

/// Events kept in a snapshot. A session that misses more than this (it sent no command while
/// that many events happened) is told that something changed with one catch-all attention.
pub const MAX_EVENTS: usize = 256;

/// Which I_T nexuses a unit attention event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaScope {
    All,
    AllExcept(ItNexus),
    Only(Vec<ItNexus>),
}

impl UaScope {
    pub fn includes(&self, nexus: &ItNexus) -> bool {
        match self {
            UaScope::All => true,
            UaScope::AllExcept(n) => n != nexus,
            UaScope::Only(list) => list.contains(nexus),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaEvent {
    /// Increases by one per event of the logical unit.
    pub seq: u64,
    pub scope: UaScope,
    pub ua: UnitAttention,
}

/// What every core sees of a logical unit's shared state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LuSnapshot {
    pub generation: u64,
    pub pr: PrState,
    /// The most recent unit attention events, oldest first.
    pub events: Arc<[UaEvent]>,
    /// Logical blocks, once the backing store has changed size (an RBD image resized in the
    /// cluster); `None` while it has the size it had at start-up.
    pub capacity: Option<u64>,
}

impl LuSnapshot {
    /// Sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.events.last().map_or(1, |e| e.seq + 1)
    }

    /// The events after `seen` addressed to `nexus`, and whether some were already dropped from
    /// the log (the caller then raises a catch-all attention).
    pub fn events_for<'a>(
        &'a self,
        nexus: &'a ItNexus,
        seen: u64,
    ) -> (impl Iterator<Item = UnitAttention> + 'a, bool) {
        let missed = self.events.first().is_some_and(|e| e.seq > seen + 1);
        let new = self
            .events
            .iter()
            .filter(move |e| e.seq > seen && e.scope.includes(nexus))
            .map(|e| e.ua);
        (new, missed)
    }

    /// The next snapshot: `pr`, with `new` events appended (keeping the last [`MAX_EVENTS`]).
    pub fn successor(&self, pr: PrState, new: Vec<(UaScope, UnitAttention)>) -> LuSnapshot {
        let mut events: Vec<UaEvent> = self.events.iter().cloned().collect();
        for (seq, (scope, ua)) in (self.next_seq()..).zip(new) {
            events.push(UaEvent { seq, scope, ua });
        }
        let excess = events.len().saturating_sub(MAX_EVENTS);
        events.drain(..excess);
        LuSnapshot {
            generation: self.generation + 1,
            pr,
            events: events.into(),
            capacity: self.capacity,
        }
    }

    /// The next snapshot after the unit's capacity became `blocks`: every I_T nexus is told
    /// (SBC-3 CAPACITY DATA HAS CHANGED).
    pub fn resized(&self, blocks: u64) -> LuSnapshot {
        let ua = vec![(UaScope::All, UnitAttention::CAPACITY_DATA_HAS_CHANGED)];
        LuSnapshot {
            capacity: Some(blocks),
            ..self.successor(self.pr.clone(), ua)
        }
    }
}

/// The published state of one logical unit.
#[derive(Debug, Default)]
pub struct LuShared {
    generation: AtomicU64,
    current: Mutex<Arc<LuSnapshot>>,
    /// Block-range locks that make COMPARE AND WRITE atomic against every writer.
    pub ranges: Arc<RangeLocks>,
    /// Loaded, prevented, deallocated, write-protected: the medium every core sees.
    pub medium: Arc<MediumState>,
}

impl LuShared {
    pub fn new(snapshot: LuSnapshot) -> Self {
        LuShared {
            generation: AtomicU64::new(snapshot.generation),
            current: Mutex::new(Arc::new(snapshot)),
            ranges: Arc::default(),
            medium: Arc::default(),
        }
    }

    /// The current snapshot, refreshing `cached` only when a newer one was published: one
    /// atomic load on the common path.
    pub fn load<'a>(&self, cached: &'a mut Arc<LuSnapshot>) -> &'a Arc<LuSnapshot> {
        if self.generation.load(Ordering::Acquire) != cached.generation {
            *cached = self.snapshot();
        }
        cached
    }

    /// The current snapshot (takes the lock).
    pub fn snapshot(&self) -> Arc<LuSnapshot> {
        // A poisoned lock only means a publisher panicked mid-swap of an Arc: the value is whole.
        match self.current.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the snapshot (the control thread, the only writer).
    pub fn publish(&self, snapshot: LuSnapshot) {
        let generation = snapshot.generation;
        let snapshot = Arc::new(snapshot);
        match self.current.lock() {
            Ok(mut g) => *g = snapshot,
            Err(p) => *p.into_inner() = snapshot,
        }
        self.generation.store(generation, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::super::pr::InitiatorPort;
    use super::*;

    fn nexus(name: &str) -> ItNexus {
        ItNexus {
            initiator: InitiatorPort {
                name: name.into(),
                isid: [0x40, 0, 0, 0, 0, 1],
            },
            relative_port: 1,
        }
    }

    #[test]
    fn readers_see_a_published_snapshot_on_their_next_load() {
        let shared = LuShared::new(LuSnapshot::default());
        let mut cached = shared.snapshot();
        let first = shared.load(&mut cached).clone();
        let next = first.successor(
            PrState::default(),
            vec![(UaScope::All, UnitAttention::CAPACITY_DATA_HAS_CHANGED)],
        );
        shared.publish(next);
        let seen = shared.load(&mut cached);
        assert_eq!(seen.generation, first.generation + 1);
        assert_eq!(seen.events.len(), 1);
    }

    #[test]
    fn a_resize_publishes_the_capacity_and_tells_every_nexus() {
        let s = LuSnapshot::default().resized(4096);
        assert_eq!(s.capacity, Some(4096));
        let a = nexus("iqn.a");
        let (events, _) = s.events_for(&a, 0);
        assert_eq!(
            events.collect::<Vec<_>>(),
            vec![UnitAttention::CAPACITY_DATA_HAS_CHANGED]
        );
        // Later snapshots keep the capacity.
        let later = s.successor(PrState::default(), Vec::new());
        assert_eq!(later.capacity, Some(4096));
    }

    #[test]
    fn events_reach_only_their_nexuses_and_only_once() {
        let (a, b) = (nexus("iqn.a"), nexus("iqn.b"));
        let s = LuSnapshot::default().successor(
            PrState::default(),
            vec![
                (UaScope::AllExcept(a.clone()), UnitAttention::LUN_RESET),
                (
                    UaScope::Only(vec![a.clone()]),
                    UnitAttention::REGISTRATIONS_PREEMPTED,
                ),
            ],
        );
        let (for_a, missed) = s.events_for(&a, 0);
        assert!(!missed);
        assert_eq!(
            for_a.collect::<Vec<_>>(),
            vec![UnitAttention::REGISTRATIONS_PREEMPTED]
        );
        let (for_b, _) = s.events_for(&b, 0);
        assert_eq!(for_b.collect::<Vec<_>>(), vec![UnitAttention::LUN_RESET]);
        let (again, _) = s.events_for(&b, s.next_seq() - 1);
        assert_eq!(again.count(), 0);
    }

    #[test]
    fn the_log_is_bounded_and_a_reader_left_behind_knows_it() {
        let mut s = LuSnapshot::default();
        for _ in 0..MAX_EVENTS + 10 {
            s = s.successor(
                PrState::default(),
                vec![(UaScope::All, UnitAttention::CAPACITY_DATA_HAS_CHANGED)],
            );
        }
        assert_eq!(s.events.len(), MAX_EVENTS);
        let (_, missed) = s.events_for(&nexus("iqn.a"), 0);
        assert!(missed);
    }
}
