#!/usr/bin/env python3
"""The kinds that ../shared/bench/compare.py probes lacks, measured the same way:
blackbox_exporter and lookout side by side, wrk (1 thread, 16 connections) on each /probe, two
rounds a side, and each side's peak RSS. Targets on loopback: 127.0.0.1 for icmp, Knot serving a
zone for dns, examples/grpc_health_server for grpc, and nginx over https twice, with an RSA-2048
leaf (as compare.py's) and with an ECDSA P-256 leaf, both from one test CA.

For each kind it also prints the CPU each probe cost the exporter and the target (from
/proc/PID/stat over the round with the higher rate; icmp's target is the kernel). Where the
target's cost per probe is near what one of its cores gives, the rate is the target's, whichever
exporter asks: the RSA leaf's signature is such a case on a small machine, the ECDSA one is not.

    cargo build --release --example grpc_health_server && cargo build --release
    python3 bench/probe_kinds.py --ours 'target/release/lookout --config.probes {CONFIG} \
        --config.log-rules bench/no_logs.yaml --positions.file {WORKDIR}/positions.json \
        --web.listen-address 127.0.0.1:{PORT}'

Needs wrk, knot, nginx, openssl and prometheus-blackbox-exporter (Debian packages), and the process must be
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
from live_tail import nginx_conf  # noqa: E402  (the bench scripts' nginx configuration)

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
  https_rsa: {{ prober: http, timeout: 5s, http: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {w}/ca.pem }} }} }}
  https_ecdsa: {{ prober: http, timeout: 5s, http: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {w}/ca.pem }} }} }}
"""

def make_ecdsa_leaf(w):
    """An ECDSA P-256 leaf for localhost, signed by the CA compare.make_certs made in w."""
    if os.path.exists(w + "/ec-leaf.pem"):
        return
    def ossl(*a):
        subprocess.run(["openssl"] + list(a), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", w + "/ec-leaf.key",
         "-out", w + "/ec-leaf.csr", "-subj", "/CN=localhost")
    ossl("x509", "-req", "-in", w + "/ec-leaf.csr", "-CA", w + "/ca.pem", "-CAkey", w + "/ca.key", "-CAcreateserial",
         "-out", w + "/ec-leaf.pem", "-days", "25", "-extfile", w + "/leaf.ext")


def cpu_seconds(pids):
    return sum(compare.cpu_seconds(p) for p in pids)


def round_figures(url, seconds, exporter, target_pids):
    """One wrk round: (probes/s, exporter µs per probe, target µs per probe or None)."""
    e0, t0 = compare.cpu_seconds(exporter), cpu_seconds(target_pids)
    rate = compare.wrk(url, seconds)[0]
    e1, t1 = compare.cpu_seconds(exporter), cpu_seconds(target_pids)
    probes = max(rate * seconds, 1)
    return rate, (e1 - e0) * 1e6 / probes, (t1 - t0) * 1e6 / probes if target_pids else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True, help="lookout's command: {CONFIG}, {PORT}, {WORKDIR}")
    parser.add_argument("--grpc-server", default=os.path.join(HERE, "..", "target", "release", "examples", "grpc_health_server"))
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    w = os.path.join(compare.WORK, "probe-kinds")
    os.makedirs(w + "/knot", exist_ok=True)
    os.makedirs(w + "/www", exist_ok=True)
    with open(w + "/www/index.html", "w") as f:
        f.write("<html><body>ok</body></html>\n")
    compare.make_certs(w)
    make_ecdsa_leaf(w)
    knot, grpc, rsa, ecdsa, bb, ours_port = (compare.free_port() for _ in range(6))
    with open(w + "/bench.test.zone", "w") as f:
        f.write(ZONE)
    with open(w + "/knot.conf", "w") as f:
        f.write('server:\n  rundir: "%s"\n  listen: 127.0.0.1@%d\ndatabase:\n  storage: "%s/knot"\n'
                'zone:\n  - domain: bench.test\n    storage: "%s"\n    file: bench.test.zone\n' % (w, knot, w, w))
    with open(w + "/nginx.conf", "w") as f:
        f.write(nginx_conf(w, [
            "server { listen 127.0.0.1:%d ssl; ssl_certificate %s/leaf-chain.pem; ssl_certificate_key %s/leaf.key; root %s/www; }" % (rsa, w, w, w),
            "server { listen 127.0.0.1:%d ssl; ssl_certificate %s/ec-leaf.pem; ssl_certificate_key %s/ec-leaf.key; root %s/www; }" % (ecdsa, w, w, w),
        ], connections=4096))
    with open(w + "/modules.yml", "w") as f:
        f.write(MODULES.format(w=w))
    targets = {"icmp": "127.0.0.1", "dns_a": "127.0.0.1:%d" % knot, "grpc": "127.0.0.1:%d" % grpc,
               "https_rsa": "https://localhost:%d/" % rsa, "https_ecdsa": "https://localhost:%d/" % ecdsa}
    procs = []
    nginx_up = False
    try:
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        knotd = subprocess.Popen(["knotd", "-c", w + "/knot.conf"], **quiet)
        procs.append(knotd)
        grpc_server = subprocess.Popen([args.grpc_server, "127.0.0.1:%d" % grpc], **quiet)
        procs.append(grpc_server)
        subprocess.run(["nginx", "-c", w + "/nginx.conf"], check=True)
        nginx_up = True
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
        target_pids = {"icmp": [], "dns_a": [knotd.pid], "grpc": [grpc_server.pid],
                       "https_rsa": compare.nginx_pids(w), "https_ecdsa": compare.nginx_pids(w)}
        print("probe benchmark: wrk -t1 -c16, %ds a side a round, 2 rounds; targets on loopback" % args.seconds)
        print("%-11s %12s %9s %6s  %-21s %-21s %s" % ("kind", "blackbox p/s", "ours p/s", "ratio", "exporter us/probe",
                                                      "target us/probe", "probe_success once"))
        print("%-11s %12s %9s %6s  %-21s %-21s %s" % ("", "", "", "", "(blackbox, ours)", "(blackbox, ours)", "(blackbox, ours)"))
        for module in ("icmp", "dns_a", "grpc", "https_rsa", "https_ecdsa"):
            ok = [re.search(r"probe_success 1", urllib.request.urlopen(url(p, module)).read().decode()) is not None
                  for p in (bb, ours_port)]
            b, o = [], []
            for _ in range(2):
                b.append(round_figures(url(bb, module), args.seconds, blackbox.pid, target_pids[module]))
                o.append(round_figures(url(ours_port, module), args.seconds, ours.pid, target_pids[module]))
            b, o = max(b), max(o)
            target = "%.0f, %.0f" % (b[2], o[2]) if b[2] is not None else "(kernel)"
            print("%-11s %12.0f %9.0f %6.2f  %-21s %-21s %s, %s" % (module, b[0], o[0], o[0] / max(b[0], 1e-9),
                                                                   "%.0f, %.0f" % (b[1], o[1]), target, ok[0], ok[1]))
        print("peak RSS MiB: blackbox %.1f, ours %.1f" % (compare.hwm_mib(blackbox.pid), compare.hwm_mib(ours.pid)))
        return 0
    finally:
        if nginx_up:
            subprocess.run(["nginx", "-c", w + "/nginx.conf", "-s", "stop"], stderr=subprocess.DEVNULL)
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
