/* test_pg.c -- the PostgreSQL connection layer (store/pg_conn.c) against a real server.
 *
 * `make unit` runs this binary under tools/pgtest.sh exec, which starts a throwaway server
 * and sets GW_TEST_PG_URL (its URL) and GW_TEST_PG_DIR (its folder, to stop and start it).
 * Without them only the cases that need no server run, and the binary says so; in `make
 * test` the script fails loudly instead when it cannot start a server.
 */
#include "check.h"
#include "store/pg_int.h"
#include "store/store.h"
#include "store/store_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static const char *url;    /* the test server, or NULL */
static const char *pg_dir; /* its folder, for tools/pgtest.sh stop|start */

/* A port nothing listens on: bound, then closed (the kernel will not hand it out again
 * immediately). */
static const char dead_url[] = "postgresql://gateway@127.0.0.1:1/gateway";

static struct pgc_opts opts_for(const char *conninfo, long give_up_ms)
{
    struct pgc_opts o = {.conninfo = conninfo,
                         .application_name = "test_pg",
                         .retry_min_ms = 50,
                         .retry_max_ms = 200,
                         .give_up_ms = give_up_ms};
    return o;
}

static struct pgc *connect_to_test_server(void)
{
    struct pgc_opts o = opts_for(url, 5000);
    struct pgc *c = NULL;
    struct gw_error err;

    if (pgc_open(&o, &c, &err) != GW_OK)
        fprintf(stderr, "    pgc_open: %s\n", err.msg);
    return c;
}

static int server(const char *action)
{
    char cmd[600];

    snprintf(cmd, sizeof cmd, "tools/pgtest.sh %s '%s' >/dev/null", action, pg_dir);
    return system(cmd);
}

/* ------------------------------------------------------------ no server needed */

static void backoff_doubles_from_min_and_stops_at_max(void)
{
    CHECK_INT(pgc_backoff_ms(1, 250, 30000), 250);
    CHECK_INT(pgc_backoff_ms(2, 250, 30000), 500);
    CHECK_INT(pgc_backoff_ms(3, 250, 30000), 1000);
    CHECK_INT(pgc_backoff_ms(8, 250, 30000), 30000);
    CHECK_INT(pgc_backoff_ms(1000000, 250, 30000), 30000);
    CHECK_INT(pgc_backoff_ms(5, 0, 10), 10);
}

static void sqlstates_are_classified_by_what_to_do_next(void)
{
    CHECK_INT(pgc_classify("40001"), PGC_RETRY);
    CHECK_INT(pgc_classify("40P01"), PGC_RETRY);
    CHECK_INT(pgc_classify("23505"), PGC_CONFLICT);
    CHECK_INT(pgc_classify("08006"), PGC_LOST);
    CHECK_INT(pgc_classify("08000"), PGC_LOST);
    CHECK_INT(pgc_classify("57P01"), PGC_LOST);
    CHECK_INT(pgc_classify("57P03"), PGC_LOST);
    CHECK_INT(pgc_classify(NULL), PGC_LOST);
    CHECK_INT(pgc_classify(""), PGC_LOST);
    CHECK_INT(pgc_classify("53100"), PGC_FULL);
    CHECK_INT(pgc_classify("25006"), PGC_FULL);
    CHECK_INT(pgc_classify("42601"), PGC_ERROR); /* syntax error */
    CHECK_INT(pgc_classify("23503"), PGC_ERROR); /* foreign key: not a conflict */
}

static void target_is_described_without_its_password(void)
{
    char t[PGC_TARGET_LEN];

    pgc_describe("postgresql://gw:s3cret@db.example:6543/referrals?sslmode=require", t);
    CHECK_STR(t, "gw@db.example:6543/referrals");
    pgc_describe("host=127.0.0.1 port=5433 user=gateway password=s3cret dbname=gateway", t);
    CHECK_STR(t, "gateway@127.0.0.1:5433/gateway");
    pgc_describe("postgresql://db.example/referrals", t);
    CHECK_STR(t, "db.example:5432/referrals");
    pgc_describe("postgresql://[broken", t);
    CHECK_STR(t, "(invalid conninfo)");
}

static void invalid_conninfo_is_refused_before_any_attempt(void)
{
    struct pgc_opts o = opts_for("host=x port", 10000);
    struct pgc *c = (struct pgc *)&o;
    struct gw_error err;
    int64_t started = gw_mono_ms();

    CHECK_INT(pgc_open(&o, &c, &err), GW_E_INPUT);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "not a valid PostgreSQL URL") != NULL);
    CHECK(gw_mono_ms() - started < 5000);
}

/* A server that never answers: each attempt is logged, the waits grow, and the
 * call gives up after give_up_ms with a message naming the server, not its password. */
static void unreachable_server_is_retried_with_backoff_then_reported(void)
{
    struct pgc_opts o = opts_for("postgresql://gateway:s3cret@127.0.0.1:1/gateway", 700);
    struct pgc *c = NULL;
    struct gw_error err;
    int64_t started = gw_mono_ms(), spent;

    CHECK_INT(pgc_open(&o, &c, &err), GW_E_STORE);
    spent = gw_mono_ms() - started;
    CHECK(c == NULL);
    CHECK(spent >= 700); /* it kept trying until give_up_ms */
    CHECK(strstr(err.msg, "cannot reach PostgreSQL at gateway@127.0.0.1:1/gateway") != NULL);
    CHECK(strstr(err.msg, "attempts") != NULL);
    CHECK(strstr(err.msg, "s3cret") == NULL);
    if (!strstr(err.msg, "attempts"))
        fprintf(stderr, "    %s\n", err.msg);
}

static bool stop_now(void *ctx)
{
    (void)ctx;
    return true;
}

static void waiting_for_the_server_can_be_stopped(void)
{
    struct pgc_opts o = opts_for(dead_url, -1); /* would wait for ever */
    struct pgc *c = NULL;
    struct gw_error err;

    o.should_stop = stop_now;
    CHECK_INT(pgc_open(&o, &c, &err), GW_E_STORE);
    CHECK(strstr(err.msg, "stopped while waiting") != NULL);
}

static void placeholders_become_numbered_outside_quotes(void)
{
    int n = 0;
    char *t = db_pg_translate("SELECT ?1, '?', \"a?b\", ?, x = ?3 AND y LIKE 'p?%' ESCAPE '\\'"
                              " AND z = ?",
                              &n);

    CHECK_STR(t ? t : "",
              "SELECT $1, '?', \"a?b\", $2, x = $3 AND y LIKE 'p?%' ESCAPE '\\' AND z = $4");
    CHECK_INT(n, 4);
    free(t);
    t = db_pg_translate("SELECT 1", &n);
    CHECK_STR(t ? t : "", "SELECT 1");
    CHECK_INT(n, 0);
    free(t);
}

static void store_open_refuses_a_bad_postgresql_url_without_printing_its_password(void)
{
    struct config cfg;
    struct store *st = NULL;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    cfg.store = "postgresql://gateway:s3cret@[oops";
    cfg.commit_timeout_ms = 1000;
    cfg.max_batch = 8;
    cfg.read_connections = 1;
    cfg.audit_hmac_key = "";
    cfg.instance_id = "gw-test";
    CHECK_INT(store_open(&cfg, &st, &err), GW_E_INPUT);
    CHECK(st == NULL);
    CHECK(strstr(err.msg, "not a valid PostgreSQL URL") != NULL);
    CHECK(strstr(err.msg, "s3cret") == NULL);
}

/* ------------------------------------------------------------ against the server */

static void url_and_keyword_conninfo_both_connect(void)
{
    char kv[300];
    const char *port = strrchr(url, ':'); /* ":PORT/gateway" */
    struct pgc_opts o;
    struct pgc *c = NULL;
    struct gw_error err;
    PGresult *r = NULL;

    c = connect_to_test_server();
    CHECK(c != NULL && pgc_ok(c));
    pgc_close(c);
    c = NULL;
    snprintf(kv, sizeof kv, "host=127.0.0.1 port=%.*s user=gateway dbname=gateway",
             (int)strcspn(port + 1, "/"), port + 1);
    o = opts_for(kv, 5000);
    CHECK_INT(pgc_open(&o, &c, &err), GW_OK);
    if (!c)
        return;
    CHECK_INT(pgc_read(c, "who", "SELECT current_user, current_setting('application_name')", NULL,
                       &r, &err),
              GW_OK);
    if (r) {
        CHECK_STR(PQgetvalue(r, 0, 0), "gateway");
        CHECK_STR(PQgetvalue(r, 0, 1), "test_pg");
    }
    PQclear(r);
    pgc_close(c);
}

static void parameters_travel_apart_from_the_sql(void)
{
    struct pgc *c = connect_to_test_server();
    struct pgc_params p;
    struct gw_error err;
    PGresult *r = NULL;
    char *text = NULL, *bytes = NULL;
    size_t n_bytes = 0;
    static const char blob[] = "MSH|^~\\&|\r\0PID|1";

    if (!c)
        return;
    pgc_params_init(&p);
    CHECK_INT(pgc_param_text(&p, "O'Brien; DROP TABLE x; --"), 1);
    CHECK_INT(pgc_param_int(&p, INT64_C(-9007199254740993)), 2);
    CHECK_INT(pgc_param_text(&p, NULL), 3);
    CHECK_INT(pgc_param_bytes(&p, blob, sizeof blob - 1), 4);
    CHECK_INT(pgc_exec(c, "echo", "SELECT $1::text, $2::bigint, $3::text IS NULL, $4::bytea", &p,
                       &r, &err),
              GW_OK);
    if (r) {
        CHECK(pgc_column_dup(r, 0, 0, &text));
        CHECK_STR(text, "O'Brien; DROP TABLE x; --");
        CHECK_INT(pgc_column_int(r, 0, 1), INT64_C(-9007199254740993));
        CHECK_STR(PQgetvalue(r, 0, 2), "t");
        CHECK(pgc_column_bytes(r, 0, 3, &bytes, &n_bytes));
        CHECK_INT(n_bytes, sizeof blob - 1);
        CHECK(bytes && memcmp(bytes, blob, sizeof blob - 1) == 0);
    }
    free(text);
    free(bytes);
    PQclear(r);
    pgc_close(c);
}

static void too_many_parameters_is_a_limit_not_a_crash(void)
{
    struct pgc *c = connect_to_test_server();
    struct pgc_params *p = malloc(sizeof *p);
    struct gw_error err;
    int i;

    if (!c || !p)
        goto out;
    pgc_params_init(p);
    for (i = 0; i <= PGC_MAX_PARAMS; i++)
        pgc_param_int(p, i);
    CHECK(p->overflow);
    CHECK_INT(pgc_exec(c, "many", "SELECT 1", p, NULL, &err), GW_E_LIMIT);
    CHECK(pgc_ok(c)); /* nothing was sent */
out:
    free(p);
    pgc_close(c);
}

static void failures_map_to_gateway_codes_with_the_server_message(void)
{
    struct pgc *c = connect_to_test_server();
    struct pgc_params p;
    struct gw_error err;

    if (!c)
        return;
    CHECK_INT(pgc_command(c, "setup",
                          "DROP TABLE IF EXISTS t_codes;"
                          "CREATE TABLE t_codes (k text PRIMARY KEY, n int CHECK (n > 0))",
                          &err),
              GW_OK);
    pgc_params_init(&p);
    pgc_param_text(&p, "ServiceRequest/1");
    CHECK_INT(pgc_exec(c, "insert", "INSERT INTO t_codes VALUES ($1, 1)", &p, NULL, &err), GW_OK);
    CHECK_INT(pgc_exec(c, "insert", "INSERT INTO t_codes VALUES ($1, 1)", &p, NULL, &err),
              GW_E_CONFLICT);
    CHECK_INT(pgc_last_class(c), PGC_CONFLICT);
    CHECK_STR(pgc_last_sqlstate(c), "23505");
    CHECK(strstr(err.msg, "duplicate key") != NULL);
    CHECK(strstr(err.msg, "ServiceRequest/1") == NULL); /* DETAIL quotes values: left out */
    CHECK_INT(pgc_exec(c, "check", "INSERT INTO t_codes VALUES ('x', 0)", NULL, NULL, &err),
              GW_E_STORE);
    CHECK_INT(pgc_last_class(c), PGC_ERROR);
    CHECK(strstr(err.msg, "check constraint") != NULL && strstr(err.msg, "23514") != NULL);
    CHECK_INT(pgc_exec(c, "syntax", "SELEC 1", NULL, NULL, &err), GW_E_STORE);
    CHECK(strstr(err.msg, "syntax error") != NULL && strstr(err.msg, "42601") != NULL);
    CHECK_INT(pgc_command(c, "ro", "SET default_transaction_read_only = on", &err), GW_OK);
    CHECK_INT(pgc_exec(c, "insert", "INSERT INTO t_codes VALUES ('y', 1)", NULL, NULL, &err),
              GW_E_IO);
    CHECK_INT(pgc_last_class(c), PGC_FULL);
    CHECK(pgc_ok(c)); /* none of these lost the connection */
    CHECK_INT(pgc_exec(c, "ok", "SELECT 1", NULL, NULL, &err), GW_OK);
    CHECK_INT(pgc_last_class(c), PGC_OK);
    pgc_command(c, "rw", "SET default_transaction_read_only = off; DROP TABLE t_codes", NULL);
    pgc_close(c);
}

/* Two repeatable-read transactions update the same row: the second must be retried. */
static void concurrent_update_is_a_serialization_failure_to_retry(void)
{
    struct pgc *a = connect_to_test_server(), *b = connect_to_test_server();
    struct gw_error err;

    if (!a || !b)
        goto out;
    CHECK_INT(
        pgc_command(a, "setup",
                    "DROP TABLE IF EXISTS t_ser; CREATE TABLE t_ser (k int PRIMARY KEY, n int);"
                    "INSERT INTO t_ser VALUES (1, 0)",
                    &err),
        GW_OK);
    CHECK_INT(pgc_command(a, "begin", "BEGIN ISOLATION LEVEL REPEATABLE READ", &err), GW_OK);
    CHECK_INT(pgc_exec(a, "snapshot", "SELECT n FROM t_ser", NULL, NULL, &err), GW_OK);
    CHECK(pgc_in_transaction(a));
    CHECK_INT(pgc_exec(b, "update", "UPDATE t_ser SET n = n + 1 WHERE k = 1", NULL, NULL, &err),
              GW_OK);
    CHECK_INT(pgc_exec(a, "update", "UPDATE t_ser SET n = n + 1 WHERE k = 1", NULL, NULL, &err),
              GW_E_STORE);
    CHECK_INT(pgc_last_class(a), PGC_RETRY);
    CHECK_STR(pgc_last_sqlstate(a), "40001");
    CHECK(strstr(err.msg, "may be retried") != NULL);
    CHECK_INT(pgc_command(a, "rollback", "ROLLBACK", &err), GW_OK);
    CHECK(!pgc_in_transaction(a));
    pgc_command(a, "cleanup", "DROP TABLE t_ser", NULL);
out:
    pgc_close(a);
    pgc_close(b);
}

/* A (a bare libpq session, as the layer has no asynchronous calls) locks row 1 and
 * then waits for row 2; b locks row 2 and then wants row 1. b's deadlock check runs
 * first (100 ms against A's 10 s), so b is the victim and must be told to retry. */
static void deadlock_victim_is_told_to_retry(void)
{
    struct pgc *b = connect_to_test_server();
    PGconn *a = PQconnectdb(url);
    struct gw_error err;
    PGresult *r;
    bool a_failed = false;

    if (!b || PQstatus(a) != CONNECTION_OK)
        goto out;
    CHECK_INT(pgc_command(b, "setup",
                          "DROP TABLE IF EXISTS t_dl; CREATE TABLE t_dl (k int PRIMARY KEY, n int);"
                          "INSERT INTO t_dl VALUES (1, 0), (2, 0)",
                          &err),
              GW_OK);
    PQclear(PQexec(a, "SET deadlock_timeout = '10s'; BEGIN; UPDATE t_dl SET n = 1 WHERE k = 1"));
    CHECK_INT(pgc_command(b, "b",
                          "SET deadlock_timeout = '100ms'; BEGIN;"
                          "UPDATE t_dl SET n = 2 WHERE k = 2",
                          &err),
              GW_OK);
    CHECK(PQsendQuery(a, "UPDATE t_dl SET n = 1 WHERE k = 2") == 1); /* waits for b */
    gw_sleep_ms(100);
    CHECK_INT(pgc_exec(b, "b-second", "UPDATE t_dl SET n = 2 WHERE k = 1", NULL, NULL, &err),
              GW_E_STORE);
    CHECK_INT(pgc_last_class(b), PGC_RETRY);
    CHECK_STR(pgc_last_sqlstate(b), "40P01");
    CHECK(strstr(err.msg, "deadlock") != NULL);
    CHECK_INT(pgc_command(b, "b-end", "ROLLBACK", &err), GW_OK);
    while ((r = PQgetResult(a)) != NULL) { /* b's rollback let A's update through */
        a_failed = a_failed || PQresultStatus(r) != PGRES_COMMAND_OK;
        PQclear(r);
    }
    CHECK(!a_failed);
    PQclear(PQexec(a, "ROLLBACK"));
    pgc_command(b, "cleanup", "DROP TABLE t_dl", NULL);
out:
    PQfinish(a);
    pgc_close(b);
}

/* The server ends our session (as when it is restarted): the next statement says the
 * connection is lost, pgc_ensure makes it again, and cached statements are prepared
 * again on the new session. */
static void terminated_session_is_detected_and_made_again(void)
{
    struct pgc *c = connect_to_test_server(), *killer = connect_to_test_server();
    struct pgc_params p;
    struct gw_error err;
    static const char cached[] = "SELECT $1::int + 1";
    PGresult *r = NULL;
    int pid;

    if (!c || !killer)
        goto out;
    pgc_params_init(&p);
    pgc_param_int(&p, 41);
    CHECK_INT(pgc_exec_cached(c, "cached", cached, &p, NULL, &err), GW_OK);
    pid = pgc_backend_pid(c);
    {
        struct pgc_params k;

        pgc_params_init(&k);
        pgc_param_int(&k, pid);
        CHECK_INT(pgc_exec(killer, "kill", "SELECT pg_terminate_backend($1::int)", &k, NULL, &err),
                  GW_OK);
    }
    gw_sleep_ms(100);
    CHECK_INT(pgc_exec(c, "after", "SELECT 1", NULL, NULL, &err), GW_E_STORE);
    CHECK_INT(pgc_last_class(c), PGC_LOST);
    CHECK(!pgc_ok(c));
    CHECK(strstr(err.msg, "lost the connection") != NULL);
    /* Known lost: nothing more is sent until it is made again. */
    CHECK_INT(pgc_exec(c, "again", "SELECT 1", NULL, NULL, &err), GW_E_STORE);
    CHECK(strstr(err.msg, "is lost") != NULL);
    CHECK_INT(pgc_ensure(c, &err), GW_OK);
    CHECK(pgc_ok(c));
    CHECK_INT(pgc_reconnects(c), 1);
    CHECK(pgc_backend_pid(c) != pid);
    CHECK_INT(pgc_exec_cached(c, "cached", cached, &p, &r, &err), GW_OK);
    if (r)
        CHECK_STR(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
out:
    pgc_close(c);
    pgc_close(killer);
}

/* A read outside a transaction survives a lost session by itself. */
static void read_reconnects_once_by_itself(void)
{
    struct pgc *c = connect_to_test_server(), *killer = connect_to_test_server();
    struct pgc_params k;
    struct gw_error err;
    PGresult *r = NULL;

    if (!c || !killer)
        goto out;
    pgc_params_init(&k);
    pgc_param_int(&k, pgc_backend_pid(c));
    CHECK_INT(pgc_exec(killer, "kill", "SELECT pg_terminate_backend($1::int)", &k, NULL, &err),
              GW_OK);
    gw_sleep_ms(100);
    CHECK_INT(pgc_read(c, "read", "SELECT 7", NULL, &r, &err), GW_OK);
    if (r)
        CHECK_STR(PQgetvalue(r, 0, 0), "7");
    CHECK_INT(pgc_reconnects(c), 1);
    PQclear(r);
out:
    pgc_close(c);
    pgc_close(killer);
}

/* Inside a transaction a lost connection is never made again silently: the
 * transaction's work is gone and the caller must know. */
static void transaction_losing_its_connection_fails_instead_of_reconnecting(void)
{
    struct pgc *c = connect_to_test_server(), *killer = connect_to_test_server();
    struct pgc_params k;
    struct gw_error err;

    if (!c || !killer)
        goto out;
    CHECK_INT(pgc_command(c, "begin", "BEGIN", &err), GW_OK);
    pgc_params_init(&k);
    pgc_param_int(&k, pgc_backend_pid(c));
    CHECK_INT(pgc_exec(killer, "kill", "SELECT pg_terminate_backend($1::int)", &k, NULL, &err),
              GW_OK);
    gw_sleep_ms(100);
    CHECK_INT(pgc_read(c, "read", "SELECT 1", NULL, NULL, &err), GW_E_STORE);
    CHECK_INT(pgc_last_class(c), PGC_LOST);
    CHECK(pgc_in_transaction(c)); /* from the caller's side, until it calls pgc_ensure */
    /* A later read in the same (dead) transaction must not reconnect and run outside it. */
    CHECK_INT(pgc_read(c, "read again", "SELECT 1", NULL, NULL, &err), GW_E_STORE);
    CHECK_INT(pgc_reconnects(c), 0);
    CHECK_INT(pgc_ensure(c, &err), GW_OK);
    CHECK(!pgc_in_transaction(c));
    CHECK_INT(pgc_read(c, "read after", "SELECT 1", NULL, NULL, &err), GW_OK);
out:
    pgc_close(c);
    pgc_close(killer);
}

/* The server stops: statements fail as lost, pgc_ensure reports it unreachable (no
 * waiting); it starts again on the same port: the same connection object works. */
static void server_restart_is_survived(void)
{
    struct pgc *c = connect_to_test_server();
    struct gw_error err;

    if (!c)
        return;
    CHECK_INT(server("stop"), 0);
    CHECK_INT(pgc_exec(c, "down", "SELECT 1", NULL, NULL, &err), GW_E_STORE);
    CHECK_INT(pgc_last_class(c), PGC_LOST);
    CHECK_INT(pgc_ensure(c, &err), GW_E_STORE);
    CHECK(strstr(err.msg, "unreachable") != NULL);
    CHECK_INT(server("start"), 0);
    CHECK_INT(pgc_ensure(c, &err), GW_OK);
    CHECK_INT(pgc_exec(c, "up", "SELECT 1", NULL, NULL, &err), GW_OK);
    pgc_close(c);
}

struct late_start {
    struct pgc *c;
    enum gw_code rc;
    struct gw_error err;
};

static void *open_in_thread(void *arg)
{
    struct late_start *ls = arg;
    struct pgc_opts o = opts_for(url, 30000);

    ls->rc = pgc_open(&o, &ls->c, &ls->err);
    return NULL;
}

/* Started while the server is down, pgc_open keeps trying and connects once it is up. */
static void open_waits_for_a_server_that_comes_up_later(void)
{
    struct late_start ls = {0};
    pthread_t t;

    CHECK_INT(server("stop"), 0);
    if (pthread_create(&t, NULL, open_in_thread, &ls) != 0) {
        CHECK(!"pthread_create");
        server("start");
        return;
    }
    gw_sleep_ms(700); /* several attempts fail meanwhile */
    CHECK_INT(server("start"), 0);
    pthread_join(t, NULL);
    CHECK_INT(ls.rc, GW_OK);
    CHECK(ls.c && pgc_ok(ls.c));
    pgc_close(ls.c);
}

/* ------------------------------------------------------------ the store's COMMIT */

static enum gw_code insert_into(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    return stmt_exec(txn->db, ctx, err);
}

static long count_rows(struct pgc *c, const char *sql)
{
    PGresult *r = NULL;
    long n = -1;

    if (pgc_exec(c, "count", sql, NULL, &r, NULL) == GW_OK)
        n = (long)pgc_column_int(r, 0, 0);
    PQclear(r);
    return n;
}

/* A store on the database at store_url: one reader, small batches. */
static struct store *open_store(char *store_url)
{
    struct config cfg;
    struct store *st = NULL;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    cfg.store = store_url;
    cfg.commit_timeout_ms = 5000;
    cfg.max_batch = 8;
    cfg.read_connections = 1;
    cfg.audit_hmac_key = "";
    cfg.instance_id = "gw-test";
    cfg.pg_connect_retry_max_ms = 1000;
    cfg.push_lease_s = 15;
    CHECK_INT(store_open(&cfg, &st, &err), GW_OK);
    return st;
}

/* The connection dies inside COMMIT (a deferred trigger ends its own session there): the
 * writer asks the transaction's status on a new connection, answers the job a failure
 * (the database aborted it: nothing acknowledged that was not committed), and the next
 * write commits. */
static void a_commit_lost_with_its_connection_is_never_answered_as_stored(void)
{
    char name[40], sql[80], store_url[300];
    const char *slash = strrchr(url, '/');
    struct pgc *admin = connect_to_test_server(), *db = NULL;
    struct pgc_opts o;
    struct store *st = NULL;
    struct gw_error err;

    snprintf(name, sizeof name, "lost_commit_%d", (int)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    CHECK(admin && slash);
    if (!admin || !slash)
        return;
    CHECK_INT(pgc_command(admin, "create", sql, &err), GW_OK);
    snprintf(store_url, sizeof store_url, "%.*s/%s", (int)(slash - url), url, name);
    st = open_store(store_url);
    o = opts_for(store_url, 5000);
    CHECK_INT(pgc_open(&o, &db, &err), GW_OK);
    if (!st || !db) {
        store_destroy(st);
        pgc_close(db);
        pgc_close(admin);
        return;
    }
    CHECK_INT(pgc_command(db, "setup",
                          "CREATE TABLE boom (n int); CREATE TABLE kept (n int);"
                          "CREATE FUNCTION boom_now() RETURNS trigger LANGUAGE plpgsql AS $f$"
                          " BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL;"
                          " END $f$;"
                          "CREATE CONSTRAINT TRIGGER boom_at_commit AFTER INSERT ON boom"
                          " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION boom_now()",
                          &err),
              GW_OK);
    CHECK_INT(store_write(st, insert_into, NULL, "INSERT INTO boom VALUES (1)", &err), GW_E_STORE);
    CHECK(strstr(err.msg, "COMMIT") != NULL);
    CHECK(strstr(err.msg, "nothing was stored") != NULL || strstr(err.msg, "unknown") != NULL);
    CHECK_INT(count_rows(db, "SELECT COUNT(*) FROM boom"), 0);
    CHECK_INT(store_write(st, insert_into, NULL, "INSERT INTO kept VALUES (1)", &err), GW_OK);
    CHECK_INT(count_rows(db, "SELECT COUNT(*) FROM kept"), 1);
    CHECK_INT(store_ping(st, &err), GW_OK);
    store_destroy(st);
    pgc_close(db);
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", name);
    pgc_command(admin, "drop", sql, NULL);
    pgc_close(admin);
}

/* The server ends every session of the store (as a restart does) while its reader sits
 * idle in the pool: the next search runs on a new session instead of answering that the
 * connection was lost. */
static void a_search_after_the_server_ended_an_idle_reader_succeeds(void)
{
    char name[40], sql[160], store_url[300];
    const char *slash = strrchr(url, '/');
    struct pgc *admin = connect_to_test_server();
    struct store_query q = {.type = "ServiceRequest", .count = 10};
    struct store_page page;
    struct store *st = NULL;
    struct gw_error err;

    snprintf(name, sizeof name, "idle_reader_%d", (int)getpid());
    CHECK(admin && slash);
    if (!admin || !slash)
        return;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    CHECK_INT(pgc_command(admin, "create", sql, &err), GW_OK);
    snprintf(store_url, sizeof store_url, "%.*s/%s", (int)(slash - url), url, name);
    st = open_store(store_url);
    if (!st) {
        pgc_close(admin);
        return;
    }
    CHECK_INT(store_search(st, &q, &page, &err), GW_OK);
    store_page_cleanup(&page);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'", name);
    CHECK_INT(pgc_command(admin, "terminate", sql, &err), GW_OK);
    gw_sleep_ms(200);
    CHECK_INT(store_search(st, &q, &page, &err), GW_OK);
    CHECK_INT(page.n_items, 0);
    store_page_cleanup(&page);
    store_destroy(st);
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", name);
    pgc_command(admin, "drop", sql, NULL);
    pgc_close(admin);
}

int main(void)
{
    url = getenv("GW_TEST_PG_URL");
    pg_dir = getenv("GW_TEST_PG_DIR");
    if (url && !*url)
        url = NULL;
    RUN(backoff_doubles_from_min_and_stops_at_max);
    RUN(sqlstates_are_classified_by_what_to_do_next);
    RUN(target_is_described_without_its_password);
    RUN(invalid_conninfo_is_refused_before_any_attempt);
    RUN(unreachable_server_is_retried_with_backoff_then_reported);
    RUN(waiting_for_the_server_can_be_stopped);
    RUN(store_open_refuses_a_bad_postgresql_url_without_printing_its_password);
    RUN(placeholders_become_numbered_outside_quotes);
    if (!url || !pg_dir) {
        printf("SKIPPED the cases that need a server: GW_TEST_PG_URL and GW_TEST_PG_DIR are not "
               "set (run under tools/pgtest.sh exec, as make unit does)\n");
        return check_summary();
    }
    RUN(url_and_keyword_conninfo_both_connect);
    RUN(parameters_travel_apart_from_the_sql);
    RUN(too_many_parameters_is_a_limit_not_a_crash);
    RUN(failures_map_to_gateway_codes_with_the_server_message);
    RUN(concurrent_update_is_a_serialization_failure_to_retry);
    RUN(deadlock_victim_is_told_to_retry);
    RUN(terminated_session_is_detected_and_made_again);
    RUN(read_reconnects_once_by_itself);
    RUN(transaction_losing_its_connection_fails_instead_of_reconnecting);
    RUN(server_restart_is_survived);
    RUN(open_waits_for_a_server_that_comes_up_later);
    RUN(a_commit_lost_with_its_connection_is_never_answered_as_stored);
    RUN(a_search_after_the_server_ended_an_idle_reader_succeeds);
    return check_summary();
}
