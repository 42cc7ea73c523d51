//! Session reinstatement (RFC 7143 §6.3.5): a login with the InitiatorName and ISID of a live
//! session and TSIH 0 ends the old session first, then gets a working one.

mod common;

use std::time::Duration;

use common::Initiator;

#[test]
fn reinstatement_ends_old_session_first() {
    let d = common::daemon(&[]);
    let mut old = common::session(&d, &[]);
    old.wait_ready(0);
    let mut new = Initiator::connect(d.port());
    assert_eq!(new.isid, old.isid);
    assert_eq!(new.initiator_name, old.initiator_name);
    new.login(Some(common::TARGET), &[]);
    assert!(
        old.conn.wait_closed(Duration::from_secs(5)),
        "the old session's connection must be closed"
    );
    new.wait_ready(0);
    assert_eq!(new.inquiry(0)[0] & 0x1f, 0);
    assert_eq!(new.nop_out(b"new"), b"new");
}
