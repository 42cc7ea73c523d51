//! The 48-byte Basic Header Segment (RFC 7143 §11.2) as raw bytes with typed field access.
//!
//! Every PDU family is a plain struct that decodes from / encodes to a [`Bhs`]; the raw form is kept
//! so that a rejected PDU's header can be echoed back verbatim in a Reject (RFC 7143 §11.17.1).

use std::fmt;

/// RFC 7143 §11.2.1: the BHS is always 48 bytes.
pub const BHS_LEN: usize = 48;

/// Opcode newtype: unknown values round-trip instead of failing to decode.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    // Initiator opcodes, RFC 7143 §11.2.1.2
    pub const NOP_OUT: Opcode = Opcode(0x00);
    pub const SCSI_COMMAND: Opcode = Opcode(0x01);
    pub const TASK_MGMT_REQUEST: Opcode = Opcode(0x02);
    pub const LOGIN_REQUEST: Opcode = Opcode(0x03);
    pub const TEXT_REQUEST: Opcode = Opcode(0x04);
    pub const DATA_OUT: Opcode = Opcode(0x05);
    pub const LOGOUT_REQUEST: Opcode = Opcode(0x06);
    pub const SNACK_REQUEST: Opcode = Opcode(0x10);
    // Target opcodes
    pub const NOP_IN: Opcode = Opcode(0x20);
    pub const SCSI_RESPONSE: Opcode = Opcode(0x21);
    pub const TASK_MGMT_RESPONSE: Opcode = Opcode(0x22);
    pub const LOGIN_RESPONSE: Opcode = Opcode(0x23);
    pub const TEXT_RESPONSE: Opcode = Opcode(0x24);
    pub const DATA_IN: Opcode = Opcode(0x25);
    pub const LOGOUT_RESPONSE: Opcode = Opcode(0x26);
    pub const R2T: Opcode = Opcode(0x31);
    pub const ASYNC_MESSAGE: Opcode = Opcode(0x32);
    pub const REJECT: Opcode = Opcode(0x3f);

    pub fn name(self) -> &'static str {
        match self {
            Self::NOP_OUT => "NOP-Out",
            Self::SCSI_COMMAND => "SCSI Command",
            Self::TASK_MGMT_REQUEST => "Task Management Request",
            Self::LOGIN_REQUEST => "Login Request",
            Self::TEXT_REQUEST => "Text Request",
            Self::DATA_OUT => "SCSI Data-Out",
            Self::LOGOUT_REQUEST => "Logout Request",
            Self::SNACK_REQUEST => "SNACK Request",
            Self::NOP_IN => "NOP-In",
            Self::SCSI_RESPONSE => "SCSI Response",
            Self::TASK_MGMT_RESPONSE => "Task Management Response",
            Self::LOGIN_RESPONSE => "Login Response",
            Self::TEXT_RESPONSE => "Text Response",
            Self::DATA_IN => "SCSI Data-In",
            Self::LOGOUT_RESPONSE => "Logout Response",
            Self::R2T => "R2T",
            Self::ASYNC_MESSAGE => "Asynchronous Message",
            Self::REJECT => "Reject",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(0x{:02x})", self.name(), self.0)
    }
}

/// Reserved tag value (RFC 7143 §11.2.1.8 / §11.7.4): "no tag".
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Flag in byte 0 (RFC 7143 §11.2.1.1).
const IMMEDIATE_BIT: u8 = 0x40;
/// Final bit in byte 1 for most PDUs.
pub const FINAL_BIT: u8 = 0x80;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl Default for Bhs {
    fn default() -> Self {
        Bhs([0; BHS_LEN])
    }
}

impl fmt::Debug for Bhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bhs({:?} itt=0x{:08x} dlen={})",
            self.opcode(),
            self.itt(),
            self.data_segment_len()
        )
    }
}

impl Bhs {
    pub fn new(opcode: Opcode) -> Self {
        let mut b = Bhs::default();
        b.0[0] = opcode.0 & 0x3f;
        b
    }

    pub fn from_slice(s: &[u8]) -> Option<Self> {
        let arr: [u8; BHS_LEN] = s.get(..BHS_LEN)?.try_into().ok()?;
        Some(Bhs(arr))
    }

    pub fn opcode(&self) -> Opcode {
        Opcode(self.0[0] & 0x3f)
    }
    pub fn immediate(&self) -> bool {
        self.0[0] & IMMEDIATE_BIT != 0
    }
    pub fn set_immediate(&mut self, on: bool) {
        if on {
            self.0[0] |= IMMEDIATE_BIT;
        } else {
            self.0[0] &= !IMMEDIATE_BIT;
        }
    }
    pub fn flags(&self) -> u8 {
        self.0[1]
    }
    pub fn set_flags(&mut self, f: u8) {
        self.0[1] = f;
    }
    /// TotalAHSLength in bytes (the wire field counts 4-byte words).
    pub fn total_ahs_len(&self) -> usize {
        self.0[4] as usize * 4
    }
    pub fn set_total_ahs_words(&mut self, words: u8) {
        self.0[4] = words;
    }
    pub fn data_segment_len(&self) -> usize {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]]) as usize
    }
    /// RFC 7143 §11.2.1.5: 24-bit field. Callers keep segments below 2^24 (MaxRecvDataSegmentLength
    /// never exceeds 2^24-1); larger values are clamped rather than silently wrapped.
    pub fn set_data_segment_len(&mut self, len: usize) {
        let len = len.min(0x00ff_ffff) as u32;
        self.0[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
    }
    pub fn lun(&self) -> u64 {
        self.u64_at(8)
    }
    pub fn set_lun(&mut self, lun: u64) {
        self.set_u64(8, lun);
    }
    pub fn itt(&self) -> u32 {
        self.u32_at(16)
    }
    pub fn set_itt(&mut self, itt: u32) {
        self.set_u32(16, itt);
    }

    pub fn u8_at(&self, off: usize) -> u8 {
        self.0[off]
    }
    pub fn u16_at(&self, off: usize) -> u16 {
        u16::from_be_bytes([self.0[off], self.0[off + 1]])
    }
    pub fn u32_at(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_be_bytes(b)
    }
    pub fn u64_at(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_be_bytes(b)
    }
    pub fn set_u8(&mut self, off: usize, v: u8) {
        self.0[off] = v;
    }
    pub fn set_u16(&mut self, off: usize, v: u16) {
        self.0[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_segment_length_is_24_bit_big_endian() {
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        b.set_data_segment_len(0x01_02_03);
        assert_eq!(&b.0[5..8], &[1, 2, 3]);
        assert_eq!(b.data_segment_len(), 0x010203);
        b.set_data_segment_len(usize::MAX);
        assert_eq!(b.data_segment_len(), 0xff_ffff);
    }

    #[test]
    fn immediate_bit_is_separate_from_opcode() {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.set_immediate(true);
        assert_eq!(b.0[0], 0x40);
        assert_eq!(b.opcode(), Opcode::NOP_OUT);
        assert!(b.immediate());
    }

    #[test]
    fn unknown_opcode_round_trips() {
        let mut raw = [0u8; BHS_LEN];
        raw[0] = 0x1d;
        let b = Bhs(raw);
        assert_eq!(b.opcode(), Opcode(0x1d));
        assert_eq!(b.opcode().name(), "unknown");
    }
}
