//! Reservations through `dispatch`, `execute_params` and `apply_shared`, with a stand-in for the
//! control thread: one `PrState` for the unit, effects delivered to every session's nexus. The
//! libiscsi tests named here are replayed command by command (iscsi-test-cu 1.19).

use super::*;
use crate::scsi::pr::{in_service_action as pr_in, out_service_action as pr_out, PrType};
use crate::scsi::{
    apply_shared, reservation_conflict, Access, LuContext, ParamsOutcome, PrState, SenseFormat,
    SharedOp, SharedRequest, UnitAttention,
};

const WE: PrType = PrType::WRITE_EXCLUSIVE;
const EA: PrType = PrType::EXCLUSIVE_ACCESS;
const WE_RO: PrType = PrType::WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
const EA_RO: PrType = PrType::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
const WE_AR: PrType = PrType::WRITE_EXCLUSIVE_ALL_REGISTRANTS;
const EA_AR: PrType = PrType::EXCLUSIVE_ACCESS_ALL_REGISTRANTS;

/// One session: its I_T nexus and what the LU layer keeps for it.
struct Session {
    it: ItNexus,
    nexus: NexusState,
}

/// A target with LUN 0, the unit's reservation state and a few sessions.
struct Target {
    luns: LunMap,
    pr: PrState,
    sessions: Vec<Session>,
}

impl Target {
    /// Sessions from hosts a, b, c, ... each through relative target port 1.
    fn new(hosts: usize) -> Self {
        let sessions = (0..hosts)
            .map(|i| Session {
                it: it_nexus(&format!("iqn.2024-01.org.example:host{i}")),
                nexus: NexusState::new(),
            })
            .collect();
        Self {
            luns: LunMap::new(vec![lu(0)]),
            pr: PrState::new(),
            sessions,
        }
    }

    /// A command from session `s`, with `data` as its Data-Out; medium access is taken as done.
    fn send(&mut self, s: usize, cdb: &[u8], data: &[u8]) -> Completion {
        let session = &mut self.sessions[s];
        let unit = LuContext {
            pr: &self.pr,
            it_nexus: &session.it,
            port_groups: &crate::scsi::alua::PortGroups::single(1),
        };
        let plan = crate::scsi::dispatch(&self.luns, &mut session.nexus, unit, 0, cdb);
        match plan {
            Plan::Complete(c) => c,
            Plan::Read { blocks, .. } => Completion {
                status: ScsiStatus::GOOD,
                data: vec![0; blocks as usize * 512],
                sense: Vec::new(),
            },
            Plan::Write { .. } | Plan::Flush { .. } | Plan::Job(_) => crate::scsi::good(),
            Plan::ReceiveParams { len } => {
                assert_eq!(len as usize, data.len(), "{cdb:02x?}");
                let params =
                    crate::scsi::execute_params(&self.luns, &mut session.nexus, 0, cdb, data);
                match params {
                    ParamsOutcome::Done(c) => c,
                    ParamsOutcome::Shared(op) => self.apply(s, &op),
                }
            }
            Plan::Shared(op) => self.apply(s, &op),
        }
    }

    /// What the control thread does: apply, then establish the unit attentions.
    fn apply(&mut self, s: usize, op: &SharedOp) -> Completion {
        let it = self.sessions[s].it.clone();
        let (c, effects) = apply_shared(&mut self.pr, &it, op, &[1]);
        for (target, ua) in &effects.unit_attentions {
            for session in &mut self.sessions {
                if target.includes(&session.it) {
                    session.nexus.unit_attentions.establish(op.lun, *ua);
                }
            }
        }
        c
    }

    fn status(&mut self, s: usize, cdb: &[u8], data: &[u8]) -> ScsiStatus {
        self.send(s, cdb, data).status
    }

    /// PERSISTENT RESERVE OUT with a basic parameter list.
    fn prout(&mut self, s: usize, action: u8, kind: PrType, key: u64, sa_key: u64) -> ScsiStatus {
        let mut params = vec![0u8; 24];
        params[..8].copy_from_slice(&key.to_be_bytes());
        params[8..16].copy_from_slice(&sa_key.to_be_bytes());
        self.status(s, &[0x5F, action, kind.0, 0, 0, 0, 0, 0, 24, 0], &params)
    }

    /// libiscsi prout_register_and_ignore, which must succeed.
    fn register(&mut self, s: usize, key: u64) {
        let status = self.prout(s, pr_out::REGISTER_AND_IGNORE_EXISTING_KEY, WE, 0, key);
        assert_eq!(status, GOOD);
    }

    fn prin(&mut self, s: usize, action: u8, alloc: u16) -> Completion {
        let [hi, lo] = alloc.to_be_bytes();
        self.send(s, &[0x5E, action, 0, 0, 0, 0, 0, hi, lo, 0], &[])
    }

    /// READ KEYS: (PRgeneration, ADDITIONAL LENGTH, keys).
    fn read_keys(&mut self, s: usize) -> (u32, u32, Vec<u64>) {
        let d = self.prin(s, pr_in::READ_KEYS, 16384).data;
        let be32 = |at: usize| u32::from_be_bytes(d[at..at + 4].try_into().unwrap());
        let keys = d[8..]
            .chunks(8)
            .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
            .collect();
        (be32(0), be32(4), keys)
    }

    /// READ RESERVATION: the key and type, when reserved.
    fn read_reservation(&mut self, s: usize) -> Option<(u64, PrType)> {
        let d = self.prin(s, pr_in::READ_RESERVATION, 16384).data;
        (d.len() >= 24).then(|| {
            let key = u64::from_be_bytes(d[8..16].try_into().unwrap());
            (key, PrType(d[21] & 0x0F))
        })
    }

    /// TEST UNIT READY until GOOD (libiscsi testunitready_clear_ua); the unit attentions seen.
    fn clear_ua(&mut self, s: usize) -> Vec<(u8, u8)> {
        let mut seen = Vec::new();
        loop {
            let c = self.send(s, &[0; 6], &[]);
            if c.status == ScsiStatus::GOOD {
                return seen;
            }
            assert_eq!(c.sense[2] & 0x0F, 0x06, "only unit attentions");
            seen.push((c.sense[12], c.sense[13]));
        }
    }
}

const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0];
const WRITE10: [u8; 10] = [0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0];
const RESERVE6: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
const RELEASE6: [u8; 6] = [0x17, 0, 0, 0, 0, 0];
const MODE_SENSE6: [u8; 6] = [0x1A, 0, 0x3F, 0, 0xFF, 0];
const GOOD: ScsiStatus = ScsiStatus::GOOD;
const CONFLICT: ScsiStatus = ScsiStatus::RESERVATION_CONFLICT;

/// Commands SPC-4 and SBC-3 allow whatever is reserved.
const ALWAYS: &[(&str, &[u8])] = &[
    ("TEST UNIT READY", &[0; 6]),
    ("INQUIRY", &[0x12, 0, 0, 0, 36, 0]),
    ("REPORT LUNS", &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]),
    ("REQUEST SENSE", &[0x03, 0, 0, 0, 18, 0]),
    ("READ CAPACITY (10)", &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    (
        "REPORT SUPPORTED OPCODES",
        &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],
    ),
    ("PREVENT=0", &[0x1E, 0, 0, 0, 0, 0]),
    ("START", &[0x1B, 0, 0, 0, 1, 0]),
    ("PERSISTENT RESERVE IN", &[0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0]),
];
/// Commands a Write Exclusive reservation leaves to everyone.
const READS: &[(&str, &[u8])] = &[
    ("READ (10)", &READ10),
    ("MODE SENSE (6)", &MODE_SENSE6),
    ("VERIFY (10)", &[0x2F, 0, 0, 0, 0, 1, 0, 0, 1, 0]),
];
/// Commands only the holder (and sharing registrants) may send.
const WRITES: &[(&str, &[u8])] = &[
    ("WRITE (10)", &WRITE10),
    ("MODE SELECT (6)", &[0x15, 0x10, 0, 0, 0, 0]),
    ("SYNCHRONIZE CACHE (10)", &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("UNMAP", &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
    (
        "COMPARE AND WRITE",
        &[0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0],
    ),
    ("STOP", &[0x1B, 0, 0, 0, 0, 0]),
    ("PREVENT=1", &[0x1E, 0, 0, 0, 1, 0]),
];

/// Every representative command with the kind of access the tables give it.
fn representative_commands() -> impl Iterator<Item = (&'static str, &'static [u8], Access)> {
    let kind = |access| move |&(name, cdb): &(&'static str, &'static [u8])| (name, cdb, access);
    let always = ALWAYS.iter().map(kind(Access::Always));
    let reads = READS.iter().map(kind(Access::Read));
    always
        .chain(reads)
        .chain(WRITES.iter().map(kind(Access::Write)))
}

/// The Data-Out a command carries (one block for WRITE (10)).
fn data_out(cdb: &[u8]) -> Vec<u8> {
    if cdb[0] == WRITE10[0] {
        vec![0; 512]
    } else {
        Vec::new()
    }
}

/// Registers A (key 1) and B (key 2); A reserves `kind`. C stays unregistered.
fn reserved_by_a(kind: PrType) -> Target {
    let mut t = Target::new(3);
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 0, 1), GOOD);
    assert_eq!(t.prout(1, pr_out::REGISTER, WE, 0, 2), GOOD);
    assert_eq!(t.prout(0, pr_out::RESERVE, kind, 1, 0), GOOD);
    t
}

#[test]
fn every_command_meets_the_reservation_tables_for_holder_registrant_and_stranger() {
    for kind in PrType::ALL {
        for (s, who) in ["holder", "registered", "unregistered"].iter().enumerate() {
            let holds = s == 0 || (s == 1 && kind.all_registrants());
            let shares = s == 1 && kind.shared_with_registrants();
            for (name, cdb, access) in representative_commands() {
                let mut t = reserved_by_a(kind);
                let data = data_out(cdb);
                let allowed = match access {
                    Access::Read => holds || shares || kind.reads_shared(),
                    Access::Write => holds || shares,
                    _ => true,
                };
                let status = t.status(s, cdb, &data);
                assert_eq!(
                    status != CONFLICT,
                    allowed,
                    "{name} from the {who} nexus under type {kind:?}: {status:?}"
                );
            }
        }
    }
}

#[test]
fn persistent_reserve_out_is_not_refused_at_dispatch_under_a_persistent_reservation() {
    // Its service action decides: REGISTER from a stranger works, RESERVE from it conflicts.
    let mut t = reserved_by_a(EA);
    assert_eq!(t.prout(2, pr_out::REGISTER, WE, 0, 3), GOOD);
    assert_eq!(t.prout(2, pr_out::RESERVE, EA, 3, 0), CONFLICT);
    assert_eq!(
        t.prout(1, pr_out::RELEASE, EA, 2, 0),
        GOOD,
        "a non-holder's no-op"
    );
    assert_eq!(t.read_reservation(2), Some((1, EA)));
}

#[test]
fn under_an_spc2_reservation_others_only_get_the_commands_every_reservation_allows() {
    for (name, cdb, access) in representative_commands() {
        let mut t = Target::new(2);
        let data = data_out(cdb);
        assert_eq!(t.status(0, &RESERVE6, &[]), GOOD);
        let is_pr_in = cdb[0] == 0x5E;
        let holder = t.status(0, cdb, &data);
        assert_eq!(holder == CONFLICT, is_pr_in, "{name} from the holder");
        let other = t.status(1, cdb, &data);
        let allowed = access == Access::Always && !is_pr_in;
        assert_eq!(other != CONFLICT, allowed, "{name} from another nexus");
    }
}

#[test]
fn persistent_reserve_commands_conflict_with_an_spc2_reservation_from_any_nexus() {
    let mut t = Target::new(2);
    assert_eq!(t.status(0, &RESERVE6, &[]), GOOD);
    for s in 0..2 {
        assert_eq!(t.prout(s, pr_out::REGISTER, WE, 0, 1), CONFLICT);
        assert_eq!(t.prin(s, pr_in::READ_KEYS, 8).status, CONFLICT);
    }
}

#[test]
fn spc2_reserve_and_release_conflict_while_registrations_exist() {
    let mut t = Target::new(2);
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 0, 1), GOOD);
    for s in 0..2 {
        assert_eq!(t.status(s, &RESERVE6, &[]), CONFLICT);
        assert_eq!(t.status(s, &RELEASE6, &[]), CONFLICT);
    }
    // The persistent reservation holder's RESERVE and RELEASE are GOOD and change nothing.
    assert_eq!(t.prout(0, pr_out::RESERVE, WE, 1, 0), GOOD);
    assert_eq!(t.status(0, &RESERVE6, &[]), GOOD);
    assert_eq!(t.status(0, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]), GOOD);
    assert_eq!(t.read_reservation(0), Some((1, WE)));
    assert!(t.pr.spc2_holder().is_none());
}

#[test]
fn reservation_commands_are_listed_by_report_supported_operation_codes() {
    let mut t = Target::new(1);
    let d = t
        .send(0, &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], &[])
        .data;
    let listed = |opcode: u8, sa: Option<u16>| {
        d[4..].chunks(8).any(|c| {
            c[0] == opcode
                && sa.is_none_or(|sa| u16::from_be_bytes([c[2], c[3]]) == sa && c[5] & 1 == 1)
        })
    };
    for opcode in [0x16, 0x17, 0x56, 0x57] {
        assert!(listed(opcode, None), "{opcode:#04x}");
    }
    for sa in 0..4 {
        assert!(listed(0x5E, Some(sa)), "PR IN {sa}");
    }
    for sa in 0..8 {
        assert!(listed(0x5F, Some(sa)), "PR OUT {sa}");
    }
    assert!(
        !listed(0x5F, Some(8)),
        "REPLACE LOST RESERVATION is not supported"
    );
    // One command: PR OUT RESERVE looks at SCOPE and TYPE, REGISTER does not.
    let one = |t: &mut Target, sa: u8| {
        t.send(
            0,
            &[0xA3, 0x0C, 0x02, 0x5F, 0, sa, 0, 0, 0x10, 0, 0, 0],
            &[],
        )
        .data
    };
    assert_eq!(
        one(&mut t, 1)[4..],
        [0x5F, 0x01, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]
    );
    assert_eq!(one(&mut t, 0)[6], 0);
}

#[test]
fn persistent_reserve_out_receives_its_list_then_becomes_a_shared_operation() {
    let luns = LunMap::new(vec![lu(0)]);
    let mut nexus = NexusState::new();
    let cdb = [0x5F, pr_out::REGISTER, 0, 0, 0, 0, 0, 0, 24, 0];
    assert_eq!(
        dispatch(&luns, &mut nexus, 0, &cdb),
        Plan::ReceiveParams { len: 24 }
    );
    let mut params = vec![0u8; 24];
    params[15] = 9;
    let ParamsOutcome::Shared(op) =
        crate::scsi::execute_params(&luns, &mut nexus, 0, &cdb, &params)
    else {
        panic!("PERSISTENT RESERVE OUT is applied where the state lives");
    };
    assert_eq!(op.lun, 0);
    assert!(matches!(op.request, SharedRequest::PersistentReserveOut(_)));
    // A malformed list is answered at once.
    params[20] = 0x80;
    let ParamsOutcome::Done(c) = crate::scsi::execute_params(&luns, &mut nexus, 0, &cdb, &params)
    else {
        panic!("refused before reaching the state");
    };
    assert_eq!((c.status, c.sense[12]), (ScsiStatus::CHECK_CONDITION, 0x26));
    // A list that cannot be right is refused before any Data-Out.
    let short = [0x5F, pr_out::RESERVE, 0x01, 0, 0, 0, 0, 0, 16, 0];
    let Plan::Complete(c) = dispatch(&luns, &mut nexus, 0, &short) else {
        panic!("PARAMETER LIST LENGTH ERROR");
    };
    assert_eq!(c.sense[12], 0x1A);
}

#[test]
fn reserve_and_release_become_shared_operations_and_refuse_third_party_fields() {
    let luns = LunMap::new(vec![lu(0)]);
    let mut nexus = NexusState::new();
    for cdb in [
        &RESERVE6[..],
        &RELEASE6[..],
        &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let Plan::Shared(op) = dispatch(&luns, &mut nexus, 0, cdb) else {
            panic!("{cdb:02x?}");
        };
        assert_eq!(op.sense_format, SenseFormat::Fixed);
    }
    let refused = [
        (vec![0x16, 0x01, 0, 0, 0, 0], 0xC8, 1),             // EXTENT
        (vec![0x56, 0x10, 0, 0, 0, 0, 0, 0, 0, 0], 0xCC, 1), // 3RDPTY
        (vec![0x57, 0x02, 0, 0, 0, 0, 0, 0, 0, 0], 0xC9, 1), // LONGID
        (vec![0x56, 0, 0, 0, 0, 0, 0, 0, 8, 0], 0xC0, 7),    // PARAMETER LIST LENGTH
    ];
    for (cdb, sksv, byte) in refused {
        let Plan::Complete(c) = dispatch(&luns, &mut nexus, 0, &cdb) else {
            panic!("{cdb:02x?}");
        };
        assert_eq!(c.sense[12], 0x24, "{cdb:02x?}");
        assert_eq!((c.sense[15], c.sense[17]), (sksv, byte), "{cdb:02x?}");
    }
}

#[test]
fn shared_answers_use_the_sense_format_the_nexus_had() {
    let mut t = reserved_by_a(WE);
    t.sessions[0].nexus.set_descriptor_sense(true);
    let c = t.send(0, &[0x5F, pr_out::RELEASE, EA.0, 0, 0, 0, 0, 0, 24, 0], &{
        let mut p = vec![0u8; 24];
        p[7] = 1;
        p
    });
    assert_eq!(c.status, ScsiStatus::CHECK_CONDITION);
    assert_eq!(
        &c.sense[..4],
        &[0x72, 0x05, 0x26, 0x04],
        "INVALID RELEASE OF PERSISTENT RESERVATION"
    );
    assert_eq!(reservation_conflict().sense, Vec::<u8>::new());
}

#[test]
fn a_pending_unit_attention_is_reported_before_a_reservation_conflict() {
    let mut t = reserved_by_a(EA);
    t.sessions[2]
        .nexus
        .unit_attentions
        .establish(0, UnitAttention::MODE_PARAMETERS_CHANGED);
    let c = t.send(2, &READ10, &[]);
    assert_eq!((c.status, c.sense[12]), (ScsiStatus::CHECK_CONDITION, 0x2A));
    assert_eq!(t.status(2, &READ10, &[]), CONFLICT);
}

#[test]
fn unknown_persistent_reserve_service_actions_are_invalid_fields_in_byte_1() {
    // libiscsi PrinServiceactionRange.
    let mut t = Target::new(1);
    for sa in 0..4 {
        assert_eq!(t.prin(0, sa, 16384).status, GOOD);
    }
    for sa in 4..0x20 {
        let c = t.prin(0, sa, 16384);
        assert_eq!(
            (c.sense[12], c.sense[15], c.sense[17]),
            (0x24, 0xCC, 1),
            "{sa}"
        );
    }
    let c = t.send(0, &[0x5F, 0x08, 0, 0, 0, 0, 0, 0, 24, 0], &[]);
    assert_eq!((c.sense[12], c.sense[15], c.sense[17]), (0x24, 0xCC, 1));
}

#[test]
fn libiscsi_prout_register_simple() {
    let mut t = Target::new(1);
    t.register(0, 0x5A5A);
    assert!(t.read_keys(0).2.contains(&0x5A5A));
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 0, 0x5A5B), CONFLICT);
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 0x5A5A, 0), GOOD);
    assert!(!t.read_keys(0).2.contains(&0x5A5A));
}

#[test]
fn libiscsi_prout_reserve_simple_and_prin_report_caps_simple() {
    let mut t = Target::new(1);
    t.register(0, 7);
    let caps = t.prin(0, pr_in::REPORT_CAPABILITIES, 16384).data;
    assert_eq!(u16::from_be_bytes([caps[0], caps[1]]), 8);
    assert!(caps[3] & 0x80 != 0, "TMV");
    let mask = u16::from_be_bytes([caps[4], caps[5]]);
    for kind in PrType::ALL {
        let bit = match kind.0 {
            1 => 0x0200,
            3 => 0x0800,
            5 => 0x2000,
            6 => 0x4000,
            7 => 0x8000,
            _ => 0x0001,
        };
        assert!(mask & bit != 0, "{kind:?} supported");
        assert_eq!(t.prout(0, pr_out::RESERVE, kind, 7, 0), GOOD);
        let key = if kind.all_registrants() { 0 } else { 7 };
        assert_eq!(t.read_reservation(0), Some((key, kind)));
        assert_eq!(t.prout(0, pr_out::RELEASE, kind, 7, 0), GOOD);
    }
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 7, 0), GOOD);
    assert!(t.pr.is_idle());
}

/// Two initiators registered (0x11 and 0x22), the first holding `kind` (libiscsi's set-up).
fn two_registered(kind: PrType) -> Target {
    let mut t = Target::new(2);
    t.clear_ua(0);
    t.clear_ua(1);
    t.register(0, 0x11);
    t.register(1, 0x22);
    assert_eq!(t.prout(0, pr_out::RESERVE, kind, 0x11, 0), GOOD);
    let key = if kind.all_registrants() { 0 } else { 0x11 };
    assert_eq!(t.read_reservation(0), Some((key, kind)));
    t
}

/// libiscsi ProutReserve.Access*: what a second initiator may do, registered and not.
fn access(kind: PrType, reg_read: bool, reg_write: bool, unreg_read: bool, unreg_write: bool) {
    let mut t = two_registered(kind);
    let block = vec![0u8; 512];
    assert_eq!(t.status(0, &READ10, &[]), GOOD);
    assert_eq!(t.status(0, &WRITE10, &block), GOOD);
    assert_eq!(t.status(1, &READ10, &[]) == GOOD, reg_read, "{kind:?}");
    assert_eq!(t.status(1, &WRITE10, &block) == GOOD, reg_write, "{kind:?}");
    assert_eq!(t.prout(1, pr_out::REGISTER, WE, 0x22, 0), GOOD);
    assert_eq!(t.status(1, &READ10, &[]) == GOOD, unreg_read, "{kind:?}");
    assert_eq!(
        t.status(1, &WRITE10, &block) == GOOD,
        unreg_write,
        "{kind:?}"
    );
    assert_eq!(t.prout(0, pr_out::RELEASE, kind, 0x11, 0), GOOD);
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 0x11, 0), GOOD);
}

#[test]
fn libiscsi_prout_reserve_access() {
    access(EA, false, false, false, false);
    access(WE, true, false, true, false);
    access(EA_RO, true, true, false, false);
    access(WE_RO, true, true, true, false);
    access(EA_AR, true, true, false, false);
    access(WE_AR, true, true, true, false);
}

/// libiscsi ProutReserve.Ownership*: does the reservation outlive its creator's registration?
fn ownership(kind: PrType, shared: bool) {
    let mut t = two_registered(kind);
    assert_eq!(t.prout(0, pr_out::REGISTER, WE, 0x11, 0), GOOD);
    if shared {
        assert_eq!(t.read_reservation(0), Some((0, kind)));
        assert_eq!(t.prout(1, pr_out::RELEASE, kind, 0x22, 0), GOOD);
    } else {
        assert_eq!(t.read_reservation(0), None, "{kind:?}");
        let released = t.clear_ua(1);
        let expected = kind.registrants_only().then_some((0x2A, 0x04));
        assert_eq!(released, Vec::from_iter(expected), "{kind:?}");
    }
    assert_eq!(t.prout(1, pr_out::REGISTER, WE, 0x22, 0), GOOD);
    assert!(t.pr.is_idle());
}

#[test]
fn libiscsi_prout_reserve_ownership() {
    ownership(EA, false);
    ownership(WE, false);
    ownership(EA_RO, false);
    ownership(WE_RO, false);
    ownership(EA_AR, true);
    ownership(WE_AR, true);
}

#[test]
fn libiscsi_prout_clear_simple() {
    let mut t = Target::new(1);
    t.register(0, 3);
    let (generation, _, keys) = t.read_keys(0);
    assert!(!keys.is_empty());
    assert_eq!(t.prout(0, pr_out::RESERVE, EA, 3, 0), GOOD);
    assert_eq!(t.read_reservation(0), Some((3, EA)));
    assert_eq!(t.prout(0, pr_out::CLEAR, WE, 3, 0), GOOD);
    assert_eq!(t.read_reservation(0), None);
    let (after, _, keys) = t.read_keys(0);
    assert!(keys.is_empty());
    assert_eq!(after, generation + 1);
}

#[test]
fn libiscsi_prout_preempt_rm_reg() {
    let mut t = Target::new(2);
    t.register(0, 0x11);
    assert_eq!(t.prout(0, pr_out::CLEAR, WE, 0x11, 0), GOOD);
    t.register(0, 0x11);
    t.register(1, 0x22);
    let (generation, _, keys) = t.read_keys(0);
    assert_eq!(keys.len(), 2);
    assert_eq!(t.prout(1, pr_out::PREEMPT, EA, 0x22, 0x11), GOOD);
    assert_eq!(t.clear_ua(0), [(0x2A, 0x05)], "REGISTRATIONS PREEMPTED");
    assert!(t.clear_ua(1).is_empty());
    let (after, _, keys) = t.read_keys(0);
    assert_eq!(keys, [0x22]);
    assert_eq!(after, generation + 1);
    assert_eq!(t.prout(1, pr_out::REGISTER, WE, 0x22, 0), GOOD);
}

#[test]
fn libiscsi_prin_read_keys_simple_and_truncate() {
    let mut t = Target::new(1);
    let (_, additional, keys) = t.read_keys(0);
    assert_eq!((additional, keys.len()), (0, 0));
    t.register(0, 0x77);
    let d = t.prin(0, pr_in::READ_KEYS, 16384).data;
    assert_eq!(
        u32::from_be_bytes(d[4..8].try_into().unwrap()) as usize,
        d.len() - 8
    );
    let cut = t.prin(0, pr_in::READ_KEYS, 8).data;
    assert_eq!(cut.len(), 8);
    assert_eq!(
        u32::from_be_bytes(cut[4..8].try_into().unwrap()),
        8,
        "not altered"
    );
}

#[test]
fn libiscsi_reserve6_simple_and_2initiators() {
    let mut t = Target::new(2);
    assert_eq!(t.status(0, &RESERVE6, &[]), GOOD);
    assert_eq!(
        t.status(0, &RESERVE6, &[]),
        GOOD,
        "the holder may reserve again"
    );
    assert_eq!(t.status(1, &RESERVE6, &[]), CONFLICT);
    assert_eq!(t.status(1, &RELEASE6, &[]), GOOD, "a no-op");
    assert_eq!(t.status(0, &MODE_SENSE6, &[]), GOOD);
    assert_eq!(t.status(1, &MODE_SENSE6, &[]), CONFLICT);
    assert_eq!(t.status(1, &RESERVE6, &[]), CONFLICT);
    assert_eq!(t.status(0, &RELEASE6, &[]), GOOD);
    assert_eq!(t.status(1, &RESERVE6, &[]), GOOD);
    assert_eq!(t.status(1, &RELEASE6, &[]), GOOD);
    assert!(t.pr.is_idle());
}

#[test]
fn libiscsi_reserve6_released_by_logout_nexus_loss_and_resets() {
    // Reserve6.Logout and ItNexusLoss: the holder's I_T nexus goes away.
    let mut t = Target::new(2);
    assert_eq!(t.status(0, &RESERVE6, &[]), GOOD);
    assert_eq!(t.status(1, &RESERVE6, &[]), CONFLICT);
    let holder = t.sessions[0].it.clone();
    assert!(t.pr.nexus_lost(&holder));
    assert_eq!(t.status(1, &RESERVE6, &[]), GOOD);
    assert_eq!(t.status(1, &RELEASE6, &[]), GOOD);
    // Reserve6.LunReset, TargetWarmReset and TargetColdReset.
    assert_eq!(t.status(0, &RESERVE6, &[]), GOOD);
    assert!(t.pr.reset());
    assert_eq!(t.status(1, &RESERVE6, &[]), GOOD);
    assert_eq!(t.status(1, &RELEASE6, &[]), GOOD);
}
