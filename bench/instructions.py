"""Instructions per request of provisiond's three hot paths, counted by callgrind.

Each figure is the difference of two runs of the whole process under
`valgrind --tool=callgrind`, with the same start, the same set-up, the same
warm-up requests, the same wall-clock time and the same stop (SIGTERM):

  workload run   start, set-up, W warm-up requests, N measured requests, stop
  baseline run   start, set-up, W warm-up requests, idle as long as the N took, stop

instructions per request = (Ir(workload) - Ir(baseline)) / N.  Start-up, set-up,
first-request initialisation (reader connections, statement compilation, Swift
metadata), shutdown and the idle timers (1 s dispatcher scan, epoll timeouts)
cancel out. Clients and the webhook receiver run outside valgrind, so only
provisiond's user-space instructions are counted (the kernel's work behind a
syscall is not; the syscalls themselves are counted with --collect-systime).

Paths:
  healthz    GET /healthz on one keep-alive connection, one request at a time.
  tenants    POST /tenants on one keep-alive connection, one at a time, with
             3 subscriptions paused: each request is its own group commit
             (tenant row, event, 3 delivery rows), answered 202.
  delivery   A data dir holding T tenants x 3 paused subscriptions (written by
             the same binary outside valgrind) is copied for both runs; the
             workload run unpauses the 3 subscriptions and waits until the
             receiver (nginx answering 204, else a Python server; outside
             valgrind) has seen all 3T deliveries, then stops, and the
             shutdown waits for the outcome writes. The baseline run sends
             the same 3 PATCH requests with {"paused": true}. Default
             --max-in-flight (32).

Usage: python3 bench/instructions.py [--bin PATH] [--healthz N] [--tenants N]
       [--deliveries T] [--only healthz,tenants,delivery] [--keep DIR]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
START_TIMEOUT = 300   # seconds for the listening line under callgrind
STOP_TIMEOUT = 300    # seconds for a clean stop under callgrind
WORK_TIMEOUT = 600    # seconds for any one workload


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """provisiond on a free port with its data dir, optionally under callgrind."""

    def __init__(self, binary, data_dir, log_path, callgrind_out=None, preload=None):
        cmd = [binary, "serve", "--port", "0", "--data-dir", data_dir, "--api-token", TOKEN]
        env = dict(os.environ)
        if callgrind_out:
            cmd = ["valgrind", "--tool=callgrind", "--collect-systime=yes",
                   f"--callgrind-out-file={callgrind_out}", *cmd]
            env["LD_PRELOAD"] = preload
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        self.port = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(rb"listening on http://[^ ]*:(\d+)", open(log_path, "rb").read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.proc.kill()
            sys.exit(f"provisiond did not start; log {log_path}:\n" + open(log_path).read()[-2000:])

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            sys.exit(f"provisiond did not stop within {STOP_TIMEOUT} s")
        self.log.close()
        if rc != 0:
            sys.exit(f"provisiond exited {rc}; log {self.log_path}")


def call(conn, method, path, body=None, expect=(200, 201, 202, 204)):
    conn.request(method, path, None if body is None else json.dumps(body), HEADERS)
    r = conn.getresponse()
    data = r.read()
    if r.status not in expect:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def tenant_body(prefix, i):
    # Same shape as bench/publish.lua; fixed-width index: every request has the same length.
    return {"domain": f"{prefix}-{i:06d}.bench.example",
            "admin": {"username": "admin", "email": "admin@bench.example"}, "plan": "Demo"}


def subscriptions(conn, urls, paused):
    ids = []
    for i, url in enumerate(urls):
        ids.append(call(conn, "POST", "/subscriptions", {"name": f"env{i}", "url": url})["id"])
    if paused:
        for sid in ids:
            call(conn, "PATCH", f"/subscriptions/{sid}", {"paused": True})
    return ids


def totals(path):
    """Ir and syscall count of a callgrind output file (all threads)."""
    events, values = None, None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:") or (values is None and line.startswith("summary:")):
                values = [int(v) for v in line.split()[1:]]
    found = dict(zip(events, values))
    return found["Ir"], found.get("sysCount", 0)


# --- receiver (outside valgrind) -------------------------------------------------

class Receiver:
    """Answers 204 to every POST; counts requests. nginx if installed, else Python."""

    def __init__(self, work):
        self.port = free_port()
        self.proc = None
        if shutil.which("nginx"):
            d = os.path.join(work, "nginx")
            os.makedirs(d)
            self.access = os.path.join(d, "access.log")
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
    log_format n "1";
    access_log {self.access} n;
    client_body_temp_path {d};
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{self.port}; location / {{ return 204; }} }}
}}
""")
            self.proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"])
            self.kind = "nginx"
        else:
            from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
            receiver = self
            self.seen = 0
            lock = threading.Lock()

            class Handler(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def do_POST(self):
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    self.send_response(204)
                    self.end_headers()
                    with lock:
                        receiver.seen += 1

                def log_message(self, *args):
                    pass

            self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
            self.kind = "python"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

    def count(self):
        if self.kind == "python":
            return self.seen
        try:
            return os.path.getsize(self.access) // 2   # each line is "1\n"
        except FileNotFoundError:
            return 0

    def wait_for(self, n, timeout=WORK_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > deadline:
                sys.exit(f"receiver saw {self.count()} of {n} deliveries in {timeout} s")
            time.sleep(0.05)

    def close(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        else:
            self.httpd.shutdown()


# --- one measured pair -----------------------------------------------------------

def pair(name, args, work, setup, warmup, workload, baseline_requests=None, data_dir_from=None):
    """Workload run then baseline run; returns (Ir per request, syscalls per request, details)."""
    results = {}
    elapsed = None
    for kind in ("workload", "baseline"):
        run_dir = os.path.join(work, f"{name}-{kind}")
        os.makedirs(run_dir)
        data = os.path.join(run_dir, "data")
        if data_dir_from:
            shutil.copytree(data_dir_from, data)
        out = os.path.join(args.keep or work, f"callgrind.{name}.{kind}.{args.label}.out")
        server = Server(args.bin, data, os.path.join(run_dir, "log"), callgrind_out=out, preload=args.preload)
        conn = server.connection()
        context = setup(conn)
        warmup(conn, context)
        t0 = time.monotonic()
        if kind == "workload":
            n = workload(conn, context)
            elapsed = time.monotonic() - t0
        else:
            if baseline_requests:
                baseline_requests(conn, context)
            rest = elapsed - (time.monotonic() - t0)
            if rest > 0:
                time.sleep(rest)
        conn.close()
        server.stop()
        results[kind] = totals(out)
        log(f"  {name} {kind}: Ir={results[kind][0]:,} syscalls={results[kind][1]:,}"
            + (f" ({n} requests in {elapsed:.1f} s)" if kind == "workload" else ""))
    ir = (results["workload"][0] - results["baseline"][0]) / n
    sc = (results["workload"][1] - results["baseline"][1]) / n
    return ir, sc, n, results


def measure_healthz(args, work):
    n, w = args.healthz, 50

    def get(conn, count):
        for _ in range(count):
            call(conn, "GET", "/healthz")

    return pair("healthz", args, work, setup=lambda conn: None,
                warmup=lambda conn, _: get(conn, w),
                workload=lambda conn, _: (get(conn, n), n)[1])


def measure_tenants(args, work):
    n, w = args.tenants, 20

    def setup(conn):
        subscriptions(conn, [f"http://127.0.0.1:9/env{i}" for i in range(3)], paused=True)

    def post(conn, start, count):
        for i in range(start, start + count):
            r = call(conn, "POST", "/tenants", tenant_body("t", i), expect=(202,))
            assert "id" in r
        return count

    return pair("tenants", args, work, setup=setup,
                warmup=lambda conn, _: post(conn, 0, w),
                workload=lambda conn, _: post(conn, w, n))


def measure_delivery(args, work):
    tenants = args.deliveries
    receiver = Receiver(work)
    log(f"  receiver: {receiver.kind} on port {receiver.port}")
    try:
        # The backlog, written natively (not under callgrind) by the same binary.
        seed = os.path.join(work, "delivery-seed")
        os.makedirs(seed)
        server = Server(args.bin, os.path.join(seed, "data"), os.path.join(seed, "log"))
        conn = server.connection()
        ids = subscriptions(conn, [f"http://127.0.0.1:{receiver.port}/env{i}" for i in range(3)], paused=True)
        for i in range(tenants):
            call(conn, "POST", "/tenants", tenant_body("d", i), expect=(202,))
        conn.close()
        server.stop()
        before = receiver.count()

        def unpause(conn, _):
            for sid in ids:
                call(conn, "PATCH", f"/subscriptions/{sid}", {"paused": False})
            receiver.wait_for(before + 3 * tenants)
            return 3 * tenants

        def pause(conn, _):
            for sid in ids:
                call(conn, "PATCH", f"/subscriptions/{sid}", {"paused": True})

        result = pair("delivery", args, work, setup=lambda conn: None, warmup=lambda conn, _: None,
                      workload=unpause, baseline_requests=pause, data_dir_from=os.path.join(seed, "data"))
        if receiver.count() != before + 3 * tenants:
            sys.exit(f"receiver saw {receiver.count() - before} deliveries, expected {3 * tenants}")
        return result
    finally:
        receiver.close()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("PROVISIOND_BIN", os.path.join(root, ".build/release/provisiond")))
    p.add_argument("--healthz", type=int, default=20000, help="GET /healthz requests measured")
    p.add_argument("--tenants", type=int, default=1000, help="POST /tenants requests measured")
    p.add_argument("--deliveries", type=int, default=500, help="tenants fanned out to 3 subscriptions (3x deliveries)")
    p.add_argument("--only", default="healthz,tenants,delivery")
    p.add_argument("--keep", help="keep the callgrind output files in this directory (for callgrind_annotate)")
    p.add_argument("--label", default="run", help="part of the kept file names")
    args = p.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is missing: apt-get install valgrind")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no binary at {args.bin}: swift build -c release")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    measures = {"healthz": measure_healthz, "tenants": measure_tenants, "delivery": measure_delivery}
    labels = {"healthz": "GET /healthz", "tenants": "POST /tenants (3 paused subscriptions)",
              "delivery": "delivery (claim, attempt, outcome; 204)"}
    work = tempfile.mkdtemp(prefix="provisiond-instr.")
    try:
        # Valgrind 3.19 (Debian 12) gives up on the DWARF 5 debug info Swift's
        # clang writes; a copy without it keeps the symbol table, so callgrind
        # still names every function. Same code, same instructions.
        stripped = os.path.join(work, "provisiond")
        subprocess.run(["objcopy", "--strip-debug", args.bin, stripped], check=True)
        args.bin = stripped
        # And a sigsuspend() that valgrind 3.19 survives (see the C file).
        shim = os.path.join(work, "valgrind-sigsuspend.so")
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim, os.path.join(here, "valgrind-sigsuspend.c")], check=True)
        args.preload = shim
        for name in args.only.split(","):
            log(f"{name}:")
            ir, sc, n, _ = measures[name](args, work)
            print(f"{labels[name]:<42} {ir:>12,.0f} instructions  {sc:6.1f} syscalls  per request (n={n})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
