#!/usr/bin/env python3
"""e2e-echo: the test world's internet servers, one process.

  HTTP  tcp/80   any GET answers "src=IP:PORT" as seen by the server;
                 GET /ip answers the address alone (what-is-my-IP services)
  UDP   udp/7    any datagram answers "src=IP:PORT"
  DNS   udp+tcp/53  every A query answers --answer IP; each query is logged
        as "dns asker=IP name=NAME" (who asked is what the test checks)
Every request is logged to stdout and to --log (one line each, flushed).
"""
import argparse, socket, socketserver, struct, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = None
LOCK = threading.Lock()

def log(line):
    line = "%s %s" % (time.strftime("%H:%M:%S"), line)
    with LOCK:
        print(line, flush=True)
        if LOG:
            LOG.write(line + "\n"); LOG.flush()

class HTTP(BaseHTTPRequestHandler):
    def do_GET(self):
        src = "%s:%d" % self.client_address[:2]
        log("http src=%s path=%s" % (src, self.path))
        if self.path == "/ip":
            body = ("%s\n" % self.client_address[0]).encode()
        else:
            body = ("src=%s\n" % src).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class UDPEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        src = "%s:%d" % self.client_address[:2]
        log("udp src=%s len=%d" % (src, len(data)))
        sock.sendto(("src=%s\n" % src).encode(), self.client_address)

def dns_answer(query, answer_ip):
    """Answers an A query for any name with answer_ip; others get no answers."""
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    i, labels = 12, []
    while query[i] != 0:
        n = query[i]; labels.append(query[i + 1:i + 1 + n].decode(errors="replace")); i += n + 1
    qtype, _ = struct.unpack("!HH", query[i + 1:i + 5])
    question = query[12:i + 5]
    name = ".".join(labels)
    an = 1 if qtype == 1 else 0
    hdr = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, an, 0, 0)
    body = question
    if an:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(answer_ip)
    return name, qtype, hdr + body

class DNSUDP(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        try:
            name, qtype, resp = dns_answer(data, self.server.answer)
        except Exception as e:  # malformed query
            log("dns bad query from %s: %s" % (self.client_address[0], e)); return
        log("dns asker=%s name=%s type=%d proto=udp" % (self.client_address[0], name, qtype))
        sock.sendto(resp, self.client_address)

class DNSTCP(socketserver.BaseRequestHandler):
    def handle(self):
        n = struct.unpack("!H", self.request.recv(2))[0]
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk: return
            data += chunk
        name, qtype, resp = dns_answer(data, self.server.answer)
        log("dns asker=%s name=%s type=%d proto=tcp" % (self.client_address[0], name, qtype))
        self.request.sendall(struct.pack("!H", len(resp)) + resp)

class TUDP(socketserver.ThreadingMixIn, socketserver.UDPServer):
    allow_reuse_address = True
class TTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True

def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--answer", default="127.0.0.1", help="address every A query resolves to")
    ap.add_argument("--log", default="/tmp/e2e-echo.log")
    a = ap.parse_args()
    LOG = open(a.log, "a")
    servers = [ThreadingHTTPServer(("0.0.0.0", 80), HTTP), TUDP(("0.0.0.0", 7), UDPEcho)]
    for cls, kind in ((TUDP, DNSUDP), (TTCP, DNSTCP)):
        s = cls(("0.0.0.0", 53), kind); s.answer = a.answer; servers.append(s)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    log("e2e-echo ready: http/80 udp/7 dns/53 answer=%s" % a.answer)
    while True:
        time.sleep(3600)

if __name__ == "__main__":
    sys.exit(main())
