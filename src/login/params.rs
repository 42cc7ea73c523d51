//! What the target offers and what a login negotiated, as typed values (RFC 7143 §13).

/// RFC 7143 §13.12: MaxRecvDataSegmentLength default. It also bounds every Login Response data
/// segment: the initiator's declaration only takes effect in full feature phase.
pub const DEFAULT_MRDSL: u32 = 8192;
/// RFC 7143 §13.12-§13.14: lower bound of the data-length keys.
pub const MIN_DATA_LENGTH: u32 = 512;
/// RFC 7143 §13.12-§13.14: upper bound of the data-length keys (2^24 - 1).
pub const MAX_DATA_LENGTH: u32 = (1 << 24) - 1;
/// RFC 7143 §13.13.
pub const DEFAULT_MAX_BURST_LENGTH: u32 = 262_144;
/// RFC 7143 §13.14.
pub const DEFAULT_FIRST_BURST_LENGTH: u32 = 65_536;
/// RFC 7143 §13.15.
pub const DEFAULT_TIME2WAIT: u16 = 2;
/// RFC 7143 §13.16.
pub const DEFAULT_TIME2RETAIN: u16 = 20;
/// RFC 7143 §13.15, §13.16: both times range over 0..=3600 seconds.
pub const MAX_TIME2: u16 = 3600;
/// RFC 7143 §13.17.
pub const DEFAULT_MAX_OUTSTANDING_R2T: u16 = 1;
/// RFC 7143 §13.20: ErrorRecoveryLevel ranges over 0..=2.
pub const MAX_ERROR_RECOVERY_LEVEL: u8 = 2;
/// RFC 7143 §13.24: the iSCSIProtocolLevel of RFC 7143 itself.
pub const ISCSI_PROTOCOL_LEVEL: u8 = 1;
/// RFC 7144 §2.1: iSCSIProtocolLevel ranges over 0..=31.
pub const MAX_ISCSI_PROTOCOL_LEVEL: u8 = 31;

/// The target's digest policy for HeaderDigest or DataDigest (RFC 7143 §13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestPolicy {
    /// Only `None`.
    Never,
    /// `CRC32C` or `None`, whichever the initiator lists first.
    Allow,
    /// Only `CRC32C`.
    Require,
}

impl DigestPolicy {
    /// Whether the target accepts this digest name (`None` / `CRC32C`).
    pub fn accepts(self, name: &str) -> bool {
        matches!(
            (self, name),
            (DigestPolicy::Never | DigestPolicy::Allow, "None")
                | (DigestPolicy::Allow | DigestPolicy::Require, "CRC32C")
        )
    }
}

/// RFC 7143 §13.21.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    Normal,
    Discovery,
}

impl SessionType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Normal" => Some(SessionType::Normal),
            "Discovery" => Some(SessionType::Discovery),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Normal => "Normal",
            SessionType::Discovery => "Discovery",
        }
    }
}

/// What the target offers / accepts (from the daemon's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOffer {
    /// Declared by the target: the most it accepts in one PDU.
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub max_outstanding_r2t: u16,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub header_digest: DigestPolicy,
    pub data_digest: DigestPolicy,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    /// 1 for now (no MC/S).
    pub max_connections: u16,
    /// 0 for now.
    pub error_recovery_level: u8,
}

impl Default for TargetOffer {
    fn default() -> Self {
        TargetOffer {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1 << 20,
            first_burst_length: 256 * 1024,
            max_outstanding_r2t: 8,
            initial_r2t: false,
            immediate_data: true,
            header_digest: DigestPolicy::Allow,
            data_digest: DigestPolicy::Allow,
            default_time2wait: DEFAULT_TIME2WAIT,
            default_time2retain: DEFAULT_TIME2RETAIN,
            max_connections: 1,
            error_recovery_level: 0,
        }
    }
}

impl TargetOffer {
    /// The offer with every value forced into its RFC range (and FirstBurstLength ≤ MaxBurstLength,
    /// RFC 7143 §13.14), so a careless configuration can never produce an illegal answer.
    pub fn clamped(&self) -> TargetOffer {
        let data_len = |v: u32| v.clamp(MIN_DATA_LENGTH, MAX_DATA_LENGTH);
        let max_burst = data_len(self.max_burst_length);
        TargetOffer {
            max_recv_data_segment_length: data_len(self.max_recv_data_segment_length),
            max_burst_length: max_burst,
            first_burst_length: data_len(self.first_burst_length).min(max_burst),
            max_outstanding_r2t: self.max_outstanding_r2t.max(1),
            default_time2wait: self.default_time2wait.min(MAX_TIME2),
            default_time2retain: self.default_time2retain.min(MAX_TIME2),
            max_connections: self.max_connections.max(1),
            error_recovery_level: self.error_recovery_level.min(MAX_ERROR_RECOVERY_LEVEL),
            ..self.clone()
        }
    }
}

/// Everything negotiated, as typed values (never strings after negotiation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    pub session_type: SessionType,
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    /// None for discovery.
    pub target_name: Option<String>,
    pub header_digest: bool,
    pub data_digest: bool,
    pub max_connections: u16,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub max_outstanding_r2t: u16,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u8,
    /// The initiator's MaxRecvDataSegmentLength: the most the target may send in one PDU.
    pub initiator_mrdsl: u32,
    /// What the target declared (the default 8192 if it never declared).
    pub target_mrdsl: u32,
    /// RFC 7143 §13.24 / RFC 7144 §2.1 (0 when never negotiated).
    pub iscsi_protocol_level: u8,
}

impl SessionParams {
    /// RFC 7143 §13 defaults for every key that is never negotiated.
    pub fn new(session_type: SessionType, initiator_name: String) -> Self {
        SessionParams {
            session_type,
            initiator_name,
            initiator_alias: None,
            target_name: None,
            header_digest: false,
            data_digest: false,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_burst_length: DEFAULT_MAX_BURST_LENGTH,
            first_burst_length: DEFAULT_FIRST_BURST_LENGTH,
            default_time2wait: DEFAULT_TIME2WAIT,
            default_time2retain: DEFAULT_TIME2RETAIN,
            max_outstanding_r2t: DEFAULT_MAX_OUTSTANDING_R2T,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            initiator_mrdsl: DEFAULT_MRDSL,
            target_mrdsl: DEFAULT_MRDSL,
            iscsi_protocol_level: 0,
        }
    }

    /// RFC 7143 §13.14: FirstBurstLength is irrelevant when InitialR2T=Yes and ImmediateData=No
    /// (no unsolicited data at all).
    pub fn first_burst_irrelevant(&self) -> bool {
        self.initial_r2t && !self.immediate_data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_rfc() {
        let p = SessionParams::new(SessionType::Normal, "iqn.i".into());
        assert!(p.initial_r2t && p.immediate_data);
        assert_eq!(p.max_burst_length, 262_144);
        assert_eq!(p.first_burst_length, 65_536);
        assert_eq!((p.default_time2wait, p.default_time2retain), (2, 20));
        assert_eq!(p.initiator_mrdsl, 8192);
        assert!(!p.header_digest && !p.data_digest);
    }

    #[test]
    fn clamped_offer_respects_ranges_and_first_burst_rule() {
        let o = TargetOffer {
            max_recv_data_segment_length: 1,
            max_burst_length: 4096,
            first_burst_length: 1 << 30,
            max_outstanding_r2t: 0,
            default_time2wait: 9999,
            max_connections: 0,
            error_recovery_level: 7,
            ..TargetOffer::default()
        }
        .clamped();
        assert_eq!(o.max_recv_data_segment_length, 512);
        assert_eq!(o.first_burst_length, 4096);
        assert_eq!(o.max_outstanding_r2t, 1);
        assert_eq!(o.default_time2wait, 3600);
        assert_eq!(o.max_connections, 1);
        assert_eq!(o.error_recovery_level, 2);
    }

    #[test]
    fn digest_policies() {
        assert!(DigestPolicy::Never.accepts("None"));
        assert!(!DigestPolicy::Never.accepts("CRC32C"));
        assert!(DigestPolicy::Allow.accepts("CRC32C") && DigestPolicy::Allow.accepts("None"));
        assert!(!DigestPolicy::Require.accepts("None"));
        assert!(!DigestPolicy::Allow.accepts("crc32c"));
    }
}
