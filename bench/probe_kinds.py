#!/usr/bin/env python3
"""The icmp, dns and grpc kinds that ../shared/bench/compare.py probes lacks, measured the same
way: blackbox_exporter and lookout side by side, wrk (1 thread, 16 connections) on each /probe,
two rounds a side, and each side's peak RSS. Targets on loopback: 127.0.0.1 for icmp, Knot
serving a zone for dns, examples/grpc_health_server for grpc.

    cargo build --release --example grpc_health_server && cargo build --release
    python3 bench/probe_kinds.py --ours 'target/release/lookout --config.probes {CONFIG} \
        --config.log-rules bench/no_logs.yaml --positions.file {WORKDIR}/positions.json \
        --web.listen-address 127.0.0.1:{PORT}'

Needs wrk, knot and prometheus-blackbox-exporter (Debian packages), and the process must be
allowed ICMP sockets (root, or net.ipv4.ping_group_range).
"""
import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import compare  # noqa: E402  (the shared benchmark: free_port, wait_http, wrk, hwm_mib)

ZONE = """$ORIGIN bench.test.
$TTL 300
@    SOA ns1.bench.test. hostmaster.bench.test. 1 3600 900 604800 300
@    NS  ns1
ns1  A   127.0.0.1
www  A   192.0.2.10
"""

MODULES = """modules:
  icmp: {{ prober: icmp, timeout: 5s, icmp: {{ preferred_ip_protocol: ip4 }} }}
  dns_a: {{ prober: dns, timeout: 5s, dns: {{ preferred_ip_protocol: ip4, query_name: www.bench.test, query_type: A }} }}
  grpc: {{ prober: grpc, timeout: 5s, grpc: {{ preferred_ip_protocol: ip4 }} }}
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True, help="lookout's command: {CONFIG}, {PORT}, {WORKDIR}")
    parser.add_argument("--grpc-server", default=os.path.join(HERE, "..", "target", "release", "examples", "grpc_health_server"))
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    w = os.path.join(compare.WORK, "probe-kinds")
    os.makedirs(w + "/knot", exist_ok=True)
    knot, grpc, bb, ours_port = (compare.free_port() for _ in range(4))
    with open(w + "/bench.test.zone", "w") as f:
        f.write(ZONE)
    with open(w + "/knot.conf", "w") as f:
        f.write('server:\n  rundir: "%s"\n  listen: 127.0.0.1@%d\ndatabase:\n  storage: "%s/knot"\n'
                'zone:\n  - domain: bench.test\n    storage: "%s"\n    file: bench.test.zone\n' % (w, knot, w, w))
    with open(w + "/modules.yml", "w") as f:
        f.write(MODULES.format())
    targets = {"icmp": "127.0.0.1", "dns_a": "127.0.0.1:%d" % knot, "grpc": "127.0.0.1:%d" % grpc}
    procs = []
    try:
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(subprocess.Popen(["knotd", "-c", w + "/knot.conf"], **quiet))
        procs.append(subprocess.Popen([args.grpc_server, "127.0.0.1:%d" % grpc], **quiet))
        blackbox = subprocess.Popen(["prometheus-blackbox-exporter", "--config.file=" + w + "/modules.yml",
                                     "--web.listen-address=127.0.0.1:%d" % bb], **quiet)
        procs.append(blackbox)
        ours_cmd = args.ours.replace("{CONFIG}", w + "/modules.yml").replace("{PORT}", str(ours_port)).replace("{WORKDIR}", w)
        ours = subprocess.Popen(shlex.split(ours_cmd), stdout=subprocess.DEVNULL, stderr=open(w + "/ours.err", "w"))
        procs.append(ours)
        url = lambda port, module: "http://127.0.0.1:%d/probe?module=%s&target=%s" % (port, module, targets[module])
        if not compare.wait_http("http://127.0.0.1:%d/metrics" % bb) or not compare.wait_http("http://127.0.0.1:%d/metrics" % ours_port):
            print("a side did not come up; see %s/ours.err" % w)
            return 1
        print("probe benchmark: wrk -t1 -c16, %ds a side a round, 2 rounds; targets on loopback" % args.seconds)
        print("%-6s %14s %14s %8s   %s" % ("kind", "blackbox p/s", "ours p/s", "ratio", "probe_success once (bb, ours)"))
        for module in ("icmp", "dns_a", "grpc"):
            ok = [re.search(r"probe_success 1", urllib.request.urlopen(url(p, module)).read().decode()) is not None
                  for p in (bb, ours_port)]
            b, o = [], []
            for _ in range(2):
                b.append(compare.wrk(url(bb, module), args.seconds)[0])
                o.append(compare.wrk(url(ours_port, module), args.seconds)[0])
            print("%-6s %14.0f %14.0f %8.2f   %s, %s" % (module, max(b), max(o), max(o) / max(max(b), 1e-9), ok[0], ok[1]))
        print("peak RSS MiB: blackbox %.1f, ours %.1f" % (compare.hwm_mib(blackbox.pid), compare.hwm_mib(ours.pid)))
        return 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
