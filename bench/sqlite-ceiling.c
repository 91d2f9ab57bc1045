/* SQLite's own limit on this disk, to set POST /tenants beside: rows inserted
 * per second with one prepared INSERT, PER rows to a transaction (what group
 * commit buys), in WAL mode with synchronous=FULL as provisiond's writer
 * (Schema.configure): every COMMIT is an fdatasync. The same table and row as
 * bench/sqlite-limit.sh, which does this through the sqlite3 shell (which
 * parses every statement again); this keeps the statement prepared, as
 * provisiond does, so only SQLite and the disk are measured.
 *
 * Runs for SECONDS, not for a number of rows: on a shared disk a commit's
 * fdatasync takes from 0.2 to several ms, and the run stays bounded either way.
 *
 * Build: gcc -O2 -o sqlite-ceiling bench/sqlite-ceiling.c -lsqlite3
 * Usage: sqlite-ceiling DB_PATH SECONDS PER
 * Prints: sqlite-ceiling: rows=N per_commit=P seconds=S rows_per_second=R */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static sqlite3 *db;

static void check(int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite-ceiling: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4 || atof(argv[2]) <= 0 || atol(argv[3]) <= 0) {
        fprintf(stderr, "usage: %s DB_PATH SECONDS PER\n", argv[0]);
        return 2;
    }
    double duration = atof(argv[2]);
    long per = atol(argv[3]), rows = 0;
    check(sqlite3_open(argv[1], &db), "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                           "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);", NULL, NULL, NULL), "setup");
    sqlite3_stmt *insert, *begin, *commit;
    check(sqlite3_prepare_v2(db, "INSERT INTO t (v) VALUES ('tenant with three deliveries')", -1, &insert, NULL), "prepare");
    check(sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), "prepare");
    check(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");

    double start = now(), seconds;
    do {
        check(sqlite3_step(begin), "begin");
        sqlite3_reset(begin);
        for (long j = 0; j < per; j++, rows++) {
            check(sqlite3_step(insert), "insert");
            sqlite3_reset(insert);
        }
        check(sqlite3_step(commit), "commit");
        sqlite3_reset(commit);
        seconds = now() - start;
    } while (seconds < duration);
    printf("sqlite-ceiling: rows=%ld per_commit=%ld seconds=%.3f rows_per_second=%.0f\n", rows, per, seconds, rows / seconds);
    sqlite3_finalize(insert);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    return 0;
}
