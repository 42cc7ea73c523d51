//! Bounds-safe field extraction from a CDB, and CDB lengths by operation code.
//!
//! Every getter reads missing bytes as zero so that no CDB, however short, can panic;
//! `dispatch` separately refuses CDBs shorter than their operation code requires.

use super::sense::Sense;

/// Operation codes handled here (SPC-4 and SBC-3 operation code tables).
pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0A;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SELECT_6: u8 = 0x15;
    /// SPC-2 RESERVE (6) and RELEASE (6).
    pub const RESERVE_6: u8 = 0x16;
    pub const RELEASE_6: u8 = 0x17;
    pub const MODE_SENSE_6: u8 = 0x1A;
    pub const START_STOP_UNIT: u8 = 0x1B;
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2A;
    pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
    pub const VERIFY_10: u8 = 0x2F;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const UNMAP: u8 = 0x42;
    pub const SANITIZE: u8 = 0x48;
    pub const MODE_SELECT_10: u8 = 0x55;
    /// SPC-2 RESERVE (10) and RELEASE (10).
    pub const RESERVE_10: u8 = 0x56;
    pub const RELEASE_10: u8 = 0x57;
    pub const MODE_SENSE_10: u8 = 0x5A;
    /// SPC-4 PERSISTENT RESERVE IN / OUT (service actions in byte 1).
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
    /// SPC-4 EXTENDED COPY and RECEIVE COPY RESULTS (service actions in byte 1).
    pub const EXTENDED_COPY: u8 = 0x83;
    pub const RECEIVE_COPY_RESULTS: u8 = 0x84;
    pub const READ_16: u8 = 0x88;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const WRITE_16: u8 = 0x8A;
    /// ORWRITE (16).
    pub const ORWRITE_16: u8 = 0x8B;
    pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
    pub const VERIFY_16: u8 = 0x8F;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const WRITE_SAME_16: u8 = 0x93;
    /// WRITE ATOMIC (16) (SBC-4).
    pub const WRITE_ATOMIC_16: u8 = 0x9C;
    /// SERVICE ACTION IN (16); READ CAPACITY (16) is service action 10h (SBC-3).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    pub const REPORT_LUNS: u8 = 0xA0;
    /// MAINTENANCE IN; REPORT SUPPORTED OPERATION CODES is service action 0Ch (SPC-4).
    pub const MAINTENANCE_IN: u8 = 0xA3;
    pub const READ_12: u8 = 0xA8;
    pub const WRITE_12: u8 = 0xAA;
    pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
    pub const VERIFY_12: u8 = 0xAF;
    pub const READ_DEFECT_DATA_12: u8 = 0xB7;
}

/// SBC-3 READ CAPACITY (16): service action of SERVICE ACTION IN (16).
pub const SA_READ_CAPACITY_16: u8 = 0x10;
/// SBC-3 GET LBA STATUS: service action of SERVICE ACTION IN (16).
pub const SA_GET_LBA_STATUS: u8 = 0x12;
/// SPC-4 REPORT SUPPORTED OPERATION CODES: service action of MAINTENANCE IN.
pub const SA_REPORT_SUPPORTED_OPCODES: u8 = 0x0C;
/// SPC-4 REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS: service action of MAINTENANCE IN.
pub const SA_REPORT_SUPPORTED_TMFS: u8 = 0x0D;
/// MAINTENANCE IN service action REPORT TARGET PORT GROUPS.
pub const SA_REPORT_TARGET_PORT_GROUPS: u8 = 0x0A;
/// SBC-3 SANITIZE service actions.
pub const SA_SANITIZE_OVERWRITE: u8 = 0x01;
pub const SA_SANITIZE_BLOCK_ERASE: u8 = 0x02;
pub const SA_SANITIZE_EXIT_FAILURE_MODE: u8 = 0x1F;

/// SPC-4 SERVICE ACTION field of the 12- and 16-byte CDBs that carry one (byte 1 bits 4..0).
pub fn service_action(cdb: &Cdb) -> u8 {
    cdb.u8(1) & 0x1F
}

/// SAM-5 / SPC-4 CONTROL byte: NACA bit. ACA is not supported, so NACA=1 is refused.
const CONTROL_NACA: u8 = 0x04;

/// SPC-4 operation code group codes: CDB length from the group code (top three bits of the opcode).
/// Groups 3 (variable/reserved), 6 and 7 (vendor specific) have no fixed length.
pub fn length_for_opcode(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// A borrowed CDB with panic-free big-endian getters.
#[derive(Debug, Clone, Copy)]
pub struct Cdb<'a> {
    bytes: &'a [u8],
}

impl<'a> Cdb<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The CDB as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn opcode(&self) -> u8 {
        self.u8(0)
    }

    pub fn u8(&self, at: usize) -> u8 {
        self.bytes.get(at).copied().unwrap_or(0)
    }

    pub fn bit(&self, at: usize, bit: u8) -> bool {
        self.u8(at) & (1 << (bit & 7)) != 0
    }

    pub fn be16(&self, at: usize) -> u16 {
        u16::from_be_bytes(self.array(at))
    }

    /// 3-byte big-endian field (e.g. the allocation length of older CDBs is 1 byte, but
    /// READ (6) carries a 21-bit LBA in bytes 1..=3).
    pub fn be24(&self, at: usize) -> u32 {
        let [a, b, c] = self.array(at);
        u32::from_be_bytes([0, a, b, c])
    }

    pub fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.array(at))
    }

    pub fn be64(&self, at: usize) -> u64 {
        u64::from_be_bytes(self.array(at))
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.u8(at.saturating_add(i));
        }
        out
    }

    /// Refuse a CDB shorter than its opcode needs, or one asking for ACA (not supported).
    pub fn check_frame(&self, needed: usize) -> Result<(), Sense> {
        if self.len() < needed {
            // Point past the last byte received: that is the field that is missing.
            let byte = u16::try_from(self.len()).unwrap_or(u16::MAX);
            return Err(Sense::invalid_field_in_cdb().at_cdb(byte, None));
        }
        let control_at = needed.saturating_sub(1);
        if self.u8(control_at) & CONTROL_NACA != 0 {
            let byte = u16::try_from(control_at).unwrap_or(u16::MAX);
            return Err(Sense::invalid_field_in_cdb().at_cdb(byte, Some(2)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_code_gives_cdb_length() {
        assert_eq!(length_for_opcode(op::INQUIRY), Some(6));
        assert_eq!(length_for_opcode(op::READ_10), Some(10));
        assert_eq!(length_for_opcode(op::MODE_SENSE_10), Some(10));
        assert_eq!(length_for_opcode(op::READ_16), Some(16));
        assert_eq!(length_for_opcode(op::REPORT_LUNS), Some(12));
        assert_eq!(length_for_opcode(0x7F), None);
        assert_eq!(length_for_opcode(0xC0), None);
    }

    #[test]
    fn getters_read_big_endian() {
        let c = Cdb::new(&[0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(c.be16(2), 0x0102);
        assert_eq!(c.be24(1), 0x0000_0102);
        assert_eq!(c.be32(2), 0x0102_0304);
        assert_eq!(c.be64(2), 0x0102_0304_0506_0708);
    }

    #[test]
    fn getters_past_the_end_read_zero() {
        let c = Cdb::new(&[0x28, 0xFF]);
        assert_eq!(c.u8(5), 0);
        assert_eq!(c.be16(1), 0xFF00);
        assert_eq!(c.be64(usize::MAX), 0);
        assert!(!c.bit(9, 3));
        assert_eq!(Cdb::new(&[]).opcode(), 0);
    }

    #[test]
    fn short_cdb_is_invalid_field_pointing_past_the_end() {
        let err = Cdb::new(&[0x28, 0, 0]).check_frame(10).unwrap_err();
        assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(3, None));
    }

    #[test]
    fn naca_is_invalid_field_pointing_at_control_bit_2() {
        let mut cdb = [0u8; 10];
        cdb[9] = 0x04;
        let err = Cdb::new(&cdb).check_frame(10).unwrap_err();
        assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(9, Some(2)));
    }

    #[test]
    fn trailing_padding_is_ignored() {
        // iSCSI carries CDBs in a 16-byte field: a 6-byte CDB arrives zero padded.
        let mut cdb = [0u8; 16];
        cdb[15] = 0x04;
        assert!(Cdb::new(&cdb).check_frame(6).is_ok());
    }
}
