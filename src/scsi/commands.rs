//! The one table of supported commands: operation code, service action, CDB usage data and
//! handler. [`super::dispatch`] routes through it and REPORT SUPPORTED OPERATION CODES
//! reports it, so the two can never disagree.

use super::cdb::{self, op, Cdb};
use super::nexus::{self, NexusState};
use super::pr::{in_service_action as pr_in, out_service_action as pr_out, Access};
use super::sense::Sense;
use super::{
    alua, capacity, compare, copy, defects, done, inquiry, lba_status, mode, provisioning,
    report_luns, reservations, rsoc, rw, sanitize, unit, LuContext, LuInfo, LunMap, Plan,
};

/// What a handler may look at: the target's units (REPORT LUNS, INQUIRY), the I_T nexus state
/// (sense format, pending sense), the addressed unit and its reservations.
pub(super) struct Ctx<'a> {
    pub luns: &'a LunMap,
    pub nexus: &'a mut NexusState,
    pub lu: &'a LuInfo,
    pub unit: LuContext<'a>,
}

pub(super) type Handler = fn(&mut Ctx<'_>, Cdb<'_>) -> Result<Plan, Sense>;

/// One supported command (one operation code, or one service action of an operation code
/// that has service actions).
pub(super) struct Command {
    pub opcode: u8,
    /// SERVICE ACTION (byte 1 bits 4..0) for the operation codes that have service actions.
    pub service_action: Option<u8>,
    /// SPC-4 REPORT SUPPORTED OPERATION CODES CDB USAGE DATA: byte 0 is the operation code
    /// (byte 1 carries the service action where there is one); elsewhere a bit is one when the
    /// device server looks at that bit of the CDB. Its length is the CDB length.
    pub usage: &'static [u8],
    /// How reservations treat it (SPC-4 / SBC-3 tables of commands allowed in the presence
    /// of various reservations).
    pub access: Access,
    pub handler: Handler,
}

/// CONTROL byte usage: NACA is refused (no ACA), LINK and the vendor bits are reserved.
const C: u8 = 0x00;
/// Byte 1 of READ/WRITE (10/12/16), COMPARE AND WRITE and ORWRITE: DPO (bit 4) and FUA (bit 3).
/// The *PROTECT fields are refused when non-zero (no protection information), so unused.
const DPO_FUA: u8 = 0x18;
/// Byte 1 of VERIFY: DPO (bit 4) and BYTCHK (bits 2..1).
const DPO_BYTCHK2: u8 = 0x16;
/// Byte 1 of WRITE AND VERIFY: DPO (bit 4) and BYTCHK (bit 1).
const DPO_BYTCHK1: u8 = 0x12;
const FF: u8 = 0xFF;

/// 10-byte READ/WRITE-style usage: LBA (bytes 2..=5), GROUP NUMBER unused, length (7..=8).
const fn ten(opcode: u8, byte1: u8) -> [u8; 10] {
    [opcode, byte1, FF, FF, FF, FF, 0, FF, FF, C]
}

/// 12-byte READ/WRITE-style usage: LBA (bytes 2..=5), length (6..=9), GROUP NUMBER unused.
const fn twelve(opcode: u8, byte1: u8) -> [u8; 12] {
    [opcode, byte1, FF, FF, FF, FF, FF, FF, FF, FF, 0, C]
}

/// PERSISTENT RESERVE IN usage: SERVICE ACTION, ALLOCATION LENGTH (bytes 7..=8).
const fn pr_in_usage(service_action: u8) -> [u8; 10] {
    [
        op::PERSISTENT_RESERVE_IN,
        service_action,
        0,
        0,
        0,
        0,
        0,
        FF,
        FF,
        C,
    ]
}

/// PERSISTENT RESERVE OUT usage: SERVICE ACTION, SCOPE and TYPE where the service action reads
/// them, PARAMETER LIST LENGTH (bytes 5..=8).
const fn pr_out_usage(service_action: u8, scope_type: u8) -> [u8; 10] {
    [
        op::PERSISTENT_RESERVE_OUT,
        service_action,
        scope_type,
        0,
        0,
        FF,
        FF,
        FF,
        FF,
        C,
    ]
}

/// One service action of PERSISTENT RESERVE IN, answered from the unit's snapshot.
const fn persistent_in(service_action: u8, usage: &'static [u8]) -> Command {
    Command {
        opcode: op::PERSISTENT_RESERVE_IN,
        service_action: Some(service_action),
        usage,
        access: Access::Persistent,
        handler: reservations::persistent_reserve_in,
    }
}

/// One service action of PERSISTENT RESERVE OUT, which receives its parameter list first.
const fn persistent_out(service_action: u8, usage: &'static [u8]) -> Command {
    Command {
        opcode: op::PERSISTENT_RESERVE_OUT,
        service_action: Some(service_action),
        usage,
        access: Access::Persistent,
        handler: |_, cdb| reservations::persistent_reserve_out(cdb),
    }
}

/// RESERVE(6)/RELEASE(6) usage: byte 1 3RDPTY (bit 4) and EXTENT (bit 0) are checked (refused).
const fn six_reserve(opcode: u8) -> [u8; 6] {
    [opcode, 0x11, 0, 0, 0, C]
}

/// RESERVE(10)/RELEASE(10) usage: 3RDPTY, LONGID, EXTENT and the PARAMETER LIST LENGTH are
/// checked (refused: no third-party reservations).
const fn ten_reserve(opcode: u8) -> [u8; 10] {
    [opcode, 0x13, 0, 0, 0, 0, 0, FF, FF, C]
}

/// 16-byte READ/WRITE-style usage: LBA (bytes 2..=9), length or ALLOCATION LENGTH (10..=13).
const fn sixteen(opcode: u8, byte1: u8, byte14: u8) -> [u8; 16] {
    [
        opcode, byte1, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, byte14, C,
    ]
}

/// SANITIZE: IMMED (byte 1 bit 7), AUSE (bit 5), the service action, PARAMETER LIST LENGTH.
const fn sanitize_usage(service_action: u8) -> [u8; 10] {
    [
        op::SANITIZE,
        0xA0 | service_action,
        0,
        0,
        0,
        0,
        0,
        FF,
        FF,
        C,
    ]
}

/// EXTENDED COPY and RECEIVE COPY RESULTS usage: the service action, LIST IDENTIFIER (byte
/// 2) where the service action reads it, PARAMETER LIST LENGTH or ALLOCATION LENGTH (bytes
/// 10..=13).
const fn copy_usage(opcode: u8, service_action: u8, list_id: u8) -> [u8; 16] {
    [
        opcode,
        service_action,
        list_id,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        FF,
        FF,
        FF,
        FF,
        0,
        C,
    ]
}

/// One service action of RECEIVE COPY RESULTS: reports of the copy manager, read-class for
/// reservations (SPC-4: allowed under Write Exclusive, a conflict under Exclusive Access).
const fn receive_copy_results(service_action: u8, usage: &'static [u8]) -> Command {
    Command {
        opcode: op::RECEIVE_COPY_RESULTS,
        service_action: Some(service_action),
        usage,
        access: Access::Read,
        handler: |ctx, cdb| copy::receive_copy_results(ctx.nexus, ctx.lu, cdb),
    }
}

/// Ascending by operation code, then service action (the order REPORT SUPPORTED OPERATION
/// CODES lists them in).
static COMMANDS: &[Command] = &[
    Command {
        opcode: op::TEST_UNIT_READY,
        service_action: None,
        usage: &[op::TEST_UNIT_READY, 0, 0, 0, 0, C],
        access: Access::Always,
        handler: |_, _| Ok(done()),
    },
    Command {
        opcode: op::REQUEST_SENSE,
        service_action: None,
        usage: &[op::REQUEST_SENSE, 0x01, 0, 0, FF, C],
        access: Access::Always,
        handler: |ctx, cdb| {
            // The medium's standing condition: a sanitize running, or the last one failed.
            let medium = &ctx.lu.shared.medium;
            let standing = match medium.sanitize_progress() {
                Some(progress) => Some(Sense::sanitize_in_progress(progress)),
                None => medium
                    .sanitize_failure()
                    .map(|_| Sense::sanitize_command_failed()),
            };
            Ok(nexus::request_sense(
                ctx.nexus,
                cdb,
                Some(ctx.lu.lun),
                standing,
            ))
        },
    },
    Command {
        opcode: op::READ_6,
        service_action: None,
        usage: &[op::READ_6, 0x1F, FF, FF, FF, C],
        access: Access::Read,
        handler: |ctx, cdb| rw::read(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_6,
        service_action: None,
        usage: &[op::WRITE_6, 0x1F, FF, FF, FF, C],
        access: Access::Write,
        handler: |ctx, cdb| rw::write(ctx.lu, cdb),
    },
    Command {
        opcode: op::INQUIRY,
        service_action: None,
        usage: &[op::INQUIRY, 0x01, FF, FF, FF, C],
        access: Access::Always,
        handler: |ctx, cdb| {
            let port = ctx.unit.it_nexus.relative_port;
            inquiry::inquiry(Some((ctx.lu, port)), ctx.luns, cdb)
        },
    },
    Command {
        opcode: op::MODE_SELECT_6,
        service_action: None,
        usage: &[op::MODE_SELECT_6, 0x11, 0, 0, FF, C],
        access: Access::Write,
        handler: |_, cdb| mode::mode_select(cdb),
    },
    Command {
        opcode: op::RESERVE_6,
        service_action: None,
        usage: &six_reserve(op::RESERVE_6),
        access: Access::Reserve,
        handler: reservations::reserve,
    },
    Command {
        opcode: op::RELEASE_6,
        service_action: None,
        usage: &six_reserve(op::RELEASE_6),
        access: Access::Release,
        handler: reservations::release,
    },
    Command {
        opcode: op::MODE_SENSE_6,
        service_action: None,
        usage: &[op::MODE_SENSE_6, 0x08, FF, FF, FF, C],
        access: Access::Read,
        handler: |ctx, cdb| mode::mode_sense(ctx.lu, ctx.nexus, cdb),
    },
    Command {
        opcode: op::START_STOP_UNIT,
        service_action: None,
        usage: &[op::START_STOP_UNIT, 0, 0, 0, 0xF3, C],
        access: Access::StartStop,
        handler: |ctx, cdb| unit::start_stop_unit(ctx.lu, cdb),
    },
    Command {
        opcode: op::PREVENT_ALLOW_MEDIUM_REMOVAL,
        service_action: None,
        usage: &[op::PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0x03, C],
        access: Access::PreventAllow,
        handler: |ctx, cdb| unit::prevent_allow_medium_removal(ctx.lu, ctx.nexus, cdb),
    },
    Command {
        opcode: op::READ_CAPACITY_10,
        service_action: None,
        usage: &[op::READ_CAPACITY_10, 0, FF, FF, FF, FF, 0, 0, 0x01, C],
        access: Access::Always,
        handler: |ctx, cdb| capacity::read_capacity_10(ctx.lu, cdb),
    },
    Command {
        opcode: op::READ_10,
        service_action: None,
        usage: &ten(op::READ_10, DPO_FUA),
        access: Access::Read,
        handler: |ctx, cdb| rw::read(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_10,
        service_action: None,
        usage: &ten(op::WRITE_10, DPO_FUA),
        access: Access::Write,
        handler: |ctx, cdb| rw::write(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_AND_VERIFY_10,
        service_action: None,
        usage: &ten(op::WRITE_AND_VERIFY_10, DPO_BYTCHK1),
        access: Access::Write,
        handler: |ctx, cdb| rw::write_and_verify(ctx.lu, cdb),
    },
    Command {
        opcode: op::VERIFY_10,
        service_action: None,
        usage: &ten(op::VERIFY_10, DPO_BYTCHK2),
        access: Access::Read,
        handler: |ctx, cdb| compare::verify(ctx.lu, cdb),
    },
    Command {
        opcode: op::PRE_FETCH_10,
        service_action: None,
        // IMMED (byte 1 bit 1); GROUP NUMBER is accepted and ignored.
        usage: &ten(op::PRE_FETCH_10, 0x02),
        access: Access::Read,
        handler: |ctx, cdb| rw::prefetch(ctx.lu, cdb),
    },
    Command {
        opcode: op::SYNCHRONIZE_CACHE_10,
        service_action: None,
        usage: &ten(op::SYNCHRONIZE_CACHE_10, 0x02),
        access: Access::Write,
        handler: |ctx, cdb| rw::synchronize_cache(ctx.lu, cdb),
    },
    Command {
        opcode: op::READ_DEFECT_DATA_10,
        service_action: None,
        usage: &[op::READ_DEFECT_DATA_10, 0, 0x1F, 0, 0, 0, 0, FF, FF, C],
        access: Access::Read,
        handler: |_, cdb| defects::read_defect_data(cdb),
    },
    Command {
        opcode: op::WRITE_SAME_10,
        service_action: None,
        usage: &ten(op::WRITE_SAME_10, 0x08),
        access: Access::Write,
        handler: |ctx, cdb| provisioning::write_same(ctx.lu, cdb),
    },
    Command {
        opcode: op::UNMAP,
        service_action: None,
        usage: &[op::UNMAP, 0, 0, 0, 0, 0, 0, FF, FF, C],
        access: Access::Write,
        handler: |ctx, cdb| provisioning::unmap(ctx.lu, cdb),
    },
    Command {
        opcode: op::SANITIZE,
        service_action: Some(cdb::SA_SANITIZE_OVERWRITE),
        usage: &sanitize_usage(cdb::SA_SANITIZE_OVERWRITE),
        access: Access::Write,
        handler: |ctx, cdb| sanitize::sanitize(ctx.lu, cdb),
    },
    Command {
        opcode: op::SANITIZE,
        service_action: Some(cdb::SA_SANITIZE_BLOCK_ERASE),
        usage: &sanitize_usage(cdb::SA_SANITIZE_BLOCK_ERASE),
        access: Access::Write,
        handler: |ctx, cdb| sanitize::sanitize(ctx.lu, cdb),
    },
    Command {
        opcode: op::SANITIZE,
        service_action: Some(cdb::SA_SANITIZE_EXIT_FAILURE_MODE),
        usage: &sanitize_usage(cdb::SA_SANITIZE_EXIT_FAILURE_MODE),
        access: Access::Write,
        handler: |ctx, cdb| sanitize::sanitize(ctx.lu, cdb),
    },
    Command {
        opcode: op::MODE_SELECT_10,
        service_action: None,
        usage: &[op::MODE_SELECT_10, 0x11, 0, 0, 0, 0, 0, FF, FF, C],
        access: Access::Write,
        handler: |_, cdb| mode::mode_select(cdb),
    },
    Command {
        opcode: op::RESERVE_10,
        service_action: None,
        usage: &ten_reserve(op::RESERVE_10),
        access: Access::Reserve,
        handler: reservations::reserve,
    },
    Command {
        opcode: op::RELEASE_10,
        service_action: None,
        usage: &ten_reserve(op::RELEASE_10),
        access: Access::Release,
        handler: reservations::release,
    },
    Command {
        opcode: op::MODE_SENSE_10,
        service_action: None,
        usage: &[op::MODE_SENSE_10, 0x18, FF, FF, 0, 0, 0, FF, FF, C],
        access: Access::Read,
        handler: |ctx, cdb| mode::mode_sense(ctx.lu, ctx.nexus, cdb),
    },
    persistent_in(pr_in::READ_KEYS, &pr_in_usage(pr_in::READ_KEYS)),
    persistent_in(
        pr_in::READ_RESERVATION,
        &pr_in_usage(pr_in::READ_RESERVATION),
    ),
    persistent_in(
        pr_in::REPORT_CAPABILITIES,
        &pr_in_usage(pr_in::REPORT_CAPABILITIES),
    ),
    persistent_in(
        pr_in::READ_FULL_STATUS,
        &pr_in_usage(pr_in::READ_FULL_STATUS),
    ),
    persistent_out(pr_out::REGISTER, &pr_out_usage(pr_out::REGISTER, 0)),
    persistent_out(pr_out::RESERVE, &pr_out_usage(pr_out::RESERVE, FF)),
    persistent_out(pr_out::RELEASE, &pr_out_usage(pr_out::RELEASE, FF)),
    persistent_out(pr_out::CLEAR, &pr_out_usage(pr_out::CLEAR, 0)),
    persistent_out(pr_out::PREEMPT, &pr_out_usage(pr_out::PREEMPT, FF)),
    persistent_out(
        pr_out::PREEMPT_AND_ABORT,
        &pr_out_usage(pr_out::PREEMPT_AND_ABORT, FF),
    ),
    persistent_out(
        pr_out::REGISTER_AND_IGNORE_EXISTING_KEY,
        &pr_out_usage(pr_out::REGISTER_AND_IGNORE_EXISTING_KEY, 0),
    ),
    persistent_out(
        pr_out::REGISTER_AND_MOVE,
        &pr_out_usage(pr_out::REGISTER_AND_MOVE, 0),
    ),
    Command {
        opcode: op::EXTENDED_COPY,
        service_action: Some(copy::SA_EXTENDED_COPY_LID1),
        usage: &copy_usage(op::EXTENDED_COPY, copy::SA_EXTENDED_COPY_LID1, 0),
        // SPC-4: writes the medium of the units it copies to, a write for reservations.
        access: Access::Write,
        handler: |ctx, cdb| copy::extended_copy(ctx.lu, ctx.unit.it_nexus, cdb),
    },
    receive_copy_results(
        copy::SA_COPY_STATUS,
        &copy_usage(op::RECEIVE_COPY_RESULTS, copy::SA_COPY_STATUS, FF),
    ),
    receive_copy_results(
        copy::SA_OPERATING_PARAMETERS,
        &copy_usage(op::RECEIVE_COPY_RESULTS, copy::SA_OPERATING_PARAMETERS, 0),
    ),
    Command {
        opcode: op::READ_16,
        service_action: None,
        usage: &sixteen(op::READ_16, DPO_FUA, 0),
        access: Access::Read,
        handler: |ctx, cdb| rw::read(ctx.lu, cdb),
    },
    Command {
        opcode: op::COMPARE_AND_WRITE,
        service_action: None,
        usage: &[
            op::COMPARE_AND_WRITE,
            DPO_FUA,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            0,
            0,
            0,
            FF,
            0,
            C,
        ],
        access: Access::Write,
        handler: |ctx, cdb| compare::compare_and_write(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_16,
        service_action: None,
        usage: &sixteen(op::WRITE_16, DPO_FUA, 0),
        access: Access::Write,
        handler: |ctx, cdb| rw::write(ctx.lu, cdb),
    },
    Command {
        opcode: op::ORWRITE_16,
        service_action: None,
        usage: &sixteen(op::ORWRITE_16, DPO_FUA, 0),
        access: Access::Write,
        handler: |ctx, cdb| compare::orwrite(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_AND_VERIFY_16,
        service_action: None,
        usage: &sixteen(op::WRITE_AND_VERIFY_16, DPO_BYTCHK1, 0),
        access: Access::Write,
        handler: |ctx, cdb| rw::write_and_verify(ctx.lu, cdb),
    },
    Command {
        opcode: op::VERIFY_16,
        service_action: None,
        usage: &sixteen(op::VERIFY_16, DPO_BYTCHK2, 0),
        access: Access::Read,
        handler: |ctx, cdb| compare::verify(ctx.lu, cdb),
    },
    Command {
        opcode: op::PRE_FETCH_16,
        service_action: None,
        usage: &sixteen(op::PRE_FETCH_16, 0x02, 0),
        access: Access::Read,
        handler: |ctx, cdb| rw::prefetch(ctx.lu, cdb),
    },
    Command {
        opcode: op::SYNCHRONIZE_CACHE_16,
        service_action: None,
        usage: &sixteen(op::SYNCHRONIZE_CACHE_16, 0x02, 0),
        access: Access::Write,
        handler: |ctx, cdb| rw::synchronize_cache(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_SAME_16,
        service_action: None,
        // UNMAP (bit 3) and NDOB (bit 0).
        usage: &sixteen(op::WRITE_SAME_16, 0x09, 0),
        access: Access::Write,
        handler: |ctx, cdb| provisioning::write_same(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_ATOMIC_16,
        service_action: None,
        // DPO, FUA; LBA; ATOMIC BOUNDARY (refused unless zero); TRANSFER LENGTH (12..=13).
        usage: &[
            op::WRITE_ATOMIC_16,
            DPO_FUA,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            0,
            C,
        ],
        access: Access::Write,
        handler: |ctx, cdb| rw::write_atomic(ctx.lu, cdb),
    },
    Command {
        opcode: op::SERVICE_ACTION_IN_16,
        service_action: Some(cdb::SA_READ_CAPACITY_16),
        usage: &sixteen(op::SERVICE_ACTION_IN_16, cdb::SA_READ_CAPACITY_16, 0x01),
        access: Access::Always,
        handler: |ctx, cdb| capacity::read_capacity_16(ctx.lu, cdb),
    },
    Command {
        opcode: op::SERVICE_ACTION_IN_16,
        service_action: Some(cdb::SA_GET_LBA_STATUS),
        usage: &sixteen(op::SERVICE_ACTION_IN_16, cdb::SA_GET_LBA_STATUS, 0),
        access: Access::Read,
        handler: |ctx, cdb| lba_status::get_lba_status(ctx.lu, cdb),
    },
    Command {
        opcode: op::REPORT_LUNS,
        service_action: None,
        usage: &[op::REPORT_LUNS, 0, FF, 0, 0, 0, FF, FF, FF, FF, 0, C],
        access: Access::Always,
        handler: |ctx, cdb| report_luns::report_luns(ctx.luns, cdb),
    },
    Command {
        opcode: op::MAINTENANCE_IN,
        service_action: Some(cdb::SA_REPORT_TARGET_PORT_GROUPS),
        usage: &[
            op::MAINTENANCE_IN,
            0xE0 | cdb::SA_REPORT_TARGET_PORT_GROUPS,
            0,
            0,
            0,
            0,
            FF,
            FF,
            FF,
            FF,
            0,
            C,
        ],
        access: Access::Always,
        handler: |ctx, cdb| alua::report_target_port_groups(ctx.unit.port_groups, cdb),
    },
    Command {
        opcode: op::MAINTENANCE_IN,
        service_action: Some(cdb::SA_REPORT_SUPPORTED_OPCODES),
        usage: &[
            op::MAINTENANCE_IN,
            cdb::SA_REPORT_SUPPORTED_OPCODES,
            0x87,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            FF,
            0,
            C,
        ],
        access: Access::Always,
        handler: |ctx, cdb| rsoc::report_supported_opcodes(ctx.lu, cdb),
    },
    Command {
        opcode: op::MAINTENANCE_IN,
        service_action: Some(cdb::SA_REPORT_SUPPORTED_TMFS),
        usage: &[
            op::MAINTENANCE_IN,
            cdb::SA_REPORT_SUPPORTED_TMFS,
            0x80,
            0,
            0,
            0,
            FF,
            FF,
            FF,
            FF,
            0,
            C,
        ],
        access: Access::Always,
        handler: |_, cdb| rsoc::report_supported_tmfs(cdb),
    },
    Command {
        opcode: op::READ_12,
        service_action: None,
        usage: &twelve(op::READ_12, DPO_FUA),
        access: Access::Read,
        handler: |ctx, cdb| rw::read(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_12,
        service_action: None,
        usage: &twelve(op::WRITE_12, DPO_FUA),
        access: Access::Write,
        handler: |ctx, cdb| rw::write(ctx.lu, cdb),
    },
    Command {
        opcode: op::WRITE_AND_VERIFY_12,
        service_action: None,
        usage: &twelve(op::WRITE_AND_VERIFY_12, DPO_BYTCHK1),
        access: Access::Write,
        handler: |ctx, cdb| rw::write_and_verify(ctx.lu, cdb),
    },
    Command {
        opcode: op::VERIFY_12,
        service_action: None,
        usage: &twelve(op::VERIFY_12, DPO_BYTCHK2),
        access: Access::Read,
        handler: |ctx, cdb| compare::verify(ctx.lu, cdb),
    },
    Command {
        opcode: op::READ_DEFECT_DATA_12,
        service_action: None,
        // ADDRESS DESCRIPTOR INDEX (bytes 2..=5) is ignored: every list is empty.
        usage: &[
            op::READ_DEFECT_DATA_12,
            0x1F,
            0,
            0,
            0,
            0,
            FF,
            FF,
            FF,
            FF,
            0,
            C,
        ],
        access: Access::Read,
        handler: |_, cdb| defects::read_defect_data(cdb),
    },
];

/// Every supported command, in report order.
pub(super) fn all() -> &'static [Command] {
    COMMANDS
}

/// The commands of one operation code: their run in the table, which is sorted by operation
/// code (then service action), found by binary search (every command looks itself up).
fn of_opcode(opcode: u8) -> &'static [Command] {
    let start = COMMANDS.partition_point(|c| c.opcode < opcode);
    let rest = &COMMANDS[start..];
    &rest[..rest.partition_point(|c| c.opcode == opcode)]
}

/// Whether any supported command uses this operation code.
pub(super) fn is_supported_opcode(opcode: u8) -> bool {
    !of_opcode(opcode).is_empty()
}

/// Whether the operation code is one of those whose commands are told apart by a service action.
pub(super) fn has_service_actions(opcode: u8) -> bool {
    of_opcode(opcode)
        .first()
        .is_some_and(|c| c.service_action.is_some())
}

/// The command for an operation code and (where the operation code has them) a service action.
pub(super) fn find(opcode: u8, service_action: Option<u8>) -> Option<&'static Command> {
    of_opcode(opcode)
        .iter()
        .find(|c| c.service_action == service_action)
}

/// The command a CDB names: INVALID COMMAND OPERATION CODE for an unknown operation code,
/// INVALID FIELD IN CDB at SERVICE ACTION for an unknown service action of a known one (SPC-4).
/// The CDB must already be long enough for its operation code (byte 1 is read).
pub(super) fn lookup(cdb: Cdb) -> Result<&'static Command, Sense> {
    let opcode = cdb.opcode();
    let service_action = has_service_actions(opcode).then(|| cdb::service_action(&cdb));
    find(opcode, service_action).ok_or_else(|| {
        if service_action.is_some() {
            Sense::invalid_field_in_cdb().at_cdb(1, Some(4))
        } else {
            Sense::invalid_opcode()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_data_length_is_the_cdb_length_of_the_group_code() {
        for c in COMMANDS {
            assert_eq!(
                Some(c.usage.len()),
                cdb::length_for_opcode(c.opcode),
                "{:#04x}",
                c.opcode
            );
        }
    }

    #[test]
    fn usage_data_starts_with_opcode_and_service_action() {
        for c in COMMANDS {
            assert_eq!(c.usage[0], c.opcode);
            if let Some(sa) = c.service_action {
                assert_eq!(c.usage[1] & 0x1F, sa);
            }
            assert_eq!(*c.usage.last().unwrap_or(&0xFF), C, "control byte");
        }
    }

    #[test]
    fn table_is_sorted_and_has_no_duplicates() {
        for pair in COMMANDS.windows(2) {
            let key = |c: &Command| (c.opcode, c.service_action.map_or(-1, i16::from));
            assert!(key(&pair[0]) < key(&pair[1]), "{:#04x}", pair[1].opcode);
        }
    }

    #[test]
    fn every_command_is_found_by_its_opcode_and_service_action() {
        for c in COMMANDS {
            let found = find(c.opcode, c.service_action).expect("found");
            assert!(std::ptr::eq(found, c), "{:#04x}", c.opcode);
        }
        for opcode in 0..=u8::MAX {
            let linear = COMMANDS.iter().any(|c| c.opcode == opcode);
            assert_eq!(is_supported_opcode(opcode), linear, "{opcode:#04x}");
        }
    }

    #[test]
    fn an_opcode_either_always_or_never_has_service_actions() {
        for c in COMMANDS {
            assert_eq!(
                c.service_action.is_some(),
                has_service_actions(c.opcode),
                "{:#04x}",
                c.opcode
            );
        }
    }

    #[test]
    fn dpo_and_fua_are_reported_for_reads_and_writes() {
        for opcode in [
            op::READ_10,
            op::READ_12,
            op::READ_16,
            op::WRITE_10,
            op::WRITE_12,
            op::WRITE_16,
            op::COMPARE_AND_WRITE,
            op::ORWRITE_16,
        ] {
            let c = find(opcode, None).expect("supported");
            assert_eq!(c.usage[1] & 0x18, 0x18, "{opcode:#04x}");
        }
        for opcode in [op::VERIFY_10, op::VERIFY_12, op::VERIFY_16] {
            let c = find(opcode, None).expect("supported");
            assert_eq!(c.usage[1] & 0x10, 0x10, "{opcode:#04x}");
        }
    }

    #[test]
    fn lookup_distinguishes_unknown_opcode_from_unknown_service_action() {
        let read = [op::READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(lookup(Cdb::new(&read)).map(|c| c.opcode), Ok(op::READ_10));
        assert_eq!(
            lookup(Cdb::new(&[0x04, 0, 0, 0, 0, 0])).err(),
            Some(Sense::invalid_opcode())
        );
        let mut sai = [0u8; 16];
        sai[0] = op::SERVICE_ACTION_IN_16;
        sai[1] = 0x10;
        assert_eq!(
            lookup(Cdb::new(&sai)).map(|c| c.service_action),
            Ok(Some(0x10))
        );
        sai[1] = 0x13;
        assert_eq!(
            lookup(Cdb::new(&sai)).err(),
            Some(Sense::invalid_field_in_cdb().at_cdb(1, Some(4)))
        );
        let mut mi = [0u8; 12];
        mi[0] = op::MAINTENANCE_IN;
        mi[1] = 0xE0 | 0x0C; // reserved bits 7..5 are not part of the service action
        assert!(lookup(Cdb::new(&mi)).is_ok());
        mi[1] = 0x0B;
        assert!(lookup(Cdb::new(&mi)).is_err());
    }
}
