#!/usr/bin/env python3
"""Raw-socket checks of the health endpoint, judged from the client side.

    hclient.py HOST PORT malformed|pipelined|slow|slowread|idle N|rss PID

Prints one line per check: PASS<TAB>name, or FAIL<TAB>name<TAB>why, or
INFO<TAB>name<TAB>text; tests/health/hlib.sh turns them into ok/fail.
"""
import os
import socket
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])


def out(status, name, why=""):
    print(f"{status}\t{name}\t{why}", flush=True)


def check(name, cond, why=""):
    out("PASS" if cond else "FAIL", name, "" if cond else why)


def conn(timeout=5.0):
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Sock:
    """A socket that remembers bytes read past one response."""

    def __init__(self, timeout=5.0):
        self.s = conn(timeout)
        self.pending = b""

    def send(self, b):
        self.s.sendall(b)

    def response(self, head=False, timeout=5.0):
        self.s.settimeout(timeout)
        buf = self.pending
        while b"\r\n\r\n" not in buf:
            try:
                d = self.s.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                self.pending = b""
                return None
            buf += d
        head_b, _, rest = buf.partition(b"\r\n\r\n")
        lines = head_b.decode("latin-1").split("\r\n")
        code = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = 0 if head else int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            d = self.s.recv(65536)
            if not d:
                break
            rest += d
        self.pending = rest[n:]
        return code, hdrs, rest[:n]

    def closed(self, timeout=2.0):
        """True when the server closed (EOF or RST) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def one(raw, head=False):
    s = Sock()
    s.send(raw)
    r = s.response(head=head)
    closed = s.closed(1.0) if r else True
    s.close()
    return r, closed


def malformed():
    H = b"Host: t\r\n"
    cases = [
        # name, request, expected code, connection must close
        ("garbage line", b"GARBAGE\r\n\r\n", 400, True),
        ("HTTP/0.9 request", b"GET /healthz\r\n\r\n", 400, True),
        ("HTTP/2.0 version", b"GET /healthz HTTP/2.0\r\n" + H + b"\r\n", 505, True),
        ("target without slash", b"GET healthz HTTP/1.1\r\n" + H + b"\r\n", 400, True),
        ("absolute-form target", b"GET http://x/healthz HTTP/1.1\r\n" + H + b"\r\n", 400, True),
        ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400, True),
        ("two Host headers", b"GET /healthz HTTP/1.1\r\n" + H + H + b"\r\n", 400, True),
        ("obsolete line folding", b"GET /healthz HTTP/1.1\r\n" + H + b" folded\r\n\r\n", 400, True),
        ("space before colon", b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n", 400, True),
        ("NUL in a header value", b"GET /healthz HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400, True),
        ("bare CR before request", b"\rGET /healthz HTTP/1.1\r\n" + H + b"\r\n", 400, True),
        ("request body refused", b"POST /healthz HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello", 413, True),
        ("chunked body refused", b"GET /healthz HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, True),
        ("two Content-Lengths", b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n", 400, True),
        ("bad Content-Length", b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400, True),
        ("lower-case method is another method", b"get /healthz HTTP/1.1\r\n" + H + b"\r\n", 405, False),
        ("POST without body", b"POST /metrics HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 405, False),
        ("DELETE", b"DELETE /status HTTP/1.1\r\n" + H + b"\r\n", 405, False),
        ("unknown path", b"GET /admin HTTP/1.1\r\n" + H + b"\r\n", 404, False),
        ("path prefix is not the page", b"GET /healthzz HTTP/1.1\r\n" + H + b"\r\n", 404, False),
        ("query string ignored", b"GET /healthz?verbose=1 HTTP/1.1\r\n" + H + b"\r\n", 200, False),
        ("HTTP/1.0 without Host", b"GET /healthz HTTP/1.0\r\n\r\n", 200, True),
        ("HTTP/1.0 keep-alive", b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, False),
        ("Connection: close", b"GET /healthz HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 200, True),
        ("bare LF line ends", b"GET /healthz HTTP/1.1\n" + H.replace(b"\r", b"") + b"\n", 200, False),
        ("empty lines before request", b"\r\n\r\nGET /healthz HTTP/1.1\r\n" + H + b"\r\n", 200, False),
        ("request line too long", b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, True),
        ("headers too large", b"GET /healthz HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 90) for i in range(60)) + b"\r\n", 431, True),
        ("100 KB without a line end", b"G" * 100000, 414, True),
        ("100 KB of headers", b"GET /healthz HTTP/1.1\r\n" + H + b"X: " + b"v" * 100000 + b"\r\n\r\n", 431, True),
    ]
    for name, raw, want, must_close in cases:
        try:
            r, closed = one(raw)
        except Exception as e:
            out("FAIL", name, f"exception {e!r}")
            continue
        if r is None:
            out("FAIL", name, "no response")
            continue
        code = r[0]
        if code != want:
            out("FAIL", name, f"got {code}, want {want}")
        elif must_close and not closed:
            out("FAIL", name, "connection left open")
        elif not must_close and closed:
            out("FAIL", name, "connection closed")
        else:
            out("PASS", f"{name}: {want}")
    # HEAD: the GET's headers, no body
    s = Sock()
    s.send(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    r1 = s.response(head=True)
    r2 = s.response()
    check("HEAD /metrics: headers with length, no body",
          r1 and r1[0] == 200 and int(r1[1]["content-length"]) > 1000 and r2 and r2[2] == b"ok\n",
          f"{r1} then {r2}")
    s.close()
    # 405 names what is allowed
    r, _ = one(b"PUT /readyz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    check("405 carries Allow: GET, HEAD", r and r[1].get("allow") == "GET, HEAD", f"{r}")


def pipelined():
    s = Sock()
    reqs = [b"/healthz", b"/nope", b"/readyz", b"/metrics", b"/status", b"/healthz"]
    s.send(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in reqs))
    codes = []
    for _ in reqs:
        r = s.response()
        codes.append(r[0] if r else None)
    check("six pipelined requests answered in order",
          codes[0] == 200 and codes[1] == 404 and codes[2] in (200, 503) and codes[3:] == [200, 200, 200],
          f"codes {codes}")
    check("connection stays open after pipelined requests", not s.closed(0.5), "closed")
    s.close()
    # requests split at awkward places, and one arriving byte by byte
    s = Sock()
    raw = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /status HTTP/1.1\r\nHost: t\r\n\r\n"
    for i in range(0, len(raw), 7):
        s.send(raw[i:i + 7])
        time.sleep(0.01)
    a, b = s.response(), s.response()
    check("requests split across segments", a and b and a[0] == 200 and b[0] == 200, f"{a} {b}")
    s.close()
    # a pipeline whose last request closes: all answered, then EOF
    s = Sock()
    s.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 3 +
           b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" +
           b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    got = [s.response() for _ in range(4)]
    check("pipeline ending in Connection: close: 4 answers then EOF",
          all(r and r[0] == 200 for r in got) and s.response(timeout=2) is None,
          f"{[r and r[0] for r in got]}")
    s.close()
    # a complete request then half-close: still answered
    s = Sock()
    s.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    s.s.shutdown(socket.SHUT_WR)
    r = s.response()
    check("request followed by FIN is answered", r and r[0] == 200 and s.closed(2), f"{r}")
    s.close()
    # many keep-alive requests on one connection
    s = Sock()
    ok = 0
    for _ in range(500):
        s.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        r = s.response()
        ok += bool(r and r[0] == 200)
    check("500 keep-alive requests on one connection", ok == 500, f"{ok}/500")
    s.close()


def alive(timeout=1.0):
    """A fresh /healthz answered within timeout seconds."""
    t = time.monotonic()
    try:
        s = Sock(timeout)
        s.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        r = s.response(timeout=timeout)
        s.close()
        return bool(r and r[0] == 200), time.monotonic() - t
    except Exception:
        return False, time.monotonic() - t


def slow():
    # slowloris: one byte every 0.5 s; the header timeout (5 s) ends it
    s = Sock()
    raw = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
    t0 = time.monotonic()
    closed_at = None
    for b in raw:
        try:
            s.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - t0
            break
        if s.closed(0.5):
            closed_at = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 12:
            break
    ok, lat = alive()
    check("slow request closed by the header timeout (5 s)",
          closed_at is not None and 4.0 <= closed_at <= 7.5, f"closed after {closed_at}")
    check("served others during the slow request", ok, f"healthz took {lat:.2f}s")
    s.close()
    # silent connection: closed by the header timeout too
    s = Sock()
    t0 = time.monotonic()
    c = s.closed(9)
    check("silent connection closed after 5 s", c and 4.0 <= time.monotonic() - t0 <= 7.5,
          f"closed={c} after {time.monotonic() - t0:.1f}s")
    s.close()


def slowread():
    # a client that asks for a lot and never reads: the write timeout ends it
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((HOST, PORT))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n" * 100)
    t0 = time.monotonic()
    lat = []
    for _ in range(5):
        time.sleep(0.5)
        ok, l = alive()
        lat.append(l if ok else 99)
    check("served others while a client does not read", max(lat) < 0.5, f"latencies {lat}")
    # now drain: we must hit EOF/RST once the server gave up (~10 s)
    time.sleep(max(0, 12 - (time.monotonic() - t0)))
    s.settimeout(2)
    gone = False
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                gone = True
                break
    except (ConnectionResetError, socket.timeout) as e:
        gone = isinstance(e, ConnectionResetError)
    check("non-reading client dropped by the write timeout", gone, "still open after 12 s")
    s.close()


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return -1


def warm(slots=64):
    """Occupy every connection slot at once with a full /metrics request,
    so that the endpoint's static table is touched once (its pages count in
    RSS only from first use; the table is bounded, the heap is not used)."""
    socks = [Sock() for _ in range(slots)]
    for s in socks:
        s.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    good = sum(1 for s in socks if (r := s.response()) and r[0] == 200)
    for s in socks:
        s.close()
    return good


def idle(n, pid, rounds=5):
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
    r_start = rss(pid)
    good = warm()
    check("64 concurrent /metrics requests answered", good == 64, f"{good}/64")
    time.sleep(0.2)
    r0 = rss(pid)
    after = []
    for rnd in range(rounds):
        socks = []
        for i in range(n):
            try:
                c = socket.create_connection((HOST, PORT), timeout=2)
                if rnd % 2:
                    c.sendall(b"GET /healthz HTTP/1.1\r\n")   # begun, never finished
                socks.append(c)
            except OSError as e:
                out("INFO", "connect", f"#{i}: {e}")
                break
        ok, lat = alive(1.0)
        check(f"round {rnd + 1}: /healthz answered with {len(socks)} connections opened",
              ok and lat < 1.0, f"ok={ok} in {lat:.2f}s")
        for c in socks:
            c.close()
        time.sleep(0.3)
        after.append(rss(pid))
    ok, lat = alive(1.0)
    check("serving after the idle connections went away", ok, f"{lat:.2f}s")
    out("INFO", "rss", f"start {r_start} KiB, after warm-up {r0} KiB, "
        f"after each round of {n}: {after} KiB")
    check(f"RSS flat over {rounds} rounds of {n} idle connections (growth <= 16 KiB)",
          max(after) - r0 <= 16, f"after warm-up {r0} KiB, rounds {after} KiB")


cmd = sys.argv[3]
if cmd == "malformed":
    malformed()
elif cmd == "pipelined":
    pipelined()
elif cmd == "slow":
    slow()
elif cmd == "slowread":
    slowread()
elif cmd == "idle":
    idle(int(sys.argv[4]), int(sys.argv[5]))
else:
    sys.exit(f"unknown command {cmd}")
