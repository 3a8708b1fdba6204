# shellcheck shell=bash
# Helpers for the lab tests (sourced). `xenlab check` runs each test with
# XENLAB (the xenlab script), XENLAB_HOSTS (how many hosts are up) and
# XENLAB_RUN (its run directory; $XENLAB_RUN/shared is /shared in every
# dom0). A test prints "RESULT key=value ..." lines for the summary table
# and exits 0 (pass), 1 (fail) or 77 (skip).
set -u

: "${XENLAB:?run the lab tests with xenlab check}"
SHARED=$XENLAB_RUN/shared
GUEST_TIMEOUT=${GUEST_TIMEOUT:-90}
LAB_GUESTS=()

# Every command in a dom0 is bounded: a hung one fails the test, with the
# diagnostics below, instead of hanging the run.
LAB_CMD_TIMEOUT=${LAB_CMD_TIMEOUT:-300}
lab() { if [ "$1" = run ]; then shift; "$XENLAB" run --timeout "$LAB_CMD_TIMEOUT" "$@"; else "$XENLAB" "$@"; fi; }
# lab_sh HOST SCRIPT: SCRIPT run by sh in HOST's dom0.
lab_sh() { local h=$1; shift; "$XENLAB" run --timeout "$LAB_CMD_TIMEOUT" "$h" sh -c "$*"; }

now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# A disk image in the shared directory whose first bytes are SIGNATURE.
make_disk() {
    local name=$1 mib=$2 sig=$3
    truncate -s "${mib}M" "$SHARED/$name"
    printf '%s' "$sig" | dd of="$SHARED/$name" conv=notrunc status=none
}

# guest_config NAME DISK...: a PVH guest (TSC native and no RDTSCP: TCG's
# SVM cannot emulate the intercept) with blkback disks on loop devices, and
# with GUEST_VIF=MAC a netback VIF on xenbr0.
guest_config() {
    local name=$1; shift
    local disks="" i=0 d
    for d in "$@"; do
        local vdev; vdev=xvd$(printf "\\$(printf '%03o' $((97 + i)))")
        disks+="${disks:+, }'format=raw,vdev=$vdev,access=rw,backendtype=phy,target=/shared/$d'"
        i=$((i + 1))
    done
    cat > "$SHARED/$name.cfg" <<EOF
name = "$name"
type = "pvh"
kernel = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd"
extra = "console=hvc0 loglevel=4"
memory = ${GUEST_MIB:-96}
vcpus = 1
tsc_mode = "native"
cpuid = "host,rdtscp=0"
on_crash = "preserve"
disk = [ $disks ]
EOF
    if [ -n "${GUEST_VIF:-}" ]; then
        echo "vif = [ 'bridge=xenbr0,mac=$GUEST_VIF' ]" >> "$SHARED/$name.cfg"
    fi
}

# The guest's console as dom0 logged it: one file per name the domain had
# (a receiving domain is "NAME--incoming" until the migration completes).
console_of() { lab_sh "$1" "cat /var/log/xen/console/guest-$2*.log 2>/dev/null"; }

# wait_console HOST NAME REGEX [SECONDS]: until a console line matches.
wait_console() {
    local host=$1 name=$2 re=$3 limit=${4:-$GUEST_TIMEOUT} start
    start=$(now_ms)
    while [ $(( $(now_ms) - start )) -lt $((limit * 1000)) ]; do
        lab_sh "$host" "cat /var/log/xen/console/guest-$name*.log 2>/dev/null | grep -a -q -E '$re'" \
            && return 0
        sleep 0.5
    done
    echo "no console line matching /$re/ from $name on host $host in ${limit}s" >&2
    return 1
}

# wait_count HOST NAME REGEX N [SECONDS]: until N console lines match.
wait_count() {
    local host=$1 name=$2 re=$3 n=$4 limit=${5:-$GUEST_TIMEOUT} start
    start=$(now_ms)
    while [ $(( $(now_ms) - start )) -lt $((limit * 1000)) ]; do
        [ "$(console_of "$host" "$name" | grep -a -c -E "$re")" -ge "$n" ] && return 0
        sleep 0.5
    done
    echo "fewer than $n console lines matching /$re/ from $name on host $host in ${limit}s" >&2
    return 1
}

# guest_request HOST NAME LINE: type LINE on the guest's console.
guest_request() {
    lab_sh "$1" "printf '%s\n' '$3' > \$(xenstore-read /local/domain/\$(xl domid $2)/console/tty)"
}

# The heartbeat counter the guest printed last on HOST (the highest: a
# host may hold a log per name the domain had, in any order).
last_beat() {
    console_of "$1" "$2" | grep -a '^hb ' | awk '$2 > m { m = $2 } END { print m + 0 }'
}

# downtime_ms LOG...: the largest gap between two consecutive heartbeats in
# the guest's CLOCK_BOOTTIME, over the logs of every host it ran on: the
# time the guest did not run. Prints "GAP_MS COUNTER MONO_GAP_MS". With
# HB_FROM=N only beats from counter N on count (one migration of several).
downtime_ms() {
    cat "$@" | grep -a '^hb ' | sort -n -k2 -u | awk -v from="${HB_FROM:-0}" '
        $2 < from { next }
        prev != "" && $2 == prev + 1 {
            g = $3 - pb; if (g > mb) { mb = g; at = $2; mg = $4 - pm }
        }
        { prev = $2; pb = $3; pm = $4 }
        END { printf "%.1f %d %.1f\n", mb / 1e6, at, mg / 1e6 }'
}

# guest_start HOST NAME: xl create, then wait for the guest's "ready".
guest_start() {
    local host=$1 name=$2
    LAB_GUESTS+=("$host:$name")
    lab_sh "$host" "xl create /shared/$name.cfg" || fail "xl create $name on host $host failed"
    wait_console "$host" "$name" '^ready' || fail "guest $name did not come up"
}

# ---- xenopsd-c in a dom0 (backend xenlight) ----
# The daemon's directory in every dom0: socket, database, log.
XD=/run/lab-daemon
LAB_DAEMONS=()
# The sample storage drivers, where `make install` put them in dom0.
SM_ARGS="--sm-dir /usr/share/xenops-c/sm/v1 --storage-script-root /usr/share/xenops-c/sm/v3"

# daemon_start HOST [--key value]...: start xenopsd-c on the xenlight
# backend (TCG cannot emulate RDTSCP for a PVH guest: the policy hides
# it) and wait until it says it is ready (after start-up reconciliation
# and the settling of interrupted migrations). DAEMON_ENV="VAR=value ..." goes into its
# environment (the sample drivers' XO_SM_* knobs).
daemon_start() {
    local h=$1; shift
    [[ " ${LAB_DAEMONS[*]} " == *" $h "* ]] || LAB_DAEMONS+=("$h")
    lab_sh "$h" "mkdir -p $XD/conf.d; rm -f $XD/xenopsd
        n=\$(grep -c ' ready on ' $XD/log 2>/dev/null)
        setsid env ${DAEMON_ENV:-} xenopsd-c --backend xenlight --xenlight-cpuid host,rdtscp=0 \
            --sockets-path $XD --database-path $XD/db --config-dir $XD/conf.d \
            --loglevel debug $SM_ARGS $* \
            </dev/null >>$XD/log 2>&1 &
        for i in \$(seq 1 300); do
            [ \$(grep -c ' ready on ' $XD/log) -gt \${n:-0} ] && exit 0; sleep 0.1
        done
        tail -n 30 $XD/log; exit 1" || fail "xenopsd-c did not start on host $h"
}

# xctl HOST ARGS...: xenopsctl against HOST's daemon (ARGS are shell words).
xctl() { local h=$1; shift; lab_sh "$h" "xenopsctl --socket $XD/xenopsd $*"; }

# vm_json NAME UUID: a PVH Vm.t booting the lab guest's kernel directly
# (VM_TY=PV for a PV guest).
vm_json() {
    printf '{"id":"%s","name":"%s","memory_static_max":%d,"memory_dynamic_max":%d,"memory_dynamic_min":%d,"vcpus":1,"ty":["'"${VM_TY:-PVH}"'",{"boot":["Direct",{"kernel":"/lab/guest/vmlinuz","cmdline":"console=hvc0 loglevel=4","ramdisk":"/lab/guest/initrd"}]}],"platformdata":{"tsc_mode":"2"}}\n' \
        "$2" "$1" $((${GUEST_MIB:-96} << 20)) $((${GUEST_MIB:-96} << 20)) $((${GUEST_MIB:-96} << 20))
}

# vbd_json UUID DEV SR VOLUME: a Vbd.t on a VDI of the sample plugin.
vbd_json() {
    printf '{"id":["%s","%s"],"backend":["VDI","%s/%s"],"mode":"ReadWrite"}\n' "$1" "$2" "$3" "$4"
}

# Diagnostics on failure: the guest's last 50 console lines (heartbeats
# left out), Xen's last messages, and what xl lists.
fail() {
    echo "FAIL: $*" >&2
    local g d
    for d in "${LAB_DAEMONS[@]}"; do
        echo "---- xenopsd-c log on host $d (last 40 lines)" >&2
        lab_sh "$d" "tail -n 40 $XD/log" >&2
    done
    for g in "${LAB_GUESTS[@]}"; do
        echo "---- console of ${g#*:} on host ${g%%:*} (last 50 lines, heartbeats left out)" >&2
        console_of "${g%%:*}" "${g#*:}" | grep -a -v '^hb ' | tail -n 50 >&2
        echo "---- last heartbeat: $(last_beat "${g%%:*}" "${g#*:}")" >&2
    done
    local h
    for h in $(seq 1 "$XENLAB_HOSTS"); do
        echo "---- host $h: xl list; xl dmesg (last 20 lines)" >&2
        lab_sh "$h" "xl list; xl dmesg | tail -n 20" >&2
    done
    exit 1
}

# Every guest a test started is destroyed when it ends, pass or fail, and
# every daemon stopped.
cleanup_guests() {
    local h
    for h in "${LAB_DAEMONS[@]}"; do
        lab_sh "$h" "pkill -9 -x xenopsd-c; rm -rf $XD" >/dev/null 2>&1
    done
    for h in $(seq 1 "$XENLAB_HOSTS"); do
        lab_sh "$h" 'for d in $(xl list | awk "NR>1 && \$2 != 0 { print \$1 }"); do xl destroy "$d"; done
                     rm -f /var/log/xen/console/guest-*.log' >/dev/null 2>&1
    done
    # xl destroy leaves the blkback nodes the daemon wrote, and the
    # datapaths' loop devices.
    for h in "${LAB_DAEMONS[@]}"; do
        lab_sh "$h" 'xenstore-rm /xenops; xenstore-rm /local/domain/0/backend/vbd; sleep 1; losetup -D' >/dev/null 2>&1
    done
}
trap cleanup_guests EXIT
