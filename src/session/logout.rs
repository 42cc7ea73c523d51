//! Logout (RFC 7143 §11.14, §11.15).

use super::control::LuOp;
use super::error::SessionError;
use super::full::Session;
use super::output::Output;
use crate::pdu::logout::{LogoutReason, LogoutRequest, LogoutResponse, LogoutResponseCode};
use crate::pdu::Bhs;
use crate::scsi::{SenseFormat, SharedOp, SharedRequest};

pub struct PendingLogout {
    itt: u32,
    response: LogoutResponseCode,
    /// Releases of this nexus's SPC-2 reservations sent to the control thread, by token: the
    /// response waits for them.
    releasing: Vec<u64>,
}

impl Session {
    pub(super) fn handle_logout(&mut self, bhs: &Bhs, out: &mut Output) {
        let req = LogoutRequest::decode(bhs);
        let response = match req.reason {
            LogoutReason::CLOSE_SESSION => LogoutResponseCode::SUCCESS,
            LogoutReason::CLOSE_CONNECTION if req.cid == self.cid => LogoutResponseCode::SUCCESS,
            LogoutReason::CLOSE_CONNECTION => LogoutResponseCode::CID_NOT_FOUND,
            // RFC 7143 §11.15.1: connection recovery needs ErrorRecoveryLevel 2.
            LogoutReason::REMOVE_FOR_RECOVERY => LogoutResponseCode::RECOVERY_NOT_SUPPORTED,
            other => {
                self.refuse(bhs, SessionError::InvalidLogoutReason(other.0), out);
                return;
            }
        };
        let releasing = if response == LogoutResponseCode::SUCCESS {
            self.release_spc2_reservations()
        } else {
            Vec::new()
        };
        self.logout = Some(PendingLogout {
            itt: req.itt,
            response,
            releasing,
        });
        self.finish_logout(out);
    }

    /// SPC-2: a reservation (RESERVE 6/10) ends with the I_T nexus that holds it. Logging out
    /// ends the nexus, so the reservations are released before the Logout Response: an
    /// initiator that then uses the unit through another nexus must find it free, not wait for
    /// the control thread to hear that this connection closed.
    fn release_spc2_reservations(&mut self) -> Vec<u64> {
        let held: Vec<u16> = (0..self.lu_views.len())
            .filter_map(|i| {
                let lun = self.luns.at(i)?.lun;
                let i = self.refresh_lu(lun)?;
                let holder = self.lu_views[i].snapshot().pr.spc2_holder();
                (holder == Some(&self.it_nexus)).then_some(lun)
            })
            .collect();
        held.into_iter()
            .filter_map(|lun| {
                let op = SharedOp {
                    lun,
                    request: SharedRequest::Release,
                    sense_format: SenseFormat::default(),
                };
                self.request_lu(Some(lun), LuOp::Reservation(op))
            })
            .collect()
    }

    /// A release sent at logout was applied.
    pub(super) fn logout_release_done(&mut self, token: u64) -> bool {
        let Some(l) = &mut self.logout else {
            return false;
        };
        let before = l.releasing.len();
        l.releasing.retain(|&t| t != token);
        l.releasing.len() != before
    }

    /// RFC 7143 §11.14: the Logout Response goes out once the connection's tasks are done.
    pub(super) fn finish_logout(&mut self, out: &mut Output) {
        // Called after every task change: with no logout pending, skip the task-table walk of
        // `attached_io_in_flight` (4.6 % of the reactor's samples under batched 4K writes).
        if self.logout.is_none() {
            return;
        }
        if self.attached_io_in_flight() > 0
            || self.waits_for_range_locks()
            || !self.tmfs.is_empty()
            || self
                .logout
                .as_ref()
                .is_some_and(|l| !l.releasing.is_empty())
        {
            return;
        }
        let Some(l) = self.logout.take() else { return };
        let rsp = LogoutResponse {
            response: l.response,
            itt: l.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            time2wait: self.params.default_time2wait,
            time2retain: self.params.default_time2retain,
        };
        out.pdu(&rsp.encode(), &[]);
        if l.response == LogoutResponseCode::SUCCESS {
            self.close = Some(super::conn::CloseReason::Logout);
        }
    }
}
