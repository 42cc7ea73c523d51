//! What the fuzz targets share: a reader that turns fuzzer bytes into choices and PDUs, the
//! logical units and targets they serve, and an in-memory backing store that plays the reactor's
//! block I/O.

use std::sync::Arc;

use ringtgt::backstore::Extent;
use ringtgt::login::{ChapCredentials, ChapPolicy, TargetEntry};
use ringtgt::pdu::frame::pad4;
use ringtgt::pdu::{Bhs, BHS_LEN};
use ringtgt::scsi::{LuInfo, LunMap};

/// The target every normal session of the `login` and `connection` targets logs in to.
pub const TARGET: &str = "iqn.2026-11.io.ringtgt:fuzz";
/// A second target that only admits [`ALLOWED_INITIATOR`].
pub const GUARDED_TARGET: &str = "iqn.2026-11.io.ringtgt:guarded";
pub const ALLOWED_INITIATOR: &str = "iqn.2026-11.test:allowed";

/// Fuzzer bytes read front to back; reads past the end give zeros / empty slices.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }

    /// One PDU as it travels without digests: a 48-byte BHS (zero-filled when the input ends
    /// early), its AHS and its data segment (cut short when the input ends), then the padding.
    pub fn pdu(&mut self) -> Option<WirePdu<'a>> {
        if self.is_empty() {
            return None;
        }
        let mut raw = [0u8; BHS_LEN];
        let head = self.take(BHS_LEN);
        raw[..head.len()].copy_from_slice(head);
        let bhs = Bhs(raw);
        let ahs = self.take(bhs.total_ahs_len());
        let data_len = bhs.data_segment_len();
        let data = self.take(data_len);
        self.take(pad4(data_len) - data_len);
        Some(WirePdu { bhs, ahs, data })
    }
}

/// A PDU read from the fuzzer's input by [`Reader::pdu`].
#[derive(Debug, Clone, Copy)]
pub struct WirePdu<'a> {
    pub bhs: Bhs,
    pub ahs: &'a [u8],
    pub data: &'a [u8],
}

/// The targets a login can reach: one open to all with an alias, one with an access list by
/// name and network, one with one-way CHAP, one with mutual CHAP.
pub fn login_targets() -> Vec<TargetEntry> {
    let entry = |name: &str, alias: Option<&str>, allowed: &[&str]| TargetEntry {
        name: name.into(),
        alias: alias.map(Into::into),
        allowed_initiators: allowed.iter().map(|&i| i.into()).collect(),
        ..TargetEntry::default()
    };
    let mut guarded = entry(GUARDED_TARGET, None, &[ALLOWED_INITIATOR]);
    guarded.allowed_networks = vec!["127.0.0.0/8".parse().expect("network")];
    let mut one_way = entry(CHAP_TARGET, None, &[]);
    one_way.chap = Some(Arc::new(chap_policy(false)));
    let mut mutual = entry(MUTUAL_TARGET, None, &[]);
    mutual.chap = Some(Arc::new(chap_policy(true)));
    vec![
        entry(TARGET, Some("Fuzz Disk"), &[]),
        guarded,
        one_way,
        mutual,
    ]
}

/// Target names with CHAP policies.
pub const CHAP_TARGET: &str = "iqn.2026-11.io.ringtgt:fuzz-chap";
pub const MUTUAL_TARGET: &str = "iqn.2026-11.io.ringtgt:fuzz-mutual";

/// CHAP credentials `alice` / `alice-secret-1`, mutual `target` / `target-secret-2`.
pub fn chap_policy(mutual: bool) -> ChapPolicy {
    let policy = ChapPolicy::new(ChapCredentials::new("alice", "alice-secret-1"));
    if mutual {
        policy.with_mutual(ChapCredentials::new("target", "target-secret-2"))
    } else {
        policy
    }
}

/// A logical unit of `blocks` blocks of `block_size` bytes, as the daemon describes one.
pub fn lu(lun: u16, block_size: u32, blocks: u64) -> LuInfo {
    let mut naa_id = [
        0x60, 0x01, 0x40, 0x50, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ];
    // One designator per unit, as the daemon builds them: EXTENDED COPY names units by it.
    naa_id[14..].copy_from_slice(&lun.to_be_bytes());
    LuInfo {
        lun,
        block_size,
        num_blocks: blocks,
        read_only: false,
        write_cache: true,
        non_rotational: true,
        serial: format!("FUZZ{lun:04}"),
        vendor: "RINGTGT".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        naa_id,
        target_name: TARGET.into(),
        max_transfer_blocks: 1024,
        optimal_transfer_blocks: 128,
        shared: Default::default(),
        removable: false,
        geometry: Default::default(),
        store_compare_and_write: false,
        sanitize_rate: None,
        reads_zeros: false,
        sanitizable: true,
    }
}

/// The unit that keeps nothing (a null store): its reads are zeros sent without a buffer or I/O.
pub const NULL_LUN: u16 = 3;

/// Small units whose stores fit in memory: LUN 0 is 1 MiB of 512-byte blocks, LUN 1 is a
/// read-only 256 KiB of 4096-byte blocks with a tiny transfer limit, no write cache and no
/// SANITIZE (a gateway target's unit), LUN 2 is
/// 8 KiB of 512-byte blocks with no transfer limit and a removable medium, LUN 3 (`NULL_LUN`)
/// 1 MiB of 512-byte blocks that reads as zeros.
pub fn lun_map() -> LunMap {
    let mut ro = lu(1, 4096, 64);
    ro.read_only = true;
    ro.write_cache = false;
    ro.max_transfer_blocks = 2;
    ro.sanitizable = false;
    let mut tiny = lu(2, 512, 16);
    tiny.write_cache = false;
    tiny.max_transfer_blocks = 0;
    tiny.removable = true;
    let mut null = lu(NULL_LUN, 512, 2048);
    null.reads_zeros = true;
    LunMap::new(vec![lu(0, 512, 2048), ro, tiny, null])
}

/// One in-memory store per logical unit: what the reactor's block I/O does, against a `Vec<u8>`.
/// Every access must lie inside the unit; one outside is a bug of the layer that asked for it.
pub struct MemStore {
    disks: Vec<(u16, Vec<u8>)>,
}

impl MemStore {
    pub fn new(luns: &LunMap) -> Self {
        let disks = luns
            .iter()
            .map(|u| {
                (
                    u.lun,
                    vec![0; u.block_size as usize * u.num_blocks as usize],
                )
            })
            .collect();
        MemStore { disks }
    }

    fn range(&mut self, lun: u16, offset: u64, len: usize) -> &mut [u8] {
        let disk = &mut self
            .disks
            .iter_mut()
            .find(|(l, _)| *l == lun)
            .unwrap_or_else(|| panic!("I/O for LUN {lun}, which has no store"))
            .1;
        let size = disk.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.checked_add(len).filter(|&e| e <= size);
        let Some(end) = end else {
            panic!("I/O of {len} bytes at offset {offset} outside LUN {lun} of {size} bytes");
        };
        &mut disk[start..end]
    }

    pub fn read(&mut self, lun: u16, offset: u64, buf: &mut [u8]) {
        buf.copy_from_slice(self.range(lun, offset, buf.len()));
    }

    pub fn write(&mut self, lun: u16, offset: u64, data: &[u8]) {
        self.range(lun, offset, data.len()).copy_from_slice(data);
    }

    pub fn discard(&mut self, lun: u16, offset: u64, len: u64) {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.range(lun, offset, len).fill(0);
    }

    /// How the store holds the `len` bytes from `offset`, as a sparse file that keeps no zeroed
    /// 512-byte sector would: data up to the next all-zero sector, or a hole up to the next
    /// sector with data.
    pub fn extent(&mut self, lun: u16, offset: u64, len: u64) -> Extent {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let range = self.range(lun, offset, len);
        // One slice comparison per sector: a byte-by-byte scan is a traced comparison per byte
        // under coverage instrumentation, which made a run of GET LBA STATUS on a mostly zero
        // unit exceed the fuzzer's timeout.
        const ZERO_SECTOR: [u8; 512] = [0; 512];
        let holds = |sector: &[u8]| sector != &ZERO_SECTOR[..sector.len()];
        let mut sectors = range.chunks(512).map(holds).peekable();
        let allocated = sectors.peek().copied().unwrap_or(false);
        let n = sectors.take_while(|&h| h == allocated).count() as u64;
        Extent {
            allocated,
            len: (n * 512).min(len as u64),
        }
    }
}
