//! Full-feature phase protocol rules: Reject for what the target cannot do, silent discard of
//! commands outside the CmdSN window, NOP echo, and logout.

mod common;

use std::time::Duration;

use common::cdb;
use ringtgt::pdu::reject::{Reject, RejectReason};
use ringtgt::pdu::{Bhs, Opcode, BHS_LEN};

#[test]
fn unknown_opcode_gets_reject_carrying_the_header() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    let mut bad = Bhs::new(Opcode(0x1f));
    bad.set_immediate(true);
    bad.set_flags(0x80);
    let itt = ini.new_itt();
    bad.set_itt(itt);
    bad.set_u32(24, ini.cmd_sn);
    bad.set_u32(28, ini.exp_stat_sn);
    ini.send_pdu(&bad, &[], &[]);
    let (bhs, data) = ini.recv();
    assert_eq!(bhs.opcode(), Opcode::REJECT, "got {bhs:?}");
    assert_eq!(
        Reject::decode(&bhs).reason,
        RejectReason::COMMAND_NOT_SUPPORTED
    );
    assert!(data.len() >= BHS_LEN, "Reject carries the rejected header");
    assert_eq!(
        &data[..BHS_LEN],
        &bad.0[..],
        "the header comes back verbatim"
    );
    assert_eq!(ini.nop_out(b"still here"), b"still here");
}

/// Sends TEST UNIT READY with `cmd_sn` instead of the next CmdSN (which stays unused) and
/// asserts that nothing comes back (RFC 7143 §4.2.2.1: outside the window, silently ignored).
fn assert_ignored(ini: &mut common::Initiator, cmd_sn: u32, what: &str) {
    let mut cmd = ini.command_pdu(0, &cdb::test_unit_ready(), false, false, 0);
    ini.cmd_sn = cmd.cmd_sn;
    cmd.cmd_sn = cmd_sn;
    ini.send_pdu(&cmd.encode(), &[], &[]);
    if let Some((bhs, _)) = ini.recv_within(Duration::from_secs(1)) {
        panic!("a command with CmdSN {what} must be dropped, got {bhs:?}");
    }
}

#[test]
fn command_outside_cmdsn_window_is_ignored_and_session_stays_usable() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let (exp, max) = (ini.exp_cmd_sn, ini.max_cmd_sn);
    assert_eq!(exp, ini.cmd_sn, "ExpCmdSN is the next CmdSN");
    assert_ignored(&mut ini, max.wrapping_add(1), "MaxCmdSN + 1");
    assert_ignored(&mut ini, exp.wrapping_sub(1), "ExpCmdSN - 1 (already used)");
    assert_ignored(&mut ini, exp.wrapping_add(0x1000_0000), "far ahead");
    ini.test_unit_ready(0).assert_good();
    assert_eq!(ini.nop_out(b"ok"), b"ok");
}

#[test]
fn nop_out_echoes_its_ping_data() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    assert_eq!(ini.nop_out(&[]), Vec::<u8>::new());
    let ping = cdb::pattern(7, 1001);
    assert_eq!(
        ini.nop_out(&ping),
        ping,
        "odd length, so padding must be stripped"
    );
}

#[test]
fn logout_is_answered_and_connection_closes() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let resp = ini.logout();
    assert_eq!(resp.response.0, 0, "logout succeeded");
    assert!(
        ini.conn.wait_closed(Duration::from_secs(5)),
        "the target closes the connection after a session logout"
    );
}
