//! PDU framing: how long a PDU is on the wire, digests, padding (RFC 7143 §11.1, §11.2).
//!
//! Parsing is two-step (header first, then payload) so that a reader can decide where the payload
//! lands — and refuse an oversized one — before any of it is buffered.

use super::bhs::{Bhs, BHS_LEN};
use super::digest::{crc32c, crc32c_append};

/// Length of a CRC32C digest on the wire (RFC 7143 §11.1).
pub const DIGEST_LEN: usize = 4;

/// Which digests the connection negotiated (RFC 7143 §13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

impl std::fmt::Display for Digests {
    /// Which CRC32C digests are on: `none`, `header`, `data` or `header+data`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.header, self.data) {
            (false, false) => "none",
            (true, false) => "header",
            (false, true) => "data",
            (true, true) => "header+data",
        })
    }
}

/// Where each part of one PDU lies, computed from its BHS alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub ahs_len: usize,
    pub data_len: usize,
    pub digests: Digests,
}

impl Layout {
    pub fn of(bhs: &Bhs, digests: Digests) -> Layout {
        Layout {
            ahs_len: bhs.total_ahs_len(),
            data_len: bhs.data_segment_len(),
            digests,
        }
    }

    /// BHS + AHS + optional header digest.
    pub fn header_len(&self) -> usize {
        BHS_LEN + self.ahs_len + if self.digests.header { DIGEST_LEN } else { 0 }
    }

    /// RFC 7143 §11.1: the data segment is padded to a 4-byte boundary.
    pub fn padded_data_len(&self) -> usize {
        pad4(self.data_len)
    }

    /// Padded data plus its digest; the digest is absent when there is no data.
    pub fn payload_len(&self) -> usize {
        if self.data_len == 0 {
            0
        } else {
            self.padded_data_len() + if self.digests.data { DIGEST_LEN } else { 0 }
        }
    }

    pub fn total_len(&self) -> usize {
        self.header_len() + self.payload_len()
    }
}

pub fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header digest mismatch (expected 0x{expected:08x}, got 0x{got:08x})")]
    HeaderDigest { expected: u32, got: u32 },
    #[error("data digest mismatch (expected 0x{expected:08x}, got 0x{got:08x})")]
    DataDigest { expected: u32, got: u32 },
    #[error("data segment of {len} bytes exceeds the negotiated limit of {limit}")]
    DataTooLong { len: usize, limit: usize },
}

/// One complete PDU borrowed from a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub bhs: Bhs,
    pub ahs: &'a [u8],
    /// The data segment without padding or digest.
    pub data: &'a [u8],
}

/// Checks the header of the PDU at the start of `buf` (which holds at least `layout.header_len()`
/// bytes), verifying the header digest and the data-length limit.
pub fn check_header(buf: &[u8], layout: &Layout, max_data: usize) -> Result<(), FrameError> {
    if layout.digests.header {
        let covered = BHS_LEN + layout.ahs_len;
        let expected = crc32c(&buf[..covered]);
        let got = read_digest(&buf[covered..covered + DIGEST_LEN]);
        if expected != got {
            return Err(FrameError::HeaderDigest { expected, got });
        }
    }
    if layout.data_len > max_data {
        return Err(FrameError::DataTooLong {
            len: layout.data_len,
            limit: max_data,
        });
    }
    Ok(())
}

/// Verifies the data digest of a complete PDU at the start of `buf`.
pub fn check_data(buf: &[u8], layout: &Layout) -> Result<(), FrameError> {
    if layout.digests.data && layout.data_len > 0 {
        let start = layout.header_len();
        let end = start + layout.padded_data_len();
        let expected = crc32c(&buf[start..end]);
        let got = read_digest(&buf[end..end + DIGEST_LEN]);
        if expected != got {
            return Err(FrameError::DataDigest { expected, got });
        }
    }
    Ok(())
}

/// Parses one complete PDU at the start of `buf`, if it is all there.
/// Returns the frame and the number of bytes it occupies.
pub fn parse(
    buf: &[u8],
    digests: Digests,
    max_data: usize,
) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(bhs) = Bhs::from_slice(buf) else {
        return Ok(None);
    };
    let layout = Layout::of(&bhs, digests);
    if buf.len() < layout.header_len() {
        return Ok(None);
    }
    check_header(buf, &layout, max_data)?;
    if buf.len() < layout.total_len() {
        return Ok(None);
    }
    check_data(buf, &layout)?;
    let ahs = &buf[BHS_LEN..BHS_LEN + layout.ahs_len];
    let data_start = layout.header_len();
    let data = &buf[data_start..data_start + layout.data_len];
    Ok(Some((Frame { bhs, ahs, data }, layout.total_len())))
}

fn read_digest(b: &[u8]) -> u32 {
    // RFC 7143 Appendix B: the CRC goes on the wire least significant byte first.
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Appends a whole PDU (header, AHS, digests, data, padding) to `out`, setting its lengths.
pub fn encode(out: &mut Vec<u8>, bhs: &Bhs, ahs: &[u8], data: &[u8], digests: Digests) {
    let start = out.len();
    encode_header(out, bhs, ahs, data.len(), digests);
    let _ = start;
    encode_payload(out, data, digests);
}

/// Appends the header part of a PDU whose data segment (of `data_len` bytes) is sent separately.
pub fn encode_header(out: &mut Vec<u8>, bhs: &Bhs, ahs: &[u8], data_len: usize, digests: Digests) {
    let mut bhs = *bhs;
    debug_assert_eq!(ahs.len() % 4, 0, "AHS is a multiple of 4 bytes");
    bhs.set_total_ahs_words((ahs.len() / 4).min(255) as u8);
    bhs.set_data_segment_len(data_len);
    let start = out.len();
    out.extend_from_slice(&bhs.0);
    out.extend_from_slice(ahs);
    if digests.header {
        crc32c_append(out, start);
    }
}

/// Appends a data segment with its padding and digest.
pub fn encode_payload(out: &mut Vec<u8>, data: &[u8], digests: Digests) {
    if data.is_empty() {
        return;
    }
    let start = out.len();
    out.extend_from_slice(data);
    out.resize(start + pad4(data.len()), 0);
    if digests.data {
        crc32c_append(out, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::bhs::Opcode;

    fn nop(data: &[u8], digests: Digests) -> Vec<u8> {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.set_itt(7);
        let mut out = Vec::new();
        encode(&mut out, &b, &[], data, digests);
        out
    }

    #[test]
    fn padding_and_digests_are_laid_out() {
        let d = Digests {
            header: true,
            data: true,
        };
        let wire = nop(b"hello", d);
        assert_eq!(wire.len(), 48 + 4 + 8 + 4);
        let (f, used) = parse(&wire, d, 8192).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(f.data, b"hello");
        assert_eq!(f.bhs.itt(), 7);
    }

    #[test]
    fn no_data_digest_when_segment_empty() {
        let d = Digests {
            header: false,
            data: true,
        };
        assert_eq!(nop(b"", d).len(), 48);
    }

    #[test]
    fn partial_input_needs_more() {
        let d = Digests::default();
        let wire = nop(b"abcdefgh", d);
        for cut in 0..wire.len() {
            assert!(
                parse(&wire[..cut], d, 8192).unwrap().is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn corrupted_header_digest_is_detected() {
        let d = Digests {
            header: true,
            data: false,
        };
        let mut wire = nop(b"x", d);
        wire[20] ^= 1;
        assert!(matches!(
            parse(&wire, d, 8192),
            Err(FrameError::HeaderDigest { .. })
        ));
    }

    #[test]
    fn corrupted_data_digest_is_detected() {
        let d = Digests {
            header: false,
            data: true,
        };
        let mut wire = nop(b"payload", d);
        wire[49] ^= 0x80;
        assert!(matches!(
            parse(&wire, d, 8192),
            Err(FrameError::DataDigest { .. })
        ));
    }

    #[test]
    fn oversized_segment_refused_before_payload_arrives() {
        let d = Digests::default();
        let wire = nop(&[0u8; 100], d);
        assert_eq!(
            parse(&wire[..48], d, 64).unwrap_err(),
            FrameError::DataTooLong {
                len: 100,
                limit: 64
            }
        );
    }
}
