#!/usr/bin/python3
"""xenlab agent: runs in each lab dom0 and does what `scripts/xenlab` asks.

The host reaches it through QEMU's user-mode network (a port forwarded from
127.0.0.1 on the host). One request per connection:

  request   4-byte big-endian length, then a JSON object
  reply     frames: 1 type byte, 4-byte big-endian length, payload
            'O' stdout bytes, 'E' stderr bytes, 'D' file bytes,
            'X' the end: payload is the exit status in ASCII

ops: run {argv, timeout?}, put {path, mode, size} + size raw bytes,
get {path}, ping (0 once xl answers), settime {ns}, adjust {ns}, time, poweroff.  No shell is involved: argv is executed as it is.
"""
import json
import os
import select
import signal
import socketserver
import struct
import subprocess
import sys
import threading
import time

PORT = 7000
READY = "/run/xenlab-ready"
MAX_REQUEST = 1 << 20


def frame(sock, kind, payload):
    sock.sendall(kind + struct.pack(">I", len(payload)) + payload)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 16))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def run(sock, req):
    argv = req.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        frame(sock, b"E", b"agent: argv must be a non-empty list of strings\n")
        return 2
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        frame(sock, b"E", ("agent: %s: %s\n" % (argv[0], e.strerror)).encode())
        return 127
    streams = {proc.stdout.fileno(): b"O", proc.stderr.fileno(): b"E"}
    timeout = req.get("timeout")
    deadline = None if not timeout else (os.times().elapsed + float(timeout))
    # A closed client connection (the host's Ctrl-C) ends the command too.
    watch = list(streams) + [sock.fileno()]
    while streams:
        wait = None if deadline is None else max(0.0, deadline - os.times().elapsed)
        ready, _, _ = select.select(watch, [], [], wait)
        if not ready:
            os.killpg(proc.pid, signal.SIGKILL)
            frame(sock, b"E", b"agent: command timed out\n")
            break
        for fd in ready:
            if fd == sock.fileno():
                if not sock.recv(1, 0):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return None
                continue
            data = os.read(fd, 1 << 16)
            if data:
                frame(sock, streams[fd], data)
            else:
                watch.remove(fd)
                del streams[fd]
    rc = proc.wait()
    return rc if rc >= 0 else 128 - rc


def put(sock, req):
    path, size, mode = req.get("path"), req.get("size"), req.get("mode", 0o644)
    if not isinstance(path, str) or not path.startswith("/") or not isinstance(size, int) or size < 0:
        frame(sock, b"E", b"agent: put needs an absolute path and a size\n")
        return 2
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    tmp = path + ".xenlab-tmp"
    with open(tmp, "wb") as f:
        left = size
        while left:
            chunk = sock.recv(min(left, 1 << 16))
            if not chunk:
                raise EOFError("connection closed during put")
            f.write(chunk)
            left -= len(chunk)
    os.chmod(tmp, mode & 0o7777)
    os.rename(tmp, path)
    return 0


def get(sock, req):
    path = req.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        frame(sock, b"E", b"agent: get needs an absolute path\n")
        return 2
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                frame(sock, b"D", chunk)
    except OSError as e:
        frame(sock, b"E", ("agent: %s: %s\n" % (path, e.strerror)).encode())
        return 1
    return 0


def poweroff():
    # Let the reply go out, then stop the way a power button would: the
    # shared directory is unmounted cleanly and Xen powers the machine off.
    def later():
        subprocess.call(["sh", "-c", "sync; umount /shared 2>/dev/null; sleep 0.5; echo o > /proc/sysrq-trigger"])
    threading.Timer(0.2, later).start()
    return 0


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        try:
            (n,) = struct.unpack(">I", recv_exact(sock, 4))
            if n > MAX_REQUEST:
                frame(sock, b"E", b"agent: request too large\n")
                frame(sock, b"X", b"2")
                return
            req = json.loads(recv_exact(sock, n))
            op = req.get("op")
            if op == "run":
                rc = run(sock, req)
            elif op == "put":
                rc = put(sock, req)
            elif op == "get":
                rc = get(sock, req)
            elif op == "ping":
                # 0 once dom0's init has seen xl answer, 1 before.
                rc = 0 if os.path.exists(READY) else 1
            elif op == "settime":
                # Set in-process: a spawned date(1) would add its start-up
                # time to the error.
                time.clock_settime_ns(time.CLOCK_REALTIME, int(req["ns"]))
                rc = 0
            elif op == "adjust":
                time.clock_settime_ns(time.CLOCK_REALTIME, time.time_ns() + int(req["ns"]))
                rc = 0
            elif op == "time":
                frame(sock, b"O", json.dumps({"ns": time.time_ns()}).encode())
                rc = 0
            elif op == "poweroff":
                rc = poweroff()
            else:
                frame(sock, b"E", ("agent: unknown op %r\n" % op).encode())
                rc = 2
            if rc is not None:
                frame(sock, b"X", str(rc).encode())
        except (EOFError, ConnectionError, ValueError) as e:
            sys.stderr.write("agent: %s\n" % e)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    with Server(("0.0.0.0", PORT), Handler) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    main()
