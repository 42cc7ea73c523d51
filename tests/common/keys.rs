//! Text keys (RFC 7143 §6.1): `key=value` pairs, each terminated by a NUL, as carried in Login and
//! Text PDUs.

/// Decoded keys, in the order they came.
pub type Pairs = Vec<(String, String)>;

/// Encodes pairs as `key=value\0...`.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref().as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_ref().as_bytes());
        out.push(0);
    }
    out
}

/// Decodes a complete (already reassembled) key list. Order and repeats are kept, because
/// SendTargets answers repeat `TargetAddress` once per portal.
pub fn decode(data: &[u8]) -> Pairs {
    data.split(|&b| b == 0)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let s = String::from_utf8_lossy(item);
            match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.to_string(), String::new()),
            }
        })
        .collect()
}

/// The first value of `key`, if present.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every value of `key`, in order.
pub fn get_all<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}
