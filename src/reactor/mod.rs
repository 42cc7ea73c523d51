//! One reactor per pinned core: an io_uring that owns a shard of connections end to end
//! (receive → protocol → backing store → send). The first reactor also accepts on every portal
//! and places each connection on the least-loaded reactor (`place`). This module is the only
//! place that talks to io_uring and the only one with `unsafe` (each block says why it is sound).

mod block;
mod conn;
mod listen;
mod nvme;
pub mod place;
#[cfg(feature = "rbd")]
mod rbd;
mod recv_ring;
mod stats;
mod token;
mod wake;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;
use socket2::Socket;

use crate::backstore::Store;
use crate::control::{ConnRef, ToControl, ToReactor};
use crate::session::{IoCompletion, LogLimiter, PortalContext};
use block::BlockOp;
use conn::ConnSlot;
pub use listen::bind;
use place::{Handoffs, Loads, Placed, Placer};
use token::{Kind, Token};
pub use wake::WakeFd;

/// Submission queue size; completions are twice that by default.
const RING_ENTRIES: u32 = 1024;
/// linux/io_uring.h: io_uring_enter flag that reaps completions (the crate keeps its own private).
const IORING_ENTER_GETEVENTS: u32 = 1;
/// Granularity of protocol timers (keepalive, login timeout).
const TICK: Duration = Duration::from_millis(200);
/// How soon a connection waiting on another core (a range lock) is looked at again.
const SOON: Duration = crate::session::RANGE_LOCK_RETRY;
/// Registered buffer pool per reactor: (size, count). Small transfers and 1 MiB streams come
/// from here; anything larger, or a burst beyond the pool, uses heap buffers.
const BUFFER_POOL: [(usize, usize); 2] = [(64 << 10, 256), (1 << 20, 32)];
/// Size of each buffer of the receive ring (`recv_ring_buffers` of them per reactor): a batch
/// of small PDUs fits in one, and larger payloads are received into their own buffers.
pub const RECV_RING_BUF: usize = 64 << 10;
/// How long a stopping reactor waits, past the logout grace, for its connections to finish
/// their I/O and close before it ends anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long accepting pauses after the process or system ran out of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// This reactor's share of the daemon's connection ceilings.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections at once, in any phase; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections still logging in; past this, the oldest of them is closed for the new one.
    pub max_login_connections: usize,
}

impl ConnLimits {
    /// The share of one reactor among `reactors` (rounded up, at least one connection each).
    pub fn share(max_connections: usize, max_login_connections: usize, reactors: usize) -> Self {
        let n = reactors.max(1);
        ConnLimits {
            max_connections: max_connections.div_ceil(n).max(1),
            max_login_connections: max_login_connections.div_ceil(n).max(1),
        }
    }
}

/// Backing stores by target index and LUN id, shared by all reactors. Each target's units are
/// kept sorted by LUN id: looked up on every I/O, where a binary search of a few entries costs a
/// fraction of hashing the id (SipHash was 1.5 % of the instructions of a batched write).
#[derive(Default)]
pub struct StoreTable {
    by_lun: Vec<Vec<(u16, Arc<Store>)>>,
}

impl StoreTable {
    pub fn new(targets: Vec<HashMap<u16, Arc<Store>>>) -> Self {
        let by_lun = targets
            .into_iter()
            .map(|luns| {
                let mut v: Vec<_> = luns.into_iter().collect();
                v.sort_unstable_by_key(|&(l, _)| l);
                v
            })
            .collect();
        StoreTable { by_lun }
    }

    /// Every unit: (target index, LUN id, store).
    pub fn units(&self) -> impl Iterator<Item = (usize, u16, &Arc<Store>)> {
        self.by_lun
            .iter()
            .enumerate()
            .flat_map(|(t, luns)| luns.iter().map(move |(l, s)| (t, *l, s)))
    }

    pub fn get(&self, target: usize, lun: u16) -> Option<&Arc<Store>> {
        let luns = self.by_lun.get(target)?;
        let i = luns.binary_search_by_key(&lun, |&(l, _)| l).ok()?;
        Some(&luns[i].1)
    }
}

pub struct ReactorSetup {
    pub index: usize,
    pub cpu: Option<usize>,
    /// The portals' listeners and the placer, for the one reactor that accepts; none for the
    /// others.
    pub accept: Option<(Vec<Socket>, Placer)>,
    /// Every reactor's load (this one's is `loads[index]`).
    pub loads: Arc<Loads>,
    /// Connections the accepting reactor placed here.
    pub handoffs: Handoffs,
    pub ctx: Arc<PortalContext>,
    pub stores: Arc<StoreTable>,
    pub to_control: Sender<ToControl>,
    pub inbox: Receiver<ToReactor>,
    pub wake: WakeFd,
    pub limits: ConnLimits,
    /// How long an idle turn polls the ring before it sleeps (`--poll-us`); zero: never.
    pub poll: Duration,
    /// How long a wait after a turn of small receives may gather more completions before it
    /// returns (`--coalesce-us`); zero: never.
    pub coalesce: Duration,
    /// Buffers of the receive ring (`recv_ring_buffers`); zero: none.
    pub recv_ring_buffers: u16,
}

pub struct Reactor {
    /// Declared first, so dropped first: the receive ring's memory and the buffers registered
    /// with it outlive it.
    ring: IoUring,
    /// The provided-buffer ring connections receive from when they wait for a new PDU; `None`
    /// when the kernel has no buffer rings or `recv_ring_buffers` is 0.
    recv_ring: Option<recv_ring::RecvRing>,
    index: usize,
    listeners: Vec<Socket>,
    /// Chooses the reactor of each accepted connection (on the accepting reactor only).
    placer: Option<Placer>,
    loads: Arc<Loads>,
    handoffs: Handoffs,
    /// Busy time already published to `loads` (the next tick publishes what came since).
    busy_published: Duration,
    conns: Slab<ConnSlot>,
    blocks: Slab<BlockOp>,
    next_generation: u32,
    ctx: Arc<PortalContext>,
    stores: Arc<StoreTable>,
    to_control: Sender<ToControl>,
    inbox: Receiver<ToReactor>,
    wake: WakeFd,
    wake_buf: Box<[u8; 8]>,
    tick: Box<types::Timespec>,
    soon: Box<types::Timespec>,
    soon_armed: bool,
    completions: Vec<(u64, i32, u32)>,
    /// Set when the daemon stops: listeners are shut and connections close; the loop ends when
    /// they are gone (or at this deadline).
    draining: Option<Instant>,
    stopping: bool,
    /// Registered-file index of each store's descriptor, by (target, LUN).
    fixed_files: HashMap<(usize, u16), u32>,
    /// Submissions that did not fit in the submission queue, moved there as it drains (a full
    /// queue never blocks and never spins).
    backlog: VecDeque<squeue::Entry>,
    /// Completions of operations that needed no kernel call (null store), handled by the loop
    /// like ring completions rather than by recursion, whose depth the peer would control.
    inline_done: VecDeque<(usize, u32, IoCompletion)>,
    limits: ConnLimits,
    /// Per listener: accepting paused until then (descriptor or memory exhaustion).
    accept_paused: Vec<Option<Instant>>,
    /// Reactor-wide warnings (accept failures, connection ceilings).
    log: LogLimiter,
    /// This core's counters (metrics, `ringtgt ctl`).
    counters: stats::CoreCounters,
    /// Units being removed whose tasks the control thread waits for: (id, target, LUN).
    drains: Vec<(u64, usize, u16)>,
    /// RBD operations in flight and their completions (only with RBD stores).
    #[cfg(feature = "rbd")]
    rbd: Option<rbd::RbdPort>,
    /// The NVMe passthrough ring, made when this reactor first serves an NVMe unit.
    nvme: Option<nvme::NvmePort>,
    /// The buffer pool's regions (address, length) as registered with the ring, for the
    /// passthrough ring to register too; empty when the pool is not registered.
    pool_regions: Vec<(usize, usize)>,
    poll: Duration,
    /// `--coalesce-us`, zero where the kernel cannot wait for a minimum time (before 6.12).
    coalesce: Duration,
    /// What this turn's receives were like, for the next wait (`enter`).
    turn: TurnInput,
}

/// The receives of one turn, which decide whether the next wait coalesces.
#[derive(Default)]
struct TurnInput {
    receives: u32,
    /// One receive brought at least `LARGE_RECEIVE` bytes or more than one whole PDU: its peer
    /// streams or sends in batches, which the kernel gathers already.
    gathered: bool,
    /// Requests outstanding at the initiator of each receive, summed over the receives.
    outstanding: usize,
}

/// A receive of this many bytes means a stream or a batch, which the kernel already gathers:
/// the next wait does not hold it back.
const LARGE_RECEIVE: usize = 16 * 1024;
/// Requests outstanding at the initiators of a turn's receives (summed over the receives) from
/// which a wait coalesces: with fewer, each command's own latency is what the initiator waits on.
const COALESCE_OUTSTANDING: usize = 8;
/// Completions a coalescing wait returns at once with, before its time is up.
const COALESCE_EVENTS: usize = 16;

impl Reactor {
    pub fn new(s: ReactorSetup) -> std::io::Result<Reactor> {
        if let Some(cpu) = s.cpu {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                tracing::warn!(cpu, "could not pin reactor thread");
            }
        }
        // NUMA: memory is placed on the node of the CPU that first touches it, so everything
        // this core uses on the data path (the ring, the buffer pool, connection state) is made
        // here, on the reactor's own thread, after it is pinned: never before, and never on the
        // thread that spawns it. Registering the pool pins (faults in) its pages now, on this
        // core; without registration, the heap buffers used instead are allocated by this thread.
        let ring = new_ring()?;
        let coalesce = if s.coalesce.is_zero() || ring.params().is_feature_min_timeout() {
            s.coalesce
        } else {
            tracing::warn!(
                "io_uring here has no minimum wait time (Linux 6.12): coalesce_us is ignored"
            );
            Duration::ZERO
        };
        let (recv_ring, ring_regions) = make_recv_ring(&ring, s.index, s.recv_ring_buffers);
        let pool_regions = register_buffer_pool(&ring, s.index, &ring_regions);
        let fixed_files = register_store_files(&ring, &s.stores, s.index);
        #[cfg(feature = "rbd")]
        let rbd = rbd::RbdPort::for_stores(&s.stores)?;
        let (listeners, placer) = s.accept.map_or((Vec::new(), None), |(l, p)| (l, Some(p)));
        Ok(Reactor {
            ring,
            recv_ring,
            index: s.index,
            listeners,
            placer,
            loads: s.loads,
            handoffs: s.handoffs,
            busy_published: Duration::ZERO,
            conns: Slab::new(),
            blocks: Slab::new(),
            next_generation: 1,
            ctx: s.ctx,
            stores: s.stores,
            to_control: s.to_control,
            inbox: s.inbox,
            wake: s.wake,
            wake_buf: Box::new([0; 8]),
            tick: Box::new(types::Timespec::new().nsec(TICK.as_nanos() as u32)),
            soon: Box::new(types::Timespec::new().nsec(SOON.as_nanos() as u32)),
            soon_armed: false,
            completions: Vec::with_capacity(RING_ENTRIES as usize * 2),
            draining: None,
            stopping: false,
            fixed_files,
            backlog: VecDeque::new(),
            inline_done: VecDeque::new(),
            limits: s.limits,
            accept_paused: Vec::new(),
            log: LogLimiter::default(),
            counters: stats::CoreCounters::new(Instant::now()),
            drains: Vec::new(),
            #[cfg(feature = "rbd")]
            rbd,
            nvme: None,
            pool_regions,
            poll: s.poll,
            coalesce,
            turn: TurnInput::default(),
        })
    }

    pub fn run(&mut self) -> std::io::Result<()> {
        self.accept_paused = vec![None; self.listeners.len()];
        for i in 0..self.listeners.len() {
            self.post_accept(i);
        }
        self.post_wake();
        self.post_tick();
        #[cfg(feature = "rbd")]
        self.post_rbd_read();
        while !self.stopping {
            self.drain_backlog();
            self.flush_nvme();
            if let Some(r) = self.recv_ring.as_mut() {
                r.replenish();
            }
            // With work still queued here, only submit and collect what is ready: waiting for a
            // completion could wait for one that the queued work has yet to cause.
            let want = usize::from(self.backlog.is_empty() && self.inline_done.is_empty());
            match self.enter(want) {
                Ok(_) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::EINTR)
                        || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            // Everything from here to the next wait is work (busy time).
            let woke = Instant::now();
            self.completions.clear();
            self.completions.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            let batch = std::mem::take(&mut self.completions);
            for &(ud, res, flags) in &batch {
                self.dispatch(ud, res, flags);
            }
            self.completions = batch;
            while let Some((idx, generation, c)) = self.inline_done.pop_front() {
                self.on_inline_done(idx, generation, c);
            }
            self.counters.busy += woke.elapsed();
            if let Some(deadline) = self.draining {
                let drained = self.conns.is_empty()
                    && self.blocks.is_empty()
                    && self.nvme.as_ref().is_none_or(|p| p.in_flight() == 0);
                self.stopping = drained || Instant::now() >= deadline;
            }
        }
        // Registered files hold the stores (and a block device's exclusive open) until the
        // kernel tears the ring down, after this thread is gone: let go of them now.
        let _ = self.ring.submitter().unregister_files();
        self.refuse_handoffs();
        Ok(())
    }

    /// Submits what this turn prepared and, if `want`, waits for a completion: with `--poll-us`,
    /// first by polling (entering the kernel without sleeping, which also runs the task work
    /// that DEFER_TASKRUN keeps for the next enter) for up to that long, then by sleeping.
    fn enter(&mut self, want: usize) -> std::io::Result<usize> {
        self.counters.enters += 1;
        let turn = std::mem::take(&mut self.turn);
        if want > 0 && self.poll.is_zero() && self.coalesces(&turn) {
            return self.enter_coalescing();
        }
        if want == 0 || self.poll.is_zero() {
            return self.ring.submit_and_wait(want);
        }
        let started = Instant::now();
        let submitted = self.ring.submit()?;
        loop {
            // SAFETY: an io_uring_enter on our own ring that submits nothing and waits for
            // nothing, with no argument pointer: it only reaps (and runs deferred task work).
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(0, 0, IORING_ENTER_GETEVENTS, None)
            }?;
            if !self.ring.completion().is_empty() {
                return Ok(submitted);
            }
            if started.elapsed() >= self.poll {
                self.counters.enters += 1;
                return self.ring.submit_and_wait(want);
            }
            std::hint::spin_loop();
        }
    }

    /// Whether the wait after `turn` may hold its first completion back for more: only after
    /// receives of at most one PDU each, and small (a stream's or a batch's are gathered already)
    /// from initiators that keep enough requests outstanding that a few microseconds more on
    /// one is a small part of their latency, where fewer wake-ups and fuller sends are worth it.
    fn coalesces(&self, turn: &TurnInput) -> bool {
        !self.coalesce.is_zero()
            && turn.receives > 0
            && !turn.gathered
            && turn.outstanding >= COALESCE_OUTSTANDING
    }

    /// Submits and waits for `COALESCE_EVENTS` completions, or once one has come, for at most
    /// `coalesce` from now (IORING_ENTER_EXT_ARG's minimum wait, Linux 6.12). With DEFER_TASKRUN
    /// the kernel wakes this thread for neither the task work of each arriving segment nor the
    /// first completion, so one turn takes in what arrived meanwhile.
    fn enter_coalescing(&mut self) -> std::io::Result<usize> {
        self.counters.coalesced_waits += 1;
        // Without a completion by the end of the minimum time the wait goes on for the first
        // one; the tick timer completes every TICK, so this bound is never what ends it.
        let idle = types::Timespec::new().sec(1);
        let args = types::SubmitArgs::new()
            .min_wait_usec(self.coalesce.as_micros().min(u128::from(u32::MAX)) as u32)
            .timespec(&idle);
        match self
            .ring
            .submitter()
            .submit_with_args(COALESCE_EVENTS, &args)
        {
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(0),
            r => r,
        }
    }

    /// Closes the connections handed over that this stopped reactor will not serve. One handed
    /// over after this is closed too: the channel drops what it holds when this reactor (its
    /// receiving end) is dropped, and from then on the placer's send fails and it places the
    /// connection elsewhere.
    fn refuse_handoffs(&mut self) {
        while let Ok(sock) = self.handoffs.try_recv() {
            drop(sock);
            self.loads.closed(self.index);
        }
    }

    /// The daemon is stopping: stop listening at once (so that the portals are free as soon as
    /// the process exits and initiators retry elsewhere or later), ask every session to log
    /// out within `grace`, and close the other connections once their started I/O is done.
    fn start_draining(&mut self, grace: Duration) {
        if self.draining.is_some() {
            return;
        }
        let now = Instant::now();
        self.draining = Some(now + grace + DRAIN_TIMEOUT);
        for l in &self.listeners {
            // Ends the pending accept too: the socket stops listening now, not when the
            // kernel gets round to cancelling the ring's requests.
            let _ = l.shutdown(std::net::Shutdown::Both);
        }
        let open: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for idx in open {
            self.conns[idx].conn.stop(grace, now);
            self.service(idx);
        }
    }

    fn dispatch(&mut self, user_data: u64, res: i32, flags: u32) {
        let Some(t) = Token::decode(user_data) else {
            return;
        };
        match t.kind {
            Kind::Accept => self.on_accept(t.index as usize, res),
            Kind::Recv => self.on_recv(t, res, io_uring::cqueue::buffer_select(flags)),
            Kind::Send => self.on_send(t, res),
            Kind::Block => self.on_block(t.index as usize, res),
            Kind::Wake => self.on_wake(),
            Kind::Tick => self.on_tick(),
            Kind::Soon => self.on_soon(),
            #[cfg(feature = "rbd")]
            Kind::Rbd => self.on_rbd(res),
            #[cfg(not(feature = "rbd"))]
            Kind::Rbd => {}
            Kind::Nvme => self.on_nvme(res),
        }
    }

    /// Queues one submission; when the submission queue is full it waits in the backlog, in
    /// order, until the loop has submitted what is ahead of it.
    fn push(&mut self, sqe: squeue::Entry) {
        if self.backlog.is_empty() && self.push_ring(&sqe) {
            return;
        }
        self.backlog.push_back(sqe);
    }

    fn drain_backlog(&mut self) {
        while let Some(sqe) = self.backlog.pop_front() {
            if !self.push_ring(&sqe) {
                self.backlog.push_front(sqe);
                return;
            }
        }
    }

    fn push_ring(&mut self, sqe: &squeue::Entry) -> bool {
        // SAFETY: every buffer an entry points at is owned by a slab slot (a connection, its
        // session's task buffers, or a block op) that is only freed after the entry's
        // completion has been reaped, and the wake/tick buffers are boxed in the reactor,
        // which outlives its ring. Entries waiting in the backlog keep the same owners.
        let pushed = unsafe { self.ring.submission().push(sqe) }.is_ok();
        self.counters.submissions += u64::from(pushed);
        pushed
    }

    fn next_generation(&mut self) -> u32 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1) & 0x00ff_ffff;
        g
    }

    fn post_accept(&mut self, listener: usize) {
        let fd = self.listeners[listener].as_raw_fd();
        let sqe = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(Token::new(Kind::Accept, listener, 0).encode());
        self.push(sqe);
    }

    fn on_accept(&mut self, listener: usize, res: i32) {
        let now = Instant::now();
        if self.draining.is_some() {
            if res >= 0 {
                // SAFETY: a successful accept returns a new descriptor that only we own;
                // dropping it closes a connection that raced the shutdown.
                drop(unsafe { Socket::from_raw_fd(res as RawFd) });
            }
            return;
        }
        let exhausted = matches!(
            -res,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        );
        if exhausted {
            // Re-posting at once would fail at once, for as long as the shortage lasts: pause.
            self.accept_paused[listener] = Some(now + ACCEPT_BACKOFF);
            crate::warn_limited!(
                self.log,
                now,
                errno = -res,
                "accept failed: out of descriptors or memory; pausing accepts"
            );
            return;
        }
        self.post_accept(listener);
        if res < 0 {
            crate::warn_limited!(self.log, now, errno = -res, "accept failed");
            return;
        }
        // SAFETY: a successful accept returns a new descriptor that only we own.
        let sock = unsafe { Socket::from_raw_fd(res as RawFd) };
        let placed = match self.placer.as_mut() {
            Some(placer) => placer.place(sock, self.index),
            None => Placed::Here(sock),
        };
        if let Placed::Here(sock) = placed {
            self.adopt(sock);
        }
    }

    /// Takes on a connection placed here (by this reactor's own accept or handed over).
    fn adopt(&mut self, sock: Socket) {
        let now = Instant::now();
        if self.draining.is_some() {
            // Placed while this reactor was stopping: dropping it closes it.
            drop(sock);
            self.loads.closed(self.index);
            return;
        }
        if self.conns.len() >= self.limits.max_connections {
            self.loads.closed(self.index);
            self.counters.login_failures.resources += 1;
            let peer = sock.peer_addr().ok().and_then(|a| a.as_socket());
            let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
            crate::warn_limited!(
                self.log,
                now,
                %peer,
                max = self.limits.max_connections,
                "connection refused: this core serves its share of max_connections"
            );
            return;
        }
        self.make_room_for_login(now);
        listen::tune(&sock);
        let peer = sock.peer_addr().ok().and_then(|a| a.as_socket());
        let local = sock.local_addr().ok().and_then(|a| a.as_socket());
        let generation = self.next_generation();
        let now = Instant::now();
        let mut conn = crate::session::Connection::new(self.ctx.clone(), local, peer, now);
        conn.set_core(self.index);
        let idx = self
            .conns
            .insert(ConnSlot::new(generation, sock, peer, conn, self.index));
        // Entered rather than named as `parent:`: the JSON log lists only entered spans.
        self.conns[idx]
            .span
            .in_scope(|| tracing::debug!("connection accepted"));
        self.service(idx);
    }

    fn post_wake(&mut self) {
        let (fd, counter) = (self.wake.raw_fd(), self.wake_buf.as_mut_ptr());
        self.post_counter_read(fd, counter, Kind::Wake);
    }

    /// Keeps a read posted on an eventfd whose counter tells this reactor something happened
    /// (a wake-up, librbd's or the passthrough ring's completions). `counter` is the 8 bytes
    /// the read lands in: boxed in the reactor or its port, alive as long as the ring.
    fn post_counter_read(&mut self, fd: RawFd, counter: *mut u8, kind: Kind) {
        let sqe = opcode::Read::new(types::Fd(fd), counter, 8)
            .build()
            .user_data(Token::new(kind, 0, 0).encode());
        self.push(sqe);
    }

    fn on_wake(&mut self) {
        while let Ok(sock) = self.handoffs.try_recv() {
            self.adopt(sock);
        }
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ToReactor::Registered { key, result } => self.on_registered(key, result),
                ToReactor::Kill { key } => {
                    if let Some(idx) = self.lookup(key) {
                        self.conns[idx].conn.kill();
                        self.service(idx);
                    }
                }
                ToReactor::LuDone { key, token, reply } => {
                    if let Some(idx) = self.lookup(key) {
                        self.conns[idx]
                            .conn
                            .handle_lu_reply(token, reply, Instant::now());
                        self.service(idx);
                    }
                }
                ToReactor::Abort { abort, except } => self.on_remote_abort(abort, except),
                ToReactor::Apply { seq, ctx, stores } => self.apply(seq, ctx, stores),
                ToReactor::Drain { id, target, lun } => {
                    self.drains.push((id, target, lun));
                    self.check_drains();
                }
                ToReactor::Report { id } => {
                    let report = Box::new(self.report());
                    let _ = self.to_control.send(ToControl::Report { id, report });
                }
                ToReactor::RequestLogout { key, within } => {
                    if let Some(idx) = self.lookup(key) {
                        self.conns[idx].conn.request_logout(within, Instant::now());
                        self.service(idx);
                    }
                }
                ToReactor::Drop { key } => {
                    if let Some(idx) = self.lookup(key) {
                        self.conns[idx].conn.drop_session();
                        self.service(idx);
                    }
                }
                ToReactor::Shutdown { grace } => self.start_draining(grace),
            }
        }
        if !self.stopping {
            self.post_wake();
        }
    }

    /// Serves from a new context and store table (the rule is in `control::live`): between two
    /// loop turns, every connection adopts the context before it handles more input. Stores
    /// that left the table (their units drained) leave the ring's registered files.
    fn apply(&mut self, seq: u64, ctx: Arc<PortalContext>, stores: Arc<StoreTable>) {
        let gone: Vec<(usize, u16)> = self
            .fixed_files
            .keys()
            .copied()
            .filter(|&(t, l)| match (self.stores.get(t, l), stores.get(t, l)) {
                (Some(old), Some(new)) => !Arc::ptr_eq(old, new),
                _ => true,
            })
            .collect();
        for key in gone {
            if let Some(index) = self.fixed_files.remove(&key) {
                if let Err(e) = self.ring.submitter().register_files_update(index, &[-1]) {
                    tracing::warn!(error = %e, "cannot unregister a removed store's file");
                }
            }
        }
        self.ctx = ctx;
        self.stores = stores;
        #[cfg(feature = "rbd")]
        self.open_rbd_port();
        for (_, slot) in self.conns.iter_mut() {
            slot.conn.adopt(self.ctx.clone());
        }
        let _ = self.to_control.send(ToControl::Applied { seq });
    }

    /// Reports the units whose tasks have all finished here.
    fn check_drains(&mut self) {
        let conns = &self.conns;
        let to_control = &self.to_control;
        self.drains.retain(|&(id, target, lun)| {
            let busy = conns.iter().any(|(_, s)| s.conn.tasks_on(target, lun) > 0);
            if !busy {
                let _ = to_control.send(ToControl::Drained { id });
            }
            busy
        });
    }

    /// Ends the tasks a reset from another session names, on every connection here but the
    /// requester's; the control thread hears how many are still finishing before any of them
    /// reports being drained.
    fn on_remote_abort(&mut self, abort: crate::session::RemoteAbort, except: Option<u64>) {
        let now = Instant::now();
        let keys: Vec<(usize, u64)> = self
            .conns
            .iter()
            .map(|(i, s)| (i, (u64::from(s.generation) << 32) | i as u64))
            .filter(|&(_, key)| Some(key) != except)
            .collect();
        let mut draining = 0;
        let mut touched = Vec::new();
        for (idx, _) in keys {
            if self.conns[idx].conn.handle_remote_abort(&abort, now) {
                draining += 1;
            }
            touched.push(idx);
        }
        let _ = self.to_control.send(ToControl::AbortApplied {
            id: abort.id,
            draining,
        });
        for idx in touched {
            if self.conns.contains(idx) {
                self.service(idx);
            }
        }
    }

    fn on_registered(&mut self, key: u64, result: Result<u16, crate::pdu::login::LoginStatus>) {
        let Some(idx) = self.lookup(key) else {
            // The connection went away while the control thread worked: give the TSIH back.
            if let Ok(tsih) = result {
                let conn = ConnRef {
                    core: self.index,
                    key,
                };
                let _ = self.to_control.send(ToControl::Ended {
                    conn,
                    tsih: Some(tsih),
                    nexus: None,
                });
            }
            return;
        };
        let slot = &mut self.conns[idx];
        slot.awaiting_registration = false;
        if let Ok(tsih) = result {
            slot.tsih = Some(tsih);
            slot.span.record("tsih", tsih);
        }
        if let Some(name) = slot.conn.initiator_name() {
            slot.span.record("initiator", name);
        }
        let span = slot.span.clone();
        span.in_scope(|| slot.conn.handle_registration(result, Instant::now()));
        if let Some(info) = slot.conn.session_info() {
            self.counters.logins += 1;
            let isid = crate::control::report::isid_hex(&info.isid);
            slot.span.record("isid", isid.as_str());
            slot.span.record("cid", info.cid);
        }
        self.service(idx);
    }

    /// Arms the one-shot short timeout if it is not armed yet.
    pub(super) fn arm_soon(&mut self) {
        if self.soon_armed || self.stopping {
            return;
        }
        self.soon_armed = true;
        let sqe = opcode::Timeout::new(&*self.soon as *const types::Timespec)
            .build()
            .user_data(Token::new(Kind::Soon, 0, 0).encode());
        self.push(sqe);
    }

    fn on_soon(&mut self) {
        self.soon_armed = false;
        let now = Instant::now();
        let waiting: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, s)| s.conn.wants_prompt_retry())
            .map(|(i, _)| i)
            .collect();
        for idx in waiting {
            self.conns[idx].conn.handle_timeout(now);
            self.service(idx);
        }
    }

    fn post_tick(&mut self) {
        let sqe = opcode::Timeout::new(&*self.tick as *const types::Timespec)
            .build()
            .user_data(Token::new(Kind::Tick, 0, 0).encode());
        self.push(sqe);
    }

    /// Keeps the connections still logging in under this core's share of the ceiling by closing
    /// the oldest of them: a peer that opens connections and never logs in (slowloris) cannot
    /// lock out initiators that do.
    fn make_room_for_login(&mut self, now: Instant) {
        let in_login = || self.conns.iter().filter(|(_, s)| s.conn.in_login());
        if in_login().count() < self.limits.max_login_connections {
            return;
        }
        let oldest = in_login().min_by_key(|(_, s)| s.accepted).map(|(i, _)| i);
        if let Some(idx) = oldest {
            crate::warn_limited!(
                self.log,
                now,
                max = self.limits.max_login_connections,
                "too many connections logging in: closing the oldest"
            );
            self.conns[idx].conn.evict();
            self.service(idx);
        }
    }

    fn resume_accepts(&mut self, now: Instant) {
        for i in 0..self.accept_paused.len() {
            if self.accept_paused[i].is_some_and(|t| t <= now) && self.draining.is_none() {
                self.accept_paused[i] = None;
                self.post_accept(i);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.publish_busy();
        if let Some(r) = self.recv_ring.as_mut() {
            r.tick();
        }
        self.resume_accepts(now);
        if !self.drains.is_empty() {
            self.check_drains();
        }
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, s)| s.timer_due(now))
            .map(|(i, _)| i)
            .collect();
        for idx in due {
            self.conns[idx].conn.handle_timeout(now);
            self.service(idx);
        }
        if !self.stopping {
            self.post_tick();
        }
    }

    fn conn_key(&self, idx: usize) -> u64 {
        (u64::from(self.conns[idx].generation) << 32) | idx as u64
    }

    fn lookup(&self, key: u64) -> Option<usize> {
        let idx = (key & 0xffff_ffff) as usize;
        let generation = (key >> 32) as u32;
        self.conns
            .get(idx)
            .filter(|s| s.generation == generation)
            .map(|_| idx)
    }
}

/// Only this thread ever submits to its ring, so the kernel can run completion work when the
/// reactor asks for events instead of interrupting it (SINGLE_ISSUER + DEFER_TASKRUN, Linux 6.1).
/// Older kernels refuse the flags; the ring then works the ordinary way.
fn new_ring() -> std::io::Result<IoUring> {
    match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(RING_ENTRIES)
    {
        Ok(ring) => Ok(ring),
        Err(e) => {
            tracing::debug!(error = %e, "io_uring without DEFER_TASKRUN");
            IoUring::new(RING_ENTRIES)
        }
    }
}

/// Makes this thread's receive ring of `count` buffers; returns it with the buffers' memory (to
/// be registered after the pool's). Without buffer rings in the kernel, connections receive
/// into buffers of their own, as with `count == 0`.
fn make_recv_ring(
    ring: &IoUring,
    reactor: usize,
    count: u16,
) -> (
    Option<recv_ring::RecvRing>,
    Vec<crate::backstore::buf::Region>,
) {
    if count == 0 {
        return (None, Vec::new());
    }
    let regions = crate::backstore::buf::install_recv_ring(count, RECV_RING_BUF);
    match recv_ring::RecvRing::new(ring, &regions) {
        Ok(r) => (Some(r), regions),
        Err(e) => {
            tracing::info!(reactor, error = %e, "no io_uring provided-buffer ring (Linux 5.19+); connections receive into buffers of their own");
            crate::backstore::buf::install_recv_ring(0, 0);
            (None, Vec::new())
        }
    }
}

/// Installs this thread's buffer pool and registers it with the ring, followed by the receive
/// ring's buffers (`recv`). Without the memory-lock allowance for it, the reactor runs on heap
/// buffers and says what to raise.
fn register_buffer_pool(
    ring: &IoUring,
    reactor: usize,
    recv: &[crate::backstore::buf::Region],
) -> Vec<(usize, usize)> {
    let pool = crate::backstore::buf::install_pool(&BUFFER_POOL);
    let first_recv = u16::try_from(pool.len()).ok();
    let regions: Vec<_> = pool.iter().chain(recv).copied().collect();
    let iovecs: Vec<libc::iovec> = regions
        .iter()
        .map(|r| libc::iovec {
            iov_base: r.addr.cast(),
            iov_len: r.len,
        })
        .collect();
    // SAFETY: each region is a live allocation owned by this thread's pool or receive ring,
    // which keep it for the thread's lifetime (buffers only move between them and tasks or
    // connections, never get freed), and the ring is dropped before the thread ends.
    let registered = unsafe { ring.submitter().register_buffers(&iovecs) };
    if let Err(e) = registered {
        let need: usize = regions.iter().map(|r| r.len).sum();
        tracing::warn!(
            reactor,
            error = %e,
            "cannot register {} MiB of I/O buffers; using unregistered buffers (raise RLIMIT_MEMLOCK, e.g. `ulimit -l unlimited` or LimitMEMLOCK=infinity, or run with CAP_IPC_LOCK)",
            need >> 20
        );
        crate::backstore::buf::install_pool(&[]);
        return Vec::new();
    }
    crate::backstore::buf::set_recv_ring_registered(first_recv.filter(|_| !recv.is_empty()));
    regions.iter().map(|r| (r.addr as usize, r.len)).collect()
}

/// Registers every store's descriptor with the ring as a fixed file. On failure the reactor uses
/// plain descriptors, which work the same, only with a lookup per I/O.
fn register_store_files(
    ring: &IoUring,
    stores: &StoreTable,
    reactor: usize,
) -> HashMap<(usize, u16), u32> {
    let mut keys = Vec::new();
    let mut fds = Vec::new();
    for (t, lun, store) in stores.units() {
        if let Some(fd) = store.raw_fd() {
            keys.push((t, lun));
            fds.push(fd);
        }
    }
    if fds.is_empty() {
        return HashMap::new();
    }
    match ring.submitter().register_files(&fds) {
        Ok(()) => keys.into_iter().zip(0u32..).collect(),
        Err(e) => {
            tracing::warn!(reactor, error = %e, "cannot register backing-store files; using plain descriptors");
            HashMap::new()
        }
    }
}

/// How often the heap's free memory is handed back to the kernel (`start_heap_trimmer`).
#[cfg(all(feature = "rbd", target_env = "gnu"))]
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Hands the free memory of glibc's arenas back to the kernel every [`TRIM_EVERY`], so that
/// what hostile initiators made the daemon hold is returned when they go (the bound README's
/// "Memory and connection limits" gives, checked by `tests/hostile.rs`).
///
/// In a binary linked with librados/librbd (feature `rbd`) freed buffers otherwise stay
/// resident: librados's many threads spread allocations over many arenas, and glibc's moving
/// mmap threshold sends large buffers to them once one such buffer was freed (RSS stayed
/// ~250 MiB after an attack instead of falling back to its start). Pinning the threshold
/// instead made every large allocation an mmap, page faults on each page and an munmap, and
/// librbd allocates one for every write it copies: a 1 MiB write through an RBD LUN spent about
/// a fifth of its reactor's time faulting pages in. `malloc_trim` frees the same memory with
/// none of that per-allocation cost. A threshold or trim setting of the operator's
/// (`GLIBC_TUNABLES`) is left alone.
#[cfg(all(feature = "rbd", target_env = "gnu"))]
pub fn start_heap_trimmer() {
    if std::env::var("GLIBC_TUNABLES")
        .is_ok_and(|t| t.contains("mmap_threshold") || t.contains("trim"))
    {
        return;
    }
    let trimmer = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            // SAFETY: malloc_trim only gives free pages of glibc's arenas back to the kernel;
            // it takes each arena's lock while it does.
            unsafe { libc::malloc_trim(0) };
        });
    if let Err(e) = trimmer {
        tracing::warn!(error = %e, "cannot start the heap trimmer: freed buffers may stay resident");
    }
}

/// Without the `rbd` feature, or with another C library: nothing to do.
#[cfg(not(all(feature = "rbd", target_env = "gnu")))]
pub fn start_heap_trimmer() {}

/// A reactor whose thread has made its ring, buffers and listeners and waits for [`Ready::run`].
/// Dropped instead (another reactor could not start), its thread ends without serving: the
/// daemon either starts with every reactor or not at all.
pub struct Ready {
    thread: std::thread::JoinHandle<()>,
    go: crossbeam_channel::Sender<()>,
}

impl Ready {
    /// Lets the reactor serve; its thread ends when it has stopped.
    pub fn run(self) -> std::thread::JoinHandle<()> {
        let _ = self.go.send(());
        self.thread
    }
}

/// Starts one reactor on its own thread and waits until it is made. A reactor that cannot be
/// made (no io_uring, no memory for its ring) is an error here, not a log line from a thread
/// that ends: the first reactor holds the listeners, and a daemon that runs on without it
/// would take connections into its listen queue and reset them, saying nothing.
pub fn spawn(setup: ReactorSetup) -> std::io::Result<Ready> {
    let name = format!("reactor-{}", setup.index);
    let (made_tx, made_rx) = crossbeam_channel::bounded(1);
    let (go, go_rx) = crossbeam_channel::bounded::<()>(1);
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let index = setup.index;
        let mut r = match Reactor::new(setup) {
            Ok(r) => r,
            Err(e) => {
                let _ = made_tx.send(Err(e));
                return;
            }
        };
        let _ = made_tx.send(Ok(()));
        if go_rx.recv().is_err() {
            return;
        }
        if let Err(e) = r.run() {
            tracing::error!(reactor = index, error = %e, "reactor stopped");
        }
    })?;
    match made_rx.recv() {
        Ok(Ok(())) => Ok(Ready { thread, go }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        // The thread ended without a word: it panicked (its message is on stderr).
        Err(_) => {
            let _ = thread.join();
            Err(std::io::Error::other(
                "the reactor thread panicked while starting",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backstore::StoreSpec;

    #[test]
    fn the_store_table_finds_every_unit_by_target_and_lun_and_nothing_else() {
        let null = |size: u64| Arc::new(Store::open(&StoreSpec::Null { size }, false).unwrap());
        let ids: [&[u16]; 3] = [&[7, 0, 300, 2, 16383], &[], &[1]];
        let targets: Vec<HashMap<u16, Arc<Store>>> = ids
            .iter()
            .enumerate()
            .map(|(t, luns)| {
                luns.iter()
                    .map(|&l| (l, null((t as u64 + 1) << 20 | u64::from(l) << 9)))
                    .collect()
            })
            .collect();
        let table = StoreTable::new(targets);
        for (t, luns) in ids.iter().enumerate() {
            for lun in 0..=u16::MAX {
                let found = table.get(t, lun).map(|s| s.size());
                let want = luns
                    .contains(&lun)
                    .then_some((t as u64 + 1) << 20 | u64::from(lun) << 9);
                assert_eq!(found, want, "target {t} LUN {lun}");
            }
        }
        assert!(table.get(3, 0).is_none());
        let units: Vec<_> = table.units().map(|(t, l, _)| (t, l)).collect();
        assert_eq!(
            units,
            [(0, 0), (0, 2), (0, 7), (0, 300), (0, 16383), (2, 1)]
        );
    }
}
