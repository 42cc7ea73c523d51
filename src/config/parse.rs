//! Reading and writing the TOML file: the raw serde types, the value parsers shared with the
//! CLI (sizes, core lists, portals, backing stores), and the conversion into the model.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, ConfigWarning};
use super::model::{
    default_admin_socket, default_portal, default_state_dir, Backing, Config, CoreSpec, Failover,
    IscsiTuning, Limits, LunConfig, TargetConfig, DEFAULT_COALESCE_US, DEFAULT_PORT,
    DEFAULT_RECV_RING_BUFFERS, DEFAULT_SHUTDOWN_GRACE_SECS, MAX_CORES, MAX_CORE_ID,
};
use super::validate::{
    AT_LEAST_ONE_SEC, COALESCE_RANGE, CONNECTIONS_RANGE, GRACE_RANGE, LUN_ID_RANGE,
    MAX_TRANSFER_RANGE, NOP_INTERVAL_RANGE, POLL_RANGE, QUEUE_DEPTH_RANGE, R2T_RANGE,
    RECV_RING_RANGE, SEGMENT_RANGE, SESSIONS_RANGE, TIME2_RANGE, TPGT_RANGE,
};

mod access;
mod port_groups;

pub use access::{parse_network, read_secret_file};
use access::{RawAcl, RawChap, RawDiscovery};
use port_groups::RawPortGroup;

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

/// Parses a core specification. `"auto"` = the daemon's choice (the default); digits only = a
/// count (`"4"`); anything with `,` or `-` = a list of CPU ids (see [`parse_cpu_list`]). Rejects
/// empty input and a count of 0.
pub fn parse_cores(s: &str) -> Result<CoreSpec, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(
            "core specification is empty (use auto, a count like 4 or a list like 0-3,8)".into(),
        );
    }
    if t == "auto" {
        return Ok(CoreSpec::Auto);
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
    parse_cpu_list(t).map(CoreSpec::List)
}

/// Parses a list of CPU ids in the kernel's list format, as in `--cores` and in sysfs
/// (`cpulist`, `has_cpu`): `"0-3,8"` → 0,1,2,3,8; `"0,2"`; `"5"` or `"5-5"` = 5 alone. Rejects
/// empty input and elements, reversed ranges, duplicates and ids above 4095 (so that no input,
/// however large its numbers, makes a large list).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("core list is empty".into());
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
    Ok(ids)
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

/// Parses a backing store: `"null:SIZE"`, `"ram:SIZE"`, `"rbd:POOL/IMAGE"`, `"file:PATH"` or a
/// plain path.
/// A string whose part before the first `:` is a bare word (letters, digits, `_`, `-`; no `/`)
/// names a store kind, so `"foo:12"` is an error; write `"file:foo:12"` or `"./foo:12"` instead.
pub fn parse_backing(s: &str) -> Result<Backing, String> {
    if s.is_empty() {
        return Err(
            "backing store is empty (use a path, null:SIZE, ram:SIZE or rbd:POOL/IMAGE)".into(),
        );
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
                "rbd" => super::rbd::parse_rbd(rest),
                _ => Err(format!(
                    "unknown store kind {kind:?} (use null:SIZE, ram:SIZE, rbd:POOL/IMAGE, file:PATH or a path)"
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
impl Config {
    /// Parses and validates a TOML document. Secret files it names are read; their warnings
    /// are dropped (use [`Config::from_toml_str_with_warnings`] to keep them).
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Self::parse_toml(s, None).map(|(config, _)| config)
    }

    /// Parses and validates a TOML document, returning the warnings found on the way.
    pub fn from_toml_str_with_warnings(
        s: &str,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        Self::parse_toml(s, None)
    }

    /// Reads, parses and validates a TOML file and the secret files it names. Read and syntax
    /// errors name the file. Problems that do not stop the daemon (a secret file that group or
    /// others can read) come back as warnings for the caller to log.
    pub fn load(path: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        // The file's text may hold CHAP secrets: wiped once parsed.
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
            ConfigError::Read {
                path: path.to_path_buf(),
                error,
            }
        })?);
        Self::parse_toml(&text, Some(path))
    }

    fn parse_toml(
        s: &str,
        file: Option<&Path>,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
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
        let mut warnings = Vec::new();
        let mut config = raw.into_config(&mut warnings)?;
        if let Some(file) = file {
            config.resolve_lun_paths(file);
        }
        config.validate()?;
        Ok((config, warnings))
    }

    /// Makes relative LUN paths (and an RBD LUN's `ceph_conf` and `keyring`) relative to the
    /// directory of the config file `file` (where its author sees them), not to the daemon's
    /// working directory.
    fn resolve_lun_paths(&mut self, file: &Path) {
        let dir = file.parent().unwrap_or(Path::new(""));
        for lun in self.targets.iter_mut().flat_map(|t| &mut t.luns) {
            let paths = match &mut lun.backing {
                Backing::Path(p) => vec![p],
                Backing::Rbd(r) => r.conf.iter_mut().chain(r.keyring.iter_mut()).collect(),
                Backing::Null { .. } | Backing::Ram { .. } => Vec::new(),
            };
            for p in paths.into_iter().filter(|p| p.is_relative()) {
                *p = dir.join(&*p);
            }
        }
    }

    /// Writes the configuration as TOML, every key explicit; [`Config::from_toml_str`] reads it
    /// back to an equal `Config` (paths that are not UTF-8 are written lossily).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(&RawConfig::from_config(self))
            .map_err(|e| ConfigError::Serialize(one_line(&e.to_string())))
    }
}

/// Joins the lines of a message into one, collapsing runs of whitespace.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    state_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_socket: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shutdown_grace_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coalesce_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recv_ring_buffers: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iscsi: Option<RawIscsi>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<RawLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    discovery: Option<RawDiscovery>,
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
    #[serde(default)]
    allowed_networks: Vec<String>,
    #[serde(default, rename = "lun")]
    luns: Vec<RawLun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chap: Option<RawChap>,
    #[serde(default, rename = "acl", skip_serializing_if = "Vec::is_empty")]
    acls: Vec<RawAcl>,
    #[serde(default, rename = "port_group", skip_serializing_if = "Vec::is_empty")]
    port_groups: Vec<RawPortGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failover: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_sessions: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_sessions_per_initiator: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_login_connections: Option<i64>,
    /// A SIZE string or a plain integer.
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_buffer_bytes: Option<toml::Value>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    removable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sanitize_rate: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ceph_conf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ceph_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyring: Option<String>,
}

impl RawConfig {
    fn into_config(self, warnings: &mut Vec<ConfigWarning>) -> Result<Config, ConfigError> {
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
        let state_dir = match self.state_dir {
            None => default_state_dir(),
            // Resolved against nothing: a daemon's working directory is no place for state.
            Some(p) if p.is_absolute() => p,
            Some(p) => {
                return Err(ConfigError::invalid(
                    "state_dir",
                    format!(
                        "must be an absolute path, got {:?}",
                        p.display().to_string()
                    ),
                ))
            }
        };
        let admin_socket = match self.admin_socket {
            None => default_admin_socket(),
            Some(p) if p.is_absolute() => p,
            Some(p) => {
                return Err(ConfigError::invalid(
                    "admin_socket",
                    format!(
                        "must be an absolute path, got {:?}",
                        p.display().to_string()
                    ),
                ))
            }
        };
        let metrics_addr = match self.metrics_addr {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    "metrics_addr",
                    format!(
                        "expected an address like \"127.0.0.1:9830\" or \"[::1]:9830\", got {s:?}"
                    ),
                )
            })?),
        };
        let shutdown_grace_secs = match self.shutdown_grace_secs {
            None => DEFAULT_SHUTDOWN_GRACE_SECS,
            Some(v) => GRACE_RANGE.convert("shutdown_grace_secs", v)?,
        };
        let poll_us = match self.poll_us {
            None => 0,
            Some(v) => POLL_RANGE.convert("poll_us", v)?,
        };
        let coalesce_us = match self.coalesce_us {
            None => DEFAULT_COALESCE_US,
            Some(v) => COALESCE_RANGE.convert("coalesce_us", v)?,
        };
        let recv_ring_buffers = match self.recv_ring_buffers {
            None => DEFAULT_RECV_RING_BUFFERS,
            Some(v) => RECV_RING_RANGE.convert("recv_ring_buffers", v)?,
        };
        let iscsi = self.iscsi.unwrap_or_default().into_tuning()?;
        let limits = self.limits.unwrap_or_default().into_limits()?;
        let discovery_chap = match self.discovery.and_then(|d| d.chap) {
            Some(chap) => Some(chap.into_chap("discovery.chap", warnings)?),
            None => None,
        };
        let targets = self
            .targets
            .into_iter()
            .enumerate()
            .map(|(t, raw)| raw.into_target(t, warnings))
            .collect::<Result<_, _>>()?;
        Ok(Config {
            portals,
            targets,
            iscsi,
            cores,
            portal_group_tag,
            discovery_chap,
            limits,
            state_dir,
            admin_socket,
            metrics_addr,
            shutdown_grace_secs,
            poll_us,
            coalesce_us,
            recv_ring_buffers,
        })
    }

    fn from_config(c: &Config) -> RawConfig {
        let cores = match &c.cores {
            CoreSpec::Count(n) => match i64::try_from(*n) {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(n.to_string()),
            },
            other => toml::Value::String(other.to_string()),
        };
        RawConfig {
            portals: Some(c.portals.iter().map(ToString::to_string).collect()),
            cores: Some(cores),
            portal_group_tag: Some(c.portal_group_tag.into()),
            state_dir: Some(c.state_dir.clone()),
            admin_socket: Some(c.admin_socket.clone()),
            metrics_addr: c.metrics_addr.map(|a| a.to_string()),
            shutdown_grace_secs: Some(c.shutdown_grace_secs.into()),
            poll_us: (c.poll_us != 0).then_some(c.poll_us.into()),
            coalesce_us: (c.coalesce_us != DEFAULT_COALESCE_US).then_some(c.coalesce_us.into()),
            recv_ring_buffers: (c.recv_ring_buffers != DEFAULT_RECV_RING_BUFFERS)
                .then_some(c.recv_ring_buffers.into()),
            iscsi: Some(RawIscsi::from_tuning(&c.iscsi)),
            limits: Some(RawLimits::from_limits(&c.limits)),
            discovery: c.discovery_chap.as_ref().map(RawDiscovery::from_chap),
            targets: c.targets.iter().map(RawTarget::from_target).collect(),
        }
    }
}

/// Sets each `$dst.field` from the optional raw integer `$raw.field`, converting with the
/// field's range; an error names `section.field`.
macro_rules! set_ints {
    ($raw:expr, $dst:expr, $section:literal, { $($field:ident: $range:expr),* $(,)? }) => {
        $(
            if let Some(v) = $raw.$field {
                $dst.$field = $range.convert(concat!($section, ".", stringify!($field)), v)?;
            }
        )*
    };
}

impl RawIscsi {
    fn into_tuning(self) -> Result<IscsiTuning, ConfigError> {
        let mut t = IscsiTuning::default();
        set_ints!(self, t, "iscsi", {
            max_recv_data_segment_length: SEGMENT_RANGE,
            max_burst_length: SEGMENT_RANGE,
            first_burst_length: SEGMENT_RANGE,
            max_outstanding_r2t: R2T_RANGE,
            queue_depth: QUEUE_DEPTH_RANGE,
            nop_in_interval_secs: NOP_INTERVAL_RANGE,
            nop_in_timeout_secs: AT_LEAST_ONE_SEC,
            default_time2wait: TIME2_RANGE,
            default_time2retain: TIME2_RANGE,
            login_timeout_secs: AT_LEAST_ONE_SEC,
            max_transfer_bytes: MAX_TRANSFER_RANGE,
        });
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

impl RawLimits {
    fn into_limits(self) -> Result<Limits, ConfigError> {
        let mut l = Limits::default();
        set_ints!(self, l, "limits", {
            max_sessions: SESSIONS_RANGE,
            max_sessions_per_initiator: SESSIONS_RANGE,
            max_connections: CONNECTIONS_RANGE,
            max_login_connections: CONNECTIONS_RANGE,
        });
        if let Some(v) = self.connection_buffer_bytes {
            l.connection_buffer_bytes = size_value("limits.connection_buffer_bytes", v)?;
        }
        Ok(l)
    }

    fn from_limits(l: &Limits) -> RawLimits {
        RawLimits {
            max_sessions: Some(l.max_sessions.into()),
            max_sessions_per_initiator: Some(l.max_sessions_per_initiator.into()),
            max_connections: Some(l.max_connections.into()),
            max_login_connections: Some(l.max_login_connections.into()),
            connection_buffer_bytes: Some(toml::Value::String(format_size(
                l.connection_buffer_bytes,
            ))),
        }
    }
}

/// At least one step (1 MiB) a second: a paced sanitize then looks at its unit (removed? the
/// daemon stopping?) at least once a second.
fn sanitize_rate(field: &str, v: toml::Value) -> Result<u64, ConfigError> {
    let rate = size_value(field, v)?;
    if rate < u64::from(crate::scsi::STEP_BYTES) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "must be at least 1MiB (a second), got {}",
                format_size(rate)
            ),
        ));
    }
    Ok(rate)
}

/// A byte size written as a SIZE string (`"32MiB"`) or a plain integer.
fn size_value(field: &str, v: toml::Value) -> Result<u64, ConfigError> {
    match v {
        toml::Value::String(s) => parse_size(&s).map_err(|e| ConfigError::invalid(field, e)),
        toml::Value::Integer(n) => match u64::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::invalid(
                field,
                format!("size must be greater than 0, got {n}"),
            )),
        },
        other => Err(ConfigError::invalid(
            field,
            format!(
                "must be a size like \"32MiB\" or an integer (found {})",
                other.type_str()
            ),
        )),
    }
}

impl RawTarget {
    fn into_target(
        self,
        t: usize,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<TargetConfig, ConfigError> {
        let luns = self
            .luns
            .into_iter()
            .enumerate()
            .map(|(l, raw)| raw.into_lun(&format!("target[{t}].lun[{l}]"), l))
            .collect::<Result<_, _>>()?;
        let allowed_networks = self
            .allowed_networks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_network(s).map_err(|e| {
                    ConfigError::invalid(format!("target[{t}].allowed_networks[{i}]"), e)
                })
            })
            .collect::<Result<_, _>>()?;
        let chap = match self.chap {
            Some(chap) => Some(chap.into_chap(&format!("target[{t}].chap"), warnings)?),
            None => None,
        };
        let acls = self
            .acls
            .into_iter()
            .enumerate()
            .map(|(a, raw)| raw.into_acl(&format!("target[{t}].acl[{a}]")))
            .collect::<Result<_, _>>()?;
        let port_groups = self
            .port_groups
            .into_iter()
            .enumerate()
            .map(|(g, raw)| raw.into_port_group(&format!("target[{t}].port_group[{g}]")))
            .collect::<Result<_, _>>()?;
        let failover = match self.failover.as_deref() {
            None => Failover::None,
            Some(s) => Failover::ALL
                .into_iter()
                .find(|f| f.as_str() == s)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        format!("target[{t}].failover"),
                        format!("expected \"none\" or \"rbd-lock\", got {s:?}"),
                    )
                })?,
        };
        Ok(TargetConfig {
            name: self.name,
            alias: self.alias,
            luns,
            allowed_initiators: self.allowed_initiators,
            allowed_networks,
            chap,
            acls,
            port_groups,
            failover,
        })
    }

    fn from_target(t: &TargetConfig) -> RawTarget {
        RawTarget {
            name: t.name.clone(),
            alias: t.alias.clone(),
            allowed_initiators: t.allowed_initiators.clone(),
            allowed_networks: t.allowed_networks.iter().map(ToString::to_string).collect(),
            luns: t.luns.iter().map(RawLun::from_lun).collect(),
            chap: t.chap.as_ref().map(RawChap::from_chap),
            acls: t.acls.iter().map(RawAcl::from_acl).collect(),
            port_groups: t
                .port_groups
                .iter()
                .map(RawPortGroup::from_port_group)
                .collect(),
            failover: (t.failover != Failover::None).then(|| t.failover.as_str().to_owned()),
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
        let client = super::rbd::RawClient {
            conf: self.ceph_conf,
            user: self.ceph_user,
            keyring: self.keyring,
        };
        let backing = client.apply(backing, prefix)?;
        let block_size = match self.block_size {
            None => None,
            Some(512) => Some(512),
            Some(4096) => Some(4096),
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
            write_cache: self.write_cache,
            removable: self.removable.unwrap_or(false),
            sanitize_rate: self
                .sanitize_rate
                .map(|v| sanitize_rate(&format!("{prefix}.sanitize_rate"), v))
                .transpose()?,
        })
    }

    fn from_lun(l: &LunConfig) -> RawLun {
        let client = super::rbd::RawClient::of(&l.backing);
        RawLun {
            id: Some(l.id.into()),
            path: l.backing.to_string(),
            block_size: l.block_size.map(Into::into),
            read_only: Some(l.read_only),
            serial: l.serial.clone(),
            write_cache: l.write_cache,
            removable: Some(l.removable),
            sanitize_rate: l.sanitize_rate.map(|r| toml::Value::String(format_size(r))),
            ceph_conf: client.conf,
            ceph_user: client.user,
            keyring: client.keyring,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_cores(" auto "), Ok(CoreSpec::Auto));
        for spec in ["auto", "4", "0-3,8", "0,2", "5-5", "1,3-4,6"] {
            let c = parse_cores(spec).unwrap();
            assert_eq!(c.to_string(), spec);
        }
    }

    #[test]
    fn cpu_lists_take_single_ids_and_refuse_what_is_not_a_list() {
        assert_eq!(parse_cpu_list("0\n"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("5"), Ok(vec![5]));
        assert_eq!(parse_cpu_list("0-3,8-9"), Ok(vec![0, 1, 2, 3, 8, 9]));
        for bad in ["", "\n", "0-", "x", "0-4294967296", "1,1", "-1"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
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
            "unknown store kind \"foo\" (use null:SIZE, ram:SIZE, rbd:POOL/IMAGE, file:PATH or a path)"
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
    fn one_line_joins_lines_and_collapses_whitespace() {
        assert_eq!(one_line("a\n  b\n\nc "), "a b c");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("\u{e9}x", 2), (1, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
