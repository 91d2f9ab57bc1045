"""Chaos run: publish N tenants, three in four of them followed by lifecycle
events (update; deactivate, activate; delete), while the service is killed
(-9) and restarted at random moments and stopped once with SIGTERM; three
receivers (healthy, flaky 30%, down for the first part); then drain and
prove that nothing acknowledged was lost, every environment got every event
of every domain in the order it was accepted, and every signature verifies.

With --postgres ADMIN_URL, --instances processes share one fresh database
on that server (made through the admin URL, dropped after a clean run):
requests are spread over them (a request refused by a dead one goes to the
next), and each crash or the SIGTERM stop hits one of them at random, which
is then restarted; a dead one's claims are taken over after --claim-lease.

Usage: chaos.py [--n 20000] [--crashes 3] [--bin PATH] [--seed S]
                [--postgres ADMIN_URL [--instances 2] [--claim-lease 2s]]
Prints one figures line last; exits 1 on any loss."""
import argparse
import base64
import http.client
import http.server
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=int(os.environ.get("N", 20000)))
parser.add_argument("--crashes", type=int, default=3)
parser.add_argument("--bin", default=os.environ.get("PROVISIOND_BIN", os.path.join(ROOT, ".build/release/provisiond")))
parser.add_argument("--seed", type=int, default=None)
parser.add_argument("--concurrency", type=int, default=16)
parser.add_argument("--drain-timeout", type=float, default=600)
parser.add_argument("--postgres", metavar="ADMIN_URL", help="run on a fresh database of this PostgreSQL server")
parser.add_argument("--instances", type=int, default=None, help="processes on the one database (PostgreSQL; default 2)")
parser.add_argument("--claim-lease", default="2s", help="--claim-lease of each instance (PostgreSQL)")
args = parser.parse_args()
if args.instances is None:
    args.instances = 2 if args.postgres else 1
if args.instances < 1 or (args.instances > 1 and not args.postgres):
    parser.error("--instances above 1 needs --postgres: on SQLite one process owns the data dir")
if args.postgres and not shutil.which("psql"):
    parser.error("--postgres needs psql (Debian postgresql-client)")
rng = random.Random(args.seed)
TOKEN = "chaos-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class QuietServer(http.server.ThreadingHTTPServer):
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # provisiond hanging up mid-request (kill -9) is part of the run


class Receiver:
    """A webhook receiver that records every webhook-id and verifies every signature."""

    def __init__(self, name, failure_rate=0.0):
        self.name = name
        self.secret = secret()
        self.failure_rate = failure_rate
        self.lock = threading.Lock()
        self.received = {}  # webhook-id -> count of acknowledged receipts
        self.versions = {}  # domain -> versions in the order they were first acknowledged
        self.bad_signatures = 0
        self.port = free_port()
        self.server = None
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                roll = rng.random()
                if roll < receiver.failure_rate / 2:
                    self.close_connection = True  # drop it: no answer at all
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if roll < receiver.failure_rate:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    Webhook(receiver.secret).verify(body, {k.lower(): v for k, v in self.headers.items()})
                    ok = True
                except WebhookVerificationError:
                    ok = False
                with receiver.lock:
                    if ok:
                        wid = self.headers["webhook-id"]
                        if wid not in receiver.received:
                            data = json.loads(body)["data"]
                            receiver.versions.setdefault(data["domain"], []).append(data["version"])
                        receiver.received[wid] = receiver.received.get(wid, 0) + 1
                    else:
                        receiver.bad_signatures += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.handler = Handler

    def start(self):
        self.server = QuietServer(("127.0.0.1", self.port), self.handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, timeout=120)


def database_url(server_url, name):
    """The URL of database `name` on the server of `server_url`."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(server_url)._replace(path="/" + name))


class Service:
    def __init__(self, binary, data_dir, port, log_path, extra=()):
        self.binary, self.data_dir, self.port, self.log_path = binary, data_dir, port, log_path
        self.extra = list(extra)
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        offset = log.tell()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port), "--data-dir", self.data_dir, "--api-token", TOKEN,
             "--retry-initial", "100ms", "--retry-max", "2s", "--delivery-timeout", "5s", *self.extra],
            stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if re.search(rb"listening on", f.read()):
                    return
            if self.proc.poll() is not None:
                sys.exit(f"provisiond exited at start; see {self.log_path}")
            time.sleep(0.02)
        sys.exit("provisiond did not start")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def sigterm(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        if code != 0:
            sys.exit(f"SIGTERM stop exited {code}")


def call(port, method, path, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data and r.headers.get("Content-Type", "").startswith("application/") else data)
    finally:
        conn.close()


def main():
    work = tempfile.mkdtemp(prefix="provisiond-chaos.")
    extra = []
    if args.postgres:
        database = f"provisiond_chaos_{os.getpid()}"
        psql(args.postgres, f'CREATE DATABASE "{database}"')
        extra = ["--database", database_url(args.postgres, database), "--claim-lease", args.claim_lease]
    # One data dir, port and log per instance (instance 0 keeps the names of a single-process run).
    services = [Service(args.bin, os.path.join(work, "data" + (f"{k}" if k else "")), free_port(),
                        os.path.join(work, "provisiond" + (f"{k}" if k else "") + ".log"), extra)
                for k in range(args.instances)]
    service = services[0]  # where the set-up and the final checks ask
    healthy = Receiver("healthy")
    flaky = Receiver("flaky", failure_rate=0.3)
    late = Receiver("late")
    healthy.start()
    flaky.start()
    for s in services:
        s.start()
    for r in (healthy, flaky, late):
        status, _ = call(service.port, "POST", "/subscriptions",
                         {"name": r.name, "url": f"http://127.0.0.1:{r.port}/hook", "secret": r.secret})
        assert status == 201, status

    accepted = {}  # domain -> tenant id
    events = {}  # domain -> events accepted (its last version)
    accepted_lock = threading.Lock()
    next_index = [0]
    publish_errors = [0]
    turns = itertools.count()  # request k goes to instance k mod --instances

    def publisher():
        conns = [None] * len(services)
        while True:
            with accepted_lock:
                if next_index[0] >= args.n:
                    return
                i = next_index[0]
                next_index[0] += 1
            domain = f"chaos-{i}.example"
            body = {"domain": domain, "admin": {"username": "admin", "email": "a@example.com"}, "attributes": {"i": i}}
            # A retried change that had committed before the crash answers 200 (or
            # 409 once deleted): it changes nothing again, so each is one event.
            steps = [("POST", "/tenants", body, (200, 202))]
            life = [("PATCH", "{id}", {"plan": "Gold"}, (200, 202)), ("POST", "{id}/deactivate", None, (200, 202)),
                    ("POST", "{id}/activate", None, (200, 202)), ("DELETE", "{id}", None, (202, 409))]
            steps += life[:[0, 1, 3, 4][i % 4]]
            tenant_id = None
            for method, path, payload, ok in steps:
                path = path.replace("{id}", f"/tenants/{tenant_id}")
                for _ in range(2000):  # like a real client: retry the same request until it is acknowledged
                    k = next(turns) % len(services)  # a retry goes to the next instance
                    try:
                        if conns[k] is None:
                            conns[k] = http.client.HTTPConnection("127.0.0.1", services[k].port, timeout=30)
                        conns[k].request(method, path, json.dumps(payload) if payload is not None else None,
                                         {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
                        r = conns[k].getresponse()
                        data = r.read()
                        if r.status in ok:
                            tenant_id = tenant_id or json.loads(data)["id"]
                            break
                        publish_errors[0] += 1
                        if r.getheader("Connection", "").lower() == "close":
                            conns[k].close()
                            conns[k] = None
                    except (OSError, http.client.HTTPException):
                        if conns[k] is not None:
                            conns[k].close()
                        conns[k] = None
                        time.sleep(0.05)
                else:
                    sys.exit(f"could not publish {method} {path} of {domain}")
            with accepted_lock:
                accepted[domain] = tenant_id
                events[domain] = len(steps)

    threads = [threading.Thread(target=publisher, daemon=True) for _ in range(args.concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()

    # Crash points spread over the run; the SIGTERM stop comes at a random one of them;
    # each hits one instance, chosen at random.
    points = sorted(rng.uniform(0.1, 0.9) for _ in range(args.crashes + 1))
    sigterm_at = rng.randrange(len(points))
    crashes = sigterms = 0
    late_up_at = 0.5
    for k, point in enumerate(points):
        while len(accepted) < point * args.n and any(t.is_alive() for t in threads):
            if late.server is None and len(accepted) >= late_up_at * args.n:
                late.start()
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        victim = rng.choice(services)
        if k == sigterm_at:
            victim.sigterm()
            sigterms += 1
        else:
            victim.kill9()
            crashes += 1
        victim.start()
    for t in threads:
        t.join()
    if late.server is None:
        late.start()
    published_s = time.monotonic() - started

    # Drain: every delivery acknowledged (the counts are the topic's, whichever instance answers).
    drain_start = time.monotonic()
    while True:
        status, page = call(service.port, "GET", "/subscriptions")
        backlog = sum(x["counts"]["pending"] for x in page["items"]) if status == 200 else -1
        if backlog == 0:
            break
        if time.monotonic() - drain_start > args.drain_timeout:
            print(f"chaos: backlog {backlog} did not drain in {args.drain_timeout:.0f} s")
            break
        time.sleep(0.2)
    drain_s = time.monotonic() - drain_start

    # Check against the record: the API and what each receiver got.
    tenants = {}  # domain -> ids, live and deleted
    for deleted in ("false", "true"):
        after = None
        while True:
            status, page = call(service.port, "GET", f"/tenants?limit=500&deleted={deleted}" + (f"&after={after}" if after else ""))
            assert status == 200, status
            for t in page["items"]:
                tenants.setdefault(t["domain"], []).append(t["id"])
            after = page["next"]
            if not after:
                break
    lost = sum(1 for d, tid in accepted.items() if tenants.get(d) != [tid])
    twice = sum(1 for ids in tenants.values() if len(ids) > 1)
    # Each environment got every event of every domain, first in the order they were accepted.
    receivers = (healthy, flaky, late)
    delivered = sum(len(set(r.versions.get(d, [])) & set(range(1, k + 1))) for r in receivers for d, k in events.items())
    expected_deliveries = 3 * sum(events.values())
    out_of_order = sum(1 for r in receivers for d, seen in r.versions.items() if seen != sorted(seen))
    duplicates = sum(sum(r.received.values()) - len(r.received) for r in (healthy, flaky, late))
    bad = sum(r.bad_signatures for r in (healthy, flaky, late))
    for s in services:
        s.sigterm()
    ok = (lost == 0 and twice == 0 and bad == 0 and out_of_order == 0 and delivered == expected_deliveries
          and len(accepted) == args.n)
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        if args.postgres:
            psql(args.postgres, f'DROP DATABASE "{database}"')
    else:
        print(f"chaos: kept {work} for inspection" + (f" and database {database}" if args.postgres else ""))
    print(f"chaos: accepted={len(accepted)} events={sum(events.values())} lost={lost} created_twice={twice} "
          f"delivered={delivered}/{expected_deliveries} out_of_order={out_of_order} "
          f"duplicates={duplicates} bad_signatures={bad} crashes={crashes} sigterms={sigterms} "
          f"publish_s={published_s:.1f} drain_s={drain_s:.1f}"
          + (f" store=postgres instances={args.instances}" if args.postgres else ""))
    sys.exit(0 if ok else 1)


main()
