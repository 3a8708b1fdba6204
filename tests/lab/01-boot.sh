#!/usr/bin/env bash
# xenlab: hosts=1 smoke
# Each host is a real Xen host: xl answers, Xen is Debian's 4.17 and offers
# HAP (what PVH guests and their live migration need).
source "$(dirname "$0")/lib.sh"
trap - EXIT

for h in $(seq 1 "$XENLAB_HOSTS"); do
    info=$(lab run "$h" xl info) || fail "xl info on host $h failed"
    caps=$(awk -F': ' '/^virt_caps/ { print $2 }' <<<"$info")
    ver=$(awk -F': ' '/^xen_version/ { print $2 }' <<<"$info")
    grep -qw hap <<<"$caps" || fail "host $h: virt_caps '$caps' lacks hap"
    [[ $ver == 4.17.* ]] || fail "host $h: Xen $ver, expected 4.17.x"
    lab run "$h" xl list | grep -q '^Domain-0 ' || fail "host $h: no Domain-0 in xl list"
    dom0=$(lab_sh "$h" 'dpkg-query -W -f="\${Version}" xen-utils-4.17')
    echo "host $h: Xen $ver, virt_caps: $caps, dom0 tools $dom0"
    [ "$dom0" = "$(dpkg-query -W -f='${Version}' libxen-dev)" ] \
        || fail "host $h: dom0 tools $dom0 differ from this machine's libxen-dev"
done
echo "RESULT xen=$ver caps=hap"
