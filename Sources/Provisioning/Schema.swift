/// The database schema as a list of migrations. `PRAGMA user_version` records
/// how many have run, so a file from an older release upgrades in place.
/// Never edit a migration that has shipped; append a new one.
public enum Schema {
    public static let migrations: [String] = [
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
    ]

    public static var currentVersion: Int { migrations.count }

    /// Applies the pending migrations, each in its own transaction.
    public static func migrate(_ db: SQLiteConnection, upTo target: Int = Schema.currentVersion) throws {
        let version = try db.queryOne("PRAGMA user_version") { Int($0.int(0)) } ?? 0
        guard version <= migrations.count else {
            throw SQLiteError(code: 1, message: "database schema version \(version) is newer than this provisiond (\(migrations.count))")
        }
        for index in version..<min(target, migrations.count) {
            try db.execute("BEGIN IMMEDIATE")
            do {
                try db.execute(migrations[index])
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
    }
}
