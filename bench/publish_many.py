"""POST N tenants to provisiond from concurrent keep-alive clients.
Usage: publish_many.py URL TOKEN N [CONCURRENCY] [PREFIX]

With PUBLISH_RETRY=K, a 5xx answer is sent again, up to K times, as a
publisher does (POST /tenants is idempotent per domain); how many were sent
again is printed on stderr ("publish_many: retried=R"). Without it, any answer
other than 200 or 202 fails the run."""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

url, token, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 32
prefix = sys.argv[5] if len(sys.argv) > 5 else "bench"
parsed = urllib.parse.urlparse(url)
lock = threading.Lock()
next_index = 0
failures = []
retries = int(os.environ.get("PUBLISH_RETRY", "0"))
retried = 0


def worker():
    global next_index, retried
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    while True:
        with lock:
            if next_index >= total:
                break
            i = next_index
            next_index += 1
        body = json.dumps({"domain": f"{prefix}-{i}.example", "admin": {"username": "admin", "email": "a@example.com"}})
        for attempt in range(retries + 1):
            conn.request("POST", "/tenants", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status < 500 or attempt == retries:
                break
            with lock:
                retried += 1
            time.sleep(0.01 * (attempt + 1))
        if r.status not in (200, 202):
            failures.append(r.status)


threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if retries:
    print(f"publish_many: retried={retried}", file=sys.stderr)
if failures:
    sys.exit(f"{len(failures)} requests failed: {failures[:5]}")
