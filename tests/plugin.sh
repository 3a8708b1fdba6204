#!/bin/sh
# The xenops-flags XAPI plugin, run exactly as xapi runs it (argv[1] an
# XML-RPC methodCall, stdout an XML-RPC methodResponse), against running
# daemons: every function, the failure encoding, unknown functions and bad
# arguments; a flag change spares the operation in flight (and one queued
# behind it) and applies to the next, for VM operations and for the
# receiving side of a live migration between two daemons; the change is
# logged with the uid and survives a restart. Also the per-SR
# attach-early policy through xenopsctl.
set -u
B=${top_builddir:-.}
S=${top_srcdir:-.}
PLUGIN=$S/scripts/xapi-plugins/xenops-flags
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
work=$(mktemp -d /tmp/xenops-plugin.XXXXXX)
pids=
fail() {
    echo "FAIL: $*"
    for h in a b; do
        [ -f "$work/$h.log" ] && { echo "--- $h.log"; tail -n 20 "$work/$h.log"; }
    done
    exit 1
}
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

SR=5a3e0c3e-0000-4000-8000-000000000003
SRX=5a3e0c3e-0000-4000-8000-0000000000aa
VM=9c0f7c55-1111-2222-3333-444455556666
UNKNOWN_VM=9c0f7c55-1111-2222-3333-000000000099
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"

# xapi's side: build the methodCall (session ref, struct of string args),
# run the plugin with it as its only argument, decode the methodResponse.
# Prints "Success <value>" or "Failure <json list>".
cat >"$work/xapi_call.py" <<'PY'
import subprocess, sys, xmlrpc.client, json
plugin, fn = sys.argv[1], sys.argv[2]
args = dict(a.split("=", 1) for a in sys.argv[3:])
call = xmlrpc.client.dumps(("OpaqueRef:session", args), fn)
p = subprocess.run([plugin, call], stdout=subprocess.PIPE, timeout=60)
if p.returncode != 0:
    sys.exit("plugin exited with %d" % p.returncode)
(r,), _ = xmlrpc.client.loads(p.stdout)
if r["Status"] == "Success":
    assert isinstance(r["Value"], str), "Value must be a string"
    print("Success", r["Value"])
else:
    assert r["Status"] == "Failure", r
    assert all(isinstance(x, str) for x in r["ErrorDescription"])
    print("Failure", json.dumps(r["ErrorDescription"]))
PY
xapi() { python3 "$work/xapi_call.py" "$PLUGIN" "$@"; }
# Run fn against host h and check the output starts with want.
expect() {  # host want fn [k=v]...
    h=$1 want=$2
    shift 2
    out=$(XENOPSD_SOCKET=$work/$h/run/xenopsd xapi "$@") || fail "plugin $*"
    case $out in
        "$want"*) ;;
        *) fail "plugin $* on $h: got '$out', want '$want...'" ;;
    esac
}
ctl() { h=$1; shift; "$B/xenopsctl" --socket "$work/$h/run/xenopsd" "$@"; }
# A JSON path of a text: json_get TEXT 'expr on v'.
json_get() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

start_host() {  # name legacy
    h=$1
    mkdir -p "$work/$h"
    cat >"$work/$h/xenopsd.conf" <<EOF
sockets-path = $work/$h/run
database-path = $work/$h/db
xenopsd-vbd-plug-unplug-legacy = $2
sim-srs = $SR:5.0:20:1
sim-memory-cap-mib = 1
migration-listen = 127.0.0.1:0
migration-token-file = $work/token
storage-script-root = $S/scripts/sm/v3
EOF
    XENOPS_TESTDRV_HOLD=$work/hold \
        "$B/xenopsd-c" --config "$work/$h/xenopsd.conf" 2>>"$work/$h.log" &
    pids="$pids $!"
    eval "pid_$h=$!"
    i=0
    while [ ! -S "$work/$h/run/xenopsd" ]; do
        i=$((i + 1)); [ $i -gt 400 ] && fail "daemon $h did not start"
        sleep 0.05
    done
}
stop_host() {
    ctl "$1" call DEBUG.shutdown '{"debug_info":"t"}' >/dev/null || fail "shutdown $1"
    eval "wait \$pid_$1" || fail "daemon $1 exit status"
}
port_of() {
    sed -n 's/.*migration listener on .* (port \([0-9]*\)).*/\1/p' "$work/$1.log" | tail -n 1
}
task_state() {  # host task
    json_get "$(ctl "$1" task stat "$2")" 'v["state"][0]'
}
# Wait until task (on host) has a subtask starting with name.
wait_subtask() {  # host task name
    i=0
    while :; do
        subs=$(json_get "$(ctl "$1" task stat "$2")" '" ".join(v["subtasks"])')
        case " $subs" in *" $3"*) return 0 ;; esac
        i=$((i + 1)); [ $i -gt 600 ] && fail "task $2 on $1 never ran '$3'"
        sleep 0.05
    done
}
# The id of a task on host that has run a subtask starting with name.
find_task_with() {  # host name
    i=0
    while :; do
        id=$(json_get "$(ctl "$1" task list)" \
            '" ".join(t["id"] for t in v if any(k.startswith("'"$2"'") for k in t["subtasks"]))')
        [ -n "$id" ] && { echo "${id%% *}"; return 0; }
        i=$((i + 1)); [ $i -gt 600 ] && return 1
        sleep 0.05
    done
}
strip() { tr -d '"'; }

start_host a true
start_host b true
printf '{"id":"%s","name":"p","memory_static_max":1048576,"vcpus":1,"ty":["PV",{}]}' "$VM" >"$work/vm.json"
printf '{"id":["%s","xvda"],"backend":["VDI","%s/a"]}' "$VM" "$SR" >"$work/a.json"
ctl a vm add "$work/vm.json" >/dev/null || fail "vm add"
ctl a vbd add "$work/a.json" >/dev/null || fail "vbd add"

# ---- each function, failures, bad arguments ----
expect a 'Success {"features": {"vbd-plug-unplug-legacy": true}' health
expect a 'Success {"vbd-plug-unplug-legacy": true}' get_flags
expect a 'Failure ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "no_such_fn"]' no_such_fn
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "value", "missing"]' set_flag name=vbd-plug-unplug-legacy
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "name", "missing"]' set_flag value=false
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "value", "must be' set_flag name=vbd-plug-unplug-legacy value=off
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "name", "unknown flag' set_flag name=turbo value=true
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "colour", "unexpected' set_flag name=vbd-plug-unplug-legacy value=true colour=red
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "vm", "missing"]' get_migration_stats
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "vm", "not a VM uuid"]' get_migration_stats vm=../etc
expect a 'Failure ["XENOPS_BAD_ARGUMENT", "verbose", "unexpected' get_flags verbose=1
expect a "Failure [\"XENOPS_DAEMON_ERROR\", \"Does_not_exist\", \"migration\", \"$UNKNOWN_VM\"]" \
    get_migration_stats vm=$UNKNOWN_VM
out=$(XENOPSD_SOCKET=$work/nowhere/xenopsd xapi health)
case $out in 'Failure ["XENOPS_DAEMON_UNREACHABLE", "'"$work"'/nowhere/xenopsd"'*) ;;
    *) fail "unreachable daemon: $out" ;; esac
out=$(python3 -c 'import subprocess,sys,xmlrpc.client as x; p=subprocess.run([sys.argv[1], "<not xml"], stdout=subprocess.PIPE); print(x.loads(p.stdout)[0][0]["ErrorDescription"][0])' "$PLUGIN")
[ "$out" = XENAPI_PLUGIN_FAILURE ] || fail "malformed call: $out"
# Nothing changed through all that.
expect a 'Success {"vbd-plug-unplug-legacy": true}' get_flags

# ---- a flag change spares the operation in flight and the one queued
# behind it, and applies to the next (VM operations on host a) ----
# The test SR holds every attach while $work/hold exists (sm_testdrv.h),
# so the change surely lands while the plug is in flight.
: >"$work/hold"
t1=$(ctl a --no-wait vm start "$VM" | strip) || fail "queue start"
wait_subtask a "$t1" "VBD_plug xvda"
t2=$(ctl a --no-wait vbd unplug "$VM" xvda | strip) || fail "queue unplug"
expect a 'Success {"fragment": ' set_flag name=vbd-plug-unplug-legacy value=false
[ "$(task_state a "$t1")" = Pending ] || fail "the start finished before the flag change"
rm -f "$work/hold"
t3=$(ctl a --no-wait vbd plug "$VM" xvda | strip) || fail "queue plug"
ctl a task wait "$t1" >"$work/t1" || fail "start failed"
ctl a task wait "$t2" >"$work/t2" || fail "unplug failed"
ctl a task wait "$t3" >"$work/t3" || fail "plug failed"
grep -q "VBD_plug xvda" "$work/t1" || fail "running start lost its legacy plan"
grep -q "VBD_attach" "$work/t1" && fail "running start switched to split"
grep -q "VBD_unplug xvda" "$work/t2" || fail "queued unplug lost its legacy plan"
grep -q "VBD_deactivate" "$work/t2" && fail "queued unplug switched to split"
grep -q "VBD_attach xvda" "$work/t3" || fail "next plug is not split (attach)"
grep -q "VBD_activate xvda" "$work/t3" || fail "next plug is not split (activate)"
expect a 'Success {"vbd-plug-unplug-legacy": false}' get_flags
grep -q "feature 'vbd-plug-unplug-legacy' changed from 'true' to 'false' by uid $(id -u)" \
    "$work/a.log" || fail "change not logged with uid and values"
[ -f "$work/a/xenopsd.conf.d/99-xenops-c-flags.conf" ] || fail "no fragment"

# ---- the same for a migration: the receiver (b, legacy) keeps its plan
# when the flag changes mid-flight; the next migration into b attaches
# early ----
PA=$(port_of a); PB=$(port_of b)
[ -n "$PA" ] && [ -n "$PB" ] || fail "no migration ports"
: >"$work/hold"
m1=$(ctl a --no-wait migrate "$VM" "http://127.0.0.1:$PB/services/xenops" | strip) \
    || fail "queue migration a->b"
rt=$(find_task_with b "VBD_plug xvda") || fail "b never plugged xvda"
expect b 'Success {"fragment": ' set_flag name=xenopsd-vbd-plug-unplug-legacy value=false
[ "$(task_state b "$rt")" = Pending ] || fail "the receive finished before the flag change"
rm -f "$work/hold"
ctl a --json task wait "$m1" >"$work/m1" || fail "migration a->b failed"
[ "$(json_get "$(cat "$work/m1")" 'v["state"][1]["result"]["receiver"]["early_attached"]')" = 0 ] \
    || fail "in-flight receive attached early after the change"
# The receive task, if b still keeps it, ran the legacy plug only.
if ctl b task stat "$rt" >"$work/rt" 2>/dev/null; then
    grep -q '"VBD_attach' "$work/rt" && fail "in-flight receive switched to split"
fi
ctl b migrate "$VM" "http://127.0.0.1:$PA/services/xenops" >/dev/null || fail "migration b->a"
ctl a --json migrate "$VM" "http://127.0.0.1:$PB/services/xenops" >"$work/m3" \
    || fail "migration a->b (2)"
[ "$(json_get "$(cat "$work/m3")" 'v["state"][1]["result"]["receiver"]["early_attached"]')" = 1 ] \
    || fail "the next migration into b did not attach early"
out=$(XENOPSD_SOCKET=$work/a/run/xenopsd xapi get_migration_stats vm=$VM)
case $out in Success*) ;; *) fail "get_migration_stats: $out" ;; esac
v=${out#Success }
[ "$(json_get "$v" 'v["state"]')" = Completed ] || fail "stats state: $v"
[ "$(json_get "$v" 'v["result"]["receiver"]["early_attached"]')" = 1 ] || fail "stats result: $v"
[ "$(json_get "$v" 'v["vm"]')" = "$VM" ] || fail "stats vm: $v"

# ---- per-SR attach-early policy (xenopsctl) ----
mkdir "$work/srx"
ctl a sr add "$SRX" xo-file "path=$work/srx" >/dev/null || fail "sr add"
host=$(ctl a --json host) || fail "xenopsctl host"
[ "$(json_get "$host" "'$SRX' in v['xenops_c']['attach_early_srs']")" = True ] \
    || fail "split mode: SR not listed as attaching early"
ctl a sr set-attach-early "$SRX" sometimes >/dev/null 2>&1; [ $? -eq 1 ] || fail "bad policy accepted"
ctl a sr set-attach-early "$SRX" never >/dev/null || fail "set never"
host=$(ctl a --json host)
[ "$(json_get "$host" "'$SRX' in v['xenops_c']['attach_early_srs']")" = False ] \
    || fail "policy never: SR still attaches early"
ctl a host | grep "$SRX" | grep -q "never" || fail "xenopsctl host does not show the policy"

# ---- a restart keeps the flag and the SR policy ----
stop_host a
start_host a true
expect a 'Success {"vbd-plug-unplug-legacy": false}' get_flags
[ "$(ctl a flag get vbd-plug-unplug-legacy)" = false ] || fail "xenopsctl flag get"
ctl a sr list | grep -q '"attach_early_policy":"never"' || fail "SR policy not kept"
stop_host a
stop_host b
echo "1 passed, 0 failed"
