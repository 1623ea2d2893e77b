#!/usr/bin/env python3
"""Live tailing under load: append nginx lines at a fixed rate while lookout follows the file,
and report how far behind it falls, the write-to-counter latency and the CPU it spends.

  python3 bench/live_tail.py [--rate 100000] [--seconds 10] [--binary target/release/lookout]
                             [--watch inotify|poll] [--files N] [--idle-files N]

--files N spreads the rate over N files (each written at rate/N lines/s); --idle-files N
follows N files nobody writes to and reports only the CPU spent over --seconds. The latency of
a line is the time from its write to the first scrape whose lookout_log_lines_total covers it
(scrapes every 20 ms; so it includes the wait for the positions save that publishes counts).
Writing goes on as long again with a scrape every 15 s, as Prometheus would, for lookout's CPU
without the cost of fifty scrapes a second.
Lines come from ../shared/fixtures/genlogs.py; lookout runs with bench/nginx.yaml, `watch:` set.
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


def nginx_conf(w, servers, connections=1024):
    """The bench scripts' nginx: one worker, its pid file and error log in `w`, no access log,
    and `servers` (the `server { ... }` blocks) under http."""
    blocks = "".join("  %s\n" % server for server in servers)
    return ("worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log;\n"
            "events { worker_connections %d; }\nhttp {\n  access_log off;\n%s}\n"
            % (w, w, connections, blocks))


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


def files_followed(port):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode()
    m = re.search(r'^lookout_log_files\{source="nginx"\} (\S+)$', body, re.M)
    return float(m.group(1)) if m else 0.0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=100_000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "lookout"))
    p.add_argument("--watch", choices=["inotify", "poll"], default="inotify")
    p.add_argument("--files", type=int, default=1)
    p.add_argument("--idle-files", type=int, default=0)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="lookout-live-")
    # Two phases of --seconds each (see below).
    total = 0 if args.idle_files else 2 * args.rate * args.seconds
    source = subprocess.run([sys.executable, GENLOGS, "nginx", "--format", "timed", "--lines", str(max(total, 1)), "--seed", "2"],
                            capture_output=True, check=True).stdout.splitlines(keepends=True)
    logs = os.path.join(work, "logs")
    os.mkdir(logs)
    count = args.idle_files or args.files
    paths = [os.path.join(logs, "access-%05d.log" % i) for i in range(count)]
    for path in paths:
        open(path, "w").close()
    rules = open(os.path.join(HERE, "nginx.yaml")).read().replace(
        "    log_format: combined_timed\n", "    log_format: combined_timed\n    watch: %s\n" % args.watch, 1)
    open(os.path.join(work, "rules.yaml"), "w").write(rules)
    # Before lookout starts: it reads it at once.
    open(os.path.join(work, "probes.yaml"), "w").write("modules: {}\n")
    port = free_port()
    env = dict(os.environ, NGINX_ACCESS_LOG=paths[0] if count == 1 else os.path.join(logs, "*.log"))
    proc = subprocess.Popen([args.binary, "--config.probes", os.path.join(work, "probes.yaml"),
                             "--config.log-rules", os.path.join(work, "rules.yaml"),
                             "--positions.file", os.path.join(work, "positions.json"),
                             "--web.listen-address", "127.0.0.1:%d" % port], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "lookout.log"), "w"))
    try:
        for _ in range(100):
            try:
                lines_read(port)
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1.0)
        if args.idle_files:
            # Past the first scan, which opens every file.
            for _ in range(600):
                if files_followed(port) >= count:
                    break
                time.sleep(0.1)
            time.sleep(1.0)
        cpu0 = cpu_seconds(proc.pid)
        if args.idle_files:
            time.sleep(args.seconds)
            cpu = cpu_seconds(proc.pid) - cpu0
            print("idle: %d quiet files, watch %s: lookout CPU %.3f s over %d s (%.2f%% of one core)"
                  % (count, args.watch, cpu, args.seconds, 100 * cpu / args.seconds))
            return
        files = [open(path, "ab", buffering=0) for path in paths]
        per_phase = total // 2

        def write_for(first, last, scrape_every):
            """Writes lines [first, last) at the rate, scraping every `scrape_every` seconds;
            (time, lines written) of each write, (time, lines counted) of each scrape, max lag."""
            tick = 0.01
            written = first
            timeline, scrapes, max_lag = [], [], 0.0
            start = time.monotonic()
            next_sample = start
            while written < last:
                due = first + int((time.monotonic() - start) * args.rate)
                if due > written:
                    chunk = source[written:min(due, last)]
                    if len(files) == 1:
                        files[0].write(b"".join(chunk))
                    else:
                        # Round robin over the files, one write per file per round.
                        parts = [[] for _ in files]
                        for i, line in enumerate(chunk):
                            parts[(written + i) % len(files)].append(line)
                        for f, part in zip(files, parts):
                            if part:
                                f.write(b"".join(part))
                    written += len(chunk)
                    timeline.append((time.monotonic(), written))
                if time.monotonic() >= next_sample:
                    now = time.monotonic()
                    read = lines_read(port)
                    max_lag = max(max_lag, written - read)
                    scrapes.append((time.monotonic(), read))
                    next_sample = now + scrape_every
                time.sleep(tick / 2)
            return time.monotonic() - start, timeline, scrapes, max_lag

        def catch_up(written):
            """Seconds until every written line is counted (None: not within 2 s)."""
            began = time.monotonic()
            for _ in range(100):
                if written - lines_read(port) <= 0:
                    return time.monotonic() - began
                time.sleep(0.02)
            return None

        # Phase 1: scraped every 20 ms, for the latency. Scrapes that often cost CPU of their
        # own, so phase 2 measures the cost of following as Prometheus would scrape (15 s).
        elapsed, timeline, scrapes, max_lag = write_for(0, per_phase, 0.02)
        caught_up = catch_up(per_phase)
        cpu = cpu_seconds(proc.pid) - cpu0
        scrapes.append((time.monotonic(), lines_read(port)))
        # Each write's latency: until the first scrape whose count covers its last line.
        latencies = []
        k = 0
        for t, w in timeline:
            while k < len(scrapes) and (scrapes[k][0] < t or scrapes[k][1] < w):
                k += 1
            if k < len(scrapes):
                latencies.append(scrapes[k][0] - t)
        cpu1 = cpu_seconds(proc.pid)
        elapsed2, _, _, _ = write_for(per_phase, total, 15.0)
        caught_up2 = catch_up(total)
        cpu2 = cpu_seconds(proc.pid) - cpu1
        for f in files:
            f.close()
        print("live tailing (watch %s, %d file(s)): %d lines in %.1f s (%.0f lines/s written)"
              % (args.watch, len(files), per_phase, elapsed, per_phase / elapsed))
        print("max lag while writing: %.0f lines = %.2f s at this rate" % (max_lag, max_lag / args.rate))
        print("write-to-counter latency: p50 %.0f ms, p99 %.0f ms (%d writes, scrapes every 20 ms)"
              % (1000 * percentile(latencies, 0.5), 1000 * percentile(latencies, 0.99), len(latencies)))
        print("caught up %.2f s after the last write" % caught_up if caught_up is not None else "did NOT catch up within 2 s")
        print("lookout CPU, scraped every 20 ms: %.2f s over %.1f s (%.0f%% of one core)" % (cpu, elapsed, 100 * cpu / elapsed))
        print("lookout CPU, scraped every 15 s: %.2f s over %.1f s (%.1f%% of one core)%s"
              % (cpu2, elapsed2, 100 * cpu2 / elapsed2, "" if caught_up2 is not None else "; did NOT catch up"))
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
