//! What every connection of the daemon reads and never writes: the targets, their logical units,
//! the portals and the negotiation offer. Built once by the control thread and shared by `Arc`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::login::{TargetEntry, TargetOffer};
use crate::scsi::LunMap;

pub struct TargetRuntime {
    pub name: String,
    pub luns: LunMap,
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
}

impl PortalContext {
    pub fn target_index(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }
}
