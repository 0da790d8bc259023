#!/usr/bin/python3
"""Writes the forwarder target's worlds and seed corpus from the golden
packet tests (testbed/golden/gen.py): one world per golden case (its
configuration, with the golden port's MAC) and, per case, one seed with
all its input frames in order plus one seed per frame.

  /usr/bin/python3 testbed/fuzz/make_corpus.py     (needs python3-scapy)

Seed format (see fuzz_targets/forwarder.rs): byte 0 picks the world, then
records of [length high, length low, port, frame...].
"""
import os, shutil, subprocess, sys, tempfile
from scapy.all import rdpcap

here = os.path.dirname(os.path.abspath(__file__))
gen = os.path.join(here, "..", "golden", "gen.py")
tmp = tempfile.mkdtemp()
subprocess.run([sys.executable, gen, tmp], check=True, stdout=subprocess.DEVNULL)
cases = sorted(d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d)))
worlds = os.path.join(here, "worlds")
corpus = os.path.join(here, "corpus", "forwarder")
seeds = {t: os.path.join(here, "corpus", t) for t in ("wire", "config", "remote", "control")}
for d in (worlds, corpus, *seeds.values()):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

def seed(target, name, data):
    with open(os.path.join(seeds[target], name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
with open(os.path.join(worlds, "list.txt"), "w") as f:
    f.write("\n".join(cases) + "\n")
for i, c in enumerate(cases):
    parts = []
    for name in ("extra.toml", "port.toml", "case.toml"):
        with open(os.path.join(tmp, c, name)) as f:
            parts.append(f.read())
    extra, port, case = parts
    text = ("[dataplane]\nworkers = 1\nhugepages = false\nsessions_per_worker = 4096\nsessions_v6_per_worker = 4096\n"
            + extra + "\n[[ports]]\nname = \"p0\"\ndevice = \"net_null0\"\n"
            + "addresses = [\"198.18.0.1/24\", \"198.18.1.1/24\", \"2001:db8::1/64\", \"2001:db8:1::1/64\"]\nmtu = 1500\n"
            + port + "\n" + case)
    with open(os.path.join(worlds, c + ".toml"), "w") as f:
        f.write(text)
    seed("config", c, text)
    frames = [bytes(p) for p in rdpcap(os.path.join(tmp, c, "in.pcap"))]
    rec = lambda fr: bytes([len(fr) >> 8, len(fr) & 0xff, 0]) + fr
    with open(os.path.join(corpus, f"{c}-all"), "wb") as f:
        f.write(bytes([i]) + b"".join(rec(fr) for fr in frames))
    for j, fr in enumerate(frames):
        with open(os.path.join(corpus, f"{c}-{j:03d}"), "wb") as f:
            f.write(bytes([i]) + rec(fr))
        # The wire parsers: the frame and its L3 part (past Ethernet).
        seed("wire", f"{c}-{j:03d}", fr)
        seed("wire", f"{c}-{j:03d}-l3", fr[14:])
with open(os.path.join(here, "..", "..", "rvs.example.toml")) as f:
    seed("config", "rvs.example", f.read())
# What real servers answer health checks and agents with (the shapes the
# hostile-server test uses), and requests operators send.
for n, a in enumerate([
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.0 503 Service Unavailable\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "X" + "\u00e9" * 40 + "\r\n\r\n",
    "up 75%\n", "drain\n", "down #maint\n", "50%\n", "ready maxconn:30\n",
]):
    seed("remote", f"answer-{n}", a)
for n, r in enumerate([
    '{"v":1,"id":1,"cmd":"ping"}',
    '{"v":1,"id":2,"cmd":"stats"}',
    '{"v":1,"cmd":"batch","args":{"ops":[{"op":"service_add","service":{"vip":"198.18.0.101","port":80,"protocol":"tcp"}}]}}',
    '{"v":1,"cmd":"batch","args":{"ops":[{"op":"server_add","key":{"protocol":"tcp","vip":"198.18.0.100","port":80},"server":{"address":"198.18.1.13","port":8080,"weight":3}}]}}',
    '{"v":1,"cmd":"batch","args":{"ops":[{"op":"sources","key":{"protocol":"tcp","vip":"198.18.0.100","port":80},"deny":true,"add":["198.18.0.0/24"]}]}}',
    '{"v":1,"cmd":"txn.begin","args":{"replace":true}}\n{"v":1,"cmd":"txn.add","args":{"ops":[{"op":"clear"}]}}\n{"v":1,"cmd":"txn.commit"}',
    '{"v":1,"cmd":"choose","args":{"key":{"protocol":"tcp","vip":"198.18.0.100","port":80},"clients":[["198.18.0.2",40000]]}}',
    '{"v":1,"cmd":"timeouts.set","args":{"tcp":900,"tcpfin":60,"udp":300}}',
    '{"v":1,"cmd":"config.get"}', '{"v":1,"cmd":"node"}', '{"v":1,"cmd":"ha"}',
]):
    seed("control", f"request-{n}", r)
shutil.rmtree(tmp)
print(f"{len(cases)} worlds, {len(os.listdir(corpus))} forwarder seeds, "
      + ", ".join(f"{len(os.listdir(d))} {t}" for t, d in seeds.items()))
