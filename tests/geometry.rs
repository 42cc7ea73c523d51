//! Block devices exported as they are: loop devices with 512- and 4096-byte sectors (what an NVMe
//! namespace with 512-byte or 4 KiB LBAs looks like) give each LUN its block size, physical
//! block, rotation and write cache, and I/O at any LBA works with `O_DIRECT`.
//!
//! Needs root and loop devices (`losetup`); without them each test says why and passes.

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::daemon::{run, BIN};
use common::{cdb, Daemon, Initiator, TARGET};

const DEVICE_SIZE: u64 = 64 << 20;

/// A loop device over a sparse temporary file, detached on drop.
struct LoopDevice {
    dev: String,
    _file: tempfile::NamedTempFile,
}

impl LoopDevice {
    /// A new loop device with `sector`-byte logical blocks, or `None` (with the reason printed)
    /// where loop devices cannot be made.
    fn new(sector: u32) -> Option<LoopDevice> {
        let file = tempfile::NamedTempFile::new().expect("backing file");
        file.as_file()
            .set_len(DEVICE_SIZE)
            .expect("size backing file");
        let out = Command::new("losetup")
            .args(["-f", "--show", "--sector-size", &sector.to_string()])
            .arg(file.path())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
                Some(LoopDevice { dev, _file: file })
            }
            Ok(o) => {
                eprintln!(
                    "SKIPPED: loop devices unavailable (losetup: {}); run as root with loop support",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: loop devices unavailable (cannot run losetup: {e})");
                None
            }
        }
    }

    /// A request-queue attribute of the device in sysfs.
    fn queue(&self, name: &str) -> String {
        let dev = self.dev.trim_start_matches("/dev/");
        let path = PathBuf::from(format!("/sys/block/{dev}/queue/{name}"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// An ext4 filesystem on a loop device, mounted on a temporary directory until dropped.
struct MountedFs {
    dir: tempfile::TempDir,
    _dev: LoopDevice,
}

impl MountedFs {
    fn new(dev: LoopDevice) -> Option<MountedFs> {
        let dir = tempfile::tempdir().expect("mount point");
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        let made = ok(Command::new("mkfs.ext4").args(["-q", &dev.dev]))
            && ok(Command::new("mount").arg(&dev.dev).arg(dir.path()));
        if !made {
            eprintln!(
                "SKIPPED: cannot make and mount an ext4 filesystem on {}",
                dev.dev
            );
            return None;
        }
        Some(MountedFs { dir, _dev: dev })
    }
}

impl Drop for MountedFs {
    fn drop(&mut self) {
        // A daemon that just exited may still hold its LUN file for a moment (the kernel tears
        // its io_uring, with the registered file, down asynchronously): the filesystem is busy
        // until then. Retry, then detach it lazily, so no mount (and no loop device under it)
        // outlives the test.
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        for _ in 0..50 {
            if umount(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = umount(true);
    }
}

fn serve(dev: &LoopDevice, extra: &[&str]) -> Daemon {
    let mut args = vec!["--target", TARGET, "--lun", &dev.dev];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn session(d: &Daemon) -> Initiator {
    let mut ini = common::session(d, &[]);
    ini.wait_ready(0);
    ini
}

/// READ CAPACITY (16): block length, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT, LBPME.
fn capacity16(ini: &mut Initiator) -> (u32, u8, bool) {
    let r = ini.read(0, &cdb::read_capacity16(32), 32);
    r.assert_good();
    let d = &r.data;
    let block = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    (block, d[13] & 0x0F, d[14] & 0x80 != 0)
}

/// Writes a pattern at every block of a few odd LBAs and reads each back.
fn write_and_read_back(ini: &mut Initiator, bs: u32) {
    for (seed, lba) in [(1u64, 0u64), (2, 1), (3, 7), (4, 1001)] {
        let data = cdb::pattern(seed, 3 * bs as usize);
        ini.write_blocks(0, lba, &data, bs).assert_good();
        let r = ini.read_blocks(0, lba, 3, bs);
        r.assert_good();
        assert!(r.data == data, "LBA {lba}: read back differs");
    }
}

/// The MODE SENSE (6) caching page's WCE bit.
fn write_cache_enabled(ini: &mut Initiator) -> bool {
    let r = ini.read(0, &cdb::mode_sense6(0x08, 255), 255);
    r.assert_good();
    let d = &r.data;
    let page = 4 + usize::from(d[3]);
    assert_eq!(d[page] & 0x3F, 0x08, "caching page");
    d[page + 2] & 0x04 != 0
}

/// VPD B1h MEDIUM ROTATION RATE.
fn rotation_rate(ini: &mut Initiator) -> u16 {
    let r = ini.read(0, &cdb::inquiry(true, 0xB1, 64), 64);
    r.assert_good();
    u16::from_be_bytes([r.data[4], r.data[5]])
}

#[test]
fn four_k_native_device_is_offered_with_4096_byte_blocks_and_io_works() {
    let Some(dev) = LoopDevice::new(4096) else {
        return;
    };
    let d = serve(&dev, &[]);
    let mut ini = session(&d);
    let (block, exponent, _) = capacity16(&mut ini);
    assert_eq!(block, 4096);
    assert_eq!(exponent, 0, "one logical block per 4 KiB physical block");
    assert_eq!(ini.capacity(0), (DEVICE_SIZE / 4096, 4096));
    write_and_read_back(&mut ini, 4096);
    let log = d.log();
    assert!(!log.contains("I/O failed"), "{log}");
    assert!(
        log.contains(&format!(
            "path={} size=64MiB block_size=4096 io=direct",
            dev.dev
        )),
        "one start-up line for the LUN: {log}"
    );
}

#[test]
fn device_with_512_byte_sectors_keeps_512_byte_blocks() {
    let Some(dev) = LoopDevice::new(512) else {
        return;
    };
    let d = serve(&dev, &[]);
    let mut ini = session(&d);
    let physical: u32 = dev.queue("physical_block_size").parse().unwrap();
    let (block, exponent, _) = capacity16(&mut ini);
    assert_eq!(block, 512);
    assert_eq!(
        1u32 << exponent,
        physical.max(512) / 512,
        "physical {physical}"
    );
    write_and_read_back(&mut ini, 512);
}

#[test]
fn block_size_4096_on_a_512_byte_device_is_allowed() {
    let Some(dev) = LoopDevice::new(512) else {
        return;
    };
    let d = serve(&dev, &["--block-size", "4096"]);
    let mut ini = session(&d);
    assert_eq!(capacity16(&mut ini).0, 4096);
    write_and_read_back(&mut ini, 4096);
}

#[test]
fn block_size_smaller_than_the_device_accepts_is_refused_at_start() {
    let Some(dev) = LoopDevice::new(4096) else {
        return;
    };
    let portal = format!("127.0.0.1:{}", common::daemon::free_port());
    let args = [
        "serve",
        "--portal",
        &portal,
        "--target",
        TARGET,
        "--lun",
        &dev.dev,
        "--block-size",
        "512",
    ];
    let (code, _, err) = run(BIN, &args, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "block_size 512 is smaller than the 4096-byte blocks it accepts for direct I/O"
        ),
        "{err}"
    );
}

/// Opens the device with `O_EXCL`, as a mounted filesystem or another target holds it.
fn hold_exclusively(dev: &LoopDevice) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev.dev)
        .expect("open the device exclusively")
}

/// A device held for a moment longer, as by a daemon killed with I/O in flight whose ring the
/// kernel is still tearing down, is waited for: the restarted daemon serves it.
#[test]
fn device_released_soon_after_start_is_waited_for() {
    let Some(dev) = LoopDevice::new(512) else {
        return;
    };
    let held = hold_exclusively(&dev);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        drop(held);
    });
    let d = Daemon::start(&["--target", TARGET, "--lun", &dev.dev]);
    release.join().unwrap();
    let mut ini = Initiator::connect(d.port());
    ini.login(Some(TARGET), &[]);
    ini.clear_unit_attentions();
    ini.read_blocks(0, 0, 1, 512).assert_good();
}

#[test]
fn device_in_use_by_another_program_is_refused() {
    let Some(dev) = LoopDevice::new(512) else {
        return;
    };
    // Held exclusively, as a mounted filesystem or another target would hold it.
    let _held = hold_exclusively(&dev);
    let portal = format!("127.0.0.1:{}", common::daemon::free_port());
    let args = [
        "serve", "--portal", &portal, "--target", TARGET, "--lun", &dev.dev,
    ];
    let (code, _, err) = run(BIN, &args, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("device is in use"), "{err}");
}

#[test]
fn write_cache_and_rotation_come_from_the_device() {
    let Some(dev) = LoopDevice::new(4096) else {
        return;
    };
    let rotational = dev.queue("rotational") == "1";
    let expected_rate = if rotational { 0 } else { 1 };
    let write_back = dev.queue("write_cache") == "write back";
    {
        let d = serve(&dev, &[]);
        let mut ini = session(&d);
        assert_eq!(
            rotation_rate(&mut ini),
            expected_rate,
            "rotational {rotational}"
        );
        assert_eq!(write_cache_enabled(&mut ini), write_back);
    }
    // The same device with its cache switched to write-through reports no volatile cache.
    let name = dev.dev.trim_start_matches("/dev/");
    let attr = format!("/sys/block/{name}/queue/write_cache");
    if std::fs::write(&attr, "write through").is_err() {
        eprintln!("SKIPPED the write-through half: cannot write {attr}");
        return;
    }
    let d = serve(&dev, &[]);
    let mut ini = session(&d);
    assert!(
        !write_cache_enabled(&mut ini),
        "write-through device, WCE clear"
    );
}

/// A file on a filesystem over a 4K-native disk takes direct I/O only in 4 KiB units
/// (`STATX_DIOALIGN`): its LUN gets 4096-byte blocks, and 512 is refused.
#[test]
fn file_on_a_4k_native_filesystem_gets_4096_byte_blocks() {
    let Some(fs) = LoopDevice::new(4096).and_then(MountedFs::new) else {
        return;
    };
    let file = fs.dir.path().join("disk.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let path = file.to_str().unwrap();
    {
        let d = Daemon::start(&["--target", TARGET, "--lun", path]);
        let mut ini = session(&d);
        assert_eq!(capacity16(&mut ini).0, 4096);
        write_and_read_back(&mut ini, 4096);
        assert!(d.log().contains("block_size=4096 io=direct"), "{}", d.log());
    }
    let portal = format!("127.0.0.1:{}", common::daemon::free_port());
    let args = [
        "serve",
        "--portal",
        &portal,
        "--target",
        TARGET,
        "--lun",
        path,
        "--block-size",
        "512",
    ];
    let (code, _, err) = run(BIN, &args, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("block_size 512 is smaller"), "{err}");
}

/// A running daemon does not wait for a held device: `ctl lun add` of one is refused at once
/// (the control thread that opens it also serves logins, which must not stall), and the LUN is
/// added once the device is free.
#[test]
fn live_add_of_a_device_in_use_is_refused_at_once() {
    let Some(dev) = LoopDevice::new(512) else {
        return;
    };
    let d = Daemon::start(&["--target", TARGET, "--lun", "ram:1MiB"]);
    let held = hold_exclusively(&dev);
    let add = ["lun", "add", "--target", TARGET, "--id", "1", &dev.dev];
    let started = std::time::Instant::now();
    let (code, _, err) = d.ctl(&add);
    let took = started.elapsed();
    assert_ne!(code, Some(0), "added a held device");
    assert!(err.contains("device is in use"), "{err}");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    drop(held);
    d.ctl_ok(&add);
    let mut ini = Initiator::connect(d.port());
    ini.login(Some(TARGET), &[]);
    ini.clear_unit_attentions();
    ini.read_blocks(1, 0, 1, 512).assert_good();
}
