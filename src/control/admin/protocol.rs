//! The admin protocol (README "Admin socket"): one JSON object per line each way. A request
//! names the protocol version and a command; the answer carries the same version, `ok`, and
//! either `result` or `error`.
//!
//! ```text
//! → {"version":1,"command":"lun-resize","target":"iqn.2026-11.io.ringtgt:disk1","id":0,"size":"2GiB"}
//! ← {"version":1,"ok":true,"result":{"message":"LUN 0 of iqn.2026-11.io.ringtgt:disk1 is now 2GiB"}}
//! ```

use serde::{Deserialize, Serialize};

use crate::control::report::{ConnReport, IoReport, LoginFailures, SessionReport, Stats};

/// The protocol version this daemon and this `ringtgt ctl` speak.
pub const VERSION: u32 = 1;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    pub version: u32,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Version, uptime, cores, portals, totals.
    Status,
    Targets,
    Luns {
        #[serde(default)]
        target: Option<String>,
    },
    Sessions,
    Connections,
    /// Every core's counters (what `ctl top` and the metrics endpoint read).
    Stats,
    TargetAdd {
        name: String,
        #[serde(default)]
        alias: Option<String>,
        #[serde(default)]
        allowed_initiators: Vec<String>,
    },
    TargetRemove {
        name: String,
        #[serde(default)]
        force: bool,
    },
    LunAdd {
        target: String,
        #[serde(default)]
        id: Option<u16>,
        /// A LUN `SPEC` as `serve --lun` takes it.
        spec: String,
        #[serde(default)]
        read_only: bool,
        #[serde(default)]
        block_size: Option<u32>,
    },
    LunRemove {
        target: String,
        id: u16,
    },
    LunResize {
        target: String,
        id: u16,
        /// New size (`SIZE` syntax); none = read the backing file or device's size again.
        #[serde(default)]
        size: Option<String>,
    },
    /// An operator accepts the medium a failed SANITIZE left: its failure mode ends.
    LunAcceptMedium {
        target: String,
        id: u16,
    },
    SessionDrop {
        tsih: u16,
    },
    /// Set the asymmetric access state of one of a target's port groups (ALUA).
    AluaSet {
        target: String,
        group: u16,
        /// As the configuration spells it (`active-optimized`, `standby`, ...).
        state: String,
    },
    LogLevel {
        level: String,
    },
    /// The running configuration as TOML.
    Save,
    /// Read the configuration file again and apply the difference (as SIGHUP does).
    Reload,
}

/// An answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseLine {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ResponseLine {
    pub fn ok(result: impl Serialize) -> Self {
        ResponseLine {
            version: VERSION,
            ok: true,
            result: Some(serde_json::to_value(result).unwrap_or(serde_json::Value::Null)),
            error: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        ResponseLine {
            version: VERSION,
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// The result of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
}

/// The result of `save`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub toml: String,
}

/// The result of `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_secs: f64,
    pub cores: Vec<CoreStatus>,
    pub portals: Vec<String>,
    pub targets: usize,
    pub luns: usize,
    pub sessions: usize,
    pub connections: usize,
    pub logins: u64,
    pub login_failures: LoginFailures,
    pub io: IoReport,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CoreStatus {
    pub core: usize,
    /// Share of its life the reactor spent working, in percent.
    pub busy_percent: f64,
    pub connections: usize,
}

/// One line of `targets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub name: String,
    pub alias: Option<String>,
    pub luns: usize,
    pub sessions: usize,
    pub allowed_initiators: Vec<String>,
}

/// One line of `luns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunInfo {
    pub target: String,
    pub id: u16,
    pub backing: String,
    pub size_bytes: u64,
    pub block_size: u32,
    pub read_only: bool,
    pub serial: String,
    /// "ready", "no medium" (a removable one ejected), "sanitizing N%", "sanitize failed"
    /// (until a sanitize completes) or "sanitize failed, exit allowed" (AUSE: also until EXIT
    /// FAILURE MODE).
    #[serde(default)]
    pub medium: String,
}

/// Results decoded by `ringtgt ctl`.
pub type Sessions = Vec<SessionReport>;
pub type Connections = Vec<ConnReport>;
pub type StatsResult = Stats;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_flat_object_with_version_and_command() {
        let line = RequestLine {
            version: VERSION,
            request: Request::LunRemove {
                target: "iqn.t".into(),
                id: 3,
            },
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"command":"lun-remove","target":"iqn.t","id":3}"#
        );
        let back: RequestLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        let minimal: RequestLine =
            serde_json::from_str(r#"{"version":1,"command":"luns"}"#).unwrap();
        assert_eq!(minimal.request, Request::Luns { target: None });
    }

    #[test]
    fn unknown_commands_and_fields_are_errors() {
        assert!(
            serde_json::from_str::<RequestLine>(r#"{"version":1,"command":"reboot"}"#).is_err()
        );
        assert!(serde_json::from_str::<RequestLine>(
            r#"{"version":1,"command":"session-drop","tsih":1,"all":true}"#
        )
        .is_err());
    }
}
