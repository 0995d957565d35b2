#!/usr/bin/env python3
"""vpnclient-control: the stand-in's control server and DNS forwarder.

  HTTP_CONTROL_SERVER_ADDRESS (:8000), a subset of Gluetun's control server:
    GET /v1/vpn/status        {"status": "running"|"stopped"}
    PUT /v1/vpn/status        {"status": "running"|"stopped"}: the tunnel
                              brought up / taken down (/gluetun-entrypoint)
    GET /v1/publicip/ip       {"public_ip": ...} asked through the tunnel
                              from VPNCLIENT_PUBLICIP_URL ("" without one)
  DNS on 127.0.0.1:53, UDP and TCP: every query forwarded to the first
  DNS_UPSTREAM_RESOLVERS provider's address from an unmarked socket, so it
  leaves by the tunnel (rule 101), as Gluetun's resolver's queries do.
"""
import json, os, signal, socket, socketserver, struct, subprocess, sys, threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROVIDERS = {"cloudflare": "1.1.1.1", "google": "8.8.8.8", "quad9": "9.9.9.9"}
UPSTREAM = PROVIDERS.get(os.environ.get("DNS_UPSTREAM_RESOLVERS", "cloudflare").split(",")[0].strip().lower(), "1.1.1.1")
STATE = {"status": "running"}
LOCK = threading.Lock()


def log(msg):
    print("vpnclient-control: " + msg, flush=True)


class Control(BaseHTTPRequestHandler):
    def reply(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/vpn/status":
            self.reply(200, {"status": STATE["status"]})
        elif self.path == "/v1/publicip/ip":
            self.reply(200, {"public_ip": public_ip()})
        else:
            self.reply(404, {"error": "not found"})

    def do_PUT(self):
        if self.path != "/v1/vpn/status":
            return self.reply(404, {"error": "not found"})
        try:
            n = int(self.headers.get("Content-Length", "0"))
            want = json.loads(self.rfile.read(n) or b"{}").get("status")
        except (ValueError, AttributeError):
            want = None
        if want not in ("running", "stopped"):
            return self.reply(400, {"error": "status must be running or stopped"})
        with LOCK:
            if want != STATE["status"]:
                cmd = "up" if want == "running" else "down"
                r = subprocess.run(["/gluetun-entrypoint", cmd])
                if r.returncode != 0:
                    return self.reply(500, {"error": "%s failed (%d)" % (cmd, r.returncode)})
                STATE["status"] = want
        log("vpn status set to " + want)
        self.reply(200, {"outcome": want})

    def log_message(self, fmt, *a):
        log("http " + (fmt % a))


def public_ip():
    url = os.environ.get("VPNCLIENT_PUBLICIP_URL", "")
    if not url or os.environ.get("PUBLICIP_ENABLED", "on") != "on":
        return ""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode().strip()
    except OSError:
        return ""


class DNSUDP(socketserver.BaseRequestHandler):
    def handle(self):
        query, sock = self.request
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(4)
            try:
                up.sendto(query, (UPSTREAM, 53))
                answer = up.recv(65535)
            except OSError:
                return
        sock.sendto(answer, self.client_address)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("short read")
        buf += chunk
    return buf


class DNSTCP(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(8)
        try:
            n = struct.unpack("!H", recv_exact(self.request, 2))[0]
            query = recv_exact(self.request, n)
            with socket.create_connection((UPSTREAM, 53), timeout=4) as up:
                up.sendall(struct.pack("!H", n) + query)
                m = struct.unpack("!H", recv_exact(up, 2))[0]
                self.request.sendall(struct.pack("!H", m) + recv_exact(up, m))
        except OSError:
            pass


class UDPServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = True


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    host, _, port = os.environ.get("HTTP_CONTROL_SERVER_ADDRESS", ":8000").rpartition(":")
    servers = [UDPServer(("127.0.0.1", 53), DNSUDP), TCPServer(("127.0.0.1", 53), DNSTCP),
               ThreadingHTTPServer((host, int(port)), Control)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    log("control server on %s:%s, DNS on 127.0.0.1:53 -> %s" % (host or "*", port, UPSTREAM))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    threading.Event().wait()


if __name__ == "__main__":
    main()
