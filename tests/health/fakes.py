#!/usr/bin/env python3
"""Stand-ins for the exit-address test (tests/health/t_exitip.sh).

  fakes.py echo LOG [PORT]             the internet's echo server (:80): answers
                                       the source address it saw, logs
                                       "dst src path" per request
  fakes.py tailscaled SOCK LOG URL MARK  tailscaled's LocalAPI on a unix socket;
                                       learns its public address like STUN
                                       would, from URL with SO_MARK=MARK (its
                                       cgroup's mark), and advertises it in
                                       Self.Addrs among private endpoints
  fakes.py gluetun LOG URL IFACE [401]   Gluetun's control server on
                                       127.0.0.1:8000; learns its public IP
                                       from URL through IFACE (as Gluetun does
                                       through tun0), or answers 401
"""
import http.server
import json
import os
import socket
import socketserver
import sys
import urllib.parse


def learn(url, mark=None, iface=None):
    """The source address URL's server sees, asked over a marked or
    device-bound socket. None if it could not be learned."""
    u = urllib.parse.urlsplit(url)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if mark is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        if iface:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        s.settimeout(3)
        s.connect((u.hostname, u.port or 80))
        s.sendall(f"GET {u.path or '/'} HTTP/1.0\r\nHost: {u.hostname}\r\n\r\n".encode())
        buf = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        s.close()
        return buf.split(b"\r\n\r\n", 1)[1].decode().strip()
    except OSError:
        return None


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype="text/plain"):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)


def echo(log, port=80):
    class H(Quiet):
        def do_GET(self):
            src = self.client_address[0]
            dst = self.connection.getsockname()[0]
            with open(log, "a") as f:
                f.write(f"{dst} {src} {self.path}\n")
            if self.path.endswith("/json"):
                self.reply(200, json.dumps({"ip": src, "country": "XX"}), "application/json")
            else:
                self.reply(200, src + "\n")

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    S(("0.0.0.0", port), H).serve_forever()


def tailscaled(sock, log, url, mark):
    class H(Quiet):
        def address_string(self):
            return "unix"

        def do_GET(self):
            with open(log, "a") as f:
                f.write(f"{self.requestline}|{self.headers.get('Host')}|"
                        f"{self.headers.get('Sec-Tailscale')}\n")
            if not self.path.startswith("/localapi/v0/status"):
                return self.reply(404, "not found\n")
            pub = learn(url, mark=mark)
            addrs = ["10.0.0.2:41641", "100.101.102.103:41641", "10.8.0.2:41641",
                     "[fe80::1]:41641", "[fd7a:115c:a1e0::1]:41641"]
            if pub:
                addrs.append(f"{pub}:41641")
            extra = os.environ.get("FAKE_TS_EXTRA")   # more endpoints
            if extra:
                addrs += extra.split(",")
            st = {"Version": "1.102.3-fake", "BackendState": "Running",
                  "TailscaleIPs": ["100.64.0.5"],
                  "Self": {"HostName": "vnode", "Addrs": addrs,
                           "TailscaleIPs": ["100.64.0.5"]}}
            self.reply(200, json.dumps(st), "application/json")

    class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    if os.path.exists(sock):
        os.unlink(sock)
    S(sock, H).serve_forever()


def gluetun(log, url, iface, mode):
    class H(Quiet):
        def do_GET(self):
            with open(log, "a") as f:
                f.write(f"{self.requestline}\n")
            if mode == "401":
                return self.reply(401, "Unauthorized\n")
            if self.path != "/v1/publicip/ip":
                return self.reply(404, "404 page not found\n")
            ip = learn(url, iface=iface) or ""
            self.reply(200, json.dumps({"public_ip": ip, "region": "Nowhere",
                                        "country": "XX"}), "application/json")

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    S(("127.0.0.1", 8000), H).serve_forever()


cmd = sys.argv[1]
if cmd == "echo":
    echo(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 80)
elif cmd == "tailscaled":
    tailscaled(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5], 0))
elif cmd == "gluetun":
    gluetun(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else "")
