/* search.c -- FHIR search over the index, as one parameterised statement.
 *
 * Every search reads a snapshot: the newest version of each resource with
 * seq <= S, where S is the highest seq when the first page was read. Versions
 * are append-only, so a snapshot never changes and offset paging over it
 * returns each match exactly once, however many referrals arrive meanwhile.
 * Date prefixes follow FHIR R4 §3.1.1.5.2 with ranges [lo, hi).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define SEARCH_MAX_ROWS STORE_MAX_PAGE

/* Where rows come from: resources (versions) or the audit log. */
struct source {
    const char *select;      /* columns in resource_from_row() order */
    const char *from;        /* "versions v" */
    const char *index;       /* index table */
    const char *updated;     /* last-updated column */
    const char *updated_end; /* its exclusive end, one millisecond later */
    bool versioned;
};

static const struct source resources_src = {
    "v.seq, v.type, v.id, v.version, v.last_updated, v.deleted, v.owner, v.site, v.json",
    "versions v",
    "search_index",
    "v.last_updated",
    "(v.last_updated + 1)",
    true};
static const struct source audit_src = {
    "v.seq, 'AuditEvent', v.id, 1, v.recorded, 0, NULL, NULL, v.json",
    "audit v",
    "audit_index",
    "v.recorded",
    "(v.recorded + 1)",
    false};

/* Range predicate for a date value with a prefix; lo/hi name the row's range. */
static void date_predicate(struct sql *q, const struct store_value *v, const char *lo,
                           const char *hi)
{
    char buf[200];

    switch (v->prefix) {
    case STORE_NE:
        snprintf(buf, sizeof buf, "NOT (%s >= ", lo);
        sql_text(q, buf);
        sql_bind_int(q, v->lo);
        snprintf(buf, sizeof buf, " AND %s <= ", hi);
        sql_text(q, buf);
        sql_bind_int(q, v->hi);
        sql_text(q, ")");
        return;
    case STORE_GT: /* some of the row's range lies after the value's */
        snprintf(buf, sizeof buf, "%s > ", hi);
        sql_text(q, buf);
        sql_bind_int(q, v->hi);
        return;
    case STORE_LT: /* some of the row's range lies before the value's */
        snprintf(buf, sizeof buf, "%s < ", lo);
        sql_text(q, buf);
        sql_bind_int(q, v->lo);
        return;
    case STORE_SA: /* the row starts after the value ends */
        snprintf(buf, sizeof buf, "%s >= ", lo);
        sql_text(q, buf);
        sql_bind_int(q, v->hi);
        return;
    case STORE_EB: /* the row ends before the value starts */
        snprintf(buf, sizeof buf, "%s <= ", hi);
        sql_text(q, buf);
        sql_bind_int(q, v->lo);
        return;
    default: /* eq, and ge/le as eq-or-beyond */
        snprintf(buf, sizeof buf, "((%s >= ", lo);
        sql_text(q, buf);
        sql_bind_int(q, v->lo);
        snprintf(buf, sizeof buf, " AND %s <= ", hi);
        sql_text(q, buf);
        sql_bind_int(q, v->hi);
        sql_text(q, ")");
        if (v->prefix == STORE_GE || v->prefix == STORE_LE) {
            snprintf(buf, sizeof buf, " OR %s %s ", v->prefix == STORE_GE ? hi : lo,
                     v->prefix == STORE_GE ? ">" : "<");
            sql_text(q, buf);
            sql_bind_int(q, v->prefix == STORE_GE ? v->hi : v->lo);
        }
        sql_text(q, ")");
    }
}

/* One value's test against an index row i. */
static void value_predicate(struct sql *q, const struct store_cond *c, const struct store_value *v)
{
    switch (c->kind) {
    case STORE_TOKEN:
        sql_text(q, "(");
        if (v->value) {
            sql_text(q, "i.value = ");
            sql_bind_text(q, v->value);
        } else {
            sql_text(q, "1");
        }
        if (v->system && !*v->system) {
            sql_text(q, " AND i.system IS NULL");
        } else if (v->system) {
            sql_text(q, " AND i.system = ");
            sql_bind_text(q, v->system);
        }
        sql_text(q, ")");
        return;
    case STORE_STRING:
        sql_text(q, c->exact ? "i.value = " : "i.value LIKE ");
        sql_bind_text(q, v->value); /* the caller appended '%' and escaped for LIKE */
        if (!c->exact)
            sql_text(q, " ESCAPE '\\'");
        return;
    case STORE_DATE:
        date_predicate(q, v, "i.lo", "i.hi");
        return;
    case STORE_NUMBER:
        sql_text(q, "i.lo = ");
        sql_bind_int(q, v->lo);
        return;
    default: /* reference, uri */
        sql_text(q, "i.value = ");
        sql_bind_text(q, v->value);
    }
}

static void column_condition(struct sql *q, const struct source *src, const struct store_cond *c)
{
    size_t k;

    sql_text(q, c->negate ? " AND NOT (" : " AND (");
    for (k = 0; k < c->n_values; k++) {
        if (k)
            sql_text(q, " OR ");
        if (strcmp(c->param, "_id") == 0) {
            sql_text(q, "v.id = ");
            sql_bind_text(q, c->values[k].value);
        } else {
            date_predicate(q, &c->values[k], src->updated, src->updated_end);
        }
    }
    sql_text(q, ")");
}

static void condition(struct sql *q, const struct source *src, const struct store_cond *c)
{
    char buf[160];
    size_t k;

    if (strcmp(c->param, "_id") == 0 || strcmp(c->param, "_lastUpdated") == 0) {
        column_condition(q, src, c);
        return;
    }
    snprintf(buf, sizeof buf,
             " AND %sEXISTS (SELECT 1 FROM %s i WHERE i.seq = v.seq AND i.param = ",
             (c->negate || c->missing) ? "NOT " : "", src->index);
    sql_text(q, buf);
    sql_bind_text(q, c->param);
    if (c->n_values)
        sql_text(q, " AND (");
    for (k = 0; k < c->n_values; k++) {
        if (k)
            sql_text(q, " OR ");
        value_predicate(q, c, &c->values[k]);
    }
    sql_text(q, c->n_values ? "))" : ")");
}

/* The RIS scope: the row is visible to one of the sites (resource_sites,
 * whose primary key makes this an index seek per row). */
static void site_scope(struct sql *q, const struct store_query *qq)
{
    size_t i;

    sql_text(q, " AND EXISTS (SELECT 1 FROM resource_sites rs WHERE rs.type = v.type"
                " AND rs.id = v.id AND rs.site IN (NULL");
    for (i = 0; i < qq->n_sites; i++) {
        sql_text(q, ", ");
        sql_bind_text(q, qq->sites[i]);
    }
    sql_text(q, "))");
}

static void scope(struct sql *q, const struct source *src, const struct store_query *qq)
{
    if (!src->versioned)
        return;
    if (qq->owner) {
        sql_text(q, " AND v.owner = ");
        sql_bind_text(q, qq->owner);
    }
    if (qq->sites)
        site_scope(q, qq);
}

/* FROM ... WHERE ... for a search (history false) or a history listing. */
static void where_clause(struct sql *q, const struct source *src, const struct store_query *qq,
                         const char *history_id, bool history, int64_t snapshot)
{
    size_t i;

    sql_text(q, " FROM ");
    sql_text(q, src->from);
    sql_text(q, " WHERE v.seq <= ");
    sql_bind_int(q, snapshot);
    if (src->versioned) {
        sql_text(q, " AND v.type = ");
        sql_bind_text(q, qq->type);
    }
    if (history_id) {
        sql_text(q, " AND v.id = ");
        sql_bind_text(q, history_id);
    }
    if (src->versioned && !history) {
        sql_text(q, " AND v.deleted = 0 AND v.seq = (SELECT MAX(x.seq) FROM versions x"
                    " WHERE x.type = v.type AND x.id = v.id AND x.seq <= ");
        sql_bind_int(q, snapshot);
        sql_text(q, ")");
    }
    scope(q, src, qq);
    for (i = 0; !history && i < qq->n_conds; i++)
        condition(q, src, &qq->conds[i]);
}

static void order_clause(struct sql *q, const struct source *src, const struct store_query *qq,
                         bool history)
{
    char buf[200];
    size_t i;

    sql_text(q, " ORDER BY ");
    for (i = 0; !history && i < qq->n_sorts; i++) {
        const struct store_sort *s = &qq->sorts[i];
        const char *dir = s->descending ? " DESC, " : " ASC, ";

        if (strcmp(s->param, "_id") == 0) {
            sql_text(q, "v.id");
        } else if (strcmp(s->param, "_lastUpdated") == 0) {
            sql_text(q, src->updated);
        } else {
            snprintf(buf, sizeof buf, "(SELECT %s FROM %s i WHERE i.seq = v.seq AND i.param = ",
                     s->kind == STORE_DATE || s->kind == STORE_NUMBER
                         ? (s->descending ? "MAX(i.hi)" : "MIN(i.lo)")
                         : (s->descending ? "MAX(i.value)" : "MIN(i.value)"),
                     src->index);
            sql_text(q, buf);
            sql_bind_text(q, s->param);
            sql_text(q, ")");
        }
        sql_text(q, dir);
    }
    sql_text(q, history ? "v.seq DESC" : "v.seq ASC");
}

static enum gw_code snapshot_now(sqlite3 *db, const struct source *src, int64_t *out,
                                 struct gw_error *err)
{
    sqlite3_stmt *s;
    enum gw_code rc = stmt_prepare(db,
                                   src->versioned ? "SELECT COALESCE(MAX(seq), 0) FROM versions"
                                                  : "SELECT COALESCE(MAX(seq), 0) FROM audit",
                                   &s, err);

    if (rc)
        return rc;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        rc = store_fail_db(db, err, "snapshot");
    sqlite3_finalize(s);
    return rc;
}

static enum gw_code count_total(sqlite3 *db, const struct source *src, const struct store_query *q,
                                const char *history_id, bool history, int64_t snapshot, long *total,
                                struct gw_error *err)
{
    struct sql sql;
    sqlite3_stmt *s = NULL;
    enum gw_code rc;

    sql_init(&sql);
    sql_text(&sql, "SELECT COUNT(*)");
    where_clause(&sql, src, q, history_id, history, snapshot);
    rc = sql_prepare(db, &sql, &s, err);
    if (!rc && sqlite3_step(s) == SQLITE_ROW)
        *total = (long)sqlite3_column_int64(s, 0);
    else if (!rc)
        rc = store_fail_db(db, err, "count");
    sqlite3_finalize(s);
    sql_cleanup(&sql);
    return rc;
}

static enum gw_code fetch_rows(sqlite3_stmt *s, size_t count, struct store_page *out,
                               struct gw_error *err)
{
    int step;

    out->items = calloc(count + 1, sizeof *out->items);
    if (!out->items)
        return gw_fail(err, GW_E_NOMEM, "no memory for search results");
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n_items == count) {
            out->has_more = true;
            break;
        }
        if (resource_from_row(s, &out->items[out->n_items]))
            return gw_fail(err, GW_E_NOMEM, "no memory for search results");
        out->n_items++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return gw_fail(err, GW_E_STORE, "search failed");
    return GW_OK;
}

enum gw_code search_run(sqlite3 *db, const struct store_query *q, const char *history_id,
                        bool history, struct store_page *out, struct gw_error *err)
{
    const struct source *src = strcmp(q->type, "AuditEvent") == 0 ? &audit_src : &resources_src;
    size_t count = q->count > SEARCH_MAX_ROWS ? SEARCH_MAX_ROWS : q->count;
    struct sql sql;
    sqlite3_stmt *s = NULL;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    out->total = -1;
    out->snapshot = q->snapshot;
    rc = q->snapshot ? GW_OK : snapshot_now(db, src, &out->snapshot, err);
    if (!rc && q->want_total)
        rc = count_total(db, src, q, history_id, history, out->snapshot, &out->total, err);
    if (rc)
        return rc;
    sql_init(&sql);
    sql_text(&sql, "SELECT ");
    sql_text(&sql, src->select);
    where_clause(&sql, src, q, history_id, history, out->snapshot);
    order_clause(&sql, src, q, history);
    sql_text(&sql, " LIMIT ");
    sql_bind_int(&sql, (int64_t)count + 1);
    sql_text(&sql, " OFFSET ");
    sql_bind_int(&sql, (int64_t)q->offset);
    rc = sql_prepare(db, &sql, &s, err);
    if (!rc)
        rc = fetch_rows(s, count, out, err);
    sqlite3_finalize(s);
    sql_cleanup(&sql);
    if (rc)
        store_page_cleanup(out);
    return rc;
}

void store_page_cleanup(struct store_page *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->n_items; i++)
        store_resource_cleanup(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof *p);
}

enum gw_code store_search(struct store *st, const struct store_query *q, struct store_page *out,
                          struct gw_error *err)
{
    sqlite3 *db = reader_acquire(st);
    enum gw_code rc = search_run(db, q, NULL, false, out, err);

    reader_release(st, db);
    return rc;
}

enum gw_code store_history(struct store *st, const struct store_query *q, const char *id,
                           struct store_page *out, struct gw_error *err)
{
    sqlite3 *db = reader_acquire(st);
    enum gw_code rc = search_run(db, q, id, true, out, err);

    reader_release(st, db);
    return rc;
}

enum gw_code store_txn_search(struct store_txn *txn, const struct store_query *q,
                              struct store_page *out, struct gw_error *err)
{
    if (txn->rec)
        return record_search(txn, q, out, err);
    return search_run(txn->db, q, NULL, false, out, err);
}

/* ------------------------------------------------------------ cursors */

struct store_cursor {
    struct store *st;
    sqlite3 *db;
    sqlite3_stmt *stmt;
    bool done; /* SQLite would start over if stepped past the end */
};

void store_cursor_close(struct store_cursor *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->stmt);
    if (c->db)
        reader_release(c->st, c->db);
    free(c);
}

enum gw_code store_search_cursor(struct store *st, const struct store_query *q,
                                 struct store_cursor **out, struct gw_error *err)
{
    const struct source *src = strcmp(q->type, "AuditEvent") == 0 ? &audit_src : &resources_src;
    struct store_cursor *c = calloc(1, sizeof *c);
    int64_t snapshot = q->snapshot;
    struct sql sql;
    enum gw_code rc;

    *out = NULL;
    if (!c)
        return gw_fail(err, GW_E_NOMEM, "no memory for a cursor");
    c->st = st;
    c->db = reader_acquire(st);
    rc = snapshot ? GW_OK : snapshot_now(c->db, src, &snapshot, err);
    if (rc) {
        store_cursor_close(c);
        return rc;
    }
    sql_init(&sql);
    sql_text(&sql, "SELECT ");
    sql_text(&sql, src->select);
    where_clause(&sql, src, q, NULL, false, snapshot);
    order_clause(&sql, src, q, false);
    rc = sql_prepare(c->db, &sql, &c->stmt, err);
    sql_cleanup(&sql);
    if (rc) {
        store_cursor_close(c);
        return rc;
    }
    *out = c;
    return GW_OK;
}

enum gw_code store_cursor_next(struct store_cursor *c, const char **json, size_t *len,
                               struct gw_error *err)
{
    int step;

    *json = NULL;
    *len = 0;
    if (c->done)
        return GW_E_NOTFOUND;
    step = sqlite3_step(c->stmt);
    if (step == SQLITE_DONE) {
        c->done = true;
        return GW_E_NOTFOUND;
    }
    if (step != SQLITE_ROW)
        return store_fail_db(c->db, err, "cursor");
    *json = (const char *)sqlite3_column_text(c->stmt, 8);
    *len = (size_t)sqlite3_column_bytes(c->stmt, 8);
    if (!*json)
        return gw_fail(err, GW_E_NOMEM, "no memory for a row");
    return GW_OK;
}
