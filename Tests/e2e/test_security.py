"""Security review as tests: the token and the webhook secrets never show up
in logs, error documents or metrics; the token file is private; secrets are
only shown where the contract says (the 201 and GET .../secret)."""
import base64
import os
import stat

import requests

from conftest import DEAD_URLS, ON_POSTGRES, Provisiond, sqlite_only, tenant_body, wait_until


def test_token_and_secrets_never_leak(data_dir):
    service = Provisiond(data_dir).start()  # generated token (given on PostgreSQL, which has no token file)
    try:
        token = service.token
        s = service.api()
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        r = s.post(service.url + "/subscriptions", json={"name": "prod", "url": DEAD_URLS[0], "secret": secret})
        assert r.status_code == 201 and r.json()["secret"] == secret
        generated = s.post(service.url + "/subscriptions", json={"name": "dev", "url": DEAD_URLS[1]}).json()["secret"]
        sub_id = r.json()["id"]
        assert s.post(service.url + "/tenants", json=tenant_body("leak.example")).status_code == 202

        # Failing deliveries get logged and counted: wait for a few attempts.
        wait_until(lambda: s.get(service.url + f"/subscriptions/{sub_id}").json()["counts"]["pending"] == 1
                   and any(d["attempts"] > 0 for t in s.get(service.url + "/tenants").json()["items"] for d in t["deliveries"]),
                   what="a failed attempt")

        # Bad requests of every kind, with the secret or token in the input.
        bodies = [
            s.post(service.url + "/subscriptions", json={"name": "prod", "url": DEAD_URLS[0], "secret": secret}),
            s.post(service.url + "/subscriptions", json={"name": "x", "url": "ftp://a", "secret": secret}),
            s.patch(service.url + f"/subscriptions/{sub_id}", json={"secret": secret}),
            requests.get(service.url + "/tenants", headers={"Authorization": f"Bearer {token}x"}),
            requests.get(service.url + "/tenants", headers={"Authorization": f"Basic {token}"}),
            s.get(service.url + "/tenants", params={"after": token}),
        ]
        shown = [
            s.get(service.url + "/subscriptions").text,
            s.get(service.url + f"/subscriptions/{sub_id}").text,
            s.patch(service.url + f"/subscriptions/{sub_id}", json={"paused": True}).text,
            s.get(service.url + "/tenants").text,
            s.get(service.url + f"/subscriptions/{sub_id}/deliveries").text,
            requests.get(service.url + "/metrics").text,
        ]
        for text in [b.text for b in bodies] + shown:
            assert token not in text
            assert secret not in text and generated not in text
        # The secret is shown where the contract says.
        assert s.get(service.url + f"/subscriptions/{sub_id}/secret").json() == {"secret": secret}
    finally:
        assert service.stop() == 0
    log = service.output()
    assert ON_POSTGRES or "api token stored in" in log
    assert token not in log
    assert secret not in log and generated not in log


@sqlite_only("the mode of the SQLite file and its -wal and -shm")
def test_database_holding_the_secrets_is_owner_only(data_dir):
    db = os.path.join(data_dir, "provisiond.sqlite3")
    service = Provisiond(data_dir, "--api-token", "t").start()
    try:
        r = service.api().post(service.url + "/subscriptions", json={"name": "prod", "url": DEAD_URLS[0]})
        assert r.status_code == 201
        files = [db, db + "-wal", db + "-shm"]
        assert all(os.path.exists(f) for f in files), os.listdir(data_dir)
        assert {f: stat.S_IMODE(os.stat(f).st_mode) for f in files} == {f: 0o600 for f in files}
    finally:
        service.stop()
    # A database left world-readable by an older version is tightened at start.
    os.chmod(db, 0o644)
    service = Provisiond(data_dir, "--api-token", "t").start()
    try:
        assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    finally:
        service.stop()


@sqlite_only("the generated token file")
def test_token_file_is_0600_and_given_token_writes_no_file(data_dir, tmp_path):
    service = Provisiond(data_dir).start()
    service.stop()
    path = os.path.join(data_dir, "api-token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = str(tmp_path / "given")
    given = Provisiond(other, "--api-token", "my-token").start()
    try:
        assert not os.path.exists(os.path.join(other, "api-token"))
        assert "my-token" not in given.output()
    finally:
        given.stop()
    assert "my-token" not in given.output()
