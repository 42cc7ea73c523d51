//! LUN field encoding (SAM-5 logical unit numbers) and the per-target LUN map.

use super::LuInfo;

/// SAM-5 eight byte LUN structure: ADDRESS METHOD (byte 0, bits 7..6).
const METHOD_PERIPHERAL: u8 = 0b00;
const METHOD_FLAT: u8 = 0b01;
/// SAM-5 flat space addressing method: a 14-bit LUN.
pub const MAX_FLAT_LUN: u16 = 0x3FFF;

/// Decode the 8-byte LUN field (first byte most significant). Only single-level peripheral
/// device addressing with bus 0 and flat space addressing are accepted.
pub fn decode_lun(raw: u64) -> Option<u16> {
    let [b0, b1, rest @ ..] = raw.to_be_bytes();
    // Anything beyond the first level (bytes 2..8) would address a deeper hierarchy.
    if rest.iter().any(|&b| b != 0) {
        return None;
    }
    match b0 >> 6 {
        // SAM-5 peripheral device addressing: byte 0 bits 5..0 are the BUS IDENTIFIER; only bus 0 is the target itself.
        METHOD_PERIPHERAL if b0 & 0x3F == 0 => Some(u16::from(b1)),
        METHOD_FLAT => Some(u16::from_be_bytes([b0 & 0x3F, b1])),
        _ => None,
    }
}

/// Encode a LUN the way Linux and tgt do: peripheral addressing below 256, flat space above.
/// LUNs above 16383 cannot be expressed at one level and are masked to 14 bits.
pub fn encode_lun(lun: u16) -> u64 {
    let first_level = if lun < 256 {
        lun
    } else {
        (u16::from(METHOD_FLAT) << 14) | (lun & MAX_FLAT_LUN)
    };
    u64::from(first_level) << 48
}

/// The logical units one initiator sees through one target, sorted by LUN.
#[derive(Debug, Clone, Default)]
pub struct LunMap {
    units: Vec<LuInfo>,
}

impl LunMap {
    /// Build the map; when two units claim one LUN the first one given wins.
    pub fn new(units: Vec<LuInfo>) -> Self {
        let mut units = units;
        units.sort_by_key(|u| u.lun); // stable: keeps the first of equal LUNs first
        units.dedup_by_key(|u| u.lun);
        Self { units }
    }

    /// Position of `lun` in ascending LUN order, for tables kept beside the map.
    pub fn index_of(&self, lun: u16) -> Option<usize> {
        self.units.binary_search_by_key(&lun, |u| u.lun).ok()
    }

    /// The unit at position `i` (see [`LunMap::index_of`]).
    pub fn at(&self, i: usize) -> Option<&LuInfo> {
        self.units.get(i)
    }

    /// The unit at position `i` now has `blocks` logical blocks (its store was resized).
    pub fn set_num_blocks(&mut self, i: usize, blocks: u64) {
        if let Some(u) = self.units.get_mut(i) {
            u.num_blocks = blocks;
        }
    }

    pub fn get(&self, lun: u16) -> Option<&LuInfo> {
        self.units
            .binary_search_by_key(&lun, |u| u.lun)
            .ok()
            .and_then(|i| self.units.get(i))
    }

    /// Units in ascending LUN order.
    pub fn iter(&self) -> impl Iterator<Item = &LuInfo> {
        self.units.iter()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The same units restricted to `luns` (LUN masking: what one initiator may see).
    pub fn only(&self, luns: &[u16]) -> LunMap {
        let units = self
            .units
            .iter()
            .filter(|u| luns.contains(&u.lun))
            .cloned()
            .collect();
        LunMap { units }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::lu;

    #[test]
    fn peripheral_addressing_decodes() {
        assert_eq!(decode_lun(0), Some(0));
        assert_eq!(decode_lun(0x0005_0000_0000_0000), Some(5));
        assert_eq!(decode_lun(0x00FF_0000_0000_0000), Some(255));
    }

    #[test]
    fn flat_space_addressing_decodes() {
        assert_eq!(decode_lun(0x4000_0000_0000_0000), Some(0));
        assert_eq!(decode_lun(0x4100_0000_0000_0000), Some(256));
        assert_eq!(decode_lun(0x7FFF_0000_0000_0000), Some(16383));
    }

    #[test]
    fn other_forms_are_refused() {
        assert_eq!(decode_lun(0x0100_0000_0000_0000), None, "bus 1");
        assert_eq!(
            decode_lun(0x8001_0000_0000_0000),
            None,
            "logical unit addressing"
        );
        assert_eq!(
            decode_lun(0xC100_0000_0000_0000),
            None,
            "extended addressing"
        );
        assert_eq!(decode_lun(0x0001_0002_0000_0000), None, "second level");
        assert_eq!(decode_lun(0x0000_0000_0000_0001), None, "fourth level");
    }

    #[test]
    fn encoding_follows_linux_and_tgt() {
        assert_eq!(encode_lun(0), 0);
        assert_eq!(encode_lun(1), 0x0001_0000_0000_0000);
        assert_eq!(encode_lun(255), 0x00FF_0000_0000_0000);
        assert_eq!(encode_lun(256), 0x4100_0000_0000_0000);
        assert_eq!(encode_lun(16383), 0x7FFF_0000_0000_0000);
        assert_eq!(encode_lun(0xFFFF), 0x7FFF_0000_0000_0000);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        for lun in 0..=MAX_FLAT_LUN {
            assert_eq!(decode_lun(encode_lun(lun)), Some(lun));
        }
    }

    #[test]
    fn map_is_sorted_and_first_duplicate_wins() {
        let mut dup = lu(3);
        dup.serial = "second".into();
        let map = LunMap::new(vec![lu(7), lu(3), dup, lu(0)]);
        let luns: Vec<u16> = map.iter().map(|u| u.lun).collect();
        assert_eq!(luns, [0, 3, 7]);
        assert_ne!(map.get(3).map(|u| u.serial.as_str()), Some("second"));
        assert!(map.get(4).is_none());
        assert_eq!(map.len(), 3);
    }
}
