//! The session table and session reinstatement (RFC 7143 §6.3.5): a new leading login with the
//! initiator name and ISID of a live session ends that session first, wherever it lives.

use std::collections::HashMap;

use super::tsih::TsihPool;
use crate::pdu::login::LoginStatus;
use crate::session::Registration;

/// Where a connection lives: its reactor and its key there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub core: usize,
    pub key: u64,
}

struct Entry {
    /// Lower-cased initiator name, for the per-initiator ceiling.
    initiator: String,
    /// The target a normal session logged in to.
    target: Option<String>,
    nexus: Option<(String, [u8; 6])>,
    conn: ConnRef,
}

/// Ceilings on sessions (normal and discovery), so that one initiator, or many, cannot take
/// every TSIH and the memory each session may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_sessions: usize,
    pub max_sessions_per_initiator: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: 1024,
            max_sessions_per_initiator: 64,
        }
    }
}

/// A login waiting for the old session it reinstates to end.
struct Waiting {
    conn: ConnRef,
    nexus: (String, [u8; 6]),
    target: Option<String>,
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
    per_initiator: HashMap<String, usize>,
    waiting: Vec<Waiting>,
    limits: SessionLimits,
}

impl SessionTable {
    pub fn new(limits: SessionLimits) -> Self {
        SessionTable {
            limits,
            ..SessionTable::default()
        }
    }

    pub fn register(&mut self, conn: ConnRef, req: Registration) -> Vec<Decision> {
        let Registration {
            initiator,
            isid,
            tsih,
            discovery,
            target,
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
            return vec![self.admit(conn, nexus.0, None, None)];
        }
        if let Some(&old) = self.by_nexus.get(&nexus) {
            let Some(old_conn) = self.sessions.get(&old).map(|e| e.conn) else {
                return vec![self.admit(conn, nexus.0.clone(), Some(nexus), target)];
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
            self.waiting.push(Waiting {
                conn,
                nexus,
                target,
                old,
            });
            return vec![Decision::Kill(old_conn)];
        }
        vec![self.admit(conn, nexus.0.clone(), Some(nexus), target)]
    }

    fn admit(
        &mut self,
        conn: ConnRef,
        initiator: String,
        nexus: Option<(String, [u8; 6])>,
        target: Option<String>,
    ) -> Decision {
        let mine = self.per_initiator.get(&initiator).copied().unwrap_or(0);
        if self.sessions.len() >= self.limits.max_sessions
            || mine >= self.limits.max_sessions_per_initiator
        {
            tracing::warn!(
                initiator = %initiator,
                sessions = self.sessions.len(),
                of_initiator = mine,
                "login refused: session limit reached (max_sessions / max_sessions_per_initiator)"
            );
            return Decision::Reply(conn, Err(LoginStatus::OUT_OF_RESOURCES));
        }
        let Some(tsih) = self.pool.alloc() else {
            return Decision::Reply(conn, Err(LoginStatus::OUT_OF_RESOURCES));
        };
        if let Some(n) = &nexus {
            self.by_nexus.insert(n.clone(), tsih);
        }
        *self.per_initiator.entry(initiator.clone()).or_default() += 1;
        let entry = Entry {
            initiator,
            target,
            nexus,
            conn,
        };
        self.sessions.insert(tsih, entry);
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
        if let Some(count) = self.per_initiator.get_mut(&e.initiator) {
            *count -= 1;
            if *count == 0 {
                self.per_initiator.remove(&e.initiator);
            }
        }
        self.pool.release(tsih);
        let mut out = Vec::new();
        while let Some(i) = self.waiting.iter().position(|w| w.old == tsih) {
            let w = self.waiting.swap_remove(i);
            out.push(self.admit(w.conn, w.nexus.0.clone(), Some(w.nexus), w.target));
        }
        out
    }

    /// A connection that was waiting for a registration went away first.
    pub fn abandoned(&mut self, conn: ConnRef) {
        self.waiting.retain(|w| w.conn != conn);
    }

    /// Connections of every session logged in to `target` (case-insensitive name).
    pub fn connections_to(&self, target: &str) -> Vec<ConnRef> {
        self.sessions
            .values()
            .filter(|e| {
                e.target
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(target))
            })
            .map(|e| e.conn)
            .collect()
    }

    /// The connection of session `tsih`.
    pub fn conn_of(&self, tsih: u16) -> Option<ConnRef> {
        self.sessions.get(&tsih).map(|e| e.conn)
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(isid: u8, tsih: u16) -> Registration {
        Registration {
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
    fn session_ceilings_refuse_with_out_of_resources_and_free_on_end() {
        let mut t = SessionTable::new(SessionLimits {
            max_sessions: 3,
            max_sessions_per_initiator: 2,
        });
        let a = granted(&t.register(c(0, 1), reg(1, 0)));
        granted(&t.register(c(0, 2), reg(2, 0)));
        let refused = vec![Decision::Reply(c(0, 3), Err(LoginStatus::OUT_OF_RESOURCES))];
        assert_eq!(t.register(c(0, 3), reg(3, 0)), refused, "per initiator");
        let isid = reg(9, 0).isid;
        let other = |isid: [u8; 6]| Registration {
            initiator: "iqn.2026-11.test:other".into(),
            isid,
            tsih: 0,
            cid: 0,
            target: None,
            discovery: false,
        };
        granted(&t.register(c(0, 4), other([0x40, 0, 0, 0, 0, 1])));
        let refused = vec![Decision::Reply(c(0, 5), Err(LoginStatus::OUT_OF_RESOURCES))];
        assert_eq!(t.register(c(0, 5), other(isid)), refused, "in total");
        t.ended(a);
        granted(&t.register(c(0, 6), reg(3, 0)));
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
