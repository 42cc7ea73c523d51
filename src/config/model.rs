//! The validated configuration model: what the daemon, the CLI and the tests work with.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::parse::{format_size, parse_backing};

/// IANA-registered TCP port of iSCSI targets (service name "iscsi-target").
pub const DEFAULT_PORT: u16 = 3260;
/// Largest iSCSI name in bytes (RFC 7143 §4.2.7.1).
pub const MAX_ISCSI_NAME_LEN: usize = 223;
/// Largest TargetAlias in bytes (RFC 7143 §13.6: text values up to 255 bytes).
pub const MAX_ALIAS_LEN: usize = 255;
/// Largest unit serial number in characters.
pub const MAX_SERIAL_LEN: usize = 32;
/// Largest LUN id (14-bit flat space addressing, SAM-5 §4.7.7).
pub const MAX_LUN_ID: u16 = 16383;
/// Largest CPU id accepted in a core list.
pub const MAX_CORE_ID: usize = 4095;
/// Largest core count.
pub const MAX_CORES: usize = MAX_CORE_ID + 1;
/// Target name used by [`Config::demo`].
pub const DEMO_TARGET: &str = "iqn.2026-11.io.ringtgt:demo";

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listening addresses (IPv4 and IPv6); at least one, no duplicates.
    pub portals: Vec<SocketAddr>,
    /// Exported targets; at least one, unique names.
    pub targets: Vec<TargetConfig>,
    /// Protocol tuning.
    pub iscsi: IscsiTuning,
    /// Reactor cores.
    pub cores: CoreSpec,
    /// Target portal group tag.
    pub portal_group_tag: u16,
}

/// One iSCSI target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// iSCSI name (RFC 7143 §4.2.7).
    pub name: String,
    /// TargetAlias.
    pub alias: Option<String>,
    /// Logical units; at least one, unique ids.
    pub luns: Vec<LunConfig>,
    /// Initiators allowed to log in; empty = any.
    pub allowed_initiators: Vec<String>,
}

/// One logical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunConfig {
    /// LUN number, 0..=16383.
    pub id: u16,
    /// Where the blocks live.
    pub backing: Backing,
    /// 512 or 4096.
    pub block_size: u32,
    /// Export write-protected.
    pub read_only: bool,
    /// Unit serial number; the daemon derives one if `None`.
    pub serial: Option<String>,
    /// Report a volatile write cache.
    pub write_cache: bool,
}

impl LunConfig {
    /// A LUN with default settings (512-byte blocks, writable, write cache on, derived serial).
    pub fn new(id: u16, backing: Backing) -> Self {
        LunConfig {
            id,
            backing,
            block_size: 512,
            read_only: false,
            serial: None,
            write_cache: true,
        }
    }
}

/// Backing store of a LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A regular file or a block device.
    Path(PathBuf),
    /// Discards writes, reads zeros.
    Null { size: u64 },
    /// Kept in memory; lost on exit.
    Ram { size: u64 },
}

impl fmt::Display for Backing {
    /// Formats in the syntax [`parse_backing`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::Null { size } => write!(f, "null:{}", format_size(*size)),
            Backing::Ram { size } => write!(f, "ram:{}", format_size(*size)),
            Backing::Path(p) => {
                let s = p.to_string_lossy();
                match parse_backing(&s) {
                    Ok(Backing::Path(q)) if q == *p => f.write_str(&s),
                    _ => write!(f, "file:{s}"),
                }
            }
        }
    }
}

/// iSCSI protocol tuning; ranges from RFC 7143 §13.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiTuning {
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub max_outstanding_r2t: u16,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub header_digest: DigestPolicy,
    pub data_digest: DigestPolicy,
    pub queue_depth: u32,
    pub nop_in_interval_secs: u32,
    pub nop_in_timeout_secs: u32,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub login_timeout_secs: u32,
    pub max_transfer_bytes: u32,
}

impl Default for IscsiTuning {
    fn default() -> Self {
        IscsiTuning {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1_048_576,
            first_burst_length: 262_144,
            max_outstanding_r2t: 8,
            initial_r2t: false,
            immediate_data: true,
            header_digest: DigestPolicy::Allow,
            data_digest: DigestPolicy::Allow,
            queue_depth: 128,
            nop_in_interval_secs: 5,
            nop_in_timeout_secs: 15,
            default_time2wait: 2,
            default_time2retain: 20,
            login_timeout_secs: 15,
            max_transfer_bytes: 8 << 20,
        }
    }
}

/// What the target offers and accepts for HeaderDigest / DataDigest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum DigestPolicy {
    /// Offer and accept None only.
    Never,
    /// Accept CRC32C or None (CRC32C preferred).
    Allow,
    /// Accept CRC32C only; a peer that refuses it cannot log in.
    Require,
}

impl DigestPolicy {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestPolicy::Never => "never",
            DigestPolicy::Allow => "allow",
            DigestPolicy::Require => "require",
        }
    }
}

impl fmt::Display for DigestPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DigestPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(DigestPolicy::Never),
            "allow" => Ok(DigestPolicy::Allow),
            "require" => Ok(DigestPolicy::Require),
            _ => Err(format!(
                "must be \"never\", \"allow\" or \"require\", got {s:?}"
            )),
        }
    }
}

/// Which cores run reactors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSpec {
    /// Use this many cores (the daemon picks which).
    Count(usize),
    /// Pin one reactor to each of these CPU ids, in this order.
    List(Vec<usize>),
}

impl Default for CoreSpec {
    /// One reactor per core available to this process.
    fn default() -> Self {
        CoreSpec::Count(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl fmt::Display for CoreSpec {
    /// Formats in the syntax [`parse_cores`] reads back (`"4"`, `"0-3,8"`, `"5-5"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreSpec::Count(n) => write!(f, "{n}"),
            CoreSpec::List(ids) => {
                if let [only] = ids.as_slice() {
                    return write!(f, "{only}-{only}");
                }
                let mut first = true;
                let mut i = 0;
                while i < ids.len() {
                    let start = ids[i];
                    let mut end = start;
                    while i + 1 < ids.len() && ids[i + 1] == end + 1 {
                        i += 1;
                        end = ids[i];
                    }
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    if end == start {
                        write!(f, "{start}")?;
                    } else {
                        write!(f, "{start}-{end}")?;
                    }
                    i += 1;
                }
                Ok(())
            }
        }
    }
}

impl Config {
    /// The `--demo` configuration: one target `iqn.2026-11.io.ringtgt:demo` on 127.0.0.1:3260
    /// with LUN 0 backed by `image_path` (512-byte blocks); everything else default.
    pub fn demo(image_path: PathBuf) -> Config {
        Config {
            portals: vec![default_portal()],
            targets: vec![TargetConfig {
                name: DEMO_TARGET.to_string(),
                alias: Some("ringtgt demo".to_string()),
                luns: vec![LunConfig::new(0, Backing::Path(image_path))],
                allowed_initiators: Vec::new(),
            }],
            iscsi: IscsiTuning::default(),
            cores: CoreSpec::default(),
            portal_group_tag: 1,
        }
    }
}

/// The portal used when neither `--portal` nor the config file names one: 127.0.0.1:3260.
pub fn default_portal() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}
