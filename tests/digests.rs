//! CRC32C header and data digests (RFC 7143 §13.1): negotiated, used, and their errors handled
//! (RFC 7143 §7.8: Reject for a data digest error; a header digest error loses framing at ERL 0,
//! so the connection is dropped).

mod common;

use std::time::Duration;

use common::cdb;
use ringtgt::pdu::frame;
use ringtgt::pdu::nop::NopOut;
use ringtgt::pdu::reject::{Reject, RejectReason};
use ringtgt::pdu::{Opcode, BHS_LEN, RESERVED_TAG};

const DIGESTS: &[(&str, &str)] = &[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")];
const FLAGS: &[&str] = &["--header-digest", "allow", "--data-digest", "allow"];

fn digest_session(d: &common::Daemon) -> common::Initiator {
    let ini = common::session(d, DIGESTS);
    assert!(ini.params.header_digest, "HeaderDigest=CRC32C negotiated");
    assert!(ini.params.data_digest, "DataDigest=CRC32C negotiated");
    ini
}

/// A NOP-Out with ping data, encoded with the session's digests.
fn ping_wire(ini: &mut common::Initiator, data: &[u8]) -> Vec<u8> {
    let nop = NopOut {
        immediate: true,
        lun: 0,
        itt: ini.new_itt(),
        ttt: RESERVED_TAG,
        cmd_sn: ini.cmd_sn,
        exp_stat_sn: ini.exp_stat_sn,
    };
    let mut wire = Vec::new();
    frame::encode(&mut wire, &nop.encode(), &[], data, ini.conn.digests);
    wire
}

#[test]
fn digests_negotiated_and_data_round_trips() {
    let d = common::daemon(FLAGS);
    let mut ini = digest_session(&d);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(11, 64 * 1024);
    ini.write_blocks(0, 64, &data, bs).assert_good();
    let r = ini.read_blocks(0, 64, data.len() as u32 / bs, bs);
    r.assert_good();
    assert!(r.data == data, "readback differs");
}

#[test]
fn corrupted_data_digest_gets_reject() {
    let d = common::daemon(FLAGS);
    let mut ini = digest_session(&d);
    let mut wire = ping_wire(&mut ini, b"digest me");
    let last = wire.len() - 1;
    wire[last] ^= 0x5a; // inside the data digest
    ini.conn.send_raw(&wire).expect("send");
    let (bhs, data) = ini.recv();
    assert_eq!(bhs.opcode(), Opcode::REJECT, "got {bhs:?}");
    assert_eq!(Reject::decode(&bhs).reason, RejectReason::DATA_DIGEST_ERROR);
    assert_eq!(
        &data[..BHS_LEN],
        &wire[..BHS_LEN],
        "the header comes back verbatim"
    );
    assert_eq!(ini.nop_out(b"after"), b"after", "the session survives");
}

#[test]
fn corrupted_header_digest_drops_connection() {
    let d = common::daemon(FLAGS);
    let mut ini = digest_session(&d);
    let mut wire = ping_wire(&mut ini, b"");
    wire[BHS_LEN] ^= 0x01; // first byte of the header digest
    ini.conn.send_raw(&wire).expect("send");
    assert!(
        ini.conn.wait_closed(Duration::from_secs(5)),
        "a header digest error must end the connection at ERL 0"
    );
}
