//! ringtgt: a thread-per-core io_uring iSCSI target. See DESIGN.md for the layer map.

pub mod pdu;
