# Installs the Debian 12 packages dst needs (sourced by up.sh and test.sh).
# Only missing packages are installed; apt-get update runs only then.
# Usage: install_packages build|run|test
# (nbdfuse is in libnbd-bin on Debian 12: no package of its own to ask for,
# or every run would think it missing and run apt-get.)

BUILD_PACKAGES=(build-essential cmake pkg-config libgrpc++-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler libabsl-dev libssl-dev prometheus-cpp-dev
  nbdkit-plugin-dev libgtest-dev libgmock-dev libyaml-cpp-dev libisal-dev
  golang-etcd-server-dev ccache)
RUN_PACKAGES=(nbdkit libnbd-bin)
TEST_PACKAGES=(nbdkit libnbd-bin fuse3 python3-libnbd fio qemu-utils
  e2fsprogs util-linux curl bazel-bootstrap clang-tidy clang-format clang
  libclang-rt-14-dev nftables iproute2 prometheus python3-grpcio python3-yaml
  openssl systemd
  podman docker-compose debootstrap runc netavark aardvark-dns iptables
  qemu-system-x86 busybox-static nbd-client cpio kmod file nodejs valgrind
  linux-perf etcd-server)

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      echo "$pkg"
  done
}

install_packages() {
  local wanted=("${BUILD_PACKAGES[@]}")
  case "$1" in
    run) wanted+=("${RUN_PACKAGES[@]}") ;;
    test) wanted+=("${TEST_PACKAGES[@]}") ;;
  esac
  local missing
  missing=$(missing_packages "${wanted[@]}")
  [ -z "$missing" ] && return 0
  echo "dst: installing missing packages:" $missing
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
}

# ccache hashes the paths under the tree relative to it, and not the
# working directory, so that a clone elsewhere (CI's fresh one) hits what
# another clone compiled.
export CCACHE_BASEDIR="$DST_ROOT" CCACHE_NOHASHDIR=true

# build_dst DIR [CMAKE ARGS...]: configure and build into DIR, compiling
# through ccache (its cache, ~/.cache/ccache, survives between runs on one
# machine: a rebuild compiles only what changed).
build_dst() {
  local dir=$1
  shift
  local launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S "$DST_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
