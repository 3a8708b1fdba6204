#!/usr/bin/env bash
# Live migration under faults ("never wrong"), between two hosts
# in network namespaces (scripts/netns-hosts), a VM with 2 disks on the
# SMAPIv3 sample plugin (scripts/sm), split mode unless a case says legacy.
# Each case starts fresh daemons, migrates A -> B, injects one fault at one
# phase, and checks:
#   - the VM runs on at most one host, and on the host the case expects;
#   - no VDI is active on both hosts (the plugin's per-host state files);
#   - when the VM stayed on A: B has no VM (under any id) and no datapath;
#     when it moved to B: A has none.
# Phases: A = the receiver attaches disks early (its attach is slowed to
# 1.5 s), B = memory pre-copy (the guest dirties faster than the link
# carries, so it lasts 64 rounds), C = after the point of no return (the
# receiver activates, slowed to 2 s).
#
# kill -9 of a daemon: its simulated VMs live in its memory and die with
# it, like the guests of a crashed host. So after the sender is killed
# before the point of no return the VM runs nowhere, and the receiver must
# not run it (it cleans up); after it, the receiver must run it. After the
# receiver is killed before it, the VM keeps running on the sender; past
# it, the sender keeps the VM paused under its temporary id until the
# restarted receiver says it does not run the VM, then resumes it. A
# killed daemon is restarted on its database and checked: no VM running,
# no datapath left, no VM under a temporary id; a killed sender keeps the
# VM's definition (halted, under its own id). Driver calls in flight when
# a daemon is killed finish on their own; the test waits for them before
# the restart.
#
# Cut link: the receiver's end of the veth goes down; the daemons give up
# on the dead peer after about 8 s (TCP keepalive / user timeout). Past
# the point of no return the receiver completes; the sender asks it
# whether the VM runs there until the link is back, then cleans up.
#
# Cancel: Task.cancel on the sender; past the point of no return it is
# refused and the migration completes. Storage faults: the receiver's
# driver fails Datapath.attach (split: phase A; legacy: phase C) or
# Datapath.activate (phase C) of one disk (XO_SM_FAIL_*).
#
# Storage: as in migrate_netns.sh, each host's SR directory is its own
# (hard links to the same volume files), because the sample plugin keeps
# one datapath state per volume and directory, for one host.
#
# Skips (77) without root, network namespaces or losetup.
set -u
S=${top_srcdir:-.}
B=${top_builddir:-.}
. "$(dirname "$0")/lib/migrate-hosts.sh"

migrate_hosts_init xf migfault
declare -A PID=()
failed=0
cases=0
cleanup() {
    for h in "${!PID[@]}"; do kill -9 "${PID[$h]}" 2>/dev/null; done
    wait 2>/dev/null
    migrate_hosts_down
    if [ -n "${XO_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
die() {
    echo "FAIL: $*"
    migrate_hosts_logs 30
    exit 1
}

"$NETNS" up "$PFX" >/dev/null || die "cannot create the hosts"
SR=5a3e0c3e-0000-4000-8000-0000000000f5
VM=9c0f7c55-6b6b-4c4c-8d8d-1234567890cd
TMP0=${VM:0:24}000000000000
TMP1=${VM:0:24}000000000001
URL=http://10.77.0.2:$PORT/services/xenops
NDISK=2
migrate_hosts_storage "$NDISK"
migrate_hosts_vm_files faults 67108864 "$NDISK"

ctl() { local h=$1; shift; "$B/xenopsctl" --socket "$work/$h/run/xenopsd" "$@"; }

# Daemon on host h with the case's database and environment (ENV_a /
# ENV_b: extra VAR=value words; MEM_a: extra daemon flags).
ENV_a=; ENV_b=; MEM_a=; MEM_b=; LEGACY=false; DB=
start_host() {  # host
    local h=$1 envv=ENV_$1 memv=MEM_$1 ready
    ready=$(cat "$work/$h.log" 2>/dev/null | grep -c "ready on")
    # shellcheck disable=SC2086
    migrate_hosts_daemon "$h" "$DB" "$LEGACY" ${!envv} -- --loglevel info \
        --sim-memory-cap-mib 64 ${!memv}
    PID[$h]=$!
    # "ready" comes after the recovery of interrupted migrations.
    for _ in $(seq 200); do
        [ "$(grep -c "ready on" "$work/$h.log")" -gt "$ready" ] && return 0
        sleep 0.05
    done
    die "host $h did not start"
}
stop_host() {  # host
    local h=$1
    [ -n "${PID[$h]:-}" ] || return 0
    kill "${PID[$h]}" 2>/dev/null
    wait "${PID[$h]}" 2>/dev/null
    unset "PID[$h]"
}
# kill -9, then wait until the driver calls it left running have ended
# (they carry its XO_SM_LOG in their environment).
kill_host() {  # host
    local h=$1 busy
    kill -9 "${PID[$h]}"
    wait "${PID[$h]}" 2>/dev/null
    unset "PID[$h]"
    for _ in $(seq 100); do
        busy=$(grep -lsF "XO_SM_LOG=$work/sm-$h.log" /proc/[0-9]*/environ)
        [ -z "$busy" ] && return 0
        sleep 0.1
    done
    die "driver calls of the killed host $h did not end"
}

# Lines of host h's driver log so far; wait for a command after mark.
log_mark() { wc -l <"$work/sm-$1.log" 2>/dev/null || echo 0; }
wait_call() {  # host mark command
    for _ in $(seq 750); do
        tail -n +$(($2 + 1)) "$work/sm-$1.log" 2>/dev/null |
            grep -q "\"command\": \"$3\"" && return 0
        sleep 0.02
    done
    die "no $3 on host $1"
}
# Wait until the sender's memory pre-copy has sent round 0.
wait_precopy() {  # task
    for _ in $(seq 300); do
        ctl a task stat "$1" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["state"]
sys.exit(0 if s[0] == "Pending" and s[1] > 0.1 else 1)' && return 0
        sleep 0.02
    done
    die "the pre-copy did not start"
}
# Wait for the migration task to end; prints its state tag.
wait_task() {  # task
    local st
    for _ in $(seq 600); do
        st=$(ctl a task stat "$1" 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin)["state"][0])' 2>/dev/null)
        [ -n "$st" ] && [ "$st" != Pending ] && { echo "$st"; return 0; }
        sleep 0.05
    done
    echo "Timeout"
}

# The receiver cleans up when its current phase ends: wait for that.
wait_receiver_clean() {
    for _ in $(seq 150); do
        ctl b vm list | awk 'NR > 1' | grep -q . || return 0
        sleep 0.1
    done
}

# A fresh pair of daemons and the VM running on A.
setup() {  # case-name
    DB=$1
    start_host a
    start_host b
    for h in a b; do
        ctl "$h" sr add "$SR" xo-file "path=$work/sr-$h" >/dev/null ||
            die "$1: SR.add on $h"
    done
    ctl a vm add "$work/vm.json" >/dev/null || die "$1: vm add"
    for i in $(seq 0 $((NDISK - 1))); do
        ctl a vbd add "$work/vbd$i.json" >/dev/null || die "$1: vbd add"
    done
    ctl a vm start "$VM" >/dev/null || die "$1: vm start"
}
start_migration() {  # prints the task id (the daemon's JSON string)
    ctl a --no-wait migrate "$VM" "$URL" | tr -d '"'
}

# The guarantees. expect: a | b | none (the VM runs on that host only);
# keep: a host that may keep the VM's record, halted (the VM's definition
# on a sender that was killed).
check() {  # case-name expect [keep]
    local what=$1 expect=$2 keep=${3:-} on=() h n ids
    for h in a b; do
        [ -n "${PID[$h]:-}" ] || continue
        ids=$(ctl "$h" vm list | awk '$2 == "Running" { print $1 }')
        [ -n "$ids" ] && on+=("$h")
        n=$(echo "$ids" | grep -c .)
        [ "$n" -le 1 ] || fail "$what: host $h runs $n VMs: $ids"
    done
    if [ "${#on[@]}" -gt 1 ]; then
        fail "$what: the VM runs on both hosts"
    elif [ "$expect" = none ] && [ "${#on[@]}" -ne 0 ]; then
        fail "$what: the VM runs on ${on[0]}, expected on no host"
    elif [ "$expect" != none ] && [ "${on[*]:-}" != "$expect" ]; then
        fail "$what: the VM runs on '${on[*]:-no host}', expected $expect"
    fi
    for i in $(seq 0 $((NDISK - 1))); do
        n=0
        for h in a b; do
            grep -qs '"active_domain": "' \
                "$work/sr-$h/.xo-datapath/disk$i.json" && n=$((n + 1))
        done
        [ "$n" -le 1 ] || fail "$what: disk$i is active on both hosts"
    done
    # The host that does not run the VM holds nothing of it (but keep's
    # halted record of the VM).
    for h in a b; do
        [ "$h" = "$expect" ] && continue
        [ -n "${PID[$h]:-}" ] || continue
        ids=$(ctl "$h" vm list | awk 'NR > 1 { print $1 " " $2 }')
        [ "$h" = "$keep" ] && ids=$(echo "$ids" | grep -v "^$VM Halted")
        [ -z "$ids" ] || fail "$what: host $h still has: $ids"
        ids=$(ls "$work/sr-$h/.xo-datapath/" 2>/dev/null | grep -v '^\.lock$')
        [ -z "$ids" ] || fail "$what: host $h still has datapaths: $ids"
    done
}
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
# End a case: stop the daemons, free what a failure left behind.
finish() {  # case-name
    cases=$((cases + 1))
    stop_host a
    stop_host b
    migrate_hosts_detach_loops
    rm -rf "$work"/sr-?/.xo-datapath
    echo "  $1: done"
}

# ---- the cases --------------------------------------------------------

# The sender dies: before the point of no return the receiver must clean
# up (the VM died with the sender); after it the receiver runs the VM.
kill_sender() {  # phase
    local phase=$1 name=kill-sender-$1 mark task
    case $phase in
        A) ENV_b="XO_SM_LATENCY_MS_ATTACH=1500" ;;
        B) MEM_a="--sim-dirty-pages-per-sec 500000 --migration-max-downtime-ms 1 --migration-max-iterations 64" ;;
        C) ENV_b="XO_SM_LATENCY_MS_ACTIVATE=2000" ;;
    esac
    setup "$name"
    mark=$(log_mark b)
    task=$(start_migration) || die "$name: migrate"
    case $phase in
        A) wait_call b "$mark" Datapath.attach ;;
        B) wait_precopy "$task" ;;
        C) wait_call b "$mark" Datapath.activate ;;
    esac
    kill_host a
    if [ "$phase" = C ]; then
        # The receiver completes on its own.
        for _ in $(seq 100); do
            ctl b vm list | grep -q "^$VM  *Running" && break
            sleep 0.1
        done
        check "$name" b
    else
        wait_receiver_clean
        check "$name" none
    fi
    ENV_a=; ENV_b=; MEM_a=
    start_host a
    # The restarted sender keeps the VM's definition, halted, under its
    # own id (not the temporary one), and no datapath.
    if [ "$phase" = C ]; then check "$name restarted" b a
    else check "$name restarted" none a; fi
    finish "$name"
}

# The receiver dies: before the point of no return the VM keeps running
# on the sender; after it the sender may resume the VM only once the
# restarted receiver says the VM does not run there.
kill_receiver() {  # phase
    local phase=$1 name=kill-receiver-$1 mark task st
    case $phase in
        A) ENV_b="XO_SM_LATENCY_MS_ATTACH=1500" ;;
        B) MEM_a="--sim-dirty-pages-per-sec 500000 --migration-max-downtime-ms 1 --migration-max-iterations 64" ;;
        C) ENV_b="XO_SM_LATENCY_MS_ACTIVATE=2000" ;;
    esac
    setup "$name"
    mark=$(log_mark b)
    task=$(start_migration) || die "$name: migrate"
    case $phase in
        A) wait_call b "$mark" Datapath.attach ;;
        B) wait_precopy "$task" ;;
        C) wait_call b "$mark" Datapath.activate ;;
    esac
    kill_host b
    ENV_b=
    if [ "$phase" != C ]; then
        st=$(wait_task "$task")
        [ "$st" = Failed ] || fail "$name: migration task ended '$st'"
        check "$name" a
        start_host b
        check "$name restarted" a
    else
        start_host b
        st=$(wait_task "$task")
        # The restarted receiver does not run the VM: the sender resumes.
        [ "$st" = Failed ] || fail "$name: migration task ended '$st'"
        check "$name restarted" a
    fi
    MEM_a=
    finish "$name"
}

# Bring the receiver's end of the veth back; usable once both ends say UP
# and the neighbour entries that failed while it was down are gone.
link_up() {
    ip -n "$PFX-b" link set "${PFX}vb" up
    for _ in $(seq 100); do
        if ip -n "$PFX-a" -o link show "${PFX}va" | grep -q "state UP" &&
            ip -n "$PFX-b" -o link show "${PFX}vb" | grep -q "state UP"; then
            ip -n "$PFX-a" neigh flush dev "${PFX}va"
            ip -n "$PFX-b" neigh flush dev "${PFX}vb"
            return 0
        fi
        sleep 0.05
    done
    die "the link did not come back"
}

# The link goes down (the receiver's end of the veth). Past the point of
# no return the receiver completes on its own; the sender, once it has
# given up on the connection, asks the receiver whether the VM runs there
# until it gets an answer: the link comes back then, and the sender cleans
# up its side.
cut_link() {  # phase
    local phase=$1 name=cut-link-$1 mark task st expect=a
    case $phase in
        A) ENV_b="XO_SM_LATENCY_MS_ATTACH=1500" ;;
        B) MEM_a="--sim-dirty-pages-per-sec 500000 --migration-max-downtime-ms 1 --migration-max-iterations 64" ;;
        C) ENV_b="XO_SM_LATENCY_MS_ACTIVATE=2000"; expect=b ;;
    esac
    setup "$name"
    mark=$(log_mark b)
    task=$(start_migration) || die "$name: migrate"
    case $phase in
        A) wait_call b "$mark" Datapath.attach ;;
        B) wait_precopy "$task" ;;
        C) wait_call b "$mark" Datapath.activate ;;
    esac
    mark=$(wc -l <"$work/a.log")
    ip -n "$PFX-b" link set "${PFX}vb" down
    if [ "$expect" = b ]; then
        for _ in $(seq 300); do
            tail -n +$((mark + 1)) "$work/a.log" |
                grep -q "lost the receiver past the point" && break
            sleep 0.1
        done
        link_up
        st=$(wait_task "$task")
        [ "$st" = Completed ] || fail "$name: migration task ended '$st'"
    else
        st=$(wait_task "$task")
        # The receiver gives up on its own clock.
        wait_receiver_clean
        link_up
        [ "$st" = Failed ] || fail "$name: migration task ended '$st'"
    fi
    check "$name" "$expect"
    ENV_b=; MEM_a=
    finish "$name"
}

# A storage failure on the receiver.
storage_fault() {  # knob legacy expect-phase-label
    local knob=$1 name=$3 st task
    LEGACY=$2
    ENV_b="$knob=disk1"
    setup "$name"
    task=$(start_migration) || die "$name: migrate"
    st=$(wait_task "$task")
    [ "$st" = Failed ] || fail "$name: migration task ended '$st'"
    wait_receiver_clean
    check "$name" a
    LEGACY=false; ENV_b=
    finish "$name"
}

# Task.cancel on the sender.
cancel() {  # phase
    local phase=$1 name=cancel-$1 mark task st expect=a
    case $phase in
        A) ENV_b="XO_SM_LATENCY_MS_ATTACH=1500" ;;
        B) MEM_a="--sim-dirty-pages-per-sec 500000 --migration-max-downtime-ms 1 --migration-max-iterations 64" ;;
        C) ENV_b="XO_SM_LATENCY_MS_ACTIVATE=2000"; expect=b ;;
    esac
    setup "$name"
    mark=$(log_mark b)
    task=$(start_migration) || die "$name: migrate"
    case $phase in
        A) wait_call b "$mark" Datapath.attach ;;
        B) wait_precopy "$task" ;;
        C) wait_call b "$mark" Datapath.activate ;;
    esac
    ctl a task cancel "$task" >/dev/null 2>&1
    st=$(wait_task "$task")
    if [ "$expect" = b ]; then
        [ "$st" = Completed ] || fail "$name: past the point of no return the migration ended '$st'"
    else
        [ "$st" = Failed ] || fail "$name: migration task ended '$st'"
        wait_receiver_clean
    fi
    check "$name" "$expect"
    ENV_b=; MEM_a=
    finish "$name"
}

# XO_FAULT_CASES="kill_sender:B cancel:A ..." runs only those.
all="kill_sender:A kill_receiver:A cancel:A cut_link:A
     kill_sender:B kill_receiver:B cancel:B cut_link:B
     kill_sender:C kill_receiver:C cancel:C cut_link:C
     fail_attach:A fail_attach_legacy:C fail_activate:C"
t0=$(date +%s)
for c in ${XO_FAULT_CASES:-$all}; do
    case ${c%%:*} in
        fail_attach) storage_fault XO_SM_FAIL_ATTACH false fail-attach-A ;;
        fail_attach_legacy)
            storage_fault XO_SM_FAIL_ATTACH true fail-attach-C-legacy ;;
        fail_activate)
            storage_fault XO_SM_FAIL_ACTIVATE false fail-activate-C ;;
        *) "${c%%:*}" "${c#*:}" ;;
    esac
done
echo "$cases cases in $(($(date +%s) - t0)) s"
# A sanitizer build reports into the daemons' logs.
for h in a b; do
    grep -q "Sanitizer\|runtime error" "$work/$h.log" 2>/dev/null &&
        fail "sanitizer report in host $h's log"
done
if [ "$failed" -ne 0 ]; then
    for h in a b; do echo "--- host $h log"; tail -n 30 "$work/$h.log"; done
    echo "$failed check(s) failed"
    exit 1
fi
echo "$cases passed"
