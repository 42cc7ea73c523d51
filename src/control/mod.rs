//! The control thread: everything that must be unique across cores. Reactors send it requests
//! over a channel; it answers each reactor through that reactor's mailbox and wakes its ring.
#![forbid(unsafe_code)]

pub mod sessions;
pub mod tsih;

use crossbeam_channel::{Receiver, Sender};

use crate::pdu::login::LoginStatus;
use crate::session::ControlRequest;
pub use sessions::{ConnRef, Decision, SessionLimits, SessionTable};

#[derive(Debug)]
pub enum ToControl {
    Register {
        conn: ConnRef,
        req: ControlRequest,
    },
    /// A connection has closed and its I/O drained; `tsih` if it had a session.
    Ended {
        conn: ConnRef,
        tsih: Option<u16>,
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

pub fn run(rx: Receiver<ToControl>, reactors: Vec<ReactorLink>, limits: SessionLimits) {
    let mut table = SessionTable::new(limits);
    while let Ok(msg) = rx.recv() {
        let decisions = match msg {
            ToControl::Register { conn, req } => table.register(conn, req),
            ToControl::Ended { conn, tsih } => {
                table.abandoned(conn);
                tsih.map(|t| table.ended(t)).unwrap_or_default()
            }
            ToControl::Shutdown => break,
        };
        for d in decisions {
            let (core, msg) = match d {
                Decision::Reply(c, result) => {
                    (c.core, ToReactor::Registered { key: c.key, result })
                }
                Decision::Kill(c) => (c.core, ToReactor::Kill { key: c.key }),
            };
            if let Some(link) = reactors.get(core) {
                link.send(msg);
            }
        }
    }
    for link in &reactors {
        link.send(ToReactor::Shutdown);
    }
}
