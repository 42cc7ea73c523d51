//! Why the session refuses a PDU, and the one mapping from each reason to its wire answer
//! (RFC 7143 §11.17.1 Reject reasons). Handlers return a `SessionError`; `Session::refuse` logs it
//! (rate-limited) and sends the Reject, so no call site picks a reason code of its own.

use crate::login::TextError;
use crate::pdu::reject::RejectReason;
use crate::pdu::Opcode;

/// A Data-Out PDU that does not fit its task (RFC 7143 §11.7, §3.2.4.2, §13.19).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataOutError {
    #[error("Data-Out for a task that is not receiving data")]
    NotReceiving,
    #[error("Data-Out ends at {end}, beyond the EDTL of {edtl}")]
    BeyondEdtl { end: u64, edtl: u32 },
    #[error("unsolicited Data-Out ends at {end}, beyond the unsolicited limit of {limit}")]
    BeyondFirstBurst { end: u64, limit: u32 },
    #[error("Data-Out with an unknown Target Transfer Tag {ttt:#x}")]
    UnknownTtt { ttt: u32 },
    #[error("Data-Out at [{offset}, {end}) outside its R2T's range [{from}, {to})")]
    OutsideR2t {
        offset: u32,
        end: u64,
        from: u32,
        to: u32,
    },
    /// DataPDUInOrder=Yes (the only value this target negotiates): each PDU of a sequence starts
    /// where the previous one ended, so a repeated, overlapping or skipped range is an error.
    #[error("Data-Out at offset {offset} where {expected} was expected (repeated, overlapping or out of order)")]
    OutOfOrder { offset: u32, expected: u32 },
    #[error("DataSN {got} where {expected} was expected")]
    DataSn { got: u32, expected: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("SNACK at ErrorRecoveryLevel 0")]
    SnackAtErl0,
    #[error("Login Request in full feature phase")]
    LoginInFullFeature,
    #[error("unsupported opcode {0:?}")]
    UnsupportedOpcode(Opcode),
    #[error("{0:?} is not allowed in a discovery session")]
    NotInDiscovery(Opcode),
    #[error("{0:?} while a logout is pending")]
    WaitingForLogout(Opcode),
    #[error("SCSI command reuses the ITT {0:#x} of a task in progress")]
    IttInUse(u32),
    #[error("immediate data sent although ImmediateData=No")]
    ImmediateDataNotNegotiated,
    #[error("immediate data on a command without the W bit")]
    ImmediateDataWithoutWrite,
    #[error("{len} bytes of immediate data exceed FirstBurstLength or EDTL")]
    ImmediateDataTooLong { len: usize },
    /// A command behind a CmdSN gap keeps at most FirstBurstLength of data until its turn.
    #[error("{len}-byte data segment of a command waiting behind a CmdSN gap")]
    HeldDataTooLong { len: usize },
    #[error("CDB length does not match the AHS")]
    InvalidCdb,
    #[error("{0}")]
    DataOut(#[from] DataOutError),
    #[error("data digest error")]
    DataDigest,
    #[error("Text Request continues an answer that does not exist")]
    UnknownTextContinuation,
    #[error("Text Request longer than 64 KiB refused")]
    TextTooLong,
    #[error("malformed Text Request: {0}")]
    MalformedText(TextError),
    #[error("Logout Request with reason code {0}")]
    InvalidLogoutReason(u8),
}

impl SessionError {
    /// RFC 7143 §11.17.1: the Reason field of the Reject this error is answered with.
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            SessionError::SnackAtErl0 => RejectReason::SNACK_REJECT,
            SessionError::UnsupportedOpcode(_) => RejectReason::COMMAND_NOT_SUPPORTED,
            SessionError::WaitingForLogout(_) => RejectReason::WAITING_FOR_LOGOUT,
            SessionError::IttInUse(_) => RejectReason::TASK_IN_PROGRESS,
            SessionError::InvalidCdb | SessionError::InvalidLogoutReason(_) => {
                RejectReason::INVALID_PDU_FIELD
            }
            SessionError::DataDigest => RejectReason::DATA_DIGEST_ERROR,
            SessionError::LoginInFullFeature
            | SessionError::NotInDiscovery(_)
            | SessionError::ImmediateDataNotNegotiated
            | SessionError::ImmediateDataWithoutWrite
            | SessionError::ImmediateDataTooLong { .. }
            | SessionError::HeldDataTooLong { .. }
            | SessionError::DataOut(_)
            | SessionError::UnknownTextContinuation
            | SessionError::TextTooLong
            | SessionError::MalformedText(_) => RejectReason::PROTOCOL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_reject_reason() {
        let cases = [
            (SessionError::SnackAtErl0, 0x03),
            (SessionError::UnsupportedOpcode(Opcode(0x3c)), 0x05),
            (SessionError::WaitingForLogout(Opcode::SCSI_COMMAND), 0x0c),
            (SessionError::IttInUse(1), 0x07),
            (SessionError::InvalidCdb, 0x09),
            (SessionError::DataDigest, 0x02),
            (
                SessionError::DataOut(DataOutError::OutOfOrder {
                    offset: 0,
                    expected: 512,
                }),
                0x04,
            ),
            (SessionError::TextTooLong, 0x04),
            (SessionError::InvalidLogoutReason(9), 0x09),
        ];
        for (e, code) in cases {
            assert_eq!(e.reject_reason().0, code, "{e}");
        }
    }
}
