//! A minimal iSCSI load client for perf/run.sh: one session, a fixed queue depth of random 4 KiB
//! (or larger) reads or writes, and every PDU of a batch sent in one `write`, header and
//! immediate data together, as the Linux initiator's corked sends put them on the wire. With
//! `--split` each write's header and data go out in separate `write`s instead, as libiscsi (fio's
//! engine, iscsi-perf) sends them, so the two can be compared with the same client.
//!
//! Prints one line: `ios=N seconds=S iops=X mbps=Y`. Exits non-zero on anything but GOOD status,
//! an R2T (the client sends every write's data as immediate data) or a refused login.
//!
//! ```text
//! cargo run --release --example load -- --port 3260 --target IQN --lun 1 --rw write --qd 32
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ringtgt::pdu::login::{LoginRequest, LoginResponse, Stage};
use ringtgt::pdu::scsi::{DataIn, ScsiCommand, ScsiResponse};
use ringtgt::pdu::{frame, Bhs, Digests, Opcode, BHS_LEN};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 3260)]
    port: u16,
    #[arg(long)]
    target: String,
    #[arg(long, default_value_t = 0)]
    lun: u16,
    /// read or write
    #[arg(long, default_value = "write")]
    rw: String,
    #[arg(long, default_value_t = 32)]
    qd: u32,
    /// Bytes per I/O (a multiple of 512).
    #[arg(long, default_value_t = 4096)]
    bs: u32,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// LBAs drawn from [0, span) in 512-byte blocks.
    #[arg(long, default_value_t = 1 << 20)]
    span: u64,
    /// Send each write's header and data in separate writes (as libiscsi does).
    #[arg(long)]
    split: bool,
}

const INITIATOR: &str = "iqn.2026-11.io.ringtgt:load";

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Session {
    sock: TcpStream,
    cmd_sn: u32,
    max_cmd_sn: u32,
    exp_stat_sn: u32,
    itt: u32,
}

fn login(a: &Args) -> Result<Session, String> {
    let mut sock =
        TcpStream::connect((a.host.as_str(), a.port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let keys = [
        ("InitiatorName", INITIATOR),
        ("TargetName", a.target.as_str()),
        ("SessionType", "Normal"),
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("ImmediateData", "Yes"),
        ("InitialR2T", "Yes"),
        ("MaxRecvDataSegmentLength", "262144"),
        ("FirstBurstLength", "262144"),
        ("MaxBurstLength", "1048576"),
    ];
    let mut data: Vec<u8> = keys
        .iter()
        .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect();
    let mut exp_stat_sn = 0;
    for _ in 0..8 {
        let req = LoginRequest {
            immediate: true,
            transit: true,
            cont: false,
            csg: Stage::OPERATIONAL,
            nsg: Stage::FULL_FEATURE,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0x4c, 0x4f, 0x41, 0x44],
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn,
        };
        let mut wire = Vec::new();
        frame::encode(&mut wire, &req.encode(), &[], &data, Digests::default());
        sock.write_all(&wire).map_err(|e| e.to_string())?;
        let (bhs, _) = recv_pdu(&mut sock)?;
        let rsp = LoginResponse::decode(&bhs);
        if bhs.opcode() != Opcode::LOGIN_RESPONSE || !rsp.status.is_success() {
            return Err(format!("login refused: {:?}", rsp.status));
        }
        exp_stat_sn = rsp.stat_sn.wrapping_add(1);
        if rsp.transit && rsp.nsg == Stage::FULL_FEATURE {
            return Ok(Session {
                sock,
                cmd_sn: 1,
                max_cmd_sn: rsp.max_cmd_sn,
                exp_stat_sn,
                itt: 1,
            });
        }
        data.clear();
    }
    Err("login did not reach full feature phase".into())
}

fn recv_pdu(sock: &mut TcpStream) -> Result<(Bhs, Vec<u8>), String> {
    let mut h = [0u8; BHS_LEN];
    sock.read_exact(&mut h).map_err(|e| e.to_string())?;
    let bhs = Bhs::from_slice(&h).ok_or("short header")?;
    let mut data = vec![0u8; frame::pad4(bhs.data_segment_len())];
    sock.read_exact(&mut data).map_err(|e| e.to_string())?;
    Ok((bhs, data))
}

/// TEST UNIT READY until GOOD: a new nexus first gets the unit attention of the LUN's power-on.
fn clear_unit_attention(s: &mut Session, lun: u64) -> Result<(), String> {
    for _ in 0..4 {
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: true,
            read: false,
            write: false,
            attr: 1,
            lun,
            itt: s.itt,
            expected_data_len: 0,
            cmd_sn: s.cmd_sn,
            exp_stat_sn: s.exp_stat_sn,
            cdb: [0; 16],
        };
        s.itt = s.itt.wrapping_add(1);
        s.cmd_sn = s.cmd_sn.wrapping_add(1);
        let mut wire = Vec::new();
        frame::encode(&mut wire, &cmd.encode(), &[], &[], Digests::default());
        s.sock.write_all(&wire).map_err(|e| e.to_string())?;
        let (bhs, _) = recv_pdu(&mut s.sock)?;
        let r = ScsiResponse::decode(&bhs);
        s.max_cmd_sn = r.max_cmd_sn;
        s.exp_stat_sn = r.stat_sn.wrapping_add(1);
        if r.status == 0 {
            return Ok(());
        }
    }
    Err("TEST UNIT READY never returned GOOD".into())
}

/// xorshift64: random LBAs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run(a: &Args) -> Result<String, String> {
    let write = match a.rw.as_str() {
        "write" => true,
        "read" => false,
        other => return Err(format!("--rw {other}: read or write")),
    };
    if a.bs == 0 || !a.bs.is_multiple_of(512) {
        return Err("--bs must be a multiple of 512".into());
    }
    let blocks = a.bs / 512;
    let mut s = login(a)?;
    clear_unit_attention(&mut s, u64::from(a.lun) << 48)?;
    let payload: Vec<u8> = (0..a.bs).map(|i| (i * 7 + 3) as u8).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let lun = u64::from(a.lun) << 48;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut inbuf = vec![0u8; 1 << 20];
    let mut have = 0usize;
    let mut outstanding = 0u32;
    let mut ios = 0u64;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.seconds);
    let mut issuing = true;
    loop {
        // Issue up to the queue depth, inside the target's CmdSN window.
        while issuing && outstanding < a.qd && (s.max_cmd_sn.wrapping_sub(s.cmd_sn) as i32) >= 0 {
            let lba = rng.next() % (a.span.max(u64::from(blocks)) / u64::from(blocks))
                * u64::from(blocks);
            let mut cdb = [0u8; 16];
            cdb[0] = if write { 0x8a } else { 0x88 };
            cdb[2..10].copy_from_slice(&lba.to_be_bytes());
            cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
            let cmd = ScsiCommand {
                immediate: false,
                final_bit: true,
                read: !write,
                write,
                attr: 1,
                lun,
                itt: s.itt,
                expected_data_len: a.bs,
                cmd_sn: s.cmd_sn,
                exp_stat_sn: s.exp_stat_sn,
                cdb,
            };
            s.itt = s.itt.wrapping_add(1);
            s.cmd_sn = s.cmd_sn.wrapping_add(1);
            let data: &[u8] = if write { &payload } else { &[] };
            if a.split && write {
                frame::encode_header(&mut out, &cmd.encode(), &[], data.len(), Digests::default());
                s.sock.write_all(&out).map_err(|e| e.to_string())?;
                out.clear();
                frame::encode_payload(&mut out, data, Digests::default());
                s.sock.write_all(&out).map_err(|e| e.to_string())?;
                out.clear();
            } else {
                frame::encode(&mut out, &cmd.encode(), &[], data, Digests::default());
            }
            outstanding += 1;
        }
        if !out.is_empty() {
            s.sock.write_all(&out).map_err(|e| e.to_string())?;
            out.clear();
        }
        if outstanding == 0 {
            break;
        }
        let n = s.sock.read(&mut inbuf[have..]).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("target closed the connection".into());
        }
        have += n;
        let mut used = 0;
        while let Ok(Some((f, len))) =
            frame::parse(&inbuf[used..have], Digests::default(), inbuf.len())
        {
            used += len;
            let status = match f.bhs.opcode() {
                Opcode::SCSI_RESPONSE => {
                    let r = ScsiResponse::decode(&f.bhs);
                    s.max_cmd_sn = r.max_cmd_sn;
                    s.exp_stat_sn = r.stat_sn.wrapping_add(1);
                    Some(r.status)
                }
                Opcode::DATA_IN => {
                    let d = DataIn::decode(&f.bhs);
                    s.max_cmd_sn = d.max_cmd_sn;
                    if d.status.is_some() {
                        s.exp_stat_sn = d.stat_sn.wrapping_add(1);
                    }
                    d.status
                }
                Opcode::NOP_IN => None,
                op => return Err(format!("unexpected {op:?} from the target")),
            };
            if let Some(st) = status {
                if st != 0 {
                    return Err(format!("status {st:#04x}"));
                }
                outstanding -= 1;
                ios += 1;
            }
        }
        inbuf.copy_within(used..have, 0);
        have -= used;
        if issuing && Instant::now() >= until {
            issuing = false;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let iops = ios as f64 / secs;
    Ok(format!(
        "ios={ios} seconds={secs:.3} iops={iops:.0} mbps={:.1}",
        iops * f64::from(a.bs) / 1e6
    ))
}
