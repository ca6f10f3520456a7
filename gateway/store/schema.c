/* schema.c -- the database schema and its migrations.
 *
 * PRAGMA user_version is the schema version. Migrations only ever append to
 * the list below; each runs in its own transaction with the version bump, so
 * a crash mid-migration leaves the previous version intact.
 */
#include "store/store_int.h"

#include <stdio.h>

static const char *const migrations[] = {
    /* 1: versioned resources, search index, outbox, inbound dedupe, audit chain */
    "CREATE TABLE versions ("
    "  seq INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,"
    "  last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    "  owner TEXT, site TEXT, json TEXT NOT NULL,"
    "  UNIQUE (type, id, version));"
    "CREATE INDEX versions_by_id ON versions (type, id, seq);"
    "CREATE INDEX versions_by_type ON versions (type, seq);"
    "CREATE TABLE resources ("
    "  type TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL,"
    "  PRIMARY KEY (type, id)) WITHOUT ROWID;"
    "CREATE TABLE search_index ("
    "  seq INTEGER NOT NULL, param TEXT NOT NULL, system TEXT, value TEXT,"
    "  lo INTEGER, hi INTEGER);"
    "CREATE INDEX search_by_value ON search_index (param, value, seq);"
    "CREATE INDEX search_by_seq ON search_index (seq, param);"
    "CREATE TABLE outbox ("
    "  seq INTEGER PRIMARY KEY, control_id TEXT NOT NULL UNIQUE, site TEXT NOT NULL,"
    "  kind TEXT NOT NULL, ref_type TEXT, ref_id TEXT, message BLOB NOT NULL,"
    "  state INTEGER NOT NULL, lease_until INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL, last_error TEXT);"
    "CREATE INDEX outbox_by_site ON outbox (site, state, seq);"
    "CREATE INDEX outbox_by_ref ON outbox (ref_type, ref_id, seq);"
    "CREATE TABLE inbound ("
    "  sender TEXT NOT NULL, control_id TEXT NOT NULL, received INTEGER NOT NULL,"
    "  ack BLOB NOT NULL, PRIMARY KEY (sender, control_id)) WITHOUT ROWID;"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, recorded INTEGER NOT NULL,"
    "  json TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX audit_by_recorded ON audit (recorded);"
    "CREATE TABLE audit_index ("
    "  seq INTEGER NOT NULL, param TEXT NOT NULL, system TEXT, value TEXT,"
    "  lo INTEGER, hi INTEGER);"
    "CREATE INDEX audit_index_by_value ON audit_index (param, value, seq);"
    "CREATE INDEX audit_index_by_seq ON audit_index (seq, param);"
    "CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;"
    "CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;"
    "CREATE TRIGGER versions_append_only_update BEFORE UPDATE ON versions"
    "  BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END;",
    /* 2: Subscriptions as matching sees them, and their notification outbox */
    "CREATE TABLE subscriptions ("
    "  id TEXT PRIMARY KEY, owner TEXT NOT NULL, type TEXT NOT NULL, criteria TEXT NOT NULL,"
    "  end_ms INTEGER NOT NULL DEFAULT 0, enabled INTEGER NOT NULL,"
    "  events INTEGER NOT NULL DEFAULT 0, queued INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX subscriptions_by_owner ON subscriptions (owner, type);"
    "CREATE TABLE notifications ("
    "  seq INTEGER PRIMARY KEY, subscription TEXT NOT NULL, position INTEGER NOT NULL,"
    "  event INTEGER NOT NULL, kind INTEGER NOT NULL, focus_type TEXT, focus_id TEXT,"
    "  focus_version INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL, last_error TEXT, UNIQUE (subscription, position));"
    "CREATE INDEX notifications_by_state ON notifications (state, subscription, position);",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static enum gw_code read_version(sqlite3 *db, int *version, struct gw_error *err)
{
    sqlite3_stmt *s;
    enum gw_code rc = stmt_prepare(db, "PRAGMA user_version", &s, err);

    if (rc)
        return rc;
    if (sqlite3_step(s) != SQLITE_ROW)
        rc = store_fail_db(db, err, "schema version");
    else
        *version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc;
}

enum gw_code schema_migrate(sqlite3 *db, int *version, struct gw_error *err)
{
    char bump[64];
    enum gw_code rc;
    int v = 0;

    rc = read_version(db, &v, err);
    if (rc)
        return rc;
    if (v > N_MIGRATIONS)
        return gw_fail(err, GW_E_STORE,
                       "the store is at schema %d, newer than this gateway (%d): upgrade it", v,
                       N_MIGRATIONS);
    for (; v < N_MIGRATIONS; v++) {
        snprintf(bump, sizeof bump, "PRAGMA user_version=%d", v + 1);
        rc = stmt_exec(db, "BEGIN IMMEDIATE", err);
        if (!rc)
            rc = stmt_exec(db, migrations[v], err);
        if (!rc)
            rc = stmt_exec(db, bump, err);
        if (!rc)
            rc = stmt_exec(db, "COMMIT", err);
        if (rc) {
            struct gw_error why = {.code = rc};

            if (err)
                why = *err;
            stmt_exec(db, "ROLLBACK", NULL);
            return gw_fail(err, rc, "migration to schema %d failed: %s", v + 1, why.msg);
        }
        gw_log(GW_LOG_INFO, "store-migrated", "schema %d", v + 1);
    }
    *version = v;
    return GW_OK;
}
