//! Login phase: the happy paths and the status class/detail of each refusal (RFC 7143 §11.13.5).

mod common;

use common::{cdb, Daemon, Initiator, TARGET};
use ringtgt::pdu::login::LoginStatus;

#[test]
fn login_then_inquiry_and_read_capacity() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let inq = ini.inquiry(0);
    assert!(
        inq.len() >= 36,
        "standard INQUIRY data is at least 36 bytes"
    );
    assert_eq!(
        inq[0] & 0x1f,
        0,
        "peripheral device type: direct access block device"
    );
    let r = ini.read(0, &cdb::read_capacity10(), 8);
    r.assert_good();
    let (last_lba, block_len) = cdb::parse_capacity10(&r.data);
    assert_eq!((u64::from(last_lba) + 1) * u64::from(block_len), 64 << 20);
    ini.wait_ready(1);
    let (blocks, block_len) = ini.capacity(1);
    assert_eq!(blocks * u64::from(block_len), 1 << 30);
}

#[test]
fn single_step_operational_login_reaches_full_feature() {
    let d = common::daemon(&[]);
    let mut ini = Initiator::connect(d.port());
    ini.skip_security = true;
    ini.login(Some(TARGET), &[]);
    assert_ne!(ini.tsih, 0, "a new session gets a TSIH");
    ini.wait_ready(0);
}

fn refused(ini: &mut Initiator, target: &str) -> LoginStatus {
    match ini.try_login(Some(target), &[]) {
        Ok(_) => panic!("login to {target} was accepted"),
        Err(f) => f.status,
    }
}

#[test]
fn unknown_target_is_refused_with_not_found() {
    let d = common::daemon(&[]);
    let mut ini = Initiator::connect(d.port());
    let status = refused(&mut ini, "iqn.2026-11.io.ringtgt:no-such-target");
    assert_eq!(status, LoginStatus::NOT_FOUND);
}

#[test]
fn unknown_tsih_is_refused_with_session_does_not_exist() {
    let d = common::daemon(&[]);
    let mut ini = Initiator::connect(d.port());
    ini.tsih = 0x7abc;
    assert_eq!(
        refused(&mut ini, TARGET),
        LoginStatus::SESSION_DOES_NOT_EXIST
    );
}

#[test]
fn unsupported_version_is_refused() {
    let d = common::daemon(&[]);
    let mut ini = Initiator::connect(d.port());
    ini.version_max = 2;
    ini.version_min = 1;
    assert_eq!(refused(&mut ini, TARGET), LoginStatus::UNSUPPORTED_VERSION);
}

#[test]
fn initiator_not_in_allowed_list_is_refused() {
    let acl_target = "iqn.2026-11.io.ringtgt:acl";
    let allowed = "iqn.2026-11.io.ringtgt:allowed-initiator";
    let d = Daemon::start_config(|port| {
        format!(
            "portals = [\"127.0.0.1:{port}\"]\n\n\
             [[target]]\nname = \"{acl_target}\"\nallowed_initiators = [\"{allowed}\"]\n\n\
             [[target.lun]]\nid = 0\npath = \"ram:16MiB\"\n"
        )
    });
    let mut stranger = Initiator::connect(d.port());
    assert_eq!(
        refused(&mut stranger, acl_target),
        LoginStatus::AUTHORIZATION_FAILURE
    );
    let mut friend = Initiator::connect(d.port());
    friend.initiator_name = allowed.to_string();
    friend.login(Some(acl_target), &[]);
    friend.wait_ready(0);
}
