//! The one writer of every logical unit's shared state (DESIGN.md §1): applies the operations
//! sessions send (resets today, reservations next), publishes the new snapshots every core
//! reads, and has tasks ended on every other session before the requester is answered.

use std::collections::HashMap;
use std::sync::Arc;

use super::sessions::ConnRef;
use crate::scsi::shared::{LuShared, UaScope};
use crate::scsi::UnitAttention;
use crate::session::{LuOp, LuReply, LuRequest, PortalContext, RemoteAbort};

/// What the control thread must send after applying an operation.
#[derive(Debug, PartialEq, Eq)]
pub enum LuAction {
    /// Ask every reactor to end these tasks on its sessions, except on the requester's
    /// connection; each answers how many sessions still finish some.
    Broadcast { abort: RemoteAbort, except: ConnRef },
    /// Close every session of this target (cold reset), the requester's after its answer.
    CloseTarget { target: usize, except: ConnRef },
    /// Answer the requester.
    Reply {
        conn: ConnRef,
        token: u64,
        reply: LuReply,
    },
}

/// A broadcast abort whose requester waits for every reactor and session to be done.
struct Pending {
    conn: ConnRef,
    token: u64,
    /// Reactors that have not answered yet.
    reactors_left: usize,
    /// Sessions that said they still had tasks finishing and have not reported them drained.
    draining: usize,
}

pub struct LuRegistry {
    /// Per target index, its logical units' shared state.
    units: Vec<Vec<(u16, Arc<LuShared>)>>,
    reactors: usize,
    pending: HashMap<u64, Pending>,
    next_id: u64,
}

impl LuRegistry {
    pub fn new(ctx: &PortalContext, reactors: usize) -> Self {
        let units = ctx
            .targets
            .iter()
            .map(|t| {
                t.luns
                    .iter()
                    .map(|lu| (lu.lun, lu.shared.clone()))
                    .collect()
            })
            .collect();
        LuRegistry {
            units,
            reactors,
            pending: HashMap::new(),
            next_id: 1,
        }
    }

    /// Applies a session's request.
    pub fn request(&mut self, conn: ConnRef, token: u64, req: LuRequest) -> Vec<LuAction> {
        let Some(units) = self.units.get(req.target) else {
            return vec![reply(conn, token)];
        };
        let affected: Vec<&Arc<LuShared>> = units
            .iter()
            .filter(|(lun, _)| req.lun.is_none_or(|l| l == *lun))
            .map(|(_, shared)| shared)
            .collect();
        let event = match req.op {
            // SAM-5 §6.3.3: a logical unit reset is reported to every I_T nexus, the one that
            // asked for it included (libiscsi's MultipathIO.Reset checks every path).
            LuOp::LunReset => (UaScope::All, UnitAttention::LUN_RESET),
            LuOp::TargetReset | LuOp::TargetColdReset => {
                (UaScope::All, UnitAttention::POWER_ON_RESET)
            }
            // SAM-5 §7.4: COMMANDS CLEARED BY ANOTHER INITIATOR (2Fh/00h), to the others.
            LuOp::ClearTaskSet => (
                UaScope::AllExcept(req.nexus.clone()),
                UnitAttention::new(0x2f, 0x00),
            ),
        };
        for shared in affected {
            if req.op != LuOp::ClearTaskSet {
                // SPC-4 PREVENT ALLOW MEDIUM REMOVAL: a logical unit reset ends every nexus's
                // prevention.
                shared.medium.reset_prevention();
            }
            let now = shared.snapshot();
            shared.publish(now.successor(now.pr.clone(), vec![event.clone()]));
        }
        let mut actions = self.broadcast(conn, token, req.target, req.lun);
        if req.op == LuOp::TargetColdReset {
            actions.push(LuAction::CloseTarget {
                target: req.target,
                except: conn,
            });
        }
        actions
    }

    fn broadcast(
        &mut self,
        conn: ConnRef,
        token: u64,
        target: usize,
        lun: Option<u16>,
    ) -> Vec<LuAction> {
        if self.reactors == 0 {
            return vec![reply(conn, token)];
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                conn,
                token,
                reactors_left: self.reactors,
                draining: 0,
            },
        );
        let abort = RemoteAbort { id, target, lun };
        vec![LuAction::Broadcast {
            abort,
            except: conn,
        }]
    }

    /// The store of a logical unit changed size: publish the new capacity, with CAPACITY DATA
    /// HAS CHANGED for every I_T nexus.
    pub fn resized(&mut self, target: usize, lun: u16, blocks: u64) {
        let Some((_, shared)) = self
            .units
            .get(target)
            .and_then(|units| units.iter().find(|(l, _)| *l == lun))
        else {
            return;
        };
        let now = shared.snapshot();
        tracing::info!(target, lun, blocks, "logical unit resized");
        shared.publish(now.resized(blocks));
    }

    /// A reactor has ended the tasks of broadcast `id`; `draining` of its sessions still have
    /// some finishing.
    pub fn applied(&mut self, id: u64, draining: usize) -> Vec<LuAction> {
        let Some(p) = self.pending.get_mut(&id) else {
            return Vec::new();
        };
        p.reactors_left = p.reactors_left.saturating_sub(1);
        p.draining += draining;
        self.settle(id)
    }

    /// One session's tasks of broadcast `id` have all finished.
    pub fn drained(&mut self, id: u64) -> Vec<LuAction> {
        let Some(p) = self.pending.get_mut(&id) else {
            return Vec::new();
        };
        p.draining = p.draining.saturating_sub(1);
        self.settle(id)
    }

    fn settle(&mut self, id: u64) -> Vec<LuAction> {
        match self.pending.get(&id) {
            Some(p) if p.reactors_left == 0 && p.draining == 0 => {
                let p = self.pending.remove(&id).expect("present");
                vec![reply(p.conn, p.token)]
            }
            _ => Vec::new(),
        }
    }
}

fn reply(conn: ConnRef, token: u64) -> LuAction {
    LuAction::Reply {
        conn,
        token,
        reply: LuReply::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::pr::{InitiatorPort, ItNexus};
    use crate::scsi::shared::LuShared;

    fn registry(reactors: usize) -> (LuRegistry, Arc<LuShared>) {
        let shared = Arc::new(LuShared::default());
        let r = LuRegistry {
            units: vec![vec![(0, shared.clone())]],
            reactors,
            pending: HashMap::new(),
            next_id: 1,
        };
        (r, shared)
    }

    fn nexus() -> ItNexus {
        ItNexus {
            initiator: InitiatorPort {
                name: "iqn.a".into(),
                isid: [0; 6],
            },
            relative_port: 1,
        }
    }

    fn lun_reset() -> LuRequest {
        LuRequest {
            target: 0,
            lun: Some(0),
            nexus: nexus(),
            op: LuOp::LunReset,
        }
    }

    const ME: ConnRef = ConnRef { core: 1, key: 7 };

    #[test]
    fn a_reset_answers_only_after_every_reactor_and_draining_session() {
        let (mut r, shared) = registry(2);
        let actions = r.request(ME, 42, lun_reset());
        let LuAction::Broadcast { abort, except } = &actions[0] else {
            panic!("{actions:?}");
        };
        assert_eq!((*except, abort.lun), (ME, Some(0)));
        let id = abort.id;
        assert!(r.applied(id, 1).is_empty(), "one reactor left");
        assert!(r.applied(id, 0).is_empty(), "one session still drains");
        assert_eq!(
            r.drained(id),
            vec![LuAction::Reply {
                conn: ME,
                token: 42,
                reply: LuReply::Done
            }]
        );
        // Every nexus, the requester's included, hears of the reset.
        let snap = shared.snapshot();
        let me = nexus();
        let (uas, _) = snap.events_for(&me, 0);
        assert_eq!(uas.collect::<Vec<_>>(), vec![UnitAttention::LUN_RESET]);
    }

    #[test]
    fn clear_task_set_tells_only_the_other_nexuses() {
        let (mut r, shared) = registry(1);
        let mut req = lun_reset();
        req.op = LuOp::ClearTaskSet;
        r.request(ME, 1, req);
        let snap = shared.snapshot();
        let me = nexus();
        assert_eq!(snap.events_for(&me, 0).0.count(), 0);
        let mut other = nexus();
        other.initiator.name = "iqn.b".into();
        assert_eq!(snap.events_for(&other, 0).0.count(), 1);
    }
}
