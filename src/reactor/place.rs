//! Placement of new connections: one reactor (the first) accepts on every portal and gives each
//! connection to the least-loaded reactor — the one with the fewest live connections, ties
//! broken by the least recent busy time, then by the lowest index — instead of letting the
//! kernel's `SO_REUSEPORT` hash decide (which put 3 of 4 sessions on one of 2 reactors).
//!
//! The load figures are per-reactor atomics ([`Loads`]): the placer adds a connection to the
//! chosen reactor's count when it hands the socket over, the owning reactor takes it away when
//! the connection's slot is freed, and each reactor publishes its recent busy time on its tick.
//! A socket placed on another reactor goes through that reactor's handoff channel and wakes its
//! ring (the eventfd of `wake.rs`); nothing on the data path reads or writes these figures.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use socket2::Socket;

/// Weight of the newest tick in the smoothed busy time: 1/4, so the figure follows about the
/// last second of 200 ms ticks.
const BUSY_SMOOTHING: u64 = 4;

/// What one reactor publishes for the placer. Kept on its own cache line: the owning reactor
/// writes it (once per tick, once per closed connection), the placer only reads it.
#[derive(Default)]
#[repr(align(128))]
struct Load {
    /// Connections placed on this reactor and not closed yet.
    conns: AtomicUsize,
    /// Busy nanoseconds per tick, smoothed over about a second.
    busy_ns: AtomicU64,
}

/// Every reactor's load, shared by the reactors and the placer.
///
/// Reading these figures racily is fine: the placer is the only one that adds connections, so
/// the counts it reads include every connection it has placed; what it can miss is a close or a
/// busy update that is happening at that moment, which makes it see a reactor as a little
/// busier than it is for one placement. No state depends on the figures being exact: the
/// worst case is one connection on the second-least-loaded reactor, and the next placement
/// reads the corrected figures. Hence plain relaxed atomics and no lock.
pub struct Loads {
    slots: Box<[Load]>,
}

impl Loads {
    pub fn new(reactors: usize) -> Arc<Loads> {
        Arc::new(Loads {
            slots: (0..reactors).map(|_| Load::default()).collect(),
        })
    }

    /// A connection has been placed on `reactor`.
    fn placed(&self, reactor: usize) {
        self.slots[reactor].conns.fetch_add(1, Relaxed);
    }

    /// A connection placed on `reactor` has closed (or was refused there).
    pub fn closed(&self, reactor: usize) {
        // Saturating: a miscount must never wrap and make the reactor look full for good.
        let _ = self.slots[reactor]
            .conns
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// `reactor` was busy for `ns` during its last tick: folds it into the smoothed figure.
    pub fn ticked(&self, reactor: usize, ns: u64) {
        let slot = &self.slots[reactor].busy_ns;
        let old = slot.load(Relaxed);
        let smoothed = (old / BUSY_SMOOTHING) * (BUSY_SMOOTHING - 1) + ns / BUSY_SMOOTHING;
        slot.store(smoothed, Relaxed);
    }

    /// (live connections, recent busy ns) of each reactor, by index.
    fn snapshot(&self) -> Vec<(usize, u64)> {
        self.slots
            .iter()
            .map(|l| (l.conns.load(Relaxed), l.busy_ns.load(Relaxed)))
            .collect()
    }
}

/// The reactor a new connection goes to: the fewest live connections, then the least recent
/// busy time, then the lowest index; reactors marked `gone` (stopped) are skipped. `None` when
/// every reactor is gone.
pub fn choose(loads: &[(usize, u64)], gone: &[bool]) -> Option<usize> {
    loads
        .iter()
        .enumerate()
        .filter(|&(i, _)| !gone.get(i).copied().unwrap_or(false))
        .min_by_key(|&(i, &(conns, busy))| (conns, busy, i))
        .map(|(i, _)| i)
}

/// The receiving end of a reactor's handoff channel: sockets the placer gave it.
pub type Handoffs = Receiver<Socket>;

/// How the placer reaches one reactor.
pub struct Handoff {
    pub tx: Sender<Socket>,
    pub wake: Box<dyn Fn() + Send>,
}

/// A new handoff channel: the sending half for the placer (with the reactor's wake-up), the
/// receiving half for the reactor.
pub fn handoff(wake: Box<dyn Fn() + Send>) -> (Handoff, Handoffs) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (Handoff { tx, wake }, rx)
}

/// Where an accepted connection went.
pub enum Placed {
    /// To the accepting reactor itself: it adopts the socket now.
    Here(Socket),
    /// Handed to that reactor, or closed because no reactor is left to take it.
    Away,
}

/// Lives in the accepting reactor: chooses a reactor for each accepted connection and hands it
/// over.
pub struct Placer {
    loads: Arc<Loads>,
    links: Vec<Handoff>,
    /// Reactors whose handoff channel is closed (their thread ended).
    gone: Vec<bool>,
}

impl Placer {
    /// `links` by reactor index; the accepting reactor's own link is never used.
    pub fn new(loads: Arc<Loads>, links: Vec<Handoff>) -> Placer {
        let gone = vec![false; links.len()];
        Placer { loads, links, gone }
    }

    /// Places `sock`, accepted by reactor `here`.
    pub fn place(&mut self, mut sock: Socket, here: usize) -> Placed {
        loop {
            let Some(to) = choose(&self.loads.snapshot(), &self.gone) else {
                return Placed::Away; // dropping the socket closes it
            };
            self.loads.placed(to);
            if to == here {
                return Placed::Here(sock);
            }
            let link = &self.links[to];
            match link.tx.send(sock) {
                Ok(()) => {
                    (link.wake)();
                    tracing::debug!(reactor = to, "connection handed over");
                    return Placed::Away;
                }
                // The reactor has stopped: its receiving end is gone and the socket came back.
                Err(back) => {
                    self.loads.closed(to);
                    self.gone[to] = true;
                    sock = back.into_inner();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewest_connections_win_whatever_the_busy_time() {
        let loads = [(3, 0), (1, 9_000_000), (2, 0)];
        assert_eq!(choose(&loads, &[false; 3]), Some(1));
    }

    #[test]
    fn a_tie_in_connections_goes_to_the_less_busy_reactor() {
        let loads = [(2, 500), (2, 100), (5, 0)];
        assert_eq!(choose(&loads, &[false; 3]), Some(1));
    }

    #[test]
    fn a_full_tie_goes_to_the_lowest_index() {
        let loads = [(4, 70), (1, 70), (1, 70)];
        assert_eq!(choose(&loads, &[false; 3]), Some(1));
        assert_eq!(choose(&[(0, 0); 4], &[false; 4]), Some(0));
    }

    #[test]
    fn stopped_reactors_are_skipped_and_none_left_is_none() {
        let loads = [(0, 0), (7, 7)];
        assert_eq!(choose(&loads, &[true, false]), Some(1));
        assert_eq!(choose(&loads, &[true, true]), None);
        assert_eq!(choose(&[], &[]), None);
    }

    #[test]
    fn placements_alternate_over_idle_reactors() {
        let loads = Loads::new(2);
        let mut placed = [0; 2];
        for _ in 0..4 {
            let to = choose(&loads.snapshot(), &[false; 2]).unwrap();
            loads.placed(to);
            placed[to] += 1;
        }
        assert_eq!(placed, [2, 2]);
        loads.closed(0);
        loads.closed(0);
        assert_eq!(choose(&loads.snapshot(), &[false; 2]), Some(0));
        // A close never counted below zero (it would wrap and shut the reactor out).
        loads.closed(0);
        assert_eq!(loads.snapshot()[0].0, 0);
    }

    #[test]
    fn busy_time_is_smoothed_over_ticks() {
        let loads = Loads::new(1);
        loads.ticked(0, 4_000);
        assert_eq!(loads.snapshot()[0].1, 1_000);
        for _ in 0..40 {
            loads.ticked(0, 4_000);
        }
        let settled = loads.snapshot()[0].1;
        assert!((3_900..=4_000).contains(&settled), "{settled}");
        loads.ticked(0, 0);
        assert!(loads.snapshot()[0].1 < settled);
    }

    #[test]
    fn a_socket_for_a_stopped_reactor_goes_to_another() {
        let loads = Loads::new(3);
        // Reactor 0 accepts; reactor 1 (least loaded) has stopped; reactor 2 is alive.
        loads.placed(0);
        let (alive, alive_rx) = handoff(Box::new(|| {}));
        let (stopped, stopped_rx) = handoff(Box::new(|| {}));
        drop(stopped_rx);
        let (own, _own_rx) = handoff(Box::new(|| {}));
        let mut placer = Placer::new(loads.clone(), vec![own, stopped, alive]);
        let sock = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        assert!(matches!(placer.place(sock, 0), Placed::Away));
        assert!(alive_rx.try_recv().is_ok());
        let counts: Vec<usize> = loads.snapshot().iter().map(|l| l.0).collect();
        assert_eq!(counts, [1, 0, 1]);
        // With only the accepting reactor left, it keeps the connection (reactor 2, now the
        // least loaded, has stopped too).
        drop(alive_rx);
        loads.placed(0);
        let sock = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        assert!(matches!(placer.place(sock, 0), Placed::Here(_)));
    }
}
