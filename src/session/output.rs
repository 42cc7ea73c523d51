//! The connection's transmit side: PDUs are encoded into one staging buffer that the reactor sends
//! in a single call per loop turn.

use crate::pdu::{frame, Bhs, Digests};

#[derive(Default)]
pub struct Output {
    pub buf: Vec<u8>,
    pub digests: Digests,
}

impl Output {
    pub fn pdu(&mut self, bhs: &Bhs, data: &[u8]) {
        frame::encode(&mut self.buf, bhs, &[], data, self.digests);
    }
}
