/* pg_int.h -- the PostgreSQL connection layer the store's PostgreSQL backend is built on.
 *
 * Owns:      one libpq connection per struct pgc, and what it takes to make it again
 *            (the conninfo, the session setup, the prepared statements it must redo).
 * Promises:  pgc_open() retries an unreachable server with capped exponential backoff,
 *            logging each attempt, and never returns a half-made connection; every failure
 *            is classified (enum pgc_class) and mapped to one gw_code; a lost connection is
 *            noticed on the statement that meets it, and is made again only by pgc_ensure()
 *            or pgc_read(), never in the middle of a transaction (a transaction that lost
 *            its connection is gone: its caller must answer a failure).
 * Never:     prints a password (messages name the server as user@host:port/db);
 *            splices a value into SQL (values travel as parameters $1, $2...).
 * Threads:   a struct pgc belongs to one thread at a time (libpq's rule); different
 *            connections may be used from different threads.
 * Ownership: PGresult *results are the caller's (PQclear()); parameters are borrowed
 *            until the call that runs them returns.
 *
 * Internal to store/ and its unit tests.
 */
#ifndef GW_STORE_PG_INT_H
#define GW_STORE_PG_INT_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define PGC_MAX_PARAMS        512 /* parameters in one statement (as STORE_MAX_BINDS) */
#define PGC_MAX_CACHED        64  /* prepared statements kept per connection */
#define PGC_TARGET_LEN        200 /* "user@host:port/db" */
#define PGC_CONNECT_TIMEOUT_S 5   /* per attempt, unless the conninfo says otherwise */

/* What went wrong, as far as what to do next is concerned. */
enum pgc_class {
    PGC_OK,
    PGC_RETRY,    /* serialization failure (40001), deadlock (40P01): run the whole
                     transaction again; GW_E_STORE if the caller does not */
    PGC_CONFLICT, /* unique violation (23505): GW_E_CONFLICT */
    PGC_LOST,     /* connection gone (class 08, 57P01-57P03, no answer): reconnect;
                     GW_E_STORE meanwhile */
    PGC_FULL,     /* disk full (53100), read-only transaction (25006): GW_E_IO */
    PGC_ERROR,    /* anything else: GW_E_STORE with the server's message */
};

/* How to reach the server. */
struct pgc_opts {
    const char *conninfo;         /* postgresql://USER@HOST:PORT/DB or "key=value ..." */
    const char *application_name; /* shown in pg_stat_activity; NULL: "fhir-gateway" */
    const char *session_sql;      /* run after every (re)connection, NULL: none */
    long retry_min_ms;            /* first wait between attempts (>= 1) */
    long retry_max_ms;            /* the wait doubles up to this */
    long give_up_ms;              /* pgc_open stops trying after this long; < 0: never */
    /* Asked between attempts; true stops pgc_open (GW_E_STORE). NULL: never. */
    bool (*should_stop)(void *ctx);
    void *stop_ctx;
};

struct pgc;

/* Parameters of one statement: text, 64-bit integers (sent as text) and bytes
 * (bytea, sent binary). A value past PGC_MAX_PARAMS makes the statement fail
 * with GW_E_LIMIT. Text and bytes are borrowed until the statement ran. */
struct pgc_params {
    const char *values[PGC_MAX_PARAMS];
    int lengths[PGC_MAX_PARAMS];
    int formats[PGC_MAX_PARAMS];
    char numbers[PGC_MAX_PARAMS][24];
    int n;
    bool overflow;
};

void pgc_params_init(struct pgc_params *p);
/* Each appends parameter $n+1 and returns its number n+1 (0 when full). */
int pgc_param_text(struct pgc_params *p, const char *s); /* NULL: SQL NULL */
int pgc_param_int(struct pgc_params *p, int64_t v);
int pgc_param_bytes(struct pgc_params *p, const void *data, size_t len);

/* The wait before attempt n+1 (n >= 1 attempts made): min * 2^(n-1), capped at max. */
long pgc_backoff_ms(int attempts, long min_ms, long max_ms);
/* The class of a SQLSTATE (NULL or "": no answer from the server, so PGC_LOST). */
enum pgc_class pgc_classify(const char *sqlstate);
/* "user@host:port/db" for conninfo, without any password; "(invalid conninfo)" when
 * libpq cannot parse it. */
void pgc_describe(const char *conninfo, char out[PGC_TARGET_LEN]);
/* GW_OK when libpq can parse conninfo, else GW_E_INPUT with libpq's reason. */
enum gw_code pgc_check_conninfo(const char *conninfo, struct gw_error *err);

/* Connects, retrying with backoff (opts->retry_*) until it works, give_up_ms has
 * passed or should_stop() says so; logs each failed attempt (event
 * "store-connect-retry") with the reason and the next wait. On GW_OK *out is new;
 * free with pgc_close(). opts is copied. */
enum gw_code pgc_open(const struct pgc_opts *opts, struct pgc **out, struct gw_error *err);
/* Closes the connection and frees c. Accepts NULL. */
void pgc_close(struct pgc *c);

/* True while the connection is usable (not known to be lost). */
bool pgc_ok(const struct pgc *c);
/* Makes the connection again when it is lost (one attempt, no waiting), redoing the
 * session setup; GW_OK when it is usable. Call only outside a transaction. */
enum gw_code pgc_ensure(struct pgc *c, struct gw_error *err);
/* True when a transaction is open on c (BEGIN ran, no COMMIT/ROLLBACK yet). After the
 * connection was lost inside a transaction it stays true until pgc_ensure(): the
 * transaction is gone and nothing may carry on as if outside one. */
bool pgc_in_transaction(const struct pgc *c);
/* The caller ended (rolled back) a transaction that died with its connection: from
 * now on c is outside one, and pgc_ensure() may be called by the layers above. */
void pgc_transaction_ended(struct pgc *c);
/* The class and SQLSTATE of the last failure on c (PGC_OK and "" after a success). */
enum pgc_class pgc_last_class(const struct pgc *c);
const char *pgc_last_sqlstate(const struct pgc *c);
/* How many times c was made again after a loss (for tests and metrics). */
long pgc_reconnects(const struct pgc *c);
/* The server process serving c (pg_backend_pid), 0 when not connected. */
int pgc_backend_pid(const struct pgc *c);
/* "user@host:port/db", for messages. */
const char *pgc_target(const struct pgc *c);

/* Runs sql with params (NULL: none). On GW_OK, when res is not NULL, *res is the
 * result (tuples or command status; PQclear() it). On failure *res is NULL and err
 * says why, prefixed with what; the connection's last class says what to do. */
enum gw_code pgc_exec(struct pgc *c, const char *what, const char *sql,
                      const struct pgc_params *params, PGresult **res, struct gw_error *err);
/* As pgc_exec, for sql a static string: prepared once per connection, then reused
 * (prepared again after a reconnection). */
enum gw_code pgc_exec_cached(struct pgc *c, const char *what, const char *sql,
                             const struct pgc_params *params, PGresult **res, struct gw_error *err);
/* As pgc_exec for a statement that changes nothing (a read): outside a transaction,
 * when the connection turns out lost it is made again once and sql rerun. */
enum gw_code pgc_read(struct pgc *c, const char *what, const char *sql,
                      const struct pgc_params *params, PGresult **res, struct gw_error *err);
/* Runs sql (no parameters, several statements allowed), discarding results. */
enum gw_code pgc_command(struct pgc *c, const char *what, const char *sql, struct gw_error *err);

/* Sessions made so far: a statement prepared in an earlier one must be prepared again. */
long pgc_session(const struct pgc *c);
/* Prepares sql (parameter types inferred) as name in this session. */
enum gw_code pgc_prepare(struct pgc *c, const char *what, const char *name, const char *sql,
                         struct gw_error *err);
/* Runs the prepared statement name or, when name is NULL, sql unprepared, with those
 * values (text or binary, as PQexecPrepared and PQexecParams take them). */
enum gw_code pgc_exec_values(struct pgc *c, const char *what, const char *name, const char *sql,
                             int n_params, const char *const *values, const int *lengths,
                             const int *formats, PGresult **res, struct gw_error *err);
/* Sends sql and asks for its rows one at a time (a result of any size in bounded
 * memory); read them with pgc_next() to the end, or pgc_abandon() the rest. Nothing
 * else may run on c meanwhile. */
enum gw_code pgc_send(struct pgc *c, const char *what, const char *sql, int n_params,
                      const char *const *values, const int *lengths, const int *formats,
                      struct gw_error *err);
/* The next row of pgc_send()'s statement: 1 (*row: one row, PQclear() it), 0 when
 * they are all read, -1 on failure (err says why). */
int pgc_next(struct pgc *c, const char *what, PGresult **row, struct gw_error *err);
/* Cancels the statement under way and drops its remaining rows. */
void pgc_abandon(struct pgc *c);
/* Sends the prepared statement name without waiting for its outcome (libpq's pipeline
 * mode): several statements travel in one round trip. Their outcome comes from
 * pgc_pipe_sync(), which must be called before anything else runs on c. */
enum gw_code pgc_pipe_send(struct pgc *c, const char *what, const char *name, int n_params,
                           const char *const *values, const int *lengths, const int *formats,
                           struct gw_error *err);
/* Waits for the statements pgc_pipe_send() sent: GW_OK when all succeeded, else the
 * first failure. Leaves pipeline mode. GW_OK at once when nothing was sent. */
enum gw_code pgc_pipe_sync(struct pgc *c, const char *what, struct gw_error *err);
/* Drops the prepared statement name when the session is usable (errors ignored). */
void pgc_deallocate(struct pgc *c, const char *name);

/* Column helpers for a result row: a new copy of the text (NULL stays NULL;
 * false on OOM), and a 64-bit integer (0 for NULL). */
bool pgc_column_dup(const PGresult *r, int row, int col, char **out);
int64_t pgc_column_int(const PGresult *r, int row, int col);
/* A bytea column as a new NUL-terminated copy of its bytes (*len of them), from
 * text (hex) or binary results; NULL stays NULL; false on OOM. */
bool pgc_column_bytes(const PGresult *r, int row, int col, char **out, size_t *len);

#endif
