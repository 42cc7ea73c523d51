//! Which sense a failed backing-store operation gets, by its errno.
//!
//! A store that cannot be reached is not a damaged medium: a storage cluster that does not
//! answer (librados gives up with ETIMEDOUT after `rados_osd_op_timeout`) or a connection that
//! is gone makes the unit NOT READY, in the process of becoming ready, which initiators retry
//! (Linux delays and retries the command rather than failing it). A client that the cluster has
//! fenced off (librados's EBLOCKLISTED, which is ESHUTDOWN) will not become ready by waiting:
//! NOT READY, cause not reportable. Everything else (EIO and the rest) is a MEDIUM ERROR: an
//! unrecovered read error or a write error, with the command's LBA.

use super::sense::Sense;

/// errnos of a store that cannot be reached for now.
const UNREACHABLE: [i32; 6] = [
    libc::ETIMEDOUT,
    libc::ENOTCONN,
    libc::ECONNREFUSED,
    libc::ECONNRESET,
    libc::EHOSTUNREACH,
    libc::ENETUNREACH,
];

/// The sense for an operation that failed with `errno`; `lba` goes into INFORMATION of a
/// MEDIUM ERROR.
pub(super) fn sense_of(errno: i32, is_write: bool, lba: u64) -> Sense {
    if UNREACHABLE.contains(&errno) {
        return Sense::becoming_ready();
    }
    if errno == libc::ESHUTDOWN {
        return Sense::not_ready();
    }
    let sense = if is_write {
        Sense::write_error()
    } else {
        Sense::unrecovered_read_error()
    };
    sense.with_info(lba)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::sense::SenseKey;

    fn parts(s: Sense) -> (SenseKey, u8, u8) {
        let b = s.encode(crate::scsi::SenseFormat::Fixed);
        (SenseKey(b[2] & 0x0f), b[12], b[13])
    }

    #[test]
    fn unreachable_cluster_is_not_ready_becoming_ready() {
        for errno in [libc::ETIMEDOUT, libc::ENOTCONN, libc::ECONNREFUSED] {
            assert_eq!(
                parts(sense_of(errno, false, 7)),
                (SenseKey::NOT_READY, 0x04, 0x01)
            );
            assert_eq!(
                parts(sense_of(errno, true, 7)),
                (SenseKey::NOT_READY, 0x04, 0x01)
            );
        }
    }

    #[test]
    fn fenced_client_is_not_ready_cause_not_reportable() {
        assert_eq!(
            parts(sense_of(libc::ESHUTDOWN, true, 0)),
            (SenseKey::NOT_READY, 0x04, 0x00)
        );
    }

    #[test]
    fn eio_is_a_medium_error_naming_the_lba() {
        let read = sense_of(libc::EIO, false, 42).encode(crate::scsi::SenseFormat::Fixed);
        assert_eq!((read[2] & 0x0f, read[12], read[13]), (0x03, 0x11, 0x00));
        assert_eq!(u32::from_be_bytes(read[3..7].try_into().unwrap()), 42);
        assert_eq!(
            parts(sense_of(libc::EIO, true, 1)),
            (SenseKey::MEDIUM_ERROR, 0x0c, 0x00)
        );
        assert_eq!(
            parts(sense_of(libc::ENOSPC, true, 1)),
            (SenseKey::MEDIUM_ERROR, 0x0c, 0x00)
        );
    }
}
