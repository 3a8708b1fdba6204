#!/bin/sh
# "make install DESTDIR=<tmp>" puts every piece where the documentation
# says (daemon, CLI, sample config without touching an existing
# xenopsd.conf, systemd unit, XAPI plugin, sample SM drivers, man pages),
# the installed pieces work, the unit passes "systemd-analyze verify"
# (when systemd-analyze exists), and "make uninstall" removes it all.
set -u
B=${top_builddir:-.}
MAKE_CMD=${MAKE:-make}
# A make of our own, not a job of the `make check` that runs us: the
# parent's MAKEFLAGS would hand over its jobserver and make would print
# warnings into the output we read.
mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        $MAKE_CMD -s --no-print-directory "$@"
}
work=$(mktemp -d /tmp/xenops-install.XXXXXX)
fail() { echo "FAIL: $*"; exit 1; }
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
D=$work/root

# The installation directories as this build's Makefile has them.
cat >"$work/dirs.mk" <<'EOF'
print-dirs:
	@echo "sbindir='$(sbindir)' bindir='$(bindir)' sysconfdir='$(sysconfdir)'"
	@echo "mandir='$(mandir)' pkgdatadir='$(pkgdatadir)'"
	@echo "unitdir='$(systemdsystemunitdir)' plugindir='$(xapipluginsdir)'"
EOF
eval "$(mk -C "$B" -f Makefile -f "$work/dirs.mk" print-dirs)" \
    || fail "cannot read the installation directories"

# An admin's configuration that must survive the install.
mkdir -p "$D$sysconfdir"
echo "loglevel = debug" >"$D$sysconfdir/xenopsd.conf"
mk -C "$B" install DESTDIR="$D" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; fail "make install"; }

[ -x "$D$sbindir/xenopsd-c" ] || fail "no $sbindir/xenopsd-c"
[ -x "$D$bindir/xenopsctl" ] || fail "no $bindir/xenopsctl"
"$D$sbindir/xenopsd-c" --version | grep -q "^xenopsd-c " || fail "xenopsd-c --version"
[ "$(cat "$D$sysconfdir/xenopsd.conf")" = "loglevel = debug" ] \
    || fail "an existing xenopsd.conf was changed"
[ -f "$D$sysconfdir/xenopsd.conf.sample" ] || fail "no sample config"
grep -q "^# xenopsd-vbd-plug-unplug-legacy = true" "$D$sysconfdir/xenopsd.conf.sample" \
    || fail "sample config does not document the legacy flag"
[ -d "$D$sysconfdir/xenopsd.conf.d" ] || fail "no config dir"
for m in man8/xenopsd-c.8 man1/xenopsctl.1 man5/xenopsd.conf.5; do
    [ -s "$D$mandir/$m" ] || fail "no man page $m"
done

# The plugin is executable and answers as xapi expects, even without a
# daemon.
P=$D$plugindir/xenops-flags
[ -x "$P" ] || fail "no executable plugin in $plugindir"
if command -v python3 >/dev/null; then
    out=$(python3 -c 'import subprocess,sys,xmlrpc.client as x
c = x.dumps(("OpaqueRef:s", {}), "nope")
p = subprocess.run([sys.argv[1], c], stdout=subprocess.PIPE)
print(x.loads(p.stdout)[0][0]["ErrorDescription"])' "$P") || fail "plugin run"
    [ "$out" = "['UNKNOWN_XENAPI_PLUGIN_FUNCTION', 'nope']" ] || fail "plugin: $out"
fi

# Sample SM drivers. The v3 entry points are links to one program in the
# source tree; "make dist" stores copies (tar -h), which work as well.
SM=$D$pkgdatadir/sm
[ -x "$SM/v1/XoFileSR" ] || fail "no SMAPIv1 sample driver"
[ -f "$SM/lib/xo_sm.py" ] || fail "no sample driver library"
q=$SM/v3/volume/org.xen.xapi.storage.xo-file/Plugin.Query
[ -x "$q" ] || fail "SMAPIv3 plugin entry point missing or not executable"
if command -v python3 >/dev/null; then
    echo '{"dbg":"install-test"}' | XO_SM_LOG=/dev/null "$q" --json \
        | grep -q '"required_api_version": "5.0"' \
        || fail "the installed SMAPIv3 sample plugin does not run"
fi
[ -e "$SM/.keep" ] && fail "placeholder installed"

# The unit names the installed paths and verifies.
U=$D$unitdir/xenopsd-c.service
[ -f "$U" ] || fail "no systemd unit in $unitdir"
grep -q "^ExecStart=$sbindir/xenopsd-c --config $sysconfdir/xenopsd.conf " "$U" \
    || fail "unit ExecStart: $(grep ExecStart "$U")"
grep -q "^Restart=on-failure" "$U" || fail "unit Restart"
grep -q "@" "$U" && grep -n "@[a-z]*@" "$U" && fail "unsubstituted variable in the unit"
if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart exists: point it into DESTDIR.
    mkdir -p "$work/unit"
    sed "s|^ExecStart=$sbindir|ExecStart=$D$sbindir|" "$U" >"$work/unit/xenopsd-c.service"
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
        "$work/unit/xenopsd-c.service" >"$work/verify.log" 2>&1
    rc=$?
    # Ignore complaints about units of this machine that are not ours.
    if grep -v "^$" "$work/verify.log" | grep -q "xenopsd-c.service"; then
        cat "$work/verify.log"
        fail "systemd-analyze verify"
    fi
    [ $rc -eq 0 ] || grep -q . "$work/verify.log" || fail "systemd-analyze verify exit $rc"
else
    echo "systemd-analyze not found: unit not verified"
fi

# Uninstall leaves only what the admin had.
mk -C "$B" uninstall DESTDIR="$D" >"$work/uninstall.log" 2>&1 \
    || { cat "$work/uninstall.log"; fail "make uninstall"; }
left=$(cd "$D" && find . \( -type f -o -type l \) | sort)
[ "$left" = "./${sysconfdir#/}/xenopsd.conf" ] || fail "left after uninstall: $left"
echo "1 passed, 0 failed"
