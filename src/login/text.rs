//! Text key=value pairs as they travel in Login and Text PDUs (RFC 7143 §6.1).
//!
//! Every pair is `key=value` followed by one NUL. Parsing checks syntax only (lengths, key
//! characters, UTF-8); what a value means is decided per key by the negotiation.

pub use super::pending::PendingText;

/// RFC 7143 §6.1: a key name (standard-label or X-/X# extension) is at most 63 bytes.
pub const MAX_KEY_LEN: usize = 63;

/// Cap on one encoded value. RFC 7143 §6.1 limits a simple-value to 255 bytes, but lists and
/// large-binary-values (e.g. CHAP challenges) are longer in their encoded form; each key applies
/// its own tighter limit, this one only bounds what a parser accepts at all.
pub const MAX_VALUE_LEN: usize = 8192;

/// RFC 7143 §6.1: endpoints must accept at least 8192 bytes of key=value data in one negotiation
/// sequence, and 64 KiB when long authentication items are in use. We refuse anything longer.
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Why a block of text data is not a well-formed list of key=value pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text of {len} bytes exceeds the limit of {MAX_TEXT_LEN}")]
    TooLong { len: usize },
    #[error("last key=value pair is not NUL-terminated")]
    Unterminated,
    #[error("pair at byte {offset} has no '='")]
    MissingEquals { offset: usize },
    #[error("pair at byte {offset} has an empty key")]
    EmptyKey { offset: usize },
    #[error("key of {len} bytes exceeds {MAX_KEY_LEN}")]
    KeyTooLong { len: usize },
    #[error("key at byte {offset} holds a character outside RFC 7143 §6.1")]
    BadKeyChar { offset: usize },
    #[error("value of key {key} is {len} bytes long (limit {MAX_VALUE_LEN})")]
    ValueTooLong { key: String, len: usize },
    #[error("pair at byte {offset} is not valid UTF-8")]
    NotUtf8 { offset: usize },
}

/// Parses NUL-terminated `key=value` pairs. Empty segments (stray NULs, e.g. padding) are skipped;
/// duplicate keys are returned as they came (the negotiation decides what a repeat means).
pub fn parse_pairs(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    if data.len() > MAX_TEXT_LEN {
        return Err(TextError::TooLong { len: data.len() });
    }
    if data.last().is_some_and(|&b| b != 0) {
        return Err(TextError::Unterminated);
    }
    let mut pairs = Vec::new();
    let mut offset = 0;
    for segment in data.split(|&b| b == 0) {
        if !segment.is_empty() {
            pairs.push(parse_pair(segment, offset)?);
        }
        offset += segment.len() + 1;
    }
    Ok(pairs)
}

fn parse_pair(segment: &[u8], offset: usize) -> Result<(String, String), TextError> {
    let eq = segment
        .iter()
        .position(|&b| b == b'=')
        .ok_or(TextError::MissingEquals { offset })?;
    let (key, value) = (&segment[..eq], &segment[eq + 1..]);
    check_key(key, offset)?;
    let key = String::from_utf8(key.to_vec()).map_err(|_| TextError::NotUtf8 { offset })?;
    if value.len() > MAX_VALUE_LEN {
        return Err(TextError::ValueTooLong {
            key,
            len: value.len(),
        });
    }
    let value = String::from_utf8(value.to_vec()).map_err(|_| TextError::NotUtf8 { offset })?;
    Ok((key, value))
}

/// RFC 7143 §6.1: standard-label characters (letters, digits, `.`, `-`, `+`, `@`, `_`) plus `#`
/// for `X#` public extensions. The leading capital is not enforced: RFC 7144's own
/// `iSCSIProtocolLevel` starts in lower case.
fn check_key(key: &[u8], offset: usize) -> Result<(), TextError> {
    if key.is_empty() {
        return Err(TextError::EmptyKey { offset });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(TextError::KeyTooLong { len: key.len() });
    }
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b".-+@_#".contains(b);
    if key.iter().all(allowed) {
        Ok(())
    } else {
        Err(TextError::BadKeyChar { offset })
    }
}

/// Encodes pairs as `key=value\0` each.
pub fn encode_pairs(pairs: &[(impl AsRef<str>, impl AsRef<str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        push_pair(&mut out, k.as_ref(), v.as_ref());
    }
    out
}

/// Appends one `key=value\0` pair.
pub fn push_pair(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nul_terminated_pairs() {
        let p = parse_pairs(b"InitiatorName=iqn.x\0SessionType=Normal\0").unwrap();
        assert_eq!(
            p,
            vec![
                ("InitiatorName".into(), "iqn.x".into()),
                ("SessionType".into(), "Normal".into())
            ]
        );
    }

    #[test]
    fn value_may_contain_equals_and_be_empty() {
        let p = parse_pairs(b"X-a=b=c\0SendTargets=\0").unwrap();
        assert_eq!(p[0], ("X-a".into(), "b=c".into()));
        assert_eq!(p[1], ("SendTargets".into(), String::new()));
    }

    #[test]
    fn empty_input_and_stray_nuls_give_no_pairs() {
        assert!(parse_pairs(b"").unwrap().is_empty());
        assert_eq!(parse_pairs(b"\0\0A=1\0\0\0").unwrap().len(), 1);
    }

    #[test]
    fn missing_terminator_is_refused() {
        assert_eq!(parse_pairs(b"A=1"), Err(TextError::Unterminated));
    }

    #[test]
    fn missing_equals_is_refused() {
        assert_eq!(
            parse_pairs(b"A=1\0Garbage\0"),
            Err(TextError::MissingEquals { offset: 4 })
        );
    }

    #[test]
    fn empty_key_is_refused() {
        assert_eq!(parse_pairs(b"=v\0"), Err(TextError::EmptyKey { offset: 0 }));
    }

    #[test]
    fn key_longer_than_63_bytes_is_refused() {
        let mut ok = vec![b'K'; 63];
        ok.extend_from_slice(b"=1\0");
        assert!(parse_pairs(&ok).is_ok());
        let mut bad = vec![b'K'; 64];
        bad.extend_from_slice(b"=1\0");
        assert_eq!(parse_pairs(&bad), Err(TextError::KeyTooLong { len: 64 }));
    }

    #[test]
    fn key_with_space_or_control_is_refused() {
        assert!(matches!(
            parse_pairs(b"Bad Key=1\0"),
            Err(TextError::BadKeyChar { .. })
        ));
        assert!(matches!(
            parse_pairs(b"Bad\x01=1\0"),
            Err(TextError::BadKeyChar { .. })
        ));
        assert!(parse_pairs(b"X#NodeArchitecture=a\0X-com.example.k=1\0").is_ok());
    }

    #[test]
    fn non_utf8_value_is_refused() {
        assert!(matches!(
            parse_pairs(b"InitiatorAlias=\xff\xfe\0"),
            Err(TextError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn huge_value_and_huge_text_are_refused() {
        let mut v = b"X-k=".to_vec();
        v.extend(std::iter::repeat_n(b'a', MAX_VALUE_LEN + 1));
        v.push(0);
        assert!(matches!(
            parse_pairs(&v),
            Err(TextError::ValueTooLong { .. })
        ));
        let big = vec![0u8; 1 << 20];
        assert_eq!(parse_pairs(&big), Err(TextError::TooLong { len: 1 << 20 }));
    }

    #[test]
    fn encode_round_trips() {
        let pairs = [("A", "1"), ("B", "")];
        let wire = encode_pairs(&pairs);
        assert_eq!(wire, b"A=1\0B=\0");
        let back = parse_pairs(&wire).unwrap();
        assert_eq!(
            back,
            vec![("A".into(), "1".into()), ("B".into(), "".into())]
        );
    }
}
