/* resources.c -- versioned resources: read, vread and the next version.
 *
 * Invariants: a versions row is never changed once written; resources(type,
 * id) holds the newest version's seq, number, owner and site; versions of one
 * resource are 1, 2, 3... without gaps; lastUpdated never goes backwards, and
 * grows with seq. search_current holds the index entries of current versions
 * only: writing a version moves its predecessor's entries to search_history,
 * marked with the seq that superseded them.
 *
 * A put costs: one seek of (type, id), the version row, the resources row
 * (inserted or updated), the new entries, and for an update the move of the
 * old entries. The writer does only the inserting part (resources_insert)
 * when the put was prepared ahead (record.c): the text is serialised and the
 * entries built on the request's thread.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

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

/* Columns: seq, type, id, version, last_updated, deleted, owner, site, json. */
enum gw_code resource_from_row(struct db_stmt *s, struct store_resource *out)
{
    memset(out, 0, sizeof *out);
    out->seq = db_column_int64(s, 0);
    out->version = (long)db_column_int64(s, 3);
    out->last_updated_ms = db_column_int64(s, 4);
    out->deleted = db_column_int(s, 5) != 0;
    if (!column_dup(s, 1, &out->type) || !column_dup(s, 2, &out->id) ||
        !column_dup(s, 6, &out->owner) || !column_dup(s, 7, &out->site) ||
        !column_dup(s, 8, &out->json)) {
        store_resource_cleanup(out);
        return GW_E_NOMEM;
    }
    return GW_OK;
}

/* Runs s, a read of SQL_READ_CURRENT or SQL_READ_VERSION, into out. */
static enum gw_code read_row(struct db *db, struct db_stmt *s, const char *type, const char *id,
                             long version, struct store_resource *out, struct gw_error *err)
{
    enum gw_code rc;
    int step;

    db_bind_text(s, 1, type);
    db_bind_text(s, 2, id);
    if (version)
        db_bind_int64(s, 3, version);
    step = db_step(s);
    if (step == DB_ROW)
        rc = resource_from_row(s, out) ? gw_fail(err, GW_E_NOMEM, "no memory for a resource")
                                       : GW_OK;
    else if (step == DB_DONE)
        rc = gw_fail(err, GW_E_NOTFOUND, "%s/%s%s not found", type, id,
                     version ? " at that version" : "");
    else
        rc = store_fail_db(db, err, "read");
    return rc;
}

enum gw_code resources_read(struct db *db, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    rc = stmt_prepare(db, version ? SQL_READ_VERSION : SQL_READ_CURRENT, &s, err);
    if (rc)
        return rc;
    rc = read_row(db, s, type, id, version, out, err);
    db_finalize(s);
    return rc;
}

enum gw_code store_read(struct store *st, const char *type, const char *id, long version,
                        struct store_resource *out, struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    enum gw_code rc = resources_read(db, type, id, version, out, err);

    reader_release(st, db);
    return rc;
}

enum gw_code store_txn_read(struct store_txn *txn, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    if (txn->rec)
        return record_read(txn, type, id, version, out, err);
    memset(out, 0, sizeof *out);
    rc = stmt_txn(txn, version ? SQL_READ_VERSION : SQL_READ_CURRENT, &s, err);
    if (rc)
        return rc;
    rc = read_row(txn->db, s, type, id, version, out, err);
    stmt_release(s);
    return rc;
}

enum gw_code resources_current(struct store_txn *txn, const char *type, const char *id,
                               struct resource_current *cur, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;
    int step;

    memset(cur, 0, sizeof *cur);
    rc = stmt_txn(txn, SQL_RESOURCE_LOOKUP, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, type);
    db_bind_text(s, 2, id);
    step = db_step(s);
    if (step == DB_ROW) {
        cur->rid = db_column_int64(s, 0);
        cur->seq = db_column_int64(s, 1);
        cur->version = (long)db_column_int64(s, 2);
    } else if (step != DB_DONE) {
        rc = store_fail_db(txn->db, err, "version lookup");
    }
    stmt_release(s);
    return rc;
}

static enum gw_code next_seq(struct store_txn *txn, int64_t *seq, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, SQL_NEXT_SEQ, &s, err);

    if (rc)
        return rc;
    if (db_step(s) == DB_ROW)
        *seq = db_column_int64(s, 0);
    else
        rc = store_fail_db(txn->db, err, "next seq");
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

/* The stored text of the version (new, free()): meta stamped, serialised. */
static enum gw_code version_text(struct store_txn *txn, const struct store_put *p, long version,
                                 char **out, struct gw_error *err)
{
    enum gw_code rc = resources_stamp_meta(p->resource, version, txn->now_ms, err);

    *out = NULL;
    if (rc)
        return rc;
    *out = p->serialize ? p->serialize(p->resource)
                        : json_dumps(p->resource, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out)
        return gw_fail(err, GW_E_NOMEM, "no memory to serialise %s/%s", p->type, p->id);
    if (strlen(*out) > STORE_MAX_JSON) {
        free(*out);
        *out = NULL;
        return gw_fail(err, GW_E_LIMIT, "%s/%s is larger than %d bytes", p->type, p->id,
                       STORE_MAX_JSON);
    }
    return GW_OK;
}

/* Inserts or updates the resources row; a new resource gets its rid. */
static enum gw_code point_current(struct store_txn *txn, const struct store_put *p,
                                  struct resource_current *cur, int64_t seq, struct gw_error *err)
{
    struct db_stmt *s;
    bool pg = txn->st->pg, returns_rid = !cur->rid && pg;
    enum gw_code rc = stmt_txn(txn,
                               cur->rid ? SQL_RESOURCE_UPDATE
                               : pg     ? SQL_RESOURCE_INSERT
                                        : SQL_RESOURCE_ADD,
                               &s, err);

    if (rc)
        return rc;
    if (cur->rid) {
        db_bind_int64(s, 1, seq);
        db_bind_int64(s, 2, cur->version + 1);
        db_bind_int64(s, 3, p->deleted ? 1 : 0);
        db_bind_text(s, 4, p->owner);
        db_bind_text(s, 5, p->site);
        db_bind_int64(s, 6, cur->rid);
    } else {
        db_bind_text(s, 1, p->type);
        db_bind_text(s, 2, p->id);
        db_bind_int64(s, 3, seq);
        db_bind_int64(s, 4, 1);
        db_bind_int64(s, 5, p->deleted ? 1 : 0);
        db_bind_text(s, 6, p->owner);
        db_bind_text(s, 7, p->site);
    }
    if (db_step(s) != (returns_rid ? DB_ROW : DB_DONE))
        rc = store_fail_db(txn->db, err, "update current version");
    else if (!cur->rid)
        cur->rid = returns_rid ? db_column_int64(s, 0) : db_last_rowid(txn->db);
    stmt_release(s);
    return rc;
}

static enum gw_code insert_version(struct store_txn *txn, const struct store_put *p,
                                   const struct resource_current *cur, int64_t seq,
                                   const char *json, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, SQL_VERSION_INSERT, &s, err);

    if (rc)
        return rc;
    db_bind_int64(s, 1, seq);
    db_bind_int64(s, 2, cur->rid);
    db_bind_int64(s, 3, cur->version + 1);
    db_bind_int64(s, 4, txn->now_ms);
    db_bind_int64(s, 5, p->deleted ? 1 : 0);
    db_bind_text(s, 6, json);
    if (db_step_deferred(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "insert version");
    stmt_release(s);
    return rc;
}

/* Moves the entries of version old_seq to search_history, superseded by seq. */
static enum gw_code retire_entries(struct store_txn *txn, int64_t old_seq, int64_t seq,
                                   struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, SQL_INDEX_RETIRE, &s, err);

    if (rc)
        return rc;
    db_bind_int64(s, 1, old_seq);
    db_bind_int64(s, 2, seq);
    if (db_step_deferred(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "retire index entries");
    stmt_release(s);
    if (rc)
        return rc;
    rc = stmt_txn(txn, SQL_INDEX_RETIRE_DELETE, &s, err);
    if (rc)
        return rc;
    db_bind_int64(s, 1, old_seq);
    if (db_step_deferred(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "retire index entries");
    stmt_release(s);
    return rc;
}

/* The width of pid as committed before txn began, read once (SQLite: a seek,
 * where the upsert it saves would also write); false when not kept. Widths
 * only grow, and the first read of a pid comes before this txn writes it,
 * so no savepoint rolled back can leave it wider than the store's. */
static bool committed_width(struct store_txn *txn, int64_t pid, int64_t *width)
{
    struct db_stmt *s;
    size_t i;

    for (i = 0; i < txn->n_widths; i++) {
        if (txn->widths[i].pid == pid) {
            *width = txn->widths[i].width;
            return true;
        }
    }
    if (txn->st->pg || txn->widths_off || txn->n_widths == STORE_WIDTHS_KEPT)
        return false;
    txn->widths_off = true; /* until read: a later read could see this txn's writes */
    if (stmt_txn(txn, SQL_WIDTH_READ, &s, NULL) != GW_OK)
        return false;
    db_bind_int64(s, 1, pid);
    switch (db_step(s)) {
    case DB_ROW:
        *width = db_column_int64(s, 0);
        break;
    case DB_DONE:
        *width = 0;
        break;
    default:
        stmt_release(s);
        return false;
    }
    stmt_release(s);
    txn->widths_off = false;
    txn->widths[txn->n_widths].pid = pid;
    txn->widths[txn->n_widths++].width = *width;
    return true;
}

/* Keeps date_widths at the widest range of each date parameter. */
static enum gw_code raise_width(struct store_txn *txn, int64_t pid, int64_t width,
                                struct gw_error *err)
{
    struct db_stmt *s;
    int64_t committed;
    enum gw_code rc;

    if (committed_width(txn, pid, &committed) && width <= committed)
        return GW_OK;
    rc = stmt_txn(txn, SQL_WIDTH_RAISE, &s, err);
    if (rc)
        return rc;
    db_bind_int64(s, 1, pid);
    db_bind_int64(s, 2, width);
    if (db_step_deferred(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "date width");
    stmt_release(s);
    return rc;
}

/* Writes the entries of version seq of resource rid into search_current.
 * Dates and numbers have no value ('') and their range in lo, hi. */
static enum gw_code insert_entries(struct store_txn *txn, const char *type, int64_t rid,
                                   int64_t seq, const struct store_index_entry *e, size_t n,
                                   struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = GW_OK;
    size_t i;

    for (i = 0; !rc && i < n; i++) {
        int64_t pid = store_param_id(type, e[i].param);
        bool ranged = !e[i].value;

        rc = stmt_txn(txn, SQL_INDEX_INSERT, &s, err);
        if (rc)
            break;
        db_bind_int64(s, 1, pid);
        db_bind_text(s, 2, ranged ? "" : e[i].value);
        db_bind_int64(s, 3, ranged ? e[i].lo : 0);
        db_bind_int64(s, 4, seq);
        db_bind_int64(s, 5, ranged ? e[i].hi : 0);
        db_bind_text(s, 6, e[i].system ? e[i].system : "");
        db_bind_int64(s, 7, rid);
        if (db_step_deferred(s) != DB_DONE)
            rc = store_fail_db(txn->db, err, "insert index");
        stmt_release(s);
        if (!rc && ranged && e[i].hi > e[i].lo)
            rc = raise_width(txn, pid, e[i].hi - e[i].lo, err);
    }
    /* the rows went out together (PostgreSQL): their outcome */
    if (db_flush(txn->db) != DB_OK && !rc)
        rc = store_fail_db(txn->db, err, "insert index");
    return rc;
}

/* current: the version stored (0: none). A deleted resource keeps its
 * version: it cannot be created again under its id. */
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

enum gw_code resources_insert(struct store_txn *txn, const struct store_put *p,
                              struct resource_current *cur, const char *json, int64_t *seq,
                              struct gw_error *err)
{
    int64_t old_seq = cur->seq;
    enum gw_code rc = next_seq(txn, seq, err);

    if (!rc)
        rc = point_current(txn, p, cur, *seq, err);
    if (!rc)
        rc = insert_version(txn, p, cur, *seq, json, err);
    if (!rc && old_seq)
        rc = retire_entries(txn, old_seq, *seq, err);
    if (!rc && !p->deleted)
        rc = insert_entries(txn, p->type, cur->rid, *seq, p->index, p->n_index, err);
    /* the deferred statements' outcome (PostgreSQL: they went out together) */
    if (db_flush(txn->db) != DB_OK && !rc)
        rc = store_fail_db(txn->db, err, "insert version");
    if (!rc && p->site) /* a resource routed to a site is visible to it (sites.c) */
        rc = store_txn_site_grant(txn, p->type, p->id, p->site, err);
    return rc;
}

enum gw_code store_txn_put(struct store_txn *txn, const struct store_put *p,
                           struct store_written *out, struct gw_error *err)
{
    struct resource_current cur;
    char *json = NULL;
    int64_t seq = 0;
    enum gw_code rc;

    if (txn->rec)
        return record_put(txn, p, out, err);
    rc = resources_current(txn, p->type, p->id, &cur, err);
    if (!rc)
        rc = resources_check_preconditions(p, cur.version, err);
    if (!rc)
        rc = version_text(txn, p, cur.version + 1, &json, err);
    if (!rc)
        rc = resources_insert(txn, p, &cur, json, &seq, err);
    free(json);
    if (!rc && out)
        *out = (struct store_written){cur.version + 1, txn->now_ms, seq};
    return rc;
}
