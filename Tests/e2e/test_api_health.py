"""Subscription health, GET /status, retry's `probing`, replay, attempt
history, a subscription's name for its id, 415 for a body that is not JSON
and 400 for an unknown query parameter: against the real binary and real
webhook receivers. Every wait is a bounded poll."""
import json
import time
from datetime import datetime, timedelta, timezone

from conftest import all_tenants, assert_problem, assert_rejected_unchanged, tenant_body, wait_until
from receivers import FAST, Reply, provisiond, receivers, verify  # noqa: F401 (fixtures)

HEALTH_FIELDS = {"state", "oldestPendingAt", "lastAttemptAt", "lastSuccessAt", "lastStatus", "lastError"}
# Retries every 20-100 ms: many attempts in little time.
QUICK = ["--retry-initial", "20ms", "--retry-max", "100ms", "--delivery-timeout", "5s"]


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_subscription(hub, key, predicate, what, timeout=30.0):
    """Polls GET /subscriptions/{key} until predicate(subscription); returns it."""
    box = {}

    def check():
        box["last"] = hub.subscription(key)
        return box["last"] if predicate(box["last"]) else None

    try:
        return wait_until(check, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last subscription: {box.get('last')!r}") from None


# ---------------------------------------------------------------------------
# Health fields and retry's `probing`.

def test_health_down_paused_and_recovered(provisiond, receivers):
    rx = receivers("flaky", default=Reply(503, body=b"maintenance"))
    hub = provisiond(*FAST)
    sub = hub.subscribe("flaky", rx.url)
    assert HEALTH_FIELDS <= sub.keys(), sub
    assert sub["state"] == "up"
    assert all(sub[k] is None for k in HEALTH_FIELDS - {"state"}), sub
    assert hub.retry(sub["id"]) == {"requeued": 0, "probing": False}

    tenant = hub.create_tenant("flaky.example.com")
    down = wait_subscription(hub, sub["id"], lambda s: s["state"] == "down", "the subscription down after 5 failures")
    assert rx.count() >= 5
    assert down["lastStatus"] == 503 and "503" in down["lastError"], down
    assert down["lastAttemptAt"] is not None and down["lastSuccessAt"] is None, down
    # Its one delivery is pending: the oldest pending one, created with the tenant.
    assert down["oldestPendingAt"] is not None
    assert abs(parse_time(down["oldestPendingAt"]) - parse_time(tenant["createdAt"])) <= timedelta(seconds=1), down

    # A down subscription is probed at once on retry.
    assert hub.retry("flaky") == {"requeued": 0, "probing": True}

    # Paused wins over down; unpaused it is down again until a success.
    assert hub.patch("flaky", paused=True)["state"] == "paused"
    assert hub.subscription(sub["id"])["state"] == "paused"
    assert [s["state"] for s in hub.session.get(hub.url + "/subscriptions").json()["items"]] == ["paused"]
    assert hub.patch("flaky", paused=False)["state"] == "down"

    rx.answer(Reply(204))
    up = wait_subscription(hub, sub["id"], lambda s: s["state"] == "up", "the subscription up after a success")
    assert up["lastSuccessAt"] is not None and up["lastStatus"] == 204 and up["lastError"] is None, up
    assert parse_time(up["lastSuccessAt"]) >= parse_time(down["lastAttemptAt"]), (up, down)
    assert up["counts"] == {"pending": 0, "delivered": 1, "failed": 0}, up
    assert up["oldestPendingAt"] is None, up
    assert hub.retry(sub["id"]) == {"requeued": 0, "probing": False}


def test_paused_subscription_shows_paused_and_its_oldest_pending(provisiond, receivers):
    rx = receivers("later")
    hub = provisiond(*FAST)
    sub = hub.subscribe("later", rx.url)
    hub.patch(sub["id"], paused=True)
    first = hub.create_tenant("first.example.com")
    hub.create_tenant("second.example.com")
    s = hub.subscription(sub["id"])
    assert s["state"] == "paused" and s["counts"]["pending"] == 2, s
    # The oldest of the two, and it stays while paused (nothing is sent).
    assert abs(parse_time(s["oldestPendingAt"]) - parse_time(first["createdAt"])) <= timedelta(seconds=1), s
    assert rx.count() == 0
    hub.patch(sub["id"], paused=False)
    done = wait_subscription(hub, sub["id"], lambda s: s["counts"]["delivered"] == 2, "both delivered after unpausing")
    assert done["state"] == "up" and done["oldestPendingAt"] is None, done


# ---------------------------------------------------------------------------
# GET /status.

def status_of(hub):
    r = hub.session.get(hub.url + "/status")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_status_counts_match_the_lists(provisiond, receivers):
    ok_rx = receivers("ok")
    bad_rx = receivers("bad", default=Reply(500))
    hub = provisiond(*FAST, "--max-attempts", "2")

    empty = status_of(hub)
    assert empty == {"subscriptions": [], "tenants": {"total": 0, "pending": 0, "provisioned": 0, "failed": 0}}

    ok = hub.subscribe("ok", ok_rx.url)
    provisioned = hub.create_tenant("provisioned.example.com")
    gone = hub.create_tenant("gone.example.com")
    assert hub.session.delete(f"{hub.url}/tenants/{gone['id']}").status_code == 202
    bad = hub.subscribe("bad", bad_rx.url)
    failed = hub.create_tenant("failed.example.com")
    hub.wait_delivery(failed["id"], bad["id"], lambda d: d["state"] == "failed", what="the bad delivery failed")
    hub.patch(bad["id"], paused=True)
    pending = hub.create_tenant("pending.example.com")
    # ok acknowledges: provisioned, gone (created), gone (deleted), failed, pending.
    hub.wait_counts(ok["id"], delivered=5)
    wait_until(lambda: hub.tenant(provisioned["id"])["status"] == "provisioned", what="provisioned")

    # Acknowledgements are counted as their outcomes are recorded.
    status = wait_until(lambda: (lambda st: st if st["subscriptions"][0]["deliveredLastMinute"] == 5 else None)(status_of(hub)),
                        what="5 acknowledgements in the last minute")
    assert status["tenants"] == {"total": 3, "pending": 1, "provisioned": 1, "failed": 1}, status
    # The same numbers as the lists of live tenants by status.
    for name in ("pending", "provisioned", "failed"):
        assert status["tenants"][name] == len(all_tenants(hub.session, hub.url, status=name)), name
    assert status["tenants"]["total"] == len(all_tenants(hub.session, hub.url))
    assert {t["id"] for t in all_tenants(hub.session, hub.url, status="pending")} == {pending["id"]}

    # Each item: the subscription object plus deliveredLastMinute.
    listed = hub.session.get(hub.url + "/subscriptions").json()["items"]
    items = status["subscriptions"]
    assert [s["id"] for s in items] == [s["id"] for s in listed] == [ok["id"], bad["id"]]
    for item, plain in zip(items, listed):
        assert set(item) == set(plain) | {"deliveredLastMinute"}, item
        assert {k: item[k] for k in ("name", "url", "counts", "paused")} == \
               {k: plain[k] for k in ("name", "url", "counts", "paused")}
    by_name = {s["name"]: s for s in items}
    assert by_name["ok"]["deliveredLastMinute"] == 5 and by_name["ok"]["state"] == "up"
    assert by_name["bad"]["deliveredLastMinute"] == 0 and by_name["bad"]["state"] == "paused"
    assert by_name["bad"]["counts"] == {"pending": 1, "delivered": 0, "failed": 1}


def test_status_needs_the_token(provisiond):
    hub = provisiond()
    r = hub.session.get(hub.url + "/status", headers={"Authorization": "Bearer wrong"})
    assert_problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"


# ---------------------------------------------------------------------------
# Replay.

def replay(hub, key, since, status=202):
    r = hub.session.post(f"{hub.url}/subscriptions/{key}/replay", json={"since": since})
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


def test_replay_resends_events_since_a_time_with_their_ids_in_order(provisiond, receivers):
    rx = receivers("env")
    hub = provisiond(*FAST)
    sub = hub.subscribe("env", rx.url)
    old = hub.create_tenant("old.example.com")
    # The API shows whole seconds: `since` is the next second after `old`, reached before the next event.
    since_time = parse_time(old["createdAt"]) + timedelta(seconds=1)
    wait_until(lambda: time.time() >= since_time.timestamp() + 0.05, timeout=3, what="the next second")
    since = since_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    a = hub.create_tenant("a.example.com")
    r = hub.session.patch(f"{hub.url}/tenants/{a['id']}", json={"plan": "Enterprise"})
    assert r.status_code == 202, r.text
    assert hub.session.post(f"{hub.url}/tenants/{a['id']}/deactivate").status_code == 202
    b = hub.create_tenant("b.example.com")
    hub.wait_counts(sub["id"], delivered=5)
    originals = {rec.webhook_id: rec for rec in rx.snapshot()}
    assert len(originals) == 5

    events = lambda t: [e["id"] for e in hub.session.get(f"{hub.url}/tenants/{t['id']}/events").json()["items"]]
    a_events, b_events = events(a), events(b)
    assert len(a_events) == 3

    # Nothing was accepted after a time in the future.
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert replay(hub, sub["id"], future) == {"replayed": 0}

    assert replay(hub, "env", since) == {"replayed": 4}
    wait_until(lambda: rx.count() >= 9, what="4 events delivered again")
    hub.wait_counts(sub["id"], delivered=5, pending=0)
    again = rx.snapshot()[5:]
    assert len(again) == 4 and rx.count() == 9, rx.snapshot()
    secret = hub.secret(sub["id"])
    for rec in again:
        body = verify(rec, secret)  # signed like the first time
        # The original event: same webhook-id, same body.
        assert rec.webhook_id in originals, rec
        assert body == json.loads(originals[rec.webhook_id].body)
    ids = [rec.webhook_id for rec in again]
    assert set(ids) == set(a_events) | set(b_events)
    assert old["id"] not in {json.loads(rec.body)["data"]["id"] for rec in again}
    # In the order they were accepted, within a domain.
    assert [i for i in ids if i in a_events] == a_events


def test_replay_gives_a_later_subscription_the_events_it_never_had(provisiond, receivers):
    early_rx, late_rx = receivers("early"), receivers("late")
    hub = provisiond(*FAST)
    early = hub.subscribe("early", early_rx.url)
    tenant = hub.create_tenant("before.example.com")
    hub.wait_counts(early["id"], delivered=1)
    late = hub.subscribe("late", late_rx.url)
    assert hub.deliveries(late["id"]) == []
    assert replay(hub, late["id"], "2000-01-01T00:00:00Z") == {"replayed": 1}
    (rec,) = late_rx.wait_for_requests(1)
    body = verify(rec, late["secret"])
    assert rec.webhook_id == early_rx.snapshot()[0].webhook_id
    assert body["type"] == "tenant.created" and body["data"]["id"] == tenant["id"]
    hub.wait_counts(late["id"], delivered=1)


def test_replay_since_forms_and_bad_input(provisiond, receivers):
    rx = receivers("forms")
    hub = provisiond(*FAST)
    hub.subscribe("forms", rx.url)
    tenant = hub.create_tenant("forms.example.com")
    at = parse_time(tenant["createdAt"])
    before = at - timedelta(seconds=1)
    # The same instant written four ways counts the same: each on a fresh paused subscription.
    forms = {
        "z": before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lower": before.strftime("%Y-%m-%dt%H:%M:%Sz"),
        "offset": before.astimezone(timezone(timedelta(hours=5, minutes=30))).strftime("%Y-%m-%dT%H:%M:%S+05:30"),
        "fraction": before.strftime("%Y-%m-%dT%H:%M:%S.000000001Z"),
        "after": (at + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for name, since in forms.items():
        sub = hub.subscribe(f"form-{name}", rx.url_for(f"/{name}"))
        hub.patch(sub["id"], paused=True)
        assert replay(hub, sub["id"], since) == {"replayed": 0 if name == "after" else 1}, (name, since)
    # A leap second is RFC 3339.
    assert replay(hub, "form-after", "2016-12-31T23:59:60Z") == {"replayed": 1}

    path = f"{hub.url}/subscriptions/forms/replay"
    for body, field in [
        ({}, "since"),
        ({"since": None}, "since"),
        ({"since": 1700000000}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-30T00:00:00Z"}, "since"),  # no such day
        ({"since": "2026-11-29T24:00:00Z"}, "since"),
        ({"since": "2026-11-29T16:00:00"}, "since"),  # no offset
        ({"since": "2026-11-29 16:00:00Z"}, "since"),
        ({"since": "2026-11-29T12:00:60Z"}, "since"),  # a leap second only ends a UTC day
        ({"since": "2026-11-29T16:00:00Z", "until": "2026-11-30T00:00:00Z"}, "until"),
    ]:
        assert_problem(hub.session.post(path, json=body), 400, field)
    assert_problem(hub.session.post(path, data=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_problem(hub.session.post(f"{hub.url}/subscriptions/nope/replay", json={"since": forms["z"]}), 404, "id")


# ---------------------------------------------------------------------------
# Attempt history.

def test_attempts_keep_the_last_ten_newest_first_with_the_answer(provisiond, receivers):
    answer = b"upstream broken: " + b"x" * 2000
    rx = receivers("broken", default=Reply(500, headers={"Content-Type": "text/plain"}, body=answer))
    hub = provisiond(*QUICK)
    sub = hub.subscribe("broken", rx.url)
    tenant = hub.create_tenant("broken.example.com")
    (delivery,) = [d for d in hub.tenant(tenant["id"])["deliveries"] if d["subscriptionId"] == sub["id"]]
    path = f"{hub.url}/subscriptions/{sub['id']}/deliveries/{delivery['eventId']}/attempts"

    hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["attempts"] >= 12, timeout=60, what="12 attempts")
    r = hub.session.get(path)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 10, items
    for item in items:
        assert set(item) == {"at", "durationMs", "status", "error", "response"}, item
        assert item["status"] == 500 and item["error"] == "HTTP 500", item
        assert item["response"] == answer[:1024].decode(), item
        assert isinstance(item["durationMs"], int) and item["durationMs"] >= 0
    times = [parse_time(i["at"]) for i in items]
    assert times == sorted(times, reverse=True), times
    # Newest first: the newest is no older than the delivery's last attempt.
    last = hub.delivery_of(tenant["id"], sub["id"])["lastAttemptAt"]
    assert times[0] <= parse_time(last)

    # Then a success with an empty answer: newest first, status 204, no error, no response.
    rx.answer(Reply(204))
    hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["state"] == "delivered", what="delivered")
    items = hub.session.get(f"{hub.url}/subscriptions/broken/deliveries/{delivery['eventId']}/attempts").json()["items"]
    assert len(items) == 10
    assert items[0]["status"] == 204 and items[0]["error"] is None and items[0]["response"] is None, items[0]
    assert items[1]["status"] == 500


def test_attempts_of_an_unknown_subscription_or_delivery_are_404(provisiond, receivers):
    rx = receivers("known")
    hub = provisiond(*FAST)
    sub = hub.subscribe("known", rx.url)
    tenant = hub.create_tenant("known.example.com")
    event_id = hub.tenant(tenant["id"])["deliveries"][0]["eventId"]
    hub.wait_counts(sub["id"], delivered=1)
    items = hub.session.get(f"{hub.url}/subscriptions/known/deliveries/{event_id}/attempts").json()["items"]
    assert [i["status"] for i in items] == [204]

    assert_problem(hub.session.get(f"{hub.url}/subscriptions/nope/deliveries/{event_id}/attempts"), 404, "id")
    assert_problem(hub.session.get(f"{hub.url}/subscriptions/known/deliveries/evt_nope/attempts"), 404, "eventId")
    # An event that exists, but was published before this subscription existed.
    other = hub.subscribe("other", rx.url_for("/other"))
    assert_problem(hub.session.get(f"{hub.url}/subscriptions/{other['id']}/deliveries/{event_id}/attempts"), 404, "eventId")


# ---------------------------------------------------------------------------
# A subscription's name where its id goes.

def test_name_works_wherever_the_id_goes(provisiond, receivers):
    rx = receivers("named", default=Reply(500))
    hub = provisiond(*FAST, "--max-attempts", "1")
    sub = hub.subscribe("prod", rx.url)
    tenant = hub.create_tenant("named.example.com")
    hub.wait_counts(sub["id"], failed=1)

    assert hub.subscription("prod")["id"] == sub["id"]
    assert hub.secret("prod") == sub["secret"]
    patched = hub.patch("prod", paused=True)
    assert patched["id"] == sub["id"] and patched["paused"] is True
    assert hub.subscription(sub["id"])["paused"] is True
    (item,) = hub.deliveries("prod", state="failed")
    assert item["tenantId"] == tenant["id"]
    assert hub.retry("prod")["requeued"] == 1
    assert hub.subscription(sub["id"])["counts"]["pending"] == 1
    assert hub.session.get(f"{hub.url}/subscriptions/prod/deliveries/{item['eventId']}/attempts").status_code == 200

    # An id wins where a name is the same text.
    twin = hub.subscribe(sub["id"], rx.url_for("/twin"))
    assert hub.subscription(sub["id"])["name"] == "prod"
    assert hub.subscription(twin["id"])["name"] == sub["id"]

    hub.delete("prod")
    assert_problem(hub.session.get(f"{hub.url}/subscriptions/prod"), 404, "id")
    assert_problem(hub.session.get(f"{hub.url}/subscriptions/prod/secret"), 404, "id")
    # With prod gone, its old id is now only the twin's name.
    assert hub.subscription(sub["id"])["id"] == twin["id"]
    assert hub.secret(sub["id"]) == twin["secret"]


# ---------------------------------------------------------------------------
# 415 and unknown query parameters.

def settled_hub(provisiond, receivers):
    """A provisiond with one subscription and one tenant, delivered: nothing changes on its own."""
    rx = receivers("quiet")
    hub = provisiond(*FAST)
    sub = hub.subscribe("quiet", rx.url)
    tenant = hub.create_tenant("quiet.example.com")
    hub.wait_counts(sub["id"], delivered=1)
    return hub, sub, tenant


def test_a_body_that_is_not_json_is_415_and_changes_nothing(provisiond, receivers):
    hub, sub, tenant = settled_hub(provisiond, receivers)
    s = hub.session
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
    text = {"Content-Type": "text/plain; charset=utf-8"}
    sends = [
        lambda: s.post(hub.url + "/tenants", data=json.dumps(tenant_body("form.example.com")), headers=form),
        lambda: s.post(hub.url + "/tenants", data=json.dumps(tenant_body("text.example.com")), headers=text),
        lambda: s.patch(f"{hub.url}/tenants/{tenant['id']}", data='{"plan":"Gold"}', headers=form),
        lambda: s.post(hub.url + "/subscriptions", data='{"name":"new","url":"http://127.0.0.1:9/x"}', headers=text),
        lambda: s.patch(f"{hub.url}/subscriptions/{sub['id']}", data='{"paused":true}', headers=form),
        lambda: s.post(f"{hub.url}/subscriptions/quiet/replay", data='{"since":"2000-01-01T00:00:00Z"}', headers=text),
    ]
    for send in sends:
        assert_rejected_unchanged(hub.svc, send, 415, "Content-Type")
    assert hub.subscription(sub["id"])["counts"] == {"pending": 0, "delivered": 1, "failed": 0}

    # JSON types with parameters, `+json` types and no Content-Type at all are read as JSON.
    for headers in [{"Content-Type": "application/json; charset=utf-8"},
                    {"Content-Type": "Application/Merge-Patch+JSON"}, {}]:
        r = s.patch(f"{hub.url}/tenants/{tenant['id']}", data='{"plan":"Gold"}', headers=headers)
        assert r.status_code in (200, 202), (headers, r.status_code, r.text)
        assert hub.tenant(tenant["id"])["plan"] == "Gold"


def test_an_unknown_query_parameter_is_400_naming_it(provisiond, receivers):
    hub, sub, tenant = settled_hub(provisiond, receivers)
    s = hub.session
    event_id = hub.tenant(tenant["id"])["deliveries"][0]["eventId"]
    for path, name in [
        ("/tenants?stauts=failed", "stauts"),
        ("/tenants?status=failed&state=failed", "state"),
        (f"/tenants/{tenant['id']}?verbose=1", "verbose"),
        (f"/tenants/{tenant['id']}/events?status=x", "status"),
        ("/subscriptions?limit=1", "limit"),
        ("/subscriptions/quiet?x=", "x"),
        ("/subscriptions/quiet/deliveries?status=failed", "status"),
        (f"/subscriptions/quiet/deliveries/{event_id}/attempts?limit=5", "limit"),
        ("/subscriptions/quiet/secret?format=raw", "format"),
        ("/status?since=1", "since"),
        ("/healthz?probe=1", "probe"),
    ]:
        assert_problem(s.get(hub.url + path), 400, name)
    # A change refused for its query parameter changes nothing.
    assert_rejected_unchanged(hub.svc, lambda: s.post(hub.url + "/tenants?dryRun=true", json=tenant_body("dry.example.com")),
                              400, "dryRun")
    assert_rejected_unchanged(hub.svc, lambda: s.delete(f"{hub.url}/subscriptions/quiet?force=1"), 400, "force")
    assert_rejected_unchanged(hub.svc, lambda: s.post(f"{hub.url}/tenants/{tenant['id']}/deactivate?now=1"), 400, "now")

    # The parameters each list takes are still taken.
    assert s.get(hub.url + "/tenants", params={"domain": "quiet.example.com", "status": "provisioned",
                                               "deleted": "false", "limit": 5, "after": ""}).status_code == 200
    assert s.get(f"{hub.url}/tenants/{tenant['id']}/events", params={"limit": 5, "after": ""}).status_code == 200
    assert s.get(f"{hub.url}/subscriptions/quiet/deliveries",
                 params={"state": "delivered", "limit": 5, "after": ""}).status_code == 200
