//! One iSCSI connection, sans-I/O: login phase, then full feature phase (RFC 7143 §3–§4, §11).
//!
//! Inputs are `handle_*` calls (bytes received, backing-store completions, control-thread answers,
//! the clock); outputs are drained with `poll_*` and `output()`. It never touches a socket, a ring
//! or a clock of its own.
#![forbid(unsafe_code)]

mod admin;
mod budget;
mod cmdsn;
mod command;
mod conn;
mod context;
mod control;
mod data_in;
mod error;
mod full;
mod itt;
mod job;
mod logout;
mod lu_state;
mod nop;
mod output;
pub mod ratelog;
mod sanitize;
pub mod sn;
pub mod stats;
mod task;
mod text;
mod tmf;
mod write;

pub use admin::SessionInfo;
pub use conn::{
    CloseReason, Connection, ControlRequest, IoCompletion, IoOp, IoRequest, Landing, LuReply,
    Output, Payload, Registration, RemoteAbort, WriteLock,
};
pub use context::{PortalContext, TargetRuntime, Tuning};
pub use control::{LuOp, LuRequest};
pub use error::{DataOutError, SessionError};
pub use full::RANGE_LOCK_RETRY;
pub use output::{payload_bytes, MAX_STAGED_OUTPUT};
pub use ratelog::LogLimiter;
pub use task::IoToken;

#[cfg(test)]
mod tests;
