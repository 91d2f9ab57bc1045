"""Time from POST /tenants to the last of 3 acknowledgements, at a light load.
Three receivers on loopback record when each webhook arrives; the client
publishes one tenant at a time, RATE per second, N in all.
Usage: latency.py URL TOKEN [N=200] [RATE=20]"""
import http.client
import http.server
import json
import statistics
import sys
import threading
import time
import urllib.parse

url, token = sys.argv[1], sys.argv[2]
total = int(sys.argv[3]) if len(sys.argv) > 3 else 200
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 20
arrivals = {}  # webhook-id -> list of arrival times
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        now = time.monotonic()
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            arrivals.setdefault(self.headers["webhook-id"], []).append(now)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


parsed = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def call(method, path, body=None):
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")


for i in range(3):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    status, _ = call("POST", "/subscriptions", {"name": f"lat{i}", "url": f"http://127.0.0.1:{server.server_address[1]}/hook"})
    assert status == 201, status

published = []  # (event id, post start)
run = int(time.time())
for i in range(total):
    start = time.monotonic()
    status, tenant = call("POST", "/tenants", {"domain": f"lat-{run}-{i}.example", "admin": {"username": "a", "email": "a@example.com"}})
    assert status == 202, status
    published.append((tenant["id"], start))
    time.sleep(max(0, 1 / rate - (time.monotonic() - start)))

# Map tenant ids to event ids through the deliveries list, then wait for all arrivals.
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with lock:
        if len(arrivals) >= total and all(len(v) >= 3 for v in arrivals.values()):
            break
    time.sleep(0.05)
status, subs = call("GET", "/subscriptions")
sub_id = subs["items"][0]["id"]
event_of = {}
after = None
while True:
    status, page = call("GET", f"/subscriptions/{sub_id}/deliveries?limit=500" + (f"&after={after}" if after else ""))
    for item in page["items"]:
        event_of[item["tenantId"]] = item["eventId"]
    after = page["next"]
    if not after:
        break
latencies = []
with lock:
    for tenant_id, start in published:
        times = arrivals.get(event_of[tenant_id], [])
        if len(times) >= 3:
            latencies.append((sorted(times)[2] - start) * 1000)
latencies.sort()
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
print(f"latency: tenants={total} complete={len(latencies)} median_ms={statistics.median(latencies):.1f} p99_ms={p99:.1f} max_ms={latencies[-1]:.1f}")
