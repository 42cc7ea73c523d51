//! The control thread: everything that must be unique across cores. Reactors send it requests
//! over a channel; it answers each reactor through that reactor's mailbox and wakes its ring.
#![forbid(unsafe_code)]

pub mod admin;
#[cfg(feature = "rbd")]
pub mod cluster_pr;
#[cfg(feature = "rbd")]
pub mod failover;
pub mod live;
pub mod lu;
pub mod metrics;
mod ops;
pub mod pr_store;
pub mod reload;
pub mod report;
pub mod sanitize_store;
pub mod sessions;
pub mod tsih;

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::pdu::login::LoginStatus;
use crate::reactor::StoreTable;
use crate::scsi::pr::ItNexus;
use crate::scsi::UnitAttention;
use crate::session::{LuReply, LuRequest, PortalContext, Registration, RemoteAbort};
use admin::protocol::{Request, ResponseLine};
use live::Runtime;
use lu::{LuAction, LuRegistry};
use ops::Ops;
pub use ops::{LogControl, Reloader};
use pr_store::PrStore;
use report::CoreReport;
pub use sessions::{ConnRef, Decision, SessionLimits, SessionTable};

#[derive(Debug)]
pub enum ToControl {
    Register {
        conn: ConnRef,
        req: Registration,
    },
    /// A connection has closed and its I/O drained; `tsih` if it had a session, and the
    /// I_T nexus (with its target's index) that ended with it if it was a normal session.
    Ended {
        conn: ConnRef,
        tsih: Option<u16>,
        nexus: Option<(usize, ItNexus)>,
    },
    /// An operation on shared logical-unit state.
    Lu {
        conn: ConnRef,
        token: u64,
        request: LuRequest,
    },
    /// A reactor has ended the tasks of broadcast abort `id`; `draining` sessions still finish
    /// some (each reports `AbortDrained` when done).
    AbortApplied {
        id: u64,
        draining: usize,
    },
    AbortDrained {
        id: u64,
    },
    /// An admin request (admin socket, metrics endpoint), answered on `reply`.
    Admin {
        request: Request,
        reply: Sender<ResponseLine>,
    },
    /// The helper thread of admin change step `id` is done.
    Helped {
        id: u64,
        done: ops::Helped,
    },
    /// A reactor serves from the context sent with `ToReactor::Apply { seq }`.
    Applied {
        seq: u64,
    },
    /// No task of the unit named by `ToReactor::Drain { id }` runs on the reactor any more.
    Drained {
        id: u64,
    },
    /// A reactor's answer to `ToReactor::Report { id }`.
    Report {
        id: u64,
        report: Box<CoreReport>,
    },
    /// The backing store of LUN `lun` of target `target` changed size outside the daemon (an
    /// RBD image resized in the cluster): the unit is resized as `ringtgt ctl lun resize`
    /// without a size does.
    StoreResized {
        target: String,
        lun: u16,
    },
    /// The ALUA states of gateway target `target` changed (`failover`): its units raise
    /// ASYMMETRIC ACCESS STATE CHANGED.
    #[cfg_attr(not(feature = "rbd"), allow(dead_code))]
    AccessStateChanged {
        target: usize,
    },
    /// A gateway target's reservation thread applied a change or saw another gateway's.
    #[cfg(feature = "rbd")]
    ClusterPr(cluster_pr::Outcome),
    /// Stop gracefully (`signal` names why, for the log): ask every session to log out, let
    /// the reactors drain and stop.
    Shutdown {
        signal: &'static str,
    },
    /// Every reactor has stopped: flush the stores and end.
    Exit,
}

pub enum ToReactor {
    Registered {
        key: u64,
        result: Result<u16, LoginStatus>,
    },
    Kill {
        key: u64,
    },
    LuDone {
        key: u64,
        token: u64,
        reply: LuReply,
    },
    /// End these tasks on every session of the reactor but `except` (a connection key, when the
    /// requester lives on this reactor), then answer with `ToControl::AbortApplied`.
    Abort {
        abort: RemoteAbort,
        except: Option<u64>,
    },
    /// Serve from this context and these stores from now on (see `live` for the rule), then
    /// answer `ToControl::Applied`.
    Apply {
        seq: u64,
        ctx: Arc<PortalContext>,
        stores: Arc<StoreTable>,
    },
    /// Answer `ToControl::Drained` once no session here has a task on this unit.
    Drain {
        id: u64,
        target: usize,
        lun: u16,
    },
    /// Answer `ToControl::Report` with this core's counters.
    Report {
        id: u64,
    },
    /// Ask this connection's initiator to log out (Async Message) within this time.
    RequestLogout {
        key: u64,
        within: Duration,
    },
    /// End this connection now (`ringtgt ctl session drop`).
    Drop {
        key: u64,
    },
    /// Stop listening now, ask every session to log out within `grace`, and stop once the
    /// connections are gone (closing those still there after `grace`).
    Shutdown {
        grace: Duration,
    },
}

/// How the control thread reaches one reactor: a channel plus a wake-up of its ring.
pub struct ReactorLink {
    pub tx: Sender<ToReactor>,
    pub wake: Box<dyn Fn() + Send>,
}

impl ReactorLink {
    fn send(&self, msg: ToReactor) {
        // A reactor that has exited no longer needs answers.
        if self.tx.send(msg).is_ok() {
            (self.wake)();
        }
    }
}

/// What the control thread starts with.
pub struct ControlSetup {
    pub limits: SessionLimits,
    pub runtime: Runtime,
    pub store: PrStore,
    /// Changes the log filter at run time (`ringtgt ctl log-level`).
    pub log: Option<LogControl>,
    /// Reads the configuration again (SIGHUP, `ringtgt ctl reload`); `None` when the daemon
    /// was started from flags alone.
    pub reload: Option<Reloader>,
}

/// Runs the control thread until `ToControl::Exit`; returns whether every write cache could
/// be flushed.
pub fn run(rx: Receiver<ToControl>, reactors: Vec<ReactorLink>, setup: ControlSetup) -> bool {
    let mut table = SessionTable::new(setup.limits);
    let mut lus = LuRegistry::new(setup.runtime.ctx(), reactors.len(), Some(setup.store));
    #[cfg(feature = "rbd")]
    for (target, jobs) in setup.runtime.cluster_pr_jobs() {
        lus.share_through_cluster(target, jobs);
    }
    let mut ops = Ops::new(setup.runtime, setup.log, setup.reload);
    while let Ok(msg) = rx.recv() {
        let actions = match msg {
            ToControl::Register { conn, req } => {
                // A login that raced with the removal of its target.
                let removed = req
                    .target
                    .as_deref()
                    .is_some_and(|t| !req.discovery && !ops.runtime().takes_logins(t));
                let decisions = if removed {
                    vec![Decision::Reply(conn, Err(LoginStatus::TARGET_REMOVED))]
                } else {
                    table.register(conn, req)
                };
                sessions_out(&reactors, decisions);
                continue;
            }
            ToControl::Ended { conn, tsih, nexus } => {
                // Before a login that reinstates this session is answered: SPC-2
                // reservations end with their nexus.
                if let Some((target, nexus)) = nexus {
                    lus.nexus_lost(target, &nexus);
                }
                table.abandoned(conn);
                sessions_out(&reactors, tsih.map(|t| table.ended(t)).unwrap_or_default());
                ops.session_ended(&mut env(&reactors, &table, &mut lus));
                continue;
            }
            ToControl::Admin { request, reply } => {
                ops.admin(request, reply, &mut env(&reactors, &table, &mut lus));
                continue;
            }
            ToControl::Helped { id, done } => {
                ops.helped(id, done, &mut env(&reactors, &table, &mut lus));
                continue;
            }
            ToControl::Applied { seq } => {
                ops.applied(seq, &mut env(&reactors, &table, &mut lus));
                continue;
            }
            ToControl::Drained { id } => {
                ops.drained(id, &mut env(&reactors, &table, &mut lus));
                continue;
            }
            ToControl::Report { id, report } => {
                ops.report(id, *report, &table);
                continue;
            }
            ToControl::Lu {
                conn,
                token,
                request,
            } => lus.request(conn, token, request),
            ToControl::AbortApplied { id, draining } => lus.applied(id, draining),
            ToControl::AbortDrained { id } => lus.drained(id),
            ToControl::StoreResized { target, lun } => {
                ops.store_resized(target, lun, &mut env(&reactors, &table, &mut lus));
                continue;
            }
            #[cfg(feature = "rbd")]
            ToControl::ClusterPr(outcome) => lus.cluster_outcome(outcome),
            ToControl::AccessStateChanged { target } => {
                lus.announce(target, UnitAttention::ASYMMETRIC_ACCESS_STATE_CHANGED);
                continue;
            }
            ToControl::Shutdown { signal } => {
                stop(signal, &mut ops, &reactors, &table);
                continue;
            }
            ToControl::Exit => break,
        };
        lu_out(&reactors, &table, ops.runtime().ctx(), actions);
    }
    // The reactors are gone: nothing writes to the stores any more. What they acknowledged is
    // made durable first, and only then does a gateway hand its locks over.
    let flushed = ops.runtime().flush_write_caches() == 0;
    ops.runtime_mut().stop_gateways();
    flushed
}

/// Starts the graceful stop (once). The control thread keeps serving meanwhile: sessions
/// still doing I/O may need reservations and resets, and their ends free TSIHs.
fn stop(signal: &'static str, ops: &mut Ops, reactors: &[ReactorLink], table: &SessionTable) {
    if !ops.stop() {
        return;
    }
    let grace = Duration::from_secs(ops.runtime().config().shutdown_grace_secs.into());
    tracing::info!(
        signal,
        sessions = table.live_sessions(),
        grace_secs = grace.as_secs(),
        "stopping"
    );
    for link in reactors {
        link.send(ToReactor::Shutdown { grace });
    }
}

fn env<'a>(
    links: &'a [ReactorLink],
    table: &'a SessionTable,
    lus: &'a mut LuRegistry,
) -> ops::Env<'a> {
    ops::Env { links, table, lus }
}

fn sessions_out(reactors: &[ReactorLink], decisions: Vec<Decision>) {
    for d in decisions {
        let (core, msg) = match d {
            Decision::Reply(c, result) => (c.core, ToReactor::Registered { key: c.key, result }),
            Decision::Kill(c) => (c.core, ToReactor::Kill { key: c.key }),
        };
        if let Some(link) = reactors.get(core) {
            link.send(msg);
        }
    }
}

fn lu_out(
    reactors: &[ReactorLink],
    table: &SessionTable,
    ctx: &PortalContext,
    actions: Vec<LuAction>,
) {
    for a in actions {
        match a {
            LuAction::CloseTarget { target, except } => {
                let Some(t) = ctx.targets.get(target) else {
                    continue;
                };
                for conn in table.connections_to(&t.name) {
                    if conn != except {
                        if let Some(link) = reactors.get(conn.core) {
                            link.send(ToReactor::Kill { key: conn.key });
                        }
                    }
                }
            }
            LuAction::Reply { conn, token, reply } => {
                if let Some(link) = reactors.get(conn.core) {
                    link.send(ToReactor::LuDone {
                        key: conn.key,
                        token,
                        reply,
                    });
                }
            }
            LuAction::Broadcast { abort, except } => {
                for (core, link) in reactors.iter().enumerate() {
                    let except = except.filter(|c| c.core == core).map(|c| c.key);
                    link.send(ToReactor::Abort {
                        abort: abort.clone(),
                        except,
                    });
                }
            }
        }
    }
}
