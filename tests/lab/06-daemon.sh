#!/usr/bin/env bash
# xenlab: hosts=1 smoke
# This checkout's build is installed in every dom0 and runs there: the
# daemon starts (on its simulator backend until the xenlight backend is
# in), answers xenopsctl on its socket, finds the sample storage drivers
# where `make install` put them, and stops on DEBUG.shutdown.
source "$(dirname "$0")/lib.sh"
trap - EXIT

lab_sh 1 'test -x /usr/sbin/xenopsd-c && test -x /usr/bin/xenopsctl' || fail "xenopsd-c or xenopsctl not installed in dom0"
lab_sh 1 'test -d /usr/share/xenops-c/sm/v3/volume && test -x /usr/share/xenops-c/sm/v1/XoFileSR' \
    || fail "the sample storage drivers are not installed in dom0"
lab_sh 1 'rm -rf /run/xl-daemon; mkdir -p /run/xl-daemon
          setsid xenopsd-c --sockets-path /run/xl-daemon --database-path /run/xl-daemon/db \
              --sm-dir /usr/share/xenops-c/sm/v1 --storage-script-root /usr/share/xenops-c/sm/v3 \
              </dev/null >/run/xl-daemon/log 2>&1 &
          for i in $(seq 1 100); do [ -S /run/xl-daemon/xenopsd ] && exit 0; sleep 0.1; done
          cat /run/xl-daemon/log; exit 1' || fail "xenopsd-c did not start in dom0"
VM=6c0f7c55-1111-2222-3333-444455556666
lab_sh 1 "printf '{\"id\":\"$VM\",\"name\":\"lab\",\"memory_static_max\":1048576,\"vcpus\":1,\"ty\":[\"PV\",{}]}' > /run/xl-daemon/vm.json
          xenopsctl --socket /run/xl-daemon/xenopsd vm add /run/xl-daemon/vm.json >/dev/null
          xenopsctl --socket /run/xl-daemon/xenopsd vm list" | grep -q "$VM" \
    || fail "xenopsctl in dom0 does not see the VM it added"
lab_sh 1 "xenopsctl --socket /run/xl-daemon/xenopsd call DEBUG.shutdown '{\"debug_info\":\"lab\",\"unit\":null}' >/dev/null
          for i in \$(seq 1 100); do [ -S /run/xl-daemon/xenopsd ] || exit 0; sleep 0.1; done; exit 1" \
    || fail "xenopsd-c did not stop on DEBUG.shutdown"
echo "RESULT daemon=runs-in-dom0"
