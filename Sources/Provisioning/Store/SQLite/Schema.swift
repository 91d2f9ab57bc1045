/// The database schema as a list of migrations. `PRAGMA user_version` records
/// how many have run, so a file from an older release upgrades in place.
/// Never edit a migration that has shipped; append a new one.
enum Schema {
    static let migrations: [String] = [
        // 1: the durable topic.
        """
        CREATE TABLE tenants (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            domain TEXT NOT NULL UNIQUE,
            request TEXT NOT NULL,          -- canonical JSON of the request, for idempotency
            event_id TEXT NOT NULL UNIQUE,  -- webhook-id
            payload BLOB NOT NULL,          -- the exact webhook body that is signed and sent
            created_at INTEGER NOT NULL     -- Unix milliseconds
        );
        CREATE TABLE subscriptions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            deliver TEXT NOT NULL CHECK (deliver IN ('new', 'all')),
            paused INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE deliveries (
            seq INTEGER PRIMARY KEY,
            subscription_seq INTEGER NOT NULL REFERENCES subscriptions(seq) ON DELETE CASCADE,
            tenant_seq INTEGER NOT NULL REFERENCES tenants(seq),
            state INTEGER NOT NULL DEFAULT 0,   -- 0 pending, 1 delivered, 2 failed
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,            -- Unix ms; set while pending
            last_attempt_at INTEGER,
            last_status INTEGER,
            last_error TEXT,
            delivered_at INTEGER,
            UNIQUE (subscription_seq, tenant_seq)
        );
        -- The dispatcher's query: due deliveries of one subscription, oldest first.
        CREATE INDEX deliveries_due ON deliveries(subscription_seq, next_attempt_at) WHERE state = 0;
        -- A tenant's deliveries, and its derived status.
        CREATE INDEX deliveries_by_tenant ON deliveries(tenant_seq, state);
        -- A subscription's deliveries filtered by state, in tenant order.
        CREATE INDEX deliveries_by_state ON deliveries(subscription_seq, state, tenant_seq);
        """,
        // 2: `deliver: all` catch-up runs in batches and resumes after a restart.
        """
        ALTER TABLE subscriptions ADD COLUMN backfill_next INTEGER;  -- next tenant seq to back-fill
        ALTER TABLE subscriptions ADD COLUMN backfill_until INTEGER; -- last tenant seq to back-fill
        """,
        // 3: the circuit breaker survives restarts: a down subscription stays down.
        """
        ALTER TABLE subscriptions ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;          -- failed attempts in a row
        ALTER TABLE subscriptions ADD COLUMN failed_probes INTEGER NOT NULL DEFAULT 0;     -- since it went down
        ALTER TABLE subscriptions ADD COLUMN probe_not_before INTEGER NOT NULL DEFAULT 0;  -- Unix ms
        ALTER TABLE subscriptions ADD COLUMN down_since INTEGER;                           -- Unix ms, while down
        """,
        // 4: a tenant has many events (created, updated, ... deleted), delivered
        // in order per domain; operational events have no tenant. Every
        // tenant's creation becomes its first event with the same id (its
        // webhook-id) and payload bytes, and the same seq, so deliveries and a
        // running catch-up carry over. A domain is unique among live tenants only.
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,           -- webhook-id
            type TEXT NOT NULL,
            tenant_seq INTEGER,                -- null for operational events
            domain TEXT,                       -- the order key; null for operational events
            version INTEGER,                   -- the tenant's version after this event
            payload BLOB NOT NULL,             -- the exact webhook body that is signed and sent
            created_at INTEGER NOT NULL
        );
        INSERT INTO events (seq, id, type, tenant_seq, domain, version, payload, created_at)
            SELECT seq, event_id, 'tenant.created', seq, domain, 1, payload, created_at FROM tenants;
        CREATE INDEX events_by_tenant ON events(tenant_seq, seq);

        CREATE TABLE tenants_v4 (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            domain TEXT NOT NULL,
            request TEXT NOT NULL,             -- canonical JSON of the creation request, for idempotency
            active INTEGER NOT NULL DEFAULT 1,
            version INTEGER NOT NULL DEFAULT 1, -- events so far
            last_event_seq INTEGER NOT NULL,   -- its data as of now is that event's
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            deleted_at INTEGER
        );
        INSERT INTO tenants_v4 (seq, id, domain, request, last_event_seq, created_at, updated_at)
            SELECT seq, id, domain, request, seq, created_at, created_at FROM tenants;

        CREATE TABLE deliveries_v4 (
            seq INTEGER PRIMARY KEY,
            subscription_seq INTEGER NOT NULL REFERENCES subscriptions(seq) ON DELETE CASCADE,
            event_seq INTEGER NOT NULL REFERENCES events(seq),
            tenant_seq INTEGER,                 -- the event's, for a tenant's status
            domain TEXT,                        -- the event's, for order per (subscription, domain)
            state INTEGER NOT NULL DEFAULT 0,   -- 0 pending, 1 delivered, 2 failed
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,            -- Unix ms; null while pending behind an earlier event
            last_attempt_at INTEGER,
            last_status INTEGER,
            last_error TEXT,
            delivered_at INTEGER,
            UNIQUE (subscription_seq, event_seq)
        );
        INSERT INTO deliveries_v4 (seq, subscription_seq, event_seq, tenant_seq, domain, state, attempts, next_attempt_at,
                                   last_attempt_at, last_status, last_error, delivered_at)
            SELECT d.seq, d.subscription_seq, d.tenant_seq, d.tenant_seq, t.domain, d.state, d.attempts, d.next_attempt_at,
                   d.last_attempt_at, d.last_status, d.last_error, d.delivered_at
            FROM deliveries d JOIN tenants t ON t.seq = d.tenant_seq;
        DROP TABLE deliveries;
        DROP TABLE tenants;
        ALTER TABLE tenants_v4 RENAME TO tenants;
        ALTER TABLE deliveries_v4 RENAME TO deliveries;
        CREATE UNIQUE INDEX tenants_live_domain ON tenants(domain) WHERE deleted_at IS NULL;
        CREATE INDEX tenants_by_domain ON tenants(domain, seq);
        -- The dispatcher's query: due deliveries of one subscription, oldest first.
        CREATE INDEX deliveries_due ON deliveries(subscription_seq, next_attempt_at) WHERE state = 0;
        -- A tenant's deliveries, and its derived status.
        CREATE INDEX deliveries_by_tenant ON deliveries(tenant_seq, state);
        -- A subscription's deliveries filtered by state, in event order.
        CREATE INDEX deliveries_by_state ON deliveries(subscription_seq, state, event_seq);
        -- One (subscription, domain) line: its unacknowledged head, and the next one to release.
        CREATE INDEX deliveries_line ON deliveries(subscription_seq, domain, event_seq) WHERE state != 1;

        -- The event types a subscription wants, as ",type,type,": tested with instr().
        ALTER TABLE subscriptions ADD COLUMN events TEXT NOT NULL
            DEFAULT ',tenant.created,tenant.updated,tenant.deactivated,tenant.activated,tenant.deleted,';
        """,
        // 5: health and counts kept as the store changes, so reading them takes
        // the same time whatever the backlog. The write paths that change a
        // delivery's state keep the counts in the same transaction (see
        // `Counters`); the last attempt's outcome is written with it. And the
        // last attempts of each delivery, for an operator asking why.
        """
        ALTER TABLE deliveries ADD COLUMN created_at INTEGER;   -- Unix ms; null for deliveries from before
        ALTER TABLE subscriptions ADD COLUMN pending_n INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE subscriptions ADD COLUMN delivered_n INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE subscriptions ADD COLUMN failed_n INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE subscriptions ADD COLUMN last_attempt_at INTEGER;
        ALTER TABLE subscriptions ADD COLUMN last_success_at INTEGER;
        ALTER TABLE subscriptions ADD COLUMN last_status INTEGER;
        ALTER TABLE subscriptions ADD COLUMN last_error TEXT;
        ALTER TABLE tenants ADD COLUMN pending_n INTEGER NOT NULL DEFAULT 0;  -- its pending deliveries
        ALTER TABLE tenants ADD COLUMN failed_n INTEGER NOT NULL DEFAULT 0;   -- its failed deliveries
        CREATE TABLE tenant_stats (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;

        UPDATE subscriptions SET
            pending_n = (SELECT count(*) FROM deliveries WHERE subscription_seq = subscriptions.seq AND state = 0),
            delivered_n = (SELECT count(*) FROM deliveries WHERE subscription_seq = subscriptions.seq AND state = 1),
            failed_n = (SELECT count(*) FROM deliveries WHERE subscription_seq = subscriptions.seq AND state = 2),
            last_attempt_at = (SELECT max(last_attempt_at) FROM deliveries WHERE subscription_seq = subscriptions.seq),
            last_success_at = (SELECT max(delivered_at) FROM deliveries WHERE subscription_seq = subscriptions.seq);
        UPDATE tenants SET
            pending_n = (SELECT count(*) FROM deliveries WHERE tenant_seq = tenants.seq AND state = 0),
            failed_n = (SELECT count(*) FROM deliveries WHERE tenant_seq = tenants.seq AND state = 2);
        INSERT INTO tenant_stats (status, n) VALUES ('pending', 0), ('provisioned', 0), ('failed', 0);
        UPDATE tenant_stats SET n = (
            SELECT count(*) FROM tenants WHERE deleted_at IS NULL AND
                CASE WHEN failed_n > 0 THEN 'failed' WHEN pending_n > 0 THEN 'pending' ELSE 'provisioned' END = tenant_stats.status);

        CREATE TABLE attempts (
            seq INTEGER PRIMARY KEY,
            delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,
            at INTEGER NOT NULL,            -- Unix ms
            duration_ms INTEGER NOT NULL,
            status INTEGER,                 -- null when no answer came
            error TEXT,
            response BLOB                   -- the first 1 KiB of the answer's body
        );
        CREATE INDEX attempts_by_delivery ON attempts(delivery_seq, seq);
        """,
        // 6: a delivery's claim, as the PostgreSQL store keeps it for several
        // instances. One process never sets it here, but the outcome write
        // that clears it is the same statement on both stores.
        """
        ALTER TABLE deliveries ADD COLUMN claimed_until INTEGER;
        ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
        CREATE INDEX deliveries_claimed ON deliveries(subscription_seq, claimed_until) WHERE state = 0 AND claimed_until IS NOT NULL;
        """,
    ]

    static var currentVersion: Int { migrations.count }

    /// Applies the pending migrations, each in its own transaction.
    static func migrate(_ db: SQLiteConnection, upTo target: Int = Schema.currentVersion) throws {
        let version = try db.queryOne("PRAGMA user_version") { Int($0.int(0)) } ?? 0
        guard version <= migrations.count else {
            throw SQLiteError(code: 1, message: "database schema version \(version) is newer than this provisiond (\(migrations.count))")
        }
        // Rebuilding a table (create, copy, drop, rename) needs foreign keys
        // off, which only takes effect outside a transaction; each migration
        // checks them itself before it commits.
        try db.execute("PRAGMA foreign_keys = OFF")
        defer { try? db.execute("PRAGMA foreign_keys = ON") }
        // Databases made by a development build of migration 5 (not in any
        // release) have counting triggers; the writer keeps the counts now.
        if version >= 5 {
            for trigger in ["deliveries_count_insert", "deliveries_count_update", "deliveries_count_delete",
                            "tenants_stats_insert", "tenants_stats_update"] {
                try db.execute("DROP TRIGGER IF EXISTS \(trigger)")
            }
        }
        for index in version..<min(target, migrations.count) {
            try db.execute("BEGIN IMMEDIATE")
            do {
                try db.execute(migrations[index])
                if try db.queryOne("PRAGMA foreign_key_check", map: { _ in true }) != nil {
                    throw SQLiteError(code: 19, message: "migration \(index + 1) would break a foreign key")
                }
                try db.execute("PRAGMA user_version = \(index + 1)")
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Settings every connection needs.
    static func configure(_ db: SQLiteConnection) throws {
        try db.execute("PRAGMA journal_mode = WAL")
        // FULL: a commit is on disk before we answer; a crash loses nothing acknowledged.
        try db.execute("PRAGMA synchronous = FULL")
        try db.execute("PRAGMA foreign_keys = ON")
        // A job's savepoint journal stays in memory instead of a temporary file opened per group.
        try db.execute("PRAGMA temp_store = MEMORY")
    }
}
