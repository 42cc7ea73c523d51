#!/usr/bin/env python3
"""ringtgt vs tgt on 127.0.0.1: the orchestration half of perf/run.sh (run that, not this).

Starts ringtgt (all cores), ringtgt --cores 1 and tgtd side by side with the same LUNs (a null LUN,
a file LUN on local disk and a RAM LUN), drives each with the same clients (fio's libiscsi engine,
libiscsi's iscsi-perf), round after round with the order of the targets rotating, and measures
for every run: IOPS, bandwidth, completion latency p50/p99 (fio), target CPU time per I/O (utime +
stime delta of /proc/PID/stat, all threads, divided by the I/Os the client completed), client CPU
per I/O (rusage of the client processes) and how busy the machine was (/proc/stat). The physical
references are iperf3 over loopback and fio io_uring direct=1 on the same file. For ringtgt it
also records how many sessions each reactor served in every run (the per-core login counters of
its /metrics endpoint), next to the CPU time of each thread. The scale row runs 256 sessions at
once (several fio processes) and measures each target's RSS per idle session with bare iSCSI
logins of its own (`iscsi_login`).

With --rbd-conf and --rbd-image (perf/run.sh's RBD=1, which brings up a throwaway Ceph cluster)
it also starts a ringtgt exporting that RBD image and measures it against `rbd bench` on the same
image in the same rounds: librbd driven directly, with no iSCSI in between.

Writes raw JSON into the run directory and a Markdown section (appended to perf/RESULTS.md
unless APPEND=0), and prints the section.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"  # the only address this benchmark ever touches
IQN_RINGTGT = "iqn.2026-11.io.ringtgt:perf"
IQN_TGT = "iqn.2026-11.io.ringtgt:perf-tgt"
IQN_RBD = "iqn.2026-11.io.ringtgt:perf-rbd"
INITIATOR = "iqn.2026-11.io.ringtgt:perf-client"


def log(msg: str) -> None:
    print(f"--- {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# processes

class Procs:
    """Every process we start, recorded in the pidfile so run.sh's trap can end them too."""

    def __init__(self, pidfile: str):
        self.pidfile = pidfile
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], logname: str, env: dict | None = None) -> subprocess.Popen:
        out = open(logname, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True,
                             env={**os.environ, **env} if env is not None else None)
        self.procs.append(p)
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def track(self, p: subprocess.Popen) -> subprocess.Popen:
        """Records a helper (perf, strace) that the caller waits for itself."""
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 3
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()  # tgtd ignores SIGTERM while it has targets
                p.wait()
        # Everything is reaped: nothing is left for run.sh's trap to end.
        open(self.pidfile, "w").close()


def kill_group(p) -> None:
    """Ends a client started in its own session, with everything it started, and reaps it."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def run_client(argv: list[str], timeout: float, merge_stderr: bool = False):
    """Runs one client (fio, iscsi-perf, iperf3) in its own process group, so that fio's forked
    job processes end with it if we are interrupted. Returns (returncode, stdout, stderr)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        kill_group(p)
        raise
    return p.returncode, out, err or ""


def port_free(port: int) -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {HOST}:{port} within {timeout}s")


# ---------------------------------------------------------------------------------------------
# targets

@dataclass
class Target:
    key: str  # "ringtgt", "ringtgt-c1", "tgt"
    label: str
    port: int
    iqn: str
    luns: dict  # "null"/"file"/"ram" -> LUN number
    proc: subprocess.Popen | None = None
    metrics: str | None = None  # ringtgt's /metrics address (host:port)
    ctl: int | None = None  # tgtd's control port (tgtadm -C)

    def url(self, lun: str) -> str:
        return f"iscsi://{HOST}:{self.port}/{self.iqn}/{self.luns[lun]}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def start_ringtgt(procs: Procs, key: str, label: str, binary: str, port: int, cores: str | None,
                  lun_file: str, run_dir: str, metrics_port: int) -> Target:
    # METRICS=0: a binary older than the /metrics endpoint (no per-reactor session counts then).
    metrics = f"{HOST}:{metrics_port}" if os.environ.get("METRICS", "1") != "0" else None
    argv = [binary, "serve", "--portal", f"{HOST}:{port}", "--target", IQN_RINGTGT,
            "--lun", "null:1GiB", "--lun", lun_file, "--lun", "ram:1GiB"]
    argv += ["--metrics", metrics] if metrics else []
    if cores:
        argv += ["--cores", cores]
    # POLL_US=N: every ringtgt instance busy-polls its ring for N µs before it sleeps.
    if os.environ.get("POLL_US"):
        argv += ["--poll-us", os.environ["POLL_US"]]
    # COALESCE_US=N: every ringtgt instance gathers completions for up to N µs (--coalesce-us).
    if os.environ.get("COALESCE_US"):
        argv += ["--coalesce-us", os.environ["COALESCE_US"]]
    t = Target(key, label, port, IQN_RINGTGT, {"null": 0, "file": 1, "ram": 2}, metrics=metrics)
    t.proc = procs.start(argv, os.path.join(run_dir, f"{key}.log"))
    wait_port(port, t.proc, label)
    return t


def start_ringtgt_rbd(procs: Procs, binary: str, port: int, conf: str, image: str,
                      run_dir: str, metrics_port: int) -> Target:
    """ringtgt (all cores) with one LUN, the RBD image, reached through `conf` as client.admin.
    librbd's cache is off (CEPH_ARGS), as it is for `rbd bench --rbd-cache=false`."""
    metrics = f"{HOST}:{metrics_port}" if os.environ.get("METRICS", "1") != "0" else None
    argv = [binary, "serve", "--portal", f"{HOST}:{port}", "--target", IQN_RBD,
            "--lun", f"rbd:{image}"] + (["--metrics", metrics] if metrics else [])
    t = Target("ringtgt-rbd", f"ringtgt (rbd:{image})", port, IQN_RBD, {"rbd": 0},
               metrics=metrics)
    # Its own admin socket: the default one may belong to another ringtgt on the machine.
    argv += ["--admin-socket", os.path.join(run_dir, "ctl-rbd.sock")]
    t.proc = procs.start(argv, os.path.join(run_dir, "ringtgt-rbd.log"),
                         env={"CEPH_CONF": conf, "CEPH_ARGS": "--rbd_cache=false"})
    # It connects to the cluster and opens the image before it listens.
    wait_port(port, t.proc, t.label, timeout=40)
    return t


def tgtadm(ctl: int, *args: str) -> None:
    subprocess.run(["tgtadm", "-C", str(ctl), "--lld", "iscsi", *args], check=True,
                   stdout=subprocess.DEVNULL)


def start_tgt(procs: Procs, port: int, ctl: int, lun_file: str, ram_file: str,
              run_dir: str) -> Target:
    t = Target("tgt", "tgt", port, IQN_TGT, {"null": 1, "file": 2, "ram": 3}, ctl=ctl)
    t.proc = procs.start(["tgtd", "-f", "-C", str(ctl), "--iscsi", f"portal={HOST}:{port}"],
                         os.path.join(run_dir, "tgtd.log"))
    sock = f"/run/tgtd/socket.{ctl}"
    deadline = time.time() + 10
    while not os.path.exists(sock):
        if t.proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"tgtd did not create its control socket {sock}")
        time.sleep(0.1)
    time.sleep(0.2)
    tgtadm(ctl, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN_TGT)
    # tgt's LUN 0 is its controller. The null store reports 1 TiB; fio is limited to 1 GiB (size=).
    tgtadm(ctl, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
           "--bstype", "null", "-b", "/ringtgt-perf-null")
    # bs_rdwr is buffered by default; direct keeps it comparable with ringtgt's O_DIRECT and fio.
    tgtadm(ctl, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "2",
           "--bstype", "rdwr", "--bsoflags", "direct", "-b", lun_file)
    # tgt has no RAM store: a sparse file on tmpfs, buffered, is what ringtgt's ram: is (an
    # anonymous tmpfs file, not O_DIRECT).
    with open(ram_file, "wb") as f:
        f.truncate(1 << 30)
    tgtadm(ctl, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "3",
           "--bstype", "rdwr", "-b", ram_file)
    tgtadm(ctl, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    wait_port(port, t.proc, "tgtd")
    return t


# ---------------------------------------------------------------------------------------------
# idle sessions: a minimal iSCSI login over a plain socket, held without I/O

def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("target closed the connection during login")
        buf += chunk
    return buf


def iscsi_login(port: int, target: str, initiator: str, isid: bytes) -> socket.socket:
    """A normal session's leading login, straight to full feature phase (no security stage,
    no I/O). Returns the connected socket; raises if the target refuses."""
    keys = {"InitiatorName": initiator, "TargetName": target, "SessionType": "Normal",
            "HeaderDigest": "None", "DataDigest": "None"}
    data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in keys.items())
    s = socket.create_connection((HOST, port), timeout=10)
    exp_stat_sn = 0
    for _ in range(8):  # a target may take several round trips to reach full feature phase
        # RFC 7143 §11.12: Login Request, immediate; T=1, CSG=1 (operational), NSG=3 (full).
        bhs = struct.pack(">BBBBI6sHIHHII16x", 0x43, 0x87, 0, 0, len(data), isid, 0, 1, 0, 0,
                          1, exp_stat_sn)
        s.sendall(bhs + data + b"\0" * (-len(data) % 4))
        rsp = recv_exact(s, 48)
        dlen = int.from_bytes(rsp[5:8], "big")
        recv_exact(s, dlen + (-dlen % 4))
        if rsp[0] & 0x3F != 0x23 or rsp[36] != 0:  # RFC 7143 §11.13: Login Response, class 0
            s.close()
            raise RuntimeError(f"login of {initiator} refused: status "
                               f"{rsp[36]:#04x}/{rsp[37]:#04x}")
        exp_stat_sn = int.from_bytes(rsp[24:28], "big") + 1
        if rsp[1] & 0x83 == 0x83:  # T=1, NSG=3: in full feature phase
            return s
        data = b""  # nothing more to offer: answer with an empty request until the target agrees
    s.close()
    raise RuntimeError(f"login of {initiator} did not reach full feature phase")


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def settled_rss_kib(pid: int, timeout: float = 10) -> int:
    """VmRSS once it has stopped moving (two readings 0.5 s apart within 64 KiB): a target
    still setting up (ringtgt touches its buffer pools after it listens) or still finishing
    logins would otherwise blur the difference."""
    last = vm_rss_kib(pid)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        now = vm_rss_kib(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


def live_sessions(t: Target) -> int:
    """Sessions the target holds now: ringtgt's per-reactor gauges, tgt's I_T nexus list."""
    if t.metrics:
        with urllib.request.urlopen(f"http://{t.metrics}/metrics", timeout=20) as r:
            text = r.read().decode()
        return round(sum(float(v) for v in re.findall(
            r'^ringtgt_reactor_sessions\{core="\d+"\} (\S+)$', text, re.M)))
    out = subprocess.run(["tgtadm", "-C", str(t.ctl), "--lld", "iscsi", "--op", "show", "--mode",
                          "target"], check=True, stdout=subprocess.PIPE, text=True).stdout
    return len(re.findall(r"^\s*I_T nexus: ", out, re.M))


@dataclass
class IdleRss:
    sessions: int  # sessions the target reported while they were held
    before_kib: int
    after_kib: int

    @property
    def per_session_kib(self) -> float:
        return (self.after_kib - self.before_kib) / self.sessions if self.sessions else 0.0


def idle_rss(t: Target, n: int) -> IdleRss:
    """VmRSS of the target before and after n sessions log in and stay idle (no I/O)."""
    before = settled_rss_kib(t.pid)
    socks = []
    try:
        for i in range(n):
            # ISID of the "random" format (RFC 7143 §10.12.5), one per session
            isid = bytes([0x80, 0, 0, 0x52, i >> 8, i & 0xFF])
            socks.append(iscsi_login(t.port, t.iqn, f"{INITIATOR}-idle-{i}", isid))
        after = settled_rss_kib(t.pid)
        held = live_sessions(t)
    finally:
        for s in socks:
            s.close()
    if held != n:
        raise SystemExit(f"{t.label}: {n} idle sessions logged in but it reports {held}")
    return IdleRss(held, before, after)


def idle_rss_all(targets: dict[str, Target], n: int) -> dict[str, IdleRss]:
    out = {}
    for key in ("ringtgt", "tgt"):
        out[key] = r = idle_rss(targets[key], n)
        log(f"{n} idle sessions on {targets[key].label}: VmRSS {r.before_kib} -> {r.after_kib} "
            f"KiB, {r.per_session_kib:.1f} KiB per session")
        time.sleep(1)  # the target notices the closed connections before the next user comes
    return out


# ---------------------------------------------------------------------------------------------
# measurement

def proc_times(pid: int) -> tuple[float, dict[str, float]]:
    """(process CPU seconds incl. all threads, {thread name: CPU seconds})."""
    def parse(path: str) -> tuple[str, float]:
        with open(path) as f:
            s = f.read()
        comm = s[s.index("(") + 1:s.rindex(")")]
        rest = s[s.rindex(")") + 2:].split()
        return comm, (int(rest[11]) + int(rest[12])) / CLK_TCK  # fields 14 utime, 15 stime

    _, total = parse(f"/proc/{pid}/stat")
    threads: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm, t = parse(f"/proc/{pid}/task/{tid}/stat")
        except (FileNotFoundError, ProcessLookupError):
            continue
        threads[comm] = threads.get(comm, 0.0) + t
    return total, threads


def reactor_logins(metrics: str) -> dict[str, float]:
    """{core: sessions it has served so far}, from ringtgt's /metrics."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=20) as r:
        text = r.read().decode()
    found = re.findall(r'^ringtgt_reactor_logins_total\{core="(\d+)"\} (\S+)$', text, re.M)
    return {core: float(v) for core, v in found}


def host_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class Sample:
    iops: float
    mbps: float  # MB/s, 10^6 bytes
    p50_us: float | None
    p99_us: float | None
    ios: int
    tgt_cpu_us: float | None  # target CPU per I/O
    cli_cpu_us: float | None  # client CPU per I/O
    host_pct: float  # machine busy, % of all CPUs
    other_pct: float  # busy with neither this target nor this client, % of all CPUs (noise)
    wall: float  # seconds
    threads: dict = field(default_factory=dict)  # thread name -> CPU seconds during the run
    sessions: dict = field(default_factory=dict)  # ringtgt: core -> sessions it served in the run
    extra: dict = field(default_factory=dict)  # what only some runs give (the scale row's)


def measured(pid: int | None, run, metrics: str | None = None) -> Sample:
    """Runs `run()` -> (iops, mbps, p50, p99, ios[, extra]) while taking CPU deltas of target and
    client,
    and, given ringtgt's `metrics` address, the sessions each reactor served (scraped outside
    the CPU window)."""
    k0 = reactor_logins(metrics) if metrics else {}
    t0 = proc_times(pid) if pid else (0.0, {})
    h0 = host_busy()
    c0 = children_cpu()
    w0 = time.monotonic()
    iops, mbps, p50, p99, ios, *more = run()
    wall = time.monotonic() - w0
    c1 = children_cpu()
    h1 = host_busy()
    t1 = proc_times(pid) if pid else (0.0, {})
    k1 = reactor_logins(metrics) if metrics else {}
    sessions = {c: round(v - k0.get(c, 0.0)) for c, v in k1.items()}
    per_io = (lambda s: s / ios * 1e6) if ios else (lambda s: None)
    threads = {k: v - t0[1].get(k, 0.0) for k, v in t1[1].items()}
    busy, tot = h1[0] - h0[0], h1[1] - h0[1]
    host_pct = 100.0 * busy / tot if tot else 0.0
    ours = (t1[0] - t0[0]) + (c1 - c0)
    other = max(0.0, host_pct - 100.0 * ours / (wall * (os.cpu_count() or 1)))
    return Sample(iops, mbps, p50, p99, ios,
                  per_io(t1[0] - t0[0]) if pid and ios else None, per_io(c1 - c0),
                  host_pct, other, wall, threads, sessions, more[0] if more else {})


@dataclass
class Workload:
    name: str
    lun: str  # "null" or "file"
    rw: str
    bs: str
    qd: int
    jobs: int = 1  # sessions per fio process
    c1: bool = False  # also run against ringtgt --cores 1
    rwmixread: int = 0  # percentage of reads when rw is randrw
    procs: int = 1  # fio processes at once, each with `jobs` sessions

    @property
    def sessions(self) -> int:
        return self.jobs * self.procs


# Against an RBD image (RBD=1): ringtgt exporting it, driven by fio's libiscsi engine, and
# `rbd bench` on the same image with as many I/Os in flight (--io-threads = qd).
RBD_WORKLOADS = [
    Workload("rbd 4k randwrite qd32", "rbd", "randwrite", "4k", 32),
    Workload("rbd 4k randread qd32", "rbd", "randread", "4k", 32),
    Workload("rbd 1m write qd32", "rbd", "write", "1m", 32),
    Workload("rbd 1m read qd32", "rbd", "read", "1m", 32),
]

ISCSI_PERF_ROWS = ["iscsi-perf null 4k rand qd32", "iscsi-perf null 1m seq qd8"]
# examples/load.rs, one session: (row, LUN, --rw, --split, block size, queue depth). `batched` sends
# each batch of PDUs in one write (header and immediate data together, as the Linux initiator's
# corked sends do); `split` sends a write's header and data in two writes, as libiscsi does.
# The file rows show the file LUN against local fio with a client that is not the bottleneck;
# the 1m rows the large transfers against the iperf3 ceiling with a client that copies nothing
# but what the socket does (fio's libiscsi engine spends more CPU per 1 MiB than the target).
# The scale row is the SCALE workload's with one client thread for all 256 sessions, so that
# no client thread waits for a core (fio's 256 threads starve both targets on 2 cores).
LOAD_SCALE = "load-batched scale 256 sessions x qd4 ram 4k randrw 70/30"
LOAD_ROWS = [("load-batched null 4k randwrite qd32", "null", "write", False, "4k", 32),
             ("load-batched null 4k randread qd32", "null", "read", False, "4k", 32),
             ("load-split null 4k randwrite qd32", "null", "write", True, "4k", 32),
             ("load-batched null 1m read qd8", "null", "read", False, "1m", 8),
             ("load-batched null 1m write qd8", "null", "write", False, "1m", 8),
             ("load-batched file 4k randread qd32", "file", "read", False, "4k", 32),
             ("load-batched file 4k randwrite qd32", "file", "write", False, "4k", 32),
             (LOAD_SCALE, "ram", "mix", False, "4k", 4)]
CLIENT_ROWS = ISCSI_PERF_ROWS + [row[0] for row in LOAD_ROWS]

WORKLOADS = [
    Workload("null 4k randread qd32", "null", "randread", "4k", 32, c1=True),
    Workload("null 4k randwrite qd32", "null", "randwrite", "4k", 32),
    Workload("null 1m read qd8", "null", "read", "1m", 8),
    Workload("null 1m write qd8", "null", "write", "1m", 8),
    Workload("file 4k randread qd32", "file", "randread", "4k", 32),
    Workload("file 4k randwrite qd32", "file", "randwrite", "4k", 32),
    Workload("null 4k randread 4 sessions x qd32", "null", "randread", "4k", 32, jobs=4, c1=True),
    Workload("null 4k randwrite 4 sessions x qd32", "null", "randwrite", "4k", 32, jobs=4),
]
# Many sessions at once, each at a low depth, on a memory-backed LUN: 4 fio processes × 64 jobs.
SCALE = Workload("scale 256 sessions x qd4 ram 4k randrw 70/30", "ram", "randrw", "4k", 4,
                 jobs=64, rwmixread=70, procs=4)
WORKLOADS.append(SCALE)


def fio_escape(s: str) -> str:
    return s.replace(":", "\\:")


def fio_result(path: str, rw: str) -> tuple[float, float, float | None, float | None, int]:
    with open(path) as f:
        d = json.load(f)
    job = d["jobs"][0]
    if job.get("error"):
        raise RuntimeError(f"fio reported error {job['error']} ({path})")
    side = job["write" if "write" in rw else "read"]
    pct = side["clat_ns"].get("percentile", {})
    p50 = pct.get("50.000000")
    p99 = pct.get("99.000000")
    ios = job["read"]["total_ios"] + job["write"]["total_ios"]
    return (side["iops"], side["bw_bytes"] / 1e6, p50 / 1e3 if p50 else None,
            p99 / 1e3 if p99 else None, ios)


def run_fio(fio: str, jobfile: str, out: str, rw: str, runtime: int):
    def run():
        rc, _, err = run_client([fio, "--output-format=json", f"--output={out}", jobfile],
                                runtime + 60)
        if rc != 0:
            raise RuntimeError(f"fio failed ({rc}): {err.strip()[-400:]}")
        return fio_result(out, rw)
    return run


def iscsi_fio_job(w: Workload, url: str, runtime: int, proc: int = 0) -> str:
    """The job file of fio process `proc` of the workload."""
    # thread=1: jobs are threads of one fio process (forked jobs call setsid() and would outlive
    # an interrupted run).
    lines = ["[global]", "ioengine=libiscsi", "thread=1", f"rw={w.rw}", f"bs={w.bs}",
             f"iodepth={w.qd}", "size=1g", "time_based=1", f"runtime={runtime}"]
    lines += [f"rwmixread={w.rwmixread}"] if w.rwmixread else []
    # Several processes: every job reports on its own, to prove that each session did I/O.
    lines += ["group_reporting=1"] if w.procs == 1 else []
    for j in range(proc * w.jobs, (proc + 1) * w.jobs):
        # One fio job = one libiscsi context = one iSCSI session; distinct initiator names keep
        # the sessions apart whatever ISIDs libiscsi picks.
        lines += [f"[s{j}]", f"filename={fio_escape(url)}", f"initiator={INITIATOR}-{j}"]
    return "\n".join(lines) + "\n"


def workload_run(w: Workload, url: str, fio: str, stem: str, runtime: int):
    """Writes the job file(s) `stem`[-pN].fio of the workload and returns its run()."""
    if w.procs == 1:
        with open(stem + ".fio", "w") as f:
            f.write(iscsi_fio_job(w, url, runtime))
        return run_fio(fio, stem + ".fio", stem + ".json", w.rw, runtime)
    jobs = [f"{stem}-p{p}.fio" for p in range(w.procs)]
    for p, job in enumerate(jobs):
        with open(job, "w") as f:
            f.write(iscsi_fio_job(w, url, runtime, p))
    return run_fio_procs(fio, jobs, runtime)


def run_fio_procs(fio: str, jobfiles: list[str], runtime: int):
    """fio processes at once, one per job file, reporting JSON+ (latency histograms)."""
    def run():
        outs = [j.replace(".fio", ".json") for j in jobfiles]
        argvs = [[fio, "--output-format=json+", f"--output={o}", j]
                 for j, o in zip(jobfiles, outs)]
        logs = [j.replace(".fio", ".log") for j in jobfiles]
        for rc, log_ in zip(run_clients(argvs, logs, runtime + 120), logs):
            if rc != 0:
                with open(log_) as f:
                    raise RuntimeError(f"fio failed ({rc}): {f.read().strip()[-400:]}")
        return fio_procs_result(outs)
    return run


def run_clients(argvs: list[list[str]], logs: list[str], timeout: float) -> list[int]:
    """Runs clients at once, each in its own process group with its output in its log; returns
    their exit codes."""
    ps: list[subprocess.Popen] = []
    try:
        for argv, name in zip(argvs, logs):
            with open(name, "w") as out:
                ps.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.time() + timeout
        return [p.wait(timeout=max(1.0, deadline - time.time())) for p in ps]
    except BaseException:
        for p in ps:
            kill_group(p)
        raise


def fio_procs_result(paths: list[str]):
    """Every job of several fio JSON+ outputs together: IOPS and MB/s of reads and writes
    summed; p50/p99 of reads and writes together, from the merged completion-latency
    histograms; and, apart, the p99 of reads and of writes, how many jobs (sessions) did I/O
    and the IOPS of the slowest, the median and the fastest session (how fairly they were
    served)."""
    jobs = []
    for path in paths:
        with open(path) as f:
            jobs += json.load(f)["jobs"]
    bad = [j["jobname"] for j in jobs if j.get("error")]
    if bad:
        raise RuntimeError(f"fio jobs {', '.join(bad[:5])} reported errors ({paths[0]}…)")
    hist = {side: collections.Counter() for side in ("read", "write")}
    for j in jobs:
        for side, h in hist.items():
            h.update({int(ns): n for ns, n in j[side]["clat_ns"].get("bins", {}).items()})
    both = hist["read"] + hist["write"]
    iops = sum(j[side]["iops"] for j in jobs for side in hist)
    mbps = sum(j[side]["bw_bytes"] for j in jobs for side in hist) / 1e6
    per_job = [j["read"]["total_ios"] + j["write"]["total_ios"] for j in jobs]
    rates = sorted(j["read"]["iops"] + j["write"]["iops"] for j in jobs)
    extra = {"p99_read_us": percentile_us(hist["read"], 99),
             "p99_write_us": percentile_us(hist["write"], 99),
             "sessions_io": sum(1 for n in per_job if n > 0),
             "session_iops": [rates[0], statistics.median(rates), rates[-1]]}
    return (iops, mbps, percentile_us(both, 50), percentile_us(both, 99), sum(per_job), extra)


def percentile_us(hist: collections.Counter, q: float) -> float | None:
    """The q-th percentile of a fio latency histogram ({ns: count}), in µs, as fio computes it:
    the first bin at which the running count reaches q % of the total."""
    total = sum(hist.values())
    running = 0
    for ns in sorted(hist):
        running += hist[ns]
        if running >= total * q / 100:
            return ns / 1e3
    return None


def check_sessions(w: Workload, label: str, s: Sample) -> None:
    """A many-session row counts only if every session logged in and did I/O (fio's jobs, and
    for ringtgt also the logins its reactors counted): the run fails loudly otherwise."""
    if w.procs == 1:
        return
    did = s.extra.get("sessions_io")
    served = sum(s.sessions.values()) if s.sessions else None
    if did != w.sessions or served not in (None, w.sessions):
        raise SystemExit(f"{w.name} on {label}: of {w.sessions} sessions {did} did I/O"
                         + (f", {served} logged in per /metrics" if served is not None else ""))


def local_fio_job(rw: str, path: str, runtime: int) -> str:
    return "\n".join(["[local]", "ioengine=io_uring", "thread=1", "direct=1", f"filename={path}",
                      "size=1g", f"rw={rw}", "bs=4k", "iodepth=32", "time_based=1",
                      f"runtime={runtime}"]) + "\n"


def run_iscsi_perf(url: str, qd: int, blocks: int, rand: bool, runtime: int, out: str):
    def run():
        argv = ["iscsi-perf", "-i", f"{INITIATOR}-perf", "-m", str(qd), "-b", str(blocks),
                "-t", str(runtime)] + (["-r"] if rand else []) + [url]
        t0 = time.time()
        rc, stdout, _ = run_client(argv, runtime + 60, merge_stderr=True)
        elapsed = time.time() - t0
        with open(out, "w") as f:
            f.write(stdout)
        m = re.findall(r"iops average (\d+) \((\d+) MB/s\)", stdout.replace("\r", "\n"))
        if rc != 0 or not m:
            raise RuntimeError(f"iscsi-perf failed ({rc}): {stdout[-400:]}")
        iops = float(m[-1][0])
        # iscsi-perf prints no I/O count; its average over the elapsed time stands in for it.
        return iops, iops * blocks * 512 / 1e6, None, None, int(iops * min(elapsed, runtime))
    return run


def run_load(load: str, t: "Target", row: tuple, runtime: int, out: str):
    """The run() of LOAD_ROWS entry `row` against `t`."""
    _, lun, rw, split_sends, bs, qd = row

    def run():
        # 1 GiB: the size of every LUN both targets export (tgt's null store reports 1 TiB).
        argv = [load, "--host", HOST, "--port", str(t.port), "--target", t.iqn, "--lun",
                str(t.luns[lun]), "--rw", rw, "--bs", str(bs_bytes(bs)), "--span",
                str((1 << 30) // 512), "--seconds", str(runtime), "--qd", str(qd)]
        if rw == "mix":
            argv += ["--sessions", str(SCALE.sessions), "--read-pct", str(SCALE.rwmixread)]
        argv += ["--split"] if split_sends else []
        rc, stdout, _ = run_client(argv, runtime + 120, merge_stderr=True)
        with open(out, "w") as f:
            f.write(stdout)
        m = re.search(r"ios=(\d+) seconds=([\d.]+) iops=(\d+) mbps=([\d.]+) "
                      r"p50_us=(\d+) p99_us=(\d+)", stdout)
        if rc != 0 or not m:
            raise RuntimeError(f"load failed ({rc}): {stdout[-400:]}")
        return float(m[3]), float(m[4]), float(m[5]), float(m[6]), int(m[1])
    return run


def bs_bytes(bs: str) -> int:
    return int(bs[:-1]) << {"k": 10, "m": 20}[bs[-1].lower()]


def rbd_bench_argv(conf: str, image: str, io_type: str, pattern: str, bs: int, threads: int,
                   total: int) -> list[str]:
    return ["rbd", "-c", conf, "--client_mount_timeout", "30", "bench", "--io-type", io_type,
            "--io-pattern", pattern, "--io-size", str(bs), "--io-threads", str(threads),
            "--io-total", str(total), "--rbd-cache=false", image]


def run_rbd_bench(conf: str, image: str, w: Workload, total: int, out: str, timeout: float):
    """`rbd bench` of `total` bytes (it has no time limit: the caller sizes `total` for the
    runtime it wants). Its closing line gives the I/Os and the rate over its own elapsed time."""
    bs = bs_bytes(w.bs)
    io_type = "write" if "write" in w.rw else "read"
    pattern = "rand" if w.rw.startswith("rand") else "seq"

    def run():
        rc, stdout, _ = run_client(rbd_bench_argv(conf, image, io_type, pattern, bs, w.qd,
                                                  total), timeout, merge_stderr=True)
        with open(out, "w") as f:
            f.write(stdout)
        m = re.findall(r"elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops/sec:\s*([\d.]+)", stdout)
        if rc != 0 or not m:
            raise RuntimeError(f"rbd bench failed ({rc}): {stdout.strip()[-400:]}")
        ios, iops = int(m[-1][1]), float(m[-1][2])
        return iops, iops * bs / 1e6, None, None, ios
    return run


def run_iperf3(port: int, runtime: int, out: str, length: str | None):
    def run():
        rc, stdout, err = run_client(["iperf3", "-c", HOST, "-p", str(port), "-t", str(runtime),
                                      "-J"] + (["-l", length] if length else []), runtime + 30)
        with open(out, "w") as f:
            f.write(stdout)
        if rc != 0:
            raise RuntimeError(f"iperf3 failed: {err[-300:]}")
        bps = json.loads(stdout)["end"]["sum_received"]["bits_per_second"]
        return 0.0, bps / 8 / 1e6, None, None, 0
    return run


# ---------------------------------------------------------------------------------------------
# summary

def split(sessions: dict, prefix: str = "  sessions ") -> str:
    """Sessions per reactor in core order, e.g. "2+2"; empty when not recorded."""
    if not sessions:
        return ""
    return prefix + "+".join(str(sessions[c]) for c in sorted(sessions, key=int))


def scale_note(s: Sample) -> str:
    """The scale row's log: p99 of reads and of writes apart, sessions that did I/O."""
    if "sessions_io" not in s.extra:
        return ""
    r, w = (fmt(s.extra.get(k), "us") for k in ("p99_read_us", "p99_write_us"))
    lo, mid, hi = s.extra["session_iops"]
    return (f"  p99 r/w {r}/{w} µs  {s.extra['sessions_io']} sessions did I/O, "
            f"{lo:.0f}/{mid:.0f}/{hi:.0f} IOPS each (min/median/max)")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    """Half the min..max range as a percentage of the median."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    m = statistics.median(xs)
    return 50.0 * (max(xs) - min(xs)) / m if m else None


def fmt(v, kind: str) -> str:
    if v is None:
        return "–"
    if kind == "iops":
        return f"{v / 1000:.1f}k"
    if kind in ("mbps", "us"):
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
    if kind == "cpu":
        return f"{v:.2f}"
    if kind == "pct":
        return f"{v:.0f}%"
    if kind == "ratio":
        return f"{v:.2f}×"
    return str(v)


def cell(xs, kind):
    if kind == "pct":  # shares of the machine: the range says more than a relative spread
        ys = [x for x in xs if x is not None]
        if len(ys) > 1:
            return f"{med(ys):.0f}% ({min(ys):.0f}–{max(ys):.0f})"
    m, s = med(xs), spread(xs)
    return fmt(m, kind) + (f" ±{s:.0f}%" if s is not None and m is not None else "")


METRICS = [("iops", "IOPS", "iops"), ("mbps", "MB/s", "mbps"), ("p50_us", "p50 µs", "us"),
           ("p99_us", "p99 µs", "us"), ("tgt_cpu_us", "target CPU µs/IO", "cpu"),
           ("cli_cpu_us", "client CPU µs/IO", "cpu"), ("host_pct", "host busy", "pct"),
           ("other_pct", "other load", "pct")]


def table(results: dict, rows: list[tuple[str, list[str]]], labels: dict,
          base: str = "tgt", no_ratio: tuple[str, ...] = ()) -> list[str]:
    """One row per target and workload, then each target's ratio to `base`'s (none for the
    metrics in `no_ratio`, which measure different things for the two)."""
    out = ["| workload | target | " + " | ".join(m[1] for m in METRICS) + " |",
           "|---|---|" + "---:|" * len(METRICS)]
    for wname, keys in rows:
        per = results.get(wname, {})
        for k in keys:
            if k not in per:
                continue
            out.append(f"| {wname} | {labels[k]} | " + " | ".join(
                cell([getattr(s, m[0]) for s in per[k]], m[2]) for m in METRICS) + " |")
        for k in keys:
            if k == base or k not in per or base not in per:
                continue
            cells = []
            for m in METRICS:
                if m[0] in ("host_pct", "other_pct") + no_ratio:
                    cells.append("")
                    continue
                a = med([getattr(s, m[0]) for s in per[k]])
                b = med([getattr(s, m[0]) for s in per[base]])
                cells.append(f"**{fmt(a / b, 'ratio')}**" if a is not None and b else "–")
            out.append(f"| {wname} | **{labels[k]} ÷ {labels[base]}** | " + " | ".join(cells)
                       + " |")
    return out


def machine_info() -> list[str]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    osr = "?"
    try:
        with open("/etc/os-release") as f:
            osr = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "?")
    except OSError:
        pass
    return [f"nproc {os.cpu_count()}, {model}, {mem_kb / 2**20:.0f} GiB RAM",
            f"kernel {platform.release()}, {osr.strip(chr(34))}"]


def pkg_version(name: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or "?"


# ---------------------------------------------------------------------------------------------
# profile

def profile(procs: Procs, targets: list[Target], fio: str, load: str, run_dir: str,
            runtime: int, only: re.Pattern) -> list[str]:
    """perf record (cpu-clock) of each target under the null 4k randread, 4k randwrite, 1m read
    and 1m write rows and the batching client's 4k randwrite and 1m write, and strace -c under
    null 4k randread qd32."""
    md: list[str] = []
    have_perf = shutil.which("perf") is not None
    have_strace = shutil.which("strace") is not None
    profiled = [w.name for w in WORKLOADS[:4]] + ["load-batched null 4k randwrite qd32",
                                                  "load-batched null 1m write qd8"]
    profiled = [n for n in profiled if only.search(n)]
    for name in profiled if have_perf else ():
        slug = re.sub(r"[^a-z0-9]+", "-", name)
        for t in targets:
            w = next((w for w in WORKLOADS if w.name == name), None)
            if w is not None:
                job = os.path.join(run_dir, f"profile-{t.key}-{slug}.fio")
                with open(job, "w") as f:
                    f.write(iscsi_fio_job(w, t.url(w.lun), runtime))
                client = run_fio(fio, job, job.replace(".fio", ".json"), w.rw, runtime)
            else:
                row = next(r for r in LOAD_ROWS if r[0] == name)
                client = run_load(load, t, row, runtime,
                                  os.path.join(run_dir, f"profile-{t.key}-{slug}.txt"))
            data = os.path.join(run_dir, f"perf-{t.key}-{slug}.data")
            rec = procs.track(subprocess.Popen(
                ["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-p", str(t.pid),
                 "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
            time.sleep(0.5)
            try:
                r = client()
            finally:
                rec.send_signal(signal.SIGINT)
                rec.wait(timeout=60)

            def report(*extra: str) -> list[str]:
                r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                                    "-g", "none", *extra], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
                return [re.sub(r"(\s+-)+\s*$", "", l).rstrip() for l in r.stdout.splitlines()
                        if l.strip() and not l.startswith("#")]

            dsos = report("--sort", "dso")
            syms = report("--sort", "dso,symbol", "--percent-limit", "0.7")
            with open(data.replace(".data", ".txt"), "w") as f:
                f.write("\n".join(dsos + [""] + syms) + "\n")
            share = ", ".join(" ".join(l.split()[:2][::-1]) for l in dsos[:4])
            md += [f"`perf record -e cpu-clock -g -p <{t.label}>` under {name} "
                   f"({r[0] / 1000:.1f}k IOPS, {r[1]:,.0f} MB/s) — samples by object: {share}. "
                   f"Symbols ≥ 0.7 %:", "", "```"]
            md += syms[:25] + ["```", ""]
    w = WORKLOADS[0]
    for t in targets if have_strace else ():
        job = os.path.join(run_dir, f"strace-{t.key}.fio")
        with open(job, "w") as f:
            f.write(iscsi_fio_job(w, t.url(w.lun), runtime))
        out = os.path.join(run_dir, f"strace-{t.key}.txt")
        st = procs.track(subprocess.Popen(["strace", "-c", "-f", "-p", str(t.pid), "-o", out],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        time.sleep(0.5)
        try:
            r = run_fio(fio, job, job.replace(".fio", ".json"), w.rw, runtime)()
        finally:
            st.send_signal(signal.SIGINT)
            st.wait(timeout=60)
        ios = r[4]
        calls = []
        with open(out) as f:
            for l in f:
                p = l.split()
                if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                    calls.append((int(p[3]), p[-1]))
        calls.sort(reverse=True)
        total = sum(n for n, _ in calls)
        if ios:
            top = ", ".join(f"{name} {n / ios:.2f}" for n, name in calls[:6] if n / ios >= 0.01)
            md += [f"`strace -c -f` on {t.label} under {w.name} (slowed by strace to "
                   f"{r[0] / 1000:.1f}k IOPS): {total / ios:.2f} syscalls per I/O — {top}", ""]
    return md


# ---------------------------------------------------------------------------------------------
# main

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringtgt", required=True)
    ap.add_argument("--ringtgt-source", required=True)
    # How the report names the binary (relative to the repository, never a machine's path).
    ap.add_argument("--ringtgt-label", default=None)
    ap.add_argument("--fio", required=True)
    ap.add_argument("--lun-file", required=True)
    ap.add_argument("--ram-file", required=True)  # tgt's memory-backed LUN, on tmpfs
    ap.add_argument("--load", required=True)  # examples/load.rs, built by run.sh
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--results", required=True)
    # RBD=1 (perf/run.sh): the cluster's configuration and the image (POOL/IMAGE) to measure.
    ap.add_argument("--rbd-conf", default=None)
    ap.add_argument("--rbd-image", default=None)
    a = ap.parse_args()

    rounds = int(os.environ.get("ROUNDS", "3"))
    runtime = int(os.environ.get("RUNTIME", "5"))
    only = re.compile(os.environ.get("ONLY", ".*"))
    base = int(os.environ.get("PORT_BASE", "3460"))
    cores = os.environ.get("CORES") or None
    do_profile = os.environ.get("PROFILE", "1") == "1"
    label = os.environ.get("LABEL", "run")
    ports = {"ringtgt": base, "ringtgt-c1": base + 1, "tgt": base + 2, "iperf3": base + 3,
             "ringtgt metrics": base + 4, "ringtgt-c1 metrics": base + 5}
    rbd = bool(a.rbd_conf and a.rbd_image)
    if rbd:
        ports.update({"ringtgt-rbd": base + 6, "ringtgt-rbd metrics": base + 7})
    # The ringtgt-vs-tgt rows (warm-up and profile are theirs).
    main_selected = any(only.search(n) for n in [w.name for w in WORKLOADS] + CLIENT_ROWS)
    for name, p in ports.items():
        if not port_free(p):
            raise SystemExit(f"port {HOST}:{p} (for {name}) is taken; set PORT_BASE")

    procs = Procs(a.pidfile)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    try:
        ncpu = os.cpu_count() or 1
        rt = start_ringtgt(procs, "ringtgt", f"ringtgt --cores {cores or ncpu}", a.ringtgt,
                           ports["ringtgt"], cores, a.lun_file, a.run_dir,
                           ports["ringtgt metrics"])
        rt1 = start_ringtgt(procs, "ringtgt-c1", "ringtgt --cores 1", a.ringtgt,
                            ports["ringtgt-c1"], "1", a.lun_file, a.run_dir,
                            ports["ringtgt-c1 metrics"])
        tgt = start_tgt(procs, ports["tgt"], base + 2, a.lun_file, a.ram_file, a.run_dir)
        iperf = procs.start(["iperf3", "-s", "-B", HOST, "-p", str(ports["iperf3"])],
                            os.path.join(a.run_dir, "iperf3-server.log"))
        wait_port(ports["iperf3"], iperf, "iperf3 -s")
        labels = {"ringtgt": rt.label, "ringtgt-c1": rt1.label, "tgt": "tgt",
                  "iperf3": "iperf3 loopback", "local": "local fio io_uring direct",
                  "rbd-bench": "rbd bench"}
        targets = {"ringtgt": rt, "ringtgt-c1": rt1, "tgt": tgt}
        rbd_rows = [w for w in RBD_WORKLOADS if only.search(w.name)] if rbd else []
        rbd_rate: dict[str, float] = {}  # workload -> rbd bench's last bytes/s
        if rbd_rows:
            # Every object of the image is written once first: reads of objects never written
            # are answered without touching any data, for rbd bench and ringtgt alike.
            log(f"writing the whole image {a.rbd_image} once (rbd bench, 4 MiB sequential)")
            size = 1 << 30
            rc, out, _ = run_client(rbd_bench_argv(a.rbd_conf, a.rbd_image, "write", "seq",
                                                   4 << 20, 16, size), 600, merge_stderr=True)
            if rc != 0:
                raise SystemExit(f"filling the image failed: {out.strip()[-400:]}")
            rr = start_ringtgt_rbd(procs, a.ringtgt, ports["ringtgt-rbd"], a.rbd_conf,
                                   a.rbd_image, a.run_dir, ports["ringtgt-rbd metrics"])
            targets["ringtgt-rbd"] = rr
            labels["ringtgt-rbd"] = rr.label

        results: dict[str, dict[str, list[Sample]]] = {}
        refs: dict[str, list[Sample]] = {}
        # Once, on the fresh targets, before anything else has used (and freed) their memory.
        idle = idle_rss_all(targets, SCALE.sessions) if only.search(SCALE.name) else {}

        def add(wname, key, s):
            results.setdefault(wname, {}).setdefault(key, []).append(s)

        # Warm-up, not measured: a fresh target's first large transfers pay for growing its
        # allocator (page faults on fresh buffers); the rounds measure the steady state.
        warmup = int(os.environ.get("WARMUP", "2"))
        if warmup > 0 and main_selected:
            log(f"warm-up: {warmup} s per target of 1m read, 1m write, file 4k randread")
            for key, t in targets.items():
                if key == "ringtgt-rbd":
                    continue
                for w in (WORKLOADS[2], WORKLOADS[3], WORKLOADS[4]):
                    job = os.path.join(a.run_dir, f"warmup-{key}-{w.rw}-{w.lun}.fio")
                    with open(job, "w") as f:
                        f.write(iscsi_fio_job(w, t.url(w.lun), warmup))
                    run_fio(a.fio, job, job.replace(".fio", ".json"), w.rw, warmup)()
        # rbd bench runs a number of bytes, not a time: a short run of each workload gives its
        # rate (and warms the image up), which sizes the first measured run; each measured run's
        # rate sizes the next one.
        for w in rbd_rows:
            total = (16 << 20) if w.bs == "4k" else (512 << 20)
            slug = re.sub(r"[^a-z0-9]+", "-", w.name)
            s = measured(None, run_rbd_bench(a.rbd_conf, a.rbd_image, w, total, os.path.join(
                a.run_dir, f"calibrate-{slug}.txt"), 300))
            rbd_rate[w.name] = s.mbps * 1e6
            log(f"{w.name:38s} rbd bench calibration {s.iops / 1000:7.1f}k IOPS "
                f"{s.mbps:7.0f} MB/s")
            if warmup > 0:
                t = targets["ringtgt-rbd"]
                job = os.path.join(a.run_dir, f"warmup-ringtgt-rbd-{slug}.fio")
                with open(job, "w") as f:
                    f.write(iscsi_fio_job(w, t.url(w.lun), warmup))
                run_fio(a.fio, job, job.replace(".fio", ".json"), w.rw, warmup)()
        for r in range(rounds):
            log(f"round {r + 1}/{rounds}")
            for key, length in (("iperf3", None), ("iperf3-1m", "1M")):
                out = os.path.join(a.run_dir, f"r{r}-{key}.json")
                refs.setdefault(key, []).append(
                    measured(iperf.pid, run_iperf3(ports["iperf3"], runtime, out, length)))
            for rw in ("randread", "randwrite"):
                if not any(only.search(f"{c}file 4k {rw} qd32") for c in ("", "load-batched ")):
                    continue
                job = os.path.join(a.run_dir, f"r{r}-local-{rw}.fio")
                with open(job, "w") as f:
                    f.write(local_fio_job(rw, a.lun_file, runtime))
                refs.setdefault(f"local {rw}", []).append(measured(None, run_fio(
                    a.fio, job, job.replace(".fio", ".json"), rw, runtime)))
            for wi, w in enumerate(WORKLOADS):
                if not only.search(w.name):
                    continue
                keys = ["ringtgt", "tgt"] + (["ringtgt-c1"] if w.c1 else [])
                shift = (r + wi) % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    t = targets[key]
                    slug = re.sub(r"[^a-z0-9]+", "-", w.name)
                    stem = os.path.join(a.run_dir, f"r{r}-{key}-{slug}")
                    s = measured(t.pid, workload_run(w, t.url(w.lun), a.fio, stem, runtime),
                                 t.metrics)
                    log(f"{w.name:38s} {labels[key]:22s} {s.iops / 1000:7.1f}k IOPS "
                        f"{s.mbps:7.0f} MB/s  tgt {s.tgt_cpu_us or 0:5.2f} µs/IO"
                        f"{split(s.sessions)}{scale_note(s)}")
                    check_sessions(w, labels[key], s)
                    add(w.name, key, s)
            for wi, w in enumerate(rbd_rows):
                keys = ["ringtgt-rbd", "rbd-bench"]
                shift = (r + wi) % len(keys)
                slug = re.sub(r"[^a-z0-9]+", "-", w.name)
                for key in keys[shift:] + keys[:shift]:
                    if key == "rbd-bench":
                        bs = bs_bytes(w.bs)
                        total = max(bs * w.qd * 4, int(rbd_rate[w.name] * runtime) // bs * bs)
                        out = os.path.join(a.run_dir, f"r{r}-rbd-bench-{slug}.txt")
                        s = measured(None, run_rbd_bench(a.rbd_conf, a.rbd_image, w, total, out,
                                                         runtime * 10 + 120))
                        rbd_rate[w.name] = s.mbps * 1e6 or rbd_rate[w.name]
                    else:
                        t = targets[key]
                        job = os.path.join(a.run_dir, f"r{r}-{key}-{slug}.fio")
                        with open(job, "w") as f:
                            f.write(iscsi_fio_job(w, t.url(w.lun), runtime))
                        s = measured(t.pid, run_fio(a.fio, job, job.replace(".fio", ".json"),
                                                    w.rw, runtime), t.metrics)
                    cpu = s.tgt_cpu_us if key != "rbd-bench" else s.cli_cpu_us
                    log(f"{w.name:38s} {labels[key]:22s} {s.iops / 1000:7.1f}k IOPS "
                        f"{s.mbps:7.0f} MB/s  {'tgt' if key != 'rbd-bench' else 'rbd'} "
                        f"{cpu or 0:5.2f} µs/IO{split(s.sessions)}")
                    add(w.name, key, s)
            for name, qd, blocks, rand in (("iscsi-perf null 4k rand qd32", 32, 8, True),
                                           ("iscsi-perf null 1m seq qd8", 8, 2048, False)):
                if not only.search(name):
                    continue
                for key in (["ringtgt", "tgt"] if r % 2 == 0 else ["tgt", "ringtgt"]):
                    t = targets[key]
                    out = os.path.join(a.run_dir, f"r{r}-{key}-{name.replace(' ', '-')}.txt")
                    s = measured(t.pid, run_iscsi_perf(t.url("null"), qd, blocks, rand, runtime,
                                                       out), t.metrics)
                    log(f"{name:38s} {labels[key]:22s} {s.iops / 1000:7.1f}k IOPS "
                        f"{s.mbps:7.0f} MB/s  tgt {s.tgt_cpu_us or 0:5.2f} µs/IO"
                        f"{split(s.sessions)}")
                    add(name, key, s)

            for row in LOAD_ROWS:
                name = row[0]
                if not only.search(name):
                    continue
                for key in (["ringtgt", "tgt"] if r % 2 == 0 else ["tgt", "ringtgt"]):
                    t = targets[key]
                    slug = re.sub(r"[^a-z0-9]+", "-", name)
                    out = os.path.join(a.run_dir, f"r{r}-{key}-{slug}.txt")
                    s = measured(t.pid, run_load(a.load, t, row, runtime, out), t.metrics)
                    log(f"{name:38s} {labels[key]:22s} {s.iops / 1000:7.1f}k IOPS "
                        f"{s.mbps:7.0f} MB/s  tgt {s.tgt_cpu_us or 0:5.2f} µs/IO"
                        f"{split(s.sessions)}")
                    add(name, key, s)

        prof_md = (profile(procs, [rt, tgt], a.fio, a.load, a.run_dir, runtime, only)
                   if do_profile and main_selected else [])
        elapsed = time.time() - started
    finally:
        procs.stop_all()
        if os.path.exists(a.ram_file):
            os.unlink(a.ram_file)
        for suffix in ("", ".lock"):
            try:
                os.unlink(f"/run/tgtd/socket.{base + 2}{suffix}")
            except FileNotFoundError:
                pass

    with open(os.path.join(a.run_dir, "samples.json"), "w") as f:
        json.dump({"results": {w: {k: [s.__dict__ for s in v] for k, v in d.items()}
                               for w, d in results.items()},
                   "refs": {k: [s.__dict__ for s in v] for k, v in refs.items()},
                   "idle": {k: v.__dict__ for k, v in idle.items()}}, f, indent=1)

    md = summary(a, label, rounds, runtime, elapsed, results, refs, idle, labels, prof_md)
    with open(os.path.join(a.run_dir, "section.md"), "w") as f:
        f.write(md)
    print(md)
    if os.environ.get("APPEND", "1") == "1":
        new = not os.path.exists(a.results)
        with open(a.results, "a") as f:
            if new:
                f.write("# ringtgt vs tgt: end-to-end results\n\n"
                        "Each section is one run of `perf/run.sh`; newest last.\n\n")
            f.write("\n" + md)
        log(f"appended to {a.results}")
    log(f"raw results in {a.run_dir}")


def summary(a, label, rounds, runtime, elapsed, results, refs, idle, labels, prof_md) -> str:
    with open(a.ringtgt, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()[:16]
    mtime = dt.datetime.fromtimestamp(os.path.getmtime(a.ringtgt_source), dt.timezone.utc)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = [f"## {label} — {now}", ""]
    warmup = os.environ.get("WARMUP", "2")
    warm = []
    if any(n in results for n in [w.name for w in WORKLOADS] + CLIENT_ROWS):
        warm.append(f"each target warmed up first (WARMUP={warmup} s each of 1m read, 1m write, "
                    f"file 4k randread)")
    if any(w.name in results for w in RBD_WORKLOADS):
        warm.append(f"the RBD target warmed up with WARMUP={warmup} s of each RBD workload, rbd "
                    f"bench by a short calibration run of each")
    warm = "; ".join(warm) or "no warm-up"
    L += [f"- machine: {m}" for m in machine_info()]
    name = a.ringtgt_label or os.path.basename(a.ringtgt_source)
    L += [f"- ringtgt: `{name}` (built {mtime:%Y-%m-%d %H:%M} UTC, sha256 {sha}…); "
          f"tgt {pkg_version('tgt')}; libiscsi {pkg_version('libiscsi7')}; fio 3.33 from "
          f"Debian source with `--enable-libiscsi` (engine's FIO_SYNCIO flag dropped so that "
          f"iodepth applies); iperf3 {pkg_version('iperf3')}",
          f"- command: `{a.command}` — {rounds} rounds × {runtime} s per measurement, "
          f"{elapsed / 60:.1f} min in all; target order rotates every round; {warm}",
          "- cells: median over rounds ±half the min–max spread; ratio rows: median ÷ median. "
          "CPU µs/IO: target = utime+stime delta of `/proc/PID/stat` (all threads) ÷ I/Os "
          "completed; client = rusage of the fio / iscsi-perf / load processes ÷ I/Os. "
          "Latency is fio's completion latency (for randrw: of reads and writes together). Digests off (libiscsi offers None first, both targets take it). "
          "host busy: all CPUs, from /proc/stat; other load: the part of it that was neither "
          "this target nor this client (other engineers' work, IRQs) — median (min–max).",
          ""]
    main_rows = [(w.name, ["ringtgt", "tgt"] + (["ringtgt-c1"] if w.c1 else []))
                 for w in WORKLOADS]
    main_rows += [(n, ["ringtgt", "tgt"]) for n in CLIENT_ROWS]
    if any(n in results for n, _ in main_rows):
        L += ["### ringtgt vs tgt", ""] + table(results, main_rows, labels) + [""]
    L += scale_section(results, idle, labels)
    L += rbd_section(a, results, labels)

    ref_rows = []
    for key, lab in (("iperf3", "iperf3 loopback, 1 stream, 128 KiB writes (its default)"),
                     ("iperf3-1m", "iperf3 loopback, 1 stream, 1 MiB writes (the ceiling used)"),
                     ("local randread", "local fio io_uring direct=1, 4k randread qd32"),
                     ("local randwrite", "local fio io_uring direct=1, 4k randwrite qd32")):
        if key in refs:
            ss = refs[key]
            iops = "–" if key.startswith("iperf3") else cell([s.iops for s in ss], "iops")
            ref_rows.append(f"| {lab} | {iops}"
                            f" | {cell([s.mbps for s in ss], 'mbps')}"
                            f" | {cell([s.p50_us for s in ss], 'us')}"
                            f" | {cell([s.p99_us for s in ss], 'us')}"
                            f" | {cell([s.host_pct for s in ss], 'pct')}"
                            f" | {cell([s.other_pct for s in ss], 'pct')} |")
    if ref_rows:
        L += ["### Physical references (same run)", "",
              "| reference | IOPS | MB/s | p50 µs | p99 µs | host busy | other load |",
              "|---|---:|---:|---:|---:|---:|---:|"] + ref_rows + [""]

    spread_rows = []
    for wname, d in results.items():
        for key in ("ringtgt", "ringtgt-c1", "ringtgt-rbd"):
            if key not in d:
                continue
            names = sorted({n for s in d[key] for n in s.threads})
            tot = {n: med([s.threads.get(n, 0.0) for s in d[key]]) or 0.0 for n in names}
            busy = sum(tot.values())
            if busy <= 0:
                continue
            parts = ", ".join(f"{n} {100 * v / busy:.0f}%" for n, v in tot.items()
                              if v / busy >= 0.005)
            served = ", ".join(split(s.sessions, "") or "–" for s in d[key])
            spread_rows.append(f"| {wname} | {labels[key]} | {busy:.2f} s | {parts} | {served} |")
    if spread_rows:
        L += ["### Where ringtgt's CPU time went, per thread (median of rounds)", "",
              "Sessions per reactor: how many sessions each reactor (reactor-0 + reactor-1 + …) "
              "served in each round's run, from the per-core login counters of /metrics.", "",
              "| workload | instance | CPU s per run | share per thread | sessions per reactor, "
              "each round |", "|---|---|---:|---|---|"]
        L += spread_rows + [""]

    if any(n in results for n, _ in main_rows):
        L += ["### Goals (ratios from this run)", ""] + goals(results, refs, idle) + [""]
    if prof_md:
        L += ["### Profile (after the rounds)", ""] + prof_md
    return "\n".join(L) + "\n"


def scale_section(results, idle, labels) -> list[str]:
    """The scale row's figures that the main table has no column for."""
    per = results.get(SCALE.name, {})
    if not per and not idle:
        return []
    out = [f"### {SCALE.sessions} sessions at once", "",
           f"`{SCALE.name}`: {SCALE.procs} fio processes × {SCALE.jobs} jobs, one libiscsi "
           f"session each (its own initiator name), QD{SCALE.qd}, on a memory-backed LUN "
           "(ringtgt `ram:1GiB`; tgt `rdwr` on a sparse 1 GiB file in /dev/shm, buffered). In the "
           "main table its IOPS and MB/s are reads and writes summed, its p50/p99 are of reads "
           "and writes together (the completion-latency histograms of all jobs merged); here "
           "the p99 of each, and how evenly the sessions were served: the IOPS of the slowest, "
           "the median and the fastest session. Idle RSS: the target's VmRSS (settled) before "
           f"and while {SCALE.sessions} sessions are logged in and idle (a bare iSCSI login from bench.py, "
           "no I/O; the count checked against the target's own list), measured once on the "
           f"fresh targets before any other run, ÷ {SCALE.sessions}.", "",
           "| target | sessions that did I/O: IOPS per session min/median/max, each round | "
           "p99 read µs | p99 write µs | VmRSS before | with idle sessions | RSS per idle "
           "session |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for key in ("ringtgt", "tgt"):
        ss = per.get(key, [])
        did = "; ".join(f"{s.extra['sessions_io']}: " + "/".join(
            f"{v:.0f}" for v in s.extra["session_iops"]) for s in ss) or "–"
        r = idle.get(key)
        rss = ([f"{r.before_kib / 1024:.1f} MiB", f"{r.after_kib / 1024:.1f} MiB",
                f"{r.per_session_kib:.1f} KiB"] if r else ["–"] * 3)
        out.append(f"| {labels[key]} | {did} | "
                   f"{cell([s.extra.get('p99_read_us') for s in ss], 'us')} | "
                   f"{cell([s.extra.get('p99_write_us') for s in ss], 'us')} | "
                   + " | ".join(rss) + " |")
    out.append(f"| **{labels['ringtgt']} ÷ tgt** | | "
               + " | ".join(scale_ratio(per, idle, k) for k in
                            ("p99_read_us", "p99_write_us", "", "", "rss")) + " |")
    return out + [""]


def scale_ratio(per, idle, what) -> str:
    if what == "rss":
        a, b = (idle[k].per_session_kib if k in idle else None for k in ("ringtgt", "tgt"))
    elif what:
        a, b = (med([s.extra.get(what) for s in per.get(k, [])]) for k in ("ringtgt", "tgt"))
    else:
        return ""
    return f"**{fmt(a / b, 'ratio')}**" if a is not None and b else "–"


def rbd_section(a, results, labels) -> list[str]:
    """ringtgt exporting the RBD image against `rbd bench` on it (RBD=1), if measured."""
    rows = [(w.name, ["ringtgt-rbd", "rbd-bench"]) for w in RBD_WORKLOADS
            if w.name in results]
    if not rows:
        return []
    L = ["### ringtgt vs rbd bench (Ceph RBD image, same cluster)", "",
         f"A throwaway single-node cluster (`scripts/ceph/up.sh`: one monitor, manager and "
         f"BlueStore OSD on a sparse file in {os.path.dirname(os.path.dirname(a.rbd_conf))}, "
         f"pool size 1; ceph {pkg_version('ceph-common')}), image `{a.rbd_image}` of 1 GiB "
         f"written in full before the rounds. ringtgt exports it (all cores, librbd cache off "
         f"through CEPH_ARGS) to fio's libiscsi engine as above; `rbd bench --io-type "
         f"write|read --io-pattern rand|seq --io-size 4K|1M --io-threads QD --rbd-cache=false` "
         f"drives librbd on the same image directly, with --io-total sized for about RUNTIME "
         f"seconds from its previous rate. rbd bench reports no latency percentiles; its own "
         f"CPU (librbd included) is its client CPU column, while ringtgt's librbd work is in "
         f"ringtgt's target CPU. other load includes the Ceph daemons.", ""]
    # fio's client CPU and rbd bench's (which runs librbd) are not alike: compared below instead.
    L += table(results, rows, labels, base="rbd-bench", no_ratio=("cli_cpu_us",)) + [""]
    L += ["CPU per I/O of the process that runs librbd (ringtgt; rbd bench), median of rounds:",
          ""]
    for wname, _ in rows:
        d = results[wname]
        if "ringtgt-rbd" not in d or "rbd-bench" not in d:
            continue
        g = med([s.tgt_cpu_us for s in d["ringtgt-rbd"]])
        c = med([s.cli_cpu_us for s in d["ringtgt-rbd"]])
        b = med([s.cli_cpu_us for s in d["rbd-bench"]])
        ratio = f" = **{g / b:.2f}×**" if g is not None and b else ""
        L.append(f"- {wname}: ringtgt {fmt(g, 'cpu')} µs (plus fio's libiscsi client "
                 f"{fmt(c, 'cpu')}) vs rbd bench {fmt(b, 'cpu')} µs{ratio}")
    return L + [""]


def goals(results, refs, idle) -> list[str]:
    def m(w, k, attr):
        ss = results.get(w, {}).get(k)
        return med([getattr(s, attr) for s in ss]) if ss else None

    def ref(k, attr):
        ss = refs.get(k)
        return med([getattr(s, attr) for s in ss]) if ss else None

    out = ["| goal | measured | verdict |", "|---|---:|---|"]

    def row(text, val, ok, shown):
        if val is None:
            out.append(f"| {text} | not measured | – |")
        else:
            out.append(f"| {text} | {shown} | {'met' if ok else '**missed**'} |")

    for w in ("null 4k randread qd32", "null 4k randwrite qd32", "file 4k randread qd32",
              "file 4k randwrite qd32", "load-batched null 4k randwrite qd32",
              "load-split null 4k randwrite qd32"):
        a, b = m(w, "ringtgt", "tgt_cpu_us"), m(w, "tgt", "tgt_cpu_us")
        v = a / b if a is not None and b else None
        row(f"target CPU per I/O ≤ 1/3 of tgtd's — {w}", v, v is not None and v <= 1 / 3,
            f"{a or 0:.2f} vs {b or 0:.2f} µs = {v or 0:.2f}×")
    for w in ("null 4k randread qd32", "null 4k randwrite qd32",
              "load-batched null 4k randwrite qd32", "load-split null 4k randwrite qd32"):
        a, b = m(w, "ringtgt", "iops"), m(w, "tgt", "iops")
        v = a / b if a is not None and b else None
        row(f"IOPS ≥ 1.5× tgt — {w}", v, v is not None and v >= 1.5,
            f"{(a or 0) / 1000:.1f}k vs {(b or 0) / 1000:.1f}k = {v or 0:.2f}×")
    ip = ref("iperf3-1m", "mbps") or ref("iperf3", "mbps")
    for w, goal in (("null 1m read qd8", 0.85), ("null 1m write qd8", 0.70),
                    ("load-batched null 1m read qd8", 0.85),
                    ("load-batched null 1m write qd8", 0.70)):
        a = m(w, "ringtgt", "mbps")
        v = a / ip if a is not None and ip else None
        row(f"{w} ≥ {goal:.0%} of iperf3 loopback", v, v is not None and v >= goal,
            f"{a or 0:,.0f} of {ip or 0:,.0f} MB/s = {v or 0:.0%}")
    for w, k in (("file 4k randread qd32", "local randread"),
                 ("file 4k randwrite qd32", "local randwrite"),
                 ("load-batched file 4k randread qd32", "local randread"),
                 ("load-batched file 4k randwrite qd32", "local randwrite")):
        a, b = m(w, "ringtgt", "iops"), ref(k, "iops")
        v = a / b if a is not None and b else None
        row(f"{w} ≥ 80% of local fio", v, v is not None and v >= 0.8,
            f"{(a or 0) / 1000:.1f}k of {(b or 0) / 1000:.1f}k = {v or 0:.0%}")
    for w in (SCALE.name, LOAD_SCALE):
        a, b = m(w, "ringtgt", "iops"), m(w, "tgt", "iops")
        v = a / b if a is not None and b else None
        row(f"IOPS ≥ 2× tgt — {w}", v, v is not None and v >= 2,
            f"{(a or 0) / 1000:.1f}k vs {(b or 0) / 1000:.1f}k = {v or 0:.2f}×")
        a, b = m(w, "ringtgt", "p99_us"), m(w, "tgt", "p99_us")
        v = a / b if a is not None and b else None
        row(f"p99 (reads and writes together) ≤ 0.5× tgt's — {w}", v,
            v is not None and v <= 0.5, f"{fmt(a, 'us')} vs {fmt(b, 'us')} µs = {v or 0:.2f}×")
    r = idle.get("ringtgt")
    v = r.per_session_kib if r else None
    row(f"RSS per idle session ≤ 64 KiB ({SCALE.sessions} idle sessions)", v,
        v is not None and v <= 64, f"{v or 0:.1f} KiB")
    return out


if __name__ == "__main__":
    main()
