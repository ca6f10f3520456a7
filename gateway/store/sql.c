/* sql.c -- statement helpers: one-shot execution, error mapping, and a
 * builder for dynamic statements (search) that binds every value, so no
 * caller text is ever spliced into SQL. */
#include "store/store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum gw_code store_fail_db(struct db *db, struct gw_error *err, const char *what)
{
    return db_fail(db, err, what);
}

enum gw_code stmt_prepare(struct db *db, const char *sql, struct db_stmt **out,
                          struct gw_error *err)
{
    *out = NULL;
    if (db_prepare(db, sql, false, out) != DB_OK)
        return store_fail_db(db, err, "prepare");
    return GW_OK;
}

enum gw_code stmt_prepare_stream(struct db *db, const char *sql, struct db_stmt **out,
                                 struct gw_error *err)
{
    *out = NULL;
    if (db_prepare_stream(db, sql, out) != DB_OK)
        return store_fail_db(db, err, "prepare");
    return GW_OK;
}

enum gw_code stmt_exec(struct db *db, const char *sql, struct gw_error *err)
{
    if (db_exec(db, sql) != DB_OK)
        return store_fail_db(db, err, "statement");
    return GW_OK;
}

bool column_dup(struct db_stmt *s, int i, char **out)
{
    const char *t = db_column_text(s, i);

    *out = NULL;
    if (!t)
        return db_column_null(s, i);
    *out = gw_strndup(t, (size_t)db_column_bytes(s, i));
    return *out != NULL;
}

void sql_init(struct sql *q)
{
    memset(q, 0, sizeof *q); /* SQLite's dialect unless the caller sets pg */
    gw_buf_init(&q->text, STORE_MAX_SQL);
}

void sql_cleanup(struct sql *q)
{
    while (q->n_owned)
        free(q->owned[--q->n_owned]);
    free(q->owned);
    free(q->binds);
    gw_buf_cleanup(&q->text);
    memset(q, 0, sizeof *q);
}

void sql_text(struct sql *q, const char *s)
{
    gw_buf_puts(&q->text, s);
}

void sql_textf(struct sql *q, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        q->overflow = true; /* only short, fixed fragments come through here */
    else
        gw_buf_puts(&q->text, line);
}

static struct bind *next_bind(struct sql *q)
{
    struct bind *grown;

    if (q->n_binds >= STORE_MAX_BINDS) {
        q->overflow = true;
        return NULL;
    }
    if (q->n_binds == q->cap_binds) {
        grown = gw_grow(q->binds, &q->cap_binds, q->n_binds, sizeof *grown, 16);
        if (!grown) {
            q->nomem = true;
            return NULL;
        }
        q->binds = grown;
    }
    gw_buf_putc(&q->text, '?');
    return &q->binds[q->n_binds++];
}

void sql_bind_text(struct sql *q, const char *s)
{
    struct bind *b = next_bind(q);

    if (b)
        *b = (struct bind){.is_int = false, .s = s};
}

void sql_bind_owned(struct sql *q, char *s)
{
    char **grown;

    if (!s) {
        q->nomem = true;
        return;
    }
    if (q->n_owned == q->cap_owned) {
        grown = gw_grow(q->owned, &q->cap_owned, q->n_owned, sizeof *grown, 8);
        if (!grown) {
            free(s);
            q->nomem = true;
            return;
        }
        q->owned = grown;
    }
    q->owned[q->n_owned++] = s;
    sql_bind_text(q, s);
}

void sql_bind_int(struct sql *q, int64_t v)
{
    struct bind *b = next_bind(q);

    if (b)
        *b = (struct bind){.is_int = true, .i = v};
}

enum gw_code sql_status(const struct sql *q, struct gw_error *err)
{
    if (q->nomem || q->text.err == GW_E_NOMEM)
        return gw_fail(err, GW_E_NOMEM, "no memory for a query");
    if (q->overflow || q->text.err)
        return gw_fail(err, GW_E_LIMIT, "the query is too large (more than %d values)",
                       STORE_MAX_BINDS);
    return GW_OK;
}

static enum gw_code bind_all(struct db *db, struct db_stmt *s, const struct sql *q,
                             struct gw_error *err)
{
    size_t i;

    for (i = 0; i < q->n_binds; i++) {
        const struct bind *b = &q->binds[i];
        int r = b->is_int ? db_bind_int64(s, (int)i + 1, b->i)
                : b->s    ? db_bind_text(s, (int)i + 1, b->s)
                          : db_bind_null(s, (int)i + 1);

        if (r != DB_OK)
            return store_fail_db(db, err, "bind");
    }
    return GW_OK;
}

static enum gw_code prepare_with(struct db *db, struct sql *q, bool stream, struct db_stmt **out,
                                 struct gw_error *err)
{
    enum gw_code rc;

    *out = NULL;
    rc = sql_status(q, err);
    if (!rc)
        rc = gw_buf_finish(&q->text, "query", err);
    if (!rc)
        rc = stream ? stmt_prepare_stream(db, q->text.data, out, err)
                    : stmt_prepare(db, q->text.data, out, err);
    if (!rc && (rc = bind_all(db, *out, q, err)) != GW_OK) {
        db_finalize(*out);
        *out = NULL;
    }
    return rc;
}

enum gw_code sql_prepare(struct db *db, struct sql *q, struct db_stmt **out, struct gw_error *err)
{
    return prepare_with(db, q, false, out, err);
}

enum gw_code sql_prepare_stream(struct db *db, struct sql *q, struct db_stmt **out,
                                struct gw_error *err)
{
    return prepare_with(db, q, true, out, err);
}

enum gw_code stmt_txn(struct store_txn *txn, const char *sql, struct db_stmt **out,
                      struct gw_error *err)
{
    struct stmt_cache *c = &txn->st->wcache;
    size_t i;

    for (i = 0; i < c->n; i++) {
        if (c->sql[i] == sql) {
            *out = c->stmt[i];
            return GW_OK;
        }
    }
    *out = NULL;
    if (db_prepare(txn->db, sql, true, out) != DB_OK)
        return store_fail_db(txn->db, err, "prepare");
    if (c->n == STORE_STMT_CACHE) { /* a bug: more static statements than slots */
        db_finalize(*out);
        *out = NULL;
        return gw_fail(err, GW_E_INTERNAL, "statement cache full (raise STORE_STMT_CACHE)");
    }
    c->sql[c->n] = sql;
    c->stmt[c->n++] = *out;
    return GW_OK;
}

void stmt_release(struct db_stmt *s)
{
    if (!s)
        return;
    db_reset(s);
    db_clear_bindings(s);
}

void stmt_cache_clear(struct stmt_cache *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        db_finalize(c->stmt[i]);
    c->n = 0;
}

/* ------------------------------------------------------------ statement cache */

/* The cached statement of text, prepared and added when new. */
static enum gw_code cached(struct conn *c, const char *text, struct db_stmt **out,
                           struct gw_error *err)
{
    struct text_cache *tc = c->cache;
    size_t i, victim = 0;
    char *copy;

    for (i = 0; i < STORE_TEXT_CACHE; i++) {
        if (tc->text[i] && strcmp(tc->text[i], text) == 0) {
            tc->used[i] = ++tc->tick;
            *out = tc->stmt[i];
            return GW_OK;
        }
        if (tc->used[i] < tc->used[victim])
            victim = i;
    }
    *out = NULL;
    copy = gw_strdup(text);
    if (!copy)
        return gw_fail(err, GW_E_NOMEM, "no memory for a statement");
    if (db_prepare(c->db, text, true, out) != DB_OK) {
        free(copy);
        return store_fail_db(c->db, err, "prepare");
    }
    db_finalize(tc->stmt[victim]);
    free(tc->text[victim]);
    tc->text[victim] = copy;
    tc->stmt[victim] = *out;
    tc->used[victim] = ++tc->tick;
    return GW_OK;
}

enum gw_code conn_prepare(struct conn *c, struct sql *q, struct db_stmt **out, struct gw_error *err)
{
    enum gw_code rc;

    if (!c->cache)
        return sql_prepare(c->db, q, out, err);
    *out = NULL;
    rc = sql_status(q, err);
    if (!rc)
        rc = gw_buf_finish(&q->text, "query", err);
    if (!rc)
        rc = cached(c, q->text.data, out, err);
    if (!rc && (rc = bind_all(c->db, *out, q, err)) != GW_OK) {
        stmt_release(*out);
        *out = NULL;
    }
    return rc;
}

enum gw_code conn_prepare_fixed(struct conn *c, const char *text, struct db_stmt **out,
                                struct gw_error *err)
{
    return c->cache ? cached(c, text, out, err) : stmt_prepare(c->db, text, out, err);
}

void conn_done(struct conn *c, struct db_stmt *s)
{
    if (c->cache)
        stmt_release(s);
    else
        db_finalize(s);
}

void text_cache_clear(struct text_cache *c)
{
    size_t i;

    for (i = 0; i < STORE_TEXT_CACHE; i++) {
        db_finalize(c->stmt[i]);
        free(c->text[i]);
    }
    memset(c, 0, sizeof *c);
}
