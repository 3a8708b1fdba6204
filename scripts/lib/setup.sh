# Shared set-up for scripts/demo and scripts/check (sourced, not run).
# Installs missing build dependencies with apt-get (Debian 12), then
# configures and builds out of tree. Honours:
#   XENOPS_BUILD_DIR  build directory (default <repo>/build)
#   XENOPS_SANITIZE=1 build with -fsanitize=address,undefined

XENOPS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# python3 runs the sample storage drivers (scripts/sm); mount has losetup
# (Debian 12) for their loop-device datapath. libxen-dev: the xenlight
# backend is built (and unit-tested) everywhere, also where Xen cannot run.
XENOPS_DEPS="build-essential autoconf automake libtool autoconf-archive
pkg-config libyajl-dev libcmocka-dev libexpat1-dev libzstd-dev libxen-dev
iproute2 python3 mount"

xenops_install_deps() {
    local missing=()
    for p in $XENOPS_DEPS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    echo "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

xenops_build() {
    local build=${XENOPS_BUILD_DIR:-$XENOPS_TOP/build}
    local extra=()
    if [ "${XENOPS_SANITIZE:-0}" = 1 ]; then
        extra=(CFLAGS="-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
               LDFLAGS="-fsanitize=address,undefined")
    fi
    (cd "$XENOPS_TOP" && { [ -x configure ] || autoreconf -fi >/dev/null; })
    mkdir -p "$build"
    if [ ! -f "$build/Makefile" ]; then
        (cd "$build" && "$XENOPS_TOP/configure" --enable-werror "${extra[@]}" >/dev/null)
    fi
    make -C "$build" -j"$(nproc)" >/dev/null
    XENOPS_BUILD=$build
}
