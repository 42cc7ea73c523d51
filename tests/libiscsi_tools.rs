//! libiscsi's command-line tools against the real daemon: an independent initiator
//! implementation. The tools are required: scripts/test.sh installs them (libiscsi-bin).

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::run;

fn tool(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed. The libiscsi tools are required: run scripts/test.sh, \
                 which installs them (Debian package libiscsi-bin)"
            )
        })
        .to_string_lossy()
        .into_owned()
}

fn url(d: &common::Daemon, lun: Option<u16>) -> String {
    match lun {
        Some(l) => format!("iscsi://127.0.0.1:{}/{}/{l}", d.port(), common::TARGET),
        None => format!("iscsi://127.0.0.1:{}", d.port()),
    }
}

fn run_ok(name: &str, args: &[&str], limit: Duration) -> String {
    let (code, out, err) = run(&tool(name), args, limit);
    assert_eq!(code, Some(0), "{name} {args:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn iscsi_ls_lists_target_and_luns() {
    let d = common::daemon(&[]);
    let out = run_ok("iscsi-ls", &["-s", &url(&d, None)], Duration::from_secs(30));
    assert!(out.contains(&format!("Target:{}", common::TARGET)), "{out}");
    assert!(out.contains("Lun:0"), "{out}");
    assert!(out.contains("Lun:1"), "{out}");
}

#[test]
fn iscsi_inq_reports_a_direct_access_device() {
    let d = common::daemon(&[]);
    let out = run_ok("iscsi-inq", &[&url(&d, Some(0))], Duration::from_secs(30));
    assert!(
        out.contains("Peripheral Device Type:DIRECT_ACCESS"),
        "{out}"
    );
}

#[test]
fn iscsi_readcapacity16_reports_the_lun_size() {
    let d = common::daemon(&[]);
    let out = run_ok(
        "iscsi-readcapacity16",
        &[&url(&d, Some(0))],
        Duration::from_secs(30),
    );
    assert!(
        out.contains(&format!("Total size:{}", 64u64 << 20)),
        "{out}"
    );
}

#[test]
fn iscsi_test_cu_core_suites_pass() {
    let d = common::daemon(&[]);
    let suites = "SCSI.TestUnitReady,SCSI.ReadCapacity10,SCSI.Read10,SCSI.Write10,\
                  iSCSI.iSCSIResiduals";
    let args = ["--dataloss", "-t", suites, &url(&d, Some(0))];
    let out = run_ok("iscsi-test-cu", &args, Duration::from_secs(300));
    assert!(out.contains("Run Summary"), "{out}");
    // Verdicts start a line or follow "...": "passed" or "FAILED" (skips are the conformance
    // script's business).
    assert!(
        !out.lines()
            .any(|l| l.contains("...FAILED") || l.starts_with("FAILED")),
        "{out}"
    );
}

/// A config with an IPv4 and an IPv6 portal and two targets: libiscsi reaches the daemon over
/// IPv6, and discovery lists every target with an address on each portal.
#[test]
fn ipv6_portal_and_several_targets_from_a_config_file() {
    let d = common::Daemon::start_config(|port| {
        format!(
            r#"portals = ["127.0.0.1:{port}", "[::1]:{port}"]
[[target]]
name = "iqn.2026-11.io.ringtgt:first"
[[target.lun]]
path = "null:1GiB"
[[target.lun]]
path = "ram:16MiB"
[[target]]
name = "iqn.2026-11.io.ringtgt:second"
[[target.lun]]
path = "ram:8MiB"
block_size = 4096
"#
        )
    });
    let out = run_ok(
        "iscsi-ls",
        &["-s", &format!("iscsi://[::1]:{}", d.port())],
        Duration::from_secs(20),
    );
    for want in [
        format!(
            "Target:iqn.2026-11.io.ringtgt:first Portal:127.0.0.1:{},1",
            d.port()
        ),
        format!(
            "Target:iqn.2026-11.io.ringtgt:first Portal:[::1]:{},1",
            d.port()
        ),
        format!(
            "Target:iqn.2026-11.io.ringtgt:second Portal:[::1]:{},1",
            d.port()
        ),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    let cap = run_ok(
        "iscsi-readcapacity16",
        &[&format!(
            "iscsi://[::1]:{}/iqn.2026-11.io.ringtgt:second/0",
            d.port()
        )],
        Duration::from_secs(20),
    );
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:4096"), "{cap}");
}
