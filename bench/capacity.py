#!/usr/bin/env python3
"""The standard capacity suite: every figure of docs/CAPACITY.md's generated block, one command.

usage: python3 bench/capacity.py [--rounds 5] [--secs 3] [--no-build] [--skip PART ...]

Parts, in this order (each can be skipped with --skip NAME):
  tcp      `avpd serve --workers 1 --no-admin` vs bench/c/yard_tcp_server.c under
           yard_tcp_client.c, minimal and full reports, 100x1, 1000x16 and 10x128, with each
           server's CPU time per ack (bench/sidebyside.py --cpu-time)
  udp      the same over UDP (yard_udp_server.c, yard_udp_client.c), 100x1 and 100x16
  clients  avp-loadgen (quiet, and with its live view on a pseudo-terminal) vs
           yard_tcp_client.c, all against yard_tcp_server.c, minimal and full reports, 100x1,
           1000x16 and 10x128
  memory   bench/idle_memory.py with 10,000 idle connections: minimal reports without a
           management plane, full reports without and with one; three runs of each
  sweep    an open-loop sweep against avpd up to the SLO p99 <= 5 ms, with its plot
  latency  one open-loop run at half the highest throughput the sweep reached (needs sweep):
           latency table, .hgrm and percentile plots
  conns    10,000 connections held from one avp-loadgen process against avpd: loadgen peak RSS

Servers run on CPU 0 and clients on CPU 1 (taskset), a fresh server on a free port for every
run. In the side-by-side parts (tcp, udp, clients) every round runs each server, or each
client, once per config, in an order that rotates from round to round; their tables give the
medians of the rounds and the median and range of the per-round ratios. Under every table is
the command that reproduces it.

It rewrites only the block between the GENERATED markers of docs/CAPACITY.md (appending the
markers when they are missing) and writes plots into docs/img/. Without --no-build it first
runs `cargo build --release --workspace`; the C yardsticks are compiled into
target/yardsticks/ whenever they are missing or older than their source. A part that fails
leaves a line saying why in the block, the others still run, and the exit status is 1.
Stdlib only.
"""
import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import idle_memory  # noqa: E402  (bench/ is not a package)
import docblock  # noqa: E402
import sidebyside  # noqa: E402

# Paths relative to ROOT, the working directory of every command run (and shown) here.
AVPD = "target/release/avpd"
LOADGEN = "target/release/avp-loadgen"
YARD_DIR = os.path.relpath(sidebyside.BIN_DIR, ROOT)
DOC = "docs/CAPACITY.md"
IMG = "docs/img"
BLOCK = "bench/capacity"
HOST = sidebyside.HOST

PARTS = ["tcp", "udp", "clients", "memory", "sweep", "latency", "conns"]
REPORTS = ["minimal", "full"]
TCP_CFGS = ["100x1", "1000x16", "10x128"]
UDP_CFGS = ["100x1", "100x16"]
# yard_tcp_client.c starts counting once every connection is open and primed; the loadgen's
# warmup leaves its connection ramp out of the measured window in the same way.
CLIENT_WARMUP = 1
LOADGEN_CLIENT = (f"{LOADGEN} -q --target tcp://{{host}}:{{port}} --connections {{conns}} "
                  f"--pipeline {{depth}} --duration {{secs}}s --warmup {CLIENT_WARMUP}s "
                  f"--report-fields {{reports}} --json {{json}}")
# The same client with its live view on: a pseudo-terminal of 160x50 from script(1).
LOADGEN_LIVE_CLIENT = ("script -qec " + shlex.quote(
    "stty cols 160 rows 50; exec " + LOADGEN_CLIENT.replace(f"{LOADGEN} -q ", f"{LOADGEN} "))
    + " /dev/null")
MEMORY_CONNS = 10_000
MEMORY_RUNS = 3
MEMORY_VARIANTS = [("minimal", False), ("full", False), ("full", True)]   # (reports, admin)
SLO = "p99=5ms"
SWEEP = ["--sweep", "--slo", SLO, "--sweep-start", "10000", "--sweep-factor", "1.4",
         "--sweep-steps", "30", "--connections", "100", "--pipeline", "16", "--warmup", "1s"]
SWEEP_PLOTS = ["--plot", f"{IMG}/sweep.svg", "--plot", f"{IMG}/sweep.png"]
LATENCY = ["--connections", "100", "--pipeline", "16", "--duration", "10s", "--warmup", "2s",
           "--hgrm", f"{IMG}/latency-half-capacity.hgrm",
           "--plot", f"{IMG}/latency-half-capacity.svg",
           "--plot", f"{IMG}/latency-half-capacity.png"]
CONNS = 10_000
CONNS_ARGS = ["--connections", str(CONNS), "--connect-rate", "5000", "--rate", "20000",
              "--warmup", "3s", "--duration", "5s"]
LOADGEN_TIMEOUT = 3600   # seconds; a whole sweep included
# What a part may fail with; the others still run and the block says what went wrong.
PART_ERRORS = (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError)

log = sidebyside.log


# --- helpers -----------------------------------------------------------------------------------

def avpd_template(transport):
    """sidebyside.py's server template for the node on one data-plane endpoint."""
    return f"{AVPD} serve --workers 1 --no-admin --listen {transport}://{{host}}:{{port}}"


def sidebyside_argv(a, transport, reports, cfgs, servers=(), client=None, cpu_time=False):
    """A sidebyside.py command line, without the program."""
    argv = ["--rounds", str(a.rounds), "--secs", f"{a.secs:g}", "--transport", transport,
            "--reports", reports]
    for cfg in cfgs:
        argv += ["--cfg", cfg]
    argv += (["--client", client] if client else []) + (["--cpu-time"] if cpu_time else [])
    return argv + [f"{name}={template}" for name, template in servers]


def shown_sidebyside(argv):
    """`argv` as the sidebyside.py command to type, one line per server and client template."""
    lines = [["python3", "bench/sidebyside.py"]]
    for arg in argv:
        if arg == "--client" or re.match(r"[\w.-]+=", arg):
            lines.append([])
        lines[-1].append(arg)
    return " \\\n    ".join(shlex.join(words) for words in lines)


def variants(argv, label=None):
    """The (name, args, server template) variants of one sidebyside.py command line, for
    sidebyside.iter_runs; `label`, when given, names the runs of its only server."""
    args = sidebyside.parse_args(argv)
    servers = sidebyside.prepare(args)
    if label:
        [(_, template)] = servers
        return [(label, args, template)]
    return [(name, args, template) for name, template in servers]


def per_round(runs, name, cfg, field):
    """{round: figure} of one variant's runs of one config, failed runs left out."""
    return {r["round"]: r[field] for r in runs
            if r["server"] == name and r["cfg"] == cfg and r.get(field) is not None}


def median_of(runs, name, cfg, field="acks_per_sec"):
    return sidebyside.median_or_none(list(per_round(runs, name, cfg, field).values()))


def ratio_cell(runs, cfg, subject, base):
    """Median of the per-round ratios subject / base, then the lowest and highest."""
    a, b = (per_round(runs, n, cfg, "acks_per_sec") for n in (subject, base))
    ratios = sorted(a[k] / b[k] for k in a.keys() & b.keys())
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"


def cpu_cell(runs, cfg, names):
    cpu = [median_of(runs, n, cfg, "cpu_us_per_ack") for n in names]
    return " / ".join(f"{c:#.3g}" if c is not None else "-" for c in cpu)


def ratio_table(runs, cfgs, subject, base, cpu):
    """Per config: median acks/s of `subject` and `base`, their per-round ratio, and with
    `cpu` both servers' median CPU microseconds per ack. A line on failed runs follows."""
    head = ["config", subject, base, "ratio (lowest–highest round)"]
    if cpu:
        head.append(f"CPU us/msg {subject} / {base}")
    align = ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for cfg in cfgs:
        cells = [cfg] + [sidebyside.human(median_of(runs, n, cfg)) for n in (subject, base)]
        cells.append(ratio_cell(runs, cfg, subject, base))
        if cpu:
            cells.append(cpu_cell(runs, cfg, (subject, base)))
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in runs if r.get("acks_per_sec") is None]
    if failed:
        r = failed[0]
        why = " ".join(str(r.get("error")).split())[:300]
        lines += ["", f"{len(failed)} of {len(runs)} runs failed; the first ({r['server']}, "
                      f"{r['cfg']}, round {r['round']}): {why}"]
    return lines


def code(command):
    """A command as an indented Markdown code block, blank line after."""
    return ["    " + line for line in command.splitlines()] + [""]


def section(title, intro, tables):
    """### title, the intro paragraph, then per (caption, table lines, commands): the caption,
    the table and, in one code block, the commands that reproduce it."""
    lines = [f"### {title}", "", intro, ""]
    for caption, table, commands in tables:
        lines += ([f"**{caption}**", ""] if caption else []) + table + [""]
        lines += code("\n".join(commands))
    return lines


def avpd_loadgen(loadgen_args, timeout=LOADGEN_TIMEOUT):
    """Starts avpd (TCP, one worker, no management plane) on CPU 0 on a free port and runs
    avp-loadgen on CPU 1 against it; returns the loadgen's JSON report and its stdout."""
    port = sidebyside.free_port("tcp")
    argv = sidebyside.expand(avpd_template("tcp"), "avpd", host=HOST, port=port)
    server = sidebyside.Server("avpd", argv)
    try:
        if not sidebyside.wait_tcp(server, port):
            raise RuntimeError(f"avpd is not answering: {server.output_tail() or '(no output)'}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "report.json")
            out = subprocess.run(["taskset", "-c", sidebyside.CLIENT_CPU, LOADGEN, "-q",
                                  "--json", path, "--target", f"tcp://{HOST}:{port}"]
                                 + loadgen_args, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=timeout)
            if not os.path.exists(path):
                raise RuntimeError(f"avp-loadgen wrote no report (exit status "
                                   f"{out.returncode}): {out.stderr.strip()[-500:]}")
            with open(path) as f:
                return json.load(f), out.stdout
    finally:
        server.stop()


def shown_avpd_loadgen(loadgen_args):
    """The two commands avpd_loadgen runs, as a user would type them."""
    server = sidebyside.expand(avpd_template("tcp"), "avpd", host=HOST, port="PORT")
    return (f"taskset -c {sidebyside.SERVER_CPU} {shlex.join(server)} &\n"
            f"taskset -c {sidebyside.CLIENT_CPU} "
            f"{shlex.join([LOADGEN, '--target', f'tcp://{HOST}:PORT'] + loadgen_args)}")


# --- parts -------------------------------------------------------------------------------------

def part_servers(a, transport, cfgs):
    """avpd and the transport's C yardstick side by side under its C client, minimal and
    full reports (the tcp and udp parts)."""
    yard = f"yard_{transport}_server"
    servers = [(yard, f"{YARD_DIR}/{yard} {{port}}"), ("avpd", avpd_template(transport))]
    tables = []
    for reports in REPORTS:
        argv = sidebyside_argv(a, transport, reports, cfgs, servers, cpu_time=True)
        log(f"{transport}, {reports} reports")
        runs = list(sidebyside.iter_runs(variants(argv), cfgs, a.rounds))
        tables.append((f"{reports.capitalize()} reports",
                       ratio_table(runs, cfgs, "avpd", yard, cpu=True),
                       [shown_sidebyside(argv)]))
    conns = "connections" if transport == "tcp" else "sockets"
    intro = (f"`avpd serve --workers 1 --no-admin` against `bench/c/{yard}.c`, both under "
             f"`bench/c/yard_{transport}_client.c` (config: {conns} x reports in flight on "
             f"each), {a.rounds} round(s) of {a.secs:g} s. Medians in acks/s; ratio avpd / "
             f"{yard}; CPU: each server's user + system time per ack over the client's "
             f"measured window.")
    return section(f"avpd vs {yard} ({transport.upper()})", intro, tables)


def part_tcp(a):
    return part_servers(a, "tcp", TCP_CFGS)


def part_udp(a):
    return part_servers(a, "udp", UDP_CFGS)


def part_clients(a):
    """avp-loadgen, quiet and with its live view, vs yard_tcp_client.c against
    yard_tcp_server.c, minimal and full reports."""
    tables = []
    for reports in REPORTS:
        c_argv = sidebyside_argv(a, "tcp", reports, TCP_CFGS)
        lg_argv = sidebyside_argv(a, "tcp", reports, TCP_CFGS, client=LOADGEN_CLIENT)
        live_argv = sidebyside_argv(a, "tcp", reports, TCP_CFGS, client=LOADGEN_LIVE_CLIENT)
        log(f"clients, {reports} reports")
        every = (variants(c_argv, "yard_tcp_client") + variants(lg_argv, "avp-loadgen")
                 + variants(live_argv, "avp-loadgen live"))
        runs = list(sidebyside.iter_runs(every, TCP_CFGS, a.rounds))
        commands = [shown_sidebyside(argv) for argv in (c_argv, lg_argv, live_argv)]
        tables.append((f"{reports.capitalize()} reports",
                       ratio_table(runs, TCP_CFGS, "avp-loadgen", "yard_tcp_client", cpu=False),
                       []))
        tables.append((f"{reports.capitalize()} reports, live view on",
                       ratio_table(runs, TCP_CFGS, "avp-loadgen live", "avp-loadgen", cpu=False),
                       commands))
    intro = (f"Both clients against `bench/c/yard_tcp_server.c`, alternating within each "
             f"round, {a.rounds} round(s) of {a.secs:g} s; the suite interleaves the runs of "
             f"the three commands under each pair of tables. Medians in acks/s; ratio "
             f"avp-loadgen / yard_tcp_client, then avp-loadgen with its live view (drawn on a "
             f"160x50 pseudo-terminal from script(1)) / avp-loadgen quiet. The C client starts "
             f"counting once its connections are open and primed; the loadgen's "
             f"{CLIENT_WARMUP} s `--warmup` leaves its connection ramp out likewise. "
             f"avp-loadgen checks and times every answer.")
    return section("avp-loadgen vs yard_tcp_client", intro, tables)


def part_memory(a):
    """Bytes per idle connection, median of MEMORY_RUNS runs of bench/idle_memory.py."""
    rows = ["| reports | management plane | bytes per idle connection | runs "
            "| RSS empty → idle, KiB |", "|---|---|---:|---|---:|"]
    commands = []
    for reports, admin in MEMORY_VARIANTS:
        log(f"memory, {reports} reports, management plane {'on' if admin else 'off'}")
        runs = [idle_memory.measure(MEMORY_CONNS, AVPD, reports, admin)
                for _ in range(MEMORY_RUNS)]
        per_conn = sorted(r["bytes_per_conn"] for r in runs)
        empty, idle = (statistics.median(r[k] for r in runs)
                       for k in ("rss_empty_kib", "rss_idle_kib"))
        rows.append(f"| {reports} | {'on' if admin else 'off'} | "
                    f"{statistics.median(per_conn):,.0f} | "
                    f"{' '.join(f'{v:,.0f}' for v in per_conn)} | {empty:,.0f} → {idle:,.0f} |")
        commands.append(shlex.join(["python3", "bench/idle_memory.py", "--conns",
                                    str(MEMORY_CONNS), "--avpd", AVPD, "--reports", reports]
                                   + (["--admin"] if admin else [])))
    intro = (f"`avpd serve --workers 1` holding {MEMORY_CONNS:,} connections that have each "
             f"sent one report and read its ack, then idle: resident memory with them minus "
             f"without, per connection, median of {MEMORY_RUNS} runs (RSS: medians). Full "
             f"reports carry TIMESTAMP and a NODE_ID per connection, as agents send; with a "
             f"management plane the node keeps each connection's latest report for terminals.")
    return section("Memory: idle connections", intro, [(None, rows, commands)])


def part_sweep(a):
    """The sweep's section and the highest throughput any of its steps achieved."""
    args = SWEEP + ["--duration", f"{a.secs:g}s"] + SWEEP_PLOTS
    rep, table = avpd_loadgen(args)
    cap = max((st["report"]["throughput"] for st in rep.get("steps", [])), default=None)
    lines = ["### Capacity sweep of `avpd serve --workers 1`", ""]
    lines += code(shown_avpd_loadgen(args)) + code(table.rstrip())
    return lines + ["![throughput against latency](img/sweep.svg)", ""], cap


def part_latency(cap):
    title = "### Open-loop latency of `avpd serve --workers 1` at half its capacity"
    if not cap:
        return [title, "", "No capacity was measured (the sweep was skipped or failed).", ""]
    rate = round(cap / 2, -3)
    args = ["--rate", f"{rate:.0f}"] + LATENCY
    _, table = avpd_loadgen(args)
    intro = (f"Capacity here is the highest throughput any step of the sweep above achieved "
             f"in open loop, **{cap:,.0f} msg/s**. An open-loop run at half of it, "
             f"{rate:,.0f} msg/s, avpd on CPU {sidebyside.SERVER_CPU} and the loadgen on CPU "
             f"{sidebyside.CLIENT_CPU}:")
    return [title, "", intro, ""] + code(shown_avpd_loadgen(args)) + code(table.rstrip()) + [
        "![latency percentile spectrum](img/latency-half-capacity.svg)",
        "",
        "(`docs/img/latency-half-capacity.png` is the same plot as a PNG; "
        "`docs/img/latency-half-capacity.hgrm` opens in HdrHistogram's plotter.)",
        "",
    ]


def part_conns(a):
    rep, _ = avpd_loadgen(CONNS_ARGS)
    rss = rep.get("peak_rss_kib")
    p99 = rep["latency"]["corrected"]["p99_us"]
    memory = (f"avp-loadgen peak RSS {rss / 1024:.1f} MiB ({rss * 1024 / CONNS:,.0f} bytes per "
              f"connection, histograms included)." if rss else
              "avp-loadgen's peak RSS is not available on this OS.")
    return [f"### {CONNS:,} connections from one avp-loadgen process", ""] + \
        code(shown_avpd_loadgen(CONNS_ARGS)) + [
        f"Sent {rep['sent']:,}, answered {rep['answered']:,}, errors {rep['errors_total']:,}; "
        f"throughput {rep['throughput']:,.0f} msg/s, corrected p99 {p99 / 1e3:.3f} ms; {memory}",
        "",
    ]


PART_FUNCS = {"tcp": part_tcp, "udp": part_udp, "clients": part_clients,
              "memory": part_memory, "conns": part_conns}


# --- the document ------------------------------------------------------------------------------

def header(a):
    cmd = ["python3", "bench/capacity.py", "--rounds", str(a.rounds), "--secs", f"{a.secs:g}"]
    for part in a.skip:
        cmd += ["--skip", part]
    return [
        "## Generated figures",
        "",
        docblock.provenance(cmd),
        "",
        f"Servers run on CPU {sidebyside.SERVER_CPU} and clients on CPU "
        f"{sidebyside.CLIENT_CPU} (`taskset`), a fresh server for every run, over loopback. In "
        f"the side-by-side tables every round runs each server (or client) once per config, in "
        f"an order that rotates from round to round; figures are medians of the rounds, and a "
        f"ratio is the median of the per-round ratios, with the lowest and highest round in "
        f"brackets. Absolute figures drift with the machine and with whatever else runs on it; "
        f"the ratios within one run are what count.",
        "",
    ]


def build(no_build):
    if not no_build:
        log("building: cargo build --release --workspace")
        subprocess.run(["cargo", "build", "--release", "--workspace"], check=True)
    for binary in (AVPD, LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run cargo build --release --workspace")
    for transport in ("tcp", "udp"):   # sidebyside.prepare builds the clients
        sidebyside.build(f"yard_{transport}_server")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=3, help="measured seconds per run")
    ap.add_argument("--no-build", action="store_true", help="skip the cargo build")
    ap.add_argument("--skip", action="append", default=[], choices=PARTS, metavar="PART",
                    help="leave a part out (repeatable): " + ", ".join(PARTS))
    a = ap.parse_args()
    if a.rounds < 1 or a.secs <= 0:
        ap.error("--rounds must be >= 1 and --secs > 0")
    os.chdir(ROOT)
    sidebyside.check_machine()
    build(a.no_build)
    os.makedirs(IMG, exist_ok=True)

    lines, failed, cap = header(a), [], None
    for name in PARTS:
        if name in a.skip:
            continue
        log(f"part {name}")
        try:
            if name == "sweep":
                text, cap = part_sweep(a)
            elif name == "latency":
                text = part_latency(cap)
            else:
                text = PART_FUNCS[name](a)
        except PART_ERRORS as e:
            log(f"part {name} failed: {e!r}")
            failed.append(name)
            text = [f"### Part {name}", "", f"Failed: `{' '.join(str(e).split())[:300]}`", ""]
        lines += text
    docblock.write_block(os.path.join(ROOT, DOC), BLOCK, lines)
    log(f"wrote {DOC} and {IMG}/")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
