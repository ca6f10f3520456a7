/* pg_conn.c -- one PostgreSQL connection: connecting with backoff, noticing its loss,
 * making it again, running parameterised statements, and saying what a failure means.
 *
 * The store's PostgreSQL backend builds on this file only; nothing here knows the
 * schema. The contract is in pg_int.h.
 *
 * Invariant: c->conn is either NULL or a connection that completed its session setup;
 * c->lost is set by the statement that meets a dead connection and cleared only by
 * a successful reconnection, so no statement runs on a connection known to be dead.
 */
#include "store/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PGC_STOP_POLL_MS 100 /* how often a backoff wait asks should_stop() */

struct pgc {
    PGconn *conn;
    struct pgc_opts opts; /* its strings point at the copies below */
    char *conninfo;
    char *application_name;
    char *session_sql;
    char target[PGC_TARGET_LEN];
    bool lost;
    bool in_txn_before; /* a transaction was open when the last statement was sent */
    bool lost_in_txn;   /* the connection was lost inside a transaction: it stays "in a
                           transaction" for pgc_read() until pgc_ensure() */
    enum pgc_class last_class;
    char last_sqlstate[6];
    long reconnects;
    long sessions;                      /* connections made (prepared statements belong to one) */
    int pipe_pending;                   /* statements sent in pipeline mode, results not read yet */
    const char *cached[PGC_MAX_CACHED]; /* statement i is prepared as "gw<i>" */
    int n_cached;
};

/* ------------------------------------------------------------ parameters */

void pgc_params_init(struct pgc_params *p)
{
    p->n = 0;
    p->overflow = false;
}

static int next_param(struct pgc_params *p)
{
    if (p->n >= PGC_MAX_PARAMS) {
        p->overflow = true;
        return -1;
    }
    return p->n++;
}

int pgc_param_text(struct pgc_params *p, const char *s)
{
    int i = next_param(p);

    if (i < 0)
        return 0;
    p->values[i] = s;
    p->lengths[i] = 0;
    p->formats[i] = 0;
    return i + 1;
}

int pgc_param_int(struct pgc_params *p, int64_t v)
{
    int i = next_param(p);

    if (i < 0)
        return 0;
    snprintf(p->numbers[i], sizeof p->numbers[i], "%lld", (long long)v);
    p->values[i] = p->numbers[i];
    p->lengths[i] = 0;
    p->formats[i] = 0;
    return i + 1;
}

int pgc_param_bytes(struct pgc_params *p, const void *data, size_t len)
{
    int i;

    if (len > (size_t)INT32_MAX) {
        p->overflow = true;
        return 0;
    }
    i = next_param(p);
    if (i < 0)
        return 0;
    p->values[i] = data ? (const char *)data : "";
    p->lengths[i] = (int)len;
    p->formats[i] = 1; /* binary: bytea takes the bytes as they are */
    return i + 1;
}

/* ------------------------------------------------------------ pure helpers */

long pgc_backoff_ms(int attempts, long min_ms, long max_ms)
{
    long wait = min_ms > 0 ? min_ms : 1;
    int i;

    for (i = 1; i < attempts && wait < max_ms; i++)
        wait = wait > max_ms / 2 ? max_ms : wait * 2;
    return wait < max_ms ? wait : max_ms;
}

enum pgc_class pgc_classify(const char *sqlstate)
{
    static const struct {
        const char *state;
        enum pgc_class cls;
    } exact[] = {
        {"40001", PGC_RETRY},    /* serialization_failure */
        {"40P01", PGC_RETRY},    /* deadlock_detected */
        {"23505", PGC_CONFLICT}, /* unique_violation */
        {"57P01", PGC_LOST},     /* admin_shutdown: the server is stopping */
        {"57P02", PGC_LOST},     /* crash_shutdown */
        {"57P03", PGC_LOST},     /* cannot_connect_now: starting or recovering */
        {"57P04", PGC_LOST},     /* database_dropped */
        {"53100", PGC_FULL},     /* disk_full */
        {"58030", PGC_FULL},     /* io_error */
        {"25006", PGC_FULL},     /* read_only_sql_transaction: a read-only server */
    };
    size_t i;

    if (!sqlstate || strlen(sqlstate) != 5)
        return PGC_LOST; /* no SQLSTATE: the server never answered */
    if (strncmp(sqlstate, "08", 2) == 0)
        return PGC_LOST; /* connection_exception */
    for (i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(sqlstate, exact[i].state) == 0)
            return exact[i].cls;
    return PGC_ERROR;
}

void pgc_describe(const char *conninfo, char out[PGC_TARGET_LEN])
{
    const char *user = "", *host = NULL, *port = NULL, *db = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", NULL);
    PQconninfoOption *o;

    if (!opts) {
        gw_format(out, PGC_TARGET_LEN, "(invalid conninfo)");
        return;
    }
    for (o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && !host))
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    gw_format(out, PGC_TARGET_LEN, "%s%s%s:%s/%s", user, *user ? "@" : "",
              host ? host : "localhost", port ? port : "5432", db ? db : (*user ? user : "?"));
    PQconninfoFree(opts);
}

/* libpq quotes the URL it could not parse ("...in URI: \"postgresql://u:pw@...\""):
 * a quoted part holding an @ (a user, so maybe a password) becomes "...". */
static void redact_quoted(char *msg)
{
    char *open = msg, *close;

    while ((open = strchr(open, '"')) != NULL && (close = strchr(open + 1, '"')) != NULL) {
        if (memchr(open, '@', (size_t)(close - open)) && close - open >= 4) {
            memcpy(open + 1, "...", 3);
            memmove(open + 4, close, strlen(close) + 1);
            close = open + 4;
        }
        open = close + 1;
    }
}

enum gw_code pgc_check_conninfo(const char *conninfo, struct gw_error *err)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &why);
    enum gw_code rc = GW_OK;

    if (!opts) {
        char *nl = why ? strchr(why, '\n') : NULL;

        if (nl)
            *nl = '\0';
        if (why)
            redact_quoted(why);
        rc = gw_fail(err, GW_E_INPUT, "not a valid PostgreSQL URL or conninfo: %s",
                     why ? why : "out of memory");
    }
    PQfreemem(why);
    PQconninfoFree(opts);
    return rc;
}

/* libpq's messages span lines ("...failed: Connection refused\n\tIs the server..."):
 * one line, for logs and OperationOutcomes. */
static void one_line(char *dst, size_t cap, const char *msg)
{
    size_t n = 0;
    bool space = false;

    for (; msg && *msg && n + 1 < cap; msg++) {
        bool ws = *msg == '\n' || *msg == '\t' || *msg == '\r' || *msg == ' ';

        if (ws) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            dst[n++] = ' ';
        space = false;
        dst[n++] = *msg;
    }
    dst[n] = '\0';
}

/* ------------------------------------------------------------ failures */

static void set_last(struct pgc *c, enum pgc_class cls, const char *sqlstate)
{
    c->last_class = cls;
    gw_format(c->last_sqlstate, sizeof c->last_sqlstate, "%s", sqlstate ? sqlstate : "");
    if (cls == PGC_LOST && !c->lost) {
        c->lost = true;
        c->lost_in_txn = c->in_txn_before;
    }
}

/* Records and reports a failed statement (res may be NULL: no result at all). */
static enum gw_code fail_result(struct pgc *c, const char *what, const PGresult *res,
                                struct gw_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* The primary message only: DETAIL may quote key values (patient identifiers). */
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    enum pgc_class cls = pgc_classify(state);
    char msg[GW_ERROR_MSG_MAX];

    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD)
        cls = PGC_LOST;
    set_last(c, cls, state);
    one_line(msg, sizeof msg, primary ? primary : c->conn ? PQerrorMessage(c->conn) : "");
    switch (cls) {
    case PGC_CONFLICT:
        return gw_fail(err, GW_E_CONFLICT, "%s: %s", what, msg);
    case PGC_FULL:
        return gw_fail(err, GW_E_IO, "%s: PostgreSQL at %s cannot write: %s (SQLSTATE %s)", what,
                       c->target, msg, c->last_sqlstate);
    case PGC_LOST:
        return gw_fail(err, GW_E_STORE, "%s: lost the connection to PostgreSQL at %s: %s", what,
                       c->target, *msg ? msg : "no answer");
    case PGC_RETRY:
        return gw_fail(err, GW_E_STORE, "%s: %s (SQLSTATE %s; the transaction may be retried)",
                       what, msg, c->last_sqlstate);
    default:
        return gw_fail(err, GW_E_STORE, "%s: %s (SQLSTATE %s)", what, msg,
                       *c->last_sqlstate ? c->last_sqlstate : "none");
    }
}

static enum gw_code fail_lost(struct pgc *c, const char *what, struct gw_error *err)
{
    set_last(c, PGC_LOST, NULL);
    return gw_fail(err, GW_E_STORE, "%s: the connection to PostgreSQL at %s is lost", what,
                   c->target);
}

/* Takes r: on success hands it to *res (or clears it), on failure clears it. */
static enum gw_code settle(struct pgc *c, const char *what, PGresult *r, PGresult **res,
                           struct gw_error *err)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    enum gw_code rc;

    if (!r && PQstatus(c->conn) != CONNECTION_BAD) {
        set_last(c, PGC_ERROR, NULL);
        return gw_fail(err, GW_E_NOMEM, "%s: out of memory for the result", what);
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        set_last(c, PGC_OK, NULL);
        if (res)
            *res = r;
        else
            PQclear(r);
        return GW_OK;
    }
    rc = fail_result(c, what, r, err);
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------ connecting */

/* Server notices ("table ... does not exist, skipping") go to the debug log, not
 * to stderr as libpq's default would print them. */
static void log_notice(void *ctx, const char *message)
{
    char line[GW_ERROR_MSG_MAX];

    (void)ctx;
    one_line(line, sizeof line, message);
    gw_log(GW_LOG_DEBUG, "store-notice", "%s", line);
}

/* One attempt: a connection with its session set up, or err says why. */
static enum gw_code connect_once(struct pgc *c, struct gw_error *err)
{
    char timeout[16], why[GW_ERROR_MSG_MAX];
    /* Keywords before dbname are defaults; the expanded conninfo overrides them. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {timeout, c->application_name, c->conninfo, NULL};
    PGconn *conn;
    PGresult *r;

    snprintf(timeout, sizeof timeout, "%d", PGC_CONNECT_TIMEOUT_S);
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn)
        return gw_fail(err, GW_E_NOMEM, "no memory for a PostgreSQL connection");
    if (PQstatus(conn) != CONNECTION_OK) {
        one_line(why, sizeof why, PQerrorMessage(conn));
        PQfinish(conn);
        return gw_fail(err, GW_E_STORE, "%s", why);
    }
    PQsetNoticeProcessor(conn, log_notice, NULL);
    if (c->session_sql) {
        r = PQexec(conn, c->session_sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            one_line(why, sizeof why, PQerrorMessage(conn));
            PQclear(r);
            PQfinish(conn);
            return gw_fail(err, GW_E_STORE, "session setup failed: %s", why);
        }
        PQclear(r);
    }
    PQfinish(c->conn);
    c->conn = conn;
    c->lost = false;
    c->lost_in_txn = false;
    c->n_cached = 0; /* prepared statements die with their session */
    c->sessions++;
    c->pipe_pending = 0;
    set_last(c, PGC_OK, NULL);
    return GW_OK;
}

/* Waits ms, in slices, unless should_stop() says to stop: true when stopped. */
static bool wait_or_stop(const struct pgc_opts *o, long ms)
{
    while (ms > 0) {
        long slice = ms < PGC_STOP_POLL_MS ? ms : PGC_STOP_POLL_MS;

        if (o->should_stop && o->should_stop(o->stop_ctx))
            return true;
        gw_sleep_ms(slice);
        ms -= slice;
    }
    return o->should_stop && o->should_stop(o->stop_ctx);
}

static enum gw_code connect_with_backoff(struct pgc *c, struct gw_error *err)
{
    const struct pgc_opts *o = &c->opts;
    int64_t started = gw_mono_ms();
    struct gw_error why;
    int attempts = 0;

    for (;;) {
        int64_t spent;
        long wait;

        gw_error_clear(&why);
        if (connect_once(c, &why) == GW_OK) {
            if (attempts)
                gw_log(GW_LOG_INFO, "store-connected",
                       "PostgreSQL at %s answered after %d attempts", c->target, attempts + 1);
            return GW_OK;
        }
        if (why.code == GW_E_NOMEM)
            return gw_fail(err, GW_E_NOMEM, "%s", why.msg);
        attempts++;
        spent = gw_mono_ms() - started;
        if (o->give_up_ms >= 0 && spent >= o->give_up_ms)
            return gw_fail(err, GW_E_STORE,
                           "cannot reach PostgreSQL at %s (%d attempts in %lld ms): %s", c->target,
                           attempts, (long long)spent, why.msg);
        wait = pgc_backoff_ms(attempts, o->retry_min_ms, o->retry_max_ms);
        if (o->give_up_ms >= 0 && wait > o->give_up_ms - spent)
            wait = (long)(o->give_up_ms - spent);
        gw_log(GW_LOG_WARN, "store-connect-retry",
               "PostgreSQL at %s is not reachable (attempt %d): %s; next attempt in %ld ms",
               c->target, attempts, why.msg, wait);
        if (wait_or_stop(o, wait))
            return gw_fail(err, GW_E_STORE, "stopped while waiting for PostgreSQL at %s: %s",
                           c->target, why.msg);
    }
}

static bool copy_opt(const char *src, char **dst)
{
    *dst = NULL;
    if (!src)
        return true;
    *dst = gw_strdup(src);
    return *dst != NULL;
}

enum gw_code pgc_open(const struct pgc_opts *opts, struct pgc **out, struct gw_error *err)
{
    struct pgc *c;
    enum gw_code rc;

    *out = NULL;
    rc = pgc_check_conninfo(opts->conninfo, err);
    if (rc)
        return rc;
    c = calloc(1, sizeof *c);
    if (!c)
        return gw_fail(err, GW_E_NOMEM, "no memory for a PostgreSQL connection");
    c->opts = *opts;
    if (!copy_opt(opts->conninfo, &c->conninfo) ||
        !copy_opt(opts->application_name ? opts->application_name : "fhir-gateway",
                  &c->application_name) ||
        !copy_opt(opts->session_sql, &c->session_sql)) {
        pgc_close(c);
        return gw_fail(err, GW_E_NOMEM, "no memory for a PostgreSQL connection");
    }
    c->opts.conninfo = c->conninfo;
    c->opts.application_name = c->application_name;
    c->opts.session_sql = c->session_sql;
    if (c->opts.retry_max_ms < c->opts.retry_min_ms)
        c->opts.retry_max_ms = c->opts.retry_min_ms;
    pgc_describe(c->conninfo, c->target);
    rc = connect_with_backoff(c, err);
    if (rc) {
        pgc_close(c);
        return rc;
    }
    *out = c;
    return GW_OK;
}

void pgc_close(struct pgc *c)
{
    if (!c)
        return;
    PQfinish(c->conn);
    free(c->conninfo);
    free(c->application_name);
    free(c->session_sql);
    free(c);
}

/* ------------------------------------------------------------ state */

bool pgc_ok(const struct pgc *c)
{
    return c->conn && !c->lost && PQstatus(c->conn) == CONNECTION_OK;
}

enum gw_code pgc_ensure(struct pgc *c, struct gw_error *err)
{
    struct gw_error why;

    if (pgc_ok(c))
        return GW_OK;
    gw_error_clear(&why);
    if (connect_once(c, &why) != GW_OK) {
        c->lost = true;
        return gw_fail(err, why.code == GW_E_NOMEM ? GW_E_NOMEM : GW_E_STORE,
                       "PostgreSQL at %s is unreachable: %s", c->target, why.msg);
    }
    c->reconnects++;
    gw_log(GW_LOG_INFO, "store-reconnected", "PostgreSQL at %s answers again", c->target);
    return GW_OK;
}

void pgc_transaction_ended(struct pgc *c)
{
    if (c->lost)
        c->lost_in_txn = false;
}

bool pgc_in_transaction(const struct pgc *c)
{
    PGTransactionStatusType t;

    if (c->lost)
        return c->lost_in_txn; /* libpq says UNKNOWN: what was true when it broke */
    t = c->conn ? PQtransactionStatus(c->conn) : PQTRANS_UNKNOWN;
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

enum pgc_class pgc_last_class(const struct pgc *c)
{
    return c->last_class;
}

const char *pgc_last_sqlstate(const struct pgc *c)
{
    return c->last_sqlstate;
}

long pgc_reconnects(const struct pgc *c)
{
    return c->reconnects;
}

int pgc_backend_pid(const struct pgc *c)
{
    return c->conn ? PQbackendPID(c->conn) : 0;
}

const char *pgc_target(const struct pgc *c)
{
    return c->target;
}

/* ------------------------------------------------------------ statements */

static enum gw_code check_runnable(struct pgc *c, const char *what, const struct pgc_params *params,
                                   struct gw_error *err)
{
    if (params && params->overflow)
        return gw_fail(err, GW_E_LIMIT, "%s: more than %d values", what, PGC_MAX_PARAMS);
    if (!c->conn || c->lost)
        return fail_lost(c, what, err);
    c->in_txn_before = pgc_in_transaction(c);
    return GW_OK;
}

enum gw_code pgc_exec(struct pgc *c, const char *what, const char *sql,
                      const struct pgc_params *params, PGresult **res, struct gw_error *err)
{
    enum gw_code rc;
    PGresult *r;

    if (res)
        *res = NULL;
    rc = check_runnable(c, what, params, err);
    if (rc)
        return rc;
    r = PQexecParams(c->conn, sql, params ? params->n : 0, NULL, params ? params->values : NULL,
                     params ? params->lengths : NULL, params ? params->formats : NULL, 0);
    return settle(c, what, r, res, err);
}

/* The cache slot of sql, preparing it on this connection when new; -1 when the
 * cache is full (the statement then runs unprepared). */
static enum gw_code cached_slot(struct pgc *c, const char *what, const char *sql,
                                const struct pgc_params *params, int *slot, struct gw_error *err)
{
    char name[16];
    enum gw_code rc;
    int i;

    *slot = -1;
    for (i = 0; i < c->n_cached; i++) {
        if (c->cached[i] == sql) {
            *slot = i;
            return GW_OK;
        }
    }
    if (c->n_cached == PGC_MAX_CACHED)
        return GW_OK;
    snprintf(name, sizeof name, "gw%d", c->n_cached);
    rc = settle(c, what, PQprepare(c->conn, name, sql, params ? params->n : 0, NULL), NULL, err);
    if (rc)
        return rc;
    c->cached[c->n_cached] = sql;
    *slot = c->n_cached++;
    return GW_OK;
}

enum gw_code pgc_exec_cached(struct pgc *c, const char *what, const char *sql,
                             const struct pgc_params *params, PGresult **res, struct gw_error *err)
{
    char name[16];
    enum gw_code rc;
    int slot;

    if (res)
        *res = NULL;
    rc = check_runnable(c, what, params, err);
    if (!rc)
        rc = cached_slot(c, what, sql, params, &slot, err);
    if (rc)
        return rc;
    if (slot < 0)
        return pgc_exec(c, what, sql, params, res, err);
    snprintf(name, sizeof name, "gw%d", slot);
    return settle(c, what,
                  PQexecPrepared(c->conn, name, params ? params->n : 0,
                                 params ? params->values : NULL, params ? params->lengths : NULL,
                                 params ? params->formats : NULL, 0),
                  res, err);
}

enum gw_code pgc_read(struct pgc *c, const char *what, const char *sql,
                      const struct pgc_params *params, PGresult **res, struct gw_error *err)
{
    bool outside = !pgc_in_transaction(c);
    enum gw_code rc;

    if (outside) {
        rc = pgc_ensure(c, err);
        if (rc)
            return rc;
    }
    rc = pgc_exec(c, what, sql, params, res, err);
    if (rc && outside && c->last_class == PGC_LOST) {
        /* The server restarted or dropped us since the last use: once more. */
        rc = pgc_ensure(c, err);
        if (!rc)
            rc = pgc_exec(c, what, sql, params, res, err);
    }
    return rc;
}

long pgc_session(const struct pgc *c)
{
    return c->sessions;
}

enum gw_code pgc_prepare(struct pgc *c, const char *what, const char *name, const char *sql,
                         struct gw_error *err)
{
    enum gw_code rc = check_runnable(c, what, NULL, err);

    if (rc)
        return rc;
    return settle(c, what, PQprepare(c->conn, name, sql, 0, NULL), NULL, err);
}

enum gw_code pgc_exec_values(struct pgc *c, const char *what, const char *name, const char *sql,
                             int n_params, const char *const *values, const int *lengths,
                             const int *formats, PGresult **res, struct gw_error *err)
{
    enum gw_code rc;

    if (res)
        *res = NULL;
    rc = check_runnable(c, what, NULL, err);
    if (rc)
        return rc;
    return settle(c, what,
                  name ? PQexecPrepared(c->conn, name, n_params, values, lengths, formats, 0)
                       : PQexecParams(c->conn, sql, n_params, NULL, values, lengths, formats, 0),
                  res, err);
}

enum gw_code pgc_send(struct pgc *c, const char *what, const char *sql, int n_params,
                      const char *const *values, const int *lengths, const int *formats,
                      struct gw_error *err)
{
    enum gw_code rc = check_runnable(c, what, NULL, err);

    if (rc)
        return rc;
    if (!PQsendQueryParams(c->conn, sql, n_params, NULL, values, lengths, formats, 0))
        return fail_result(c, what, NULL, err);
    if (!PQsetSingleRowMode(c->conn)) {
        pgc_abandon(c);
        set_last(c, PGC_ERROR, NULL);
        return gw_fail(err, GW_E_STORE, "%s: cannot read the rows one at a time", what);
    }
    return GW_OK;
}

/* Reads and drops whatever the server still sends for the statement under way. */
static void drain(struct pgc *c)
{
    PGresult *r;

    while ((r = PQgetResult(c->conn)) != NULL)
        PQclear(r);
}

int pgc_next(struct pgc *c, const char *what, PGresult **row, struct gw_error *err)
{
    PGresult *r = PQgetResult(c->conn);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_TUPLES_OK;

    *row = NULL;
    if (st == PGRES_SINGLE_TUPLE) {
        *row = r;
        return 1;
    }
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        PQclear(r);
        drain(c);
        set_last(c, PGC_OK, NULL);
        return 0;
    }
    fail_result(c, what, r, err);
    PQclear(r);
    if (PQstatus(c->conn) != CONNECTION_BAD)
        drain(c);
    return -1;
}

void pgc_abandon(struct pgc *c)
{
    PGcancel *cancel;
    char why[256];

    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD)
        return;
    if (PQtransactionStatus(c->conn) == PQTRANS_ACTIVE && (cancel = PQgetCancel(c->conn))) {
        PQcancel(cancel, why, sizeof why);
        PQfreeCancel(cancel);
    }
    drain(c);
}

enum gw_code pgc_pipe_send(struct pgc *c, const char *what, const char *name, int n_params,
                           const char *const *values, const int *lengths, const int *formats,
                           struct gw_error *err)
{
    enum gw_code rc = check_runnable(c, what, NULL, err);

    if (rc)
        return rc;
    if (PQpipelineStatus(c->conn) == PQ_PIPELINE_OFF && !PQenterPipelineMode(c->conn))
        return fail_result(c, what, NULL, err);
    if (!PQsendQueryPrepared(c->conn, name, n_params, values, lengths, formats, 0))
        return fail_result(c, what, NULL, err);
    c->pipe_pending++;
    return GW_OK;
}

/* Reads the results of the statements sent (left of them) and the sync that ends
 * them; the first failure goes to err. */
static enum gw_code read_pipeline(struct pgc *c, const char *what, int left, struct gw_error *err)
{
    enum gw_code rc = GW_OK;
    PGresult *r;

    while (left > 0) {
        r = PQgetResult(c->conn);
        if (!r) {
            left--;
            continue;
        }
        if (PQresultStatus(r) == PGRES_FATAL_ERROR && !rc)
            rc = fail_result(c, what, r, err);
        PQclear(r);
        if (PQstatus(c->conn) == CONNECTION_BAD)
            return rc ? rc : fail_lost(c, what, err);
    }
    r = PQgetResult(c->conn); /* the sync's own result */
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        PQclear(r);
        return rc ? rc : fail_result(c, what, NULL, err);
    }
    PQclear(r);
    return rc;
}

enum gw_code pgc_pipe_sync(struct pgc *c, const char *what, struct gw_error *err)
{
    int left = c->pipe_pending;
    enum gw_code rc;

    c->pipe_pending = 0;
    if (!c->conn || PQpipelineStatus(c->conn) == PQ_PIPELINE_OFF)
        return GW_OK;
    if (PQstatus(c->conn) == CONNECTION_BAD)
        return fail_lost(c, what, err);
    if (!PQpipelineSync(c->conn))
        return fail_result(c, what, NULL, err);
    rc = read_pipeline(c, what, left, err);
    if (PQstatus(c->conn) != CONNECTION_BAD && !PQexitPipelineMode(c->conn) && !rc)
        rc = fail_result(c, what, NULL, err);
    if (!rc)
        set_last(c, PGC_OK, NULL);
    return rc;
}

void pgc_deallocate(struct pgc *c, const char *name)
{
    char sql[64];

    if (!pgc_ok(c) || PQtransactionStatus(c->conn) == PQTRANS_INERROR)
        return;
    snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
    PQclear(PQexec(c->conn, sql));
}

enum gw_code pgc_command(struct pgc *c, const char *what, const char *sql, struct gw_error *err)
{
    enum gw_code rc = check_runnable(c, what, NULL, err);

    if (rc)
        return rc;
    return settle(c, what, PQexec(c->conn, sql), NULL, err);
}

/* ------------------------------------------------------------ columns */

bool pgc_column_dup(const PGresult *r, int row, int col, char **out)
{
    *out = NULL;
    if (PQgetisnull(r, row, col))
        return true;
    *out = gw_strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
    return *out != NULL;
}

int64_t pgc_column_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool pgc_column_bytes(const PGresult *r, int row, int col, char **out, size_t *len)
{
    unsigned char *raw;
    size_t n = 0;

    *out = NULL;
    *len = 0;
    if (PQgetisnull(r, row, col))
        return true;
    if (PQfformat(r, col) == 1) { /* binary result: the bytes as they are */
        n = (size_t)PQgetlength(r, row, col);
        *out = gw_strndup(PQgetvalue(r, row, col), n);
        *len = n;
        return *out != NULL;
    }
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (!raw)
        return false;
    *out = malloc(n + 1);
    if (*out) {
        memcpy(*out, raw, n);
        (*out)[n] = '\0';
        *len = n;
    }
    PQfreemem(raw);
    return *out != NULL;
}
