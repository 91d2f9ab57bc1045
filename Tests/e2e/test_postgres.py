"""Several provisiond processes on one PostgreSQL database share one topic
(CONTRACT.md, "Several instances on PostgreSQL"): any of them accepts any
request, and together they keep every rule one instance keeps. Real
binaries, real receivers on 127.0.0.1, signatures checked with the
standardwebhooks library; every wait is a bounded poll, and a bound that
stands for "sooner than the slow path" says so where it is used.

Needs PROVISIOND_TEST_POSTGRES, the admin URL of a PostgreSQL server with
trust authentication on 127.0.0.1 (make test-e2e starts one); each test gets
databases of its own. The restart test runs a private server of its own (it
restarts it), from the server binaries that the Debian package installs."""
import collections
import email.utils
import glob
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (DATABASES, POSTGRES_ADMIN, TOKEN, Provisiond, all_tenants, assert_problem, database_url, psql,
                      tenant_body, wait_until)
from receivers import Reply, next_event, provisiond, receivers, reserve_port, verify  # noqa: F401 (fixtures)
from test_binary import run_bad
from test_delivery_recovery import overlap

pytestmark = pytest.mark.skipif(
    not POSTGRES_ADMIN, reason="needs PROVISIOND_TEST_POSTGRES, the admin URL of a PostgreSQL server (make test-e2e sets it)")

LIFE = ["tenant.created", "tenant.updated", "tenant.deactivated", "tenant.activated"]
# Fast retries. --claim-lease 30s (the default) where no instance dies: a
# live instance's claims are never taken over however long its attempts take.
RETRIES = ["--retry-initial", "100ms", "--retry-max", "1s"]
LONG_LEASE = ["--claim-lease", "30s"]


@pytest.fixture
def database():
    """The URL of a fresh database on the test server (dropped after the test)."""
    return DATABASES.create()


def retry_after(value):
    """Whether a Retry-After value is one: seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return False
    if value.isdigit():
        return True
    try:
        return email.utils.parsedate_to_datetime(value) is not None
    except (TypeError, ValueError):
        return False


def readyz(hub):
    try:
        return requests.get(hub.url + "/readyz", timeout=10).status_code
    except requests.RequestException:
        return None


def metric(hub, sample):
    """The value of one sample line of /metrics (0 if absent)."""
    for line in hub.metrics().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def event_ids(hub, tenant_id):
    """{event id: (type, version)} of a tenant's events, read on `hub`."""
    r = hub.session.get(f"{hub.url}/tenants/{tenant_id}/events")
    assert r.status_code == 200, r.text
    return {e["id"]: (e["type"], e["version"]) for e in r.json()["items"]}


def assert_order_kept(rx):
    """Order per domain at one receiver: every attempt at version v+1 of a
    domain started after an answer 2xx to version v had gone out, so the
    versions acknowledged, in arrival order, never go down."""
    by_domain = collections.defaultdict(list)
    for r in rx.snapshot():
        data = r.json()["data"]
        by_domain[data["domain"]].append((r, data["version"]))
    for domain, items in by_domain.items():
        acknowledged = [v for r, v in sorted(items, key=lambda x: x[0].seq) if r.status and 200 <= r.status < 300]
        assert acknowledged == sorted(acknowledged), (rx.name, domain, acknowledged)
        for r, v in items:
            if v > 1:
                assert any(w == v - 1 and a.status and 200 <= a.status < 300 and a.done_seq < r.seq for a, w in items), \
                    (rx.name, domain, f"version {v} sent before version {v - 1} was acknowledged", items)


class Spread:
    """Sends each request to the instance it is told to, with one session per
    thread and instance; counts the tenants created on each instance."""

    def __init__(self, hubs):
        self.hubs = hubs
        self.created = collections.Counter()  # instance index -> 202s to POST /tenants
        self._local = threading.local()
        self._lock = threading.Lock()

    def call(self, index, method, path, status, body=None):
        index %= len(self.hubs)
        sessions = self._local.__dict__.setdefault("sessions", {})
        if index not in sessions:
            sessions[index] = self.hubs[index].svc.api()
        r = sessions[index].request(method, self.hubs[index].url + path, json=body, timeout=60)
        assert r.status_code == status, (index, method, path, r.status_code, r.text)
        if method == "POST" and path == "/tenants":
            with self._lock:
                self.created[index] += 1
        return r.json()

    def live_through(self, j, domain):
        """Creates `domain` and changes it three times, the k-th request of
        domain j going to instance j+k: every instance gets creations, and
        each event of a domain is accepted by another instance than the one
        before it. Returns the tenant id."""
        t = self.call(j, "POST", "/tenants", 202, tenant_body(domain))
        self.call(j + 1, "PATCH", f"/tenants/{t['id']}", 202, {"plan": "Gold"})
        self.call(j + 2, "POST", f"/tenants/{t['id']}/deactivate", 202)
        self.call(j + 3, "POST", f"/tenants/{t['id']}/activate", 202)
        return t["id"]


# ---------------------------------------------------------------------------
# Two and three instances, no balancer.

@pytest.mark.parametrize("n", [2, 3])
def test_instances_share_one_topic_in_order_within_the_in_flight_limit(n, database, provisiond, receivers):
    domains = 10 * n
    hubs = [provisiond("--database", database, *RETRIES, *LONG_LEASE, "--delivery-timeout", "60s",
                       "--max-in-flight", "3") for _ in range(n)]
    held = receivers("held", Reply(204, delay=60))  # answers only when released
    plain = receivers("plain")
    # Made on different instances; every instance sees both at once.
    subs = {"held": hubs[0].subscribe("held", held.url), "plain": hubs[-1].subscribe("plain", plain.url)}
    for hub in hubs:
        assert {x["name"] for x in hub.session.get(hub.url + "/subscriptions").json()["items"]} == set(subs)

    spread = Spread(hubs)
    with ThreadPoolExecutor(6) as pool:
        tenant_ids = list(pool.map(lambda j: spread.live_through(j, f"shared{j}.example.com"), range(domains)))
    # Publishes spread over all: each instance accepted its share, as its own counter says.
    assert sorted(spread.created.values()) == [domains // n] * n, spread.created
    for i, hub in enumerate(hubs):
        assert metric(hub, 'provisiond_http_requests_total{method="POST",route="/tenants",status="202"}') == \
            spread.created[i], i

    # --max-in-flight 3 per subscription, whichever instances send: 3 hang, and no 4th comes meanwhile.
    held.wait_in_flight(3)
    assert held.count() == 3, held.snapshot()
    held.answer(Reply(204, delay=0.02))  # from now on each request takes a little while
    held.release()

    expected = {}  # event id -> (type, version), read on the last instance
    for tenant_id in tenant_ids:
        expected |= event_ids(hubs[-1], tenant_id)
    assert len(expected) == 4 * domains and {t for t, _ in expected.values()} == set(LIFE)
    for name, sub in subs.items():
        counts = hubs[(1 + list(subs).index(name)) % n].wait_counts(sub["id"], timeout=120.0, delivered=4 * domains)
        assert counts == {"pending": 0, "delivered": 4 * domains, "failed": 0}, (name, counts)
    for tenant_id in tenant_ids:
        assert hubs[0].tenant(tenant_id)["status"] == "provisioned"

    for rx in (held, plain):
        records = rx.snapshot()
        # Every event, each exactly once (nothing failed, so nothing was sent twice), every one acknowledged.
        assert collections.Counter(r.webhook_id for r in records) == collections.Counter(set(expected)), rx.name
        assert all(r.status == 204 for r in records), [r for r in records if r.status != 204]
        for r in records:
            body = verify(r, subs[rx.name]["secret"])
            assert (body["type"], body["data"]["version"]) == expected[r.webhook_id], (r, body)
        assert_order_kept(rx)
    # The limit was reached and never exceeded, across instances.
    assert held.max_in_flight == 3, held.max_in_flight
    assert plain.max_in_flight <= 3, plain.max_in_flight


@pytest.mark.parametrize("n", [2, 3])
def test_a_down_receiver_gets_one_probe_at_a_time_across_instances(n, database, provisiond, receivers):
    max_in_flight, backlog = 3, 60
    hubs = [provisiond("--database", database, *RETRIES, *LONG_LEASE, "--delivery-timeout", "5s",
                       "--max-in-flight", str(max_in_flight)) for _ in range(n)]
    dead = receivers("dead", Reply(500, delay=0.05))  # accepts, then fails every request
    sub = hubs[0].subscribe("dead", dead.url)
    spread = Spread(hubs)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: spread.call(i, "POST", "/tenants", 202, tenant_body(f"probe{i}.example.com")),
                      range(backlog)))

    wait_until(lambda: hubs[-1].subscription(sub["id"])["state"] == "down", what="down, as every instance sees it")
    # At most --max-in-flight attempts can have started before the 5th failure counted; then probes.
    first = max_in_flight + 5
    dead.wait_for_requests(first + 4, timeout=60.0)
    records = sorted((r for r in dead.snapshot() if r.end is not None), key=lambda r: r.start)
    assert all(r.status == 500 for r in records), records
    assert dead.max_in_flight <= max_in_flight, dead.max_in_flight
    later = records[first:]
    assert overlap(later) <= 1, [(round(r.start, 3), round(r.end, 3)) for r in later]
    # Spaced by the backoff (at least half of --retry-initial): a lower bound, which a slow run cannot break.
    gaps = [b.start - a.end for a, b in zip(later, later[1:])]
    assert gaps and min(gaps) >= 0.05, [round(g, 3) for g in gaps]
    assert dead.count() < backlog, dead.count()

    # One success, and the backlog flows again, still within the limit across instances.
    dead.answer(Reply(204, delay=0.02))
    counts = hubs[1].wait_counts(sub["id"], timeout=120.0, delivered=backlog)
    assert counts == {"pending": 0, "delivered": backlog, "failed": 0}, counts
    assert dead.max_in_flight <= max_in_flight, dead.max_in_flight
    assert len(dead.ids()) == backlog
    for r in dead.snapshot():
        verify(r, sub["secret"])


def test_a_publish_on_one_instance_is_delivered_by_another_while_it_cannot_send(database, provisiond, receivers):
    """Instance A can send one attempt at a time (--max-outgoing 1) and its
    one is hanging; whatever it accepts meanwhile is delivered by B, which
    learns of it from the database. B must not wait for a lease: A claims
    nothing it has no room to send, and 20 s is below the 30 s lease. (That B
    hears of it through NOTIFY rather than from a periodic look at the
    database is a matter of latency, which this suite does not measure.)"""
    args = [*RETRIES, *LONG_LEASE, "--delivery-timeout", "60s"]
    a = provisiond("--database", database, "--max-outgoing", "1", *args)
    blocker = receivers("blocker", Reply(204, delay=60))  # answers only when released
    a.subscribe("blocker", blocker.url, events=["tenant.deleted"])
    t0 = a.create_tenant("blocker.example.com")
    assert a.session.delete(f"{a.url}/tenants/{t0['id']}").status_code == 202
    blocker.wait_in_flight(1)  # sent by A, the only instance yet: its one slot is taken

    b = provisiond("--database", database, *args)
    target = receivers("target")
    sub = a.subscribe("target", target.url)
    tenants = [a.create_tenant(f"woken{i}.example.com") for i in range(5)]
    counts = b.wait_counts(sub["id"], timeout=20.0, delivered=5)
    assert counts == {"pending": 0, "delivered": 5, "failed": 0}, counts
    # A's slot stayed taken all along, so B sent them; and nobody sent the hanging one again.
    (hanging,) = blocker.snapshot()
    assert hanging.done_seq is None, hanging
    expected = set()
    for t in tenants:
        expected |= set(event_ids(a, t["id"]))
    assert target.ids() == expected
    for r in target.snapshot():
        assert verify(r, sub["secret"])["type"] == "tenant.created"


# ---------------------------------------------------------------------------
# An instance dies.

def test_kill9_of_one_instance_mid_delivery_another_takes_over_after_the_lease(database, provisiond, receivers):
    args = [*RETRIES, "--delivery-timeout", "30s", "--max-in-flight", "3", "--claim-lease", "2s"]
    a = provisiond("--database", database, *args)
    slow = receivers("slow", Reply(204, delay=60))  # answers only when released
    ok = receivers("ok")
    slow_sub, ok_sub = a.subscribe("slow", slow.url), a.subscribe("ok", ok.url)
    tenants = a.create_tenants("takeover", 10)
    slow.wait_in_flight(3)  # claimed and sent by A, the only instance yet
    a.wait_counts(ok_sub["id"], delivered=10)

    b = provisiond("--database", database, *args)
    assert b.subscription(slow_sub["id"])["counts"] == {"pending": 10, "delivered": 0, "failed": 0}
    assert slow.count() == 3, slow.snapshot()  # B respects A's claims while A lives
    hung = {r.webhook_id for r in slow.snapshot()}
    a.kill9()
    killed = next_event()
    slow.answer(Reply(204))
    slow.release()  # the hanging answers go to a dead process

    # B takes A's claims over once their lease ran out, and delivers the rest.
    counts = b.wait_counts(slow_sub["id"], timeout=60.0, delivered=10)
    assert counts == {"pending": 0, "delivered": 10, "failed": 0}, counts
    assert b.subscription(ok_sub["id"])["counts"] == {"pending": 0, "delivered": 10, "failed": 0}
    for t in tenants:
        assert b.tenant(t["id"])["status"] == "provisioned"
    expected = set()
    for t in tenants:
        expected |= set(event_ids(b, t["id"]))
    # Nothing lost: every event acknowledged at least once after A died (before, only the hung ones
    # had been sent, and their answers went nowhere), those A had in flight included.
    assert slow.ids() == expected
    acknowledged = {r.webhook_id for r in slow.snapshot() if r.status == 204 and r.seq > killed}
    assert acknowledged == expected, (expected - acknowledged, hung)
    for r in slow.snapshot():
        verify(r, slow_sub["secret"])
    assert_order_kept(slow)


# ---------------------------------------------------------------------------
# PostgreSQL itself goes away.

def postgres_bindir():
    """The directory of initdb and pg_ctl: PROVISIOND_TEST_PG_BINDIR, the newest
    /usr/lib/postgresql/*/bin (Debian), or wherever initdb is on PATH."""
    candidates = [os.environ.get("PROVISIOND_TEST_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    candidates += [os.path.dirname(shutil.which("initdb") or "")]
    for d in candidates:
        if d and os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) were not found: install Debian's postgresql "
                "or set PROVISIOND_TEST_PG_BINDIR")


class PrivateServer:
    """A PostgreSQL server of this test's own on a free loopback port, so it can
    be restarted without disturbing the others. As root (CI) it runs as the
    postgres user, which owns its directory. fsync is off: the test kills the
    server's processes, not the machine, so what was committed is in the
    kernel's page cache and survives."""

    def __init__(self):
        self.bindir = postgres_bindir()
        self.root = tempfile.mkdtemp(prefix="provisiond-pg.")
        self.data = os.path.join(self.root, "data")
        self.port = reserve_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool, *args):
        p = subprocess.run([*self.as_postgres, os.path.join(self.bindir, tool), *args], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, (tool, args, p.stdout, p.stderr)

    def ctl(self, action, *args):
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", action, "-D", self.data, "-l", os.path.join(self.root, "server.log"), "-o", options,
                  "-w", "-t", "60", *args)

    def start(self):
        self.ctl("start")

    def stop(self, mode="fast"):
        self.ctl("stop", "-m", mode)

    def restart(self, mode="fast"):
        self.ctl("restart", "-m", mode)

    def close(self):
        subprocess.run([*self.as_postgres, os.path.join(self.bindir, "pg_ctl"), "stop", "-D", self.data, "-m",
                        "immediate", "-w"], capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivateServer()
    yield server
    server.close()


class Publisher:
    """Threads that publish new tenants, spread over the instances, until
    stopped, retrying each one as a client does (on 503 and on connection
    errors, at the next instance) until it is acknowledged: a 202, or a 200
    when an earlier try had committed. Once stopped, a tenant not yet
    acknowledged is given up."""

    def __init__(self, hubs, threads=6):
        self.hubs = hubs
        self.acknowledged = {}  # domain -> tenant id
        self.unavailable = []  # Retry-After of each 503
        self.unexpected = []  # any other answer but 200/202/503
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def count(self):
        with self._lock:
            return len(self.acknowledged)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)  # at most one request of 60 s each
            assert not t.is_alive(), "a publisher did not finish"

    def _run(self):
        sessions = [requests.Session() for _ in self.hubs]
        for s in sessions:
            s.headers["Authorization"] = f"Bearer {TOKEN}"
        while not self._stop.is_set():
            i = next(self._numbers)
            domain = f"load{i}.example.com"
            for attempt in itertools.count():
                if self._stop.is_set() and attempt:
                    break  # left unacknowledged: it may or may not exist, and is not counted
                index = (i + attempt) % len(self.hubs)
                try:
                    r = sessions[index].post(self.hubs[index].url + "/tenants", json=tenant_body(domain), timeout=60)
                except requests.RequestException:
                    time.sleep(0.05)
                    continue
                if r.status_code in (200, 202):
                    with self._lock:
                        self.acknowledged[domain] = r.json()["id"]
                    break
                with self._lock:
                    if r.status_code == 503:
                        self.unavailable.append(r.headers.get("Retry-After"))
                    else:
                        self.unexpected.append((r.status_code, r.text[:300]))
                time.sleep(0.05)


def test_postgres_restarted_under_load_loses_nothing_and_no_instance_exits(private_postgres, provisiond, receivers):
    server = private_postgres
    psql(server.url, 'CREATE DATABASE "topic"')
    database = database_url(server.url, "topic")
    hubs = [provisiond("--database", database, *RETRIES, "--delivery-timeout", "5s", "--claim-lease", "2s")
            for _ in range(2)]
    processes = [h.svc.proc for h in hubs]
    rx = receivers("rx", Reply(204, delay=0.01))
    sub = hubs[0].subscribe("rx", rx.url)

    publisher = Publisher(hubs).start()
    try:
        wait_until(lambda: publisher.count() >= 50, timeout=60.0, what="50 tenants acknowledged")
        server.restart("immediate")  # every connection of both instances is cut
        acknowledged = publisher.count()
        wait_until(lambda: publisher.count() >= acknowledged + 50, timeout=120.0,
                   what="publishing to go on after the restart")

        server.stop("immediate")  # and now it stays away for a while
        for hub in hubs:
            wait_until(lambda: readyz(hub) == 503, what="/readyz 503 while the database is down")
            assert requests.get(hub.url + "/healthz", timeout=10).status_code == 200  # the process is alive
            for method, path in [("GET", "/tenants"), ("GET", f"/subscriptions/{sub['id']}"),
                                 ("POST", "/subscriptions")]:
                r = hub.session.request(method, hub.url + path, json={"name": "x", "url": rx.url}
                                        if method == "POST" else None, timeout=60)
                assert_problem(r, 503)
                assert retry_after(r.headers.get("Retry-After")), (path, r.headers)
        refused = len(publisher.unavailable)
        wait_until(lambda: len(publisher.unavailable) > refused, what="publishers refused with 503 while it is down")
        server.start()

        for hub in hubs:
            wait_until(lambda: readyz(hub) == 200, timeout=60.0, what="/readyz 200 again without a restart")
        acknowledged = publisher.count()
        wait_until(lambda: publisher.count() >= acknowledged + 50, timeout=120.0,
                   what="publishing to go on once the database is back")
    finally:
        publisher.stop()

    assert all(p.poll() is None for p in processes), [p.returncode for p in processes]
    assert [h.svc.proc for h in hubs] == processes  # the same processes, never restarted
    assert not publisher.unexpected, publisher.unexpected[:5]
    assert all(retry_after(v) for v in publisher.unavailable), set(publisher.unavailable)

    # No acknowledged publish lost, none created twice; every one delivered after.
    listed = collections.defaultdict(list)
    for t in all_tenants(hubs[1].session, hubs[1].url):
        listed[t["domain"]].append(t)
    for domain, tenant_id in publisher.acknowledged.items():
        assert [t["id"] for t in listed[domain]] == [tenant_id], (domain, tenant_id, listed[domain])
    assert all(len(ts) == 1 for ts in listed.values()), [d for d, ts in listed.items() if len(ts) > 1]
    counts = hubs[0].wait_counts(sub["id"], timeout=120.0, delivered=len(listed))
    assert counts == {"pending": 0, "delivered": len(listed), "failed": 0}, counts
    expected = {t["deliveries"][0]["eventId"] for ts in listed.values() for t in ts}
    assert rx.ids() == expected
    for r in rx.snapshot():
        verify(r, sub["secret"])
    assert all(p.poll() is None for p in processes), [p.returncode for p in processes]


# ---------------------------------------------------------------------------
# Starting.

def with_user(url, user, password=None):
    """`url` with another user (and password) in it."""
    parts = urllib.parse.urlsplit(url)
    login = user + (f":{password}" if password else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}"))


PASSWORD = "S3cretPw-e2e"


def test_an_unusable_database_at_start_exits_2_with_one_line_without_the_password(tmp_path):
    admin = urllib.parse.urlsplit(POSTGRES_ADMIN)
    nowhere = reserve_port()  # nothing listens there
    cases = {
        "port out of range": f"postgres://app:{PASSWORD}@127.0.0.1:99999/topic",
        "malformed host": f"postgres://app:{PASSWORD}@[127.0.0.1/topic",
        "nothing listening": f"postgres://app:{PASSWORD}@127.0.0.1:{nowhere}/topic",
        "no such role": with_user(POSTGRES_ADMIN, "provisiond_no_such_role", PASSWORD),
        "no such database": database_url(with_user(POSTGRES_ADMIN, admin.username, PASSWORD), "provisiond_no_such_db"),
    }
    for n, (case, url) in enumerate(cases.items()):
        for args, env in [(["--database", url], None), ([], {"PROVISIOND_DATABASE": url})]:
            code, lines = run_bad("--port", "0", "--data-dir", str(tmp_path / f"d{n}"), "--api-token", TOKEN, *args,
                                  env=env)
            assert code == 2 and len(lines) == 1, (case, env, code, lines)
            assert PASSWORD not in lines[0], (case, lines)


def test_postgres_without_an_api_token_exits_2_saying_so(tmp_path, database):
    code, lines = run_bad("--port", "0", "--data-dir", str(tmp_path / "d"), "--database", database)
    assert code == 2 and len(lines) == 1, (code, lines)
    assert re.search(r"api[-_ ]token", lines[0], re.I), lines


def test_every_postgres_option_from_the_environment_and_the_password_never_shown(tmp_path, database):
    role = f"provisiond_e2e_app_{os.getpid()}"
    psql(POSTGRES_ADMIN, f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}'")
    try:
        name = urllib.parse.urlsplit(database).path.lstrip("/")
        psql(POSTGRES_ADMIN, f'ALTER DATABASE "{name}" OWNER TO "{role}"')
        url = with_user(database, role, PASSWORD)
        data_dir = str(tmp_path / "d")
        svc = Provisiond(data_dir, env={"PROVISIOND_DATABASE": url, "PROVISIOND_API_TOKEN": "from-env",
                                        "PROVISIOND_CLAIM_LEASE": "10s", "PROVISIOND_LOG_LEVEL": "debug"}).start()
        try:
            assert readyz(svc) == 200
            r = requests.get(svc.url + "/tenants", headers={"Authorization": "Bearer from-env"})
            assert r.status_code == 200, r.text
            assert not os.path.exists(os.path.join(data_dir, "api-token"))  # no token file on PostgreSQL
        finally:
            assert svc.stop() == 0
        assert PASSWORD not in svc.output()
    finally:
        psql(POSTGRES_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        psql(POSTGRES_ADMIN, f'DROP ROLE IF EXISTS "{role}"')


def test_three_instances_starting_together_on_a_fresh_database_all_come_up(tmp_path, receivers):
    # Migrations race only at a first start: three rounds, each on a database of its own.
    for round_ in range(3):
        database = DATABASES.create()
        instances = [Provisiond(str(tmp_path / f"r{round_}i{i}"), "--database", database, "--api-token", TOKEN,
                                *RETRIES, *LONG_LEASE) for i in range(3)]
        try:
            for p in instances:
                p.launch()
            for p in instances:
                p.wait_listening()
            assert [readyz(p) for p in instances] == [200] * 3
            rx = receivers(f"rx{round_}")
            r = instances[0].api().post(instances[0].url + "/subscriptions", json={"name": "rx", "url": rx.url})
            assert r.status_code == 201, r.text
            for i, p in enumerate(instances):
                r = p.api().post(p.url + "/tenants", json=tenant_body(f"together{i}.example.com"))
                assert r.status_code == 202, (i, r.text)
            last = instances[-1].api()
            wait_until(lambda: last.get(instances[-1].url + "/subscriptions/rx").json()["counts"]["delivered"] == 3,
                       what="the three tenants delivered")
            assert len(rx.ids()) == 3
        finally:
            for p in instances:
                p.stop()
        for p in instances:
            assert p.proc.returncode == 0, p.output()[-2000:]
