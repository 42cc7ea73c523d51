//! The validated configuration model: what the daemon, the CLI and the tests work with.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;

use super::parse::{format_size, parse_backing};

/// The CHAP digest algorithms a target may offer: the login layer's own, read from their
/// configuration names.
pub use crate::login::ChapAlgorithm;

/// IANA-registered TCP port of iSCSI targets (service name "iscsi-target").
pub const DEFAULT_PORT: u16 = 3260;
/// Largest iSCSI name in bytes (RFC 7143 §4.2.7.1).
pub const MAX_ISCSI_NAME_LEN: usize = 223;
/// Largest TargetAlias in bytes (RFC 7143 §13.6: text values up to 255 bytes).
pub const MAX_ALIAS_LEN: usize = 255;
/// Largest unit serial number in characters.
pub const MAX_SERIAL_LEN: usize = 32;
/// Largest LUN id (14-bit flat space addressing, SAM-5 §4.7.7).
pub const MAX_LUN_ID: u16 = 16383;
/// Largest CPU id accepted in a core list.
pub const MAX_CORE_ID: usize = 4095;
/// Largest core count.
pub const MAX_CORES: usize = MAX_CORE_ID + 1;
/// Target name used by [`Config::demo`].
pub const DEMO_TARGET: &str = "iqn.2026-11.io.ringtgt:demo";
/// Shortest CHAP secret in bytes: RFC 7143 §12.1.3 requires at least 96 bits.
pub const MIN_CHAP_SECRET_LEN: usize = 12;
/// Longest CHAP secret and CHAP user name in bytes (RFC 7143 §13.6: text values up to 255 bytes).
pub const MAX_CHAP_TEXT_LEN: usize = 255;
/// Time initiators get to log out on a stop: Linux's open-iscsi answers a logout request at
/// once, and systemd's default stop timeout (90 s) leaves room for the drain after it.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u32 = 10;
/// How long a reactor's wait may gather completions by default (`coalesce_us`): never. It
/// trades latency for CPU (see the README), which is the operator's choice to make.
pub const DEFAULT_COALESCE_US: u32 = 0;
/// Receive ring buffers per reactor by default (64 KiB each: 8 MiB per core).
pub const DEFAULT_RECV_RING_BUFFERS: u16 = 128;
/// Smallest per-connection buffer budget.
pub const MIN_CONNECTION_BUFFER_BYTES: u64 = 1 << 20;

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listening addresses (IPv4 and IPv6); at least one, no duplicates.
    pub portals: Vec<SocketAddr>,
    /// Exported targets, unique names; may be empty (targets can be added with `ringtgt ctl`).
    pub targets: Vec<TargetConfig>,
    /// Protocol tuning.
    pub iscsi: IscsiTuning,
    /// Reactor cores.
    pub cores: CoreSpec,
    /// Target portal group tag.
    pub portal_group_tag: u16,
    /// CHAP that discovery sessions must pass; `None` = discovery needs no authentication.
    pub discovery_chap: Option<ChapConfig>,
    /// Resource ceilings.
    pub limits: Limits,
    /// Where state that must survive a restart lives (persistent reservations with APTPL).
    pub state_dir: PathBuf,
    /// The admin socket `ringtgt ctl` talks to.
    pub admin_socket: PathBuf,
    /// Where `/metrics` is served (Prometheus text format); `None` = not served.
    pub metrics_addr: Option<SocketAddr>,
    /// Seconds initiators have to log out when the daemon stops (0..=3600; 0 = close at once).
    pub shutdown_grace_secs: u32,
    /// Microseconds a reactor with nothing to do polls its ring before it sleeps (0..=1000;
    /// 0 = sleep at once).
    pub poll_us: u32,
    /// Microseconds a reactor's wait after a turn of small receives from busy initiators may
    /// gather more completions (0..=1000; 0 = never).
    pub coalesce_us: u32,
    /// Buffers of each reactor's receive ring (0..=4096; 0 = none).
    pub recv_ring_buffers: u16,
}

/// One iSCSI target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// iSCSI name (RFC 7143 §4.2.7).
    pub name: String,
    /// TargetAlias.
    pub alias: Option<String>,
    /// Logical units, unique ids; may be empty (units can be added with `ringtgt ctl`).
    pub luns: Vec<LunConfig>,
    /// Initiators allowed to log in; empty = any.
    pub allowed_initiators: Vec<String>,
    /// Source networks allowed to log in (host bits clear, no duplicates); empty = any address.
    pub allowed_networks: Vec<IpNet>,
    /// CHAP that initiators must pass to log in to this target; `None` = no authentication.
    pub chap: Option<ChapConfig>,
    /// Per-initiator LUN masking; unique initiators, every LUN id defined in `luns`.
    pub acls: Vec<LunAcl>,
    /// ALUA target port groups; empty = one active/optimized group holding every portal, with
    /// the daemon's `portal_group_tag` as its id.
    pub port_groups: Vec<PortGroupConfig>,
    /// Who decides the port groups' states while the daemon runs.
    pub failover: Failover,
}

/// How a target's ALUA states change while the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failover {
    /// They stay as configured.
    #[default]
    None,
    /// Gateway mode: every LUN is an RBD image that other gateways export too; the gateway
    /// holding the images' exclusive locks is active/optimized, the others
    /// active/non-optimized, and a write through a non-optimized gateway takes the locks over
    /// (`control::failover`).
    RbdLock,
}

impl Failover {
    pub const ALL: [Failover; 2] = [Failover::None, Failover::RbdLock];

    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Failover::None => "none",
            Failover::RbdLock => "rbd-lock",
        }
    }
}

/// One ALUA target port group: some of the daemon's portals, which together are one target
/// port of the target (its relative port identifier and portal group tag are `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroupConfig {
    /// 1..=65535, unique within the target.
    pub id: u16,
    /// Portals of the group, each one of the daemon's `portals`, in one group at most (for a
    /// remote group: another gateway's portals, informative only).
    pub portals: Vec<SocketAddr>,
    pub state: AluaState,
    /// The target port of another gateway (`failover = "rbd-lock"`): reported by REPORT TARGET
    /// PORT GROUPS, never served here.
    pub remote: bool,
}

/// The asymmetric access state of a port group (SPC-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AluaState {
    #[default]
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
}

impl AluaState {
    pub const ALL: [AluaState; 4] = [
        AluaState::ActiveOptimized,
        AluaState::ActiveNonOptimized,
        AluaState::Standby,
        AluaState::Unavailable,
    ];

    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AluaState::ActiveOptimized => "active-optimized",
            AluaState::ActiveNonOptimized => "active-non-optimized",
            AluaState::Standby => "standby",
            AluaState::Unavailable => "unavailable",
        }
    }
}

impl TargetConfig {
    /// A target with these LUNs and nothing else: no alias, open to every initiator and
    /// network, no CHAP, no LUN masking.
    pub fn new(name: String, luns: Vec<LunConfig>) -> Self {
        TargetConfig {
            name,
            alias: None,
            luns,
            allowed_initiators: Vec::new(),
            allowed_networks: Vec::new(),
            chap: None,
            acls: Vec::new(),
            port_groups: Vec::new(),
            failover: Failover::None,
        }
    }
}

/// The LUNs one initiator sees of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunAcl {
    /// iSCSI name of the initiator.
    pub initiator: String,
    /// LUN ids it sees, in the order given; may be empty (it sees none).
    pub luns: Vec<u16>,
}

/// CHAP authentication (RFC 7143 §12.1.3) of a target or of discovery sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapConfig {
    /// Name the initiator must give (CHAP_N).
    pub user: String,
    /// Secret the initiator must prove it knows.
    pub secret: ChapSecret,
    /// Name and secret the target proves itself with when the initiator asks (mutual CHAP).
    pub mutual: Option<MutualChap>,
    /// Digest algorithms offered, in order of preference; non-empty, no duplicates.
    pub algorithms: Vec<ChapAlgorithm>,
}

impl ChapConfig {
    /// Algorithms used when the file does not list them: all, strongest first.
    pub const DEFAULT_ALGORITHMS: [ChapAlgorithm; 4] = ChapAlgorithm::ALL;

    /// One-way CHAP with the default algorithms.
    pub fn new(user: String, secret: ChapSecret) -> Self {
        ChapConfig {
            user,
            secret,
            mutual: None,
            algorithms: Self::DEFAULT_ALGORITHMS.to_vec(),
        }
    }
}

/// The target's own CHAP identity for mutual authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutualChap {
    /// Name the target gives.
    pub user: String,
    /// Secret the target proves it knows; must differ from the initiator's secret.
    pub secret: ChapSecret,
}

/// A CHAP secret and where it came from, so that writing the configuration back keeps a secret
/// file a file reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapSecret {
    pub value: Secret,
    pub source: SecretSource,
}

impl ChapSecret {
    /// A secret written in the configuration itself.
    pub fn inline(value: impl Into<Vec<u8>>) -> Self {
        ChapSecret {
            value: Secret::new(value.into()),
            source: SecretSource::Inline,
        }
    }
}

/// Where a [`ChapSecret`] was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The `secret` key itself.
    Inline,
    /// The file named by `secret_file` (or a `--…-secret-file` flag), read at load time.
    File(PathBuf),
}

/// Secret bytes. `Debug` prints `<redacted>` so that a secret cannot reach a log or an error
/// message by formatting the configuration; the bytes are wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl zeroize::ZeroizeOnDrop for Secret {}

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The secret itself; for the login layer only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (safe to report).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Resource ceilings of the whole daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions at once, normal and discovery together; 1..=65535.
    pub max_sessions: u32,
    /// Sessions at once of one initiator name; 1..=65535, at most `max_sessions`.
    pub max_sessions_per_initiator: u32,
    /// TCP connections at once, in any phase; 1..=1_000_000.
    pub max_connections: u32,
    /// Connections still in the login phase at once; 1..=`max_connections`.
    pub max_login_connections: u32,
    /// Per-connection budget of buffered data (read data waiting to be sent, write data not yet
    /// on disk); at least 1 MiB and at least `iscsi.max_burst_length`, so one burst always fits.
    pub connection_buffer_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_sessions_per_initiator: 64,
            max_connections: 4096,
            max_login_connections: 256,
            connection_buffer_bytes: 32 << 20,
        }
    }
}

/// One logical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunConfig {
    /// LUN number, 0..=16383.
    pub id: u16,
    /// Where the blocks live.
    pub backing: Backing,
    /// 512 or 4096; `None` = the backing store's own (a block device's logical block size, a
    /// file's direct I/O alignment, else 512).
    pub block_size: Option<u32>,
    /// Export write-protected.
    pub read_only: bool,
    /// Unit serial number; the daemon derives one if `None`.
    pub serial: Option<String>,
    /// Report a volatile write cache; `None` = a block device's own cache setting, else on.
    pub write_cache: Option<bool>,
    /// Removable medium: initiators may eject and load it (START STOP UNIT) and lock it
    /// (PREVENT ALLOW MEDIUM REMOVAL).
    pub removable: bool,
    /// Bytes per second a SANITIZE may write or deallocate; `None` = unpaced.
    pub sanitize_rate: Option<u64>,
}

impl LunConfig {
    /// A LUN with default settings (the store's block size and write cache, writable, derived
    /// serial).
    pub fn new(id: u16, backing: Backing) -> Self {
        LunConfig {
            id,
            backing,
            block_size: None,
            read_only: false,
            serial: None,
            write_cache: None,
            removable: false,
            sanitize_rate: None,
        }
    }
}

/// Backing store of a LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A regular file or a block device.
    Path(PathBuf),
    /// Discards writes, reads zeros.
    Null { size: u64 },
    /// Kept in memory; lost on exit.
    Ram { size: u64 },
    /// A Ceph RBD image (`rbd:POOL/IMAGE`).
    Rbd(super::rbd::RbdBacking),
}

impl fmt::Display for Backing {
    /// Formats in the syntax [`parse_backing`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::Null { size } => write!(f, "null:{}", format_size(*size)),
            Backing::Ram { size } => write!(f, "ram:{}", format_size(*size)),
            Backing::Rbd(r) => write!(f, "rbd:{}/{}", r.pool, r.image),
            Backing::Path(p) => {
                let s = p.to_string_lossy();
                match parse_backing(&s) {
                    Ok(Backing::Path(q)) if q == *p => f.write_str(&s),
                    _ => write!(f, "file:{s}"),
                }
            }
        }
    }
}

/// iSCSI protocol tuning; ranges from RFC 7143 §13.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiTuning {
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub max_outstanding_r2t: u16,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub header_digest: DigestPolicy,
    pub data_digest: DigestPolicy,
    pub queue_depth: u32,
    pub nop_in_interval_secs: u32,
    pub nop_in_timeout_secs: u32,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub login_timeout_secs: u32,
    pub max_transfer_bytes: u32,
}

impl Default for IscsiTuning {
    fn default() -> Self {
        IscsiTuning {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1_048_576,
            first_burst_length: 262_144,
            max_outstanding_r2t: 8,
            initial_r2t: false,
            immediate_data: true,
            header_digest: DigestPolicy::Allow,
            data_digest: DigestPolicy::Allow,
            queue_depth: 128,
            nop_in_interval_secs: 5,
            nop_in_timeout_secs: 15,
            default_time2wait: 2,
            default_time2retain: 20,
            login_timeout_secs: 15,
            max_transfer_bytes: 8 << 20,
        }
    }
}

/// What the target offers and accepts for HeaderDigest / DataDigest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum DigestPolicy {
    /// Offer and accept None only.
    Never,
    /// Accept CRC32C or None (CRC32C preferred).
    Allow,
    /// Accept CRC32C only; a peer that refuses it cannot log in.
    Require,
}

impl DigestPolicy {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestPolicy::Never => "never",
            DigestPolicy::Allow => "allow",
            DigestPolicy::Require => "require",
        }
    }
}

impl fmt::Display for DigestPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DigestPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(DigestPolicy::Never),
            "allow" => Ok(DigestPolicy::Allow),
            "require" => Ok(DigestPolicy::Require),
            _ => Err(format!(
                "must be \"never\", \"allow\" or \"require\", got {s:?}"
            )),
        }
    }
}

/// Which cores run reactors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CoreSpec {
    /// Not given (or `"auto"`): the daemon chooses at start-up, the cores of the NUMA node
    /// nearest the exported block devices where there is such a node, else every core available
    /// to the process (`crate::numa`).
    #[default]
    Auto,
    /// Use this many cores (the daemon picks which).
    Count(usize),
    /// Pin one reactor to each of these CPU ids, in this order.
    List(Vec<usize>),
}

impl fmt::Display for CoreSpec {
    /// Formats in the syntax [`parse_cores`] reads back (`"auto"`, `"4"`, `"0-3,8"`, `"5-5"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreSpec::Auto => f.write_str("auto"),
            CoreSpec::Count(n) => write!(f, "{n}"),
            CoreSpec::List(ids) => {
                if let [only] = ids.as_slice() {
                    return write!(f, "{only}-{only}");
                }
                let mut first = true;
                let mut i = 0;
                while i < ids.len() {
                    let start = ids[i];
                    let mut end = start;
                    while i + 1 < ids.len() && ids[i + 1] == end + 1 {
                        i += 1;
                        end = ids[i];
                    }
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    if end == start {
                        write!(f, "{start}")?;
                    } else {
                        write!(f, "{start}-{end}")?;
                    }
                    i += 1;
                }
                Ok(())
            }
        }
    }
}

impl Config {
    /// The `--demo` configuration: one target `iqn.2026-11.io.ringtgt:demo` on 127.0.0.1:3260
    /// with LUN 0 backed by `image_path`; everything else default.
    pub fn demo(image_path: PathBuf) -> Config {
        Config {
            portals: vec![default_portal()],
            targets: vec![TargetConfig {
                alias: Some("ringtgt demo".to_string()),
                ..TargetConfig::new(
                    DEMO_TARGET.to_string(),
                    vec![LunConfig::new(0, Backing::Path(image_path))],
                )
            }],
            iscsi: IscsiTuning::default(),
            cores: CoreSpec::default(),
            portal_group_tag: 1,
            discovery_chap: None,
            limits: Limits::default(),
            state_dir: default_state_dir(),
            admin_socket: default_admin_socket(),
            metrics_addr: None,
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE_SECS,
            poll_us: 0,
            coalesce_us: DEFAULT_COALESCE_US,
            recv_ring_buffers: DEFAULT_RECV_RING_BUFFERS,
        }
    }
}

/// `/run/ringtgt/ctl.sock`, the admin socket of a packaged daemon.
pub fn default_admin_socket() -> PathBuf {
    PathBuf::from("/run/ringtgt/ctl.sock")
}

/// `/var/lib/ringtgt`, where a packaged daemon keeps its state.
pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/ringtgt")
}

/// The portal used when neither `--portal` nor the config file names one: 127.0.0.1:3260.
pub fn default_portal() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}
