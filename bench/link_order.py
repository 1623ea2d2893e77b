#!/usr/bin/env python3
"""Write link-order.txt: the functions and read-only tables a running lookout uses, which
release builds place side by side at the start of the binary (see build.rs).

  python3 bench/link_order.py [--binary target/release/lookout] [--out link-order.txt] [--fresh]

Code is mapped in from the file as it is touched, and the kernel maps the neighbours of each page
touched along with it: with the functions a run uses spread over 11 MiB of code, most of that
code is resident although little of it runs. The binary serves a workload like a deployment's:
/probe for http, https and tcp against a local nginx (sixteen at a time, then under wrk), the
same probes scheduled, an nginx access log followed by bench/nginx.yaml, scrapes of /metrics
(plain and gzip), the status page and the health endpoints. It serves it three times:
- under valgrind's callgrind, which records every function executed, start-up included;
- natively under `perf record` with call stacks, for what runs only on this machine's processor
  (ring picks its AES, SHA and curve code by CPU feature; valgrind's emulated CPU lacks some) or
  only under real concurrency;
- natively recording page faults, with the binary's code beyond the listed functions paged out
  fifty times a second so that each touch there faults again and names what it touched.
The names the binary defines are written one per line, sorted so that a regenerated file diffs
by name. Names the file already holds are kept (--fresh starts over): they no longer fault once
laid out together, so regenerating on a binary linked with the list converges.

Symbol names carry a hash of each crate's build (its version and the compiler's), so regenerate
after updating the compiler or dependencies: names that no longer match are skipped by the
linker, and the code they name is laid out as if no list were given.
Needs valgrind, perf (Debian's linux-perf), wrk, nginx and openssl.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from live_tail import free_port, nginx_conf  # the bench scripts' shared helpers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GENLOGS = os.path.join(ROOT, "..", "shared", "fixtures", "genlogs.py")

def make_certs(w):
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", w + "/ca.key", "-out", w + "/ca.pem",
            "-days", "30", "-subj", "/CN=Link Order CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", w + "/leaf.key", "-out", w + "/leaf.csr", "-subj", "/CN=localhost")
    with open(w + "/leaf.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", w + "/leaf.csr", "-CA", w + "/ca.pem", "-CAkey", w + "/ca.key", "-CAcreateserial",
            "-out", w + "/leaf.pem", "-days", "25", "-extfile", w + "/leaf.ext")


def get(url, gzip=False):
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip else {})
    return urllib.request.urlopen(request, timeout=60).read()


def wait_up(url, proc, seconds=120):
    end = time.time() + seconds
    while time.time() < end and proc.poll() is None:
        try:
            return get(url)
        except OSError:
            time.sleep(0.5)
    sys.exit("lookout did not come up: %s" % url)


def workload(port, targets, log, load_seconds):
    base = "http://127.0.0.1:%d" % port
    for kind, (module, target) in targets.items():
        # Sixteen at a time, as compare.py's wrk -c16 asks.
        threads = [threading.Thread(target=lambda: [get("%s/probe?module=%s&target=%s" % (base, module, target))
                                                    for _ in range(4)]) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        get("%s/probe?module=%s&target=%s&debug=true" % (base, module, target))
        if load_seconds:
            subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % load_seconds,
                            "%s/probe?module=%s&target=%s" % (base, module, target)], stdout=subprocess.DEVNULL)
    lines = subprocess.run([sys.executable, GENLOGS, "nginx", "--format", "timed", "--lines", "2000", "--seed", "3"],
                           capture_output=True, check=True).stdout
    with open(log, "ab") as f:
        f.write(lines)
    time.sleep(5)  # scheduled probes run; the tailer reads and publishes
    for path in ("/metrics", "/", "/-/ready", "/-/healthy"):
        get(base + path)
    get(base + "/metrics", gzip=True)


def serve(binary, wrapper, w, port, targets, log, load_seconds, attach):
    """Run lookout under wrapper through the workload; attach(pid) starts a recorder."""
    proc = subprocess.Popen(wrapper + [binary, "--config.probes", w + "/probes.yaml",
                                       "--config.log-rules", os.path.join(HERE, "nginx.yaml"),
                                       "--positions.file", w + "/positions.json",
                                       "--web.listen-address", "127.0.0.1:%d" % port],
                            env=dict(os.environ, CA_FILE=w + "/ca.pem", NGINX_ACCESS_LOG=log),
                            stdout=subprocess.DEVNULL, stderr=open(w + "/lookout.log", "a"))
    recorder = None
    try:
        wait_up("http://127.0.0.1:%d/-/ready" % port, proc)
        recorder = attach(proc.pid)
        workload(port, targets, log, load_seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
        if recorder:
            recorder.wait(30)


class Pager(threading.Thread):
    """Pages the binary's read-only mappings beyond `keep` (an address in the file's layout: the
    end of the listed code) out of a running process fifty times a second, so that code touched
    again faults again: without it, a fault reports only the first function touched in the
    neighbourhood the kernel maps in with it, and the others there go unnamed."""
    MADV_PAGEOUT, SYS_PROCESS_MADVISE = 21, 440

    def __init__(self, pid, binary, keep):
        super().__init__(daemon=True)
        self.pid, self.done, self.error = pid, threading.Event(), None
        real = os.path.realpath(binary)
        mappings = [(int(a, 16), int(b, 16), perms) for a, b, perms in
                    ((l.split()[0].split("-") + [l.split()[1]]) for l in open("/proc/%d/maps" % pid)
                     if l.split()[5:6] == [real])]
        base = min(start for start, _, _ in mappings)
        self.spans = [(max(start, base + keep) if "x" in perms else start, end)
                      for start, end, perms in mappings if "w" not in perms]
        self.start()

    def run(self):
        import ctypes

        class IoVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        spans = (IoVec * len(self.spans))(*(IoVec(start, end - start) for start, end in self.spans if end > start))
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(self.pid)
        try:
            while not self.done.wait(0.02):
                if libc.syscall(self.SYS_PROCESS_MADVISE, pidfd, spans, len(spans), self.MADV_PAGEOUT, 0) < 0:
                    errno = ctypes.get_errno()
                    if errno != 3:  # ESRCH: the process has exited
                        self.error = "process_madvise: %s" % os.strerror(errno)
                    return
        finally:
            os.close(pidfd)

    def wait(self, timeout):
        self.done.set()
        self.join(timeout)
        if self.error:
            sys.exit(self.error)


def listed_code_end(binary, listed):
    """End of the last listed function in binary: where code laid out by the list stops."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    return max([int(p[0], 16) + int(p[1], 16) for p in (l.split() for l in out.splitlines())
                if len(p) == 4 and p[2] in "tTwW" and p[3] in listed] or [0])


def child_of(pid):
    for _ in range(100):
        children = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    sys.exit("no child of %d" % pid)


def symbols_recorded(perf_data, binary, fields):
    """Names of binary's symbols perf recorded: with "ip,sym,dso", every frame of each sampled
    call stack; with "addr,ip,sym,dso", what each page fault touched."""
    out = subprocess.run(["perf", "script", "-i", perf_data, "-F", fields, "--no-demangle"],
                         capture_output=True, text=True).stdout
    dso = "(%s)" % os.path.realpath(binary)
    names = set()
    for line in out.splitlines():
        # Each line starts "ADDRESS SYMBOL (DSO)"; a frame inlined into another has "(inlined)".
        parts = line.split()
        if len(parts) >= 3 and parts[2] == dso and parts[1] != "[unknown]":
            names.add(parts[1])
    return names


def symbols_called(callgrind_out):
    names = set()
    with open(callgrind_out, errors="replace") as f:
        for line in f:
            # fn=(id) name / cfn=(id) name the first time a function appears (name compression).
            if line.startswith(("fn=(", "cfn=(")):
                _, _, rest = line.partition(") ")
                if rest:
                    names.add(rest.rstrip("\n"))
    return names


def symbols_defined(binary):
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    return {parts[2] for parts in (l.split() for l in out.splitlines()) if len(parts) == 3 and parts[1] in "tTwWrR"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "lookout"))
    p.add_argument("--out", default=os.path.join(ROOT, "link-order.txt"))
    p.add_argument("--fresh", action="store_true", help="do not keep the names --out already lists")
    args = p.parse_args()
    for tool in ("valgrind", "perf", "wrk", "nginx", "openssl", "nm"):
        if not shutil.which(tool):
            sys.exit("needs %s" % tool)
    w = tempfile.mkdtemp(prefix="lookout-link-order-")
    os.makedirs(w + "/www")
    with open(w + "/www/index.html", "w") as f:
        f.write("<html><body>ok</body></html>\n")
    make_certs(w)
    http, https, port = free_port(), free_port(), free_port()
    with open(w + "/nginx.conf", "w") as f:
        f.write(nginx_conf(w, [
            "server { listen 127.0.0.1:%d; root %s/www; }" % (http, w),
            "server { listen 127.0.0.1:%d ssl; ssl_certificate %s/leaf.pem; ssl_certificate_key %s/leaf.key; root %s/www; }" % (https, w, w, w),
        ]))
    targets = {"http": ("http_2xx", "http://localhost:%d/" % http),
               "https": ("https_2xx", "https://localhost:%d/" % https),
               "tcp": ("tcp_connect", "localhost:%d" % http)}
    probes = open(os.path.join(HERE, "probes.yaml")).read() + "probes:\n" + "".join(
        "  - {name: %s, module: %s, target: \"%s\", interval: 1s}\n" % (kind, module, target)
        for kind, (module, target) in targets.items())
    with open(w + "/probes.yaml", "w") as f:
        f.write(probes)
    log = w + "/access.log"
    open(log, "w").close()
    listed = set()
    if not args.fresh and os.path.exists(args.out):
        listed = {l.strip() for l in open(args.out) if l.strip() and not l.startswith("#")}
    keep = listed_code_end(args.binary, listed)
    subprocess.run(["nginx", "-c", w + "/nginx.conf"], check=True)
    callgrind_out, samples, faults = w + "/callgrind.out", w + "/samples.data", w + "/faults.data"
    try:
        serve(args.binary, ["valgrind", "--tool=callgrind", "--demangle=no", "--callgrind-out-file=" + callgrind_out],
              w, port, targets, log, 0, lambda pid: None)
        # wrk as compare.py runs it, long enough for the samples to find what each probe runs.
        serve(args.binary, [], w, port, targets, log, 3, lambda pid: subprocess.Popen(
            ["perf", "record", "-q", "-F", "4000", "--call-graph", "dwarf,8192", "-o", samples, "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        serve(args.binary, ["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-d", "-o", faults, "--"],
              w, port, targets, log, 3, lambda pid: Pager(child_of(pid), args.binary, keep))
    finally:
        subprocess.run(["nginx", "-c", w + "/nginx.conf", "-s", "stop"], stderr=subprocess.DEVNULL)
    defined = symbols_defined(args.binary)
    found = {"called under callgrind": symbols_called(callgrind_out) & defined,
             "on sampled stacks": symbols_recorded(samples, args.binary, "ip,sym,dso") & defined,
             "at page faults": symbols_recorded(faults, args.binary, "addr,ip,sym,dso") & defined}
    for how, names in found.items():
        print("%5d %s" % (len(names), how))
    run = set().union(*found.values())
    # What the list already holds ran before and is not paged out now: keep it.
    run |= listed
    ordered = sorted(run & defined)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    with open(args.out, "w") as f:
        f.write("# Functions and read-only data a running lookout uses, laid out first by release builds (build.rs).\n")
        f.write("# Made by bench/link_order.py with %s; regenerate after a compiler or dependency update.\n" % rustc)
        f.write("".join(name + "\n" for name in ordered))
    print("%d of the binary's %d functions and read-only data ran or were read; written to %s"
          % (len(ordered), len(defined), args.out))
    shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
