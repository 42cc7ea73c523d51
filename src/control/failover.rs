//! Gateway mode (`failover = "rbd-lock"`): several ringtgt gateways export the same RBD images
//! under one target, and the ALUA states of the target's port groups follow the images'
//! exclusive locks, as tcmu-runner's do.
//!
//! - The gateway holding every lock (the owner) reports its own group active/optimized and the
//!   other gateways' groups active/non-optimized; the others report the reverse.
//! - At start, a gateway whose own group is configured active/optimized takes the locks if
//!   nobody alive holds them; otherwise it follows.
//! - A command that would change the medium through a follower's port (an initiator that has
//!   given up on the owner's paths, since multipath sends I/O to the optimized group while it
//!   can) asks for the locks and is answered ASYMMETRIC ACCESS STATE TRANSITION, which
//!   initiators retry. This thread then takes the locks over, breaking them if the owner still
//!   holds them: librbd blocklists the old owner first, so none of its writes, even those still
//!   queued in it, can land after ours (no split-brain writes).
//! - An owner whose lock was broken finds out within [`POLL`] (its writes fail at once, with
//!   NOT READY): the cluster has fenced its client off for good, so its group becomes
//!   unavailable until the gateway is restarted.
//! - A gateway that stops gracefully releases its locks, so the next writer takes them without
//!   fencing anyone.
//!
//! Every state change raises ASYMMETRIC ACCESS STATE CHANGED on the target's units. librbd's
//! lock calls block for cluster round trips (a dead owner's lock is broken by librbd only once
//! its watch times out), so they run here, on one thread per gateway target, never on a core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::ToControl;
use crate::ceph::{CephError, Image, Taken};
use crate::scsi::alua::{AccessState, PortGroups};

/// How often an owner checks that it still holds its locks, and the pause after a failed
/// takeover before the next request is served.
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Owner,
    Follower,
    /// The cluster blocklisted this gateway's client: nothing it sends will be accepted.
    Fenced,
}

/// What the failover thread of one gateway target works with.
pub struct Gateway {
    /// Target index (for `ToControl::AccessStateChanged`) and name (for the log).
    pub index: usize,
    pub name: String,
    pub images: Vec<Arc<Image>>,
    pub groups: Arc<PortGroups>,
    /// This gateway's port group, and the other gateways'.
    pub local: u16,
    pub remote: Vec<u16>,
    /// The local group is configured active/optimized: take the locks at start if free.
    pub preferred: bool,
}

/// A running failover thread; [`Handle::stop`] ends it and releases the locks it holds.
pub struct Handle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Handle {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        if self.thread.join().is_err() {
            tracing::error!("a gateway failover thread panicked");
        }
    }
}

struct Failover {
    gw: Gateway,
    role: Role,
    to_control: Sender<ToControl>,
}

/// Settles the starting role (taking the locks at once if preferred and free), sets the
/// groups' states, and starts the thread that serves takeovers.
pub fn start(gw: Gateway, to_control: Sender<ToControl>) -> std::io::Result<Handle> {
    let role = if gw.preferred {
        match take_all(&gw, false) {
            Ok(()) => Role::Owner,
            Err(e) => {
                tracing::warn!(target = %gw.name, error = %e, "cannot take the images' locks at start: following the gateway that holds them");
                Role::Follower
            }
        }
    } else {
        Role::Follower
    };
    let mut f = Failover {
        gw,
        role,
        to_control,
    };
    f.apply(false);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_seen = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("failover-{}", f.gw.index))
        .spawn(move || f.serve(&stop_seen))?;
    Ok(Handle { stop, thread })
}

impl Failover {
    fn serve(&mut self, stop: &AtomicBool) {
        let groups = self.gw.groups.clone();
        let Some(takeover) = groups.takeover() else {
            return;
        };
        takeover.serve_from_this_thread();
        loop {
            std::thread::park_timeout(POLL);
            if stop.load(Ordering::Acquire) {
                break;
            }
            let requested = takeover.take_request();
            match self.role {
                Role::Owner => self.check_still_owner(),
                Role::Follower if requested => self.take_over(),
                Role::Follower | Role::Fenced => {}
            }
        }
        if self.role == Role::Owner {
            for image in &self.gw.images {
                if let Err(e) = image.release_lock() {
                    tracing::warn!(target = %self.gw.name, error = %e, "releasing the lock on stop failed: the next gateway will break it");
                }
            }
        }
    }

    fn check_still_owner(&mut self) {
        for image in &self.gw.images {
            let lost = match image.is_lock_owner() {
                Ok(true) => continue,
                Ok(false) => Role::Follower,
                Err(e) if e.errno() == Some(libc::ESHUTDOWN) => Role::Fenced,
                Err(e) => {
                    tracing::warn!(target = %self.gw.name, error = %e, "cannot tell whether this gateway still holds the lock");
                    continue;
                }
            };
            tracing::warn!(target = %self.gw.name, image = image.label(), fenced = (lost == Role::Fenced), "another gateway took the lock over: this gateway's port group is no longer optimized");
            self.role = lost;
            self.apply(true);
            return;
        }
    }

    fn take_over(&mut self) {
        tracing::info!(target = %self.gw.name, "a write came through this gateway: taking the images' locks over");
        match take_all(&self.gw, true) {
            Ok(()) => {
                self.role = Role::Owner;
                self.apply(true);
            }
            Err(e) if e.errno() == Some(libc::ESHUTDOWN) => {
                tracing::error!(target = %self.gw.name, error = %e, "the cluster has blocklisted this gateway: restart it to serve again");
                self.role = Role::Fenced;
                self.apply(true);
            }
            Err(e) => {
                tracing::warn!(target = %self.gw.name, error = %e, "taking the locks over failed; the next write will try again");
                // One attempt per POLL however fast the writes retry.
                std::thread::sleep(POLL);
            }
        }
    }

    /// Sets the groups' states for the current role; `announce` raises ASYMMETRIC ACCESS
    /// STATE CHANGED.
    fn apply(&self, announce: bool) {
        let (local, remote) = match self.role {
            Role::Owner => (
                AccessState::ActiveOptimized,
                AccessState::ActiveNonOptimized,
            ),
            Role::Follower => (
                AccessState::ActiveNonOptimized,
                AccessState::ActiveOptimized,
            ),
            Role::Fenced => (AccessState::Unavailable, AccessState::ActiveOptimized),
        };
        self.gw.groups.set_state(self.gw.local, local);
        for &id in &self.gw.remote {
            self.gw.groups.set_state(id, remote);
        }
        tracing::info!(target = %self.gw.name, group = self.gw.local, state = local.name(), "gateway port group state");
        if announce {
            // Gone only while the daemon stops.
            let _ = self.to_control.send(ToControl::AccessStateChanged {
                target: self.gw.index,
            });
        }
    }
}

/// Takes every image's lock (`force`: breaking a live holder's), or none: on failure the locks
/// already taken are given back.
fn take_all(gw: &Gateway, force: bool) -> Result<(), CephError> {
    for (i, image) in gw.images.iter().enumerate() {
        let taken = if force {
            image.take_lock()
        } else {
            image.acquire_lock().map(|()| Taken::Free)
        };
        match taken {
            Ok(Taken::Free) => {}
            Ok(Taken::Broken { owners }) => {
                tracing::warn!(target = %gw.name, image = image.label(), ?owners, "broke the lock of the previous owner, which the cluster has blocklisted");
            }
            Err(e) => {
                for held in &gw.images[..i] {
                    let _ = held.release_lock();
                }
                return Err(e);
            }
        }
    }
    Ok(())
}
