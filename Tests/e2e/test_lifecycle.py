"""A tenant's life after its creation: update, deactivate, activate, delete,
each an event delivered to every environment in the order it was accepted,
per domain. Real binary, real receivers, signatures checked with the
standardwebhooks library; every wait is a bounded poll."""
import json

from conftest import assert_problem, wait_until
from receivers import FAST, Reply, provisiond, receivers, verify  # noqa: F401 (fixtures)

LIFE = ["tenant.created", "tenant.updated", "tenant.deactivated", "tenant.activated", "tenant.deleted"]


def live_through(hub, domain):
    """Creates `domain` and takes it through its whole life, back to back; returns the tenant id."""
    s = hub.session
    t = hub.create_tenant(domain)
    r = s.patch(f"{hub.url}/tenants/{t['id']}", json={"plan": "Enterprise"})
    assert r.status_code == 202, r.text
    for action in ["deactivate", "activate"]:
        r = s.post(f"{hub.url}/tenants/{t['id']}/{action}")
        assert r.status_code == 202, r.text
    r = s.delete(f"{hub.url}/tenants/{t['id']}")
    assert r.status_code == 202, r.text
    return t["id"]


def bodies(rx, domain):
    """What rx received about `domain`, in arrival order, one per webhook-id (the first)."""
    seen, out = set(), []
    for r in rx.snapshot():
        if r.webhook_id in seen:
            continue
        body = r.json()
        if body["data"].get("domain") == domain:
            seen.add(r.webhook_id)
            out.append((r, body))
    return out


def test_lifecycle_api(provisiond):
    hub = provisiond(*FAST)
    s = hub.session
    t = hub.create_tenant("life.example.com")
    assert t["version"] == 1 and t["active"] is True and t["deletedAt"] is None and t["updatedAt"] == t["createdAt"]
    url = f"{hub.url}/tenants/{t['id']}"

    # A change: 202, the next version, the whole admin object replaced.
    r = s.patch(url, json={"admin": {"username": "root", "email": "root@life.example.com"}, "plan": "Pro"})
    assert r.status_code == 202, r.text
    changed = r.json()
    assert changed["version"] == 2 and changed["plan"] == "Pro"
    assert changed["admin"] == {"username": "root", "email": "root@life.example.com"}
    assert changed["attributes"] == t["attributes"]
    # The same again changes nothing: 200, no event.
    r = s.patch(url, json={"plan": "Pro", "attributes": json.loads(json.dumps(t["attributes"]))})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    r = s.post(url + "/activate")
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    r = s.post(url + "/deactivate")
    assert r.status_code == 202 and r.json()["active"] is False and r.json()["version"] == 3, r.text
    r = s.post(url + "/deactivate")
    assert r.status_code == 200 and r.json()["version"] == 3, r.text

    # Bad PATCH bodies: 400 naming the field, nothing changed.
    for body, field in [({"domain": "x.example.com"}, "domain"), ({"id": "ten_x"}, "id"), ({"plan": None}, "plan"),
                        ({"admin": {"username": "a"}}, "admin.email"), ({"admin": None}, "admin"),
                        ({"version": 9}, "version"), ({"bogus": 1}, "bogus"), ({"attributes": []}, "attributes"),
                        ({"plan": "x\ny"}, "plan")]:
        assert_problem(s.patch(url, json=body), 400, field)
    assert s.get(url).json()["version"] == 3

    # Deleted: 202 with deletedAt, still readable, refuses every change with 409.
    r = s.delete(url)
    assert r.status_code == 202, r.text
    deleted = r.json()
    assert deleted["deletedAt"] is not None and deleted["version"] == 4 and deleted["active"] is False
    assert s.get(url).json()["deletedAt"] == deleted["deletedAt"]
    for send in [lambda: s.patch(url, json={"plan": "Pro"}), lambda: s.post(url + "/activate"),
                 lambda: s.post(url + "/deactivate"), lambda: s.delete(url)]:
        assert_problem(send(), 409, "id")
    assert s.get(url).json()["version"] == 4

    # Its events, oldest first, with cursors.
    r = s.get(url + "/events", params={"limit": 3})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["type"] for e in page["items"]] == ["tenant.created", "tenant.updated", "tenant.deactivated"]
    assert [e["version"] for e in page["items"]] == [1, 2, 3]
    rest = s.get(url + "/events", params={"after": page["next"]}).json()
    assert [e["type"] for e in rest["items"]] == ["tenant.deleted"] and rest["next"] is None
    assert_problem(s.get(url + "/events", params={"after": "evt_nope"}), 400, "after")
    assert_problem(s.get(f"{hub.url}/tenants/ten_nope/events"), 404)

    # Listing: live ones by default, deleted ones on request; the domain is free again.
    assert all(x["id"] != t["id"] for x in s.get(hub.url + "/tenants").json()["items"])
    assert [x["id"] for x in s.get(hub.url + "/tenants", params={"deleted": "true"}).json()["items"]] == [t["id"]]
    assert_problem(s.get(hub.url + "/tenants", params={"deleted": "maybe"}), 400, "deleted")
    again = hub.create_tenant("life.example.com")
    assert again["id"] != t["id"] and again["version"] == 1
    assert [e["type"] for e in s.get(f"{hub.url}/tenants/{again['id']}/events").json()["items"]] == ["tenant.created"]
    assert_problem(s.patch(f"{hub.url}/tenants/ten_nope", json={"plan": "x"}), 404)


def test_events_reach_an_up_and_a_returning_environment_in_order(provisiond, receivers):
    hub = provisiond(*FAST)
    up = receivers("up")
    down = receivers("down", down=True)
    up_sub, down_sub = hub.subscribe("up", up.url), hub.subscribe("down", down.url)
    tenant_id = live_through(hub, "order.example.com")

    up.wait_for_ids(5)
    got = bodies(up, "order.example.com")
    assert [b["type"] for _, b in got] == LIFE
    for r, b in got:
        assert verify(r, up_sub["secret"])["type"] == b["type"]
    # Sent one after the other: each only after the previous one was acknowledged.
    for (a, _), (b, _) in zip(got, got[1:]):
        assert b.start >= a.end
    deliveries = hub.tenant(tenant_id)["deliveries"]
    assert sorted(d["type"] for d in deliveries if d["subscriptionId"] == up_sub["id"]) == sorted(LIFE)

    # The down one: only the first is attempted; the rest wait behind it, visibly.
    wait_until(lambda: any(d["attempts"] >= 1 for d in hub.deliveries(down_sub["id"])), what="an attempt at down")
    items = hub.deliveries(down_sub["id"])
    head = next(d for d in items if d["type"] == "tenant.created")
    assert head["blockedBy"] is None
    for d in items:
        if d["type"] != "tenant.created":
            assert d["attempts"] == 0 and d["state"] == "pending" and d["nextAttemptAt"] is None, d
            assert d["blockedBy"] == head["eventId"], d

    down.start()
    hub.wait_counts(down_sub["id"], delivered=5)
    got = bodies(down, "order.example.com")
    assert [b["type"] for _, b in got] == LIFE
    assert [b["data"]["version"] for _, b in got] == [1, 2, 3, 4, 5]
    for r, b in got:
        assert verify(r, down_sub["secret"]) == b
    last = got[-1][1]["data"]
    assert last["deletedAt"] is not None and last["plan"] == "Enterprise" and last["active"] is True


def test_a_failed_head_blocks_its_domain_for_that_subscription_only(provisiond, receivers):
    hub = provisiond(*FAST, "--max-attempts", "2")
    picky = receivers("picky")
    other = receivers("other")
    picky_sub, other_sub = hub.subscribe("picky", picky.url), hub.subscribe("other", other.url)
    # picky refuses everything about blocked.example.com until told otherwise.
    picky.decide = lambda body: Reply(500) if b'"blocked.example.com"' in body else None
    blocked = hub.create_tenant("blocked.example.com")
    hub.wait_delivery(blocked["id"], picky_sub["id"], lambda d: d["state"] == "failed", what="the head to fail")
    s = hub.session
    for action in ["deactivate", "activate"]:
        assert s.post(f"{hub.url}/tenants/{blocked['id']}/{action}").status_code == 202
    free = hub.create_tenant("free.example.com")

    # Other domains and other subscriptions flow meanwhile.
    hub.wait_delivery(free["id"], picky_sub["id"], lambda d: d["state"] == "delivered", what="free to reach picky")
    other.wait_for_ids(4)
    assert [b["type"] for _, b in bodies(other, "blocked.example.com")] == LIFE[:1] + ["tenant.deactivated", "tenant.activated"]
    head = hub.delivery_of(blocked["id"], picky_sub["id"])
    waiting = [d for d in hub.tenant(blocked["id"])["deliveries"] if d["subscriptionId"] == picky_sub["id"] and d is not head]
    waiting = [d for d in waiting if d["type"] != "tenant.created"]
    assert len(waiting) == 2 and all(d["state"] == "pending" and d["attempts"] == 0 for d in waiting), waiting
    assert all(d["blockedBy"] == head["eventId"] for d in waiting), waiting
    assert hub.tenant(blocked["id"])["status"] == "failed"

    # retry releases the rest, in order.
    picky.decide = None
    assert hub.retry(picky_sub["id"])["requeued"] == 1
    wait_until(lambda: all(d["state"] == "delivered" for d in hub.tenant(blocked["id"])["deliveries"]), what="all delivered")
    acknowledged = [r.json()["type"] for r in picky.snapshot()
                    if r.status == 204 and r.json()["data"]["domain"] == "blocked.example.com"]
    assert acknowledged == LIFE[:1] + ["tenant.deactivated", "tenant.activated"]


def test_filters_and_operational_events(provisiond, receivers):
    hub = provisiond(*FAST, "--max-attempts", "8")
    deletions = receivers("deletions")
    alerts = receivers("alerts")
    flaky = receivers("flaky", Reply(503))
    del_sub = hub.subscribe("deletions", deletions.url, events=["tenant.deleted"])
    alert_sub = hub.subscribe("alerts", alerts.url,
                              events=["delivery.failed", "subscription.down", "subscription.recovered"])
    assert alert_sub["events"] == ["delivery.failed", "subscription.down", "subscription.recovered"]
    assert hub.subscription(del_sub["id"])["events"] == ["tenant.deleted"]
    flaky_sub = hub.subscribe("flaky", flaky.url)
    assert flaky_sub["events"] == LIFE

    live_through(hub, "filtered.example.com")
    deletions.wait_for_ids(1)
    # The receiver dies: down once; max-attempts: delivery.failed; back: recovered once.
    wait_until(lambda: any(b["type"] == "subscription.down" for b in (r.json() for r in alerts.snapshot())),
               what="subscription.down at the alerting hook")
    wait_until(lambda: any(b["type"] == "delivery.failed" for b in (r.json() for r in alerts.snapshot())),
               timeout=60.0, what="delivery.failed at the alerting hook")
    flaky.answer(Reply(204))
    hub.retry(flaky_sub["id"])
    hub.wait_counts(flaky_sub["id"], pending=0, failed=0)
    wait_until(lambda: any(b["type"] == "subscription.recovered" for b in (r.json() for r in alerts.snapshot())),
               what="subscription.recovered at the alerting hook")

    got = [(r, r.json()) for r in alerts.snapshot()]
    by_type = {}
    for r, b in got:
        verify(r, alert_sub["secret"])
        by_type.setdefault(b["type"], {})[r.webhook_id] = b
    assert len(by_type["subscription.down"]) == 1 and len(by_type["subscription.recovered"]) == 1, by_type.keys()
    (down,) = by_type["subscription.down"].values()
    assert down["data"]["subscriptionId"] == flaky_sub["id"] and down["data"]["subscription"] == "flaky"
    assert down["data"]["url"] == flaky.url and down["data"]["lastStatus"] == 503 and "503" in down["data"]["lastError"]
    assert down["data"]["backlog"] >= 1 and down["data"]["since"]
    (up,) = by_type["subscription.recovered"].values()
    assert up["data"]["subscriptionId"] == flaky_sub["id"] and up["data"]["downSeconds"] >= 0 and "backlog" in up["data"]
    failed = list(by_type["delivery.failed"].values())
    assert failed and all(f["data"]["subscription"] == "flaky" and f["data"]["domain"] == "filtered.example.com"
                          and f["data"]["attempts"] == 8 and f["data"]["lastStatus"] == 503 for f in failed), failed
    assert set(by_type) <= {"subscription.down", "subscription.recovered", "delivery.failed"}

    # The deletions hook got exactly the deletion, nothing else.
    assert [b["type"] for _, b in bodies(deletions, "filtered.example.com")] == ["tenant.deleted"]
    assert all(r.json()["type"] == "tenant.deleted" for r in deletions.snapshot())
    # Unknown types are refused, and PATCH can change the list.
    assert_problem(hub.session.post(hub.url + "/subscriptions", json={"name": "x", "url": deletions.url,
                                                                      "events": ["tenant.exploded"]}), 400, "events[0]")
    assert_problem(hub.session.patch(f"{hub.url}/subscriptions/{del_sub['id']}", json={"events": []}), 400, "events")
    assert hub.patch(del_sub["id"], events=["tenant.created"])["events"] == ["tenant.created"]


def test_operational_events_are_never_sent_to_the_subscription_they_are_about(provisiond, receivers):
    hub = provisiond(*FAST)
    rx = receivers("self", Reply(500))
    sub = hub.subscribe("self", rx.url, events=["tenant.created", "subscription.down", "subscription.recovered"])
    hub.create_tenants("self", 6)
    wait_until(lambda: "is down" in hub.svc.output(), what="down")
    rx.answer(Reply(204))
    hub.retry(sub["id"])
    hub.wait_counts(sub["id"], delivered=6)
    assert {r.json()["type"] for r in rx.snapshot()} == {"tenant.created"}


def test_deliver_all_replays_every_live_tenant_in_order(provisiond, receivers):
    hub = provisiond(*FAST)
    live_through(hub, "gone.example.com")
    kept = hub.create_tenant("kept.example.com")
    s = hub.session
    assert s.patch(f"{hub.url}/tenants/{kept['id']}", json={"plan": "Gold"}).status_code == 202
    assert s.post(f"{hub.url}/tenants/{kept['id']}/deactivate").status_code == 202
    late = receivers("late")
    sub = hub.subscribe("late", late.url, deliver="all")
    # Published while it catches up: after the older ones of its domain.
    assert s.post(f"{hub.url}/tenants/{kept['id']}/activate").status_code == 202
    hub.wait_counts(sub["id"], delivered=4)
    assert [b["type"] for _, b in bodies(late, "kept.example.com")] == \
        ["tenant.created", "tenant.updated", "tenant.deactivated", "tenant.activated"]
    assert bodies(late, "gone.example.com") == []  # a deleted tenant is not replayed
