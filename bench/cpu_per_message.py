#!/usr/bin/env python3
"""CPU time each server spends per message, side by side, under ../shared/limit's C client.

usage: bench/cpu_per_message.py [--rounds 3] [--secs 3] [--cfg 10x128 ...] 'name=CMD {port}' ...

Throughput on a shared, noisy machine swings with whatever else runs; the CPU time a server
burns per message (user + system, read from /proc/PID/stat) is much steadier. Servers run on
CPU 0 and the client on CPU 1, alternating within each round; prints medians of the rounds:
messages/s, CPU ns per message, and the user/system split.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import time

LIMIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "limit")
CLIENT = "/tmp/limit_client"
TICK = os.sysconf("SC_CLK_TCK")


def build_client():
    if not os.path.exists(CLIENT):
        subprocess.check_call(["gcc", "-O2", "-o", CLIENT, os.path.join(LIMIT, "limit_client.c")])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def wait_port(port):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def run_one(cmd, port, cfg, secs):
    proc = subprocess.Popen(["taskset", "-c", "0", "sh", "-c", "exec " + cmd.format(port=port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        user0, sys0 = cpu_ticks(proc.pid)
        conns, depth = cfg.split("x")
        out = subprocess.run(["taskset", "-c", "1", CLIENT, str(port), conns, depth, str(secs)],
                             capture_output=True, text=True, timeout=secs + 60).stdout
        user1, sys1 = cpu_ticks(proc.pid)
        acks = int(re.search(r"acks=(\d+)", out).group(1))
        rate = float(re.search(r"rate=(\d+)", out).group(1))
        user_ns = (user1 - user0) / TICK * 1e9 / max(acks, 1)
        sys_ns = (sys1 - sys0) / TICK * 1e9 / max(acks, 1)
        return rate, user_ns, sys_ns
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--cfg", action="append")
    ap.add_argument("--port", type=int, default=7950)
    ap.add_argument("servers", nargs="+")
    a = ap.parse_args()
    build_client()
    cfgs = a.cfg or ["100x1", "1000x16", "10x128"]
    servers = [s.split("=", 1) for s in a.servers]
    results = {(n, c): [] for n, _ in servers for c in cfgs}
    port = a.port
    for _ in range(a.rounds):
        for cfg in cfgs:
            for name, cmd in servers:
                port += 1
                results[(name, cfg)].append(run_one(cmd, port, cfg, a.secs))
    print(f"{'server':<10} {'config':<8} {'msgs/s':>12} {'cpu ns/msg':>11} {'user':>7} {'sys':>7}")
    for cfg in cfgs:
        for name, _ in servers:
            runs = results[(name, cfg)]
            rate = statistics.median(r[0] for r in runs)
            user = statistics.median(r[1] for r in runs)
            sys_ = statistics.median(r[2] for r in runs)
            print(f"{name:<10} {cfg:<8} {rate:>12,.0f} {user + sys_:>11.0f} {user:>7.0f} {sys_:>7.0f}")


if __name__ == "__main__":
    main()
