//! Random and truncated CDBs: nothing may panic, and every answer must be well formed.

use super::dispatch;
use super::*;
use crate::scsi::cdb::op;
use crate::scsi::job::STEP_BYTES;
use crate::scsi::{
    apply_shared, encode_lun, IoOutcome, Job, JobOp, LuContext, LunMap, NexusState, PrState,
    SharedOp, Step,
};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Zero half the time so that valid-looking CDBs reach the deeper checks.
    fn byte(&mut self) -> u8 {
        if self.below(2) == 0 {
            0
        } else {
            self.next() as u8
        }
    }
}

const KNOWN: [u8; 40] = [
    op::TEST_UNIT_READY,
    op::REQUEST_SENSE,
    op::READ_6,
    op::WRITE_6,
    op::INQUIRY,
    op::MODE_SELECT_6,
    op::MODE_SENSE_6,
    op::START_STOP_UNIT,
    op::PREVENT_ALLOW_MEDIUM_REMOVAL,
    op::READ_CAPACITY_10,
    op::READ_10,
    op::WRITE_10,
    op::VERIFY_10,
    op::SYNCHRONIZE_CACHE_10,
    op::MODE_SELECT_10,
    op::MODE_SENSE_10,
    op::READ_16,
    op::WRITE_16,
    op::VERIFY_16,
    op::SYNCHRONIZE_CACHE_16,
    op::SERVICE_ACTION_IN_16,
    op::REPORT_LUNS,
    op::READ_12,
    op::WRITE_12,
    op::VERIFY_12,
    op::WRITE_SAME_10,
    op::WRITE_SAME_16,
    op::UNMAP,
    op::COMPARE_AND_WRITE,
    op::ORWRITE_16,
    op::MAINTENANCE_IN,
    op::WRITE_AND_VERIFY_16,
    op::RESERVE_6,
    op::RELEASE_6,
    op::RESERVE_10,
    op::RELEASE_10,
    op::PERSISTENT_RESERVE_IN,
    op::PERSISTENT_RESERVE_OUT,
    op::EXTENDED_COPY,
    op::RECEIVE_COPY_RESULTS,
];

fn units() -> LunMap {
    LunMap::new(vec![
        lu(0),
        lu_with(|u| {
            u.lun = 1;
            u.read_only = true;
            u.num_blocks = 3;
            u.max_transfer_blocks = 2;
        }),
        lu_with(|u| {
            u.lun = 2;
            u.num_blocks = 0;
            u.max_transfer_blocks = 0;
        }),
        lu_with(|u| {
            u.lun = 300;
            u.num_blocks = u64::MAX;
            u.block_size = 4096;
        }),
    ])
}

fn random_cdb(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(21) as usize;
    let mut cdb: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
    if let Some(first) = cdb.first_mut() {
        if rng.below(10) < 8 {
            *first = KNOWN[rng.below(KNOWN.len() as u64) as usize];
        }
    }
    cdb
}

fn random_lun(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => rng.next(),
        n => encode_lun([0, 1, 2, 300, 9][n as usize - 1]),
    }
}

fn assert_well_formed(luns: &LunMap, lun_raw: u64, cdb: &[u8], plan: &Plan) {
    let unit = crate::scsi::decode_lun(lun_raw).and_then(|n| luns.get(n));
    match plan {
        Plan::Complete(c) => assert_completion(c, cdb),
        Plan::Read { lba, blocks } | Plan::Write { lba, blocks, .. } => {
            let u = unit.expect("medium access only on a real unit");
            assert!(*blocks >= 1, "{cdb:02x?}");
            assert!(lba + u64::from(*blocks) <= u.num_blocks, "{cdb:02x?}");
            assert!(u.max_transfer_blocks == 0 || *blocks <= u.max_transfer_blocks);
            if matches!(plan, Plan::Write { .. }) {
                assert!(!u.read_only, "{cdb:02x?}");
            }
        }
        Plan::Flush { lba, blocks } => {
            let u = unit.expect("flush only on a real unit");
            assert!(lba + u64::from(*blocks) <= u.num_blocks);
        }
        Plan::ReceiveParams { len } => assert!(*len > 0),
        Plan::Shared(op) => {
            let u = unit.expect("shared state only of a real unit");
            assert_eq!(op.lun, u.lun, "{cdb:02x?}");
        }
        Plan::Job(job) => {
            // VERIFY and GET LBA STATUS are jobs that only read: read-only units have jobs too,
            // `drive` checks that none writes there.
            let u = unit.expect("jobs only on a real unit");
            let bs = u64::from(u.block_size);
            let bound = (64 << 20)
                .max(u64::from(u.max_transfer_blocks) * bs)
                .max(2 * 255 * bs);
            assert!(u64::from(job.data_out_len()) <= bound, "{cdb:02x?}");
        }
    }
}

/// Drive the first few steps of a job with random Data-Out and random I/O results: no panic,
/// every I/O inside the unit it names and within one step's size, no write to a read-only
/// unit, every completion well formed.
fn drive(
    rng: &mut Rng,
    job: &mut Job,
    nexus: &mut NexusState,
    luns: &LunMap,
    lu: &LuInfo,
    cdb: &[u8],
) {
    let len = job.data_out_len();
    if let Some(c) = job.check_edtl(
        nexus,
        if rng.below(4) == 0 {
            rng.next() as u32
        } else {
            len
        },
    ) {
        assert_completion(&c, cdb);
    }
    if len > STEP_BYTES * 2 {
        return;
    }
    let n = if rng.below(8) == 0 {
        rng.below(u64::from(len) + 1)
    } else {
        u64::from(len)
    };
    let data: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
    let mut step = job.start(nexus, luns, lu, &data);
    let mut last_read: Option<Vec<u8>> = None;
    for _ in 0..8 {
        let io = match step {
            Step::Done(c) => return assert_completion(&c, cdb),
            Step::Io(io) => io,
        };
        let u = luns.get(io.lun).expect("I/O only on a unit of the target");
        let bs = u64::from(u.block_size);
        let within = |lba: u64, blocks: u64| lba + blocks <= u.num_blocks;
        let fail = rng.below(16) == 0;
        let outcome = |done| if fail { Err(5) } else { Ok(done) };
        step = match io.op {
            JobOp::Read { lba, blocks } => {
                assert!(within(lba, u64::from(blocks)), "{cdb:02x?}");
                let size = u64::from(blocks) * bs;
                assert!(size <= u64::from(STEP_BYTES), "{cdb:02x?}");
                let buf = last_read.insert((0..size).map(|_| rng.byte()).collect());
                job.resume(nexus, lu, outcome(IoOutcome::Data(buf)))
            }
            JobOp::Write { lba, ref data, .. } => {
                assert!(!u.read_only, "{cdb:02x?}");
                assert!(within(lba, data.len() as u64 / bs), "{cdb:02x?}");
                assert!(data.len() <= STEP_BYTES as usize, "{cdb:02x?}");
                job.resume(nexus, lu, outcome(IoOutcome::Done))
            }
            JobOp::WriteLastRead { lba, blocks, .. } => {
                assert!(!u.read_only, "{cdb:02x?}");
                assert!(within(lba, u64::from(blocks)), "{cdb:02x?}");
                let read = last_read.take().expect("a Read before");
                assert_eq!(read.len() as u64, u64::from(blocks) * bs, "{cdb:02x?}");
                job.resume(nexus, lu, outcome(IoOutcome::Done))
            }
            JobOp::Discard { lba, blocks } => {
                assert!(!u.read_only, "{cdb:02x?}");
                assert!(within(lba, blocks), "{cdb:02x?}");
                job.resume(nexus, lu, outcome(IoOutcome::Done))
            }
            JobOp::Extent { lba, blocks } => {
                assert!(within(lba, blocks), "{cdb:02x?}");
                let bytes = rng.below(blocks.saturating_mul(bs).saturating_add(1));
                let allocated = rng.below(2) == 0;
                job.resume(nexus, lu, outcome(IoOutcome::Extent { allocated, bytes }))
            }
            JobOp::CompareAndWrite { lba, ref data, .. } => {
                assert!(!u.read_only, "{cdb:02x?}");
                assert!(within(lba, data.len() as u64 / 2 / bs), "{cdb:02x?}");
                let errnos = [5, libc::EILSEQ, libc::EOPNOTSUPP, libc::EINVAL];
                let errno = errnos[usize::from(rng.byte()) % errnos.len()];
                job.resume(
                    nexus,
                    lu,
                    if fail {
                        Err(errno)
                    } else {
                        Ok(IoOutcome::Done)
                    },
                )
            }
        };
    }
}

fn assert_completion(c: &Completion, cdb: &[u8]) {
    match c.status {
        ScsiStatus::GOOD => assert!(c.sense.is_empty(), "{cdb:02x?}"),
        ScsiStatus::CHECK_CONDITION => {
            assert!(c.data.is_empty(), "{cdb:02x?}");
            assert!(
                matches!(c.sense.first(), Some(0x70 | 0xF0 | 0x72)),
                "{cdb:02x?}"
            );
        }
        ScsiStatus::RESERVATION_CONFLICT => {
            assert!(c.data.is_empty() && c.sense.is_empty(), "{cdb:02x?}");
        }
        other => panic!("unexpected status {other:?} for {cdb:02x?}"),
    }
}

/// Applies a shared operation the way the unit's writer does; its answer must be well formed.
fn apply(state: &mut PrState, it: &crate::scsi::ItNexus, op: &SharedOp, cdb: &[u8]) {
    let (c, _) = apply_shared(state, it, op, &[1, 2]);
    assert_completion(&c, cdb);
}

#[test]
fn random_cdbs_never_panic_and_answers_are_well_formed() {
    let luns = units();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Two I_T nexuses sharing one reservation state, so that commands meet reservations.
    let its = [
        it_nexus("iqn.2024-01.org.example:a"),
        it_nexus("iqn.2024-01.org.example:b"),
    ];
    let mut nexuses = [NexusState::new(), NexusState::new()];
    let mut state = PrState::new();
    for _ in 0..200_000 {
        let who = rng.below(2) as usize;
        let (it, nexus) = (&its[who], &mut nexuses[who]);
        let cdb = random_cdb(&mut rng);
        let lun_raw = random_lun(&mut rng);
        let unit = LuContext {
            pr: &state,
            it_nexus: it,
            port_groups: &crate::scsi::alua::PortGroups::single(1),
        };
        let plan = crate::scsi::dispatch(&luns, nexus, unit, lun_raw, &cdb);
        assert_well_formed(&luns, lun_raw, &cdb, &plan);
        match plan {
            Plan::ReceiveParams { len } => {
                let n = rng.below(u64::from(len) + 8) as usize;
                let params: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                match crate::scsi::execute_params(&luns, nexus, lun_raw, &cdb, &params) {
                    ParamsOutcome::Done(c) => assert_completion(&c, &cdb),
                    ParamsOutcome::Shared(op) => apply(&mut state, it, &op, &cdb),
                }
            }
            Plan::Shared(op) => apply(&mut state, it, &op, &cdb),
            Plan::Job(job) => {
                let lu = crate::scsi::decode_lun(lun_raw)
                    .and_then(|n| luns.get(n))
                    .expect("jobs only on a real unit")
                    .clone();
                let mut job = job;
                drive(&mut rng, &mut job, nexus, &luns, &lu, &cdb);
            }
            _ => {}
        }
    }
}

#[test]
fn every_prefix_of_every_known_cdb_is_answered() {
    let luns = units();
    let mut nexus = NexusState::new();
    for &opcode in &KNOWN {
        for fill in [0x00, 0xFF] {
            let mut full = vec![fill; 32];
            full[0] = opcode;
            for len in 0..=full.len() {
                for lun in [0, 1, 2, 300, 9] {
                    let lun_raw = encode_lun(lun);
                    let plan = dispatch(&luns, &mut nexus, lun_raw, &full[..len]);
                    assert_well_formed(&luns, lun_raw, &full[..len], &plan);
                    let cdb = &full[..len];
                    match crate::scsi::execute_params(&luns, &mut nexus, lun_raw, cdb, &full) {
                        ParamsOutcome::Done(c) => assert_completion(&c, cdb),
                        ParamsOutcome::Shared(op) => {
                            apply(&mut PrState::new(), &it_nexus("iqn.x"), &op, cdb)
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_single_byte_cdb_is_answered() {
    let luns = units();
    let mut nexus = NexusState::new();
    for opcode in 0..=255u8 {
        let plan = dispatch(&luns, &mut nexus, 0, &[opcode]);
        assert_well_formed(&luns, 0, &[opcode], &plan);
    }
}
