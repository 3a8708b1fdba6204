#!/bin/sh
# End-to-end: start xenopsd-c on the simulator, drive it only through
# xenopsctl over its socket, and check what a user would see: a VM with
# disks starts in legacy and in split mode, a bad request gets an error
# and leaves the daemon serving, and DEBUG.shutdown stops it.
set -u
B=${top_builddir:-.}
work=$(mktemp -d /tmp/xenops-smoke.XXXXXX)
pid=
fail() { echo "FAIL: $*"; [ -f "$work/log" ] && tail -n 30 "$work/log"; exit 1; }
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

SR=5a3e0c3e-0000-4000-8000-000000000003
VM=9c0f7c55-1111-2222-3333-444455556666
SOCK=$work/run/xenopsd
ctl() { "$B/xenopsctl" --socket "$SOCK" "$@"; }

start() {
    "$B/xenopsd-c" --sockets-path "$work/run" --database-path "$work/db" \
        --xenopsd-vbd-plug-unplug-legacy "$1" --sim-srs "$SR:5.0:5:1" \
        --sim-memory-cap-mib 1 2>>"$work/log" &
    pid=$!
    i=0
    while [ ! -S "$SOCK" ]; do
        i=$((i + 1)); [ $i -gt 200 ] && fail "daemon did not start"
        sleep 0.05
    done
}
stop() {
    ctl call DEBUG.shutdown '{"debug_info":"t","unit":null}' >/dev/null \
        || fail "DEBUG.shutdown"
    wait "$pid" || fail "daemon exit status"
    pid=
    [ -S "$SOCK" ] && fail "socket left behind"
    return 0
}

printf '{"id":"%s","name":"smoke","memory_static_max":1048576,"vcpus":1,"ty":["PV",{}]}' "$VM" >"$work/vm.json"
printf '{"id":["%s","xvda"],"backend":["VDI","%s/a"]}' "$VM" "$SR" >"$work/a.json"
printf '{"id":["%s","xvdb"],"mode":"ReadOnly","backend":["Local","/dev/null"]}' "$VM" >"$work/b.json"

start true
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode is not 0600"
ctl vm add "$work/vm.json" >/dev/null || fail "vm add"
ctl vbd add "$work/a.json" >/dev/null || fail "vbd add a"
ctl vbd add "$work/b.json" >/dev/null || fail "vbd add b"
ctl vm start "$VM" >"$work/out" || fail "vm start (legacy)"
grep -q "VBD_plug xvda" "$work/out" || fail "legacy start did not run VBD_plug"
ctl vm list | grep "$VM" | grep -q Running || fail "VM not Running"

# Bad input: an error exit (1), and the daemon still answers.
ctl vm stat ../etc/passwd >/dev/null 2>&1; [ $? -eq 1 ] || fail "bad id accepted"
ctl call VM.nope '{}' >/dev/null 2>&1; [ $? -eq 1 ] || fail "unknown method accepted"
ctl vm start "$VM" >/dev/null 2>&1; [ $? -eq 1 ] || fail "second start accepted"
ctl vm list | grep -q Running || fail "daemon stopped answering"

ctl vm reboot "$VM" --timeout x >/dev/null 2>&1; [ $? -eq 2 ] || fail "a bad --timeout was not a usage error"
ctl vm reboot "$VM" --timeout 5 >"$work/out" || fail "vm reboot --timeout"
grep -q "VM_shutdown_domain Reboot 5" "$work/out" || fail "reboot --timeout did not ask the guest first"
ctl vm shutdown "$VM" >"$work/out" || fail "vm shutdown"
grep -q "VM_shutdown_domain" "$work/out" && fail "a hard shutdown asked the guest"
stop

# Split mode, same database: the VM and its disks persist across restart.
start false
ctl vm start "$VM" >"$work/out" || fail "vm start (split)"
grep -q "VBD_attach xvda" "$work/out" || fail "split start did not attach"
grep -q "VBD_activate xvda" "$work/out" || fail "split start did not activate"
ctl vbd unplug "$VM" xvda >"$work/out" || fail "vbd unplug"
grep -q "VBD_detach xvda" "$work/out" || fail "split unplug did not detach"
ctl vbd plug "$VM" xvda >/dev/null || fail "vbd plug"
ctl vm shutdown "$VM" >/dev/null || fail "vm shutdown (split)"
ctl vm list | grep "$VM" | grep -q Halted || fail "VM not Halted"
ctl vm remove "$VM" >/dev/null || fail "vm remove"
stop
# backend = xenlight where Xen is not running: a clear error, no socket.
if "$B/xenopsd-c" --help | grep -q 'simulator, xenlight' && [ ! -e /proc/xen/capabilities ]; then
    "$B/xenopsd-c" --backend xenlight --sockets-path "$work/xl" \
        --database-path "$work/xl/db" >"$work/xl.out" 2>&1 </dev/null
    [ $? -ne 0 ] || fail "xenlight backend started without Xen"
    grep -q "cannot connect to Xen" "$work/xl.out" || fail "no clear error for xenlight without Xen"
    [ ! -S "$work/xl/xenopsd" ] || fail "xenlight without Xen left a socket"
fi
echo "1 passed, 0 failed"
