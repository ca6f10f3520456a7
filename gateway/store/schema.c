/* schema.c -- the database schema and its migrations.
 *
 * PRAGMA user_version is the schema version. Migrations only ever append to
 * the list below; each runs in its own transaction with the version bump, so
 * a crash mid-migration leaves the previous version intact. Migration 1 is
 * never edited: a store written by any earlier gateway opens and migrates.
 */
#include "store/store_int.h"

#include <stdint.h>
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

    /* 5: every search driven by an index, fewer and narrower rows.
     * resources: one row per resource with an integer key (rid), its current
     *   version, owner and own site (a referral's, its Task's...: what the RIS
     *   side reads; visibility is resource_sites'); GP listings seek
     *   (type, owner, seq).
     * versions: append-only, keyed by seq, pointing at their resource by rid;
     *   the old UNIQUE (type, id, version) and (type, seq) indexes are gone.
     * search_current: the index entries of current versions only, keyed by
     *   (parameter id, value, lo, seq) so that one seek finds the matches in
     *   commit order; a version's entries move to search_history (with the
     *   seq that superseded it, until) when a newer version is written, so
     *   snapshots keep seeing them and current searches never wade through them.
     * audit_index: entries of AuditEvents keyed by (parameter id, value, seq);
     *   dates are the audit rows' own recorded times (they grow with seq), and
     *   entity-name is kept in lower case (its :exact twin as written).
     * resource_sites: keyed (site, type, id), so that one key serves both the
     *   visibility check of a resource and a RIS site's listing of a type.
     * outbox_open / outbox_dead: unfinished and dead messages only, by site.
     * Parameter ids are store_param_id(type, name), gw_param_id() in SQL here. */
    "DROP TRIGGER versions_append_only_update;"
    "DROP INDEX versions_by_id; DROP INDEX versions_by_type;"
    "DROP INDEX search_by_value; DROP INDEX search_by_seq;"
    "DROP INDEX audit_index_by_value; DROP INDEX audit_index_by_seq;"
    "DROP INDEX audit_by_recorded; DROP INDEX outbox_by_site;"
    "ALTER TABLE versions RENAME TO v4_versions;"
    "ALTER TABLE resources RENAME TO v4_resources;"
    "ALTER TABLE search_index RENAME TO v4_search_index;"
    "ALTER TABLE audit_index RENAME TO v4_audit_index;"
    "ALTER TABLE resource_sites RENAME TO v4_resource_sites;"
    "CREATE TABLE resources ("
    "  rid INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL,"
    "  owner TEXT, site TEXT, UNIQUE (type, id));"
    "INSERT INTO resources (type, id, seq, version, deleted, owner, site)"
    "  SELECT r.type, r.id, r.seq, r.version, v.deleted, v.owner,"
    "         CASE WHEN r.type IN ('ServiceRequest', 'Task', 'Appointment', 'DiagnosticReport')"
    "              THEN v.site END"
    "  FROM v4_resources r JOIN v4_versions v ON v.seq = r.seq ORDER BY r.seq;"
    "CREATE INDEX resources_by_owner ON resources (type, owner, seq);"
    "CREATE TABLE versions ("
    "  seq INTEGER PRIMARY KEY, rid INTEGER NOT NULL, version INTEGER NOT NULL,"
    "  last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, json TEXT NOT NULL);"
    "INSERT INTO versions (seq, rid, version, last_updated, deleted, json)"
    "  SELECT v.seq, r.rid, v.version, v.last_updated, v.deleted, v.json"
    "  FROM v4_versions v JOIN resources r ON r.type = v.type AND r.id = v.id ORDER BY v.seq;"
    "CREATE INDEX versions_by_rid ON versions (rid, seq);"
    "CREATE TRIGGER versions_append_only_update BEFORE UPDATE ON versions"
    "  BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END;"
    "CREATE TABLE search_current ("
    "  pid INTEGER NOT NULL, value TEXT NOT NULL, lo INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  hi INTEGER NOT NULL, system TEXT NOT NULL, rid INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, value, lo, seq, hi, system)) WITHOUT ROWID;"
    "CREATE TABLE search_history ("
    "  pid INTEGER NOT NULL, value TEXT NOT NULL, lo INTEGER NOT NULL, until INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, hi INTEGER NOT NULL, system TEXT NOT NULL, rid INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, value, until, seq, lo, hi, system)) WITHOUT ROWID;"
    "INSERT INTO search_current (pid, value, lo, seq, hi, system, rid)"
    "  SELECT gw_param_id(r.type, i.param), COALESCE(i.value, ''), COALESCE(i.lo, 0), i.seq,"
    "         COALESCE(i.hi, 0), COALESCE(i.system, ''), r.rid"
    "  FROM v4_search_index i JOIN versions v ON v.seq = i.seq JOIN resources r ON r.rid = v.rid"
    "  WHERE r.seq = i.seq AND r.deleted = 0 ON CONFLICT DO NOTHING;"
    "INSERT INTO search_history (pid, value, lo, until, seq, hi, system, rid)"
    "  SELECT gw_param_id(r.type, i.param), COALESCE(i.value, ''), COALESCE(i.lo, 0),"
    "         (SELECT MIN(x.seq) FROM versions x WHERE x.rid = v.rid AND x.seq > v.seq),"
    "         i.seq, COALESCE(i.hi, 0), COALESCE(i.system, ''), r.rid"
    "  FROM v4_search_index i JOIN versions v ON v.seq = i.seq JOIN resources r ON r.rid = v.rid"
    "  WHERE r.seq > i.seq ON CONFLICT DO NOTHING;"
    "CREATE INDEX search_current_by_seq ON search_current (seq, pid);"
    "CREATE INDEX search_history_by_seq ON search_history (seq, pid);"
    "CREATE TABLE date_widths (pid INTEGER PRIMARY KEY, width INTEGER NOT NULL);"
    "INSERT INTO date_widths (pid, width)"
    "  SELECT pid, MAX(hi - lo) FROM (SELECT pid, lo, hi FROM search_current WHERE value = ''"
    "  UNION ALL SELECT pid, lo, hi FROM search_history WHERE value = '') d GROUP BY pid;"
    "CREATE TABLE audit_index ("
    "  pid INTEGER NOT NULL, value TEXT NOT NULL, seq INTEGER NOT NULL, system TEXT NOT NULL,"
    "  PRIMARY KEY (pid, value, seq, system)) WITHOUT ROWID;"
    "INSERT INTO audit_index (pid, value, seq, system)"
    "  SELECT gw_param_id('AuditEvent', param),"
    "         CASE param WHEN 'entity-name' THEN lower(value) ELSE COALESCE(value, '') END,"
    "         seq, COALESCE(system, '')"
    "  FROM v4_audit_index WHERE param <> 'date' AND value IS NOT NULL ON CONFLICT DO NOTHING;"
    "CREATE TABLE resource_sites ("
    "  site TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL,"
    "  PRIMARY KEY (site, type, id)) WITHOUT ROWID;"
    "INSERT INTO resource_sites (site, type, id) SELECT site, type, id FROM v4_resource_sites;"
    "CREATE INDEX outbox_open ON outbox (site, seq, state, lease_until) WHERE state < 2;"
    "CREATE INDEX outbox_dead ON outbox (site) WHERE state = 3;"
    "DROP TABLE v4_search_index; DROP TABLE v4_audit_index; DROP TABLE v4_resource_sites;"
    "DROP TABLE v4_versions; DROP TABLE v4_resources;",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int64_t store_param_id(const char *type, const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a, 32 bits */
    const unsigned char *p;

    for (p = (const unsigned char *)type; *p; p++)
        h = (h ^ *p) * 16777619u;
    h = (h ^ '.') * 16777619u;
    for (p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int64_t)(h & 0x7fffffffu);
}

static void param_id_sql(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *type = (const char *)sqlite3_value_text(argv[0]);
    const char *name = (const char *)sqlite3_value_text(argv[1]);

    (void)argc;
    if (!type || !name)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, store_param_id(type, name));
}

static enum gw_code read_version(struct db *db, int *version, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, "PRAGMA user_version", &s, err);

    if (rc)
        return rc;
    if (db_step(s) != DB_ROW)
        rc = store_fail_db(db, err, "schema version");
    else
        *version = db_column_int(s, 0);
    db_finalize(s);
    return rc;
}

enum gw_code schema_migration_end(struct db *db, int version, enum gw_code rc, struct gw_error *err)
{
    struct gw_error why = {.code = rc};

    if (!rc)
        rc = stmt_exec(db, "COMMIT", err);
    if (rc) {
        if (err)
            why = *err;
        stmt_exec(db, "ROLLBACK", NULL);
        return gw_fail(err, rc, "migration to schema %d failed: %s", version, why.msg);
    }
    gw_log(GW_LOG_INFO, "store-migrated", "schema %d", version);
    return GW_OK;
}

enum gw_code schema_migrate(struct db *db, int *version, struct gw_error *err)
{
    char bump[64];
    enum gw_code rc;
    int v = 0;

    if (sqlite3_create_function(db_sqlite(db), "gw_param_id", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                NULL, param_id_sql, NULL, NULL) != SQLITE_OK)
        return store_fail_db(db, err, "gw_param_id");
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
        rc = schema_migration_end(db, v + 1, rc, err);
        if (rc)
            return rc;
    }
    *version = v;
    return GW_OK;
}
