#!/usr/bin/env python3
"""Instructions per packet by line of rvs's own source.

callgrind_annotate gives an inlined function's cost to the library file it
came from (core/src/slice/index.rs, ...), which says little once the whole
fast path is inlined into one loop. This gives each instruction's cost to
the first line of rvs's own source in its inlining chain (addr2line -i), so
a bounds check counts against the line that indexed. Run the fwdloop
example under callgrind with instruction-level dumps, then this:

  valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=/tmp/cg \
      target/release/examples/fwdloop dr 1024 6000 [syn] [v6]
  python3 scripts/ipp-lines.py /tmp/cg target/release/examples/fwdloop 192000 [--files] [N]

192000 is the packets the run forwarded (6000 bursts of 32); the set-up's
instructions are included, so compare two runs rather than read one
absolutely (scripts/ipp.sh gives the exact per-packet count). --files sums
by source file instead of by line; N rows (default 50).
"""
import collections
import re
import subprocess
import sys


def costs(path, binary):
    """Self cost per instruction address of `binary`'s code."""
    name = binary.rsplit("/", 1)[-1]
    objs, cur, skip, addr = {}, None, False, 0
    out = collections.Counter()
    for raw in open(path, encoding="utf-8", errors="replace"):
        line = raw.rstrip("\n")
        if not line:
            continue
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line)
            if m.group(2):
                objs[m.group(1)] = m.group(2)
            cur = objs.get(m.group(1))
            continue
        if line.startswith("cob="):
            # An object may be named first where it is called (cob=(N)
            # name): remember the name; the current object stays.
            m = re.match(r"cob=\((\d+)\) (.*)", line)
            if m:
                objs[m.group(1)] = m.group(2)
            continue
        if line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost
            continue
        if line[0] in "0123456789+-*":
            toks = line.split()
            t = toks[0]
            addr = addr if t == "*" else addr + int(t, 0) if t[0] in "+-" else int(t, 0)
            if skip:
                skip = False
                continue
            if cur and cur.endswith(name) and len(toks) > 2:
                out[addr] += int(toks[2])
    return out


def own_line(binary, addrs):
    """The first line of rvs's own source in each address's inlining chain."""
    res = subprocess.run(["addr2line", "-i", "-e", binary, "-a"] + [hex(a) for a in addrs],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    where, cur = {}, None
    for line in res:
        if line.startswith("0x"):
            cur = int(line, 16)
            continue
        if cur in where:
            continue
        m = re.match(r".*?/(dataplane/[^ ]*|mgmt/[^ ]*)", line)
        if m:
            where[cur] = re.sub(r" \(discriminator \d+\)", "", m.group(1))
    return where


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) < 3:
        sys.exit(__doc__)
    path, binary, packets = args[0], args[1], int(args[2])
    rows = int(args[3]) if len(args) > 3 else 50
    by_file = "--files" in sys.argv
    cost = costs(path, binary)
    where = own_line(binary, sorted(cost))
    sums = collections.Counter()
    for a, c in cost.items():
        key = where.get(a, "(outside rvs's source)")
        sums[key.split(":")[0] if by_file else key] += c
    for key, c in sums.most_common(rows):
        text = ""
        m = re.match(r"(.*):(\d+)$", key)
        if m and not by_file:
            try:
                with open(m.group(1), encoding="utf-8") as f:
                    text = f.readlines()[int(m.group(2)) - 1].strip()[:80]
            except (OSError, IndexError):
                pass
        print(f"{c / packets:8.1f}  {key:45} {text}")
    print(f"{sum(sums.values()) / packets:8.1f}  total")


if __name__ == "__main__":
    main()
