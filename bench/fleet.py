#!/usr/bin/env python3
"""Fleet-size figures of docs/CAPACITY.md: terminals over 100,000 nodes and across nodes, agents.

usage: python3 bench/fleet.py [--nodes 100000] [--agents 19000] [--across 1000] [--secs 20]
                              [--no-build] [--skip terminal|agents|across]

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
  across    two nodes sharing a nats-server (both on CPU 0, nats-server on CPU 1): --across
            agents report every second to node B, and a terminal on node A prints what A
            pushes. Figures: how long A's terminal took to hold every agent, how old each
            row was when printed, and the share of rows at most two report intervals old
            (needs nats-server on PATH).

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
# The agents' connections come from several loopback addresses: from one, 19,000 connections
# plus the TIME_WAIT left by earlier runs exhaust its 28,000 ephemeral ports.
SOURCE_ADDRS = "127.0.0.2-127.0.0.9"
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


def watch(server, term, secs):
    """Runs the terminal `term` for `secs`, its rows written to a temporary file; returns the
    rows (see parse_rows), when it connected (ms since the epoch), the window in seconds, and
    the CPU seconds of `server`'s threads over it."""
    tmp = tempfile.mkdtemp(prefix="avp-bench-fleet-")
    rows_path = os.path.join(tmp, "rows.txt")
    try:
        with open(rows_path, "w") as rows:
            connected = time.time() * 1000
            before = thread_cpu(server.proc.pid)
            t0 = time.monotonic()
            terminal = subprocess.Popen(["taskset", "-c", LOAD_CPU] + term,
                                        stdin=subprocess.PIPE, stdout=rows,
                                        stderr=subprocess.DEVNULL)
            time.sleep(secs)
            after = thread_cpu(server.proc.pid)
            window = time.monotonic() - t0
            terminal.terminate()
            terminal.wait()
        parsed = parse_rows(rows_path)
    finally:
        if os.path.exists(rows_path):
            os.remove(rows_path)
        os.rmdir(tmp)
    cpu = {k: (after.get(k, 0) - before.get(k, 0)) / window for k in after}
    return parsed, connected, window, cpu


def parse_rows(path):
    """({node: when the terminal first printed it, ms}, [age of each printed row, ms], rows)
    from `avpd term --plain` output."""
    seen, lags, lines = {}, [], 0
    with open(path) as f:
        for line in f:
            fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
            name, received = fields.get("node"), fields.get("received", "-")
            if name is None or received == "-":
                continue
            lines += 1
            at = iso_ms(fields["time"])
            seen.setdefault(name, at)
            lags.append(at - int(received))
    return seen, lags, lines


def start_load(load):
    return subprocess.Popen(["taskset", "-c", LOAD_CPU] + load, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def end_load(loadgen):
    loadgen.wait(timeout=120)
    if loadgen.returncode != 0:
        raise RuntimeError(f"avp-loadgen failed: {loadgen.stderr.read()[-300:]}")


def age_row(lags):
    if not lags:
        return "| age of a pushed row | no rows |"
    return (f"| age of a pushed row when printed: p50 / p99 / max | "
            f"{percentile(lags, 0.5) / 1000:.2f} s / {percentile(lags, 0.99) / 1000:.2f} s / "
            f"{max(lags) / 1000:.2f} s |")


def held_every_node(seen, nodes, connected):
    if len(seen) < nodes:
        return "not every node"
    return f"{(max(seen.values()) - connected) / 1000:.2f} s"


def part_terminal(a):
    port, admin = sidebyside.free_port("tcp"), sidebyside.free_port("tcp")
    serve, load, term = terminal_argvs(a, port, admin)
    server = node(serve, port)
    try:
        loadgen = start_load(load)
        time.sleep(FLEET_UP_S)   # the fleet's first round of reports; not synchronisation
        (seen, lags, lines), connected, window, cpu = watch(server, term, a.secs)
        end_load(loadgen)
    finally:
        server.stop()
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| nodes reporting, one report a second each | {a.nodes:,} |",
        f"| distinct nodes the new terminal printed | {len(seen):,} |",
        f"| rows it printed in {window:.0f} s | {lines:,} |",
        f"| from connecting to holding every node | {held_every_node(seen, a.nodes, connected)} |",
        age_row(lags),
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


def part_across(a):
    import store  # noqa: E402  (its nats-server helper)
    nats = store.Nats()
    port_a, admin, port_b = (sidebyside.free_port("tcp") for _ in range(3))
    shared = ["--store", nats.url, "--store-max-bytes", "1GiB"]
    serve_b = [AVPD, "serve", "--workers", "1", "--no-admin", "--listen",
               f"tcp://{HOST}:{port_b}", "--collector-id", "node-b"] + shared
    serve_a = [AVPD, "serve", "--workers", "1", "--listen", f"tcp://{HOST}:{port_a}",
               "--admin", f"tcp://{HOST}:{admin}", "--collector-id", "node-a"] + shared
    load = [LOADGEN, "-q", "--target", f"tcp://{HOST}:{port_b}", "--agents", str(a.across),
            "--interval", "1s", "--warmup", "1s", "--duration", f"{FLEET_UP_S + a.secs + 5}s"]
    term = [AVPD, "term", "--plain", "--connect", f"tcp://{HOST}:{admin}"]
    servers = []
    try:
        servers.append(node(serve_b, port_b))
        servers.append(node(serve_a, port_a))
        loadgen = start_load(load)
        time.sleep(FLEET_UP_S)   # the fleet's first reports; not synchronisation
        (seen, lags, lines), connected, window, _ = watch(servers[1], term, a.secs)
        end_load(loadgen)
    finally:
        for s in servers:
            s.stop()
        nats.stop()
    within = sum(1 for lag in lags if lag <= 2000) / len(lags) if lags else 0
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| agents reporting to node B, one report a second each | {a.across:,} |",
        f"| distinct agents the terminal on node A printed | {len(seen):,} |",
        f"| rows it printed in {window:.0f} s | {lines:,} |",
        f"| from connecting to holding every agent | "
        f"{held_every_node(seen, a.across, connected)} |",
        age_row(lags),
        f"| rows at most two report intervals (2 s) old | {within:.2%} |",
    ]
    intro = (f"{a.across:,} agents (`avp-loadgen --agents`, CPU {LOAD_CPU}) report every "
             f"second to node B; a terminal on node A, which shares B's nats-server (CPU "
             f"{LOAD_CPU}), connects {FLEET_UP_S} s into the load and is measured for "
             f"{window:.0f} s. Both nodes run on CPU {sidebyside.SERVER_CPU}. A row's age is "
             f"the terminal's receive time minus node B's receive time of the report it shows: "
             f"B's worker, B's store thread and the bucket of latest reports (each node's row "
             f"is put at most twice a second), A's watch of the bucket and A's next push.")
    commands = "\n".join([
        f"taskset -c {LOAD_CPU} nats-server -js -a {HOST} -p NATS_PORT -sd DIR &",
        f"taskset -c {sidebyside.SERVER_CPU} {shlex.join(serve_b)} &",
        f"taskset -c {sidebyside.SERVER_CPU} {shlex.join(serve_a)} &",
        f"taskset -c {LOAD_CPU} {shlex.join(load)} &",
        f"taskset -c {LOAD_CPU} {shlex.join(term)} > rows.txt"])
    for value, name in ((port_a, "PORT_A"), (port_b, "PORT_B"), (admin, "ADMIN"),
                        (nats.port, "NATS_PORT")):
        commands = commands.replace(str(value), name)
    return ([f"### Agents on node B seen from a terminal on node A ({a.across:,} agents)", "",
             intro, ""] + rows + ["", "```sh", commands, "```", ""])


def part_agents(a):
    port = sidebyside.free_port("tcp")
    serve = [AVPD, "serve", "--workers", "1", "--no-admin", "--listen", f"tcp://{HOST}:{port}"]
    warmup = max(5, a.agents // 2000 + 3)
    load = [LOADGEN, "-q", "--target", f"tcp://{HOST}:{port}", "--agents", str(a.agents),
            "--interval", "1s", "--connect-rate", "2000", "--source-addrs", SOURCE_ADDRS,
            "--warmup", f"{warmup}s",
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
             f"after a {warmup} s warmup that covers the connection ramp at 2,000 a second, "
             f"from the loopback addresses {SOURCE_ADDRS}.")
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
    ap.add_argument("--across", type=int, default=1_000,
                    help="agents reporting to node B in the across part")
    ap.add_argument("--secs", type=float, default=20, help="measured seconds per part")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["terminal", "agents", "across"])
    ap.add_argument("--no-build", action="store_true", help="skip the cargo build")
    a = ap.parse_args()
    os.chdir(ROOT)
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "avpd", "-p", "avp-loadgen"],
                       check=True)
    cmd = ["python3", "bench/fleet.py", "--nodes", str(a.nodes), "--agents", str(a.agents),
           "--across", str(a.across), "--secs", f"{a.secs:g}"]
    for part in a.skip:
        cmd += ["--skip", part]
    lines = [docblock.provenance(cmd), ""]
    parts = (("terminal", part_terminal), ("agents", part_agents), ("across", part_across))
    for name, part in parts:
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
