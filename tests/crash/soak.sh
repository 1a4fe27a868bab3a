#!/usr/bin/env bash
# Runs dst's seeded crash simulation (tests/crash/crash_sim.h) for SECONDS
# seconds, one worker per core, each on its own series of seeds starting
# from a random one (or $DST_CRASH_FIRST_SEED). Every failure prints its
# seed, what was violated and the steps before it, and how to replay it:
#   BUILD_DIR/bin/crash_sim --seed=N --verbose
# The last line is "seeds=N failures=F"; the exit status is 1 on a failure.
#
# Usage: tests/crash/soak.sh SECONDS   (build folder: $BUILD_DIR, default
# build, relative to the repository)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:?usage: tests/crash/soak.sh SECONDS}
case "$seconds" in
  '' | *[!0-9]*) echo "soak.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
build=${BUILD_DIR:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
sim="$build/bin/crash_sim"
if [ ! -x "$sim" ]; then
  echo "soak.sh: $sim is missing: build first (cmake --build $build --target crash_sim)" >&2
  exit 2
fi
workers=$(nproc)
first=${DST_CRASH_FIRST_SEED:-$(( (RANDOM << 15 | RANDOM) * 1000 + 1 ))}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "soak: $workers worker(s) for ${seconds}s from seed $first"
pids=()
for ((w = 0; w < workers; w++)); do
  "$sim" --first=$((first + w * 100000000)) --seconds="$seconds" \
    >"$out/$w.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
seeds=0 failures=0
for ((w = 0; w < workers; w++)); do
  grep -v '^seeds=' "$out/$w.log" | grep -v '^steps=' || true
  line=$(grep '^seeds=' "$out/$w.log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "soak: worker $w ended without a summary (a crash of the engine?)"
    failures=$((failures + 1))
    continue
  fi
  n=${line#seeds=}; n=${n%% *}
  f=${line##*failures=}
  seeds=$((seeds + n)); failures=$((failures + f))
done
[ "$failures" -eq 0 ] || status=1
echo "seeds=$seeds failures=$failures"
exit $status
