"""kill -9 right after the 202s: every acknowledged tenant, with one delivery
per subscription, is there after a restart on the same data dir."""
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import DEAD_URLS, TOKEN, Provisiond, all_tenants, tenant_body, wait_until


def start(data_dir):
    return Provisiond(data_dir, "--api-token", TOKEN).start()


def make_poster(service):
    local = threading.local()

    def post(i):
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {TOKEN}"
        body = tenant_body(f"crash{i:04d}.example", attributes={"n": i})
        r = local.session.post(service.url + "/tenants", json=body, timeout=60)
        return i, r.status_code, r.json() if r.status_code in (200, 202) else r.text

    return post


def create_subscriptions(service):
    s = service.api()
    subs = []
    for name, url in zip(["dev", "test", "prod"], DEAD_URLS):
        r = s.post(service.url + "/subscriptions", json={"name": name, "url": url})
        assert r.status_code == 201, r.text
        subs.append(r.json())
    return subs


def check_restarted(data_dir, acknowledged, subs):
    """Restarts on data_dir and checks every acknowledged tenant."""
    again = start(data_dir)
    try:
        s = again.api()
        wait_until(lambda: requests.get(again.url + "/readyz").status_code == 200, what="readyz")
        sub_ids = {x["id"] for x in subs}
        for i, tenant in acknowledged.items():
            r = s.get(again.url + f"/tenants/{tenant['id']}")
            assert r.status_code == 200, (i, r.text)
            got = r.json()
            assert got["domain"] == f"crash{i:04d}.example"
            assert got["attributes"] == {"n": i}
            assert len(got["deliveries"]) == 3, got
            assert {d["subscriptionId"] for d in got["deliveries"]} == sub_ids
        listed = {t["id"] for t in all_tenants(s, again.url)}
        assert {t["id"] for t in acknowledged.values()} <= listed
        for sub in s.get(again.url + "/subscriptions").json()["items"]:
            counts = sub["counts"]
            assert counts["pending"] + counts["delivered"] + counts["failed"] == len(listed), sub
        metrics = requests.get(again.url + "/metrics").text.splitlines()
        assert f"provisiond_tenants_total {len(listed)}" in metrics
        # Idempotency survives the crash: the same request is a 200 with the same id.
        i, tenant = next(iter(acknowledged.items()))
        r = s.post(again.url + "/tenants", json=tenant_body(f"crash{i:04d}.example", attributes={"n": i}))
        assert r.status_code == 200 and r.json()["id"] == tenant["id"]
        return listed
    finally:
        again.stop()


def test_kill9_right_after_the_last_202_loses_nothing(data_dir):
    service = start(data_dir)
    try:
        subs = create_subscriptions(service)
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(make_poster(service), range(200)))
        service.kill9()
    finally:
        service.stop()
    bad = [(i, code, body) for i, code, body in results if code != 202]
    assert not bad, bad[:5]
    acknowledged = {i: body for i, _, body in results}
    for body in acknowledged.values():
        assert len(body["deliveries"]) == 3
    listed = check_restarted(data_dir, acknowledged, subs)
    assert len(listed) == 200


def test_kill9_while_posting_keeps_every_acknowledged_tenant(data_dir):
    """The process dies while requests are in flight: those that got a 202
    are all there; the others may or may not be."""
    service = start(data_dir)
    acknowledged = {}
    lock = threading.Lock()
    killed = threading.Event()
    try:
        subs = create_subscriptions(service)
        post = make_poster(service)

        def guarded(i):
            if killed.is_set():
                return
            try:
                i, code, body = post(i)
            except requests.RequestException:
                return
            if code == 202:
                with lock:
                    acknowledged[i] = body
                    if len(acknowledged) >= 100:
                        if not killed.is_set():
                            killed.set()
                            service.kill9()

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(guarded, range(400)))
    finally:
        service.stop()
    assert killed.is_set(), len(acknowledged)
    check_restarted(data_dir, acknowledged, subs)


def test_kill9_during_deliver_all_catch_up_resumes_after_restart(data_dir):
    service = start(data_dir)
    try:
        s = service.api()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(make_poster(service), range(300)))
        assert all(code == 202 for _, code, _ in results)
        r = s.post(service.url + "/subscriptions", json={"name": "late", "url": DEAD_URLS[0], "deliver": "all"})
        assert r.status_code == 201, r.text
        sub_id = r.json()["id"]
        service.kill9()
    finally:
        service.stop()

    again = start(data_dir)
    try:
        s = again.api()

        def caught_up():
            counts = s.get(again.url + f"/subscriptions/{sub_id}").json()["counts"]
            return sum(counts.values()) == 300

        wait_until(caught_up, timeout=60, what="catch-up resumed after restart")
        for t in all_tenants(s, again.url):
            assert [d["subscriptionId"] for d in t["deliveries"]] == [sub_id]
        # The tenant counter starts from what is on disk.
        metrics = requests.get(again.url + "/metrics").text
        assert "provisiond_tenants_total 300" in metrics.splitlines()
    finally:
        again.stop()
