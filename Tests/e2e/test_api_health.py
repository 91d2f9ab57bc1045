"""Replay's `since`: against the real binary and real webhook receivers."""
from datetime import datetime, timedelta, timezone

from conftest import assert_problem
from receivers import FAST, provisiond, receivers  # noqa: F401 (fixtures)


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------
# Replay.

def replay(hub, key, since, status=202):
    r = hub.session.post(f"{hub.url}/subscriptions/{key}/replay", json={"since": since})
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


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
