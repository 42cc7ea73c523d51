//! iSCSI TransportIDs (SPC-4 TransportID identifiers, iSCSI protocol): how PERSISTENT RESERVE
//! OUT names other initiator ports (SPEC_I_PT, REGISTER AND MOVE) and how READ FULL STATUS
//! reports registered ones.

use serde::{Deserialize, Serialize};

use super::InitiatorPort;
use crate::scsi::sense::Sense;

/// SPC-4 PROTOCOL IDENTIFIER for iSCSI.
const PROTOCOL_ISCSI: u8 = 0x5;
/// SPC-4 iSCSI TransportID FORMAT CODE: 00b names an iSCSI node (every initiator port with
/// that name), 01b an initiator port (name, ",i,0x", ISID).
const FORMAT_NAME: u8 = 0b00;
const FORMAT_PORT: u8 = 0b01;
/// SPC-4: the ADDITIONAL LENGTH of an iSCSI TransportID is at least 20 and a multiple of 4.
const MIN_ADDITIONAL_LENGTH: usize = 20;
/// SPC-4 iSCSI TransportID format 01b: SEPARATOR between the name and the ISID.
const SEPARATOR: &str = ",i,0x";
/// RFC 7143 §4.2.7.1: an iSCSI name is at most 223 bytes.
const MAX_NAME: usize = 223;

/// An initiator port (`isid` set), or every initiator port of an iSCSI name (`isid` none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransportId {
    /// Lower case (iSCSI names compare case-folded).
    pub name: String,
    #[serde(default, with = "hex_isid")]
    pub isid: Option<[u8; 6]>,
}

impl TransportId {
    pub fn of(port: &InitiatorPort) -> Self {
        Self {
            name: port.name.clone(),
            isid: Some(port.isid),
        }
    }

    pub fn covers(&self, port: &InitiatorPort) -> bool {
        self.name == port.name && self.isid.is_none_or(|i| i == port.isid)
    }

    pub fn overlaps(&self, other: &TransportId) -> bool {
        let isids = match (self.isid, other.isid) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        isids && self.name == other.name
    }

    /// The SPC-4 iSCSI TransportID: header, then the name (and ",i,0x" ISID), NUL terminated
    /// and NUL padded to a multiple of four, at least 20 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = self.name.clone().into_bytes();
        let format = match self.isid {
            Some(isid) => {
                text.extend_from_slice(SEPARATOR.as_bytes());
                text.extend_from_slice(hex(&isid).as_bytes());
                FORMAT_PORT
            }
            None => FORMAT_NAME,
        };
        text.push(0);
        let len = text.len().next_multiple_of(4).max(MIN_ADDITIONAL_LENGTH);
        text.resize(len, 0);
        // The name is at most MAX_NAME bytes when parsed, so this always fits 16 bits.
        let [hi, lo] = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        let mut id = vec![(format << 6) | PROTOCOL_ISCSI, 0, hi, lo];
        id.extend_from_slice(&text);
        id
    }

    /// The TransportIDs filling `data` exactly; `at` is where `data` starts in the parameter
    /// list (for the sense field pointer).
    pub(super) fn parse_list(data: &[u8], at: usize) -> Result<Vec<TransportId>, Sense> {
        let mut ids = Vec::new();
        let mut offset = 0;
        while offset < data.len() {
            let (id, len) = Self::parse(&data[offset..], at + offset)?;
            ids.push(id);
            offset += len;
        }
        Ok(ids)
    }

    /// One TransportID at the start of `data`, and its length.
    pub(super) fn parse(data: &[u8], at: usize) -> Result<(TransportId, usize), Sense> {
        let bad = |byte: usize, bit: Option<u8>| {
            let byte = u16::try_from(byte).unwrap_or(u16::MAX);
            Sense::invalid_field_in_param_list().at_param(byte, bit)
        };
        let Some(&[b0, _, hi, lo]) = data.get(..4) else {
            return Err(bad(at, None));
        };
        if b0 & 0x0F != PROTOCOL_ISCSI {
            return Err(bad(at, Some(3)));
        }
        if b0 & 0x30 != 0 {
            return Err(bad(at, Some(5)));
        }
        // Formats 10b and 11b are reserved for iSCSI.
        let format = b0 >> 6;
        if format != FORMAT_NAME && format != FORMAT_PORT {
            return Err(bad(at, Some(7)));
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < MIN_ADDITIONAL_LENGTH || len % 4 != 0 || 4 + len > data.len() {
            return Err(bad(at + 2, None));
        }
        let field = &data[4..4 + len];
        // Null terminated, and null padded after the terminator (SPC-4 4.4.2).
        let Some(nul) = field.iter().position(|&b| b == 0) else {
            return Err(bad(at + 4, None));
        };
        if let Some(junk) = field[nul..].iter().position(|&b| b != 0) {
            return Err(bad(at + 4 + nul + junk, None));
        }
        let text = std::str::from_utf8(&field[..nul]).map_err(|_| bad(at + 4, None))?;
        let id = if format == FORMAT_PORT {
            let (name, isid) = text.rsplit_once(SEPARATOR).ok_or(bad(at + 4, None))?;
            let isid = parse_isid(isid).ok_or(bad(at + 4 + name.len() + SEPARATOR.len(), None))?;
            TransportId {
                name: checked_name(name).ok_or(bad(at + 4, None))?,
                isid: Some(isid),
            }
        } else {
            TransportId {
                name: checked_name(text).ok_or(bad(at + 4, None))?,
                isid: None,
            }
        };
        Ok((id, 4 + len))
    }
}

/// A usable iSCSI name, case-folded: not empty, not too long, and free of the characters
/// (controls, ',' and spaces) no iSCSI name contains (RFC 3722 stringprep output).
fn checked_name(name: &str) -> Option<String> {
    let plausible = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.chars().any(|c| c.is_control() || c == ',' || c == ' ');
    plausible.then(|| name.to_lowercase())
}

/// Lower-case hex digits of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly twelve hex digits (either case) as an ISID.
pub(super) fn parse_isid(text: &str) -> Option<[u8; 6]> {
    if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut isid = [0u8; 6];
    for (i, byte) in isid.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(isid)
}

/// An optional ISID as 12 hex digits, or absent.
mod hex_isid {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(isid: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
        match isid {
            Some(isid) => s.serialize_some(&super::hex(isid)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse_isid(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom("bad ISID")),
        }
    }
}
