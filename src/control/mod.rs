//! The control thread: everything that must be unique across cores. Reactors send it requests
//! over a channel; it answers each reactor through that reactor's mailbox and wakes its ring.
#![forbid(unsafe_code)]

pub mod lu;
pub mod sessions;
pub mod tsih;

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::pdu::login::LoginStatus;
use crate::session::{LuReply, LuRequest, PortalContext, Registration, RemoteAbort};
use lu::{LuAction, LuRegistry};
pub use sessions::{ConnRef, Decision, SessionLimits, SessionTable};

#[derive(Debug)]
pub enum ToControl {
    Register {
        conn: ConnRef,
        req: Registration,
    },
    /// A connection has closed and its I/O drained; `tsih` if it had a session.
    Ended {
        conn: ConnRef,
        tsih: Option<u16>,
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
    /// The backing store of LUN `lun` of target `target` now holds `blocks` logical blocks.
    Resized {
        target: usize,
        lun: u16,
        blocks: u64,
    },
    Shutdown,
}

#[derive(Debug, PartialEq, Eq)]
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
    Shutdown,
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

pub fn run(
    rx: Receiver<ToControl>,
    reactors: Vec<ReactorLink>,
    limits: SessionLimits,
    ctx: Arc<PortalContext>,
) {
    let mut table = SessionTable::new(limits);
    let mut lus = LuRegistry::new(&ctx, reactors.len());
    while let Ok(msg) = rx.recv() {
        let actions = match msg {
            ToControl::Register { conn, req } => {
                sessions_out(&reactors, table.register(conn, req));
                continue;
            }
            ToControl::Ended { conn, tsih } => {
                table.abandoned(conn);
                sessions_out(&reactors, tsih.map(|t| table.ended(t)).unwrap_or_default());
                continue;
            }
            ToControl::Lu {
                conn,
                token,
                request,
            } => lus.request(conn, token, request),
            ToControl::AbortApplied { id, draining } => lus.applied(id, draining),
            ToControl::AbortDrained { id } => lus.drained(id),
            ToControl::Resized {
                target,
                lun,
                blocks,
            } => {
                lus.resized(target, lun, blocks);
                continue;
            }
            ToControl::Shutdown => break,
        };
        lu_out(&reactors, &table, &ctx, actions);
    }
    for link in &reactors {
        link.send(ToReactor::Shutdown);
    }
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
                    let except = (core == except.core).then_some(except.key);
                    link.send(ToReactor::Abort { abort, except });
                }
            }
        }
    }
}
