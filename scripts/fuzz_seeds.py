#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from real iSCSI sessions.

Two sub-commands, used by scripts/fuzz-seeds.sh:

  proxy LISTEN_PORT TARGET_PORT RAW_DIR
      A TCP proxy on 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT that records what the
      initiator sends on each connection into RAW_DIR/conn-NNNN.bin. Runs until SIGTERM.

  seeds RAW_DIR SEED_DIR
      Splits the recorded streams (no digests: the target is started with digests refused)
      into PDUs and writes the seed files of each target under SEED_DIR/<target>/, in the input
      formats that fuzz/fuzz_targets/*.rs document.
"""

import asyncio
import hashlib
import os
import signal
import struct
import sys

BHS_LEN = 48
LOGIN_REQUEST = 0x03
SCSI_COMMAND = 0x01
DATA_OUT = 0x05

# Size caps: the seeds live in git.
MAX_CONNECTION_SEED = 48 * 1024
MAX_SCSI_SEED = 64 * 1024
MAX_PDU_SEED = 8 * 1024
MAX_PDUS_PER_KIND = 12
MAX_TOTAL = 1800 * 1024


# ---------------------------------------------------------------------------- proxy


async def pipe(reader, writer, record):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if record is not None:
                record.extend(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


def proxy(listen_port, target_port, raw_dir):
    os.makedirs(raw_dir, exist_ok=True)
    counter = [0]

    async def handle(cr, cw):
        counter[0] += 1
        path = os.path.join(raw_dir, "conn-%04d.bin" % counter[0])
        record = bytearray()
        try:
            tr, tw = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, tw, record), pipe(tr, cw, None))
        with open(path, "wb") as f:
            f.write(record)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with server:
            await stop.wait()
            # Let connections still closing write their records.
            await asyncio.sleep(0.5)

    asyncio.run(main())


# ---------------------------------------------------------------------------- seeds


def pad4(n):
    return (n + 3) & ~3


def split_pdus(stream):
    """The PDUs of a stream without digests: (bhs, ahs, data, wire bytes)."""
    pdus = []
    pos = 0
    while pos + BHS_LEN <= len(stream):
        bhs = stream[pos : pos + BHS_LEN]
        ahs_len = bhs[4] * 4
        dlen = int.from_bytes(bhs[5:8], "big")
        end = pos + BHS_LEN + ahs_len + pad4(dlen)
        if end > len(stream):
            break
        ahs = stream[pos + BHS_LEN : pos + BHS_LEN + ahs_len]
        data = stream[pos + BHS_LEN + ahs_len : pos + BHS_LEN + ahs_len + dlen]
        pdus.append((bhs, ahs, data, stream[pos:end]))
        pos = end
    return pdus


def opcode(bhs):
    return bhs[0] & 0x3F


def login_phase(pdus):
    n = 0
    while n < len(pdus) and opcode(pdus[n][0]) == LOGIN_REQUEST:
        n += 1
    return pdus[:n], pdus[n:]


def is_normal(login):
    text = b"".join(p[2] for p in login)
    return b"SessionType=Discovery" not in text


class Seeds:
    def __init__(self, root):
        self.root = root
        self.total = 0
        self.seen = set()

    def add(self, target, data):
        digest = hashlib.sha1(data).hexdigest()
        if (target, digest) in self.seen or self.total + len(data) > MAX_TOTAL:
            return
        self.seen.add((target, digest))
        self.total += len(data)
        d = os.path.join(self.root, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, digest), "wb") as f:
            f.write(data)


def login_seed(login):
    # options 0 (default offer, accept), TSIH 1 for the accept.
    return bytes([0, 0, 1]) + b"".join(p[3] for p in login)


def connection_seed(login, rest, options=0):
    """Options (0, or 1 for the login with CRC32C digests: the harness adds the digests), the
    session's first CmdSN, then each PDU (op 0) followed by "complete every pending request"
    (op 0x0d) and "drain the output" (op 7)."""
    cmd_sn = struct.unpack(">I", login[-1][0][24:28])[0]
    out = bytearray([options]) + struct.pack(">I", cmd_sn)
    for p in rest:
        step = bytes([0]) + p[3] + bytes([0x0D, 7])
        if len(out) + len(step) > MAX_CONNECTION_SEED:
            break
        out += step
    return bytes(out)


def scsi_seed(rest):
    """Each SCSI Command as flags / CDB / data, its data being its immediate data followed by
    the Data-Out of the same task."""
    data_by_itt = {}
    for bhs, _, data, _ in rest:
        if opcode(bhs) == DATA_OUT:
            itt = bhs[16:20]
            data_by_itt.setdefault(itt, bytearray()).extend(data)
    out = bytearray()
    for bhs, _, data, _ in rest:
        if opcode(bhs) != SCSI_COMMAND:
            continue
        lun = bhs[8:16]
        if lun == bytes(8):
            head = bytes([0])
        else:
            head = bytes([3]) + lun
        payload = bytes(data) + bytes(data_by_itt.get(bhs[16:20], b""))
        payload = payload[:0xFFFF]
        cmd = head + bytes([16]) + bhs[32:48] + struct.pack(">H", len(payload)) + payload
        if len(out) + len(cmd) > MAX_SCSI_SEED:
            break
        out += cmd
    return bytes(out)


def pdu_seeds(pdus, per_kind):
    """Single PDUs: without digests (options 0), and with digest room the harness repairs
    (options 7); limit 262144."""
    seeds = []
    for bhs, ahs, data, wire in pdus:
        if len(wire) > MAX_PDU_SEED:
            continue
        kind = opcode(bhs)
        if per_kind.get(kind, 0) >= MAX_PDUS_PER_KIND:
            continue
        per_kind[kind] = per_kind.get(kind, 0) + 1
        limit = (262144).to_bytes(3, "big")
        seeds.append(bytes([0]) + limit + wire)
        with_digests = bytes(bhs) + bytes(ahs) + bytes(4)
        if data:
            with_digests += wire[BHS_LEN + len(ahs) :] + bytes(4)
        seeds.append(bytes([7]) + limit + with_digests)
    return seeds


def seeds(raw_dir, seed_dir):
    store = Seeds(seed_dir)
    per_kind = {}
    # The same sessions with digests, as far as the size cap allows once the others are in.
    with_digests = []
    names = sorted(n for n in os.listdir(raw_dir) if n.endswith(".bin"))
    for name in names:
        with open(os.path.join(raw_dir, name), "rb") as f:
            stream = f.read()
        pdus = split_pdus(stream)
        login, rest = login_phase(pdus)
        if not login:
            continue
        store.add("login", login_seed(login))
        for s in pdu_seeds(pdus, per_kind):
            store.add("pdu_frame", s)
        if is_normal(login):
            store.add("connection", connection_seed(login, rest))
            with_digests.append(connection_seed(login, rest, options=1))
            scsi = scsi_seed(rest)
            if scsi:
                store.add("scsi_dispatch", scsi)
    for seed in sorted(with_digests, key=len):
        store.add("connection", seed)
    for target in ("pdu_frame", "login", "scsi_dispatch", "connection"):
        d = os.path.join(seed_dir, target)
        count = len(os.listdir(d)) if os.path.isdir(d) else 0
        print("%-14s %3d seeds" % (target, count))
    print("total %d bytes" % store.total)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "proxy":
        proxy(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "seeds":
        seeds(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
