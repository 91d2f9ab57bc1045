"""GET /metrics of the real binary against real receivers: the contract's
series with their labels, zero-initialised series per subscription that go
when the subscription does, the state of each subscription, process metrics,
and an exposition that `promtool check metrics` accepts."""
import re
import shutil
import subprocess
import time

import pytest

from conftest import wait_until
from receivers import FAST, Reply, provisiond, receivers  # noqa: F401 (fixtures)

PER_SUBSCRIPTION = [
    "provisiond_deliveries_total",
    "provisiond_delivery_backlog",
    "provisiond_delivery_seconds_bucket",
    "provisiond_delivery_seconds_sum",
    "provisiond_delivery_seconds_count",
    "provisiond_subscription_up",
    "provisiond_delivery_oldest_pending_seconds",
    "provisiond_delivery_attempt_seconds_bucket",
    "provisiond_delivery_attempt_seconds_sum",
    "provisiond_delivery_attempt_seconds_count",
]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """One exposition: its samples as (name, {labels}, value), and its TYPE lines."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
            elif line and not line.startswith("#"):
                m = SAMPLE.match(line)
                assert m, f"not a sample line: {line!r}"
                self.samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))

    def all(self, name, **labels):
        return [(l, v) for n, l, v in self.samples if n == name and all(l.get(k) == v for k, v in labels.items())]

    def value(self, name, **labels):
        found = self.all(name, **labels)
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples, expected 1"
        return found[0][1]

    def subscriptions(self):
        return {l["subscription"] for n, l, v in self.samples if "subscription" in l}


def scrape(hub):
    r = hub.session.get(hub.url + "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    promtool_check(r.text)
    return Scrape(r.text)


def promtool_check(text):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus package)")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, f"promtool check metrics: {p.stdout.decode()}{p.stderr.decode()}\n{text}"


def assert_zero_series(m, name):
    """Every series of the subscription exists, at 0 (or up: 1)."""
    for outcome in ("delivered", "retry", "failed"):
        assert m.value("provisiond_deliveries_total", subscription=name, outcome=outcome) == 0
    for histogram in ("provisiond_delivery_seconds", "provisiond_delivery_attempt_seconds"):
        assert m.value(histogram + "_count", subscription=name) == 0
        assert m.value(histogram + "_sum", subscription=name) == 0
        buckets = m.all(histogram + "_bucket", subscription=name)
        assert len(buckets) > 5 and {v for _, v in buckets} == {0}, buckets
        assert any(l["le"] == "+Inf" for l, _ in buckets)
    assert m.value("provisiond_delivery_backlog", subscription=name) == 0
    assert m.value("provisiond_delivery_oldest_pending_seconds", subscription=name) == 0
    assert m.value("provisiond_subscription_up", subscription=name) == 1


def test_metrics_series_labels_and_lifecycle(provisiond, receivers):
    hub = provisiond(*FAST, "--max-attempts", "3")
    ok, bad, parked = receivers("ok"), receivers("bad", default=Reply(500)), receivers("parked", down=True)
    ok_sub, bad_sub = hub.subscribe("ok", ok.url), hub.subscribe("bad", bad.url)
    parked_sub = hub.subscribe("parked", parked.url)
    hub.patch(parked_sub["id"], paused=True)

    # Before anything happened: every series of every subscription, at 0.
    m = scrape(hub)
    for name in ("ok", "bad"):
        assert_zero_series(m, name)
    assert m.value("provisiond_subscription_up", subscription="parked") == 0  # paused
    for kind, names in {
        "counter": ["provisiond_tenants_total", "provisiond_deliveries_total", "provisiond_http_requests_total",
                    "provisiond_events_total", "process_cpu_seconds_total"],
        "gauge": ["provisiond_delivery_backlog", "provisiond_subscription_up", "provisiond_delivery_oldest_pending_seconds",
                  "provisiond_build_info", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"],
        "histogram": ["provisiond_delivery_seconds", "provisiond_delivery_attempt_seconds"],
    }.items():
        for name in names:
            assert m.types.get(name) == kind, (name, m.types.get(name))
    assert m.value("provisiond_events_total", type="tenant.created") == 0

    # Two tenants and a change: delivered to "ok". "bad" answers 500: it gives up on both creations
    # (3 attempts each), goes down, and the change waits behind its tenant's failed creation.
    tenants = [hub.create_tenant(f"metrics{i}.example.com") for i in range(2)]
    hub._ok(hub.session.post(f"{hub.url}/tenants/{tenants[0]['id']}/deactivate"), 202)
    hub.wait_counts(ok_sub["id"], delivered=3)
    hub.wait_counts(bad_sub["id"], failed=2, pending=1)
    wait_until(lambda: hub.subscription(bad_sub["id"])["state"] == "down", what="bad down")
    # The operational events are committed with the outcomes that cause them.
    wait_until(lambda: scrape(hub).value("provisiond_events_total", type="delivery.failed") == 2, what="delivery.failed")

    m = scrape(hub)
    assert m.value("provisiond_tenants_total") == 2
    assert m.value("provisiond_events_total", type="tenant.created") == 2
    assert m.value("provisiond_events_total", type="tenant.deactivated") == 1
    assert m.value("provisiond_events_total", type="tenant.updated") == 0
    assert m.value("provisiond_events_total", type="subscription.down") == 1
    assert m.value("provisiond_http_requests_total", method="POST", route="/tenants", status="202") == 2
    assert m.value("provisiond_http_requests_total", method="POST", route="/tenants/{id}/deactivate", status="202") == 1

    assert m.value("provisiond_deliveries_total", subscription="ok", outcome="delivered") == 3
    assert m.value("provisiond_deliveries_total", subscription="ok", outcome="retry") == 0
    assert m.value("provisiond_deliveries_total", subscription="ok", outcome="failed") == 0
    assert m.value("provisiond_deliveries_total", subscription="bad", outcome="delivered") == 0
    assert m.value("provisiond_deliveries_total", subscription="bad", outcome="retry") == 4
    assert m.value("provisiond_deliveries_total", subscription="bad", outcome="failed") == 2

    # Publish to acknowledgement: only what was acknowledged; one attempt: every attempt.
    assert m.value("provisiond_delivery_seconds_count", subscription="ok") == 3
    assert m.value("provisiond_delivery_seconds_sum", subscription="ok") > 0
    assert m.value("provisiond_delivery_seconds_count", subscription="bad") == 0
    assert m.value("provisiond_delivery_attempt_seconds_count", subscription="ok") == 3
    assert m.value("provisiond_delivery_attempt_seconds_count", subscription="bad") == 6
    for name in ("ok", "bad"):
        for histogram in ("provisiond_delivery_seconds", "provisiond_delivery_attempt_seconds"):
            buckets = sorted((float(l["le"]), v) for l, v in m.all(histogram + "_bucket", subscription=name))
            assert [v for _, v in buckets] == sorted(v for _, v in buckets), buckets  # cumulative
            assert buckets[-1] == (float("inf"), m.value(histogram + "_count", subscription=name))

    assert m.value("provisiond_subscription_up", subscription="ok") == 1
    assert m.value("provisiond_subscription_up", subscription="bad") == 0
    assert m.value("provisiond_subscription_up", subscription="parked") == 0
    assert m.value("provisiond_delivery_backlog", subscription="ok") == 0
    assert m.value("provisiond_delivery_oldest_pending_seconds", subscription="ok") == 0
    assert m.value("provisiond_delivery_backlog", subscription="bad") == 1
    assert m.value("provisiond_delivery_oldest_pending_seconds", subscription="bad") > 0
    # Paused, "parked" keeps its three deliveries pending, the oldest from the first publish.
    assert m.value("provisiond_delivery_backlog", subscription="parked") == 3
    assert m.value("provisiond_delivery_oldest_pending_seconds", subscription="parked") > 0
    # chaos.py reads the backlog with this pattern.
    backlog = re.findall(r"^provisiond_delivery_backlog\{[^}]*\} (\d+)", m.text, re.M)
    assert sorted(int(v) for v in backlog) == [0, 1, 3]

    (build,) = m.all("provisiond_build_info")
    assert build[1] == 1 and re.fullmatch(r"\d+\.\d+\.\d+.*", build[0]["version"]), build
    assert m.value("process_resident_memory_bytes") > 1_000_000
    assert m.value("process_open_fds") > 3
    assert m.value("process_cpu_seconds_total") > 0
    assert abs(m.value("process_start_time_seconds") - (time.time() - 2)) < 300

    # A new subscription: all its series at once, at 0.
    hub.subscribe("fresh", ok.url)
    m = scrape(hub)
    assert_zero_series(m, "fresh")
    assert m.subscriptions() == {"ok", "bad", "parked", "fresh"}

    # Deleting a subscription removes every series that names it.
    hub.delete(bad_sub["id"])
    m = scrape(hub)
    assert m.subscriptions() == {"ok", "parked", "fresh"}
    assert 'subscription="bad"' not in m.text
    assert m.value("provisiond_deliveries_total", subscription="ok", outcome="delivered") == 3
