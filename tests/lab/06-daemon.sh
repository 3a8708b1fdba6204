#!/usr/bin/env bash
# xenlab: hosts=1 smoke
# This checkout's build is installed in every dom0 and runs there: the
# daemon starts (on its simulator backend: 07-xenlight drives Xen with the
# xenlight backend), answers xenopsctl on its socket, and drives the sample SMAPIv3
# plugin, installed where `make install` put it, against the shared
# directory: a VM start binds the volume to a loop device in dom0 and its
# shutdown releases it. Ends with DEBUG.shutdown.
source "$(dirname "$0")/lib.sh"
trap - EXIT

VM=6c0f7c55-1111-2222-3333-444455556666
SR=5a3e0c3e-0000-4000-8000-0000000000b3
D=/run/lab-daemon
ctl() { printf 'xenopsctl --socket %s/xenopsd' "$D"; }

lab_sh 1 'test -x /usr/sbin/xenopsd-c && test -x /usr/bin/xenopsctl' || fail "xenopsd-c or xenopsctl not installed in dom0"
lab_sh 1 'test -x /usr/share/xenops-c/sm/v3/volume/org.xen.xapi.storage.xo-file/Volume.create && test -x /usr/share/xenops-c/sm/v1/XoFileSR' \
    || fail "the sample storage drivers are not installed in dom0"
mkdir -p "$SHARED/sr3"
truncate -s 4M "$SHARED/sr3/lab-vol"
lab_sh 1 "rm -rf $D; mkdir -p $D
          setsid xenopsd-c --sockets-path $D --database-path $D/db --xenopsd-vbd-plug-unplug-legacy false \
              --sm-dir /usr/share/xenops-c/sm/v1 --storage-script-root /usr/share/xenops-c/sm/v3 \
              </dev/null >$D/log 2>&1 &
          for i in \$(seq 1 100); do [ -S $D/xenopsd ] && exit 0; sleep 0.1; done
          cat $D/log; exit 1" || fail "xenopsd-c did not start in dom0"
lab_sh 1 "$(ctl) sr add $SR xo-file path=/shared/sr3 >/dev/null" || fail "sr add (SMAPIv3 sample plugin) failed in dom0"
lab_sh 1 "printf '{\"id\":\"$VM\",\"name\":\"lab\",\"memory_static_max\":1048576,\"vcpus\":1,\"ty\":[\"PV\",{}]}' > $D/vm.json
          printf '{\"id\":[\"$VM\",\"xvda\"],\"backend\":[\"VDI\",\"$SR/lab-vol\"]}' > $D/vbd.json
          $(ctl) vm add $D/vm.json >/dev/null && $(ctl) vbd add $D/vbd.json >/dev/null
          $(ctl) vm list" | grep -q "$VM" || fail "xenopsctl in dom0 does not see the VM it added"
lab_sh 1 "$(ctl) vm start $VM" >/dev/null || { lab_sh 1 "tail -n 20 $D/log"; fail "vm start with a SMAPIv3 disk failed in dom0"; }
lab_sh 1 'losetup -j /shared/sr3/lab-vol' | grep -q loop || fail "the v3 plugin bound no loop device to the volume"
lab_sh 1 "$(ctl) vm shutdown $VM" >/dev/null || fail "vm shutdown failed in dom0"
lab_sh 1 'losetup -j /shared/sr3/lab-vol' | grep -q loop && fail "the volume's loop device is still there after shutdown"
lab_sh 1 "$(ctl) call DEBUG.shutdown '{\"debug_info\":\"lab\",\"unit\":null}' >/dev/null
          for i in \$(seq 1 100); do [ -S $D/xenopsd ] || exit 0; sleep 0.1; done; exit 1" \
    || fail "xenopsd-c did not stop on DEBUG.shutdown"
echo "RESULT daemon=runs-in-dom0 smapiv3=loop-attached-and-released"
