//! SANITIZE (SBC-3): OVERWRITE and BLOCK ERASE run as [`Job`]s over the whole medium, EXIT
//! FAILURE MODE has nothing to exit, CRYPTO ERASE is not supported (no encryption), so it is
//! not in the command table and is refused with INVALID FIELD IN CDB like any unknown service
//! action.
//!
//! The operation is the unit's, not the command's (SBC-4 §4.11): while it runs every nexus is
//! refused the medium with SANITIZE IN PROGRESS and its progress (see `unit::check_medium`),
//! and it goes on when its command is aborted, its unit reset or its nexus lost; the session
//! layer then keeps driving the job without an answer (`session::sanitize`). With IMMED the
//! command answers GOOD once its parameter list is accepted and the operation started.
//!
//! A sanitize that fails (an I/O error, or interrupted by the unit's removal or the daemon's
//! stop, which a restart remembers) leaves the medium in failure mode (SBC-4 §4.11.3): medium
//! access is refused with MEDIUM ERROR, SANITIZE COMMAND FAILED until another sanitize
//! completes. If the failed one had AUSE set, EXIT FAILURE MODE also ends it; otherwise EXIT
//! FAILURE MODE, and a sanitize with AUSE set, are refused with INVALID FIELD IN CDB.

use super::cdb::{self, Cdb};
use super::job::{Job, SanitizeBits};
use super::medium::SanitizeFailure;
use super::sense::Sense;
use super::{done, LuInfo, Plan};

/// SBC-3 SANITIZE byte 1: IMMED (bit 7), reserved (bit 6), AUSE (bit 5), SERVICE ACTION.
const RESERVED_BIT: u8 = 6;
const IMMED_BIT: u8 = 7;
const AUSE_BIT: u8 = 5;
/// The SERVICE ACTION field's highest bit (byte 1 bits 4..0), for the sense field pointer.
const SERVICE_ACTION_BIT: u8 = 4;
/// SBC-3 SANITIZE bytes 2..=6 are reserved; PARAMETER LIST LENGTH is bytes 7..=8.
const RESERVED_BYTES: std::ops::RangeInclusive<usize> = 2..=6;
const LENGTH_AT: u16 = 7;
/// SBC-3 OVERWRITE parameter list: byte 0 INVERT (bit 7), TEST (bits 6..5), OVERWRITE COUNT
/// (bits 4..0); bytes 2..=3 INITIALIZATION PATTERN LENGTH; the pattern from byte 4.
const OVERWRITE_HEADER: usize = 4;
const INVERT: u8 = 0x80;
const OVERWRITE_COUNT: u8 = 0x1F;

/// SBC-3 SANITIZE: reserved fields are refused, then the PARAMETER LIST LENGTH the service
/// action allows (OVERWRITE: a header and 1 to one block of pattern, i.e. 5 to block size + 4
/// bytes; the others none), then write protection.
pub(super) fn sanitize(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let invalid = |byte: u16, bit| Err(Sense::invalid_field_in_cdb().at_cdb(byte, bit));
    if cdb.bit(1, RESERVED_BIT) {
        return invalid(1, Some(RESERVED_BIT));
    }
    if let Some(byte) = RESERVED_BYTES.clone().find(|&b| cdb.u8(b) != 0) {
        return invalid(byte as u16, None);
    }
    let len = cdb.be16(7);
    let service_action = cdb::service_action(&cdb);
    let allowed = match service_action {
        cdb::SA_SANITIZE_OVERWRITE => (OVERWRITE_HEADER as u32 + 1
            ..=lu.block_size + OVERWRITE_HEADER as u32)
            .contains(&u32::from(len)),
        _ => len == 0,
    };
    if !allowed {
        return invalid(LENGTH_AT, None);
    }
    let restricted = lu.shared.medium.sanitize_failure() == Some(SanitizeFailure::Restricted);
    if service_action == cdb::SA_SANITIZE_EXIT_FAILURE_MODE {
        // SBC-4 §5.24.1: a failure in the restricted completion mode is not left this way.
        return match lu.shared.medium.exit_failure_mode() {
            true => Ok(done()),
            false => invalid(1, Some(SERVICE_ACTION_BIT)),
        };
    }
    let bits = SanitizeBits {
        immed: cdb.bit(1, IMMED_BIT),
        ause: cdb.bit(1, AUSE_BIT),
    };
    // SBC-4 §4.11.1: after a restricted failure, only a restricted sanitize may follow.
    if restricted && bits.ause {
        return invalid(1, Some(AUSE_BIT));
    }
    if lu.is_write_protected() {
        return Err(Sense::write_protected());
    }
    let job = match service_action {
        cdb::SA_SANITIZE_OVERWRITE => Job::new_sanitize_overwrite(lu, len, LENGTH_AT, bits),
        cdb::SA_SANITIZE_BLOCK_ERASE => Job::new_block_erase(lu, LENGTH_AT, bits),
        _ => return invalid(1, Some(4)),
    };
    Ok(Plan::Job(Box::new(job)))
}

/// The block an OVERWRITE writes everywhere, from its parameter list (`data`, cut to
/// `parameter_list_length`): the INITIALIZATION PATTERN repeated to fill a block. OVERWRITE
/// COUNT zero, a pattern length of zero, above the block size or beyond the list are INVALID
/// FIELD IN PARAMETER LIST. Every pass but the final one would be overwritten, so only the
/// final pass is written: the pattern, inverted when INVERT is set and the count is even (the
/// pattern is inverted between consecutive passes).
pub(super) fn overwrite_block(
    lu: &LuInfo,
    data: &[u8],
    parameter_list_length: u32,
) -> Result<Vec<u8>, Sense> {
    let data = data.get(..parameter_list_length as usize).unwrap_or(data);
    let Some(header) = data.get(..OVERWRITE_HEADER) else {
        return Err(Sense::parameter_list_length_error());
    };
    let count = header[0] & OVERWRITE_COUNT;
    if count == 0 {
        return Err(Sense::invalid_field_in_param_list().at_param(0, Some(4)));
    }
    let pattern_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let bs = lu.block_size as usize;
    let pattern = data
        .get(OVERWRITE_HEADER..OVERWRITE_HEADER + pattern_len)
        .filter(|p| !p.is_empty() && p.len() <= bs)
        .ok_or_else(|| Sense::invalid_field_in_param_list().at_param(2, None))?;
    let mut block: Vec<u8> = pattern.iter().copied().cycle().take(bs).collect();
    if header[0] & INVERT != 0 && count.is_multiple_of(2) {
        block.iter_mut().for_each(|b| *b = !*b);
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::cdb::op;
    use crate::scsi::tests::lu_with;

    fn cdb(byte1: u8, len: u16) -> [u8; 10] {
        let l = len.to_be_bytes();
        [op::SANITIZE, byte1, 0, 0, 0, 0, 0, l[0], l[1], 0]
    }

    fn unit() -> LuInfo {
        lu_with(|u| u.num_blocks = 64)
    }

    fn is_job(r: Result<Plan, Sense>) -> bool {
        matches!(r, Ok(Plan::Job(_)))
    }

    #[test]
    fn overwrite_parameter_list_length_is_5_to_block_size_plus_4() {
        let lu = unit();
        for len in [0, 1, 4, 517, 0xFFFF] {
            assert_eq!(
                sanitize(&lu, Cdb::new(&cdb(0x01, len))),
                Err(Sense::invalid_field_in_cdb().at_cdb(7, None)),
                "{len}"
            );
        }
        for len in [5, 8, 260, 516] {
            assert!(is_job(sanitize(&lu, Cdb::new(&cdb(0x01, len)))), "{len}");
        }
        assert!(
            is_job(sanitize(&lu, Cdb::new(&cdb(0x81 | 0x20, 516)))),
            "IMMED, AUSE"
        );
    }

    #[test]
    fn immed_makes_the_job_answer_when_started() {
        let lu = unit();
        for (byte1, len, immed) in [(0x01, 8, false), (0x81, 8, true), (0x82, 0, true)] {
            let Ok(Plan::Job(job)) = sanitize(&lu, Cdb::new(&cdb(byte1, len))) else {
                panic!("{byte1:#04x}");
            };
            assert!(job.is_sanitize());
            assert_eq!(job.answers_when_started(), immed, "{byte1:#04x}");
        }
    }

    #[test]
    fn block_erase_and_exit_failure_mode_take_no_parameter_list() {
        let lu = unit();
        assert!(is_job(sanitize(&lu, Cdb::new(&cdb(0x02, 0)))));
        assert_eq!(sanitize(&lu, Cdb::new(&cdb(0x1F, 0))), Ok(done()));
        for sa in [0x02, 0x1F] {
            assert_eq!(
                sanitize(&lu, Cdb::new(&cdb(sa, 8))),
                Err(Sense::invalid_field_in_cdb().at_cdb(7, None))
            );
        }
    }

    #[test]
    fn after_a_failure_without_ause_only_a_sanitize_without_ause_is_taken() {
        let lu = unit();
        drop(lu.shared.medium.begin_sanitize(false).unwrap());
        assert_eq!(
            sanitize(&lu, Cdb::new(&cdb(0x1F, 0))),
            Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(4))),
            "EXIT FAILURE MODE"
        );
        assert_eq!(
            sanitize(&lu, Cdb::new(&cdb(0x22, 0))),
            Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(5))),
            "BLOCK ERASE with AUSE"
        );
        let Ok(Plan::Job(job)) = sanitize(&lu, Cdb::new(&cdb(0x02, 0))) else {
            panic!("BLOCK ERASE without AUSE");
        };
        assert!(!job.sanitize_ause());
        assert!(lu.shared.medium.sanitize_failure().is_some());
    }

    #[test]
    fn exit_failure_mode_ends_a_failure_with_ause() {
        let lu = unit();
        drop(lu.shared.medium.begin_sanitize(true).unwrap());
        let Ok(Plan::Job(job)) = sanitize(&lu, Cdb::new(&cdb(0x22, 0))) else {
            panic!("BLOCK ERASE with AUSE");
        };
        assert!(job.sanitize_ause());
        assert_eq!(sanitize(&lu, Cdb::new(&cdb(0x1F, 0))), Ok(done()));
        assert_eq!(lu.shared.medium.sanitize_failure(), None);
    }

    #[test]
    fn reserved_bits_and_bytes_are_refused() {
        let lu = unit();
        assert_eq!(
            sanitize(&lu, Cdb::new(&cdb(0x42, 0))),
            Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(6)))
        );
        for byte in 2..=6 {
            let mut c = cdb(0x01, 516);
            c[byte] = byte as u8;
            assert_eq!(
                sanitize(&lu, Cdb::new(&c)),
                Err(Sense::invalid_field_in_cdb().at_cdb(byte as u16, None))
            );
        }
    }

    #[test]
    fn read_only_is_write_protected_after_the_cdb_checks() {
        let ro = lu_with(|u| u.read_only = true);
        let wp = Err(Sense::write_protected());
        assert_eq!(sanitize(&ro, Cdb::new(&cdb(0x01, 516))), wp);
        assert_eq!(sanitize(&ro, Cdb::new(&cdb(0x02, 0))), wp);
        assert_eq!(
            sanitize(&ro, Cdb::new(&cdb(0x02, 8))),
            Err(Sense::invalid_field_in_cdb().at_cdb(7, None))
        );
        assert_eq!(sanitize(&ro, Cdb::new(&cdb(0x1F, 0))), Ok(done()));
    }

    fn params(byte0: u8, pattern_len: u16, pattern: &[u8]) -> Vec<u8> {
        let l = pattern_len.to_be_bytes();
        let mut d = vec![byte0, 0, l[0], l[1]];
        d.extend_from_slice(pattern);
        d
    }

    #[test]
    fn overwrite_block_repeats_the_pattern_and_inverts_after_an_even_count() {
        let lu = unit();
        let p = params(0x01, 3, &[1, 2, 3]);
        let b = overwrite_block(&lu, &p, 7).unwrap();
        assert_eq!(b.len(), 512);
        assert_eq!(&b[..7], &[1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(b[511], [1, 2, 3][511 % 3]);
        let odd = overwrite_block(&lu, &params(0x83, 1, &[0x0F]), 5).unwrap();
        assert!(odd.iter().all(|&x| x == 0x0F));
        let even = overwrite_block(&lu, &params(0x82, 1, &[0x0F]), 5).unwrap();
        assert!(even.iter().all(|&x| x == 0xF0));
    }

    #[test]
    fn overwrite_parameter_list_errors() {
        let lu = unit();
        let field = |at| Err(Sense::invalid_field_in_param_list().at_param(at, None));
        let block = vec![0xAA; 512];
        assert_eq!(
            overwrite_block(&lu, &params(0x00, 512, &block), 516),
            Err(Sense::invalid_field_in_param_list().at_param(0, Some(4))),
            "OVERWRITE COUNT 0"
        );
        assert_eq!(
            overwrite_block(&lu, &params(0x01, 0, &block), 516),
            field(2)
        );
        let long = vec![0; 516];
        assert_eq!(
            overwrite_block(&lu, &params(0x01, 516, &long), 520),
            field(2)
        );
        assert_eq!(
            overwrite_block(&lu, &params(0x01, 8, &[1, 2]), 6),
            field(2),
            "pattern beyond the list"
        );
        assert_eq!(
            overwrite_block(&lu, &params(0x01, 4, &[1, 2, 3, 4]), 7),
            field(2),
            "cut by the parameter list length"
        );
        assert_eq!(
            overwrite_block(&lu, &[1, 0], 2),
            Err(Sense::parameter_list_length_error())
        );
    }
}
