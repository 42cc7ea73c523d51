//! Medium-handling commands a fixed, always-ready disk answers trivially.

use super::cdb::Cdb;
use super::sense::Sense;
use super::{done, Plan};

/// SBC-3 START STOP UNIT: the medium cannot be ejected (LOEJ, byte 4 bit 1) and no power
/// conditions are implemented (POWER CONDITION, byte 4 bits 7..4); START/STOP are no-ops.
pub(super) fn start_stop_unit(cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.u8(4) >> 4 != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(4, Some(7)));
    }
    if cdb.bit(4, 1) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(4, Some(1)));
    }
    Ok(done())
}

/// SBC-3 PREVENT ALLOW MEDIUM REMOVAL: nothing to lock on a non-removable medium, so
/// only ALLOW (PREVENT field, byte 4 bits 1..0, zero) succeeds.
pub(super) fn prevent_allow_medium_removal(cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.u8(4) & 0x03 != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(4, Some(1)));
    }
    Ok(done())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_stop_succeed() {
        assert_eq!(
            start_stop_unit(Cdb::new(&[0x1B, 1, 0, 0, 1, 0])),
            Ok(done())
        );
        assert_eq!(
            start_stop_unit(Cdb::new(&[0x1B, 0, 0, 0, 0, 0])),
            Ok(done())
        );
    }

    #[test]
    fn eject_fails_on_non_removable_medium() {
        // libiscsi StartStopUnit.Simple: LOEJ=1 START=0 must fail when RMB=0.
        let err = start_stop_unit(Cdb::new(&[0x1B, 1, 0, 0, 0x02, 0])).unwrap_err();
        assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(4, Some(1)));
        assert!(start_stop_unit(Cdb::new(&[0x1B, 0, 0, 0, 0x03, 0])).is_err());
    }

    #[test]
    fn power_conditions_are_refused() {
        let err = start_stop_unit(Cdb::new(&[0x1B, 0, 0, 0, 0x30, 0])).unwrap_err();
        assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(4, Some(7)));
    }

    #[test]
    fn allow_succeeds_prevent_fails() {
        assert_eq!(
            prevent_allow_medium_removal(Cdb::new(&[0x1E, 0, 0, 0, 0, 0])),
            Ok(done())
        );
        for prevent in 1..=3 {
            let cdb = [0x1E, 0, 0, 0, prevent, 0];
            assert!(prevent_allow_medium_removal(Cdb::new(&cdb)).is_err());
        }
    }
}
