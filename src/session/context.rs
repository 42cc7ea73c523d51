//! What every connection of the daemon reads and never writes: the targets, their logical units,
//! the portals and the negotiation offer. Built once by the control thread and shared by `Arc`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::login::{ChapPolicy, TargetEntry, TargetOffer};
use crate::scsi::alua::PortGroups;
use crate::scsi::LunMap;

pub struct TargetRuntime {
    pub name: String,
    /// Every logical unit of the target.
    pub luns: Arc<LunMap>,
    /// Initiators that see only some of them (LUN masking), by lower-cased name.
    pub masks: Vec<(String, Arc<LunMap>)>,
    /// ALUA target port groups and their states, shared by every core.
    pub port_groups: Arc<PortGroups>,
}

impl TargetRuntime {
    /// A target reached through one active/optimized port group, tag 1.
    pub fn new(name: String, luns: LunMap) -> Self {
        Self::with_port_groups(name, luns, PortGroups::single(1))
    }

    pub fn with_port_groups(name: String, luns: LunMap, port_groups: PortGroups) -> Self {
        TargetRuntime {
            name,
            luns: Arc::new(luns),
            masks: Vec::new(),
            port_groups: Arc::new(port_groups),
        }
    }

    /// Restricts `initiator` to the logical units `luns`.
    pub fn mask(&mut self, initiator: &str, luns: &[u16]) {
        let view = Arc::new(self.luns.only(luns));
        self.masks.push((initiator.to_ascii_lowercase(), view));
    }

    /// The logical units `initiator` sees (names compare case-insensitively, RFC 7143 §4.2.7.1).
    pub fn view_for(&self, initiator: &str) -> Arc<LunMap> {
        self.masks
            .iter()
            .find(|(i, _)| i.eq_ignore_ascii_case(initiator))
            .map_or_else(|| self.luns.clone(), |(_, v)| v.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Tuning {
    /// CmdSN window: MaxCmdSN - ExpCmdSN + 1.
    pub queue_depth: u32,
    /// Idle time before the target pings with a NOP-In; `None` disables keepalive.
    pub nop_interval: Option<Duration>,
    /// How long a NOP-In ping may go unanswered before the connection is declared dead.
    pub nop_timeout: Duration,
    /// Longest a connection may spend logging in.
    pub login_timeout: Duration,
    /// Per-connection budget of buffered data (reads waiting to be sent, write data not yet on
    /// disk); R2Ts and reads wait while it is full.
    pub connection_buffer_bytes: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            queue_depth: 128,
            nop_interval: Some(Duration::from_secs(5)),
            nop_timeout: Duration::from_secs(15),
            login_timeout: Duration::from_secs(15),
            connection_buffer_bytes: 32 << 20,
        }
    }
}

pub struct PortalContext {
    pub targets: Vec<TargetRuntime>,
    pub login_targets: Vec<TargetEntry>,
    pub portals: Vec<SocketAddr>,
    pub portal_group_tag: u16,
    pub offer: TargetOffer,
    pub tuning: Tuning,
    /// CHAP required of discovery sessions, if any.
    pub discovery_chap: Option<ChapPolicy>,
}

impl PortalContext {
    /// The index of target `name`: the newest one of that name (a removed target keeps its
    /// index as an empty tombstone, and one added again later gets a new index).
    pub fn target_index(&self, name: &str) -> Option<usize> {
        self.targets.iter().rposition(|t| t.name == name)
    }
}
