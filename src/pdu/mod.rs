//! iSCSI PDU codec (RFC 7143 §11): the BHS, each PDU family, framing, padding and digests.
//! Knows nothing of sessions or sockets.
#![forbid(unsafe_code)]

pub mod bhs;
pub mod digest;
pub mod frame;
pub mod login;
pub mod logout;
pub mod nop;
pub mod reject;
pub mod scsi;
pub mod text;
pub mod tmf;

pub use bhs::{Bhs, Opcode, BHS_LEN, RESERVED_TAG};
pub use frame::{Digests, Frame, FrameError, Layout};
