#!/usr/bin/env python3
"""A fleet of peers that pipeline and never read, against the node's memory budget.

usage: python3 bench/never_reading.py [--peers 10000] [--per-peer 64KiB] [--budget 256MiB]
           [--probe-secs 10]

PER_PEER is rounded down to whole frames.

Starts `avpd serve --workers 1 --no-admin --max-buffer-memory BUDGET` on CPU 0, and on CPU 1:
  1. a latency probe alone: avp-loadgen, 10 connections, one report in flight on each, for
     --probe-secs (the baseline);
  2. PEERS connections that each write PER_PEER bytes of 3-byte frames of an unknown type
     (each earns a 501 answer about 20 times its size, the heaviest answers per byte a peer
     can ask for) and never read; while they write, and for as long again, the same probe;
  3. the node's RSS sampled every 100 ms from /proc throughout, its base taken with the
     peers connected and idle. The peers' writer and this script run on CPU 1 too.
Prints the node's RSS (base, peak with the peers), the budget, the node's counters of its
last status line (slow_peer= closes), and the probe's p50/p99/max (from the send of each request,
after its 1 s warmup) and its answers per second without and with the peers,
as Markdown, and on stderr the probe's slowest answer in its warmup second and what the
kernel dropped during each probe (a dropped segment waits for a retransmission timeout,
200 ms or more). The peers' sockets ask for a 4 KiB receive buffer so the kernel holds
little of what the node sends them. Needs target/release/avpd and target/release/avp-loadgen.
Stdlib only.
"""
import argparse
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import signed  # noqa: E402  (bench/ is not a package; the paths of the binaries)
import sidebyside  # noqa: E402

ROOT, AVPD, LOADGEN = sidebyside.ROOT, signed.AVPD, signed.LOADGEN
UNKNOWN_TYPE = bytes([0x00, 0x03, 0x4D])


def size(text):
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 64KiB")
    return int(m.group(1)) * {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def kernel_counters():
    """Packets the kernel dropped on its input backlog (all CPUs), TCP retransmission
    timeouts and segments dropped for want of receive memory, so far."""
    with open("/proc/net/softnet_stat") as f:
        backlog = sum(int(line.split()[1], 16) for line in f)
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    ext = dict(zip(lines[0][1:], map(int, lines[1][1:])))
    return {"backlog drops": backlog, "RTOs": ext.get("TCPTimeouts", 0),
            "receive-queue drops": ext.get("TCPRcvQDrop", 0)}


class Sampler(threading.Thread):
    """The node's RSS every 100 ms; `peak` is the largest since the last reset."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except OSError:
                return
            time.sleep(0.1)


def probe(port, secs):
    """The probe's latency summary (µs) from avp-loadgen's JSON."""
    fd, path = tempfile.mkstemp(prefix="probe-", suffix=".json")
    os.close(fd)
    try:
        run = subprocess.run(["taskset", "-c", "1", LOADGEN, "-q", "--target",
                              f"tcp://127.0.0.1:{port}", "--connections", "10", "--pipeline",
                              "1", "--duration", f"{secs}s", "--warmup", "1s", "--json", path],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, timeout=secs + 120)
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError):
            sys.exit(f"the probe failed (exit status {run.returncode}): {run.stderr[-800:]}")
    finally:
        os.unlink(path)
    lat = report["latency"]["uncorrected"]
    warmup = [s.get("max_us") or 0 for s in report.get("timeline", []) if s.get("warmup")]
    return {"p50_us": lat["p50_us"], "p99_us": lat["p99_us"], "max_us": lat["max_us"],
            "warmup_max_us": max(warmup, default=0), "throughput": report["throughput"],
            "errors": report["errors_total"], "error_kinds": report.get("errors", {}),
            "exit": run.returncode}


def connect_all(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def pipeline(socks, per_peer):
    """Writes per_peer bytes on every socket, never reading; returns the bytes the node took."""
    chunk = UNKNOWN_TYPE * (16384 // len(UNKNOWN_TYPE))
    left = {s.fileno(): per_peer for s in socks}
    by_fd = {s.fileno(): s for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    deadline = time.monotonic() + 60
    written = 0
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            fd = key.fd
            try:
                n = by_fd[fd].send(chunk[:min(len(chunk), left[fd])])
            except BlockingIOError:
                continue
            except OSError:          # closed by the node
                n = left[fd]
                sel.unregister(key.fileobj)
                del left[fd]
                continue
            written += n
            left[fd] -= n
            if left[fd] == 0:
                sel.unregister(key.fileobj)
                del left[fd]
    return written, len(left)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", type=int, default=10_000)
    p.add_argument("--per-peer", type=size, default=64 << 10)
    p.add_argument("--budget", default="256MiB")
    p.add_argument("--probe-secs", type=int, default=10)
    a = p.parse_args()
    # Whole frames only: a partial frame at the end would be closed by --frame-timeout.
    a.per_peer -= a.per_peer % len(UNKNOWN_TYPE)
    os.chdir(ROOT)
    os.sched_setaffinity(0, {1})   # the peers' writer beside the probe, off the node's CPU
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = sidebyside.free_port("tcp")
    log = tempfile.TemporaryFile(mode="w+")
    node = subprocess.Popen(["taskset", "-c", "0", AVPD, "serve", "--workers", "1", "--no-admin",
                             "--listen", f"tcp://127.0.0.1:{port}", "--status-interval", "1s",
                             "--max-buffer-memory", a.budget],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("the node did not start")
                time.sleep(0.05)
        kernel_before = kernel_counters()
        baseline = probe(port, a.probe_secs)
        kernel_between = kernel_counters()
        socks = connect_all(port, a.peers)
        time.sleep(1)
        base = rss_bytes(node.pid)
        sampler = Sampler(node.pid)
        sampler.start()
        result = {}
        during = threading.Thread(target=lambda: result.update(probe(port, a.probe_secs)))
        during.start()
        started = time.monotonic()
        written, unfinished = pipeline(socks, a.per_peer)
        wrote_s = time.monotonic() - started
        during.join()
        kernel_after = kernel_counters()
        sampler.stop = True
        sampler.join()
        time.sleep(1.5)   # one more status line
        log.seek(0)
        status = [line for line in log if "status:" in line]
        last = status[-1] if status else ""
        slow = sum(int(m) for m in re.findall(r"slow_peer=(\d+)", "".join(status)))
        peaks = [m for m in re.findall(r"buffered=([\d.]+\w+)/", "".join(status))]
        for s in socks:
            s.close()
    finally:
        node.terminate()
        node.wait()
    mib = lambda b: f"{b / (1 << 20):.1f} MiB"
    print(f"| peers | per peer | budget | node RSS base | node RSS peak | peak - base |"
          f" closed as slow peers | probe p50 / p99 / max alone | probe p50 / p99 / max with the peers"
          f" | probe answers/s alone / with the peers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {a.peers:,} | {a.per_peer:,} B | {a.budget} | {mib(base)} | "
          f"{mib(sampler.peak)} | {mib(sampler.peak - base)} | {slow:,} | "
          f"{baseline['p50_us']:.0f} / {baseline['p99_us']:.0f} / {baseline['max_us']:,.0f} µs | "
          f"{result['p50_us']:.0f} / {result['p99_us']:.0f} / {result['max_us']:,.0f} µs "
          f"({result['errors']} errors) | "
          f"{baseline['throughput']:,.0f} / {result['throughput']:,.0f} |")
    print(f"\nthe probe's slowest answer in its warmup second (corrected): "
          f"{baseline['warmup_max_us']:,.0f} µs alone, {result['warmup_max_us']:,.0f} µs "
          f"with the peers", file=sys.stderr)
    dropped = lambda a, b: ", ".join(f"{b[k] - a[k]:,} {k}" for k in a)
    print(f"the kernel during the probe alone: {dropped(kernel_before, kernel_between)}; "
          f"with the peers: {dropped(kernel_between, kernel_after)}", file=sys.stderr)
    print(f"peers wrote {written:,} bytes in {wrote_s:.1f} s ({unfinished} unfinished); "
          f"buffered= on the status lines: {', '.join(peaks[-12:])}; last: {last.strip()}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
