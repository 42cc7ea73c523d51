//! Discovery sessions: SendTargets=All (RFC 7143 §6.3, Appendix C).

mod common;

use common::{keys, Initiator, TARGET};

#[test]
fn send_targets_all_lists_target_with_its_address() {
    let d = common::daemon(&[]);
    let mut ini = Initiator::connect(d.port());
    ini.login(None, &[]);
    let answer = ini.send_targets();
    assert_eq!(
        keys::get_all(&answer, "TargetName"),
        vec![TARGET],
        "{answer:?}"
    );
    let addresses = keys::get_all(&answer, "TargetAddress");
    let want = format!("127.0.0.1:{},", d.port());
    assert!(
        addresses.iter().any(|a| a.starts_with(&want)),
        "TargetAddress {addresses:?} should be {want}<portal group tag>"
    );
    assert_eq!(ini.logout().response.0, 0);
}
