//! Daemon configuration: the TOML file model, its defaults and every validation rule.
//!
//! # Configuration file reference
//!
//! `ringtgt serve --config FILE` reads one TOML file. Every key is optional unless marked
//! *required*; an unknown key is an error that names the key and its line and column.
//!
//! ```toml
//! portals = ["127.0.0.1:3260", "[::1]:3260"]
//! cores = "0-1"
//! portal_group_tag = 1
//!
//! [iscsi]
//! max_recv_data_segment_length = 262144
//! max_burst_length = 1048576
//! first_burst_length = 262144
//! max_outstanding_r2t = 8
//! initial_r2t = false
//! immediate_data = true
//! header_digest = "allow"
//! data_digest = "allow"
//! queue_depth = 128
//! nop_in_interval_secs = 5
//! nop_in_timeout_secs = 15
//! default_time2wait = 2
//! default_time2retain = 20
//! login_timeout_secs = 15
//! max_transfer_bytes = 8388608
//!
//! [[target]]
//! name = "iqn.2026-11.io.ringtgt:disk1"
//! alias = "disk one"
//! allowed_initiators = ["iqn.1993-08.org.debian:01:abcdef"]
//!
//! [[target.lun]]
//! id = 0
//! path = "/dev/nvme0n1"
//! block_size = 4096
//! read_only = false
//! serial = "NVME0001"
//! write_cache = true
//!
//! [[target.lun]]
//! path = "ram:512MiB"
//! ```
//!
//! ## Top level
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `portals` | `["127.0.0.1:3260"]` | Addresses to listen on: `"IPv4:port"`, `"[IPv6]:port"`, or an address without port (port 3260). At least one, no duplicates, port not 0. |
//! | `cores` | all available cores | Integer N = use N cores; string = a core count (`"4"`) or a list of CPU ids to pin to (`"0-3,8"`, `"0,2"`, `"5-5"` for CPU 5 alone). Ids 0..=4095, no duplicates, ranges not reversed. |
//! | `portal_group_tag` | `1` | Target portal group tag reported to initiators, 0..=65535. |
//!
//! ## `[iscsi]` — protocol tuning (ranges from RFC 7143 §13)
//!
//! | key | default | allowed | meaning |
//! |---|---|---|---|
//! | `max_recv_data_segment_length` | `262144` | 512..=16777215 | Largest data segment the target accepts in one PDU. |
//! | `max_burst_length` | `1048576` | 512..=16777215 | Largest solicited+unsolicited burst of one sequence. |
//! | `first_burst_length` | `262144` | 512..=16777215, ≤ `max_burst_length` | Largest unsolicited data per command. |
//! | `max_outstanding_r2t` | `8` | 1..=65535 | R2Ts in flight per task. |
//! | `initial_r2t` | `false` | bool | Target's offer for InitialR2T (`false` allows unsolicited Data-Out). |
//! | `immediate_data` | `true` | bool | Target's offer for ImmediateData. |
//! | `header_digest` | `"allow"` | `never`, `allow`, `require` | `never`: offer None only; `allow`: accept CRC32C or None; `require`: CRC32C only. |
//! | `data_digest` | `"allow"` | `never`, `allow`, `require` | As `header_digest`, for data segments. |
//! | `queue_depth` | `128` | 1..=4096 | Commands an initiator may have outstanding per session (MaxCmdSN − ExpCmdSN + 1). |
//! | `nop_in_interval_secs` | `5` | ≥ 0 | Seconds of idleness before the target sends a NOP-In ping; 0 turns keepalive off. |
//! | `nop_in_timeout_secs` | `15` | ≥ 1 | Seconds to wait for the NOP-Out answer before dropping the connection. |
//! | `default_time2wait` | `2` | 0..=3600 | DefaultTime2Wait offered, in seconds. |
//! | `default_time2retain` | `20` | 0..=3600 | DefaultTime2Retain offered, in seconds. |
//! | `login_timeout_secs` | `15` | ≥ 1 | Seconds a connection may spend in the login phase. |
//! | `max_transfer_bytes` | `8388608` (8 MiB) | ≥ 65536, multiple of 4096 | Largest single SCSI transfer (reported in the Block Limits VPD page). |
//!
//! ## `[[target]]` — one table per target (at least one)
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `name` | *required* | iSCSI name (RFC 7143 §4.2.7): `iqn.YYYY-MM.reverse.domain[:anything]` in lower case, `eui.` + 16 hex digits, or `naa.` + 16 or 32 hex digits; at most 223 bytes. Unique (ignoring case). |
//! | `alias` | none | TargetAlias shown to initiators; 1..=255 bytes, no control characters. |
//! | `allowed_initiators` | `[]` | Initiator names allowed to log in; empty = any initiator. Each a valid iSCSI name, no duplicates. |
//!
//! ## `[[target.lun]]` — one table per logical unit (at least one per target)
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `id` | position in the list (0, 1, …) | LUN number, 0..=16383, unique within the target. |
//! | `path` | *required* | Backing store: a file or block-device path; `"null:SIZE"` (discards writes, reads zeros); `"ram:SIZE"` (in memory, lost on exit). A path whose first part looks like `word:` must be written `"file:PATH"` (or start with `./`). The same path may back two LUNs only if both are read-only. |
//! | `block_size` | `512` | Logical block size, `512` or `4096`. `null`/`ram` sizes must be a multiple of it. |
//! | `read_only` | `false` | Export write-protected. |
//! | `serial` | derived by the daemon | Unit serial number (VPD page 0x80): 1..=32 printable ASCII characters. |
//! | `write_cache` | `true` | Report a volatile write cache (WCE); when `false` every write is made durable before it completes. |
//!
//! `SIZE` is a positive integer with an optional unit: none or `B` = bytes; `K`, `M`, `G`, `T`
//! and `KiB`, `MiB`, `GiB`, `TiB` = powers of 1024; `KB`, `MB`, `GB`, `TB` = powers of 1000
//! (units are case-insensitive). Examples: `4096`, `512MiB`, `10G` (= 10 GiB), `1TB`.
//!
//! ## Errors
//!
//! Every error is one line. A TOML syntax or type error names the file, line and column
//! (`/etc/ringtgt.toml:12:5: unknown field ...`); a rule violation names the field path
//! (`target[0].lun[1].block_size: must be 512 or 4096, got 1000`).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

/// A configuration problem. `Display` is always one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read config file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// TOML syntax error, wrong value type or unknown key.
    #[error("{}", render_parse(file.as_deref(), *line, *column, message))]
    Parse {
        file: Option<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A value breaks a rule; `field` is its path, e.g. `target[0].lun[1].block_size`.
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// A command-line flag is wrong; `flag` names it, with its value if it has one.
    #[error("{flag}: {problem}")]
    Flag { flag: String, problem: String },
    /// Two command-line flags that exclude each other were both given.
    #[error("{flag} cannot be combined with {other}")]
    Conflict {
        flag: &'static str,
        other: &'static str,
    },
    /// The configuration could not be written as TOML.
    #[error("cannot write config as TOML: {0}")]
    Serialize(String),
}

impl ConfigError {
    fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Field path of an [`ConfigError::Invalid`] error, or the flag of a [`ConfigError::Flag`].
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Flag { flag, .. } => Some(flag),
            _ => None,
        }
    }
}

fn render_parse(
    file: Option<&Path>,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> String {
    let origin = match file {
        Some(p) => p.display().to_string(),
        None => "config".to_string(),
    };
    match (line, column) {
        (Some(l), Some(c)) => format!("{origin}:{l}:{c}: {message}"),
        (Some(l), None) => format!("{origin}:{l}: {message}"),
        _ => format!("{origin}: {message}"),
    }
}

/// Joins the lines of a message into one, collapsing runs of whitespace.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Value parsers (shared by the TOML loader and the CLI)
// ---------------------------------------------------------------------------------------------

/// Parses a byte size: a positive integer with an optional unit. `K`/`M`/`G`/`T` and
/// `KiB`/`MiB`/`GiB`/`TiB` are powers of 1024 (so `10G` = 10 GiB), `KB`/`MB`/`GB`/`TB` are powers
/// of 1000, `B` or nothing is bytes. Units are case-insensitive; the size must be > 0.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let expected = || format!("expected a size like 4096, 512MiB or 1GiB, got {s:?}");
    if digits.is_empty() {
        return Err(expected());
    }
    let unit = unit.trim();
    if unit.starts_with('.') {
        return Err(format!(
            "fractional sizes are not supported, got {s:?} (write 1536MiB rather than 1.5GiB)"
        ));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {s:?} (use K, M, G, T, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            ))
        }
    };
    let too_large = || format!("size {s:?} is too large");
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    let bytes = n.checked_mul(multiplier).ok_or_else(too_large)?;
    if bytes == 0 {
        return Err(format!("size must be greater than 0, got {s:?}"));
    }
    Ok(bytes)
}

/// Formats a byte size in the largest binary unit that divides it exactly (`1GiB`, `1536MiB`,
/// `4097`); [`parse_size`] reads it back.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, name) in UNITS {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{name}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Parses a core specification. Digits only = a count (`"4"`); anything with `,` or `-` = a list
/// of CPU ids (`"0-3,8"` → 0,1,2,3,8; `"0,2"`; `"5-5"` = CPU 5 alone). Rejects empty input and
/// elements, reversed ranges, duplicates, a count of 0 and ids above 4095.
pub fn parse_cores(s: &str) -> Result<CoreSpec, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("core specification is empty (use a count like 4 or a list like 0-3,8)".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: usize = t
            .parse()
            .map_err(|_| format!("core count {t:?} is too large"))?;
        if n == 0 {
            return Err("core count must be at least 1, got 0".into());
        }
        if n > MAX_CORES {
            return Err(format!("core count must be at most {MAX_CORES}, got {n}"));
        }
        return Ok(CoreSpec::Count(n));
    }
    let mut seen = vec![false; MAX_CORE_ID + 1];
    let mut ids = Vec::new();
    for part in t.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty element in core list {t:?}"));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse_core_id(a, t)?, parse_core_id(b, t)?),
            None => {
                let id = parse_core_id(part, t)?;
                (id, id)
            }
        };
        if lo > hi {
            return Err(format!("reversed range {part:?} in core list {t:?}"));
        }
        for (id, slot) in (lo..=hi).zip(&mut seen[lo..=hi]) {
            if std::mem::replace(slot, true) {
                return Err(format!("CPU {id} appears twice in core list {t:?}"));
            }
            ids.push(id);
        }
    }
    Ok(CoreSpec::List(ids))
}

fn parse_core_id(s: &str, list: &str) -> Result<usize, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a CPU id in core list {list:?} (use e.g. 0-3,8)"
        ));
    }
    match s.parse::<usize>() {
        Ok(id) if id <= MAX_CORE_ID => Ok(id),
        _ => Err(format!(
            "CPU id {s} in core list {list:?} is above {MAX_CORE_ID}"
        )),
    }
}

/// Parses a backing store: `"null:SIZE"`, `"ram:SIZE"`, `"file:PATH"` or a plain path.
/// A string whose part before the first `:` is a bare word (letters, digits, `_`, `-`; no `/`)
/// names a store kind, so `"foo:12"` is an error; write `"file:foo:12"` or `"./foo:12"` instead.
pub fn parse_backing(s: &str) -> Result<Backing, String> {
    if s.is_empty() {
        return Err("backing store is empty (use a path, null:SIZE or ram:SIZE)".into());
    }
    if let Some((kind, rest)) = s.split_once(':') {
        let is_word = !kind.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if is_word {
            return match kind {
                "null" => Ok(Backing::Null {
                    size: parse_size(rest)?,
                }),
                "ram" => Ok(Backing::Ram {
                    size: parse_size(rest)?,
                }),
                "file" if rest.is_empty() => Err("file: needs a path after it".into()),
                "file" => Ok(Backing::Path(PathBuf::from(rest))),
                _ => Err(format!(
                    "unknown store kind {kind:?} (use null:SIZE, ram:SIZE, file:PATH or a path)"
                )),
            };
        }
    }
    Ok(Backing::Path(PathBuf::from(s)))
}

/// Parses a portal: `"1.2.3.4:3260"`, `"[::1]:3260"`, or an address without port (port 3260:
/// `"1.2.3.4"`, `"::1"`, `"[::1]"`). Host names are not accepted.
pub fn parse_portal(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(t);
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, DEFAULT_PORT)),
        Err(_) => Err(format!(
            "expected an IP address with optional port like 10.0.0.1:3260 or [fd00::1]:3260, got {s:?}"
        )),
    }
}

/// Checks an iSCSI name (RFC 7143 §4.2.7): `iqn.YYYY-MM.reverse.domain[:anything]` (lower
/// case), `eui.` + 16 hex digits, or `naa.` + 16 or 32 hex digits; at most 223 bytes.
pub fn validate_iscsi_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("iSCSI name must not be empty".into());
    }
    if name.len() > MAX_ISCSI_NAME_LEN {
        return Err(format!(
            "iSCSI name is {} bytes long, the limit is {MAX_ISCSI_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        validate_iqn(name, rest)
    } else if let Some(hex) = name.strip_prefix("eui.") {
        validate_hex_name(name, hex, &[16], "eui.")
    } else if let Some(hex) = name.strip_prefix("naa.") {
        validate_hex_name(name, hex, &[16, 32], "naa.")
    } else {
        Err(format!(
            "{name:?} is not an iSCSI name: it must start with \"iqn.\", \"eui.\" or \"naa.\" (e.g. iqn.2026-11.io.ringtgt:disk1)"
        ))
    }
}

fn validate_iqn(name: &str, rest: &str) -> Result<(), String> {
    let shape = || {
        format!("{name:?} is not an iqn name: expected iqn.YYYY-MM.reverse.domain[:identifier], e.g. iqn.2026-11.io.ringtgt:disk1")
    };
    if let Some(c) = name.chars().find(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "{name:?} contains upper-case {c:?}; iqn names must be lower-case"
        ));
    }
    if let Some(c) = name.chars().find(|&c| !iqn_char_ok(c)) {
        return Err(format!(
            "{name:?} contains {c:?}; iqn names may only use a-z, 0-9, '-', '.', ':' and non-ASCII letters"
        ));
    }
    let b = rest.as_bytes();
    let date_ok = b.len() > 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'.';
    if !date_ok {
        return Err(shape());
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    if !(1..=12).contains(&month) {
        return Err(format!("{name:?} has month {month:02}; expected 01..12"));
    }
    let after_date = &rest[8..];
    let authority = after_date.split(':').next().unwrap_or("");
    let authority_ok = authority.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    });
    if !authority_ok {
        return Err(format!(
            "{name:?} has naming authority {authority:?}; expected a reversed domain name like io.ringtgt"
        ));
    }
    Ok(())
}

fn iqn_char_ok(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || matches!(c, '-' | '.' | ':')
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
}

fn validate_hex_name(name: &str, hex: &str, lens: &[usize], prefix: &str) -> Result<(), String> {
    if lens.contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    let want = match lens {
        [one] => format!("{one}"),
        _ => "16 or 32".to_string(),
    };
    Err(format!(
        "{name:?} is not a valid {prefix} name: expected {prefix} followed by {want} hex digits"
    ))
}

// ---------------------------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------------------------

/// An inclusive integer range with the error message it produces.
#[derive(Clone, Copy)]
struct IntRange {
    lo: i64,
    hi: i64,
}

const U32_MAX: i64 = u32::MAX as i64;
// RFC 7143 §13.12 (MaxRecvDataSegmentLength), §13.13 (MaxBurstLength), §13.14 (FirstBurstLength).
const SEGMENT_RANGE: IntRange = IntRange {
    lo: 512,
    hi: 16_777_215,
};
// RFC 7143 §13.17 MaxOutstandingR2T.
const R2T_RANGE: IntRange = IntRange { lo: 1, hi: 65_535 };
const QUEUE_DEPTH_RANGE: IntRange = IntRange { lo: 1, hi: 4096 };
const NOP_INTERVAL_RANGE: IntRange = IntRange { lo: 0, hi: U32_MAX };
const AT_LEAST_ONE_SEC: IntRange = IntRange { lo: 1, hi: U32_MAX };
// RFC 7143 §13.15 DefaultTime2Wait, §13.16 DefaultTime2Retain.
const TIME2_RANGE: IntRange = IntRange { lo: 0, hi: 3600 };
const MAX_TRANSFER_RANGE: IntRange = IntRange {
    lo: 65_536,
    hi: U32_MAX,
};
const LUN_ID_RANGE: IntRange = IntRange {
    lo: 0,
    hi: MAX_LUN_ID as i64,
};
const TPGT_RANGE: IntRange = IntRange { lo: 0, hi: 65_535 };

impl IntRange {
    fn error(self, field: &str, got: i64) -> ConfigError {
        let problem = if self.hi >= U32_MAX {
            format!("must be at least {}, got {got}", self.lo)
        } else {
            format!("must be between {} and {}, got {got}", self.lo, self.hi)
        };
        ConfigError::invalid(field, problem)
    }

    fn check(self, field: &str, v: i64) -> Result<(), ConfigError> {
        if (self.lo..=self.hi).contains(&v) {
            Ok(())
        } else {
            Err(self.error(field, v))
        }
    }

    /// Converts a TOML integer into the field's type, checking the range on the way.
    fn convert<T: TryFrom<i64>>(self, field: &str, v: i64) -> Result<T, ConfigError> {
        self.check(field, v)?;
        T::try_from(v).map_err(|_| self.error(field, v))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Self::parse_toml(s, None)
    }

    /// Reads, parses and validates a TOML file. Read and syntax errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse_toml(&text, Some(path))
    }

    fn parse_toml(s: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(s).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(s, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            ConfigError::Parse {
                file: file.map(Path::to_path_buf),
                line,
                column,
                message: one_line(e.message()).replace("expected i64", "expected an integer"),
            }
        })?;
        let config = raw.into_config()?;
        config.validate()?;
        Ok(config)
    }

    /// Writes the configuration as TOML, every key explicit; [`Config::from_toml_str`] reads it
    /// back to an equal `Config` (paths that are not UTF-8 are written lossily).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(&RawConfig::from_config(self))
            .map_err(|e| ConfigError::Serialize(one_line(&e.to_string())))
    }

    /// Checks every rule, including those between fields. Returns the first violation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_portals()?;
        validate_cores(&self.cores)?;
        self.iscsi.validate()?;
        self.validate_targets()
    }

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

    fn validate_portals(&self) -> Result<(), ConfigError> {
        if self.portals.is_empty() {
            return Err(ConfigError::invalid(
                "portals",
                "at least one portal is required",
            ));
        }
        for (i, p) in self.portals.iter().enumerate() {
            let field = format!("portals[{i}]");
            if p.port() == 0 {
                return Err(ConfigError::invalid(
                    field,
                    format!("port must not be 0 ({p})"),
                ));
            }
            if self.portals[..i].contains(p) {
                return Err(ConfigError::invalid(field, format!("{p} is listed twice")));
            }
        }
        Ok(())
    }

    fn validate_targets(&self) -> Result<(), ConfigError> {
        if self.targets.is_empty() {
            return Err(ConfigError::invalid(
                "target",
                "at least one target is required",
            ));
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        // Path -> (target, lun, read_only) of its first use.
        let mut paths: HashMap<&Path, (usize, usize, bool)> = HashMap::new();
        for (t, target) in self.targets.iter().enumerate() {
            target.validate(t)?;
            if let Some(first) = names.insert(target.name.to_ascii_lowercase(), t) {
                return Err(ConfigError::invalid(
                    format!("target[{t}].name"),
                    format!(
                        "duplicate target name {:?} (also target[{first}])",
                        target.name
                    ),
                ));
            }
            for (l, lun) in target.luns.iter().enumerate() {
                let Backing::Path(p) = &lun.backing else {
                    continue;
                };
                match paths.get(p.as_path()) {
                    Some(&(ft, fl, ro)) if !(ro && lun.read_only) => {
                        return Err(ConfigError::invalid(
                            format!("target[{t}].lun[{l}].path"),
                            format!(
                                "{} is already used by target[{ft}].lun[{fl}] (sharing a path is only allowed when both LUNs are read-only)",
                                p.display()
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        paths.insert(p, (t, l, lun.read_only));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The portal used when neither `--portal` nor the config file names one: 127.0.0.1:3260.
pub fn default_portal() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}

fn validate_cores(cores: &CoreSpec) -> Result<(), ConfigError> {
    match cores {
        CoreSpec::Count(n) if *n == 0 || *n > MAX_CORES => Err(ConfigError::invalid(
            "cores",
            format!("core count must be between 1 and {MAX_CORES}, got {n}"),
        )),
        CoreSpec::Count(_) => Ok(()),
        CoreSpec::List(ids) => {
            if ids.is_empty() {
                return Err(ConfigError::invalid("cores", "core list must not be empty"));
            }
            for (i, id) in ids.iter().enumerate() {
                if *id > MAX_CORE_ID {
                    return Err(ConfigError::invalid(
                        "cores",
                        format!("CPU id {id} is above {MAX_CORE_ID}"),
                    ));
                }
                if ids[..i].contains(id) {
                    return Err(ConfigError::invalid(
                        "cores",
                        format!("CPU {id} appears twice in the core list"),
                    ));
                }
            }
            Ok(())
        }
    }
}

impl IscsiTuning {
    /// Checks every range and the FirstBurstLength ≤ MaxBurstLength rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&str, i64, IntRange); 11] = [
            (
                "iscsi.max_recv_data_segment_length",
                self.max_recv_data_segment_length.into(),
                SEGMENT_RANGE,
            ),
            (
                "iscsi.max_burst_length",
                self.max_burst_length.into(),
                SEGMENT_RANGE,
            ),
            (
                "iscsi.first_burst_length",
                self.first_burst_length.into(),
                SEGMENT_RANGE,
            ),
            (
                "iscsi.max_outstanding_r2t",
                self.max_outstanding_r2t.into(),
                R2T_RANGE,
            ),
            (
                "iscsi.queue_depth",
                self.queue_depth.into(),
                QUEUE_DEPTH_RANGE,
            ),
            (
                "iscsi.nop_in_interval_secs",
                self.nop_in_interval_secs.into(),
                NOP_INTERVAL_RANGE,
            ),
            (
                "iscsi.nop_in_timeout_secs",
                self.nop_in_timeout_secs.into(),
                AT_LEAST_ONE_SEC,
            ),
            (
                "iscsi.default_time2wait",
                self.default_time2wait.into(),
                TIME2_RANGE,
            ),
            (
                "iscsi.default_time2retain",
                self.default_time2retain.into(),
                TIME2_RANGE,
            ),
            (
                "iscsi.login_timeout_secs",
                self.login_timeout_secs.into(),
                AT_LEAST_ONE_SEC,
            ),
            (
                "iscsi.max_transfer_bytes",
                self.max_transfer_bytes.into(),
                MAX_TRANSFER_RANGE,
            ),
        ];
        for (field, value, range) in checks {
            range.check(field, value)?;
        }
        if self.first_burst_length > self.max_burst_length {
            return Err(ConfigError::invalid(
                "iscsi.first_burst_length",
                format!(
                    "must not exceed max_burst_length ({}), got {}",
                    self.max_burst_length, self.first_burst_length
                ),
            ));
        }
        if !self.max_transfer_bytes.is_multiple_of(4096) {
            return Err(ConfigError::invalid(
                "iscsi.max_transfer_bytes",
                format!(
                    "must be a multiple of 4096, got {}",
                    self.max_transfer_bytes
                ),
            ));
        }
        Ok(())
    }
}

impl TargetConfig {
    fn validate(&self, t: usize) -> Result<(), ConfigError> {
        validate_iscsi_name(&self.name)
            .map_err(|e| ConfigError::invalid(format!("target[{t}].name"), e))?;
        if let Some(alias) = &self.alias {
            validate_alias(alias)
                .map_err(|e| ConfigError::invalid(format!("target[{t}].alias"), e))?;
        }
        for (i, init) in self.allowed_initiators.iter().enumerate() {
            let field = format!("target[{t}].allowed_initiators[{i}]");
            validate_iscsi_name(init).map_err(|e| ConfigError::invalid(&field, e))?;
            if let Some(j) = self.allowed_initiators[..i]
                .iter()
                .position(|o| o.eq_ignore_ascii_case(init))
            {
                return Err(ConfigError::invalid(
                    field,
                    format!("duplicate of allowed_initiators[{j}] ({init:?})"),
                ));
            }
        }
        if self.luns.is_empty() {
            return Err(ConfigError::invalid(
                format!("target[{t}].lun"),
                "at least one LUN is required",
            ));
        }
        for (l, lun) in self.luns.iter().enumerate() {
            lun.validate(&format!("target[{t}].lun[{l}]"))?;
            if let Some(first) = self.luns[..l].iter().position(|o| o.id == lun.id) {
                return Err(ConfigError::invalid(
                    format!("target[{t}].lun[{l}].id"),
                    format!(
                        "duplicate LUN id {} (also target[{t}].lun[{first}])",
                        lun.id
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn validate_alias(alias: &str) -> Result<(), String> {
    if alias.is_empty() {
        return Err("must not be empty (omit the key for no alias)".into());
    }
    if alias.len() > MAX_ALIAS_LEN {
        return Err(format!(
            "is {} bytes long, the limit is {MAX_ALIAS_LEN}",
            alias.len()
        ));
    }
    if alias.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

impl LunConfig {
    /// Checks this LUN; `prefix` is its field path, e.g. `target[0].lun[1]`.
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        LUN_ID_RANGE.check(&format!("{prefix}.id"), self.id.into())?;
        if self.block_size != 512 && self.block_size != 4096 {
            return Err(ConfigError::invalid(
                format!("{prefix}.block_size"),
                format!("must be 512 or 4096, got {}", self.block_size),
            ));
        }
        if let Some(serial) = &self.serial {
            validate_serial(serial)
                .map_err(|e| ConfigError::invalid(format!("{prefix}.serial"), e))?;
        }
        let path_field = || format!("{prefix}.path");
        match &self.backing {
            Backing::Path(p) if p.as_os_str().is_empty() => {
                Err(ConfigError::invalid(path_field(), "path must not be empty"))
            }
            Backing::Path(_) => Ok(()),
            Backing::Null { size } | Backing::Ram { size } => {
                if *size == 0 {
                    Err(ConfigError::invalid(
                        path_field(),
                        "size must be greater than 0",
                    ))
                } else if !size.is_multiple_of(u64::from(self.block_size)) {
                    Err(ConfigError::invalid(
                        path_field(),
                        format!(
                            "size {size} is not a multiple of block_size {}",
                            self.block_size
                        ),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn validate_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() {
        return Err("must not be empty (omit the key to let the daemon derive one)".into());
    }
    if serial.len() > MAX_SERIAL_LEN {
        return Err(format!(
            "must be at most {MAX_SERIAL_LEN} characters, got {}",
            serial.len()
        ));
    }
    if let Some(c) = serial.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!("must be printable ASCII, got {c:?} in {serial:?}"));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `pos` in `s`.
fn line_col(s: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(s.len());
    let before = s.get(..pos).unwrap_or(s);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

// ---------------------------------------------------------------------------------------------
// File format (serde)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    portals: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cores: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    portal_group_tag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iscsi: Option<RawIscsi>,
    #[serde(default, rename = "target")]
    targets: Vec<RawTarget>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawIscsi {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_recv_data_segment_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_burst_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_burst_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_outstanding_r2t: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_r2t: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    immediate_data: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_depth: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nop_in_interval_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nop_in_timeout_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_time2wait: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_time2retain: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_timeout_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_transfer_bytes: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    #[serde(default)]
    allowed_initiators: Vec<String>,
    #[serde(default, rename = "lun")]
    luns: Vec<RawLun>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLun {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    write_cache: Option<bool>,
}

impl RawConfig {
    fn into_config(self) -> Result<Config, ConfigError> {
        let portals = match self.portals {
            None => vec![default_portal()],
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    parse_portal(s).map_err(|e| ConfigError::invalid(format!("portals[{i}]"), e))
                })
                .collect::<Result<_, _>>()?,
        };
        let cores = match self.cores {
            None => CoreSpec::default(),
            Some(toml::Value::Integer(n)) => match usize::try_from(n) {
                Ok(n) if (1..=MAX_CORES).contains(&n) => CoreSpec::Count(n),
                _ => {
                    return Err(ConfigError::invalid(
                        "cores",
                        format!("core count must be between 1 and {MAX_CORES}, got {n}"),
                    ))
                }
            },
            Some(toml::Value::String(s)) => {
                parse_cores(&s).map_err(|e| ConfigError::invalid("cores", e))?
            }
            Some(other) => {
                return Err(ConfigError::invalid(
                    "cores",
                    format!(
                        "must be an integer or a string like \"0-3,8\", got a {}",
                        other.type_str()
                    ),
                ))
            }
        };
        let portal_group_tag = match self.portal_group_tag {
            None => 1,
            Some(v) => TPGT_RANGE.convert("portal_group_tag", v)?,
        };
        let iscsi = self.iscsi.unwrap_or_default().into_tuning()?;
        let targets = self
            .targets
            .into_iter()
            .enumerate()
            .map(|(t, raw)| raw.into_target(t))
            .collect::<Result<_, _>>()?;
        Ok(Config {
            portals,
            targets,
            iscsi,
            cores,
            portal_group_tag,
        })
    }

    fn from_config(c: &Config) -> RawConfig {
        let cores = match &c.cores {
            CoreSpec::Count(n) => match i64::try_from(*n) {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(n.to_string()),
            },
            list => toml::Value::String(list.to_string()),
        };
        RawConfig {
            portals: Some(c.portals.iter().map(ToString::to_string).collect()),
            cores: Some(cores),
            portal_group_tag: Some(c.portal_group_tag.into()),
            iscsi: Some(RawIscsi::from_tuning(&c.iscsi)),
            targets: c.targets.iter().map(RawTarget::from_target).collect(),
        }
    }
}

/// Sets `$dst` from an optional raw integer, converting with the field's range.
macro_rules! set_int {
    ($raw:expr, $dst:expr, $field:literal, $range:expr) => {
        if let Some(v) = $raw {
            $dst = $range.convert(concat!("iscsi.", $field), v)?;
        }
    };
}

impl RawIscsi {
    fn into_tuning(self) -> Result<IscsiTuning, ConfigError> {
        let mut t = IscsiTuning::default();
        set_int!(
            self.max_recv_data_segment_length,
            t.max_recv_data_segment_length,
            "max_recv_data_segment_length",
            SEGMENT_RANGE
        );
        set_int!(
            self.max_burst_length,
            t.max_burst_length,
            "max_burst_length",
            SEGMENT_RANGE
        );
        set_int!(
            self.first_burst_length,
            t.first_burst_length,
            "first_burst_length",
            SEGMENT_RANGE
        );
        set_int!(
            self.max_outstanding_r2t,
            t.max_outstanding_r2t,
            "max_outstanding_r2t",
            R2T_RANGE
        );
        set_int!(
            self.queue_depth,
            t.queue_depth,
            "queue_depth",
            QUEUE_DEPTH_RANGE
        );
        set_int!(
            self.nop_in_interval_secs,
            t.nop_in_interval_secs,
            "nop_in_interval_secs",
            NOP_INTERVAL_RANGE
        );
        set_int!(
            self.nop_in_timeout_secs,
            t.nop_in_timeout_secs,
            "nop_in_timeout_secs",
            AT_LEAST_ONE_SEC
        );
        set_int!(
            self.default_time2wait,
            t.default_time2wait,
            "default_time2wait",
            TIME2_RANGE
        );
        set_int!(
            self.default_time2retain,
            t.default_time2retain,
            "default_time2retain",
            TIME2_RANGE
        );
        set_int!(
            self.login_timeout_secs,
            t.login_timeout_secs,
            "login_timeout_secs",
            AT_LEAST_ONE_SEC
        );
        set_int!(
            self.max_transfer_bytes,
            t.max_transfer_bytes,
            "max_transfer_bytes",
            MAX_TRANSFER_RANGE
        );
        if let Some(v) = self.initial_r2t {
            t.initial_r2t = v;
        }
        if let Some(v) = self.immediate_data {
            t.immediate_data = v;
        }
        if let Some(s) = self.header_digest {
            t.header_digest = s
                .parse()
                .map_err(|e: String| ConfigError::invalid("iscsi.header_digest", e))?;
        }
        if let Some(s) = self.data_digest {
            t.data_digest = s
                .parse()
                .map_err(|e: String| ConfigError::invalid("iscsi.data_digest", e))?;
        }
        Ok(t)
    }

    fn from_tuning(t: &IscsiTuning) -> RawIscsi {
        RawIscsi {
            max_recv_data_segment_length: Some(t.max_recv_data_segment_length.into()),
            max_burst_length: Some(t.max_burst_length.into()),
            first_burst_length: Some(t.first_burst_length.into()),
            max_outstanding_r2t: Some(t.max_outstanding_r2t.into()),
            initial_r2t: Some(t.initial_r2t),
            immediate_data: Some(t.immediate_data),
            header_digest: Some(t.header_digest.to_string()),
            data_digest: Some(t.data_digest.to_string()),
            queue_depth: Some(t.queue_depth.into()),
            nop_in_interval_secs: Some(t.nop_in_interval_secs.into()),
            nop_in_timeout_secs: Some(t.nop_in_timeout_secs.into()),
            default_time2wait: Some(t.default_time2wait.into()),
            default_time2retain: Some(t.default_time2retain.into()),
            login_timeout_secs: Some(t.login_timeout_secs.into()),
            max_transfer_bytes: Some(t.max_transfer_bytes.into()),
        }
    }
}

impl RawTarget {
    fn into_target(self, t: usize) -> Result<TargetConfig, ConfigError> {
        let luns = self
            .luns
            .into_iter()
            .enumerate()
            .map(|(l, raw)| raw.into_lun(&format!("target[{t}].lun[{l}]"), l))
            .collect::<Result<_, _>>()?;
        Ok(TargetConfig {
            name: self.name,
            alias: self.alias,
            luns,
            allowed_initiators: self.allowed_initiators,
        })
    }

    fn from_target(t: &TargetConfig) -> RawTarget {
        RawTarget {
            name: t.name.clone(),
            alias: t.alias.clone(),
            allowed_initiators: t.allowed_initiators.clone(),
            luns: t.luns.iter().map(RawLun::from_lun).collect(),
        }
    }
}

impl RawLun {
    fn into_lun(self, prefix: &str, position: usize) -> Result<LunConfig, ConfigError> {
        let id = match self.id {
            Some(v) => LUN_ID_RANGE.convert(&format!("{prefix}.id"), v)?,
            None => LUN_ID_RANGE.convert(
                &format!("{prefix}.id"),
                i64::try_from(position).unwrap_or(i64::MAX),
            )?,
        };
        let backing = parse_backing(&self.path)
            .map_err(|e| ConfigError::invalid(format!("{prefix}.path"), e))?;
        let block_size = match self.block_size {
            None => 512,
            Some(512) => 512,
            Some(4096) => 4096,
            Some(v) => {
                return Err(ConfigError::invalid(
                    format!("{prefix}.block_size"),
                    format!("must be 512 or 4096, got {v}"),
                ))
            }
        };
        Ok(LunConfig {
            id,
            backing,
            block_size,
            read_only: self.read_only.unwrap_or(false),
            serial: self.serial,
            write_cache: self.write_cache.unwrap_or(true),
        })
    }

    fn from_lun(l: &LunConfig) -> RawLun {
        RawLun {
            id: Some(l.id.into()),
            path: l.backing.to_string(),
            block_size: Some(l.block_size.into()),
            read_only: Some(l.read_only),
            serial: l.serial.clone(),
            write_cache: Some(l.write_cache),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
portals = ["127.0.0.1:3260", "[::1]:3261", "10.1.2.3"]
cores = "0-1"
portal_group_tag = 7

[iscsi]
max_recv_data_segment_length = 65536
max_burst_length = 2097152
first_burst_length = 131072
max_outstanding_r2t = 4
initial_r2t = true
immediate_data = false
header_digest = "require"
data_digest = "never"
queue_depth = 256
nop_in_interval_secs = 0
nop_in_timeout_secs = 30
default_time2wait = 0
default_time2retain = 60
login_timeout_secs = 10
max_transfer_bytes = 1048576

[[target]]
name = "iqn.2026-11.io.ringtgt:disk1"
alias = "disk one"
allowed_initiators = ["iqn.1993-08.org.debian:01:abcdef", "eui.02004567A425678D"]

[[target.lun]]
id = 3
path = "/dev/nvme0n1"
block_size = 4096
read_only = true
serial = "NVME0001"
write_cache = false

[[target.lun]]
path = "ram:512MiB"

[[target]]
name = "naa.600140512345678901234567890abcde"

[[target.lun]]
path = "null:10G"
"#;

    /// A valid configuration to break one rule at a time.
    fn base() -> Config {
        Config::from_toml_str(FULL).expect("FULL is valid")
    }

    fn err_of(c: &Config) -> String {
        match c.validate() {
            Ok(()) => panic!("expected a validation error for {c:#?}"),
            Err(e) => e.to_string(),
        }
    }

    fn toml_err(s: &str) -> String {
        match Config::from_toml_str(s) {
            Ok(c) => panic!("expected an error, got {c:#?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_one_line(msg: &str) {
        assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
    }

    #[test]
    fn full_example_parses_into_the_model() {
        let c = base();
        assert_eq!(c.portals.len(), 3);
        assert_eq!(c.portals[1], "[::1]:3261".parse().unwrap());
        assert_eq!(c.portals[2], "10.1.2.3:3260".parse().unwrap());
        assert_eq!(c.cores, CoreSpec::List(vec![0, 1]));
        assert_eq!(c.portal_group_tag, 7);
        assert_eq!(c.iscsi.max_recv_data_segment_length, 65536);
        assert_eq!(c.iscsi.max_burst_length, 2_097_152);
        assert_eq!(c.iscsi.first_burst_length, 131_072);
        assert_eq!(c.iscsi.max_outstanding_r2t, 4);
        assert!(c.iscsi.initial_r2t);
        assert!(!c.iscsi.immediate_data);
        assert_eq!(c.iscsi.header_digest, DigestPolicy::Require);
        assert_eq!(c.iscsi.data_digest, DigestPolicy::Never);
        assert_eq!(c.iscsi.queue_depth, 256);
        assert_eq!(c.iscsi.nop_in_interval_secs, 0);
        assert_eq!(c.iscsi.nop_in_timeout_secs, 30);
        assert_eq!(c.iscsi.default_time2wait, 0);
        assert_eq!(c.iscsi.default_time2retain, 60);
        assert_eq!(c.iscsi.login_timeout_secs, 10);
        assert_eq!(c.iscsi.max_transfer_bytes, 1 << 20);
        let t = &c.targets[0];
        assert_eq!(t.name, "iqn.2026-11.io.ringtgt:disk1");
        assert_eq!(t.alias.as_deref(), Some("disk one"));
        assert_eq!(t.allowed_initiators.len(), 2);
        assert_eq!(
            t.luns[0],
            LunConfig {
                id: 3,
                backing: Backing::Path("/dev/nvme0n1".into()),
                block_size: 4096,
                read_only: true,
                serial: Some("NVME0001".into()),
                write_cache: false,
            }
        );
        // id defaults to the position in the list; other keys to their defaults.
        assert_eq!(
            t.luns[1],
            LunConfig::new(1, Backing::Ram { size: 512 << 20 })
        );
        assert_eq!(c.targets[1].alias, None);
        assert_eq!(
            c.targets[1].luns[0].backing,
            Backing::Null { size: 10 << 30 }
        );
    }

    #[test]
    fn full_example_round_trips_through_toml() {
        let c = base();
        let text = c.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn demo_round_trips_and_has_the_documented_shape() {
        let c = Config::demo("/tmp/x.img".into());
        c.validate().unwrap();
        assert_eq!(c.portals, vec!["127.0.0.1:3260".parse().unwrap()]);
        assert_eq!(c.targets[0].name, "iqn.2026-11.io.ringtgt:demo");
        assert_eq!(c.targets[0].alias.as_deref(), Some("ringtgt demo"));
        assert_eq!(c.targets[0].luns[0].block_size, 512);
        assert_eq!(
            c.targets[0].luns[0].backing,
            Backing::Path("/tmp/x.img".into())
        );
        let text = c.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), c);
    }

    #[test]
    fn round_trip_keeps_awkward_paths_and_single_core_lists() {
        let mut c = base();
        c.cores = CoreSpec::List(vec![5]);
        c.targets[0].luns[0].backing = Backing::Path("null:odd".into());
        c.targets[0].luns[1].backing = Backing::Path("file:x".into());
        c.targets[1].luns[0].backing = Backing::Ram { size: 4096 * 3 };
        let text = c.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn reference_example_in_module_doc_is_valid() {
        let src = include_str!("config.rs");
        let doc: Vec<&str> = src
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.strip_prefix("//! ").unwrap_or("").trim_end_matches("//!"))
            .collect();
        let start = doc.iter().position(|l| *l == "```toml").unwrap() + 1;
        let len = doc[start..].iter().position(|l| *l == "```").unwrap();
        let example = doc[start..start + len].join("\n");
        let c = Config::from_toml_str(&example).unwrap();
        assert_eq!(
            c.iscsi,
            IscsiTuning::default(),
            "doc example lists the defaults"
        );
        assert_eq!(c.targets[0].luns[1].id, 1);
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::from_toml_str(
            "[[target]]\nname = \"iqn.2026-11.io.ringtgt:a\"\n[[target.lun]]\npath = \"/x\"\n",
        )
        .unwrap();
        assert_eq!(c.portals, vec![default_portal()]);
        assert_eq!(c.cores, CoreSpec::default());
        assert_eq!(c.portal_group_tag, 1);
        assert_eq!(c.iscsi, IscsiTuning::default());
        assert_eq!(
            c.targets[0].luns,
            vec![LunConfig::new(0, Backing::Path("/x".into()))]
        );
        assert!(c.targets[0].allowed_initiators.is_empty());
    }

    #[test]
    fn defaults_match_the_documentation() {
        let t = IscsiTuning::default();
        assert_eq!(t.max_recv_data_segment_length, 262_144);
        assert_eq!(t.max_burst_length, 1_048_576);
        assert_eq!(t.first_burst_length, 262_144);
        assert_eq!(t.max_outstanding_r2t, 8);
        assert!(!t.initial_r2t);
        assert!(t.immediate_data);
        assert_eq!(t.header_digest, DigestPolicy::Allow);
        assert_eq!(t.data_digest, DigestPolicy::Allow);
        assert_eq!(t.queue_depth, 128);
        assert_eq!(t.nop_in_interval_secs, 5);
        assert_eq!(t.nop_in_timeout_secs, 15);
        assert_eq!(t.default_time2wait, 2);
        assert_eq!(t.default_time2retain, 20);
        assert_eq!(t.login_timeout_secs, 15);
        assert_eq!(t.max_transfer_bytes, 8 * 1024 * 1024);
        assert!(matches!(CoreSpec::default(), CoreSpec::Count(n) if n >= 1));
    }

    #[test]
    fn cores_accepts_integer_and_string() {
        let with = |v: &str| {
            Config::from_toml_str(&FULL.replace("cores = \"0-1\"", &format!("cores = {v}")))
                .map(|c| c.cores)
        };
        assert_eq!(with("4").unwrap(), CoreSpec::Count(4));
        assert_eq!(with("\"3\"").unwrap(), CoreSpec::Count(3));
        assert_eq!(
            with("\"0-3,8\"").unwrap(),
            CoreSpec::List(vec![0, 1, 2, 3, 8])
        );
        for bad in ["0", "-2", "\"\"", "\"3-1\"", "1.5", "[1]"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.starts_with("cores: "), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_name_and_position() {
        let cases = [
            ("portal = []\n", "portal", 1),
            ("[iscsi]\nqueue_dept = 4\n", "queue_dept", 2),
            (
                "[[target]]\nname = \"iqn.2026-11.io.x:a\"\naliass = \"x\"\n",
                "aliass",
                3,
            ),
            (
                "[[target]]\nname = \"iqn.2026-11.io.x:a\"\n[[target.lun]]\npath = \"/x\"\nblocksize = 4096\n",
                "blocksize",
                5,
            ),
        ];
        for (text, key, line) in cases {
            let e = toml_err(text);
            assert_one_line(&e);
            assert!(e.contains(&format!("`{key}`")), "{e}");
            assert!(e.starts_with(&format!("config:{line}:")), "{e}");
        }
    }

    #[test]
    fn syntax_and_type_errors_are_one_line_with_position() {
        let e = toml_err("portals = [\"127.0.0.1:3260\"\n[iscsi]\n");
        assert_one_line(&e);
        assert!(e.starts_with("config:"), "{e}");
        let e = toml_err("[iscsi]\nqueue_depth = \"many\"\n");
        assert_one_line(&e);
        assert!(e.starts_with("config:2:15:"), "{e}");
        let e = toml_err("[[target]]\nalias = \"no name\"\n");
        assert!(e.contains("name"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let e = Config::load(&missing).unwrap_err().to_string();
        assert!(e.starts_with(&missing.display().to_string()), "{e}");
        assert_one_line(&e);

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "\n\nbogus = 1\n").unwrap();
        let e = Config::load(&bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:1: ", bad.display())), "{e}");

        let good = dir.path().join("good.toml");
        std::fs::write(&good, FULL).unwrap();
        assert_eq!(Config::load(&good).unwrap(), base());
    }

    #[test]
    fn out_of_type_integers_name_the_field() {
        let cases = [
            (
                "[iscsi]\nmax_outstanding_r2t = 70000\n",
                "iscsi.max_outstanding_r2t: must be between 1 and 65535, got 70000",
            ),
            (
                "[iscsi]\nqueue_depth = -1\n",
                "iscsi.queue_depth: must be between 1 and 4096, got -1",
            ),
            (
                "[iscsi]\nlogin_timeout_secs = 5000000000\n",
                "iscsi.login_timeout_secs: must be at least 1, got 5000000000",
            ),
            (
                "[iscsi]\ndefault_time2wait = 3601\n",
                "iscsi.default_time2wait: must be between 0 and 3600, got 3601",
            ),
            (
                "[iscsi]\nheader_digest = \"crc32c\"\n",
                "iscsi.header_digest: must be \"never\", \"allow\" or \"require\", got \"crc32c\"",
            ),
            (
                "[iscsi]\ndata_digest = \"Allow\"\n",
                "iscsi.data_digest: must be",
            ),
            (
                "portal_group_tag = 65536\n",
                "portal_group_tag: must be between 0 and 65535, got 65536",
            ),
            (
                "portals = [\"localhost:3260\"]\n",
                "portals[0]: expected an IP address",
            ),
        ];
        for (text, want) in cases {
            let e = toml_err(&format!(
                "{text}{}",
                &FULL[FULL.find("[[target]]").unwrap()..]
            ));
            assert!(e.starts_with(want), "want {want:?}, got {e:?}");
        }
        let lun = |kv: &str| {
            toml_err(&format!(
                "[[target]]\nname = \"iqn.2026-11.io.x:a\"\n[[target.lun]]\npath = \"/x\"\n[[target.lun]]\npath = \"/y\"\n{kv}\n"
            ))
        };
        assert_eq!(
            lun("id = 16384"),
            "target[0].lun[1].id: must be between 0 and 16383, got 16384"
        );
        assert_eq!(
            lun("block_size = 1000"),
            "target[0].lun[1].block_size: must be 512 or 4096, got 1000"
        );
        let e = toml_err(
            "[[target]]\nname = \"iqn.2026-11.io.x:a\"\n[[target.lun]]\npath = \"foo:12\"\n",
        );
        assert!(
            e.starts_with("target[0].lun[0].path: unknown store kind \"foo\""),
            "{e}"
        );
    }

    #[test]
    fn every_rule_names_its_field() {
        type Breaker = fn(&mut Config);
        let cases: Vec<(Breaker, &str)> = vec![
            (|c| c.portals.clear(), "portals: at least one"),
            (|c| c.portals[1] = c.portals[0], "portals[1]: 127.0.0.1:3260 is listed twice"),
            (|c| c.portals[0].set_port(0), "portals[0]: port must not be 0"),
            (|c| c.cores = CoreSpec::Count(0), "cores: core count must be between 1"),
            (|c| c.cores = CoreSpec::List(vec![]), "cores: core list must not be empty"),
            (|c| c.cores = CoreSpec::List(vec![1, 2, 1]), "cores: CPU 1 appears twice"),
            (|c| c.cores = CoreSpec::List(vec![5000]), "cores: CPU id 5000 is above 4095"),
            (|c| c.iscsi.max_recv_data_segment_length = 511, "iscsi.max_recv_data_segment_length: must be between 512 and 16777215, got 511"),
            (|c| c.iscsi.max_burst_length = 16_777_216, "iscsi.max_burst_length: must be between 512 and 16777215"),
            (|c| c.iscsi.first_burst_length = 100, "iscsi.first_burst_length: must be between 512"),
            (|c| c.iscsi.max_outstanding_r2t = 0, "iscsi.max_outstanding_r2t: must be between 1 and 65535, got 0"),
            (|c| c.iscsi.queue_depth = 4097, "iscsi.queue_depth: must be between 1 and 4096, got 4097"),
            (|c| c.iscsi.nop_in_timeout_secs = 0, "iscsi.nop_in_timeout_secs: must be at least 1, got 0"),
            (|c| c.iscsi.default_time2wait = 3601, "iscsi.default_time2wait: must be between 0 and 3600"),
            (|c| c.iscsi.default_time2retain = 9999, "iscsi.default_time2retain: must be between 0 and 3600"),
            (|c| c.iscsi.login_timeout_secs = 0, "iscsi.login_timeout_secs: must be at least 1"),
            (|c| c.iscsi.max_transfer_bytes = 32768, "iscsi.max_transfer_bytes: must be at least 65536, got 32768"),
            (|c| c.iscsi.max_transfer_bytes = 65536 + 512, "iscsi.max_transfer_bytes: must be a multiple of 4096"),
            (
                |c| {
                    c.iscsi.max_burst_length = 65536;
                    c.iscsi.first_burst_length = 65537;
                },
                "iscsi.first_burst_length: must not exceed max_burst_length (65536), got 65537",
            ),
            (|c| c.targets.clear(), "target: at least one target is required"),
            (|c| c.targets[1].name = "iqn.2026-11.IO.x".into(), "target[1].name: \"iqn.2026-11.IO.x\" contains upper-case"),
            (|c| c.targets[1].name = "iqn.2026-13.io.x".into(), "target[1].name: \"iqn.2026-13.io.x\" has month 13"),
            (|c| c.targets[1].name = "iqn.2026-11.io..x:a".into(), "target[1].name: \"iqn.2026-11.io..x:a\" has naming authority"),
            (|c| c.targets[1].name = "iqn.2026-11:x".into(), "target[1].name: \"iqn.2026-11:x\" is not an iqn name"),
            (|c| c.targets[1].name = "iqn.2026-11.io.x:a b".into(), "target[1].name: \"iqn.2026-11.io.x:a b\" contains ' '"),
            (|c| c.targets[1].name = "eui.1234".into(), "target[1].name: \"eui.1234\" is not a valid eui. name: expected eui. followed by 16 hex digits"),
            (|c| c.targets[1].name = "naa.12345678901234567".into(), "target[1].name: \"naa.12345678901234567\" is not a valid naa. name: expected naa. followed by 16 or 32 hex digits"),
            (|c| c.targets[1].name = "disk1".into(), "target[1].name: \"disk1\" is not an iSCSI name"),
            (|c| c.targets[1].name = String::new(), "target[1].name: iSCSI name must not be empty"),
            (|c| c.targets[1].name = format!("iqn.2026-11.io.x:{}", "a".repeat(210)), "target[1].name: iSCSI name is 227 bytes long, the limit is 223"),
            (|c| c.targets[1].name = "IQN.2026-11.IO.RINGTGT:DISK1".into(), "target[1].name: \"IQN.2026-11.IO.RINGTGT:DISK1\" is not an iSCSI name"),
            (|c| c.targets[1].name = c.targets[0].name.clone(), "target[1].name: duplicate target name \"iqn.2026-11.io.ringtgt:disk1\" (also target[0])"),
            (|c| c.targets[0].alias = Some(String::new()), "target[0].alias: must not be empty"),
            (|c| c.targets[0].alias = Some("a\nb".into()), "target[0].alias: must not contain control characters"),
            (|c| c.targets[0].alias = Some("x".repeat(256)), "target[0].alias: is 256 bytes long, the limit is 255"),
            (|c| c.targets[0].allowed_initiators[1] = "bogus".into(), "target[0].allowed_initiators[1]: \"bogus\" is not an iSCSI name"),
            (|c| c.targets[0].allowed_initiators[1] = c.targets[0].allowed_initiators[0].clone(), "target[0].allowed_initiators[1]: duplicate of allowed_initiators[0]"),
            (|c| c.targets[1].luns.clear(), "target[1].lun: at least one LUN is required"),
            (|c| c.targets[0].luns[1].id = 3, "target[0].lun[1].id: duplicate LUN id 3 (also target[0].lun[0])"),
            (|c| c.targets[0].luns[1].id = 16384, "target[0].lun[1].id: must be between 0 and 16383, got 16384"),
            (|c| c.targets[0].luns[1].block_size = 1000, "target[0].lun[1].block_size: must be 512 or 4096, got 1000"),
            (|c| c.targets[0].luns[1].serial = Some(String::new()), "target[0].lun[1].serial: must not be empty"),
            (|c| c.targets[0].luns[1].serial = Some("x".repeat(33)), "target[0].lun[1].serial: must be at most 32 characters, got 33"),
            (|c| c.targets[0].luns[1].serial = Some("caf\u{e9}".into()), "target[0].lun[1].serial: must be printable ASCII"),
            (|c| c.targets[0].luns[1].serial = Some("a\tb".into()), "target[0].lun[1].serial: must be printable ASCII"),
            (|c| c.targets[0].luns[1].backing = Backing::Path(PathBuf::new()), "target[0].lun[1].path: path must not be empty"),
            (|c| c.targets[0].luns[1].backing = Backing::Ram { size: 0 }, "target[0].lun[1].path: size must be greater than 0"),
            (|c| c.targets[1].luns[0].backing = Backing::Null { size: 1000 }, "target[1].lun[0].path: size 1000 is not a multiple of block_size 512"),
            (
                |c| {
                    c.targets[0].luns[1].block_size = 4096;
                    c.targets[0].luns[1].backing = Backing::Ram { size: 4096 + 512 };
                },
                "target[0].lun[1].path: size 4608 is not a multiple of block_size 4096",
            ),
            (|c| c.targets[1].luns[0].backing = Backing::Path("/dev/nvme0n1".into()), "target[1].lun[0].path: /dev/nvme0n1 is already used by target[0].lun[0]"),
        ];
        let ok = base();
        ok.validate().unwrap();
        for (i, (breaker, want)) in cases.into_iter().enumerate() {
            let mut c = ok.clone();
            breaker(&mut c);
            let e = err_of(&c);
            assert_one_line(&e);
            assert!(e.starts_with(want), "case {i}: want {want:?}, got {e:?}");
        }
    }

    #[test]
    fn shared_path_is_allowed_when_both_luns_are_read_only() {
        let mut c = base();
        c.targets[1].luns[0].backing = Backing::Path("/dev/nvme0n1".into());
        c.targets[1].luns[0].read_only = true;
        c.validate().unwrap();
    }

    #[test]
    fn duplicate_rules_reported_from_toml() {
        let e = toml_err(&FULL.replace("\"10.1.2.3\"", "\"[::1]:3261\""));
        assert_eq!(e, "portals[2]: [::1]:3261 is listed twice");
        let e = toml_err(&FULL.replace(
            "naa.600140512345678901234567890abcde",
            "IQN.2026-11.IO.RINGTGT:DISK1",
        ));
        assert!(e.starts_with("target[1].name: "), "{e}");
        let e = toml_err(&FULL.replace(
            "naa.600140512345678901234567890abcde",
            "iqn.2026-11.io.ringtgt:disk1",
        ));
        assert!(
            e.starts_with("target[1].name: duplicate target name"),
            "{e}"
        );
        // Implicit id 1 of the second LUN clashes with an explicit id 1 of the first.
        let e = toml_err(&FULL.replace("id = 3", "id = 1"));
        assert_eq!(
            e,
            "target[0].lun[1].id: duplicate LUN id 1 (also target[0].lun[0])"
        );
        let e = toml_err(&FULL.replace(
            "first_burst_length = 131072",
            "first_burst_length = 4194304",
        ));
        assert_eq!(
            e,
            "iscsi.first_burst_length: must not exceed max_burst_length (2097152), got 4194304"
        );
    }

    #[test]
    fn ipv6_portals_parse() {
        assert_eq!(
            parse_portal("[::1]:3260").unwrap(),
            "[::1]:3260".parse().unwrap()
        );
        assert_eq!(
            parse_portal("[fd00::5]").unwrap(),
            "[fd00::5]:3260".parse().unwrap()
        );
        assert_eq!(
            parse_portal("fd00::5").unwrap(),
            "[fd00::5]:3260".parse().unwrap()
        );
        assert_eq!(
            parse_portal("[::]:860").unwrap(),
            "[::]:860".parse().unwrap()
        );
        assert_eq!(
            parse_portal(" 0.0.0.0 ").unwrap(),
            "0.0.0.0:3260".parse().unwrap()
        );
        for bad in ["", "localhost", "::1:3260:x", "[::1]:99999", "1.2.3.4:"] {
            assert!(parse_portal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        let ok = [
            ("4096", 4096),
            ("4096B", 4096),
            ("1K", 1024),
            ("1k", 1024),
            ("512MiB", 512 << 20),
            ("512mib", 512 << 20),
            ("1GiB", 1 << 30),
            ("10G", 10 << 30),
            ("2T", 2 << 40),
            ("3TiB", 3 << 40),
            ("1KB", 1000),
            ("5MB", 5_000_000),
            ("1GB", 1_000_000_000),
            ("1TB", 1_000_000_000_000),
            (" 8 MiB ", 8 << 20),
        ];
        for (s, want) in ok {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        let bad = [
            ("", "expected a size"),
            ("GiB", "expected a size"),
            ("0", "greater than 0"),
            ("0GiB", "greater than 0"),
            ("1.5GiB", "fractional"),
            ("10X", "unknown size unit \"X\""),
            ("-1", "expected a size"),
            ("20000000TiB", "too large"),
            ("99999999999999999999", "too large"),
        ];
        for (s, want) in bad {
            let e = parse_size(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
        for n in [1, 4096, 4097, 1 << 20, 1536 << 20, 1 << 30, 5 << 40] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size(1 << 30), "1GiB");
    }

    #[test]
    fn core_lists_parse() {
        assert_eq!(parse_cores("4"), Ok(CoreSpec::Count(4)));
        assert_eq!(parse_cores("3"), Ok(CoreSpec::Count(3)));
        assert_eq!(
            parse_cores("0-3,8"),
            Ok(CoreSpec::List(vec![0, 1, 2, 3, 8]))
        );
        assert_eq!(parse_cores("0,2"), Ok(CoreSpec::List(vec![0, 2])));
        assert_eq!(parse_cores("1-1"), Ok(CoreSpec::List(vec![1])));
        assert_eq!(parse_cores(" 8, 2-3 "), Ok(CoreSpec::List(vec![8, 2, 3])));
        let bad = [
            ("", "empty"),
            ("  ", "empty"),
            ("0", "at least 1"),
            ("5000", "at most 4096"),
            ("3-1", "reversed range"),
            ("0-3,2", "CPU 2 appears twice"),
            ("1,1", "CPU 1 appears twice"),
            ("0,,1", "empty element"),
            ("0,", "empty element"),
            ("a-b", "not a CPU id"),
            ("-3", "not a CPU id"),
            ("0-999999999999", "above 4095"),
            ("99999999999999999999999", "too large"),
        ];
        for (s, want) in bad {
            let e = parse_cores(s).unwrap_err();
            assert!(e.contains(want), "{s:?}: {e}");
        }
        for spec in ["4", "0-3,8", "0,2", "5-5", "1,3-4,6"] {
            let c = parse_cores(spec).unwrap();
            assert_eq!(c.to_string(), spec);
        }
    }

    #[test]
    fn backing_specs_parse() {
        assert_eq!(
            parse_backing("null:1GiB"),
            Ok(Backing::Null { size: 1 << 30 })
        );
        assert_eq!(
            parse_backing("ram:512MiB"),
            Ok(Backing::Ram { size: 512 << 20 })
        );
        assert_eq!(
            parse_backing("/dev/sdb"),
            Ok(Backing::Path("/dev/sdb".into()))
        );
        assert_eq!(
            parse_backing("disk.img"),
            Ok(Backing::Path("disk.img".into()))
        );
        assert_eq!(parse_backing("file:/x"), Ok(Backing::Path("/x".into())));
        assert_eq!(parse_backing("file:a:b"), Ok(Backing::Path("a:b".into())));
        assert_eq!(parse_backing("./a:b"), Ok(Backing::Path("./a:b".into())));
        assert_eq!(
            parse_backing("/dev/disk/by-path/pci-0000:00:1f.2"),
            Ok(Backing::Path("/dev/disk/by-path/pci-0000:00:1f.2".into()))
        );
        assert_eq!(
            parse_backing("foo:12").unwrap_err(),
            "unknown store kind \"foo\" (use null:SIZE, ram:SIZE, file:PATH or a path)"
        );
        assert!(parse_backing("").is_err());
        assert!(parse_backing("file:").is_err());
        assert!(parse_backing("null:")
            .unwrap_err()
            .contains("expected a size"));
        assert!(parse_backing("ram:0")
            .unwrap_err()
            .contains("greater than 0"));
        for b in [
            Backing::Null { size: 4096 },
            Backing::Ram { size: 3 << 30 },
            Backing::Path("/dev/sdb".into()),
            Backing::Path("ram:1G".into()),
            Backing::Path("file:x".into()),
        ] {
            assert_eq!(parse_backing(&b.to_string()), Ok(b));
        }
    }

    #[test]
    fn iscsi_names_follow_rfc_7143() {
        for good in [
            "iqn.2026-11.io.ringtgt:disk1",
            "iqn.2026-11.io.ringtgt",
            "iqn.1993-08.org.debian:01:abcdef",
            "iqn.1991-05.com.microsoft:host-1.example.com",
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "iqn.2026-11.io.ringtgt:d\u{e9}mo",
            "eui.02004567A425678D",
            "eui.02004567a425678d",
            "naa.52004567BA64678D",
            "naa.62004567BA64678D0123456789ABCDEF",
        ] {
            assert_eq!(validate_iscsi_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "iqn.",
            "iqn.2026-11",
            "iqn.2026-11.",
            "iqn.26-11.io.x",
            "iqn.2026-00.io.x",
            "iqn.2026-11.io.x_y",
            "iqn.2026-11.Io.x",
            "iqn.2026-11.io.x:A",
            "iqn.2026-11.io.x:a/b",
            "iqn.2026-11.io.x.:a",
            "eui.0200",
            "eui.02004567A425678G",
            "naa.0200",
            "naa.02004567A425678D0",
            "EUI.02004567A425678D",
            "target1",
        ] {
            assert!(validate_iscsi_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_single_lines() {
        let e = ConfigError::Parse {
            file: Some("/etc/r.toml".into()),
            line: Some(3),
            column: None,
            message: "x".into(),
        };
        assert_eq!(e.to_string(), "/etc/r.toml:3: x");
        assert_eq!(one_line("a\n  b\n\nc "), "a b c");
        let e = ConfigError::Conflict {
            flag: "--lun",
            other: "--config",
        };
        assert_eq!(e.to_string(), "--lun cannot be combined with --config");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("\u{e9}x", 2), (1, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
