//! Per-I_T-nexus state kept between commands, and REQUEST SENSE which reads it.

use super::cdb::Cdb;
use super::copy::CopyRecords;
use super::medium::Prevents;
use super::sense::{Sense, SenseFormat};
use super::ua::UnitAttentions;
use super::{data_in, Plan};

/// Per-I_T-nexus state the LU layer keeps between commands. The transport owns one per session.
///
/// Mode pages may be kept per I_T nexus (SPC-4 mode parameters overview), so the control page's D_SENSE lives
/// here and applies to every LU the session reaches.
#[derive(Debug, Default, Clone)]
pub struct NexusState {
    descriptor_sense: bool,
    pending: Option<Sense>,
    /// Unit attention conditions waiting to be reported, per logical unit.
    pub unit_attentions: UnitAttentions,
    /// The removable media this nexus prevents the removal of; given back when dropped.
    prevents: Prevents,
    /// Its EXTENDED COPY commands with a list identifier (RECEIVE COPY RESULTS, COPY STATUS).
    pub(super) copies: CopyRecords,
}

impl NexusState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Format of sense data returned with CHECK CONDITION (control mode page D_SENSE).
    pub fn sense_format(&self) -> SenseFormat {
        if self.descriptor_sense {
            SenseFormat::Descriptor
        } else {
            SenseFormat::Fixed
        }
    }

    /// D_SENSE as reported in the control mode page.
    pub fn descriptor_sense(&self) -> bool {
        self.descriptor_sense
    }

    pub fn set_descriptor_sense(&mut self, on: bool) {
        self.descriptor_sense = on;
    }

    /// Sense for the next REQUEST SENSE to report once (e.g. a unit attention the transport
    /// could not deliver with a status). With autosense, CHECK CONDITION sense is never kept.
    pub fn set_pending_sense(&mut self, sense: Sense) {
        self.pending = Some(sense);
    }

    pub fn take_pending_sense(&mut self) -> Option<Sense> {
        self.pending.take()
    }

    /// Whether this nexus prevents removal of `lun`'s medium (PREVENT ALLOW MEDIUM REMOVAL).
    pub fn is_preventing(&self, lun: u16) -> bool {
        self.prevents.is_preventing(lun)
    }

    /// I_T nexus loss (logout, connection loss, I_T NEXUS RESET) without dropping the state:
    /// this nexus's preventions end. Dropping the `NexusState` does the same.
    pub fn nexus_loss(&mut self) {
        self.prevents.release_all();
    }

    pub(super) fn prevents_mut(&mut self) -> &mut Prevents {
        &mut self.prevents
    }
}

/// SPC-4 REQUEST SENSE: DESC (byte 1 bit 0) picks the format, byte 4 is the allocation
/// length. A pending unit attention is reported (and cleared) first (SAM-5 §5.14). An unknown
/// LU answers GOOD with LOGICAL UNIT NOT SUPPORTED as the sense data. With nothing pending,
/// `in_progress` is reported: an operation the LU is busy with (a sanitize and how far it got).
pub(super) fn request_sense(
    nexus: &mut NexusState,
    cdb: Cdb,
    lun: Option<u16>,
    standing: Option<Sense>,
) -> Plan {
    let format = if cdb.bit(1, 0) {
        SenseFormat::Descriptor
    } else {
        SenseFormat::Fixed
    };
    let sense = match lun {
        Some(lun) => match nexus.unit_attentions.take(lun) {
            Some(ua) => ua.sense(),
            None => nexus
                .take_pending_sense()
                .or(standing)
                .unwrap_or_else(Sense::no_sense),
        },
        None => Sense::lun_not_supported(),
    };
    data_in(sense.encode(format), u32::from(cdb.u8(4)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::{Completion, ScsiStatus};

    fn data(plan: Plan) -> Vec<u8> {
        match plan {
            Plan::Complete(Completion {
                status: ScsiStatus::GOOD,
                data,
                ..
            }) => data,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_operation_in_progress_is_reported_after_what_is_pending() {
        let mut n = NexusState::new();
        let cdb = [0x03, 0, 0, 0, 252, 0];
        let busy = || Some(Sense::sanitize_in_progress(0x4000));
        n.set_pending_sense(Sense::write_protected());
        let first = data(request_sense(&mut n, Cdb::new(&cdb), Some(0), busy()));
        assert_eq!((first[2], first[12]), (0x07, 0x27));
        let second = data(request_sense(&mut n, Cdb::new(&cdb), Some(0), busy()));
        assert_eq!((second[2], second[12], second[13]), (0x02, 0x04, 0x1B));
        assert_eq!(&second[15..18], &[0x80, 0x40, 0x00]);
    }

    #[test]
    fn nothing_pending_reports_no_sense_fixed() {
        let mut n = NexusState::new();
        let d = data(request_sense(
            &mut n,
            Cdb::new(&[0x03, 0, 0, 0, 252, 0]),
            Some(0),
            None,
        ));
        assert_eq!(d, Sense::no_sense().encode(SenseFormat::Fixed));
    }

    #[test]
    fn desc_bit_selects_descriptor_format() {
        let mut n = NexusState::new();
        let d = data(request_sense(
            &mut n,
            Cdb::new(&[0x03, 1, 0, 0, 252, 0]),
            Some(0),
            None,
        ));
        assert_eq!(d, [0x72, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn pending_sense_is_reported_once() {
        let mut n = NexusState::new();
        n.set_pending_sense(Sense::write_protected());
        let cdb = [0x03, 0, 0, 0, 18, 0];
        let first = data(request_sense(&mut n, Cdb::new(&cdb), Some(0), None));
        assert_eq!((first[2], first[12]), (0x07, 0x27));
        let second = data(request_sense(&mut n, Cdb::new(&cdb), Some(0), None));
        assert_eq!((second[2], second[12]), (0x00, 0x00));
    }

    #[test]
    fn allocation_length_truncates() {
        let mut n = NexusState::new();
        let d = data(request_sense(
            &mut n,
            Cdb::new(&[0x03, 0, 0, 0, 8, 0]),
            Some(0),
            None,
        ));
        assert_eq!(d.len(), 8);
    }

    #[test]
    fn unknown_lu_reports_lun_not_supported_with_good_status() {
        let mut n = NexusState::new();
        n.set_pending_sense(Sense::write_protected());
        let d = data(request_sense(
            &mut n,
            Cdb::new(&[0x03, 0, 0, 0, 18, 0]),
            None,
            None,
        ));
        assert_eq!((d[2], d[12], d[13]), (0x05, 0x25, 0x00));
        assert!(
            n.take_pending_sense().is_some(),
            "pending sense kept for the real LU"
        );
    }

    #[test]
    fn d_sense_selects_check_condition_format() {
        let mut n = NexusState::new();
        assert_eq!(n.sense_format(), SenseFormat::Fixed);
        n.set_descriptor_sense(true);
        assert!(n.descriptor_sense());
        assert_eq!(n.sense_format(), SenseFormat::Descriptor);
    }
}
