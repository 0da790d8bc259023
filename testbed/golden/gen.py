#!/usr/bin/python3
"""Golden packets for rvs, built with scapy, independently of rvs.

For every case this writes, under OUTDIR/<case>/:
  in.pcap        frames fed to rvsd's one pcap port (rx_pcap)
  expected.pcap  exactly the frames rvsd must transmit (tx_pcap), in order
  case.toml      the [[neighbors]] and [[services]] rvsd runs the case with
  extra.toml     lines added to [dataplane]
  port.toml      lines added to the port's [[ports]] table
and OUTDIR/cases.txt lists "<case> <number of input frames>".

The expected frames are derived here from each input by the rewrite rules in
the README (NAT, full NAT, DR, tunnel, ICMP errors, ARP/ND, echo, TTL
exceeded, too big), with every checksum recomputed from scratch by scapy;
rvsd updates them incrementally. Any difference in any byte fails the test.

The topology is one-armed: rvsd's single port 'p0' (MAC 02:70:63:61:70:00,
the pcap PMD's) holds 198.18.0.1/24 (clients), 198.18.1.1/24 (real servers)
and the IPv6 equivalents 2001:db8::1/64 and 2001:db8:1::1/64.
"""
import os
import struct
import sys

from scapy.all import (ARP, ICMP, IP, TCP, UDP, Ether, ICMPv6EchoRequest, ICMPv6EchoReply,
                       ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPOption_NOP, Raw)
from scapy.utils import checksum
from scapy.utils6 import in6_getnsma, in6_getnsmac
from socket import AF_INET6, inet_pton

PORT_MAC = "02:70:63:61:70:00"
CLIENT_MAC = "02:00:00:00:00:10"
ROUTER_MAC = "02:00:00:00:00:fe"
RS_MAC = {1: "02:00:00:00:01:11", 2: "02:00:00:00:01:12"}

C4, VIP4, R4, OWN4_C, OWN4_S = "198.18.0.10", "198.18.0.100", "198.18.0.254", "198.18.0.1", "198.18.1.1"
RS4 = {1: "198.18.1.11", 2: "198.18.1.12"}
C6, VIP6, R6, OWN6_C, OWN6_S = "2001:db8::10", "2001:db8::100", "2001:db8::fe", "2001:db8::1", "2001:db8:1::1"
RS6 = {1: "2001:db8:1::11", 2: "2001:db8:1::12"}
FNAT_PORT0 = 40000


def fam(v6):
    return (C6, VIP6, R6, OWN6_C, OWN6_S, RS6) if v6 else (C4, VIP4, R4, OWN4_C, OWN4_S, RS4)


def ip(v6, src, dst, **kw):
    if v6:
        return IPv6(src=src, dst=dst, hlim=kw.pop("ttl", 64), **kw)
    kw.setdefault("flags", "DF")
    kw.setdefault("id", 0x1234)
    return IP(src=src, dst=dst, ttl=kw.pop("ttl", 64), **kw)


def fresh(pkt):
    """Rebuilds a packet from its fields with every checksum and length recomputed."""
    p = pkt.copy()
    for layer in (IP, TCP, UDP, ICMP):
        if layer in p:
            for f in ("chksum", "len"):
                if f in p[layer].fields and not (layer is UDP and f == "chksum" and p[layer].chksum == 0):
                    del p[layer].fields[f]
    if IPv6 in p:
        p[IPv6].fields.pop("plen", None)
        for l in (TCP, UDP):
            if l in p:
                p[l].fields.pop("chksum", None)
        for l in p.layers():
            if l.__name__.startswith("ICMPv6") and "cksum" in p[l].fields:
                del p[l].fields["cksum"]
    return Ether(bytes(p))


def dec_ttl(pkt):
    p = pkt.copy()
    if IP in p:
        p[IP].ttl -= 1
    else:
        p[IPv6].hlim -= 1
    return p


def raw_icmp(v6, src, dst, typ, code, rest, quoted, ttl=64):
    """An ICMP/ICMPv6 error carrying `quoted` bytes, checksummed here."""
    body = struct.pack("!BBHI", typ, code, 0, rest) + quoted
    if v6:
        pseudo = inet_pton(AF_INET6, src) + inet_pton(AF_INET6, dst) + struct.pack("!IxxxB", len(body), 58)
        c = checksum(pseudo + body)
        body = body[:2] + struct.pack("!H", c) + body[4:]
        return IPv6(src=src, dst=dst, hlim=ttl, nh=58) / Raw(body)
    c = checksum(body)
    body = body[:2] + struct.pack("!H", c) + body[4:]
    return IP(src=src, dst=dst, ttl=ttl, id=0, flags=0, proto=1) / Raw(body)


def generated_error(v6, orig, typ, code, rest):
    """The error rvs itself sends back to the sender of `orig` (from the
    port's first address of the family), quoting as much as fits."""
    l3 = bytes(orig[IPv6] if v6 else orig[IP])
    limit = 1280 - 48 if v6 else 576 - 28
    src = OWN6_C if v6 else OWN4_C
    dst = orig[IPv6].src if v6 else orig[IP].src
    return Ether(dst=orig[Ether].src, src=PORT_MAC) / raw_icmp(v6, src, dst, typ, code, rest, l3[:limit])


def write_pcap(path, frames):
    """A classic pcap file (Ethernet link type) of raw frames, exactly."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, b in enumerate(frames):
            f.write(struct.pack("<IIII", 0, i, len(b), len(b)))
            f.write(b)


class Case:
    def __init__(self, name, services, extra="", port=""):
        self.name, self.services, self.extra, self.port = name, services, extra, port
        self.inp, self.exp = [], []

    def add(self, pkt, expected=None):
        self.inp.append(bytes(pkt))
        if expected is not None:
            self.exp.append(bytes(expected))

    def write(self, out):
        d = os.path.join(out, self.name)
        os.makedirs(d, exist_ok=True)
        write_pcap(os.path.join(d, "in.pcap"), self.inp)
        write_pcap(os.path.join(d, "expected.pcap"), self.exp)
        neigh = "".join(
            f'[[neighbors]]\naddress = "{a}"\nmac = "{RS_MAC[i]}"\nport = "p0"\n\n'
            for i in (1, 2) for a in (RS4[i], RS6[i]))
        with open(os.path.join(d, "case.toml"), "w") as f:
            f.write(neigh + self.services)
        with open(os.path.join(d, "extra.toml"), "w") as f:
            f.write(self.extra)
        with open(os.path.join(d, "port.toml"), "w") as f:
            f.write(self.port)
        return f"{self.name} {len(self.inp)}"


def services(v6, fwd, rs_v6=None):
    """A TCP :80 and a UDP :53 service, round robin over RS1 and RS2."""
    _, vip, _, _, _, _ = fam(v6)
    rs = RS6 if (v6 if rs_v6 is None else rs_v6) else RS4
    nat = fwd in ("nat", "fullnat")
    s = ""
    for proto, port, rport in (("tcp", 80, 8080 if nat else 80), ("udp", 53, 9000 if nat else 53)):
        s += f'[[services]]\nvip = "{vip}"\nport = {port}\nprotocol = "{proto}"\nscheduler = "rr"\nforwarding = "{fwd}"\n'
        for i in (1, 2):
            s += f'[[services.real_servers]]\naddress = "{rs[i]}"\nport = {rport}\n'
    return s


def from_client(v6, l4, **ipkw):
    c, vip, _, _, _, _ = fam(v6)
    return Ether(src=CLIENT_MAC, dst=PORT_MAC) / ip(v6, c, vip, **ipkw) / l4


def nat_like(v6, full):
    """NAT or full NAT: both directions, ICMP errors both ways, echo, ARP/ND."""
    c, vip, r, own_c, own_s, rs = fam(v6)
    mode = "fullnat" if full else "nat"
    case = Case(f"{mode}{6 if v6 else 4}", services(v6, mode), f"fullnat_port_min = {FNAT_PORT0}\nfullnat_port_max = {FNAT_PORT0 + 999}\n")
    # Address resolution for the VIP.
    if v6:
        ns_dst = in6_getnsma(inet_pton(AF_INET6, vip))
        from socket import inet_ntop
        ns_ip = inet_ntop(AF_INET6, ns_dst)
        ns = Ether(src=CLIENT_MAC, dst=in6_getnsmac(ns_dst)) / IPv6(src=c, dst=ns_ip, hlim=255) / ICMPv6ND_NS(tgt=vip) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)
        na = Ether(dst=CLIENT_MAC, src=PORT_MAC) / IPv6(src=vip, dst=c, hlim=255) / ICMPv6ND_NA(R=0, S=1, O=1, tgt=vip) / ICMPv6NDOptDstLLAddr(lladdr=PORT_MAC)
        case.add(ns, fresh(na))
    else:
        req = Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc=c, pdst=vip)
        rep = Ether(dst=CLIENT_MAC, src=PORT_MAC) / ARP(op=2, hwsrc=PORT_MAC, psrc=vip, hwdst=CLIENT_MAC, pdst=c)
        case.add(req, rep)

    lport = FNAT_PORT0
    flows = []
    for n, cport in enumerate((40000, 40001)):
        rsi = 1 + n  # round robin: RS1 then RS2
        syn = from_client(v6, TCP(sport=cport, dport=80, flags="S", seq=1000, window=64240))
        out = dec_ttl(syn)
        out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[rsi]
        l3 = out[IPv6] if v6 else out[IP]
        l3.dst = rs[rsi]
        out[TCP].dport = 8080
        if full:
            l3.src, out[TCP].sport = own_s, lport
        case.add(syn, fresh(out))
        flows.append((cport, rsi, lport))
        lport += 1
    # The first real server answers; the client acknowledges with data.
    cport, rsi, lp = flows[0]
    back_dst, back_port = (own_s, lp) if full else (c, cport)
    synack = Ether(src=RS_MAC[rsi], dst=PORT_MAC) / ip(v6, rs[rsi], back_dst) / TCP(sport=8080, dport=back_port, flags="SA", seq=5000, ack=1001, window=65160)
    out = dec_ttl(synack)
    out[Ether].src, out[Ether].dst = PORT_MAC, CLIENT_MAC
    (out[IPv6] if v6 else out[IP]).src = vip
    (out[IPv6] if v6 else out[IP]).dst = c
    out[TCP].sport, out[TCP].dport = 80, cport
    case.add(synack, fresh(out))
    ack = from_client(v6, TCP(sport=cport, dport=80, flags="PA", seq=1001, ack=5001, window=502) / Raw(b"GET / HTTP/1.1\r\n\r\n"))
    out = dec_ttl(ack)
    out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[rsi]
    l3 = out[IPv6] if v6 else out[IP]
    l3.dst = rs[rsi]
    out[TCP].dport = 8080
    if full:
        l3.src, out[TCP].sport = own_s, lp
    case.add(ack, fresh(out))

    # UDP both ways.
    q = from_client(v6, UDP(sport=5353, dport=53) / Raw(b"question"))
    out = dec_ttl(q)
    out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[1]
    l3 = out[IPv6] if v6 else out[IP]
    l3.dst = rs[1]
    out[UDP].dport = 9000
    udp_lport = lport
    if full:
        l3.src, out[UDP].sport = own_s, udp_lport
    case.add(q, fresh(out))
    back_dst, back_port = (own_s, udp_lport) if full else (c, 5353)
    a = Ether(src=RS_MAC[1], dst=PORT_MAC) / ip(v6, rs[1], back_dst) / UDP(sport=9000, dport=back_port) / Raw(b"answer")
    out = dec_ttl(a)
    out[Ether].src, out[Ether].dst = PORT_MAC, CLIENT_MAC
    l3 = out[IPv6] if v6 else out[IP]
    l3.src, l3.dst = vip, c
    out[UDP].sport, out[UDP].dport = 53, 5353
    case.add(a, fresh(out))

    # Echo to the VIP.
    if v6:
        ping = Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=c, dst=vip, hlim=63) / ICMPv6EchoRequest(id=7, seq=1, data=b"rvs-ping")
        pong = Ether(dst=CLIENT_MAC, src=PORT_MAC) / IPv6(src=vip, dst=c, hlim=64) / ICMPv6EchoReply(id=7, seq=1, data=b"rvs-ping")
    else:
        ping = Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=c, dst=vip, ttl=63, id=99) / ICMP(type=8, id=7, seq=1) / Raw(b"rvs-ping")
        pong = Ether(dst=CLIENT_MAC, src=PORT_MAC) / IP(src=vip, dst=c, ttl=64, id=99) / ICMP(type=0, id=7, seq=1) / Raw(b"rvs-ping")
    case.add(ping, fresh(pong))

    # A router in front of the client cannot pass the server's reply
    # (VIP:80 -> client) and says so to the VIP: the error goes to RS1, with
    # the quoted packet translated back to what RS1 sent.
    reply_as_client_saw = bytes(ip(v6, vip, c) / TCP(sport=80, dport=cport, flags="A", seq=5001, ack=1019, window=509) / Raw(b"x" * 1400))
    quoted = reply_as_client_saw[:40 + 40] if v6 else reply_as_client_saw[:20 + 40]
    typ, code, rest = (2, 0, 1280) if v6 else (3, 4, 1000)
    err = Ether(src=ROUTER_MAC, dst=PORT_MAC) / raw_icmp(v6, r, vip, typ, code, rest, quoted)
    if full:
        new_quoted = translate_quoted(v6, quoted, src=(rs[rsi], 8080), dst=(own_s, lp))
    else:
        new_quoted = translate_quoted(v6, quoted, src=(rs[rsi], 8080))
    out_src = own_s if full else r
    exp = Ether(src=PORT_MAC, dst=RS_MAC[rsi]) / raw_icmp(v6, out_src, rs[rsi], typ, code, rest, new_quoted, ttl=63)
    case.add(err, exp)

    # RS1 says "port unreachable" about the UDP datagram rvs sent it: the
    # error goes to the client, quoting what the client sent.
    sent_to_rs = bytes(ip(v6, own_s if full else c, rs[1]) / UDP(sport=udp_lport if full else 5353, dport=9000) / Raw(b"question"))
    typ, code = (1, 4) if v6 else (3, 3)
    err = Ether(src=RS_MAC[1], dst=PORT_MAC) / raw_icmp(v6, rs[1], own_s if full else c, typ, code, 0, sent_to_rs)
    if full:
        back = translate_quoted(v6, sent_to_rs, src=(c, 5353), dst=(vip, 53))
    else:
        back = translate_quoted(v6, sent_to_rs, dst=(vip, 53))
    exp = Ether(src=PORT_MAC, dst=CLIENT_MAC) / raw_icmp(v6, vip, c, typ, code, 0, back, ttl=63)
    case.add(err, exp)

    # An error about a flow rvs never saw: dropped.
    stray = bytes(ip(v6, vip, c) / TCP(sport=80, dport=9999, flags="A"))
    case.add(Ether(src=ROUTER_MAC, dst=PORT_MAC) / raw_icmp(v6, r, vip, 2 if v6 else 3, 0 if v6 else 4, 1280 if v6 else 1000, stray[:56 if v6 else 48]))
    # TTL 1: time exceeded from the port's address.
    dying = from_client(v6, TCP(sport=41000, dport=80, flags="S", seq=1), ttl=1)
    case.add(dying, generated_error(v6, Ether(bytes(dying)), 3 if v6 else 11, 0, 0))
    return case


def translate_quoted(v6, original, src=None, dst=None):
    """The quoted bytes after address/port translation: the IPv4 header
    checksum recomputed, the L4 checksum (when quoted) adjusted for the
    change (a truncated segment's checksum can only be adjusted)."""
    q = bytearray(original)
    hl = 40 if v6 else (q[0] & 0x0F) * 4
    proto = q[6] if v6 else q[9]
    a_src, a_dst = (8, 24) if v6 else (12, 16)
    alen = 16 if v6 else 4
    conv = (lambda a: inet_pton(AF_INET6, a)) if v6 else inet_aton
    words = lambda b: [struct.unpack("!H", bytes(b[i:i + 2]))[0] for i in range(0, len(b), 2)]
    old_words, new_words = [], []
    for change, at_addr, at_port in ((src, a_src, hl), (dst, a_dst, hl + 2)):
        if change is None:
            continue
        addr, port = change
        old_words += words(q[at_addr:at_addr + alen]) + words(q[at_port:at_port + 2])
        q[at_addr:at_addr + alen] = conv(addr)
        q[at_port:at_port + 2] = struct.pack("!H", port)
        new_words += words(q[at_addr:at_addr + alen]) + [port]
    if not v6:
        q[10:12] = b"\0\0"
        q[10:12] = struct.pack("!H", checksum(bytes(q[:hl])))
    at = hl + (16 if proto == 6 else 6)
    if at + 2 <= len(q):
        c = struct.unpack("!H", bytes(q[at:at + 2]))[0]
        if not (proto == 17 and c == 0 and not v6):
            c = csum_adjust(c, old_words, new_words)
            if proto == 17 and c == 0:
                c = 0xFFFF
            q[at:at + 2] = struct.pack("!H", c)
    return bytes(q)


def inet_aton(a):
    from socket import inet_aton as f
    return f(a)


def ip_words(v6, a):
    b = inet_pton(AF_INET6, a) if v6 else inet_aton(a)
    return [struct.unpack("!H", b[i:i + 2])[0] for i in range(0, len(b), 2)]


def csum_adjust(c, old, new):
    """RFC 1624 eqn. 3 over a list of 16-bit words: HC' = ~(~HC + ~m + m')."""
    s = (~c) & 0xFFFF
    for m in old:
        s += (~m) & 0xFFFF
    for m in new:
        s += m
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def dr(v6):
    c, vip, r, own_c, own_s, rs = fam(v6)
    case = Case(f"dr{6 if v6 else 4}", services(v6, "dr"))
    for n, cport in enumerate((40000, 40001)):
        syn = from_client(v6, TCP(sport=cport, dport=80, flags="S", seq=1000, window=64240))
        out = dec_ttl(syn)
        out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[1 + n]
        case.add(syn, fresh(out))
    ack = from_client(v6, TCP(sport=40000, dport=80, flags="A", seq=1001, ack=1, window=502) / Raw(b""))
    out = dec_ttl(ack)
    out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[1]
    case.add(ack, fresh(out))
    q = from_client(v6, UDP(sport=5353, dport=53) / Raw(b""))  # a zero-length payload
    out = dec_ttl(q)
    out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[1]
    case.add(q, fresh(out))
    # A router's complaint about RS1's direct reply reaches RS1 unchanged
    # (it holds the VIP), by MAC.
    quoted = bytes(ip(v6, vip, c) / TCP(sport=80, dport=40000, flags="A", seq=1, ack=1001) / Raw(b"y" * 1400))[:56 if v6 else 48]
    typ, code, rest = (2, 0, 1280) if v6 else (3, 4, 1000)
    err = Ether(src=ROUTER_MAC, dst=PORT_MAC) / raw_icmp(v6, r, vip, typ, code, rest, quoted)
    exp = Ether(src=PORT_MAC, dst=RS_MAC[1]) / raw_icmp(v6, r, vip, typ, code, rest, quoted, ttl=63)
    case.add(err, exp)
    return case


def tunnel(v6, rs_v6):
    c, vip, r, own_c, own_s, _ = fam(v6)
    rs = RS6 if rs_v6 else RS4
    outer_src = OWN6_S if rs_v6 else OWN4_S
    name = {(False, False): "tun4", (True, True): "tun6", (False, True): "tun46", (True, False): "tun64"}[(v6, rs_v6)]
    case = Case(name, services(v6, "tunnel", rs_v6))

    def encap(inner_frame, rsi):
        """Tunnels a client frame (TTL decremented, checksums recomputed)."""
        inner = fresh(dec_ttl(inner_frame))
        return wrap(bytes(inner[IPv6] if v6 else inner[IP]), rsi)

    def wrap(inner_l3, rsi):
        if v6:
            tc = ((inner_l3[0] & 0x0F) << 4) | (inner_l3[1] >> 4)
            df = True
        else:
            tc = inner_l3[1]
            df = bool(struct.unpack("!H", inner_l3[6:8])[0] & 0x4000)
        if rs_v6:
            outer = IPv6(src=outer_src, dst=rs[rsi], hlim=64, tc=tc, nh=41 if v6 else 4)
        else:
            outer = IP(src=outer_src, dst=rs[rsi], ttl=64, id=0, flags="DF" if df else 0, tos=tc, proto=41 if v6 else 4)
        return Ether(src=PORT_MAC, dst=RS_MAC[rsi], type=0x86DD if rs_v6 else 0x0800) / outer / Raw(inner_l3)

    for n, cport in enumerate((40000, 40001)):
        syn = from_client(v6, TCP(sport=cport, dport=80, flags="S", seq=1000, window=64240), **({} if v6 else {"tos": 0x10}))
        case.add(syn, encap(syn, 1 + n))
    q = from_client(v6, UDP(sport=5353, dport=53) / Raw(b"question"))
    case.add(q, encap(q, 1))
    # Too big for the tunnel: the client hears the egress MTU less the
    # outer header.
    overhead = 40 if rs_v6 else 20
    big = from_client(v6, TCP(sport=40000, dport=80, flags="A", seq=1001, ack=1, window=502) / Raw(b"z" * (1500 - (60 if v6 else 40))))
    if v6:
        case.add(big, generated_error(True, Ether(bytes(big)), 2, 0, max(1500 - overhead, 1280)))
    else:
        case.add(big, generated_error(False, Ether(bytes(big)), 3, 4, 1500 - overhead))
    # A router's complaint about RS1's direct reply is tunnelled to RS1.
    quoted = bytes(ip(v6, vip, c) / TCP(sport=80, dport=40000, flags="A", seq=1, ack=1001) / Raw(b"y" * 1400))[:56 if v6 else 48]
    typ, code, rest = (2, 0, 1280) if v6 else (3, 4, 1000)
    err = Ether(src=ROUTER_MAC, dst=PORT_MAC) / raw_icmp(v6, r, vip, typ, code, rest, quoted)
    inner = raw_icmp(v6, r, vip, typ, code, rest, quoted, ttl=63)
    case.add(err, wrap(bytes(inner), 1))
    return case


def misc4():
    """Malformed and policy-dropped IPv4: nothing comes out."""
    case = Case("drops4", services(False, "nat"))
    good = from_client(False, TCP(sport=40000, dport=80, flags="S", seq=1))
    b = bytes(good)
    case.add(Raw(b[:13]))                                   # truncated Ethernet
    case.add(Raw(b[:14 + 12]))                              # truncated IPv4
    bad = bytearray(b); bad[14 + 10] ^= 0xFF; case.add(Raw(bytes(bad)))           # IP checksum
    bad = bytearray(b); bad[14] = 0x44; case.add(Raw(bytes(bad)))                 # IHL 4
    bad = bytearray(b); bad[16:18] = struct.pack("!H", 400); case.add(Raw(bytes(bad)))  # total length past the frame
    tcp_off = from_client(False, TCP(sport=40001, dport=80, flags="S", dataofs=15))
    case.add(tcp_off)                                       # TCP header past the segment
    bad = bytearray(bytes(from_client(False, TCP(sport=40002, dport=80, flags="S")))); bad[14 + 20 + 16] ^= 1
    case.add(Raw(bytes(bad)))                               # TCP checksum
    case.add(from_client(False, TCP(sport=40003, dport=80, flags="A")))           # no session
    case.add(from_client(False, TCP(sport=40004, dport=80, flags="SF")))          # SYN+FIN
    case.add(from_client(False, TCP(sport=40005, dport=81, flags="S")))           # no service
    case.add(from_client(False, TCP(sport=40006, dport=80, flags="S"), flags="MF"))  # fragment
    case.add(from_client(False, TCP(sport=40007, dport=80, flags="S"), options=[IPOption_NOP()] * 4))  # options
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=C4, dst=VIP4, proto=4) / IP(src="198.18.9.9", dst=VIP4) / TCP(dport=80))  # IP-in-IP
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src="224.0.0.5", dst=VIP4) / TCP(sport=1, dport=80, flags="S"))  # martian source
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=VIP4, dst=VIP4) / TCP(sport=80, dport=80, flags="S"))  # land: source is the VIP
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=OWN4_S, dst=VIP4) / TCP(sport=9, dport=80, flags="S"))  # source is our address
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=C4, dst=VIP4) / ICMP(type=3, code=4) / Raw(b"\x45\x00"))  # bogus quoted header
    case.add(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc=C4, pdst="198.18.0.77"))  # ARP not for us
    case.add(Ether(src=CLIENT_MAC, dst="02:99:99:99:99:99") / IP(src=C4, dst=VIP4) / TCP(dport=80, flags="S"))  # another MAC
    return case


def misc6():
    case = Case("drops6", services(True, "nat"))
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrHopByHop() / TCP(sport=40000, dport=80, flags="S"))
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrFragment(m=1) / TCP(sport=40001, dport=80, flags="S"))
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=C6, dst=VIP6, plen=300) / TCP(sport=40002, dport=80, flags="S"))  # truncated
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=C6, dst=VIP6, nh=41) / IPv6(src=C6, dst=VIP6) / TCP(dport=80))  # 6in6 to us
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=VIP6, dst=VIP6) / TCP(sport=80, dport=80, flags="S"))  # land: source is the VIP
    bad = bytearray(bytes(from_client(True, UDP(sport=5, dport=53) / Raw(b"q")))); bad[54 + 6:54 + 8] = b"\0\0"
    case.add(Raw(bytes(bad)))                               # UDP without checksum over IPv6
    # A destination-options header is skipped: the SYN is forwarded (NAT),
    # the extension header kept in place.
    syn = Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrDestOpt() / TCP(sport=40003, dport=80, flags="S", seq=1)
    out = dec_ttl(Ether(bytes(syn)))
    out[Ether].src, out[Ether].dst = PORT_MAC, RS_MAC[1]
    out[IPv6].dst = RS6[1]
    out[TCP].dport = 8080
    case.add(syn, fresh(out))
    return case


def announce():
    """At start rvsd announces every address it answers for, in address
    order: a gratuitous ARP request (sender = target = the address) for
    IPv4, an unsolicited neighbour advertisement (override, to all nodes,
    with our link-layer address) for IPv6. Then it answers as usual."""
    case = Case("announce", services(False, "nat") + services(True, "nat"), extra="announce_count = 1\n")
    for a in sorted([OWN4_C, VIP4, OWN4_S], key=inet_aton):
        g = Ether(dst="ff:ff:ff:ff:ff:ff", src=PORT_MAC) / ARP(op=1, hwsrc=PORT_MAC, psrc=a, hwdst="00:00:00:00:00:00", pdst=a)
        case.exp.append(bytes(g).ljust(60, b"\0"))
    for a in sorted([OWN6_C, VIP6, OWN6_S], key=lambda x: inet_pton(AF_INET6, x)):
        na = (Ether(dst="33:33:00:00:00:01", src=PORT_MAC) / IPv6(src=a, dst="ff02::1", hlim=255)
              / ICMPv6ND_NA(R=0, S=0, O=1, tgt=a) / ICMPv6NDOptDstLLAddr(lladdr=PORT_MAC))
        case.exp.append(bytes(na))
    req = Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc=C4, pdst=VIP4)
    rep = Ether(src=PORT_MAC, dst=CLIENT_MAC) / ARP(op=2, hwsrc=PORT_MAC, psrc=VIP4, hwdst=CLIENT_MAC, pdst=C4)
    case.add(bytes(req).ljust(60, b"\0"), bytes(rep).ljust(60, b"\0"))
    return case


def pcap_mac():
    """A pcap port cannot take a MAC address in the device; a configured
    `mac` is then used in software: ARP is answered with it, frames to it
    are forwarded with it as source, and frames to the pcap PMD's own MAC
    are no longer for us. (Replaying captures made for a real port.)"""
    mac = "02:00:5e:10:00:01"
    case = Case("pcap_mac", services(False, "nat"), port=f'mac = "{mac}"\n')
    req = Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc=C4, pdst=VIP4)
    rep = Ether(src=mac, dst=CLIENT_MAC) / ARP(op=2, hwsrc=mac, psrc=VIP4, hwdst=CLIENT_MAC, pdst=C4)
    case.add(bytes(req).ljust(60, b"\0"), bytes(rep).ljust(60, b"\0"))
    syn = Ether(src=CLIENT_MAC, dst=mac) / ip(False, C4, VIP4) / TCP(sport=40000, dport=80, flags="S", seq=1000, window=64240)
    out = dec_ttl(syn)
    out[Ether].src, out[Ether].dst = mac, RS_MAC[1]
    out[IP].dst = RS4[1]
    out[TCP].dport = 8080
    case.add(syn, fresh(out))
    # To the PMD's own MAC: not ours any more (eth_not_for_us), nothing out.
    case.add(Ether(src=CLIENT_MAC, dst=PORT_MAC) / ip(False, C4, VIP4) / TCP(sport=40001, dport=80, flags="S"))
    return case


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = [nat_like(False, False), nat_like(True, False), nat_like(False, True), nat_like(True, True),
             dr(False), dr(True), tunnel(False, False), tunnel(True, True), tunnel(False, True), tunnel(True, False),
             misc4(), misc6(), announce(), pcap_mac()]
    with open(os.path.join(out, "cases.txt"), "w") as f:
        for c in cases:
            f.write(c.write(out) + "\n")


if __name__ == "__main__":
    main()
