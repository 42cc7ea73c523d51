//! Daemon configuration: the TOML file model, its defaults and every validation rule.
//!
//! The types are in `model`, reading and writing TOML (and the value parsers the CLI shares) in
//! `parse`, and every rule in `validate`; this module re-exports the public items.
//!
//! # Configuration file reference
//!
//! `ringtgt serve --config FILE` reads one TOML file. Every key is optional unless marked
//! *required*; an unknown key is an error that names the key and its line and column.
//!
//! ```toml
//! portals = ["127.0.0.1:3260", "[::1]:3260"]
//! cores = "0-1"
//! portal_group_tag = 1
//! state_dir = "/var/lib/ringtgt"
//! admin_socket = "/run/ringtgt/ctl.sock"
//! metrics_addr = "127.0.0.1:9830"
//! shutdown_grace_secs = 10
//!
//! [iscsi]
//! max_recv_data_segment_length = 262144
//! max_burst_length = 1048576
//! first_burst_length = 262144
//! max_outstanding_r2t = 8
//! initial_r2t = false
//! immediate_data = true
//! header_digest = "allow"
//! data_digest = "allow"
//! queue_depth = 128
//! nop_in_interval_secs = 5
//! nop_in_timeout_secs = 15
//! default_time2wait = 2
//! default_time2retain = 20
//! login_timeout_secs = 15
//! max_transfer_bytes = 8388608
//!
//! [limits]
//! max_sessions = 1024
//! max_sessions_per_initiator = 64
//! max_connections = 4096
//! max_login_connections = 256
//! connection_buffer_bytes = "32MiB"
//!
//! [discovery.chap]
//! user = "scanner"
//! secret = "discovery-secret"     # or secret_file = "/etc/ringtgt/discovery.secret"
//!
//! [[target]]
//! name = "iqn.2026-11.io.ringtgt:disk1"
//! alias = "disk one"
//! allowed_initiators = ["iqn.1993-08.org.debian:01:abcdef"]
//! allowed_networks = ["10.0.0.0/24", "fd00::/64"]
//!
//! [target.chap]
//! user = "alice"
//! secret = "at-least-12-chars"    # or secret_file = "/etc/ringtgt/alice.secret"
//! mutual_user = "disk1"
//! mutual_secret = "another-12-chars"
//! algorithms = ["sha3-256", "sha-256", "sha1", "md5"]
//!
//! [[target.lun]]
//! id = 0
//! path = "/dev/nvme0n1"
//! block_size = 4096
//! read_only = false
//! serial = "NVME0001"
//! write_cache = true
//!
//! [[target.lun]]
//! path = "ram:512MiB"
//!
//! [[target.lun]]
//! path = "rbd:volumes/disk1"
//! ceph_conf = "/etc/ceph/ceph.conf"
//! ceph_user = "iscsi"
//! keyring = "/etc/ceph/ceph.client.iscsi.keyring"
//!
//! [[target.acl]]
//! initiator = "iqn.1993-08.org.debian:01:abcdef"
//! luns = [0]
//!
//! [[target.port_group]]
//! id = 1
//! portals = ["127.0.0.1:3260"]
//! state = "active-optimized"
//!
//! [[target.port_group]]
//! id = 2
//! portals = ["[::1]:3260"]
//! state = "active-non-optimized"
//! ```
//!
//! ## Top level
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `portals` | `["127.0.0.1:3260"]` | Addresses to listen on: `"IPv4:port"`, `"[IPv6]:port"`, or an address without port (port 3260). At least one, no duplicates, port not 0. |
//! | `cores` | `"auto"` | `"auto"` = the cores of the NUMA node that holds the most exported block devices on a machine with several nodes, else all available cores (README "Cores and NUMA"). Integer N = N cores: those of the NUMA node `"auto"` would choose first, then the other available cores in order (the first N available where `"auto"` uses every core); string = a core count (`"4"`) or a list of CPU ids to pin to (`"0-3,8"`, `"0,2"`, `"5-5"` for CPU 5 alone). Ids 0..=4095, no duplicates, ranges not reversed. |
//! | `portal_group_tag` | `1` | Target portal group tag reported to initiators, 0..=65535. |
//! | `state_dir` | `"/var/lib/ringtgt"` | Absolute path of the directory for state that must survive a restart: persistent reservations of logical units whose registrants asked for APTPL (`reservations/<target>/lun-<id>.toml`, written atomically before the command completes), and the SANITIZE operations of file, block-device, RBD and NVMe units that have not completed (`sanitize/<target>/lun-<id>.toml`, written by a thread of its own, so that no core waits for the disk, before the first block is touched and before a command with IMMED is answered; removed when the operation completes, before its command is answered GOOD (the unit stays NOT READY, SANITIZE IN PROGRESS until then), or when its failure is exited: a unit that finds one starts in failure mode, which `ringtgt ctl lun accept-medium` ends). Created when first needed. |
//! | `admin_socket` | `"/run/ringtgt/ctl.sock"` | Absolute path of the admin socket `ringtgt ctl` talks to (mode 0600, owned by the daemon's user; its directory is created if missing). When the default cannot be set up (e.g. an unprivileged user cannot create `/run/ringtgt`) the daemon says so and serves without it; a path given here or with `--admin-socket` that cannot be set up stops the start. |
//! | `metrics_addr` | none (off) | `"IP:port"` to serve Prometheus metrics on, at `/metrics`. |
//! | `shutdown_grace_secs` | `10` | Seconds, 0..=3600. On SIGTERM/SIGINT every session is asked to log out within this time (Async Message, AsyncEvent 1, Parameter3 = this value); sessions still there after it are closed once their I/O is done. 0 closes every connection at once. |
//! | `poll_us` | `0` | Microseconds, 0..=1000. A reactor that has nothing to do polls its ring for this long (io_uring_enter without waiting) before it sleeps, which saves the wake-up on nodes whose cores belong to the target; each reactor then keeps its core busy. 0 = sleep at once. |
//! | `coalesce_us` | `0` | Microseconds, 0..=1000 (Linux 6.12 or later; ignored with a warning before). After a turn whose receives each brought at most one whole PDU and under 16 KiB (an initiator sending PDU by PDU, not a batch or a stream) and came from initiators keeping 8 or more requests outstanding (summed over the turn's receives: the answers sent that they had not yet seen, by their ExpStatSN, plus the commands held here), the reactor's next wait returns once 16 completions are in or this long after it began, instead of at the first: fewer wake-ups and fuller sends for initiators that send each PDU in its own write (libiscsi: fio's engine, QEMU). It adds up to this much latency to such a turn, which pays at deep queues and costs at shallow ones: with fio's libiscsi engine on a null LUN and 20, 4K at QD32 gained 1.14–1.20× IOPS at 0.67–0.76× the target's CPU per I/O, and at QD8 lost 11–19 % of its IOPS (perf/RESULTS.md, "coalescing waits"). Not with `poll_us` (a polling reactor does not sleep to gather). 0 = every wait returns at its first completion. |
//! | `recv_ring_buffers` | `128` | 0..=4096. Buffers of 64 KiB of memory (60 to 64 KiB of it received into) in each reactor's receive ring (an io_uring provided-buffer ring, Linux 5.19+): a connection waiting for its next PDU holds no buffer, the kernel picks one when data arrives, and write data that arrives with its header is written from it as it is, with `WRITE_FIXED` (the buffers are registered). They are pinned memory: 8 MiB per core by default. When all are in use (write data in flight holds them), connections receive into buffers of their own until some come back. 0 = no ring. |
//!
//! ## `[iscsi]` — protocol tuning (ranges from RFC 7143 §13)
//!
//! | key | default | allowed | meaning |
//! |---|---|---|---|
//! | `max_recv_data_segment_length` | `262144` | 512..=16777215 | Largest data segment the target accepts in one PDU. |
//! | `max_burst_length` | `1048576` | 512..=16777215 | Largest solicited+unsolicited burst of one sequence. |
//! | `first_burst_length` | `262144` | 512..=16777215, ≤ `max_burst_length` | Largest unsolicited data per command. |
//! | `max_outstanding_r2t` | `8` | 1..=65535 | R2Ts in flight per task. |
//! | `initial_r2t` | `false` | bool | Target's offer for InitialR2T (`false` allows unsolicited Data-Out). |
//! | `immediate_data` | `true` | bool | Target's offer for ImmediateData. |
//! | `header_digest` | `"allow"` | `never`, `allow`, `require` | `never`: offer None only; `allow`: accept CRC32C or None; `require`: CRC32C only. |
//! | `data_digest` | `"allow"` | `never`, `allow`, `require` | As `header_digest`, for data segments. |
//! | `queue_depth` | `128` | 1..=4096 | Commands an initiator may have outstanding per session (MaxCmdSN − ExpCmdSN + 1). |
//! | `nop_in_interval_secs` | `5` | ≥ 0 | Seconds of idleness before the target sends a NOP-In ping; 0 turns keepalive off. |
//! | `nop_in_timeout_secs` | `15` | ≥ 1 | Seconds to wait for the NOP-Out answer before dropping the connection. |
//! | `default_time2wait` | `2` | 0..=3600 | DefaultTime2Wait offered, in seconds. |
//! | `default_time2retain` | `20` | 0..=3600 | DefaultTime2Retain offered, in seconds. |
//! | `login_timeout_secs` | `15` | ≥ 1 | Seconds a connection may spend in the login phase. |
//! | `max_transfer_bytes` | `8388608` (8 MiB) | ≥ 65536, multiple of 4096 | Largest single SCSI transfer (reported in the Block Limits VPD page). |
//!
//! ## `[limits]` — resource ceilings
//!
//! | key | default | allowed | meaning |
//! |---|---|---|---|
//! | `max_sessions` | `1024` | 1..=65535 | Sessions at once, normal and discovery together. |
//! | `max_sessions_per_initiator` | `64` | 1..=65535, ≤ `max_sessions` | Sessions at once of one initiator name. |
//! | `max_connections` | `4096` | 1..=1000000 | TCP connections at once, in any phase. |
//! | `max_login_connections` | `256` | 1..=`max_connections` | Connections still in the login phase at once. |
//! | `connection_buffer_bytes` | `"32MiB"` | SIZE or integer, ≥ 1 MiB and ≥ `iscsi.max_burst_length` | Per-connection budget of buffered data: read data waiting to be sent and write data not yet on disk. Must hold one whole burst. |
//!
//! ## `[[target]]` — one table per target
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `name` | *required* | iSCSI name (RFC 7143 §4.2.7): `iqn.YYYY-MM.reverse.domain[:anything]` in lower case, `eui.` + 16 hex digits, or `naa.` + 16 or 32 hex digits; at most 223 bytes. Unique (ignoring case). |
//! | `alias` | none | TargetAlias shown to initiators; 1..=255 bytes, no control characters. |
//! | `allowed_initiators` | `[]` | Initiator names allowed to log in; empty = any initiator. Each a valid iSCSI name, no duplicates. |
//! | `allowed_networks` | `[]` | Source networks allowed to log in, in CIDR notation (`"10.0.0.0/24"`, `"fd00::/64"`, `"10.0.0.5/32"` for one host); empty = any address. Host bits must be clear (`"10.0.0.5/24"` is an error), no duplicates. |
//! | `failover` | `"none"` | `"rbd-lock"`: gateway mode (README, "Ceph gateway"): every LUN is a writable RBD image that other gateways export too, and the port groups' states follow the images' exclusive locks. Needs one port group of this gateway and at least one with `remote = true`, each `"active-optimized"` (this gateway takes the locks at start if nobody holds them) or `"active-non-optimized"`. Its units do not support SANITIZE (README, "Ceph gateway"). |
//!
//! ## `[[target.lun]]` — one table per logical unit
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `id` | position in the list (0, 1, …) | LUN number, 0..=16383, unique within the target. |
//! | `path` | *required* | Backing store: a file or block-device path, or an NVMe generic device (`/dev/ngXnY`, NVMe passthrough); `"null:SIZE"` (discards writes, reads zeros); `"ram:SIZE"` (in memory, lost on exit; refused at start when SIZE exceeds the free space of `/dev/shm` or memory plus swap, since writes past that would fail); `"rbd:POOL/IMAGE"` (a Ceph RBD image; needs a build with the `rbd` feature). A path whose first part looks like `word:` must be written `"file:PATH"` (or start with `./`). A relative path (and a relative `ceph_conf` or `keyring`) is relative to the config file's directory (to the working directory for `--lun`). The same file or device may back two LUNs only if both are read-only, whatever the paths (symbolic links and other names for it are recognised at start by device and inode); so may the same image of one cluster. |
//! | `block_size` | the store's | Logical block size, `512` or `4096`. Default: a block device's logical block size (4096 on a 4K-native disk), a file's direct I/O alignment (`statx` `STATX_DIOALIGN`, 512 on most filesystems), 512 for `null`/`ram` (whose sizes must be a multiple of it) and `rbd`. A size smaller than what the device or file accepts for `O_DIRECT` is refused at start. |
//! | `read_only` | `false` | Export write-protected. |
//! | `serial` | derived by the daemon | Unit serial number (VPD page 0x80): 1..=32 printable ASCII characters. |
//! | `write_cache` | the device's | Report a volatile write cache (WCE); when `false` every write is made durable before it completes. Default: a block device's own cache (`queue/write_cache` in sysfs: on for "write back", off for "write through"), on for files, `ram`/`null` and `rbd` (librbd's cache, which SYNCHRONIZE CACHE and FUA flush). |
//! | `removable` | `false` | Removable medium (INQUIRY RMB): initiators may eject and load it with START STOP UNIT and lock it with PREVENT ALLOW MEDIUM REMOVAL; while ejected, media-access commands answer NOT READY, MEDIUM NOT PRESENT. The medium is loaded when the daemon starts. |
//! | `sanitize_rate` | unpaced | Bytes per second (a SIZE, `"200MiB"`, at least `"1MiB"`) that a SANITIZE may overwrite or deallocate, so that it does not starve the device's or the core's other units; the operation takes the unit's size ÷ this rate, during which every initiator is answered NOT READY, SANITIZE IN PROGRESS with its progress. |
//! | `ceph_conf` | librados's search: `$CEPH_CONF`, `/etc/ceph/ceph.conf`, `~/.ceph/config`, `./ceph.conf` | `rbd:` LUNs only: the Ceph configuration file that names the monitors (and usually the keyring). LUNs with the same `ceph_conf`, `ceph_user` and `keyring` share one cluster connection. |
//! | `ceph_user` | `"admin"` | `rbd:` LUNs only: the cephx id to connect as, without `client.` (`"iscsi"` is `client.iscsi`): 1..=64 letters, digits, `_`, `-` or `.`. |
//! | `keyring` | the one the Ceph configuration names (Ceph's default: `/etc/ceph/ceph.client.USER.keyring` and others) | `rbd:` LUNs only: the keyring file holding the user's key. |
//!
//! `SIZE` is a positive integer with an optional unit: none or `B` = bytes; `K`, `M`, `G`, `T`
//! and `KiB`, `MiB`, `GiB`, `TiB` = powers of 1024; `KB`, `MB`, `GB`, `TB` = powers of 1000
//! (units are case-insensitive). Examples: `4096`, `512MiB`, `10G` (= 10 GiB), `1TB`.
//!
//! ## `[target.chap]`, `[discovery.chap]` — CHAP authentication (RFC 7143 §12.1.3)
//!
//! Present = initiators must pass CHAP to log in to this target (`[target.chap]`, inside its
//! `[[target]]`) or to open a discovery session (`[discovery.chap]`); absent = no authentication.
//! Both tables take the same keys.
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `user` | *required* | Name the initiator logs in with (CHAP_N): 1..=255 bytes, no control characters. |
//! | `secret` | — | The initiator's secret: 12..=255 bytes (at least the 96 bits RFC 7143 requires). Exactly one of `secret` and `secret_file`. |
//! | `secret_file` | — | File holding the secret, read at start-up: one trailing newline (`\n` or `\r\n`) is dropped and the rest must be 12..=255 bytes. A relative path is relative to the daemon's working directory. A file that group or others can access is logged as a warning (`chmod 600` it). |
//! | `mutual_user` | none | Mutual CHAP: the name the target proves itself with. When set, mutual CHAP is required: an initiator that does not challenge the target is refused (as LIO does). Same rules as `user`. |
//! | `mutual_secret`, `mutual_secret_file` | — | The target's secret, given like `secret`/`secret_file`: exactly one of the two when `mutual_user` is set, neither otherwise. Must differ from the initiator's secret (one secret both ways allows a reflection attack). |
//! | `algorithms` | `["sha3-256", "sha-256", "sha1", "md5"]` | Digest algorithms allowed (CHAP_A): the target takes the first one in the initiator's list that is also here. A non-empty list of these four names, no duplicates. |
//!
//! Secrets never appear in error messages, `Debug` output or logs. On the command line they are
//! only taken from files (`--chap-secret-file` and the like).
//!
//! ## `[[target.acl]]` — per-initiator LUN masking (any number per target)
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `initiator` | *required* | iSCSI name of the initiator; unique within the target (ignoring case). |
//! | `luns` | *required* | LUN ids this initiator sees; each must be a LUN of this target, no duplicates. `[]` = it sees none. |
//!
//! An initiator without an `acl` entry sees every LUN of the target.
//!
//! ## `[[target.port_group]]` — ALUA target port groups (any number per target)
//!
//! | key | default | meaning and allowed values |
//! |---|---|---|
//! | `id` | *required* | 1..=65535, unique within the target: the group's target port group identifier, the relative target port identifier of its one target port, and the iSCSI target portal group tag of its portals. |
//! | `portals` | *required* | Some of the daemon's `portals` (written the same way), each in one group of the target at most; at least one. A remote group's portals (another gateway's) are optional and only informative. |
//! | `state` | `"active-optimized"` | Asymmetric access state reported by REPORT TARGET PORT GROUPS: `"active-optimized"`, `"active-non-optimized"`, `"standby"` (media access refused with NOT READY, TARGET PORT IN STANDBY STATE) or `"unavailable"` (only identification and REPORT TARGET PORT GROUPS answered). |
//! | `remote` | `false` | `true`: the target port of another gateway of a `failover = "rbd-lock"` target, reported by REPORT TARGET PORT GROUPS and never served here. |
//!
//! A target without port groups is reached through every portal, as one active/optimized group
//! whose id is `portal_group_tag`. A target with port groups is reached only through their
//! portals: a login through another portal is refused (Not found), and SendTargets lists each of
//! its portals with its group's tag. The access is implicit (INQUIRY TPGS = 01b): initiators read
//! the states, they do not set them. The operator changes them at run time with `ringtgt ctl alua
//! set --target IQN --group ID STATE` (e.g. standby before a portal's maintenance; every initiator
//! gets ASYMMETRIC ACCESS STATE CHANGED, and `ctl save` keeps the new state; a reload sets the
//! file's, with the same unit attention where it changes a state). The same logical unit
//! through two groups is one logical unit
//! (same identifiers, one reservation state), which is what Linux multipath groups into one map.
//!
//! ## Errors
//!
//! Every error is one line. A TOML syntax or type error names the file, line and column
//! (`/etc/ringtgt.toml:12:5: unknown field ...`); a rule violation names the field path
//! (`target[0].lun[1].block_size: must be 512 or 4096, got 1000`). Problems that do not stop the
//! daemon (a secret file that group or others can access) are logged as warnings at start-up.

mod error;
mod model;
mod parse;
mod rbd;
mod validate;

pub use error::{ConfigError, ConfigWarning};
pub use model::{
    default_admin_socket, default_portal, default_state_dir, AluaState, Backing, ChapAlgorithm,
    ChapConfig, ChapSecret, Config, CoreSpec, DigestPolicy, Failover, IscsiTuning, Limits, LunAcl,
    LunConfig, MutualChap, PortGroupConfig, Secret, SecretSource, TargetConfig,
    DEFAULT_COALESCE_US, DEFAULT_PORT, DEFAULT_RECV_RING_BUFFERS, DEFAULT_SHUTDOWN_GRACE_SECS,
    DEMO_TARGET, MAX_ALIAS_LEN, MAX_CHAP_TEXT_LEN, MAX_CORES, MAX_CORE_ID, MAX_ISCSI_NAME_LEN,
    MAX_LUN_ID, MAX_SERIAL_LEN, MIN_CHAP_SECRET_LEN, MIN_CONNECTION_BUFFER_BYTES,
};
pub use parse::{
    format_size, parse_backing, parse_cores, parse_cpu_list, parse_network, parse_portal,
    parse_size, read_secret_file,
};
pub use rbd::{RbdBacking, DEFAULT_CEPH_USER};
pub use validate::validate_iscsi_name;

#[cfg(test)]
mod tests;
