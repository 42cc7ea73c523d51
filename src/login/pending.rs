//! A text answer too long for one PDU, handed out in pieces (RFC 7143 §11.11.2, §11.13.2: C bit).
//!
//! Pieces end on a pair boundary whenever a whole pair fits, so that an initiator which does not
//! reassemble pairs split across PDUs still sees complete pairs; a single pair longer than the
//! limit is cut wherever the limit falls (the RFC allows that).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingText {
    data: Vec<u8>,
    pos: usize,
    started: bool,
}

impl PendingText {
    pub fn new(data: Vec<u8>) -> Self {
        PendingText {
            data,
            pos: 0,
            started: false,
        }
    }

    /// The next piece of at most `max` bytes (at least 1), and whether more follows (C bit).
    /// An empty answer yields one empty piece; after the last piece, empty pieces.
    pub fn next_chunk(&mut self, max: usize) -> (Vec<u8>, bool) {
        self.started = true;
        let rest = &self.data[self.pos..];
        let limit = max.max(1);
        if rest.len() <= limit {
            self.pos = self.data.len();
            return (rest.to_vec(), false);
        }
        let cut = pair_boundary(&rest[..limit]).unwrap_or(limit);
        self.pos += cut;
        (rest[..cut].to_vec(), true)
    }

    /// True once every byte has been handed out (and at least one piece was taken).
    pub fn is_done(&self) -> bool {
        self.started && self.pos >= self.data.len()
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

/// Length of the longest prefix of `window` that ends right after a NUL, if any.
fn pair_boundary(window: &[u8]) -> Option<usize> {
    window.iter().rposition(|&b| b == 0).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_final_piece() {
        let mut p = PendingText::new(b"A=1\0".to_vec());
        assert!(!p.is_done());
        assert_eq!(p.next_chunk(8192), (b"A=1\0".to_vec(), false));
        assert!(p.is_done());
        assert_eq!(p.next_chunk(8192), (Vec::new(), false));
    }

    #[test]
    fn empty_text_is_one_empty_piece() {
        let mut p = PendingText::new(Vec::new());
        assert_eq!(p.next_chunk(10), (Vec::new(), false));
        assert!(p.is_done());
    }

    #[test]
    fn pieces_end_on_pair_boundaries() {
        let mut p = PendingText::new(b"AA=1\0BB=2\0CC=3\0".to_vec());
        assert_eq!(p.next_chunk(12), (b"AA=1\0BB=2\0".to_vec(), true));
        assert_eq!(p.next_chunk(12), (b"CC=3\0".to_vec(), false));
        assert!(p.is_done());
    }

    #[test]
    fn oversized_pair_is_cut_at_the_limit() {
        let mut p = PendingText::new(b"KEY=0123456789\0".to_vec());
        let mut all = Vec::new();
        loop {
            let (c, more) = p.next_chunk(4);
            assert!(c.len() <= 4);
            all.extend(c);
            if !more {
                break;
            }
        }
        assert_eq!(all, b"KEY=0123456789\0");
    }

    #[test]
    fn zero_limit_still_makes_progress() {
        let mut p = PendingText::new(b"ab".to_vec());
        assert_eq!(p.next_chunk(0), (b"a".to_vec(), true));
        assert_eq!(p.next_chunk(0), (b"b".to_vec(), false));
        assert_eq!(p.remaining(), 0);
    }
}
