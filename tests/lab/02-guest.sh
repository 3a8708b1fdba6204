#!/usr/bin/env bash
# xenlab: hosts=1 smoke
# xl create of a PVH guest whose disk blkback serves from a loop device on
# the shared directory, with a VIF on dom0's bridge: the guest reads the
# disk's signature, brings its netfront up, beats, and writes and reads back
# a pattern on the disk with direct I/O.
source "$(dirname "$0")/lib.sh"

make_disk g2-a.img 16 LABSIG-A
GUEST_VIF=00:16:3e:4c:41:02 guest_config g2 g2-a.img
t0=$(now_ms)
guest_start 1 g2
start=$(secs_since "$t0")
echo "guest up (xl create to the guest's ready) in ${start}s"

console_of 1 g2 | grep -a -q '^disk xvda size=16777216 sig=LABSIG-A' \
    || fail "the guest did not read the disk's signature"
lab_sh 1 'xenstore-read /local/domain/0/backend/vbd/$(xl domid g2)/51712/state' | grep -qx 4 \
    || fail "blkback is not connected (backend state != 4)"
console_of 1 g2 | grep -a -q '^nic eth0 mac=00:16:3e:4c:41:02 up' || fail "the guest has no netfront up"
lab_sh 1 'xenstore-read /local/domain/0/backend/vif/$(xl domid g2)/0/state' | grep -qx 4 \
    || fail "netback is not connected (backend state != 4)"
lab_sh 1 'ip -o link show master xenbr0' | grep -q "vif" || fail "the VIF is not on xenbr0"
read -r _ b1 t1 _ <<<"$(console_of 1 g2 | grep -a '^hb ' | tail -n 1)"
sleep 1
read -r _ b2 t2 _ <<<"$(console_of 1 g2 | grep -a '^hb ' | tail -n 1)"
[ -n "$b2" ] && [ "$b2" -gt "$b1" ] || fail "no heartbeat: counter $b1 then ${b2:-none}"
rate=$(awk -v n=$((b2 - b1)) -v t=$((t2 - t1)) 'BEGIN { printf "%.0f", n / (t / 1e9) }')
echo "heartbeats: $((b2 - b1)) in $(( (t2 - t1) / 1000000 )) ms of guest time ($rate a second; 200 is every 5 ms)"

guest_request 1 g2 "write xvda 7 8"
wait_console 1 g2 '^ok write xvda 7 8' 60 || fail "pattern write failed"
guest_request 1 g2 "verify xvda 7 8"
wait_console 1 g2 '^ok verify xvda 7 8' 60 || fail "pattern verify failed"
echo "RESULT guest_start=${start}s beats_per_s=$rate"
