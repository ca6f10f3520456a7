/* test_writer.c -- the store's writer without a waiting caller: store_submit()
 * calls back once its work is committed (or expired in the queue), and
 * store_submit_prepared() replays work recorded on the caller's thread, or
 * redoes it on the writer when what it read has changed since: resources,
 * audit rows, site grants and visibility, activity tallies, and steps that
 * must run on the writer. A batch of prepared work replays without
 * savepoints; a write failing there makes the batch run again with a
 * savepoint per job (a failure injected by a trigger on the store's file).
 * Each case uses a fresh database in a temporary folder. */
#include "check.h"
#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/gw-writer-XXXXXX";
static int n_db;
static char path[128]; /* the last store's file */

static struct store *open_fresh(long commit_timeout_ms)
{
    static char url[200];
    struct config cfg;
    struct store *st = NULL;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    snprintf(path, sizeof path, "%s/t%d.db", dir, n_db++);
    snprintf(url, sizeof url, "sqlite:%s", path);
    cfg.store = url;
    cfg.commit_timeout_ms = commit_timeout_ms;
    cfg.max_batch = 64;
    cfg.read_connections = 2;
    cfg.audit_hmac_key = "";
    if (store_open(&cfg, &st, &err) != GW_OK)
        fprintf(stderr, "store_open: %s\n", err.msg);
    return st;
}

/* ------------------------------------------------------------ completion */

struct done {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int calls;
    enum gw_code rc;
};

static void done_init(struct done *d)
{
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->calls = 0;
    d->rc = GW_E_INTERNAL;
}

static void on_done(void *ctx, enum gw_code rc, const struct gw_error *err)
{
    struct done *d = ctx;

    (void)err;
    pthread_mutex_lock(&d->lock);
    d->calls++;
    d->rc = rc;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->lock);
}

static void wait_done(struct done *d)
{
    pthread_mutex_lock(&d->lock);
    while (d->calls == 0)
        pthread_cond_wait(&d->cv, &d->lock);
    pthread_mutex_unlock(&d->lock);
}

/* ------------------------------------------------------------ work */

/* Creates Patient/<id>, noting in it whether Patient/<depends_on> existed. */
struct work {
    const char *id;
    const char *depends_on; /* may be NULL */
    int resets;
    bool saw_dependency;
    struct store_written written;
    /* blocking: the writer waits in apply until released */
    bool block;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool entered, released;
};

static void block_here(struct work *w)
{
    pthread_mutex_lock(&w->lock);
    w->entered = true;
    pthread_cond_broadcast(&w->cv);
    while (!w->released)
        pthread_cond_wait(&w->cv, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static enum gw_code work_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct work *w = ctx;
    struct store_resource row;
    json_t *res;
    struct store_put put = {.type = "Patient", .id = w->id, .owner = "orgA", .create = true};
    enum gw_code rc;

    if (w->depends_on && store_txn_read(txn, "Patient", w->depends_on, 0, &row, NULL) == GW_OK) {
        w->saw_dependency = true;
        store_resource_cleanup(&row);
    }
    res = json_pack("{s:s, s:s, s:b}", "resourceType", "Patient", "id", w->id, "active",
                    w->saw_dependency);
    put.resource = res;
    rc = store_txn_put(txn, &put, &w->written, err);
    json_decref(res);
    if (w->block)
        block_here(w);
    return rc;
}

/* An audit row whose canonical text carries its recorded time, as AuditEvents do. */
static enum gw_code work_audit(struct store_txn *txn, void *ctx, enum gw_code outcome,
                               const struct gw_error *why, struct gw_error *err)
{
    struct work *w = ctx;
    char instant[GW_INSTANT_LEN], text[200], id[64];
    int64_t now = store_txn_now(txn);
    struct store_index_entry date = {"date", NULL, NULL, now, now + 1};

    (void)outcome;
    (void)why;
    gw_time_instant(now, instant);
    snprintf(id, sizeof id, "ae-%s", w->id);
    snprintf(text, sizeof text, "{\"id\":\"%s\",\"recorded\":\"%s\"}", id, instant);
    return store_txn_audit_append(txn, id, now, text, &date, 1, err);
}

static void work_reset(void *ctx)
{
    struct work *w = ctx;

    w->resets++;
    w->saw_dependency = false;
}

static void work_init(struct work *w, const char *id, const char *depends_on)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->depends_on = depends_on;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void release(struct work *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->entered)
        pthread_cond_wait(&w->cv, &w->lock);
    w->released = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
}

/* The stored Patient/id's meta.lastUpdated, and whether it says active. */
static bool stored(struct store *st, const char *id, char *last_updated, int64_t *row_ms,
                   bool *active)
{
    struct store_resource row;
    json_t *res;

    if (store_read(st, "Patient", id, 0, &row, NULL) != GW_OK)
        return false;
    res = json_loads(row.json, 0, NULL);
    snprintf(last_updated, GW_INSTANT_LEN, "%s",
             json_string_value(json_object_get(json_object_get(res, "meta"), "lastUpdated")));
    *active = json_is_true(json_object_get(res, "active"));
    *row_ms = row.last_updated_ms;
    json_decref(res);
    store_resource_cleanup(&row);
    return true;
}

/* ------------------------------------------------------------ cases */

static void submitted_work_is_called_back_once_committed(void)
{
    struct store *st = open_fresh(10000);
    struct work w;
    struct done d;
    char when[GW_INSTANT_LEN];
    int64_t ms;
    bool active;

    work_init(&w, "p1", NULL);
    done_init(&d);
    store_submit(st, work_apply, work_audit, &w, on_done, &d);
    wait_done(&d);
    CHECK_INT(d.rc, GW_OK);
    CHECK_INT(d.calls, 1);
    CHECK(stored(st, "p1", when, &ms, &active)); /* committed before the call back */
    CHECK_INT(w.written.version, 1);
    store_destroy(st);
    CHECK_INT(d.calls, 1);
}

static void prepared_work_is_replayed_with_the_commit_time(void)
{
    struct store *st = open_fresh(10000);
    struct work w;
    struct done d;
    char when[GW_INSTANT_LEN], expected[GW_INSTANT_LEN];
    struct store_page page;
    struct store_query q = {.type = "AuditEvent", .count = 10};
    int64_t ms;
    bool active = true;

    work_init(&w, "p1", "p0");
    done_init(&d);
    store_submit_prepared(st, work_apply, work_audit, work_reset, &w, on_done, &d);
    wait_done(&d);
    CHECK_INT(d.rc, GW_OK);
    CHECK_INT(w.resets, 0); /* nothing it read changed: replayed as recorded */
    CHECK(stored(st, "p1", when, &ms, &active));
    CHECK(!active);
    gw_time_instant(ms, expected);
    CHECK_STR(when, expected); /* meta.lastUpdated is the commit's time, as the row's */
    CHECK_INT(w.written.last_updated_ms, ms);
    CHECK(w.written.seq > 0);
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    if (page.n_items == 1) {
        gw_time_instant(page.items[0].last_updated_ms, expected);
        CHECK(strstr(page.items[0].json, expected) != NULL); /* recorded = commit time */
    }
    store_page_cleanup(&page);
    store_destroy(st);
}

static void prepared_work_is_redone_when_what_it_read_changed(void)
{
    struct store *st = open_fresh(10000);
    struct work first, second;
    struct done d1, d2;
    char when[GW_INSTANT_LEN];
    int64_t ms;
    bool active = false;

    work_init(&first, "p0", NULL);
    work_init(&second, "p1", "p0");
    first.block = true;
    done_init(&d1);
    done_init(&d2);
    store_submit(st, work_apply, NULL, &first, on_done, &d1);
    pthread_mutex_lock(&first.lock);
    while (!first.entered) /* the writer holds p0, not yet committed */
        pthread_cond_wait(&first.cv, &first.lock);
    pthread_mutex_unlock(&first.lock);
    store_submit_prepared(st, work_apply, work_audit, work_reset, &second, on_done, &d2);
    CHECK(!second.saw_dependency); /* recorded: p0 absent */
    release(&first);
    wait_done(&d1);
    wait_done(&d2);
    CHECK_INT(d2.rc, GW_OK);
    CHECK_INT(second.resets, 1); /* p0 appeared before the replay: redone on the writer */
    CHECK(second.saw_dependency);
    CHECK(stored(st, "p1", when, &ms, &active));
    CHECK(active);
    store_destroy(st);
}

static void queued_work_expires_when_the_writer_is_stuck(void)
{
    struct store *st = open_fresh(100);
    struct work stuck, late;
    struct done d1, d2;
    char when[GW_INSTANT_LEN];
    int64_t ms;
    bool active;

    work_init(&stuck, "p0", NULL);
    work_init(&late, "p1", NULL);
    stuck.block = true;
    done_init(&d1);
    done_init(&d2);
    store_submit(st, work_apply, NULL, &stuck, on_done, &d1);
    pthread_mutex_lock(&stuck.lock);
    while (!stuck.entered)
        pthread_cond_wait(&stuck.cv, &stuck.lock);
    pthread_mutex_unlock(&stuck.lock);
    store_submit(st, work_apply, NULL, &late, on_done, &d2);
    wait_done(&d2); /* called back by the store, though the writer is still stuck */
    CHECK_INT(d2.rc, GW_E_STORE);
    CHECK_INT(d1.calls, 0);
    release(&stuck);
    wait_done(&d1);
    CHECK_INT(d1.rc, GW_OK);
    CHECK(!stored(st, "p1", when, &ms, &active)); /* the expired work never ran */
    CHECK_INT(d2.calls, 1);
    store_destroy(st);
}

/* ------------------------------------------------------------ grants, tallies, steps */

/* What a writer step saw, and on which thread. */
struct step_seen {
    pthread_t thread;
    long version; /* of Patient/<id> in the txn, 0: absent */
    int calls;
};

struct step_arg {
    struct step_seen *seen;
    char id[16];
};

static enum gw_code step_reads_its_write(struct store_txn *txn, const void *varg,
                                         struct gw_error *err)
{
    const struct step_arg *a = varg;
    struct store_resource row;

    (void)err;
    a->seen->thread = pthread_self();
    a->seen->calls++;
    a->seen->version = 0;
    if (store_txn_read(txn, "Patient", a->id, 0, &row, NULL) == GW_OK) {
        a->seen->version = row.version;
        store_resource_cleanup(&row);
    }
    return GW_OK;
}

/* Patient/<id> routed to site s1, a grant of Patient/other to s2, a site
 * question answered by the txn's own write, a writer step, a tallied event. */
struct routed {
    const char *id;
    bool visible_in_txn;
    struct step_seen seen;
    int calls_while_recording; /* the step's calls when apply had asked for it */
    int resets;
};

static enum gw_code routed_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct routed *w = ctx;
    const char *sites[] = {"s1"};
    struct step_arg arg = {&w->seen, ""};
    json_t *res = json_pack("{s:s, s:s}", "resourceType", "Patient", "id", w->id);
    struct store_put put = {
        .type = "Patient", .id = w->id, .owner = "orgA", .site = "s1", .create = true};
    enum gw_code rc;

    put.resource = res;
    rc = store_txn_put(txn, &put, NULL, err);
    json_decref(res);
    if (!rc)
        rc = store_txn_site_grant(txn, "Patient", "other", "s2", err);
    if (!rc)
        rc = store_txn_site_visible(txn, "Patient", w->id, sites, 1, &w->visible_in_txn, err);
    snprintf(arg.id, sizeof arg.id, "%s", w->id);
    if (!rc)
        rc = store_txn_on_writer(txn, step_reads_its_write, &arg, sizeof arg, err);
    w->calls_while_recording = w->seen.calls;
    return rc;
}

static enum gw_code routed_audit(struct store_txn *txn, void *ctx, enum gw_code outcome,
                                 const struct gw_error *why, struct gw_error *err)
{
    enum gw_code rc =
        work_audit(txn, &(struct work){.id = ((struct routed *)ctx)->id}, outcome, why, err);

    return rc ? rc : store_txn_audit_tally(txn, store_txn_now(txn), "gp-client", "", 0, 1, err);
}

static void routed_reset(void *ctx)
{
    struct routed *w = ctx;

    w->resets++;
    w->visible_in_txn = false;
}

static bool visible_to(struct store *st, const char *id, const char *site)
{
    const char *sites[] = {site};
    bool visible = false;

    return store_site_visible(st, "Patient", id, sites, 1, &visible, NULL) == GW_OK && visible;
}

static void prepared_grants_tallies_and_writer_steps_are_replayed(void)
{
    struct store *st = open_fresh(10000);
    struct routed w = {.id = "p1"};
    struct store_activity a;
    struct done d;
    long counted = 0;
    size_t i;

    done_init(&d);
    store_submit_prepared(st, routed_apply, routed_audit, routed_reset, &w, on_done, &d);
    CHECK(w.visible_in_txn);               /* recorded: its own put routed it to s1 */
    CHECK_INT(w.calls_while_recording, 0); /* the step waits for the writer (read here,
                                                the writer may already have run it) */
    wait_done(&d);
    CHECK_INT(d.rc, GW_OK);
    CHECK_INT(w.resets, 0); /* replayed as recorded */
    CHECK_INT(w.seen.calls, 1);
    CHECK(!pthread_equal(w.seen.thread, pthread_self())); /* run by the writer */
    CHECK_INT(w.seen.version, 1); /* ...after the replayed put, which it reads */
    CHECK(visible_to(st, "p1", "s1"));
    CHECK(!visible_to(st, "p1", "s2"));
    CHECK(visible_to(st, "other", "s2"));
    memset(&a, 0, sizeof a);
    CHECK_INT(store_audit_activity(st, gw_now_ms() - STORE_HOUR_MS, gw_now_ms() + 1, 10, &a, NULL),
              GW_OK);
    for (i = 0; i < a.n_hours; i++)
        counted += a.hours[i].n[0];
    CHECK_INT(counted, 1); /* the tally was replayed once */
    store_activity_cleanup(&a);
    store_destroy(st);
}

/* Grants Patient/<id> to s1 and holds the writer until released. */
static enum gw_code grant_and_block(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct work *w = ctx;
    enum gw_code rc = store_txn_site_grant(txn, "Patient", w->id, "s1", err);

    block_here(w);
    return rc;
}

/* Asks whether Patient/x is visible to s1, then writes Patient/<id>. */
static enum gw_code visible_x_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct routed *w = ctx;
    const char *sites[] = {"s1"};
    json_t *res = json_pack("{s:s, s:s}", "resourceType", "Patient", "id", w->id);
    struct store_put put = {.type = "Patient", .id = w->id, .owner = "orgA", .create = true};
    enum gw_code rc =
        store_txn_site_visible(txn, "Patient", "x", sites, 1, &w->visible_in_txn, err);

    put.resource = res;
    if (!rc)
        rc = store_txn_put(txn, &put, NULL, err);
    json_decref(res);
    return rc;
}

static void prepared_visibility_is_asked_again_by_the_writer(void)
{
    struct store *st = open_fresh(10000);
    struct work granting;
    struct routed w = {.id = "p2"};
    struct done d1, d2;
    const char *sites[] = {"s1"};
    bool seen_x = true;

    work_init(&granting, "x", NULL);
    done_init(&d1);
    done_init(&d2);
    store_submit(st, grant_and_block, NULL, &granting, on_done, &d1);
    pthread_mutex_lock(&granting.lock);
    while (!granting.entered)
        pthread_cond_wait(&granting.cv, &granting.lock);
    pthread_mutex_unlock(&granting.lock);
    CHECK_INT(store_site_visible(st, "Patient", "x", sites, 1, &seen_x, NULL), GW_OK);
    CHECK(!seen_x); /* not committed yet */
    store_submit_prepared(st, visible_x_apply, NULL, routed_reset, &w, on_done, &d2);
    CHECK(!w.visible_in_txn); /* recorded as not visible */
    release(&granting);
    wait_done(&d1);
    wait_done(&d2);
    CHECK_INT(d2.rc, GW_OK);
    CHECK_INT(w.resets, 1); /* the grant came first: redone on the writer */
    CHECK(w.visible_in_txn);
    store_destroy(st);
}

/* ------------------------------------------------------------ a replay write failing */

/* The counter name's value in the process's metrics (0 when absent). */
static double metric(const char *name)
{
    struct gw_buf b;
    char line[128];
    const char *at;
    double v = 0;

    gw_buf_init(&b, 1 << 20);
    gw_metrics_render(&b);
    snprintf(line, sizeof line, "\n%s ", name);
    at = b.data ? strstr(b.data, line) : NULL;
    if (at)
        v = strtod(at + strlen(line), NULL);
    gw_buf_cleanup(&b);
    return v;
}

/* Makes the store's inserts of the audit row ae-<id> fail, as a full disk or
 * a broken constraint would: a trigger, from a connection of its own. */
static bool fail_audit_of(const char *id)
{
    char sql[300];
    sqlite3 *db;
    bool ok;

    snprintf(sql, sizeof sql,
             "CREATE TRIGGER fail_audit BEFORE INSERT ON audit WHEN NEW.id = 'ae-%s'"
             " BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
             id);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return false;
    }
    sqlite3_busy_timeout(db, 5000);
    ok = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(db);
    return ok;
}

struct chain {
    char prev[65];
    int rows;
    bool intact;
    char ids[8][16];
};

/* Each audit row links to the one before and hashes to what it holds. */
static bool chain_row(const struct store_audit_row *row, void *ctx)
{
    struct chain *c = ctx;
    char hash[65];

    store_audit_hash("", c->prev, row->json, hash);
    if (strcmp(row->prev_hash, c->prev) != 0 || strcmp(row->hash, hash) != 0 ||
        row->seq != c->rows + 1) /* gapless */
        c->intact = false;
    snprintf(c->prev, sizeof c->prev, "%s", row->hash);
    if (c->rows < 8)
        snprintf(c->ids[c->rows], sizeof c->ids[0], "%s", row->id);
    c->rows++;
    return true;
}

#define N_BATCH 5

/* Five prepared jobs in one batch; the third one's audit row cannot be
 * written, after its Patient was. Without savepoints the failure leaves the
 * Patient in the transaction: the batch must run again, a savepoint per job,
 * so that the third fails alone, nothing of it stays, and the four others
 * are committed with their events, the chain intact. */
static void a_failing_replay_write_fails_its_job_alone(void)
{
    static const char *ids[N_BATCH] = {"p1", "p2", "bad", "p3", "p4"};
    struct store *st = open_fresh(10000);
    struct work blocker, w[N_BATCH];
    struct done d0, d[N_BATCH];
    struct chain c = {STORE_AUDIT_GENESIS, 0, true, {{0}}};
    double again = metric("gateway_store_batches_run_again_total");
    char when[GW_INSTANT_LEN];
    int64_t ms;
    bool active;
    int i, k = 0;

    CHECK(fail_audit_of("bad"));
    work_init(&blocker, "p0", NULL);
    blocker.block = true;
    done_init(&d0);
    store_submit(st, work_apply, NULL, &blocker, on_done, &d0);
    pthread_mutex_lock(&blocker.lock);
    while (!blocker.entered) /* the writer is busy: the five queue as one batch */
        pthread_cond_wait(&blocker.cv, &blocker.lock);
    pthread_mutex_unlock(&blocker.lock);
    for (i = 0; i < N_BATCH; i++) {
        work_init(&w[i], ids[i], NULL);
        done_init(&d[i]);
        store_submit_prepared(st, work_apply, work_audit, work_reset, &w[i], on_done, &d[i]);
    }
    release(&blocker);
    wait_done(&d0);
    for (i = 0; i < N_BATCH; i++)
        wait_done(&d[i]);
    CHECK_INT(d0.rc, GW_OK);
    CHECK(metric("gateway_store_batches_run_again_total") == again + 1); /* the fast run stopped */
    for (i = 0; i < N_BATCH; i++) {
        bool bad = strcmp(ids[i], "bad") == 0;

        CHECK_INT(d[i].calls, 1);
        CHECK_INT(d[i].rc, bad ? GW_E_STORE : GW_OK);
        CHECK_INT(w[i].resets, bad ? 1 : 0);                   /* the others replayed as recorded */
        CHECK(stored(st, ids[i], when, &ms, &active) == !bad); /* nothing of bad stays */
    }
    CHECK_INT(store_audit_scan(st, 0, 0, chain_row, &c, NULL), GW_OK);
    CHECK(c.intact);
    CHECK_INT(c.rows, N_BATCH - 1);
    for (i = 0; i < N_BATCH && k < c.rows; i++) {
        char expected[16];

        if (strcmp(ids[i], "bad") == 0)
            continue;
        snprintf(expected, sizeof expected, "ae-%s", ids[i]);
        CHECK_STR(c.ids[k++], expected); /* in queue order */
    }
    store_destroy(st);
}

/* Creates Patient/<id>, then puts it again: the recording's second put
 * replaces its first, which the reader did not see. */
static enum gw_code put_twice_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct work *w = ctx;
    json_t *res = json_pack("{s:s, s:s}", "resourceType", "Patient", "id", w->id);
    struct store_put put = {
        .type = "Patient", .id = w->id, .owner = "orgA", .create = true, .resource = res};
    enum gw_code rc = store_txn_put(txn, &put, NULL, err);

    put.create = false;
    if (!rc)
        rc = store_txn_put(txn, &put, &w->written, err);
    json_decref(res);
    return rc;
}

static void a_recording_that_puts_twice_is_redone_before_any_write(void)
{
    struct store *st = open_fresh(10000);
    struct work w;
    struct done d;
    double again = metric("gateway_store_batches_run_again_total");

    work_init(&w, "twice", NULL);
    done_init(&d);
    store_submit_prepared(st, put_twice_apply, work_audit, work_reset, &w, on_done, &d);
    wait_done(&d);
    CHECK_INT(d.rc, GW_OK);
    CHECK_INT(w.resets, 1);          /* redone on the writer */
    CHECK_INT(w.written.version, 2); /* ...where the second put sees the first */
    CHECK(metric("gateway_store_batches_run_again_total") == again); /* asked, not failed */
    store_destroy(st);
}

/* Patient/<id> with a birthdate index entry over [lo, hi). */
struct dated {
    struct work w; /* first: work_audit and work_reset take it */
    int64_t lo, hi;
};

static enum gw_code dated_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct dated *d = ctx;
    struct store_index_entry birth = {"birthdate", NULL, NULL, d->lo, d->hi};
    json_t *res = json_pack("{s:s, s:s}", "resourceType", "Patient", "id", d->w.id);
    struct store_put put = {.type = "Patient",
                            .id = d->w.id,
                            .owner = "orgA",
                            .create = true,
                            .resource = res,
                            .index = &birth,
                            .n_index = 1};
    enum gw_code rc = store_txn_put(txn, &put, NULL, err);

    json_decref(res);
    return rc;
}

/* Whether Patient?birthdate=ge<at> finds Patient/<id>. */
static bool born_since(struct store *st, int64_t at, const char *id)
{
    struct store_value since = {.prefix = STORE_GE, .lo = at, .hi = at + 1};
    struct store_cond c = {"birthdate", STORE_DATE, .values = &since, .n_values = 1};
    struct store_query q = {.type = "Patient", .conds = &c, .n_conds = 1, .count = 10};
    struct store_page page;
    bool found = false;
    size_t i;

    if (store_search(st, &q, &page, NULL) != GW_OK)
        return false;
    for (i = 0; i < page.n_items; i++)
        found = found || strcmp(page.items[i].id, id) == 0;
    store_page_cleanup(&page);
    return found;
}

/* A date search reaches back by the widest range stored for its parameter
 * (date_widths). In one batch, a job that widened it is undone (its audit
 * row fails); the next job's range, wider than the committed one, must
 * still widen it: the writer may skip a width that is not wider than the
 * committed one, never one that only the undone job wrote. */
static void an_undone_jobs_date_width_is_not_trusted(void)
{
    struct store *st = open_fresh(10000);
    struct dated narrow = {.lo = 1000, .hi = 1010}, wide = {.lo = 0, .hi = 1000000},
                 later = {.lo = 5000, .hi = 6000};
    struct work blocker;
    struct done d0, d1, d2, d3;

    work_init(&narrow.w, "narrow", NULL);
    work_init(&wide.w, "undone", NULL);
    work_init(&later.w, "later", NULL);
    work_init(&blocker, "p0", NULL);
    blocker.block = true;
    done_init(&d0);
    done_init(&d1);
    done_init(&d2);
    done_init(&d3);
    store_submit_prepared(st, dated_apply, work_audit, work_reset, &narrow, on_done, &d1);
    wait_done(&d1); /* the committed width: 10 ms */
    CHECK(fail_audit_of("undone"));
    store_submit(st, work_apply, NULL, &blocker, on_done, &d0);
    pthread_mutex_lock(&blocker.lock);
    while (!blocker.entered)
        pthread_cond_wait(&blocker.cv, &blocker.lock);
    pthread_mutex_unlock(&blocker.lock);
    store_submit_prepared(st, dated_apply, work_audit, work_reset, &wide, on_done, &d2);
    store_submit_prepared(st, dated_apply, work_audit, work_reset, &later, on_done, &d3);
    release(&blocker);
    wait_done(&d0);
    wait_done(&d2);
    wait_done(&d3);
    CHECK_INT(d1.rc, GW_OK);
    CHECK_INT(d2.rc, GW_E_STORE);
    CHECK_INT(d3.rc, GW_OK);
    CHECK(born_since(st, 1005, "narrow"));
    CHECK(born_since(st, 5500, "later")); /* 500 ms into a 1000 ms range */
    CHECK(!born_since(st, 5500, "undone"));
    store_destroy(st);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gw_log_set_level(GW_LOG_ERROR);
    RUN(submitted_work_is_called_back_once_committed);
    RUN(prepared_work_is_replayed_with_the_commit_time);
    RUN(prepared_work_is_redone_when_what_it_read_changed);
    RUN(queued_work_expires_when_the_writer_is_stuck);
    RUN(prepared_grants_tallies_and_writer_steps_are_replayed);
    RUN(prepared_visibility_is_asked_again_by_the_writer);
    RUN(a_failing_replay_write_fails_its_job_alone);
    RUN(a_recording_that_puts_twice_is_redone_before_any_write);
    RUN(an_undone_jobs_date_width_is_not_trusted);
    {
        char cmd[160];

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_summary();
}
