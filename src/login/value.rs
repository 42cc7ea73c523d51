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
/// Hex with an odd digit count is read as if a leading 0 were present.
pub fn parse_binary(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return decode_hex(hex);
    }
    if let Some(b64) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        return decode_base64(b64);
    }
    let n = parse_radix(s, 10)?;
    let bytes = n.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    Some(bytes[first..].to_vec())
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

fn base64_digit(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Standard base64 (RFC 4648 §4) with mandatory `=` padding, as RFC 7143 §6.1 requires.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &b[..b.len() - pad];
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in body {
        acc = (acc << 6) | base64_digit(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
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
        for bad in ["0x", "0xg1", "0b", "0bAQI", "0bA===", "0b!!!!", "x"] {
            assert_eq!(parse_binary(bad), None, "{bad:?}");
        }
    }
}
