#!/usr/bin/env bash
# xenlab: hosts=1 smoke
# xl migrate of a PVH guest to the same host: the heartbeat goes on in the
# new domain and the data written before is read back after. The largest
# heartbeat gap is the downtime the guest saw: the peer figure for xenops-c.
source "$(dirname "$0")/lib.sh"

make_disk g4-a.img 16 LABSIG-A
guest_config g4 g4-a.img
guest_start 1 g4
guest_request 1 g4 "write xvda 11 8"
wait_console 1 g4 '^ok write xvda 11 8' 60 || fail "pattern write failed"
before=$(last_beat 1 g4)
olddom=$(lab run 1 xl domid g4)

t0=$(now_ms)
lab run 1 xl migrate -s '' g4 'xl migrate-receive' > "$XENLAB_RUN/g4-migrate.log" 2>&1 \
    || { cat "$XENLAB_RUN/g4-migrate.log"; fail "xl migrate to localhost failed"; }
took=$(secs_since "$t0")
grep -q "Migration successful" "$XENLAB_RUN/g4-migrate.log" || fail "xl did not report success"
newdom=$(lab run 1 xl domid g4)
[ "$newdom" != "$olddom" ] || fail "g4 is still domain $olddom"

sleep 1
after=$(last_beat 1 g4)
[ "$after" -gt "$before" ] || fail "no heartbeat after the migration ($before then $after)"
guest_request 1 g4 "verify xvda 11 8"
wait_console 1 g4 '^ok verify xvda 11 8' 60 || fail "data written before the migration is not there after"

console_of 1 g4 > "$XENLAB_RUN/g4-console.log"
read -r gap at mono <<<"$(downtime_ms "$XENLAB_RUN/g4-console.log")"
echo "xl migrate (localhost) took ${took}s; guest-side downtime ${gap} ms (beat $at; ${mono} ms of it the guest's own suspend/resume)"
echo "RESULT local_migrate=${took}s downtime=${gap}ms"
