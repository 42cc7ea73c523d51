//! The connection's transmit side. Headers and small PDUs are staged in one buffer; large data
//! segments (Data-In read from the backing store) are not copied into it but recorded as
//! references to the buffer the disk filled, spliced into the stream at their place. The reactor
//! sends staged bytes and payloads together in one gathered send.

use std::ops::Range;

use crate::backstore::IoBuf;
use crate::pdu::frame::{self, pad4};
use crate::pdu::{Bhs, Digests};

/// Staged bytes (headers, responses, small data copied for sending) and payload records
/// ([`Output::held_bytes`]) past which the connection stops taking input until the peer has read some: a peer that sends requests and never reads
/// the answers holds at most this much (plus one response) here.
pub const MAX_STAGED_OUTPUT: usize = 1 << 20;

/// A data segment sent straight from `bufs[buf]` (or from [`ZEROS`] when `buf` is
/// [`ZERO_PAYLOAD`]), inserted at offset `at` of the staged bytes.
pub struct Payload {
    pub at: usize,
    pub buf: usize,
    pub range: Range<usize>,
}

/// `Payload::buf` of a piece of a segment of zeros.
pub const ZERO_PAYLOAD: usize = usize::MAX;

/// Zeros every zero payload is sent from: a longer segment is sent as several pieces of it, so
/// that one small constant serves any MaxRecvDataSegmentLength.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

#[derive(Default)]
pub struct Output {
    pub staged: Vec<u8>,
    pub payloads: Vec<Payload>,
    /// I/O buffers the payloads point into, owned here until sent.
    pub bufs: Vec<IoBuf>,
    pub digests: Digests,
}

impl Output {
    /// Stages a whole PDU, copying its (small) data segment.
    pub fn pdu(&mut self, bhs: &Bhs, data: &[u8]) {
        frame::encode(&mut self.staged, bhs, &[], data, self.digests);
    }

    /// Takes ownership of an I/O buffer whose bytes will be sent by `pdu_from_buf`.
    pub fn hold(&mut self, buf: IoBuf) -> usize {
        self.bufs.push(buf);
        self.bufs.len() - 1
    }

    /// Stages a PDU header whose data segment is `len` zeros, sent without a copy or a buffer.
    pub fn pdu_of_zeros(&mut self, bhs: &Bhs, len: usize) {
        let pieces = (0..len)
            .step_by(ZEROS.len())
            .map(|from| (ZERO_PAYLOAD, 0..ZEROS.len().min(len - from)));
        self.pdu_from_pieces(bhs, len, pieces);
    }

    /// Stages a PDU header whose data segment is `bufs[buf][range]`, sent without a copy.
    pub fn pdu_from_buf(&mut self, bhs: &Bhs, buf: usize, range: Range<usize>) {
        self.pdu_from_pieces(bhs, range.len(), std::iter::once((buf, range)));
    }

    /// Stages a PDU header whose data segment (`len` bytes) is the `pieces`, in order.
    fn pdu_from_pieces(
        &mut self,
        bhs: &Bhs,
        len: usize,
        pieces: impl Iterator<Item = (usize, Range<usize>)>,
    ) {
        frame::encode_header(&mut self.staged, bhs, &[], len, self.digests);
        if len == 0 {
            return;
        }
        let at = self.staged.len();
        let mut crc = crc32c::crc32c(&[]);
        for (buf, range) in pieces {
            let payload = Payload { at, buf, range };
            if self.digests.data {
                crc = crc32c::crc32c_append(crc, payload_bytes(&self.bufs, &payload));
            }
            self.payloads.push(payload);
        }
        let pad = pad4(len) - len;
        self.staged.extend(std::iter::repeat_n(0u8, pad));
        if self.digests.data {
            // RFC 7143 §11.1: the data digest covers the segment and its padding.
            let crc = crc32c::crc32c_append(crc, &[0u8; 3][..pad]);
            self.staged.extend_from_slice(&crc.to_le_bytes());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.staged.is_empty() && self.payloads.is_empty()
    }

    /// Memory this output holds that no budget counts: the staged bytes and one record per
    /// payload. I/O buffers are the session's budget's; zeros cost a record per piece and
    /// nothing else, so a peer that reads nothing while asking for zeros is bounded here.
    pub fn held_bytes(&self) -> usize {
        self.staged.len() + self.payloads.len() * std::mem::size_of::<Payload>()
    }

    /// Bytes waiting to be sent, payloads included.
    pub fn pending_bytes(&self) -> usize {
        self.staged.len() + self.payloads.iter().map(|p| p.range.len()).sum::<usize>()
    }

    /// Drops everything not yet sent.
    pub fn clear(&mut self) {
        self.staged.clear();
        self.payloads.clear();
        self.bufs.clear();
    }

    /// The byte stream as it goes on the wire (for tests and diagnostics; the reactor gathers
    /// the pieces instead of copying).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut wire = Vec::with_capacity(self.pending_bytes());
        let mut from = 0;
        for p in &self.payloads {
            wire.extend_from_slice(&self.staged[from..p.at]);
            wire.extend_from_slice(payload_bytes(&self.bufs, p));
            from = p.at;
        }
        wire.extend_from_slice(&self.staged[from..]);
        wire
    }
}

/// The bytes a payload sends.
pub fn payload_bytes<'a>(bufs: &'a [IoBuf], p: &Payload) -> &'a [u8] {
    match p.buf {
        ZERO_PAYLOAD => &ZEROS[p.range.clone()],
        buf => &bufs[buf].as_slice()[p.range.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::Opcode;

    #[test]
    fn spliced_payload_matches_a_copied_pdu_with_digests() {
        let digests = Digests {
            header: true,
            data: true,
        };
        let mut buf = IoBuf::alloc(10);
        buf.as_mut_slice().copy_from_slice(b"0123456789");
        let mut bhs = Bhs::new(Opcode::DATA_IN);
        bhs.set_itt(9);
        let mut spliced = Output {
            digests,
            ..Output::default()
        };
        let held = spliced.hold(buf);
        spliced.pdu_from_buf(&bhs, held, 3..10);
        spliced.pdu(&bhs, b"tail");
        let mut copied = Output {
            digests,
            ..Output::default()
        };
        copied.pdu(&bhs, b"3456789");
        copied.pdu(&bhs, b"tail");
        assert_eq!(spliced.to_wire(), copied.to_wire());
        assert_eq!(spliced.pending_bytes(), copied.to_wire().len());
    }

    #[test]
    fn zero_payloads_match_copied_zeros_with_digests() {
        let digests = Digests {
            header: true,
            data: true,
        };
        let bhs = Bhs::new(Opcode::DATA_IN);
        let mut zeros = Output {
            digests,
            ..Output::default()
        };
        let len = 2 * ZEROS.len() + 4097;
        zeros.pdu_of_zeros(&bhs, len);
        zeros.pdu_of_zeros(&bhs, 5);
        let mut copied = Output {
            digests,
            ..Output::default()
        };
        copied.pdu(&bhs, &vec![0u8; len]);
        copied.pdu(&bhs, &[0u8; 5]);
        assert_eq!(
            zeros.payloads.len(),
            4,
            "pieces of at most {} bytes",
            ZEROS.len()
        );
        assert!(zeros.bufs.is_empty(), "no buffer held");
        assert_eq!(zeros.to_wire(), copied.to_wire());
        assert_eq!(zeros.pending_bytes(), copied.to_wire().len());
    }
}
