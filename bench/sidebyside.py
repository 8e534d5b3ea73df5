#!/usr/bin/env python3
"""Side-by-side throughput of AVP servers under one closed-loop client.

usage: python3 bench/sidebyside.py [--rounds 3] [--secs 3] [--transport tcp|udp]
           [--reports minimal|full] [--cfg 100x1 --cfg 1000x16 ...] [--client CMD_TEMPLATE]
           [--cpu-time] [--json FILE] [NAME=CMD_TEMPLATE ...]

Each server template is one command (split like a shell would, run without a shell) that
must contain {port}; {host} is 127.0.0.1. Without any, the C yardstick of the transport
(bench/c/yard_tcp_server.c or yard_udp_server.c) is the only server. Example:

    python3 bench/sidebyside.py --cfg 100x1 --cfg 1000x16 \\
        "yard=target/yardsticks/yard_tcp_server {port}" \\
        "avpd=target/release/avpd serve --workers 1 --listen tcp://127.0.0.1:{port}"

A --cfg is CONNSxDEPTH: connections (UDP: sockets) and reports kept in flight on each.
Every round runs every config with every server, each run on a fresh free port; the order
of the servers rotates from round to round so that drift during a round hits them alike.
The server runs on CPU 0 (taskset -c 0), the client on CPU 1.

The client is our C yardstick client for the transport (bench/c/yard_*_client.c), which
prints `acks_per_sec=N`. --client replaces it with a template that may use {port}, {host},
{conns}, {depth}, {secs}, {reports}, {transport} and {json}; when it uses {json} (a
temporary file) the figure is that JSON's "throughput", otherwise the `acks_per_sec=` line
of its stdout. For example:

    --client "target/release/avp-loadgen --target udp://127.0.0.1:{port} --connections {conns}
              --pipeline {depth} --duration {secs}s --report-fields {reports} --json {json}"

Output: per config, the median acks/s of each server over the rounds and its ratio to the
first server's median, as a Markdown table on stdout; progress on stderr. --json FILE also
writes every raw figure. --cpu-time adds each server's CPU time (utime+stime of its process,
all threads, from /proc/PID/stat) per ack. With our C client the CPU time is sampled at its
"window start"/"window end" lines, so it covers the measured window only; with another
client it is sampled when the client starts and ends, connection set-up included.

The C sources are built with `gcc -O2` into target/yardsticks/ when the binary is missing
or older than its source. Stdlib only.

As a module (bench/capacity.py imports it): parse_args(argv) reads a command line like this
one, prepare(args) builds what it needs and returns its servers, and iter_runs(variants,
cfgs, rounds) interleaves runs of servers taken from one or several command lines.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_DIR = os.path.join(ROOT, "bench", "c")
BIN_DIR = os.path.join(ROOT, "target", "yardsticks")
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
READY_TIMEOUT = 30.0     # seconds a server gets to start answering
STOP_GRACE = 3.0         # seconds between SIGTERM and SIGKILL
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_CFGS = ["100x1", "1000x16", "10x128"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build(name):
    """Compile bench/c/NAME.c unless target/yardsticks/NAME is newer; return the binary."""
    src = os.path.join(SRC_DIR, name + ".c")
    out = os.path.join(BIN_DIR, name)
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(BIN_DIR, exist_ok=True)
        cmd = ["gcc", "-O2", "-o", out, src]
        log("building: " + " ".join(shlex.quote(c) for c in cmd))
        subprocess.run(cmd, check=True)
    return out


def parse_cfg(text):
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"config {text!r} is not CONNSxDEPTH (e.g. 100x16)")
    return text


def parse_server(text):
    name, sep, cmd = text.partition("=")
    if not sep or not name or not cmd.strip():
        raise argparse.ArgumentTypeError(f"server {text!r} is not NAME=CMD_TEMPLATE")
    if "{port}" not in cmd:
        raise argparse.ArgumentTypeError(f"server {name!r}: the command has no {{port}}")
    return name, cmd


def expand(template, what, **values):
    try:
        return shlex.split(template.format(**values))
    except (KeyError, IndexError, ValueError) as e:
        sys.exit(f"{what} template {template!r}: cannot fill it in ({e!r}); "
                 f"known fields: {', '.join(sorted(values))}")


def free_port(transport):
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state) of proc(5); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def fmt_secs(secs):
    return f"{secs:g}"   # 2.0 -> "2", so templates like "{secs}s" give "2s"


class Server:
    def __init__(self, name, argv, cpu=SERVER_CPU):
        self.name = name
        self.argv = argv
        self.log = tempfile.TemporaryFile(mode="w+")
        # Its own session: SIGTERM/SIGKILL go to the whole process group, so
        # helpers a server may fork go too. taskset execs, so the PID is the
        # server's own.
        self.proc = subprocess.Popen(["taskset", "-c", cpu] + argv,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def output_tail(self, lines=5):
        self.log.seek(0)
        return "".join(self.log.readlines()[-lines:]).rstrip()

    def stop(self):
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait()
        self.log.close()


def wait_tcp(server, port):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and server.alive():
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_udp(server, port):
    """Send a minimal report until an answer comes back (UDP has no connect to wait for)."""
    probe = bytes([0x00, 0x0F, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35, 0x06, 0x04]) + \
        struct.pack(">I", 0xFFFFFFFF)
    deadline = time.monotonic() + READY_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((HOST, port))
        s.settimeout(0.1)
        while time.monotonic() < deadline and server.alive():
            try:
                s.send(probe)
                answer = s.recv(65536)
                if len(answer) >= 3 and answer[2] == 4:
                    return True
            except ConnectionRefusedError:   # ICMP port unreachable: not bound yet
                time.sleep(0.05)
            except socket.timeout:
                pass
    return False


def run_client(args, port, cfg, server):
    """Run the client once; returns a dict with the figure and the server's CPU time."""
    conns, depth = cfg.split("x")
    secs = fmt_secs(args.secs)
    json_path = None
    if args.client:
        uses_json = "{json}" in args.client
        if uses_json:
            fd, json_path = tempfile.mkstemp(prefix="sidebyside-", suffix=".json")
            os.close(fd)
        argv = expand(args.client, "client", port=port, host=HOST, conns=conns, depth=depth,
                      secs=secs, reports=args.reports, transport=args.transport,
                      json=json_path or "")
    else:
        uses_json = False
        argv = [args.client_bin, str(port), conns, depth, secs, args.reports]

    rec = {"rc": None, "acks_per_sec": None, "cpu_s": None, "cpu_window_s": None,
           "cpu_us_per_ack": None, "error": None}
    proc = subprocess.Popen(["taskset", "-c", CLIENT_CPU] + argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = {"start": (time.monotonic(), cpu_seconds(server.proc.pid)), "end": None}
    # A client that never ends must not hang the whole comparison.
    timer = threading.Timer(args.secs + 120, proc.kill)
    timer.start()
    out_chunks = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()))
    reader.start()
    err_lines = []
    try:
        for line in proc.stderr:          # our clients mark the measured window here
            if "yard: window start" in line:
                cpu["start"] = (time.monotonic(), cpu_seconds(server.proc.pid))
            elif "yard: window end" in line:
                cpu["end"] = (time.monotonic(), cpu_seconds(server.proc.pid))
            err_lines.append(line)
        reader.join()
        rec["rc"] = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if cpu["end"] is None:
        cpu["end"] = (time.monotonic(), cpu_seconds(server.proc.pid))
    stdout = "".join(out_chunks)

    try:
        if uses_json:
            with open(json_path) as f:
                rec["acks_per_sec"] = float(json.load(f)["throughput"])
        else:
            m = re.search(r"^acks_per_sec=(\d+(?:\.\d+)?)\s*$", stdout, re.M)
            if m:
                rec["acks_per_sec"] = float(m.group(1))
    except (OSError, ValueError, KeyError, TypeError) as e:
        rec["error"] = f"cannot read the client's figure: {e!r}"
    finally:
        if json_path:
            os.unlink(json_path)
    if rec["rc"] != 0 or rec["acks_per_sec"] is None:
        tail = "".join(err_lines[-5:]).rstrip() or stdout.strip()[-500:]
        rec["error"] = rec["error"] or f"client exit status {rec['rc']}: {tail}"
        rec["acks_per_sec"] = None

    (t0, c0), (t1, c1) = cpu["start"], cpu["end"]
    if c0 is not None and c1 is not None:
        rec["cpu_s"] = c1 - c0
        rec["cpu_window_s"] = t1 - t0
        if rec["acks_per_sec"]:
            # acks in the window: the client's rate over the CPU sampling window
            rec["cpu_us_per_ack"] = rec["cpu_s"] / (rec["acks_per_sec"] * (t1 - t0)) * 1e6
    return rec


def run_one(args, name, template, cfg):
    port = free_port(args.transport)
    argv = expand(template, f"server {name!r}", port=port, host=HOST)
    rec = {"server": name, "cfg": cfg, "port": port, "argv": argv}
    server = Server(name, argv)
    try:
        ready = (wait_tcp if args.transport == "tcp" else wait_udp)(server, port)
        if not ready:
            why = "exited" if not server.alive() else f"not answering after {READY_TIMEOUT:g} s"
            rec.update(acks_per_sec=None,
                       error=f"server {why}: {server.output_tail() or '(no output)'}")
            return rec
        rec.update(run_client(args, port, cfg, server))
        return rec
    finally:
        server.stop()


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def human(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def summarise(runs, names, cfgs):
    """Per config and server (in `names` order): median acks/s, its ratio to the first
    server's median, the figure of every round and the median server CPU per ack."""
    rows = []
    for cfg in cfgs:
        base = None
        for i, name in enumerate(names):
            mine = [r for r in runs if r["server"] == name and r["cfg"] == cfg]
            med = median_or_none([r["acks_per_sec"] for r in mine])
            if i == 0:
                base = med
            rows.append({
                "cfg": cfg, "server": name, "median_acks_per_sec": med,
                "ratio_to_first": med / base if med is not None and base else None,
                "rounds": [r["acks_per_sec"] for r in mine],
                "failed": sum(r["acks_per_sec"] is None for r in mine),
                "median_cpu_us_per_ack": median_or_none([r.get("cpu_us_per_ack") for r in mine]),
            })
    return rows


def print_table(rows, args):
    print(f"Closed loop over {args.transport}, {args.reports} reports, "
          f"{args.rounds} round(s) of {fmt_secs(args.secs)} s, server on CPU {SERVER_CPU}, "
          f"client on CPU {CLIENT_CPU}; medians in acks/s.")
    print()
    head = ["config", "server", "median acks/s", "vs first", "rounds"]
    align = ["---", "---", "---:", "---:", "---"]
    if args.cpu_time:
        head.append("server CPU us/ack")
        align.append("---:")
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join(align) + " |")
    for r in rows:
        med = r["median_acks_per_sec"]
        cells = [r["cfg"], r["server"], f"{med:,.0f}" if med is not None else "failed",
                 f"{r['ratio_to_first']:.2f}" if r["ratio_to_first"] is not None else "-",
                 " ".join(human(v) for v in r["rounds"])]
        if args.cpu_time:
            c = r["median_cpu_us_per_ack"]
            cells.append(f"{c:.3f}" if c is not None else "-")
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring for the details.")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3.0, help="measured seconds per run")
    ap.add_argument("--transport", choices=["tcp", "udp"], default="tcp")
    ap.add_argument("--reports", choices=["minimal", "full"], default="minimal")
    ap.add_argument("--cfg", action="append", type=parse_cfg,
                    help="CONNSxDEPTH, repeatable (default: " + ", ".join(DEFAULT_CFGS) + ")")
    ap.add_argument("--client", help="client command template instead of our C client")
    ap.add_argument("--cpu-time", action="store_true", help="also report server CPU per ack")
    ap.add_argument("--json", metavar="FILE", help="write every raw figure to FILE")
    ap.add_argument("servers", nargs="*", type=parse_server, metavar="NAME=CMD_TEMPLATE")
    return ap


def parse_args(argv=None):
    """The command line (sys.argv[1:] when `argv` is None), checked, with the default
    configs filled in; exits with a usage error like any argparse parser."""
    ap = parser()
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.secs <= 0:
        ap.error("--rounds must be >= 1 and --secs > 0")
    names = [n for n, _ in args.servers]
    if len(set(names)) != len(names):
        ap.error("server names must be unique")
    args.cfg = args.cfg or list(DEFAULT_CFGS)
    return args


def check_machine():
    """Exits unless taskset exists and both pinned CPUs are ours."""
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed to pin the server and the client")
    cpus = os.sched_getaffinity(0)
    if int(SERVER_CPU) not in cpus or int(CLIENT_CPU) not in cpus:
        sys.exit(f"CPUs {SERVER_CPU} and {CLIENT_CPU} must both be available (have {sorted(cpus)})")


def prepare(args):
    """Checks the machine and builds the C yardsticks `args` needs (the client, unless
    --client, in args.client_bin); returns the servers as (name, template), the transport's
    C yardstick server when the command line named none."""
    check_machine()
    servers = args.servers
    if not servers:
        name = f"yard_{args.transport}_server"
        servers = [(name, shlex.quote(build(name)) + " {port} {host}")]
    if not args.client:
        args.client_bin = build(f"yard_{args.transport}_client")
    return servers


def rotated(items, rnd):
    """`items` rotated left by `rnd`: who goes first changes from round to round."""
    k = rnd % len(items)
    return items[k:] + items[:k]


def iter_runs(variants, cfgs, rounds):
    """Yields one run record per round, config and variant, logging each on stderr.

    A variant is (name, args, server template): the server to start and the parsed command
    line whose client, transport, reports and seconds drive it. Variants may come from
    different command lines (another client against the same server, say); their names
    label the records' "server" field and must be unique. Within a round and config every
    variant runs once, in an order that rotates from round to round."""
    for rnd in range(rounds):
        for cfg in cfgs:
            for name, args, template in rotated(variants, rnd):
                rec = run_one(args, name, template, cfg)
                rec["round"] = rnd + 1
                fig = (f"{rec['acks_per_sec']:,.0f} acks/s" if rec["acks_per_sec"] is not None
                       else "FAILED")
                if rec.get("cpu_us_per_ack") is not None and args.cpu_time:
                    fig += f", server {rec['cpu_us_per_ack']:.3f} us CPU/ack"
                log(f"round {rnd + 1}/{rounds} {cfg} {name}: {fig}")
                if rec.get("error"):
                    log(f"  {rec['error']}")
                yield rec


def write_json(path, args, servers, started, runs, rows):
    doc = {
        "schema": "avp-sidebyside/1",
        "started_unix": started,
        "params": {"rounds": args.rounds, "secs": args.secs, "transport": args.transport,
                   "reports": args.reports, "cfgs": args.cfg, "client": args.client,
                   "servers": [{"name": n, "template": t} for n, t in servers],
                   "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU},
        "machine": {"uname": " ".join(platform.uname()), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "runs": runs,
        "summary": rows,
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main():
    args = parse_args()
    servers = prepare(args)
    runs = []
    started = time.time()
    try:
        for rec in iter_runs([(n, args, t) for n, t in servers], args.cfg, args.rounds):
            runs.append(rec)
    except KeyboardInterrupt:
        log("interrupted: summarising the runs done so far")

    rows = summarise(runs, [n for n, _ in servers], args.cfg)
    print_table(rows, args)
    if args.json:
        write_json(args.json, args, servers, started, runs, rows)
    return 0 if runs and all(r["acks_per_sec"] is not None for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
