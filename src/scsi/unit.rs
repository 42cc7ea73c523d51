//! Medium handling: START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, and which commands need a
//! loaded medium. A fixed medium (RMB=0) can be neither ejected nor locked; a removable one
//! (`LuInfo::removable`) is ejected and loaded with LOEJ, and each I_T nexus may prevent its
//! removal. The medium state is shared by every core (`LuInfo::medium`).

use super::cdb::{op, Cdb};
use super::nexus::NexusState;
use super::sense::Sense;
use super::{done, LuInfo, Plan};

/// SBC-3 START STOP UNIT byte 4: POWER CONDITION (bits 7..4), LOEJ (bit 1), START (bit 0).
const LOEJ: u8 = 1;
const START: u8 = 0;
/// SPC-4 PREVENT ALLOW MEDIUM REMOVAL byte 4 PREVENT field (bits 1..0).
const PREVENT_MASK: u8 = 0x03;
const ALLOW: u8 = 0b00;
const PREVENT: u8 = 0b01;

/// SBC-3 START STOP UNIT. A virtual unit has no power to save: it is always active, so START
/// alone changes nothing, and a POWER CONDITION other than 0h (START_VALID) is a transition
/// that takes no time and ends at the next access; SBC-3 then ignores LOEJ and START (libiscsi
/// StartStopUnit.PwrCnd: GOOD for every value, the medium stays). LOEJ=1 loads
/// (START=1) or ejects (START=0) a removable medium, unless an I_T nexus prevents removal
/// (ILLEGAL REQUEST, MEDIUM REMOVAL PREVENTED, for loading too, as libiscsi
/// PreventAllow.Eject expects); a fixed medium refuses LOEJ. IMMED and NO_FLUSH are accepted:
/// the command completes once done, and there is nothing to flush on eject (the backing store
/// keeps every write).
pub(super) fn start_stop_unit(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.u8(4) >> 4 != 0 || !cdb.bit(4, LOEJ) {
        return Ok(done());
    }
    if !lu.removable {
        return Err(Sense::invalid_field_in_cdb().at_cdb(4, Some(LOEJ)));
    }
    if lu.shared.medium.is_prevented() {
        return Err(Sense::medium_removal_prevented());
    }
    lu.shared.medium.set_present(cdb.bit(4, START));
    Ok(done())
}

/// SPC-4 PREVENT ALLOW MEDIUM REMOVAL: PREVENT 01b locks a removable medium for this I_T
/// nexus, 00b gives this nexus's lock back (others keep theirs); 10b and 11b are obsolete and
/// refused. A fixed medium has nothing to lock: only ALLOW succeeds.
pub(super) fn prevent_allow_medium_removal(
    lu: &LuInfo,
    nexus: &mut NexusState,
    cdb: Cdb,
) -> Result<Plan, Sense> {
    let refuse = || Err(Sense::invalid_field_in_cdb().at_cdb(4, Some(1)));
    match cdb.u8(4) & PREVENT_MASK {
        ALLOW => {
            nexus.prevents_mut().allow(lu.lun);
            Ok(done())
        }
        PREVENT if lu.removable => {
            nexus.prevents_mut().prevent(lu.lun, &lu.shared.medium);
            Ok(done())
        }
        _ => refuse(),
    }
}

/// Whether a command needs the medium: with a removable medium ejected it is refused with
/// NOT READY, MEDIUM NOT PRESENT. Commands about the logical unit rather than its blocks run
/// without one (SPC-4 / SBC-3: INQUIRY, REQUEST SENSE, REPORT LUNS, mode pages, the medium
/// handling commands themselves, reservations, MAINTENANCE IN/OUT reports, the copy manager's
/// RECEIVE COPY RESULTS).
pub(super) fn needs_medium(opcode: u8) -> bool {
    !matches!(
        opcode,
        op::INQUIRY
            | op::REQUEST_SENSE
            | op::REPORT_LUNS
            | op::MODE_SELECT_6
            | op::MODE_SENSE_6
            | op::MODE_SELECT_10
            | op::MODE_SENSE_10
            | op::START_STOP_UNIT
            | op::PREVENT_ALLOW_MEDIUM_REMOVAL
            | op::MAINTENANCE_IN
            | op::RECEIVE_COPY_RESULTS
            | MAINTENANCE_OUT
            | RESERVE_6
            | RELEASE_6
            | RESERVE_10
            | RELEASE_10
            | PERSISTENT_RESERVE_IN
            | PERSISTENT_RESERVE_OUT
    )
}

/// Whether a command reads, writes or reports the blocks, which a failed sanitize operation
/// makes unavailable (SBC-4 §4.11.3): what needs the medium, except SANITIZE itself (the way
/// out) and READ CAPACITY (which an initiator needs to see the disk at all).
fn accesses_blocks(opcode: u8) -> bool {
    needs_medium(opcode)
        && !matches!(
            opcode,
            op::SANITIZE | op::READ_CAPACITY_10 | op::SERVICE_ACTION_IN_16
        )
}

/// SBC-4 §4.11: what a device server still processes while it sanitizes the medium (REQUEST
/// SENSE then reports the progress).
fn allowed_while_sanitizing(opcode: u8) -> bool {
    matches!(
        opcode,
        op::INQUIRY | op::REPORT_LUNS | op::REQUEST_SENSE | LOG_SENSE
    )
}

const LOG_SENSE: u8 = 0x4D;

/// SPC-4 operation codes that never touch the medium (listed here whether or not supported).
const MAINTENANCE_OUT: u8 = 0xA4;
const RESERVE_6: u8 = 0x16;
const RELEASE_6: u8 = 0x17;
const RESERVE_10: u8 = 0x56;
const RELEASE_10: u8 = 0x57;
const PERSISTENT_RESERVE_IN: u8 = 0x5E;
const PERSISTENT_RESERVE_OUT: u8 = 0x5F;

/// NOT READY for a command the medium cannot take now: SANITIZE IN PROGRESS (with its
/// progress) while a sanitize operation runs, to every command SBC-4 §4.11 does not let
/// through; MEDIUM NOT PRESENT to one that needs the medium of an LU whose removable medium is
/// ejected.
pub(super) fn check_medium(lu: &LuInfo, opcode: u8) -> Result<(), Sense> {
    if let Some(progress) = lu.shared.medium.sanitize_progress() {
        if !allowed_while_sanitizing(opcode) {
            return Err(Sense::sanitize_in_progress(progress));
        }
    }
    if lu.shared.medium.sanitize_failure().is_some() && accesses_blocks(opcode) {
        return Err(Sense::sanitize_command_failed());
    }
    if lu.removable && !lu.shared.medium.is_present() && needs_medium(opcode) {
        return Err(Sense::medium_not_present());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::lu_with;

    fn ssu(byte4: u8) -> [u8; 6] {
        [op::START_STOP_UNIT, 0, 0, 0, byte4, 0]
    }

    fn pamr(prevent: u8) -> [u8; 6] {
        [op::PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, prevent, 0]
    }

    fn removable() -> LuInfo {
        lu_with(|u| u.removable = true)
    }

    #[test]
    fn start_and_stop_succeed() {
        let lu = lu_with(|_| {});
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(1))), Ok(done()));
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0))), Ok(done()));
        assert!(lu.shared.medium.is_present());
    }

    #[test]
    fn eject_fails_on_non_removable_medium() {
        // libiscsi StartStopUnit.Simple: LOEJ=1 START=0 must fail when RMB=0.
        let lu = lu_with(|_| {});
        let err = start_stop_unit(&lu, Cdb::new(&ssu(0x02))).unwrap_err();
        assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(4, Some(1)));
        assert!(start_stop_unit(&lu, Cdb::new(&ssu(0x03))).is_err());
        assert!(lu.shared.medium.is_present());
    }

    #[test]
    fn power_conditions_are_good_and_ignore_loej() {
        for lu in [removable(), lu_with(|_| {})] {
            for pc in 1..16u8 {
                let c = ssu(pc << 4 | 0x02);
                assert_eq!(start_stop_unit(&lu, Cdb::new(&c)), Ok(done()), "{pc}");
                assert!(lu.shared.medium.is_present());
            }
        }
    }

    #[test]
    fn loej_ejects_and_loads_a_removable_medium() {
        let lu = removable();
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0x02))), Ok(done()));
        assert!(!lu.shared.medium.is_present());
        assert_eq!(
            start_stop_unit(&lu, Cdb::new(&ssu(0x02))),
            Ok(done()),
            "again"
        );
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0x00))), Ok(done()));
        assert!(
            !lu.shared.medium.is_present(),
            "STOP without LOEJ loads nothing"
        );
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0x03))), Ok(done()));
        assert!(lu.shared.medium.is_present());
    }

    #[test]
    fn prevented_medium_can_be_neither_ejected_nor_loaded() {
        let lu = removable();
        let mut n = NexusState::new();
        assert_eq!(
            prevent_allow_medium_removal(&lu, &mut n, Cdb::new(&pamr(1))),
            Ok(done())
        );
        let prevented = Err(Sense::medium_removal_prevented());
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0x02))), prevented);
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0x03))), prevented);
        assert_eq!(
            start_stop_unit(&lu, Cdb::new(&ssu(0x01))),
            Ok(done()),
            "START alone"
        );
        assert!(lu.shared.medium.is_present());
        prevent_allow_medium_removal(&lu, &mut n, Cdb::new(&pamr(0))).unwrap();
        assert_eq!(start_stop_unit(&lu, Cdb::new(&ssu(0x02))), Ok(done()));
    }

    #[test]
    fn fixed_medium_allows_only_allow_and_obsolete_values_are_refused() {
        let fixed = lu_with(|_| {});
        let mut n = NexusState::new();
        assert_eq!(
            prevent_allow_medium_removal(&fixed, &mut n, Cdb::new(&pamr(0))),
            Ok(done())
        );
        for prevent in 1..=3 {
            assert!(
                prevent_allow_medium_removal(&fixed, &mut n, Cdb::new(&pamr(prevent))).is_err()
            );
        }
        let lu = removable();
        for prevent in 2..=3 {
            assert_eq!(
                prevent_allow_medium_removal(&lu, &mut n, Cdb::new(&pamr(prevent))),
                Err(Sense::invalid_field_in_cdb().at_cdb(4, Some(1)))
            );
        }
        assert!(!lu.shared.medium.is_prevented());
    }

    #[test]
    fn only_media_access_commands_need_the_medium() {
        for opcode in [
            op::TEST_UNIT_READY,
            op::READ_10,
            op::WRITE_16,
            op::READ_CAPACITY_10,
            op::SERVICE_ACTION_IN_16,
            op::SYNCHRONIZE_CACHE_10,
            op::PRE_FETCH_10,
            op::SANITIZE,
            op::UNMAP,
        ] {
            assert!(needs_medium(opcode), "{opcode:#04x}");
        }
        for opcode in [
            op::INQUIRY,
            op::REQUEST_SENSE,
            op::REPORT_LUNS,
            op::START_STOP_UNIT,
            op::PREVENT_ALLOW_MEDIUM_REMOVAL,
            op::MODE_SENSE_6,
            op::MAINTENANCE_IN,
            PERSISTENT_RESERVE_IN,
        ] {
            assert!(!needs_medium(opcode), "{opcode:#04x}");
        }
        let lu = removable();
        assert_eq!(check_medium(&lu, op::READ_10), Ok(()));
        lu.shared.medium.set_present(false);
        assert_eq!(
            check_medium(&lu, op::READ_10),
            Err(Sense::medium_not_present())
        );
        assert_eq!(check_medium(&lu, op::INQUIRY), Ok(()));
    }

    #[test]
    fn a_running_sanitize_refuses_all_but_what_sbc4_lets_through() {
        let lu = lu_with(|_| {});
        let guard = lu.shared.medium.begin_sanitize(false).unwrap();
        guard.set_progress(1, 2);
        for opcode in [
            op::TEST_UNIT_READY,
            op::READ_16,
            op::WRITE_10,
            op::START_STOP_UNIT,
            op::MODE_SENSE_6,
            op::SANITIZE,
        ] {
            assert_eq!(
                check_medium(&lu, opcode),
                Err(Sense::sanitize_in_progress(32768)),
                "{opcode:#04x}"
            );
        }
        for opcode in [op::INQUIRY, op::REPORT_LUNS, op::REQUEST_SENSE, LOG_SENSE] {
            assert_eq!(check_medium(&lu, opcode), Ok(()), "{opcode:#04x}");
        }
        let mut guard = guard;
        guard.completed();
        drop(guard);
        assert_eq!(check_medium(&lu, op::READ_16), Ok(()));
    }

    #[test]
    fn a_failed_sanitize_refuses_the_blocks_but_lets_a_sanitize_and_read_capacity_through() {
        let lu = lu_with(|_| {});
        drop(lu.shared.medium.begin_sanitize(false).unwrap());
        for opcode in [
            op::TEST_UNIT_READY,
            op::READ_16,
            op::WRITE_10,
            op::SYNCHRONIZE_CACHE_10,
        ] {
            assert_eq!(
                check_medium(&lu, opcode),
                Err(Sense::sanitize_command_failed()),
                "{opcode:#04x}"
            );
        }
        for opcode in [
            op::SANITIZE,
            op::READ_CAPACITY_10,
            op::SERVICE_ACTION_IN_16,
            op::INQUIRY,
            op::REQUEST_SENSE,
            op::MODE_SENSE_6,
        ] {
            assert_eq!(check_medium(&lu, opcode), Ok(()), "{opcode:#04x}");
        }
        lu.shared.medium.begin_sanitize(false).unwrap().completed();
        assert_eq!(check_medium(&lu, op::READ_16), Ok(()));
    }
}
