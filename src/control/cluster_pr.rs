//! Persistent reservations of a gateway target (`failover = "rbd-lock"`), shared by every
//! gateway of its images through the cluster, so that a reservation taken through one gateway
//! is enforced by the others.
//!
//! - Each unit's state lives in a RADOS object next to its image (`ringtgt.pr.IMAGE`, in the
//!   image's pool), as TOML with a version. A PERSISTENT RESERVE OUT reads it, applies the
//!   command with the same code as a local unit, and writes it back only if nobody changed it
//!   meanwhile (compare-and-swap on the version, one atomic RADOS operation); a lost race is
//!   tried again on the newer state.
//! - After a change the writer notifies the object's watchers and waits (at most
//!   [`NOTIFY_TIMEOUT_MS`]) for every other gateway to acknowledge, which each does once its
//!   control thread has published the new state to its cores; only then is the command
//!   answered. So when an initiator learns its PERSISTENT RESERVE OUT succeeded, every gateway
//!   that answered the notification already enforces it.
//! - Every [`RESYNC`] the state is read again, which makes up for a notification missed while
//!   a watch was being re-established.
//! - The record also carries what its last change must do elsewhere: the unit attentions it
//!   raises (REGISTRATIONS PREEMPTED, RESERVATIONS RELEASED, ...) and the nexuses whose tasks
//!   PREEMPT AND ABORT ends; the other gateways apply them to their own nexuses. A gateway
//!   that catches up by a re-read, having missed notifications, gets the last change's only.
//! - SPC-2 RESERVE/RELEASE stay local to each gateway: they are never persisted, and end with
//!   their nexus.
//! - The state in the cluster outlives every gateway, APTPL or not: a gateway's restart is not
//!   a power cycle of the logical unit, which lives in the cluster.
//!
//! The cluster calls block, so they run on one thread per gateway target; the control thread
//! remains the only writer of every unit's published state.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};

use super::lu::Settled;
use super::sessions::ConnRef;
use super::ToControl;
use crate::ceph::{Image, Notification, ObjectWatch};
use crate::scsi::pr::{ItNexus, NexusSet, OutEffects, UaTarget};
use crate::scsi::shared::LuShared;
use crate::scsi::{
    apply_shared, check_condition_as, Completion, PrState, Sense, SharedOp, UnitAttention,
};

/// How long a writer waits for the other gateways to acknowledge a change.
pub const NOTIFY_TIMEOUT_MS: u64 = 5_000;
/// How often every unit's state is read again.
pub const RESYNC: Duration = Duration::from_secs(5);
/// Compare-and-swap attempts before a PERSISTENT RESERVE OUT gives up (each lost attempt means
/// another gateway changed the state in between).
const MAX_ATTEMPTS: usize = 16;
/// How long a notified gateway waits for its control thread to publish the new state.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);

/// The object's content: the state, and what its last change must do on the other gateways
/// (the unit attentions it raises, the tasks PREEMPT AND ABORT ends there).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    version: u64,
    state: PrState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unit_attentions: Vec<(UaTarget, UnitAttention)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    abort_tasks_of: Vec<NexusSet>,
}

impl Record {
    fn effects(&self) -> OutEffects {
        OutEffects {
            unit_attentions: self.unit_attentions.clone(),
            abort_tasks_of: self.abort_tasks_of.clone(),
            persist: false,
        }
    }
}

/// The object holding the state of `image`'s unit.
pub fn object_name(image: &str) -> String {
    format!("ringtgt.pr.{image}")
}

/// One unit of a gateway target.
pub struct Unit {
    pub lun: u16,
    pub image: Arc<Image>,
    /// [`object_name`] of the image.
    pub object: String,
    pub shared: Arc<LuShared>,
}

/// What the control thread asks.
pub enum Job {
    /// Apply a PERSISTENT RESERVE OUT from `nexus`; answer with [`Outcome::Applied`].
    Out {
        conn: ConnRef,
        token: u64,
        nexus: ItNexus,
        op: SharedOp,
        ports: Vec<u16>,
    },
    Stop,
}

enum Work {
    Job(Job),
    /// Another gateway changed unit `lun`'s state.
    Notified {
        lun: u16,
        n: Notification,
    },
}

/// What the thread tells the control thread (`ToControl::ClusterPr`).
#[derive(Debug)]
pub enum Outcome {
    /// A PERSISTENT RESERVE OUT is done: publish its state and effects, then answer.
    Applied(Settled),
    /// Another gateway changed the state: publish it with the change's effects on this
    /// gateway's nexuses, then signal `done`.
    Changed {
        target: usize,
        lun: u16,
        state: PrState,
        effects: OutEffects,
        done: Option<Sender<()>>,
    },
}

/// A running reservation thread of one gateway target.
pub struct Handle {
    pub jobs: Sender<Job>,
    thread: JoinHandle<()>,
    watches: Vec<ObjectWatch>,
}

impl Handle {
    pub fn stop(self) {
        // Watches first: no notification reaches a thread that is gone.
        drop(self.watches);
        let _ = self.jobs.send(Job::Stop);
        if self.thread.join().is_err() {
            tracing::error!("a cluster reservation thread panicked");
        }
    }
}

struct Thread {
    target: usize,
    name: String,
    units: Vec<Unit>,
    to_control: Sender<ToControl>,
}

/// Loads every unit's state from the cluster into its published snapshot (before any core
/// runs: nothing else writes them yet), watches the objects, and starts the thread.
pub fn start(
    target: usize,
    name: String,
    units: Vec<Unit>,
    to_control: Sender<ToControl>,
) -> Result<Handle, String> {
    let (tx, rx) = crossbeam_channel::unbounded::<Work>();
    let (jobs, job_rx) = crossbeam_channel::unbounded::<Job>();
    let mut watches = Vec::new();
    for u in &units {
        let record = read(u)?;
        if record.is_none() {
            // A watch needs the object: the first gateway creates it (a racing one finds it).
            let empty = Record {
                version: 1,
                ..Record::default()
            };
            let text = toml::to_string(&empty).map_err(|e| e.to_string())?;
            u.image
                .write_object_if(&u.object, None, 1, text.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let state = record.map(|r| r.state).unwrap_or_default();
        let now = u.shared.snapshot();
        u.shared.publish(now.successor(state, Vec::new()));
        let (tx, lun) = (tx.clone(), u.lun);
        let watch = u
            .image
            .watch_object(&u.object, move |n| {
                // Gone only while the daemon stops.
                let _ = tx.send(Work::Notified { lun, n });
            })
            .map_err(|e| e.to_string())?;
        watches.push(watch);
    }
    let t = Thread {
        target,
        name,
        units,
        to_control,
    };
    let thread = std::thread::Builder::new()
        .name(format!("cluster-pr-{target}"))
        .spawn(move || t.serve(&rx, &job_rx))
        .map_err(|e| e.to_string())?;
    Ok(Handle {
        jobs,
        thread,
        watches,
    })
}

/// The unit's record in the cluster; `None` if it was never written.
fn read(u: &Unit) -> Result<Option<Record>, String> {
    match u.image.read_object(&u.object) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => {
            let text =
                String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", u.object))?;
            toml::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", u.object))
        }
        Err(e) => Err(e.to_string()),
    }
}

impl Thread {
    fn serve(&self, work: &Receiver<Work>, jobs: &Receiver<Job>) {
        loop {
            let next = crossbeam_channel::select! {
                recv(jobs) -> j => j.map(Work::Job).map_err(|_| RecvTimeoutError::Disconnected),
                recv(work) -> w => w.map_err(|_| RecvTimeoutError::Disconnected),
                default(RESYNC) => Err(RecvTimeoutError::Timeout),
            };
            match next {
                Ok(Work::Job(Job::Stop)) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Work::Job(Job::Out {
                    conn,
                    token,
                    nexus,
                    op,
                    ports,
                })) => {
                    let outcome = self.out(conn, token, &nexus, &op, &ports);
                    let _ = self.to_control.send(ToControl::ClusterPr(outcome));
                }
                Ok(Work::Notified { lun, n }) => {
                    if let Some(u) = self.units.iter().find(|u| u.lun == lun) {
                        self.resync(u, true);
                        if let Err(e) = u.image.ack_notify(&u.object, n) {
                            tracing::warn!(target = %self.name, lun, error = %e, "cannot acknowledge a reservation change");
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    for u in &self.units {
                        self.resync(u, false);
                    }
                }
            }
        }
    }

    /// Has the control thread publish the cluster's state of `u` if it differs from the one
    /// published; `wait`: until it has.
    fn resync(&self, u: &Unit, wait: bool) {
        let record = match read(u) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(target = %self.name, lun = u.lun, error = %e, "cannot read the shared reservation state");
                return;
            }
        };
        let effects = record.effects();
        let mut state = record.state;
        let published = u.shared.snapshot();
        state.keep_spc2_of(&published.pr);
        if state == published.pr {
            return;
        }
        let (done, published_rx) = if wait {
            let (tx, rx) = crossbeam_channel::bounded(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let msg = ToControl::ClusterPr(Outcome::Changed {
            target: self.target,
            lun: u.lun,
            state,
            effects,
            done,
        });
        if self.to_control.send(msg).is_ok() {
            if let Some(rx) = published_rx {
                let _ = rx.recv_timeout(PUBLISH_WAIT);
            }
        }
    }

    fn out(
        &self,
        conn: ConnRef,
        token: u64,
        nexus: &ItNexus,
        op: &SharedOp,
        ports: &[u16],
    ) -> Outcome {
        let (state, completion, effects) = match self.units.iter().find(|u| u.lun == op.lun) {
            Some(u) => self.apply(u, nexus, op, ports).unwrap_or_else(|e| {
                tracing::error!(target = %self.name, lun = op.lun, error = %e, "cannot change the shared reservation state; command refused");
                let c = check_condition_as(op.sense_format, Sense::internal_target_failure());
                (None, c, OutEffects::default())
            }),
            None => {
                let c = check_condition_as(op.sense_format, Sense::lun_not_supported());
                (None, c, OutEffects::default())
            }
        };
        Outcome::Applied(Settled {
            conn,
            token,
            target: self.target,
            lun: op.lun,
            state,
            completion,
            effects,
        })
    }

    /// Read, apply, compare-and-swap until it sticks; then tell the other gateways.
    fn apply(
        &self,
        u: &Unit,
        nexus: &ItNexus,
        op: &SharedOp,
        ports: &[u16],
    ) -> Result<(Option<PrState>, Completion, OutEffects), String> {
        for _ in 0..MAX_ATTEMPTS {
            let current = read(u)?;
            let version = current.as_ref().map(|r| r.version);
            let mut state = current.map(|r| r.state).unwrap_or_default();
            state.keep_spc2_of(&u.shared.snapshot().pr);
            let before = state.clone();
            let (completion, effects) = apply_shared(&mut state, nexus, op, ports);
            if state == before {
                return Ok((None, completion, effects));
            }
            let record = Record {
                version: version.map_or(1, |v| v.wrapping_add(1)),
                state,
                unit_attentions: effects.unit_attentions.clone(),
                abort_tasks_of: effects.abort_tasks_of.clone(),
            };
            let text = toml::to_string(&record).map_err(|e| e.to_string())?;
            let written = u
                .image
                .write_object_if(&u.object, version, record.version, text.as_bytes())
                .map_err(|e| e.to_string())?;
            if written {
                if let Err(e) = u.image.notify_object(&u.object, NOTIFY_TIMEOUT_MS) {
                    tracing::warn!(target = %self.name, lun = u.lun, error = %e, "not every gateway acknowledged a reservation change in time");
                }
                return Ok((Some(record.state), completion, effects));
            }
        }
        Err(format!(
            "{MAX_ATTEMPTS} attempts lost the race against other gateways"
        ))
    }
}
