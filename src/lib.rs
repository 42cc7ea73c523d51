//! ringtgt: a thread-per-core io_uring iSCSI target. See DESIGN.md for the layer map.

pub mod backstore;
#[cfg(feature = "rbd")]
pub mod ceph;
pub mod cli;
pub mod config;
pub mod control;
pub mod ctl;
pub mod daemon;
pub mod login;
pub mod numa;
pub mod nvme;
pub mod pdu;
pub mod reactor;
pub mod retry;
pub mod scsi;
pub mod session;
pub mod signals;
pub mod startup;
