"""Replays the writer's SQL for POST /tenants (as at 4f66fef) on a copy of a
provisiond database with 3 subscriptions, to split SQLite's cost by statement
under callgrind (see bench/RESULTS.md). VARIANT: "full", or any of
notriggers, noreadback, nosavepoint, memtemp joined by "-".

Usage: python3 bench/replay_publish_sql.py VARIANT N SOURCE_DB COPY_DB
Count only libsqlite3's instructions, for two N, e.g.:
  valgrind --tool=callgrind --collect-systime=yes --callgrind-out-file=v.600.out \
      $(python3 -c 'import sys; print(sys.executable)') bench/replay_publish_sql.py full 600 src.sqlite3 /tmp/copy.sqlite3
(the real interpreter, not a pyenv shim: valgrind must start Python itself)."""
import os, shutil, sqlite3, sys, time
variant, n, src, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
shutil.copy(src, dst)
db = sqlite3.connect(dst, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL"); db.execute("PRAGMA synchronous = FULL"); db.execute("PRAGMA foreign_keys = ON")
if "memtemp" in variant: db.execute("PRAGMA temp_store = MEMORY")
if "notriggers" in variant:
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
CREATE_DELIVERIES = """
INSERT INTO deliveries (subscription_seq, event_seq, tenant_seq, domain, state, created_at, next_attempt_at)
SELECT s.seq, ?1, ?2, ?3, 0, ?4,
    CASE WHEN s.backfill_next IS NOT NULL AND ?3 IS NOT NULL THEN NULL
         WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_seq = s.seq AND d.domain = ?3 AND d.state != 1)
         THEN NULL ELSE ?4 END
FROM subscriptions s WHERE instr(s.events, ?5) > 0 AND s.seq IS NOT ?6"""
SELECT_DELIVERIES = """SELECT s.id, s.name, t.id, e.domain, e.id, e.type,
    d.state, d.attempts, d.last_attempt_at, d.last_status, d.last_error,
    CASE WHEN s.down_since IS NULL THEN d.next_attempt_at
         WHEN d.seq = (SELECT seq FROM deliveries WHERE subscription_seq = d.subscription_seq AND state = 0
                       AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT 1)
         THEN max(d.next_attempt_at, s.probe_not_before) END,
    d.delivered_at,
    CASE WHEN d.state = 0 AND d.next_attempt_at IS NULL THEN (
        SELECT e2.id FROM deliveries d2 JOIN events e2 ON e2.seq = d2.event_seq
        WHERE d2.subscription_seq = d.subscription_seq AND d2.domain = d.domain AND d2.state != 1 AND d2.event_seq < d.event_seq
        ORDER BY d2.event_seq LIMIT 1) END
FROM deliveries d JOIN subscriptions s ON s.seq = d.subscription_seq JOIN events e ON e.seq = d.event_seq
LEFT JOIN tenants t ON t.seq = d.tenant_seq WHERE d.tenant_seq = ? ORDER BY d.event_seq, d.subscription_seq"""
payload = b'{"type":"tenant.created","timestamp":"2026-12-01T06:00:00Z","data":{"id":"ten_000000000000000000000000","domain":"x","admin":{"username":"admin","email":"admin@bench.example"},"plan":"Demo","status":"active","version":1,"created_at":"2026-12-01T06:00:00Z","updated_at":"2026-12-01T06:00:00Z"}}'
for i in range(n):
    domain = f"x-{i:06d}.bench.example"; now = int(time.time() * 1000); tid = f"ten_{i:024d}"
    db.execute("BEGIN IMMEDIATE")
    if "nosavepoint" not in variant: db.execute("SAVEPOINT job")
    db.execute("SELECT seq, id, request FROM tenants WHERE domain = ? AND deleted_at IS NULL", (domain,)).fetchall()
    cur = db.execute("INSERT INTO tenants (id, domain, request, active, version, last_event_seq, created_at, updated_at) VALUES (?, ?, ?, 1, 0, 0, ?, ?)",
                     (tid, domain, '{"domain":"%s"}' % domain, now, now))
    seq = cur.lastrowid
    cur = db.execute("INSERT INTO events (id, type, tenant_seq, domain, version, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (f"evt_{i:024d}", "tenant.created", seq, domain, 1, payload, now))
    ev = cur.lastrowid
    db.execute("UPDATE tenants SET active = ?, version = ?, updated_at = ?, deleted_at = ?, last_event_seq = ? WHERE seq = ?", (1, 1, now, None, ev, seq))
    db.execute(CREATE_DELIVERIES, (ev, seq, domain, now, ",tenant.created,", None))
    if "noreadback" not in variant:
        db.execute("SELECT seq, id, domain, active, version, created_at, updated_at, deleted_at, last_event_seq FROM tenants WHERE seq = ?", (seq,)).fetchall()
        db.execute("SELECT payload FROM events WHERE seq = ?", (ev,)).fetchall()
        db.execute(SELECT_DELIVERIES, (seq,)).fetchall()
    if "nosavepoint" not in variant: db.execute("RELEASE job")
    db.execute("COMMIT")
db.close()
