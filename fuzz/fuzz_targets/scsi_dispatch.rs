//! CDB dispatch against in-memory logical units, every plan carried out to its completion.
//!
//! Input: a sequence of commands, each
//!   flags   u8: bits 0-1 the LUN (0, 1, 2, or 3 = eight raw LUN bytes follow), bit 2 the
//!               initiator's EDTL is the length of the data given instead of what the command
//!               wants, bit 3 which of two I_T nexuses sends it, bits 4-7 fail the n-th
//!               backing-store I/O of the command (0 = none);
//!   cdb_len u8 (mod 33), the CDB;
//!   len     u16 (big endian), the Data-Out / parameter data.
//! Two I_T nexuses (each with its NexusState: MODE SELECT can change the sense format) share
//! one reservation state across the commands; RESERVE, RELEASE and PERSISTENT RESERVE OUT are
//! applied to it the way the unit's writer does, so later commands meet the reservations.
//!
//! Checks: no panic; every medium access lies inside its unit, honours the transfer limit and
//! the read-only flag (a job may read a read-only unit, never write it; EXTENDED COPY's steps
//! may address any unit of the target); every job ends within a bounded number of steps, each
//! step's buffer at most STEP_BYTES; a step that writes the last Read's buffer has one of the
//! right size; every completion is GOOD without sense, CHECK CONDITION with sense data, or
//! RESERVATION CONFLICT with neither.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringtgt::scsi::{
    apply_shared, decode_lun, dispatch, encode_lun, execute_params, io_error, Completion,
    InitiatorPort, IoOutcome, ItNexus, Job, JobOp, LuContext, LuInfo, LunMap, NexusState,
    ParamsOutcome, Plan, PrState, ScsiStatus, SharedOp, Step, STEP_BYTES,
};
use ringtgt_fuzz::{lun_map, MemStore, Reader};

/// Longest a job may run on these small units: UNMAP's 64 KiB parameter list holds 4095 ranges.
const MAX_JOB_STEPS: usize = 10_000;
/// Jobs that want more Data-Out than this are checked but not run (the units are small).
const MAX_JOB_DATA: u32 = 4 << 20;

struct Command<'a> {
    lun_raw: u64,
    /// Which of the two I_T nexuses sends it.
    who: usize,
    edtl_is_data_len: bool,
    fail_io: Option<usize>,
    cdb: &'a [u8],
    data: &'a [u8],
}

fn command<'a>(r: &mut Reader<'a>) -> Command<'a> {
    let flags = r.u8();
    let lun_raw = match flags & 3 {
        3 => r.u64(),
        n => encode_lun(u16::from(n)),
    };
    let cdb_len = usize::from(r.u8() % 33);
    let cdb = r.take(cdb_len);
    let data_len = usize::from(r.u16());
    let data = r.take(data_len);
    Command {
        lun_raw,
        who: usize::from(flags >> 3 & 1),
        edtl_is_data_len: flags & 4 != 0,
        fail_io: (flags >> 4).checked_sub(1).map(usize::from),
        cdb,
        data,
    }
}

/// One sender: its I_T nexus and what the LU layer keeps for it.
struct Initiator {
    it: ItNexus,
    nexus: NexusState,
}

fuzz_target!(|input: &[u8]| {
    let luns = lun_map();
    let mut store = MemStore::new(&luns);
    let mut initiators = [
        "iqn.2026-11.io.ringtgt:fuzz-a",
        "iqn.2026-11.io.ringtgt:fuzz-b",
    ]
    .map(|name| Initiator {
        it: ItNexus {
            initiator: InitiatorPort::new(name, [0x40, 0, 0, 0, 0, 1]),
            relative_port: 1,
        },
        nexus: NexusState::new(),
    });
    let mut pr = PrState::new();
    let mut r = Reader::new(input);
    while !r.is_empty() {
        let cmd = command(&mut r);
        run(&luns, &mut store, &mut initiators[cmd.who], &mut pr, &cmd);
    }
});

/// The unit's writer applying a shared operation; its answer must be well formed too.
fn apply(pr: &mut PrState, it: &ItNexus, op: &SharedOp) {
    let (c, _) = apply_shared(pr, it, op, &[1]);
    check_completion(&c);
}

fn run(
    luns: &LunMap,
    store: &mut MemStore,
    initiator: &mut Initiator,
    pr: &mut PrState,
    cmd: &Command<'_>,
) {
    let Initiator { it, nexus } = initiator;
    let unit = decode_lun(cmd.lun_raw).and_then(|n| luns.get(n));
    let groups = ringtgt::scsi::alua::PortGroups::single(it.relative_port);
    let context = LuContext {
        pr,
        it_nexus: it,
        port_groups: &groups,
    };
    let plan = dispatch(luns, nexus, context, cmd.lun_raw, cmd.cdb);
    match plan {
        Plan::Complete(c) => check_completion(&c),
        Plan::Read { lba, blocks } => {
            let lu = check_medium_access(unit, lba, blocks, false);
            if cmd.fail_io == Some(0) {
                return check_completion(&io_error(nexus, false, lba));
            }
            let mut buf = vec![0; blocks as usize * lu.block_size as usize];
            store.read(lu.lun, lba * u64::from(lu.block_size), &mut buf);
        }
        Plan::Write { lba, blocks, .. } => {
            let lu = check_medium_access(unit, lba, blocks, true);
            if cmd.fail_io == Some(0) {
                return check_completion(&io_error(nexus, true, lba));
            }
            let mut data = cmd.data.to_vec();
            data.resize(blocks as usize * lu.block_size as usize, 0);
            store.write(lu.lun, lba * u64::from(lu.block_size), &data);
        }
        Plan::Flush { lba, blocks } => {
            let lu = unit.expect("flush only on a real unit");
            assert!(within(lba, u64::from(blocks), lu));
        }
        Plan::ReceiveParams { len } => {
            assert!(len > 0);
            let params = &cmd.data[..cmd.data.len().min(len as usize)];
            match execute_params(luns, nexus, cmd.lun_raw, cmd.cdb, params) {
                ParamsOutcome::Done(c) => check_completion(&c),
                ParamsOutcome::Shared(op) => apply(pr, it, &op),
            }
        }
        Plan::Shared(op) => {
            assert!(unit.is_some_and(|u| u.lun == op.lun));
            apply(pr, it, &op);
        }
        Plan::Job(mut job) => {
            // VERIFY with BYTCHK and GET LBA STATUS are jobs that only read, so read-only
            // units have jobs too.
            let lu = unit.expect("jobs only on a real unit");
            drive(&mut job, nexus, luns, lu, store, cmd);
        }
    }
}

fn check_medium_access(unit: Option<&LuInfo>, lba: u64, blocks: u32, write: bool) -> &LuInfo {
    let lu = unit.expect("medium access only on a real unit");
    assert!(blocks >= 1);
    assert!(within(lba, u64::from(blocks), lu));
    assert!(lu.max_transfer_blocks == 0 || blocks <= lu.max_transfer_blocks);
    assert!(!(write && lu.read_only), "a write to a read-only unit");
    lu
}

/// Drives a job the way the session does: EDTL check, Data-Out, then every step against the
/// store of the unit it names (EXTENDED COPY reaches the target's other units), failing the I/O
/// the input names.
fn drive(
    job: &mut Job,
    nexus: &mut NexusState,
    luns: &LunMap,
    lu: &LuInfo,
    store: &mut MemStore,
    cmd: &Command<'_>,
) {
    let want = job.data_out_len();
    let own_bs = u64::from(lu.block_size);
    let bound = (64 << 20)
        .max(u64::from(lu.max_transfer_blocks) * own_bs)
        .max(2 * 255 * own_bs);
    assert!(
        u64::from(want) <= bound,
        "job wants {want} bytes of Data-Out"
    );
    let data = if cmd.edtl_is_data_len {
        cmd.data.to_vec()
    } else {
        let mut d = cmd.data.to_vec();
        d.resize(want.min(MAX_JOB_DATA) as usize, 0);
        d
    };
    let edtl = data.len() as u32;
    if let Some(c) = job.check_edtl(nexus, edtl) {
        return check_completion(&c);
    }
    if want > MAX_JOB_DATA {
        return;
    }
    let mut step = job.start(nexus, luns, lu, &data);
    let mut last_read: Option<Vec<u8>> = None;
    for index in 0.. {
        assert!(index <= MAX_JOB_STEPS, "job does not end");
        let io = match step {
            Step::Done(c) => return check_completion(&c),
            Step::Io(io) => io,
        };
        let unit = luns
            .get(io.lun)
            .expect("a job step on a unit of the target");
        let bs = u64::from(unit.block_size);
        let fail = cmd.fail_io == Some(index);
        let outcome = |done| if fail { Err(5) } else { Ok(done) };
        step = match io.op {
            JobOp::Read { lba, blocks } => {
                assert!(within(lba, u64::from(blocks), unit));
                let len = u64::from(blocks) * bs;
                assert!(len <= u64::from(STEP_BYTES));
                let buf = last_read.insert(vec![0; len as usize]);
                store.read(unit.lun, lba * bs, buf);
                job.resume(nexus, lu, outcome(IoOutcome::Data(buf)))
            }
            JobOp::Write { lba, ref data, .. } => {
                assert!(!unit.read_only, "a job writes to a read-only unit");
                assert_eq!(data.len() as u64 % bs, 0, "whole blocks");
                assert!(data.len() <= STEP_BYTES as usize);
                assert!(within(lba, data.len() as u64 / bs, unit));
                if !fail {
                    store.write(unit.lun, lba * bs, data);
                }
                job.resume(nexus, lu, outcome(IoOutcome::Done))
            }
            // The fuzzed units are file-like: they never ask the store for an atomic compare.
            JobOp::CompareAndWrite { .. } => panic!("atomic COMPARE AND WRITE on a file-like unit"),
            JobOp::WriteLastRead { lba, blocks, .. } => {
                assert!(!unit.read_only, "a job writes to a read-only unit");
                assert!(within(lba, u64::from(blocks), unit));
                let data = last_read.take().expect("a Read before WriteLastRead");
                assert_eq!(data.len() as u64, u64::from(blocks) * bs, "the read buffer");
                if !fail {
                    store.write(unit.lun, lba * bs, &data);
                }
                job.resume(nexus, lu, outcome(IoOutcome::Done))
            }
            JobOp::Discard { lba, blocks } => {
                assert!(!unit.read_only, "a job discards on a read-only unit");
                assert!(within(lba, blocks, unit));
                if !fail {
                    store.discard(unit.lun, lba * bs, blocks * bs);
                }
                job.resume(nexus, lu, outcome(IoOutcome::Done))
            }
            JobOp::Extent { lba, blocks } => {
                assert!(within(lba, blocks, unit));
                let e = store.extent(unit.lun, lba * bs, blocks * bs);
                let answer = IoOutcome::Extent {
                    allocated: e.allocated,
                    bytes: e.len,
                };
                job.resume(nexus, lu, outcome(answer))
            }
        };
    }
}

/// Whether `blocks` blocks at `lba` lie inside the unit.
fn within(lba: u64, blocks: u64, lu: &LuInfo) -> bool {
    lba.checked_add(blocks)
        .is_some_and(|end| end <= lu.num_blocks)
}

fn check_completion(c: &Completion) {
    match c.status {
        ScsiStatus::GOOD => assert!(c.sense.is_empty()),
        ScsiStatus::CHECK_CONDITION => {
            assert!(c.data.is_empty());
            assert!(matches!(c.sense.first(), Some(0x70 | 0xF0 | 0x72)));
        }
        ScsiStatus::RESERVATION_CONFLICT => assert!(c.data.is_empty() && c.sense.is_empty()),
        other => panic!("unexpected status {other:?}"),
    }
}
