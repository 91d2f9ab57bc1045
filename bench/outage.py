"""How hard a down environment is hit: attempts in the first 10 s of an outage.

One subscription to a port nobody listens on (every attempt: connection
refused), default retry settings. Two shapes of outage:

- steady: the environment is down when publishing starts; tenants keep
  coming at RATE/s for the whole window, so there is always due work.
  Clock starts at the first publish.
- backlog: BACKLOG tenants wait for the subscription (created paused) before
  it is first tried; the clock starts when it is unpaused. The worst case:
  a burst of up to --max-in-flight attempts can start before the 5th
  failure is counted.

Attempts are counted three independent ways at the end of the window: the
`retry` series of provisiond_deliveries_total, the debug log's "attempt to
subscription ... failed" lines timestamped inside the window, and the sum of
`attempts` over the subscription's deliveries (read just after, so a probe
that lands while paging shows there only). The bound counts, not seconds.
Usage: outage.py URL TOKEN LOG [steady|backlog] [WINDOW_S=10] [RATE=20] [BACKLOG=1000]"""
import http.client
import json
import re
import socket
import sys
import time
import urllib.parse
from datetime import datetime

url, token, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
mode = sys.argv[4] if len(sys.argv) > 4 else "steady"
window = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 20.0
backlog = int(sys.argv[7]) if len(sys.argv) > 7 else 1000
BOUND = 20
assert mode in ("steady", "backlog"), mode

parsed = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def call(method, path, body=None):
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if r.headers.get("Content-Type", "").startswith("application/json") else data)


def publish(i):
    status, _ = call("POST", "/tenants", {"domain": f"outage-{i}.example", "admin": {"username": "a", "email": "a@example.com"}})
    assert status == 202, status


def retry_counter():
    status, text = call("GET", "/metrics")
    assert status == 200, status
    m = re.search(rb'^provisiond_deliveries_total\{[^}]*outcome="retry"[^}]*subscription="outage"[^}]*\} (\d+)', text, re.M) \
        or re.search(rb'^provisiond_deliveries_total\{[^}]*subscription="outage"[^}]*outcome="retry"[^}]*\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


# A port that refuses: bound once to learn a free one, then closed.
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]

status, sub = call("POST", "/subscriptions", {"name": "outage", "url": f"http://127.0.0.1:{dead_port}/hook"})
assert status == 201, (status, sub)
if mode == "backlog":  # paused before anything is published, so nothing is tried before the clock starts
    status, _ = call("PATCH", f"/subscriptions/{sub['id']}", {"paused": True})
    assert status == 200, status
sub_id = sub["id"]

published = 0
if mode == "backlog":
    for i in range(backlog):
        publish(i)
    published = backlog
    assert retry_counter() == 0
    t0_wall, t0 = time.time(), time.monotonic()
    status, _ = call("PATCH", f"/subscriptions/{sub_id}", {"paused": False})
    assert status == 200, status
    time.sleep(max(0.0, window - (time.monotonic() - t0)))
else:
    t0_wall, t0 = time.time(), time.monotonic()
    while time.monotonic() - t0 < window:
        due = t0 + published / rate
        time.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() - t0 >= window:
            break
        publish(published)
        published += 1
by_metrics = retry_counter()
elapsed = time.monotonic() - t0
status, sub = call("GET", f"/subscriptions/{sub_id}")
state = sub["state"]

by_deliveries, after = 0, None
while True:
    status, page = call("GET", f"/subscriptions/{sub_id}/deliveries?limit=500" + (f"&after={after}" if after else ""))
    assert status == 200, status
    by_deliveries += sum(d["attempts"] for d in page["items"])
    after = page["next"]
    if not after:
        break

# The debug log: one line per failed attempt, timestamped (UTC, ms).
line = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) debug attempt to subscription outage ")
times = []
with open(log_path) as f:
    for text in f:
        m = line.match(text)
        if m:
            times.append(datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() - t0_wall)
in_window = [t for t in times if t <= window]
went_down = None
with open(log_path) as f:
    for text in f:
        if "subscription outage" in text and "is down after" in text:
            went_down = datetime.fromisoformat(text.split(" ", 1)[0].replace("Z", "+00:00")).timestamp() - t0_wall
            break
print(f"outage: mode={mode} window_s={window:.0f} tenants={published} attempts_metrics={by_metrics} "
      f"attempts_log={len(in_window)} attempts_deliveries={by_deliveries} state={state} "
      f"down_after_s={went_down if went_down is None else round(went_down, 2)} "
      f"attempt_times_s={','.join(f'{t:.2f}' for t in in_window)} measured_s={elapsed:.1f} "
      f"bound={BOUND} {'ok' if max(by_metrics, len(in_window)) <= BOUND else 'OVER'}")
sys.exit(0 if max(by_metrics, len(in_window)) <= BOUND else 1)
