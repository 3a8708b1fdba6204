# SPDX-License-Identifier: LGPL-2.1-only
"""Shared support for the sample storage drivers of xenops-c (scripts/sm/).

Both drivers (the SMAPIv1 XoFileSR and the SMAPIv3 xo-file plugins) log
every call and obey the same environment knobs, so that tests and
benchmarks can model a slow SAN attach against a fast activate and inject
each kind of failure. The daemon passes every XO_SM_* variable of its own
environment to the drivers (sm/sm_exec.h).

Call log: one JSON line per call, appended to the file named by XO_SM_LOG
(default: .xo-sm.log in the SR directory when it is known, else
/tmp/xo-sm.log):
    {"time": <unix seconds>, "pid": n, "driver": "XoFileSR",
     "command": "vdi_attach", "args": <the call's arguments>}
For SMAPIv1 "args" is the whole XML-RPC struct (member order kept); for
SMAPIv3 it is the JSON object read from stdin.

Knobs. <CMD> is the command's full name in upper case with "." turned into
"_" (VDI_ATTACH, SR_GET_DRIVER_INFO, DATAPATH_ATTACH, VOLUME_STAT,
PLUGIN_QUERY), or its short name for the per-VDI datapath commands
(vdi_* of SMAPIv1 and Datapath.* of SMAPIv3): ATTACH, ACTIVATE,
DEACTIVATE, DETACH, EPOCH_BEGIN, EPOCH_END, ACTIVATE_READONLY. The full
name wins when both are set.
    XO_SM_LATENCY_MS_<CMD>=<ms>     sleep before doing the work
    XO_SM_FAIL_<CMD>=<match>[:<code>]
                                    fail as the driver reports errors (v1:
                                    an XML-RPC fault, default code 46
                                    VDIUnavailable; v3: error JSON and exit
                                    1, default code SR_BACKEND_FAILURE)
    XO_SM_HANG_<CMD>=<match>        sleep forever (for timeouts)
    XO_SM_GARBAGE_<CMD>=<match>     print garbage on stdout, exit 0
    XO_SM_CRASH_<CMD>=<match>       die by SIGSEGV
    XO_SM_EXIT_<CMD>=<match>        exit 3 with a message on stderr
<match> is "*" or a comma-separated list of VDI names (v1: the VDI
location; v3: the volume key, also for Datapath calls, whose URI ends in
it). The call is logged before any knob acts.
"""

import fcntl
import json
import os
import signal
import string
import sys
import time

KNOB_KINDS = ("HANG", "CRASH", "EXIT", "GARBAGE", "FAIL")
DEFAULT_LOG = "/tmp/xo-sm.log"
NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")


def knob_names(command, short_prefixes):
    """The knob names of a command: full and (if it has one) short."""
    full = command.upper().replace(".", "_")
    names = [full]
    for prefix in short_prefixes:
        if full.startswith(prefix):
            names.append(full[len(prefix):])
    return names


def knob(kind, names):
    """The value of XO_SM_<kind>_<name> for the first name set, or None."""
    for name in names:
        value = os.environ.get("XO_SM_%s_%s" % (kind, name))
        if value is not None:
            return value
    return None


def matches(value, vdi):
    """Split "<match>[:<code>]"; return (matched, code or None)."""
    spec, _, code = value.partition(":")
    items = [x.strip() for x in spec.split(",") if x.strip()]
    hit = "*" in items or (vdi is not None and vdi in items)
    return hit, (code or None)


def log_call(driver, command, args, default_dir=None):
    """Append one JSON line for this call to the call log."""
    path = os.environ.get("XO_SM_LOG")
    if not path:
        path = (os.path.join(default_dir, ".xo-sm.log") if default_dir
                else DEFAULT_LOG)
    line = json.dumps({"time": time.time(), "pid": os.getpid(),
                       "driver": driver, "command": command,
                       "args": args}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def apply_knobs(names, vdi, fail):
    """Act on the knobs for this call. fail(code) reports an injected
    failure the way the driver reports errors and does not return."""
    latency = knob("LATENCY_MS", names)
    if latency:
        time.sleep(int(latency) / 1000.0)
    for kind in KNOB_KINDS:
        value = knob(kind, names)
        if value is None:
            continue
        hit, code = matches(value, vdi)
        if not hit:
            continue
        if kind == "HANG":
            while True:
                time.sleep(3600)
        if kind == "CRASH":
            sys.stdout.flush()
            signal.signal(signal.SIGSEGV, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGSEGV)
        if kind == "EXIT":
            sys.stderr.write("xo-sm: injected exit (XO_SM_EXIT_%s)\n"
                             % names[-1])
            sys.exit(3)
        if kind == "GARBAGE":
            sys.stdout.buffer.write(b"xo-sm injected garbage: <<not xml, "
                                    b"not json>> \xff\xfe\n")
            sys.exit(0)
        fail(code)


class FileLock:
    """An exclusive flock on a file, as a context manager."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def read_json(path, default=None):
    """A JSON file's value, or default if the file does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_json(path, value):
    """Write a JSON file crash-safely (temp file, fsync, rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def valid_name(name):
    """A VDI location / volume key usable as a file name."""
    return (isinstance(name, str) and 0 < len(name) <= 128
            and name[0] not in "._-" and all(c in NAME_CHARS for c in name))
