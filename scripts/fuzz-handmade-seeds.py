#!/usr/bin/env python3
"""Writes three hand-made seeds of the `connection` fuzz target into DIR (fuzz/seeds/connection);
the input format is described at the top of fuzz/fuzz_targets/connection.rs.

Usage: scripts/fuzz-handmade-seeds.py fuzz/seeds/connection
"""
import struct
import sys

# Operations of the connection target.
WHOLE_PDU = bytes([0])        # op 0: one PDU, received in one piece
COMPLETE_ALL = bytes([0x0D])  # op & 7 == 5, op > 5: every pending backing-store request completes
DRAIN = bytes([7])            # the reactor's send completes


def advance(tenths: int) -> bytes:
    """op 6: the clock advances (`tenths` of a second) and the connection's timer runs."""
    return bytes([6, tenths])


def command(itt: int, cmd_sn: int, cdb: bytes, edtl: int, data: bytes = b"",
            write: bool = False, read: bool = False, lun: int = 0) -> bytes:
    """A SCSI Command PDU (RFC 7143 §11.3) with F=1, simple attribute, `data` as immediate data."""
    bhs = bytearray(48)
    bhs[0] = 0x01
    bhs[1] = 0x80 | (0x20 if write else 0) | (0x40 if read else 0) | 1
    bhs[5:8] = len(data).to_bytes(3, "big")
    bhs[8:10] = lun.to_bytes(2, "big")
    struct.pack_into(">III", bhs, 16, itt, edtl, cmd_sn)
    bhs[32:32 + len(cdb)] = cdb
    return WHOLE_PDU + bytes(bhs) + data + b"\0" * (-len(data) % 4)


def logout(itt: int, cmd_sn: int) -> bytes:
    """An immediate Logout Request, reason 0 (close the session; RFC 7143 §11.14)."""
    bhs = bytearray(48)
    bhs[0] = 0x46
    bhs[1] = 0x80
    struct.pack_into(">I", bhs, 16, itt)
    struct.pack_into(">I", bhs, 24, cmd_sn)
    return WHOLE_PDU + bytes(bhs)


def rw10(opcode: int, lba: int, blocks: int) -> bytes:
    return bytes([opcode, 0]) + lba.to_bytes(4, "big") + bytes([0]) + blocks.to_bytes(2, "big") + bytes([0])


def seed(path: str, options: int, cmd_sn: int, ops: list) -> None:
    with open(path, "wb") as f:
        f.write(bytes([options]) + struct.pack(">I", cmd_sn) + b"".join(ops))


def main(out: str) -> None:
    tur = bytes(6)
    # SANITIZE OVERWRITE with IMMED, one pass of a 4-byte pattern, on unit 0 with its journal
    # (option bit 4): nothing reaches the medium and no GOOD goes out until the clock advances
    # and the note is written. The first TEST UNIT READY takes the power-on unit attention.
    sanitize = bytes([0x48, 0x81, 0, 0, 0, 0, 0, 0, 8, 0])
    pattern = bytes([0x01, 0, 0, 4]) + b"WIPE"
    seed(f"{out}/sanitize-waits-for-its-note", 0x10, 1, [
        command(1, 1, tur, 0), DRAIN,
        command(2, 2, sanitize, len(pattern), pattern, write=True),
        DRAIN, COMPLETE_ALL, DRAIN, advance(1), DRAIN, COMPLETE_ALL, DRAIN,
        command(3, 3, tur, 0), DRAIN, advance(1), COMPLETE_ALL, advance(1), DRAIN,
        command(4, 4, tur, 0), COMPLETE_ALL, DRAIN,
    ])
    # The same SANITIZE, then the initiator logs out while it runs: the operation outlives its
    # nexus (detached) and runs to its end after the input.
    seed(f"{out}/sanitize-outlives-its-connection", 0x10, 1, [
        command(1, 1, tur, 0), DRAIN,
        command(2, 2, sanitize, len(pattern), pattern, write=True),
        DRAIN, advance(1), DRAIN,
        logout(3, 3), DRAIN,
    ])
    # A 32 KiB write with immediate data, after which the next header is received alone; a
    # 4 KiB write whose data then lands in place; a read of both.
    large = bytes((i * 7) & 0xFF for i in range(32768))
    small = bytes((i * 13 + 1) & 0xFF for i in range(4096))
    seed(f"{out}/large-writes-header-alone", 0x00, 1, [
        command(1, 1, rw10(0x2A, 0, 64), len(large), large, write=True),
        command(2, 2, rw10(0x2A, 64, 8), len(small), small, write=True),
        COMPLETE_ALL, DRAIN,
        command(3, 3, rw10(0x28, 0, 72), 72 * 512, read=True), COMPLETE_ALL, DRAIN,
    ])


if __name__ == "__main__":
    main(sys.argv[1])
