//! One whole 4 KiB WRITE and READ through the sans-I/O `session::Connection`, as the reactor
//! drives it: the SCSI Command PDU (with its immediate data for the write) goes in, the
//! connection asks for its backing-store I/O, the I/O completes at once (no store: the time is
//! the core's own), and the response PDUs come out and are "sent". Regressions in the pure
//! core show here without a network, a ring or a disk.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringtgt::login::{TargetEntry, TargetOffer};
use ringtgt::pdu::frame;
use ringtgt::pdu::login::{LoginRequest, Stage};
use ringtgt::pdu::scsi::ScsiCommand;
use ringtgt::pdu::{Bhs, Digests, Opcode};
use ringtgt::scsi::{encode_lun, LuInfo, LunMap};
use ringtgt::session::{
    Connection, ControlRequest, IoCompletion, IoOp, PortalContext, TargetRuntime, Tuning,
};

const TARGET: &str = "iqn.2026-11.io.ringtgt:bench";
const BLOCK: usize = 4096;
const TEST_UNIT_READY: u8 = 0x00;

fn lu() -> LuInfo {
    common::disk_lu(TARGET)
}

fn context() -> Arc<PortalContext> {
    Arc::new(PortalContext {
        targets: vec![TargetRuntime::new(TARGET.into(), LunMap::new(vec![lu()]))],
        login_targets: vec![TargetEntry {
            name: TARGET.into(),
            alias: None,
            allowed_initiators: Vec::new(),
            allowed_networks: Vec::new(),
            chap: None,
            portal_groups: Vec::new(),
        }],
        portals: vec!["127.0.0.1:3260".parse().expect("portal")],
        portal_group_tag: 1,
        offer: TargetOffer::default(),
        tuning: Tuning::default(),
        discovery_chap: None,
    })
}

/// A connection in full feature phase: the login libiscsi sends (immediate data on, no
/// digests), registered with TSIH 1.
fn logged_in(now: Instant) -> Connection {
    let local: SocketAddr = "127.0.0.1:3260".parse().expect("local");
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("peer");
    let mut conn = Connection::new(context(), Some(local), Some(peer), now);
    let mut req = LoginRequest::decode(&Bhs::new(Opcode::LOGIN_REQUEST));
    req.immediate = true;
    req.transit = true;
    req.csg = Stage::OPERATIONAL;
    req.nsg = Stage::FULL_FEATURE;
    req.isid = [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a];
    let text: String = [
        "InitiatorName=iqn.2026-11.test:bench".to_string(),
        format!("TargetName={TARGET}"),
        "SessionType=Normal".into(),
        "HeaderDigest=None".into(),
        "DataDigest=None".into(),
        "ErrorRecoveryLevel=0".into(),
        "InitialR2T=No".into(),
        "ImmediateData=Yes".into(),
        "MaxBurstLength=262144".into(),
        "FirstBurstLength=262144".into(),
        "MaxRecvDataSegmentLength=262144".into(),
    ]
    .iter()
    .map(|kv| format!("{kv}\0"))
    .collect();
    let mut wire = Vec::new();
    frame::encode(
        &mut wire,
        &req.encode(),
        &[],
        text.as_bytes(),
        Digests::default(),
    );
    assert_eq!(conn.handle_input(&wire, now), wire.len());
    assert!(matches!(
        conn.poll_control(),
        Some(ControlRequest::Register(_))
    ));
    conn.handle_registration(Ok(1), now);
    conn.output().clear();
    conn.handle_sent(now);
    conn
}

/// Drives one command through: PDU in, its I/O completed in place, the answer out and sent.
struct Driver {
    conn: Connection,
    now: Instant,
    cmd_sn: u32,
    itt: u32,
    wire: Vec<u8>,
}

impl Driver {
    fn new() -> Driver {
        let now = Instant::now();
        let mut d = Driver {
            conn: logged_in(now),
            now,
            cmd_sn: 0,
            itt: 0,
            wire: Vec::with_capacity(BLOCK + 64),
        };
        // The nexus's first command hears of the power on (unit attention): not a case to time.
        d.send(TEST_UNIT_READY, &[]);
        d.conn.output().clear();
        d.conn.handle_sent(now);
        d
    }

    /// The command PDU arrives (with `data` as immediate data).
    fn send(&mut self, opcode: u8, data: &[u8]) {
        let mut cdb = [0u8; 16];
        cdb[0] = opcode;
        if opcode != TEST_UNIT_READY {
            cdb[5] = 8; // LBA 8
            cdb[8] = (BLOCK / 512) as u8;
        }
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: true,
            read: opcode == 0x28,
            write: opcode == 0x2a,
            attr: 1, // simple
            lun: encode_lun(0),
            itt: self.itt,
            expected_data_len: if opcode == TEST_UNIT_READY {
                0
            } else {
                BLOCK as u32
            },
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
            cdb,
        };
        self.itt = self.itt.wrapping_add(1);
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.wire.clear();
        frame::encode(&mut self.wire, &cmd.encode(), &[], data, Digests::default());
        let used = self.conn.handle_input(&self.wire, self.now);
        assert_eq!(used, self.wire.len(), "the command PDU is consumed whole");
    }

    fn command(&mut self, opcode: u8, data: &[u8]) {
        self.send(opcode, data);
        let io = self.conn.poll_io().expect("the command asks for its I/O");
        let buf = match io.op {
            IoOp::Read { buf, .. } | IoOp::Write { buf, .. } => Some(buf),
            other => panic!("unexpected I/O {other:?}"),
        };
        self.conn.handle_io_completion(
            IoCompletion {
                token: io.token,
                result: Ok(()),
                buf,
                lock: io.lock,
                extent: None,
            },
            self.now,
        );
        let out = self.conn.output();
        assert!(!out.is_empty(), "the command is answered");
        black_box(out.pending_bytes());
        out.clear();
        self.conn.handle_sent(self.now);
    }
}

fn whole_commands(c: &mut Criterion) {
    let mut g = c.benchmark_group("connection_4k");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    let data = vec![0x5au8; BLOCK];
    let mut d = Driver::new();
    g.bench_function("write10_immediate", |b| b.iter(|| d.command(0x2a, &data)));
    let mut d = Driver::new();
    g.bench_function("read10", |b| b.iter(|| d.command(0x28, &[])));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = whole_commands
}
criterion_main!(benches);
