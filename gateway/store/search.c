/* search.c -- running a FHIR search: the bounds first (the snapshot, the seq
 * range of _lastUpdated, the widest date range of a date driver), then the
 * statements searchsql.c builds from them, all in one read transaction so
 * the page and its total agree.
 *
 * Every search reads a snapshot: the newest version of each resource with
 * seq <= S, where S is the highest seq when the first page was read. Versions
 * are append-only and entries of superseded versions are kept (with the seq
 * that superseded them), so a snapshot never changes and offset paging over
 * it returns each match exactly once, however many referrals arrive meanwhile.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define SEARCH_MAX_ROWS STORE_MAX_PAGE

static enum gw_code one_int(struct conn *c, const char *sql, int64_t arg, bool has_arg,
                            int64_t *out, bool *found, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = conn_prepare_fixed(c, sql, &s, err);
    int step;

    if (rc)
        return rc;
    if (has_arg)
        db_bind_int64(s, 1, arg);
    step = db_step(s);
    if (found)
        *found = step == DB_ROW && !db_column_null(s, 0);
    if (step == DB_ROW)
        *out = db_column_int64(s, 0);
    else if (step != DB_DONE)
        rc = store_fail_db(c->db, err, "search bounds");
    conn_done(c, s);
    return rc;
}

int64_t store_last_time(struct db *db)
{
    struct conn c = {db, NULL};
    int64_t a = 0, b = 0;

    if (one_int(&c, SQL_LAST_TIME, 0, false, &a, NULL, NULL) ||
        one_int(&c, SQL_AUDIT_LAST_TIME, 0, false, &b, NULL, NULL))
        return 0;
    return a > b ? a : b;
}

/* The time of the first row at or after seq x (*none when there is none). */
static enum gw_code probe(struct db_stmt *s, int64_t x, int64_t *t, bool *none)
{
    int step;

    db_reset(s);
    db_bind_int64(s, 1, x);
    step = db_step(s);
    *none = step != DB_ROW;
    if (step == DB_ROW)
        *t = db_column_int64(s, 1);
    return step == DB_ROW || step == DB_DONE ? GW_OK : GW_E_STORE;
}

enum gw_code search_seq_at(struct conn *c, bool audit, int64_t t_ms, int64_t *seq,
                           struct gw_error *err)
{
    struct db_stmt *s;
    int64_t last = 0, lo = 1, hi, t = 0;
    bool none = false;
    enum gw_code rc =
        one_int(c, audit ? SQL_AUDIT_SNAPSHOT : SQL_SNAPSHOT, 0, false, &last, NULL, err);

    if (rc)
        return rc;
    rc = conn_prepare_fixed(c, audit ? SQL_AUDIT_AT_OR_AFTER : SQL_VERSION_AT_OR_AFTER, &s, err);
    if (rc)
        return rc;
    hi = last + 1; /* the answer lies in [1, last + 1] */
    while (!rc && lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;

        rc = probe(s, mid, &t, &none);
        if (!rc && (none || t >= t_ms))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (rc)
        rc = store_fail_db(c->db, err, "search by time");
    conn_done(c, s);
    *seq = lo;
    return rc;
}

/* _lastUpdated (AuditEvent: date) conditions as a seq range [*lo, *hi];
 * *empty when they exclude everything. */
static enum gw_code time_bounds(struct conn *c, const struct store_query *q, int64_t snapshot,
                                int64_t *lo, int64_t *hi, bool *empty, struct gw_error *err)
{
    int64_t from = INT64_MIN, to = INT64_MAX, a, b, s;
    bool any = false;
    size_t i;
    enum gw_code rc;

    *lo = 0;
    *hi = snapshot;
    *empty = false;
    for (i = 0; i < q->n_conds; i++) {
        const struct store_cond *cond = &q->conds[i];

        if (strcmp(cond->param, "_lastUpdated") != 0 &&
            !(search_is_audit(q) && strcmp(cond->param, "date") == 0))
            continue;
        search_time_range(cond, &a, &b);
        from = a > from ? a : from;
        to = b < to ? b : to;
        any = true;
    }
    if (!any)
        return GW_OK;
    if (from >= to) {
        *empty = true;
        return GW_OK;
    }
    rc = from > INT64_MIN / 2 ? search_seq_at(c, search_is_audit(q), from, &s, err) : GW_OK;
    if (!rc && from > INT64_MIN / 2)
        *lo = s;
    if (!rc && to < INT64_MAX / 2) {
        rc = search_seq_at(c, search_is_audit(q), to, &s, err);
        if (!rc && s - 1 < *hi)
            *hi = s - 1;
    }
    if (!rc && *lo > *hi)
        *empty = true;
    return rc;
}

/* The widest date range of each date cond's parameter (date drivers need it). */
static enum gw_code date_widths(struct conn *c, const struct store_query *q, int64_t *widths,
                                struct gw_error *err)
{
    size_t i;
    enum gw_code rc = GW_OK;

    for (i = 0; !rc && i < q->n_conds; i++) {
        bool found = false;

        widths[i] = SEARCH_WIDTH_UNKNOWN;
        if (q->conds[i].kind != STORE_DATE || search_is_audit(q) ||
            strcmp(q->conds[i].param, "_lastUpdated") == 0)
            continue;
        rc = one_int(c, SQL_WIDTH_READ, store_param_id(q->type, q->conds[i].param), true,
                     &widths[i], &found, err);
        if (!found)
            widths[i] = 0; /* the parameter has no date entries at all */
    }
    return rc;
}

static enum gw_code count_total(struct conn *c, const struct store_query *q,
                                const struct search_bounds *b, long *total, struct gw_error *err)
{
    struct sql sql;
    struct db_stmt *s = NULL;
    enum gw_code rc;

    sql_init(&sql);
    sql.pg = db_dialect(c->db) == DB_PG;
    search_sql_build(q, b, SEARCH_COUNT, &sql);
    rc = conn_prepare(c, &sql, &s, err);
    if (!rc && db_step(s) == DB_ROW)
        *total = (long)db_column_int64(s, 0);
    else if (!rc)
        rc = store_fail_db(c->db, err, "count");
    conn_done(c, s);
    sql_cleanup(&sql);
    return rc;
}

static enum gw_code fetch_rows(struct db *db, struct db_stmt *s, size_t count,
                               struct store_page *out, struct gw_error *err)
{
    int step;

    out->items = calloc(count + 1, sizeof *out->items);
    if (!out->items)
        return gw_fail(err, GW_E_NOMEM, "no memory for search results");
    while ((step = db_step(s)) == DB_ROW) {
        if (out->n_items == count) {
            out->has_more = true;
            break;
        }
        if (resource_from_row(s, &out->items[out->n_items]))
            return gw_fail(err, GW_E_NOMEM, "no memory for search results");
        out->n_items++;
    }
    if (step != DB_ROW && step != DB_DONE)
        return store_fail_db(db, err, "search");
    return GW_OK;
}

static enum gw_code fetch_page(struct conn *c, const struct store_query *q,
                               const struct search_bounds *b, size_t count, struct store_page *out,
                               struct gw_error *err)
{
    struct sql sql;
    struct db_stmt *s = NULL;
    struct store_query qc = *q;
    enum gw_code rc;

    qc.count = count;
    sql_init(&sql);
    sql.pg = db_dialect(c->db) == DB_PG;
    search_sql_build(&qc, b, SEARCH_PAGE, &sql);
    rc = conn_prepare(c, &sql, &s, err);
    if (!rc)
        rc = fetch_rows(c->db, s, count, out, err);
    conn_done(c, s);
    sql_cleanup(&sql);
    return rc;
}

/* A RIS scope without sites sees nothing: no statement needed. */
static bool sees_nothing(const struct store_query *q)
{
    return !search_is_audit(q) && q->sites && q->n_sites == 0;
}

/* Works out q's bounds (inside a read transaction): *snapshot is the one the
 * page is read at; *empty when nothing can match. b->widths is new (free()). */
static enum gw_code search_bounds(struct conn *c, const struct store_query *q,
                                  struct search_bounds *b, int64_t *snapshot, bool *empty,
                                  struct gw_error *err)
{
    int64_t now = 0, *widths = NULL;
    enum gw_code rc;

    memset(b, 0, sizeof *b);
    *empty = false;
    rc = one_int(c, search_is_audit(q) ? SQL_AUDIT_SNAPSHOT : SQL_SNAPSHOT, 0, false, &now, NULL,
                 err);
    if (rc)
        return rc;
    *snapshot = q->snapshot ? q->snapshot : now;
    b->snapshot = *snapshot < now ? *snapshot : now;
    b->settled = b->snapshot >= now;
    rc = time_bounds(c, q, b->snapshot, &b->seq_lo, &b->seq_hi, empty, err);
    if (!rc && q->n_conds && !(widths = calloc(q->n_conds, sizeof *widths)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a search");
    if (!rc && widths)
        rc = date_widths(c, q, widths, err);
    b->widths = widths;
    if (rc) {
        free(widths);
        b->widths = NULL;
    }
    if (sees_nothing(q))
        *empty = true;
    return rc;
}

static enum gw_code run_in_txn(struct conn *c, const struct store_query *q, struct store_page *out,
                               struct gw_error *err)
{
    size_t count = q->count > SEARCH_MAX_ROWS ? SEARCH_MAX_ROWS : q->count;
    struct search_bounds b;
    bool empty = false;
    enum gw_code rc = search_bounds(c, q, &b, &out->snapshot, &empty, err);

    if (!rc && empty) {
        out->total = q->want_total ? 0 : -1;
        out->items = calloc(1, sizeof *out->items);
        if (!out->items)
            rc = gw_fail(err, GW_E_NOMEM, "no memory for search results");
    } else if (!rc) {
        if (q->want_total)
            rc = count_total(c, q, &b, &out->total, err);
        if (!rc)
            rc = fetch_page(c, q, &b, count, out, err);
    }
    free((int64_t *)b.widths);
    return rc;
}

enum gw_code search_run(struct conn *c, const struct store_query *q, bool in_txn,
                        struct store_page *out, struct gw_error *err)
{
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    out->total = -1;
    if (!in_txn && stmt_exec(c->db, "BEGIN", err))
        return GW_E_STORE;
    rc = run_in_txn(c, q, out, err);
    if (!in_txn)
        stmt_exec(c->db, rc ? "ROLLBACK" : "COMMIT", NULL);
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
    struct conn c = {reader_acquire(st), NULL};
    enum gw_code rc = search_run(&c, q, false, out, err);

    reader_release(st, c.db);
    return rc;
}

enum gw_code store_txn_search(struct store_txn *txn, const struct store_query *q,
                              struct store_page *out, struct gw_error *err)
{
    struct conn c = {txn->db, &txn->st->wtext}; /* the writer's connection and thread */

    if (txn->rec)
        return record_search(txn, q, out, err);
    return search_run(&c, q, true, out, err);
}

/* ------------------------------------------------------------ history */

static enum gw_code history_run(struct db *db, const struct store_query *q, const char *id,
                                struct store_page *out, struct gw_error *err)
{
    size_t count = q->count > SEARCH_MAX_ROWS ? SEARCH_MAX_ROWS : q->count;
    struct db_stmt *s = NULL;
    struct conn c = {db, NULL};
    int64_t now = 0;
    enum gw_code rc = one_int(&c, SQL_SNAPSHOT, 0, false, &now, NULL, err);

    if (rc)
        return rc;
    out->snapshot = q->snapshot ? q->snapshot : now;
    rc = stmt_prepare(db, SQL_HISTORY, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, q->type);
    db_bind_text(s, 2, id);
    db_bind_int64(s, 3, out->snapshot);
    db_bind_int64(s, 4, (int64_t)count + 1);
    db_bind_int64(s, 5, (int64_t)q->offset);
    rc = fetch_rows(db, s, count, out, err);
    db_finalize(s);
    return rc;
}

enum gw_code store_history(struct store *st, const struct store_query *q, const char *id,
                           struct store_page *out, struct gw_error *err)
{
    struct db *db;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    out->total = -1;
    if (!id)
        return gw_fail(err, GW_E_INTERNAL, "store_history needs an id");
    db = reader_acquire(st);
    rc = stmt_exec(db, "BEGIN", err);
    if (!rc) {
        rc = history_run(db, q, id, out, err);
        stmt_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL);
    }
    reader_release(st, db);
    if (rc)
        store_page_cleanup(out);
    return rc;
}

/* ------------------------------------------------------------ cursors */

struct store_cursor {
    struct store *st;
    struct db *db;
    struct db_stmt *stmt;
    bool in_txn; /* the read transaction that holds the snapshot is open */
    bool done;   /* SQLite would start over if stepped past the end */
};

void store_cursor_close(struct store_cursor *c)
{
    if (!c)
        return;
    db_finalize(c->stmt);
    if (c->in_txn)
        stmt_exec(c->db, "ROLLBACK", NULL);
    if (c->db)
        reader_release(c->st, c->db);
    free(c);
}

/* The statement of every match of q, in q's order, prepared inside the
 * cursor's read transaction (NULL statement: nothing can match). */
static enum gw_code cursor_prepare(struct store_cursor *cur, const struct store_query *q,
                                   struct gw_error *err)
{
    struct conn c = {cur->db, NULL};
    struct search_bounds b;
    struct sql sql;
    int64_t snapshot;
    bool empty = false;
    enum gw_code rc = search_bounds(&c, q, &b, &snapshot, &empty, err);

    if (rc || empty) {
        cur->done = true;
        free((int64_t *)b.widths);
        return rc;
    }
    sql_init(&sql);
    sql.pg = db_dialect(cur->db) == DB_PG;
    search_sql_build(q, &b, SEARCH_ALL, &sql);
    rc = sql_prepare_stream(cur->db, &sql, &cur->stmt, err);
    sql_cleanup(&sql);
    free((int64_t *)b.widths);
    return rc;
}

enum gw_code store_search_cursor(struct store *st, const struct store_query *q,
                                 struct store_cursor **out, struct gw_error *err)
{
    struct store_cursor *c = calloc(1, sizeof *c);
    enum gw_code rc;

    *out = NULL;
    if (!c)
        return gw_fail(err, GW_E_NOMEM, "no memory for a cursor");
    c->st = st;
    c->db = reader_acquire(st);
    rc = stmt_exec(c->db, "BEGIN", err);
    c->in_txn = rc == GW_OK;
    if (!rc)
        rc = cursor_prepare(c, q, err);
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
    step = db_step(c->stmt);
    if (step == DB_DONE) {
        c->done = true;
        return GW_E_NOTFOUND;
    }
    if (step != DB_ROW)
        return store_fail_db(c->db, err, "cursor");
    *json = db_column_text(c->stmt, 8);
    *len = (size_t)db_column_bytes(c->stmt, 8);
    if (!*json)
        return gw_fail(err, GW_E_NOMEM, "no memory for a row");
    return GW_OK;
}
