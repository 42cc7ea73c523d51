//! Sense data: what went wrong, encoded in fixed or descriptor format (SPC-4 §4.5).

/// SPC-4 §4.5.6: SENSE KEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenseKey(pub u8);

impl SenseKey {
    pub const NO_SENSE: Self = Self(0x0);
    pub const RECOVERED_ERROR: Self = Self(0x1);
    pub const NOT_READY: Self = Self(0x2);
    pub const MEDIUM_ERROR: Self = Self(0x3);
    pub const HARDWARE_ERROR: Self = Self(0x4);
    pub const ILLEGAL_REQUEST: Self = Self(0x5);
    pub const UNIT_ATTENTION: Self = Self(0x6);
    pub const DATA_PROTECT: Self = Self(0x7);
    pub const BLANK_CHECK: Self = Self(0x8);
    pub const VENDOR_SPECIFIC: Self = Self(0x9);
    pub const COPY_ABORTED: Self = Self(0xA);
    pub const ABORTED_COMMAND: Self = Self(0xB);
    pub const VOLUME_OVERFLOW: Self = Self(0xD);
    pub const MISCOMPARE: Self = Self(0xE);
    pub const COMPLETED: Self = Self(0xF);
}

/// Which of the two sense data layouts to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenseFormat {
    /// Response code 70h, 18 bytes (SPC-4 §4.5.3).
    #[default]
    Fixed,
    /// Response code 72h, header plus descriptors (SPC-4 §4.5.2).
    Descriptor,
}

/// Sense-key specific field pointer for ILLEGAL REQUEST (SPC-4 §4.5.2.4.2), or segment pointer
/// for COPY ABORTED (SPC-4 §4.5.2.4.5): the same three bytes, C/D or SD marking what the byte
/// offset is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// C/D bit: true when the bad field is in the CDB, false when in the parameter list.
    pub in_cdb: bool,
    /// SD bit (COPY ABORTED): the offset is within the segment descriptor that
    /// COMMAND-SPECIFIC INFORMATION names, not within the parameter list.
    pub in_segment: bool,
    /// Byte offset of the (first byte of the) bad field.
    pub byte: u16,
    /// Most significant bit of the bad field within `byte`, when it is narrower than a byte.
    pub bit: Option<u8>,
}

impl FieldPointer {
    pub const fn cdb(byte: u16, bit: Option<u8>) -> Self {
        Self {
            in_cdb: true,
            in_segment: false,
            byte,
            bit,
        }
    }

    pub const fn param(byte: u16, bit: Option<u8>) -> Self {
        Self {
            in_cdb: false,
            in_segment: false,
            byte,
            bit,
        }
    }

    /// The three sense-key specific bytes, SKSV set.
    fn encode(&self) -> [u8; 3] {
        let mut b0 = SKSV;
        if self.in_cdb {
            b0 |= 0x40; // C/D
        }
        if self.in_segment {
            b0 |= 0x20; // SD
        }
        if let Some(bit) = self.bit {
            b0 |= 0x08 | (bit & 0x07); // BPV + BIT POINTER
        }
        let [hi, lo] = self.byte.to_be_bytes();
        [b0, hi, lo]
    }
}

/// SPC-4 §4.5.2.4.1: sense-key specific valid.
const SKSV: u8 = 0x80;
/// SPC-4 §4.5.1: RESPONSE CODE values for current errors.
const RESPONSE_FIXED_CURRENT: u8 = 0x70;
const RESPONSE_DESC_CURRENT: u8 = 0x72;
/// SPC-4 §4.5.3: fixed format is 18 bytes, so ADDITIONAL SENSE LENGTH is 10.
const FIXED_LEN: usize = 18;
/// SPC-4 §4.5.2.2 information descriptor, §4.5.2.3 command-specific information descriptor,
/// §4.5.2.4 sense key specific descriptor.
const DESC_INFORMATION: u8 = 0x00;
const DESC_COMMAND_SPECIFIC: u8 = 0x01;
const DESC_SENSE_KEY_SPECIFIC: u8 = 0x02;

/// One sense condition: key, additional sense code and qualifier, and optional details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    pub key: SenseKey,
    pub asc: u8,
    pub ascq: u8,
    /// INFORMATION field (e.g. the first failing LBA of a medium error).
    pub info: Option<u64>,
    /// COMMAND-SPECIFIC INFORMATION field (EXTENDED COPY: the failing segment's number).
    pub command_specific: Option<u32>,
    pub field_pointer: Option<FieldPointer>,
    /// Sense-key specific PROGRESS INDICATION (SPC-4 §4.5.2.4.3), in 65536ths, for NOT READY
    /// conditions of an operation in progress; a field pointer takes its place if both are set.
    pub progress: Option<u16>,
}

impl Sense {
    pub const fn new(key: SenseKey, asc: u8, ascq: u8) -> Self {
        Self {
            key,
            asc,
            ascq,
            info: None,
            command_specific: None,
            field_pointer: None,
            progress: None,
        }
    }

    /// The sense-key specific bytes (SKSV set), if any.
    fn key_specific(&self) -> Option<[u8; 3]> {
        match (&self.field_pointer, self.progress) {
            (Some(fp), _) => Some(fp.encode()),
            (None, Some(p)) => {
                let [hi, lo] = p.to_be_bytes();
                Some([SKSV, hi, lo])
            }
            (None, None) => None,
        }
    }

    /// Attach the INFORMATION field.
    pub fn with_info(mut self, info: u64) -> Self {
        self.info = Some(info);
        self
    }

    /// Point at a CDB field (byte, and the field's most significant bit when narrower than a byte).
    pub fn at_cdb(mut self, byte: u16, bit: Option<u8>) -> Self {
        self.field_pointer = Some(FieldPointer::cdb(byte, bit));
        self
    }

    /// Point at a parameter list field.
    pub fn at_param(mut self, byte: u16, bit: Option<u8>) -> Self {
        self.field_pointer = Some(FieldPointer::param(byte, bit));
        self
    }

    /// SPC-4 EXTENDED COPY "errors detected during processing of segment descriptors": the
    /// condition becomes COPY ABORTED (same additional sense code), COMMAND-SPECIFIC
    /// INFORMATION bytes 2..=3 name the segment descriptor (bytes 0..=1, the offsets of copy
    /// target sense data, stay zero: none is appended), and a field pointer is made relative
    /// to that segment descriptor (SD set); `byte` points into it when given.
    pub fn in_copy_segment(mut self, segment: u16, byte: Option<u16>) -> Self {
        self.key = SenseKey::COPY_ABORTED;
        self.command_specific = Some(u32::from(segment));
        self.field_pointer = byte.map(|byte| FieldPointer {
            in_cdb: false,
            in_segment: true,
            byte,
            bit: None,
        });
        self
    }

    /// NO SENSE, NO ADDITIONAL SENSE INFORMATION (00h/00h).
    pub const fn no_sense() -> Self {
        Self::new(SenseKey::NO_SENSE, 0x00, 0x00)
    }

    /// ILLEGAL REQUEST, OPERATION IN PROGRESS (00h/16h): SPC-4 EXTENDED COPY with the LIST
    /// IDENTIFIER of a copy still running on the same I_T nexus.
    pub const fn operation_in_progress() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x00, 0x16)
    }

    /// COPY ABORTED, UNREACHABLE COPY TARGET (08h/04h): a segment names a CSCD descriptor that
    /// is not in the list, or one whose logical unit the copy manager cannot reach.
    pub const fn unreachable_copy_target() -> Self {
        Self::new(SenseKey::COPY_ABORTED, 0x08, 0x04)
    }

    /// TOO MANY TARGET DESCRIPTORS (26h/06h): more CSCD descriptors than MAXIMUM CSCD
    /// DESCRIPTOR COUNT.
    pub const fn too_many_target_descriptors() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x26, 0x06)
    }

    /// UNSUPPORTED TARGET DESCRIPTOR TYPE CODE (26h/07h).
    pub const fn unsupported_target_descriptor_type() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x26, 0x07)
    }

    /// TOO MANY SEGMENT DESCRIPTORS (26h/08h).
    pub const fn too_many_segment_descriptors() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x26, 0x08)
    }

    /// UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE (26h/09h).
    pub const fn unsupported_segment_descriptor_type() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x26, 0x09)
    }

    /// INSUFFICIENT RESOURCES (55h/03h): e.g. more identified copies at once than MAXIMUM
    /// CONCURRENT COPIES.
    pub const fn insufficient_resources() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x55, 0x03)
    }

    /// PARAMETER LIST LENGTH ERROR (1Ah/00h).
    pub const fn parameter_list_length_error() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x1A, 0x00)
    }

    /// INVALID COMMAND OPERATION CODE (20h/00h).
    pub const fn invalid_opcode() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x20, 0x00)
    }

    /// LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h).
    pub const fn lba_out_of_range() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x21, 0x00)
    }

    /// INVALID FIELD IN CDB (24h/00h).
    pub const fn invalid_field_in_cdb() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x24, 0x00)
    }

    /// LOGICAL UNIT NOT SUPPORTED (25h/00h).
    pub const fn lun_not_supported() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x25, 0x00)
    }

    /// INVALID FIELD IN PARAMETER LIST (26h/00h).
    pub const fn invalid_field_in_param_list() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x26, 0x00)
    }

    /// INVALID RELEASE OF PERSISTENT RESERVATION (26h/04h): SPC-4 PERSISTENT RESERVE OUT
    /// RELEASE by the holder with a TYPE or SCOPE other than the reservation's.
    pub const fn invalid_release_of_persistent_reservation() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x26, 0x04)
    }

    /// INSUFFICIENT REGISTRATION RESOURCES (55h/04h): SPC-4 PERSISTENT RESERVE OUT registering
    /// more I_T nexuses than the device server keeps.
    pub const fn insufficient_registration_resources() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x55, 0x04)
    }

    /// WRITE PROTECTED (27h/00h).
    pub const fn write_protected() -> Self {
        Self::new(SenseKey::DATA_PROTECT, 0x27, 0x00)
    }

    /// SAVING PARAMETERS NOT SUPPORTED (39h/00h).
    pub const fn saving_params_unsupported() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x39, 0x00)
    }

    /// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION (1Dh/00h); give the INFORMATION field
    /// (the offset of the first byte that differed) with [`Sense::with_info`].
    pub const fn miscompare_during_verify() -> Self {
        Self::new(SenseKey::MISCOMPARE, 0x1D, 0x00)
    }

    /// HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h): our own fault, e.g. a multi-step
    /// command driven out of order by the transport.
    pub const fn internal_target_failure() -> Self {
        Self::new(SenseKey::HARDWARE_ERROR, 0x44, 0x00)
    }

    /// MEDIUM ERROR, UNRECOVERED READ ERROR (11h/00h).
    pub const fn unrecovered_read_error() -> Self {
        Self::new(SenseKey::MEDIUM_ERROR, 0x11, 0x00)
    }

    /// NOT READY, LOGICAL UNIT NOT ACCESSIBLE (04h/`ascq`): 0Ah asymmetric access state
    /// transition, 0Bh target port in standby state, 0Ch target port in unavailable state.
    pub const fn not_accessible(ascq: u8) -> Self {
        Self::new(SenseKey::NOT_READY, 0x04, ascq)
    }

    /// NOT READY, MEDIUM NOT PRESENT - TRAY OPEN (3Ah/02h): a removable medium was ejected.
    pub const fn medium_not_present() -> Self {
        Self::new(SenseKey::NOT_READY, 0x3A, 0x02)
    }

    /// NOT READY, LOGICAL UNIT IS IN PROCESS OF BECOMING READY (04h/01h): the backing store
    /// cannot be reached for now (a storage cluster that does not answer); initiators retry.
    pub const fn becoming_ready() -> Self {
        Self::new(SenseKey::NOT_READY, 0x04, 0x01)
    }

    /// NOT READY, LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS (04h/1Bh), with how far it got.
    pub fn sanitize_in_progress(progress: u16) -> Self {
        let mut s = Self::new(SenseKey::NOT_READY, 0x04, 0x1B);
        s.progress = Some(progress);
        s
    }

    /// MEDIUM ERROR, SANITIZE COMMAND FAILED (31h/03h): the last sanitize operation failed.
    pub const fn sanitize_command_failed() -> Self {
        Self::new(SenseKey::MEDIUM_ERROR, 0x31, 0x03)
    }

    /// NOT READY, LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE (04h/00h).
    pub const fn not_ready() -> Self {
        Self::new(SenseKey::NOT_READY, 0x04, 0x00)
    }

    /// ILLEGAL REQUEST, MEDIUM REMOVAL PREVENTED (53h/02h).
    pub const fn medium_removal_prevented() -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, 0x53, 0x02)
    }

    /// MEDIUM ERROR, WRITE ERROR (0Ch/00h).
    pub const fn write_error() -> Self {
        Self::new(SenseKey::MEDIUM_ERROR, 0x0C, 0x00)
    }

    /// Encode as sense data bytes in the given format.
    pub fn encode(&self, format: SenseFormat) -> Vec<u8> {
        match format {
            SenseFormat::Fixed => self.encode_fixed(),
            SenseFormat::Descriptor => self.encode_descriptor(),
        }
    }

    fn encode_fixed(&self) -> Vec<u8> {
        let mut d = vec![0u8; FIXED_LEN];
        d[0] = RESPONSE_FIXED_CURRENT;
        d[2] = self.key.0 & 0x0F;
        // The 4-byte INFORMATION field cannot hold a larger value: leave VALID clear then
        // (SPC-4 §4.5.3), the descriptor format carries all 8 bytes.
        if let Some(info) = self.info.and_then(|i| u32::try_from(i).ok()) {
            d[0] |= 0x80; // VALID
            d[3..7].copy_from_slice(&info.to_be_bytes());
        }
        d[7] = (FIXED_LEN - 8) as u8;
        if let Some(csi) = self.command_specific {
            d[8..12].copy_from_slice(&csi.to_be_bytes());
        }
        d[12] = self.asc;
        d[13] = self.ascq;
        if let Some(specific) = self.key_specific() {
            d[15..18].copy_from_slice(&specific);
        }
        d
    }

    fn encode_descriptor(&self) -> Vec<u8> {
        let mut d = vec![
            RESPONSE_DESC_CURRENT,
            self.key.0 & 0x0F,
            self.asc,
            self.ascq,
            0,
            0,
            0,
            0,
        ];
        if let Some(info) = self.info {
            d.extend_from_slice(&[DESC_INFORMATION, 0x0A, 0x80, 0]); // VALID
            d.extend_from_slice(&info.to_be_bytes());
        }
        if let Some(csi) = self.command_specific {
            d.extend_from_slice(&[DESC_COMMAND_SPECIFIC, 0x0A, 0, 0]);
            d.extend_from_slice(&u64::from(csi).to_be_bytes());
        }
        if let Some(specific) = self.key_specific() {
            d.extend_from_slice(&[DESC_SENSE_KEY_SPECIFIC, 0x06, 0, 0]);
            d.extend_from_slice(&specific);
            d.push(0);
        }
        // At most 8 + 12 + 12 + 8 bytes, so the additional length always fits a byte.
        d[7] = (d.len() - 8) as u8;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_in_progress_carries_its_progress_in_both_formats() {
        let s = Sense::sanitize_in_progress(0x1234);
        let fixed = s.encode(SenseFormat::Fixed);
        assert_eq!((fixed[2], fixed[12], fixed[13]), (0x02, 0x04, 0x1B));
        assert_eq!(&fixed[15..18], &[0x80, 0x12, 0x34]);
        let desc = s.encode(SenseFormat::Descriptor);
        assert_eq!(&desc[..4], &[0x72, 0x02, 0x04, 0x1B]);
        assert_eq!(&desc[8..16], &[0x02, 0x06, 0, 0, 0x80, 0x12, 0x34, 0]);
        assert_eq!(desc[7], 8);
    }

    #[test]
    fn fixed_no_sense_is_18_bytes_with_additional_length_10() {
        let d = Sense::no_sense().encode(SenseFormat::Fixed);
        assert_eq!(
            d,
            [0x70, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn fixed_invalid_field_in_cdb_carries_field_pointer() {
        let d = Sense::invalid_field_in_cdb()
            .at_cdb(1, Some(7))
            .encode(SenseFormat::Fixed);
        assert_eq!(
            d,
            [0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0xCF, 0x00, 0x01]
        );
    }

    #[test]
    fn fixed_field_pointer_without_bit_leaves_bpv_clear() {
        let d = Sense::invalid_field_in_param_list()
            .at_param(0x0102, None)
            .encode(SenseFormat::Fixed);
        assert_eq!(&d[12..18], &[0x26, 0x00, 0, 0x80, 0x01, 0x02]);
    }

    #[test]
    fn fixed_medium_error_sets_valid_and_information() {
        let d = Sense::unrecovered_read_error()
            .with_info(0x1234_5678)
            .encode(SenseFormat::Fixed);
        assert_eq!(
            d,
            [0xF0, 0, 0x03, 0x12, 0x34, 0x56, 0x78, 10, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn fixed_information_too_large_clears_valid() {
        let d = Sense::write_error()
            .with_info(0x1_0000_0000)
            .encode(SenseFormat::Fixed);
        assert_eq!(d[0], 0x70);
        assert_eq!(&d[3..7], &[0, 0, 0, 0]);
        assert_eq!((d[12], d[13]), (0x0C, 0x00));
    }

    #[test]
    fn descriptor_without_details_is_8_byte_header() {
        let d = Sense::lba_out_of_range().encode(SenseFormat::Descriptor);
        assert_eq!(d, [0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);
    }

    #[test]
    fn descriptor_information_descriptor_holds_64_bit_lba() {
        let d = Sense::unrecovered_read_error()
            .with_info(0x0102_0304_0506_0708)
            .encode(SenseFormat::Descriptor);
        assert_eq!(
            d,
            [
                0x72, 0x03, 0x11, 0x00, 0, 0, 0, 12, // header
                0x00, 0x0A, 0x80, 0, 1, 2, 3, 4, 5, 6, 7, 8, // information
            ]
        );
    }

    #[test]
    fn descriptor_sense_key_specific_descriptor_follows_information() {
        let d = Sense::invalid_field_in_cdb()
            .with_info(9)
            .at_cdb(4, None)
            .encode(SenseFormat::Descriptor);
        assert_eq!(d.len(), 28);
        assert_eq!(d[7], 20);
        assert_eq!(&d[20..28], &[0x02, 0x06, 0, 0, 0xC0, 0x00, 0x04, 0]);
    }

    #[test]
    fn fixed_miscompare_carries_offset_in_information() {
        let d = Sense::miscompare_during_verify()
            .with_info(0x1FF)
            .encode(SenseFormat::Fixed);
        assert_eq!(
            d,
            [0xF0, 0, 0x0E, 0, 0, 0x01, 0xFF, 10, 0, 0, 0, 0, 0x1D, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn copy_segment_error_is_copy_aborted_with_segment_number_and_pointer() {
        let s = Sense::lba_out_of_range().in_copy_segment(0x0102, Some(12));
        let d = s.encode(SenseFormat::Fixed);
        assert_eq!(d[2], 0x0A, "COPY ABORTED");
        assert_eq!(
            &d[8..12],
            &[0, 0, 0x01, 0x02],
            "segment number in bytes 2..=3"
        );
        assert_eq!((d[12], d[13]), (0x21, 0x00));
        assert_eq!(&d[15..18], &[0xA0, 0, 12], "SKSV, SD");
        let d = s.encode(SenseFormat::Descriptor);
        assert_eq!(&d[..4], &[0x72, 0x0A, 0x21, 0x00]);
        assert_eq!(&d[8..20], &[0x01, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02]);
        assert_eq!(&d[20..28], &[0x02, 0x06, 0, 0, 0xA0, 0, 12, 0]);
        assert_eq!(usize::from(d[7]), d.len() - 8);
        let whole = Sense::unreachable_copy_target().in_copy_segment(3, None);
        assert_eq!(
            whole.encode(SenseFormat::Fixed)[15],
            0,
            "no pointer, SKSV clear"
        );
    }

    #[test]
    fn sense_key_is_masked_to_four_bits() {
        let s = Sense::new(SenseKey(0xF5), 0, 0);
        assert_eq!(s.encode(SenseFormat::Fixed)[2], 0x05);
        assert_eq!(s.encode(SenseFormat::Descriptor)[1], 0x05);
    }

    #[test]
    fn constructors_have_spec_codes() {
        let cases = [
            (Sense::invalid_opcode(), SenseKey::ILLEGAL_REQUEST, 0x20),
            (
                Sense::invalid_field_in_cdb(),
                SenseKey::ILLEGAL_REQUEST,
                0x24,
            ),
            (Sense::lba_out_of_range(), SenseKey::ILLEGAL_REQUEST, 0x21),
            (Sense::write_protected(), SenseKey::DATA_PROTECT, 0x27),
            (Sense::lun_not_supported(), SenseKey::ILLEGAL_REQUEST, 0x25),
            (
                Sense::saving_params_unsupported(),
                SenseKey::ILLEGAL_REQUEST,
                0x39,
            ),
            (
                Sense::invalid_field_in_param_list(),
                SenseKey::ILLEGAL_REQUEST,
                0x26,
            ),
            (
                Sense::parameter_list_length_error(),
                SenseKey::ILLEGAL_REQUEST,
                0x1A,
            ),
            (
                Sense::unrecovered_read_error(),
                SenseKey::MEDIUM_ERROR,
                0x11,
            ),
            (Sense::write_error(), SenseKey::MEDIUM_ERROR, 0x0C),
            (
                Sense::miscompare_during_verify(),
                SenseKey::MISCOMPARE,
                0x1D,
            ),
            (
                Sense::internal_target_failure(),
                SenseKey::HARDWARE_ERROR,
                0x44,
            ),
        ];
        for (s, key, asc) in cases {
            assert_eq!((s.key, s.asc, s.ascq), (key, asc, 0));
        }
    }
}
