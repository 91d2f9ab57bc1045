"""Webhooks over https: certificates are verified (chain and host name), a
private CA is trusted through --webhook-ca-file, and a receiver that offers
HTTP/2 gets it. The receiver is nginx terminating TLS with HTTP/2 and
proxying to a recording receiver, so every request is still verified with
the standardwebhooks library and nginx's log shows the protocol used."""
import os
import socket
import subprocess

import pytest

from conftest import wait_until
from receivers import FAST, provisiond, receivers, reserve_port, verify  # noqa: F401 (fixtures)
from test_binary import run_bad


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path):
    """A private CA, a server certificate it signed for 127.0.0.1 only, and an
    unrelated self-signed CA: paths by name."""
    d = tmp_path / "pki"
    d.mkdir()
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=provisiond test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    return {name: str(d / name) for name in ("ca.pem", "other-ca.pem", "server.pem", "server.key")}


class TLSProxy:
    """nginx: TLS and HTTP/2 on a loopback port, proxying every request to
    `upstream_port` over HTTP/1.1 and logging `protocol webhook-id status`."""

    def __init__(self, workdir, pki, upstream_port):
        self.dir = workdir
        self.port = reserve_port()
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format hooks '$server_protocol $http_webhook_id $status';
    access_log {self.log} hooks;
    client_body_temp_path {self.dir};
    proxy_temp_path {self.dir};
    server {{
        listen 127.0.0.1:{self.port} ssl http2;
        ssl_certificate {pki["server.pem"]};
        ssl_certificate_key {pki["server.key"]};
        location / {{ proxy_pass http://127.0.0.1:{upstream_port}; }}
    }}
}}
""")
        open(self.log, "w").close()
        self.stderr = os.path.join(self.dir, "stderr.log")
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"],
                                         stdout=subprocess.DEVNULL, stderr=err)
        wait_until(self._listening, timeout=10, what="nginx listening")

    def _listening(self):
        if self.proc.poll() is not None:
            with open(self.stderr) as f:
                raise AssertionError("nginx exited: " + f.read())
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def url(self, host="127.0.0.1"):
        return f"https://{host}:{self.port}/hooks"

    def lines(self):
        with open(self.log) as f:
            return [line.split() for line in f if line.strip()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def tls_proxy(tmp_path, pki, receivers):
    made = []

    def make():
        upstream = receivers(f"upstream{len(made)}")
        proxy = TLSProxy(str(tmp_path / f"nginx{len(made)}"), pki, upstream.port)
        made.append(proxy)
        return proxy, upstream

    yield make
    for proxy in made:
        proxy.stop()


def test_trusted_https_receiver_gets_every_tenant_over_http2(provisiond, tls_proxy, pki):
    proxy, upstream = tls_proxy()
    hub = provisiond(*FAST, "--webhook-ca-file", pki["ca.pem"])
    sub = hub.subscribe("prod", proxy.url())
    tenants = hub.create_tenants("tls", 20)

    upstream.wait_for_ids(20)
    hub.wait_counts(sub["id"], delivered=20)
    for record in upstream.snapshot():
        verify(record, sub["secret"])  # the exact signed bytes crossed TLS and HTTP/2
    assert {r.json()["data"]["id"] for r in upstream.snapshot()} == {t["id"] for t in tenants}
    # nginx logs a request after its response has gone out: provisiond can
    # have recorded the delivery before the last line is written.
    lines = wait_until(lambda: (lambda got: got if len(got) >= 20 else None)(proxy.lines()),
                       what="20 access log lines")
    assert {protocol for protocol, _, _ in lines} == {"HTTP/2.0"}, lines
    assert {status for _, _, status in lines} == {"204"}, lines


def test_untrusted_certificate_is_refused_until_its_ca_is_trusted(provisiond, tls_proxy, pki, tmp_path):
    proxy, upstream = tls_proxy()
    data_dir = str(tmp_path / "data")
    # Trusting only an unrelated CA: the receiver's certificate does not verify.
    hub = provisiond(*FAST, "--webhook-ca-file", pki["other-ca.pem"], data_dir=data_dir)
    sub = hub.subscribe("prod", proxy.url())
    tenant = hub.create_tenant("untrusted.example.com")
    failed = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["attempts"] >= 2,
                               what="two failed attempts")
    assert failed["state"] == "pending"
    assert failed["lastError"].startswith("TLS error"), failed
    assert failed["lastStatus"] is None
    assert proxy.lines() == [] and upstream.count() == 0  # no request was ever sent

    # The same data dir, now trusting the receiver's CA: the backlog goes out.
    hub.stop()
    hub = provisiond(*FAST, "--webhook-ca-file", pki["ca.pem"], data_dir=data_dir)
    delivered = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["state"] == "delivered")
    assert delivered["attempts"] > failed["attempts"]
    verify(upstream.snapshot()[0], sub["secret"])


def test_certificate_for_another_host_name_is_refused(provisiond, tls_proxy, pki):
    proxy, upstream = tls_proxy()
    hub = provisiond(*FAST, "--webhook-ca-file", pki["ca.pem"])
    # The certificate names 127.0.0.1 only; "localhost" reaches the same socket but is not in it.
    sub = hub.subscribe("prod", proxy.url(host="localhost"))
    tenant = hub.create_tenant("wrong-name.example.com")
    failed = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["attempts"] >= 1 and d["lastError"],
                               what="a failed attempt")
    assert failed["state"] == "pending"
    assert failed["lastError"].startswith("TLS error"), failed
    assert upstream.count() == 0


def test_system_trust_store_is_the_default(provisiond, tls_proxy):
    """Without --webhook-ca-file a private CA is not trusted: verification is never off."""
    proxy, upstream = tls_proxy()
    hub = provisiond(*FAST)
    sub = hub.subscribe("prod", proxy.url())
    tenant = hub.create_tenant("default-trust.example.com")
    failed = hub.wait_delivery(tenant["id"], sub["id"], lambda d: d["attempts"] >= 1 and d["lastError"],
                               what="a failed attempt")
    assert failed["lastError"].startswith("TLS error"), failed
    assert upstream.count() == 0


def test_unusable_ca_file_exits_2(tmp_path):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for path, words in [(tmp_path / "missing.pem", "cannot read"), (not_pem, "no PEM certificate")]:
        code, lines = run_bad("--port", "0", "--data-dir", str(tmp_path / "d"), "--webhook-ca-file", str(path))
        assert code == 2 and len(lines) == 1, lines
        assert "--webhook-ca-file" in lines[0] and words in lines[0], lines
