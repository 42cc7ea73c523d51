//! SCSI Command, SCSI Response, Data-Out, Data-In and R2T (RFC 7143 §11.3–§11.8).

use super::bhs::{Bhs, Opcode, FINAL_BIT};

/// RFC 7143 §11.3.1 flags.
const READ_BIT: u8 = 0x40;
const WRITE_BIT: u8 = 0x20;
const ATTR_MASK: u8 = 0x07;
/// RFC 7143 §11.4.1 / §11.7.5 residual flags.
pub const BIDI_OVERFLOW: u8 = 0x10;
pub const BIDI_UNDERFLOW: u8 = 0x08;
pub const RESIDUAL_OVERFLOW: u8 = 0x04;
pub const RESIDUAL_UNDERFLOW: u8 = 0x02;
/// RFC 7143 §11.7.1: Data-In carries status.
const STATUS_BIT: u8 = 0x01;
/// RFC 7143 §11.7.2: acknowledge requested (ERL > 0 only).
const ACK_BIT: u8 = 0x40;

/// AHS types, RFC 7143 §11.2.2.
pub const AHS_EXTENDED_CDB: u8 = 1;
pub const AHS_BIDI_READ_LEN: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    pub final_bit: bool,
    pub read: bool,
    pub write: bool,
    pub attr: u8,
    pub lun: u64,
    pub itt: u32,
    pub expected_data_len: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    pub fn decode(b: &Bhs) -> Self {
        let f = b.flags();
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&b.0[32..48]);
        ScsiCommand {
            immediate: b.immediate(),
            final_bit: f & FINAL_BIT != 0,
            read: f & READ_BIT != 0,
            write: f & WRITE_BIT != 0,
            attr: f & ATTR_MASK,
            lun: b.lun(),
            itt: b.itt(),
            expected_data_len: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            cdb,
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        b.set_immediate(self.immediate);
        b.set_flags(
            flag(self.final_bit, FINAL_BIT)
                | flag(self.read, READ_BIT)
                | flag(self.write, WRITE_BIT)
                | (self.attr & ATTR_MASK),
        );
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.expected_data_len);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b.0[32..48].copy_from_slice(&self.cdb);
        b
    }
}

/// Extracts the full CDB: the 16 bytes of the BHS, extended by an Extended-CDB AHS
/// (RFC 7143 §11.2.2.3) when present. Returns `None` for a malformed AHS.
pub fn full_cdb(cmd: &ScsiCommand, ahs: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    out.extend_from_slice(&cmd.cdb);
    let mut rest = ahs;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let kind = rest[2];
        // AHSLength counts bytes after the 3-byte header's reserved byte; segments pad to 4.
        let end = 3 + len;
        let seg = rest.get(3..end)?;
        if kind == AHS_EXTENDED_CDB {
            // First byte of the segment is reserved; the remainder extends the CDB past byte 16.
            out.extend_from_slice(seg.get(1..)?);
        }
        let padded = super::frame::pad4(end);
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    Some(())
}

/// Service response codes, RFC 7143 §11.4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiResponseCode(pub u8);
impl ScsiResponseCode {
    pub const COMMAND_COMPLETED: Self = Self(0x00);
    pub const TARGET_FAILURE: Self = Self(0x01);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Residual {
    pub overflow: bool,
    pub underflow: bool,
    pub count: u32,
}

impl Residual {
    /// Residual of a transfer of `actual` bytes against the initiator's expected length
    /// (RFC 7143 §11.4.5).
    pub fn of(expected: u32, actual: u64) -> Self {
        let expected64 = u64::from(expected);
        if actual > expected64 {
            Residual {
                overflow: true,
                underflow: false,
                count: (actual - expected64).min(u64::from(u32::MAX)) as u32,
            }
        } else if actual < expected64 {
            Residual {
                overflow: false,
                underflow: true,
                count: (expected64 - actual) as u32,
            }
        } else {
            Residual::default()
        }
    }
    fn flags(&self) -> u8 {
        flag(self.overflow, RESIDUAL_OVERFLOW) | flag(self.underflow, RESIDUAL_UNDERFLOW)
    }
    fn from_flags(f: u8, count: u32) -> Self {
        Residual {
            overflow: f & RESIDUAL_OVERFLOW != 0,
            underflow: f & RESIDUAL_UNDERFLOW != 0,
            count,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiResponse {
    pub residual: Residual,
    pub response: ScsiResponseCode,
    pub status: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
}

impl ScsiResponse {
    pub fn decode(b: &Bhs) -> Self {
        ScsiResponse {
            residual: Residual::from_flags(b.flags(), b.u32_at(44)),
            response: ScsiResponseCode(b.u8_at(2)),
            status: b.u8_at(3),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            exp_data_sn: b.u32_at(36),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
        b.set_flags(FINAL_BIT | self.residual.flags());
        b.set_u8(2, self.response.0);
        b.set_u8(3, self.status);
        b.set_itt(self.itt);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u32(36, self.exp_data_sn);
        b.set_u32(44, self.residual.count);
        b
    }
}

/// RFC 7143 §11.4.7: sense data in a SCSI Response is prefixed by a 2-byte SenseLength.
pub fn sense_segment(sense: &[u8]) -> Vec<u8> {
    let mut seg = Vec::with_capacity(2 + sense.len());
    seg.extend_from_slice(&(sense.len().min(u16::MAX as usize) as u16).to_be_bytes());
    seg.extend_from_slice(sense);
    seg
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataOut {
    pub final_bit: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

impl DataOut {
    pub fn decode(b: &Bhs) -> Self {
        DataOut {
            final_bit: b.flags() & FINAL_BIT != 0,
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            exp_stat_sn: b.u32_at(28),
            data_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::DATA_OUT);
        b.set_flags(flag(self.final_bit, FINAL_BIT));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(28, self.exp_stat_sn);
        b.set_u32(36, self.data_sn);
        b.set_u32(40, self.buffer_offset);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataIn {
    pub final_bit: bool,
    pub ack: bool,
    /// `Some(status)` when this PDU carries the command's status (S bit, RFC 7143 §11.7.1).
    pub status: Option<u8>,
    pub residual: Residual,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

impl DataIn {
    pub fn decode(b: &Bhs) -> Self {
        let f = b.flags();
        let has_status = f & STATUS_BIT != 0;
        DataIn {
            final_bit: f & FINAL_BIT != 0,
            ack: f & ACK_BIT != 0,
            status: has_status.then(|| b.u8_at(3)),
            residual: if has_status {
                Residual::from_flags(f, b.u32_at(44))
            } else {
                Residual::default()
            },
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            // RFC 7143 §11.7.4: StatSN is reserved unless the PDU carries status.
            stat_sn: if has_status { b.u32_at(24) } else { 0 },
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            data_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::DATA_IN);
        let mut f = flag(self.final_bit, FINAL_BIT) | flag(self.ack, ACK_BIT);
        if let Some(status) = self.status {
            f |= STATUS_BIT | self.residual.flags();
            b.set_u8(3, status);
            b.set_u32(24, self.stat_sn);
            b.set_u32(44, self.residual.count);
        }
        b.set_flags(f);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u32(36, self.data_sn);
        b.set_u32(40, self.buffer_offset);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct R2t {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_len: u32,
}

impl R2t {
    pub fn decode(b: &Bhs) -> Self {
        R2t {
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            r2t_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
            desired_len: b.u32_at(44),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::R2T);
        b.set_flags(FINAL_BIT);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u32(36, self.r2t_sn);
        b.set_u32(40, self.buffer_offset);
        b.set_u32(44, self.desired_len);
        b
    }
}

pub(crate) fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scsi_command_round_trip() {
        let c = ScsiCommand {
            immediate: true,
            final_bit: true,
            read: true,
            write: false,
            attr: 1,
            lun: 0x0001_0000_0000_0000,
            itt: 0x1234,
            expected_data_len: 4096,
            cmd_sn: 9,
            exp_stat_sn: 3,
            cdb: [0x28, 0, 0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0],
        };
        let b = c.encode();
        assert_eq!(b.0[0], 0x41);
        assert_eq!(b.0[1], 0x80 | 0x40 | 1);
        assert_eq!(ScsiCommand::decode(&b), c);
    }

    #[test]
    fn data_in_status_fields_only_with_s_bit() {
        let d = DataIn {
            final_bit: true,
            ack: false,
            status: Some(0),
            residual: Residual {
                overflow: false,
                underflow: true,
                count: 512,
            },
            lun: 0,
            itt: 1,
            ttt: 0xffff_ffff,
            stat_sn: 5,
            exp_cmd_sn: 6,
            max_cmd_sn: 70,
            data_sn: 2,
            buffer_offset: 8192,
        };
        let b = d.encode();
        assert_eq!(b.flags(), 0x80 | 0x02 | 0x01);
        assert_eq!(DataIn::decode(&b), d);
        let mid = DataIn {
            final_bit: false,
            status: None,
            residual: Residual::default(),
            stat_sn: 0,
            ..d
        };
        let b = mid.encode();
        assert_eq!(b.flags(), 0);
        assert_eq!(b.u32_at(24), 0, "StatSN reserved without S bit");
        assert_eq!(DataIn::decode(&b), mid);
    }

    /// Found by the pdu_frame fuzz target: a Data-In header without the S bit but with bytes in
    /// the reserved StatSN field decoded a StatSN that encoding then dropped.
    #[test]
    fn data_in_without_status_ignores_reserved_stat_sn() {
        let mut raw = [0u8; 48];
        raw[..2].copy_from_slice(&[0x46, 0x80]);
        raw[16..32].copy_from_slice(&[
            0x3c, 0xfa, 0x63, 0x9a, 0, 0, 0, 0, 0x61, 0xa5, 0x66, 0x63, 0, 0, 0, 0x0d,
        ]);
        let d = DataIn::decode(&Bhs(raw));
        assert_eq!(d.status, None);
        assert_eq!(d.stat_sn, 0, "StatSN is reserved without the S bit");
        assert_eq!(DataIn::decode(&d.encode()), d);
    }

    #[test]
    fn response_and_r2t_round_trip() {
        let r = ScsiResponse {
            residual: Residual {
                overflow: true,
                underflow: false,
                count: 9,
            },
            response: ScsiResponseCode::COMMAND_COMPLETED,
            status: 2,
            itt: 4,
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
            exp_data_sn: 0,
        };
        assert_eq!(ScsiResponse::decode(&r.encode()), r);
        let t = R2t {
            lun: 0,
            itt: 1,
            ttt: 2,
            stat_sn: 3,
            exp_cmd_sn: 4,
            max_cmd_sn: 5,
            r2t_sn: 6,
            buffer_offset: 7,
            desired_len: 8,
        };
        assert_eq!(R2t::decode(&t.encode()), t);
        let o = DataOut {
            final_bit: true,
            lun: 0,
            itt: 1,
            ttt: 2,
            exp_stat_sn: 3,
            data_sn: 4,
            buffer_offset: 5,
        };
        assert_eq!(DataOut::decode(&o.encode()), o);
    }

    #[test]
    fn residual_arithmetic() {
        assert_eq!(
            Residual::of(4096, 512),
            Residual {
                overflow: false,
                underflow: true,
                count: 3584
            }
        );
        assert_eq!(
            Residual::of(512, 4096),
            Residual {
                overflow: true,
                underflow: false,
                count: 3584
            }
        );
        assert_eq!(Residual::of(7, 7), Residual::default());
    }

    #[test]
    fn extended_cdb_ahs_is_appended() {
        let mut cmd = ScsiCommand::decode(&Bhs::new(Opcode::SCSI_COMMAND));
        cmd.cdb = [0x7f; 16];
        // AHSLength=17: reserved byte + 16 more CDB bytes, padded to 20 (+3 header = 23 -> 24).
        let mut ahs = vec![0, 17, AHS_EXTENDED_CDB, 0];
        ahs.extend_from_slice(&[0xaa; 16]);
        ahs.resize(24, 0);
        let mut out = Vec::new();
        full_cdb(&cmd, &ahs, &mut out).unwrap();
        assert_eq!(out.len(), 32);
        assert_eq!(&out[16..], &[0xaa; 16]);
        assert!(full_cdb(&cmd, &[0, 40, 1, 0], &mut out).is_none());
    }
}
