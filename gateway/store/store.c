/* store.c -- opening the store, the reader pool and the single writer.
 *
 * Group commit: callers queue jobs; the writer takes every queued job (up to
 * max_batch), runs each in its own savepoint inside one transaction, commits
 * once, and only then wakes the callers. With synchronous=FULL in WAL mode
 * the commit is on disk when COMMIT returns, so one fsync serves the batch.
 *
 * Invariant: a job is answered only after the COMMIT that holds it returned
 * SQLITE_OK, or with a failure code if that COMMIT failed.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

static enum gw_code open_db(const char *path, bool writer, sqlite3 **out, struct gw_error *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    enum gw_code rc;

    *out = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        rc = gw_fail(err, GW_E_STORE, "cannot open %s: %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    rc = stmt_exec(db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                   "PRAGMA temp_store=MEMORY;",
                   err);
    if (rc) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return GW_OK;
}

sqlite3 *reader_acquire(struct store *st)
{
    sqlite3 *db = NULL;
    size_t i;

    pthread_mutex_lock(&st->pool_lock);
    for (;;) {
        for (i = 0; i < st->n_readers; i++) {
            if (!st->reader_busy[i]) {
                st->reader_busy[i] = true;
                db = st->readers[i];
                break;
            }
        }
        if (db)
            break;
        pthread_cond_wait(&st->pool_cv, &st->pool_lock);
    }
    pthread_mutex_unlock(&st->pool_lock);
    return db;
}

void reader_release(struct store *st, sqlite3 *db)
{
    size_t i;

    pthread_mutex_lock(&st->pool_lock);
    for (i = 0; i < st->n_readers; i++)
        if (st->readers[i] == db)
            st->reader_busy[i] = false;
    pthread_cond_signal(&st->pool_cv);
    pthread_mutex_unlock(&st->pool_lock);
}

/* Runs apply in a savepoint of its own; returns its outcome. */
static enum gw_code run_apply(struct store_txn *txn, struct job *j)
{
    enum gw_code rc;

    if (stmt_exec(txn->db, "SAVEPOINT apply", &j->err))
        return j->err.code;
    rc = j->apply(txn, j->ctx, &j->err);
    if (rc == GW_OK)
        rc = stmt_exec(txn->db, "RELEASE apply", &j->err);
    if (rc) {
        stmt_exec(txn->db, "ROLLBACK TO apply; RELEASE apply", NULL);
        if (!j->err.msg[0])
            gw_fail(&j->err, rc, "the request could not be stored");
    }
    return rc;
}

/* Runs one job inside the open transaction. The job savepoint lets a failing
 * audit step undo the apply step too: data never lands without its event. */
static void run_job(struct store_txn *txn, struct job *j)
{
    char head[65];
    enum gw_code rc = GW_OK;
    struct gw_error audit_err;

    memcpy(head, txn->chain_head, sizeof head);
    gw_error_clear(&j->err);
    gw_error_clear(&audit_err);
    if (stmt_exec(txn->db, "SAVEPOINT job", &j->err)) {
        j->rc = j->err.code;
        return;
    }
    if (j->apply)
        rc = run_apply(txn, j);
    if (rc)
        memcpy(txn->chain_head, head, sizeof head);
    if (j->audit && j->audit(txn, j->ctx, rc, &j->err, &audit_err) != GW_OK) {
        stmt_exec(txn->db, "ROLLBACK TO job", NULL);
        memcpy(txn->chain_head, head, sizeof head);
        gw_log(GW_LOG_ERROR, "audit-append-failed", "%s", audit_err.msg);
        if (!rc)
            rc = gw_fail(&j->err, GW_E_STORE, "the audit event could not be stored: %s",
                         audit_err.msg);
    }
    stmt_exec(txn->db, "RELEASE job", NULL);
    j->rc = rc;
}

/* Takes up to max_batch queued jobs, marking them RUNNING; NULL when stopping
 * with an empty queue. */
static struct job *take_batch(struct store *st, size_t *n_out)
{
    struct job *head, *j;
    size_t n = 0;

    pthread_mutex_lock(&st->q_lock);
    while (!st->q_head && !st->stopping)
        pthread_cond_wait(&st->q_cv, &st->q_lock);
    head = st->q_head;
    for (j = head; j && n < (size_t)st->max_batch; j = j->next, n++)
        j->state = JOB_RUNNING;
    if (j) {
        struct job *last = head;

        while (last->next != j)
            last = last->next;
        last->next = NULL;
        st->q_head = j;
    } else {
        st->q_head = st->q_tail = NULL;
    }
    pthread_mutex_unlock(&st->q_lock);
    *n_out = n;
    return head;
}

static void finish_batch(struct store *st, struct job *batch, enum gw_code commit_rc,
                         const struct gw_error *commit_err)
{
    struct job *j, *next;

    pthread_mutex_lock(&st->q_lock);
    for (j = batch; j; j = next) {
        next = j->next;
        if (commit_rc) {
            j->rc = commit_rc;
            j->err = *commit_err;
        }
        j->state = JOB_DONE;
    }
    pthread_cond_broadcast(&st->done_cv);
    pthread_mutex_unlock(&st->q_lock);
}

static int64_t batch_time(struct store *st)
{
    int64_t now = gw_now_ms();

    if (now <= st->last_commit_ms)
        now = st->last_commit_ms + 1;
    return now;
}

/* One transaction for the whole batch; returns the COMMIT's outcome. */
static enum gw_code commit_batch(struct store *st, struct job *batch, struct gw_error *err)
{
    struct store_txn txn = {.st = st, .db = st->wdb, .now_ms = batch_time(st)};
    struct job *j;
    enum gw_code rc;

    rc = stmt_exec(st->wdb, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    rc = audit_head_load(st->wdb, txn.chain_head, err);
    if (rc) {
        stmt_exec(st->wdb, "ROLLBACK", NULL);
        return rc;
    }
    for (j = batch; j; j = j->next)
        run_job(&txn, j);
    rc = stmt_exec(st->wdb, "COMMIT", err);
    if (rc) {
        stmt_exec(st->wdb, "ROLLBACK", NULL);
        return rc;
    }
    st->last_commit_ms = txn.now_ms;
    return GW_OK;
}

static void *writer_main(void *arg)
{
    struct store *st = arg;

    for (;;) {
        struct gw_error err;
        struct job *batch;
        size_t n;
        enum gw_code rc;
        int64_t started;

        batch = take_batch(st, &n);
        if (!batch)
            break;
        started = gw_mono_ms();
        gw_error_clear(&err);
        rc = commit_batch(st, batch, &err);
        if (rc)
            gw_log(GW_LOG_ERROR, "store-commit-failed", "%s", err.msg);
        gw_metric_observe("gateway_store_commit_batch_size", "", (double)n);
        gw_metric_observe("gateway_store_commit_seconds", "",
                          (double)(gw_mono_ms() - started) / 1000.0);
        finish_batch(st, batch, rc, &err);
    }
    return NULL;
}

/* Unlinks j from the queue (it must be QUEUED). Caller holds q_lock. */
static void unqueue(struct store *st, struct job *j)
{
    struct job **pp, *prev = NULL;

    for (pp = &st->q_head; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            if (st->q_tail == j)
                st->q_tail = prev;
            return;
        }
    }
}

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

enum gw_code store_write(struct store *st, store_apply_fn apply, store_audit_fn audit, void *ctx,
                         struct gw_error *err)
{
    struct job j = {.apply = apply, .audit = audit, .ctx = ctx, .state = JOB_QUEUED};
    struct timespec deadline;

    deadline_after(&deadline, st->commit_timeout_ms);
    pthread_mutex_lock(&st->q_lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->q_lock);
        return gw_fail(err, GW_E_STORE, "the store is shutting down");
    }
    if (st->q_tail)
        st->q_tail->next = &j;
    else
        st->q_head = &j;
    st->q_tail = &j;
    pthread_cond_signal(&st->q_cv);
    while (j.state != JOB_DONE) {
        int w = pthread_cond_timedwait(&st->done_cv, &st->q_lock, &deadline);

        if (w == ETIMEDOUT && j.state == JOB_QUEUED) {
            unqueue(st, &j);
            pthread_mutex_unlock(&st->q_lock);
            return gw_fail(err, GW_E_STORE, "the store stayed busy for %ld ms",
                           st->commit_timeout_ms);
        }
        if (w == ETIMEDOUT)
            deadline_after(&deadline, 1000); /* running: it will finish */
    }
    pthread_mutex_unlock(&st->q_lock);
    if (j.rc && err)
        *err = j.err;
    return j.rc;
}

static bool all_done(const struct job *jobs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (jobs[i].state != JOB_DONE)
            return false;
    return true;
}

enum gw_code store_write_all(struct store *st, struct store_work *work, size_t n,
                             struct gw_error *err)
{
    struct job *jobs;
    size_t i;

    if (!n)
        return GW_OK;
    jobs = calloc(n, sizeof *jobs);
    if (!jobs)
        return gw_fail(err, GW_E_NOMEM, "no memory for %zu pieces of work", n);
    for (i = 0; i < n; i++) {
        jobs[i] = (struct job){.apply = work[i].apply,
                               .audit = work[i].audit,
                               .ctx = work[i].ctx,
                               .state = JOB_QUEUED};
        jobs[i].next = i + 1 < n ? &jobs[i + 1] : NULL;
    }
    pthread_mutex_lock(&st->q_lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->q_lock);
        free(jobs);
        return gw_fail(err, GW_E_STORE, "the store is shutting down");
    }
    if (st->q_tail)
        st->q_tail->next = &jobs[0];
    else
        st->q_head = &jobs[0];
    st->q_tail = &jobs[n - 1];
    pthread_cond_signal(&st->q_cv);
    while (!all_done(jobs, n))
        pthread_cond_wait(&st->done_cv, &st->q_lock);
    pthread_mutex_unlock(&st->q_lock);
    for (i = 0; i < n; i++) {
        work[i].rc = jobs[i].rc;
        work[i].err = jobs[i].err;
    }
    free(jobs);
    return GW_OK;
}

/* A WAL of more frames than this is emptied after the commit that grew it. */
#define STORE_WAL_RESTART_FRAMES  16384 /* 64 MB of 4 KB pages */
#define STORE_WAL_RESTART_WAIT_MS 200   /* longest pause of a commit for it */

/* The checkpointer copies frames back without waiting (PASSIVE), but the log
 * itself restarts only when a write begins with every frame copied, which a
 * writer busy without pause never gives it: the WAL would grow without end,
 * and every page read with it (SQLite looks pages up through the WAL's
 * index, block by block). So once a commit leaves more than
 * STORE_WAL_RESTART_FRAMES, the writer, right after that commit, copies the
 * rest back and empties the log (TRUNCATE): a pause every 64 MB written (tens
 * of ms here). Readers still on an older snapshot make it wait, at most
 * STORE_WAL_RESTART_WAIT_MS; then a later commit tries again. */
static int wal_grown(void *arg, sqlite3 *db, const char *name, int frames)
{
    int rc;

    (void)arg;
    if (frames <= STORE_WAL_RESTART_FRAMES)
        return SQLITE_OK;
    sqlite3_busy_timeout(db, STORE_WAL_RESTART_WAIT_MS); /* readers in flight: a short wait */
    rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) /* busy: the checkpointer is at it; next commit */
        gw_log(GW_LOG_WARN, "checkpoint-failed", "%s", sqlite3_errmsg(db));
    return SQLITE_OK;
}

/* The writer does not checkpoint (wal_autocheckpoint=0): this thread runs a
 * PASSIVE checkpoint every STORE_CHECKPOINT_EVERY_MS on its own connection,
 * so copying the WAL back into the database never delays a commit. */
static void *checkpointer_main(void *arg)
{
    struct store *st = arg;
    struct timespec deadline;
    int rc;

    pthread_mutex_lock(&st->q_lock);
    while (!st->stopping) {
        deadline_after(&deadline, STORE_CHECKPOINT_EVERY_MS);
        pthread_cond_timedwait(&st->ckpt_cv, &st->q_lock, &deadline);
        if (st->stopping)
            break;
        pthread_mutex_unlock(&st->q_lock);
        rc = sqlite3_wal_checkpoint_v2(st->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) /* busy: the writer empties the log */
            gw_log(GW_LOG_WARN, "checkpoint-failed", "%s", sqlite3_errmsg(st->cdb));
        pthread_mutex_lock(&st->q_lock);
    }
    pthread_mutex_unlock(&st->q_lock);
    return NULL;
}

static enum gw_code start_checkpointer(struct store *st, struct gw_error *err)
{
    enum gw_code rc = open_db(st->path, false, &st->cdb, err);

    if (!rc)
        rc = stmt_exec(st->wdb, "PRAGMA wal_autocheckpoint=0", err);
    if (rc)
        return rc;
    sqlite3_wal_hook(st->wdb, wal_grown, st); /* after the pragma, which clears the hook */
    if (pthread_create(&st->checkpointer, NULL, checkpointer_main, st) != 0)
        return gw_fail(err, GW_E_INTERNAL, "cannot start the checkpointer");
    st->checkpointer_started = true;
    return GW_OK;
}

static enum gw_code open_readers(struct store *st, long n, struct gw_error *err)
{
    long i;
    enum gw_code rc;

    st->readers = calloc((size_t)n, sizeof *st->readers);
    st->reader_busy = calloc((size_t)n, sizeof *st->reader_busy);
    if (!st->readers || !st->reader_busy)
        return gw_fail(err, GW_E_NOMEM, "no memory for the reader pool");
    for (i = 0; i < n; i++) {
        rc = open_db(st->path, false, &st->readers[i], err);
        if (rc)
            return rc;
        st->n_readers = (size_t)i + 1;
    }
    return GW_OK;
}

static enum gw_code store_init(struct store *st, const struct config *cfg, struct gw_error *err)
{
    enum gw_code rc;

    if (strncmp(cfg->store, "sqlite:", 7) != 0)
        return gw_fail(err, GW_E_INPUT, "store \"%s\": this build serves sqlite:PATH stores",
                       cfg->store);
    st->path = gw_strdup(cfg->store + 7);
    st->hmac_key = gw_strdup(cfg->audit_hmac_key);
    if (!st->path || !st->hmac_key)
        return gw_fail(err, GW_E_NOMEM, "no memory for the store");
    if (!*st->path)
        return gw_fail(err, GW_E_INPUT, "store: sqlite: needs a path");
    st->commit_timeout_ms = cfg->commit_timeout_ms;
    st->max_batch = cfg->max_batch;
    rc = open_db(st->path, true, &st->wdb, err);
    if (!rc) /* a batch's pages stay in memory until its commit, not spilled to the WAL midway */
        rc = stmt_exec(st->wdb, "PRAGMA cache_size=-" STORE_WRITER_CACHE_KB, err);
    if (!rc)
        rc = schema_migrate(st->wdb, &st->schema_version, err);
    if (!rc)
        st->last_commit_ms = store_last_time(st->wdb); /* times grow with seq, restarts too */
    if (!rc)
        rc = open_readers(st, cfg->read_connections, err);
    if (!rc)
        rc = start_checkpointer(st, err);
    if (rc)
        return rc;
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0)
        return gw_fail(err, GW_E_INTERNAL, "cannot start the store writer");
    st->writer_started = true;
    return GW_OK;
}

enum gw_code store_open(const struct config *cfg, struct store **out, struct gw_error *err)
{
    struct store *st;
    enum gw_code rc;

    *out = NULL;
    st = calloc(1, sizeof *st);
    if (!st)
        return gw_fail(err, GW_E_NOMEM, "no memory for the store");
    pthread_mutex_init(&st->pool_lock, NULL);
    pthread_cond_init(&st->pool_cv, NULL);
    pthread_mutex_init(&st->q_lock, NULL);
    pthread_cond_init(&st->q_cv, NULL);
    pthread_cond_init(&st->done_cv, NULL);
    pthread_cond_init(&st->ckpt_cv, NULL);
    gw_metric_histogram("gateway_store_commit_batch_size", "requests committed per transaction",
                        batch_bounds, sizeof batch_bounds / sizeof batch_bounds[0]);
    gw_metric_describe("gateway_store_commit_seconds", "histogram",
                       "time to run and commit one batch");
    rc = store_init(st, cfg, err);
    if (rc) {
        store_destroy(st);
        return rc;
    }
    *out = st;
    return GW_OK;
}

void store_destroy(struct store *st)
{
    size_t i;

    if (!st)
        return;
    if (st->writer_started) {
        pthread_mutex_lock(&st->q_lock);
        st->stopping = true;
        pthread_cond_broadcast(&st->q_cv);
        pthread_mutex_unlock(&st->q_lock);
        pthread_join(st->writer, NULL);
    }
    if (st->checkpointer_started) {
        pthread_mutex_lock(&st->q_lock);
        st->stopping = true;
        pthread_cond_broadcast(&st->ckpt_cv);
        pthread_mutex_unlock(&st->q_lock);
        pthread_join(st->checkpointer, NULL);
        sqlite3_wal_checkpoint_v2(st->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    sqlite3_close(st->cdb);
    for (i = 0; i < st->n_readers; i++)
        sqlite3_close(st->readers[i]);
    stmt_cache_clear(&st->wcache);
    text_cache_clear(&st->wtext);
    sqlite3_close(st->wdb);
    free(st->readers);
    free(st->reader_busy);
    free(st->path);
    free(st->hmac_key);
    pthread_mutex_destroy(&st->pool_lock);
    pthread_cond_destroy(&st->pool_cv);
    pthread_mutex_destroy(&st->q_lock);
    pthread_cond_destroy(&st->q_cv);
    pthread_cond_destroy(&st->done_cv);
    pthread_cond_destroy(&st->ckpt_cv);
    free(st);
}

enum gw_code store_ping(struct store *st, struct gw_error *err)
{
    sqlite3 *db = reader_acquire(st);
    enum gw_code rc = stmt_exec(db, "SELECT 1 FROM versions LIMIT 1", err);

    reader_release(st, db);
    return rc;
}

int store_schema_version(struct store *st)
{
    return st->schema_version;
}

int64_t store_txn_now(const struct store_txn *txn)
{
    return txn->now_ms;
}
