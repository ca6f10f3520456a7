/* resources.c -- versioned resources: read, vread and the next version.
 *
 * Invariants: (type, id, version) rows are never changed once written;
 * resources(type, id) points at the newest version's seq; versions of one
 * resource are 1, 2, 3... without gaps; lastUpdated never goes backwards.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define RESOURCE_COLUMNS "seq, type, id, version, last_updated, deleted, owner, site, json"

void store_resource_cleanup(struct store_resource *r)
{
    if (!r)
        return;
    free(r->type);
    free(r->id);
    free(r->owner);
    free(r->site);
    free(r->json);
    memset(r, 0, sizeof *r);
}

enum gw_code resource_from_row(sqlite3_stmt *s, struct store_resource *out)
{
    memset(out, 0, sizeof *out);
    out->seq = sqlite3_column_int64(s, 0);
    out->version = (long)sqlite3_column_int64(s, 3);
    out->last_updated_ms = sqlite3_column_int64(s, 4);
    out->deleted = sqlite3_column_int(s, 5) != 0;
    if (!column_dup(s, 1, &out->type) || !column_dup(s, 2, &out->id) ||
        !column_dup(s, 6, &out->owner) || !column_dup(s, 7, &out->site) ||
        !column_dup(s, 8, &out->json)) {
        store_resource_cleanup(out);
        return GW_E_NOMEM;
    }
    return GW_OK;
}

enum gw_code resources_read(sqlite3 *db, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err)
{
    static const char current[] = "SELECT " RESOURCE_COLUMNS " FROM versions WHERE seq ="
                                  " (SELECT seq FROM resources WHERE type = ?1 AND id = ?2)";
    static const char exact[] = "SELECT " RESOURCE_COLUMNS " FROM versions"
                                " WHERE type = ?1 AND id = ?2 AND version = ?3";
    sqlite3_stmt *s;
    enum gw_code rc;
    int step;

    memset(out, 0, sizeof *out);
    rc = stmt_prepare(db, version ? exact : current, &s, err);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (version)
        sqlite3_bind_int64(s, 3, version);
    step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        rc = resource_from_row(s, out) ? gw_fail(err, GW_E_NOMEM, "no memory for a resource")
                                       : GW_OK;
    else if (step == SQLITE_DONE)
        rc = gw_fail(err, GW_E_NOTFOUND, "%s/%s%s not found", type, id,
                     version ? " at that version" : "");
    else
        rc = store_fail_db(db, err, "read");
    sqlite3_finalize(s);
    return rc;
}

enum gw_code store_read(struct store *st, const char *type, const char *id, long version,
                        struct store_resource *out, struct gw_error *err)
{
    sqlite3 *db = reader_acquire(st);
    enum gw_code rc = resources_read(db, type, id, version, out, err);

    reader_release(st, db);
    return rc;
}

enum gw_code store_txn_read(struct store_txn *txn, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err)
{
    if (txn->rec)
        return record_read(txn, type, id, version, out, err);
    return resources_read(txn->db, type, id, version, out, err);
}

enum gw_code resources_current_version(struct store_txn *txn, const char *type, const char *id,
                                       long *version, struct gw_error *err)
{
    sqlite3_stmt *s;
    enum gw_code rc;
    int step;

    static const char sql[] = "SELECT version FROM resources WHERE type = ?1 AND id = ?2";

    rc = stmt_txn(txn, sql, &s, err);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    step = sqlite3_step(s);
    *version = step == SQLITE_ROW ? (long)sqlite3_column_int64(s, 0) : 0;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail_db(txn->db, err, "version lookup");
    stmt_release(s);
    return rc;
}

enum gw_code resources_stamp_meta(json_t *resource, long version, int64_t ms, struct gw_error *err)
{
    char vid[24], instant[GW_INSTANT_LEN];
    json_t *meta = json_object_get(resource, "meta");

    snprintf(vid, sizeof vid, "%ld", version);
    gw_time_instant(ms, instant);
    if (!json_is_object(meta)) {
        if (json_object_set_new(resource, "meta", json_object()))
            return gw_fail(err, GW_E_NOMEM, "no memory for meta");
        meta = json_object_get(resource, "meta");
    }
    if (json_object_set_new(meta, "versionId", json_string(vid)) ||
        json_object_set_new(meta, "lastUpdated", json_string(instant)))
        return gw_fail(err, GW_E_NOMEM, "no memory for meta");
    return GW_OK;
}

static enum gw_code insert_version(struct store_txn *txn, const struct store_put *p, long version,
                                   const char *json, int64_t *seq, struct gw_error *err)
{
    static const char sql[] =
        "INSERT INTO versions (type, id, version, last_updated, deleted, owner, site, json)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    sqlite3_stmt *s;
    enum gw_code rc = stmt_txn(txn, sql, &s, err);

    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, p->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, version);
    sqlite3_bind_int64(s, 4, txn->now_ms);
    sqlite3_bind_int(s, 5, p->deleted ? 1 : 0);
    sqlite3_bind_text(s, 6, p->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, p->site, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, json, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = store_fail_db(txn->db, err, "insert version");
    *seq = sqlite3_last_insert_rowid(txn->db);
    stmt_release(s);
    return rc;
}

static enum gw_code point_current(struct store_txn *txn, const struct store_put *p, long version,
                                  int64_t seq, struct gw_error *err)
{
    static const char sql[] =
        "INSERT INTO resources (type, id, seq, version) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (type, id) DO UPDATE SET seq = ?3, version = ?4";
    sqlite3_stmt *s;
    enum gw_code rc = stmt_txn(txn, sql, &s, err);

    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, p->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, seq);
    sqlite3_bind_int64(s, 4, version);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = store_fail_db(txn->db, err, "update current version");
    stmt_release(s);
    return rc;
}

enum gw_code index_insert(struct store_txn *txn, bool audit, int64_t seq,
                          const struct store_index_entry *e, size_t n, struct gw_error *err)
{
    static const char search_sql[] = "INSERT INTO search_index (seq, param, system, value, lo, hi) "
                                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    static const char audit_sql[] = "INSERT INTO audit_index (seq, param, system, value, lo, hi) "
                                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    sqlite3_stmt *s;
    enum gw_code rc;
    size_t i;

    if (!n)
        return GW_OK;
    rc = stmt_txn(txn, audit ? audit_sql : search_sql, &s, err);
    for (i = 0; !rc && i < n; i++) {
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, seq);
        sqlite3_bind_text(s, 2, e[i].param, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, e[i].system, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, e[i].value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, e[i].lo);
        sqlite3_bind_int64(s, 6, e[i].hi);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = store_fail_db(txn->db, err, "insert index");
    }
    stmt_release(s);
    return rc;
}

enum gw_code resources_check_preconditions(const struct store_put *p, long current,
                                           struct gw_error *err)
{
    if (p->create && current)
        return gw_fail(err, GW_E_CONFLICT, "%s/%s already exists", p->type, p->id);
    if (p->if_match > 0 && p->if_match != current)
        return gw_fail(err, GW_E_CONFLICT, "%s/%s is at version %ld, not %ld", p->type, p->id,
                       current, p->if_match);
    return GW_OK;
}

enum gw_code resources_insert(struct store_txn *txn, const struct store_put *p, long version,
                              const char *json, int64_t *seq, struct gw_error *err)
{
    enum gw_code rc = insert_version(txn, p, version, json, seq, err);

    if (!rc)
        rc = point_current(txn, p, version, *seq, err);
    if (!rc)
        rc = index_insert(txn, false, *seq, p->index, p->n_index, err);
    if (!rc && p->site) /* a resource routed to a site is visible to it (sites.c) */
        rc = store_txn_site_grant(txn, p->type, p->id, p->site, err);
    return rc;
}

enum gw_code store_txn_put(struct store_txn *txn, const struct store_put *p,
                           struct store_written *out, struct gw_error *err)
{
    long current;
    char *json = NULL;
    int64_t seq = 0;
    enum gw_code rc;

    if (txn->rec)
        return record_put(txn, p, out, err);
    rc = resources_current_version(txn, p->type, p->id, &current, err);
    if (!rc)
        rc = resources_check_preconditions(p, current, err);
    if (!rc)
        rc = resources_stamp_meta(p->resource, current + 1, txn->now_ms, err);
    if (rc)
        return rc;
    json = p->serialize ? p->serialize(p->resource)
                        : json_dumps(p->resource, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!json)
        return gw_fail(err, GW_E_NOMEM, "no memory to serialise %s/%s", p->type, p->id);
    if (strlen(json) > STORE_MAX_JSON)
        rc = gw_fail(err, GW_E_LIMIT, "%s/%s is larger than %d bytes", p->type, p->id,
                     STORE_MAX_JSON);
    if (!rc)
        rc = resources_insert(txn, p, current + 1, json, &seq, err);
    free(json);
    if (!rc && out)
        *out = (struct store_written){current + 1, txn->now_ms, seq};
    return rc;
}
