#!/usr/bin/env python3
"""Memory of lookout with N scheduled HTTP probes against nginx on loopback.

Starts nginx and `BINARY` with N probes (every INTERVAL seconds), waits one interval and a
little for every probe to have a result, takes the median resident memory over the next
interval (steady), then scrapes /metrics three times (plain, gzip, plain) while sampling
resident memory every 5 ms (peak during scrape). Memory per probe is the difference of two runs'
steady figures divided by the difference of their N. Also prints how many runs started within
10 ms and 50 ms of their slot (lookout_probe_start_lateness_seconds).

    python3 bench/scale_memory.py target/release/lookout 1000 15
    python3 bench/scale_memory.py target/release/lookout 10000 15

With a fourth argument `sd`, the N targets come from file_sd instead: one probe entry, groups
of 100 targets, each group with two labels (team, env), as an inventory would give them.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from live_tail import free_port, nginx_conf  # the bench scripts' shared helpers


def rss_mib(pid, key="VmRSS"):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    binary, n, interval = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    discovered = sys.argv[4:] == ["sd"]
    w = tempfile.mkdtemp(prefix="lookout-scale-")
    http, port = free_port(), free_port()
    with open(w + "/nginx.conf", "w") as f:
        f.write(nginx_conf(w, ["server { listen 127.0.0.1:%d; location / "
                               "{ default_type text/plain; return 200 \"ok\\n\"; } }" % http],
                           connections=8192))
    with open(w + "/probes.yml", "w") as f:
        f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
                "      preferred_ip_protocol: ip4\nprobes:\n")
        if discovered:
            f.write("  - {name: web, module: http_2xx, interval: %ds, "
                    "file_sd_configs: [{files: [targets.json]}]}\n" % interval)
            groups = [{"targets": ["http://127.0.0.1:%d/t/%d" % (http, i)
                                   for i in range(start, min(start + 100, n))],
                       "labels": {"team": "team%d" % (start // 1000), "env": "prod"}}
                      for start in range(0, n, 100)]
            with open(w + "/targets.json", "w") as t:
                json.dump(groups, t)
        else:
            for i in range(n):
                f.write('  - {name: t%d, module: http_2xx, target: "http://127.0.0.1:%d/t/%d", '
                        "interval: %ds}\n" % (i, http, i, interval))
    if not os.access(binary, os.X_OK):
        sys.exit("%s: no such executable (cargo build --release)" % binary)
    subprocess.run(["nginx", "-c", w + "/nginx.conf"], check=True)
    ours = subprocess.Popen([binary, "--config.probes", w + "/probes.yml",
                             "--config.log-rules", os.path.join(os.path.dirname(__file__), "no_logs.yaml"),
                             "--web.listen-address", "127.0.0.1:%d" % port,
                             "--positions.file", w + "/positions.json"],
                            cwd=w, stderr=open(w + "/lookout.err", "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(interval + 3)
        samples = []
        for _ in range(interval):
            samples.append(rss_mib(ours.pid))
            time.sleep(1)
        steady = sorted(samples)[len(samples) // 2]
        peak, stop = [0.0], [False]

        def sample():
            while not stop[0]:
                peak[0] = max(peak[0], rss_mib(ours.pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        for zipped in (False, True, False):
            headers = {"Accept-Encoding": "gzip"} if zipped else {}
            request = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, headers=headers)
            started = time.time()
            body = urllib.request.urlopen(request).read()
            took = time.time() - started
            text = (gzip.decompress(body) if zipped else body).decode()
            ok = sum(1 for line in text.splitlines()
                     if line.startswith("probe_success{") and line.endswith(" 1"))
            print("scrape%s: %.2f s, %d bytes sent, probe_success 1: %d of %d"
                  % (" (gzip)" if zipped else "", took, len(body), ok, n))
        stop[0] = True
        sampler.join()
        buckets = {}
        for line in text.splitlines():
            if line.startswith("lookout_probe_start_lateness_seconds_bucket{le="):
                buckets[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
        if buckets.get("+Inf"):
            print("runs started within 10 ms of their slot: %.2f%%, within 50 ms: %.2f%% (of %d)"
                  % (100 * buckets["0.01"] / buckets["+Inf"], 100 * buckets["0.05"] / buckets["+Inf"],
                     buckets["+Inf"]))
        print("N=%d steady %.1f MiB, peak during scrapes %.1f MiB (%.2f x steady)"
              % (n, steady, peak[0], peak[0] / steady))
    finally:
        ours.terminate()
        ours.wait()
        subprocess.run(["nginx", "-c", w + "/nginx.conf", "-s", "stop"], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
