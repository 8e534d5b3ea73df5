#!/usr/bin/env python3
"""Fleet-size figures of docs/CAPACITY.md: a terminal over 100,000 nodes, and 19,000 agents.

usage: python3 bench/fleet.py [--nodes 100000] [--agents 19000] [--secs 20] [--no-build]
                              [--skip terminal|agents]

  terminal  `avpd serve --workers 1` with a management plane on CPU 0; on CPU 1 avp-loadgen
            sends --nodes reports a second (100 connections, NODE_IDs cycling through --nodes
            names, so every node reports once a second) and, once the fleet is up,
            `avpd term --plain` connects and writes what it is pushed to a file. Figures: how
            long the new terminal took to hold every node, how old each pushed row was when
            the terminal printed it (its `time=` minus the node's `received=`), and the CPU
            time of the node's management-plane thread (avpd-admin) and data-plane worker
            over the measured window, from /proc.
  agents    `avpd serve --workers 1 --no-admin` on CPU 0 and `avp-loadgen --agents N
            --interval 1s` on CPU 1: the share of reports answered before the agent's next
            one was due, the achieved rate against the fleet's schedule, p99, and the
            loadgen's busiest thread.

It rewrites the block between the GENERATED markers for bench/fleet in docs/CAPACITY.md
(appending them when missing). Stdlib only.
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import docblock  # noqa: E402
import sidebyside  # noqa: E402  (bench/ is not a package)

AVPD = "target/release/avpd"
LOADGEN = "target/release/avp-loadgen"
DOC = "docs/CAPACITY.md"
BLOCK = "bench/fleet"
HOST = sidebyside.HOST
LOAD_CPU = sidebyside.CLIENT_CPU
CLK_TCK = os.sysconf("SC_CLK_TCK")
FLEET_UP_S = 5          # seconds of load before the terminal connects
log = sidebyside.log


def thread_cpu(pid):
    """{thread name: CPU seconds} of a process's threads."""
    out = {}
    task = f"/proc/{pid}/task"
    for tid in os.listdir(task):
        try:
            with open(f"{task}/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"{task}/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def node(argv, port):
    server = sidebyside.Server("avpd", argv)
    if not sidebyside.wait_tcp(server, port):
        server.stop()
        raise RuntimeError(f"avpd is not answering: {server.output_tail()}")
    return server


def iso_ms(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def terminal_argvs(a, port, admin):
    serve = [AVPD, "serve", "--workers", "1", "--listen", f"tcp://{HOST}:{port}",
             "--admin", f"tcp://{HOST}:{admin}"]
    load = [LOADGEN, "-q", "--target", f"tcp://{HOST}:{port}", "--rate", str(a.nodes),
            "--connections", "100", "--pipeline", "16", "--node-ids", str(a.nodes),
            "--report-fields", "full", "--warmup", "1s",
            "--duration", f"{FLEET_UP_S + a.secs + 5}s"]
    term = [AVPD, "term", "--plain", "--connect", f"tcp://{HOST}:{admin}"]
    return serve, load, term


def part_terminal(a):
    port, admin = sidebyside.free_port("tcp"), sidebyside.free_port("tcp")
    serve, load, term = terminal_argvs(a, port, admin)
    server = node(serve, port)
    tmp = tempfile.mkdtemp(prefix="avp-bench-fleet-")
    rows_path = os.path.join(tmp, "rows.txt")
    try:
        loadgen = subprocess.Popen(["taskset", "-c", LOAD_CPU] + load,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(FLEET_UP_S)   # the fleet's first round of reports; not synchronisation
        with open(rows_path, "w") as rows:
            connected = time.time() * 1000
            before = thread_cpu(server.proc.pid)
            t0 = time.monotonic()
            terminal = subprocess.Popen(["taskset", "-c", LOAD_CPU] + term,
                                        stdin=subprocess.PIPE, stdout=rows,
                                        stderr=subprocess.DEVNULL)
            time.sleep(a.secs)
            after = thread_cpu(server.proc.pid)
            window = time.monotonic() - t0
            terminal.terminate()
            terminal.wait()
        loadgen.wait(timeout=120)
        if loadgen.returncode != 0:
            raise RuntimeError(f"avp-loadgen failed: {loadgen.stderr.read()[-300:]}")
    finally:
        server.stop()
    seen, lags, lines = {}, [], 0
    with open(rows_path) as f:
        for line in f:
            fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
            name, received = fields.get("node"), fields.get("received", "-")
            if name is None or received == "-":
                continue
            lines += 1
            at = iso_ms(fields["time"])
            seen.setdefault(name, at)
            lags.append(at - int(received))
    os.remove(rows_path)
    os.rmdir(tmp)
    every = len(seen) >= a.nodes
    full_s = (max(seen.values()) - connected) / 1000 if every else None
    cpu = {k: (after.get(k, 0) - before.get(k, 0)) / window for k in after}
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| nodes reporting, one report a second each | {a.nodes:,} |",
        f"| distinct nodes the new terminal printed | {len(seen):,} |",
        f"| rows it printed in {window:.0f} s | {lines:,} |",
        f"| from connecting to holding every node | "
        f"{f'{full_s:.2f} s' if full_s is not None else 'not every node'} |",
        f"| age of a pushed row when printed: p50 / p99 / max | "
        f"{percentile(lags, 0.5) / 1000:.2f} s / {percentile(lags, 0.99) / 1000:.2f} s / "
        f"{max(lags) / 1000:.2f} s |" if lags else "| age of a pushed row | no rows |",
        f"| management plane thread (avpd-admin) CPU | {cpu.get('avpd-admin', 0):.1%} of a core |",
        f"| data-plane worker (avpd-worker-0) CPU | {cpu.get('avpd-worker-0', 0):.1%} of a core |",
    ]
    intro = (f"{a.nodes:,} nodes, each reporting once a second, into `avpd serve --workers 1` "
             f"with a management plane (CPU {sidebyside.SERVER_CPU}); a terminal connects "
             f"{FLEET_UP_S} s into the load and is measured for {window:.0f} s (avp-loadgen "
             f"and the terminal on CPU {LOAD_CPU}). A row's age is the terminal's receive "
             f"time minus the node's receive time of the report it shows.")
    commands = "\n".join([f"taskset -c {sidebyside.SERVER_CPU} {shlex.join(serve)} &",
                          f"taskset -c {LOAD_CPU} {shlex.join(load)} &",
                          f"taskset -c {LOAD_CPU} {shlex.join(term)} > rows.txt"])
    return (["### A terminal over a fleet of " + f"{a.nodes:,} nodes", "", intro, ""] + rows
            + ["", "```sh", commands.replace(str(port), "PORT").replace(str(admin), "ADMIN"),
               "```", ""])


def part_agents(a):
    port = sidebyside.free_port("tcp")
    serve = [AVPD, "serve", "--workers", "1", "--no-admin", "--listen", f"tcp://{HOST}:{port}"]
    warmup = max(5, a.agents // 2000 + 3)
    load = [LOADGEN, "-q", "--target", f"tcp://{HOST}:{port}", "--agents", str(a.agents),
            "--interval", "1s", "--connect-rate", "2000", "--warmup", f"{warmup}s",
            "--duration", f"{a.secs:g}s"]
    server = node(serve, port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "fleet.json")
            out = subprocess.run(["taskset", "-c", LOAD_CPU] + load + ["--json", path],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=a.secs + warmup + 120)
            if not os.path.exists(path):
                raise RuntimeError(f"avp-loadgen wrote no report ({out.returncode}): "
                                   f"{out.stderr.strip()[-300:]}")
            with open(path) as f:
                rep = json.load(f)
    finally:
        server.stop()
    lat = rep["latency"]["corrected"]
    busy = rep.get("loadgen_busy")
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| agents connected, one report a second each | {a.agents:,} |",
        f"| reports sent per second / answered correctly per second | "
        f"{rep['send_rate']:,.0f} / {rep['throughput']:,.0f} |",
        f"| answered before the agent's next report was due | "
        f"{rep['on_time']:.3%} |" if rep.get("on_time") is not None else "| on time | n/a |",
        f"| errors | {rep['errors_total']:,} |",
        f"| corrected latency p50 / p99 / p99.9 | {lat['p50_us']:,.0f} µs / "
        f"{lat['p99_us']:,.0f} µs / {lat['p99_9_us']:,.0f} µs |",
        f"| loadgen's busiest thread | "
        f"{f'{busy:.1%} of a core' if busy is not None else 'n/a'} |",
    ]
    intro = (f"`avp-loadgen --agents {a.agents} --interval 1s` (CPU {LOAD_CPU}) against "
             f"`avpd serve --workers 1` (CPU {sidebyside.SERVER_CPU}), {a.secs:g} s measured "
             f"after a {warmup} s warmup that covers the connection ramp at 2,000 a second.")
    commands = "\n".join([f"taskset -c {sidebyside.SERVER_CPU} {shlex.join(serve)} &",
                          f"taskset -c {LOAD_CPU} {shlex.join(load)}"]).replace(str(port), "PORT")
    return ([f"### {a.agents:,} agents reporting every second", "", intro, ""] + rows
            + ["", "```sh", commands, "```", ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--agents", type=int, default=19_000)
    ap.add_argument("--secs", type=float, default=20, help="measured seconds per part")
    ap.add_argument("--skip", action="append", default=[], choices=["terminal", "agents"])
    ap.add_argument("--no-build", action="store_true", help="skip the cargo build")
    a = ap.parse_args()
    os.chdir(ROOT)
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "avpd", "-p", "avp-loadgen"],
                       check=True)
    lines = []
    for name, part in (("terminal", part_terminal), ("agents", part_agents)):
        if name in a.skip:
            continue
        log(name)
        try:
            lines += part(a)
        except (RuntimeError, OSError, subprocess.SubprocessError, KeyError) as e:
            lines += [f"### {name}", "", f"Failed: {e}", ""]
    docblock.write_block(os.path.join(ROOT, DOC), BLOCK, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
