//! Which cores run reactors when the configuration does not say (`cores` left out or `"auto"`).
//!
//! On a machine with more than one NUMA node, the reactors run on the node nearest the exported
//! block devices: the node that holds most of them, by the `numa_node` the kernel gives each
//! device in sysfs. Files, RAM, null and RBD logical units do not vote. With one node, no device
//! that names its node (virtual devices, `numa_node` = -1), a tie, or sysfs content that cannot be
//! read, every core available to the process runs a reactor, as without NUMA. Nothing here
//! panics on what sysfs says: the worst it can do is a fallback with a warning.
//!
//! Everything is read below a sysfs root given by the caller ([`SYSFS`], or a fake tree in
//! tests):
//!
//! - `dev/block/MAJ:MIN` links to the device's directory under `devices/`; the nearest
//!   directory on its way up with a `numa_node` file gives the node (an NVMe namespace's
//!   controller, a partition's disk's controller, a PCI function).
//! - `devices/system/node/has_cpu` lists the nodes with CPUs (`0-1`), and
//!   `devices/system/node/nodeN/cpulist` the CPUs of node N (`0-3,8-11`).
//!
//! Buffer pools follow the cores: each reactor allocates its pool on its own thread after
//! pinning, so the kernel places the pages on that core's node (see `reactor::Reactor::new`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::{parse_cpu_list, CoreSpec};

/// Where the kernel's sysfs is mounted.
pub const SYSFS: &str = "/sys";

/// The highest node id Linux can have (`NODES_SHIFT` is at most 10).
const MAX_NODE_ID: usize = 1023;

/// The most read of one sysfs attribute (a real one is at most a page).
const MAX_ATTR_BYTES: u64 = 64 << 10;

/// The cores chosen for the reactors, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub cpus: Vec<usize>,
    pub reason: Reason,
}

/// Why these cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The cores of the node that holds `devices` of the `of` exported block devices, more
    /// than any other node.
    Nearest {
        node: usize,
        devices: usize,
        of: usize,
    },
    /// Every available core: the kernel shows no NUMA topology (built without NUMA).
    NoTopology,
    /// Every available core: one node has CPUs.
    OneNode,
    /// Every available core: no exported block device names its node.
    NoDeviceNode,
    /// Every available core: these nodes hold `devices` exported block devices each.
    Tie { nodes: Vec<usize>, devices: usize },
    /// Every available core: the nearest node has none this process may run on (CPU affinity,
    /// cpuset) or none at all.
    NoUsableCore { node: usize },
    /// Every available core: sysfs said something unexpected (what, where).
    Unreadable(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Nearest { node, devices, of } => write!(
                f,
                "NUMA node {node}, which holds {devices} of the {of} exported block devices"
            ),
            Reason::NoTopology => f.write_str("every available core (no NUMA topology in sysfs)"),
            Reason::OneNode => f.write_str("every available core (one NUMA node)"),
            Reason::NoDeviceNode => f.write_str(
                "every available core (no exported block device is attached to a NUMA node)",
            ),
            Reason::Tie { nodes, devices } => write!(
                f,
                "every available core (NUMA nodes {nodes:?} hold {devices} exported block devices each)"
            ),
            Reason::NoUsableCore { node } => write!(
                f,
                "every available core (NUMA node {node}, nearest the exported block devices, has \
                 no CPU this process may run on)"
            ),
            Reason::Unreadable(what) => write!(
                f,
                "every available core (NUMA placement skipped: {what}; give --cores to choose)"
            ),
        }
    }
}

impl Placement {
    /// The one start-up line that says which cores run reactors and why: a warning when sysfs
    /// could not be read, else information.
    pub fn log(&self) {
        let cores = CoreSpec::List(self.cpus.clone());
        match &self.reason {
            Reason::Unreadable(_) => tracing::warn!(%cores, "reactor cores: {}", self.reason),
            _ => tracing::info!(%cores, "reactor cores: {}", self.reason),
        }
    }
}

/// The default reactor cores: those of the node nearest the block devices `devices` (device
/// numbers; the same device twice votes once) among `available`, at most `limit` of them;
/// otherwise the first `limit` of `available`.
pub fn default_cores(
    sysfs: &Path,
    devices: &[u64],
    available: &[usize],
    limit: usize,
) -> Placement {
    let near = nearest_node(sysfs, devices).and_then(|(node, votes, of)| {
        let cpus = node_cpus(sysfs, node)?;
        let usable: Vec<usize> = cpus
            .into_iter()
            .filter(|c| available.contains(c))
            .take(limit)
            .collect();
        if usable.is_empty() {
            return Err(Reason::NoUsableCore { node });
        }
        Ok(Placement {
            cpus: usable,
            reason: Reason::Nearest {
                node,
                devices: votes,
                of,
            },
        })
    });
    near.unwrap_or_else(|reason| Placement {
        cpus: available[..limit.min(available.len())].to_vec(),
        reason,
    })
}

/// `count` reactor cores (`cores = N`): those of the node nearest the block devices first, as
/// for the default, then the other available cores in order, so that a count larger than the
/// node still gets its `count`. Without a nearest node, the first `count` available cores.
/// Needs `count <= available.len()`.
pub fn counted_cores(
    sysfs: &Path,
    devices: &[u64],
    available: &[usize],
    count: usize,
) -> Placement {
    let mut placement = default_cores(sysfs, devices, available, count);
    let rest: Vec<usize> = available
        .iter()
        .copied()
        .filter(|c| !placement.cpus.contains(c))
        .take(count.saturating_sub(placement.cpus.len()))
        .collect();
    placement.cpus.extend(rest);
    placement
}

impl Placement {
    /// The NUMA node whose cores come first, if the devices named one.
    pub fn nearest_node(&self) -> Option<usize> {
        match self.reason {
            Reason::Nearest { node, .. } => Some(node),
            _ => None,
        }
    }
}

/// The node holding the most of `devices`: (node, its devices, distinct devices in all).
fn nearest_node(sysfs: &Path, devices: &[u64]) -> Result<(usize, usize, usize), Reason> {
    let nodes = sysfs.join("devices/system/node");
    if !nodes.is_dir() {
        return Err(Reason::NoTopology);
    }
    let has_cpu = nodes.join("has_cpu");
    let with_cpus = parse_cpu_list(&read_attr(&has_cpu)?).map_err(|e| unreadable(&has_cpu, e))?;
    if with_cpus.len() < 2 {
        return Err(Reason::OneNode);
    }
    let distinct: BTreeSet<u64> = devices.iter().copied().collect();
    let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
    for &dev in &distinct {
        if let Some(node) = device_node(sysfs, dev)? {
            *votes.entry(node).or_default() += 1;
        }
    }
    let most = votes.values().copied().max().ok_or(Reason::NoDeviceNode)?;
    let top: Vec<usize> = votes
        .iter()
        .filter(|&(_, &n)| n == most)
        .map(|(&node, _)| node)
        .collect();
    match top[..] {
        [node] if with_cpus.contains(&node) => Ok((node, most, distinct.len())),
        [node] => Err(Reason::NoUsableCore { node }),
        _ => Err(Reason::Tie {
            nodes: top,
            devices: most,
        }),
    }
}

/// The node of block device `dev` (a partition's is its disk's): the `numa_node` nearest its
/// directory on the way up to `devices/`. `None` when no directory has one (virtual devices
/// such as loop and device-mapper) or it is -1 (the firmware did not say).
fn device_node(sysfs: &Path, dev: u64) -> Result<Option<usize>, Reason> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let link = sysfs.join(format!("dev/block/{major}:{minor}"));
    let dir = link.canonicalize().map_err(|e| unreadable(&link, e))?;
    let top = sysfs
        .canonicalize()
        .map_err(|e| unreadable(sysfs, e))?
        .join("devices");
    for d in dir
        .ancestors()
        .take_while(|d| d.starts_with(&top) && *d != top)
    {
        let file = d.join("numa_node");
        let text = match read_attr(&file) {
            Ok(text) => text,
            Err(_) if !file.exists() => continue,
            Err(e) => return Err(e),
        };
        let trimmed = text.trim();
        if trimmed == "-1" {
            return Ok(None);
        }
        return match trimmed.parse::<usize>() {
            Ok(n) if n <= MAX_NODE_ID => Ok(Some(n)),
            _ => Err(unreadable(&file, format!("{text:?} is not a NUMA node"))),
        };
    }
    Ok(None)
}

/// The CPUs of `node`.
fn node_cpus(sysfs: &Path, node: usize) -> Result<Vec<usize>, Reason> {
    let file: PathBuf = sysfs.join(format!("devices/system/node/node{node}/cpulist"));
    parse_cpu_list(&read_attr(&file)?).map_err(|e| unreadable(&file, e))
}

/// The text of a sysfs attribute (at most [`MAX_ATTR_BYTES`]).
fn read_attr(file: &Path) -> Result<String, Reason> {
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_ATTR_BYTES).read_to_string(&mut text))
        .map_err(|e| unreadable(file, e))?;
    Ok(text)
}

fn unreadable(file: &Path, e: impl fmt::Display) -> Reason {
    Reason::Unreadable(format!("{}: {e}", file.display()))
}

/// A sysfs tree in a temporary directory, shaped like the kernel's, for tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::path::Path;

    pub struct FakeSysfs {
        dir: tempfile::TempDir,
    }

    impl FakeSysfs {
        /// A tree whose nodes with CPUs are `has_cpu`, and node i's `cpulist` is `cpulists[i]`.
        pub fn with_nodes(has_cpu: &str, cpulists: &[&str]) -> FakeSysfs {
            let fake = FakeSysfs {
                dir: tempfile::tempdir().unwrap(),
            };
            fake.write("devices/system/node/has_cpu", has_cpu);
            for (i, list) in cpulists.iter().enumerate() {
                fake.write(&format!("devices/system/node/node{i}/cpulist"), list);
            }
            fake
        }

        pub fn root(&self) -> &Path {
            self.dir.path()
        }

        /// Writes `text` and a newline at `rel`, creating its directories.
        pub fn write(&self, rel: &str, text: &str) {
            let path = self.root().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{text}\n")).unwrap();
        }

        /// A block device at `devices/<rel>` reached from `dev/block/MAJ:MIN`, as the kernel
        /// links it; returns its device number.
        pub fn block_device(&self, rel: &str, major: u32, minor: u32) -> u64 {
            let dir = self.root().join("devices").join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            let links = self.root().join("dev/block");
            std::fs::create_dir_all(&links).unwrap();
            let target = Path::new("../../devices").join(rel);
            std::os::unix::fs::symlink(target, links.join(format!("{major}:{minor}"))).unwrap();
            rustix::fs::makedev(major, minor)
        }

        /// An NVMe namespace `nvme{ctrl}n1` on a PCI function of node `numa_node` (as the
        /// kernel writes it: the controller and the function both carry `numa_node`).
        pub fn nvme(&self, ctrl: u32, numa_node: &str) -> u64 {
            let pci = format!("pci0000:00/0000:0{ctrl}:00.0");
            self.write(&format!("devices/{pci}/numa_node"), numa_node);
            let controller = format!("{pci}/nvme/nvme{ctrl}");
            self.write(&format!("devices/{controller}/numa_node"), numa_node);
            self.block_device(&format!("{controller}/nvme{ctrl}n1"), 259, ctrl * 16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeSysfs;
    use super::*;

    const SIXTEEN: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    const NODE0: &[usize] = &[0, 1, 2, 3, 8, 9, 10, 11];
    const NODE1: &[usize] = &[4, 5, 6, 7, 12, 13, 14, 15];

    fn two_nodes() -> FakeSysfs {
        FakeSysfs::with_nodes("0-1", &["0-3,8-11", "4-7,12-15"])
    }

    fn cores(fake: &FakeSysfs, devices: &[u64]) -> Placement {
        default_cores(fake.root(), devices, &SIXTEEN, SIXTEEN.len())
    }

    fn every_core(reason: Reason) -> Placement {
        Placement {
            cpus: SIXTEEN.to_vec(),
            reason,
        }
    }

    #[test]
    fn a_count_of_cores_takes_the_nearest_nodes_first_then_the_others() {
        let fake = two_nodes();
        let dev = fake.nvme(1, "1");
        let pick = |count| counted_cores(fake.root(), &[dev], &SIXTEEN, count);
        let two = pick(2);
        assert_eq!(two.cpus, [4, 5]);
        assert_eq!(two.nearest_node(), Some(1));
        assert_eq!(pick(8).cpus, NODE1);
        // More than the node has: its cores, then the others in order.
        assert_eq!(pick(10).cpus, [4, 5, 6, 7, 12, 13, 14, 15, 0, 1]);
        assert_eq!(pick(16).cpus.len(), 16);
        // No device on a node: the first N, as without NUMA.
        let none = counted_cores(fake.root(), &[], &SIXTEEN, 3);
        assert_eq!(none.cpus, [0, 1, 2]);
        assert_eq!(none.nearest_node(), None);
        // One node.
        let one = FakeSysfs::with_nodes("0", &["0-15"]);
        assert_eq!(counted_cores(one.root(), &[], &SIXTEEN, 2).cpus, [0, 1]);
    }

    #[test]
    fn one_node_uses_every_available_core() {
        let fake = FakeSysfs::with_nodes("0", &["0-15"]);
        let dev = fake.nvme(0, "0");
        assert_eq!(cores(&fake, &[dev]), every_core(Reason::OneNode));
    }

    /// The cores of `node` in [`two_nodes`], chosen for holding `devices` of `of`.
    fn nearest(node: usize, devices: usize, of: usize) -> Placement {
        let cpus = [NODE0, NODE1][node].to_vec();
        let reason = Reason::Nearest { node, devices, of };
        Placement { cpus, reason }
    }

    #[test]
    fn devices_on_node_1_put_the_reactors_on_node_1() {
        let fake = two_nodes();
        let devs = [fake.nvme(0, "1"), fake.nvme(1, "1")];
        let p = cores(&fake, &devs);
        assert_eq!(p, nearest(1, 2, 2));
        assert_eq!(
            p.reason.to_string(),
            "NUMA node 1, which holds 2 of the 2 exported block devices"
        );
    }

    #[test]
    fn the_node_with_most_devices_wins_and_others_do_not_vote() {
        let fake = two_nodes();
        let loop0 = fake.block_device("virtual/block/loop0", 7, 0);
        let devs = [fake.nvme(0, "0"), fake.nvme(1, "0"), fake.nvme(2, "1")];
        assert_eq!(
            cores(&fake, &[devs[0], devs[1], devs[2], loop0]),
            nearest(0, 2, 4)
        );
    }

    #[test]
    fn a_device_exported_twice_votes_once_and_a_tie_uses_every_core() {
        let fake = two_nodes();
        let (a, b) = (fake.nvme(0, "0"), fake.nvme(1, "1"));
        let tie = Reason::Tie {
            nodes: vec![0, 1],
            devices: 1,
        };
        assert_eq!(cores(&fake, &[a, a, b]), every_core(tie));
    }

    #[test]
    fn numa_node_minus_one_or_no_block_device_uses_every_core() {
        let fake = two_nodes();
        let unknown = fake.nvme(0, "-1");
        assert_eq!(cores(&fake, &[unknown]), every_core(Reason::NoDeviceNode));
        assert_eq!(cores(&fake, &[]), every_core(Reason::NoDeviceNode));
    }

    #[test]
    fn a_partition_is_on_its_disks_node() {
        let fake = two_nodes();
        fake.nvme(0, "1");
        let p1 = fake.block_device(
            "pci0000:00/0000:00:00.0/nvme/nvme0/nvme0n1/nvme0n1p1",
            259,
            1,
        );
        assert_eq!(cores(&fake, &[p1]), nearest(1, 1, 1));
    }

    #[test]
    fn the_nearest_numa_node_up_the_tree_counts() {
        // virtio-blk: the virtio device has no numa_node, its PCI function has.
        let fake = two_nodes();
        fake.write("devices/pci0000:00/0000:00:02.0/numa_node", "1");
        let vda = fake.block_device("pci0000:00/0000:00:02.0/virtio1/block/vda", 254, 0);
        assert_eq!(cores(&fake, &[vda]), nearest(1, 1, 1));
    }

    #[test]
    fn cores_outside_the_process_affinity_and_beyond_the_limit_are_left_out() {
        let fake = two_nodes();
        let dev = fake.nvme(0, "1");
        let p = default_cores(fake.root(), &[dev], &[0, 1, 5, 6, 7, 12], 3);
        assert_eq!(p.cpus, [5, 6, 7]);
        let p = default_cores(fake.root(), &[dev], &[0, 1, 2], 16);
        assert_eq!(p.cpus, [0, 1, 2]);
        assert_eq!(p.reason, Reason::NoUsableCore { node: 1 });
    }

    #[test]
    fn malformed_cpulist_falls_back_with_a_warning() {
        let fake = FakeSysfs::with_nodes("0-1", &["0-7", "8-x"]);
        let dev = fake.nvme(0, "1");
        let p = cores(&fake, &[dev]);
        assert_eq!(p.cpus, SIXTEEN);
        let Reason::Unreadable(what) = &p.reason else {
            panic!("{:?}", p.reason)
        };
        assert!(
            what.contains("node1/cpulist") && what.contains("not a CPU id"),
            "{what}"
        );
    }

    #[test]
    fn garbage_in_sysfs_never_panics_and_falls_back() {
        let huge = "99999999999999999999999999";
        let cases: [(&str, &[&str], &str); 7] = [
            ("0-1", &["0-7", "8-15"], huge),
            ("0-1", &["0-7", "8-15"], "4096"),
            ("0-1", &["0-7", "8-15"], "one"),
            ("0-1", &["0-7", "8-15"], ""),
            ("0-1", &["0-7", ""], "1"),
            ("0-1", &["0-7", "0-4294967296"], "1"),
            (huge, &["0-7", "8-15"], "1"),
        ];
        for (has_cpu, cpulists, numa_node) in cases {
            let fake = FakeSysfs::with_nodes(has_cpu, cpulists);
            let dev = fake.nvme(0, numa_node);
            let p = cores(&fake, &[dev]);
            assert_eq!(p.cpus, SIXTEEN, "{has_cpu:?} {cpulists:?} {numa_node:?}");
            assert!(
                matches!(p.reason, Reason::Unreadable(_)),
                "{has_cpu:?} {cpulists:?} {numa_node:?}: {:?}",
                p.reason
            );
        }
        let fake = two_nodes();
        std::fs::write(
            fake.root().join("devices/system/node/has_cpu"),
            [0xff, 0xfe],
        )
        .unwrap();
        assert!(matches!(cores(&fake, &[]).reason, Reason::Unreadable(_)));
    }

    #[test]
    fn missing_sysfs_or_files_fall_back() {
        let gone = Path::new("/nonexistent/sysfs");
        let p = default_cores(gone, &[rustix::fs::makedev(259, 0)], &SIXTEEN, 16);
        assert_eq!(p, every_core(Reason::NoTopology));

        let fake = two_nodes();
        std::fs::remove_file(fake.root().join("devices/system/node/has_cpu")).unwrap();
        assert!(matches!(cores(&fake, &[]).reason, Reason::Unreadable(_)));

        // A block device without its dev/block link, or node 1 without its cpulist.
        let fake = two_nodes();
        let p = cores(&fake, &[rustix::fs::makedev(8, 0)]);
        assert!(matches!(p.reason, Reason::Unreadable(_)), "{:?}", p.reason);
        let fake = FakeSysfs::with_nodes("0-1", &["0-7"]);
        let dev = fake.nvme(0, "1");
        assert!(matches!(cores(&fake, &[dev]).reason, Reason::Unreadable(_)));
    }
}
