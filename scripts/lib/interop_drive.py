#!/usr/bin/env python3
"""Driver for scripts/interop-i2pd.sh (standard library only).

  interop_drive.py ri-name FILE   routerInfo-<hash>.dat for a RouterInfo file
  interop_drive.py run ...        both directions, BOB on bob-server <-> SAM on i2pd

A destination hosted on i2pd (SAM session + STREAM FORWARD to a local echo server) is
reached from a BOB client tunnel on bob-server (embedded emissary router), and a BOB
server tunnel on bob-server (in front of a local echo server) is reached from an i2pd SAM
session; both by base64 and by .b32.i2p. Then BOB to BOB: a client tunnel on i2pd's own
BOB reaches the bob-server server tunnel, and the bob-server client tunnel reaches a server
tunnel on i2pd's BOB. Payloads are random; the echo must come back byte-exact. Prints the time to the
first echoed byte and to the whole echo, and on failure the step that failed plus the
routers' log lines that say why.
"""

import argparse
import base64
import glob
import hashlib
import os
import re
import socket
import sys
import threading
import time

T0 = time.monotonic()
LINE_MAX = 64 * 1024


def log(msg):
    print(f"[drive {time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def i2p_b64(b):
    return base64.b64encode(b).decode().replace("+", "-").replace("/", "~")


def b32_of(pub_b64):
    """name.b32.i2p of a base64 (I2P alphabet) Destination"""
    raw = base64.b64decode(pub_b64.replace("-", "+").replace("~", "/"))
    return base64.b32encode(hashlib.sha256(raw).digest()).decode().lower().rstrip("=") + ".b32.i2p"


def ri_name(path):
    """routerInfo-<I2P base64 of SHA-256(RouterIdentity)>.dat"""
    data = open(path, "rb").read()
    if len(data) < 387:
        raise ValueError("too short for a RouterInfo")
    # RouterIdentity: 256 B public key + 128 B signing key (padding) + certificate
    # (type 1 B, length 2 B, payload)
    cert_len = int.from_bytes(data[385:387], "big")
    ident = data[: 387 + cert_len]
    return "routerInfo-" + i2p_b64(hashlib.sha256(ident).digest()) + ".dat"


class Conn:
    """A line-oriented TCP connection that can turn into a byte stream."""

    def __init__(self, addr, timeout=30):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def line(self, timeout=None):
        if timeout is not None:
            self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                if self.buf:  # a reply ended by EOF
                    out, self.buf = self.buf, b""
                    return out.decode(errors="replace").rstrip("\r")
                raise EOFError("connection closed")
            self.buf += chunk
            if len(self.buf) > LINE_MAX:
                raise ValueError("reply line too long")
        out, self.buf = self.buf.split(b"\n", 1)
        return out.decode(errors="replace").rstrip("\r")

    def send(self, text):
        self.s.sendall(text.encode() + b"\n")

    def cmd(self, text, timeout=None):
        self.send(text)
        return self.line(timeout)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def kv(line):
    return dict(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", line))


class Fail(Exception):
    pass


# --- local echo servers -------------------------------------------------------------------
class Echo:
    def __init__(self, name):
        self.name = name
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            c, _ = self.ls.accept()
            self.conns += 1
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    @staticmethod
    def echo(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()


def exchange(sock, payload, deadline):
    """Sends payload, reads the same number of bytes back; returns (ttfb, total) in s."""
    start = time.monotonic()
    got = bytearray()
    first = None
    def send():
        # a refused try closes the socket under this thread: the retry reports it, not this
        try:
            sock.sendall(payload)
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while len(got) < len(payload):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"timed out after {len(got)} of {len(payload)} bytes")
        sock.settimeout(min(left, 60))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            raise Fail(f"no data for 60 s after {len(got)} of {len(payload)} bytes")
        if not d:
            raise Fail(f"closed after {len(got)} of {len(payload)} bytes")
        if first is None:
            first = time.monotonic() - start
        got += d
    if bytes(got) != payload:
        i = next(i for i in range(len(payload)) if got[i] != payload[i])
        raise Fail(f"echo differs from what was sent at byte {i}")
    return first, time.monotonic() - start


# --- SAM (i2pd) ---------------------------------------------------------------------------
HOPS = int(os.environ.get("INTEROP_HOPS", "1"))
# LeaseSet2 (type 3) with ECIES-X25519 (4): what both implementations support; override
# with INTEROP_SAM_OPTS (e.g. "" for i2pd's defaults)
SAM_OPTS = "SIGNATURE_TYPE=7 " + os.environ.get(
    "INTEROP_SAM_OPTS",
    f"inbound.length={HOPS} outbound.length={HOPS} inbound.quantity=2 outbound.quantity=2 "
    "i2cp.leaseSetType=3 i2cp.leaseSetEncType=4",
)


def sam_hello(addr):
    c = Conn(addr)
    r = c.cmd("HELLO VERSION MIN=3.1 MAX=3.3", 10)
    if "RESULT=OK" not in r:
        raise Fail(f"SAM HELLO: {r}")
    return c


def sam_session(addr, sid, dest, timeout):
    c = sam_hello(addr)
    t = time.monotonic()
    r = c.cmd(f"SESSION CREATE STYLE=STREAM ID={sid} DESTINATION={dest} {SAM_OPTS}", timeout)
    if "RESULT=OK" not in r:
        raise Fail(f"i2pd SAM SESSION CREATE {sid}: {r}")
    log(f"i2pd SAM session {sid} ready in {time.monotonic() - t:.1f} s")
    return c


# --- BOB (bob-server) ---------------------------------------------------------------------
def bob_conn(addr):
    c = Conn(addr)
    for _ in range(2):  # "BOB 00.00.10", "OK"
        c.line(10)
    return c


def bob(c, cmd, want="OK", timeout=60):
    r = c.cmd(cmd, timeout)
    if not r.startswith(want):
        raise Fail(f"BOB `{cmd}` answered `{r}`")
    return r


BOB_OPTS = [f"inbound.length={HOPS}", f"outbound.length={HOPS}", "inbound.quantity=2", "outbound.quantity=2"]


def bob_tunnel(addr, nick, extra, opts=None):
    c = bob_conn(addr)
    bob(c, f"setnick {nick}")
    dest = bob(c, "newkeys").split(" ", 1)[1]
    for o in BOB_OPTS if opts is None else opts:
        bob(c, f"option {o}")
    for e in extra:
        bob(c, e)
    r = bob(c, "start", timeout=120)
    log(f"BOB tunnel {nick}: start -> {r}")
    return c, dest


def bob_wait_running(c, nicks, deadline):
    while True:
        c.send("list")
        lines = []
        while True:
            line = c.line(30)
            if not line.startswith("DATA"):
                break
            lines.append(line)
        running = {n for n in nicks for line in lines if f"NICKNAME: {n} " in line and "RUNNING: true" in line}
        if running == set(nicks):
            return
        if time.monotonic() > deadline:
            raise Fail("BOB tunnels not RUNNING: " + " | ".join(lines))
        time.sleep(0.5)


# --- the directions -----------------------------------------------------------------------
def attempt_loop(name, deadline, once):
    """Retries `once` (connection refused, closed early, CANT_REACH_PEER) until deadline."""
    start = time.monotonic()
    tries = 0
    last = None
    while time.monotonic() < deadline:
        tries += 1
        try:
            ttfb, total = once(deadline)
            return tries, time.monotonic() - start, ttfb, total
        except (Fail, OSError, EOFError) as e:
            if str(e) != str(last):
                log(f"{name}: try {tries}: {e}")
            last = e
            time.sleep(2)
    raise Fail(f"{name}: no byte-exact echo after {tries} tries in {time.monotonic() - start:.0f} s; last: {last}")


def run(a):
    results = {}
    payload_a = os.urandom(a.bytes)
    payload_b = os.urandom(a.bytes)
    echo_a = Echo("behind i2pd")
    echo_b = Echo("behind bob-server")
    step = "setup"
    try:
        # i2pd side: a destination with a forward to echo_a, and a client session
        step = "i2pd SAM: DEST GENERATE"
        c = sam_hello(a.sam)
        r = c.cmd("DEST GENERATE SIGNATURE_TYPE=7", 30)
        d = kv(r)
        i2pd_pub, i2pd_priv = d.get("PUB"), d.get("PRIV")
        if not i2pd_pub:
            raise Fail(f"DEST GENERATE: {r}")
        c.close()
        step = "i2pd SAM: SESSION CREATE (both, in parallel) + BOB tunnels on bob-server"
        sessions = {}
        errors = []

        def mk(sid, dest):
            try:
                sessions[sid] = sam_session(a.sam, sid, dest, a.timeout)
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(e)

        th = [
            threading.Thread(target=mk, args=("srv", i2pd_priv)),
            threading.Thread(target=mk, args=("cli", "TRANSIENT")),
        ]
        for t in th:
            t.start()
        # bob-server side meanwhile: server tunnel (quiet: no destination line to the echo)
        # and client tunnel
        srv, bob_dest = bob_tunnel(a.bob, "isrv", ["outhost 127.0.0.1", f"outport {echo_b.port}", "quiet true"])
        inport_sock = socket.socket()
        inport_sock.bind(("127.0.0.1", 0))
        inport = inport_sock.getsockname()[1]
        inport_sock.close()
        cli, _ = bob_tunnel(a.bob, "icli", ["inhost 127.0.0.1", f"inport {inport}"])
        for t in th:
            t.join()
        if errors:
            raise errors[0]
        fwd = sam_hello(a.sam)
        r = fwd.cmd(f"STREAM FORWARD ID=srv PORT={echo_a.port} HOST=127.0.0.1 SILENT=true", 30)
        if "RESULT=OK" not in r:
            raise Fail(f"i2pd STREAM FORWARD: {r}")
        step = "BOB tunnels RUNNING"
        bob_wait_running(cli, ["isrv", "icli"], time.monotonic() + a.timeout)
        log("both BOB tunnels RUNNING; i2pd sessions up")
        t_ready = time.monotonic()

        # one try through a BOB client tunnel's inport: the destination line, then the echo
        # ((a): bob-server's client tunnel -> i2pd-hosted destination, by base64, then by b32,
        # a NAMING LOOKUP through emissary's netDb; (c), (d): across the two BOBs)
        def once_tcp(port, target, payload):
            def once(deadline):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                try:
                    s.sendall(target.encode() + b"\n")
                    return exchange(s, payload, deadline)
                finally:
                    s.close()

            return once

        # (b) i2pd SAM client -> bob-server server tunnel, by base64, then by b32
        def once_b(target, payload):
            def once(deadline):
                c = sam_hello(a.sam)
                try:
                    r = c.cmd(f"STREAM CONNECT ID=cli DESTINATION={target} SILENT=false", 90)
                    if "RESULT=OK" not in r:
                        raise Fail(f"STREAM CONNECT: {r}")
                    if c.buf:
                        raise Fail("unexpected data before the echo")
                    return exchange(c.s, payload, deadline)
                finally:
                    c.close()

            return once

        # i2pd's own BOB (never `stop`/`clear` there: 2.56 crashes on that; closing the
        # control connection leaves the tunnels up until i2pd stops)
        step = "i2pd BOB: client tunnel and server tunnel"
        echo_d = Echo("behind i2pd's BOB")
        i2pd_bob_opts = BOB_OPTS + ["i2cp.leaseSetType=3", "i2cp.leaseSetEncType=4"]
        iport_sock = socket.socket()
        iport_sock.bind(("127.0.0.1", 0))
        i2pd_inport = iport_sock.getsockname()[1]
        iport_sock.close()
        ibc, _ = bob_tunnel(a.i2pd_bob, "ibcli", ["inhost 127.0.0.1", f"inport {i2pd_inport}"], i2pd_bob_opts)
        ibs, i2pd_bob_dest = bob_tunnel(
            a.i2pd_bob, "ibsrv", ["outhost 127.0.0.1", f"outport {echo_d.port}", "quiet true"], i2pd_bob_opts
        )

        cases = [
            ("a", "bob-server BOB client tunnel -> i2pd destination, base64", once_tcp(inport, i2pd_pub, payload_a)),
            ("b", "i2pd SAM STREAM CONNECT -> bob-server BOB server tunnel, base64", once_b(bob_dest, payload_b)),
            ("a32", "bob-server BOB client tunnel -> i2pd destination, " + b32_of(i2pd_pub), once_tcp(inport, b32_of(i2pd_pub), payload_a)),
            ("b32", "i2pd SAM STREAM CONNECT -> bob-server server tunnel, " + b32_of(bob_dest), once_b(b32_of(bob_dest), payload_b)),
            ("c", "i2pd BOB client tunnel -> bob-server BOB server tunnel, base64", once_tcp(i2pd_inport, bob_dest, payload_b)),
            ("d", "bob-server BOB client tunnel -> i2pd BOB server tunnel, base64", once_tcp(inport, i2pd_bob_dest, payload_a)),
        ]
        for key, what, once in cases:
            step = f"({key}) {what}"
            log(f"{step}: {a.bytes} bytes")
            t = time.monotonic()
            tries, elapsed, ttfb, total = attempt_loop(f"({key})", t + a.timeout, once)
            results[key] = (tries, elapsed, ttfb, total, t - T0)
            log(
                f"({key}) OK byte-exact: {a.bytes} B after {tries} tries, {elapsed:.1f} s; "
                f"successful try: first byte {ttfb:.2f} s, whole echo {total:.2f} s"
            )
        for c in (srv, cli, ibc, ibs):
            c.close()
        for c in sessions.values():
            c.close()
        fwd.close()
    except (Fail, OSError, EOFError) as e:
        log(f"FAILED at step: {step}: {e}")
        evidence(a.dir, a.i2pd)
        return 1
    log(f"tunnels and sessions ready {t_ready - T0:.1f} s after the driver started (bob-server was up)")
    for key, (tries, elapsed, ttfb, total, at) in results.items():
        print(
            f"RESULT ({key}) OK byte-exact {a.bytes} B: first byte {ttfb:.2f} s, echo {total:.2f} s, "
            f"tries {tries}, {elapsed:.1f} s incl. retries, started at {at:.1f} s"
        )
    evidence(a.dir, a.i2pd, brief=True)
    return 0


# --- evidence from the logs ---------------------------------------------------------------
def i2pd_patterns(emissary_id):
    e = re.escape(emissary_id) if emissary_id else "(?!)"
    return [
        ("refused loopback inbound", r"Incoming connection from invalid IP"),
        ("has the embedded router's RouterInfo", rf"RouterInfo (added|updated): {e}"),
        ("own tunnels built", r"Tunnel: (Inbound|Outbound) tunnel \d+ has been created"),
        ("tunnel builds declined/failed", r"(?i)tunnel.*(declined|build.*fail|rejected)"),
        ("transit tunnels carried", r"TransitTunnel: .* created"),
        ("LeaseSets stored", r"LeaseSet2? (updated|added)"),
        ("LeaseSet/lookup problems", r"(?i)(leaseset.*(not found|expired|invalid|failed)|can't publish)"),
        ("crypto/signature unsupported", r"(?i)(unsupported|unknown (crypto|signature))"),
        ("SAM errors (other than close)", r"SAM: .*(?<!End of file)(?<!Operation canceled)$"),
    ]


EMISSARY_PATTERNS = [
    ("tunnels built", r"tunnel built name="),
    ("tunnel build failures", r"(?i)(tunnel build (failed|rejected)|build.*fail|not enough routers)"),
    ("RouterInfo published to floodfills", r"publish router info"),
    ("end-to-end sessions", r"new session started"),
    ("lookup failures", r"(?i)(lease set not found|NoFloodfills|query failed|lookup failed)"),
    ("NTCP2 problems", r"(?i)ntcp2.*(error|fail|reject)"),
    ("transit tunnels at shutdown", r"waiting for transit tunnels to expire"),
]


def evidence(d, n, brief=False):
    emissary_id = None
    try:
        emissary_id = ri_name(os.path.join(d, "bob", "router", "router.info"))[11:-4]
    except (OSError, ValueError):
        pass
    logs = [(f"i2pd {i}", os.path.join(d, f"i2pd{i}", "i2pd.log"), i2pd_patterns(emissary_id)) for i in range(n)]
    logs.append(("bob-server (emissary)", os.path.join(d, "bob", "server.log"), EMISSARY_PATTERNS))
    print(f"---- evidence: log line counts (embedded router {emissary_id}; logs in {d}) ----")
    seen = {}
    for name, path, patterns in logs:
        try:
            text = open(path, errors="replace").read().splitlines()
        except OSError:
            continue
        counts = []
        samples = []
        for label, pat in patterns:
            rx = re.compile(pat)
            hits = [line for line in text if rx.search(line)]
            seen[(name, label)] = len(hits)
            if hits:
                counts.append(f"{label}: {len(hits)}")
                samples.append(hits[-1][-200:])
        print(f"{name}: " + ("; ".join(counts) or "none of the patterns"))
        if not brief:
            for s in samples:
                print(f"    {s}")
    for f in sorted(glob.glob(os.path.join(d, "i2pd*", "stdout.log"))):
        t = open(f, errors="replace").read().strip()
        if t:
            print(f"{f}: {t[-300:]}")
    if not brief:
        diagnose(seen, n)


def diagnose(seen, n):
    """What the counts say, most basic cause first."""
    i2pds = [f"i2pd {i}" for i in range(n)]
    emi = "bob-server (emissary)"
    said = False
    if any(seen.get((r, "refused loopback inbound"), 0) for r in i2pds):
        print(
            "DIAGNOSIS: i2pd refuses inbound NTCP2 from 127.0.0.1 whatever `reservedrange` says "
            "(i2pd before 2.51, e.g. Debian bookworm's 2.45.1): no router-to-router links, so no tunnels"
        )
        said = True
    if not seen.get((emi, "tunnels built"), 0):
        print(
            "DIAGNOSIS: the embedded router built no tunnel (emissary needs at least two reachable "
            "routers besides itself, connected over NTCP2/SSU2)"
        )
        said = True
    if not any(seen.get((r, "has the embedded router's RouterInfo"), 0) for r in i2pds):
        print("DIAGNOSIS: no i2pd router learned the embedded router's RouterInfo (no link, no flood)")
        said = True
    if seen.get((emi, "lookup failures"), 0):
        print("DIAGNOSIS: the embedded router's LeaseSet lookups failed (see its log's lookup lines)")
        said = True
    if any(seen.get((r, "tunnel builds declined/failed"), 0) for r in i2pds):
        print("DIAGNOSIS: i2pd tunnel builds were declined or failed (see the i2pd logs)")
        said = True
    if not said:
        print("DIAGNOSIS: nothing in the counts; read the logs in the run directory")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ri-name")
    r.add_argument("file")
    r = sub.add_parser("run")
    r.add_argument("--bob", required=True)
    r.add_argument("--sam", required=True)
    r.add_argument("--i2pd-bob", required=True)
    r.add_argument("--dir", required=True)
    r.add_argument("--i2pd", type=int, required=True)
    r.add_argument("--bytes", type=int, default=65536)
    r.add_argument("--timeout", type=float, default=240)
    a = p.parse_args()
    if a.cmd == "ri-name":
        try:
            print(ri_name(a.file))
        except (OSError, ValueError) as e:
            print(f"{a.file}: {e}", file=sys.stderr)
            return 1
        return 0
    if not 1 <= a.bytes <= 64 * 1024 * 1024:
        p.error("--bytes must be 1..67108864")
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
