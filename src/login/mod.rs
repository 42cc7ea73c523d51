//! Login phase (RFC 7143 §6, §11.12-§11.13, §12, §13): text keys, negotiation, the login state
//! machine of one connection, and discovery `SendTargets`. Pure code: no sockets, no clock.
//!
//! The transport feeds each Login Request (decoded BHS + data segment) to [`Login::handle`] and
//! sends what the returned [`LoginAction`] says; on [`LoginAction::Ready`] it registers the session
//! and finishes with [`Login::accept`] or [`Login::refuse`].
//!
//! Decisions where RFC 7143 leaves room (each is also noted where it is implemented):
//! - A key in the wrong stage, a key sent twice (MaxRecvDataSegmentLength excepted), a
//!   target-only key from the initiator: login reject, initiator error (§6.3: protocol error).
//! - No common AuthMethod: `AuthMethod=Reject` + authentication failure (0x0201), as tgt does.
//!   With a CHAP policy (per target, or for discovery) CHAP is the only method; without one,
//!   None is (CHAP decisions: [`chap`]).
//! - While required authentication is unfinished, a transit request is answered T=0 if it moved
//!   the exchange on, and fails with 0x0201 if it did not; a login that starts in (or reaches)
//!   the operational stage unauthenticated fails with 0x0201.
//! - Access: a normal login needs the initiator's name and address allowed by the target
//!   (0x0202 otherwise); SendTargets lists only such targets.
//! - A required digest refused by the initiator: `HeaderDigest=Reject` + initiator error.
//! - IFMarker/OFMarker answered `No` (§13.25 MAY), IFMarkInt/OFMarkInt `Reject` (§13.25 MUST).
//! - The target offers keys itself only when the RFC default is unacceptable to it (digest
//!   required, smaller bursts, ImmediateData=No, times); a direct security → full feature
//!   transit is then answered with NSG=operational (§6.3: the target selects NSG ≤ requested).
//! - TargetPortalGroupTag is sent in the first response of discovery sessions too.
//! - StatSN starts at the first request's ExpStatSN; login responses keep the command window
//!   closed (MaxCmdSN = ExpCmdSN = CmdSN) until the final response.
#![forbid(unsafe_code)]

pub mod auth;
pub mod chap;
pub mod discovery;
pub mod error;
pub mod identity;
pub mod keys;
pub mod machine;
pub mod negotiate;
pub mod params;
pub mod pending;
pub mod rules;
pub mod text;
pub mod value;

#[cfg(test)]
mod tests;

pub use auth::Authenticator;
pub use chap::{
    ChallengeSource, ChapAlgorithm, ChapCredentials, ChapPolicy, ChapPolicyError, ChapSecret,
    OsRandom, RandomUnavailable,
};
pub use discovery::{send_targets, text_request_answer};
pub use error::LoginError;
pub use identity::{portal_matches, PortalGroup, TargetEntry};
pub use machine::{Login, LoginAction, LoginEnv, LoginOutcome, MAX_LOGIN_DATA};
pub use params::{DigestPolicy, SessionParams, SessionType, TargetOffer};
pub use pending::PendingText;
pub use text::{encode_pairs, parse_pairs, TextError};
