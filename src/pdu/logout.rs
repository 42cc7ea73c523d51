//! Logout Request / Response (RFC 7143 §11.14, §11.15).

use super::bhs::{Bhs, Opcode, FINAL_BIT};

/// RFC 7143 §11.14.1 reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutReason(pub u8);
impl LogoutReason {
    pub const CLOSE_SESSION: Self = Self(0);
    pub const CLOSE_CONNECTION: Self = Self(1);
    pub const REMOVE_FOR_RECOVERY: Self = Self(2);
}

/// RFC 7143 §11.15.1 response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutResponseCode(pub u8);
impl LogoutResponseCode {
    pub const SUCCESS: Self = Self(0);
    pub const CID_NOT_FOUND: Self = Self(1);
    pub const RECOVERY_NOT_SUPPORTED: Self = Self(2);
    pub const CLEANUP_FAILED: Self = Self(3);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    pub reason: LogoutReason,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    pub fn decode(b: &Bhs) -> Self {
        LogoutRequest {
            immediate: b.immediate(),
            reason: LogoutReason(b.flags() & 0x7f),
            itt: b.itt(),
            cid: b.u16_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGOUT_REQUEST);
        b.set_immediate(self.immediate);
        b.set_flags(FINAL_BIT | (self.reason.0 & 0x7f));
        b.set_itt(self.itt);
        b.set_u16(20, self.cid);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutResponse {
    pub response: LogoutResponseCode,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl LogoutResponse {
    pub fn decode(b: &Bhs) -> Self {
        LogoutResponse {
            response: LogoutResponseCode(b.u8_at(2)),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            time2wait: b.u16_at(40),
            time2retain: b.u16_at(42),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGOUT_RESPONSE);
        b.set_flags(FINAL_BIT);
        b.set_u8(2, self.response.0);
        b.set_itt(self.itt);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u16(40, self.time2wait);
        b.set_u16(42, self.time2retain);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logout_round_trip() {
        let r = LogoutRequest {
            immediate: true,
            reason: LogoutReason::CLOSE_CONNECTION,
            itt: 1,
            cid: 2,
            cmd_sn: 3,
            exp_stat_sn: 4,
        };
        assert_eq!(r.encode().flags(), 0x81);
        assert_eq!(LogoutRequest::decode(&r.encode()), r);
        let s = LogoutResponse {
            response: LogoutResponseCode::SUCCESS,
            itt: 1,
            stat_sn: 2,
            exp_cmd_sn: 3,
            max_cmd_sn: 4,
            time2wait: 2,
            time2retain: 20,
        };
        assert_eq!(LogoutResponse::decode(&s.encode()), s);
    }
}
