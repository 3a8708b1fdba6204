#!/usr/bin/env bash
# xenlab: hosts=2
# Live migration of a real PVH guest with two SMAPIv3 disks between two
# xenopsd-c daemons on the xenlight backend, over xenops-c's own protocol:
# host 1 -> host 2 in split mode (both disks attached before the pause),
# host 2 -> host 1 in legacy mode, then host 1 -> host 1 (localhost). After
# each: the VM runs on the destination only, its disks are active there
# only, its VIF is on the destination's bridge, the guest kept its data and
# heartbeat; the task result's downtime
# and the guest's own (largest heartbeat gap) are printed.
# Then a failed receive: the receiver is killed with -9 while phase A
# waits on an attach; the guest runs on untouched at the source, and the
# restarted receiver leaves nothing attached.
source "$(dirname "$0")/lib.sh"

VM=8c0f7c55-0008-4000-8000-000000000008
SR=5a3e0c3e-0000-4000-8000-0000000000b8
PORT=8008
W=$SHARED/lab8
# The console logs of every name the VM has on a host: its uuid, and the
# temporary ids of a migration (same first 24 characters).
CON=${VM:0:24}

url() { echo "http://169.254.77.$1:$PORT/services/xenops"; }

# Each host has its own SR directory (the sample plugin keeps datapath
# state there, per host as a real SR's host-local state), hard links to
# one set of volumes.
rm -rf "${W:?}"
mkdir -p "$W/vol" "$W/sr-1" "$W/sr-2"
make_disk lab8/vol/vol-a 8 LABSIG-8A
make_disk lab8/vol/vol-b 8 LABSIG-8B
for v in vol-a vol-b; do ln "$W/vol/$v" "$W/sr-1/$v"; ln "$W/vol/$v" "$W/sr-2/$v"; done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/token"
vm_json lab8 "$VM" > "$W/vm.json"
vbd_json "$VM" xvda "$SR" vol-a > "$W/xvda.json"
vbd_json "$VM" xvdb "$SR" vol-b > "$W/xvdb.json"
MAC=52:54:00:00:30:08
printf '{"id":["%s","0"],"position":0,"mac":"%s","backend":["Local","xenbr0"]}\n' "$VM" $MAC > "$W/vif0.json"

start_daemon() {  # host [env]
    DAEMON_ENV="XO_SM_LOG=/shared/lab8/sm-$1.log XO_SM_LATENCY_MS_ATTACH=300 XO_SM_LATENCY_MS_ACTIVATE=10 ${2:-}" \
        daemon_start "$1" --xenopsd-vbd-plug-unplug-legacy false \
        --migration-listen "169.254.77.$1:$PORT" --migration-token-file /shared/lab8/token
}
for h in 1 2; do
    start_daemon $h
    xctl $h sr add $SR xo-file path=/shared/lab8/sr-$h >/dev/null || fail "sr add on host $h failed"
done
xctl 1 vm add /shared/lab8/vm.json >/dev/null || fail "vm add failed"
xctl 1 vbd add /shared/lab8/xvda.json >/dev/null || fail "vbd add xvda failed"
xctl 1 vbd add /shared/lab8/xvdb.json >/dev/null || fail "vbd add xvdb failed"
xctl 1 vif add /shared/lab8/vif0.json >/dev/null || fail "vif add failed"
LAB_GUESTS+=("1:$CON" "2:$CON")
xctl 1 vm start $VM >/dev/null || fail "vm start failed"
wait_console 1 "$CON" '^ready' || fail "the guest did not come up"
guest_request 1 "$VM" "write xvdb 8 4"
wait_console 1 "$CON" '^ok write xvdb 8 4' 60 || fail "the guest could not write xvdb"

# migrate FROM TO MODE: one migration, checked; prints a RESULT line.
n=0
migrate() {
    local from=$1 to=$2 mode=$3 legacy=false beat out
    n=$((n + 1))
    [ "$mode" = legacy ] && legacy=true
    for h in $from $to; do
        xctl $h flag set vbd-plug-unplug-legacy $legacy >/dev/null || fail "flag set on host $h failed"
    done
    beat=$(last_beat "$from" "$CON")
    out=$W/result-$n.json
    xctl "$from" --json migrate $VM "$(url "$to")" > "$out" || { cat "$out" >&2; fail "migration $n ($mode $from->$to) failed"; }
    xctl "$to" vm stat $VM | grep -q Running || fail "migration $n: the VM does not run on host $to"
    if [ "$from" != "$to" ]; then
        xctl "$from" vm stat $VM >/dev/null 2>&1 && fail "migration $n: host $from still has the VM"
    fi
    [ "$(lab_sh "$to" "xl list | grep -c '^$CON'")" = 1 ] || fail "migration $n: not exactly one domain of the VM on host $to"
    # The VIF came with the domain (plugged before it existed, in phase A).
    local d; d=$(lab_sh "$to" "xl domid $VM")
    lab_sh "$to" "ls /sys/class/net/xenbr0/brif/" | grep -q "^vif$d.0$" || fail "migration $n: vif$d.0 is not on xenbr0 on host $to"
    wait_count "$to" "$CON" "^hb " 1 >/dev/null
    local after; after=$(last_beat "$to" "$CON")
    sleep 1
    [ "$(last_beat "$to" "$CON")" -gt "$after" ] || fail "migration $n: the guest does not beat on host $to"
    local gap
    gap=$( { console_of 1 "$CON"; console_of 2 "$CON"; } > "$W/console-$n.log"
           HB_FROM=$beat downtime_ms "$W/console-$n.log")
    python3 - "$out" "$mode" "$W/sm-$to.log" "${gap%% *}" "$n" "$from" "$to" <<'PY' || fail "migration $n: checks of the task result"
import json, sys
out, mode, smlog, guest_ms, n, src, dst = sys.argv[1:8]
t = json.load(open(out))
r = t["state"][1]["result"]
if isinstance(r, str):
    r = json.loads(r)
bad = []
if r.get("mode") != mode:
    bad.append("mode %r, expected %r" % (r.get("mode"), mode))
early = r["receiver"]["early_attached"]
if early != (2 if mode == "split" else 0):
    bad.append("early_attached %s in %s mode" % (early, mode))
if mode == "split":
    paused = r["paused_at"]
    att = [json.loads(l) for l in open(smlog)]
    att = [c for c in att if c["command"] == "Datapath.attach" and c["time"] > paused - 300]
    late = [c for c in att if c["time"] >= paused]
    if late:
        bad.append("%d Datapath.attach after the pause" % len(late))
for b in bad:
    print("  " + b)
rc = r["receiver"]
print("RESULT m%s=%s:%s->%s downtime_ms=%.0f guest_downtime_ms=%s "
      "phase_c_ms=%.0f vbd_in_downtime_ms=%.0f final_round_ms=%.0f "
      "source_deactivate_ms=%.0f total_ms=%.0f"
      % (n, mode, src, dst, r["downtime_ms"], guest_ms, rc["phase_c_ms"],
         rc["vbd_inside_downtime_ms"], r["final_round_ms"],
         r["source_deactivate_ms"], r["total_ms"]))
sys.exit(1 if bad else 0)
PY
}

migrate 1 2 split
migrate 2 1 legacy
migrate 1 1 split
guest_request 1 "$VM" "verify xvdb 8 4"
wait_console 1 "$CON" '^ok verify xvdb 8 4' 60 || fail "xvdb lost its data across the migrations"
for h in 1 2; do
    [ "$(lab_sh $h "losetup -a | grep -c /shared/lab8/sr-$h/" )" = "$([ $h = 1 ] && echo 2 || echo 0)" ] \
        || fail "host $h has the wrong number of loop devices for the VM's volumes"
done

# A receiver killed in phase A, while it attaches vol-a (the gate: the
# driver's log shows the call, and the call hangs).
lab_sh 2 "pkill -9 -x xenopsd-c; sleep 0.5"
start_daemon 2 "XO_SM_HANG_ATTACH=vol-a"
xctl 1 flag set vbd-plug-unplug-legacy false >/dev/null
xctl 2 flag set vbd-plug-unplug-legacy false >/dev/null
seen=$(grep -c '"Datapath.attach".*vol-a' "$W/sm-2.log")
lab_sh 1 "xenopsctl --socket $XD/xenopsd migrate $VM $(url 2) >$XD/failed-migrate.out 2>&1 &"
for i in $(seq 1 240); do
    [ "$(grep -c '"Datapath.attach".*vol-a' "$W/sm-2.log")" -gt "$seen" ] && break
    sleep 0.5
done
[ "$i" -lt 240 ] || fail "the receiver never reached the attach of vol-a"
lab_sh 2 "pkill -9 -x xenopsd-c; pkill -9 -f Datapath.attach; sleep 0.5"
for i in $(seq 1 120); do
    lab_sh 1 "pgrep -f 'xenopsctl.*migrate' >/dev/null" || break
    sleep 0.5
done
lab_sh 1 "cat $XD/failed-migrate.out" | grep -q -i "error\|fail" || fail "the sender did not report the failed migration"
xctl 1 vm stat $VM | grep -q Running || fail "after the failed receive the VM does not run on host 1"
b1=$(last_beat 1 "$CON"); sleep 1
[ "$(last_beat 1 "$CON")" -gt "$b1" ] || fail "after the failed receive the guest does not beat on host 1"
start_daemon 2
lab_sh 2 "xl list | grep -q '^$CON'" && fail "the failed receiver kept a domain"
[ "$(lab_sh 2 "losetup -a | grep -c /shared/lab8/sr-2/")" = 0 ] || fail "the failed receiver kept a loop device"
[ "$(lab_sh 1 "losetup -a | grep -c /shared/lab8/sr-1/")" = 2 ] || fail "the source lost a disk in the failed migration"
guest_request 1 "$VM" "verify xvdb 8 4"
wait_count 1 "$CON" '^ok verify xvdb 8 4' 2 60 || fail "xvdb lost its data in the failed migration"
xctl 1 vm shutdown $VM --timeout 60 >/dev/null || fail "shutdown after the failed migration failed"
echo "RESULT failed_receive=source-kept-the-vm"
