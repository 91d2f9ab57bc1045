"""POST/GET /tenants over real HTTP: the tenant object, every validation rule,
idempotency, filters and pagination."""
import json
import re

import pytest
import requests

from conftest import DEAD_URLS, all_tenants, assert_problem, assert_rejected_unchanged, tenant_body

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DELIVERY_FIELDS = {"subscriptionId", "subscription", "state", "attempts", "lastAttemptAt", "lastStatus",
                   "lastError", "nextAttemptAt", "deliveredAt"}


def post_tenant(service, body, session=None):
    return (session or service.api()).post(service.url + "/tenants", json=body)


def post_raw_tenant(service, raw):
    return service.api().post(service.url + "/tenants", data=raw, headers={"Content-Type": "application/json"})


def create_subscription(service, name, url=DEAD_URLS[0], **extra):
    r = service.api().post(service.url + "/subscriptions", json={"name": name, "url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()


# --- creating and reading ------------------------------------------------------------------

def test_create_and_get_tenant(api_service):
    sub = create_subscription(api_service, "prod")
    body = tenant_body("acme.com")
    r = post_tenant(api_service, body)
    assert r.status_code == 202, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    tenant = r.json()
    assert r.headers["Location"] == f"/tenants/{tenant['id']}"
    assert isinstance(tenant["id"], str) and tenant["id"]
    assert tenant["domain"] == "acme.com"
    assert tenant["admin"] == body["admin"]
    assert tenant["plan"] == "Demo"
    assert tenant["attributes"] == body["attributes"]
    assert RFC3339.match(tenant["createdAt"]), tenant["createdAt"]
    assert tenant["status"] == "pending"
    assert len(tenant["deliveries"]) == 1
    delivery = tenant["deliveries"][0]
    assert set(delivery) >= DELIVERY_FIELDS
    assert delivery["subscriptionId"] == sub["id"] and delivery["subscription"] == "prod"
    assert delivery["state"] == "pending"
    assert delivery["deliveredAt"] is None

    got = api_service.api().get(api_service.url + r.headers["Location"])
    assert got.status_code == 200
    assert got.headers["Content-Type"].startswith("application/json")
    g = got.json()
    for key in ["id", "domain", "admin", "plan", "attributes", "createdAt"]:
        assert g[key] == tenant[key], key
    assert [d["subscriptionId"] for d in g["deliveries"]] == [sub["id"]]

    listed = api_service.api().get(api_service.url + "/tenants").json()
    assert [t["id"] for t in listed["items"]] == [tenant["id"]]
    assert listed["next"] is None


def test_optional_fields_may_be_absent(api_service):
    r = post_tenant(api_service, {"domain": "minimal.example", "admin": {"username": "u", "email": "u@x"}})
    assert r.status_code == 202, r.text
    t = r.json()
    assert t["admin"]["username"] == "u" and t["admin"]["email"] == "u@x"
    assert t["plan"] is None
    assert t["attributes"] == {}
    # No subscription yet: no deliveries, nothing outstanding.
    assert t["deliveries"] == []
    assert t["status"] == "provisioned"


def test_admin_and_plan_strings_of_254_characters_are_kept(api_service):
    """254 characters (counted as code points, not bytes) and non-ASCII letters are fine."""
    admin = {"username": "\u00e9" * 254, "email": "u@" + "x" * 252, "firstName": "Zo\u00eb \u5c71\u7530",
             "lastName": "L" * 254}
    r = post_tenant(api_service, {"domain": "long-fields.example", "admin": admin, "plan": "\U0001F600" * 254})
    assert r.status_code == 202, r.text
    assert r.json()["admin"] == admin and r.json()["plan"] == "\U0001F600" * 254


def test_domain_is_stored_lowercase(api_service):
    r = post_tenant(api_service, tenant_body("MiXeD-Case.Example.COM"))
    assert r.status_code == 202, r.text
    assert r.json()["domain"] == "mixed-case.example.com"
    s = api_service.api()
    found = s.get(api_service.url + "/tenants", params={"domain": "MIXED-CASE.example.com"}).json()
    assert [t["id"] for t in found["items"]] == [r.json()["id"]]


@pytest.mark.parametrize("domain", [
    "a.b",
    "123.a45",
    "1.2.3.x4",
    "xn--bcher-kva.example",
    "a-b-c.d-e.f",
    ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]),  # exactly 253
    "x" * 63 + ".com",
])
def test_valid_domains(shared_service, domain):
    # admin@<domain> would pass the 254 characters an e-mail may have.
    r = post_tenant(shared_service, tenant_body(domain, admin={"username": "admin", "email": "admin@v.example"}))
    assert r.status_code == 202, r.text
    assert r.json()["domain"] == domain


# --- validation ----------------------------------------------------------------------------

def with_admin(**changes):
    admin = {"username": "admin", "email": "admin@v.example"}
    for k, v in changes.items():
        if v is ...:
            admin.pop(k, None)
        else:
            admin[k] = v
    return admin


INVALID = [
    ("missing domain", {"admin": with_admin()}, "domain"),
    ("domain number", {"domain": 5, "admin": with_admin()}, "domain"),
    ("domain null", {"domain": None, "admin": with_admin()}, "domain"),
    ("domain object", {"domain": {"a": 1}, "admin": with_admin()}, "domain"),
    ("domain empty", {"domain": "", "admin": with_admin()}, "domain"),
    ("one label", {"domain": "localhost", "admin": with_admin()}, "domain"),
    ("empty label inside", {"domain": "acme..com", "admin": with_admin()}, "domain"),
    ("empty label first", {"domain": ".acme.com", "admin": with_admin()}, "domain"),
    ("only dots", {"domain": "..", "admin": with_admin()}, "domain"),
    ("leading hyphen", {"domain": "-acme.com", "admin": with_admin()}, "domain"),
    ("trailing hyphen", {"domain": "acme-.com", "admin": with_admin()}, "domain"),
    ("hyphen in tld", {"domain": "acme.com-", "admin": with_admin()}, "domain"),
    ("space", {"domain": "ac me.com", "admin": with_admin()}, "domain"),
    ("underscore", {"domain": "acme_corp.com", "admin": with_admin()}, "domain"),
    ("slash", {"domain": "acme.com/x", "admin": with_admin()}, "domain"),
    ("port", {"domain": "acme.com:80", "admin": with_admin()}, "domain"),
    ("at sign", {"domain": "admin@acme.com", "admin": with_admin()}, "domain"),
    ("non-ascii", {"domain": "\u00e4cme.com", "admin": with_admin()}, "domain"),
    # KELVIN SIGN lowercases to an ASCII "k": still not a DNS character.
    ("kelvin sign", {"domain": "\u212acme.com", "admin": with_admin()}, "domain"),
    ("fullwidth letter", {"domain": "\uff41cme.com", "admin": with_admin()}, "domain"),
    ("254 chars", {"domain": ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]), "admin": with_admin()}, "domain"),
    ("label of 64", {"domain": "x" * 64 + ".com", "admin": with_admin()}, "domain"),
    ("ip address", {"domain": "127.0.0.1", "admin": with_admin()}, "domain"),
    ("numeric last label", {"domain": "acme.123", "admin": with_admin()}, "domain"),
    ("missing admin", {"domain": "v.example"}, "admin"),
    ("admin string", {"domain": "v.example", "admin": "x"}, "admin"),
    ("admin array", {"domain": "v.example", "admin": []}, "admin"),
    ("admin null", {"domain": "v.example", "admin": None}, "admin"),
    ("missing username", {"domain": "v.example", "admin": with_admin(username=...)}, "admin.username"),
    ("username number", {"domain": "v.example", "admin": with_admin(username=5)}, "admin.username"),
    ("username empty", {"domain": "v.example", "admin": with_admin(username="")}, "admin.username"),
    ("missing email", {"domain": "v.example", "admin": with_admin(email=...)}, "admin.email"),
    ("email without at", {"domain": "v.example", "admin": with_admin(email="admin.v.example")}, "admin.email"),
    ("email empty", {"domain": "v.example", "admin": with_admin(email="")}, "admin.email"),
    ("email number", {"domain": "v.example", "admin": with_admin(email=5)}, "admin.email"),
    ("email with CRLF", {"domain": "v.example", "admin": with_admin(email="u@x.com\r\nBcc: evil@x")}, "admin.email"),
    ("email of 255", {"domain": "v.example", "admin": with_admin(email="u@" + "x" * 253)}, "admin.email"),
    ("email of 900 KB", {"domain": "v.example", "admin": with_admin(email="u@" + "x" * 900_000)}, "admin.email"),
    ("username with NUL", {"domain": "v.example", "admin": with_admin(username="ad\u0000min")}, "admin.username"),
    ("username of 255", {"domain": "v.example", "admin": with_admin(username="a" * 255)}, "admin.username"),
    ("firstName with tab", {"domain": "v.example", "admin": with_admin(firstName="Ada\tX")}, "admin.firstName"),
    ("firstName with DEL", {"domain": "v.example", "admin": with_admin(firstName="Ada\u007f")}, "admin.firstName"),
    ("lastName with C1 NEL", {"domain": "v.example", "admin": with_admin(lastName="Love\u0085lace")}, "admin.lastName"),
    ("lastName of 255", {"domain": "v.example", "admin": with_admin(lastName="\u00e9" * 255)}, "admin.lastName"),
    ("plan with LF", {"domain": "v.example", "admin": with_admin(), "plan": "Demo\nX-Evil: 1"}, "plan"),
    ("plan of 255", {"domain": "v.example", "admin": with_admin(), "plan": "p" * 255}, "plan"),
    ("firstName number", {"domain": "v.example", "admin": with_admin(firstName=5)}, "admin.firstName"),
    ("lastName array", {"domain": "v.example", "admin": with_admin(lastName=[])}, "admin.lastName"),
    ("unknown admin field", {"domain": "v.example", "admin": with_admin(role="root")}, "admin.role"),
    ("plan number", {"domain": "v.example", "admin": with_admin(), "plan": 5}, "plan"),
    ("plan object", {"domain": "v.example", "admin": with_admin(), "plan": {}}, "plan"),
    ("attributes array", {"domain": "v.example", "admin": with_admin(), "attributes": []}, "attributes"),
    ("attributes string", {"domain": "v.example", "admin": with_admin(), "attributes": "x"}, "attributes"),
    ("attributes number", {"domain": "v.example", "admin": with_admin(), "attributes": 1}, "attributes"),
    ("unknown field", {"domain": "v.example", "admin": with_admin(), "color": "red"}, "color"),
    ("id is not input", {"domain": "v.example", "admin": with_admin(), "id": "ten_x"}, "id"),
    ("status is not input", {"domain": "v.example", "admin": with_admin(), "status": "provisioned"}, "status"),
]


@pytest.mark.parametrize("body,field", [(b, f) for _, b, f in INVALID], ids=[n for n, _, _ in INVALID])
def test_invalid_tenant_is_400_and_changes_nothing(shared_service, body, field):
    create_subscription_once(shared_service)
    assert_rejected_unchanged(shared_service, lambda: post_tenant(shared_service, body), 400, field)


def create_subscription_once(service):
    s = service.api()
    if not any(x["name"] == "validation" for x in s.get(service.url + "/subscriptions").json()["items"]):
        create_subscription(service, "validation")


BAD_BODIES = {
    "truncated": b'{"domain": "v.example", "admin": {',
    "trailing garbage": b'{"domain": "v.example", "admin": {"username": "a", "email": "a@b"}} x',
    "single quotes": b"{'domain': 'v.example'}",
    "trailing comma": b'{"domain": "v.example",}',
    "empty": b"",
    "array": b"[]",
    "string": b'"v.example"',
    "number": b"5",
    "null": b"null",
    "not utf8": b'{"domain": "\xff\xfe.com", "admin": {"username": "a", "email": "a@b"}}',
}


@pytest.mark.parametrize("raw", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_malformed_or_non_object_body_is_400(shared_service, raw):
    assert_rejected_unchanged(shared_service, lambda: post_raw_tenant(shared_service, raw), 400)


# --- idempotency ---------------------------------------------------------------------------

def test_same_request_again_is_200_with_the_same_tenant(api_service):
    sub = create_subscription(api_service, "prod")
    first = post_tenant(api_service, tenant_body("acme.com"))
    assert first.status_code == 202
    tenant = first.json()

    # Same request: domain differently cased, keys (also nested) in another order.
    original = tenant_body("acme.com")
    reordered = {
        "attributes": {"nested": {"y": True, "x": 1}, "tags": ["a", "b"], "seats": 5, "region": "eu"},
        "plan": original["plan"],
        "admin": dict(reversed(list(original["admin"].items()))),
        "domain": "ACME.Com",
    }
    raw = json.dumps(reordered, indent=2)
    again = api_service.api().post(api_service.url + "/tenants", data=raw,
                                   headers={"Content-Type": "application/json"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == tenant["id"]
    assert again.json()["domain"] == "acme.com"
    assert len(again.json()["deliveries"]) == 1

    # Nothing published again.
    got = api_service.api().get(api_service.url + f"/subscriptions/{sub['id']}").json()
    assert sum(got["counts"].values()) == 1
    deliveries = api_service.api().get(api_service.url + f"/subscriptions/{sub['id']}/deliveries").json()
    assert [d["tenantId"] for d in deliveries["items"]] == [tenant["id"]]
    assert len(all_tenants(api_service.api(), api_service.url)) == 1


@pytest.mark.parametrize("change", [
    {"plan": "Enterprise"},
    {"plan": None},
    {"attributes": {"region": "us"}},
    {"attributes": None},
    {"admin": {"username": "other", "email": "admin@acme.com"}},
    {"admin": {"username": "admin", "email": "admin@acme.com"}},  # names dropped
])
def test_different_request_for_same_domain_is_409(api_service, change):
    create_subscription(api_service, "prod")
    first = post_tenant(api_service, tenant_body("acme.com"))
    assert first.status_code == 202
    body = tenant_body("Acme.com", **{k: v for k, v in change.items() if v is not None})
    for k, v in change.items():
        if v is None:
            body.pop(k)
    assert_rejected_unchanged(api_service, lambda: post_tenant(api_service, body), 409, "domain")


def test_concurrent_identical_posts_create_one_tenant(api_service):
    from concurrent.futures import ThreadPoolExecutor
    create_subscription(api_service, "prod")

    def post(_):
        return requests.post(api_service.url + "/tenants", json=tenant_body("race.example"),
                             headers={"Authorization": f"Bearer {api_service.token}"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(202) == 1 and codes.count(200) == 15, codes
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(all_tenants(api_service.api(), api_service.url)) == 1
    sub = api_service.api().get(api_service.url + "/subscriptions").json()["items"][0]
    assert sum(sub["counts"].values()) == 1


# --- listing -------------------------------------------------------------------------------

def test_pagination_has_no_repeats_and_no_gaps(api_service):
    s = api_service.api()
    created = []
    for i in range(25):
        r = s.post(api_service.url + "/tenants", json=tenant_body(f"page{i:02d}.example"))
        assert r.status_code == 202
        created.append(r.json()["id"])

    for limit, pages in [(10, [10, 10, 5]), (5, [5, 5, 5, 5, 5]), (25, [25]), (24, [24, 1]), (500, [25])]:
        seen, sizes, after = [], [], None
        for _ in range(100):
            params = {"limit": limit}
            if after is not None:
                params["after"] = after
            r = s.get(api_service.url + "/tenants", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            assert set(page) == {"items", "next"}
            sizes.append(len(page["items"]))
            seen += [t["id"] for t in page["items"]]
            after = page["next"]
            if after is None:
                break
        assert sizes == pages, (limit, sizes)
        assert seen == created, limit  # every tenant once, in creation order

    # The default limit covers them all.
    page = s.get(api_service.url + "/tenants").json()
    assert [t["id"] for t in page["items"]] == created and page["next"] is None


def test_page_of_large_tenants_ends_near_one_mib_and_next_goes_on(api_service):
    """Six tenants of 400 KiB: a page asked for 100 ends once it holds about 1 MiB (three of
    them), never empty, and following `next` yields every tenant exactly once, in order."""
    s = api_service.api()
    created = []
    for i in range(6):
        r = s.post(api_service.url + "/tenants", json=tenant_body(f"large{i}.example", attributes={"pad": "x" * (400 << 10)}))
        assert r.status_code == 202, r.text[:300]
        created.append(r.json()["id"])
    seen, sizes, after = [], [], None
    for _ in range(10):
        params = {"limit": 100} | ({"after": after} if after else {})
        r = s.get(api_service.url + "/tenants", params=params)
        assert r.status_code == 200, r.text[:300]
        page = r.json()
        assert page["items"], "a page is never empty while more exist"
        assert len(r.content) < (1 << 20) + (450 << 10), "at most about 1 MiB and the item that crossed it"
        sizes.append(len(page["items"]))
        seen += [t["id"] for t in page["items"]]
        after = page["next"]
        if after is None:
            break
        assert after == seen[-1]
    assert sizes == [3, 3]
    assert seen == created


def test_default_limit_is_100(api_service):
    s = api_service.api()
    for i in range(101):
        assert s.post(api_service.url + "/tenants", json=tenant_body(f"d{i}.example")).status_code == 202
    page = s.get(api_service.url + "/tenants").json()
    assert len(page["items"]) == 100 and page["next"] is not None
    rest = s.get(api_service.url + "/tenants", params={"after": page["next"]}).json()
    assert len(rest["items"]) == 1 and rest["next"] is None


def test_filters_domain_and_status(api_service):
    s = api_service.api()
    early = s.post(api_service.url + "/tenants", json=tenant_body("early.example")).json()
    create_subscription(api_service, "prod")  # nothing listens: deliveries stay pending
    late = s.post(api_service.url + "/tenants", json=tenant_body("late.example")).json()
    assert early["status"] == "provisioned" and late["status"] == "pending"

    def ids(**params):
        r = s.get(api_service.url + "/tenants", params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert ids(domain="late.example") == [late["id"]]
    assert ids(domain="LATE.Example") == [late["id"]]
    assert ids(domain="none.example") == []
    assert ids(status="pending") == [late["id"]]
    assert ids(status="provisioned") == [early["id"]]
    assert ids(status="failed") == []
    assert ids(status="pending", domain="early.example") == []
    assert ids(status="provisioned", domain="early.example") == [early["id"]]


@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"limit": "99999999999999999999999"}, "limit"),
    ({"after": "ten_neverissued"}, "after"),
    ({"status": "bogus"}, "status"),
    ({"status": "PENDING"}, "status"),
    ({"status": ""}, "status"),
])
def test_bad_list_parameters_are_400(shared_service, params, field):
    assert_problem(shared_service.api().get(shared_service.url + "/tenants", params=params), 400, field)


def test_limit_bounds_are_accepted(shared_service):
    s = shared_service.api()
    for limit in ["1", "500"]:
        r = s.get(shared_service.url + "/tenants", params={"limit": limit})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= int(limit)


def test_unknown_tenant_is_404(shared_service):
    r = shared_service.api().get(shared_service.url + "/tenants/ten_unknown")
    assert_problem(r, 404)


def test_deliveries_on_tenant_follow_subscriptions(api_service):
    """One delivery per subscription existing at publish time, paused ones
    included; deleting a subscription removes its deliveries."""
    s = api_service.api()
    a = create_subscription(api_service, "env-a", DEAD_URLS[0])
    b = create_subscription(api_service, "env-b", DEAD_URLS[1])
    c = create_subscription(api_service, "env-c", DEAD_URLS[2])
    assert s.patch(api_service.url + f"/subscriptions/{b['id']}", json={"paused": True}).json()["paused"] is True

    t = s.post(api_service.url + "/tenants", json=tenant_body("multi.example")).json()
    assert sorted(d["subscription"] for d in t["deliveries"]) == ["env-a", "env-b", "env-c"]
    assert {d["subscriptionId"] for d in t["deliveries"]} == {a["id"], b["id"], c["id"]}
    for sub in (a, b, c):
        counts = s.get(api_service.url + f"/subscriptions/{sub['id']}").json()["counts"]
        assert sum(counts.values()) == 1

    assert s.delete(api_service.url + f"/subscriptions/{b['id']}").status_code == 204
    after = s.get(api_service.url + f"/tenants/{t['id']}").json()
    assert sorted(d["subscription"] for d in after["deliveries"]) == ["env-a", "env-c"]

    # A subscription created later has no delivery for the existing tenant (deliver: new).
    create_subscription(api_service, "env-d", DEAD_URLS[0])
    assert len(s.get(api_service.url + f"/tenants/{t['id']}").json()["deliveries"]) == 2
    t2 = s.post(api_service.url + "/tenants", json=tenant_body("multi2.example")).json()
    assert sorted(d["subscription"] for d in t2["deliveries"]) == ["env-a", "env-c", "env-d"]


def test_empty_after_means_the_first_page(shared_service):
    s = shared_service.api()
    first = s.get(shared_service.url + "/tenants", params={"limit": 5})
    empty = s.get(shared_service.url + "/tenants", params={"limit": 5, "after": ""})
    assert first.status_code == empty.status_code == 200
    assert [t["id"] for t in empty.json()["items"]] == [t["id"] for t in first.json()["items"]]
