//! Why a login fails, and the one mapping from each reason to its wire answer (RFC 7143 §11.13.5).

use super::text::TextError;
use crate::pdu::login::LoginStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The initiator broke a protocol rule (flags, stages, changed ISID/TSIH/CID, key sent twice,
    /// target-only key, ...).
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("malformed text: {0}")]
    Text(#[from] TextError),
    #[error("login text exceeds {limit} bytes")]
    TextTooLong { limit: usize },
    #[error("version range {min}..={max} does not include 0")]
    UnsupportedVersion { min: u8, max: u8 },
    #[error("missing key {0}")]
    MissingParameter(&'static str),
    #[error("unsupported SessionType {0:?}")]
    SessionTypeNotSupported(String),
    #[error("no target named {0:?}")]
    TargetNotFound(String),
    #[error("target {target:?} is not reachable through portal {portal}")]
    NotOnThisPortal { target: String, portal: String },
    #[error("initiator {initiator:?} may not access {target:?}")]
    NotAuthorized { initiator: String, target: String },
    /// `answer` is sent as the failure response's text (e.g. `AuthMethod=Reject`).
    #[error("authentication failed: {reason}")]
    AuthenticationFailed { reason: String, answer: Vec<u8> },
    /// An operational key could not be agreed and its default is unacceptable to the target.
    #[error("negotiation of {key} failed: {reason}")]
    NegotiationFailed {
        key: &'static str,
        reason: String,
        answer: Vec<u8>,
    },
    /// The transport or caller misused the state machine: our fault, not the initiator's.
    #[error("internal error: {0}")]
    Internal(String),
}

impl LoginError {
    pub fn protocol(msg: impl Into<String>) -> Self {
        LoginError::Protocol(msg.into())
    }

    /// An authentication failure whose response carries no text: the initiator learns only that
    /// it failed, never which part (RFC 7143 §11.13.5: 0x0201). `reason` is for the log only.
    pub fn authentication(reason: impl Into<String>) -> Self {
        LoginError::AuthenticationFailed {
            reason: reason.into(),
            answer: Vec::new(),
        }
    }

    /// The Status-Class / Status-Detail sent for this failure.
    pub fn status(&self) -> LoginStatus {
        match self {
            LoginError::Protocol(_)
            | LoginError::Text(_)
            | LoginError::TextTooLong { .. }
            | LoginError::NegotiationFailed { .. } => LoginStatus::INITIATOR_ERROR,
            LoginError::UnsupportedVersion { .. } => LoginStatus::UNSUPPORTED_VERSION,
            LoginError::MissingParameter(_) => LoginStatus::MISSING_PARAMETER,
            LoginError::SessionTypeNotSupported(_) => LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
            LoginError::TargetNotFound(_) | LoginError::NotOnThisPortal { .. } => {
                LoginStatus::NOT_FOUND
            }
            LoginError::NotAuthorized { .. } => LoginStatus::AUTHORIZATION_FAILURE,
            LoginError::AuthenticationFailed { .. } => LoginStatus::AUTHENTICATION_FAILURE,
            LoginError::Internal(_) => LoginStatus::TARGET_ERROR,
        }
    }

    /// Text data carried by the failure response.
    pub fn answer(&self) -> Vec<u8> {
        match self {
            LoginError::AuthenticationFailed { answer, .. }
            | LoginError::NegotiationFailed { answer, .. } => answer.clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_status() {
        let cases = [
            (LoginError::protocol("x"), 0x0200),
            (LoginError::Text(TextError::Unterminated), 0x0200),
            (LoginError::UnsupportedVersion { min: 1, max: 2 }, 0x0205),
            (LoginError::MissingParameter("InitiatorName"), 0x0207),
            (LoginError::SessionTypeNotSupported("X".into()), 0x0209),
            (LoginError::TargetNotFound("t".into()), 0x0203),
            (
                LoginError::NotAuthorized {
                    initiator: "i".into(),
                    target: "t".into(),
                },
                0x0202,
            ),
            (
                LoginError::AuthenticationFailed {
                    reason: "r".into(),
                    answer: vec![],
                },
                0x0201,
            ),
            (LoginError::Internal("bug".into()), 0x0300),
        ];
        for (e, code) in cases {
            let s = e.status();
            assert_eq!(u16::from(s.class) << 8 | u16::from(s.detail), code, "{e}");
        }
    }
}
