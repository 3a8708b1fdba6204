#!/bin/sh
# End-to-end storage: the real daemon with the sample drivers of
# scripts/sm/ (SMAPIv1 XoFileSR, SMAPIv3 xo-file volumes on loop devices),
# driven through xenopsctl. A VM with one v1 and one v3 disk starts and
# shuts down in legacy and in split mode, and the drivers' call logs
# (XO_SM_LOG) must show the exact calls and arguments. Then: a failed
# attach or activate of the second disk, a hung attach (killed at
# sm-timeout-ms), garbage from activate, a localhost migration (two
# datapaths on one VDI), and a daemon killed with -9 while its VM runs.
# After each, nothing may stay attached: driver state files, loop devices,
# the daemon's datapath table.
#
# The knobs of the drivers act per VDI name, so one daemon environment
# serves every scenario: each fault has its own volume (a plain file named
# for it; the two main disks are made by the drivers' create commands).
set -u
B=${top_builddir:-.}
SMS=${top_srcdir:-.}/scripts/sm

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root: the SMAPIv3 sample datapath" \
    "binds volumes to loop devices with losetup"
command -v python3 >/dev/null || skip "python3 (the sample drivers) is missing"
command -v losetup >/dev/null || skip "losetup is missing"
losetup -f >/dev/null 2>&1 || skip "no free loop device (losetup -f failed)"

work=$(mktemp -d /tmp/xenops-storage.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    for f in "$work"/sr3/*; do
        for l in $(losetup -j "$f" 2>/dev/null | cut -d: -f1); do
            losetup -d "$l"
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$work/log" ] && tail -n 30 "$work/log"
    exit 1
}

SOCK=$work/run/xenopsd
SR1=5a3e0c3e-0000-4000-8000-0000000000a1
SR3=5a3e0c3e-0000-4000-8000-0000000000a3
VM=9c0f7c55-1111-2222-3333-4444555500a1   # the v1 + v3 VM
VX=9c0f7c55-1111-2222-3333-4444555500a2   # the VM of the fault scenarios
ctl() { "$B/xenopsctl" --socket "$SOCK" "$@"; }
mkdir -p "$work/sr1" "$work/sr3"

# ---- helpers -------------------------------------------------------------

# One line per driver call of a log (discovery calls left out):
#   v1: XoFileSR <command> <location> sr=<uuid> args=<args>
#   v3: <plugin> <command> <uri or key> domain=<domain> | sr=<sr>
cat >"$work/calls.py" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    a, c = j["args"], j["command"]
    if c in ("sr_get_driver_info", "Plugin.Query", "SR.attach"):
        continue
    if "vdi_location" in a:
        print(j["driver"], c, a["vdi_location"], "sr=" + a["sr_uuid"],
              "args=" + json.dumps(a["args"]))
    elif "uri" in a:
        print(j["driver"], c, a["uri"], "domain=" + a["domain"])
    else:
        print(j["driver"], c, a.get("key"), "sr=" + a.get("sr", ""))
PY
calls() { python3 "$work/calls.py" "$work/sm.log" | grep -E "[ /]$1 "; }
# The calls for VDI $1 must be exactly stdin.
expect_calls() {
    cat >"$work/want"
    calls "$1" >"$work/got"
    diff -u "$work/want" "$work/got" >"$work/diff" ||
        fail "$2: calls for $1:
$(cat "$work/diff")"
}

# A volume made by the driver's own create command; prints its name.
cat >"$work/mkvol.py" <<'PY'
import json, subprocess, sys, xmlrpc.client
kind, root, sr_dir = sys.argv[1:4]
if kind == "v1":
    call = {"command": "vdi_create", "args": ["1048576"],
            "device_config": {"path": sr_dir}, "sr_uuid": "setup"}
    out = subprocess.run([root + "/v1/XoFileSR",
                          xmlrpc.client.dumps((call,), "vdi_create")],
                         stdout=subprocess.PIPE, check=True).stdout
    print(xmlrpc.client.loads(out)[0][0]["location"])
else:
    arg = {"dbg": "setup", "sr": "file://" + sr_dir, "name": "t",
           "description": "", "size": 1048576}
    out = subprocess.run(
        [root + "/v3/volume/org.xen.xapi.storage.xo-file/Volume.create",
         "--json"], input=json.dumps(arg).encode(), stdout=subprocess.PIPE,
        check=True).stdout
    print(json.loads(out)["key"])
PY
mkvol() {
    XO_SM_LOG=$work/setup.log python3 "$work/mkvol.py" "$1" "$SMS" "$work/sr$2"
}

D1=$(mkvol v1 1) && D3=$(mkvol v3 3) || fail "creating volumes"
FATT=fail-attach FACT=fail-activate HANG=hang-attach GARB1=garbage-v1
GARB3=garbage-v3 DX=first-disk
for v in "$FATT" "$FACT" "$HANG" "$GARB3"; do
    truncate -s 1M "$work/sr3/$v"
done
for v in "$GARB1" "$DX"; do truncate -s 1M "$work/sr1/$v"; done
export XO_SM_LOG="$work/sm.log"
export XO_SM_FAIL_ATTACH="$FATT" XO_SM_FAIL_ACTIVATE="$FACT"
export XO_SM_HANG_ATTACH="$HANG" XO_SM_GARBAGE_ACTIVATE="$GARB1,$GARB3"

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
# A free port now; if another test takes it first, try another.
start() {
    for _ in 1 2 3 4 5; do
        port=$(python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$B/xenopsd-c" --sockets-path "$work/run" --database-path "$work/db" \
            --xenopsd-vbd-plug-unplug-legacy "$1" --sim-memory-cap-mib 1 \
            --sm-dir "$SMS/v1" --storage-script-root "$SMS/v3" \
            --sm-timeout-ms 2000 --migration-listen "127.0.0.1:$port" \
            --migration-token-file "$work/token" 2>>"$work/log" &
        pid=$!
        i=0
        while [ ! -S "$SOCK" ] && kill -0 "$pid" 2>/dev/null; do
            i=$((i + 1)); [ $i -gt 300 ] && fail "daemon did not start"
            sleep 0.05
        done
        [ -S "$SOCK" ] && return 0
        wait "$pid"; pid=
    done
    fail "daemon did not start"
}
stop() {
    ctl call DEBUG.shutdown '{"debug_info":"t","unit":null}' >/dev/null ||
        fail "DEBUG.shutdown"
    wait "$pid" || fail "daemon exit status"
    pid=
}

domid() { ctl vm list | awk -v vm="$1" '$1 == vm { print $3 }'; }
power() { ctl vm list | awk -v vm="$1" '$1 == vm { print $2 }'; }
datapaths() {
    ctl call get_diagnostics '{"debug_info":"t"}' | python3 -c '
import json, sys
dps = json.loads(json.load(sys.stdin))["datapaths"]
print(json.dumps(dps, sort_keys=True))'
}

# Nothing attached anywhere: the daemon's table (in memory and on disk),
# the v1 driver's state, the v3 datapath state, loop devices.
check_clean() {
    [ "$(datapaths)" = "{}" ] || fail "$1: datapaths left: $(datapaths)"
    grep -q '"datapaths":{}' "$work/db/datapaths.json" ||
        fail "$1: datapaths.json: $(cat "$work/db/datapaths.json")"
    if grep -lE '"(attached|active)"' "$work"/sr1/.xo-state/*.json \
        2>/dev/null; then
        fail "$1: the v1 driver still holds a VDI"
    fi
    ls "$work"/sr3/.xo-datapath/*.json 2>/dev/null &&
        fail "$1: the v3 datapath plugin still holds a volume"
    losetup -a | grep -F "$work/" && fail "$1: loop device left"
    return 0
}

vbd_json() {  # vm dev sr vdi
    printf '{"id":["%s","%s"],"backend":["VDI","%s/%s"]}' "$1" "$2" "$3" "$4" \
        >"$work/vbd.json"
    ctl vbd add "$work/vbd.json" >/dev/null || fail "vbd add $1 $2"
}

# ---- set-up ----------------------------------------------------------------

start true
ctl sr add "$SR1" XoFile "path=$work/sr1" >/dev/null || fail "sr add v1"
ctl sr add "$SR3" xo-file "path=$work/sr3" >/dev/null || fail "sr add v3"
ctl sr list | grep -q '"api":"SMAPIv3"' || fail "v3 SR not listed"
for v in "$VM" "$VX"; do
    printf '{"id":"%s","name":"st","memory_static_max":1048576,"vcpus":1,%s}' \
        "$v" '"ty":["PV",{}]' >"$work/vm.json"
    ctl vm add "$work/vm.json" >/dev/null || fail "vm add"
done
vbd_json "$VM" xvda "$SR1" "$D1"
vbd_json "$VM" xvdb "$SR3" "$D3"
vbd_json "$VX" xvda "$SR1" "$DX"

# ---- start and shutdown: the exact calls, in both modes --------------------

for legacy in true false; do
    [ "$legacy" = false ] && { stop; start false; }
    : >"$work/sm.log"
    ctl vm start "$VM" >"$work/out" || fail "vm start (legacy=$legacy)"
    if [ "$legacy" = true ]; then
        grep -q "VBD_plug xvda" "$work/out" &&
            grep -q "VBD_plug xvdb" "$work/out" ||
            fail "legacy start did not run VBD_plug"
    else
        for a in VBD_attach VBD_activate; do
            grep -q "$a xvda" "$work/out" && grep -q "$a xvdb" "$work/out" ||
                fail "split start did not run $a"
        done
    fi
    dom=$(domid "$VM")
    [ -n "$dom" ] && [ "$dom" != - ] || fail "no domid"
    losetup -j "$work/sr3/$D3" | grep -q /dev/loop ||
        fail "v3 disk not on a loop device"
    ctl vm shutdown "$VM" >/dev/null || fail "vm shutdown (legacy=$legacy)"
    expect_calls "$D1" "legacy=$legacy" <<E
XoFileSR vdi_epoch_begin $D1 sr=$SR1 args=[]
XoFileSR vdi_attach $D1 sr=$SR1 args=["true"]
XoFileSR vdi_activate $D1 sr=$SR1 args=["true"]
XoFileSR vdi_deactivate $D1 sr=$SR1 args=[]
XoFileSR vdi_detach $D1 sr=$SR1 args=[]
XoFileSR vdi_epoch_end $D1 sr=$SR1 args=[]
E
    u="loop+file://$work/sr3/$D3"
    expect_calls "$D3" "legacy=$legacy" <<E
org.xen.xapi.storage.xo-file Volume.stat $D3 sr=file://$work/sr3
loop+file Datapath.attach $u domain=$dom
loop+file Datapath.activate $u domain=$dom
loop+file Datapath.deactivate $u domain=$dom
loop+file Datapath.detach $u domain=$dom
E
    [ "$(power "$VM")" = Halted ] || fail "VM not Halted"
    check_clean "shutdown (legacy=$legacy)"
done

# ---- faults of the second disk: nothing stays attached ----------------------

# fault <label> <vdi of xvdb> <pattern the task error must match>...
fault() {
    label=$1 vdi=$2
    shift 2
    ctl vbd remove "$VX" xvdb >/dev/null 2>&1
    vbd_json "$VX" xvdb "$SR3" "$vdi"
    : >"$work/sm.log"
    ctl vm start "$VX" >"$work/out" 2>&1 && fail "$label: vm start succeeded"
    for p in "$@"; do
        grep -qF -- "$p" "$work/out" || fail "$label: no '$p' in:
$(cat "$work/out")"
    done
    [ "$(power "$VX")" = Halted ] || fail "$label: VM not Halted"
    check_clean "$label"
}
# Split mode (the daemon runs split since the loop above): VBD_attach and
# VBD_activate fail as atoms of their own.
fault "attach failure" "$FATT" Storage_backend_error InjectedFailure \
    XO_SM_FAIL_ATTACH
# If the first disk got attached meanwhile, the rollback detached it.
if calls "$DX" | grep -q vdi_attach; then
    calls "$DX" | grep -q vdi_detach ||
        fail "attach failure: first disk not detached"
fi
fault "activate failure" "$FACT" Storage_backend_error InjectedFailure \
    XO_SM_FAIL_ACTIVATE
calls "$FACT" | grep -q Datapath.detach ||
    fail "activate failure: the disk was not detached"
# Legacy (as are the scenarios below): VBD_plug fails after its own
# attach, which must be undone too.
stop; start true
fault "activate failure (legacy)" "$FACT" Storage_backend_error \
    InjectedFailure XO_SM_FAIL_ACTIVATE
calls "$FACT" | grep -q Datapath.detach ||
    fail "activate failure (legacy): the disk was not detached"

# A hang is killed at sm-timeout-ms; the error names driver, command, VDI.
fault "hung attach" "$HANG" Storage_backend_error SCRIPT_TIMEOUT loop+file \
    Datapath.attach "$HANG"
hung=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if (j["command"] == "Datapath.attach"
            and j["args"]["uri"].endswith(sys.argv[2])):
        print(j["pid"])' "$work/sm.log" "$HANG")
[ -n "$hung" ] || fail "the hung attach was not called"
kill -0 "$hung" 2>/dev/null && fail "the hung driver (pid $hung) was not killed"
# Garbage on stdout, from each kind of driver.
fault "v3 garbage" "$GARB3" Storage_backend_error SCRIPT_FAILED loop+file \
    Datapath.activate "$GARB3"
ctl vbd remove "$VX" xvda >/dev/null || fail "vbd remove"
vbd_json "$VX" xvda "$SR1" "$GARB1"
fault "v1 garbage" "$D3" Storage_backend_error SCRIPT_FAILED XoFileSR \
    vdi_activate "$GARB1"

# ---- localhost migration: two datapaths on one VDI -------------------------

ctl vm start "$VM" >/dev/null || fail "vm start before migration"
src=$(domid "$VM")
: >"$work/sm.log"
ctl migrate "$VM" "http://127.0.0.1:$port/services/xenops" >"$work/out" ||
    fail "localhost migration: $(cat "$work/out")"
dst=$(domid "$VM")
[ "$(power "$VM")" = Running ] && [ "$dst" != "$src" ] ||
    fail "VM not running in a new domain after the migration"
# The destination's datapaths share the attaches; the source's teardown
# of its own datapaths released its activations and detached nothing.
u="loop+file://$work/sr3/$D3"
expect_calls "$D3" "migration" <<E
loop+file Datapath.deactivate $u domain=$src
loop+file Datapath.activate $u domain=$dst
E
calls "$D1" | grep -v epoch_end >"$work/got"
printf '%s\n' "XoFileSR vdi_deactivate $D1 sr=$SR1 args=[]" \
    "XoFileSR vdi_activate $D1 sr=$SR1 args=[\"true\"]" >"$work/want"
diff -u "$work/want" "$work/got" || fail "migration: v1 calls"
dp() {  # dev params sr vdi: one datapath of the destination, as listed
    printf '"vbd/%s/%s": {"active": true, "domain": "%s", "params": "%s", ' \
        "$dst" "$1" "$dst" "$2"
    printf '"rw": true, "sr": "%s", "vdi": "%s"}' "$3" "$4"
}
loop=$(losetup -j "$work/sr3/$D3" | cut -d: -f1)
want="{$(dp xvda "$work/sr1/$D1" "$SR1" "$D1"),"
want="$want $(dp xvdb "$loop" "$SR3" "$D3")}"
[ "$(datapaths)" = "$want" ] || fail "migration: datapaths $(datapaths)"
grep -q "\"active_domain\": \"$dst\"" "$work/sr3/.xo-datapath/$D3.json" ||
    fail "migration: v3 volume not active for the destination"

# ---- kill -9 with the VM running, restart: the table matches the drivers ----

grep -q "\"vbd/$dst/xvdb\"" "$work/db/datapaths.json" ||
    fail "running VM's datapaths not persisted"
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
rm -f "$SOCK"
: >"$work/sm.log"
start false
# The simulator's domains died with the daemon: no VBD needs a datapath,
# so start-up released both through their drivers and dropped the records.
[ "$(power "$VM")" = Halted ] || fail "VM survived the daemon"
expect_calls "$D1" "restart" <<E
XoFileSR vdi_deactivate $D1 sr=$SR1 args=[]
XoFileSR vdi_detach $D1 sr=$SR1 args=[]
E
calls "$D3" | grep Datapath >"$work/got"
printf '%s\n' "loop+file Datapath.deactivate $u domain=$dst" \
    "loop+file Datapath.detach $u domain=$dst" >"$work/want"
diff -u "$work/want" "$work/got" || fail "restart: v3 calls"
check_clean "restart"
stop
echo "1 passed, 0 failed"
