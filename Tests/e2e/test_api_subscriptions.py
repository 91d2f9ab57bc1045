"""/subscriptions over real HTTP: create, read, patch, delete, secret,
deliveries (filter, paging), retry, deliver new/all, and every validation rule.
Webhook URLs point where nothing listens, so deliveries stay pending."""
import base64
import os
import re

import pytest

from conftest import DEAD_URLS, all_tenants, assert_problem, assert_rejected_unchanged, tenant_body, wait_until
from receivers import FAST, provisiond, receivers  # noqa: F401 (fixtures)

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ITEM_FIELDS = {"tenantId", "domain", "eventId", "state", "attempts", "lastAttemptAt", "lastStatus",
               "lastError", "nextAttemptAt", "deliveredAt"}


def secret_of(n):
    return "whsec_" + base64.b64encode(os.urandom(n)).decode()


def create(service, name, url=DEAD_URLS[0], **extra):
    r = service.api().post(service.url + "/subscriptions", json={"name": name, "url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def publish(service, domain):
    r = service.api().post(service.url + "/tenants", json=tenant_body(domain))
    assert r.status_code == 202, r.text
    return r.json()


def subscriptions(service):
    r = service.api().get(service.url + "/subscriptions")
    assert r.status_code == 200
    return r.json()["items"]


def post_subscription(service, **body):
    """POST /subscriptions with `json=` or raw `data=` (sent as JSON)."""
    return service.api().post(service.url + "/subscriptions", headers={"Content-Type": "application/json"}, **body)


def patch_subscription(service, sub_id, **body):
    """PATCH /subscriptions/{id} with `json=` or raw `data=` (sent as JSON)."""
    return service.api().patch(service.url + f"/subscriptions/{sub_id}", headers={"Content-Type": "application/json"}, **body)


def total(counts):
    return counts["pending"] + counts["delivered"] + counts["failed"]


# --- create / read -------------------------------------------------------------------------

def test_create_get_list_and_secret(api_service):
    s = api_service.api()
    r = s.post(api_service.url + "/subscriptions", json={"name": "prod", "url": "https://prod.example/hooks/tenants"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    sub = r.json()
    assert r.headers["Location"] == f"/subscriptions/{sub['id']}"
    assert sub["name"] == "prod"
    assert sub["url"] == "https://prod.example/hooks/tenants"
    assert sub["deliver"] == "new"
    assert sub["paused"] is False
    assert RFC3339.match(sub["createdAt"])
    assert sub["counts"] == {"pending": 0, "delivered": 0, "failed": 0}
    # A generated secret: whsec_ + base64 of 24-64 bytes.
    assert sub["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(sub["secret"][6:], validate=True)) <= 64

    got = s.get(api_service.url + r.headers["Location"])
    assert got.status_code == 200
    g = got.json()
    assert "secret" not in g
    assert {k: v for k, v in sub.items() if k != "secret"} == g

    listed = s.get(api_service.url + "/subscriptions").json()
    assert set(listed) >= {"items"}
    assert listed["items"] == [g]

    secret = s.get(api_service.url + f"/subscriptions/{sub['id']}/secret")
    assert secret.status_code == 200
    assert secret.json() == {"secret": sub["secret"]}


def test_given_secret_is_kept(api_service):
    for n, name in [(24, "s24"), (32, "s32"), (64, "s64")]:
        secret = secret_of(n)
        sub = create(api_service, name, secret=secret)
        assert sub["secret"] == secret
        got = api_service.api().get(api_service.url + f"/subscriptions/{sub['id']}/secret").json()
        assert got["secret"] == secret


def test_valid_names_and_urls(api_service):
    for name, url in [
        ("a", "http://127.0.0.1:9/x"),
        ("0", "https://example.com"),
        ("a-b_c-9", "http://localhost:8080/hooks?env=dev"),
        ("a" * 63, "HTTPS://Example.COM/path"),
        ("ports", "http://127.0.0.1:1/lowest"),
        ("portmax", "http://127.0.0.1:65535/highest"),
        ("ipv6", "http://[::1]:9/x"),
        ("user", "http://ops@127.0.0.1:9/x"),
    ]:
        sub = create(api_service, name, url)
        assert sub["name"] == name and sub["url"] == url


def test_deliver_all_value_is_shown(api_service):
    assert create(api_service, "everything", deliver="all")["deliver"] == "all"
    assert create(api_service, "only-new", deliver="new")["deliver"] == "new"


def test_taken_name_is_409(api_service):
    create(api_service, "prod")
    taken = {"name": "prod", "url": DEAD_URLS[1]}
    assert_rejected_unchanged(api_service, lambda: post_subscription(api_service, json=taken), 409, "name")


def valid_sub(**changes):
    body = {"name": "bad", "url": "http://127.0.0.1:9/x"}
    for k, v in changes.items():
        if v is ...:
            body.pop(k)
        else:
            body[k] = v
    return body


INVALID = [
    ("missing name", valid_sub(name=...), "name"),
    ("name number", valid_sub(name=5), "name"),
    ("name null", valid_sub(name=None), "name"),
    ("name empty", valid_sub(name=""), "name"),
    ("name uppercase", valid_sub(name="Prod"), "name"),
    ("name leading hyphen", valid_sub(name="-prod"), "name"),
    ("name leading underscore", valid_sub(name="_prod"), "name"),
    ("name with space", valid_sub(name="prod env"), "name"),
    ("name with dot", valid_sub(name="prod.env"), "name"),
    ("name with slash", valid_sub(name="prod/env"), "name"),
    ("name non-ascii", valid_sub(name="pr\u00f6d"), "name"),
    ("name 64 chars", valid_sub(name="a" * 64), "name"),
    ("missing url", valid_sub(url=...), "url"),
    ("url number", valid_sub(url=5), "url"),
    ("url empty", valid_sub(url=""), "url"),
    ("url ftp", valid_sub(url="ftp://example.com/hooks"), "url"),
    ("url relative path", valid_sub(url="/hooks/tenants"), "url"),
    ("url no scheme", valid_sub(url="example.com/hooks"), "url"),
    ("url no host", valid_sub(url="http://"), "url"),
    ("url mailto", valid_sub(url="mailto:ops@example.com"), "url"),
    ("url with space", valid_sub(url="http://exa mple.com/"), "url"),
    ("url scheme only", valid_sub(url="https:"), "url"),
    # libcurl reads this host as evil.example (user 127.0.0.1, password 40001 and a backslash).
    ("url backslash before @", valid_sub(url="http://127.0.0.1:40001\\@evil.example/bs"), "url"),
    ("url backslash in path", valid_sub(url="http://127.0.0.1:9/a\\b"), "url"),
    ("url port 0", valid_sub(url="http://127.0.0.1:0/x"), "url"),
    ("url port 99999", valid_sub(url="http://127.0.0.1:99999/x"), "url"),
    ("url port 65536", valid_sub(url="http://127.0.0.1:65536/x"), "url"),
    # Hosts curl reads differently from how they are written.
    ("url hex ip", valid_sub(url="http://0x7f.1:9/x"), "url"),
    ("url one slash", valid_sub(url="http:/127.0.0.1:9/x"), "url"),
    ("url three slashes", valid_sub(url="http:///127.0.0.1:9/x"), "url"),
    ("url encoded host", valid_sub(url="http://exa%6dple.com/x"), "url"),
    ("url two @", valid_sub(url="http://a@b@127.0.0.1:9/x"), "url"),
    ("secret number", valid_sub(secret=5), "secret"),
    ("secret empty", valid_sub(secret=""), "secret"),
    ("secret no prefix", valid_sub(secret=base64.b64encode(b"k" * 32).decode()), "secret"),
    ("secret wrong prefix", valid_sub(secret="whsek_" + base64.b64encode(b"k" * 32).decode()), "secret"),
    ("secret too short", valid_sub(secret="whsec_" + base64.b64encode(b"k" * 23).decode()), "secret"),
    ("secret too long", valid_sub(secret="whsec_" + base64.b64encode(b"k" * 65).decode()), "secret"),
    ("secret prefix only", valid_sub(secret="whsec_"), "secret"),
    ("secret not base64", valid_sub(secret="whsec_" + "!" * 44), "secret"),
    ("deliver unknown", valid_sub(deliver="sometimes"), "deliver"),
    ("deliver uppercase", valid_sub(deliver="ALL"), "deliver"),
    ("deliver number", valid_sub(deliver=1), "deliver"),
    ("deliver bool", valid_sub(deliver=True), "deliver"),
    ("unknown field", valid_sub(color="red"), "color"),
    ("id is not input", valid_sub(id="sub_x"), "id"),
]


@pytest.mark.parametrize("body,field", [(b, f) for _, b, f in INVALID], ids=[n for n, _, _ in INVALID])
def test_invalid_subscription_is_400_and_changes_nothing(shared_service, body, field):
    if not subscriptions(shared_service):
        create(shared_service, "existing")
    assert_rejected_unchanged(shared_service, lambda: post_subscription(shared_service, json=body), 400, field)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"prod"', b"null", b'{"name": "x",}', b'{"name":"x"} {}'],
                         ids=["empty", "truncated", "array", "string", "null", "trailing comma", "two documents"])
def test_malformed_subscription_body_is_400(shared_service, raw):
    assert_rejected_unchanged(shared_service, lambda: post_subscription(shared_service, data=raw), 400)


# --- PATCH ---------------------------------------------------------------------------------

def test_patch_url_and_paused(api_service):
    s = api_service.api()
    sub = create(api_service, "prod")
    url = api_service.url + f"/subscriptions/{sub['id']}"

    r = s.patch(url, json={"paused": True})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["url"] == sub["url"]
    assert "secret" not in r.json()

    r = s.patch(url, json={"url": "http://127.0.0.1:1/new"})
    assert r.status_code == 200
    assert r.json()["url"] == "http://127.0.0.1:1/new" and r.json()["paused"] is True

    r = s.patch(url, json={"url": DEAD_URLS[2], "paused": False})
    assert r.status_code == 200
    got = s.get(url).json()
    assert got["url"] == DEAD_URLS[2] and got["paused"] is False
    assert got["name"] == "prod" and got["id"] == sub["id"] and got["createdAt"] == sub["createdAt"]
    # The secret did not change.
    assert s.get(url + "/secret").json()["secret"] == sub["secret"]


PATCH_INVALID = [
    ("name is read-only", {"name": "other"}, "name"),
    ("id is read-only", {"id": "sub_other"}, "id"),
    ("secret", {"secret": "whsec_" + base64.b64encode(b"k" * 32).decode()}, "secret"),
    ("deliver", {"deliver": "all"}, "deliver"),
    ("counts", {"counts": {"pending": 0}}, "counts"),
    ("createdAt", {"createdAt": "2026-01-01T00:00:00Z"}, "createdAt"),
    ("unknown field", {"color": "red"}, "color"),
    ("unknown field beside a valid one", {"paused": True, "color": "red"}, "color"),
    ("read-only beside a valid one", {"url": DEAD_URLS[1], "name": "x"}, "name"),
    ("paused string", {"paused": "yes"}, "paused"),
    ("paused number", {"paused": 1}, "paused"),
    ("paused null", {"paused": None}, "paused"),
    ("url ftp", {"url": "ftp://example.com/x"}, "url"),
    ("url relative", {"url": "/x"}, "url"),
    ("url number", {"url": 5}, "url"),
    ("url with valid paused", {"url": "nope", "paused": True}, "url"),
    ("url backslash before @", {"url": "http://127.0.0.1:40001\\@evil.example/bs"}, "url"),
    ("url port 0", {"url": "http://127.0.0.1:0/x"}, "url"),
    ("url port 99999", {"url": "http://127.0.0.1:99999/x"}, "url"),
]


@pytest.mark.parametrize("body,field", [(b, f) for _, b, f in PATCH_INVALID], ids=[n for n, _, _ in PATCH_INVALID])
def test_invalid_patch_is_400_and_changes_nothing(shared_service, body, field):
    if not subscriptions(shared_service):
        create(shared_service, "existing")
    sub = subscriptions(shared_service)[0]
    assert_rejected_unchanged(shared_service, lambda: patch_subscription(shared_service, sub["id"], json=body), 400, field)


@pytest.mark.parametrize("raw", [b"{}", b"", b"[]", b"{", b"null", b'"x"'],
                         ids=["empty object", "empty", "array", "truncated", "null", "string"])
def test_empty_or_malformed_patch_is_400(shared_service, raw):
    if not subscriptions(shared_service):
        create(shared_service, "existing")
    sub = subscriptions(shared_service)[0]
    assert_rejected_unchanged(shared_service, lambda: patch_subscription(shared_service, sub["id"], data=raw), 400)


# --- DELETE --------------------------------------------------------------------------------

def test_delete_subscription_drops_it_and_its_deliveries(api_service):
    s = api_service.api()
    keep = create(api_service, "keep", DEAD_URLS[0])
    gone = create(api_service, "gone", DEAD_URLS[1])
    tenants = [publish(api_service, f"del{i}.example") for i in range(3)]
    for t in tenants:
        assert {d["subscription"] for d in t["deliveries"]} == {"keep", "gone"}

    r = s.delete(api_service.url + f"/subscriptions/{gone['id']}")
    assert r.status_code == 204
    assert r.content == b""

    base = api_service.url + f"/subscriptions/{gone['id']}"
    assert_problem(s.get(base), 404)
    assert_problem(s.delete(base), 404)
    assert_problem(s.patch(base, json={"paused": True}), 404)
    assert_problem(s.get(base + "/secret"), 404)
    assert_problem(s.get(base + "/deliveries"), 404)
    assert_problem(s.post(base + "/retry"), 404)
    assert [x["id"] for x in subscriptions(api_service)] == [keep["id"]]

    for t in tenants:
        got = s.get(api_service.url + f"/tenants/{t['id']}").json()
        assert [d["subscriptionId"] for d in got["deliveries"]] == [keep["id"]]
    assert total(s.get(api_service.url + f"/subscriptions/{keep['id']}").json()["counts"]) == 3

    # The name is free again, and the new one starts empty (deliver: new).
    again = create(api_service, "gone", DEAD_URLS[1])
    assert again["id"] != gone["id"]
    assert again["counts"] == {"pending": 0, "delivered": 0, "failed": 0}
    assert s.get(api_service.url + f"/subscriptions/{again['id']}/deliveries").json()["items"] == []


# --- deliveries and retry ------------------------------------------------------------------

def test_deliveries_list_filter_and_paging(api_service):
    s = api_service.api()
    a = create(api_service, "env-a", DEAD_URLS[0])
    b = create(api_service, "env-b", DEAD_URLS[1])
    tenants = [publish(api_service, f"dl{i}.example") for i in range(7)]
    base = api_service.url + f"/subscriptions/{a['id']}/deliveries"

    r = s.get(base)
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"items", "next"}
    assert page["next"] is None
    assert [d["tenantId"] for d in page["items"]] == [t["id"] for t in tenants]
    for item, tenant in zip(page["items"], tenants):
        assert set(item) >= ITEM_FIELDS
        assert item["domain"] == tenant["domain"]
        assert item["state"] == "pending"
        assert item["deliveredAt"] is None

    # The event id is one per tenant, the same for every subscription.
    other = s.get(api_service.url + f"/subscriptions/{b['id']}/deliveries").json()["items"]
    assert [d["eventId"] for d in other] == [d["eventId"] for d in page["items"]]
    assert len({d["eventId"] for d in other}) == 7

    # Paging with limit and after.
    seen, sizes, after = [], [], None
    for _ in range(20):
        params = {"limit": 3}
        if after:
            params["after"] = after
        p = s.get(base, params=params).json()
        sizes.append(len(p["items"]))
        seen += [d["tenantId"] for d in p["items"]]
        after = p["next"]
        if after is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == [t["id"] for t in tenants]

    # Filter by state (nothing listens at the URLs: all stay pending).
    pending = s.get(base, params={"state": "pending"}).json()
    assert [d["tenantId"] for d in pending["items"]] == [t["id"] for t in tenants]
    assert s.get(base, params={"state": "delivered"}).json() == {"items": [], "next": None}
    assert s.get(base, params={"state": "failed"}).json() == {"items": [], "next": None}
    p = s.get(base, params={"state": "pending", "limit": 4}).json()
    assert len(p["items"]) == 4 and p["next"] is not None
    rest = s.get(base, params={"state": "pending", "limit": 4, "after": p["next"]}).json()
    assert [d["tenantId"] for d in p["items"] + rest["items"]] == [t["id"] for t in tenants]
    assert rest["next"] is None


@pytest.mark.parametrize("params,field", [
    ({"state": "bogus"}, "state"),
    ({"state": "PENDING"}, "state"),
    ({"state": ""}, "state"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "x"}, "limit"),
    ({"limit": "-5"}, "limit"),
    ({"after": "ten_neverissued"}, "after"),
])
def test_bad_delivery_query_is_400(shared_service, params, field):
    if not subscriptions(shared_service):
        create(shared_service, "existing")
    sub = subscriptions(shared_service)[0]
    r = shared_service.api().get(shared_service.url + f"/subscriptions/{sub['id']}/deliveries", params=params)
    assert_problem(r, 400, field)


def test_delivery_cursor_of_another_subscription_is_400(api_service):
    s = api_service.api()
    early = publish(api_service, "before.example")
    sub = create(api_service, "later")
    publish(api_service, "after.example")
    # A real tenant id, but never a cursor of this subscription's deliveries.
    r = s.get(api_service.url + f"/subscriptions/{sub['id']}/deliveries", params={"after": early["id"]})
    assert_problem(r, 400, "after")
    for limit in ["1", "500"]:
        assert s.get(api_service.url + f"/subscriptions/{sub['id']}/deliveries", params={"limit": limit}).status_code == 200


def test_retry_with_nothing_failed(api_service):
    s = api_service.api()
    sub = create(api_service, "prod")
    publish(api_service, "retry.example")
    r = s.post(api_service.url + f"/subscriptions/{sub['id']}/retry")
    assert r.status_code == 202, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"requeued": 0, "probing": False}  # one refusal: not down
    # Nothing changed.
    assert total(s.get(api_service.url + f"/subscriptions/{sub['id']}").json()["counts"]) == 1
    assert_problem(s.post(api_service.url + "/subscriptions/sub_unknown/retry"), 404)


# --- deliver: new vs all, paused ------------------------------------------------------------

def test_deliver_all_catches_up_and_new_does_not(api_service):
    s = api_service.api()
    tenants = [publish(api_service, f"old{i}.example") for i in range(3)]
    new = create(api_service, "only-new", DEAD_URLS[0], deliver="new")
    everything_sub = create(api_service, "catch-up", DEAD_URLS[1], deliver="all")

    def caught_up():
        counts = s.get(api_service.url + f"/subscriptions/{everything_sub['id']}").json()["counts"]
        return counts["pending"] + counts["delivered"] == 3 and counts

    wait_until(caught_up, timeout=30, what="deliver=all catch-up of 3 tenants")
    items = s.get(api_service.url + f"/subscriptions/{everything_sub['id']}/deliveries").json()["items"]
    assert [d["tenantId"] for d in items] == [t["id"] for t in tenants]
    for t in tenants:
        got = s.get(api_service.url + f"/tenants/{t['id']}").json()
        assert [d["subscription"] for d in got["deliveries"]] == ["catch-up"]

    assert s.get(api_service.url + f"/subscriptions/{new['id']}").json()["counts"] == \
        {"pending": 0, "delivered": 0, "failed": 0}
    assert s.get(api_service.url + f"/subscriptions/{new['id']}/deliveries").json()["items"] == []

    fresh = publish(api_service, "fresh.example")
    assert sorted(d["subscription"] for d in fresh["deliveries"]) == ["catch-up", "only-new"]
    assert total(s.get(api_service.url + f"/subscriptions/{new['id']}").json()["counts"]) == 1
    assert total(s.get(api_service.url + f"/subscriptions/{everything_sub['id']}").json()["counts"]) == 4
    items = s.get(api_service.url + f"/subscriptions/{new['id']}/deliveries").json()["items"]
    assert [d["tenantId"] for d in items] == [fresh["id"]]


def test_deliver_all_with_no_tenants_and_many_tenants(api_service):
    s = api_service.api()
    empty = create(api_service, "empty", deliver="all")
    assert empty["counts"] == {"pending": 0, "delivered": 0, "failed": 0}
    tenants = [publish(api_service, f"many{i}.example")["id"] for i in range(40)]
    # Created before the tenants: it got them as new ones, once each.
    assert total(s.get(api_service.url + f"/subscriptions/{empty['id']}").json()["counts"]) == 40
    late = create(api_service, "late", DEAD_URLS[1], deliver="all")

    def caught_up():
        return total(s.get(api_service.url + f"/subscriptions/{late['id']}").json()["counts"]) == 40

    wait_until(caught_up, timeout=30, what="deliver=all catch-up of 40 tenants")
    seen, after = [], None
    for _ in range(20):
        params = {"limit": 7}
        if after:
            params["after"] = after
        p = s.get(api_service.url + f"/subscriptions/{late['id']}/deliveries", params=params).json()
        seen += [d["tenantId"] for d in p["items"]]
        after = p["next"]
        if after is None:
            break
    assert seen == tenants


def test_paused_subscription_collects_deliveries(api_service):
    s = api_service.api()
    sub = create(api_service, "paused-env")
    assert s.patch(api_service.url + f"/subscriptions/{sub['id']}", json={"paused": True}).status_code == 200
    t = publish(api_service, "paused.example")
    assert [d["subscriptionId"] for d in t["deliveries"]] == [sub["id"]]
    assert t["deliveries"][0]["state"] == "pending"
    got = s.get(api_service.url + f"/subscriptions/{sub['id']}").json()
    assert got["paused"] is True and got["counts"]["pending"] == 1


def test_deliver_all_racing_with_new_tenants_gives_one_delivery_each(api_service):
    """Tenants published while a deliver=all subscription is created and
    catching up: every tenant ends with exactly one delivery for it."""
    from concurrent.futures import ThreadPoolExecutor
    s = api_service.api()
    for i in range(50):
        publish(api_service, f"pre{i}.example")

    def post(i):
        r = s.post(api_service.url + "/tenants", json=tenant_body(f"race{i}.example"))
        assert r.status_code == 202, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        during = pool.map(post, range(50))
        sub = create(api_service, "racer", DEAD_URLS[1], deliver="all")
        during = list(during)
    assert len(during) == 50

    def caught_up():
        return total(s.get(api_service.url + f"/subscriptions/{sub['id']}").json()["counts"]) >= 100

    wait_until(caught_up, timeout=30, what="catch-up of 100 tenants")
    assert total(s.get(api_service.url + f"/subscriptions/{sub['id']}").json()["counts"]) == 100
    for t in all_tenants(s, api_service.url):
        assert [d["subscriptionId"] for d in t["deliveries"]] == [sub["id"]], t["domain"]


def test_url_password_is_masked_on_every_read_and_sent_as_basic_auth(provisiond, receivers):
    """A password in the URL goes to the receiver as Basic auth and is never shown back: every
    read of the subscription (201, GET, list, PATCH) shows *** in its place."""
    hub = provisiond(*FAST)
    rx = receivers("basic")
    url = f"http://ops:s3cr%40t-pw@127.0.0.1:{rx.port}/hooks/basic?x=1"
    shown = f"http://ops:***@127.0.0.1:{rx.port}/hooks/basic?x=1"
    created = hub.subscribe("basic", url)
    assert created["url"] == shown
    assert hub.subscription(created["id"])["url"] == shown
    assert [x["url"] for x in hub.session.get(hub.url + "/subscriptions").json()["items"]] == [shown]
    assert hub.patch(created["id"], paused=True)["url"] == shown
    moved = hub.patch(created["id"], url=url.replace("/hooks/basic", "/hooks/moved"), paused=False)
    assert moved["url"] == shown.replace("/hooks/basic", "/hooks/moved")
    for answer in (created, moved):
        assert "s3cr" not in str(answer)

    hub.create_tenant("basic-auth.example.com")
    (record,) = rx.wait_for_requests(1)[:1]
    assert record.path == "/hooks/moved?x=1"
    assert record.headers["authorization"] == "Basic " + base64.b64encode(b"ops:s3cr@t-pw").decode()
