#!/usr/bin/env bash
# xenlab: hosts=1
# xl block-attach / block-detach on a running PVH guest: the guest sees the
# new disk and its signature, and sees it go.
source "$(dirname "$0")/lib.sh"

make_disk g3-a.img 8 LABSIG-A
make_disk g3-b.img 8 LABSIG-B
guest_config g3 g3-a.img
guest_start 1 g3

t0=$(now_ms)
lab run 1 xl block-attach g3 'format=raw,vdev=xvdb,access=rw,backendtype=phy,target=/shared/g3-b.img' \
    || fail "xl block-attach failed"
wait_console 1 g3 '^disk xvdb size=8388608 sig=LABSIG-B' 60 || fail "the guest did not see xvdb"
attach=$(secs_since "$t0")

t0=$(now_ms)
lab run 1 xl block-detach g3 xvdb || fail "xl block-detach failed"
wait_console 1 g3 '^disk-gone xvdb' 60 || fail "the guest still has xvdb"
detach=$(secs_since "$t0")
lab_sh 1 'losetup -a' | grep -q g3-b.img && fail "the loop device of xvdb is still there"
echo "RESULT block_attach=${attach}s block_detach=${detach}s"
