/* db.c -- the statement layer (db.h): SQLite calls passed through, and the
 * same calls on PostgreSQL through the connection layer (pg_conn.c). */
#include "store/db.h"
#include "store/pg_int.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_BYTEA_OID       17
#define DB_BUSY_TIMEOUT_MS 10000

struct db {
    enum db_dialect dialect;
    sqlite3 *lite;
    struct pgc *pg;
    struct gw_error last; /* PostgreSQL: the last failure */
    int64_t changes;      /* PostgreSQL: rows the last command changed */
    bool deferred;        /* PostgreSQL: statements sent by db_step_deferred(), unsettled */
    bool deferred_failed; /* ...and they failed (last says why): the next statement fails */
    unsigned long long next_name;
};

struct db_stmt {
    struct db *db;
    sqlite3_stmt *lite;
    /* PostgreSQL */
    char *sql; /* with $N placeholders */
    bool persistent;
    bool reads;     /* a SELECT: may run again after a lost connection */
    bool stream;    /* rows read one at a time (db_prepare_stream()) */
    bool streaming; /* ...and some still to read */
    char name[32];
    long session; /* the session it was prepared in (0: none) */
    int n_params;
    const char **values;
    int *lengths, *formats;
    char (*numbers)[24];
    PGresult *res;
    int row; /* the current row; -1 before the first */
    bool ran;
    char **decoded; /* bytea columns of the current row, as bytes */
    int *decoded_len;
    int n_cols;
};

static int pg_before(struct db *db);

/* ------------------------------------------------------------ connections */

enum gw_code db_open_sqlite(const char *path, bool create, struct db **out, struct gw_error *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    struct db *db = calloc(1, sizeof *db);
    enum gw_code rc;

    *out = NULL;
    if (!db)
        return gw_fail(err, GW_E_NOMEM, "no memory for a connection");
    db->dialect = DB_SQLITE;
    if (sqlite3_open_v2(path, &db->lite, flags, store_walbuf_vfs()) != SQLITE_OK) {
        rc = gw_fail(err, GW_E_STORE, "cannot open %s: %s", path,
                     db->lite ? sqlite3_errmsg(db->lite) : "out of memory");
        db_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db->lite, DB_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db->lite, 1);
    if (db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                    "PRAGMA temp_store=MEMORY;") != DB_OK) {
        rc = db_fail(db, err, "open");
        db_close(db);
        return rc;
    }
    *out = db;
    return GW_OK;
}

enum gw_code db_open_pg(const struct pgc_opts *opts, struct db **out, struct gw_error *err)
{
    struct db *db = calloc(1, sizeof *db);
    enum gw_code rc;

    *out = NULL;
    if (!db)
        return gw_fail(err, GW_E_NOMEM, "no memory for a connection");
    db->dialect = DB_PG;
    rc = pgc_open(opts, &db->pg, err);
    if (rc) {
        free(db);
        return rc;
    }
    *out = db;
    return GW_OK;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->lite)
        sqlite3_close(db->lite);
    pgc_close(db->pg);
    free(db);
}

enum db_dialect db_dialect(const struct db *db)
{
    return db->dialect;
}

sqlite3 *db_sqlite(struct db *db)
{
    return db->lite;
}

struct pgc *db_pgc(struct db *db)
{
    return db->pg;
}

struct db *db_of(struct db_stmt *s)
{
    return s->db;
}

/* ------------------------------------------------------------ errors */

enum gw_code db_fail(struct db *db, struct gw_error *err, const char *what)
{
    int code;

    if (db->dialect == DB_PG)
        return gw_fail(err, db->last.code ? db->last.code : GW_E_STORE, "%s: %s", what,
                       db->last.msg[0] ? db->last.msg : "PostgreSQL failed");
    code = sqlite3_extended_errcode(db->lite) & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return gw_fail(err, GW_E_STORE, "%s: the database is busy", what);
    if (code == SQLITE_NOMEM)
        return gw_fail(err, GW_E_NOMEM, "%s: out of memory", what);
    if (code == SQLITE_FULL || code == SQLITE_IOERR || code == SQLITE_READONLY)
        return gw_fail(err, GW_E_IO, "%s: %s", what, sqlite3_errmsg(db->lite));
    return gw_fail(err, GW_E_STORE, "%s: %s", what, sqlite3_errmsg(db->lite));
}

const char *db_errmsg(struct db *db)
{
    return db->dialect == DB_PG ? db->last.msg : sqlite3_errmsg(db->lite);
}

int64_t db_changes(struct db *db)
{
    return db->dialect == DB_PG ? db->changes : sqlite3_changes(db->lite);
}

int64_t db_last_rowid(struct db *db)
{
    return db->dialect == DB_SQLITE ? sqlite3_last_insert_rowid(db->lite) : 0;
}

int db_exec(struct db *db, const char *sql)
{
    bool outside;
    int attempt;

    if (db->dialect == DB_SQLITE)
        return sqlite3_exec(db->lite, sql, NULL, NULL, NULL) == SQLITE_OK ? DB_OK : DB_ERROR;
    if (pg_before(db) != DB_OK)
        return DB_ERROR;
    gw_error_clear(&db->last);
    outside = !pgc_in_transaction(db->pg);
    for (attempt = 0;; attempt++) {
        if (outside && pgc_ensure(db->pg, &db->last) != GW_OK)
            return DB_ERROR;
        if (pgc_command(db->pg, "PostgreSQL", sql, &db->last) == GW_OK)
            return DB_OK;
        if (pgc_last_class(db->pg) != PGC_LOST)
            return DB_ERROR;
        if (strcmp(sql, "ROLLBACK") == 0 || strcmp(sql, "COMMIT") == 0) {
            pgc_transaction_ended(db->pg); /* it died with its session: the next use reconnects */
            return DB_ERROR;
        }
        /* a pooled reader's session may have died while idle (the server restarted): a
         * BEGIN that opened nothing runs once more, on a new session */
        if (attempt || !outside || strncmp(sql, "BEGIN", 5) != 0)
            return DB_ERROR;
        pgc_transaction_ended(db->pg);
        gw_error_clear(&db->last);
    }
}

/* ------------------------------------------------------------ deferred statements */

/* Waits for the deferred statements; a failure among them is kept for the next
 * statement (or db_flush()) to report. */
static void pg_settle(struct db *db)
{
    if (!db->deferred)
        return;
    db->deferred = false;
    if (pgc_pipe_sync(db->pg, "PostgreSQL", &db->last) != GW_OK)
        db->deferred_failed = true;
}

/* Before any other statement: DB_ERROR when deferred ones failed (reported once). */
static int pg_before(struct db *db)
{
    pg_settle(db);
    if (!db->deferred_failed)
        return DB_OK;
    db->deferred_failed = false;
    return DB_ERROR;
}

int db_flush(struct db *db)
{
    if (db->dialect == DB_SQLITE)
        return DB_OK;
    return pg_before(db);
}

/* ------------------------------------------------------------ placeholders */

char *db_pg_translate(const char *sql, int *n_params)
{
    size_t len = strlen(sql), cap = len * 8 + 1, o = 0; /* "?" → "$" and 7 digits at most */
    char *out = malloc(cap), quote = 0;
    int last = 0;
    const char *p;

    *n_params = 0;
    if (!out)
        return NULL;
    for (p = sql; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
            out[o++] = *p;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            out[o++] = *p;
        } else if (*p == '?') {
            int n = 0;

            while (p[1] >= '0' && p[1] <= '9' && n < 100000)
                n = n * 10 + (*++p - '0');
            if (!n)
                n = last + 1;
            if (n > last)
                last = n;
            o += (size_t)snprintf(out + o, cap - o, "$%d", n);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    *n_params = last;
    return out;
}

/* ------------------------------------------------------------ statements, PostgreSQL */

static void pg_forget_row(struct db_stmt *s)
{
    int i;

    if (!s->decoded)
        return;
    for (i = 0; i < s->n_cols; i++) {
        free(s->decoded[i]);
        s->decoded[i] = NULL;
    }
}

static void pg_clear_result(struct db_stmt *s)
{
    if (s->streaming)
        pgc_abandon(s->db->pg);
    s->streaming = false;
    pg_forget_row(s);
    free(s->decoded);
    free(s->decoded_len);
    s->decoded = NULL;
    s->decoded_len = NULL;
    s->n_cols = 0;
    PQclear(s->res);
    s->res = NULL;
    s->ran = false;
    s->row = -1;
}

static bool starts_with_select(const char *sql)
{
    while (*sql == ' ' || *sql == '(')
        sql++;
    return strncmp(sql, "SELECT", 6) == 0 || strncmp(sql, "select", 6) == 0;
}

static int pg_columns(struct db_stmt *s);

static int pg_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out)
{
    struct db_stmt *s = calloc(1, sizeof *s);

    *out = NULL;
    gw_error_clear(&db->last);
    if (!s) {
        gw_fail(&db->last, GW_E_NOMEM, "no memory for a statement");
        return DB_ERROR;
    }
    s->db = db;
    s->row = -1;
    s->persistent = persistent;
    s->reads = starts_with_select(sql);
    s->sql = db_pg_translate(sql, &s->n_params);
    if (s->sql && s->n_params > PGC_MAX_PARAMS) {
        gw_fail(&db->last, GW_E_LIMIT, "more than %d values in one statement", PGC_MAX_PARAMS);
        db_finalize(s);
        return DB_ERROR;
    }
    if (s->sql && s->n_params) {
        size_t n = (size_t)s->n_params;

        s->values = calloc(n, sizeof *s->values);
        s->lengths = calloc(n, sizeof *s->lengths);
        s->formats = calloc(n, sizeof *s->formats);
        s->numbers = calloc(n, sizeof *s->numbers);
    }
    if (!s->sql || (s->n_params && (!s->values || !s->lengths || !s->formats || !s->numbers))) {
        gw_fail(&db->last, GW_E_NOMEM, "no memory for a statement");
        db_finalize(s);
        return DB_ERROR;
    }
    if (persistent)
        snprintf(s->name, sizeof s->name, "gws%llu", ++db->next_name);
    *out = s;
    return DB_OK;
}

static enum gw_code pg_exec_once(struct db_stmt *s)
{
    struct db *db = s->db;
    enum gw_code rc;

    if (!s->persistent)
        return pgc_exec_values(db->pg, "PostgreSQL", NULL, s->sql, s->n_params, s->values,
                               s->lengths, s->formats, &s->res, &db->last);
    if (s->session != pgc_session(db->pg)) {
        rc = pgc_prepare(db->pg, "PostgreSQL", s->name, s->sql, &db->last);
        if (rc)
            return rc;
        s->session = pgc_session(db->pg);
    }
    return pgc_exec_values(db->pg, "PostgreSQL", s->name, NULL, s->n_params, s->values, s->lengths,
                           s->formats, &s->res, &db->last);
}

/* Runs the statement: a read outside a transaction once more after a lost connection. */
static int pg_run(struct db_stmt *s)
{
    struct db *db = s->db;
    bool outside;
    enum gw_code rc;
    int attempt;

    if (pg_before(db) != DB_OK)
        return DB_ERROR;
    outside = !pgc_in_transaction(db->pg);
    gw_error_clear(&db->last);
    for (attempt = 0;; attempt++) {
        rc = outside ? pgc_ensure(db->pg, &db->last) : GW_OK;
        if (!rc)
            rc = pg_exec_once(s);
        if (!rc || attempt || !outside || !s->reads || pgc_last_class(db->pg) != PGC_LOST)
            break;
    }
    if (rc)
        return DB_ERROR;
    s->ran = true;
    s->row = -1;
    db->changes = strtoll(PQcmdTuples(s->res), NULL, 10);
    return pg_columns(s);
}

/* The decoding slots of the result's columns (once per statement run). */
static int pg_columns(struct db_stmt *s)
{
    if (s->decoded || !s->res)
        return DB_OK;
    s->n_cols = PQnfields(s->res);
    if (s->n_cols) {
        s->decoded = calloc((size_t)s->n_cols, sizeof *s->decoded);
        s->decoded_len = calloc((size_t)s->n_cols, sizeof *s->decoded_len);
        if (!s->decoded || !s->decoded_len) {
            gw_fail(&s->db->last, GW_E_NOMEM, "no memory for a result");
            return DB_ERROR;
        }
    }
    return DB_OK;
}

/* A streamed statement: sent with its rows asked one at a time. */
static int pg_send(struct db_stmt *s)
{
    struct db *db = s->db;

    if (pg_before(db) != DB_OK)
        return DB_ERROR;
    gw_error_clear(&db->last);
    if (!pgc_in_transaction(db->pg) && pgc_ensure(db->pg, &db->last) != GW_OK)
        return DB_ERROR;
    if (pgc_send(db->pg, "PostgreSQL", s->sql, s->n_params, s->values, s->lengths, s->formats,
                 &db->last) != GW_OK)
        return DB_ERROR;
    s->ran = s->streaming = true;
    return DB_OK;
}

static int pg_step_stream(struct db_stmt *s)
{
    PGresult *row = NULL;
    int got;

    if (!s->ran && pg_send(s) != DB_OK)
        return DB_ERROR;
    pg_forget_row(s);
    PQclear(s->res);
    s->res = NULL;
    if (!s->streaming)
        return DB_DONE;
    got = pgc_next(s->db->pg, "PostgreSQL", &row, &s->db->last);
    if (got <= 0) {
        s->streaming = false;
        return got == 0 ? DB_DONE : DB_ERROR;
    }
    s->res = row;
    s->row = 0;
    return pg_columns(s) == DB_OK ? DB_ROW : DB_ERROR;
}

static int pg_step(struct db_stmt *s)
{
    if (s->stream)
        return pg_step_stream(s);
    if (!s->ran && pg_run(s) != DB_OK)
        return DB_ERROR;
    pg_forget_row(s);
    if (s->row + 1 < PQntuples(s->res)) {
        s->row++;
        return DB_ROW;
    }
    s->row = PQntuples(s->res);
    return DB_DONE;
}

static bool pg_has(struct db_stmt *s, int i)
{
    return s->res && s->row >= 0 && s->row < PQntuples(s->res) && i >= 0 && i < s->n_cols;
}

/* The bytes of a bytea column of the current row (decoded once). */
static const char *pg_bytes(struct db_stmt *s, int i, int *len)
{
    size_t n = 0;

    if (!s->decoded[i]) {
        if (!pgc_column_bytes(s->res, s->row, i, &s->decoded[i], &n))
            return NULL;
        s->decoded_len[i] = (int)n;
    }
    *len = s->decoded_len[i];
    return s->decoded[i];
}

static const char *pg_text(struct db_stmt *s, int i, int *len)
{
    *len = 0;
    if (!pg_has(s, i) || PQgetisnull(s->res, s->row, i))
        return NULL;
    if (PQftype(s->res, i) == DB_BYTEA_OID)
        return pg_bytes(s, i, len);
    *len = PQgetlength(s->res, s->row, i);
    return PQgetvalue(s->res, s->row, i);
}

static int pg_bind(struct db_stmt *s, int i, const char *value, int len, int format)
{
    if (i < 1 || i > s->n_params) {
        gw_fail(&s->db->last, GW_E_INTERNAL, "parameter %d out of range", i);
        return DB_ERROR;
    }
    s->values[i - 1] = value;
    s->lengths[i - 1] = len;
    s->formats[i - 1] = format;
    return DB_OK;
}

/* ------------------------------------------------------------ statements */

int db_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out)
{
    struct db_stmt *s;
    int r;

    if (db->dialect == DB_PG)
        return pg_prepare(db, sql, persistent, out);
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return DB_ERROR;
    s->db = db;
    r = sqlite3_prepare_v3(db->lite, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &s->lite,
                           NULL);
    if (r != SQLITE_OK || !s->lite) {
        sqlite3_finalize(s->lite);
        free(s);
        return DB_ERROR;
    }
    *out = s;
    return DB_OK;
}

int db_step_deferred(struct db_stmt *s)
{
    struct db *db = s->db;
    int r;

    if (s->lite || !s->persistent || !pgc_in_transaction(db->pg)) {
        r = db_step(s);
        return r == DB_ROW ? DB_DONE : r;
    }
    if (db->deferred_failed)
        return DB_DONE; /* the transaction failed already: db_flush() says so */
    if (s->session != pgc_session(db->pg)) { /* prepared in this session first */
        if (pg_before(db) != DB_OK)
            return DB_ERROR;
        if (pgc_prepare(db->pg, "PostgreSQL", s->name, s->sql, &db->last) != GW_OK)
            return DB_ERROR;
        s->session = pgc_session(db->pg);
    }
    if (pgc_pipe_send(db->pg, "PostgreSQL", s->name, s->n_params, s->values, s->lengths, s->formats,
                      &db->last) != GW_OK) {
        pg_settle(db);
        return DB_ERROR;
    }
    db->deferred = true;
    return DB_DONE;
}

int db_prepare_stream(struct db *db, const char *sql, struct db_stmt **out)
{
    int r = db_prepare(db, sql, false, out);

    if (r == DB_OK && db->dialect == DB_PG)
        (*out)->stream = true;
    return r;
}

int db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
    if (s->lite)
        return sqlite3_bind_int64(s->lite, i, v) == SQLITE_OK ? DB_OK : DB_ERROR;
    if (i < 1 || i > s->n_params)
        return pg_bind(s, i, NULL, 0, 0);
    snprintf(s->numbers[i - 1], sizeof s->numbers[i - 1], "%lld", (long long)v);
    return pg_bind(s, i, s->numbers[i - 1], 0, 0);
}

int db_bind_text(struct db_stmt *s, int i, const char *text)
{
    if (s->lite)
        return (text ? sqlite3_bind_text(s->lite, i, text, -1, SQLITE_STATIC)
                     : sqlite3_bind_null(s->lite, i)) == SQLITE_OK
                   ? DB_OK
                   : DB_ERROR;
    return pg_bind(s, i, text, 0, 0);
}

int db_bind_blob(struct db_stmt *s, int i, const void *data, int len)
{
    if (s->lite)
        return sqlite3_bind_blob(s->lite, i, data, len, SQLITE_STATIC) == SQLITE_OK ? DB_OK
                                                                                    : DB_ERROR;
    return pg_bind(s, i, data ? data : "", len, 1);
}

int db_bind_null(struct db_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_bind_null(s->lite, i) == SQLITE_OK ? DB_OK : DB_ERROR;
    return pg_bind(s, i, NULL, 0, 0);
}

int db_step(struct db_stmt *s)
{
    int r;

    if (!s->lite)
        return pg_step(s);
    r = sqlite3_step(s->lite);
    return r == SQLITE_ROW ? DB_ROW : r == SQLITE_DONE ? DB_DONE : DB_ERROR;
}

int64_t db_column_int64(struct db_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_int64(s->lite, i);
    return pg_has(s, i) ? pgc_column_int(s->res, s->row, i) : 0;
}

int db_column_int(struct db_stmt *s, int i)
{
    return (int)db_column_int64(s, i);
}

const char *db_column_text(struct db_stmt *s, int i)
{
    int len;

    if (s->lite)
        return (const char *)sqlite3_column_text(s->lite, i);
    return pg_text(s, i, &len);
}

int db_column_bytes(struct db_stmt *s, int i)
{
    int len;

    if (s->lite)
        return sqlite3_column_bytes(s->lite, i);
    pg_text(s, i, &len);
    return len;
}

bool db_column_null(struct db_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_type(s->lite, i) == SQLITE_NULL;
    return !pg_has(s, i) || PQgetisnull(s->res, s->row, i);
}

int db_reset(struct db_stmt *s)
{
    if (s->lite)
        return sqlite3_reset(s->lite) == SQLITE_OK ? DB_OK : DB_ERROR;
    pg_clear_result(s);
    return DB_OK;
}

void db_clear_bindings(struct db_stmt *s)
{
    int i;

    if (s->lite) {
        sqlite3_clear_bindings(s->lite);
        return;
    }
    for (i = 0; i < s->n_params; i++)
        pg_bind(s, i + 1, NULL, 0, 0);
}

void db_finalize(struct db_stmt *s)
{
    if (!s)
        return;
    if (s->lite) {
        sqlite3_finalize(s->lite);
        free(s);
        return;
    }
    pg_clear_result(s);
    pg_settle(s->db);
    if (s->persistent && s->session && s->session == pgc_session(s->db->pg))
        pgc_deallocate(s->db->pg, s->name);
    free(s->sql);
    free(s->values);
    free(s->lengths);
    free(s->formats);
    free(s->numbers);
    free(s);
}
