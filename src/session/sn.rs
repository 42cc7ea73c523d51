//! Serial number arithmetic for CmdSN, StatSN, DataSN and R2TSN (RFC 7143 §4.2.2.1, RFC 1982
//! with SERIAL_BITS = 32): comparisons that survive wrap-around.

/// `a < b` in serial arithmetic.
pub fn lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

/// Distance from `from` forward to `to` (how many increments), wrapping.
pub fn distance(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap() {
        assert!(lt(1, 2));
        assert!(!lt(2, 1));
        assert!(!lt(5, 5));
        assert!(lt(u32::MAX, 0));
        assert!(lt(u32::MAX - 10, 3));
        assert!(!lt(3, u32::MAX - 10));
        assert_eq!(distance(u32::MAX, 1), 2);
    }
}
