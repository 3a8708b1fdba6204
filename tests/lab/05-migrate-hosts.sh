#!/usr/bin/env bash
# xenlab: hosts=2
# xl migrate of a PVH guest from host 1 to host 2 over the lab network
# (host 2 receives with `xl migrate-receive` behind socat). The
# heartbeat must go on on host 2; the downtime is read from the guest's
# heartbeats on both hosts, whose clocks xenlab set from this machine's.
source "$(dirname "$0")/lib.sh"
[ "$XENLAB_HOSTS" -ge 2 ] || { echo "needs two lab hosts"; exit 77; }

make_disk g5-a.img 16 LABSIG-A
guest_config g5 g5-a.img
guest_start 1 g5
guest_request 1 g5 "write xvda 13 8"
wait_console 1 g5 '^ok write xvda 13 8' 60 || fail "pattern write failed"
LAB_GUESTS+=("2:g5")

# One connection, one migrate-receive; started in the background on host 2.
# socat rather than busybox nc: nc copies in small reads and writes, each
# slow under TCG, and moved the guest at under 1 MB/s.
lab_sh 2 'socat TCP-LISTEN:8002,reuseaddr EXEC:"xl migrate-receive" </dev/null >/dev/null 2>/tmp/g5-receive.log &' \
    || fail "cannot start the receiver on host 2"
for _ in $(seq 1 20); do
    lab_sh 2 'busybox netstat -ltn | grep -q ":8002 "' && break
    sleep 0.5
done
before=$(last_beat 1 g5)

t0=$(now_ms)
lab run 1 xl migrate -s '' g5 'socat - TCP:169.254.77.2:8002' > "$XENLAB_RUN/g5-migrate.log" 2>&1 \
    || { cat "$XENLAB_RUN/g5-migrate.log"; lab run 2 cat /tmp/g5-receive.log; fail "xl migrate to host 2 failed"; }
took=$(secs_since "$t0")
grep -q "Migration successful" "$XENLAB_RUN/g5-migrate.log" || fail "xl did not report success"
lab run 1 xl list g5 >/dev/null 2>&1 && fail "g5 is still on host 1"
lab run 2 xl list g5 >/dev/null || fail "g5 is not on host 2"

sleep 1
after=$(last_beat 2 g5)
[ -n "$after" ] && [ "$after" -gt "$before" ] || fail "no heartbeat on host 2 ($before then ${after:-none})"
guest_request 2 g5 "verify xvda 13 8"
wait_console 2 g5 '^ok verify xvda 13 8' 60 || fail "data written on host 1 is not read back on host 2"

console_of 1 g5 > "$XENLAB_RUN/g5-console-1.log"
console_of 2 g5 > "$XENLAB_RUN/g5-console-2.log"
read -r gap at mono <<<"$(downtime_ms "$XENLAB_RUN/g5-console-1.log" "$XENLAB_RUN/g5-console-2.log")"
skew=$(python3 -c 'import json,sys; o=[json.load(open(f))["clock_offset_ns"] for f in sys.argv[1:]]; print("%.1f" % (abs(o[0]-o[1])/1e6))' \
       "$XENLAB_RUN/host1/state.json" "$XENLAB_RUN/host2/state.json")
echo "xl migrate host 1 -> host 2 took ${took}s; guest-side downtime ${gap} ms (beat $at; ${mono} ms of it the guest's own suspend/resume; hosts' clocks within ${skew} ms)"
echo "RESULT host_migrate=${took}s downtime=${gap}ms clock_skew=${skew}ms"
