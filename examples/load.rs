//! A minimal iSCSI load client for perf/run.sh: one or many sessions driven by one thread (so
//! that hundreds of sessions cost the client no scheduling), each with a fixed queue depth of
//! random 4 KiB (or larger) reads, writes or a mix, and every PDU of a batch sent in one `write`,
//! header and immediate data together, as the Linux initiator's corked sends put them on the
//! wire. With `--split` each write's header and data go out in separate `write`s instead, as
//! libiscsi (fio's engine, iscsi-perf) sends them, so the two can be compared with the same
//! client.
//!
//! A write sends as much of its data as immediate data as the negotiated FirstBurstLength and the
//! target's MaxRecvDataSegmentLength allow (all of a 4 KiB write), and the rest as Data-Out
//! PDUs of the target's MaxRecvDataSegmentLength when the target's R2Ts ask for it.
//!
//! Prints one line: `ios=N seconds=S iops=X mbps=Y p50_us=A p99_us=B` (completion latency from
//! the command's send to its status). Exits non-zero on anything but GOOD status or a refused
//! login.
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
use ringtgt::pdu::scsi::{DataIn, DataOut, R2t, ScsiCommand, ScsiResponse};
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
    /// read, write, or mix (reads with --read-pct percent probability)
    #[arg(long, default_value = "write")]
    rw: String,
    #[arg(long, default_value_t = 70)]
    read_pct: u64,
    /// Sessions, each with its own initiator name and --qd commands in flight.
    #[arg(long, default_value_t = 1)]
    sessions: u32,
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
/// Latency histogram: 1 µs buckets up to 100 ms, the last one holding everything slower.
const HIST_US: usize = 100_000;

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
    /// Bytes received and not yet parsed.
    inbuf: Vec<u8>,
    have: usize,
    /// Bytes to send, from `sent` on (the socket is non-blocking while the load runs).
    out: Vec<u8>,
    sent: usize,
    /// When each command in flight was sent, by ITT.
    issued: std::collections::HashMap<u32, Instant>,
    /// Bytes of a write that go as immediate data (0: ImmediateData=No).
    immediate_limit: u32,
    /// The target's MaxRecvDataSegmentLength: the largest Data-Out.
    segment_limit: u32,
}

/// What the login settled that the load depends on, from the target's answers (RFC 7143
/// defaults for keys it did not answer).
struct Negotiated {
    immediate_data: bool,
    first_burst_length: u32,
    target_mrdsl: u32,
}

impl Negotiated {
    /// Takes in the keys of one Login Response's text.
    fn read(&mut self, text: &[u8]) {
        for pair in text.split(|&b| b == 0).filter(|p| !p.is_empty()) {
            let pair = String::from_utf8_lossy(pair);
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            match key {
                "ImmediateData" => self.immediate_data = value == "Yes",
                "FirstBurstLength" => {
                    self.first_burst_length = value.parse().unwrap_or(self.first_burst_length)
                }
                "MaxRecvDataSegmentLength" => {
                    self.target_mrdsl = value.parse().unwrap_or(self.target_mrdsl)
                }
                _ => {}
            }
        }
    }
}

fn login(a: &Args, index: u32) -> Result<Session, String> {
    let mut sock =
        TcpStream::connect((a.host.as_str(), a.port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let initiator = format!("{INITIATOR}-{index}");
    let keys = [
        ("InitiatorName", initiator.as_str()),
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
    let mut settled = Negotiated {
        immediate_data: true,
        first_burst_length: 65536,
        target_mrdsl: 8192,
    };
    for _ in 0..8 {
        let req = LoginRequest {
            immediate: true,
            transit: true,
            cont: false,
            csg: Stage::OPERATIONAL,
            nsg: Stage::FULL_FEATURE,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0x4c, 0x4f, (index >> 8) as u8, index as u8],
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn,
        };
        let mut wire = Vec::new();
        frame::encode(&mut wire, &req.encode(), &[], &data, Digests::default());
        sock.write_all(&wire).map_err(|e| e.to_string())?;
        let (bhs, answers) = recv_pdu(&mut sock)?;
        let rsp = LoginResponse::decode(&bhs);
        if bhs.opcode() != Opcode::LOGIN_RESPONSE || !rsp.status.is_success() {
            return Err(format!("login refused: {:?}", rsp.status));
        }
        settled.read(&answers);
        exp_stat_sn = rsp.stat_sn.wrapping_add(1);
        if rsp.transit && rsp.nsg == Stage::FULL_FEATURE {
            return Ok(Session {
                sock,
                cmd_sn: 1,
                max_cmd_sn: rsp.max_cmd_sn,
                exp_stat_sn,
                itt: 1,
                inbuf: vec![0; 1 << 20],
                have: 0,
                out: Vec::with_capacity(256 * 1024),
                sent: 0,
                issued: std::collections::HashMap::new(),
                immediate_limit: if settled.immediate_data {
                    settled.first_burst_length.min(settled.target_mrdsl)
                } else {
                    0
                },
                segment_limit: settled.target_mrdsl.max(512),
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
    let mix = match a.rw.as_str() {
        "write" => 0,
        "read" => 100,
        "mix" => a.read_pct.min(100),
        other => return Err(format!("--rw {other}: read, write or mix")),
    };
    if a.bs == 0 || !a.bs.is_multiple_of(512) {
        return Err("--bs must be a multiple of 512".into());
    }
    let blocks = a.bs / 512;
    let lun = u64::from(a.lun) << 48;
    let mut sessions = Vec::new();
    for i in 0..a.sessions.max(1) {
        let mut s = login(a, i)?;
        clear_unit_attention(&mut s, lun)?;
        s.sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        sessions.push(s);
    }
    let payload: Vec<u8> = (0..a.bs).map(|i| (i * 7 + 3) as u8).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let slots = a.span.max(u64::from(blocks)) / u64::from(blocks);
    let mut hist = vec![0u64; HIST_US + 1];
    let mut ios = 0u64;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.seconds);
    let mut issuing = true;
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(sessions.len());
    loop {
        for s in sessions.iter_mut() {
            // Issue up to the queue depth, inside the target's CmdSN window.
            while issuing
                && (s.issued.len() as u32) < a.qd
                && (s.max_cmd_sn.wrapping_sub(s.cmd_sn) as i32) >= 0
            {
                let read = rng.next() % 100 < mix;
                let lba = rng.next() % slots * u64::from(blocks);
                let mut cdb = [0u8; 16];
                cdb[0] = if read { 0x88 } else { 0x8a };
                cdb[2..10].copy_from_slice(&lba.to_be_bytes());
                cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
                let cmd = ScsiCommand {
                    immediate: false,
                    final_bit: true,
                    read,
                    write: !read,
                    attr: 1,
                    lun,
                    itt: s.itt,
                    expected_data_len: a.bs,
                    cmd_sn: s.cmd_sn,
                    exp_stat_sn: s.exp_stat_sn,
                    cdb,
                };
                s.issued.insert(s.itt, Instant::now());
                s.itt = s.itt.wrapping_add(1);
                s.cmd_sn = s.cmd_sn.wrapping_add(1);
                let data: &[u8] = if read {
                    &[]
                } else {
                    &payload[..payload.len().min(s.immediate_limit as usize)]
                };
                if a.split && !read {
                    frame::encode_header(&mut s.out, &cmd.encode(), &[], data.len(), NO_DIGESTS);
                    flush(s)?;
                    frame::encode_payload(&mut s.out, data, NO_DIGESTS);
                    flush(s)?;
                } else {
                    frame::encode(&mut s.out, &cmd.encode(), &[], data, NO_DIGESTS);
                }
            }
            flush(s)?;
        }
        if sessions.iter().all(|s| s.issued.is_empty()) {
            break;
        }
        fds.clear();
        fds.extend(sessions.iter().map(|s| libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&s.sock),
            events: libc::POLLIN
                | if s.sent < s.out.len() {
                    libc::POLLOUT
                } else {
                    0
                },
            revents: 0,
        }));
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if n < 0 {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        for (s, fd) in sessions.iter_mut().zip(&fds) {
            if fd.revents == 0 {
                continue;
            }
            flush(s)?;
            let now = receive(s, &payload, &mut hist, &mut ios)?;
            if issuing && now >= until {
                issuing = false;
            }
        }
        if issuing && Instant::now() >= until {
            issuing = false;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let iops = ios as f64 / secs;
    let pct = |q: f64| {
        let want = (ios as f64 * q).ceil() as u64;
        let mut seen = 0;
        hist.iter()
            .position(|&c| {
                seen += c;
                seen >= want.max(1)
            })
            .unwrap_or(HIST_US)
    };
    Ok(format!(
        "ios={ios} seconds={secs:.3} iops={iops:.0} mbps={:.1} p50_us={} p99_us={}",
        iops * f64::from(a.bs) / 1e6,
        pct(0.50),
        pct(0.99)
    ))
}

const NO_DIGESTS: Digests = Digests {
    header: false,
    data: false,
};

/// Sends what the session has queued, as far as the socket takes it now.
fn flush(s: &mut Session) -> Result<(), String> {
    while s.sent < s.out.len() {
        match s.sock.write(&s.out[s.sent..]) {
            Ok(n) => s.sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
    s.out.clear();
    s.sent = 0;
    Ok(())
}

/// Reads what arrived, completes the commands whose status it carries and queues the Data-Out
/// that R2Ts ask for (of `payload`, every write's data).
fn receive(
    s: &mut Session,
    payload: &[u8],
    hist: &mut [u64],
    ios: &mut u64,
) -> Result<Instant, String> {
    loop {
        match s.sock.read(&mut s.inbuf[s.have..]) {
            Ok(0) => return Err("target closed the connection".into()),
            Ok(n) => s.have += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.to_string()),
        }
        if s.have == s.inbuf.len() {
            break;
        }
    }
    let now = Instant::now();
    let mut used = 0;
    while let Ok(Some((f, len))) = frame::parse(&s.inbuf[used..s.have], NO_DIGESTS, s.inbuf.len()) {
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
            Opcode::R2T => {
                let r = R2t::decode(&f.bhs);
                s.max_cmd_sn = r.max_cmd_sn;
                send_solicited(&mut s.out, s.exp_stat_sn, s.segment_limit, &r, payload)?;
                None
            }
            Opcode::NOP_IN => None,
            op => return Err(format!("unexpected {op:?} from the target")),
        };
        if let Some(st) = status {
            if st != 0 {
                return Err(format!("status {st:#04x}"));
            }
            if let Some(t) = s.issued.remove(&f.bhs.itt()) {
                let us = now.duration_since(t).as_micros() as usize;
                hist[us.min(HIST_US)] += 1;
            }
            *ios += 1;
        }
    }
    s.inbuf.copy_within(used..s.have, 0);
    s.have -= used;
    Ok(now)
}

/// Queues on `out` the Data-Out PDUs of what `r` asks for, each at most `segment_limit` (the
/// target's MaxRecvDataSegmentLength).
fn send_solicited(
    out: &mut Vec<u8>,
    exp_stat_sn: u32,
    segment_limit: u32,
    r: &R2t,
    payload: &[u8],
) -> Result<(), String> {
    let start = r.buffer_offset as usize;
    let end = start + r.desired_len as usize;
    if end > payload.len() {
        return Err(format!(
            "R2T for bytes {start}..{end} of a {}-byte write",
            payload.len()
        ));
    }
    let step = segment_limit as usize;
    for (data_sn, at) in (start..end).step_by(step).enumerate() {
        let len = step.min(end - at);
        let d = DataOut {
            final_bit: at + len == end,
            lun: r.lun,
            itt: r.itt,
            ttt: r.ttt,
            exp_stat_sn,
            data_sn: data_sn as u32,
            buffer_offset: at as u32,
        };
        frame::encode(out, &d.encode(), &[], &payload[at..at + len], NO_DIGESTS);
    }
    Ok(())
}
