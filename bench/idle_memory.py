#!/usr/bin/env python3
"""Resident memory of `avpd serve` holding N idle connections.

usage: python3 bench/idle_memory.py [--conns 10000] [--avpd target/release/avpd]
           [--reports minimal|full] [--admin]

Starts a node with one worker and no management plane (--admin: with one, on an ephemeral
loopback port, so that the node keeps every connection's latest report for terminals), reads
its RSS, opens N connections, has each send one report and read its ack (so every connection
has used, then returned, its buffers), lets them sit idle, and reads the RSS again. Prints
the RSS before and after and the cost per idle connection.

Reports: "minimal" (default) is the 15-byte CPU, MEM, SEQUENCE report; "full" is what an
agent sends: CPU, MEM, TIMESTAMP (ms since the epoch, 6 bytes), NODE_ID ("loadgen-NNNNN",
one per connection) and SEQUENCE (4 bytes), in that order.
"""
import argparse
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AVPD = os.path.join(ROOT, "target", "release", "avpd")
SEQUENCE = 1
ACK = bytes.fromhex("000904" "0604") + struct.pack(">I", SEQUENCE)
SETTLE_SECS = 1.0    # before each RSS reading


def avp(attr, value):
    """One AVP: attribute, value length, value."""
    return bytes([attr, len(value)]) + value


def report(reports, conn):
    """The STAT_REPORT connection number `conn` sends (CPU 30 %, memory 53 %)."""
    body = avp(1, b"\x1e") + avp(2, b"\x35")
    if reports == "full":
        body += avp(7, (time.time_ns() // 1_000_000).to_bytes(6, "big"))
        body += avp(8, f"loadgen-{conn:05d}".encode())
    body += avp(6, struct.pack(">I", SEQUENCE))
    return struct.pack(">HB", 3 + len(body), 3) + body


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def drain(stream):
    for _ in stream:
        pass


def stop_node(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_node(avpd, admin):
    """Starts the node; returns its process and the data plane's (host, port). Its log is
    read on to the end by a thread, so that it never blocks writing it."""
    plane = ["--admin", "tcp://127.0.0.1:0"] if admin else ["--no-admin"]
    proc = subprocess.Popen([avpd, "serve", "--workers", "1", *plane,
                             "--listen", "tcp://127.0.0.1:0", "--log", "info"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = re.search(r"listening on tcp://(\S+):(\d+) \(data\)", line)
        if m:
            threading.Thread(target=drain, args=(proc.stderr,), daemon=True).start()
            return proc, (m.group(1), int(m.group(2)))
    proc.wait()
    raise RuntimeError(f"{avpd} exited (status {proc.returncode}) before listening")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("a connection was closed by the node")
        data += chunk
    return data


def measure(conns, avpd=AVPD, reports="minimal", admin=False):
    """One run: the node's RSS empty and with `conns` idle connections, in KiB, and the
    difference per connection in bytes."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc, addr = start_node(avpd, admin)
    socks = []
    try:
        time.sleep(SETTLE_SECS)
        before = rss_kib(proc.pid)
        for i in range(conns):
            s = socket.create_connection(addr)
            socks.append(s)
            s.sendall(report(reports, i))
        for s in socks:
            if recv_exact(s, len(ACK)) != ACK:
                raise RuntimeError("unexpected answer to a report")
        time.sleep(SETTLE_SECS)
        after = rss_kib(proc.pid)
    finally:
        for s in socks:
            s.close()
        stop_node(proc)
    return {"conns": conns, "rss_empty_kib": before, "rss_idle_kib": after,
            "bytes_per_conn": (after - before) * 1024 / conns}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--avpd", default=AVPD)
    ap.add_argument("--reports", choices=["minimal", "full"], default="minimal")
    ap.add_argument("--admin", action="store_true",
                    help="run the node with its management plane (ephemeral port)")
    a = ap.parse_args()
    if a.conns < 1:
        ap.error("--conns must be >= 1")
    try:
        m = measure(a.conns, a.avpd, a.reports, a.admin)
    except (RuntimeError, OSError) as e:
        sys.exit(f"idle_memory: {e}")
    print(f"connections={m['conns']} rss_empty={m['rss_empty_kib']} KiB "
          f"rss_idle={m['rss_idle_kib']} KiB per_connection={m['bytes_per_conn']:.0f} bytes "
          f"reports={a.reports} admin={'on' if a.admin else 'off'}")


if __name__ == "__main__":
    main()
