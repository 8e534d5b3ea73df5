#!/usr/bin/env python3
"""TLS data-plane throughput as a ratio of plain TCP, side by side in the same run.

usage: python3 bench/tls.py [--rounds 3] [--secs 3] [--reports minimal|full]
           [--cfg 1000x16 --cfg 10x128 ...] [--no-build]

`avpd serve --workers 1 --no-admin` on one data-plane endpoint, tcp:// or tls:// (with
--tls-client-ca: every connection presents a client certificate), on CPU 0; avp-loadgen on
CPU 1 against it, closed loop, tcp:// or tls:// with --ca --cert --key. The same client
drives both, so the ratio is the node's TLS cost (and the loadgen's, on its own core). The
warmup (1 s) keeps the connections' handshakes out of the measured window: the figure is
the per-record cost of an established connection.

Certificates are made for the run with openssl, by the recipe of docs/OPERATIONS.md (### TLS),
in a temporary directory. Every round runs both variants once per config, in an order that
rotates from round to round (bench/sidebyside.py); the table gives the medians of the rounds
and the median and range of the per-round ratios, and each server's CPU time per ack
(sampled while the client runs, handshakes included). Stdlib only.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import capacity  # noqa: E402  (bench/ is not a package)
import sidebyside  # noqa: E402

CFGS = ["1000x16", "10x128"]
WARMUP = 1


def make_certificates(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in
    `d` (the openssl recipe of docs/OPERATIONS.md); returns their paths by name."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=bench {name}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext")
    return {n: os.path.join(d, n) for n in ("ca.pem", "server.pem", "server.key",
                                             "client.pem", "client.key")}


def variant_argv(a, scheme, certs):
    """The sidebyside.py command line of one variant: its server and its client."""
    server = capacity.avpd_template(scheme)
    client = (f"{capacity.LOADGEN} -q --target {scheme}://{{host}}:{{port}} "
              f"--connections {{conns}} --pipeline {{depth}} --duration {{secs}}s "
              f"--warmup {WARMUP}s --report-fields {{reports}} --json {{json}}")
    if scheme == "tls":
        q = {k: shlex.quote(v) for k, v in certs.items()}
        server += (f" --tls-cert {q['server.pem']} --tls-key {q['server.key']}"
                   f" --tls-client-ca {q['ca.pem']}")
        client += f" --ca {q['ca.pem']} --cert {q['client.pem']} --key {q['client.key']}"
    return capacity.sidebyside_argv(a, "tcp", a.reports, a.cfg, servers=[(scheme, server)],
                                    client=client, cpu_time=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=3.0, help="measured seconds per run")
    ap.add_argument("--reports", choices=["minimal", "full"], default="minimal")
    ap.add_argument("--cfg", action="append", help="CONNSxDEPTH, repeatable (default: "
                    + ", ".join(CFGS) + ")")
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    a = ap.parse_args()
    a.cfg = a.cfg or list(CFGS)
    os.chdir(ROOT)
    if not a.no_build:
        sidebyside.log("cargo build --release -p avpd -p avp-loadgen")
        subprocess.run(["cargo", "build", "--release", "-p", "avpd", "-p", "avp-loadgen"],
                       check=True)
    with tempfile.TemporaryDirectory(prefix="avpd-tls-bench-") as d:
        certs = make_certificates(d)
        variants = []
        for scheme in ("tcp", "tls"):
            variants += capacity.variants(variant_argv(a, scheme, certs))
        runs = list(sidebyside.iter_runs(variants, a.cfg, a.rounds))
    print(f"TLS vs plain TCP, {a.reports} reports, medians of {a.rounds} rounds of "
          f"{a.secs:g} s ({os.cpu_count()} CPUs; server on CPU {sidebyside.SERVER_CPU}, "
          f"avp-loadgen on CPU {sidebyside.CLIENT_CPU})\n")
    print("\n".join(capacity.ratio_table(runs, a.cfg, "tls", "tcp", cpu=True)))
    shown = ["python3", "bench/tls.py", "--rounds", str(a.rounds), "--secs", f"{a.secs:g}",
             "--reports", a.reports] + [w for c in a.cfg for w in ("--cfg", c)]
    print("\n    " + shlex.join(shown))
    failed = [r for r in runs if r.get("acks_per_sec") is None]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
