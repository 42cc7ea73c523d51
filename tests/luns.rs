//! LUN set-up at start: paths in a config file, files reached by two paths, sizes that do not
//! fit the blocks or the memory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::{free_port, run, BIN};
use common::{cdb, Daemon, TARGET};

/// A config file in `dir` exporting `luns` (TOML `[[target.lun]]` bodies) from one target.
fn write_config(dir: &Path, luns: &[&str]) -> String {
    let mut text = format!("[[target]]\nname = \"{TARGET}\"\n");
    for lun in luns {
        text.push_str(&format!("[[target.lun]]\n{lun}\n"));
    }
    let path = dir.join("ringtgt.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn image(dir: &Path, name: &str, len: u64) {
    std::fs::File::create(dir.join(name))
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// `serve --config FILE` that must fail with exit code 2; returns stderr.
fn refused(config: &str) -> String {
    let portal = format!("127.0.0.1:{}", free_port());
    let args = ["serve", "--portal", &portal, "--config", config];
    let (code, _, err) = run(BIN, &args, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    err
}

#[test]
fn relative_path_in_a_config_file_is_found_next_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    image(dir.path(), "disk.img", 3 << 20);
    // The daemon runs in the crate's directory, not next to the file.
    let config = write_config(dir.path(), &["path = \"disk.img\""]);
    let d = Daemon::start(&["--config", &config]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    assert_eq!(ini.capacity(0), ((3 << 20) / 512, 512));
    // One start-up line for the LUN: where, how big, which blocks, how I/O reaches it.
    let path = dir.path().join("disk.img");
    let line = format!(
        "serving LUN lun=0 target={TARGET} path={} size=3MiB block_size=512 io=direct",
        path.display()
    );
    assert!(d.log().contains(&line), "{line}\n{}", d.log());
}

#[test]
fn one_file_through_a_symlink_is_refused_as_a_second_writable_lun() {
    let dir = tempfile::tempdir().unwrap();
    image(dir.path(), "disk.img", 1 << 20);
    std::os::unix::fs::symlink(dir.path().join("disk.img"), dir.path().join("link.img")).unwrap();
    let config = write_config(dir.path(), &["path = \"disk.img\"", "path = \"link.img\""]);
    let err = refused(&config);
    assert!(
        err.contains("target[0].lun[1]: ")
            && err.contains("link.img is the same medium as target[0].lun[0]"),
        "{err}"
    );
    // Read-only twice is fine: both LUNs serve the one file.
    let config = write_config(
        dir.path(),
        &[
            "path = \"disk.img\"\nread_only = true",
            "path = \"link.img\"\nread_only = true",
        ],
    );
    let d = Daemon::start(&["--config", &config]);
    let mut ini = common::session(&d, &[]);
    assert_eq!(ini.report_luns(), [0, 1]);
}

#[test]
fn a_tail_shorter_than_a_block_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    image(dir.path(), "odd.img", (1 << 20) + 100);
    let config = write_config(dir.path(), &["path = \"odd.img\""]);
    let d = Daemon::start(&["--config", &config]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    assert_eq!(ini.capacity(0), (2048, 512));
    let log = d.log();
    assert!(
        log.contains(
            "is not a multiple of the 512-byte block size: the last 100 bytes are not exported"
        ),
        "{log}"
    );
}

#[test]
fn a_ram_lun_larger_than_memory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &["path = \"ram:1000TiB\""]);
    let err = refused(&config);
    assert!(err.contains("a RAM LUN must fit in memory"), "{err}");
}

/// A RAM LUN's reads and writes are copies the reactor makes itself: tmpfs gives io_uring no
/// non-blocking path, so through the ring every one of them would wake an io-wq worker thread
/// (`iou-wrk-*`), a hand-off and two context switches per I/O.
#[test]
fn ram_lun_io_needs_no_io_wq_worker() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    for i in 0..64u64 {
        let data = cdb::pattern(i, 4096);
        ini.write_blocks(0, i * 8, &data, 512).assert_good();
        let r = ini.read_blocks(0, i * 8, 8, 512);
        r.assert_good();
        assert!(r.data == data, "block {i} reads back what was written");
    }
    let workers: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("iou-wrk"))
        .collect();
    assert!(workers.is_empty(), "io-wq workers: {workers:?}");
}
