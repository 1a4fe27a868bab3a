#!/usr/bin/env bash
# Bad requests through a real NBD client get the right errno, change
# nothing, and crash nothing: read and write past the end, write to a
# read-only volume, an oversized request, an unknown volume, an unreachable
# gateway. libnbd's client-side checks are turned off (strict mode 0) so the
# requests really reach nbdkit and dst.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo cmp
$PYTHON -c 'import nbd' 2>/dev/null || fail "python3-libnbd is missing"

start_exporter e1 16M
start_exporter e2 16M
cat >"$tmp/gateway.yaml" <<YAML
volumes:
  - name: rw
    replicas: [{address: "unix:$tmp/e1.sock"}]
  - name: ro
    read_only: true
    replicas: [{address: "unix:$tmp/e2.sock"}]
YAML
start_gateway
start_nbdkit rw
cp "$tmp/e1.img" "$tmp/e1.before"

# expect_errno SOCKET OP ERRNO: run one request, which must fail with ERRNO.
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "read-write volume checks failed"
import errno, sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_unix(sys.argv[1])
size = h.get_size()

def expect(name, err, fn):
    try:
        fn()
    except nbd.Error as e:
        # libnbd gives the errno's name ("EINVAL").
        if e.errno != errno.errorcode[err]:
            sys.exit(f"{name}: errno {e.errno} ({e.string}), expected {errno.errorcode[err]}")
        print(f"{name}: {errno.errorcode[err]} as expected")
        return
    sys.exit(f"{name}: succeeded, expected {errno.errorcode[err]}")

expect("read past the end", errno.EINVAL, lambda: h.pread(512, size))
expect("read across the end", errno.EINVAL, lambda: h.pread(1024, size - 512))
expect("write past the end", errno.ENOSPC, lambda: h.pwrite(b"x" * 512, size))
expect("oversized read", errno.EINVAL, lambda: h.pread(8 << 20, 0))
expect("oversized write", errno.EINVAL, lambda: h.pwrite(b"y" * (8 << 20), 0))
expect("misaligned write", errno.EINVAL, lambda: h.pwrite(b"z" * 100, 1))
# The connection still works afterwards.
h.pwrite(b"k" * 512, 0)
assert h.pread(512, 0) == b"k" * 512
h.shutdown()
PY
cmp -n 512 "$tmp/e1.img" <(head -c 512 /dev/zero | tr '\0' k) ||
  fail "the good write after the bad ones is missing"
cmp -i 512 "$tmp/e1.img" "$tmp/e1.before" || fail "a refused request changed data"

# A read-only volume: nbdkit advertises it, and a write that is sent anyway
# is refused (EPERM on the wire).
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
rm -f "$tmp/nbd.sock"
start_nbdkit ro
nbdinfo "$uri" | grep -q "is_read_only: true" || fail "read-only volume not advertised read-only"
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "read-only volume checks failed"
import errno, sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_unix(sys.argv[1])
for name, fn in [("write", lambda: h.pwrite(b"x" * 512, 0)),
                 ("trim", lambda: h.trim(512, 0)),
                 ("zero", lambda: h.zero(512, 0))]:
    try:
        fn()
        sys.exit(f"{name} on a read-only volume succeeded")
    except nbd.Error as e:
        if e.errno not in ("EPERM", "EROFS"):
            sys.exit(f"{name}: errno {e.errno}, expected EPERM/EROFS")
        print(f"read-only {name}: refused")
h.pread(512, 0)
h.shutdown()
PY
cmp "$tmp/e2.img" <(head -c 16M /dev/zero) || fail "the read-only volume changed"

# An unknown volume: the client's connection fails; nbdkit says why.
nbdkit -U "$tmp/bad.sock" "$DST_BIN/nbdkit-dst-plugin.so" \
  gateway="unix:$tmp/gateway.sock" volume=nope --run 'nbdinfo "$uri"' \
  >"$tmp/unknown.out" 2>&1 && fail "an unknown volume was served"
grep -q "no volume named 'nope'" "$tmp/unknown.out" ||
  { cat "$tmp/unknown.out"; fail "no clear message for an unknown volume"; }

# An unreachable gateway: the same, with the address in the message.
nbdkit -U "$tmp/bad2.sock" "$DST_BIN/nbdkit-dst-plugin.so" \
  gateway="unix:$tmp/nowhere.sock" volume=rw --run 'nbdinfo "$uri"' \
  >"$tmp/unreachable.out" 2>&1 && fail "an unreachable gateway was served"
grep -q "cannot open volume 'rw' on gateway unix:$tmp/nowhere.sock" "$tmp/unreachable.out" ||
  { cat "$tmp/unreachable.out"; fail "no clear message for an unreachable gateway"; }

# Nothing crashed.
for pid in "${pids[@]}"; do kill -0 "$pid" || fail "process $pid died"; done
echo PASS
