//! Every rule a configuration must follow, each error naming the field path it is about.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use super::error::ConfigError;
use super::format_size;
use super::model::{
    AluaState, Backing, ChapConfig, ChapSecret, Config, CoreSpec, Failover, IscsiTuning, Limits,
    LunConfig, SecretSource, TargetConfig, MAX_ALIAS_LEN, MAX_CHAP_TEXT_LEN, MAX_CORES,
    MAX_CORE_ID, MAX_ISCSI_NAME_LEN, MAX_LUN_ID, MAX_SERIAL_LEN, MIN_CHAP_SECRET_LEN,
    MIN_CONNECTION_BUFFER_BYTES,
};

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

/// An inclusive integer range with the error message it produces.
#[derive(Clone, Copy)]
pub(super) struct IntRange {
    lo: i64,
    hi: i64,
}

const U32_MAX: i64 = u32::MAX as i64;
// RFC 7143 §13.12 (MaxRecvDataSegmentLength), §13.13 (MaxBurstLength), §13.14 (FirstBurstLength).
pub(super) const SEGMENT_RANGE: IntRange = IntRange {
    lo: 512,
    hi: 16_777_215,
};
// RFC 7143 §13.17 MaxOutstandingR2T.
pub(super) const R2T_RANGE: IntRange = IntRange { lo: 1, hi: 65_535 };
pub(super) const QUEUE_DEPTH_RANGE: IntRange = IntRange { lo: 1, hi: 4096 };
pub(super) const NOP_INTERVAL_RANGE: IntRange = IntRange { lo: 0, hi: U32_MAX };
pub(super) const AT_LEAST_ONE_SEC: IntRange = IntRange { lo: 1, hi: U32_MAX };
// RFC 7143 §13.15 DefaultTime2Wait, §13.16 DefaultTime2Retain.
pub(super) const TIME2_RANGE: IntRange = IntRange { lo: 0, hi: 3600 };
pub(super) const MAX_TRANSFER_RANGE: IntRange = IntRange {
    lo: 65_536,
    hi: U32_MAX,
};
pub(super) const LUN_ID_RANGE: IntRange = IntRange {
    lo: 0,
    hi: MAX_LUN_ID as i64,
};
pub(super) const TPGT_RANGE: IntRange = IntRange { lo: 0, hi: 65_535 };
// Sent as Async Message Parameter3 (16 bits, RFC 7143 §11.9.1); an hour is past any sane stop.
pub(super) const GRACE_RANGE: IntRange = IntRange { lo: 0, hi: 3600 };
/// `poll_us`: up to a millisecond of polling per idle turn.
pub(super) const POLL_RANGE: IntRange = IntRange { lo: 0, hi: 1000 };
/// `coalesce_us`: up to a millisecond added to a turn.
pub(super) const COALESCE_RANGE: IntRange = IntRange { lo: 0, hi: 1000 };
/// `recv_ring_buffers`: up to 256 MiB of receive buffers per core.
pub(super) const RECV_RING_RANGE: IntRange = IntRange { lo: 0, hi: 4096 };
pub(super) const SESSIONS_RANGE: IntRange = IntRange { lo: 1, hi: 65_535 };
pub(super) const CONNECTIONS_RANGE: IntRange = IntRange {
    lo: 1,
    hi: 1_000_000,
};

impl IntRange {
    fn error(self, field: &str, got: i64) -> ConfigError {
        let problem = if self.hi >= U32_MAX {
            format!("must be at least {}, got {got}", self.lo)
        } else {
            format!("must be between {} and {}, got {got}", self.lo, self.hi)
        };
        ConfigError::invalid(field, problem)
    }

    pub(super) fn check(self, field: &str, v: i64) -> Result<(), ConfigError> {
        if (self.lo..=self.hi).contains(&v) {
            Ok(())
        } else {
            Err(self.error(field, v))
        }
    }

    /// Converts a TOML integer into the field's type, checking the range on the way.
    pub(super) fn convert<T: TryFrom<i64>>(self, field: &str, v: i64) -> Result<T, ConfigError> {
        self.check(field, v)?;
        T::try_from(v).map_err(|_| self.error(field, v))
    }
}

impl Config {
    /// Checks every rule, including those between fields. Returns the first violation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_portals()?;
        validate_cores(&self.cores)?;
        GRACE_RANGE.check("shutdown_grace_secs", self.shutdown_grace_secs.into())?;
        POLL_RANGE.check("poll_us", self.poll_us.into())?;
        COALESCE_RANGE.check("coalesce_us", self.coalesce_us.into())?;
        RECV_RING_RANGE.check("recv_ring_buffers", self.recv_ring_buffers.into())?;
        self.iscsi.validate()?;
        self.limits.validate(&self.iscsi)?;
        if let Some(chap) = &self.discovery_chap {
            chap.validate("discovery.chap")?;
        }
        self.validate_targets()
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
        let mut names: HashMap<String, usize> = HashMap::new();
        // Path -> (target, lun, read_only) of its first use.
        let mut paths: HashMap<&Path, (usize, usize, bool)> = HashMap::new();
        for (t, target) in self.targets.iter().enumerate() {
            target.validate(t)?;
            target.validate_port_groups(t, &self.portals)?;
            target.validate_failover(t)?;
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
        super::rbd::check_shared_images(&self.targets)
    }
}

fn validate_cores(cores: &CoreSpec) -> Result<(), ConfigError> {
    match cores {
        CoreSpec::Count(n) if *n == 0 || *n > MAX_CORES => Err(ConfigError::invalid(
            "cores",
            format!("core count must be between 1 and {MAX_CORES}, got {n}"),
        )),
        CoreSpec::Auto | CoreSpec::Count(_) => Ok(()),
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
            validate_iscsi_name(init).map_err(|e| {
                ConfigError::invalid(format!("target[{t}].allowed_initiators[{i}]"), e)
            })?;
        }
        if let Some((i, j)) =
            first_duplicate(&self.allowed_initiators, |a, b| a.eq_ignore_ascii_case(b))
        {
            return Err(ConfigError::invalid(
                format!("target[{t}].allowed_initiators[{i}]"),
                format!(
                    "duplicate of allowed_initiators[{j}] ({:?})",
                    self.allowed_initiators[i]
                ),
            ));
        }
        self.validate_networks(t)?;
        if let Some(chap) = &self.chap {
            chap.validate(&format!("target[{t}].chap"))?;
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
        self.validate_acls(t)
    }

    fn validate_networks(&self, t: usize) -> Result<(), ConfigError> {
        let field = |i: usize| format!("target[{t}].allowed_networks[{i}]");
        for (i, net) in self.allowed_networks.iter().enumerate() {
            // A set host bit is most likely a host address typed where its network was meant.
            if net.trunc() != *net {
                return Err(ConfigError::invalid(
                    field(i),
                    format!(
                        "{net} has host bits set; write the network {} (or {}/{} for one host)",
                        net.trunc(),
                        net.addr(),
                        net.max_prefix_len()
                    ),
                ));
            }
        }
        if let Some((i, j)) = first_duplicate(&self.allowed_networks, PartialEq::eq) {
            return Err(ConfigError::invalid(
                field(i),
                format!(
                    "duplicate of allowed_networks[{j}] ({})",
                    self.allowed_networks[i]
                ),
            ));
        }
        Ok(())
    }

    /// Ids unique, every portal one of the daemon's and in one group at most, no empty group.
    fn validate_port_groups(&self, t: usize, portals: &[SocketAddr]) -> Result<(), ConfigError> {
        for (g, group) in self.port_groups.iter().enumerate() {
            let prefix = format!("target[{t}].port_group[{g}]");
            if let Some(j) = self.port_groups[..g].iter().position(|o| o.id == group.id) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.id"),
                    format!("duplicate of port_group[{j}].id ({})", group.id),
                ));
            }
            if group.remote {
                // Another gateway's portals: not served here, nothing to check against ours.
                continue;
            }
            if group.portals.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{prefix}.portals"),
                    "a port group needs at least one portal",
                ));
            }
            for (i, p) in group.portals.iter().enumerate() {
                let field = format!("{prefix}.portals[{i}]");
                if !portals.contains(p) {
                    return Err(ConfigError::invalid(
                        field,
                        format!("{p} is not one of the daemon's portals"),
                    ));
                }
                let earlier = self.port_groups[..g]
                    .iter()
                    .position(|o| o.portals.contains(p))
                    .or_else(|| group.portals[..i].contains(p).then_some(g));
                if let Some(j) = earlier {
                    return Err(ConfigError::invalid(
                        field,
                        format!("{p} is already in port_group[{j}]"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Gateway mode (`failover = "rbd-lock"`): only RBD units, one local port group and at
    /// least one remote one, each active/optimized or active/non-optimized. Remote groups exist
    /// only in gateway mode.
    fn validate_failover(&self, t: usize) -> Result<(), ConfigError> {
        let remote_at = self.port_groups.iter().position(|g| g.remote);
        if self.failover == Failover::None {
            return match remote_at {
                Some(g) => Err(ConfigError::invalid(
                    format!("target[{t}].port_group[{g}].remote"),
                    "remote port groups need failover = \"rbd-lock\"",
                )),
                None => Ok(()),
            };
        }
        let field = format!("target[{t}].failover");
        if let Some(l) = self
            .luns
            .iter()
            .position(|l| !matches!(l.backing, Backing::Rbd(_)))
        {
            return Err(ConfigError::invalid(
                field,
                format!("\"rbd-lock\" needs every LUN on RBD, lun[{l}] is not"),
            ));
        }
        if let Some(l) = self.luns.iter().position(|l| l.read_only) {
            return Err(ConfigError::invalid(
                format!("target[{t}].lun[{l}].read_only"),
                "a gateway's units take the images' exclusive locks: they cannot be read-only",
            ));
        }
        let local = self.port_groups.iter().filter(|g| !g.remote).count();
        if local != 1 || remote_at.is_none() {
            return Err(ConfigError::invalid(
                field,
                "\"rbd-lock\" needs one port group of this gateway and at least one with \
                 remote = true (the other gateways)",
            ));
        }
        for (g, group) in self.port_groups.iter().enumerate() {
            if !matches!(
                group.state,
                AluaState::ActiveOptimized | AluaState::ActiveNonOptimized
            ) {
                return Err(ConfigError::invalid(
                    format!("target[{t}].port_group[{g}].state"),
                    "a gateway's groups are active-optimized (it prefers to hold the lock) or \
                     active-non-optimized",
                ));
            }
        }
        Ok(())
    }

    fn validate_acls(&self, t: usize) -> Result<(), ConfigError> {
        for (a, acl) in self.acls.iter().enumerate() {
            let prefix = format!("target[{t}].acl[{a}]");
            validate_iscsi_name(&acl.initiator)
                .map_err(|e| ConfigError::invalid(format!("{prefix}.initiator"), e))?;
            for (i, id) in acl.luns.iter().enumerate() {
                if !self.luns.iter().any(|l| l.id == *id) {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.luns[{i}]"),
                        format!("LUN {id} is not defined in target[{t}]"),
                    ));
                }
            }
            if let Some((i, j)) = first_duplicate(&acl.luns, PartialEq::eq) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.luns[{i}]"),
                    format!("duplicate of luns[{j}] ({})", acl.luns[i]),
                ));
            }
        }
        if let Some((a, b)) = first_duplicate(&self.acls, |x, y| {
            x.initiator.eq_ignore_ascii_case(&y.initiator)
        }) {
            return Err(ConfigError::invalid(
                format!("target[{t}].acl[{a}].initiator"),
                format!(
                    "duplicate of acl[{b}].initiator ({:?})",
                    self.acls[a].initiator
                ),
            ));
        }
        Ok(())
    }
}

/// Indices `(later, earlier)` of the first item that repeats an earlier one.
fn first_duplicate<T>(items: &[T], same: impl Fn(&T, &T) -> bool) -> Option<(usize, usize)> {
    items.iter().enumerate().find_map(|(i, item)| {
        let j = items[..i].iter().position(|earlier| same(earlier, item))?;
        Some((i, j))
    })
}

fn validate_alias(alias: &str) -> Result<(), String> {
    validate_text(
        alias,
        MAX_ALIAS_LEN,
        "must not be empty (omit the key for no alias)",
    )
}

/// A text value (RFC 7143 §6.1: UTF-8, here without control characters) of 1..=`limit` bytes;
/// `empty` is the problem reported for an empty value.
fn validate_text(value: &str, limit: usize, empty: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(empty.into());
    }
    if value.len() > limit {
        return Err(format!(
            "is {} bytes long, the limit is {limit}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

impl ChapConfig {
    /// Checks this CHAP table; `prefix` is its field path, e.g. `target[0].chap`. No error
    /// message contains a secret, only its length and, for a file, the path.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        validate_text(&self.user, MAX_CHAP_TEXT_LEN, "must not be empty")
            .map_err(|e| ConfigError::invalid(format!("{prefix}.user"), e))?;
        validate_secret(prefix, "secret", &self.secret)?;
        if let Some(mutual) = &self.mutual {
            validate_text(&mutual.user, MAX_CHAP_TEXT_LEN, "must not be empty")
                .map_err(|e| ConfigError::invalid(format!("{prefix}.mutual_user"), e))?;
            validate_secret(prefix, "mutual_secret", &mutual.secret)?;
            // With one secret both ways, an initiator can make the target answer its own
            // challenge and replay that answer (a reflection attack).
            if mutual.secret.value == self.secret.value {
                return Err(ConfigError::invalid(
                    secret_field(prefix, "mutual_secret", &mutual.secret),
                    "must differ from the initiator's secret (the same secret both ways allows a reflection attack)",
                ));
            }
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.algorithms"),
                "must list at least one of \"sha3-256\", \"sha-256\", \"sha1\", \"md5\"",
            ));
        }
        if let Some((i, j)) = first_duplicate(&self.algorithms, PartialEq::eq) {
            return Err(ConfigError::invalid(
                format!("{prefix}.algorithms[{i}]"),
                format!(
                    "duplicate of algorithms[{j}] ({:?})",
                    self.algorithms[i].name()
                ),
            ));
        }
        Ok(())
    }
}

/// The key a secret was given with: `key` inline, `key_file` from a file.
fn secret_field(prefix: &str, key: &str, secret: &ChapSecret) -> String {
    match secret.source {
        SecretSource::Inline => format!("{prefix}.{key}"),
        SecretSource::File(_) => format!("{prefix}.{key}_file"),
    }
}

fn validate_secret(prefix: &str, key: &str, secret: &ChapSecret) -> Result<(), ConfigError> {
    let len = secret.value.len();
    if (MIN_CHAP_SECRET_LEN..=MAX_CHAP_TEXT_LEN).contains(&len) {
        return Ok(());
    }
    let what = match &secret.source {
        SecretSource::Inline => "is".to_string(),
        SecretSource::File(path) => format!("in {} is", path.display()),
    };
    // RFC 7143 §12.1.3: CHAP secrets must be at least 96 bits.
    Err(ConfigError::invalid(
        secret_field(prefix, key, secret),
        format!(
            "the secret {what} {len} bytes long; CHAP secrets must be {MIN_CHAP_SECRET_LEN}..={MAX_CHAP_TEXT_LEN} bytes (RFC 7143 §12.1.3 asks for at least 96 bits)"
        ),
    ))
}

impl Limits {
    /// Checks every range, the ceilings that bound other ceilings, and that one burst of
    /// `iscsi.max_burst_length` fits the connection buffer.
    pub fn validate(&self, iscsi: &IscsiTuning) -> Result<(), ConfigError> {
        let checks: [(&str, i64, IntRange); 4] = [
            (
                "limits.max_sessions",
                self.max_sessions.into(),
                SESSIONS_RANGE,
            ),
            (
                "limits.max_sessions_per_initiator",
                self.max_sessions_per_initiator.into(),
                SESSIONS_RANGE,
            ),
            (
                "limits.max_connections",
                self.max_connections.into(),
                CONNECTIONS_RANGE,
            ),
            (
                "limits.max_login_connections",
                self.max_login_connections.into(),
                CONNECTIONS_RANGE,
            ),
        ];
        for (field, value, range) in checks {
            range.check(field, value)?;
        }
        let bounded = [
            (
                "limits.max_sessions_per_initiator",
                self.max_sessions_per_initiator,
                "max_sessions",
                self.max_sessions,
            ),
            (
                "limits.max_login_connections",
                self.max_login_connections,
                "max_connections",
                self.max_connections,
            ),
        ];
        for (field, value, bound_name, bound) in bounded {
            if value > bound {
                return Err(ConfigError::invalid(
                    field,
                    format!("must not exceed {bound_name} ({bound}), got {value}"),
                ));
            }
        }
        let buffer = self.connection_buffer_bytes;
        let field = "limits.connection_buffer_bytes";
        if buffer < MIN_CONNECTION_BUFFER_BYTES {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "must be at least {}, got {}",
                    format_size(MIN_CONNECTION_BUFFER_BYTES),
                    format_size(buffer)
                ),
            ));
        }
        if buffer < u64::from(iscsi.max_burst_length) {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "must be at least iscsi.max_burst_length ({}) so that one burst fits, got {}",
                    iscsi.max_burst_length,
                    format_size(buffer)
                ),
            ));
        }
        Ok(())
    }
}

impl LunConfig {
    /// Checks this LUN; `prefix` is its field path, e.g. `target[0].lun[1]`.
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        LUN_ID_RANGE.check(&format!("{prefix}.id"), self.id.into())?;
        if let Some(bs) = self.block_size.filter(|&b| b != 512 && b != 4096) {
            return Err(ConfigError::invalid(
                format!("{prefix}.block_size"),
                format!("must be 512 or 4096, got {bs}"),
            ));
        }
        // RAM and null stores have 512-byte blocks unless told otherwise.
        let block_size = self.block_size.unwrap_or(512);
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
            Backing::Rbd(r) => r.validate(prefix),
            Backing::Null { size } | Backing::Ram { size } => {
                if *size == 0 {
                    Err(ConfigError::invalid(
                        path_field(),
                        "size must be greater than 0",
                    ))
                } else if !size.is_multiple_of(u64::from(block_size)) {
                    Err(ConfigError::invalid(
                        path_field(),
                        format!("size {size} is not a multiple of block_size {block_size}"),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
