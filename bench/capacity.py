#!/usr/bin/env python3
"""The standard capacity suite: every figure of docs/CAPACITY.md's generated block, one command.

usage: python3 bench/capacity.py [--rounds 3] [--secs 3] [--no-build] [--skip PART ...]

Parts (each can be skipped with --skip NAME):
  clients  limit_client.c vs avp-loadgen against limit_server.c (server on CPU 0, client on
           CPU 1; 100x1, 1000x16, 10x128; medians of the rounds, clients alternating per round)
  race     limit_client.c and avp-loadgen at once on CPU 1 against one limit_server.c
           (how the server's answers split between them; 10 s per round)
  servers  limit_server.c vs `avpd serve --workers 1` under limit_client.c (../shared/limit's
           sidebyside.py)
  sweep    an open-loop sweep against avpd up to the SLO p99 <= 5 ms, with its plot
  latency  one open-loop run at half the highest throughput the sweep reached (needs sweep):
           latency table, .hgrm and percentile plots
  conns    10,000 connections held from one avp-loadgen process against avpd: loadgen peak RSS

It rewrites only the block between the GENERATED markers of docs/CAPACITY.md (creating the
file with just the markers if it is missing) and writes plots into docs/img/.
"""
import argparse
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_DIR = os.path.join(os.path.dirname(ROOT), "shared", "limit")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
AVPD = os.path.join(TARGET, "release", "avpd")
LOADGEN = os.path.join(TARGET, "release", "avp-loadgen")
LIMIT_SERVER = "/tmp/limit_server"
LIMIT_CLIENT = "/tmp/limit_client"  # the path sidebyside.py uses
DOC = os.path.join(ROOT, "docs", "CAPACITY.md")
IMG = os.path.join(ROOT, "docs", "img")
BEGIN = "<!-- BEGIN GENERATED: bench/capacity -->"
END = "<!-- END GENERATED: bench/capacity -->"
CONFIGS = ["100x1", "1000x16", "10x128"]
SLO = "p99=5ms"

_port = [7950]


def next_port():
    _port[0] += 1
    return _port[0]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rel(path):
    return os.path.relpath(path, ROOT)


def build(no_build):
    if not no_build:
        log("building: cargo build --release --workspace")
        subprocess.check_call(["cargo", "build", "--release", "--workspace"], cwd=ROOT)
    for b in (AVPD, LOADGEN):
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: run cargo build --release --workspace")
    for src, out in (("limit_server.c", LIMIT_SERVER), ("limit_client.c", LIMIT_CLIENT)):
        subprocess.check_call(["gcc", "-O2", "-o", out, os.path.join(LIMIT_DIR, src)])


def wait_port(port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    """A server pinned to CPU 0 for the duration of a `with` block."""

    def __init__(self, argv):
        self.argv = argv

    def __enter__(self):
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + self.argv,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def limit_server(port):
    return Server([LIMIT_SERVER, str(port)])


def avpd_server(port):
    return Server([AVPD, "serve", "--workers", "1", "--listen", f"tcp://127.0.0.1:{port}"])


def loadgen(args, json_path, timeout):
    """Runs avp-loadgen on CPU 1 and returns its JSON report."""
    argv = ["taskset", "-c", "1", LOADGEN, "-q", "--json", json_path] + args
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if not os.path.exists(json_path):
        raise RuntimeError(f"{shlex.join(argv)} failed: {out.stderr.strip()}")
    with open(json_path) as f:
        return json.load(f), out.stdout


def closed_loop_argv(json_path, port, conns, depth, secs, warmup, fields):
    """avp-loadgen's command line for a closed-loop run against 127.0.0.1:`port` that writes
    its JSON report to `json_path` (removed first, so a failed run leaves none)."""
    if os.path.exists(json_path):
        os.remove(json_path)
    return [LOADGEN, "-q", "--json", json_path, "--target", f"tcp://127.0.0.1:{port}",
            "--connections", conns, "--pipeline", depth, "--duration", f"{secs}s",
            "--warmup", f"{warmup}s", "--report-fields", fields]


def read_report(json_path):
    """The JSON report a run wrote, or None when it wrote none."""
    if not os.path.exists(json_path):
        return None
    with open(json_path) as f:
        return json.load(f)


def fmt_rate(v):
    return f"{v / 1e3:,.0f}k" if v else "n/a"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# --- part: clients -----------------------------------------------------------------------------

def run_client(argv, timeout):
    """Runs a client pinned to CPU 1; returns its stdout and the CPU seconds (user + system) it
    used, from its own rusage (taskset execs the client, so the pid is the client's)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(["taskset", "-c", "1"] + argv, stdout=out,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return out.read(), usage.ru_utime + usage.ru_stime


CLIENTS = ["limit_client.c", "avp-loadgen (minimal reports)", "avp-loadgen (full reports)"]
# limit_client.c starts its clock once every connection is open and primed; the loadgen's
# warmup leaves its connection ramp out of the measured window in the same way.
CLIENT_WARMUP = 1


def client_run(c, port, conns, depth, a, tmp):
    """One closed-loop run of client `c`: (answers per second, answers, CPU seconds)."""
    if c == "limit_client.c":
        out, cpu = run_client([LIMIT_CLIENT, str(port), conns, depth, str(a.secs)], a.secs + 60)
        m = re.search(r"acks=(\d+) secs=([\d.]+)", out)
        return (int(m.group(1)) / float(m.group(2)), int(m.group(1)), cpu) if m else None
    fields = "minimal" if "minimal" in c else "full"
    json_path = os.path.join(tmp, "client.json")
    argv = closed_loop_argv(json_path, port, conns, depth, a.secs, CLIENT_WARMUP, fields)
    _, cpu = run_client(argv, a.secs + CLIENT_WARMUP + 60)
    rep = read_report(json_path)
    return (rep["throughput"], rep["answered"] + rep["warmup_answered"], cpu) if rep else None


def part_clients(a, tmp):
    """limit_client vs avp-loadgen (minimal and full reports) against limit_server."""
    # runs[(client, cfg)]: one (rate, answers, cpu seconds) or None per round.
    runs = {(c, cfg): [] for c in CLIENTS for cfg in CONFIGS}
    for r in range(a.rounds):
        for cfg in CONFIGS:
            conns, depth = cfg.split("x")
            for c in CLIENTS:
                port = next_port()
                with limit_server(port):
                    run = client_run(c, port, conns, depth, a, tmp) if wait_port(port) else None
                runs[(c, cfg)].append(run)
                log(f"  clients round {r + 1} {cfg:>8} {c:<30} "
                    f"{fmt_rate(run[0]) if run else 'failed'}")

    def cell(c, cfg):
        mine, base = runs[(c, cfg)], runs[(CLIENTS[0], cfg)]
        rate = median([x[0] if x else None for x in mine])
        ns = median([x[2] / x[1] * 1e9 if x and x[1] else None for x in mine])
        # Each round's ratio compares two runs made seconds apart, so slow drift of the machine
        # cancels; the median of those ratios and their spread are reported.
        ratios = sorted(x[0] / b[0] for x, b in zip(mine, base) if x and b and b[0])
        if not rate or not ratios:
            return "n/a"
        spread = f" {ratios[0]:.2f}–{ratios[-1]:.2f}" if c != CLIENTS[0] else ""
        return (f"{fmt_rate(rate)} ({statistics.median(ratios):.2f}x{spread}), "
                f"{ns:,.0f} ns CPU/msg")

    lines = [
        "| client (against limit_server.c) | " + " | ".join(CONFIGS) + " |",
        "|---|" + "---|" * len(CONFIGS),
    ] + [f"| {c} | " + " | ".join(cell(c, cfg) for cfg in CONFIGS) + " |" for c in CLIENTS]
    cmd = (f"taskset -c 1 avp-loadgen --target tcp://127.0.0.1:PORT --connections C "
           f"--pipeline D --duration {a.secs:g}s --warmup {CLIENT_WARMUP}s "
           f"--report-fields minimal|full")
    return [
        "### Load generator vs limit_client.c",
        "",
        f"Closed loop against `limit_server.c` on CPU 0, the client on CPU 1, a fresh server per "
        f"run, clients alternating within each round, {a.rounds} rounds of {a.secs:g} s. Each "
        f"cell: the median throughput; in brackets the median over the rounds of the ratio to "
        f"limit_client.c's run of the same round, and the lowest and highest of those ratios; "
        f"then the client's CPU time (user + system, from its rusage) per answer (warmup "
        f"included), median of the rounds. limit_client.c starts its clock once its connections "
        f"are open and primed; the loadgen's {CLIENT_WARMUP} s warmup leaves its ramp out too. limit_client.c sends 15-byte reports (CPU, MEM, SEQUENCE) and records "
        f"nothing; `--report-fields minimal` sends the same bytes, `full` adds TIMESTAMP and "
        f"NODE_ID (36 bytes). avp-loadgen checks and times every answer in both.",
        "",
        f"    taskset -c 1 /tmp/limit_client PORT C D {a.secs:g}",
        f"    {cmd}",
        "",
    ] + lines + [""]


# --- part: race --------------------------------------------------------------------------------

RACE_SECS = 10
# The loadgen starts this long before limit_client.c and leaves it out as warmup, so that both
# clocks run over the same seconds with every connection open.
RACE_WARMUP = 1


def race_round(cfg, tmp):
    """limit_client.c and avp-loadgen at once, both on CPU 1, against one limit_server.c on
    CPU 0, for RACE_SECS: (limit_client's acks/s, the loadgen's answers/s)."""
    conns, depth = cfg.split("x")
    port = next_port()
    json_path = os.path.join(tmp, "race.json")
    argv = closed_loop_argv(json_path, port, conns, depth, RACE_SECS, RACE_WARMUP, "minimal")
    with limit_server(port):
        if not wait_port(port):
            return None
        lg = subprocess.Popen(["taskset", "-c", "1"] + argv, stdout=subprocess.DEVNULL)
        time.sleep(RACE_WARMUP)
        c = subprocess.Popen(["taskset", "-c", "1", LIMIT_CLIENT, str(port), conns, depth,
                              str(RACE_SECS)], stdout=subprocess.PIPE, text=True)
        out, _ = c.communicate(timeout=RACE_SECS + 60)
        lg.wait(timeout=RACE_SECS + RACE_WARMUP + 60)
    m = re.search(r"rate=(\d+)", out)
    rep = read_report(json_path)
    return (float(m.group(1)), rep["throughput"]) if m and rep else None


def part_race(a, tmp):
    """Both clients in the same run: how the server's answers split between them."""
    rows = []
    for cfg in CONFIGS:
        runs = []
        for r in range(a.rounds):
            run = race_round(cfg, tmp)
            runs.append(run)
            log(f"  race round {r + 1} {cfg:>8} " +
                (f"limit_client {fmt_rate(run[0])} avp-loadgen {fmt_rate(run[1])}" if run
                 else "failed"))
        ratios = sorted(lg / c for c, lg in filter(None, runs) if c)
        if not ratios:
            rows.append(f"| {cfg} | n/a | n/a | n/a |")
            continue
        rows.append(f"| {cfg} | {fmt_rate(median([x[0] for x in runs if x]))} | "
                    f"{fmt_rate(median([x[1] for x in runs if x]))} | "
                    f"**{statistics.median(ratios):.3f}x** ({ratios[0]:.3f}–{ratios[-1]:.3f}) |")
    return [
        "### Load generator and limit_client.c in the same run",
        "",
        f"Both clients at once on CPU 1, with the configuration's connections each, against one "
        f"`limit_server.c` on CPU 0, for {RACE_SECS} s; {a.rounds} rounds per configuration. "
        f"They share the machine's state second by second, so its drift cancels out of the "
        f"ratio. They also share CPU 1, so the one that spends less per answer turns its "
        f"connections around sooner and gets more of the server's answers. limit_client.c "
        f"opens its connections before starting its clock; the loadgen starts {RACE_WARMUP} s "
        f"earlier and leaves that second out as warmup, so both clocks cover the same seconds "
        f"with every connection open. Medians of the rounds; the ratio column is avp-loadgen / "
        f"limit_client.c, with the lowest and highest round.",
        "",
        f"    taskset -c 1 avp-loadgen --target tcp://127.0.0.1:PORT --connections C "
        f"--pipeline D --duration {RACE_SECS}s --warmup {RACE_WARMUP}s "
        f"--report-fields minimal &",
        f"    sleep {RACE_WARMUP}; taskset -c 1 /tmp/limit_client PORT C D {RACE_SECS}",
        "",
        "| configuration | limit_client.c | avp-loadgen | avp-loadgen / limit_client.c |",
        "|---|---|---|---|",
    ] + rows + [""]


# --- part: servers -----------------------------------------------------------------------------

def part_servers(a):
    cmd = [sys.executable, os.path.join(LIMIT_DIR, "sidebyside.py"), "--rounds", str(a.rounds),
           "--secs", str(a.secs)]
    for cfg in CONFIGS:
        cmd += ["--cfg", cfg]
    cmd += [f"climit={LIMIT_SERVER} {{port}}",
            f"avpd={AVPD} serve --workers 1 --listen tcp://127.0.0.1:{{port}}"]
    log("  servers: " + shlex.join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    shown = [shlex.join(["python3"] + [os.path.relpath(c, ROOT) if c.startswith(ROOT) else c
                                       for c in cmd[1:]])
             .replace(LIMIT_DIR, "../shared/limit").replace(TARGET, "target")]
    return [
        "### avpd vs limit_server.c under limit_client.c",
        "",
        f"`sidebyside.py`: servers alternate on CPU 0, limit_client.c on CPU 1, medians of "
        f"{a.rounds} rounds of {a.secs:g} s, acks/s and ratio to limit_server.c.",
        "",
        "    " + shown[0],
        "",
    ] + ["    " + line for line in out.strip().splitlines()] + [""]


# --- part: latency -----------------------------------------------------------------------------

def part_latency(a, tmp, cap):
    if not cap:
        return ["### Open-loop latency", "", "The sweep measured no capacity; no figures.", ""]
    rate = round(cap / 2, -3)
    port = next_port()
    hgrm = os.path.join(IMG, "latency-half-capacity.hgrm")
    args = ["--target", f"tcp://127.0.0.1:{port}", "--rate", f"{rate:.0f}", "--connections",
            "100", "--pipeline", "16", "--duration", "10s", "--warmup", "2s", "--hgrm", hgrm]
    plots = ["--plot", os.path.join(IMG, "latency-half-capacity.svg"),
             "--plot", os.path.join(IMG, "latency-half-capacity.png")]
    with avpd_server(port):
        wait_port(port)
        rep, table = loadgen(args + plots, os.path.join(tmp, "lat.json"), 120)
    shown = ("taskset -c 1 avp-loadgen --target tcp://127.0.0.1:PORT --rate "
             f"{rate:.0f} --connections 100 --pipeline 16 --duration 10s --warmup 2s "
             "--hgrm docs/img/latency-half-capacity.hgrm --plot docs/img/latency-half-capacity.svg "
             "--plot docs/img/latency-half-capacity.png")
    return [
        "### Open-loop latency of `avpd serve --workers 1` at half its capacity",
        "",
        f"Capacity here is the highest throughput any step of the sweep above achieved in open "
        f"loop, **{cap:,.0f} msg/s**. An open-loop run at half of it, {rate:,.0f} msg/s, avpd on "
        f"CPU 0 and the loadgen on CPU 1:",
        "",
        "    " + shown,
        "",
    ] + ["    " + line for line in table.rstrip().splitlines()] + [
        "",
        "![latency percentile spectrum](img/latency-half-capacity.svg)",
        "",
        "(`docs/img/latency-half-capacity.png` is the same plot as a PNG; "
        "`docs/img/latency-half-capacity.hgrm` opens in HdrHistogram's plotter.)",
        "",
    ]


# --- part: sweep -------------------------------------------------------------------------------

SWEEP_START = 10_000


def part_sweep(a, tmp):
    """The sweep's table and the highest throughput any of its steps achieved."""
    start = SWEEP_START
    port = next_port()
    args = ["--target", f"tcp://127.0.0.1:{port}", "--sweep", "--slo", SLO, "--sweep-start",
            f"{start:.0f}", "--sweep-factor", "1.4", "--connections", "100", "--pipeline", "16",
            "--duration", f"{a.secs}s", "--warmup", "1s",
            "--plot", os.path.join(IMG, "sweep.svg"), "--plot", os.path.join(IMG, "sweep.png")]
    with avpd_server(port):
        wait_port(port)
        rep, table = loadgen(args, os.path.join(tmp, "sweep.json"), 3600)
    shown = (f"taskset -c 1 avp-loadgen --target tcp://127.0.0.1:PORT --sweep --slo {SLO} "
             f"--sweep-start {start:.0f} --sweep-factor 1.4 --connections 100 --pipeline 16 "
             f"--duration {a.secs:g}s --warmup 1s --plot docs/img/sweep.svg --plot docs/img/sweep.png")
    steps = (rep or {}).get("steps", [])
    cap = max((st["report"]["throughput"] for st in steps), default=None)
    return [
        "### Capacity sweep of `avpd serve --workers 1`",
        "",
        "    " + shown,
        "",
    ] + ["    " + line for line in table.rstrip().splitlines()] + [
        "",
        "![throughput against latency](img/sweep.svg)",
        "",
    ], cap


# --- part: conns -------------------------------------------------------------------------------

def part_conns(a, tmp):
    port = next_port()
    args = ["--target", f"tcp://127.0.0.1:{port}", "--connections", "10000", "--connect-rate",
            "5000", "--rate", "20000", "--warmup", "3s", "--duration", "5s"]
    with avpd_server(port):
        wait_port(port)
        rep, _ = loadgen(args, os.path.join(tmp, "conns.json"), 120)
    rss = rep.get("peak_rss_kib")
    shown = ("taskset -c 1 avp-loadgen --target tcp://127.0.0.1:PORT --connections 10000 "
             "--connect-rate 5000 --rate 20000 --warmup 3s --duration 5s")
    c = rep["latency"]["corrected"]
    return [
        "### 10,000 connections from one avp-loadgen process",
        "",
        "    " + shown,
        "",
        f"Sent {rep['sent']:,}, answered {rep['answered']:,}, errors {rep['errors_total']:,}; "
        f"throughput {rep['throughput']:,.0f} msg/s, corrected p99 {c['p99_us'] / 1e3:.3f} ms; "
        f"avp-loadgen peak RSS {rss / 1024:.1f} MiB"
        f" ({rss * 1024 / 10000:,.0f} bytes per connection, histograms included)." if rss else
        "Peak RSS not available on this OS.",
        "",
    ]


# --- the document ------------------------------------------------------------------------------

def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu}"


def write_block(lines):
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    text = open(DOC).read() if os.path.exists(DOC) else f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = "\n".join(lines).rstrip("\n")
    with open(DOC, "w") as f:
        f.write(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["clients", "race", "servers", "latency", "sweep", "conns"])
    a = ap.parse_args()
    build(a.no_build)
    os.makedirs(IMG, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "## Generated figures",
        "",
        f"Generated by `python3 bench/capacity.py --rounds {a.rounds} --secs {a.secs:g}` on "
        f"{started}; machine: {machine()}. Absolute figures drift with the machine and with "
        f"whatever else runs on it; the ratios within one run are what count.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if "clients" not in a.skip:
            log("part clients")
            lines += part_clients(a, tmp)
        if "race" not in a.skip:
            log("part race")
            lines += part_race(a, tmp)
        if "servers" not in a.skip:
            log("part servers")
            lines += part_servers(a)
        cap = None
        if "sweep" not in a.skip:
            log("part sweep")
            text, cap = part_sweep(a, tmp)
            lines += text
        if "latency" not in a.skip:
            log("part latency")
            lines += part_latency(a, tmp, cap)
        if "conns" not in a.skip:
            log("part conns")
            lines += part_conns(a, tmp)
    write_block(lines)
    log(f"wrote {rel(DOC)} and {rel(IMG)}/")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
