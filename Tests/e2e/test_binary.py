"""The real binary: start, health, flags, signals."""
import datetime
import json
import os
import re
import signal
import stat
import subprocess

import pytest
import requests

from conftest import BIN, ON_POSTGRES, Provisiond, sqlite_only, wait_until


def test_healthz_and_graceful_sigterm(service):
    r = requests.get(service.url + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")
    assert service.stop() == 0
    assert "stopped" in service.output()


@sqlite_only("the generated token file (PostgreSQL needs --api-token)")
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
        assert f"The value '-1' is invalid for '{option}" in lines[0], lines
        assert "not a whole number" in lines[0], lines


def test_bad_environment_value_exits_2(tmp_path):
    code, lines = run_bad("--data-dir", str(tmp_path / "d"), env={"PROVISIOND_PORT": "99999"})
    assert code == 2 and len(lines) == 1, lines
    assert "'99999' of PROVISIOND_PORT is invalid for '--port'" in lines[0], lines


def test_bad_log_level_or_format_exits_2_with_one_line(tmp_path):
    for args, env, named in [
        (["--log-level", "loud"], {}, "--log-level"),
        (["--log-format", "xml"], {}, "--log-format"),
        ([], {"PROVISIOND_LOG_LEVEL": "verbose"}, "PROVISIOND_LOG_LEVEL"),
        ([], {"PROVISIOND_LOG_FORMAT": "yaml"}, "PROVISIOND_LOG_FORMAT"),
    ]:
        code, lines = run_bad(*args, "--port", "0", "--data-dir", str(tmp_path / "d"), env=env)
        assert code == 2 and len(lines) == 1, (args, env, lines)
        assert named in lines[0], lines
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------
# --version, --help, logs

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SERVE_OPTIONS = [
    "host", "port", "data-dir", "api-token", "delivery-timeout", "retry-initial", "retry-max",
    "max-attempts", "max-in-flight", "max-outgoing", "event-loops", "max-connections",
    "idle-timeout", "request-timeout", "webhook-ca-file", "log-level", "log-format",
]
LEVELS = ["trace", "debug", "info", "notice", "warning", "error", "critical"]


def source_version():
    with open(os.path.join(ROOT, "Sources/Provisioning/Service/Version.swift")) as f:
        return re.search(r'current = "([^"]+)"', f.read()).group(1)


def test_version_prints_the_version_and_exits_0():
    p = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == source_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", p.stdout.strip())


def help_entries(text):
    """{option: its help text on one line} from the OPTIONS section of a --help."""
    entries, current = {}, None
    for line in text.split("OPTIONS:", 1)[1].splitlines():
        m = re.match(r"^  (?:-\w, )?--([\w-]+)", line)
        if m:
            current = m.group(1)
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
    return {k: re.sub(r"\s+", " ", v) for k, v in entries.items()}


def test_serve_help_shows_every_option_with_its_default_and_variable():
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    entries = help_entries(p.stdout)
    missing = [o for o in SERVE_OPTIONS if o not in entries]
    assert not missing, (missing, p.stdout)
    for option, text in entries.items():
        if option in ("help", "version"):
            continue
        variable = "PROVISIOND_" + option.upper().replace("-", "_")
        assert re.search(r"\(default: [^,()]+(\([^)]*\)[^,()]*)*, env: " + variable + r"\)", text), (option, text)
    assert "(default: 8080, env: PROVISIOND_PORT)" in entries["port"]
    assert "(default: info, env: PROVISIOND_LOG_LEVEL)" in entries["log-level"]
    assert "(default: text, env: PROVISIOND_LOG_FORMAT)" in entries["log-format"]


def parse_json_lines(output):
    objects = []
    for line in output.splitlines():
        obj = json.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict), line
        assert obj["level"] in LEVELS, line
        assert isinstance(obj["message"], str), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", obj["time"]), line
        datetime.datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
        objects.append(obj)
    return objects


def test_json_logs_carry_version_store_and_backlog_at_start_and_a_summary_at_stop(tmp_path):
    data = str(tmp_path / "d")
    first = Provisiond(data, "--log-format", "json", "--api-token", "t0k").start()
    s = first.api()
    assert s.post(first.url + "/subscriptions", json={"name": "down", "url": "http://127.0.0.1:9/x"}).status_code == 201
    for i in range(3):
        assert s.post(first.url + "/tenants", json={"domain": f"json{i}.example",
                      "admin": {"username": "a", "email": "a@x.io"}}).status_code == 202
    assert first.stop() == 0
    logs = parse_json_lines(first.output())
    start = next(o for o in logs if o["message"].startswith("listening on http://127.0.0.1:"))
    assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+", start["message"])
    assert start["level"] == "info"
    assert start["version"] == source_version()
    if ON_POSTGRES:
        assert start["store"].lower().startswith("postgres"), start
    else:
        assert start["store"] == "sqlite " + os.path.join(data, "provisiond.sqlite3")
    assert start["backlog"] == 0
    summary = logs[-1]
    assert summary["message"].startswith("stopped"), summary
    assert summary["tenants_accepted"] == 3 and summary["deliveries_made"] == 0, summary
    assert isinstance(summary["uptime_seconds"], (int, float)), summary

    # The three deliveries to the receiver that is down are the next start's backlog.
    second = Provisiond(data, "--log-format", "json", "--api-token", "t0k").start()
    second.stop()
    logs = parse_json_lines(second.output())
    starts = [o for o in logs if o["message"].startswith("listening on")]
    assert starts[-1]["backlog"] == 3, starts


def test_text_logs_are_one_line_per_event_with_the_start_fields(service):
    service.stop()
    lines = service.output().splitlines()
    start = next(l for l in lines if "listening on http://" in l)
    assert re.match(r"^\S+Z info listening on http://127\.0\.0\.1:\d+ ", start), start
    assert f"version={source_version()}" in start and "backlog=0" in start, start
    assert re.search(r'store="?postgres' if ON_POSTGRES else r'store="sqlite ', start, re.I), start
    assert re.search(r" info stopped after .* tenants accepted", lines[-1]), lines[-1]


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_log_level_warning_hides_info_lines(tmp_path):
    # With no info line there is no "listening on" to wait for: a known port and /healthz instead.
    for args, env in [(["--log-level", "warning"], {}), ([], {"PROVISIOND_LOG_LEVEL": "warning"})]:
        port = free_port()
        log = tmp_path / "out.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")} | env
        with open(log, "wb") as out:
            proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), *args],
                                    stdout=out, stderr=out, env=env)
            try:
                wait_until(lambda: _healthy(port), what="provisiond to answer /healthz")
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0
        assert log.read_text() == "", log.read_text()


def _healthy(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_log_line_holds_the_token_or_a_secret(tmp_path, log_format):
    token = "tok-" + os.urandom(12).hex()
    data = str(tmp_path / "d")
    s = Provisiond(data, "--log-format", log_format, "--log-level", "trace", "--api-token", token).start()
    api = s.api()
    r = api.post(s.url + "/subscriptions", json={"name": "down", "url": "http://127.0.0.1:9/x"})
    assert r.status_code == 201
    secret = r.json()["secret"]
    api.post(s.url + "/tenants", json={"domain": "secret.example", "admin": {"username": "a", "email": "a@x.io"}})
    requests.get(s.url + "/tenants", headers={"Authorization": "Bearer wrong-" + token})
    wait_until(lambda: "127.0.0.1:9" in s.output(), what="a failed attempt at debug")
    s.stop()
    # Without --api-token: the generated one, stored in the data dir.
    g = Provisiond(str(tmp_path / "g"), "--log-format", log_format, "--log-level", "trace").start()
    generated = g.token
    g.stop()
    for output in (s.output(), g.output()):
        assert output.strip()
        for line in output.splitlines():
            assert token not in line and secret not in line and generated not in line, line
            assert secret.removeprefix("whsec_") not in line, line


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


@sqlite_only("a corrupt SQLite file")
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


@sqlite_only("the data-dir lock")
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


@sqlite_only("the data-dir lock")
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


def test_database_takes_sqlite_and_refuses_others_without_echoing_them(tmp_path):
    s = Provisiond(str(tmp_path / "d"), "--database", "sqlite:").start()
    try:
        assert requests.get(s.url + "/healthz").status_code == 200
    finally:
        s.stop()
    # Another scheme, and PostgreSQL without the token every instance must share.
    for args, env in [(["--database", "mysql://app:s3cret@db.example:3306/topic"], None),
                      ([], {"PROVISIOND_DATABASE": "mysql://app:s3cret@db.example/topic"}),
                      (["--database", "postgres://app:s3cret@db.example:5432/topic"], None)]:
        code, lines = run_bad("--port", "0", "--data-dir", str(tmp_path / "e"), *args, env=env)
        assert code == 2 and len(lines) == 1 and "--database" in lines[0], lines
        assert "s3cret" not in lines[0], lines
    assert not (tmp_path / "e").exists()
