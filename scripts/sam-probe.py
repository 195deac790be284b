#!/usr/bin/env python3
"""Throughput of one I2P stream through a router's SAM bridge, without bob-server.

Usage: scripts/sam-probe.py SAMPORT | scripts/sam-probe.py --bob BOBPORT

Creates two STREAM sessions on the router at 127.0.0.1:SAMPORT, then per run opens a
STREAM ACCEPT on one and a STREAM CONNECT from the other, writes MIB MiB in WRITE-byte
writes and reports MiB/s (and the load average) per run, then the median. With
--bob BOBPORT it measures the same through the router's own BOB (two BOB tunnels, a
server one in front of a local sink and a client one), as the baseline for the SAM runs.

Environment: MIB (per run, default 16), RUNS (default 5), WRITE (bytes per sendall,
default 65536), OPTS (SESSION CREATE / BOB option line, default: 0-hop, 1 tunnel, LS1),
EXTRA (appended to OPTS, e.g. "i2p.streaming.initialAckDelay=10").

Used to find why i2pd 2.56's SAM streams run at 0.5 MiB/s (docs/benchmarks.md).
"""
import os
import socket
import statistics
import sys
import threading
import time

HOST = "127.0.0.1"
MIB = int(os.environ.get("MIB", "16"))
RUNS = int(os.environ.get("RUNS", "5"))
WRITE = int(os.environ.get("WRITE", "65536"))
OPTS = os.environ.get(
    "OPTS",
    "inbound.length=0 outbound.length=0 inbound.quantity=1 outbound.quantity=1 "
    "i2cp.leaseSetType=1 i2cp.leaseSetEncType=0",
)
OPTS = (OPTS + " " + os.environ.get("EXTRA", "")).strip()
TIMEOUT = 300


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Line:
    """A socket read line by line (bounded), then handed over raw."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def line(self):
        out = b""
        while not out.endswith(b"\n"):
            c = self.s.recv(1)
            if not c or len(out) > 4096:
                raise RuntimeError(f"connection closed or line too long: {out!r}")
            out += c
        return out.decode().strip()

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\n")
        return self.line()


def sam(port):
    c = Line(port)
    r = c.cmd("HELLO VERSION MIN=3.1 MAX=3.1")
    if "RESULT=OK" not in r:
        raise RuntimeError(r)
    return c


def sink(sock, want, got, done):
    buf = bytearray(1 << 16)
    while got[0] < want:
        k = sock.recv_into(buf)
        if k == 0:
            break
        got[0] += k
    done.set()


def pump(sock, n):
    data = b"Z" * WRITE
    left = n
    while left > 0:
        k = min(left, WRITE)
        sock.sendall(data[:k])
        left -= k


def timed(rx, tx, n, skip_line):
    got, done = [0], threading.Event()

    def reader():
        if skip_line:
            Line.line(rx)  # the peer's destination line
        sink(rx.s, n, got, done)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    t = time.monotonic()
    pump(tx.s, n)
    done.wait(TIMEOUT)
    dt = time.monotonic() - t
    if got[0] < n:
        raise RuntimeError(f"only {got[0]} of {n} bytes arrived")
    return n / dt / 1048576


def sam_runs(port):
    tag = str(os.getpid())
    sessions = {}

    def create(name):
        c = sam(port)
        r = c.cmd(f"SESSION CREATE STYLE=STREAM ID={name}{tag} DESTINATION=TRANSIENT "
                  f"SIGNATURE_TYPE=7 {OPTS}")
        if "RESULT=OK" not in r:
            raise RuntimeError(r)
        sessions[name] = c

    ths = [threading.Thread(target=create, args=(n,)) for n in ("c", "s")]
    [t.start() for t in ths]
    [t.join() for t in ths]
    dest = sessions["s"].cmd("NAMING LOOKUP NAME=ME").split("VALUE=")[1].split()[0]

    def one(n):
        a = sam(port)
        r = a.cmd(f"STREAM ACCEPT ID=s{tag} SILENT=false")
        if "RESULT=OK" not in r:
            raise RuntimeError(r)
        c = sam(port)
        r = c.cmd(f"STREAM CONNECT ID=c{tag} DESTINATION={dest} SILENT=false")
        if "RESULT=OK" not in r:
            raise RuntimeError(r)
        try:
            return timed(a, c, n, True)
        finally:
            a.s.close()
            c.s.close()

    one.sessions = sessions  # the sessions live as long as their control sockets
    return one


def bob_runs(port):
    tag = str(os.getpid())
    lst = socket.socket()
    lst.bind((HOST, 0))
    lst.listen(4)
    ctls = []
    opts = [f"option {o}" for o in OPTS.split()]
    inport = socket.socket()
    inport.bind((HOST, 0))
    free = inport.getsockname()[1]
    inport.close()
    for nick, extra in ((f"s{tag}", [f"outhost {HOST}", f"outport {lst.getsockname()[1]}",
                                      "quiet true"]),
                        (f"c{tag}", [f"inhost {HOST}", f"inport {free}"])):
        ctl = Line(port)  # one control connection per tunnel (i2pd's setnick renames)
        ctl.line(), ctl.line()  # banner
        ctls.append(ctl)
        for c in [f"setnick {nick}", "newkeys"] + opts + extra:
            r = ctl.cmd(c)
            if not r.startswith("OK"):
                raise RuntimeError(f"BOB {c}: {r}")
        if nick.startswith("s"):
            server_dest = ctl.cmd("getdest").split(" ", 1)[1]
        r = ctl.cmd("start")
        if not r.startswith("OK"):
            raise RuntimeError(f"BOB start {nick}: {r}")
    deadline = time.monotonic() + 120

    def one(n):
        while True:
            c = Line(free)
            c.s.sendall(server_dest.encode() + b"\n")
            lst.settimeout(30)
            try:
                a, _ = lst.accept()
                break
            except socket.timeout:
                c.s.close()
                if time.monotonic() > deadline:
                    raise
        rx = Line.__new__(Line)
        rx.s = a
        try:
            return timed(rx, c, n, False)
        finally:
            a.close()
            c.s.close()

    one.keep = (ctls, lst)  # closing the control socket would not stop i2pd's tunnels
    return one


def main():
    args = sys.argv[1:]
    kind = "SAM"
    if args[:1] == ["--bob"]:
        kind, args = "BOB", args[1:]
    if len(args) != 1 or not args[0].isdigit():
        sys.exit(__doc__)
    port = int(args[0])
    one = sam_runs(port) if kind == "SAM" else bob_runs(port)
    one(1 << 18)  # warm-up: tunnels, lease set lookup
    figures = []
    for i in range(RUNS):
        v = one(MIB << 20)
        figures.append(v)
        print(f"{kind} run {i}: {v:.2f} MiB/s (load {load()})", flush=True)
    print(f"{kind} median {statistics.median(figures):.2f} MiB/s over {RUNS} runs of {MIB} MiB, "
          f"writes of {WRITE} bytes, options: {OPTS}")


if __name__ == "__main__":
    main()
