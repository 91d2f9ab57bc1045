"""Shared fixtures: the real provisiond binary on a free loopback port."""
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest
import requests

BIN = os.environ.get("PROVISIOND_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/provisiond"))


class Provisiond:
    """A running provisiond process with its own data dir."""

    def __init__(self, data_dir, *args, env=None):
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env or {}
        self.proc = None
        self.port = None
        self.log_path = os.path.normpath(data_dir) + ".log"

    def start(self, timeout=30):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
        env.update(self.env)
        self.log = open(self.log_path, "ab")
        start_offset = self.log.tell()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", "0", "--data-dir", self.data_dir, *self.args],
            stdout=self.log, stderr=self.log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                m = re.search(rb"listening on http://[^\s]+:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("provisiond exited: " + self.output())
            time.sleep(0.05)
        raise RuntimeError("provisiond did not start: " + self.output())

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self):
        for i, a in enumerate(self.args):
            if a == "--api-token":
                return self.args[i + 1]
        with open(os.path.join(self.data_dir, "api-token")) as f:
            return f.read().strip()

    def api(self):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        return self.stop(signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture
def service(data_dir):
    s = Provisiond(data_dir).start()
    yield s
    s.stop()
