/* outbox.c -- outbound HL7 v2 messages and inbound duplicate detection.
 *
 * The outbox row is written in the same commit as the referral that caused
 * it, so an acknowledged referral always has its order message. Leasing and
 * settling are writes, so they run on the writer thread like everything else.
 * Ordering: a message is offered only once every earlier message about the
 * same resource is final (acked or dead), so a cancel never overtakes its order.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

void store_outbox_msg_cleanup(struct store_outbox_msg *m)
{
    if (!m)
        return;
    free(m->control_id);
    free(m->site);
    free(m->kind);
    free(m->ref_type);
    free(m->ref_id);
    free(m->message);
    free(m->last_error);
    memset(m, 0, sizeof *m);
}

void store_outbox_list_free(struct store_outbox_msg *list, size_t n)
{
    size_t i;

    for (i = 0; list && i < n; i++)
        store_outbox_msg_cleanup(&list[i]);
    free(list);
}

static enum gw_code msg_from_row(struct db_stmt *s, struct store_outbox_msg *m,
                                 struct gw_error *err)
{
    memset(m, 0, sizeof *m);
    m->seq = db_column_int64(s, 0);
    m->state = (enum store_outbox_state)db_column_int(s, 7);
    m->lease_until_ms = db_column_int64(s, 8);
    m->attempts = (long)db_column_int64(s, 9);
    m->created_ms = db_column_int64(s, 10);
    m->message_len = (size_t)db_column_bytes(s, 6);
    if (!column_dup(s, 1, &m->control_id) || !column_dup(s, 2, &m->site) ||
        !column_dup(s, 3, &m->kind) || !column_dup(s, 4, &m->ref_type) ||
        !column_dup(s, 5, &m->ref_id) || !column_dup(s, 6, &m->message) ||
        !column_dup(s, 11, &m->last_error)) {
        store_outbox_msg_cleanup(m);
        return gw_fail(err, GW_E_NOMEM, "no memory for an outbox message");
    }
    return GW_OK;
}

/* Collects every row of s into a new array. */
static enum gw_code collect(struct db *db, struct db_stmt *s, size_t max,
                            struct store_outbox_msg **out, size_t *n_out, struct gw_error *err)
{
    struct store_outbox_msg *list = calloc(max + 1, sizeof *list);
    size_t n = 0;
    enum gw_code rc = GW_OK;
    int step;

    *out = NULL;
    *n_out = 0;
    if (!list)
        return gw_fail(err, GW_E_NOMEM, "no memory for outbox messages");
    while (n < max && (step = db_step(s)) == DB_ROW) {
        rc = msg_from_row(s, &list[n], err);
        if (rc)
            break;
        n++;
    }
    if (!rc && n < max && step != DB_DONE)
        rc = store_fail_db(db, err, "outbox read");
    if (rc) {
        store_outbox_list_free(list, n);
        return rc;
    }
    *out = list;
    *n_out = n;
    return GW_OK;
}

enum gw_code store_txn_outbox_add(struct store_txn *txn, const struct store_outbox_new *m,
                                  struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    if (txn->rec)
        return record_outbox_add(txn, m, err);
    rc = stmt_txn(txn, SQL_OUTBOX_INSERT, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, m->control_id);
    db_bind_text(s, 2, m->site);
    db_bind_text(s, 3, m->kind);
    db_bind_text(s, 4, m->ref_type);
    db_bind_text(s, 5, m->ref_id);
    db_bind_blob(s, 6, m->message, (int)m->message_len);
    db_bind_int64(s, 7, txn->now_ms);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox insert");
    stmt_release(s);
    return rc;
}

/* Leases the first OUTBOX_LEASE_SET (or n, when fewer) of msgs in one
 * statement; counts their attempts. */
static enum gw_code lease_set(struct store_txn *txn, struct store_outbox_msg *msgs, size_t n,
                              int64_t lease_ms, struct gw_error *err)
{
    struct db_stmt *u;
    enum gw_code rc = stmt_txn(txn, SQL_OUTBOX_LEASE_SET, &u, err);
    size_t i;

    if (rc)
        return rc;
    if (n > OUTBOX_LEASE_SET)
        n = OUTBOX_LEASE_SET;
    db_bind_int64(u, 1, txn->now_ms + lease_ms);
    db_bind_int64(u, 2, txn->now_ms);
    for (i = 0; i < OUTBOX_LEASE_SET; i++)
        db_bind_int64(u, (int)i + 3, msgs[i < n ? i : n - 1].seq);
    if (db_step(u) != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox lease");
    stmt_release(u);
    for (i = 0; !rc && i < n; i++) {
        msgs[i].state = STORE_OUTBOX_LEASED;
        msgs[i].lease_until_ms = txn->now_ms + lease_ms;
        msgs[i].attempts++;
    }
    return rc;
}

enum gw_code store_txn_outbox_lease(struct store_txn *txn, const char *const *sites, size_t n_sites,
                                    size_t max, int64_t lease_ms, struct store_outbox_msg **out,
                                    size_t *n_out, struct gw_error *err)
{
    struct conn c = {txn->db, &txn->st->wtext}; /* the writer's: its statements are kept */
    struct sql q;
    struct db_stmt *s = NULL;
    enum gw_code rc;
    size_t i;

    *out = NULL;
    *n_out = 0;
    if (txn->rec)
        return record_unsupported(txn, err);
    sql_init(&q);
    outbox_lease_sql(&q, sites, n_sites, txn->now_ms, max);
    rc = conn_prepare(&c, &q, &s, err);
    if (!rc)
        rc = collect(txn->db, s, max, out, n_out, err);
    conn_done(&c, s);
    sql_cleanup(&q);
    for (i = 0; !rc && i < *n_out; i += OUTBOX_LEASE_SET)
        rc = lease_set(txn, *out + i, *n_out - i, lease_ms, err);
    if (rc && *out) {
        store_outbox_list_free(*out, *n_out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

static bool serves(const char *const *sites, size_t n_sites, const char *site)
{
    size_t i;

    for (i = 0; site && i < n_sites; i++)
        if (strcmp(sites[i], site) == 0)
            return true;
    return false;
}

/* The message with control_id (UNIQUE), when it is one of the sites' (or
 * any, with sites NULL). */
static enum gw_code find_by_control_id(struct store_txn *txn, const char *control_id,
                                       const char *const *sites, size_t n_sites,
                                       struct store_outbox_msg *m, struct gw_error *err)
{
    struct db_stmt *s;
    int step;
    enum gw_code rc;

    memset(m, 0, sizeof *m);
    rc = stmt_txn(txn, SQL_OUTBOX_BY_CONTROL_ID, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, control_id);
    step = db_step(s);
    if (step == DB_ROW)
        rc = msg_from_row(s, m, err);
    else if (step != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox read");
    stmt_release(s);
    if (!rc && step == DB_ROW && sites && !serves(sites, n_sites, m->site)) {
        store_outbox_msg_cleanup(m);
        step = DB_DONE;
    }
    if (!rc && step != DB_ROW)
        rc = gw_fail(err, GW_E_NOTFOUND, "no outbound message has control id %s", control_id);
    return rc;
}

enum gw_code store_txn_outbox_settle(struct store_txn *txn, const char *control_id,
                                     const char *const *sites, size_t n_sites, const char *ack,
                                     const char *text, struct store_outbox_msg *settled,
                                     bool *was_final, struct gw_error *err)
{
    struct db_stmt *u;
    bool accepted = strcmp(ack, "AA") == 0 || strcmp(ack, "CA") == 0;
    enum gw_code rc;

    *was_final = false;
    if (txn->rec)
        return record_unsupported(txn, err);
    rc = find_by_control_id(txn, control_id, sites, n_sites, settled, err);
    if (rc)
        return rc;
    *was_final = settled->state == STORE_OUTBOX_ACKED || settled->state == STORE_OUTBOX_DEAD;
    if (*was_final)
        return GW_OK;
    rc = stmt_txn(txn, SQL_OUTBOX_SETTLE, &u, err);
    if (rc)
        return rc;
    db_bind_int64(u, 1, accepted ? STORE_OUTBOX_ACKED : STORE_OUTBOX_DEAD);
    db_bind_int64(u, 2, txn->now_ms);
    db_bind_text(u, 3, accepted ? NULL : text);
    db_bind_int64(u, 4, settled->seq);
    if (db_step(u) != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox settle");
    stmt_release(u);
    settled->state = accepted ? STORE_OUTBOX_ACKED : STORE_OUTBOX_DEAD;
    return rc;
}

/* Finds the messages of ids[0..k) (k at most OUTBOX_LEASE_SET) into out,
 * the sites' only. */
static enum gw_code find_set(struct store_txn *txn, const char *const *ids, size_t k,
                             const char *const *sites, size_t n_sites, struct store_outbox_msg *out,
                             struct gw_error *err)
{
    struct store_outbox_msg m;
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, SQL_OUTBOX_BY_CONTROL_IDS, &s, err);
    size_t i;
    int step = DB_DONE;

    if (rc)
        return rc;
    for (i = 0; i < OUTBOX_LEASE_SET; i++)
        db_bind_text(s, (int)i + 1, ids[i < k ? i : k - 1]);
    while (!rc && (step = db_step(s)) == DB_ROW) {
        bool taken = false;

        rc = msg_from_row(s, &m, err);
        if (rc || (sites && !serves(sites, n_sites, m.site)))
            goto next;
        for (i = 0; !rc && i < k; i++) {
            if (out[i].seq || strcmp(ids[i], m.control_id) != 0)
                continue;
            if (!taken) {
                out[i] = m;
                taken = true;
                continue;
            }
            out[i] = m; /* the same id again: a copy of its own */
            if (!column_dup(s, 1, &out[i].control_id) || !column_dup(s, 2, &out[i].site) ||
                !column_dup(s, 3, &out[i].kind) || !column_dup(s, 4, &out[i].ref_type) ||
                !column_dup(s, 5, &out[i].ref_id) || !column_dup(s, 11, &out[i].last_error)) {
                store_outbox_msg_cleanup(&out[i]);
                rc = gw_fail(err, GW_E_NOMEM, "no memory for an outbox message");
            }
        }
    next:
        if (!taken)
            store_outbox_msg_cleanup(&m);
    }
    if (!rc && step != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox read");
    stmt_release(s);
    return rc;
}

/* Acks the n (at most OUTBOX_LEASE_SET, at least 1) messages of seqs. */
static enum gw_code accept_set(struct store_txn *txn, const int64_t *seqs, size_t n,
                               struct gw_error *err)
{
    struct db_stmt *u;
    enum gw_code rc = stmt_txn(txn, SQL_OUTBOX_ACCEPT_SET, &u, err);
    size_t i;

    if (rc)
        return rc;
    db_bind_int64(u, 1, txn->now_ms);
    for (i = 0; i < OUTBOX_LEASE_SET; i++)
        db_bind_int64(u, (int)i + 2, seqs[i < n ? i : n - 1]);
    if (db_step(u) != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox settle");
    stmt_release(u);
    return rc;
}

/* One set of store_txn_outbox_accept(): k ids. A message found twice in it
 * is settled by the first and final for the next. */
static enum gw_code accept_chunk(struct store_txn *txn, const char *const *ids, size_t k,
                                 const char *const *sites, size_t n_sites,
                                 struct store_outbox_msg *out, bool *was_final,
                                 struct gw_error *err)
{
    int64_t seqs[OUTBOX_LEASE_SET];
    size_t i, j, n = 0;
    enum gw_code rc = find_set(txn, ids, k, sites, n_sites, out, err);

    for (i = 0; !rc && i < k; i++) {
        if (!out[i].seq)
            continue;
        was_final[i] = out[i].state == STORE_OUTBOX_ACKED || out[i].state == STORE_OUTBOX_DEAD;
        for (j = 0; !was_final[i] && j < n; j++)
            was_final[i] = seqs[j] == out[i].seq;
        if (!was_final[i])
            seqs[n++] = out[i].seq;
    }
    if (!rc && n)
        rc = accept_set(txn, seqs, n, err);
    for (i = 0; !rc && i < k; i++)
        if (out[i].seq)
            out[i].state = STORE_OUTBOX_ACKED;
    return rc;
}

enum gw_code store_txn_outbox_accept(struct store_txn *txn, const char *const *control_ids,
                                     size_t n, const char *const *sites, size_t n_sites,
                                     struct store_outbox_msg *out, bool *was_final,
                                     struct gw_error *err)
{
    size_t i, k;
    enum gw_code rc = GW_OK;

    memset(out, 0, n * sizeof *out);
    memset(was_final, 0, n * sizeof *was_final);
    if (txn->rec)
        return record_unsupported(txn, err);
    for (i = 0; !rc && i < n; i += k) {
        k = n - i < OUTBOX_LEASE_SET ? n - i : OUTBOX_LEASE_SET;
        rc = accept_chunk(txn, control_ids + i, k, sites, n_sites, out + i, was_final + i, err);
    }
    return rc;
}

enum gw_code store_txn_outbox_attempt(struct store_txn *txn, const char *control_id,
                                      const char *error_text, struct gw_error *err)
{
    struct db_stmt *u;
    enum gw_code rc =
        txn->rec ? record_unsupported(txn, err) : stmt_txn(txn, SQL_OUTBOX_ATTEMPT, &u, err);

    if (rc)
        return rc;
    db_bind_int64(u, 1, txn->now_ms);
    db_bind_text(u, 2, error_text);
    db_bind_text(u, 3, control_id);
    if (db_step(u) != DB_DONE)
        rc = store_fail_db(txn->db, err, "outbox attempt");
    stmt_release(u);
    return rc;
}

/* Runs a read-only outbox query with text binds on a reader connection. */
static enum gw_code read_list(struct store *st, const char *sql, const char *a, const char *b,
                              size_t max, struct store_outbox_msg **out, size_t *n_out,
                              struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, sql, &s, err);

    if (!rc) {
        db_bind_text(s, 1, a);
        if (b)
            db_bind_text(s, 2, b);
        rc = collect(db, s, max, out, n_out, err);
    }
    db_finalize(s);
    reader_release(st, db);
    return rc;
}

enum gw_code store_outbox_next(struct store *st, const char *site, struct store_outbox_msg *out,
                               struct gw_error *err)
{
    struct store_outbox_msg *list = NULL;
    size_t n = 0;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    rc = read_list(st, SQL_OUTBOX_NEXT, site, NULL, 1, &list, &n, err);
    if (!rc && n == 0)
        rc = gw_fail(err, GW_E_NOTFOUND, "nothing to send to %s", site);
    if (!rc) {
        *out = list[0];
        free(list);
        return GW_OK;
    }
    store_outbox_list_free(list, n);
    return rc;
}

enum gw_code store_outbox_for(struct store *st, const char *ref_type, const char *ref_id,
                              struct store_outbox_msg **out, size_t *n_out, struct gw_error *err)
{
    return read_list(st, SQL_OUTBOX_FOR, ref_type, ref_id, 1000, out, n_out, err);
}

/* The row of site in list (added when new); NULL when out of memory. */
static struct store_outbox_stats *stats_of(struct store_outbox_stats **list, size_t *n, size_t *cap,
                                           const char *site)
{
    struct store_outbox_stats *grown;
    size_t i;

    for (i = 0; i < *n; i++)
        if (strcmp((*list)[i].site, site) == 0)
            return &(*list)[i];
    grown = gw_grow(*list, cap, *n, sizeof *grown, 8);
    if (!grown)
        return NULL;
    *list = grown;
    memset(&grown[*n], 0, sizeof *grown);
    grown[*n].site = gw_strdup(site);
    if (!grown[*n].site)
        return NULL;
    return &grown[(*n)++];
}

/* Adds the counts of sql (site, state or nothing, count) to list. */
static enum gw_code stats_count(struct db *db, const char *sql, bool dead,
                                struct store_outbox_stats **list, size_t *n, size_t *cap,
                                struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, sql, &s, err);
    int step;

    while (!rc && (step = db_step(s)) == DB_ROW) {
        const char *site = db_column_text(s, 0);
        struct store_outbox_stats *row = stats_of(list, n, cap, site ? site : "");

        if (!row) {
            rc = gw_fail(err, GW_E_NOMEM, "no memory for outbox statistics");
        } else if (dead) {
            row->dead = (long)db_column_int64(s, 1);
        } else if (db_column_int(s, 1) == STORE_OUTBOX_PENDING) {
            row->pending = (long)db_column_int64(s, 2);
        } else {
            row->leased = (long)db_column_int64(s, 2);
        }
    }
    if (!rc && step != DB_DONE)
        rc = store_fail_db(db, err, "outbox statistics");
    db_finalize(s);
    return rc;
}

static enum gw_code stats_oldest(struct db *db, struct store_outbox_stats *row,
                                 struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, SQL_OUTBOX_OLDEST, &s, err);
    int step;

    if (rc)
        return rc;
    db_bind_text(s, 1, row->site);
    step = db_step(s);
    if (step == DB_ROW)
        row->oldest_pending_ms = db_column_int64(s, 0);
    else if (step != DB_DONE)
        rc = store_fail_db(db, err, "outbox statistics");
    db_finalize(s);
    return rc;
}

enum gw_code store_outbox_stats(struct store *st, struct store_outbox_stats **out, size_t *n_out,
                                struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct store_outbox_stats *list = NULL;
    size_t n = 0, cap = 0, i;
    enum gw_code rc;

    *out = NULL;
    *n_out = 0;
    rc = stmt_exec(db, "BEGIN", err);
    if (!rc)
        rc = stats_count(db, SQL_OUTBOX_OPEN_COUNTS, false, &list, &n, &cap, err);
    if (!rc)
        rc = stats_count(db, SQL_OUTBOX_DEAD_COUNTS, true, &list, &n, &cap, err);
    for (i = 0; !rc && i < n; i++)
        if (list[i].pending + list[i].leased)
            rc = stats_oldest(db, &list[i], err);
    stmt_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL);
    reader_release(st, db);
    if (rc) {
        while (n)
            free(list[--n].site);
        free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return GW_OK;
}

enum gw_code store_txn_inbound_seen(struct store_txn *txn, const char *client, const char *sender,
                                    const char *control_id, char **ack, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;
    int step;

    *ack = NULL;
    if (txn->rec)
        return record_unsupported(txn, err);
    rc = stmt_txn(txn, SQL_INBOUND_SEEN, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, client);
    db_bind_text(s, 2, sender);
    db_bind_text(s, 3, control_id);
    step = db_step(s);
    if (step == DB_ROW)
        rc = column_dup(s, 0, ack) ? GW_OK : gw_fail(err, GW_E_NOMEM, "no memory for an ACK");
    else if (step == DB_DONE)
        rc = gw_fail(err, GW_E_NOTFOUND, "message %s not seen before", control_id);
    else
        rc = store_fail_db(txn->db, err, "inbound lookup");
    stmt_release(s);
    return rc;
}

enum gw_code store_txn_inbound_record(struct store_txn *txn, const char *client, const char *sender,
                                      const char *control_id, const char *ack, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc =
        txn->rec ? record_unsupported(txn, err) : stmt_txn(txn, SQL_INBOUND_RECORD, &s, err);

    if (rc)
        return rc;
    db_bind_text(s, 1, client);
    db_bind_text(s, 2, sender);
    db_bind_text(s, 3, control_id);
    db_bind_int64(s, 4, txn->now_ms);
    db_bind_blob(s, 5, ack, (int)strlen(ack));
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "inbound record");
    stmt_release(s);
    return rc;
}
