# shellcheck shell=bash disable=SC2154  # the caller's variables, below
# Host set-up shared by the two-host migration tests (tests/migrate_netns.sh,
# tests/migrate_faults.sh). Sourced, not run; defines functions only.
#
# The caller sets S and B (the source and build trees: top_srcdir,
# top_builddir), then calls migrate_hosts_init, which sets:
#   NETNS    scripts/netns-hosts
#   PFX      the hosts' namespace prefix ($PFX-a, $PFX-b)
#   work     the test's temporary directory (host h keeps $work/h/,
#            $work/h.log and its driver log $work/sm-h.log)
#   ADDR     associative array: host -> its migration address
#   PORT     the migration port
# and, for migrate_hosts_vm_files, VM and SR (the VM's and its SR's uuid).
#
# migrate_hosts_init TAG NAME
#     Exit 77 (saying why) without root, losetup, python3 or network
#     namespaces; else set the variables above: PFX is TAG (2 characters)
#     and a number, work a new /tmp/xenops-NAME.XXXXXX. Creates no hosts:
#     the caller sets its cleanup trap first, then runs "$NETNS" up "$PFX".
# migrate_hosts_logs LINES
#     Print the last LINES lines of each host's daemon log.
# migrate_hosts_detach_loops
#     Detach the loop devices a failure left bound to volumes under $work.
# migrate_hosts_down
#     migrate_hosts_detach_loops, and remove the hosts' namespaces.
# migrate_hosts_storage NDISK
#     The migration token ($work/token) and NDISK 4 MiB volumes
#     ($work/vol/diskN), hard-linked into each host's own SR directory
#     ($work/sr-a/, $work/sr-b/; see migrate_netns.sh for why).
# migrate_hosts_vm_files NAME MEMORY NDISK
#     $work/vm.json (a PV VM, 1 vCPU, MEMORY bytes) and $work/vbd0.json ..
#     vbdNDISK-1.json (xvda, xvdb, ... on $SR/diskN).
# migrate_hosts_daemon HOST DB LEGACY [VAR=value ...] [-- FLAG ...]
#     Start xenopsd-c in the background in host HOST's namespace ($! is
#     its pid): its database $work/HOST/db-DB, VBD plug legacy mode LEGACY,
#     the SMAPIv3 sample plugin with a 300 ms attach and 10 ms activate
#     (plus the VAR=value words in its environment), the migration listener
#     on ${ADDR[HOST]}:$PORT, then the FLAGs; stderr to $work/HOST.log.

migrate_hosts_init() {  # tag name
    NETNS=$S/scripts/netns-hosts
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: needs root (network namespaces, loop devices)"; exit 77
    fi
    if ! command -v losetup >/dev/null; then
        echo "SKIP: losetup is not installed (loop+file datapath)"; exit 77
    fi
    if ! command -v python3 >/dev/null; then
        echo "SKIP: python3 is not installed (SMAPIv3 sample plugin)"; exit 77
    fi
    local why
    if ! why=$("$NETNS" check 2>&1); then
        echo "SKIP: $why"; exit 77
    fi
    # At most 6 characters: `netns-hosts exec` checks its host name
    # (PREFIX-a) against the 8-character limit of a prefix.
    PFX=$1$(($$ % 10000))
    work=$(mktemp -d "/tmp/xenops-$2.XXXXXX")
    declare -gA ADDR=([a]=10.77.0.1 [b]=10.77.0.2)
    PORT=8089
}

migrate_hosts_logs() {  # lines
    local h
    for h in a b; do
        [ -f "$work/$h.log" ] && { echo "--- host $h log"; tail -n "$1" "$work/$h.log"; }
    done
}

migrate_hosts_detach_loops() {
    losetup -a 2>/dev/null | grep -F "$work/" | cut -d: -f1 |
        while read -r dev; do losetup -d "$dev" 2>/dev/null; done
}

migrate_hosts_down() {
    migrate_hosts_detach_loops
    "$NETNS" down "$PFX" 2>/dev/null
}

migrate_hosts_storage() {  # ndisk
    local i
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
    mkdir -p "$work/vol" "$work/sr-a" "$work/sr-b"
    for i in $(seq 0 $(($1 - 1))); do
        truncate -s 4M "$work/vol/disk$i"
        ln "$work/vol/disk$i" "$work/sr-a/disk$i"
        ln "$work/vol/disk$i" "$work/sr-b/disk$i"
    done
}

migrate_hosts_vm_files() {  # name memory ndisk
    local i dev
    printf '{"id":"%s","name":"%s","memory_static_max":%d,"vcpus":1,"ty":["PV",{}]}' \
        "$VM" "$1" "$2" >"$work/vm.json"
    for i in $(seq 0 $(($3 - 1))); do
        dev=xvd$(printf "\\$(printf %03o $((97 + i)))")
        printf '{"id":["%s","%s"],"position":["Xen",%d,0],"mode":"ReadWrite","backend":["VDI","%s/disk%d"]}' \
            "$VM" "$dev" "$i" "$SR" "$i" >"$work/vbd$i.json"
    done
}

migrate_hosts_daemon() {  # host db legacy [VAR=value...] [-- flag...]
    local h=$1 db=$2 legacy=$3 envs=()
    shift 3
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    mkdir -p "$work/$h"
    "$NETNS" exec "$PFX-$h" env XO_SM_LOG="$work/sm-$h.log" \
        XO_SM_LATENCY_MS_ATTACH=300 XO_SM_LATENCY_MS_ACTIVATE=10 \
        "${envs[@]}" \
        "$B/xenopsd-c" --sockets-path "$work/$h/run" \
        --database-path "$work/$h/db-$db" \
        --xenopsd-vbd-plug-unplug-legacy "$legacy" \
        --storage-script-root "$S/scripts/sm/v3" \
        --migration-listen "${ADDR[$h]}:$PORT" \
        --migration-token-file "$work/token" "$@" 2>>"$work/$h.log" &
}
