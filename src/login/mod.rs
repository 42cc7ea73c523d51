//! Login phase (RFC 7143 §6, §11.12-§11.13, §12, §13): text keys, negotiation, the login state
//! machine of one connection, and discovery `SendTargets`. Pure code: no sockets, no clock.
//!
//! The transport feeds each Login Request (decoded BHS + data segment) to [`Login::handle`] and
//! sends what the returned [`LoginAction`] says; on [`LoginAction::Ready`] it registers the session
//! and finishes with [`Login::accept`] or [`Login::refuse`].
#![forbid(unsafe_code)]

pub mod auth;
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
pub use discovery::{send_targets, text_request_answer};
pub use error::LoginError;
pub use identity::TargetEntry;
pub use machine::{Login, LoginAction, LoginEnv, LoginOutcome, MAX_LOGIN_DATA};
pub use params::{DigestPolicy, SessionParams, SessionType, TargetOffer};
pub use pending::PendingText;
pub use text::{encode_pairs, parse_pairs, TextError};
