"""Shared fixtures: the real provisiond binary on a free loopback port.

The suite runs on either store. PROVISIOND_TEST_STORE=postgres (with
PROVISIOND_TEST_POSTGRES, an admin URL of a PostgreSQL server) gives every
provisiond it starts `--database` on a fresh database of that server, one
per data dir (a restart on the same data dir finds its topic again), and an
`--api-token` (PostgreSQL has no token file). Tests about the SQLite file,
the data-dir lock or the token file are marked `sqlite_only` and skipped
there."""
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

BIN = os.environ.get("PROVISIOND_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/provisiond"))

# ---------------------------------------------------------------------------
# The store under test.

STORE = os.environ.get("PROVISIOND_TEST_STORE", "sqlite")
POSTGRES_ADMIN = os.environ.get("PROVISIOND_TEST_POSTGRES")  # postgres://postgres@127.0.0.1:PORT/postgres
ON_POSTGRES = STORE == "postgres"
# A lease far shorter than the 30 s default, so that a test that kills a
# process and restarts it sees the dead one's claims taken over within its
# usual bounded waits. A live instance keeps its claims however long an
# attempt takes, so no test that does not kill gets a second attempt from it.
CLAIM_LEASE = os.environ.get("PROVISIOND_TEST_CLAIM_LEASE", "5s")


def pytest_configure(config):
    if STORE not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"PROVISIOND_TEST_STORE={STORE!r}: sqlite or postgres")
    if ON_POSTGRES and not POSTGRES_ADMIN:
        raise pytest.UsageError("PROVISIOND_TEST_STORE=postgres needs PROVISIOND_TEST_POSTGRES, "
                                "an admin URL such as postgres://postgres@127.0.0.1:5432/postgres")
    if POSTGRES_ADMIN and not shutil.which("psql"):
        raise pytest.UsageError("PROVISIOND_TEST_POSTGRES is set but psql (Debian postgresql-client) is missing")


def pytest_sessionfinish(session, exitstatus):
    if DATABASES:
        DATABASES.drop_all()


def sqlite_only(why):
    """Marks a test about the SQLite store itself (its file, the data-dir
    lock, the generated token file): skipped when the suite runs on PostgreSQL."""
    return pytest.mark.skipif(ON_POSTGRES, reason=f"about the SQLite store: {why}")


def psql(url, sql, timeout=60):
    """Runs one SQL command with psql; returns its unaligned, tuples-only output."""
    p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {p.stderr.strip()}")
    return p.stdout


def database_url(server_url, name):
    """The URL of database `name` on the server of `server_url` (same user, host, port, options)."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(server_url)._replace(path="/" + name))


class Databases:
    """Fresh databases on one PostgreSQL server, made through its admin URL
    and dropped once no running provisiond of the suite uses them."""

    def __init__(self, admin_url):
        self.admin_url = admin_url
        self.made = {}  # name -> URL
        self.by_data_dir = {}  # real path of a data dir -> URL
        self._numbers = itertools.count(1)

    def create(self):
        """A new empty database; its URL."""
        number = next(self._numbers)
        if number == 1:
            self.sweep()
        name = f"provisiond_e2e_{os.getpid()}_{number}"
        psql(self.admin_url, f'CREATE DATABASE "{name}"')
        self.made[name] = database_url(self.admin_url, name)
        return self.made[name]

    def for_data_dir(self, data_dir):
        """The database of a data dir: made at its first use, the same on every restart."""
        key = os.path.realpath(data_dir)
        if key not in self.by_data_dir:
            self.by_data_dir[key] = self.create()
        return self.by_data_dir[key]

    def sweep(self):
        """Drops what an interrupted run left: databases of test processes that are gone."""
        for name in psql(self.admin_url, "SELECT datname FROM pg_database WHERE datname LIKE 'provisiond\\_e2e\\_%'").split():
            pid = int(name.split("_")[2])
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                psql(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self, name):
        psql(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        url = self.made.pop(name)
        self.by_data_dir = {k: v for k, v in self.by_data_dir.items() if v != url}

    def drop_unused(self):
        """Drops every database that no running provisiond was started with."""
        in_use = set()
        for p in _started:
            if p.proc is not None and p.proc.poll() is None:
                in_use |= set(p.args) | set(p.env.values())
        _started[:] = [p for p in _started if p.proc is not None and p.proc.poll() is None]
        for name, url in list(self.made.items()):
            if url not in in_use:
                self.drop(name)

    def drop_all(self):
        for name in list(self.made):
            self.drop(name)


DATABASES = Databases(POSTGRES_ADMIN) if POSTGRES_ADMIN else None
_started = []  # every Provisiond started, to know which databases are still in use


@pytest.fixture(autouse=True)
def _drop_databases_after_each_test():
    """Autouse, so set up before the test's other fixtures and torn down after
    them: the databases its processes used are dropped once they stopped."""
    yield
    if DATABASES:
        DATABASES.drop_unused()


def store_args(data_dir, args, env):
    """What a provisiond needs on the store under test, unless the test chose its database itself."""
    if not ON_POSTGRES or "--database" in args or "PROVISIOND_DATABASE" in env:
        return []
    extra = ["--database", DATABASES.for_data_dir(data_dir)]
    if "--api-token" not in args and "PROVISIOND_API_TOKEN" not in env:
        extra += ["--api-token", TOKEN]
    if "--claim-lease" not in args and "PROVISIOND_CLAIM_LEASE" not in env:
        extra += ["--claim-lease", CLAIM_LEASE]
    return extra


class Provisiond:
    """A running provisiond process with its own data dir."""

    def __init__(self, data_dir, *args, env=None, max_fds=None):
        self.data_dir = data_dir
        self.env = env or {}
        self.args = list(args) + store_args(data_dir, args, self.env)
        self.max_fds = max_fds  # ulimit -n for the process
        self.proc = None
        self.port = None
        self.log_path = os.path.normpath(data_dir) + ".log"

    def start(self, timeout=30):
        return self.launch().wait_listening(timeout)

    def launch(self):
        """Starts the process without waiting for it to listen (several at once: launch each, then wait)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
        env.update(self.env)
        self.log = open(self.log_path, "ab")
        self._start_offset = self.log.tell()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", "0", "--data-dir", self.data_dir, *self.args],
            stdout=self.log, stderr=self.log, env=env, preexec_fn=self._limits)
        _started.append(self)
        return self

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(self._start_offset)
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
