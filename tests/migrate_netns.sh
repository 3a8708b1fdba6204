#!/usr/bin/env bash
# Live migration between two hosts: two network
# namespaces joined by a veth pair (scripts/netns-hosts), one xenopsd-c in
# each with its own socket and database, and a VM with 8 disks on the
# SMAPIv3 sample plugin (scripts/sm, loop+file datapath) whose attach takes
# 300 ms and activate 10 ms (XO_SM_LATENCY_MS_*). In legacy mode and in
# split mode the VM migrates A -> B -> A. After each migration:
#   - the task result says the mode, the VM runs on the destination and
#     nothing is left on the source: no VM (not even a temporary id) and no
#     datapath (no plugin state file, no loop device);
#   - split mode, from the drivers' call logs (XO_SM_LOG, one JSON line per
#     call) and the tasks' timelines: every Datapath.attach on the receiver
#     started, and every receiver VBD_attach ended, before the source paused
#     (paused_at); the source's VBD_deactivate of each disk ended before the
#     receiver's Datapath.activate of it started;
#   - legacy mode: the receiver attached nothing before the pause.
# Split mode then migrates A -> B -> A once more: a host the VM left once
# lets it leave again.
# Skips (77) without root, network namespaces or losetup.
#
# Shared storage: both hosts register the same SR (one uuid) whose volumes
# are the same files, but each host's SR directory is its own (sr-a/ and
# sr-b/, hard links to the volumes in vol/). The sample plugin keeps one
# datapath state per volume in the SR directory and models a single host:
# with one directory for both hosts the source's Datapath.detach after the
# destination activated fails (VDIActive), and the two daemons' domain ids
# (both count from 1) collide in it. Per-host directories are what two
# hosts see of real shared storage: the same data, their own datapaths.
set -u
S=${top_srcdir:-.}
B=${top_builddir:-.}
. "$(dirname "$0")/lib/migrate-hosts.sh"

migrate_hosts_init xm mignetns
pids=()
failed=0
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    migrate_hosts_down
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
die() {
    echo "FAIL: $*"
    migrate_hosts_logs 20
    exit 1
}

"$NETNS" up "$PFX" >/dev/null || die "cannot create the hosts"
SR=5a3e0c3e-0000-4000-8000-0000000000e5
VM=9c0f7c55-5a5a-4b4b-8c8c-1234567890ab
NDISK=8
migrate_hosts_storage "$NDISK"

ctl() { local h=$1; shift; "$B/xenopsctl" --socket "$work/$h/run/xenopsd" "$@"; }

start_host() {  # host legacy
    local h=$1 legacy=$2
    migrate_hosts_daemon "$h" "$legacy" "$legacy" -- --loglevel warn \
        --sim-memory-cap-mib 16 --sim-dirty-pages-per-sec 2000
    pids+=($!)
    for _ in $(seq 200); do
        ctl "$h" vm list >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "host $h did not start"
}
stop_hosts() {
    for h in a b; do
        ctl "$h" call DEBUG.shutdown '{"debug_info":"t","unit":null}' \
            >/dev/null 2>&1
    done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    pids=()
}

# The VM and its disks on host a.
migrate_hosts_vm_files netns 16777216 "$NDISK"

# Nothing of the VM on host h: no VM under any id, no datapath.
check_gone() {  # host label
    local h=$1 what=$2 left
    left=$(ctl "$h" vm list | awk 'NR > 1 { print $1 }')
    [ -z "$left" ] || fail "$what: host $h still has VMs: $left"
    left=$(ls "$work/sr-$h/.xo-datapath/" 2>/dev/null | grep -v '^\.lock$')
    [ -z "$left" ] || fail "$what: host $h still has datapaths: $left"
    left=$(losetup -a | grep -F "$work/sr-$h/")
    [ -z "$left" ] || fail "$what: host $h still has loop devices: $left"
}

# Running on exactly host h, with all disks active there.
check_running_on() {  # host label
    local h=$1 what=$2 n
    ctl "$h" vm list | grep -q "^$VM  *Running" ||
        fail "$what: VM is not Running on host $h"
    n=$(grep -l "\"active_domain\": \"" "$work/sr-$h/.xo-datapath/"*.json 2>/dev/null | wc -l)
    [ "$n" -eq "$NDISK" ] || fail "$what: $n of $NDISK disks active on host $h"
}

# One migration from -> to; checks the logs of this migration only.
migrate() {  # from to mode
    local from=$1 to=$2 mode=$3 what="$3 $1->$2" out
    local la lb
    la=$(wc -l <"$work/sm-$from.log" 2>/dev/null || echo 0)
    lb=$(wc -l <"$work/sm-$to.log" 2>/dev/null || echo 0)
    out=$work/result-$mode-$from$to.json
    if ! ctl "$from" --json migrate "$VM" \
        "http://${ADDR[$to]}:$PORT/services/xenops" >"$out"; then
        die "$what: migration failed"
    fi
    ctl "$to" task list >"$work/rtasks.json" || die "$what: task list"
    tail -n +$((la + 1)) "$work/sm-$from.log" >"$work/src.log"
    tail -n +$((lb + 1)) "$work/sm-$to.log" >"$work/dst.log"
    python3 - "$mode" "$out" "$work/rtasks.json" "$work/src.log" \
        "$work/dst.log" "$NDISK" <<'PY' || fail "$what: log checks"
import json, sys
mode, out, rtasks, src, dst, ndisk = sys.argv[1:7]
ndisk = int(ndisk)
t = json.load(open(out))
r = t["state"][1]["result"]
ok = True
def bad(msg):
    global ok
    ok = False
    print("  " + msg)
# Task.stat showed the memory copy's progress (kept after completion).
for k in ("migration_bytes_remaining", "migration_dirty_pages_per_s",
          "migration_round", "migration_bytes_sent"):
    if k not in t["debug_info"]:
        bad(f"Task.stat debug_info lacks {k}")
def timeline(task):
    tl = json.loads(task["debug_info"]["timeline"])
    return [(n, task["ctime"] + s, task["ctime"] + s + d, st)
            for n, s, d, st in tl]
def calls(path):
    out = []
    for line in open(path):
        c = json.loads(line)
        key = c["args"].get("uri", "").rsplit("/", 1)[-1]
        out.append((c["command"], key, c["time"]))
    return out
paused = r["paused_at"]
if r["mode"] != mode:
    bad("task result mode %r, expected %r" % (r["mode"], mode))
recv = [x for x in json.load(open(rtasks)) if x.get("dbg") == "migrate"
        and x["state"][0] == "Completed"]
if not recv:
    bad("no completed receive task on the destination")
    sys.exit(1)
rtl = timeline(max(recv, key=lambda x: x["ctime"]))
stl = timeline(t)
dcalls, scalls = calls(dst), calls(src)
attach = [c for c in dcalls if c[0] == "Datapath.attach"]
act = {c[1]: c[2] for c in dcalls if c[0] == "Datapath.activate"}
if len(attach) != ndisk or len(act) != ndisk:
    bad("receiver: %d attaches, %d activates for %d disks"
        % (len(attach), len(act), ndisk))
ratt = [e for e in rtl if e[0].startswith("VBD_attach")]
if mode == "split":
    if r["receiver"]["early_attached"] != ndisk:
        bad("early_attached %s" % r["receiver"]["early_attached"])
    for cmd, key, tm in attach:
        if tm >= paused:
            bad("Datapath.attach %s at %.6f, not before the pause %.6f"
                % (key, tm, paused))
    for name, start, end, st in ratt:
        if end >= paused:
            bad("%s ended at %.6f, not before the pause %.6f"
                % (name, end, paused))
    if len(ratt) != ndisk:
        bad("receiver timeline has %d VBD_attach" % len(ratt))
    # The source's VBD_deactivate (its driver call included) of each disk
    # ended before the receiver's driver was asked to activate it.
    deact = {e[0].split()[1]: e[2] for e in stl
             if e[0].startswith("VBD_deactivate") and
             not e[0].endswith("force")}
    sdeact = [c[1] for c in scalls if c[0] == "Datapath.deactivate"]
    if len(deact) != ndisk or len(sdeact) < ndisk:
        bad("source: %d VBD_deactivate atoms, %d driver calls"
            % (len(deact), len(sdeact)))
    end_all = max(deact.values()) if deact else paused
    for key, tm in act.items():
        if tm <= end_all:
            bad("Datapath.activate %s at %.6f before the source's "
                "deactivation ended at %.6f" % (key, tm, end_all))
    for dev, tm in deact.items():
        if tm <= paused:
            bad("VBD_deactivate %s before the pause" % dev)
else:
    if r["receiver"]["early_attached"] != 0:
        bad("legacy mode attached early")
    for cmd, key, tm in attach:
        if tm <= paused:
            bad("legacy: Datapath.attach %s before the pause" % key)
print("  %-6s downtime %7.1f ms (guest saw %s ms), receiver phase A %.0f ms,"
      " VBD work in the downtime %.1f ms"
      % (mode, r["downtime_ms"], r["guest_downtime_ms"],
         r["receiver"]["phase_a_ms"], r["receiver"]["vbd_inside_downtime_ms"]))
sys.exit(0 if ok else 1)
PY
    check_running_on "$to" "$what"
    check_gone "$from" "$what"
}

for legacy in true false; do
    mode=split; [ "$legacy" = true ] && mode=legacy
    start_host a "$legacy"
    start_host b "$legacy"
    for h in a b; do
        ctl "$h" sr add "$SR" xo-file "path=$work/sr-$h" >/dev/null ||
            die "$mode: SR.add on host $h"
    done
    ctl a vm add "$work/vm.json" >/dev/null || die "$mode: vm add"
    for i in $(seq 0 $((NDISK - 1))); do
        ctl a vbd add "$work/vbd$i.json" >/dev/null || die "$mode: vbd add"
    done
    ctl a vm start "$VM" >/dev/null || die "$mode: vm start"
    check_running_on a "$mode start"
    echo "$mode mode:"
    migrate a b "$mode"
    migrate b a "$mode"
    # Once more in split mode: a host the VM left before lets it leave
    # again (its temporary id's records went with the first cleanup).
    if [ "$mode" = split ]; then
        migrate a b "$mode"
        migrate b a "$mode"
    fi
    ctl a vm shutdown "$VM" >/dev/null || fail "$mode: vm shutdown"
    ctl a vm remove "$VM" >/dev/null || fail "$mode: vm remove"
    check_gone a "$mode end"
    check_gone b "$mode end"
    stop_hosts
done

# A sanitizer build reports into the daemons' logs.
for h in a b; do
    grep -q "Sanitizer\|runtime error" "$work/$h.log" &&
        fail "sanitizer report in host $h's log"
done
if [ "$failed" -ne 0 ]; then
    for h in a b; do echo "--- host $h log"; tail -n 20 "$work/$h.log"; done
    echo "$failed check(s) failed"
    exit 1
fi
echo "6 migrations passed"
