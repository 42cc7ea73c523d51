//! Logout (RFC 7143 §11.14, §11.15).

use super::error::SessionError;
use super::full::Session;
use super::output::Output;
use crate::pdu::logout::{LogoutReason, LogoutRequest, LogoutResponse, LogoutResponseCode};
use crate::pdu::Bhs;

pub struct PendingLogout {
    itt: u32,
    response: LogoutResponseCode,
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
        self.logout = Some(PendingLogout {
            itt: req.itt,
            response,
        });
        self.finish_logout(out);
    }

    /// RFC 7143 §11.14: the Logout Response goes out once the connection's tasks are done.
    pub(super) fn finish_logout(&mut self, out: &mut Output) {
        if self.io_in_flight > 0 || self.waits_for_range_locks() || !self.tmfs.is_empty() {
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
