/* store.c -- opening the store, the reader pool and the single writer.
 *
 * Group commit: callers queue jobs; the writer takes every queued job (up to
 * max_batch), runs each in its own savepoint inside one transaction (on
 * SQLite a batch of prepared jobs runs without, see enum batch_mode), commits
 * once, and only then answers them: store_write() callers are woken,
 * store_submit() callers are called back (on_done), in queue order. With
 * synchronous=FULL in WAL mode the commit is on disk when COMMIT returns, so
 * one fsync serves the batch. Submitted jobs cost their callers no thread
 * while they wait: an HTTP request is suspended, not blocked.
 *
 * Invariant: a job is answered only after the COMMIT that holds it returned
 * SQLITE_OK, or with a failure code if that COMMIT failed (or, never run,
 * when it stayed queued past commit_timeout_ms).
 */
#include "store/store_int.h"
#include "store/pg_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_PROBE_EVERY_MS 1000 /* while writes fail, store_ping() tries one this often */

static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

static enum gw_code open_db(const char *path, bool writer, struct db **out, struct gw_error *err)
{
    return db_open_sqlite(path, writer, out, err);
}

struct db *reader_acquire(struct store *st)
{
    struct db *db = NULL;
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

void reader_release(struct store *st, struct db *db)
{
    size_t i;

    pthread_mutex_lock(&st->pool_lock);
    for (i = 0; i < st->n_readers; i++)
        if (st->readers[i] == db)
            st->reader_busy[i] = false;
    pthread_cond_signal(&st->pool_cv);
    pthread_mutex_unlock(&st->pool_lock);
}

/* The writer's transaction control, prepared once (by their addresses). On
 * PostgreSQL a plain BEGIN, then the head row's lock (pg_store.c). */
static const char sql_begin[] = "BEGIN IMMEDIATE", sql_begin_pg[] = "BEGIN",
                  sql_commit[] = "COMMIT", sql_rollback[] = "ROLLBACK", sql_job[] = "SAVEPOINT job",
                  sql_job_release[] = "RELEASE job", sql_job_undo[] = "ROLLBACK TO job",
                  sql_apply[] = "SAVEPOINT apply", sql_apply_release[] = "RELEASE apply",
                  sql_apply_undo[] = "ROLLBACK TO apply";

/* Savepoints made and released fail only with the connection: on PostgreSQL they
 * travel with the job's next statements (db_step_deferred()), whose outcome says. */
static bool opens_or_keeps(const char *sql)
{
    return sql == sql_job || sql == sql_apply || sql == sql_job_release || sql == sql_apply_release;
}

/* Runs one of the statements above on the writer's connection. */
static enum gw_code control(struct store_txn *txn, const char *sql, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    if (sql == sql_begin && txn->st->pg)
        sql = sql_begin_pg;
    rc = stmt_txn(txn, sql, &s, err);
    if (rc)
        return rc;
    if ((opens_or_keeps(sql) ? db_step_deferred(s) : db_step(s)) != DB_DONE)
        rc = store_fail_db(txn->db, err, sql);
    stmt_release(s);
    return rc;
}

/* Runs apply in a savepoint of its own; returns its outcome. */
static enum gw_code run_apply(struct store_txn *txn, struct job *j)
{
    enum gw_code rc;

    if (control(txn, sql_apply, &j->err))
        return j->err.code;
    rc = j->apply(txn, j->ctx, &j->err);
    if (rc == GW_OK)
        rc = control(txn, sql_apply_release, &j->err);
    if (rc) {
        control(txn, sql_apply_undo, NULL);
        control(txn, sql_apply_release, NULL);
        if (!j->err.msg[0])
            gw_fail(&j->err, rc, "the request could not be stored");
    }
    return rc;
}

/* How a batch runs. SAFE: every job in a savepoint of its own, so a job that
 * fails is undone alone. FAST (SQLite, a batch of prepared jobs only): a
 * replay runs without a savepoint, since it asks every question before it
 * writes; SQLite then copies no page to a sub-journal for it. A replay write
 * that fails in a FAST run leaves part of its job in the transaction: the
 * run stops, is rolled back whole and the batch runs again SAFE. */
enum batch_mode { BATCH_SAFE, BATCH_FAST };

/* A job is redone on the writer: its context put back, apply and audit run
 * in its savepoint (open). It stays so in a later run of the batch. */
static void start_over(struct store_txn *txn, struct job *j, const struct audit_head *head)
{
    txn->audit = *head;
    gw_error_clear(&j->err);
    j->reset(j->ctx);
    j->redo = true;
    gw_metric_add("gateway_store_prepared_total", "outcome=\"redone\"", 1);
}

/* A prepared job in a savepoint (open): replays its recording (true, done;
 * the savepoint released), or undoes what the replay wrote and starts over
 * (false). */
static bool run_prepared(struct store_txn *txn, struct job *j, const struct audit_head *head)
{
    struct gw_error why;

    gw_error_clear(&why);
    if (record_replay(txn, j, &why) == REPLAY_DONE) {
        control(txn, sql_job_release, NULL);
        gw_metric_add("gateway_store_prepared_total", "outcome=\"replayed\"", 1);
        return true;
    }
    control(txn, sql_job_undo, NULL);
    start_over(txn, j, head);
    return false;
}

/* Runs one job inside the open transaction. The job savepoint lets a failing
 * audit step undo the apply step too: data never lands without its event. */
static void run_job(struct store_txn *txn, struct job *j, const struct audit_head *head)
{
    enum gw_code rc = GW_OK;
    struct gw_error audit_err;

    gw_error_clear(&audit_err);
    if (control(txn, sql_job, &j->err)) {
        j->rc = j->err.code;
        return;
    }
    if (j->redo)
        start_over(txn, j, head);
    else if (j->rec && run_prepared(txn, j, head))
        return;
    if (j->apply)
        rc = run_apply(txn, j);
    if (rc)
        txn->audit = *head;
    if (j->audit && j->audit(txn, j->ctx, rc, &j->err, &audit_err) != GW_OK) {
        control(txn, sql_job_undo, NULL);
        txn->audit = *head;
        gw_log(GW_LOG_ERROR, "audit-append-failed", "%s", audit_err.msg);
        if (!rc)
            rc = gw_fail(&j->err, GW_E_STORE, "the audit event could not be stored: %s",
                         audit_err.msg);
    }
    control(txn, sql_job_release, NULL);
    j->rc = rc;
}

/* Runs j in the batch's transaction; false when a FAST run must stop (a
 * replay write failed: the transaction holds part of j). */
static bool run_in_batch(struct store_txn *txn, struct job *j, enum batch_mode mode)
{
    struct audit_head head = txn->audit;
    struct gw_error why;

    gw_error_clear(&j->err);
    if (mode == BATCH_SAFE || !j->rec || j->redo) {
        run_job(txn, j, &head);
        return true;
    }
    gw_error_clear(&why);
    switch (record_replay(txn, j, &why)) {
    case REPLAY_DONE:
        gw_metric_add("gateway_store_prepared_total", "outcome=\"replayed\"", 1);
        return true;
    case REPLAY_CHANGED: /* nothing written: redone in a savepoint of its own */
        j->redo = true;
        run_job(txn, j, &head);
        return true;
    default:
        gw_log(GW_LOG_WARN, "store-batch-again",
               "a prepared write failed (%s): the batch runs again, a savepoint per job", why.msg);
        return false;
    }
}

/* FAST when every job of the batch is prepared, on SQLite: only those can run
 * again (a redone one is reset first; a store_submit() or store_write() job
 * has no reset). */
static enum batch_mode batch_mode_of(const struct store *st, const struct job *batch)
{
    const struct job *j;

    if (st->pg) /* errors come back late there (pipelined), not at the failing write */
        return BATCH_SAFE;
    for (j = batch; j; j = j->next)
        if (!j->rec)
            return BATCH_SAFE;
    return BATCH_FAST;
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

/* Calls back submitted jobs (a list linked through next) in order and frees them. */
static void call_back(struct job *list)
{
    struct job *j, *next;

    for (j = list; j; j = next) {
        next = j->next;
        record_free(j->rec); /* kept until now: a batch may run twice */
        j->on_done(j->done_ctx, j->rc, &j->err);
        free(j);
    }
}

static void finish_batch(struct store *st, struct job *batch, enum gw_code commit_rc,
                         const struct gw_error *commit_err)
{
    struct job *j, *next, *submitted = NULL, **tail = &submitted;

    pthread_mutex_lock(&st->q_lock);
    for (j = batch; j; j = next) {
        next = j->next;
        if (commit_rc) {
            j->rc = commit_rc;
            j->err = *commit_err;
        }
        if (j->on_done) { /* moved to the call-back list, in order */
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        } else {
            j->state = JOB_DONE; /* its caller may return (and drop j) from here on */
        }
    }
    pthread_cond_broadcast(&st->done_cv);
    pthread_mutex_unlock(&st->q_lock);
    call_back(submitted);
}

/* The newest commit time of the versions or the audit table, read in the
 * writer's transaction (two seeks of the rightmost rows). */
static int64_t stored_time(struct store_txn *txn, const char *sql)
{
    struct db_stmt *s;
    int64_t t = 0;

    if (stmt_txn(txn, sql, &s, NULL) != GW_OK)
        return 0;
    if (db_step(s) == DB_ROW)
        t = db_column_int64(s, 0);
    stmt_release(s);
    return t;
}

/* The batch's commit time: never before an earlier commit's, this process's
 * or, once the write lock is held, another's (a command-line import into a
 * store the gateway serves), so times grow with seq: searches take a period
 * of time as a seq range (search.c). */
static int64_t batch_time(struct store_txn *txn)
{
    int64_t now = gw_now_ms(), last = txn->st->last_commit_ms, t;

    t = stored_time(txn, SQL_LAST_TIME);
    last = t > last ? t : last;
    t = stored_time(txn, SQL_AUDIT_LAST_TIME);
    last = t > last ? t : last;
    return now > last ? now : last + 1;
}

/* One run of the batch in one transaction; returns the COMMIT's outcome.
 * *stopped: a FAST run stopped and was rolled back (nothing of it stays). */
static enum gw_code run_batch(struct store *st, struct job *batch, enum batch_mode mode,
                              bool *stopped, struct gw_error *err)
{
    struct store_txn txn = {.st = st, .db = st->wdb};
    struct job *j;
    enum gw_code rc;

    if (st->pg && (rc = pg_batch_ready(st, err)) != GW_OK)
        return rc;
    rc = control(&txn, sql_begin, err);
    if (rc)
        return rc;
    if (st->pg)
        rc = pg_batch_begin(&txn, err);
    else
        txn.now_ms = batch_time(&txn);
    if (!rc)
        rc = audit_head_load(&txn, &txn.audit, err);
    if (rc) {
        control(&txn, sql_rollback, NULL);
        return rc;
    }
    for (j = batch; j; j = j->next) {
        if (!run_in_batch(&txn, j, mode)) {
            control(&txn, sql_rollback, NULL);
            *stopped = true;
            return GW_OK;
        }
    }
    if (st->pg) {
        rc = pg_batch_commit(&txn, err);
    } else {
        rc = control(&txn, sql_commit, err);
        if (rc)
            control(&txn, sql_rollback, NULL);
    }
    if (rc)
        return rc;
    st->last_commit_ms = txn.now_ms;
    if (txn.notes_changed)
        notes_committed(st);
    return GW_OK;
}

/* Runs the batch, FAST when it may, and SAFE again when a FAST run stopped. */
static enum gw_code commit_batch(struct store *st, struct job *batch, struct gw_error *err)
{
    bool stopped = false;
    enum gw_code rc = run_batch(st, batch, batch_mode_of(st, batch), &stopped, err);

    if (stopped) {
        gw_metric_add("gateway_store_batches_run_again_total", "", 1);
        rc = run_batch(st, batch, BATCH_SAFE, &stopped, err);
    }
    return rc;
}

/* Records what the batch says about the store's health: a failed commit, or a
 * job that met an I/O error, marks the store faulty; any other outcome of a
 * committed batch clears the mark. Runs before the batch's waiters are woken
 * (their jobs live on their stacks). */
static void note_health(struct store *st, const struct job *batch, enum gw_code commit_rc,
                        const struct gw_error *commit_err)
{
    struct store_fault *f = &st->fault;
    const struct gw_error *why = commit_rc ? commit_err : NULL;
    const struct job *j;
    int64_t now = gw_now_ms();

    for (j = batch; j && !why; j = j->next)
        if (j->rc == GW_E_IO)
            why = &j->err;
    pthread_mutex_lock(&f->lock);
    if (why) {
        if (f->code == GW_OK) {
            f->since_ms = now;
            gw_log(GW_LOG_ERROR, "store-writes-failing", "%s", why->msg);
        }
        f->code = why->code ? why->code : GW_E_STORE;
        gw_format(f->msg, sizeof f->msg, "%s%s", commit_rc ? "the commit failed: " : "", why->msg);
        f->last_ms = now;
    } else if (f->code != GW_OK) {
        gw_log(GW_LOG_INFO, "store-writes-recovered",
               "a commit succeeded after failures since %lld", (long long)f->since_ms);
        f->code = GW_OK;
        f->msg[0] = '\0';
    }
    pthread_mutex_unlock(&f->lock);
}

/* The checkpointer copies frames back without waiting (PASSIVE), but the log
 * itself starts over only when a write begins with every frame copied, which
 * a writer busy without pause never gives it: the WAL would grow without end
 * (1.3 GB after 8 s of referrals), and every page read with it (SQLite looks
 * pages up through the WAL's index). So once a commit leaves the WAL longer
 * than STORE_WAL_RESTART_FRAMES (wal_grown() notes it), the writer, between
 * batches, once the batch's jobs are answered, copies the rest back and
 * starts the log over (RESTART): a pause of tens of ms every 32 MB written,
 * outside any request's commit. The file is then written again from its
 * start, over pages the kernel already holds: cutting it to nothing
 * (TRUNCATE) made every later frame allocate its page and disk block again,
 * and the writer spent more time in the kernel than in SQLite. The first
 * commit after a restart cuts a file longer than STORE_WAL_KEPT_BYTES
 * (journal_size_limit), which gives back what a held reader made it grow:
 * well above the 32 MB and a batch a restart finds, since cutting tens of MB
 * of cached file costs the writer 25 to 130 ms. Readers
 * still on an older snapshot make it wait at most STORE_WAL_RESTART_WAIT_MS,
 * never the busy timeout; when they still hold it (a long export's cursor, a
 * backup: the WAL cannot start over under them), the writer tries again only
 * STORE_WAL_RETRY_MS later, so such a reader costs the writes one short wait
 * now and then, not one per batch. */
static void restart_wal(struct store *st)
{
    int rc;
    sqlite3 *db = db_sqlite(st->wdb);

    if (!db || !st->wal_restart || gw_mono_ms() < st->wal_retry_mono_ms)
        return; /* the flag stays: a later batch looks again */
    if (pthread_mutex_trylock(&st->ckpt_lock) != 0)
        return; /* the checkpointer is copying: after the next batch, with less left to copy */
    st->wal_restart = false;
    sqlite3_busy_timeout(db, STORE_WAL_RESTART_WAIT_MS);
    rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    pthread_mutex_unlock(&st->ckpt_lock);
    st->wal_retry_mono_ms = rc == SQLITE_BUSY ? gw_mono_ms() + STORE_WAL_RETRY_MS : 0;
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        gw_log(GW_LOG_WARN, "checkpoint-failed", "%s", sqlite3_errmsg(db));
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

        restart_wal(st);
        batch = take_batch(st, &n);
        if (!batch)
            break;
        started = gw_mono_ms();
        gw_error_clear(&err);
        rc = commit_batch(st, batch, &err);
        if (rc)
            gw_log(GW_LOG_ERROR, "store-commit-failed", "%s", err.msg);
        note_health(st, batch, rc, &err);
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

/* Appends j to the queue and wakes the writer. Caller holds q_lock. */
static void enqueue(struct store *st, struct job *j)
{
    j->state = JOB_QUEUED;
    j->queued_mono_ms = gw_mono_ms();
    j->next = NULL;
    if (st->q_tail)
        st->q_tail->next = j;
    else
        st->q_head = j;
    st->q_tail = j;
    pthread_cond_signal(&st->q_cv);
}

void store_submit(struct store *st, store_apply_fn apply, store_audit_fn audit, void *ctx,
                  store_done_fn on_done, void *done_ctx)
{
    struct job *j = calloc(1, sizeof *j);
    struct gw_error err;

    if (!j) {
        gw_fail(&err, GW_E_NOMEM, "no memory to queue the work");
        on_done(done_ctx, err.code, &err);
        return;
    }
    *j = (struct job){
        .apply = apply, .audit = audit, .ctx = ctx, .on_done = on_done, .done_ctx = done_ctx};
    pthread_mutex_lock(&st->q_lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->q_lock);
        free(j);
        gw_fail(&err, GW_E_STORE, "the store is shutting down");
        on_done(done_ctx, err.code, &err);
        return;
    }
    enqueue(st, j);
    pthread_mutex_unlock(&st->q_lock);
}

void store_submit_prepared(struct store *st, store_apply_fn apply, store_audit_fn audit,
                           store_reset_fn reset, void *ctx, store_done_fn on_done, void *done_ctx)
{
    struct store_recording *rec = record_begin();
    struct store_txn txn = {.st = st, .rec = rec};
    struct gw_error why, audit_err;
    struct job *j;
    enum gw_code rc = GW_OK;

    if (!rec) {
        store_submit(st, apply, audit, ctx, on_done, done_ctx);
        return;
    }
    txn.now_ms = record_now(rec);
    gw_error_clear(&why);
    gw_error_clear(&audit_err);
    record_set_phase(rec, true);
    if (apply)
        rc = apply(&txn, ctx, &why);
    record_set_phase(rec, false);
    if (rc) {
        if (!why.msg[0])
            gw_fail(&why, rc, "the request could not be stored");
        record_apply_failed(rec, rc, &why);
    }
    if (audit && audit(&txn, ctx, rc, &why, &audit_err) != GW_OK)
        record_apply_failed(rec, GW_E_STORE, &audit_err); /* makes it unusable */
    j = record_usable(rec) ? calloc(1, sizeof *j) : NULL;
    if (!j) { /* what was recorded cannot stand: the writer does it all */
        record_free(rec);
        reset(ctx);
        gw_metric_add("gateway_store_prepared_total", "outcome=\"not-prepared\"", 1);
        store_submit(st, apply, audit, ctx, on_done, done_ctx);
        return;
    }
    *j = (struct job){.apply = apply,
                      .audit = audit,
                      .ctx = ctx,
                      .rec = rec,
                      .reset = reset,
                      .on_done = on_done,
                      .done_ctx = done_ctx};
    pthread_mutex_lock(&st->q_lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->q_lock);
        record_free(rec);
        free(j);
        gw_fail(&why, GW_E_STORE, "the store is shutting down");
        on_done(done_ctx, why.code, &why);
        return;
    }
    enqueue(st, j);
    pthread_mutex_unlock(&st->q_lock);
}

/* Fails the submitted jobs that stayed queued past commit_timeout_ms (the
 * writer is stuck, e.g. on a lock another process holds): their callers
 * must not wait for ever. Runs on the checkpointer thread. */
static void expire_queued(struct store *st)
{
    struct job **pp, *j, *expired = NULL, **tail = &expired;
    int64_t oldest = gw_mono_ms() - st->commit_timeout_ms;

    pthread_mutex_lock(&st->q_lock);
    st->q_tail = NULL;
    for (pp = &st->q_head; (j = *pp) != NULL;) {
        if (j->on_done && j->queued_mono_ms <= oldest) {
            *pp = j->next;
            j->next = NULL;
            j->rc = gw_fail(&j->err, GW_E_STORE, "the store stayed busy for %ld ms",
                            st->commit_timeout_ms);
            *tail = j;
            tail = &j->next;
        } else {
            st->q_tail = j;
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&st->q_lock);
    call_back(expired);
}

enum gw_code store_write(struct store *st, store_apply_fn apply, store_audit_fn audit, void *ctx,
                         struct gw_error *err)
{
    struct job j = {.apply = apply, .audit = audit, .ctx = ctx};
    struct timespec deadline;

    deadline_after(&deadline, st->commit_timeout_ms);
    pthread_mutex_lock(&st->q_lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->q_lock);
        return gw_fail(err, GW_E_STORE, "the store is shutting down");
    }
    enqueue(st, &j);
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

/* Notes, right after each commit on the writer's connection, whether the
 * WAL has grown past STORE_WAL_RESTART_FRAMES (see restart_wal()). */
static int wal_grown(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct store *st = arg;

    (void)db;
    (void)name;
    if (frames > STORE_WAL_RESTART_FRAMES)
        st->wal_restart = true;
    if (frames / STORE_WAL_NUDGE_FRAMES != st->wal_nudged) {
        st->wal_nudged = frames / STORE_WAL_NUDGE_FRAMES;
        if (st->wal_nudged > 0)
            pthread_cond_signal(&st->ckpt_cv); /* copy it back while it is fresh */
    }
    return SQLITE_OK;
}

/* The writer does not checkpoint (wal_autocheckpoint=0): this thread runs a
 * PASSIVE checkpoint every STORE_CHECKPOINT_EVERY_MS on its own connection, and
 * as soon as the WAL has grown by STORE_WAL_NUDGE_FRAMES (wal_grown() wakes it),
 * so copying the WAL back into the database never delays a commit, and the
 * writer's restart of the log finds little left to copy. The two take turns
 * through ckpt_lock: while this thread copies, the writer leaves the restart to
 * a later batch (SQLite would refuse it at once, without waiting, and
 * restart_wal() would take that for a reader and wait STORE_WAL_RETRY_MS). It also
 * fails submitted work that stayed queued too long (expire_queued). */
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
        expire_queued(st);
        pthread_mutex_lock(&st->ckpt_lock);
        rc = st->cdb ? sqlite3_wal_checkpoint_v2(db_sqlite(st->cdb), NULL,
                                                 SQLITE_CHECKPOINT_PASSIVE, NULL, NULL)
                     : SQLITE_OK;
        pthread_mutex_unlock(&st->ckpt_lock);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) /* busy: the writer empties the log */
            gw_log(GW_LOG_WARN, "checkpoint-failed", "%s", db_errmsg(st->cdb));
        pthread_mutex_lock(&st->q_lock);
    }
    pthread_mutex_unlock(&st->q_lock);
    return NULL;
}

static enum gw_code start_checkpointer(struct store *st, struct gw_error *err)
{
    enum gw_code rc = GW_OK;

    if (!st->pg) { /* on PostgreSQL the thread only expires queued work */
        char pragmas[100];

        snprintf(pragmas, sizeof pragmas,
                 "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=%lld;",
                 STORE_WAL_KEPT_BYTES);
        rc = open_db(st->path, false, &st->cdb, err);
        if (!rc)
            rc = stmt_exec(st->wdb, pragmas, err);
        if (rc)
            return rc;
        /* after the pragma, which clears the hook */
        sqlite3_wal_hook(db_sqlite(st->wdb), wal_grown, st);
    }
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

/* The checkpointer and the writer, once the store is open. */
static enum gw_code start_threads(struct store *st, struct gw_error *err)
{
    enum gw_code rc = start_checkpointer(st, err);

    if (rc)
        return rc;
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0)
        return gw_fail(err, GW_E_INTERNAL, "cannot start the store writer");
    st->writer_started = true;
    return GW_OK;
}

static enum gw_code store_init(struct store *st, const struct config *cfg, struct gw_error *err)
{
    enum gw_code rc;

    if (strncmp(cfg->store, "postgresql://", 13) == 0 ||
        strncmp(cfg->store, "postgres://", 11) == 0) {
        rc = pg_store_open(st, cfg, err);
        return rc ? rc : start_threads(st, err);
    }
    if (strncmp(cfg->store, "sqlite:", 7) != 0)
        return gw_fail(err, GW_E_INPUT,
                       "store \"%s\": expected sqlite:PATH or postgresql://USER@HOST:PORT/DB",
                       cfg->store);
    st->path = gw_strdup(cfg->store + 7);
    st->hmac_key = gw_strdup(cfg->audit_hmac_key);
    gw_format(st->target, sizeof st->target, "%s", cfg->store);
    if (!st->path || !st->hmac_key)
        return gw_fail(err, GW_E_NOMEM, "no memory for the store");
    if (!*st->path)
        return gw_fail(err, GW_E_INPUT, "store: sqlite: needs a path");
    st->commit_timeout_ms = cfg->commit_timeout_ms;
    st->max_batch = cfg->max_batch;
    rc = open_db(st->path, true, &st->wdb, err);
    if (!rc) /* the writer's cache holds a batch's pages (none spill to the WAL before its
              * commit) and the hot index pages of a large store (migrations too) */
        rc = stmt_exec(st->wdb, "PRAGMA cache_size=-" STORE_WRITER_CACHE_KB, err);
    if (!rc)
        rc = schema_migrate(st->wdb, &st->schema_version, err);
    if (!rc)
        st->last_commit_ms = store_last_time(st->wdb); /* times grow with seq, restarts too */
    if (!rc)
        rc = open_readers(st, cfg->read_connections, err);
    return rc ? rc : start_threads(st, err);
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
    pthread_mutex_init(&st->ckpt_lock, NULL);
    pthread_mutex_init(&st->fault.lock, NULL);
    pthread_cond_init(&st->note_cv, NULL);
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
        if (st->cdb)
            sqlite3_wal_checkpoint_v2(db_sqlite(st->cdb), NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                      NULL);
    }
    db_close(st->cdb);
    for (i = 0; i < st->n_readers; i++)
        db_close(st->readers[i]);
    stmt_cache_clear(&st->wcache);
    text_cache_clear(&st->wtext);
    db_close(st->wdb);
    pg_store_close(st);
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
    pthread_mutex_destroy(&st->ckpt_lock);
    pthread_mutex_destroy(&st->fault.lock);
    pthread_cond_destroy(&st->note_cv);
    free(st);
}

/* A write that reaches the disk and changes nothing: the schema version rewritten
 * as it is (page 1 goes to the WAL at COMMIT). */
static enum gw_code probe_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    char sql[64];

    (void)ctx;
    if (txn->st->pg)
        return stmt_exec(txn->db, "UPDATE store_head SET last_commit_ms = last_commit_ms", err);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", txn->st->schema_version);
    return stmt_exec(txn->db, sql, err);
}

/* The probe's outcome is what note_health() made of its batch. */
static void probe_done(void *ctx, enum gw_code rc, const struct gw_error *err)
{
    (void)ctx;
    (void)rc;
    (void)err;
}

/* True (and *out filled) while the writer's last outcome was a failure. When one
 * is due, queues a write (without waiting for it: /readyz runs on a server thread
 * that must not block), so a store whose disk has room again (and that no request
 * writes to, as a balancer keeps traffic away while /readyz fails) is seen healthy
 * again by the next call. */
static bool writes_failing(struct store *st, struct store_fault *out)
{
    struct store_fault *f = &st->fault;
    bool probe;

    pthread_mutex_lock(&f->lock);
    probe = f->code != GW_OK && gw_mono_ms() - f->probe_mono_ms >= STORE_PROBE_EVERY_MS;
    if (probe)
        f->probe_mono_ms = gw_mono_ms();
    pthread_mutex_unlock(&f->lock);
    if (probe)
        store_submit(st, probe_apply, NULL, NULL, probe_done, NULL);
    pthread_mutex_lock(&f->lock);
    out->code = f->code;
    memcpy(out->msg, f->msg, sizeof out->msg);
    out->since_ms = f->since_ms;
    out->last_ms = f->last_ms;
    pthread_mutex_unlock(&f->lock);
    return out->code != GW_OK;
}

enum gw_code store_ping(struct store *st, struct gw_error *err)
{
    struct store_fault f;
    struct db *db;
    enum gw_code rc;

    if (writes_failing(st, &f)) {
        char since[GW_INSTANT_LEN];

        gw_time_instant(f.since_ms, since);
        return gw_fail(err, f.code, "writes fail since %s: %s", since, f.msg);
    }
    db = reader_acquire(st);
    rc = stmt_exec(db, "SELECT 1 FROM versions LIMIT 1", err);

    reader_release(st, db);
    return rc;
}

const char *store_target(const struct store *st)
{
    return st->target;
}

int store_schema_version(struct store *st)
{
    return st->schema_version;
}

int64_t store_txn_now(const struct store_txn *txn)
{
    return txn->now_ms;
}

enum gw_code store_txn_on_writer(struct store_txn *txn, store_step_fn step, const void *arg,
                                 size_t arg_len, struct gw_error *err)
{
    if (txn->rec)
        return record_writer_step(txn, step, arg, arg_len, err);
    return step(txn, arg, err);
}
