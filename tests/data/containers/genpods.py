#!/usr/bin/env python3
"""Container log fixtures: lines of ../shared/fixtures/genlogs.py as a container runtime writes them.

  genpods.py wrap --as docker|cri [--split N] [--broken K] [--seed S] < plain > wrapped
      Each line wrapped as Docker json-file or CRI writes it, stdout and stderr mixed; with
      --split, lines longer than N bytes are cut in pieces (CRI `P` lines ended by an `F` line,
      Docker `log` values without their newline), as runtimes do with long lines. --broken adds
      K lines that are no wrapper at all. The plain lines read back from the pieces are the input.

  genpods.py pods ROOT --lines N [--seed S] [--rotate-every M] [--interval SECONDS]
      A kubelet node's /var/log/pods under ROOT/pods and its ROOT/containers links: namespaces
      `shop` and `billing`, each with an nginx pod (container `nginx`) and a Spring pod
      (container `app`), N nginx lines per namespace written over time in CRI form with pieces;
      every M lines per container 0.log is renamed to 0.log.<time> and gzipped a little later
      (kubelet's rotation); halfway, each nginx container restarts (1.log, with a new link).
      Prints the truth as JSON: nginx requests and 5xx responses per namespace.
"""

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time

GENLOGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "fixtures", "genlogs.py")


def stamp(i):
    return "2026-01-01T00:%02d:%02d.%09dZ" % (i // 60000 % 60, i // 1000 % 60, i % 1000 * 1000)


def pieces(line, split, rng):
    """The line in pieces of at most `split` bytes (at least one piece)."""
    if not split or len(line) <= split:
        return [line]
    out = []
    while line:
        n = rng.randint(1, split)
        out.append(line[:n])
        line = line[n:]
    return out


def wrap(line, kind, i, stream, split, rng):
    parts = pieces(line, split, rng)
    out = []
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if kind == "cri":
            out.append("%s %s %s %s\n" % (stamp(i), stream, "F" if last else "P", part))
        else:
            log = part + ("\n" if last else "")
            out.append(json.dumps({"log": log, "stream": stream, "time": stamp(i)}) + "\n")
    return out


def cmd_wrap(args):
    rng = random.Random(args.seed)
    data = sys.stdin.buffer.read().decode("utf-8", "replace")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    broken_at = set(rng.sample(range(len(lines) + 1), min(args.broken, len(lines) + 1)))
    out = []
    for i, line in enumerate(lines):
        if i in broken_at:
            out.append("this is no wrapper %d\n" % i)
        # CRI writes a line's \r as part of its text: none here, genlogs writes \n only.
        out.extend(wrap(line, args.kind, i, "stdout" if i % 7 else "stderr", args.split, rng))
    sys.stdout.write("".join(out))


def genlogs(kind, fmt, lines, seed):
    out = subprocess.run(
        [sys.executable, GENLOGS, kind, "--format", fmt, "--lines", str(lines), "--seed", str(seed)],
        check=True,
        capture_output=True,
    ).stdout
    text = out.decode("utf-8", "replace").split("\n")
    return [l for l in text if l]


class Container:
    def __init__(self, root, ns, pod, name, rng):
        self.dir = os.path.join(root, "pods", "%s_%s_%08x-uid" % (ns, pod, rng.getrandbits(32)), name)
        os.makedirs(self.dir, exist_ok=True)
        self.links = os.path.join(root, "containers")
        os.makedirs(self.links, exist_ok=True)
        self.ns, self.pod, self.name = ns, pod, name
        self.restart = -1
        self.written = 0
        self.to_compress = []
        self.start()

    def start(self):
        self.restart += 1
        self.path = os.path.join(self.dir, "%d.log" % self.restart)
        open(self.path, "a").close()
        link = os.path.join(self.links, "%s_%s_%s-%064x.log" % (self.pod, self.ns, self.name, self.restart))
        os.symlink(self.path, link)

    def write(self, chunk):
        with open(self.path, "a") as f:
            f.write("".join(chunk))
            f.flush()

    def rotate(self, i):
        rotated = "%s.%s" % (self.path, "2026%04d-%06d" % (i // 1000000, i % 1000000))
        os.rename(self.path, rotated)
        open(self.path, "a").close()
        self.to_compress.append((time.monotonic() + 0.6, rotated))

    def compress_due(self, force=False):
        keep = []
        for due, path in self.to_compress:
            if force or time.monotonic() >= due:
                with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.unlink(path)
            else:
                keep.append((due, path))
        self.to_compress = keep


def cmd_pods(args):
    rng = random.Random(args.seed)
    truth = {}
    writers = []
    for n, ns in enumerate(["shop", "billing"]):
        nginx = genlogs("nginx", "timed", args.lines, args.seed + n)
        spring = genlogs("spring", "boot3", args.lines, args.seed + n)
        truth[ns] = {
            "requests": len(nginx),
            "5xx": sum(1 for l in nginx if l.split('"')[2].split()[0].startswith("5")),
        }
        web = Container(args.root, ns, "web-%05x" % rng.getrandbits(20), "nginx", rng)
        app = Container(args.root, ns, "app-%05x" % rng.getrandbits(20), "app", rng)
        writers.append((web, nginx))
        writers.append((app, spring))
    step = 50
    i = 0
    while any(c.written < len(lines) for c, lines in writers):
        for c, lines in writers:
            chunk = []
            for line in lines[c.written : c.written + step]:
                chunk.extend(wrap(line, "cri", i, "stdout", 40, rng))
                i += 1
            c.write(chunk)
            before = c.written
            c.written = min(len(lines), c.written + step)
            if args.rotate_every and before // args.rotate_every != c.written // args.rotate_every:
                c.rotate(i)
            if c.name == "nginx" and before < len(lines) // 2 <= c.written:
                c.start()
            c.compress_due()
        time.sleep(args.interval)
    time.sleep(0.7)
    for c, _ in writers:
        c.compress_due(force=True)
    json.dump(truth, sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wrap")
    w.add_argument("--as", dest="kind", choices=["docker", "cri"], required=True)
    w.add_argument("--split", type=int, default=0)
    w.add_argument("--broken", type=int, default=0)
    w.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("pods")
    p.add_argument("root")
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rotate-every", type=int, default=300)
    p.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    {"wrap": cmd_wrap, "pods": cmd_pods}[args.command](args)


if __name__ == "__main__":
    main()
