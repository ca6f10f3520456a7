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

    /* 2: which sites may see each resource (resource_sites), and inbound dedupe keyed on the
     * authenticated client. A referral, its Task, Appointment and DiagnosticReport are seen by
     * their own site; every other resource by the sites of the referrals that reference it
     * (subject, requester, performer, reasonReference, supportingInfo) when it belongs to the
     * referral's organisation. The site column of other stored rows is no longer read: a
     * transaction stamped them with its last referral's site. Inbound rows recorded before
     * this migration have no client (''): no client matches them. */
    "CREATE TABLE resource_sites ("
    "  type TEXT NOT NULL, id TEXT NOT NULL, site TEXT NOT NULL,"
    "  PRIMARY KEY (type, id, site)) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO resource_sites (type, id, site)"
    "  SELECT r.type, r.id, v.site FROM resources r JOIN versions v ON v.seq = r.seq"
    "  WHERE v.site IS NOT NULL"
    "    AND r.type IN ('ServiceRequest', 'Task', 'Appointment', 'DiagnosticReport');"
    "WITH referral (site, owner, json) AS ("
    "  SELECT v.site, v.owner, v.json FROM resources r JOIN versions v ON v.seq = r.seq"
    "  WHERE r.type = 'ServiceRequest' AND v.site IS NOT NULL AND v.deleted = 0),"
    " ref (site, owner, text) AS ("
    "  SELECT site, owner, json_extract(json, '$.subject.reference') FROM referral"
    "  UNION ALL SELECT site, owner, json_extract(json, '$.requester.reference') FROM referral"
    "  UNION ALL SELECT site, owner, json_extract(e.value, '$.reference')"
    "    FROM referral, json_each(referral.json, '$.performer') e"
    "  UNION ALL SELECT site, owner, json_extract(e.value, '$.reference')"
    "    FROM referral, json_each(referral.json, '$.reasonReference') e"
    "  UNION ALL SELECT site, owner, json_extract(e.value, '$.reference')"
    "    FROM referral, json_each(referral.json, '$.supportingInfo') e)"
    "INSERT OR IGNORE INTO resource_sites (type, id, site)"
    "  SELECT t.type, t.id, ref.site FROM ref"
    "  JOIN resources t ON t.type = substr(ref.text, 1, instr(ref.text, '/') - 1)"
    "   AND t.id = substr(ref.text, instr(ref.text, '/') + 1)"
    "  JOIN versions tv ON tv.seq = t.seq"
    "  WHERE instr(ref.text, '/') > 1 AND tv.owner = ref.owner;"
    "CREATE TABLE inbound_by_client ("
    "  client TEXT NOT NULL, sender TEXT NOT NULL, control_id TEXT NOT NULL,"
    "  received INTEGER NOT NULL, ack BLOB NOT NULL,"
    "  PRIMARY KEY (client, sender, control_id)) WITHOUT ROWID;"
    "INSERT INTO inbound_by_client (client, sender, control_id, received, ack)"
    "  SELECT '', sender, control_id, received, ack FROM inbound;"
    "DROP TABLE inbound;"
    "ALTER TABLE inbound_by_client RENAME TO inbound;",

    /* 3: the audit log's hourly activity roll-up (the auditor's console),
     * filled from the events already recorded; their HTTP status was not
     * recorded, so their refusals count as rejected requests, except the
     * counted refusals of peers without an identity (DCM 110113 events),
     * which count as refused, each event for its count */
    "CREATE TABLE audit_rollup ("
    "  hour INTEGER NOT NULL, client TEXT NOT NULL, address TEXT NOT NULL,"
    "  class INTEGER NOT NULL, n INTEGER NOT NULL, last INTEGER NOT NULL,"
    "  PRIMARY KEY (hour, client, address, class)) WITHOUT ROWID;"
    "INSERT INTO audit_rollup (hour, client, address, class, n, last)"
    "  SELECT (recorded / 3600000) * 3600000, c, a, k, SUM(n), MAX(recorded) FROM ("
    "    SELECT recorded,"
    "      CASE WHEN who = 'unidentified client' OR type = '110113' THEN ''"
    "           ELSE COALESCE(who, '') END AS c,"
    "      CASE WHEN who = 'unidentified client' OR type = '110113' THEN COALESCE(address, '')"
    "           ELSE '' END AS a,"
    "      CASE WHEN type = '110113' THEN 1"
    "           ELSE CASE outcome WHEN '0' THEN 0 WHEN '4' THEN 2 ELSE 3 END END AS k,"
    "      CASE WHEN type = '110113' THEN COALESCE((SELECT CAST(json_extract(d.value,"
    "        '$.valueString') AS INTEGER) FROM json_each(audit_json, '$.entity') e,"
    "        json_each(e.value, '$.detail') d WHERE json_extract(d.value, '$.type') = 'count'"
    "        LIMIT 1), 1) ELSE 1 END AS n"
    "    FROM (SELECT recorded, json AS audit_json,"
    "            json_extract(json, '$.agent[0].who.display') AS who,"
    "            json_extract(json, '$.agent[0].network.address') AS address,"
    "            json_extract(json, '$.type.code') AS type,"
    "            json_extract(json, '$.outcome') AS outcome FROM audit))"
    "  GROUP BY 1, 2, 3, 4;",

    /* 4: Subscriptions as matching sees them, and their notification outbox */
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
