//! Login Request / Response (RFC 7143 §11.12, §11.13).

use super::bhs::{Bhs, Opcode};
use super::scsi::flag;

const TRANSIT_BIT: u8 = 0x80;
const CONTINUE_BIT: u8 = 0x40;

/// Login stage, RFC 7143 §11.12.3: CSG/NSG values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stage(pub u8);
impl Stage {
    pub const SECURITY: Stage = Stage(0);
    pub const OPERATIONAL: Stage = Stage(1);
    /// Value 2 is reserved.
    pub const FULL_FEATURE: Stage = Stage(3);
}

/// The highest and lowest (and only) protocol version, RFC 7143 §11.12.4.
pub const ISCSI_VERSION: u8 = 0x00;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRequest {
    /// RFC 7143 §11.12: always 1 in a valid Login Request.
    pub immediate: bool,
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LoginRequest {
    pub fn decode(b: &Bhs) -> Self {
        let f = b.flags();
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b.0[8..14]);
        LoginRequest {
            immediate: b.immediate(),
            transit: f & TRANSIT_BIT != 0,
            cont: f & CONTINUE_BIT != 0,
            csg: Stage((f >> 2) & 3),
            nsg: Stage(f & 3),
            version_max: b.u8_at(2),
            version_min: b.u8_at(3),
            isid,
            tsih: b.u16_at(14),
            itt: b.itt(),
            cid: b.u16_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
        b.set_immediate(self.immediate);
        b.set_flags(stage_flags(self.transit, self.cont, self.csg, self.nsg));
        b.set_u8(2, self.version_max);
        b.set_u8(3, self.version_min);
        b.0[8..14].copy_from_slice(&self.isid);
        b.set_u16(14, self.tsih);
        b.set_itt(self.itt);
        b.set_u16(20, self.cid);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b
    }
}

/// Login status class and detail, RFC 7143 §11.13.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginStatus {
    pub class: u8,
    pub detail: u8,
}

impl LoginStatus {
    pub const SUCCESS: Self = Self {
        class: 0x00,
        detail: 0x00,
    };
    pub const TARGET_MOVED_TEMPORARILY: Self = Self {
        class: 0x01,
        detail: 0x01,
    };
    pub const INITIATOR_ERROR: Self = Self {
        class: 0x02,
        detail: 0x00,
    };
    pub const AUTHENTICATION_FAILURE: Self = Self {
        class: 0x02,
        detail: 0x01,
    };
    pub const AUTHORIZATION_FAILURE: Self = Self {
        class: 0x02,
        detail: 0x02,
    };
    pub const NOT_FOUND: Self = Self {
        class: 0x02,
        detail: 0x03,
    };
    pub const TARGET_REMOVED: Self = Self {
        class: 0x02,
        detail: 0x04,
    };
    pub const UNSUPPORTED_VERSION: Self = Self {
        class: 0x02,
        detail: 0x05,
    };
    pub const TOO_MANY_CONNECTIONS: Self = Self {
        class: 0x02,
        detail: 0x06,
    };
    pub const MISSING_PARAMETER: Self = Self {
        class: 0x02,
        detail: 0x07,
    };
    pub const CANT_INCLUDE_IN_SESSION: Self = Self {
        class: 0x02,
        detail: 0x08,
    };
    pub const SESSION_TYPE_NOT_SUPPORTED: Self = Self {
        class: 0x02,
        detail: 0x09,
    };
    pub const SESSION_DOES_NOT_EXIST: Self = Self {
        class: 0x02,
        detail: 0x0a,
    };
    pub const INVALID_DURING_LOGIN: Self = Self {
        class: 0x02,
        detail: 0x0b,
    };
    pub const TARGET_ERROR: Self = Self {
        class: 0x03,
        detail: 0x00,
    };
    pub const SERVICE_UNAVAILABLE: Self = Self {
        class: 0x03,
        detail: 0x01,
    };
    pub const OUT_OF_RESOURCES: Self = Self {
        class: 0x03,
        detail: 0x02,
    };

    pub fn is_success(self) -> bool {
        self.class == 0
    }

    /// What the status means (RFC 7143 §11.13.5), for logs; `None` for codes not named here.
    pub fn meaning(self) -> Option<&'static str> {
        let named = [
            (Self::SUCCESS, "success"),
            (Self::TARGET_MOVED_TEMPORARILY, "target moved temporarily"),
            (Self::INITIATOR_ERROR, "initiator error"),
            (Self::AUTHENTICATION_FAILURE, "authentication failure"),
            (Self::AUTHORIZATION_FAILURE, "authorization failure"),
            (Self::NOT_FOUND, "not found"),
            (Self::TARGET_REMOVED, "target removed"),
            (Self::UNSUPPORTED_VERSION, "unsupported version"),
            (Self::TOO_MANY_CONNECTIONS, "too many connections"),
            (Self::MISSING_PARAMETER, "missing parameter"),
            (Self::CANT_INCLUDE_IN_SESSION, "can't include in session"),
            (
                Self::SESSION_TYPE_NOT_SUPPORTED,
                "session type not supported",
            ),
            (Self::SESSION_DOES_NOT_EXIST, "session does not exist"),
            (Self::INVALID_DURING_LOGIN, "invalid request during login"),
            (Self::TARGET_ERROR, "target error"),
            (Self::SERVICE_UNAVAILABLE, "service unavailable"),
            (Self::OUT_OF_RESOURCES, "out of resources"),
        ];
        named.iter().find(|(s, _)| *s == self).map(|(_, m)| *m)
    }
}

impl std::fmt::Display for LoginStatus {
    /// `0x0203 (not found)`: class and detail as RFC 7143 writes them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:02x}{:02x}", self.class, self.detail)?;
        match self.meaning() {
            Some(m) => write!(f, " ({m})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub status: LoginStatus,
}

impl LoginResponse {
    pub fn decode(b: &Bhs) -> Self {
        let f = b.flags();
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b.0[8..14]);
        LoginResponse {
            transit: f & TRANSIT_BIT != 0,
            cont: f & CONTINUE_BIT != 0,
            csg: Stage((f >> 2) & 3),
            nsg: Stage(f & 3),
            version_max: b.u8_at(2),
            version_active: b.u8_at(3),
            isid,
            tsih: b.u16_at(14),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            status: LoginStatus {
                class: b.u8_at(36),
                detail: b.u8_at(37),
            },
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGIN_RESPONSE);
        b.set_flags(stage_flags(self.transit, self.cont, self.csg, self.nsg));
        b.set_u8(2, self.version_max);
        b.set_u8(3, self.version_active);
        b.0[8..14].copy_from_slice(&self.isid);
        b.set_u16(14, self.tsih);
        b.set_itt(self.itt);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b.set_u8(36, self.status.class);
        b.set_u8(37, self.status.detail);
        b
    }
}

fn stage_flags(transit: bool, cont: bool, csg: Stage, nsg: Stage) -> u8 {
    flag(transit, TRANSIT_BIT) | flag(cont, CONTINUE_BIT) | ((csg.0 & 3) << 2) | (nsg.0 & 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_request_layout() {
        let r = LoginRequest {
            immediate: true,
            transit: true,
            cont: false,
            csg: Stage::OPERATIONAL,
            nsg: Stage::FULL_FEATURE,
            version_max: 0,
            version_min: 0,
            isid: [0x40, 0, 1, 0x37, 0, 0],
            tsih: 0,
            itt: 0x10,
            cid: 1,
            cmd_sn: 5,
            exp_stat_sn: 0,
        };
        let b = r.encode();
        assert_eq!(b.0[0], 0x43);
        assert_eq!(b.0[1], 0x80 | 0x04 | 0x03);
        assert_eq!(LoginRequest::decode(&b), r);
    }

    #[test]
    fn login_response_status_bytes() {
        let r = LoginResponse {
            transit: false,
            cont: false,
            csg: Stage::SECURITY,
            nsg: Stage::SECURITY,
            version_max: 0,
            version_active: 0,
            isid: [0; 6],
            tsih: 0,
            itt: 1,
            stat_sn: 0,
            exp_cmd_sn: 1,
            max_cmd_sn: 1,
            status: LoginStatus::NOT_FOUND,
        };
        let b = r.encode();
        assert_eq!((b.0[36], b.0[37]), (2, 3));
        assert_eq!(LoginResponse::decode(&b), r);
    }
}
