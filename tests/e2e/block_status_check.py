#!/usr/bin/python3
"""Checks a volume's block status against what reads return.

Usage: block_status_check.py SOCKET [REPLICA_FILE...]

Walks base:allocation over the whole export served on the NBD unix SOCKET.
Every extent reported "zero" must read as zeroes through NBD and in every
REPLICA_FILE (the backing files of the replicas reads may go to); "hole"
must come with "zero" (a dst volume's holes read as zeroes). Prints one
line: the bytes reported data, and those reported zero. Exits 1 with the
first disagreement.
"""
import sys

import nbd

CHUNK = 1 << 20
ZEROES = bytes(CHUNK)


def main():
    sock, files = sys.argv[1], sys.argv[2:]
    h = nbd.NBD()
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_unix(sock)
    if not h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION):
        sys.exit("the export offers no base:allocation")
    size = h.get_size()
    extents = []  # (offset, length, flags)

    def collect(context, offset, entries, err):
        if context != nbd.CONTEXT_BASE_ALLOCATION:
            return 0
        for i in range(0, len(entries), 2):
            extents.append((offset, entries[i], entries[i + 1]))
            offset += entries[i]
        return 0

    offset = 0
    while offset < size:
        before = len(extents)
        h.block_status(min(size - offset, 1 << 31), offset, collect)
        if len(extents) == before:
            sys.exit(f"no extent at {offset}")
        offset = extents[-1][0] + extents[-1][1]
    replicas = [open(f, "rb") for f in files]
    data = zero = 0
    for start, length, flags in extents:
        if flags & nbd.STATE_HOLE and not flags & nbd.STATE_ZERO:
            sys.exit(f"hole without zero at {start}+{length}")
        if not flags & nbd.STATE_ZERO:
            data += length
            continue
        zero += length
        for at in range(start, min(start + length, size), CHUNK):
            n = min(CHUNK, start + length - at, size - at)
            if h.pread(n, at) != ZEROES[:n]:
                sys.exit(f"{start}+{length} is reported zero; the volume "
                         f"reads non-zero at {at}+{n}")
            for f, name in zip(replicas, files):
                f.seek(at)
                if f.read(n) != ZEROES[:n]:
                    sys.exit(f"{start}+{length} is reported zero; replica "
                             f"{name} holds non-zero bytes at {at}+{n}")
    h.shutdown()
    print(f"data {data} zero {zero}")


if __name__ == "__main__":
    main()
