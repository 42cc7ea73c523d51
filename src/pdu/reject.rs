//! Reject, Asynchronous Message and SNACK (RFC 7143 §11.17, §11.9, §11.16).

use super::bhs::{Bhs, Opcode, FINAL_BIT, RESERVED_TAG};

/// RFC 7143 §11.17.1 reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectReason(pub u8);
impl RejectReason {
    pub const DATA_DIGEST_ERROR: Self = Self(0x02);
    pub const SNACK_REJECT: Self = Self(0x03);
    pub const PROTOCOL_ERROR: Self = Self(0x04);
    pub const COMMAND_NOT_SUPPORTED: Self = Self(0x05);
    pub const IMMEDIATE_COMMAND_REJECT: Self = Self(0x06);
    pub const TASK_IN_PROGRESS: Self = Self(0x07);
    pub const INVALID_DATA_ACK: Self = Self(0x08);
    pub const INVALID_PDU_FIELD: Self = Self(0x09);
    pub const LONG_OPERATION_REJECT: Self = Self(0x0a);
    pub const WAITING_FOR_LOGOUT: Self = Self(0x0c);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
}

impl Reject {
    pub fn decode(b: &Bhs) -> Self {
        Reject {
            reason: RejectReason(b.u8_at(2)),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            data_sn: b.u32_at(36),
        }
    }

    /// The data segment of a Reject is the rejected PDU's complete header (RFC 7143 §11.17).
    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::REJECT);
        b.set_flags(FINAL_BIT);
        b.set_u8(2, self.reason.0);
        b.set_itt(RESERVED_TAG);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u32(36, self.data_sn);
        b
    }
}

/// RFC 7143 §11.9.1 AsyncEvent codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncEvent(pub u8);
impl AsyncEvent {
    pub const SCSI_EVENT: Self = Self(0);
    pub const LOGOUT_REQUESTED: Self = Self(1);
    pub const CONNECTION_DROP: Self = Self(2);
    pub const SESSION_DROP: Self = Self(3);
    pub const NEGOTIATION_REQUESTED: Self = Self(4);
    pub const TASK_TERMINATION: Self = Self(5);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: u64,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub event: AsyncEvent,
    pub vcode: u8,
    pub parameter1: u16,
    pub parameter2: u16,
    pub parameter3: u16,
}

impl AsyncMessage {
    pub fn decode(b: &Bhs) -> Self {
        AsyncMessage {
            lun: b.lun(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            event: AsyncEvent(b.u8_at(36)),
            vcode: b.u8_at(37),
            parameter1: b.u16_at(38),
            parameter2: b.u16_at(40),
            parameter3: b.u16_at(42),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::ASYNC_MESSAGE);
        b.set_flags(FINAL_BIT);
        b.set_lun(self.lun);
        b.set_itt(RESERVED_TAG);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u8(36, self.event.0);
        b.set_u8(37, self.vcode);
        b.set_u16(38, self.parameter1);
        b.set_u16(40, self.parameter2);
        b.set_u16(42, self.parameter3);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snack {
    pub kind: u8,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub beg_run: u32,
    pub run_length: u32,
}

impl Snack {
    pub fn decode(b: &Bhs) -> Self {
        Snack {
            kind: b.flags() & 0x0f,
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            exp_stat_sn: b.u32_at(28),
            beg_run: b.u32_at(40),
            run_length: b.u32_at(44),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SNACK_REQUEST);
        b.set_flags(FINAL_BIT | (self.kind & 0x0f));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(28, self.exp_stat_sn);
        b.set_u32(40, self.beg_run);
        b.set_u32(44, self.run_length);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_has_reserved_itt() {
        let r = Reject {
            reason: RejectReason::PROTOCOL_ERROR,
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
            data_sn: 0,
        };
        let b = r.encode();
        assert_eq!(b.itt(), RESERVED_TAG);
        assert_eq!(b.u8_at(2), 4);
        assert_eq!(Reject::decode(&b), r);
    }

    #[test]
    fn async_and_snack_round_trip() {
        let a = AsyncMessage {
            lun: 0,
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
            event: AsyncEvent::LOGOUT_REQUESTED,
            vcode: 0,
            parameter1: 0,
            parameter2: 0,
            parameter3: 5,
        };
        assert_eq!(AsyncMessage::decode(&a.encode()), a);
        let s = Snack {
            kind: 1,
            lun: 0,
            itt: 2,
            ttt: 3,
            exp_stat_sn: 4,
            beg_run: 5,
            run_length: 6,
        };
        assert_eq!(Snack::decode(&s.encode()), s);
    }
}
