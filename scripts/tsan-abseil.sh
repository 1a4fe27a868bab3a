#!/usr/bin/env bash
# Builds Abseil with ThreadSanitizer, from Debian's own source package of
# the installed version, into DIR/lib (shared libraries with Debian's
# sonames), for the TSan test pass: run with LD_LIBRARY_PATH=DIR/lib, they
# take the place of Debian's, so TSan sees every absl::Mutex, dst's and
# gRPC's (Debian's Abseil is not built for TSan, and a lock TSan cannot see
# makes every access it protects look like a race).
#
#   scripts/tsan-abseil.sh DIR
#
# Needs the deb-src entry for Debian's mirror (added here if missing) and
# dpkg-dev; takes about a minute on 2 cores; reused while DIR/stamp names the
# installed version.
set -euo pipefail
out=${1:?usage: tsan-abseil.sh DIR}
version=$(dpkg-query -W -f='${Version}' libabsl20220623)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$version" ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! apt-get source --print-uris "abseil=$version" >/dev/null 2>&1; then
  echo "tsan-abseil: adding the deb-src entry for Debian's mirror"
  $sudo tee /etc/apt/sources.list.d/dst-debian-src.sources >/dev/null <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  $sudo apt-get update -qq
fi
rm -rf "$out"
mkdir -p "$out/src"
(cd "$out/src" && apt-get source -qq "abseil=$version" >"$out/source.log" 2>&1) || {
  cat "$out/source.log" >&2
  echo "tsan-abseil: apt-get source abseil=$version failed" >&2
  exit 1
}
src=$(find "$out/src" -mindepth 1 -maxdepth 1 -type d -name 'abseil-*' | head -1)
# Debian's configuration (debian/rules): C++17, shared libraries.
cmake -S "$src" -B "$out/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF \
  -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  >"$out/configure.log" 2>&1
cmake --build "$out/build" -j"$(nproc)" >"$out/build.log" 2>&1 || {
  tail -30 "$out/build.log" >&2
  exit 1
}
mkdir -p "$out/lib"
find "$out/build" -name 'libabsl_*.so.20220623' -exec cp -L {} "$out/lib/" \;
built=$(find "$out/lib" -name 'libabsl_*.so.20220623' | wc -l)
installed=$(find /usr/lib/x86_64-linux-gnu -maxdepth 1 -name 'libabsl_*.so.20220623' | wc -l)
if [ "$built" -ne "$installed" ]; then
  echo "tsan-abseil: built $built libraries, Debian has $installed" >&2
  exit 1
fi
rm -rf "$out/src" "$out/build"
echo "$version" >"$out/stamp"
echo "tsan-abseil: $built Abseil libraries built with TSan in $out/lib"
