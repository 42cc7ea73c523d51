//! The one writer of every logical unit's shared state (DESIGN.md §1): applies the operations
//! sessions send (resets, reservation commands), publishes the new snapshots every core reads,
//! persists reservations that asked for it (APTPL), and has tasks ended on the sessions an
//! operation names before the requester is answered.

use std::collections::HashMap;
use std::sync::Arc;

use super::pr_store::PrStore;
use super::sessions::ConnRef;
use crate::scsi::pr::{ItNexus, NexusSet, OutEffects, UaTarget};
use crate::scsi::shared::{LuShared, UaScope};
use crate::scsi::{
    apply_shared, check_condition_as, Completion, PrState, Sense, SharedOp, UnitAttention,
};
use crate::session::{LuOp, LuReply, LuRequest, PortalContext, RemoteAbort};

/// What the control thread must send after applying an operation.
#[derive(Debug, PartialEq, Eq)]
pub enum LuAction {
    /// Ask every reactor to end these tasks on its sessions (except on `except`, the
    /// requester's connection, for resets); each answers how many sessions still finish some.
    Broadcast {
        abort: RemoteAbort,
        except: Option<ConnRef>,
    },
    /// Close every session of this target (cold reset), the requester's after its answer.
    CloseTarget { target: usize, except: ConnRef },
    /// Answer the requester.
    Reply {
        conn: ConnRef,
        token: u64,
        reply: LuReply,
    },
}

/// A reservation command applied to a unit's state, to publish and answer.
#[derive(Debug)]
pub struct Settled {
    pub conn: ConnRef,
    pub token: u64,
    pub target: usize,
    pub lun: u16,
    /// The new state; `None` if it did not change.
    pub state: Option<PrState>,
    pub completion: Completion,
    pub effects: OutEffects,
}

/// A broadcast abort whose requester waits for every reactor and session to be done.
struct Pending {
    conn: ConnRef,
    token: u64,
    reply: LuReply,
    /// Reactors that have not answered yet.
    reactors_left: usize,
    /// Sessions that said they still had tasks finishing and have not reported them drained.
    draining: usize,
}

/// One logical unit as its writer knows it.
struct Unit {
    lun: u16,
    shared: Arc<LuShared>,
    /// Relative target port identifiers through which the unit is reached.
    ports: Vec<u16>,
}

struct Target {
    name: String,
    units: Vec<Unit>,
}

pub struct LuRegistry {
    /// Per target index, its logical units.
    targets: Vec<Target>,
    /// Where APTPL reservations are kept; `None` keeps them in memory only (tests).
    store: Option<PrStore>,
    reactors: usize,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    /// Gateway targets whose persistent reservations live in the cluster: where their
    /// PERSISTENT RESERVE OUTs go (`cluster_pr`).
    #[cfg(feature = "rbd")]
    cluster: HashMap<usize, crossbeam_channel::Sender<super::cluster_pr::Job>>,
}

impl LuRegistry {
    pub fn new(ctx: &PortalContext, reactors: usize, store: Option<PrStore>) -> Self {
        LuRegistry {
            targets: targets_of(ctx),
            store,
            reactors,
            pending: HashMap::new(),
            next_id: 1,
            #[cfg(feature = "rbd")]
            cluster: HashMap::new(),
        }
    }

    /// Target `target`'s persistent reservations are applied through the cluster by `jobs`.
    #[cfg(feature = "rbd")]
    pub fn share_through_cluster(
        &mut self,
        target: usize,
        jobs: crossbeam_channel::Sender<super::cluster_pr::Job>,
    ) {
        self.cluster.insert(target, jobs);
    }

    /// What a gateway target's reservation thread reports.
    #[cfg(feature = "rbd")]
    pub fn cluster_outcome(&mut self, outcome: super::cluster_pr::Outcome) -> Vec<LuAction> {
        use super::cluster_pr::Outcome;
        match outcome {
            Outcome::Applied(settled) => self.settle_reservation(settled),
            Outcome::Changed {
                target,
                lun,
                mut state,
                effects,
                done,
            } => {
                let mut actions = Vec::new();
                if let Some(unit) = self.unit(target, lun) {
                    let now = unit.shared.snapshot();
                    state.keep_spc2_of(&now.pr);
                    let events = reservation_events(effects.unit_attentions);
                    unit.shared.publish(now.successor(state, events));
                    if !effects.abort_tasks_of.is_empty() {
                        // Nobody here waits for it (id 0: the reactors' answers are ignored).
                        actions.push(LuAction::Broadcast {
                            abort: preempted_tasks(target, lun, effects.abort_tasks_of),
                            except: None,
                        });
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
                actions
            }
        }
    }

    fn unit(&self, target: usize, lun: u16) -> Option<&Unit> {
        self.targets
            .get(target)?
            .units
            .iter()
            .find(|u| u.lun == lun)
    }

    /// The units changed (`ringtgt ctl`): the registry follows the new context. Target indices
    /// are stable, so pending broadcasts stay valid.
    pub fn refresh(&mut self, ctx: &PortalContext) {
        self.targets = targets_of(ctx);
    }

    /// Raises `ua` for every I_T nexus of every unit of target `target` (a state that all of
    /// them see changed, such as the target's ALUA states).
    pub fn announce(&mut self, target: usize, ua: UnitAttention) {
        let Some(t) = self.targets.get(target) else {
            return;
        };
        for unit in &t.units {
            let now = unit.shared.snapshot();
            unit.shared
                .publish(now.successor(now.pr.clone(), vec![(UaScope::All, ua)]));
        }
    }

    /// Applies a session's request.
    pub fn request(&mut self, conn: ConnRef, token: u64, req: LuRequest) -> Vec<LuAction> {
        let LuRequest {
            target,
            lun,
            nexus,
            op,
        } = req;
        if let LuOp::Reservation(op) = op {
            return self.reservation(conn, token, target, &nexus, &op);
        }
        let Some(t) = self.targets.get(target) else {
            return vec![reply(conn, token, LuReply::Done)];
        };
        let event = match op {
            // SAM-5 §6.3.3: a logical unit reset is reported to every I_T nexus, the one that
            // asked for it included (libiscsi's MultipathIO.Reset checks every path).
            LuOp::LunReset => (UaScope::All, UnitAttention::LUN_RESET),
            LuOp::TargetReset | LuOp::TargetColdReset => {
                (UaScope::All, UnitAttention::POWER_ON_RESET)
            }
            // SAM-5 §7.4: COMMANDS CLEARED BY ANOTHER INITIATOR, to the others.
            LuOp::ClearTaskSet => (
                UaScope::AllExcept(nexus.clone()),
                UnitAttention::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR,
            ),
            LuOp::Reservation(_) => unreachable!("handled above"),
        };
        let resets = op != LuOp::ClearTaskSet;
        for unit in t.units.iter().filter(|u| lun.is_none_or(|l| l == u.lun)) {
            let now = unit.shared.snapshot();
            let mut pr = now.pr.clone();
            if resets {
                // SPC-4: a reset releases an SPC-2 reservation (persistent ones stay) and ends
                // every nexus's prevention of medium removal.
                pr.reset();
                unit.shared.medium.reset_prevention();
            }
            unit.shared.publish(now.successor(pr, vec![event.clone()]));
        }
        let abort = RemoteAbort {
            id: 0,
            target,
            lun,
            only: None,
            announce: false,
        };
        let mut actions = self.broadcast(conn, token, LuReply::Done, abort, Some(conn));
        if op == LuOp::TargetColdReset {
            actions.push(LuAction::CloseTarget {
                target,
                except: conn,
            });
        }
        actions
    }

    /// PERSISTENT RESERVE OUT, RESERVE or RELEASE from `nexus`: applied to the unit's state,
    /// made durable when APTPL asks, published with the unit attentions it raises; PREEMPT AND
    /// ABORT answers once the preempted nexuses' tasks have ended.
    fn reservation(
        &mut self,
        conn: ConnRef,
        token: u64,
        target: usize,
        nexus: &ItNexus,
        op: &SharedOp,
    ) -> Vec<LuAction> {
        let refuse = |sense: Sense| {
            let c = check_condition_as(op.sense_format, sense);
            vec![reply(conn, token, LuReply::Completed(c))]
        };
        let Some(t) = self.targets.get(target) else {
            return refuse(Sense::lun_not_supported());
        };
        let Some(unit) = t.units.iter().find(|u| u.lun == op.lun) else {
            return refuse(Sense::lun_not_supported());
        };
        #[cfg(feature = "rbd")]
        if let (Some(jobs), crate::scsi::SharedRequest::PersistentReserveOut(_)) =
            (self.cluster.get(&target), &op.request)
        {
            let job = super::cluster_pr::Job::Out {
                conn,
                token,
                nexus: nexus.clone(),
                op: op.clone(),
                ports: unit.ports.clone(),
            };
            if jobs.send(job).is_err() {
                return refuse(Sense::internal_target_failure());
            }
            // Answered when the cluster has it (`cluster_outcome`).
            return Vec::new();
        }
        let now = unit.shared.snapshot();
        let mut pr = now.pr.clone();
        let (completion, effects) = apply_shared(&mut pr, nexus, op, &unit.ports);
        if effects.persist {
            if let Some(store) = &self.store {
                if let Err(e) = store.save(&t.name, op.lun, &pr) {
                    // Nothing changes: a reservation the initiator was told would survive a
                    // power loss must not exist only in memory.
                    tracing::error!(
                        target = %t.name,
                        lun = op.lun,
                        path = %store.path(&t.name, op.lun).display(),
                        error = %e,
                        "cannot persist reservations (APTPL); command refused"
                    );
                    return refuse(Sense::internal_target_failure());
                }
            }
        }
        self.settle_reservation(Settled {
            conn,
            token,
            target,
            lun: op.lun,
            state: (pr != now.pr).then_some(pr),
            completion,
            effects,
        })
    }

    /// Publishes a reservation change (`state`, if it changed, and the unit attentions it
    /// raises), then answers the requester, after the preempted tasks have ended if any were.
    fn settle_reservation(&mut self, settled: Settled) -> Vec<LuAction> {
        let Settled {
            conn,
            token,
            target,
            lun,
            state,
            completion,
            effects,
        } = settled;
        let events = reservation_events(effects.unit_attentions);
        if let Some(unit) = self.unit(target, lun) {
            let now = unit.shared.snapshot();
            if state.is_some() || !events.is_empty() {
                let pr = state.unwrap_or_else(|| now.pr.clone());
                unit.shared.publish(now.successor(pr, events));
            }
        }
        let done = LuReply::Completed(completion);
        if effects.abort_tasks_of.is_empty() {
            return vec![reply(conn, token, done)];
        }
        let abort = preempted_tasks(target, lun, effects.abort_tasks_of);
        self.broadcast(conn, token, done, abort, None)
    }

    /// The session of I_T nexus `nexus` on `target` has ended (logout, connection loss,
    /// reinstatement): an SPC-2 reservation it held is released.
    pub fn nexus_lost(&mut self, target: usize, nexus: &ItNexus) {
        let Some(t) = self.targets.get(target) else {
            return;
        };
        for unit in &t.units {
            let now = unit.shared.snapshot();
            let mut pr = now.pr.clone();
            if pr.nexus_lost(nexus) {
                unit.shared.publish(now.successor(pr, Vec::new()));
            }
        }
    }

    fn broadcast(
        &mut self,
        conn: ConnRef,
        token: u64,
        reply_with: LuReply,
        mut abort: RemoteAbort,
        except: Option<ConnRef>,
    ) -> Vec<LuAction> {
        if self.reactors == 0 {
            return vec![reply(conn, token, reply_with)];
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                conn,
                token,
                reply: reply_with,
                reactors_left: self.reactors,
                draining: 0,
            },
        );
        abort.id = id;
        vec![LuAction::Broadcast { abort, except }]
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
                vec![reply(p.conn, p.token, p.reply)]
            }
            _ => Vec::new(),
        }
    }
}

fn targets_of(ctx: &PortalContext) -> Vec<Target> {
    ctx.targets
        .iter()
        .map(|t| Target {
            name: t.name.clone(),
            units: t
                .luns
                .iter()
                .map(|lu| Unit {
                    lun: lu.lun,
                    shared: lu.shared.clone(),
                    ports: t.port_groups.ids(),
                })
                .collect(),
        })
        .collect()
}

/// The unit attentions a reservation change raises, as events of the unit's log.
fn reservation_events(uas: Vec<(UaTarget, UnitAttention)>) -> Vec<(UaScope, UnitAttention)> {
    uas.into_iter()
        .map(|(to, ua)| (UaScope::Matching(to), ua))
        .collect()
}

/// PREEMPT AND ABORT: the tasks of the preempted nexuses end (SAM-5), and they are told.
fn preempted_tasks(target: usize, lun: u16, nexuses: Vec<NexusSet>) -> RemoteAbort {
    RemoteAbort {
        id: 0,
        target,
        lun: Some(lun),
        only: Some(nexuses.into()),
        announce: true,
    }
}

fn reply(conn: ConnRef, token: u64, reply: LuReply) -> LuAction {
    LuAction::Reply { conn, token, reply }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::pr::{InitiatorPort, Preempt, ProutRequest, Register};
    use crate::scsi::shared::LuShared;
    use crate::scsi::{ScsiStatus, SharedRequest};

    fn registry(reactors: usize) -> (LuRegistry, Arc<LuShared>) {
        let shared = Arc::new(LuShared::default());
        let r = LuRegistry {
            targets: vec![Target {
                name: "iqn.t".into(),
                units: vec![Unit {
                    lun: 0,
                    shared: shared.clone(),
                    ports: vec![1],
                }],
            }],
            store: None,
            reactors,
            pending: HashMap::new(),
            next_id: 1,
            #[cfg(feature = "rbd")]
            cluster: HashMap::new(),
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
        assert_eq!((*except, abort.lun), (Some(ME), Some(0)));
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

    fn named(name: &str) -> ItNexus {
        let mut n = nexus();
        n.initiator.name = name.into();
        n
    }

    fn reservation(nexus: ItNexus, request: SharedRequest) -> LuRequest {
        LuRequest {
            target: 0,
            lun: Some(0),
            nexus,
            op: LuOp::Reservation(SharedOp {
                lun: 0,
                request,
                sense_format: crate::scsi::SenseFormat::Fixed,
            }),
        }
    }

    fn register(key: u64, aptpl: bool) -> SharedRequest {
        SharedRequest::PersistentReserveOut(ProutRequest::Register(Register {
            key: 0,
            sa_key: key,
            ignore_existing: false,
            all_tg_pt: false,
            aptpl,
            spec_i_pt: None,
        }))
    }

    fn status(actions: &[LuAction]) -> ScsiStatus {
        match actions {
            [LuAction::Reply {
                reply: LuReply::Completed(c),
                ..
            }] => c.status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_aptpl_change_that_cannot_be_made_durable_is_refused_and_not_applied() {
        let (mut r, shared) = registry(1);
        // A state directory that is a file: nothing can be created under it.
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("state");
        std::fs::write(&blocker, "").unwrap();
        r.store = Some(PrStore::new(&blocker));
        let actions = r.request(ME, 1, reservation(nexus(), register(0xA, true)));
        let LuAction::Reply {
            reply: LuReply::Completed(c),
            ..
        } = &actions[0]
        else {
            panic!("{actions:?}");
        };
        assert_eq!(c.status, ScsiStatus::CHECK_CONDITION);
        assert!(shared.snapshot().pr.registrations().is_empty());
        // Without APTPL nothing needs the disk.
        let actions = r.request(ME, 2, reservation(nexus(), register(0xA, false)));
        assert_eq!(status(&actions), ScsiStatus::GOOD);
        assert_eq!(shared.snapshot().pr.registrations().len(), 1);
    }

    #[test]
    fn preempt_and_abort_broadcasts_to_the_preempted_nexuses_and_answers_after() {
        let (mut r, shared) = registry(1);
        let (a, b) = (named("iqn.a"), named("iqn.b"));
        assert_eq!(
            status(&r.request(ME, 1, reservation(a.clone(), register(0xA, false)))),
            ScsiStatus::GOOD
        );
        assert_eq!(
            status(&r.request(ME, 2, reservation(b.clone(), register(0xB, false)))),
            ScsiStatus::GOOD
        );
        let reserve = SharedRequest::PersistentReserveOut(ProutRequest::Reserve {
            key: 0xA,
            kind: crate::scsi::pr::PrType::EXCLUSIVE_ACCESS,
        });
        assert_eq!(
            status(&r.request(ME, 3, reservation(a.clone(), reserve))),
            ScsiStatus::GOOD
        );
        let preempt = SharedRequest::PersistentReserveOut(ProutRequest::Preempt(Preempt {
            key: 0xB,
            sa_key: 0xA,
            kind: crate::scsi::pr::PrType::EXCLUSIVE_ACCESS,
            abort: true,
        }));
        let actions = r.request(ME, 3, reservation(b.clone(), preempt));
        let [LuAction::Broadcast { abort, except }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!(
            *except, None,
            "the preempting session's other tasks may be named too"
        );
        assert!(abort.announce);
        let only = abort.only.as_ref().expect("only the preempted nexuses");
        assert!(only.iter().any(|s| s.covers(&a)) && !only.iter().any(|s| s.covers(&b)));
        assert_eq!(status(&r.applied(abort.id, 0)), ScsiStatus::GOOD);
        let snap = shared.snapshot();
        assert!(snap.pr.is_holder(&b));
        let (for_a, _) = snap.events_for(&a, 0);
        assert!(for_a
            .collect::<Vec<_>>()
            .contains(&UnitAttention::REGISTRATIONS_PREEMPTED));
    }

    #[test]
    fn an_spc2_reservation_ends_with_a_reset_or_its_nexus() {
        let (mut r, shared) = registry(0);
        let a = nexus();
        assert_eq!(
            status(&r.request(ME, 1, reservation(a.clone(), SharedRequest::Reserve))),
            ScsiStatus::GOOD
        );
        assert_eq!(shared.snapshot().pr.spc2_holder(), Some(&a));
        r.nexus_lost(0, &named("iqn.someone-else"));
        assert_eq!(shared.snapshot().pr.spc2_holder(), Some(&a));
        r.nexus_lost(0, &a);
        assert_eq!(shared.snapshot().pr.spc2_holder(), None);

        r.request(ME, 2, reservation(a.clone(), SharedRequest::Reserve));
        r.request(ME, 3, reservation(a.clone(), register(0xA, false)));
        r.request(ME, 4, lun_reset());
        let snap = shared.snapshot();
        assert_eq!(snap.pr.spc2_holder(), None, "a reset releases it");
    }
}
