/* auditlog.c -- the append-only, hash-chained audit table.
 *
 * Each row's hash = SHA-256(prev_hash || canonical JSON), or HMAC-SHA-256
 * with the configured key, so altering, removing, inserting or reordering a
 * row breaks every hash after it. The head is read inside the writer's
 * BEGIN IMMEDIATE, so another process appending meanwhile cannot fork the chain.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

void store_audit_hash(const char *key, const char *prev_hash, const char *text, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    EVP_MD_CTX *ctx;

    if (key && *key) {
        size_t plen = strlen(prev_hash), tlen = strlen(text);
        unsigned char *data = malloc(plen + tlen);

        if (data) {
            memcpy(data, prev_hash, plen);
            memcpy(data + plen, text, tlen);
            if (!HMAC(EVP_sha256(), key, (int)strlen(key), data, plen + tlen, md, &n))
                n = 0;
            free(data);
        }
    } else if ((ctx = EVP_MD_CTX_new()) != NULL) {
        if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
            !EVP_DigestUpdate(ctx, prev_hash, strlen(prev_hash)) ||
            !EVP_DigestUpdate(ctx, text, strlen(text)) || !EVP_DigestFinal_ex(ctx, md, &n))
            n = 0;
        EVP_MD_CTX_free(ctx);
    }
    for (i = 0; i < n && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * i] = '\0'; /* empty on failure: never equal to a real hash */
}

enum gw_code audit_head_load(struct store_txn *txn, struct audit_head *out, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, SQL_AUDIT_HEAD, &s, err);
    int step;

    if (rc)
        return rc;
    memcpy(out->hash, STORE_AUDIT_GENESIS, 65);
    out->seq = 0;
    step = db_step(s);
    if (step == DB_ROW) {
        out->seq = db_column_int64(s, 0);
        if (db_column_bytes(s, 1) == 64)
            memcpy(out->hash, db_column_text(s, 1), 64);
    } else if (step != DB_DONE) {
        rc = store_fail_db(txn->db, err, "audit head");
    }
    stmt_release(s);
    return rc;
}

/* Inserts the n (1, 8 or 32) entries e with a value, one statement for them all. */
static enum gw_code audit_index_rows(struct store_txn *txn, int64_t seq,
                                     const struct store_index_entry *const *e, size_t n,
                                     struct gw_error *err)
{
    bool pg = txn->st->pg;
    const char *sql = n == 32  ? (pg ? SQL_AUDIT_INDEX_INSERT_32_PG : SQL_AUDIT_INDEX_INSERT_32)
                      : n == 8 ? (pg ? SQL_AUDIT_INDEX_INSERT_8_PG : SQL_AUDIT_INDEX_INSERT_8)
                               : SQL_AUDIT_INDEX_INSERT;
    struct db_stmt *s;
    enum gw_code rc = stmt_txn(txn, sql, &s, err);
    size_t i;

    if (rc)
        return rc;
    for (i = 0; i < n; i++) {
        db_bind_int64(s, (int)(4 * i + 1), store_param_id("AuditEvent", e[i]->param));
        db_bind_text(s, (int)(4 * i + 2), e[i]->value);
        db_bind_int64(s, (int)(4 * i + 3), seq);
        db_bind_text(s, (int)(4 * i + 4), e[i]->system ? e[i]->system : "");
    }
    if (db_step_deferred(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "insert audit index");
    stmt_release(s);
    return rc;
}

/* The event's search entries; dates need none (the row's recorded time,
 * which grows with seq, is searched as a seq range). They go 32, then 8,
 * then one at a time. */
static enum gw_code audit_index_insert(struct store_txn *txn, int64_t seq,
                                       const struct store_index_entry *e, size_t n,
                                       struct gw_error *err)
{
    const struct store_index_entry **valued = calloc(n + 1, sizeof *valued);
    enum gw_code rc = GW_OK;
    size_t i, m = 0, step;

    if (!valued)
        return gw_fail(err, GW_E_NOMEM, "no memory for the audit index");
    for (i = 0; i < n; i++)
        if (e[i].value)
            valued[m++] = &e[i];
    for (i = 0; !rc && i < m; i += step) {
        step = m - i >= 32 ? 32 : m - i >= 8 ? 8 : 1;
        rc = audit_index_rows(txn, seq, valued + i, step, err);
    }
    free(valued);
    /* the rows went out together (PostgreSQL): their outcome */
    if (db_flush(txn->db) != DB_OK && !rc)
        rc = store_fail_db(txn->db, err, "insert audit index");
    return rc;
}

enum gw_code store_txn_audit_append(struct store_txn *txn, const char *id, int64_t recorded_ms,
                                    const char *canonical, const struct store_index_entry *index,
                                    size_t n_index, struct gw_error *err)
{
    char hash[65];
    struct db_stmt *s;
    enum gw_code rc;
    int64_t seq = 0;

    if (txn->rec)
        return record_audit_append(txn, id, recorded_ms, canonical, index, n_index, err);
    store_audit_hash(txn->st->hmac_key, txn->audit.hash, canonical, hash);
    if (strlen(hash) != 64)
        return gw_fail(err, GW_E_INTERNAL, "the audit hash could not be computed");
    rc = stmt_txn(txn, SQL_AUDIT_INSERT, &s, err);
    if (rc)
        return rc;
    seq = txn->audit.seq + 1;
    db_bind_int64(s, 1, seq);
    db_bind_text(s, 2, id);
    db_bind_int64(s, 3, recorded_ms);
    db_bind_text(s, 4, canonical);
    db_bind_text(s, 5, txn->audit.hash);
    db_bind_text(s, 6, hash);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "audit append");
    stmt_release(s);
    if (!rc)
        rc = audit_index_insert(txn, seq, index, n_index, err);
    if (!rc) {
        memcpy(txn->audit.hash, hash, sizeof hash);
        txn->audit.seq = seq;
    }
    return rc;
}

/* The seq range [*lo, *hi] of rows recorded in [since_ms, until_ms). */
static enum gw_code scan_bounds(struct db *db, int64_t since_ms, int64_t until_ms, int64_t *lo,
                                int64_t *hi, struct gw_error *err)
{
    struct conn c = {db, NULL};
    enum gw_code rc = GW_OK;

    *lo = 0;
    *hi = INT64_MAX;
    if (since_ms)
        rc = search_seq_at(&c, true, since_ms, lo, err);
    if (!rc && until_ms) {
        rc = search_seq_at(&c, true, until_ms, hi, err);
        (*hi)--;
    }
    return rc;
}

enum gw_code store_audit_scan(struct store *st, int64_t since_ms, int64_t until_ms,
                              store_audit_row_fn fn, void *ctx, struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s = NULL;
    int64_t lo, hi;
    enum gw_code rc;
    int step = DB_DONE;

    rc = scan_bounds(db, since_ms, until_ms, &lo, &hi, err);
    if (!rc)
        rc = stmt_prepare_stream(db, SQL_AUDIT_SCAN, &s, err);
    if (rc) {
        reader_release(st, db);
        return rc;
    }
    db_bind_int64(s, 1, lo);
    db_bind_int64(s, 2, hi);
    db_bind_int64(s, 3, since_ms);
    db_bind_int64(s, 4, until_ms ? until_ms : INT64_MAX);
    while ((step = db_step(s)) == DB_ROW) {
        struct store_audit_row row = {
            .seq = db_column_int64(s, 0),
            .id = (char *)db_column_text(s, 1),
            .recorded_ms = db_column_int64(s, 2),
            .json = (char *)db_column_text(s, 3),
            .prev_hash = (char *)db_column_text(s, 4),
            .hash = (char *)db_column_text(s, 5),
        };

        if (!row.id || !row.json || !row.prev_hash || !row.hash) {
            rc = gw_fail(err, GW_E_STORE, "audit row %lld has empty columns", (long long)row.seq);
            break;
        }
        if (!fn(&row, ctx))
            break;
    }
    if (!rc && step != DB_ROW && step != DB_DONE)
        rc = store_fail_db(db, err, "audit scan");
    db_finalize(s);
    reader_release(st, db);
    return rc;
}
