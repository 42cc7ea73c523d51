//! Who may log in and what they see, against the real daemon: CHAP (one-way, mutual, discovery)
//! through libiscsi, initiator and network ACLs, LUN masking, SendTargets filtering.

mod common;

use std::time::Duration;

use common::daemon::run;
use common::initiator::INITIATOR_NAME;
use common::{keys, Daemon, Initiator};

const DISK: &str = "iqn.2026-12.example:disk1";
const HIDDEN: &str = "iqn.2026-12.example:hidden";
const SECRET: &str = "alice-secret-123";
const TARGET_SECRET: &str = "target-secret-456";
const DISCOVERY_SECRET: &str = "disco-secret-789";
const LIMIT: Duration = Duration::from_secs(20);

/// `iscsi-inq` on LUN 0 of `target` with the URL's credentials part and query; true on success.
fn inquiry(d: &Daemon, creds: &str, target: &str, query: &str) -> bool {
    let url = format!("iscsi://{creds}127.0.0.1:{}/{target}/0{query}", d.port());
    let (code, out, err) = run("iscsi-inq", &[&url], LIMIT);
    let ok = code == Some(0) && out.contains("DIRECT_ACCESS");
    if !ok {
        eprintln!("iscsi-inq {url}: {code:?}\n{out}\n{err}");
    }
    ok
}

fn chap_daemon(mutual: bool) -> Daemon {
    Daemon::start_config(|port| {
        let mutual = if mutual {
            format!("mutual_user = \"disk1\"\nmutual_secret = \"{TARGET_SECRET}\"\n")
        } else {
            String::new()
        };
        format!(
            "portals = [\"127.0.0.1:{port}\"]\n\
             [[target]]\nname = \"{DISK}\"\n\
             [target.chap]\nuser = \"alice\"\nsecret = \"{SECRET}\"\n{mutual}\
             [[target.lun]]\npath = \"ram:16MiB\"\n\
             [discovery.chap]\nuser = \"disco\"\nsecret = \"{DISCOVERY_SECRET}\"\n"
        )
    })
}

#[test]
fn one_way_chap_admits_the_right_secret_only() {
    let d = chap_daemon(false);
    assert!(inquiry(&d, &format!("alice%{SECRET}@"), DISK, ""));
    assert!(!inquiry(&d, "alice%wrong-secret-123@", DISK, ""));
    assert!(!inquiry(&d, &format!("mallory%{SECRET}@"), DISK, ""));
    assert!(!inquiry(&d, "", DISK, ""), "no credentials");
    let log = d.log();
    assert!(log.contains("login failed"), "each refusal is logged");
    assert!(log.contains("libiscsi"), "the log names the initiator");
    assert!(log.contains("peer=127.0.0.1"), "and its address");
    for secret in [SECRET, "wrong-secret-123", DISCOVERY_SECRET] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[test]
fn mutual_chap_proves_the_target_and_is_required_once_configured() {
    let d = chap_daemon(true);
    let creds = format!("alice%{SECRET}@");
    let mutual = format!("?target_user=disk1&target_password={TARGET_SECRET}");
    assert!(inquiry(&d, &creds, DISK, &mutual));
    // libiscsi checks the target's answer: a target with another secret is refused by it.
    let wrong = "?target_user=disk1&target_password=other-secret-000";
    assert!(!inquiry(&d, &creds, DISK, wrong));
    // A target configured for mutual CHAP insists on proving itself.
    assert!(!inquiry(&d, &creds, DISK, ""));
    assert!(!d.log().contains(TARGET_SECRET));
}

#[test]
fn discovery_chap_guards_send_targets() {
    let d = chap_daemon(false);
    let ls = |creds: &str| {
        let url = format!("iscsi://{creds}127.0.0.1:{}", d.port());
        run("iscsi-ls", &[&url], LIMIT)
    };
    let (code, out, _) = ls(&format!("disco%{DISCOVERY_SECRET}@"));
    assert_eq!(code, Some(0));
    assert!(out.contains(DISK), "{out}");
    let (code, out, _) = ls("");
    assert_ne!(code, Some(0));
    assert!(!out.contains(DISK));
    let (code, _, _) = ls(&format!("alice%{SECRET}@"));
    assert_ne!(code, Some(0), "target credentials do not open discovery");
}

/// Two targets: one only for 10.0.0.0/8 (so never for this test's 127.0.0.1), one open, whose
/// LUN 1 is hidden from the test initiator by an ACL.
fn acl_daemon() -> Daemon {
    Daemon::start_config(|port| {
        format!(
            "portals = [\"127.0.0.1:{port}\"]\n\
             [[target]]\nname = \"{HIDDEN}\"\nallowed_networks = [\"10.0.0.0/8\"]\n\
             [[target.lun]]\npath = \"ram:4MiB\"\n\
             [[target]]\nname = \"{DISK}\"\nallowed_networks = [\"127.0.0.0/8\", \"::1/128\"]\n\
             [[target.lun]]\nid = 0\npath = \"ram:4MiB\"\n\
             [[target.lun]]\nid = 1\npath = \"ram:4MiB\"\n\
             [[target.acl]]\ninitiator = \"{INITIATOR_NAME}\"\nluns = [1]\n"
        )
    })
}

#[test]
fn network_acl_refuses_other_addresses_and_hides_the_target() {
    let d = acl_daemon();
    let mut ini = Initiator::connect(d.port());
    let refused = ini
        .try_login(Some(HIDDEN), &[])
        .expect_err("10.0.0.0/8 only");
    assert_eq!(
        (refused.status.class, refused.status.detail),
        (0x02, 0x02),
        "authorization failure"
    );
    let mut disc = Initiator::connect(d.port());
    disc.login(None, &[]);
    let listed = keys::get_all(&disc.send_targets(), "TargetName")
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    assert_eq!(
        listed,
        vec![DISK.to_string()],
        "SendTargets hides what we may not reach"
    );
    let mut other = Initiator::connect(d.port());
    let missing = other.try_login(Some("iqn.2026-12.example:nope"), &[]);
    let status = missing.expect_err("no such target").status;
    assert_eq!((status.class, status.detail), (0x02, 0x03), "not found");
}

#[test]
fn lun_masking_shows_an_initiator_only_its_luns() {
    let d = acl_daemon();
    let mut ini = Initiator::connect(d.port());
    ini.login(Some(DISK), &[]);
    ini.wait_ready(1);
    let r = ini.read(0, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0], 256);
    r.assert_good();
    assert_eq!(&r.data[0..4], &8u32.to_be_bytes(), "one LUN listed");
    assert_eq!(r.data[9], 1, "and it is LUN 1");
    // LUN 0 exists, but not for this initiator: LOGICAL UNIT NOT SUPPORTED.
    ini.test_unit_ready(0).assert_sense(0x05, 0x25);
    // Another initiator sees both.
    let url = format!("iscsi://127.0.0.1:{}", d.port());
    let (code, out, _) = run("iscsi-ls", &["-s", &url], LIMIT);
    assert_eq!(code, Some(0));
    assert!(out.contains("Lun:0") && out.contains("Lun:1"), "{out}");
}

/// The quick path: `--chap-user` with a secret file, no config file.
#[test]
fn chap_from_command_line_flags_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("alice.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let d = common::daemon(&[
        "--chap-user",
        "alice",
        "--chap-secret-file",
        secret.to_str().unwrap(),
    ]);
    let target = common::TARGET;
    assert!(inquiry(&d, &format!("alice%{SECRET}@"), target, ""));
    assert!(!inquiry(&d, "", target, ""));
    assert!(!inquiry(&d, "alice%not-the-secret@", target, ""));
}
