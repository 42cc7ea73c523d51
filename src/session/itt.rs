//! The session's index of tasks by Initiator Task Tag, looked up several times per command
//! (arrival, Data-Out, completion, task management).
//!
//! ITTs are the initiator's choice, so the hash is keyed, per session, with a random key: an
//! initiator cannot choose tags that collide without knowing it (and the map never holds more
//! than the CmdSN window's tasks, so even collisions would cost a bounded probe). It is one
//! 64×64→128-bit multiplication folded to 64 bits, rather than SipHash's rounds, which were
//! about 8 % of the instructions of a batched 4 KiB write.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Task slots by ITT.
pub type IttMap = HashMap<u32, usize, IttHash>;

/// An empty map with a fresh key.
pub fn new_map() -> IttMap {
    HashMap::with_hasher(IttHash::new())
}

/// A random odd multiplier from the fractional part of the golden ratio (any odd constant
/// mixes; this one spreads consecutive tags, the common case, over every bit).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Clone, Copy, Debug)]
pub struct IttHash {
    key: u64,
}

impl IttHash {
    fn new() -> IttHash {
        // The standard library's per-process random keys, advanced per call.
        let key = std::collections::hash_map::RandomState::new().hash_one(0x1775_u64);
        IttHash { key }
    }
}

impl BuildHasher for IttHash {
    type Hasher = IttHasher;

    fn build_hasher(&self) -> IttHasher {
        IttHasher {
            key: self.key,
            value: 0,
        }
    }
}

pub struct IttHasher {
    key: u64,
    value: u64,
}

impl Hasher for IttHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed; this keeps any other input correct, if slower.
        for &b in bytes {
            self.value = self.value.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.value = u64::from(v);
    }

    fn finish(&self) -> u64 {
        let m = u128::from(self.value ^ self.key) * u128::from(MULTIPLIER);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_has_its_own_key() {
        let (a, b) = (IttHash::new(), IttHash::new());
        let differ = (0..16u32)
            .filter(|&itt| a.hash_one(itt) != b.hash_one(itt))
            .count();
        assert_eq!(differ, 16);
    }

    #[test]
    fn consecutive_tags_spread_over_the_tables_groups() {
        // hashbrown picks a bucket from the low bits and a tag from the top 7: consecutive ITTs
        // must not share them.
        let h = IttHash::new();
        let low: std::collections::HashSet<u64> =
            (0..256u32).map(|i| h.hash_one(i) & 0xff).collect();
        let top: std::collections::HashSet<u64> =
            (0..256u32).map(|i| h.hash_one(i) >> 57).collect();
        assert!(low.len() > 128, "{} distinct low bytes", low.len());
        assert!(top.len() > 64, "{} distinct top 7 bits", top.len());
    }

    #[test]
    fn the_map_finds_what_it_holds() {
        let mut m = new_map();
        for itt in (0..1000u32).map(|i| i.wrapping_mul(0x0101_0101)) {
            m.insert(itt, itt as usize);
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(&0x0101_0101), Some(&0x0101_0101));
        assert_eq!(m.remove(&0), Some(0));
        assert!(!m.contains_key(&0));
    }
}
