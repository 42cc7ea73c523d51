//! NOP-In keepalive (RFC 7143 §11.19): with a 1 s interval and a 2 s timeout, an initiator that
//! never answers is disconnected within ~5 s, and one that answers stays connected.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use ringtgt::pdu::{Opcode, RESERVED_TAG};

const FLAGS: &[&str] = &["--nop-interval", "1", "--nop-timeout", "2"];

#[test]
fn silent_initiator_is_disconnected_after_nop_timeout() {
    let d = common::daemon(FLAGS);
    let mut ini = common::session(&d, &[]);
    let start = Instant::now();
    let mut pings = 0;
    let err = loop {
        match ini.try_recv_pdu() {
            Ok((bhs, _)) => {
                let is_ping = bhs.opcode() == Opcode::NOP_IN && bhs.u32_at(20) != RESERVED_TAG;
                assert!(is_ping, "only pings expected, got {bhs:?}");
                pings += 1;
            }
            Err(e) => break e,
        }
    };
    let waited = start.elapsed();
    assert!(
        !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "still connected after {waited:?} ({pings} pings unanswered)"
    );
    assert!(pings >= 1, "the target pinged before giving up");
    assert!(
        waited <= Duration::from_secs(6),
        "disconnected only after {waited:?}"
    );
}

#[test]
fn answering_initiator_stays_connected() {
    let d = common::daemon(FLAGS);
    let mut ini = common::session(&d, &[]);
    if let Some((bhs, _)) = ini.recv_within(Duration::from_secs(5)) {
        panic!("only pings expected, got {bhs:?}");
    }
    let pings = ini.unsolicited.len();
    assert!(pings >= 2, "expected a ping a second, saw {pings}");
    assert_eq!(ini.nop_out(b"alive"), b"alive");
    ini.wait_ready(0);
}
