#!/usr/bin/env bash
# xenlab: hosts=1 smoke
# xenopsd-c on the xenlight backend drives a real guest: a PVH VM with two
# disks from the sample SMAPIv3 plugin (loop devices under blkback) starts
# and reads both signatures, its VIF is up on xenbr0; a third disk
# hot-plugs and unplugs; pause and unpause; suspend to a file and resume
# (the guest goes on where it was, disks and all); the daemon killed with -9 and restarted finds the running guest
# again (VM.stat, disks); reboot; shutdown leaves no domain, no blkback
# node and no loop device. Last, the same VM as a PV guest boots with its
# disk and shuts down.
source "$(dirname "$0")/lib.sh"

VM=7c0f7c55-0007-4000-8000-000000000007
SR=5a3e0c3e-0000-4000-8000-0000000000b7
SRDIR=sr7

rm -rf "${SHARED:?}/$SRDIR"
mkdir -p "$SHARED/$SRDIR"
make_disk "$SRDIR/vol-a" 8 LABSIG-7A
make_disk "$SRDIR/vol-b" 8 LABSIG-7B
make_disk "$SRDIR/vol-c" 8 LABSIG-7C
vm_json lab7 "$VM" > "$SHARED/$SRDIR/vm.json"
vbd_json "$VM" xvda "$SR" vol-a > "$SHARED/$SRDIR/xvda.json"
vbd_json "$VM" xvdb "$SR" vol-b > "$SHARED/$SRDIR/xvdb.json"
vbd_json "$VM" xvdc "$SR" vol-c > "$SHARED/$SRDIR/xvdc.json"
MAC=52:54:00:00:30:07
printf '{"id":["%s","0"],"position":0,"mac":"%s","backend":["Local","xenbr0"]}\n' "$VM" $MAC > "$SHARED/$SRDIR/vif0.json"

daemon_start 1 --xenopsd-vbd-plug-unplug-legacy false
xctl 1 sr add $SR xo-file path=/shared/$SRDIR >/dev/null || fail "sr add failed"
xctl 1 vm add /shared/$SRDIR/vm.json >/dev/null || fail "vm add failed"
xctl 1 vbd add /shared/$SRDIR/xvda.json >/dev/null || fail "vbd add xvda failed"
xctl 1 vbd add /shared/$SRDIR/xvdb.json >/dev/null || fail "vbd add xvdb failed"
xctl 1 vif add /shared/$SRDIR/vif0.json >/dev/null || fail "vif add failed"

# Another toolstack's domain, just destroyed: libxl refuses its domid for
# a minute, so the daemon must not reserve it.
guest_config lab7-xl
lab_sh 1 "xl create -p /shared/lab7-xl.cfg && xl destroy lab7-xl" >/dev/null 2>&1 || fail "xl create/destroy failed"
LAB_GUESTS+=("1:$VM")
t0=$(now_ms)
xctl 1 vm start $VM >/dev/null || fail "vm start failed"
start=$(secs_since "$t0")
wait_console 1 "$VM" '^ready' || fail "the guest did not come up"
boot=$(secs_since "$t0")
console_of 1 "$VM" | grep -a -q '^disk xvda size=8388608 sig=LABSIG-7A' || fail "the guest does not see xvda"
console_of 1 "$VM" | grep -a -q '^disk xvdb size=8388608 sig=LABSIG-7B' || fail "the guest does not see xvdb"
xctl 1 vm stat $VM | grep -q Running || fail "VM.stat does not say Running"
domid=$(lab_sh 1 "xl domid $VM") || fail "no domain named after the VM's uuid"
state=$(lab_sh 1 "xenstore-read /local/domain/0/backend/vbd/$domid/51712/state")
[ "$state" = 4 ] || fail "blkback of xvda is in state '$state', not 4 (Connected)"
wait_console 1 "$VM" "^nic eth0 mac=$MAC up" 30 || fail "the guest's VIF is not up"
lab_sh 1 "ls /sys/class/net/xenbr0/brif/" | grep -q "^vif$domid.0$" || fail "vif$domid.0 is not on xenbr0"

# Hot-plug and unplug on the running guest.
xctl 1 vbd add /shared/$SRDIR/xvdc.json >/dev/null || fail "vbd add xvdc failed"
t0=$(now_ms)
xctl 1 vbd plug $VM xvdc >/dev/null || fail "vbd plug xvdc failed"
wait_console 1 "$VM" '^disk xvdc size=8388608 sig=LABSIG-7C' 60 || fail "the guest did not see the hot-plugged xvdc"
hotplug=$(secs_since "$t0")
xctl 1 vbd stat $VM xvdc | grep -q '"plugged": *true' || fail "VBD.stat of xvdc does not say plugged"
t0=$(now_ms)
xctl 1 vbd unplug $VM xvdc >/dev/null || fail "vbd unplug xvdc failed"
wait_console 1 "$VM" '^disk-gone xvdc' 60 || fail "the guest still sees xvdc"
unplug=$(secs_since "$t0")
lab_sh 1 "losetup -j /shared/$SRDIR/vol-c" | grep -q loop && fail "vol-c still has a loop device after unplug"
# As xapi does after an unplug: the VBD is not plugged again at reboot.
xctl 1 vbd remove $VM xvdc >/dev/null || fail "vbd remove xvdc failed"

# Pause and unpause: the heartbeat stops, then goes on.
xctl 1 vm pause $VM >/dev/null || fail "vm pause failed"
xctl 1 vm stat $VM | grep -q Paused || fail "VM.stat does not say Paused"
b1=$(last_beat 1 "$VM"); sleep 2; b2=$(last_beat 1 "$VM")
[ "$b1" = "$b2" ] || fail "the guest kept beating while paused ($b1 -> $b2)"
xctl 1 vm unpause $VM >/dev/null || fail "vm unpause failed"
sleep 2
b3=$(last_beat 1 "$VM")
[ "$b3" -gt "$b2" ] || fail "the guest did not beat again after unpause ($b2 -> $b3)"

# Suspend to a file in dom0 and resume: the guest goes on where it was.
guest_request 1 "$VM" "write xvdb 7 2"
wait_console 1 "$VM" '^ok write xvdb 7 2' 60 || fail "the guest could not write xvdb"
t0=$(now_ms)
xctl 1 vm suspend $VM $XD/lab7.suspend >/dev/null || fail "vm suspend failed"
suspend=$(secs_since "$t0")
lab_sh 1 "xl domid $VM" >/dev/null 2>&1 && fail "the domain is still there after suspend"
xctl 1 vm stat $VM | grep -q Halted || fail "VM.stat does not say Halted after suspend (xapi keeps Suspended itself, as with xenopsd)"
b1=$(last_beat 1 "$VM")
t0=$(now_ms)
xctl 1 vm resume $VM $XD/lab7.suspend >/dev/null || fail "vm resume failed"
# VM.resume leaves it paused, as xenopsd's does: xapi unpauses.
xctl 1 vm unpause $VM >/dev/null || fail "vm unpause after resume failed"
resume=$(secs_since "$t0")
sleep 2
[ "$(last_beat 1 "$VM")" -gt "$b1" ] || fail "the guest does not beat after resume"
guest_request 1 "$VM" "verify xvdb 7 2"
wait_console 1 "$VM" '^ok verify xvdb 7 2' 60 || fail "xvdb does not read back after resume"
domid=$(lab_sh 1 "xl domid $VM") || fail "no domain after resume"

# kill -9 and restart: the daemon finds its running guest again.
lab_sh 1 "pkill -9 -x xenopsd-c; sleep 0.5"
daemon_start 1 --xenopsd-vbd-plug-unplug-legacy false
xctl 1 vm stat $VM | grep -q Running || fail "after kill -9 and restart VM.stat does not say Running"
[ "$(lab_sh 1 "xl domid $VM")" = "$domid" ] || fail "the domain changed across the daemon restart"
lab_sh 1 "losetup -j /shared/$SRDIR/vol-a" | grep -q loop || fail "the restart released xvda's loop device under a running guest"
[ "$(lab_sh 1 "losetup -a | grep -c /shared/$SRDIR/vol-a")" = 1 ] || fail "vol-a is attached more than once after the restart"

# Reboot: a new domain, the disks again.
t0=$(now_ms)
xctl 1 vm reboot $VM --timeout 60 >/dev/null || fail "vm reboot failed"
console_of 1 "$VM" | grep -a -q '^shutdown reboot' || fail "the guest was not asked to reboot cleanly"
wait_count 1 "$VM" '^ready' 2 || fail "the guest did not come up again after reboot"
newdom=$(lab_sh 1 "xl domid $VM") || fail "no domain after reboot"
[ "$newdom" != "$domid" ] || fail "reboot kept domain $domid"
reboot=$(secs_since "$t0")

# Shutdown: nothing left behind.
t0=$(now_ms)
xctl 1 vm shutdown $VM --timeout 60 >/dev/null || fail "vm shutdown failed"
shutdown=$(secs_since "$t0")
console_of 1 "$VM" | grep -a -q '^shutdown poweroff' || fail "the guest was not asked to power off cleanly"
lab_sh 1 "xl domid $VM" >/dev/null 2>&1 && fail "the domain is still there after shutdown"
lab_sh 1 "losetup -a" | grep -q "/shared/$SRDIR/" && fail "a volume still has a loop device after shutdown"
[ -z "$(lab_sh 1 "xenstore-list /local/domain/0/backend/vbd/$newdom 2>/dev/null")" ] || fail "blkback nodes left after shutdown"
xctl 1 vm stat $VM | grep -q Halted || fail "VM.stat does not say Halted after shutdown"
# PV: the same kernel, booted as a PV guest.
xctl 1 vm remove $VM >/dev/null || fail "vm remove failed"
VM_TY=PV vm_json lab7 "$VM" > "$SHARED/$SRDIR/vm-pv.json"
xctl 1 vm add /shared/$SRDIR/vm-pv.json >/dev/null || fail "vm add (PV) failed"
xctl 1 vbd add /shared/$SRDIR/xvda.json >/dev/null || fail "vbd add xvda (PV) failed"
t0=$(now_ms)
xctl 1 vm start $VM >/dev/null || fail "vm start (PV) failed"
wait_count 1 "$VM" '^ready' 3 || fail "the PV guest did not come up"
pv=$(secs_since "$t0")
[ "$(lab_sh 1 "xl list -l $VM" | grep -c '"type": "pv"')" -ge 1 ] || fail "the domain is not PV"
xctl 1 vm shutdown $VM --timeout 60 >/dev/null || fail "vm shutdown (PV) failed"
lab_sh 1 "losetup -a" | grep -q "/shared/$SRDIR/" && fail "a volume still has a loop device after the PV shutdown"
echo "RESULT vm_start=${start}s to_ready=${boot}s hotplug=${hotplug}s unplug=${unplug}s suspend=${suspend}s resume=${resume}s reboot=${reboot}s shutdown=${shutdown}s pv_to_ready=${pv}s"
