#!/usr/bin/env python3
"""Live tailing under load: append nginx lines at a fixed rate while lookout follows the file,
and report how far behind it falls and the CPU it spends.

  python3 bench/live_tail.py [--rate 100000] [--seconds 10] [--binary target/release/lookout]

Lines come from ../shared/fixtures/genlogs.py; lookout runs with bench/nginx.yaml.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GENLOGS = os.path.join(ROOT, "..", "shared", "fixtures", "genlogs.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def lines_read(port):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode()
    m = re.search(r'^lookout_log_lines_total\{source="nginx"\} (\S+)$', body, re.M)
    return float(m.group(1)) if m else 0.0


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=100_000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "lookout"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="lookout-live-")
    total = args.rate * args.seconds
    source = subprocess.run([sys.executable, GENLOGS, "nginx", "--format", "timed", "--lines", str(total), "--seed", "2"],
                            capture_output=True, check=True).stdout.splitlines(keepends=True)
    log = os.path.join(work, "access.log")
    open(log, "w").close()
    port = free_port()
    env = dict(os.environ, NGINX_ACCESS_LOG=log)
    proc = subprocess.Popen([args.binary, "--config.probes", os.path.join(work, "probes.yaml"),
                             "--config.log-rules", os.path.join(HERE, "nginx.yaml"),
                             "--positions.file", os.path.join(work, "positions.json"),
                             "--web.listen-address", "127.0.0.1:%d" % port], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    open(os.path.join(work, "probes.yaml"), "w").write("modules: {}\n")
    try:
        for _ in range(100):
            try:
                lines_read(port)
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        cpu0 = cpu_seconds(proc.pid)
        tick = 0.01
        per_tick = max(1, int(args.rate * tick))
        written = 0
        max_lag = 0.0
        start = time.monotonic()
        next_sample = start
        with open(log, "ab", buffering=0) as f:
            while written < total:
                due = int((time.monotonic() - start) * args.rate)
                if due > written:
                    chunk = source[written:min(due, total)]
                    f.write(b"".join(chunk))
                    written += len(chunk)
                if time.monotonic() >= next_sample:
                    max_lag = max(max_lag, written - lines_read(port))
                    next_sample += 0.1
                time.sleep(tick / 2)
        elapsed = time.monotonic() - start
        caught_up = None
        for _ in range(100):
            lag = written - lines_read(port)
            if lag <= 0:
                caught_up = time.monotonic() - start - elapsed
                break
            time.sleep(0.02)
        cpu = cpu_seconds(proc.pid) - cpu0
        print("live tailing: %d lines in %.1f s (%.0f lines/s written)" % (written, elapsed, written / elapsed))
        print("max lag while writing: %.0f lines = %.2f s at this rate" % (max_lag, max_lag / args.rate))
        print("caught up %.2f s after the last write" % caught_up if caught_up is not None else "did NOT catch up within 2 s")
        print("lookout CPU: %.2f s over %.1f s (%.0f%% of one core)" % (cpu, elapsed, 100 * cpu / elapsed))
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
