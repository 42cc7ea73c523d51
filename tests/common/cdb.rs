//! CDB builders (SPC-4, SBC-3) and decoders for the few replies the tests read.

pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// Sense keys (SPC-4 §4.5.6).
pub const NOT_READY: u8 = 0x02;
pub const ILLEGAL_REQUEST: u8 = 0x05;
pub const UNIT_ATTENTION: u8 = 0x06;
pub const DATA_PROTECT: u8 = 0x07;

/// ASCs the tests look for.
pub const ASC_LBA_OUT_OF_RANGE: u8 = 0x21;
pub const ASC_WRITE_PROTECTED: u8 = 0x27;

pub fn test_unit_ready() -> Vec<u8> {
    vec![0x00, 0, 0, 0, 0, 0]
}

pub fn inquiry(evpd: bool, page: u8, alloc: u16) -> Vec<u8> {
    let a = alloc.to_be_bytes();
    vec![0x12, evpd as u8, page, a[0], a[1], 0]
}

pub fn read_capacity10() -> Vec<u8> {
    vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

pub fn read_capacity16(alloc: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10; // SERVICE ACTION IN(16) / READ CAPACITY(16)
    c[10..14].copy_from_slice(&alloc.to_be_bytes());
    c
}

pub fn mode_sense6(page: u8, alloc: u8) -> Vec<u8> {
    vec![0x1a, 0, page & 0x3f, 0, alloc, 0]
}

fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn rw16(op: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    rw10(0x28, lba, blocks)
}
pub fn write10(lba: u32, blocks: u16) -> Vec<u8> {
    rw10(0x2a, lba, blocks)
}
pub fn read16(lba: u64, blocks: u32) -> Vec<u8> {
    rw16(0x88, lba, blocks)
}
pub fn write16(lba: u64, blocks: u32) -> Vec<u8> {
    rw16(0x8a, lba, blocks)
}

/// READ CAPACITY(10) data: (last LBA, block length).
pub fn parse_capacity10(d: &[u8]) -> (u32, u32) {
    assert!(d.len() >= 8, "READ CAPACITY(10) returned {} bytes", d.len());
    (be32(&d[0..4]), be32(&d[4..8]))
}

/// READ CAPACITY(16) data: (last LBA, block length).
pub fn parse_capacity16(d: &[u8]) -> (u64, u32) {
    assert!(
        d.len() >= 12,
        "READ CAPACITY(16) returned {} bytes",
        d.len()
    );
    let mut lba = [0u8; 8];
    lba.copy_from_slice(&d[0..8]);
    (u64::from_be_bytes(lba), be32(&d[8..12]))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Sense key, ASC, ASCQ from fixed (0x70/0x71) or descriptor (0x72/0x73) sense data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    pub fn parse(s: &[u8]) -> Option<Sense> {
        let at = |i: usize| s.get(i).copied().unwrap_or(0);
        match at(0) & 0x7f {
            0x70 | 0x71 => Some(Sense {
                key: at(2) & 0x0f,
                asc: at(12),
                ascq: at(13),
            }),
            0x72 | 0x73 => Some(Sense {
                key: at(1) & 0x0f,
                asc: at(2),
                ascq: at(3),
            }),
            _ => None,
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a readback compares against known data
/// and different tests write different data.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}
