#!/usr/bin/env bash
# Sparse-aware copies (block status): a 2 GiB volume holding 8 MiB of data
# (4 MiB at 0 and 4 MiB at 1 GiB, written through the export; the rest never
# written) copied out with `nbdcopy URI null:` and with `qemu-img convert
# -O qcow2` (onto tmpfs), against
#   baseline  nbdkit's file plugin on a tmpfs file holding the same content;
#   dst-1     dst with one replica (nbdkit + dst plugin -> gateway ->
#             exporter), on tmpfs;
#   dst-2     dst with a two-way mirror, on tmpfs.
# Then the same copies of the volume filled (every byte written), where
# block status has nothing to skip and only its cost shows. Each copy runs
# $runs times (default 5); the median is reported, and dst's ratio to the
# baseline (issue 24's target: at most 2x on the sparse volume).
#
#   bench/sparse.sh [--runs N] [--out DIR]
#
# Results: DIR/sparse-DATE.md (default bench/results/) and on stdout.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
runs=5
out="$DST_ROOT/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench/sparse.sh [--runs N] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
bin=${DST_BIN:-$DST_ROOT/build/bin}
size=2G
exporter_flags=""
nbdkit_flags=(--threads=64)
source "$DST_ROOT/bench/stacks.sh"

# median_seconds COMMAND...: runs COMMAND $runs times; prints the median
# wall time in seconds.
median_seconds() {
  local times=() t0 t1
  for _ in $(seq 1 "$runs"); do
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
    rm -f "$work/copy.qcow2"
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)]}'
}

# fill URI WHAT: writes the sparse content (8 MiB) or every byte (full).
fill() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
chunk = bytes(range(256)) * 4096  # 1 MiB, not zero
if sys.argv[2] == "sparse":
    for base in (0, 1 << 30):
        for i in range(4):
            h.pwrite(chunk, base + i * len(chunk))
else:
    for at in range(0, h.get_size(), len(chunk)):
        h.pwrite(chunk, at)
h.flush()
h.shutdown()
PY
}

configs=(baseline dst-1 dst-2)
declare -A result
for content in sparse full; do
  for config in "${configs[@]}"; do
    start_config "$config" "$config-$content"
    fill "$uri" "$content"
    map=$(nbdinfo --map "$uri" | wc -l)
    result[$content,$config,map]=$map
    result[$content,$config,nbdcopy]=$(median_seconds nbdcopy "$uri" null:)
    result[$content,$config,qemu]=$(median_seconds qemu-img convert -f raw -O qcow2 "$uri" "$work/copy.qcow2")
    echo "$content $config: map $map extents, nbdcopy ${result[$content,$config,nbdcopy]} s, qemu-img ${result[$content,$config,qemu]} s" >&2
  done
done

ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
mkdir -p "$out"
report="$out/sparse-$(date -u +%Y-%m-%dT%H%M%SZ).md"
{
  echo "# Sparse-aware copies: 2 GiB volume, median of $runs runs ($(date -u +%Y-%m-%d), $(nproc) vCPUs)"
  echo
  echo "| content | config | map extents | nbdcopy null: s | x baseline | qemu-img convert qcow2 s | x baseline |"
  echo "|---|---|---|---|---|---|---|"
  for content in sparse full; do
    for config in "${configs[@]}"; do
      echo "| $content | $config | ${result[$content,$config,map]} | ${result[$content,$config,nbdcopy]} | $(ratio "${result[$content,$config,nbdcopy]}" "${result[$content,baseline,nbdcopy]}") | ${result[$content,$config,qemu]} | $(ratio "${result[$content,$config,qemu]}" "${result[$content,baseline,qemu]}") |"
    done
  done
} | tee "$report"
