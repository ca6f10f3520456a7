/* activity.c -- the audit log's hourly activity roll-up.
 *
 * audit_rollup holds one row per (hour, client, address, class): a count and
 * the last time. audit_record() adds to it in the commit of each event, so
 * the pictures of a period read at most hours x clients rows through the
 * primary key, however many events the period holds.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define ACTIVITY_MAX_HOURS (24 * 400) /* a period of at most 400 days */

enum gw_code store_txn_audit_tally(struct store_txn *txn, int64_t recorded_ms, const char *client,
                                   const char *address, int cls, long n, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    if (cls < 0 || cls >= STORE_ACTIVITY_CLASSES || n < 1)
        return gw_fail(err, GW_E_INTERNAL, "activity class %d or count %ld out of range", cls, n);
    if (txn->rec)
        return record_audit_tally(txn, client, address, cls, n, err);
    rc = stmt_txn(txn, SQL_ROLLUP_TALLY, &s, err);
    if (rc)
        return rc;
    db_bind_int64(s, 1, recorded_ms - recorded_ms % STORE_HOUR_MS);
    db_bind_text(s, 2, client ? client : "");
    db_bind_text(s, 3, address ? address : "");
    db_bind_int64(s, 4, cls);
    db_bind_int64(s, 5, n);
    db_bind_int64(s, 6, recorded_ms);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "activity tally");
    stmt_release(s);
    return rc;
}

void store_activity_cleanup(struct store_activity *a)
{
    size_t i;

    if (!a)
        return;
    for (i = 0; i < a->n_clients; i++) {
        free(a->clients[i].client);
        free(a->clients[i].address);
    }
    free(a->clients);
    free(a->hours);
    memset(a, 0, sizeof *a);
}

/* Hours with events, summed over clients, in order. */
static enum gw_code read_hours(struct db *db, int64_t since, int64_t until,
                               struct store_activity *a, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, SQL_ROLLUP_HOURS, &s, err);
    size_t cap = (size_t)((until - since) / STORE_HOUR_MS) + 1;
    int step;

    if (rc)
        return rc;
    db_bind_int64(s, 1, since);
    db_bind_int64(s, 2, until);
    a->hours = calloc(cap, sizeof *a->hours);
    if (!a->hours) {
        db_finalize(s);
        return gw_fail(err, GW_E_NOMEM, "no memory for the activity of %zu hours", cap);
    }
    while ((step = db_step(s)) == DB_ROW) {
        int64_t hour = db_column_int64(s, 0);
        int cls = db_column_int(s, 1);
        struct store_activity_hour *h;

        if (a->n_hours == 0 || a->hours[a->n_hours - 1].hour_ms != hour) {
            if (a->n_hours == cap)
                break; /* cannot happen: hours are distinct and within the period */
            a->hours[a->n_hours++].hour_ms = hour;
        }
        h = &a->hours[a->n_hours - 1];
        if (cls >= 0 && cls < STORE_ACTIVITY_CLASSES)
            h->n[cls] += (long)db_column_int64(s, 2);
    }
    if (step != DB_ROW && step != DB_DONE)
        rc = store_fail_db(db, err, "activity by hour");
    db_finalize(s);
    return rc;
}

/* Clients of the period, the busiest first, at most max (+1 to tell more). */
static enum gw_code read_clients(struct db *db, int64_t since, int64_t until, size_t max,
                                 struct store_activity *a, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, SQL_ROLLUP_CLIENTS, &s, err);
    int step, k;

    if (rc)
        return rc;
    db_bind_int64(s, 1, since);
    db_bind_int64(s, 2, until);
    db_bind_int64(s, 3, (int64_t)max + 1);
    a->clients = calloc(max + 1, sizeof *a->clients);
    if (!a->clients) {
        db_finalize(s);
        return gw_fail(err, GW_E_NOMEM, "no memory for the activity of %zu clients", max);
    }
    while ((step = db_step(s)) == DB_ROW) {
        struct store_activity_client *c = &a->clients[a->n_clients];

        if (a->n_clients == max) {
            a->more_clients = true;
            break;
        }
        if (!column_dup(s, 0, &c->client) || !column_dup(s, 1, &c->address)) {
            free(c->client);
            rc = gw_fail(err, GW_E_NOMEM, "no memory for the activity of a client");
            break;
        }
        for (k = 0; k < STORE_ACTIVITY_CLASSES; k++)
            c->n[k] = (long)db_column_int64(s, 2 + k);
        c->last_ms = db_column_int64(s, 6);
        a->n_clients++;
    }
    if (!rc && step != DB_ROW && step != DB_DONE)
        rc = store_fail_db(db, err, "activity by client");
    db_finalize(s);
    return rc;
}

enum gw_code store_audit_activity(struct store *st, int64_t since_ms, int64_t until_ms,
                                  size_t max_clients, struct store_activity *out,
                                  struct gw_error *err)
{
    int64_t since = since_ms - since_ms % STORE_HOUR_MS;
    int64_t until = until_ms + (STORE_HOUR_MS - 1);
    struct db *db;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    until -= until % STORE_HOUR_MS;
    if (since < 0 || until <= since || (until - since) / STORE_HOUR_MS > ACTIVITY_MAX_HOURS)
        return gw_fail(err, GW_E_LIMIT, "a period of activity spans one hour to %d days",
                       ACTIVITY_MAX_HOURS / 24);
    db = reader_acquire(st);
    rc = read_hours(db, since, until, out, err);
    if (!rc)
        rc = read_clients(db, since, until, max_clients, out, err);
    reader_release(st, db);
    if (rc)
        store_activity_cleanup(out);
    return rc;
}
