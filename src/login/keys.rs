//! The catalog of text keys (RFC 7143 §12, §13): who may send each, and when.

/// Every key the target understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    AuthMethod,
    HeaderDigest,
    DataDigest,
    MaxConnections,
    SendTargets,
    TargetName,
    InitiatorName,
    TargetAlias,
    InitiatorAlias,
    TargetAddress,
    TargetPortalGroupTag,
    InitialR2T,
    ImmediateData,
    MaxRecvDataSegmentLength,
    MaxBurstLength,
    FirstBurstLength,
    DefaultTime2Wait,
    DefaultTime2Retain,
    MaxOutstandingR2T,
    DataPduInOrder,
    DataSequenceInOrder,
    ErrorRecoveryLevel,
    SessionType,
    TaskReporting,
    IscsiProtocolLevel,
    IfMarker,
    OfMarker,
    IfMarkInt,
    OfMarkInt,
}

/// When a key may be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Security negotiation stage only (RFC 7143 §12).
    Security,
    /// Declarative keys: any login stage (RFC 7143 §6.3: "Any-Stage").
    Declarative,
    /// Operational negotiation stage only: non-security, non-declarative keys.
    Operational,
    /// Full feature phase only (FFPO).
    FullFeature,
}

/// Who may send a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Initiator,
    Target,
    Both,
}

#[derive(Debug)]
pub struct Spec {
    pub key: Key,
    pub name: &'static str,
    pub usage: Usage,
    pub sender: Sender,
    /// "Irrelevant when: SessionType=Discovery".
    pub discovery_irrelevant: bool,
}

const fn spec(key: Key, name: &'static str, usage: Usage, sender: Sender, irr: bool) -> Spec {
    Spec {
        key,
        name,
        usage,
        sender,
        discovery_irrelevant: irr,
    }
}

use Sender::{Both, Initiator, Target};
use Usage::{Declarative, FullFeature, Operational, Security};

/// RFC 7143 §12.1 and §13.1-§13.25 (iSCSIProtocolLevel: RFC 7144 §2.1).
static SPECS: [Spec; 29] = [
    spec(Key::AuthMethod, "AuthMethod", Security, Both, false), // §12.1
    spec(Key::HeaderDigest, "HeaderDigest", Operational, Both, false), // §13.1
    spec(Key::DataDigest, "DataDigest", Operational, Both, false), // §13.1
    spec(
        Key::MaxConnections,
        "MaxConnections",
        Operational,
        Both,
        true,
    ), // §13.2
    spec(
        Key::SendTargets,
        "SendTargets",
        FullFeature,
        Initiator,
        false,
    ), // §13.3
    spec(Key::TargetName, "TargetName", Declarative, Both, false), // §13.4
    spec(
        Key::InitiatorName,
        "InitiatorName",
        Declarative,
        Initiator,
        false,
    ), // §13.5
    spec(Key::TargetAlias, "TargetAlias", Declarative, Target, false), // §13.6
    spec(
        Key::InitiatorAlias,
        "InitiatorAlias",
        Declarative,
        Initiator,
        false,
    ), // §13.7
    spec(
        Key::TargetAddress,
        "TargetAddress",
        Declarative,
        Target,
        false,
    ), // §13.8
    spec(
        Key::TargetPortalGroupTag,
        "TargetPortalGroupTag",
        Declarative,
        Target,
        false,
    ), // §13.9
    spec(Key::InitialR2T, "InitialR2T", Operational, Both, true), // §13.10
    spec(Key::ImmediateData, "ImmediateData", Operational, Both, true), // §13.11
    spec(
        Key::MaxRecvDataSegmentLength,
        "MaxRecvDataSegmentLength",
        Declarative,
        Both,
        false,
    ), // §13.12
    spec(
        Key::MaxBurstLength,
        "MaxBurstLength",
        Operational,
        Both,
        true,
    ), // §13.13
    spec(
        Key::FirstBurstLength,
        "FirstBurstLength",
        Operational,
        Both,
        true,
    ), // §13.14
    spec(
        Key::DefaultTime2Wait,
        "DefaultTime2Wait",
        Operational,
        Both,
        false,
    ), // §13.15
    spec(
        Key::DefaultTime2Retain,
        "DefaultTime2Retain",
        Operational,
        Both,
        false,
    ), // §13.16
    spec(
        Key::MaxOutstandingR2T,
        "MaxOutstandingR2T",
        Operational,
        Both,
        true,
    ), // §13.17
    spec(
        Key::DataPduInOrder,
        "DataPDUInOrder",
        Operational,
        Both,
        true,
    ), // §13.18
    spec(
        Key::DataSequenceInOrder,
        "DataSequenceInOrder",
        Operational,
        Both,
        true,
    ), // §13.19
    spec(
        Key::ErrorRecoveryLevel,
        "ErrorRecoveryLevel",
        Operational,
        Both,
        false,
    ), // §13.20
    spec(
        Key::SessionType,
        "SessionType",
        Declarative,
        Initiator,
        false,
    ), // §13.21
    spec(Key::TaskReporting, "TaskReporting", Operational, Both, true), // §13.23
    spec(
        Key::IscsiProtocolLevel,
        "iSCSIProtocolLevel",
        Operational,
        Both,
        false,
    ), // §13.24
    spec(Key::IfMarker, "IFMarker", Operational, Both, false),  // §13.25 (obsolete)
    spec(Key::OfMarker, "OFMarker", Operational, Both, false),  // §13.25 (obsolete)
    spec(Key::IfMarkInt, "IFMarkInt", Operational, Both, false), // §13.25 (obsolete)
    spec(Key::OfMarkInt, "OFMarkInt", Operational, Both, false), // §13.25 (obsolete)
];

impl Key {
    pub fn spec(self) -> &'static Spec {
        // The table is ordered like the enum; the fallback keeps this total regardless.
        SPECS
            .get(self as usize)
            .filter(|s| s.key == self)
            .or_else(|| SPECS.iter().find(|s| s.key == self))
            .unwrap_or(&SPECS[0])
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Keys and values are case-sensitive (RFC 7143 §6.1).
    pub fn lookup(name: &str) -> Option<Key> {
        SPECS.iter().find(|s| s.name == name).map(|s| s.key)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

/// Authentication-method-specific keys (RFC 7143 §12.1.x: CHAP_*, SRP_*, KRB_*, SPKM_*): their
/// meaning belongs to the selected authentication method.
pub fn is_auth_method_key(name: &str) -> bool {
    ["CHAP_", "SRP_", "KRB_", "SPKM_"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// A small set of keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySet(u64);

impl KeySet {
    pub fn insert(&mut self, k: Key) {
        self.0 |= k.bit();
    }
    pub fn remove(&mut self, k: Key) {
        self.0 &= !k.bit();
    }
    pub fn contains(&self, k: Key) -> bool {
        self.0 & k.bit() != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (i, s) in SPECS.iter().enumerate() {
            assert_eq!(s.key as usize, i, "{}", s.name);
            assert_eq!(Key::lookup(s.name), Some(s.key));
        }
    }

    #[test]
    fn lookup_is_case_sensitive() {
        assert_eq!(Key::lookup("MaxBurstLength"), Some(Key::MaxBurstLength));
        assert_eq!(Key::lookup("maxburstlength"), None);
        assert_eq!(
            Key::lookup("iSCSIProtocolLevel"),
            Some(Key::IscsiProtocolLevel)
        );
    }

    #[test]
    fn key_set() {
        let mut s = KeySet::default();
        assert!(s.is_empty());
        s.insert(Key::OfMarkInt);
        s.insert(Key::AuthMethod);
        assert!(s.contains(Key::OfMarkInt) && s.contains(Key::AuthMethod));
        assert!(!s.contains(Key::DataDigest));
        s.remove(Key::OfMarkInt);
        assert!(!s.contains(Key::OfMarkInt));
    }

    #[test]
    fn auth_method_keys() {
        assert!(is_auth_method_key("CHAP_A"));
        assert!(!is_auth_method_key("AuthMethod"));
    }
}
