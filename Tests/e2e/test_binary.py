"""The real binary: start, health, flags, signals."""
import os
import re
import stat
import subprocess

import requests

from conftest import BIN, Provisiond


def test_healthz_and_graceful_sigterm(service):
    r = requests.get(service.url + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")
    assert service.stop() == 0
    assert "stopped" in service.output()


def test_generated_token_is_private_and_reused(data_dir):
    first = Provisiond(data_dir).start()
    token = first.token
    path = os.path.join(data_dir, "api-token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert f"api token stored in {path}" in first.output()
    assert token not in first.output()
    first.stop()
    second = Provisiond(data_dir).start()
    try:
        assert second.token == token
        r = requests.get(second.url + "/tenants", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        second.stop()


def run_bad(*args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
    full_env.update(env or {})
    p = subprocess.run([BIN, "serve", *args], capture_output=True, text=True, timeout=30, env=full_env)
    return p.returncode, p.stderr.strip().splitlines()


def test_bad_flags_exit_2_with_one_line(tmp_path):
    cases = [
        ["--bogus"],
        ["--port", "70000"],
        ["--port", "abc"],
        ["--delivery-timeout", "ten"],
        ["--retry-initial", "5x"],
        ["--max-attempts", "-1"],
    ]
    for args in cases:
        code, lines = run_bad(*args, "--data-dir", str(tmp_path / "d"))
        assert code == 2, (args, code, lines)
        assert len(lines) == 1, (args, lines)


def test_negative_numbers_are_named_as_bad_values_not_missing_ones(tmp_path):
    for option in ["--port", "--max-attempts", "--max-in-flight"]:
        code, lines = run_bad(option, "-1", "--data-dir", str(tmp_path / "d"))
        assert code == 2 and len(lines) == 1, lines
        assert f"{option}: '-1' is not a whole number" in lines[0], lines


def test_bad_environment_value_exits_2(tmp_path):
    code, lines = run_bad("--data-dir", str(tmp_path / "d"), env={"PROVISIOND_PORT": "99999"})
    assert code == 2 and len(lines) == 1 and "port" in lines[0]


def test_unusable_data_dir_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, lines = run_bad("--port", "0", "--data-dir", str(blocker / "sub"))
    assert code == 2 and len(lines) == 1 and "data dir" in lines[0]


def test_flag_beats_environment(data_dir):
    s = Provisiond(data_dir, "--api-token", "from-flag", env={"PROVISIOND_API_TOKEN": "from-env"}).start()
    try:
        ok = requests.get(s.url + "/tenants", headers={"Authorization": "Bearer from-flag"})
        env = requests.get(s.url + "/tenants", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200 and env.status_code == 401
    finally:
        s.stop()


def test_corrupt_database_exits_2_with_one_line_and_writes_nothing(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "provisiond.sqlite3").write_bytes(os.urandom(8192))
    code, lines = run_bad("--port", "0", "--data-dir", str(data))
    assert code == 2 and len(lines) == 1, lines
    assert "cannot open the database" in lines[0], lines
    assert not (data / "api-token").exists()  # nothing written for a start that failed


def tree(path):
    """Every file under path with its size, mode and modification time."""
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), path)] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return found


def test_a_second_process_on_a_data_dir_in_use_is_refused_and_changes_nothing(tmp_path):
    from receivers import Receiver
    rx = Receiver("one")
    rx.start()
    data = str(tmp_path / "d")
    first = Provisiond(data, "--api-token", "t0k").start()
    try:
        s = first.api()
        r = s.post(first.url + "/subscriptions", json={"name": "one", "url": rx.url})
        assert r.status_code == 201, r.text
        before = tree(data)
        code, lines = run_bad("--port", "0", "--data-dir", data, "--api-token", "t0k")
        assert code == 2 and len(lines) == 1, (code, lines)
        assert f"pid {first.proc.pid}" in lines[0], lines
        assert tree(data) == before  # nothing in the data dir changed
        # The first one still delivers, each event exactly once.
        for i in range(5):
            assert s.post(first.url + "/tenants", json={"domain": f"lock{i}.example",
                          "admin": {"username": "a", "email": "a@x.io"}}).status_code == 202
        rx.wait_for_ids(5)
        assert rx.count() == 5, rx.snapshot()
    finally:
        first.stop()
        rx.stop()


def test_the_lock_dies_with_its_process(tmp_path):
    data = str(tmp_path / "d")
    first = Provisiond(data).start()
    first.kill9()
    second = Provisiond(data).start()  # no stale lock after kill -9
    try:
        assert requests.get(second.url + "/healthz").status_code == 200
    finally:
        second.stop()


def test_a_port_that_cannot_be_bound_writes_nothing(tmp_path):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        data = tmp_path / "d"
        code, lines = run_bad("--port", str(taken.getsockname()[1]), "--data-dir", str(data))
        assert code == 2 and len(lines) == 1, (code, lines)
        assert "cannot listen" in lines[0], lines
        assert not data.exists()  # no data dir, token or database for a start that failed
    finally:
        taken.close()


def source_version():
    with open(os.path.join(os.path.dirname(__file__), "../../Sources/Provisioning/Version.swift")) as f:
        return re.search(r'current = "([^"]+)"', f.read()).group(1)


def test_version_prints_the_version_and_exits_0():
    p = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == source_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", p.stdout.strip())
