"""Real webhook receivers for the delivery tests, and a small harness around
the provisiond binary.

A Receiver is a ThreadingHTTPServer (HTTP/1.1, keep-alive) on 127.0.0.1
whose answers are scripted per test: a queue of Replies (status, headers,
delay) used one per request, then a default Reply. It records every request
(method, path, headers, raw body, arrival and completion) and counts
concurrent requests. Every record carries numbers from one global sequence
shared by all receivers, so tests can assert the order of events across
receivers without measuring time.

A receiver can be created "down": its port is reserved (nothing listens, so
connections are refused) and start() later listens on that very port.
"""
import io
import itertools
import json
import os
import random
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from conftest import TOKEN, Provisiond, tenant_body, wait_until

# Short retry settings keep every test quick: backoff 50 ms .. 1 s. An attempt may take 5 s, so that
# a loaded machine does not turn a 2xx into a timeout (tests about timeouts set their own).
FAST = ["--retry-initial", "100ms", "--retry-max", "1s", "--delivery-timeout", "5s"]

_sequence = itertools.count(1)
_sequence_lock = threading.Lock()


def next_event():
    """The next number of the global event order (all receivers share it)."""
    with _sequence_lock:
        return next(_sequence)


def reserve_port():
    """A free loopback port below the ephemeral range, so that no outgoing
    connection (which would take an ephemeral port) can sit on it or
    self-connect to it while nothing listens there."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randint(min(10000, low - 1000), low - 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


class Reply:
    """One scripted answer. `headers` values may be callables, evaluated when
    the answer is sent (for an HTTP date relative to that moment). `delay`
    seconds pass after the request is read and before the answer is sent.
    `reset`: no answer at all, the connection is reset (RST) instead."""

    def __init__(self, status=204, headers=None, body=b"", delay=0.0, reset=False):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body
        self.delay = delay
        self.reset = reset

    def __repr__(self):
        return f"Reply({self.status}, delay={self.delay})"


class Recorded:
    """One request as the receiver saw it."""

    def __init__(self, method, path, headers, body, seq, start, wall):
        self.method = method
        self.path = path
        self.headers = headers  # dict, lowercase names
        self.body = body  # raw bytes, exactly as received
        self.seq = seq  # global event number at arrival
        self.start = start  # time.monotonic() at arrival
        self.wall = wall  # time.time() at arrival
        # Set just before the answer is written (so before the client can have it):
        self.end = None  # time.monotonic()
        self.done_wall = None  # time.time()
        self.done_seq = None  # global event number
        self.status = None  # the status answered (None: reset, or none yet)
        self.error = None  # why no answer went out

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Recorded(#{self.seq} {self.method} {self.path} id={self.webhook_id} status={self.status})"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.server.receiver._connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.receiver._connections.discard(self.connection)

    def do_POST(self):
        self.server.receiver._handle(self)

    do_PUT = do_GET = do_DELETE = do_PATCH = do_POST

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hanging handler must not hold up stop()
    request_queue_size = 128  # --max-in-flight connections arrive at once
    allow_reuse_address = True


class Receiver:
    """A scripted webhook receiver on 127.0.0.1."""

    def __init__(self, name, default=None, port=0):
        self.name = name
        self.default = default or Reply(204)
        self.port = port
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script = []
        self._routes = {}
        # decide(body) -> Reply or None: an answer chosen by what was sent (None: the usual one).
        self.decide = None
        self._lock = threading.Lock()
        self._connections = set()
        self._stopping = threading.Event()  # set: hanging answers stop waiting
        self._server = None
        self._thread = None

    # -- life cycle ---------------------------------------------------------

    def reserve(self):
        """Picks a port and leaves it without a listener: connections are refused until start()."""
        self.port = reserve_port()
        return self

    def start(self):
        assert self._server is None, "already listening"
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"receiver-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops listening, releases hanging handlers and drops open connections."""
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        """Ends the wait of every answer hanging now (later ones hang as scripted)."""
        with self._lock:
            event, self._stopping = self._stopping, threading.Event()
        event.set()

    @property
    def listening(self):
        return self._server is not None

    @property
    def url(self):
        assert self.port, "start() or reserve() first"
        return f"http://127.0.0.1:{self.port}/hooks/{self.name}"

    def url_for(self, path):
        """Another URL on the same server (host and port), e.g. for a second subscription."""
        assert self.port, "start() or reserve() first"
        return f"http://127.0.0.1:{self.port}{path}"

    # -- behaviour ----------------------------------------------------------

    def script(self, *replies, default=None):
        """The next requests get `replies` in order, then `default` (if given, else the current default)."""
        with self._lock:
            self._script = list(replies)
            if default is not None:
                self.default = default

    def route(self, path, reply):
        """Requests to exactly `path` get `reply` (before any script); None removes the route."""
        with self._lock:
            if reply is None:
                self._routes.pop(path, None)
            else:
                self._routes[path] = reply

    def answer(self, reply):
        """From now on every request gets `reply` (drops what is left of a script)."""
        with self._lock:
            self._script = []
            self.default = reply

    def _handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            record = Recorded(handler.command, handler.path, headers, body, next_event(), time.monotonic(), time.time())
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            decided = self.decide(body) if self.decide else None
            if decided is not None:
                reply = decided
            elif handler.path in self._routes:
                reply = self._routes[handler.path]
            else:
                reply = self._script.pop(0) if self._script else self.default
            stopping = self._stopping
        try:
            if reply.delay:
                stopping.wait(reply.delay)
            # Done before a byte of the answer leaves: the client cannot have seen it earlier, so
            # "started after another's end" really means "sent after that answer came back".
            self._done(record, None if reply.reset else reply.status)
            if reply.reset:
                # Linger 0 and a close now (before the server's own shutdown sends FIN): the client gets RST.
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.close_connection = True
                handler.rfile.close()
                handler.wfile.close()
                handler.wfile = io.BytesIO()  # the server still flushes it after this handler
                handler.connection.close()
                record.error = "reset by the receiver"
                return
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value() if callable(value) else value)
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
            handler.wfile.flush()
        except OSError as e:  # the client went away (timed out, killed)
            record.error = repr(e)
            handler.close_connection = True
        finally:
            if record.end is None:
                self._done(record, None)

    def _done(self, record, status):
        with self._lock:
            self.in_flight -= 1
            record.status = status
            record.end = time.monotonic()
            record.done_wall = time.time()
            record.done_seq = next_event()

    # -- what was received --------------------------------------------------

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def count(self):
        with self._lock:
            return len(self.requests)

    def ids(self):
        """Distinct webhook ids received (a receiver deduplicates by them)."""
        return {r.webhook_id for r in self.snapshot()}

    def wait_for_requests(self, n, timeout=30.0):
        wait_until(lambda: self.count() >= n, timeout=timeout, what=f"{n} requests at receiver {self.name} (got {self.count()})")
        return self.snapshot()

    def wait_in_flight(self, n, timeout=30.0):
        """Waits until `n` requests are being answered at once."""
        try:
            wait_until(lambda: self.in_flight >= n, timeout=timeout, what=f"{n} requests at once at receiver {self.name}")
        except AssertionError as e:
            raise AssertionError(f"{e}; in flight now: {self.in_flight}, received: {self.count()}") from None

    def wait_for_ids(self, n, timeout=30.0):
        wait_until(lambda: len(self.ids()) >= n, timeout=timeout,
                   what=f"{n} distinct webhook ids at receiver {self.name} (got {len(self.ids())})")
        return self.ids()


def verify(record, secret):
    """Verifies one recorded request with the standardwebhooks library; returns the parsed body."""
    return Webhook(secret).verify(record.body, record.headers)


class Harness:
    """A provisiond (known token, fast retries unless told otherwise) and the
    API calls the delivery tests make."""

    def __init__(self, data_dir, *args):
        self.data_dir = data_dir
        self.args = ["--api-token", TOKEN, *args]
        self.svc = None
        self.session = None

    def start(self):
        self.svc = Provisiond(self.data_dir, *self.args).start()
        self.session = self.svc.api()
        return self

    def kill9(self):
        return self.svc.kill9()

    def stop(self):
        if self.svc:
            return self.svc.stop()

    @property
    def url(self):
        return self.svc.url

    def _ok(self, response, status):
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def subscribe(self, name, url, **extra):
        """Creates a subscription; the returned object carries its `secret`."""
        body = {"name": name, "url": url, **extra}
        return self._ok(self.session.post(self.url + "/subscriptions", json=body), 201)

    def secret(self, sub_id):
        return self._ok(self.session.get(f"{self.url}/subscriptions/{sub_id}/secret"), 200)["secret"]

    def subscription(self, sub_id):
        return self._ok(self.session.get(f"{self.url}/subscriptions/{sub_id}"), 200)

    def patch(self, sub_id, **fields):
        return self._ok(self.session.patch(f"{self.url}/subscriptions/{sub_id}", json=fields), 200)

    def delete(self, sub_id):
        r = self.session.delete(f"{self.url}/subscriptions/{sub_id}")
        assert r.status_code == 204, (r.status_code, r.text)

    def retry(self, sub_id):
        return self._ok(self.session.post(f"{self.url}/subscriptions/{sub_id}/retry"), 202)

    def deliveries(self, sub_id, state=None):
        """Every delivery item of the subscription, following `next`."""
        items, after = [], None
        while True:
            params = {"limit": 500}
            if state:
                params["state"] = state
            if after:
                params["after"] = after
            page = self._ok(self.session.get(f"{self.url}/subscriptions/{sub_id}/deliveries", params=params), 200)
            items += page["items"]
            after = page["next"]
            if after is None:
                return items

    def create_tenant(self, domain, **overrides):
        r = self.session.post(self.url + "/tenants", json=tenant_body(domain, **overrides))
        return self._ok(r, 202)

    def create_tenants(self, prefix, n, workers=8):
        """n tenants <prefix>-<i>.example.com, posted by a few threads (each with its own session)."""
        local = threading.local()

        def post(i):
            if not hasattr(local, "session"):
                local.session = self.svc.api()
            r = local.session.post(self.url + "/tenants", json=tenant_body(f"{prefix}-{i}.example.com"))
            assert r.status_code == 202, (r.status_code, r.text)
            return r.json()

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(post, range(n)))

    def tenant(self, tenant_id):
        return self._ok(self.session.get(f"{self.url}/tenants/{tenant_id}"), 200)

    def delivery_of(self, tenant_id, sub_id):
        """The tenant's delivery to one subscription (None if it has none)."""
        for d in self.tenant(tenant_id)["deliveries"]:
            if d["subscriptionId"] == sub_id:
                return d
        return None

    def wait_delivery(self, tenant_id, sub_id, predicate, timeout=30.0, what="delivery state"):
        """Polls the tenant until its delivery to `sub_id` satisfies `predicate`; returns that delivery."""
        box = {}

        def check():
            d = self.delivery_of(tenant_id, sub_id)
            box["last"] = d
            return d if d is not None and predicate(d) else None

        try:
            return wait_until(check, timeout=timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last delivery: {box.get('last')!r}") from None

    def wait_counts(self, sub_id, timeout=30.0, **expected):
        """Polls the subscription until its counts include `expected` (e.g. delivered=10)."""
        box = {}

        def check():
            counts = self.subscription(sub_id)["counts"]
            box["last"] = counts
            return all(counts[k] == v for k, v in expected.items())

        try:
            wait_until(check, timeout=timeout, what=f"counts {expected}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last counts: {box.get('last')!r}") from None
        return box["last"]

    def assert_scheduled(self, sub_id):
        """Pending deliveries say when they are next tried: each of them while
        the subscription is up, only its one next probe while it is down."""
        for _ in range(50):  # a reading between two state changes is read again
            state = self.subscription(sub_id)["state"]
            pending = [d for d in self.deliveries(sub_id, state="pending") if d["blockedBy"] is None]
            if self.subscription(sub_id)["state"] == state:
                break
        scheduled = [d for d in pending if d["nextAttemptAt"] is not None]
        if state == "down":
            assert len(scheduled) == 1, (state, pending)
        else:
            assert len(scheduled) == len(pending), (state, pending)
        return state

    def metrics(self):
        r = self.session.get(self.url + "/metrics")
        assert r.status_code == 200, r.text
        return r.text


@pytest.fixture
def receivers():
    """Factory of receivers, all stopped after the test: receivers(name, default=Reply(...), down=False)."""
    made = []

    def make(name, default=None, down=False):
        rx = Receiver(name, default=default)
        rx.reserve() if down else rx.start()
        made.append(rx)
        return rx

    yield make
    for rx in made:
        rx.stop()


@pytest.fixture
def provisiond(tmp_path):
    """Factory of running provisiond harnesses: provisiond(*extra_args, data_dir=None); all stopped after the test."""
    made = []

    def make(*args, data_dir=None):
        h = Harness(data_dir or str(tmp_path / f"data{len(made)}"), *args).start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
