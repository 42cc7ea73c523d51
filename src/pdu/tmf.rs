//! Task Management Function Request / Response (RFC 7143 §11.5, §11.6).

use super::bhs::{Bhs, Opcode, FINAL_BIT};

/// RFC 7143 §11.5.1 function codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmfFunction(pub u8);
impl TmfFunction {
    pub const ABORT_TASK: Self = Self(1);
    pub const ABORT_TASK_SET: Self = Self(2);
    pub const CLEAR_ACA: Self = Self(3);
    pub const CLEAR_TASK_SET: Self = Self(4);
    pub const LOGICAL_UNIT_RESET: Self = Self(5);
    pub const TARGET_WARM_RESET: Self = Self(6);
    pub const TARGET_COLD_RESET: Self = Self(7);
    pub const TASK_REASSIGN: Self = Self(8);
    /// RFC 7144 §4.1: the SAM-5 functions.
    pub const QUERY_TASK: Self = Self(9);
    pub const QUERY_TASK_SET: Self = Self(10);
    pub const I_T_NEXUS_RESET: Self = Self(11);
    pub const QUERY_ASYNC_EVENT: Self = Self(12);
}

/// RFC 7143 §11.6.1 response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmfResponseCode(pub u8);
impl TmfResponseCode {
    pub const COMPLETE: Self = Self(0);
    pub const TASK_DOES_NOT_EXIST: Self = Self(1);
    pub const LUN_DOES_NOT_EXIST: Self = Self(2);
    pub const TASK_STILL_ALLEGIANT: Self = Self(3);
    pub const REASSIGN_NOT_SUPPORTED: Self = Self(4);
    pub const NOT_SUPPORTED: Self = Self(5);
    pub const AUTHORIZATION_FAILED: Self = Self(6);
    /// RFC 7144 §4.2: a QUERY function found what it asked about.
    pub const SUCCEEDED: Self = Self(7);
    pub const REJECTED: Self = Self(255);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmfRequest {
    pub immediate: bool,
    pub function: TmfFunction,
    pub lun: u64,
    pub itt: u32,
    pub referenced_task_tag: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

impl TmfRequest {
    pub fn decode(b: &Bhs) -> Self {
        TmfRequest {
            immediate: b.immediate(),
            function: TmfFunction(b.flags() & 0x7f),
            lun: b.lun(),
            itt: b.itt(),
            referenced_task_tag: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            ref_cmd_sn: b.u32_at(32),
            exp_data_sn: b.u32_at(36),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TASK_MGMT_REQUEST);
        b.set_immediate(self.immediate);
        b.set_flags(FINAL_BIT | (self.function.0 & 0x7f));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.referenced_task_tag);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b.set_u32(32, self.ref_cmd_sn);
        b.set_u32(36, self.exp_data_sn);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmfResponse {
    pub response: TmfResponseCode,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// RFC 7144 §4.2: SAM-5's ADDITIONAL RESPONSE INFORMATION (QUERY ASYNCHRONOUS EVENT: sense
    /// key, ASC, ASCQ of the pending unit attention), bytes 36..=38.
    pub additional_info: [u8; 3],
}

impl TmfResponse {
    pub fn decode(b: &Bhs) -> Self {
        TmfResponse {
            response: TmfResponseCode(b.u8_at(2)),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            additional_info: [b.u8_at(36), b.u8_at(37), b.u8_at(38)],
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TASK_MGMT_RESPONSE);
        b.set_flags(FINAL_BIT);
        b.set_u8(2, self.response.0);
        b.set_itt(self.itt);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        for (i, v) in self.additional_info.iter().enumerate() {
            b.set_u8(36 + i, *v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmf_round_trip() {
        let r = TmfRequest {
            immediate: true,
            function: TmfFunction::ABORT_TASK,
            lun: 0,
            itt: 9,
            referenced_task_tag: 4,
            cmd_sn: 10,
            exp_stat_sn: 3,
            ref_cmd_sn: 7,
            exp_data_sn: 0,
        };
        assert_eq!(TmfRequest::decode(&r.encode()), r);
        let s = TmfResponse {
            response: TmfResponseCode::TASK_DOES_NOT_EXIST,
            itt: 9,
            stat_sn: 3,
            exp_cmd_sn: 11,
            max_cmd_sn: 74,
            additional_info: [6, 0x29, 0],
        };
        assert_eq!(TmfResponse::decode(&s.encode()), s);
    }
}
