#!/usr/bin/env python3
"""Signed reports against unsigned ones, side by side in one run.

usage: python3 bench/signed.py [--rounds 3] [--secs 5] [--cfg 1000x16 ...] [--json FILE]

Two variants per config, both closed-loop avp-loadgen runs with full reports:
  unsigned  `avpd serve --workers 1 --no-admin` under `avp-loadgen`
  signed    `avpd serve ... --agent-keys FILE` under `avp-loadgen --key-file FILE`, every
            report carrying an AUTHENTICATOR (HMAC-SHA256) that the node checks, with the
            replay rule, before it acknowledges it
The keys file gives one secret to every NODE_ID the run reports under (loadgen-00000 ...).
Every round runs both variants for every config, each on a fresh free port, in an order that
rotates from round to round; the server runs on CPU 0 and the client on CPU 1 (taskset), as
in bench/sidebyside.py, whose helpers it uses. Output: per config, the median throughput of
each variant over the rounds, and the median and range of the per-round ratios signed /
unsigned, as a Markdown table on stdout; progress on stderr. Needs target/release/avpd and
target/release/avp-loadgen (cargo build --release -p avpd -p avp-loadgen). Stdlib only.
"""
import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import sidebyside  # noqa: E402  (bench/ is not a package)

AVPD = "target/release/avpd"
LOADGEN = "target/release/avp-loadgen"
SECRET = "bench secret, the same for every node"
SERVER = AVPD + " serve --workers 1 --no-admin --listen tcp://{host}:{port}"
CLIENT = (LOADGEN + " -q --target tcp://{host}:{port} --connections {conns} "
          "--pipeline {depth} --duration {secs}s --warmup 1s --report-fields full "
          "--json {json}")


def variants(tmp, max_conns):
    """(name, server template, client template) of both variants; writes their key files."""
    keys = os.path.join(tmp, "agent-keys.toml")
    secret = os.path.join(tmp, "secret")
    with open(keys, "w") as f:
        for i in range(max_conns):
            f.write(f'"loadgen-{i:05}" = "{SECRET}"\n')
    with open(secret, "w") as f:
        f.write(SECRET + "\n")
    return [
        ("unsigned", SERVER, CLIENT),
        ("signed", SERVER + f" --agent-keys {shlex.quote(keys)}",
         CLIENT + f" --key-file {shlex.quote(secret)}"),
    ]


def run(name, server, client, cfg, secs):
    """One run: the server on a free port, the client once; the run's record."""
    port = sidebyside.free_port("tcp")
    argv = sidebyside.expand(server, f"server {name!r}", port=port, host=sidebyside.HOST)
    proc = sidebyside.Server(name, argv)
    try:
        if not sidebyside.wait_tcp(proc, port):
            return {"variant": name, "cfg": cfg, "throughput": None,
                    "error": f"server not ready: {proc.output_tail() or '(no output)'}"}
        args = argparse.Namespace(client=client, secs=secs, reports="full", transport="tcp")
        rec = sidebyside.run_client(args, port, cfg, proc)
        return {"variant": name, "cfg": cfg, "throughput": rec["acks_per_sec"],
                "error": rec["error"]}
    finally:
        proc.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=float, default=5)
    p.add_argument("--cfg", action="append", type=sidebyside.parse_cfg)
    p.add_argument("--json", help="also write every raw figure here")
    a = p.parse_args()
    cfgs = a.cfg or ["1000x16"]
    os.chdir(ROOT)
    for binary in (AVPD, LOADGEN):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing: cargo build --release -p avpd -p avp-loadgen")
    runs = []
    with tempfile.TemporaryDirectory(prefix="signed-") as tmp:
        vs = variants(tmp, max(int(c.split("x")[0]) for c in cfgs))
        for rnd in range(a.rounds):
            for cfg in cfgs:
                for name, server, client in sidebyside.rotated(vs, rnd):
                    sidebyside.log(f"round {rnd + 1}/{a.rounds} {cfg} {name}")
                    rec = run(name, server, client, cfg, a.secs)
                    rec["round"] = rnd
                    if rec["error"]:
                        sidebyside.log(f"  failed: {rec['error']}")
                    else:
                        sidebyside.log(f"  {rec['throughput']:,.0f} msg/s")
                    runs.append(rec)
    print("| config | unsigned msg/s | signed msg/s | signed / unsigned (median, range) |")
    print("|---|---|---|---|")
    failed = False
    for cfg in cfgs:
        by = {(r["variant"], r["round"]): r["throughput"] for r in runs if r["cfg"] == cfg}
        ratios = [by[("signed", i)] / by[("unsigned", i)] for i in range(a.rounds)
                  if by.get(("signed", i)) and by.get(("unsigned", i))]
        medians = [sidebyside.median_or_none([by.get((v, i)) for i in range(a.rounds)])
                   for v in ("unsigned", "signed")]
        if None in medians or not ratios:
            failed = True
            print(f"| {cfg} | run failed | | |")
            continue
        print(f"| {cfg} | {medians[0]:,.0f} | {medians[1]:,.0f} | "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": a.rounds, "secs": a.secs, "runs": runs}, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
