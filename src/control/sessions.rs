//! The session table and session reinstatement (RFC 7143 §6.3.5): a new leading login with the
//! initiator name and ISID of a live session ends that session first, wherever it lives.

use std::collections::HashMap;

use super::tsih::TsihPool;
use crate::pdu::login::LoginStatus;
use crate::session::ControlRequest;

/// Where a connection lives: its reactor and its key there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub core: usize,
    pub key: u64,
}

struct Entry {
    nexus: Option<(String, [u8; 6])>,
    conn: ConnRef,
}

/// A login waiting for the old session it reinstates to end.
struct Waiting {
    conn: ConnRef,
    nexus: (String, [u8; 6]),
    old: u16,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answer this connection's registration.
    Reply(ConnRef, Result<u16, LoginStatus>),
    /// End this (old) connection; the registration waits for its `ended`.
    Kill(ConnRef),
}

#[derive(Default)]
pub struct SessionTable {
    pool: TsihPool,
    sessions: HashMap<u16, Entry>,
    by_nexus: HashMap<(String, [u8; 6]), u16>,
    waiting: Vec<Waiting>,
}

impl SessionTable {
    pub fn register(&mut self, conn: ConnRef, req: ControlRequest) -> Vec<Decision> {
        let ControlRequest::Register {
            initiator,
            isid,
            tsih,
            discovery,
            ..
        } = req;
        // RFC 7143 §4.2.7.1: iSCSI names compare case-insensitively.
        let nexus = (initiator.to_ascii_lowercase(), isid);
        if tsih != 0 {
            let status = match self.sessions.get(&tsih) {
                Some(e) if e.nexus.as_ref() == Some(&nexus) => LoginStatus::TOO_MANY_CONNECTIONS,
                _ => LoginStatus::SESSION_DOES_NOT_EXIST,
            };
            return vec![Decision::Reply(conn, Err(status))];
        }
        if discovery {
            return vec![self.admit(conn, None)];
        }
        if let Some(&old) = self.by_nexus.get(&nexus) {
            let Some(old_conn) = self.sessions.get(&old).map(|e| e.conn) else {
                return vec![self.admit(conn, Some(nexus))];
            };
            tracing::info!(initiator = %nexus.0, old_tsih = old, "reinstating session: ending the old one first");
            if let Some(w) = self.waiting.iter_mut().find(|w| w.old == old) {
                // A second reinstatement while the first waits: the newest login wins.
                let superseded = std::mem::replace(&mut w.conn, conn);
                return vec![Decision::Reply(
                    superseded,
                    Err(LoginStatus::SESSION_DOES_NOT_EXIST),
                )];
            }
            self.waiting.push(Waiting { conn, nexus, old });
            return vec![Decision::Kill(old_conn)];
        }
        vec![self.admit(conn, Some(nexus))]
    }

    fn admit(&mut self, conn: ConnRef, nexus: Option<(String, [u8; 6])>) -> Decision {
        let Some(tsih) = self.pool.alloc() else {
            return Decision::Reply(conn, Err(LoginStatus::OUT_OF_RESOURCES));
        };
        if let Some(n) = &nexus {
            self.by_nexus.insert(n.clone(), tsih);
        }
        self.sessions.insert(tsih, Entry { nexus, conn });
        Decision::Reply(conn, Ok(tsih))
    }

    /// A session's connection has fully closed (its I/O drained): free its TSIH and let any
    /// login that was waiting on it proceed.
    pub fn ended(&mut self, tsih: u16) -> Vec<Decision> {
        let Some(e) = self.sessions.remove(&tsih) else {
            return Vec::new();
        };
        if let Some(n) = &e.nexus {
            if self.by_nexus.get(n) == Some(&tsih) {
                self.by_nexus.remove(n);
            }
        }
        self.pool.release(tsih);
        let mut out = Vec::new();
        while let Some(i) = self.waiting.iter().position(|w| w.old == tsih) {
            let w = self.waiting.swap_remove(i);
            out.push(self.admit(w.conn, Some(w.nexus)));
        }
        out
    }

    /// A connection that was waiting for a registration went away first.
    pub fn abandoned(&mut self, conn: ConnRef) {
        self.waiting.retain(|w| w.conn != conn);
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(isid: u8, tsih: u16) -> ControlRequest {
        ControlRequest::Register {
            initiator: "iqn.2026-11.test:init".into(),
            isid: [0x40, 0, 0, 0, 0, isid],
            tsih,
            cid: 0,
            target: Some("iqn.2026-11.test:t".into()),
            discovery: false,
        }
    }

    fn c(core: usize, key: u64) -> ConnRef {
        ConnRef { core, key }
    }

    fn granted(d: &[Decision]) -> u16 {
        match d {
            [Decision::Reply(_, Ok(t))] => *t,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reinstatement_ends_old_session_first() {
        let mut t = SessionTable::default();
        let old = granted(&t.register(c(0, 1), reg(1, 0)));
        // Same initiator + ISID on another core: the old connection is told to end; no reply yet.
        assert_eq!(
            t.register(c(1, 7), reg(1, 0)),
            vec![Decision::Kill(c(0, 1))]
        );
        let d = t.ended(old);
        let new = granted(&d);
        assert!(matches!(d[0], Decision::Reply(conn, _) if conn == c(1, 7)));
        assert_ne!(new, old);
        assert_eq!(t.live_sessions(), 1);
    }

    #[test]
    fn different_isid_is_a_separate_session() {
        let mut t = SessionTable::default();
        granted(&t.register(c(0, 1), reg(1, 0)));
        granted(&t.register(c(0, 2), reg(2, 0)));
        assert_eq!(t.live_sessions(), 2);
    }

    #[test]
    fn unknown_tsih_is_refused() {
        let mut t = SessionTable::default();
        assert_eq!(
            t.register(c(0, 1), reg(1, 999)),
            vec![Decision::Reply(
                c(0, 1),
                Err(LoginStatus::SESSION_DOES_NOT_EXIST)
            )]
        );
    }

    #[test]
    fn second_connection_to_live_session_is_refused() {
        let mut t = SessionTable::default();
        let tsih = granted(&t.register(c(0, 1), reg(1, 0)));
        assert_eq!(
            t.register(c(0, 2), reg(1, tsih)),
            vec![Decision::Reply(
                c(0, 2),
                Err(LoginStatus::TOO_MANY_CONNECTIONS)
            )]
        );
    }

    #[test]
    fn tsihs_are_recycled_through_many_sessions() {
        let mut t = SessionTable::default();
        for i in 0..200_000u64 {
            let tsih = granted(&t.register(c(0, i), reg(1, 0)));
            t.ended(tsih);
        }
        assert_eq!(t.live_sessions(), 0);
    }
}
