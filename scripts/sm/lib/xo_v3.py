#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-only
"""Sample SMAPIv3 plugins for xenops-c: volumes are files in a directory.

One program serves every plugin script. The plugin directories hold
symbolic links to it named <Interface>.<method>, and it dispatches on the
name it was run as (argv[0]) and on its directory (reference/interfaces.md
4): run as <root>/volume/<plugin>/<Interface>.<method> --json or
<root>/datapath/<scheme>/<Interface>.<method> --json, with one line of
JSON (the named arguments) on stdin; the result is JSON on stdout, or an
error {"code", "params", "backtrace"} on stdout with exit status 1.

Volume plugin (volume/org.xen.xapi.storage.xo-file, SR type "xo-file",
required_api_version "5.0"):
  configuration {"path": "<absolute directory>"}; the SR is "file://<dir>".
  A volume is the regular file <dir>/<key> (keys [A-Za-z0-9._-], 1..128,
  not starting with ".", "_" or "-"); name and description live in
  <dir>/.xo-meta/<key>.json. Volume.stat lists two URIs in this order:
  "loop+file://<dir>/<key>" and "file://<dir>/<key>", so a host with the
  loop datapath uses it and one without falls back to plain files.
  Plugin.Query, SR.create/attach/detach/stat/ls, Volume.create/destroy/stat.

Datapath plugins (datapath/loop+file and datapath/file, "5.0"):
  Datapath.attach {dbg, uri, domain}: loop+file binds the file to a loop
  device with losetup (root only) and returns
  [["XenDisk", {"backend_type": "vbd", "params": "/dev/loopN", "extra": {}}],
   ["BlockDevice", {"path": "/dev/loopN"}]]; file returns the path as
  [["XenDisk", {"backend_type": "qdisk", ...}], ["File", {"path": ...}]].
  Datapath.activate / activate_readonly / deactivate / detach
  {dbg, uri, domain}. All idempotent. The state of a volume's datapath
  (device, attaching domain, active domain, read-only) is
  <dir>/.xo-datapath/<key>.json under an flock: a volume is active for at
  most one domain (another domain's activate fails with VDIActive); a
  deactivate from a domain that does not hold the activation changes
  nothing; detach of an active volume fails with VDIActive and otherwise
  runs losetup -d.

Every call is logged and knobs apply (see xo_sm.py).
"""

import json
import os
import subprocess
import sys
import traceback
import urllib.parse
import uuid

# Never write .pyc files next to the driver (a source tree, /usr).
sys.dont_write_bytecode = True
# The plugin scripts are links to this file; a copy (make dist
# dereferences links) finds the library three levels up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import xo_sm  # noqa: E402

API_VERSION = "5.0"
VOLUME_PLUGIN = "xo-file"
SCHEMES = ("loop+file", "file")


class Error(Exception):
    """An error reported the way the xapi python bindings do."""

    def __init__(self, code, params):
        Exception.__init__(self, "%s %s" % (code, params))
        self.code = code
        self.params = params


def backend_failure(kind, message):
    return Error("SR_BACKEND_FAILURE", [kind, message])


def print_error(code, params, message):
    sys.stdout.write(json.dumps({
        "code": code, "params": params,
        "backtrace": {"error": message, "files": [], "lines": []}}) + "\n")
    sys.stdout.flush()


# ---- volume plugin ----------------------------------------------------


def config_dir(configuration):
    path = (configuration or {}).get("path", "")
    if not isinstance(path, str) or not path.startswith("/"):
        raise backend_failure("InvalidConfiguration",
                              "configuration path %r is not absolute"
                              % (path,))
    return os.path.normpath(path)


def sr_dir(sr):
    if not isinstance(sr, str) or not sr.startswith("file:///"):
        raise backend_failure("InvalidSR", "SR %r is not a file:// URI"
                              % (sr,))
    path = urllib.parse.unquote(sr[len("file://"):])
    if not os.path.isdir(path):
        raise backend_failure("SRUnavailable", "SR directory %r is gone"
                              % path)
    return path


def volume_path(sr, key):
    if not xo_sm.valid_name(key):
        raise backend_failure("InvalidKey", "invalid volume key %r" % (key,))
    path = os.path.join(sr_dir(sr), key)
    if not os.path.isfile(path):
        raise Error("SR_BACKEND_FAILURE",
                    ["VolumeDoesNotExist", "volume %r does not exist" % key])
    return path


def meta_path(directory, key):
    return os.path.join(directory, ".xo-meta", key + ".json")


def volume(directory, key):
    path = os.path.join(directory, key)
    st = os.stat(path)
    meta = xo_sm.read_json(meta_path(directory, key), {})
    quoted = urllib.parse.quote(path)
    return {
        "key": key, "uuid": key,
        "name": meta.get("name", key),
        "description": meta.get("description", ""),
        "read_write": True, "sharable": False,
        "virtual_size": st.st_size,
        "physical_utilisation": st.st_blocks * 512,
        "uri": ["loop+file://" + quoted, "file://" + quoted],
        "keys": {},
    }


def plugin_query(args, ctx):
    if ctx["kind"] == "datapath":
        return {"plugin": ctx["plugin"],
                "name": "xenops-c %s datapath" % ctx["plugin"],
                "description": "attaches xo-file volumes (%s)"
                               % ctx["plugin"],
                "vendor": "xenops-c", "copyright": "xenops-c contributors",
                "version": "1.0", "required_api_version": API_VERSION,
                "features": ["VDI_ACTIVATE_READONLY"], "configuration": {},
                "required_cluster_stack": []}
    return {"plugin": VOLUME_PLUGIN,
            "name": "xenops-c file volume plugin",
            "description": "volumes are files in a directory",
            "vendor": "xenops-c", "copyright": "xenops-c contributors",
            "version": "1.0", "required_api_version": API_VERSION,
            "features": ["SR_ATTACH", "SR_DETACH", "SR_CREATE", "SR_STATS",
                         "VDI_CREATE", "VDI_DESTROY", "VDI_ATTACH",
                         "VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE"],
            "configuration": {"path": "absolute path of the SR directory"},
            "required_cluster_stack": []}


def sr_create(args, ctx):
    path = config_dir(args.get("configuration"))
    os.makedirs(path, exist_ok=True)
    xo_sm.write_json(os.path.join(path, ".xo-sr.json"),
                     {"uuid": args.get("uuid", ""),
                      "name": args.get("name", ""),
                      "description": args.get("description", "")})
    return args.get("configuration")


def sr_attach(args, ctx):
    path = config_dir(args.get("configuration"))
    if not os.path.isdir(path):
        raise backend_failure("SRUnavailable", "%r is not a directory"
                              % path)
    return "file://" + urllib.parse.quote(path)


def sr_detach(args, ctx):
    return None


def sr_stat(args, ctx):
    path = sr_dir(args.get("sr"))
    meta = xo_sm.read_json(os.path.join(path, ".xo-sr.json"), {})
    vfs = os.statvfs(path)
    return {"sr": args["sr"], "uuid": meta.get("uuid"),
            "name": meta.get("name", os.path.basename(path)),
            "description": meta.get("description", ""),
            "total_space": vfs.f_blocks * vfs.f_frsize,
            "free_space": vfs.f_bavail * vfs.f_frsize,
            "datasources": [], "clustered": False,
            "health": ["Healthy", ""]}


def sr_ls(args, ctx):
    path = sr_dir(args.get("sr"))
    return [volume(path, k) for k in sorted(os.listdir(path))
            if xo_sm.valid_name(k) and os.path.isfile(os.path.join(path, k))]


def volume_create(args, ctx):
    path = sr_dir(args.get("sr"))
    key = str(uuid.uuid4())
    with open(os.path.join(path, key), "x") as f:
        f.truncate(int(args.get("size", 0)))
    os.makedirs(os.path.join(path, ".xo-meta"), exist_ok=True)
    xo_sm.write_json(meta_path(path, key),
                     {"name": args.get("name", key),
                      "description": args.get("description", "")})
    return volume(path, key)


def volume_destroy(args, ctx):
    path = volume_path(args.get("sr"), args.get("key"))
    directory, key = os.path.split(path)
    if os.path.exists(state_path(directory, key)):
        raise backend_failure("VDIInUse", "volume %r is attached" % key)
    os.unlink(path)
    if os.path.exists(meta_path(directory, key)):
        os.unlink(meta_path(directory, key))


def volume_stat(args, ctx):
    path = volume_path(args.get("sr"), args.get("key"))
    return volume(*os.path.split(path))


# ---- datapath plugins -------------------------------------------------


def state_path(directory, key):
    return os.path.join(directory, ".xo-datapath", key + ".json")


class Datapath:
    """A volume's datapath state, locked for one command."""

    def __init__(self, args, ctx):
        uri = args.get("uri", "")
        scheme, _, rest = uri.partition("://")
        if scheme != ctx["plugin"] or not rest.startswith("/"):
            raise backend_failure("InvalidURI", "URI %r is not for the %s "
                                  "datapath" % (uri, ctx["plugin"]))
        self.file = urllib.parse.unquote(rest)
        directory, self.key = os.path.split(self.file)
        if not xo_sm.valid_name(self.key) or not os.path.isfile(self.file):
            raise Error("SR_BACKEND_FAILURE",
                        ["VolumeDoesNotExist", "no volume at %r" % self.file])
        self.domain = args.get("domain", "")
        self.path = state_path(directory, self.key)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.lock = xo_sm.FileLock(os.path.join(os.path.dirname(self.path),
                                                ".lock"))
        self.state = None

    def __enter__(self):
        self.lock.__enter__()
        self.state = xo_sm.read_json(self.path)
        return self

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

    def save(self):
        if self.state is None:
            if os.path.exists(self.path):
                os.unlink(self.path)
        else:
            xo_sm.write_json(self.path, self.state)


def loop_backs(device, path):
    """Whether loop device `device` is bound to the file `path`."""
    name = os.path.basename(device)
    try:
        with open("/sys/block/%s/loop/backing_file" % name) as f:
            backing = f.read().strip()
    except OSError:
        return False
    return os.path.realpath(backing) == os.path.realpath(path)


def run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        raise backend_failure("CommandFailed", "%s: exit %d: %s"
                              % (" ".join(argv), p.returncode,
                                 p.stderr.strip()))
    return p.stdout.strip()


def implementations(scheme, device):
    if scheme == "loop+file":
        return {"implementations": [
            ["XenDisk", {"backend_type": "vbd", "params": device,
                         "extra": {}}],
            ["BlockDevice", {"path": device}]]}
    return {"implementations": [
        ["XenDisk", {"backend_type": "qdisk", "params": device, "extra": {}}],
        ["File", {"path": device}]]}


def datapath_attach(args, ctx):
    with Datapath(args, ctx) as dp:
        st = dp.state
        if st and (ctx["plugin"] != "loop+file"
                   or loop_backs(st["device"], dp.file)):
            return implementations(ctx["plugin"], st["device"])
        if ctx["plugin"] == "loop+file":
            device = run(["losetup", "--find", "--show", dp.file])
        else:
            device = dp.file
        dp.state = {"scheme": ctx["plugin"], "device": device,
                    "attached_domain": dp.domain, "active_domain": None,
                    "readonly": False}
        dp.save()
        return implementations(ctx["plugin"], device)


def activate(args, ctx, readonly):
    with Datapath(args, ctx) as dp:
        if not dp.state:
            raise backend_failure("NotAttached", "volume %r is not attached"
                                  % dp.key)
        active = dp.state.get("active_domain")
        if active is not None and active != dp.domain:
            raise backend_failure("VDIActive", "volume %r is active for "
                                  "domain %r" % (dp.key, active))
        dp.state["active_domain"] = dp.domain
        dp.state["readonly"] = readonly
        dp.save()


def datapath_activate(args, ctx):
    activate(args, ctx, False)


def datapath_activate_readonly(args, ctx):
    activate(args, ctx, True)


def datapath_deactivate(args, ctx):
    with Datapath(args, ctx) as dp:
        if not dp.state or dp.state.get("active_domain") != dp.domain:
            return None
        dp.state["active_domain"] = None
        dp.state["readonly"] = False
        dp.save()


def datapath_detach(args, ctx):
    with Datapath(args, ctx) as dp:
        if not dp.state:
            return None
        if dp.state.get("active_domain") is not None:
            raise backend_failure("VDIActive", "volume %r is still active "
                                  "for domain %r"
                                  % (dp.key, dp.state["active_domain"]))
        device = dp.state["device"]
        if dp.state["scheme"] == "loop+file" and loop_backs(device, dp.file):
            run(["losetup", "--detach", device])
        dp.state = None
        dp.save()


VOLUME_COMMANDS = {
    "plugin.query": plugin_query,
    "sr.create": sr_create,
    "sr.attach": sr_attach,
    "sr.detach": sr_detach,
    "sr.stat": sr_stat,
    "sr.ls": sr_ls,
    "volume.create": volume_create,
    "volume.destroy": volume_destroy,
    "volume.stat": volume_stat,
}

DATAPATH_COMMANDS = {
    "plugin.query": plugin_query,
    "datapath.attach": datapath_attach,
    "datapath.activate": datapath_activate,
    "datapath.activate_readonly": datapath_activate_readonly,
    "datapath.deactivate": datapath_deactivate,
    "datapath.detach": datapath_detach,
}


def call_vdi(args):
    """The volume key a call is about (for knob matching), or None."""
    if "key" in args:
        return args["key"]
    uri = args.get("uri")
    if isinstance(uri, str):
        return os.path.basename(urllib.parse.unquote(uri))
    return None


def log_dir(args):
    """The SR directory of a call, if it names one that exists."""
    candidate = None
    if isinstance(args.get("sr"), str) and args["sr"].startswith("file://"):
        candidate = urllib.parse.unquote(args["sr"][len("file://"):])
    elif isinstance(args.get("uri"), str) and "://" in args["uri"]:
        candidate = os.path.dirname(
            urllib.parse.unquote(args["uri"].partition("://")[2]))
    elif isinstance(args.get("configuration"), dict):
        candidate = args["configuration"].get("path")
    if isinstance(candidate, str) and os.path.isdir(candidate):
        return candidate
    return None


def main():
    script = sys.argv[0]
    command = os.path.basename(script)
    plugin_dir = os.path.dirname(os.path.abspath(script))
    ctx = {"plugin": os.path.basename(plugin_dir),
           "kind": os.path.basename(os.path.dirname(plugin_dir))}
    table = DATAPATH_COMMANDS if ctx["kind"] == "datapath" else \
        VOLUME_COMMANDS
    if sys.argv[1:] != ["--json"]:
        print_error("INCORRECT_PARAMETERS", [script, "usage: --json"],
                    "bad arguments")
        return 1
    try:
        args = json.loads(sys.stdin.readline())
        if not isinstance(args, dict):
            raise ValueError("arguments are not a JSON object")
    except ValueError as e:
        print_error("INCORRECT_PARAMETERS", [script, str(e)], str(e))
        return 1
    xo_sm.log_call(ctx["plugin"], command, args, log_dir(args))

    def injected(code):
        name = xo_sm.knob_names(command, ["DATAPATH_"])[-1]
        print_error(code or "SR_BACKEND_FAILURE",
                    ["InjectedFailure",
                     "injected failure (XO_SM_FAIL_%s)" % name],
                    "injected failure")
        sys.exit(1)

    xo_sm.apply_knobs(xo_sm.knob_names(command, ["DATAPATH_"]),
                      call_vdi(args), injected)
    fn = table.get(command.lower())
    if fn is None:
        print_error("SR_BACKEND_FAILURE",
                    ["Unimplemented", "%s is not implemented" % command],
                    "unimplemented")
        return 1
    try:
        result = fn(args, ctx)
    except Error as e:
        print_error(e.code, e.params, str(e))
        return 1
    except Exception as e:
        traceback.print_exc()
        print_error("SR_BACKEND_FAILURE", [type(e).__name__, str(e)],
                    str(e))
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
