//! A real Ceph cluster for the RBD tests: the one `scripts/test.sh` brought up
//! (`RINGTGT_TEST_CEPH_CONF`), or else one that the first test of this process brings up with
//! `scripts/ceph/up.sh` and that is torn down when the process exits (the script's `--owner`
//! watcher). Each test makes images of its own, with names no other test or run uses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::daemon::run;

/// How long one `ceph`/`rbd` command may take.
const CLI_LIMIT: Duration = Duration::from_secs(60);

pub struct Cluster {
    conf: PathBuf,
}

/// The cluster every RBD test of this process shares.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Some(conf) = std::env::var_os("RINGTGT_TEST_CEPH_CONF") {
            return Cluster { conf: conf.into() };
        }
        // tmpfs when there is one: the OSD's commits then cost no disk flush.
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("ringtgt-ceph-test-{}", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ceph/up.sh");
        let dir_s = dir.to_str().expect("utf-8 path").to_owned();
        let pid = std::process::id().to_string();
        let (code, out, err) = run(script, &[&dir_s, "--owner", &pid], Duration::from_secs(180));
        assert_eq!(
            code,
            Some(0),
            "scripts/ceph/up.sh could not bring up a test cluster (the RBD tests need Debian's \
             ceph-mon, ceph-mgr, ceph-osd and ceph-common; scripts/test.sh installs them):\n\
             {out}{err}"
        );
        Cluster {
            conf: dir.join("ceph.conf"),
        }
    })
}

impl Cluster {
    /// The cluster's ceph.conf (it names the admin keyring).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    pub fn conf_str(&self) -> &str {
        self.conf.to_str().expect("utf-8 path")
    }

    /// Runs `program -c CONF args...` (the `ceph` or `rbd` CLI); panics unless it succeeds.
    pub fn cli(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["-c", self.conf_str()];
        if program == "ceph" {
            full.extend(["--connect-timeout", "10"]);
        }
        full.extend_from_slice(args);
        let (code, out, err) = run(program, &full, CLI_LIMIT);
        assert_eq!(code, Some(0), "{program} {args:?} failed:\n{out}{err}");
        out
    }

    /// A new image of `mib` MiB in `pool`, named after `what`, this process and a counter.
    pub fn create_image(&self, pool: &str, what: &str, mib: u64) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let spec = format!("{pool}/{name}");
        self.cli("rbd", &["create", "--size", &format!("{mib}M"), &spec]);
        name
    }

    /// The whole image as another client of the cluster reads it (`rbd export`).
    pub fn export(&self, pool: &str, image: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("image");
        let spec = format!("{pool}/{image}");
        self.cli(
            "rbd",
            &["export", "--no-progress", &spec, file.to_str().unwrap()],
        );
        std::fs::read(&file).expect("read exported image")
    }
}
