/* notes.c -- Subscriptions as matching sees them, and their notification
 * outbox (FHIR R4 Subscription, rest-hook delivery).
 *
 * A notification row is written in the commit of the change it reports, so a
 * committed change always has its notifications and a rolled back one has
 * none. Positions are taken from the subscription's row (queued + 1) inside
 * that commit: the row is the point where concurrent writers of one
 * subscription serialise, so positions follow commit order on any backend.
 * Invariants: a subscription's positions are 1, 2, 3... without gaps; event
 * numbers of its events likewise; a row leaves the pending state once.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOTES_MAX_LIST 100000 /* rows one listing returns at most */

/* ------------------------------------------------------------ subscriptions */

void store_subscription_cleanup(struct store_subscription *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->owner);
    free(s->type);
    free(s->criteria);
    memset(s, 0, sizeof *s);
}

void store_subscription_list_free(struct store_subscription *list, size_t n)
{
    size_t i;

    for (i = 0; list && i < n; i++)
        store_subscription_cleanup(&list[i]);
    free(list);
}

static bool subscription_from_row(struct db_stmt *s, struct store_subscription *out)
{
    memset(out, 0, sizeof *out);
    out->end_ms = db_column_int64(s, 4);
    out->enabled = db_column_int(s, 5) != 0;
    out->events = (long)db_column_int64(s, 6);
    if (column_dup(s, 0, &out->id) && column_dup(s, 1, &out->owner) &&
        column_dup(s, 2, &out->type) && column_dup(s, 3, &out->criteria))
        return true;
    store_subscription_cleanup(out);
    return false;
}

enum gw_code store_txn_subscription_put(struct store_txn *txn, const struct store_subscription *s,
                                        struct gw_error *err)
{
    struct db_stmt *st;
    enum gw_code rc =
        txn->rec ? record_unsupported(txn, err) : stmt_txn(txn, SQL_SUBSCRIPTION_PUT, &st, err);

    if (rc)
        return rc;
    db_bind_text(st, 1, s->id);
    db_bind_text(st, 2, s->owner);
    db_bind_text(st, 3, s->type);
    db_bind_text(st, 4, s->criteria);
    db_bind_int64(st, 5, s->end_ms);
    db_bind_int64(st, 6, s->enabled ? 1 : 0);
    if (db_step(st) != DB_DONE)
        rc = store_fail_db(txn->db, err, "subscription write");
    stmt_release(st);
    return rc;
}

enum gw_code store_txn_subscription_remove(struct store_txn *txn, const char *id,
                                           struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = txn->rec ? record_unsupported(txn, err) : store_txn_note_drop(txn, id, err);

    if (!rc)
        rc = stmt_prepare(txn->db, SQL_SUBSCRIPTION_REMOVE, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, id);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "subscription removal");
    db_finalize(s);
    return rc;
}

/* Collects every subscription row of s into a new array. */
static enum gw_code collect_subscriptions(struct db *db, struct db_stmt *s,
                                          struct store_subscription **out, size_t *n_out,
                                          struct gw_error *err)
{
    struct store_subscription *list = NULL, *grown;
    size_t n = 0, cap = 0;
    int step;

    while ((step = db_step(s)) == DB_ROW && n < NOTES_MAX_LIST) {
        grown = gw_grow(list, &cap, n, sizeof *list, 4);
        if (!grown || !subscription_from_row(s, &(list = grown)[n])) {
            store_subscription_list_free(list, n);
            return gw_fail(err, GW_E_NOMEM, "no memory for subscriptions");
        }
        n++;
    }
    if (step != DB_ROW && step != DB_DONE) {
        store_subscription_list_free(list, n);
        return store_fail_db(db, err, "subscriptions read");
    }
    *out = list;
    *n_out = n;
    return GW_OK;
}

enum gw_code store_txn_subscriptions_of(struct store_txn *txn, const char *owner, const char *type,
                                        struct store_subscription **out, size_t *n_out,
                                        struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    *out = NULL;
    *n_out = 0;
    rc = txn->rec ? record_unsupported(txn, err) : stmt_txn(txn, SQL_SUBSCRIPTIONS_OF, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, owner);
    db_bind_text(s, 2, type);
    rc = collect_subscriptions(txn->db, s, out, n_out, err);
    stmt_release(s);
    return rc;
}

enum gw_code store_subscription_get(struct store *st, const char *id,
                                    struct store_subscription *out, struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s;
    struct store_subscription *list = NULL;
    size_t n = 0;
    enum gw_code rc = stmt_prepare(db, SQL_SUBSCRIPTION_GET, &s, err);

    memset(out, 0, sizeof *out);
    if (!rc) {
        db_bind_text(s, 1, id);
        rc = collect_subscriptions(db, s, &list, &n, err);
    }
    db_finalize(s);
    reader_release(st, db);
    if (!rc && n == 0)
        rc = gw_fail(err, GW_E_NOTFOUND, "no subscription %s", id);
    if (!rc) {
        *out = list[0];
        free(list);
        return GW_OK;
    }
    store_subscription_list_free(list, n);
    return rc;
}

/* ------------------------------------------------------------ notifications */

void store_note_cleanup(struct store_note *n)
{
    if (!n)
        return;
    free(n->subscription);
    free(n->focus_type);
    free(n->focus_id);
    free(n->last_error);
    memset(n, 0, sizeof *n);
}

void store_note_list_free(struct store_note *list, size_t n)
{
    size_t i;

    for (i = 0; list && i < n; i++)
        store_note_cleanup(&list[i]);
    free(list);
}

static bool note_from_row(struct db_stmt *s, struct store_note *n)
{
    memset(n, 0, sizeof *n);
    n->seq = db_column_int64(s, 0);
    n->position = (long)db_column_int64(s, 2);
    n->event = (long)db_column_int64(s, 3);
    n->kind = db_column_int(s, 4) ? STORE_NOTE_EVENT : STORE_NOTE_HANDSHAKE;
    n->focus_version = (long)db_column_int64(s, 7);
    n->state = (enum store_note_state)db_column_int(s, 8);
    n->attempts = (long)db_column_int64(s, 9);
    n->next_at_ms = db_column_int64(s, 10);
    n->created_ms = db_column_int64(s, 11);
    if (column_dup(s, 1, &n->subscription) && column_dup(s, 5, &n->focus_type) &&
        column_dup(s, 6, &n->focus_id) && column_dup(s, 12, &n->last_error))
        return true;
    store_note_cleanup(n);
    return false;
}

/* Takes the subscription's next position (and event number for events). */
static enum gw_code next_numbers(struct store_txn *txn, const struct store_note_new *n,
                                 long *position, long *event, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, SQL_NOTE_NUMBERS, &s, err);
    int step;

    if (rc)
        return rc;
    db_bind_text(s, 1, n->subscription);
    db_bind_int64(s, 2, n->kind == STORE_NOTE_EVENT ? 1 : 0);
    step = db_step(s);
    if (step == DB_ROW) {
        *position = (long)db_column_int64(s, 0);
        *event = (long)db_column_int64(s, 1);
        step = db_step(s); /* runs the statement to its end */
    } else if (step == DB_DONE) {
        rc = gw_fail(err, GW_E_NOTFOUND, "no subscription %s", n->subscription);
    }
    if (!rc && step != DB_DONE)
        rc = store_fail_db(txn->db, err, "subscription numbering");
    stmt_release(s);
    return rc;
}

enum gw_code store_txn_note_add(struct store_txn *txn, const struct store_note_new *n,
                                struct store_note *added, struct gw_error *err)
{
    struct db_stmt *s;
    long position = 0, event = 0;
    enum gw_code rc =
        txn->rec ? record_unsupported(txn, err) : next_numbers(txn, n, &position, &event, err);

    if (!rc)
        rc = stmt_txn(txn, SQL_NOTE_ADD, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, n->subscription);
    db_bind_int64(s, 2, position);
    db_bind_int64(s, 3, event);
    db_bind_int64(s, 4, n->kind == STORE_NOTE_EVENT ? 1 : 0);
    db_bind_text(s, 5, n->focus_type);
    db_bind_text(s, 6, n->focus_id);
    db_bind_int64(s, 7, n->focus_version);
    db_bind_int64(s, 8, txn->now_ms);
    if (db_step(s) != DB_ROW)
        rc = store_fail_db(txn->db, err, "notification insert");
    if (!rc && added) {
        memset(added, 0, sizeof *added);
        *added = (struct store_note){.seq = db_column_int64(s, 0),
                                     .position = position,
                                     .event = event,
                                     .kind = n->kind,
                                     .focus_version = n->focus_version,
                                     .next_at_ms = txn->now_ms,
                                     .created_ms = txn->now_ms};
    }
    stmt_release(s);
    txn->notes_changed = true;
    return rc;
}

enum gw_code store_txn_note_drop(struct store_txn *txn, const char *subscription,
                                 struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc =
        txn->rec ? record_unsupported(txn, err) : stmt_prepare(txn->db, SQL_NOTE_DROP, &s, err);

    if (rc)
        return rc;
    db_bind_text(s, 1, subscription);
    db_bind_int64(s, 2, txn->now_ms);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "notification drop");
    db_finalize(s);
    txn->notes_changed = true;
    return rc;
}

/* Runs s (prepared on db) and collects at most max notifications. */
static enum gw_code collect_notes(struct db *db, struct db_stmt *s, size_t max,
                                  struct store_note **out, size_t *n_out, struct gw_error *err)
{
    struct store_note *list = NULL, *grown;
    size_t n = 0, cap = 0;
    int step = DB_DONE;

    while (n < max && (step = db_step(s)) == DB_ROW) {
        grown = gw_grow(list, &cap, n, sizeof *list, 8);
        if (!grown || !note_from_row(s, &(list = grown)[n])) {
            store_note_list_free(list, n);
            return gw_fail(err, GW_E_NOMEM, "no memory for notifications");
        }
        n++;
    }
    if (step != DB_ROW && step != DB_DONE) {
        store_note_list_free(list, n);
        return store_fail_db(db, err, "notifications read");
    }
    *out = list;
    *n_out = n;
    return GW_OK;
}

enum gw_code store_note_heads(struct store *st, size_t max, struct store_note **out, size_t *n_out,
                              struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, SQL_NOTE_HEADS, &s, err);

    *out = NULL;
    *n_out = 0;
    if (max > NOTES_MAX_LIST)
        max = NOTES_MAX_LIST;
    if (!rc) {
        db_bind_int64(s, 1, (int64_t)max);
        rc = collect_notes(db, s, max, out, n_out, err);
    }
    db_finalize(s);
    reader_release(st, db);
    return rc;
}

enum gw_code store_note_pending(struct store *st, const char *subscription, size_t max,
                                struct store_note **out, size_t *n_out, struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, SQL_NOTE_PENDING, &s, err);

    *out = NULL;
    *n_out = 0;
    if (max > NOTES_MAX_LIST)
        max = NOTES_MAX_LIST;
    if (!rc) {
        db_bind_text(s, 1, subscription);
        db_bind_int64(s, 2, (int64_t)max);
        rc = collect_notes(db, s, max, out, n_out, err);
    }
    db_finalize(s);
    reader_release(st, db);
    return rc;
}

enum gw_code store_txn_note_settle(struct store_txn *txn, int64_t seq, enum store_note_state state,
                                   int64_t next_at_ms, const char *error, bool *changed,
                                   struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    *changed = false;
    rc = txn->rec ? record_unsupported(txn, err) : stmt_txn(txn, SQL_NOTE_SETTLE, &s, err);
    if (rc)
        return rc;
    db_bind_int64(s, 1, seq);
    db_bind_int64(s, 2, (int)state);
    db_bind_int64(s, 3, next_at_ms);
    db_bind_int64(s, 4, txn->now_ms);
    db_bind_text(s, 5, error);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "notification settle");
    else
        *changed = db_changes(txn->db) == 1;
    stmt_release(s);
    txn->notes_changed = true;
    return rc;
}

/* ------------------------------------------------------------ statistics */

enum gw_code store_note_stats(struct store *st, struct store_note_stats **out, size_t *n_out,
                              struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s = NULL;
    struct store_note_stats *list = NULL, *grown, *row;
    size_t n = 0, cap = 0;
    enum gw_code rc = stmt_prepare(db, SQL_NOTE_STATS, &s, err);
    int step = DB_DONE;

    *out = NULL;
    *n_out = 0;
    while (!rc && n < NOTES_MAX_LIST && (step = db_step(s)) == DB_ROW) {
        grown = gw_grow(list, &cap, n, sizeof *list, 8);
        if (!grown) {
            rc = gw_fail(err, GW_E_NOMEM, "no memory for notification statistics");
            break;
        }
        list = grown;
        row = &list[n];
        *row = (struct store_note_stats){NULL, (long)db_column_int64(s, 1),
                                         (long)db_column_int64(s, 2), db_column_int64(s, 3)};
        if (!column_dup(s, 0, &row->subscription)) {
            rc = gw_fail(err, GW_E_NOMEM, "no memory for notification statistics");
            break;
        }
        n++;
    }
    if (!rc && step != DB_DONE && step != DB_ROW)
        rc = store_fail_db(db, err, "notification statistics");
    db_finalize(s);
    reader_release(st, db);
    if (rc) {
        while (n)
            free(list[--n].subscription);
        free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return GW_OK;
}

/* ------------------------------------------------------------ waking the deliverers */

void notes_committed(struct store *st)
{
    pthread_mutex_lock(&st->q_lock);
    st->note_changes++;
    pthread_cond_broadcast(&st->note_cv);
    pthread_mutex_unlock(&st->q_lock);
}

void store_note_kick(struct store *st)
{
    notes_committed(st);
}

void store_note_wait(struct store *st, uint64_t *seen, long timeout_ms)
{
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->q_lock);
    while (st->note_changes == *seen && timeout_ms > 0)
        if (pthread_cond_timedwait(&st->note_cv, &st->q_lock, &deadline) == ETIMEDOUT)
            break;
    *seen = st->note_changes;
    pthread_mutex_unlock(&st->q_lock);
}
