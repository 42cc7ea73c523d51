//! What the operator sees of a session and asks of it (`ringtgt ctl`): a description for
//! listings, the tasks still running on a unit being removed, and a request to log out.

use std::time::Duration;

use super::full::Session;
use super::output::Output;
use super::task::TaskState;
use crate::pdu::reject::{AsyncEvent, AsyncMessage};

/// A session as `ringtgt ctl sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub initiator: String,
    pub initiator_alias: Option<String>,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub cid: u16,
    /// `None` for a discovery session.
    pub target: Option<String>,
    pub header_digest: bool,
    pub data_digest: bool,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub max_outstanding_r2t: u16,
    /// What the initiator accepts in one PDU, and what the target does.
    pub initiator_mrdsl: u32,
    pub target_mrdsl: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// SCSI tasks in the task table.
    pub tasks: usize,
}

impl Session {
    pub fn info(&self) -> SessionInfo {
        let p = &self.params;
        SessionInfo {
            initiator: p.initiator_name.clone(),
            initiator_alias: p.initiator_alias.clone(),
            isid: self.it_nexus.initiator.isid,
            tsih: self.tsih,
            cid: self.cid,
            target: p.target_name.clone(),
            header_digest: p.header_digest,
            data_digest: p.data_digest,
            initial_r2t: p.initial_r2t,
            immediate_data: p.immediate_data,
            max_burst_length: p.max_burst_length,
            first_burst_length: p.first_burst_length,
            max_outstanding_r2t: p.max_outstanding_r2t,
            initiator_mrdsl: p.initiator_mrdsl,
            target_mrdsl: p.target_mrdsl,
            exp_cmd_sn: self.window.exp_cmd_sn(),
            max_cmd_sn: self.window.max_cmd_sn(),
            tasks: self.tasks.len(),
        }
    }

    /// Tasks of logical unit `lun` of target `target` that are still running (a unit being
    /// removed waits for them).
    pub fn tasks_on(&self, target: usize, lun: u16) -> usize {
        if self.target != Some(target) {
            return 0;
        }
        self.tasks
            .iter()
            .filter(|(_, t)| t.lun == lun && !matches!(t.state, TaskState::Shared { .. }))
            .count()
    }

    /// RFC 7143 §11.9.1 AsyncEvent 1: asks the initiator to log out within `within` (sent as
    /// Parameter3, in seconds); the connection is dropped if it has not by then.
    pub fn request_logout(&mut self, within: Duration, out: &mut Output) {
        if self.logout_deadline.is_some() {
            return;
        }
        let secs = u16::try_from(within.as_secs()).unwrap_or(u16::MAX);
        let msg = AsyncMessage {
            lun: 0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.window.exp_cmd_sn(),
            max_cmd_sn: self.window.max_cmd_sn(),
            event: AsyncEvent::LOGOUT_REQUESTED,
            vcode: 0,
            parameter1: 0,
            parameter2: 0,
            parameter3: secs,
        };
        out.pdu(&msg.encode(), &[]);
        self.logout_deadline = Some(self.now + within);
    }
}
