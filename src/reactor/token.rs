//! `user_data` of every submission: what kind of operation, and a slab index with generation bits
//! so that a completion for a slot that has been reused is recognised, never a pointer.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Block = 4,
    Wake = 5,
    Tick = 6,
    /// A one-shot short timeout for connections waiting on another core.
    Soon = 7,
    /// The eventfd on which librbd reports completed RBD operations.
    Rbd = 8,
    /// The eventfd on which the NVMe passthrough ring reports completions.
    Nvme = 9,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub generation: u32,
    pub index: u32,
}

const GEN_MASK: u64 = 0x00ff_ffff;

impl Token {
    pub fn new(kind: Kind, index: usize, generation: u32) -> Self {
        Token {
            kind,
            generation: generation & GEN_MASK as u32,
            index: index as u32,
        }
    }

    pub fn encode(self) -> u64 {
        (self.kind as u64) << 56
            | (u64::from(self.generation) & GEN_MASK) << 32
            | u64::from(self.index)
    }

    pub fn decode(v: u64) -> Option<Self> {
        let kind = match v >> 56 {
            1 => Kind::Accept,
            2 => Kind::Recv,
            3 => Kind::Send,
            4 => Kind::Block,
            5 => Kind::Wake,
            6 => Kind::Tick,
            7 => Kind::Soon,
            8 => Kind::Rbd,
            9 => Kind::Nvme,
            _ => return None,
        };
        Some(Token {
            kind,
            generation: ((v >> 32) & GEN_MASK) as u32,
            index: v as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_truncates_generation() {
        let t = Token::new(Kind::Block, 123_456, 0x0abc_def0);
        let back = Token::decode(t.encode()).unwrap();
        assert_eq!(
            back,
            Token {
                kind: Kind::Block,
                generation: 0xbc_def0,
                index: 123_456
            }
        );
        assert!(Token::decode(0).is_none());
    }
}
