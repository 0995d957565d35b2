#!/usr/bin/python3
"""Servers and probes of the network-namespace lab (tests/lab/lab.sh).

serve    TCP/UDP echo servers that answer with the source address they saw,
         a bulk mode, and a DNS server that logs who asked. One process per
         namespace; all addresses (0.0.0.0 and ::).
tcp/udp  probes: print the source address the echo server reported, exit 1
         on failure. --mark sets SO_MARK (the control-class stand-in for
         tailscaled: it stamps 0x80000 on its sockets).
dns      a DNS query (UDP or TCP); the name whoami.lab answers with the
         asker's address as the server saw it.
bulk     download N bytes through a TCP connection.
flap     set a link down and up N times, paced, from one process.
stream   a steady UDP (and optionally TCP) flow that logs every reply.

Protocol (TCP and UDP): a line "BULK N" gets N bytes (TCP), "BIG N" gets an
N-byte datagram sent with DF set (UDP; for packet-too-big tests); any other
line gets "<source address>\\n".
"""
import argparse
import os
import selectors
import socket
import struct
import sys
import threading
import time

SO_MARK = 36
IP_MTU_DISCOVER = 10
IP_PMTUDISC_PROBE = 3
IPV6_MTU_DISCOVER = 23
IPV6_PMTUDISC_PROBE = 3
IP_PKTINFO = 8
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50


def peer_ip(addr):
    ip = addr[0]
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[7:]
    return ip


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# ---------------------------------------------------------------- DNS
def dns_parse_query(msg):
    """-> (id, flags, qname, qtype, question bytes) or None"""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd < 1:
        return None
    i, labels = 12, []
    while i < len(msg):
        n = msg[i]
        i += 1
        if n == 0:
            break
        labels.append(msg[i:i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(msg):
        return None
    qtype, _ = struct.unpack("!HH", msg[i:i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, msg[12:i + 4]


def dns_answer(msg, asker):
    q = dns_parse_query(msg)
    if not q:
        return None, None
    qid, flags, qname, qtype, question = q
    rd = flags & 0x0100
    ans = b""
    if qname.startswith("whoami"):
        txt = asker.encode()
        rdata = bytes([len(txt)]) + txt
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 5, len(rdata)) + rdata
    elif qtype == 1:
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_pton(socket.AF_INET, "203.0.113.20")
    elif qtype == 28:
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 5, 16) + socket.inet_pton(socket.AF_INET6, "2001:db8:203::20")
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080, 1, 1 if ans else 0, 0, 0)
    return hdr + question + ans, qname


def dns_build_query(name, qtype):
    qid = os.getpid() & 0xffff
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return qid, struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def dns_parse_answer(msg):
    """first answer as text (TXT string, A or AAAA address) or None"""
    if len(msg) < 12:
        return None
    an = struct.unpack("!H", msg[6:8])[0]
    i = 12
    while msg[i] != 0:          # question name (no compression in questions)
        i += msg[i] + 1
    i += 5
    if an < 1:
        return None
    if msg[i] & 0xc0 == 0xc0:
        i += 2
    else:
        while msg[i] != 0:
            i += msg[i] + 1
        i += 1
    rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
    rdata = msg[i + 10:i + 10 + rdlen]
    if rtype == 16:
        return rdata[1:1 + rdata[0]].decode()
    if rtype == 1:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == 28:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    return None


# ---------------------------------------------------------------- server
class Server:
    def __init__(self, args):
        self.args = args
        self.log_lock = threading.Lock()

    def dns_log(self, proto, asker, qname):
        if not self.args.dns_log:
            return
        with self.log_lock, open(self.args.dns_log, "a") as f:
            f.write("%.3f %s %s %s\n" % (time.time(), proto, asker, qname))

    def tcp_conn(self, c, dns):
        try:
            c.settimeout(30)
            src = peer_ip(c.getpeername())
            if dns:
                while True:
                    h = recv_exact(c, 2)
                    if not h:
                        return
                    msg = recv_exact(c, struct.unpack("!H", h)[0])
                    if not msg:
                        return
                    out, qname = dns_answer(msg, src)
                    if out is None:
                        return
                    self.dns_log("tcp", src, qname)
                    c.sendall(struct.pack("!H", len(out)) + out)
            f = c.makefile("rb")
            for line in f:
                words = line.split()
                if len(words) == 2 and words[0] == b"BULK":
                    n = int(words[1])
                    block = (b"0123456789abcdef" * 4096)
                    while n > 0:
                        k = min(n, len(block))
                        c.sendall(block[:k])
                        n -= k
                    return
                c.sendall(src.encode() + b"\n")
        except OSError:
            pass
        finally:
            c.close()

    def tcp_listener(self, s, dns):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                continue
            threading.Thread(target=self.tcp_conn, args=(c, dns), daemon=True).start()

    def udp_loop(self, s, fam, dns):
        # answer from the address the datagram was sent to (the server has
        # several on lo), with IP_PKTINFO / IPV6_PKTINFO
        while True:
            try:
                data, anc, _, addr = s.recvmsg(65535, 256)
            except OSError:
                continue
            src = peer_ip(addr)
            cmsg = []
            for level, ctype, cdata in anc:
                if level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
                    # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                    cmsg = [(level, IP_PKTINFO, struct.pack("!I4s4s", 0, cdata[8:12], b"\0" * 4))]
                elif level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO:
                    # struct in6_pktinfo { in6_addr addr; int ifindex; }
                    cmsg = [(level, IPV6_PKTINFO, cdata[:16] + b"\0" * 4)]
            try:
                if dns:
                    out, qname = dns_answer(data, src)
                    if out is not None:
                        self.dns_log("udp", src, qname)
                        s.sendmsg([out], cmsg, 0, addr)
                    continue
                words = data.split()
                if len(words) == 2 and words[0] == b"BIG":
                    n = int(words[1])
                    body = (src.encode() + b"\n").ljust(n, b"x")
                    s.sendmsg([body], cmsg, 0, addr)
                else:
                    s.sendmsg([src.encode() + b"\n"], cmsg, 0, addr)
            except OSError:
                pass

    def run(self):
        a = self.args
        socks = []
        for fam, any_ in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            for port in a.tcp + ([53] if a.dns_log else []):
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((any_, port))
                s.listen(128)
                socks.append(s)
                threading.Thread(target=self.tcp_listener, args=(s, port == 53), daemon=True).start()
            for port in a.udp + ([53] if a.dns_log else []):
                s = socket.socket(fam, socket.SOCK_DGRAM)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                else:
                    s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
                    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                s.bind((any_, port))
                socks.append(s)
                threading.Thread(target=self.udp_loop, args=(s, fam, port == 53), daemon=True).start()
        if a.ready:
            open(a.ready, "w").close()
        while True:
            time.sleep(3600)


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            return None
        buf += d
    return buf


# ---------------------------------------------------------------- probes
def mksock(host, kind, mark, src=None):
    s = socket.socket(family_of(host), kind)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, int(mark, 0))
    if src:
        s.bind((src, 0))
    return s


def cmd_tcp(a):
    s = mksock(a.host, socket.SOCK_STREAM, a.mark, a.src)
    s.settimeout(a.timeout)
    s.connect((a.host, a.port))
    s.sendall(b"hello\n")
    line = s.makefile("rb").readline().decode().strip()
    if not line:
        raise OSError("no answer")
    print(line)


def cmd_udp(a):
    s = mksock(a.host, socket.SOCK_DGRAM, a.mark, a.src)
    s.settimeout(a.timeout / a.tries)
    msg = b"BIG %d\n" % a.big if a.big else b"hello\n"
    for _ in range(a.tries):
        try:
            s.sendto(msg, (a.host, a.port))
            data, _ = s.recvfrom(65535)
            print(data.split(b"\n")[0].decode())
            return
        except socket.timeout:
            continue
    raise OSError("no answer")


def cmd_dns(a):
    qtype = {"A": 1, "AAAA": 28, "TXT": 16}[a.type]
    qid, q = dns_build_query(a.name, qtype)
    if a.tcp:
        s = mksock(a.server, socket.SOCK_STREAM, a.mark)
        s.settimeout(a.timeout)
        s.connect((a.server, 53))
        s.sendall(struct.pack("!H", len(q)) + q)
        n = struct.unpack("!H", recv_exact(s, 2))[0]
        msg = recv_exact(s, n)
    else:
        s = mksock(a.server, socket.SOCK_DGRAM, a.mark)
        s.settimeout(a.timeout / 2)
        msg = None
        for _ in range(2):
            try:
                s.sendto(q, (a.server, 53))
                msg, _ = s.recvfrom(65535)
                break
            except socket.timeout:
                continue
    if not msg:
        raise OSError("no answer")
    ans = dns_parse_answer(msg)
    if ans is None:
        raise OSError("empty answer")
    print(ans)


def cmd_bulk(a):
    s = mksock(a.host, socket.SOCK_STREAM, a.mark)
    s.settimeout(a.timeout)
    s.connect((a.host, a.port))
    s.sendall(b"BULK %d\n" % a.bytes)
    got = 0
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        got += len(d)
    print(got)
    if got != a.bytes:
        raise OSError("short download: %d of %d bytes" % (got, a.bytes))


def cmd_stream(a):
    """Send a datagram every --interval seconds (and a line over one TCP
    connection if --tcp) until killed; print '<time> udp|tcp <source>' per
    reply, flushed, so a test can watch the flow from a file."""
    out = sys.stdout
    u = mksock(a.host, socket.SOCK_DGRAM, a.mark)
    u.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(u, selectors.EVENT_READ, "udp")
    t = None
    tbuf = b""
    if a.tcp:
        t = mksock(a.host, socket.SOCK_STREAM, a.mark)
        t.settimeout(a.timeout)
        t.connect((a.host, a.port))
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, "tcp")
    out.write("%.3f start\n" % time.time())
    out.flush()
    nxt = time.time()
    while True:
        now = time.time()
        if now >= nxt:
            try:
                u.sendto(b"hello\n", (a.host, a.port))
            except OSError:
                pass
            if t is not None:
                try:
                    t.send(b"hello\n")
                except (BlockingIOError, OSError):
                    pass
            nxt = now + a.interval
        for key, _ in sel.select(max(0.0, nxt - time.time())):
            try:
                if key.data == "udp":
                    d, _ = u.recvfrom(65535)
                    out.write("%.3f udp %s\n" % (time.time(), d.split(b"\n")[0].decode()))
                else:
                    d = t.recv(65535)
                    if not d:
                        sel.unregister(t)
                        out.write("%.3f tcp-closed\n" % time.time())
                        t = None
                        continue
                    tbuf += d
                    while b"\n" in tbuf:
                        line, tbuf = tbuf.split(b"\n", 1)
                        out.write("%.3f tcp %s\n" % (time.time(), line.decode()))
            except (BlockingIOError, ConnectionError, OSError) as e:
                if key.data == "tcp" and not isinstance(e, BlockingIOError):
                    sel.unregister(t)
                    out.write("%.3f tcp-error %s\n" % (time.time(), e))
                    t = None
            out.flush()


def cmd_flap(a):
    """Set a link down and up COUNT times through one rtnetlink socket,
    holding each state for --down / --up seconds (a process per flap would
    be too slow to pace)."""
    IFF_UP = 1
    RTM_NEWLINK = 16
    NLM_F_REQUEST, NLM_F_ACK = 1, 4
    idx = socket.if_nametoindex(a.ifname)
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    nl.bind((0, 0))
    seq = 0

    def setflags(up):
        nonlocal seq
        seq += 1
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, idx, IFF_UP if up else 0, IFF_UP)
        nl.send(struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
        while True:
            msg = nl.recv(65536)
            _, mtype, _, mseq, _ = struct.unpack("=IHHII", msg[:16])
            if mtype == 2 and mseq == seq:      # NLMSG_ERROR carries the ack
                err = struct.unpack("=i", msg[16:20])[0]
                if err:
                    raise OSError(-err, os.strerror(-err))
                return

    for _ in range(a.count):
        setflags(False)
        time.sleep(a.down)
        setflags(True)
        time.sleep(a.up)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tcp", type=int, nargs="*", default=[7, 80, 443])
    s.add_argument("--udp", type=int, nargs="*", default=[7, 3478, 41641])
    s.add_argument("--dns-log")
    s.add_argument("--ready")
    for name in ("tcp", "udp", "bulk", "stream"):
        c = sub.add_parser(name)
        c.add_argument("host")
        c.add_argument("port", type=int, nargs="?", default=7)
        c.add_argument("--mark")
        c.add_argument("--src")
        c.add_argument("--timeout", type=float, default=3.0)
        if name == "udp":
            c.add_argument("--big", type=int, default=0)
            c.add_argument("--tries", type=int, default=3)
        if name == "bulk":
            c.add_argument("--bytes", type=int, default=4 << 20)
        if name == "stream":
            c.add_argument("--tcp", action="store_true")
            c.add_argument("--interval", type=float, default=0.02)
    d = sub.add_parser("dns")
    d.add_argument("server")
    d.add_argument("--name", default="whoami.lab")
    d.add_argument("--type", default="TXT", choices=["A", "AAAA", "TXT"])
    d.add_argument("--tcp", action="store_true")
    d.add_argument("--mark")
    d.add_argument("--timeout", type=float, default=3.0)
    f = sub.add_parser("flap")
    f.add_argument("ifname")
    f.add_argument("count", type=int)
    f.add_argument("--down", type=float, default=0.005)
    f.add_argument("--up", type=float, default=0.015)
    a = p.parse_args()
    try:
        if a.cmd == "serve":
            Server(a).run()
        else:
            {"tcp": cmd_tcp, "udp": cmd_udp, "dns": cmd_dns, "bulk": cmd_bulk, "stream": cmd_stream,
             "flap": cmd_flap}[a.cmd](a)
    except (OSError, ValueError) as e:
        print("labnet %s: %s" % (a.cmd, e), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
