#!/usr/bin/env python3
"""Resident memory of `avpd serve` holding N idle connections.

usage: bench/idle_memory.py [--conns 10000] [--avpd target/release/avpd]

Starts a node with one worker and no management plane, reads its RSS, opens N
connections, has each send one report and read its ack (so every connection has
used, then returned, its buffers), lets them sit idle, and reads the RSS again.
Prints the RSS before and after and the cost per idle connection.
"""
import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import time

REPORT = bytes.fromhex("000f03 01011e 020135 0604 00000001".replace(" ", ""))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def wait_listening(proc):
    for line in proc.stderr:
        m = re.search(r"listening on tcp://(\S+):(\d+) \(data\)", line)
        if m:
            return m.group(1), int(m.group(2))
    sys.exit("avpd did not start")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("connection closed")
        data += chunk
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--avpd", default="target/release/avpd")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc = subprocess.Popen(
        [a.avpd, "serve", "--workers", "1", "--no-admin", "--listen", "tcp://127.0.0.1:0", "--log", "info"],
        stderr=subprocess.PIPE, text=True)
    try:
        host, port = wait_listening(proc)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks = []
        for _ in range(a.conns):
            s = socket.create_connection((host, port))
            s.sendall(REPORT)
            socks.append(s)
        for s in socks:
            if recv_exact(s, 9) != bytes.fromhex("000904 0604 00000001".replace(" ", "")):
                sys.exit("unexpected answer")
        time.sleep(1.0)
        after = rss_kib(proc.pid)
        per_conn = (after - before) * 1024 / a.conns
        print(f"connections={a.conns} rss_empty={before} KiB rss_idle={after} KiB "
              f"per_connection={per_conn:.0f} bytes")
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
