//! Value encodings of RFC 7143 §6.1: numerical-value, boolean-value, binary-value, lists.
//!
//! Every function returns `None` for anything malformed or out of range; the caller answers
//! `Reject` (or fails the login where the RFC requires).

/// RFC 7143 §6.1: unless a key says otherwise, a simple-value is at most 255 bytes.
pub const MAX_SIMPLE_VALUE_LEN: usize = 255;

/// RFC 7143 §4.2.7.1 (iSCSI names): at most 223 bytes.
pub const MAX_ISCSI_NAME_LEN: usize = 223;

/// numerical-value (RFC 7143 §6.1): a decimal-constant or a hex-constant (`0x`/`0X`), below 2^64.
/// Base64 (`0b`) is not a numerical-value. Leading zeros are tolerated.
pub fn parse_number(s: &str) -> Option<u64> {
    if s.len() > MAX_SIMPLE_VALUE_LEN {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return parse_radix(hex, 16);
    }
    parse_radix(s, 10)
}

fn parse_radix(digits: &str, radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u64, |acc, c| {
        let d = c.to_digit(radix)?;
        acc.checked_mul(u64::from(radix))?.checked_add(u64::from(d))
    })
}

/// A numerical-value within `lo..=hi`.
pub fn parse_in_range(s: &str, lo: u64, hi: u64) -> Option<u64> {
    parse_number(s).filter(|v| (lo..=hi).contains(v))
}

/// boolean-value (RFC 7143 §6.1): exactly `Yes` or `No` (keys and values are case-sensitive).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

pub fn bool_str(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// list-of-values (RFC 7143 §6.1): comma-separated items.
pub fn list_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',')
}

/// binary-value (RFC 7143 §6.1): decimal (regular values only), hex (`0x`) or base64 (`0b`).
/// Hex with an odd digit count is read as if a leading 0 were present (§6.1: a hex-constant of
/// n digits is (n+1)/2 bytes long).
pub fn parse_binary(s: &str) -> Option<Vec<u8>> {
    if let Some(bytes) = parse_encoded(s) {
        return Some(bytes);
    }
    let n = parse_radix(s, 10)?;
    let bytes = n.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    Some(bytes[first..].to_vec())
}

/// large-binary-value (RFC 7143 §6.1): a hex- or base64-constant only (decimal is for values
/// that fit 64 bits), of at most `max` bytes once decoded. An encoding too long for `max` is
/// refused before it is decoded, so a hostile value costs nothing.
pub fn parse_large_binary(s: &str, max: usize) -> Option<Vec<u8>> {
    let longest_encoding = 2 + (2 * max).max(max.div_ceil(3) * 4);
    if s.len() > longest_encoding {
        return None;
    }
    parse_encoded(s).filter(|b| b.len() <= max)
}

/// A hex-constant (`0x`/`0X`) or base64-constant (`0b`/`0B`); None for anything else.
fn parse_encoded(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return decode_hex(hex);
    }
    if let Some(b64) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        return decode_base64(b64);
    }
    None
}

/// A hex-constant for `bytes`: `0x` and two lower-case digits per byte (libiscsi reads only
/// this form of CHAP_C).
pub fn hex_constant(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() {
        return None;
    }
    let digits: Vec<u8> = hex
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    let (head, rest) = digits.split_at(digits.len() % 2);
    out.extend(head.iter().copied());
    out.extend(rest.chunks_exact(2).map(|p| (p[0] << 4) | p[1]));
    Some(out)
}

/// Standard base64 (RFC 4648 §4) with mandatory `=` padding and no stray bits, as RFC 7143 §6.1
/// requires.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if s.is_empty() {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_hex_numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("262144"), Some(262_144));
        assert_eq!(parse_number("0x40000"), Some(0x40000));
        assert_eq!(parse_number("0XfF"), Some(255));
        assert_eq!(parse_number("00012"), Some(12));
    }

    #[test]
    fn malformed_numbers_are_none() {
        for bad in [
            "", "0x", "-1", "+5", "1 ", " 1", "12a", "0b AAAA", "0bAAAA", "1.5", "٣",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_beyond_u64_are_none() {
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_number("18446744073709551616"), None);
        assert_eq!(parse_number("0x1ffffffffffffffff"), None);
        assert_eq!(parse_number(&"9".repeat(1000)), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_in_range("512", 512, 16_777_215), Some(512));
        assert_eq!(parse_in_range("511", 512, 16_777_215), None);
        assert_eq!(parse_in_range("16777216", 512, 16_777_215), None);
    }

    #[test]
    fn booleans_are_case_sensitive() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("No"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool(""), None);
    }

    #[test]
    fn binary_values() {
        assert_eq!(parse_binary("0x0102"), Some(vec![1, 2]));
        assert_eq!(parse_binary("0x102"), Some(vec![1, 2]));
        assert_eq!(parse_binary("0bAQI="), Some(vec![1, 2]));
        assert_eq!(parse_binary("0bAQID"), Some(vec![1, 2, 3]));
        assert_eq!(parse_binary("0bAQ=="), Some(vec![1]));
        assert_eq!(parse_binary("258"), Some(vec![1, 2]));
        assert_eq!(parse_binary("0"), Some(vec![0]));
        for bad in [
            "0x", "0xg1", "0b", "0bAQI", "0bA===", "0b!!!!", "x", "0bAR==",
        ] {
            assert_eq!(parse_binary(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn large_binary_values_are_hex_or_base64_within_their_limit() {
        assert_eq!(parse_large_binary("0x0102", 2), Some(vec![1, 2]));
        assert_eq!(parse_large_binary("0B/w==", 1), Some(vec![0xff]));
        assert_eq!(parse_large_binary("0x102", 2), Some(vec![1, 2]));
        assert_eq!(parse_large_binary("258", 2), None, "decimal is not large");
        assert_eq!(
            parse_large_binary("0x010203", 2),
            None,
            "too long, not truncated"
        );
        assert_eq!(parse_large_binary("0bAQID", 2), None);
        let max = format!("0x{}", "ab".repeat(1024));
        assert_eq!(parse_large_binary(&max, 1024).map(|b| b.len()), Some(1024));
        let over = format!("0x{}", "ab".repeat(1025));
        assert_eq!(parse_large_binary(&over, 1024), None);
        let padded = format!("0x{}", "0".repeat(4000));
        assert_eq!(parse_large_binary(&padded, 1024), None);
    }

    #[test]
    fn hex_constants_use_two_digits_per_byte() {
        assert_eq!(hex_constant(&[0x00, 0x0f, 0xa5]), "0x000fa5");
        assert_eq!(
            parse_large_binary(&hex_constant(&[7; 20]), 20),
            Some(vec![7; 20])
        );
    }
}
