#!/usr/bin/python3
"""A writer that records what was acknowledged, for test-resize.sh.

resize_writer.py SOCKET LOG STOP
    Writes 64 KiB blocks of the volume at SOCKET, one at a time (each
    write's reply before the next), half of them in its last 16 MiB, and
    appends "OFFSET SEQ" to LOG once a write is acknowledged. Every 16
    writes it connects again, as a new NBD client would, and so writes past
    the old end once the volume grew. Stops when the file STOP exists.
    A failed write fails it (exit 1): across a gateway restart the client
    must see a pause, never an error. (A new connection may be refused
    while no gateway runs: it is tried again, for 30 s.)

resize_writer.py --check SOCKET LOG FROM
    Reads every block of LOG back: it must hold its last acknowledged
    write. Every 64 KiB block at or past FROM that LOG never wrote must
    read as zeroes. Prints what it checked.
"""
import os
import random
import struct
import sys
import time

import nbd

BLOCK = 64 << 10


def content(offset, seq):
    return struct.pack("<QQ", offset, seq) * (BLOCK // 16)


def connect(socket):
    deadline = time.monotonic() + 30
    while True:
        h = nbd.NBD()
        try:
            h.connect_unix(socket)
            return h
        except nbd.Error as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"resize_writer: cannot connect: {e}")
            time.sleep(0.2)


def write(socket, log_path, stop):
    seq = 0
    with open(log_path, "a", buffering=1) as log:
        while not os.path.exists(stop):
            h = connect(socket)
            blocks = h.get_size() // BLOCK
            for _ in range(16):
                if random.random() < 0.5:
                    block = random.randrange(max(0, blocks - 256), blocks)
                else:
                    block = random.randrange(blocks)
                seq += 1
                try:
                    h.pwrite(content(block * BLOCK, seq), block * BLOCK)
                except nbd.Error as e:
                    raise SystemExit(
                        f"resize_writer: write #{seq} at {block * BLOCK}: {e}")
                log.write(f"{block * BLOCK} {seq}\n")
            h.shutdown()
    print(f"resize_writer: {seq} writes acknowledged")


def check(socket, log_path, start):
    last = {}
    with open(log_path) as log:
        for line in log:
            offset, seq = map(int, line.split())
            last[offset] = seq
    h = connect(socket)
    size = h.get_size()
    for offset, seq in sorted(last.items()):
        if h.pread(BLOCK, offset) != content(offset, seq):
            raise SystemExit(
                f"resize_writer: block {offset} lost its write #{seq}")
    zero = bytes(BLOCK)
    untouched = 0
    for offset in range(start - start % BLOCK, size, BLOCK):
        if offset in last:
            continue
        if h.pread(BLOCK, offset) != zero:
            raise SystemExit(
                f"resize_writer: block {offset}, never written, is not zeroes")
        untouched += 1
    h.shutdown()
    past = sum(1 for offset in last if offset >= start)
    print(f"resize_writer: {len(last)} blocks hold their last write "
          f"({past} past {start}); {untouched} blocks never written read as "
          f"zeroes; size {size}")


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        write(sys.argv[1], sys.argv[2], sys.argv[3])
