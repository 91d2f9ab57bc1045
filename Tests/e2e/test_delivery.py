"""Webhook delivery end to end: the real binary pushes tenants to real HTTP
receivers on 127.0.0.1, and a Standard Webhooks library we did not write
verifies every request. Receivers answer as each test scripts them.

No assertion is about speed: every wait is a bounded poll, and the only time
measured is a lower bound (Retry-After is honoured)."""
import base64
import email.utils
import math
import os
import re
import time

from conftest import wait_until
from receivers import FAST, Reply, provisiond, receivers, verify  # noqa: F401 (fixtures)

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DATA_FIELDS = {"id", "domain", "admin", "plan", "attributes", "active", "version", "createdAt", "updatedAt", "deletedAt"}


def new_secret(n=32):
    return "whsec_" + base64.b64encode(os.urandom(n)).decode()


def wait_status(hub, tenant_id, status, timeout=30.0):
    box = {}

    def check():
        box["last"] = hub.tenant(tenant_id)
        return box["last"]["status"] == status

    try:
        wait_until(check, timeout=timeout, what=f"tenant {tenant_id} {status}")
    except AssertionError as e:
        raise AssertionError(f"{e}; tenant: {box.get('last')!r}") from None
    return box["last"]


def assert_fresh(record, not_before):
    """webhook-timestamp is this attempt's own time: not later than its arrival, and not earlier than
    `not_before` (a wall time the attempt causally follows). Causal bounds, not speed."""
    ts = int(record.headers["webhook-timestamp"])
    assert math.floor(not_before) <= ts <= record.wall, (math.floor(not_before), ts, record.wall, record)


def test_fan_out_to_three_environments_verifies_with_standard_webhooks(provisiond, receivers):
    hub = provisiond(*FAST)
    envs = {"dev": receivers("dev", Reply(200, body=b'{"ok":true}')),
            "test": receivers("test", Reply(202)),
            "prod": receivers("prod", Reply(204))}
    given = new_secret()
    subs = {}
    for name, rx in envs.items():
        extra = {"secret": given} if name == "dev" else {}
        sub = hub.subscribe(name, rx.url, **extra)
        assert sub["secret"].startswith("whsec_")
        assert hub.secret(sub["id"]) == sub["secret"]
        subs[name] = sub
    assert subs["dev"]["secret"] == given

    published = time.time()
    tenants = [hub.create_tenant(f"fan{i}.example.com", plan=f"Plan{i}") for i in range(3)]
    for t in tenants:
        t = wait_status(hub, t["id"], "provisioned")
        assert [d["subscription"] for d in t["deliveries"]] == ["dev", "test", "prod"]
        for d in t["deliveries"]:
            assert d["state"] == "delivered", d
            assert d["attempts"] == 1, d
            assert 200 <= d["lastStatus"] < 300, d
            assert d["lastError"] is None, d
            assert d["nextAttemptAt"] is None, d
            assert d["deliveredAt"] and RFC3339.match(d["deliveredAt"]), d
            assert d["lastAttemptAt"] and RFC3339.match(d["lastAttemptAt"]), d
    assert {t["lastStatus"] for t in hub.tenant(tenants[0]["id"])["deliveries"]} == {200, 202, 204}

    ids_by_tenant = {}
    for name, rx in envs.items():
        records = rx.snapshot()
        assert len(records) == len(tenants), records  # one attempt each: all were acknowledged
        for r in records:
            assert r.method == "POST" and r.path == f"/hooks/{name}", r
            assert r.headers["content-type"] == "application/json", r.headers
            body = verify(r, subs[name]["secret"])  # raises unless the signature is right
            assert body["type"] == "tenant.created", body
            assert RFC3339.match(body["timestamp"]), body
            assert set(body["data"]) == DATA_FIELDS, body
            assert_fresh(r, published)
            ids_by_tenant.setdefault(body["data"]["id"], {})[name] = r.webhook_id
    # webhook-id: one per event, the same for every subscription, different between events.
    assert set(ids_by_tenant) == {t["id"] for t in tenants}
    for tenant_id, by_sub in ids_by_tenant.items():
        assert set(by_sub) == set(envs) and len(set(by_sub.values())) == 1, by_sub
    assert len({next(iter(v.values())) for v in ids_by_tenant.values()}) == len(tenants)

    # The body's data is the tenant as published.
    for t in tenants:
        r = next(r for r in envs["prod"].snapshot() if r.json()["data"]["id"] == t["id"])
        data = r.json()["data"]
        assert {k: t[k] for k in DATA_FIELDS} == data, (t, data)
        assert data["admin"]["email"] == f"admin@{t['domain']}"
        assert data["attributes"]["nested"] == {"x": 1, "y": True}

    # The deliveries list names the same event id.
    for name, sub in subs.items():
        items = hub.deliveries(sub["id"])
        assert {i["tenantId"]: i["eventId"] for i in items} == {k: v[name] for k, v in ids_by_tenant.items()}

    # A wrong secret does not verify (the check above is not vacuous).
    from standardwebhooks.webhooks import WebhookVerificationError
    try:
        verify(envs["prod"].snapshot()[0], new_secret())
    except WebhookVerificationError:
        pass
    else:
        raise AssertionError("a foreign secret verified the signature")


def test_retried_until_2xx_with_same_id_and_others_not_held_up(provisiond, receivers):
    # Backoff 0.5-1 s per retry: the 4th attempt is made at least 1.5 s after the 1st, so its
    # webhook-timestamp (whole seconds) must differ from the 1st one's.
    hub = provisiond("--retry-initial", "1s", "--retry-max", "1s", "--delivery-timeout", "5s")
    dev, test = receivers("dev"), receivers("test")
    prod = receivers("prod")
    prod.script(Reply(503), Reply(503), Reply(503), default=Reply(204))
    subs = {rx.name: hub.subscribe(rx.name, rx.url) for rx in (dev, test, prod)}

    published = time.time()
    tenant = hub.create_tenant("flaky.example.com")
    d = hub.wait_delivery(tenant["id"], subs["prod"]["id"], lambda d: d["state"] == "delivered",
                          what="prod delivered")
    assert d["attempts"] == 4 and d["lastStatus"] == 204 and d["lastError"] is None, d
    assert wait_status(hub, tenant["id"], "provisioned")

    attempts = prod.snapshot()
    assert [r.status for r in attempts] == [503, 503, 503, 204], attempts
    assert len({r.webhook_id for r in attempts}) == 1, attempts
    for previous, r in zip([None] + attempts, attempts):
        verify(r, subs["prod"]["secret"])  # each attempt signed afresh, with its own timestamp
        # An attempt is made after the previous answer went out.
        assert_fresh(r, previous.done_wall if previous else published)
    timestamps = [int(r.headers["webhook-timestamp"]) for r in attempts]
    assert timestamps == sorted(timestamps) and timestamps[3] > timestamps[0], timestamps

    # dev and test were answered before prod's 4th attempt even began.
    fourth = attempts[3]
    for rx in (dev, test):
        (only,) = rx.snapshot()
        assert only.webhook_id == fourth.webhook_id
        assert only.status == 204 and only.done_seq < fourth.seq, (only, fourth)
        assert hub.delivery_of(tenant["id"], subs[rx.name]["id"])["attempts"] == 1


def test_hanging_receiver_times_out_and_does_not_hold_up_another(provisiond, receivers):
    hub = provisiond("--retry-initial", "100ms", "--retry-max", "1s", "--delivery-timeout", "1s")
    slow = receivers("slow", Reply(204, delay=5))  # longer than --delivery-timeout 1s
    fast = receivers("fast")
    slow_sub, fast_sub = hub.subscribe("slow", slow.url), hub.subscribe("fast", fast.url)

    tenants = hub.create_tenants("hang", 10)
    counts = hub.wait_counts(fast_sub["id"], delivered=10)
    assert counts["pending"] == 0
    assert len(fast.ids()) == 10

    d = hub.wait_delivery(tenants[0]["id"], slow_sub["id"], lambda d: d["attempts"] >= 1, what="a timed-out attempt")
    assert d["state"] == "pending" and d["lastStatus"] is None, d
    assert "timed out" in d["lastError"], d
    hub.assert_scheduled(slow_sub["id"])

    # Retried after the timeout: some delivery reaches a second attempt.
    wait_until(lambda: any(x["attempts"] >= 2 for x in hub.deliveries(slow_sub["id"])), what="a second attempt")
    retried = next(x for x in hub.deliveries(slow_sub["id"]) if x["attempts"] >= 2)
    assert "timed out" in retried["lastError"] and retried["lastStatus"] is None, retried
    assert hub.subscription(slow_sub["id"])["counts"]["delivered"] == 0


def test_retry_after_is_honoured_in_seconds_and_as_http_date(provisiond, receivers):
    # Backoff alone would retry within 100 ms; Retry-After asks for about 2-3 s.
    hub = provisiond("--retry-initial", "50ms", "--retry-max", "100ms", "--delivery-timeout", "5s")
    secs = receivers("secs")
    secs.script(Reply(503, {"Retry-After": "2"}), default=Reply(204))
    sent_dates = []

    def three_seconds_on():
        date = email.utils.formatdate(time.time() + 3, usegmt=True)
        sent_dates.append(email.utils.parsedate_to_datetime(date).timestamp())
        return date

    date = receivers("date")
    date.script(Reply(429, {"Retry-After": three_seconds_on}), default=Reply(204))
    subs = {rx.name: hub.subscribe(rx.name, rx.url) for rx in (secs, date)}

    tenant = hub.create_tenant("later.example.com")
    wait_status(hub, tenant["id"], "provisioned")
    for rx in (secs, date):
        first, second = rx.snapshot()
        assert (first.status, second.status) == ((503, 204) if rx is secs else (429, 204))
        assert first.webhook_id == second.webhook_id
        verify(second, subs[rx.name]["secret"])
        gap = second.start - first.start
        assert gap >= 1.9, f"{rx.name}: retried {gap:.3f}s after a Retry-After of about 2 s or more"
        d = hub.delivery_of(tenant["id"], subs[rx.name]["id"])
        assert d["attempts"] == 2 and d["state"] == "delivered", d
    # The HTTP-date one came no earlier than the date it named (1 s clock granularity aside).
    (named,) = sent_dates
    assert date.snapshot()[1].wall >= named - 1.0, (date.snapshot()[1].wall, named)


def test_max_attempts_then_failed_then_retry_endpoint_redelivers(provisiond, receivers):
    hub = provisiond(*FAST, "--max-attempts", "3")
    bad = receivers("bad", Reply(500))
    sub = hub.subscribe("bad", bad.url)
    tenants = [hub.create_tenant(f"fails{i}.example.com") for i in range(2)]

    for t in tenants:
        t = wait_status(hub, t["id"], "failed")
        (d,) = t["deliveries"]
        assert d["state"] == "failed" and d["attempts"] == 3, d
        assert d["lastStatus"] == 500 and "500" in d["lastError"], d
        assert d["nextAttemptAt"] is None and d["deliveredAt"] is None, d
    counts = hub.subscription(sub["id"])["counts"]
    assert counts == {"pending": 0, "delivered": 0, "failed": 2}, counts
    failed = hub.deliveries(sub["id"], state="failed")
    assert {i["tenantId"] for i in failed} == {t["id"] for t in tenants}
    assert hub.deliveries(sub["id"], state="pending") == []
    assert bad.count() == 6  # 3 attempts each, then it gave up
    ids_before = bad.ids()
    assert 'provisiond_deliveries_total{subscription="bad",outcome="failed"} 2' in hub.metrics()

    bad.answer(Reply(204))
    assert hub.retry(sub["id"]) == {"requeued": 2, "probing": True}  # 6 failures in a row: down
    counts = hub.wait_counts(sub["id"], delivered=2)
    assert counts == {"pending": 0, "delivered": 2, "failed": 0}, counts
    for t in tenants:
        t = wait_status(hub, t["id"], "provisioned")
        assert t["deliveries"][0]["lastStatus"] == 204, t
    assert bad.ids() == ids_before  # the same events, redelivered
    for r in bad.snapshot():
        verify(r, sub["secret"])
    assert bad.count() == 8
    assert hub.retry(sub["id"]) == {"requeued": 0, "probing": False}


def parse_metrics(text):
    """{'name{labels}': value} of the exposition text (labels as written)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def test_metrics_count_outcomes_and_latency(provisiond, receivers):
    hub = provisiond(*FAST)
    dev = receivers("dev")
    flaky = receivers("flaky")
    flaky.script(Reply(503), Reply(503), default=Reply(204))
    hub.subscribe("dev", dev.url)
    hub.subscribe("flaky", flaky.url)
    tenants = [hub.create_tenant(f"metric{i}.example.com") for i in range(3)]
    for t in tenants:
        wait_status(hub, t["id"], "provisioned")

    r = hub.session.get(hub.url + "/metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    m = parse_metrics(r.text)
    assert m['provisiond_deliveries_total{subscription="dev",outcome="delivered"}'] == 3
    assert m['provisiond_deliveries_total{subscription="flaky",outcome="delivered"}'] == 3
    assert m['provisiond_deliveries_total{subscription="flaky",outcome="retry"}'] == 2
    assert m['provisiond_deliveries_total{subscription="dev",outcome="retry"}'] == 0  # zero-initialised
    for sub in ("dev", "flaky"):
        assert m[f'provisiond_delivery_seconds_count{{subscription="{sub}"}}'] == 3
        assert m[f'provisiond_delivery_seconds_bucket{{subscription="{sub}",le="+Inf"}}'] == 3
        assert m[f'provisiond_delivery_seconds_sum{{subscription="{sub}"}}'] > 0
        prefix = f'provisiond_delivery_seconds_bucket{{subscription="{sub}",le="'
        buckets = sorted((float(k[len(prefix):-2]), v) for k, v in m.items() if k.startswith(prefix))
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), buckets  # cumulative
    assert m['provisiond_delivery_backlog{subscription="dev"}'] == 0
    assert m['provisiond_delivery_backlog{subscription="flaky"}'] == 0
    assert m["provisiond_tenants_total"] == 3
    assert m['provisiond_http_requests_total{method="POST",route="/tenants",status="202"}'] == 3


def test_redirect_is_a_failed_attempt_and_not_followed(provisiond, receivers):
    hub = provisiond(*FAST)
    target = receivers("target")
    movers = [receivers(f"moved{code}", Reply(code, {"Location": target.url})) for code in (302, 307)]
    subs = [hub.subscribe(rx.name, rx.url) for rx in movers]
    tenant = hub.create_tenant("moved.example.com")

    for code, rx, sub in zip((302, 307), movers, subs):
        d = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["attempts"] >= 2, what=f"{code} retried")
        assert d["state"] == "pending" and d["lastStatus"] == code, d
        assert "redirect" in d["lastError"].lower(), d
        assert rx.count() >= 2
    assert hub.tenant(tenant["id"])["status"] == "pending"
    assert target.count() == 0, target.snapshot()


def test_in_flight_limit_is_reached_and_not_exceeded_at_a_slow_receiver(provisiond, receivers):
    # --delivery-timeout far beyond the poll deadline: only concurrency can make the limit fill up.
    hub = provisiond("--retry-initial", "100ms", "--retry-max", "1s", "--delivery-timeout", "60s", "--max-in-flight", "4")
    slow = receivers("slow", Reply(204, delay=60))  # answers only when released
    sub = hub.subscribe("slow", slow.url)
    hub.create_tenants("inflight", 8)

    slow.wait_in_flight(4)
    assert slow.count() == 4, slow.snapshot()  # and not a 5th while those 4 hang
    slow.answer(Reply(204))
    slow.release()
    hub.wait_counts(sub["id"], delivered=8)
    assert slow.max_in_flight == 4, slow.max_in_flight
    assert len(slow.ids()) == 8


def test_hanging_subscription_does_not_hold_up_another_on_the_same_host(provisiond, receivers):
    # Two environments behind one gateway (same host and port, different paths).
    hub = provisiond("--retry-initial", "100ms", "--retry-max", "1s", "--delivery-timeout", "60s")
    gateway = receivers("gateway")
    gateway.route("/stuck", Reply(204, delay=60))  # answers only when released
    stuck = hub.subscribe("stuck", gateway.url_for("/stuck"))
    first = hub.create_tenant("first.example.com")
    gateway.wait_in_flight(1)

    ok = hub.subscribe("ok", gateway.url_for("/ok"))
    second = hub.create_tenant("second.example.com")
    hub.wait_delivery(second["id"], ok["id"], lambda d: d["state"] == "delivered", what="ok delivered beside the stuck one")
    hanging = [r for r in gateway.snapshot() if r.path == "/stuck"]
    assert hanging and all(r.done_seq is None for r in hanging), hanging  # still unanswered: ok did not wait
    assert hub.delivery_of(first["id"], stuck["id"])["state"] == "pending"

    gateway.route("/stuck", None)
    gateway.release()
    hub.wait_counts(stuck["id"], delivered=2)


def test_reset_connection_is_retried_until_acknowledged(provisiond, receivers):
    hub = provisiond(*FAST)
    rx = receivers("reset", Reply(reset=True))  # reads the request, then RST instead of an answer
    sub = hub.subscribe("reset", rx.url)
    tenant = hub.create_tenant("reset.example.com")

    d = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["attempts"] >= 2, what="retries after resets")
    assert d["state"] == "pending" and d["lastStatus"] is None, d
    assert "reset" in d["lastError"] or "closed" in d["lastError"], d
    hub.assert_scheduled(sub["id"])

    rx.answer(Reply(204))
    d = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["state"] == "delivered", what="delivered once answered")
    assert d["lastStatus"] == 204 and d["lastError"] is None, d
    assert len(rx.ids()) == 1 and rx.count() >= d["attempts"], (rx.snapshot(), d)
    for r in rx.snapshot():
        verify(r, sub["secret"])


def test_giving_up_and_going_down_are_logged_with_url_and_reason(provisiond, receivers):
    hub = provisiond(*FAST, "--max-attempts", "2")
    rx = receivers("flaky", Reply(503))
    sub = hub.subscribe("flaky", rx.url_for("/hooks/flaky?k=1").replace("127.0.0.1", "user:pw@127.0.0.1"))
    tenants = hub.create_tenants("giveup", 6)
    hub.wait_counts(sub["id"], failed=6)
    log = hub.svc.output()
    gave_up = [line for line in log.splitlines() if "gave up" in line]
    assert len(gave_up) == 6, log
    for t in tenants:
        (line,) = [line for line in gave_up if t["domain"] in line]
        assert "warning" in line and "flaky" in line and "HTTP 503" in line, line
        assert "http://user:***@127.0.0.1:" in line, line
    (down,) = [line for line in log.splitlines() if "is down" in line]
    assert "warning" in down and "http://user:***@127.0.0.1:" in down and "HTTP 503" in down, down
    assert "user:pw" not in log  # the URL's password is a secret

    # Recovered: named with its URL.
    rx.answer(Reply(204))
    hub.create_tenant("after.example.com")
    hub.retry(sub["id"])
    hub.wait_counts(sub["id"], delivered=7)
    (up,) = [line for line in hub.svc.output().splitlines() if "up again" in line]
    assert "info" in up and "flaky" in up and "http://user:***@127.0.0.1:" in up, up


def test_down_and_give_up_lines_carry_their_facts_as_json_fields(provisiond, receivers):
    import json as _json
    hub = provisiond(*FAST, "--max-attempts", "5", "--log-format", "json")
    rx = receivers("broken", Reply(502))
    sub = hub.subscribe("broken", rx.url)
    hub.create_tenant("fields.example.com")
    hub.wait_counts(sub["id"], failed=1)
    lines = [_json.loads(line) for line in hub.svc.output().splitlines() if line.startswith("{")]
    (gave_up,) = [x for x in lines if "gave up" in x["message"]]
    (down,) = [x for x in lines if "is down" in x["message"]]
    for line in (gave_up, down):
        assert line["level"] == "warning" and line["subscription"] == "broken" and line["url"] == rx.url, line
        assert line["error"] == "HTTP 502" and line["status"] == "502", line
    assert gave_up["domain"] == "fields.example.com" and gave_up["event"].startswith("evt_"), gave_up
