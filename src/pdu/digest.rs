//! CRC32C (Castagnoli) digests, RFC 7143 §13.1 and Appendix B. The `crc32c` crate uses the SSE4.2
//! / ARMv8 CRC instruction when the CPU has it.

pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Computes the digest of `out[start..]` and appends it in wire order.
pub fn crc32c_append(out: &mut Vec<u8>, start: usize) {
    let crc = crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3720 Appendix B.4 test vectors (unchanged in RFC 7143): 32 bytes of zeros, of 0xff,
    /// and an incrementing pattern; wire bytes listed in transmission order.
    #[test]
    fn rfc_test_vectors() {
        let mut out = vec![0u8; 32];
        crc32c_append(&mut out, 0);
        assert_eq!(&out[32..], &[0xaa, 0x36, 0x91, 0x8a]);
        let mut out = vec![0xffu8; 32];
        crc32c_append(&mut out, 0);
        assert_eq!(&out[32..], &[0x43, 0xab, 0xa8, 0x62]);
        let mut out: Vec<u8> = (0u8..32).collect();
        crc32c_append(&mut out, 0);
        assert_eq!(&out[32..], &[0x4e, 0x79, 0xdd, 0x46]);
    }
}
