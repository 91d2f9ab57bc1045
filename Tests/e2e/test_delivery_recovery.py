"""Delivery when things go wrong and come back: receivers that are down and
start later, kill -9 of the service mid-delivery, catch-up of a new
environment, pause and delete, and the circuit breaker that probes a dead
receiver instead of hammering it. Real binary, real receivers on 127.0.0.1;
every wait is a bounded poll, nothing asserts speed."""
import time

from conftest import wait_until
from receivers import FAST, Reply, provisiond, receivers, verify  # noqa: F401 (fixtures)


def body_tenant_ids(rx):
    """Tenant ids in the bodies rx received (distinct)."""
    return {r.json()["data"]["id"] for r in rx.snapshot()}


def test_refused_then_receiver_comes_up_and_backlog_arrives(provisiond, receivers):
    hub = provisiond(*FAST)
    env = receivers("late", down=True)  # its port refuses connections for now
    sub = hub.subscribe("late", env.url)
    tenants = hub.create_tenants("backlog", 20)

    d = hub.wait_delivery(tenants[0]["id"], sub["id"], lambda d: d["attempts"] >= 1, what="a refused attempt")
    assert d["state"] == "pending" and d["lastStatus"] is None, d
    assert "refused" in d["lastError"].lower(), d
    assert d["deliveredAt"] is None, d
    hub.assert_scheduled(sub["id"])
    assert hub.tenant(tenants[0]["id"])["status"] == "pending"
    # A while of refusals: past the 5 that make it count as down, it keeps being probed.
    wait_until(lambda: sum(x["attempts"] for x in hub.deliveries(sub["id"])) >= 8, what="refusals going on")
    assert hub.subscription(sub["id"])["counts"] == {"pending": 20, "delivered": 0, "failed": 0}

    env.start()
    counts = hub.wait_counts(sub["id"], delivered=20)
    assert counts == {"pending": 0, "delivered": 20, "failed": 0}, counts
    assert body_tenant_ids(env) == {t["id"] for t in tenants}
    assert len(env.ids()) == 20
    for r in env.snapshot():
        verify(r, sub["secret"])
    for t in tenants:
        (d,) = hub.tenant(t["id"])["deliveries"]
        assert d["state"] == "delivered" and d["lastStatus"] == 204 and d["lastError"] is None, d


def test_kill9_mid_delivery_then_restart_delivers_everything(provisiond, receivers, tmp_path):
    args = ["--retry-initial", "100ms", "--retry-max", "1s", "--delivery-timeout", "20s"]
    data_dir = str(tmp_path / "killed")
    hub = provisiond(*args, data_dir=data_dir)
    slow = receivers("slow")
    # The first few are acknowledged at once, the rest hang: in flight when the service dies.
    slow.script(*[Reply(204)] * 4, default=Reply(204, delay=60))
    down = receivers("down", down=True)
    slow_sub, down_sub = hub.subscribe("slow", slow.url), hub.subscribe("down", down.url)
    tenants = hub.create_tenants("crash", 10)

    hub.wait_counts(slow_sub["id"], delivered=4)
    slow.wait_in_flight(1)
    wait_until(lambda: hub.delivery_of(tenants[0]["id"], down_sub["id"])["attempts"] >= 1, what="a refused attempt")
    hub.kill9()
    hung = {r.webhook_id for r in slow.snapshot() if r.done_seq is None}  # in flight when it died
    assert hung, "nothing was in flight"
    slow.release()  # the hanging answers go nowhere now
    slow.answer(Reply(204))

    hub = provisiond(*args, data_dir=data_dir)
    # Nothing acknowledged before the crash is lost from the record.
    counts = hub.subscription(slow_sub["id"])["counts"]
    assert counts["delivered"] >= 4 and counts["failed"] == 0, counts
    down.start()
    for sub in (slow_sub, down_sub):
        counts = hub.wait_counts(sub["id"], delivered=10)
        assert counts == {"pending": 0, "delivered": 10, "failed": 0}, counts
    for t in tenants:
        assert hub.tenant(t["id"])["status"] == "provisioned"

    # At least once: duplicates allowed (the hung attempts were sent again), no event missing.
    event_ids = {i["eventId"] for i in hub.deliveries(slow_sub["id"])}
    assert len(event_ids) == 10
    for rx, sub in ((slow, slow_sub), (down, down_sub)):
        assert rx.ids() == event_ids
        assert body_tenant_ids(rx) == {t["id"] for t in tenants}
        for r in rx.snapshot():
            verify(r, sub["secret"])
    # What was in flight when it died was sent again after the restart.
    for webhook_id in hung:
        assert sum(r.webhook_id == webhook_id for r in slow.snapshot()) >= 2, webhook_id


def test_sigterm_mid_delivery_exits_0_and_restart_delivers_everything(provisiond, receivers, tmp_path):
    args = ["--retry-initial", "100ms", "--retry-max", "1s", "--delivery-timeout", "20s"]
    data_dir = str(tmp_path / "stopped")
    hub = provisiond(*args, data_dir=data_dir)
    rx = receivers("slowish", Reply(204, delay=1))  # answers within the shutdown grace
    hung = receivers("hung", Reply(204, delay=60))  # answers only when released: handed back
    rx_sub, hung_sub = hub.subscribe("slowish", rx.url), hub.subscribe("hung", hung.url)
    tenants = hub.create_tenants("term", 4)
    rx.wait_in_flight(1)
    hung.wait_in_flight(1)

    assert hub.stop() == 0, hub.svc.output()[-2000:]
    hung.release()
    hung.answer(Reply(204))
    hub = provisiond(*args, data_dir=data_dir)
    for sub in (rx_sub, hung_sub):
        counts = hub.wait_counts(sub["id"], delivered=4)
        assert counts == {"pending": 0, "delivered": 4, "failed": 0}, counts
    for rx_, sub in ((rx, rx_sub), (hung, hung_sub)):
        assert body_tenant_ids(rx_) == {t["id"] for t in tenants}
        for r in rx_.snapshot():
            verify(r, sub["secret"])


def test_deliver_all_catches_up_and_deliver_new_does_not(provisiond, receivers):
    hub = provisiond(*FAST)
    old = hub.create_tenants("before", 5)
    catchup, fresh = receivers("catchup"), receivers("fresh")
    catchup_sub = hub.subscribe("catchup", catchup.url, deliver="all")
    fresh_sub = hub.subscribe("fresh", fresh.url)  # deliver: new (the default)
    assert (catchup_sub["deliver"], fresh_sub["deliver"]) == ("all", "new")

    catchup.wait_for_ids(5)
    hub.wait_counts(catchup_sub["id"], delivered=5)
    assert body_tenant_ids(catchup) == {t["id"] for t in old}
    for r in catchup.snapshot():
        verify(r, catchup_sub["secret"])
    for t in old:
        assert hub.tenant(t["id"])["status"] == "provisioned"

    new = hub.create_tenant("after.example.com")
    for rx, sub in ((catchup, catchup_sub), (fresh, fresh_sub)):
        hub.wait_delivery(new["id"], sub["id"], lambda d: d["state"] == "delivered", what=f"{rx.name} got the new one")
    assert body_tenant_ids(fresh) == {new["id"]}  # nothing from before it subscribed
    assert body_tenant_ids(catchup) == {t["id"] for t in old} | {new["id"]}
    assert hub.subscription(fresh_sub["id"])["counts"] == {"pending": 0, "delivered": 1, "failed": 0}


def test_paused_subscription_collects_and_sends_on_unpause(provisiond, receivers):
    hub = provisiond(*FAST)
    active, paused = receivers("active"), receivers("paused")
    active_sub = hub.subscribe("active", active.url)
    paused_sub = hub.subscribe("paused", paused.url)
    assert hub.patch(paused_sub["id"], paused=True)["paused"] is True
    assert hub.subscription(paused_sub["id"])["counts"]["pending"] == 0

    tenants = hub.create_tenants("paused", 5)
    hub.wait_counts(active_sub["id"], delivered=5)
    # The active one got them all; the paused one was due in the same rounds and got nothing.
    time.sleep(0.5)
    assert paused.count() == 0, paused.snapshot()
    assert hub.subscription(paused_sub["id"])["counts"] == {"pending": 5, "delivered": 0, "failed": 0}
    for t in tenants:
        assert hub.tenant(t["id"])["status"] == "pending"

    assert hub.patch(paused_sub["id"], paused=False)["paused"] is False
    hub.wait_counts(paused_sub["id"], delivered=5)
    assert body_tenant_ids(paused) == {t["id"] for t in tenants}
    for r in paused.snapshot():
        verify(r, paused_sub["secret"])
    for t in tenants:
        assert hub.tenant(t["id"])["status"] == "provisioned"


def test_deleted_subscription_gets_no_more_attempts(provisiond, receivers):
    hub = provisiond(*FAST)
    gone, keep = receivers("gone", down=True), receivers("keep")
    gone_sub, keep_sub = hub.subscribe("gone", gone.url), hub.subscribe("keep", keep.url)
    tenants = hub.create_tenants("deleted", 3)
    hub.wait_delivery(tenants[0]["id"], gone_sub["id"], lambda d: d["attempts"] >= 1, what="a refused attempt")
    hub.wait_counts(keep_sub["id"], delivered=3)

    hub.delete(gone_sub["id"])
    assert hub.session.get(f"{hub.url}/subscriptions/{gone_sub['id']}").status_code == 404
    for t in tenants:
        assert [d["subscription"] for d in hub.tenant(t["id"])["deliveries"]] == ["keep"]
        assert hub.tenant(t["id"])["status"] == "provisioned"
    # A tenant published after the delete reaches `keep`: the dispatcher has looked since.
    later = hub.create_tenant("after-delete.example.com")
    hub.wait_delivery(later["id"], keep_sub["id"], lambda d: d["state"] == "delivered", what="keep got the later one")
    assert [d["subscription"] for d in hub.tenant(later["id"])["deliveries"]] == ["keep"]

    gone.start()
    time.sleep(1.5)  # longer than --retry-max: any retry still scheduled would have come
    assert gone.count() == 0, gone.snapshot()


def overlap(records):
    """The most requests in progress at once among `records` (start/end intervals)."""
    edges = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records], key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_dead_receiver_is_probed_one_at_a_time_not_hammered(provisiond, receivers):
    max_in_flight, backlog = 8, 200
    hub = provisiond(*FAST, "--max-in-flight", str(max_in_flight))
    dead = receivers("dead", Reply(500, delay=0.05))  # accepts, then fails every request
    healthy = receivers("healthy")
    dead_sub, healthy_sub = hub.subscribe("dead", dead.url), hub.subscribe("healthy", healthy.url)
    tenants = hub.create_tenants("breaker", backlog)

    # The healthy one is not held up by its dead neighbour.
    hub.wait_counts(healthy_sub["id"], delivered=backlog)
    # Enough probes after the breaker opened to judge them.
    first = max_in_flight + 5  # at most this many can start before the 5th failure is counted
    dead.wait_for_requests(first + 3)

    records = [r for r in dead.snapshot() if r.end is not None]
    records.sort(key=lambda r: r.start)
    assert all(r.status == 500 for r in records)
    assert dead.max_in_flight <= max_in_flight and healthy.max_in_flight <= max_in_flight, \
        (dead.max_in_flight, healthy.max_in_flight)
    later = records[first:]
    assert overlap(later) <= 1, [(round(r.start, 3), round(r.end, 3)) for r in later]
    # Probed, not hammered: each probe waits a backoff after the previous
    # one's answer (at least half of --retry-initial's 100 ms). A lower bound,
    # so a slow run cannot break it; counting requests instead would depend
    # on how long the healthy backlog took, i.e. on the machine's speed.
    gaps = [b.start - a.end for a, b in zip(later, later[1:])]
    assert gaps and min(gaps) >= 0.05, [round(g, 3) for g in gaps]
    assert dead.count() < backlog, dead.count()
    counts = hub.subscription(dead_sub["id"])["counts"]
    assert counts["delivered"] == 0 and counts["pending"] == backlog, counts

    # One success and the backlog flows again, still within --max-in-flight.
    dead.answer(Reply(204))
    counts = hub.wait_counts(dead_sub["id"], delivered=backlog)
    assert counts == {"pending": 0, "delivered": backlog, "failed": 0}, counts
    assert len(dead.ids()) == backlog
    assert dead.max_in_flight <= max_in_flight, dead.max_in_flight
    assert body_tenant_ids(dead) == {t["id"] for t in tenants}


def test_retry_probes_a_down_subscription_at_once(provisiond, receivers):
    # Long backoff: once down, the next probe would wait 60-120 s on its own.
    hub = provisiond("--retry-initial", "120s", "--retry-max", "10m", "--max-attempts", "1")
    env = receivers("back", down=True)
    sub = hub.subscribe("back", env.url)
    hub.patch(sub["id"], paused=True)
    hub.create_tenants("revive", 20)
    hub.patch(sub["id"], paused=False)  # 5 attempts at once (slow start), 5 refusals in a row: down
    hub.wait_counts(sub["id"], failed=5)
    assert hub.subscription(sub["id"])["state"] == "down"

    env.start()
    assert hub.retry(sub["id"]) == {"requeued": 5, "probing": True}
    # The operator's retry probes now instead of after the breaker's backoff;
    # the first success lets the rest flow. (45 s is below the 60 s the
    # backoff alone would take, and far above what the delivery needs.)
    counts = hub.wait_counts(sub["id"], timeout=45.0, delivered=20)
    assert counts == {"pending": 0, "delivered": 20, "failed": 0}, counts


def test_a_burst_of_failures_does_not_push_the_first_probe_out(provisiond, receivers):
    # 5 attempts (the slow start) fail together (a receiver restarting). The breaker trips, but
    # its first probe waits one initial backoff (~1 s), not the 150-300 s that
    # counting the whole burst as failed probes would give. (Even if this test
    # stalls and a few probes fail, 1+2+4+8+16 s stays within the 60 s wait.)
    hub = provisiond("--retry-initial", "1s", "--retry-max", "300s")
    env = receivers("restarting", down=True)
    sub = hub.subscribe("restarting", env.url)
    hub.patch(sub["id"], paused=True)
    hub.create_tenants("burst", 20)
    hub.patch(sub["id"], paused=False)
    wait_until(lambda: hub.subscription(sub["id"])["state"] == "down", what="5 refusals at once: down")

    env.start()
    counts = hub.wait_counts(sub["id"], timeout=60.0, delivered=20)
    assert counts == {"pending": 0, "delivered": 20, "failed": 0}, counts


def test_the_first_success_after_an_outage_makes_the_whole_backlog_due(provisiond, receivers):
    # Every attempt during the outage is told Retry-After: 120, so each of the
    # 10 deliveries waits at least 2 minutes for its own next attempt.
    hub = provisiond("--retry-initial", "1s", "--retry-max", "10m")
    env = receivers("outage", Reply(503, headers={"Retry-After": "120"}))
    sub = hub.subscribe("outage", env.url)
    hub.patch(sub["id"], paused=True)
    backlog = hub.create_tenants("outage", 10)
    hub.patch(sub["id"], paused=False)  # 5 attempts at once (the slow start), 5 failures in a row: down
    wait_until(lambda: hub.subscription(sub["id"])["state"] == "down", what="down")
    wait_until(lambda: sum(d["attempts"] for d in hub.deliveries(sub["id"])) == 5, what="5 failed attempts")
    assert env.count() == 5  # each of these now waits 2 minutes of its own

    # The receiver is back. A new tenant is due now; the operator's retry
    # probes with it at once, and its success is the first since the outage.
    env.answer(Reply(204))
    fresh = hub.create_tenant("after-outage.example.com")
    hub.retry(sub["id"])
    # The backlog flows with it instead of waiting out its 2-minute backoff
    # (60 s is far below that and far above what 11 deliveries need).
    counts = hub.wait_counts(sub["id"], timeout=60.0, delivered=11)
    assert counts == {"pending": 0, "delivered": 11, "failed": 0}, counts
    assert body_tenant_ids(env) == {t["id"] for t in backlog} | {fresh["id"]}


def test_a_down_subscription_stays_down_across_a_restart(provisiond, receivers, tmp_path):
    # Backoff of 3 s: probes are at least 1.5 s apart. 20 deliveries, 5 of
    # them backed off on their own for at most 3 s: a restart that forgot the
    # breaker would find them due and send 5 at once (its slow start).
    args = ["--retry-initial", "3s", "--retry-max", "3s", "--delivery-timeout", "5s"]
    data_dir = str(tmp_path / "breaker")
    hub = provisiond(*args, data_dir=data_dir)
    dead = receivers("dead", Reply(500, delay=0.05))
    hub.subscribe("dead", dead.url)
    hub.create_tenants("restart", 20)
    wait_until(lambda: "is down" in hub.svc.output(), what="the breaker to open")
    dead.wait_for_requests(6)  # the first 5 (slow start) and at least one probe
    assert hub.stop() == 0

    before = dead.count()
    hub.start()
    dead.wait_for_requests(before + 3, timeout=60.0)  # three probes after the restart
    after = sorted((r for r in dead.snapshot()[before:] if r.end is not None), key=lambda r: r.start)
    # One at a time, spaced by the backoff (a lower bound: a slow run cannot break it).
    assert overlap(after) <= 1, [(round(r.start, 3), round(r.end, 3)) for r in after]
    gaps = [b.start - a.end for a, b in zip(after, after[1:])]
    assert gaps and min(gaps) >= 1.4, [round(g, 3) for g in gaps]


def test_a_backlog_to_a_receiver_that_fails_gets_no_burst(provisiond, receivers):
    # 100 deliveries wait (paused) for a receiver that fails slowly; unpaused,
    # it gets at most 5 attempts at once (the failures that take it down), not
    # --max-in-flight's 32, and then single probes.
    hub = provisiond(*FAST)
    dead = receivers("dead", Reply(500, delay=0.2))
    sub = hub.subscribe("dead", dead.url)
    hub.patch(sub["id"], paused=True)
    hub.create_tenants("burst", 100)
    hub.patch(sub["id"], paused=False)
    wait_until(lambda: hub.subscription(sub["id"])["state"] == "down", what="down")
    dead.wait_for_requests(8)  # and a few probes
    assert dead.max_in_flight <= 5, dead.max_in_flight
    # Once it answers, the backlog flows at the full in-flight limit again.
    dead.answer(Reply(204, delay=0.05))
    hub.retry(sub["id"])
    hub.wait_counts(sub["id"], delivered=100, timeout=60.0)
    assert dead.max_in_flight > 5, dead.max_in_flight
