"""The HTTP surface of the real binary: health, metrics, authentication on
every protected route, 404/405/413/431."""
import base64
import json
import re

import pytest
import requests

from conftest import DEAD_URLS, TOKEN, assert_problem, raw_exchange, stable_view, tenant_body


@pytest.fixture(scope="module")
def ids(shared_service):
    """A real subscription and tenant, so protected routes would succeed with a token."""
    s = shared_service.api()
    sub = s.post(shared_service.url + "/subscriptions", json={"name": "auth-sub", "url": DEAD_URLS[0]})
    assert sub.status_code == 201, sub.text
    tenant = s.post(shared_service.url + "/tenants", json=tenant_body("auth.example"))
    assert tenant.status_code == 202, tenant.text
    return {"sub": sub.json()["id"], "tenant": tenant.json()["id"]}


def snapshot(service):
    """What a request could change: the tenants and the subscriptions."""
    return stable_view(service)


# --- unauthenticated endpoints -------------------------------------------------------------

def test_healthz(shared_service):
    r = requests.get(shared_service.url + "/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz(shared_service):
    r = requests.get(shared_service.url + "/readyz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")


def metric_value(text, name, labels=None):
    """The value of one sample in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        assert m, f"not a Prometheus sample line: {line!r}"
        if m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if labels is None or all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def test_metrics_prometheus_text(shared_service, ids):
    s = shared_service.api()
    before = requests.get(shared_service.url + "/metrics")
    assert before.status_code == 200
    assert before.headers["Content-Type"].startswith("text/plain")
    assert "version=0.0.4" in before.headers["Content-Type"]
    text = before.text
    assert "# TYPE provisiond_tenants_total counter" in text
    assert "# TYPE provisiond_http_requests_total counter" in text
    tenants = metric_value(text, "provisiond_tenants_total")
    assert tenants is not None and tenants >= 1

    r = s.post(shared_service.url + "/tenants", json=tenant_body("metrics.example"))
    assert r.status_code == 202
    after = requests.get(shared_service.url + "/metrics").text
    assert metric_value(after, "provisiond_tenants_total") == tenants + 1
    assert metric_value(after, "provisiond_http_requests_total",
                        {"method": "POST", "route": "/tenants", "status": "202"}) >= 1
    # The backlog gauge names the subscription.
    assert metric_value(after, "provisiond_delivery_backlog", {"subscription": "auth-sub"}) is not None
    assert "provisiond_delivery_seconds_bucket" in after
    # Idempotent repeat: 200, and no new tenant counted.
    again = s.post(shared_service.url + "/tenants", json=tenant_body("metrics.example"))
    assert again.status_code == 200
    assert metric_value(requests.get(shared_service.url + "/metrics").text, "provisiond_tenants_total") == tenants + 1


def test_unprotected_endpoints_ignore_bad_tokens(shared_service):
    for path in ["/healthz", "/readyz", "/metrics"]:
        r = requests.get(shared_service.url + path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 200, path


# --- authentication ------------------------------------------------------------------------

BAD_AUTH = {
    "missing": None,
    "wrong token": "Bearer not-the-token",
    "empty bearer": "Bearer ",
    "scheme only": "Bearer",
    "basic scheme": "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode(),
    "token scheme": f"Token {TOKEN}",
    "no scheme": TOKEN,
    "token prefix": f"Bearer {TOKEN[:-1]}",
    "token longer": f"Bearer {TOKEN}x",
}


def protected_routes(ids):
    sub, tenant = ids["sub"], ids["tenant"]
    return [
        ("POST", "/tenants", tenant_body("unauth.example")),
        ("GET", "/tenants", None),
        ("GET", "/tenants?limit=5", None),
        ("GET", f"/tenants/{tenant}", None),
        ("POST", "/subscriptions", {"name": "unauth", "url": DEAD_URLS[1]}),
        ("GET", "/subscriptions", None),
        ("GET", f"/subscriptions/{sub}", None),
        ("PATCH", f"/subscriptions/{sub}", {"paused": True}),
        ("DELETE", f"/subscriptions/{sub}", None),
        ("GET", f"/subscriptions/{sub}/secret", None),
        ("GET", f"/subscriptions/{sub}/deliveries", None),
        ("GET", f"/subscriptions/{sub}/deliveries?state=pending", None),
        ("POST", f"/subscriptions/{sub}/retry", None),
        # Checked before routing: unknown paths and wrong methods are 401 too.
        ("GET", "/tenants/unknown/x", None),
        ("GET", "/tenants/unknown", None),
        ("GET", "/subscriptions/unknown/nothing", None),
        ("PUT", "/tenants", tenant_body("unauth2.example")),
        ("DELETE", f"/tenants/{tenant}", None),
        ("PUT", f"/subscriptions/{sub}", {"paused": True}),
        ("GET", f"/subscriptions/{sub}/retry", None),
    ]


@pytest.mark.parametrize("auth", list(BAD_AUTH), ids=list(BAD_AUTH))
def test_every_protected_route_needs_the_token(shared_service, ids, auth):
    before = snapshot(shared_service)
    for method, path, body in protected_routes(ids):
        headers = {} if BAD_AUTH[auth] is None else {"Authorization": BAD_AUTH[auth]}
        r = requests.request(method, shared_service.url + path, json=body, headers=headers)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, path, r.headers)
        assert_problem(r, 401, "Authorization")
    assert snapshot(shared_service) == before


def test_same_routes_work_with_the_token(shared_service, ids):
    """The counterpart: with the token, none of those routes is a 401."""
    s = shared_service.api()
    for method, path, body in protected_routes(ids):
        if method == "DELETE" and path.startswith("/subscriptions/"):
            continue  # keep the shared subscription
        r = s.request(method, shared_service.url + path, json=body)
        assert r.status_code != 401, (method, path, r.text)
    # Undo the PATCH and the new subscription.
    s.patch(shared_service.url + f"/subscriptions/{ids['sub']}", json={"paused": False})
    for item in s.get(shared_service.url + "/subscriptions").json()["items"]:
        if item["name"] == "unauth":
            assert s.delete(shared_service.url + f"/subscriptions/{item['id']}").status_code == 204


def test_bearer_scheme_is_case_insensitive(shared_service):
    r = requests.get(shared_service.url + "/tenants", headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200


def test_two_authorization_headers_are_400(shared_service, ids):
    """Two credentials are ambiguous (a proxy may check one, the server the other): refused,
    whichever comes first, valid or not, and nothing changes."""
    before = snapshot(shared_service)
    good, bad = f"Authorization: Bearer {TOKEN}", "Authorization: Bearer wrong"
    body = json.dumps(tenant_body("two-auth.example")).encode()
    for first, second in [(good, bad), (bad, good), (good, good)]:
        for method, path, extra in [("GET", "/tenants", []), ("GET", f"/subscriptions/{ids['sub']}", []),
                                    ("POST", "/tenants", ["Content-Type: application/json", f"Content-Length: {len(body)}"])]:
            data = head_bytes(method, path, first, second, *extra) + (body if method == "POST" else b"")
            status, headers, doc = raw_exchange(shared_service.port, data)
            assert status == 400, (method, path, first, second, status, doc)
            assert headers["content-type"].startswith("application/problem+json")
            assert "Authorization" in json.loads(doc)["detail"]
    assert snapshot(shared_service) == before


def test_bare_lf_head_is_answered_at_once(shared_service):
    """A head with bare LF line ends gets a 400 right away, not the 408 of the
    request timeout (10 s here) that an endless wait for CRLF CRLF ends in."""
    for data in [b"GET /healthz HTTP/1.1\nHost: x\n\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\n\n",
                 b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n"]:
        status, headers, body = raw_exchange(shared_service.port, data, read_timeout=60)
        assert status == 400, (data, status, body)
        assert headers["content-type"].startswith("application/problem+json")
    # CRLF heads still work on a new connection.
    status, _, _ = raw_exchange(shared_service.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200


# --- routing errors ------------------------------------------------------------------------

def test_unknown_paths_are_404(shared_service, ids):
    s = shared_service.api()
    for path in ["/nope", "/tenants/x/y", f"/subscriptions/{ids['sub']}/nothing", "/subscriptions/a/b/c"]:
        assert_problem(s.get(shared_service.url + path), 404)
    # Unknown path outside the protected prefixes: 404 without a token.
    assert_problem(requests.get(shared_service.url + "/nope"), 404)
    # An encoded slash does not take a protected path out of the token check.
    for path in ["/tenants%2Fx", "/subscriptions%2F", "/tenants%2fx%2fy"]:
        r = requests.get(shared_service.url + path)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_unknown_ids_are_404(shared_service):
    s = shared_service.api()
    before = snapshot(shared_service)
    assert_problem(s.get(shared_service.url + "/tenants/ten_doesnotexist"), 404)
    for method, suffix, body in [
        ("GET", "", None), ("PATCH", "", {"paused": True}), ("DELETE", "", None),
        ("GET", "/secret", None), ("GET", "/deliveries", None), ("POST", "/retry", None),
    ]:
        r = s.request(method, shared_service.url + "/subscriptions/sub_doesnotexist" + suffix, json=body)
        assert_problem(r, 404)
    assert snapshot(shared_service) == before


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/tenants", {"GET", "POST"}),
    ("DELETE", "/tenants", {"GET", "POST"}),
    ("PUT", "/tenants/{tenant}", {"GET", "PATCH", "DELETE"}),
    ("POST", "/tenants/{tenant}", {"GET", "PATCH", "DELETE"}),
    ("PUT", "/subscriptions", {"GET", "POST"}),
    ("PUT", "/subscriptions/{sub}", {"GET", "PATCH", "DELETE"}),
    ("POST", "/subscriptions/{sub}", {"GET", "PATCH", "DELETE"}),
    ("POST", "/subscriptions/{sub}/secret", {"GET"}),
    ("DELETE", "/subscriptions/{sub}/deliveries", {"GET"}),
    ("GET", "/subscriptions/{sub}/retry", {"POST"}),
])
def test_wrong_method_is_405_with_allow(shared_service, ids, method, path, allowed):
    before = snapshot(shared_service)
    url = shared_service.url + path.format(**ids)
    r = shared_service.api().request(method, url, json={"paused": True})
    assert_problem(r, 405)
    listed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed <= listed, (r.headers["Allow"], allowed)
    assert method not in listed
    assert snapshot(shared_service) == before


def test_wrong_method_on_unprotected_path_is_405(shared_service):
    r = requests.post(shared_service.url + "/healthz")
    assert_problem(r, 405)
    assert "GET" in r.headers["Allow"]


def head_bytes(method, path, *extra):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_body_over_one_mib_is_413(shared_service):
    before = snapshot(shared_service)
    # Announced by Content-Length: refused without reading the body.
    status, headers, body = raw_exchange(
        shared_service.port,
        head_bytes("POST", "/tenants", "Content-Type: application/json", f"Content-Length: {(1 << 20) + 1}"))
    assert status == 413
    assert headers["content-type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == 413 and doc["title"] and doc["detail"]
    # Through requests, with the whole body sent.
    big = json.dumps(tenant_body("big.example", attributes={"pad": "x" * (1 << 20)}))
    try:
        r = shared_service.api().post(shared_service.url + "/tenants", data=big,
                                      headers={"Content-Type": "application/json"})
        assert_problem(r, 413)
    except requests.ConnectionError:
        pass  # the server may close before reading it all; the raw check above saw the 413
    assert snapshot(shared_service) == before


def test_chunked_body_over_one_mib_is_413(shared_service):
    before = snapshot(shared_service)
    chunk = b"x" * 65536
    data = head_bytes("POST", "/tenants", "Content-Type: application/json", "Transfer-Encoding: chunked")
    first = b'{"domain": "a.b", "pad": "'
    data += b"%x\r\n" % len(first) + first + b"\r\n"
    for _ in range(17):  # 17 * 64 KiB > 1 MiB
        data += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    data += b"0\r\n\r\n"
    status, headers, body = raw_exchange(shared_service.port, data)
    assert status == 413
    assert headers["content-type"].startswith("application/problem+json")
    assert snapshot(shared_service) == before


def test_body_of_exactly_one_mib_is_accepted(shared_service):
    body = tenant_body("exactly-one-mib.example", attributes={"pad": ""})
    size = len(json.dumps(body).encode())
    body["attributes"]["pad"] = "x" * ((1 << 20) - size)
    data = json.dumps(body).encode()
    assert len(data) == 1 << 20
    r = shared_service.api().post(shared_service.url + "/tenants", data=data,
                                  headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text[:500]
    got = shared_service.api().get(shared_service.url + r.headers["Location"])
    assert got.json()["attributes"]["pad"] == body["attributes"]["pad"]


def test_head_over_16_kib_is_431(shared_service):
    status, headers, body = raw_exchange(
        shared_service.port, head_bytes("GET", "/tenants", "X-Padding: " + "a" * (17 * 1024)))
    assert status == 431
    assert headers["content-type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == 431 and doc["title"] and doc["detail"]
    # Through requests as well.
    try:
        r = shared_service.api().get(shared_service.url + "/tenants", headers={"X-Padding": "a" * (17 * 1024)})
        assert_problem(r, 431)
    except requests.ConnectionError:
        pass
    # A head just under the limit is fine.
    r = shared_service.api().get(shared_service.url + "/tenants", headers={"X-Padding": "a" * (15 * 1024)})
    assert r.status_code == 200
