//! REPORT SUPPORTED OPERATION CODES (SPC-4; MAINTENANCE IN service action 0Ch), answered from
//! the command table `dispatch` itself routes through (less what the unit does not support,
//! `LuInfo::supports_opcode`), and REPORT SUPPORTED TASK MANAGEMENT
//! FUNCTIONS (service action 0Dh).

use super::cdb::Cdb;
use super::commands::{self, Command};
use super::sense::Sense;
use super::{data_in, LuInfo, Plan};

/// CDB byte 2: RCTD (bit 7) and REPORTING OPTIONS (bits 2..0).
const RCTD: u8 = 0x80;
const OPTIONS_MASK: u8 = 0x07;
/// SPC-4 REPORTING OPTIONS.
const ALL_COMMANDS: u8 = 0b000;
const OPCODE: u8 = 0b001;
const OPCODE_AND_SERVICE_ACTION: u8 = 0b010;
const OPCODE_AND_MAYBE_SERVICE_ACTION: u8 = 0b011;
/// All_commands command descriptor byte 5: CTDP (bit 1), SERVACTV (bit 0).
const CTDP: u8 = 0x02;
const SERVACTV: u8 = 0x01;
/// One_command parameter data byte 1: CTDP (bit 7), SUPPORT (bits 2..0).
const ONE_CTDP: u8 = 0x80;
const SUPPORT_NOT_SUPPORTED: u8 = 0b001;
const SUPPORT_STANDARD: u8 = 0b011;
/// SPC-4 command timeouts descriptor: DESCRIPTOR LENGTH 0Ah, then COMMAND SPECIFIC and two
/// timeouts; zero timeouts mean "not specified".
const TIMEOUTS_DESCRIPTOR: [u8; 12] = [0x00, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// CDB: byte 2 RCTD and REPORTING OPTIONS, byte 3 REQUESTED OPERATION CODE, bytes 4..=5
/// REQUESTED SERVICE ACTION, bytes 6..=9 ALLOCATION LENGTH. Refusals point at REPORTING
/// OPTIONS (libiscsi reads a pointer at byte 1 as "command not implemented").
pub(super) fn report_supported_opcodes(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let timeouts = cdb.u8(2) & RCTD != 0;
    let opcode = cdb.u8(3);
    let service_action = cdb.be16(4);
    // An operation code the unit does not support is reported as such, whatever the options.
    let supported = lu.supports_opcode(opcode);
    let data = match cdb.u8(2) & OPTIONS_MASK {
        ALL_COMMANDS => all_commands(lu, timeouts),
        OPCODE => {
            if supported && commands::has_service_actions(opcode) {
                return Err(bad_options());
            }
            one_command(commands::find(opcode, None).filter(|_| supported), timeouts)
        }
        OPCODE_AND_SERVICE_ACTION => {
            if supported && !commands::has_service_actions(opcode) {
                return Err(bad_options());
            }
            let command = find_service_action(opcode, service_action).filter(|_| supported);
            one_command(command, timeouts)
        }
        OPCODE_AND_MAYBE_SERVICE_ACTION => {
            let command = if commands::has_service_actions(opcode) {
                find_service_action(opcode, service_action)
            } else {
                // No service actions: only service action zero names the command.
                commands::find(opcode, None).filter(|_| service_action == 0)
            };
            one_command(command.filter(|_| supported), timeouts)
        }
        _ => return Err(bad_options()),
    };
    Ok(data_in(data, cdb.be32(6)))
}

/// SPC-4 REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS parameter data byte 0: ATS (ABORT TASK),
/// ATSS (ABORT TASK SET), CTSS (CLEAR TASK SET), LURS (LOGICAL UNIT RESET), QTS (QUERY TASK),
/// TRS (TARGET RESET, the iSCSI warm reset); CACAS (no ACA) and WAKES clear.
const TMF_BYTE0: u8 = 0x80 | 0x40 | 0x10 | 0x08 | 0x04 | 0x02;
/// Byte 1: QAES (QUERY ASYNCHRONOUS EVENT), QTSS (QUERY TASK SET), ITNRS (I_T NEXUS RESET).
const TMF_BYTE1: u8 = 0x04 | 0x02 | 0x01;
/// CDB byte 2 bit 7: REPD asks for the extended format (16 bytes, ADDITIONAL DATA LENGTH 0Ch,
/// TMFTMOV clear: no timeouts reported).
const REPD: u8 = 0x80;
const TMF_EXTENDED_LEN: usize = 16;

/// SPC-4 REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (MAINTENANCE IN service action 0Dh):
/// REPD (byte 2 bit 7), ALLOCATION LENGTH (bytes 6..=9). The functions the iSCSI transport
/// performs (RFC 7143 task management function request).
pub(super) fn report_supported_tmfs(cdb: Cdb) -> Result<Plan, Sense> {
    let mut d = vec![TMF_BYTE0, TMF_BYTE1, 0, 0];
    if cdb.u8(2) & REPD != 0 {
        d.resize(TMF_EXTENDED_LEN, 0);
        d[3] = (TMF_EXTENDED_LEN - 4) as u8;
    }
    Ok(data_in(d, cdb.be32(6)))
}

fn bad_options() -> Sense {
    Sense::invalid_field_in_cdb().at_cdb(2, Some(2))
}

fn find_service_action(opcode: u8, service_action: u16) -> Option<&'static Command> {
    let sa = u8::try_from(service_action).ok()?;
    commands::find(opcode, Some(sa))
}

/// SPC-4 all_commands parameter data: COMMAND DATA LENGTH, then one 8-byte command descriptor
/// per command (20 bytes with its timeouts descriptor when RCTD is set).
fn all_commands(lu: &LuInfo, timeouts: bool) -> Vec<u8> {
    let mut d = vec![0u8; 4];
    for c in commands::all()
        .iter()
        .filter(|c| lu.supports_opcode(c.opcode))
    {
        let mut flags = 0;
        if timeouts {
            flags |= CTDP;
        }
        if c.service_action.is_some() {
            flags |= SERVACTV;
        }
        let sa = u16::from(c.service_action.unwrap_or(0)).to_be_bytes();
        let cdb_len = cdb_length(c).to_be_bytes();
        d.extend_from_slice(&[c.opcode, 0, sa[0], sa[1], 0, flags, cdb_len[0], cdb_len[1]]);
        if timeouts {
            d.extend_from_slice(&TIMEOUTS_DESCRIPTOR);
        }
    }
    let len = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&len.to_be_bytes());
    d
}

/// SPC-4 one_command parameter data: SUPPORT, CDB SIZE and CDB USAGE DATA (and the timeouts
/// descriptor when RCTD is set); an unsupported command is SUPPORT 001b with no usage data.
fn one_command(command: Option<&Command>, timeouts: bool) -> Vec<u8> {
    let Some(c) = command else {
        return vec![0, SUPPORT_NOT_SUPPORTED, 0, 0];
    };
    let mut flags = SUPPORT_STANDARD;
    if timeouts {
        flags |= ONE_CTDP;
    }
    let len = cdb_length(c).to_be_bytes();
    let mut d = vec![0, flags, len[0], len[1]];
    d.extend_from_slice(c.usage);
    if timeouts {
        d.extend_from_slice(&TIMEOUTS_DESCRIPTOR);
    }
    d
}

fn cdb_length(c: &Command) -> u16 {
    u16::try_from(c.usage.len()).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::{lu, lu_with, ok_data};

    fn cdb(byte2: u8, opcode: u8, sa: u16, alloc: u32) -> [u8; 12] {
        let (s, a) = (sa.to_be_bytes(), alloc.to_be_bytes());
        [
            0xA3, 0x0C, byte2, opcode, s[0], s[1], a[0], a[1], a[2], a[3], 0, 0,
        ]
    }

    fn get_from(lu: &LuInfo, byte2: u8, opcode: u8, sa: u16) -> Vec<u8> {
        ok_data(report_supported_opcodes(
            lu,
            Cdb::new(&cdb(byte2, opcode, sa, 0xFFFF)),
        ))
    }

    fn get(byte2: u8, opcode: u8, sa: u16) -> Vec<u8> {
        get_from(&lu(0), byte2, opcode, sa)
    }

    fn refused(byte2: u8, opcode: u8, sa: u16) -> Sense {
        report_supported_opcodes(&lu(0), Cdb::new(&cdb(byte2, opcode, sa, 0xFFFF))).unwrap_err()
    }

    #[test]
    fn all_commands_lists_every_table_entry_in_8_byte_descriptors() {
        let d = get(0x00, 0, 0);
        let n = commands::all().len();
        assert_eq!(d.len(), 4 + 8 * n);
        assert_eq!(&d[..4], &((8 * n) as u32).to_be_bytes());
        assert_eq!(
            &d[4..12],
            &[0x00, 0, 0, 0, 0, 0x00, 0, 6],
            "TEST UNIT READY"
        );
        let rc16 = d[4..].chunks(8).find(|c| c[0] == 0x9E && c[3] == 0x10);
        assert_eq!(
            rc16,
            Some(&[0x9E, 0, 0, 0x10, 0, 0x01, 0, 16][..]),
            "SERVACTV"
        );
        let rsoc = d[4..].chunks(8).find(|c| c[0] == 0xA3 && c[3] == 0x0C);
        assert_eq!(rsoc, Some(&[0xA3, 0, 0, 0x0C, 0, 0x01, 0, 12][..]));
        for opcode in [0x41, 0x42, 0x89, 0x8B, 0x93] {
            assert!(d[4..].chunks(8).any(|c| c[0] == opcode), "{opcode:#04x}");
        }
    }

    #[test]
    fn rctd_adds_a_timeouts_descriptor_to_every_command() {
        let d = get(0x80, 0, 0);
        let n = commands::all().len();
        assert_eq!(d.len(), 4 + 20 * n);
        assert_eq!(&d[..4], &((20 * n) as u32).to_be_bytes());
        for c in d[4..].chunks(20) {
            assert_eq!(c[5] & 0x02, 0x02, "CTDP");
            assert_eq!(&c[8..20], &[0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn one_command_carries_cdb_usage_data() {
        assert_eq!(
            get(0x01, 0x28, 0),
            [0, 0x03, 0, 10, 0x28, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0]
        );
        // REQUESTED SERVICE ACTION is ignored for an operation code without service actions.
        assert_eq!(get(0x01, 0x28, 7), get(0x01, 0x28, 0));
        let d = get(0x82, 0x9E, 0x10);
        assert_eq!(&d[..6], &[0, 0x83, 0, 16, 0x9E, 0x10]);
        assert_eq!(d.len(), 4 + 16 + 12);
        assert_eq!(&d[20..], &[0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let ws16 = get(0x01, 0x93, 0);
        assert_eq!(ws16[5], 0x09, "UNMAP and NDOB");
    }

    #[test]
    fn unsupported_commands_are_reported_not_refused() {
        let none = [0, SUPPORT_NOT_SUPPORTED, 0, 0];
        assert_eq!(get(0x01, 0x3B, 0), none);
        assert_eq!(get(0x02, 0x9E, 0x13), none);
        assert_eq!(get(0x02, 0x9E, 0x0110), none, "service action above 8 bits");
        assert_eq!(
            get(0x02, 0x3B, 0),
            none,
            "unknown opcode, service actions unknown"
        );
        assert_eq!(get(0x03, 0x28, 1), none);
        assert_eq!(get(0x03, 0x9E, 0x11), none);
        assert_eq!(get(0x03, 0x9E, 0x12)[1], SUPPORT_STANDARD);
        assert_eq!(get(0x03, 0x28, 0)[1], SUPPORT_STANDARD);
    }

    #[test]
    fn a_unit_that_cannot_sanitize_reports_no_sanitize_whatever_the_options() {
        let gateway = lu_with(|l| l.sanitizable = false);
        let none = [0, SUPPORT_NOT_SUPPORTED, 0, 0];
        for sa in [0x01, 0x02, 0x1F] {
            assert_eq!(get(0x02, 0x48, sa)[1], SUPPORT_STANDARD, "{sa:#04x}");
            assert_eq!(get_from(&gateway, 0x02, 0x48, sa), none, "{sa:#04x}");
            assert_eq!(get_from(&gateway, 0x03, 0x48, sa), none, "{sa:#04x}");
        }
        // Without service actions to tell apart, reporting options 001b is no mistake either.
        assert_eq!(get_from(&gateway, 0x01, 0x48, 0), none);
        let all = get_from(&gateway, 0x00, 0, 0);
        let sanitizing = commands::all().iter().filter(|c| c.opcode == 0x48).count();
        assert_eq!(sanitizing, 3, "OVERWRITE, BLOCK ERASE, EXIT FAILURE MODE");
        assert_eq!(all.len(), 4 + 8 * (commands::all().len() - sanitizing));
        assert!(!all[4..].chunks(8).any(|c| c[0] == 0x48));
        // The rest of the table is the same.
        assert_eq!(get_from(&gateway, 0x01, 0x28, 0), get(0x01, 0x28, 0));
    }

    #[test]
    fn service_action_mismatches_point_at_reporting_options() {
        let bad = Sense::invalid_field_in_cdb().at_cdb(2, Some(2));
        assert_eq!(refused(0x01, 0x9E, 0x10), bad);
        assert_eq!(refused(0x01, 0xA3, 0x0C), bad);
        assert_eq!(refused(0x02, 0x28, 0), bad);
        for options in 4..8 {
            assert_eq!(refused(options, 0, 0), bad);
        }
    }

    #[test]
    fn supported_task_management_functions_basic_and_extended() {
        let rstmf = |repd: u8, alloc: u32| {
            let a = alloc.to_be_bytes();
            let c = [0xA3, 0x0D, repd, 0, 0, 0, a[0], a[1], a[2], a[3], 0, 0];
            ok_data(report_supported_tmfs(Cdb::new(&c)))
        };
        assert_eq!(rstmf(0, 255), [0xDE, 0x07, 0, 0]);
        let ext = rstmf(0x80, 255);
        assert_eq!(ext.len(), 16);
        assert_eq!(&ext[..4], &[0xDE, 0x07, 0, 0x0C]);
        assert!(ext[4..].iter().all(|&b| b == 0), "no timeouts");
        assert_eq!(rstmf(0x80, 2), [0xDE, 0x07]);
        assert!(rstmf(0, 0).is_empty());
    }

    #[test]
    fn allocation_length_truncates() {
        for alloc in [0, 1, 4, 13] {
            let c = cdb(0x01, 0x28, 0, alloc);
            let d = ok_data(report_supported_opcodes(&lu(0), Cdb::new(&c)));
            assert_eq!(d.len(), alloc as usize);
        }
    }
}
