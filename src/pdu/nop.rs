//! NOP-Out / NOP-In (RFC 7143 §11.18, §11.19).

use super::bhs::{Bhs, Opcode, FINAL_BIT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: u64,
    /// 0xffffffff when the NOP-Out answers a target NOP-In (no reply wanted).
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl NopOut {
    pub fn decode(b: &Bhs) -> Self {
        NopOut {
            immediate: b.immediate(),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.set_immediate(self.immediate);
        b.set_flags(FINAL_BIT);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NopIn {
    pub lun: u64,
    pub itt: u32,
    /// A real tag when the target wants a NOP-Out back (keepalive ping), else 0xffffffff.
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl NopIn {
    pub fn decode(b: &Bhs) -> Self {
        NopIn {
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
        }
    }

    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::NOP_IN);
        b.set_flags(FINAL_BIT);
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
    fn nop_round_trip() {
        let o = NopOut {
            immediate: true,
            lun: 0,
            itt: 5,
            ttt: 0xffff_ffff,
            cmd_sn: 8,
            exp_stat_sn: 2,
        };
        assert_eq!(NopOut::decode(&o.encode()), o);
        let i = NopIn {
            lun: 0,
            itt: 0xffff_ffff,
            ttt: 77,
            stat_sn: 2,
            exp_cmd_sn: 8,
            max_cmd_sn: 72,
        };
        assert_eq!(NopIn::decode(&i.encode()), i);
    }
}
