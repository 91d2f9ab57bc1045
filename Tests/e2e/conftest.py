"""Shared fixtures: the real provisiond binary on a free loopback port."""
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest
import requests

BIN = os.environ.get("PROVISIOND_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/provisiond"))


class Provisiond:
    """A running provisiond process with its own data dir."""

    def __init__(self, data_dir, *args, env=None, max_fds=None):
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env or {}
        self.max_fds = max_fds  # ulimit -n for the process
        self.proc = None
        self.port = None
        self.log_path = os.path.normpath(data_dir) + ".log"

    def start(self, timeout=30):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
        env.update(self.env)
        self.log = open(self.log_path, "ab")
        start_offset = self.log.tell()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", "0", "--data-dir", self.data_dir, *self.args],
            stdout=self.log, stderr=self.log, env=env, preexec_fn=self._limits)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                m = re.search(rb"listening on http://[^\s\"]+:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("provisiond exited: " + self.output())
            time.sleep(0.05)
        raise RuntimeError("provisiond did not start: " + self.output())

    def _limits(self):
        if self.max_fds:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_fds, self.max_fds))

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self):
        for i, a in enumerate(self.args):
            if a == "--api-token":
                return self.args[i + 1]
        with open(os.path.join(self.data_dir, "api-token")) as f:
            return f.read().strip()

    def api(self):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        return self.stop(signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture
def service(data_dir):
    s = Provisiond(data_dir).start()
    yield s
    s.stop()


# ---------------------------------------------------------------------------
# Helpers for the API tests.

TOKEN = "e2e-test-token"
# Nothing listens on these low ports on 127.0.0.1 (refused): deliveries stay pending.
DEAD_URLS = ["http://127.0.0.1:9/x", "http://127.0.0.1:1/y", "http://127.0.0.1:7/z"]


@pytest.fixture
def api_service(data_dir):
    """A provisiond with a known token, fresh per test."""
    s = Provisiond(data_dir, "--api-token", TOKEN).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory):
    """One provisiond for a whole module of tests that only compare before/after."""
    s = Provisiond(str(tmp_path_factory.mktemp("shared") / "data"), "--api-token", TOKEN).start()
    yield s
    s.stop()


def wait_until(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Bounded poll: returns the first truthy value of predicate(), fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(interval)


def assert_problem(response, status, field=None):
    """An RFC 9457 problem document with the given status whose detail names `field` (a dotted path)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("Content-Type", "").startswith("application/problem+json"), response.headers
    doc = response.json()
    assert isinstance(doc.get("title"), str) and doc["title"], doc
    assert doc.get("status") == status, doc
    assert isinstance(doc.get("detail"), str) and doc["detail"], doc
    if field is not None:
        pattern = r"(?<![\w.])" + re.escape(field) + r"(?![\w])"
        assert re.search(pattern, doc["detail"]), f"detail does not name {field!r}: {doc['detail']!r}"
    return doc


def tenant_body(domain, **overrides):
    body = {
        "domain": domain,
        "admin": {"username": "admin", "email": f"admin@{domain}", "firstName": "Ada", "lastName": "Lovelace"},
        "plan": "Demo",
        "attributes": {"region": "eu", "seats": 5, "tags": ["a", "b"], "nested": {"x": 1, "y": True}},
    }
    body.update(overrides)
    return body


def all_tenants(session, base_url, **params):
    """Every tenant, following `next` cursors."""
    items, after = [], None
    for _ in range(10000):
        query = dict(params, limit=500)
        if after:
            query["after"] = after
        r = session.get(base_url + "/tenants", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        after = page["next"]
        if after is None:
            return items
    raise AssertionError("pagination did not end")


def _recv_until(sock, data, done):
    """Reads onto `data` until done(data), the peer closes, or it resets."""
    while not done(data):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def raw_exchange(port, data, read_timeout=10.0):
    """Sends raw bytes on a fresh connection (tolerating a server that closes
    early) and returns (status, headers dict with lowercase names, body bytes)
    of the first response."""
    import socket
    sock = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = _recv_until(sock, b"", lambda data: b"\r\n\r\n" in data)
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        rest = _recv_until(sock, rest, lambda data: len(data) >= length)
        return status, headers, rest[:length]
    finally:
        sock.close()


# What the dispatcher changes on its own in a subscription object (its health).
SUBSCRIPTION_HEALTH = {"state", "oldestPendingAt", "lastAttemptAt", "lastSuccessAt", "lastStatus", "lastError"}


def stable_view(service):
    """What a rejected request must leave alone, without what the dispatcher
    changes on its own (attempts, times, states, health): the tenants with
    their data and which subscriptions they have deliveries for, and the
    subscriptions with their settings, secrets and number of deliveries."""
    import json
    s = service.api()
    tenants = [
        {k: v for k, v in t.items() if k not in ("deliveries", "status")}
        | {"deliveries": sorted(d["subscriptionId"] for d in t["deliveries"])}
        for t in all_tenants(s, service.url)
    ]
    r = s.get(service.url + "/subscriptions")
    assert r.status_code == 200, r.text
    subs = []
    for x in r.json()["items"]:
        secret = s.get(service.url + f"/subscriptions/{x['id']}/secret").json()
        subs.append({k: v for k, v in x.items() if k != "counts" and k not in SUBSCRIPTION_HEALTH}
                    | {"total": sum(x["counts"].values()), "secret": secret})
    return json.dumps([tenants, subs], sort_keys=True)


def assert_rejected_unchanged(service, send, status, field=None):
    """`send()` is answered with problem `status` (naming `field`) and leaves
    everything a rejected request must leave alone as it was."""
    before = stable_view(service)
    assert_problem(send(), status, field)
    assert stable_view(service) == before
