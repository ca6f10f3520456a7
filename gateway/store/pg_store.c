/* pg_store.c -- the PostgreSQL side of the store: opening (connections with
 * their session settings, migrations), and the writer's batch.
 *
 * Every writer transaction, on every instance, starts by locking the one row
 * of store_head (SELECT ... FOR UPDATE): it is the database-wide write lock,
 * as BEGIN IMMEDIATE is SQLite's. Under it seqs are handed out in commit
 * order, the audit chain head read is the latest, a conditional create's
 * search sees every earlier create, and the batch's time is never before the
 * last commit's (last_commit_ms), whatever the instances' clocks.
 */
#include "store/store_int.h"
#include "store/pg_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PG_MAX_BATCH          32  /* two savepoints per job: 64 subtransactions stay cached */
#define PG_RETRY_MIN_MS       250 /* the writer's reconnection backoff while serving */
#define PG_RETRY_MAX_MS       5000
#define PG_START_RETRY_MS     250  /* the first wait at start */
#define PG_IDLE_IN_TXN_MS     5000 /* a stalled lock holder is cut off after this */
#define PG_CLOCK_SKEW_WARN_MS 1000
#define PG_RESOLVE_TRIES      40 /* a lost COMMIT's outcome: asked this often... */
#define PG_RESOLVE_WAIT_MS    50 /* ...this far apart while still in progress */

static const char SQL_HEAD_LOCK[] = "SELECT last_commit_ms, pg_current_xact_id()::text"
                                    " FROM store_head WHERE id = 1 FOR UPDATE";
static const char SQL_HEAD_WRITE[] = "UPDATE store_head SET last_commit_ms = ?1 WHERE id = 1";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* A SIGTERM or SIGINT waiting (they are blocked and taken with sigwait() by
 * the server): stops the retries at start. */
static bool term_pending(void *ctx)
{
    sigset_t set;

    (void)ctx;
    if (sigpending(&set) != 0)
        return false;
    return sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1;
}

static enum gw_code open_one(const struct config *cfg, const char *role, const char *session,
                             long retry_max_ms, struct db **out, struct gw_error *err)
{
    char app[128];
    struct pgc_opts o = {.conninfo = cfg->store,
                         .application_name = app,
                         .session_sql = session,
                         .retry_min_ms = PG_START_RETRY_MS,
                         .retry_max_ms = retry_max_ms,
                         .give_up_ms = -1,
                         .should_stop = term_pending};

    gw_format(app, sizeof app, "%s/%s", cfg->instance_id, role);
    return db_open_pg(&o, out, err);
}

/* fsync off makes every commit a promise PostgreSQL may not keep. */
static void check_fsync(struct db *db)
{
    struct db_stmt *s = NULL;

    if (db_prepare(db, "SELECT current_setting('fsync')", false, &s) == DB_OK &&
        db_step(s) == DB_ROW && db_column_text(s, 0) && strcmp(db_column_text(s, 0), "off") == 0)
        gw_log(GW_LOG_WARN, "store-fsync-off",
               "PostgreSQL runs with fsync=off: acknowledged commits may be lost in a crash");
    db_finalize(s);
}

static enum gw_code open_readers_pg(struct store *st, const struct config *cfg, const char *session,
                                    struct gw_error *err)
{
    long i;
    enum gw_code rc;

    st->readers = calloc((size_t)cfg->read_connections, sizeof *st->readers);
    st->reader_busy = calloc((size_t)cfg->read_connections, sizeof *st->reader_busy);
    if (!st->readers || !st->reader_busy)
        return gw_fail(err, GW_E_NOMEM, "no memory for the reader pool");
    for (i = 0; i < cfg->read_connections; i++) {
        rc = open_one(cfg, "reader", session, cfg->pg_connect_retry_max_ms, &st->readers[i], err);
        if (rc)
            return rc;
        st->n_readers = (size_t)i + 1;
    }
    return GW_OK;
}

enum gw_code pg_store_open(struct store *st, const struct config *cfg, struct gw_error *err)
{
    char writer_sql[512], reader_sql[256], nonce[17], target[PGC_TARGET_LEN];
    enum gw_code rc = pgc_check_conninfo(cfg->store, err);

    if (rc)
        return rc;
    st->pg = true;
    pgc_describe(cfg->store, target);
    gw_format(st->target, sizeof st->target, "postgresql://%s", target);
    st->commit_timeout_ms = cfg->commit_timeout_ms;
    st->max_batch = cfg->max_batch < PG_MAX_BATCH ? cfg->max_batch : PG_MAX_BATCH;
    st->push_lease_s = cfg->push_lease_s;
    gw_format(nonce, sizeof nonce, "%08x", (unsigned)(gw_now_ms() ^ (int64_t)getpid() << 16));
    st->path = gw_strdup(cfg->store);
    st->hmac_key = gw_strdup(cfg->audit_hmac_key);
    st->instance_id = gw_strdup(cfg->instance_id);
    st->owner = gw_strdup(cfg->instance_id);
    if (st->owner) {
        size_t n = strlen(st->owner) + sizeof nonce + 1;
        char *owner = malloc(n);

        if (owner)
            snprintf(owner, n, "%s/%s", st->instance_id, nonce);
        free(st->owner);
        st->owner = owner;
    }
    if (!st->path || !st->hmac_key || !st->instance_id || !st->owner)
        return gw_fail(err, GW_E_NOMEM, "no memory for the store");
    gw_format(writer_sql, sizeof writer_sql,
              "SET synchronous_commit = on; SET idle_in_transaction_session_timeout = %d;"
              " SET lock_timeout = %ld; SET statement_timeout = %ld;"
              " SET client_connection_check_interval = 1000;"
              " SET TIME ZONE 'UTC'",
              PG_IDLE_IN_TXN_MS, cfg->commit_timeout_ms, cfg->commit_timeout_ms);
    /* readers: no statement timeout (an export streams for as long as its client reads) */
    gw_format(reader_sql, sizeof reader_sql,
              "SET client_connection_check_interval = 1000; SET TIME ZONE 'UTC'");
    rc = open_one(cfg, "writer", writer_sql, cfg->pg_connect_retry_max_ms, &st->wdb, err);
    if (!rc)
        rc = schema_migrate_pg(st->wdb, st->instance_id, &st->schema_version, err);
    if (!rc) {
        check_fsync(st->wdb);
        st->last_commit_ms = store_last_time(st->wdb);
        rc = open_readers_pg(st, cfg, reader_sql, err);
    }
    if (!rc)
        gw_log(GW_LOG_INFO, "store-opened", "PostgreSQL at %s, schema %d, instance %s",
               pgc_target(db_pgc(st->wdb)), st->schema_version, st->owner);
    return rc;
}

void pg_store_close(struct store *st)
{
    free(st->instance_id);
    free(st->owner);
}

enum gw_code pg_batch_ready(struct store *st, struct gw_error *err)
{
    struct pgc *c = db_pgc(st->wdb);
    int64_t now = gw_mono_ms();
    enum gw_code rc;

    if (pgc_ok(c) && !pgc_in_transaction(c))
        return GW_OK;
    if (pgc_ok(c)) /* a transaction left open by a failure: gone with it */
        pgc_command(c, "rollback", "ROLLBACK", NULL);
    if (pgc_ok(c))
        return GW_OK;
    if (now < st->pg_retry_mono_ms)
        return gw_fail(err, GW_E_STORE,
                       "lost the connection to PostgreSQL at %s; next attempt in %lld ms",
                       pgc_target(c), (long long)(st->pg_retry_mono_ms - now));
    rc = pgc_ensure(c, err);
    if (rc) {
        st->pg_failures++;
        st->pg_retry_mono_ms =
            now + pgc_backoff_ms(st->pg_failures, PG_RETRY_MIN_MS, PG_RETRY_MAX_MS);
        return rc;
    }
    st->pg_failures = 0;
    st->pg_retry_mono_ms = 0;
    return GW_OK;
}

enum gw_code pg_batch_begin(struct store_txn *txn, struct gw_error *err)
{
    struct db_stmt *s;
    int64_t now = gw_now_ms(), last = 0;
    enum gw_code rc = stmt_txn(txn, SQL_HEAD_LOCK, &s, err);

    if (rc)
        return rc;
    if (db_step(s) != DB_ROW) {
        rc = store_fail_db(txn->db, err, "the store's write lock");
    } else {
        last = db_column_int64(s, 0);
        gw_format(txn->xid, sizeof txn->xid, "%s",
                  db_column_text(s, 1) ? db_column_text(s, 1) : "");
    }
    stmt_release(s);
    if (rc)
        return rc;
    if (last - now > PG_CLOCK_SKEW_WARN_MS)
        gw_log(GW_LOG_WARN, "store-clock-behind",
               "this instance's clock is %lld ms behind the last commit's time",
               (long long)(last - now));
    if (txn->st->last_commit_ms > last)
        last = txn->st->last_commit_ms;
    txn->now_ms = now > last ? now : last + 1;
    return GW_OK;
}

/* The answer to COMMIT was lost with the connection: did it commit? */
static enum gw_code resolve_commit(struct store_txn *txn, const struct gw_error *why,
                                   struct gw_error *err)
{
    struct db *db = txn->db;
    struct db_stmt *s = NULL;
    const char *status = NULL;
    enum gw_code rc;
    int attempt;

    rc = pgc_ensure(db_pgc(db), NULL);
    if (!rc && db_prepare(db, "SELECT pg_xact_status(?1::xid8)", false, &s) == DB_OK) {
        db_bind_text(s, 1, txn->xid);
        /* a backend that died in its COMMIT may still be ending its transaction */
        for (attempt = 0; attempt < PG_RESOLVE_TRIES; attempt++) {
            status = db_step(s) == DB_ROW ? db_column_text(s, 0) : NULL;
            if (!status || strcmp(status, "in progress") != 0)
                break;
            db_reset(s);
            gw_sleep_ms(PG_RESOLVE_WAIT_MS);
        }
    }
    if (status && strcmp(status, "committed") == 0) {
        gw_log(GW_LOG_WARN, "store-commit-resolved",
               "the connection was lost during COMMIT; transaction %s committed", txn->xid);
        db_finalize(s);
        return GW_OK;
    }
    if (status && strcmp(status, "aborted") == 0)
        rc = gw_fail(err, GW_E_STORE,
                     "the database went away during COMMIT; nothing was stored"
                     " (%s)",
                     why->msg);
    else
        rc = gw_fail(err, GW_E_STORE,
                     "the database went away during COMMIT; the outcome is unknown (%s)", why->msg);
    db_finalize(s);
    return rc;
}

static enum gw_code run_fixed(struct store_txn *txn, const char *sql, int64_t arg, bool with_arg,
                              struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, sql, &s, err);

    if (rc)
        return rc;
    if (with_arg)
        db_bind_int64(s, 1, arg);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, sql == SQL_COMMIT ? "commit" : "the store's head");
    stmt_release(s);
    return rc;
}

enum gw_code pg_batch_commit(struct store_txn *txn, struct gw_error *err)
{
    struct pgc *c = db_pgc(txn->db);
    struct gw_error why;
    enum gw_code rc;

    gw_error_clear(&why);
    rc = run_fixed(txn, SQL_HEAD_WRITE, txn->now_ms, true, err);
    if (rc) {
        run_fixed(txn, SQL_ROLLBACK, 0, false, NULL);
        return rc;
    }
    rc = run_fixed(txn, SQL_COMMIT, 0, false, &why);
    if (!rc)
        return GW_OK;
    if (pgc_last_class(c) == PGC_LOST && txn->xid[0])
        return resolve_commit(txn, &why, err);
    run_fixed(txn, SQL_ROLLBACK, 0, false, NULL);
    if (err)
        *err = why;
    return rc;
}
