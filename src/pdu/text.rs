//! Text Request / Response (RFC 7143 §11.10, §11.11).

use super::bhs::{Bhs, Opcode, FINAL_BIT};
use super::scsi::flag;

const CONTINUE_BIT: u8 = 0x40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_bit: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl TextRequest {
    pub fn decode(b: &Bhs) -> Self {
        TextRequest {
            immediate: b.immediate(),
            final_bit: b.flags() & FINAL_BIT != 0,
            cont: b.flags() & CONTINUE_BIT != 0,
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TEXT_REQUEST);
        b.set_immediate(self.immediate);
        b.set_flags(flag(self.final_bit, FINAL_BIT) | flag(self.cont, CONTINUE_BIT));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextResponse {
    pub final_bit: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl TextResponse {
    pub fn decode(b: &Bhs) -> Self {
        TextResponse {
            final_bit: b.flags() & FINAL_BIT != 0,
            cont: b.flags() & CONTINUE_BIT != 0,
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TEXT_RESPONSE);
        b.set_flags(flag(self.final_bit, FINAL_BIT) | flag(self.cont, CONTINUE_BIT));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(24, self.stat_sn);
        b.set_u32(28, self.exp_cmd_sn);
        b.set_u32(32, self.max_cmd_sn);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let r = TextRequest {
            immediate: true,
            final_bit: true,
            cont: false,
            lun: 0,
            itt: 3,
            ttt: 0xffff_ffff,
            cmd_sn: 2,
            exp_stat_sn: 1,
        };
        assert_eq!(TextRequest::decode(&r.encode()), r);
        let s = TextResponse {
            final_bit: false,
            cont: true,
            lun: 0,
            itt: 3,
            ttt: 9,
            stat_sn: 1,
            exp_cmd_sn: 3,
            max_cmd_sn: 40,
        };
        assert_eq!(s.encode().flags(), 0x40);
        assert_eq!(TextResponse::decode(&s.encode()), s);
    }
}
