/* push_lease.c -- which instance pushes a site's MLLP queue (ris/push.c).
 *
 * On PostgreSQL several instances share one outbox: a row of push_leases per
 * site names the one process that may push it (owner: instance_id/nonce), for
 * push_lease_s after its last renewal, with a token that grows at every
 * change of hands. Times are the database's clock only. A pusher renews while
 * it holds the lease, sends only while the lease outlasts the exchange, and
 * records every outcome under a fence (store_txn_push_fence()): the row locked
 * FOR SHARE until the commit, so the lease cannot change hands under a
 * settling message and a former holder records nothing. On SQLite one process
 * owns the file: the lease is always granted.
 */
#include "store/store_int.h"
#include "store/pg_int.h"

#include <string.h>

static const char SQL_LEASE_TAKE[] =
    "INSERT INTO push_leases AS l (site, owner, token, until) VALUES (?1, ?2, 1,"
    " clock_timestamp() + make_interval(secs => CAST(?3 AS double precision) / 1000))"
    " ON CONFLICT (site) DO UPDATE SET owner = excluded.owner,"
    " token = CASE WHEN l.owner = excluded.owner THEN l.token ELSE l.token + 1 END,"
    " until = excluded.until WHERE l.owner = excluded.owner OR l.until < clock_timestamp()"
    " RETURNING token, CAST(EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000 AS bigint)";
static const char SQL_LEASE_RELEASE[] = "UPDATE push_leases SET until = clock_timestamp()"
                                        " WHERE site = ?1 AND owner = ?2 AND token = ?3";
static const char SQL_LEASE_FENCE[] =
    "SELECT 1 FROM push_leases WHERE site = ?1 AND owner = ?2 AND token = ?3"
    " AND until > clock_timestamp() FOR SHARE";

enum gw_code store_push_lease(struct store *st, const char *site, long ttl_ms, int64_t *token,
                              int64_t *valid_until_mono_ms, struct gw_error *err)
{
    int64_t asked = gw_mono_ms();
    struct db_stmt *s = NULL;
    struct db *db;
    enum gw_code rc;
    int step;

    if (!st->pg) {
        *token = 1;
        *valid_until_mono_ms = asked + ttl_ms;
        return GW_OK;
    }
    db = reader_acquire(st);
    rc = stmt_prepare(db, SQL_LEASE_TAKE, &s, err);
    if (!rc) {
        db_bind_text(s, 1, site);
        db_bind_text(s, 2, st->owner);
        db_bind_int64(s, 3, ttl_ms);
        step = db_step(s);
        if (step == DB_ROW) {
            *token = db_column_int64(s, 0);
            *valid_until_mono_ms = asked + db_column_int64(s, 1);
        } else if (step == DB_DONE) {
            rc = gw_fail(err, GW_E_CONFLICT, "another instance pushes site %s", site);
        } else {
            rc = store_fail_db(db, err, "push lease");
        }
    }
    db_finalize(s);
    reader_release(st, db);
    return rc;
}

void store_push_release(struct store *st, const char *site, int64_t token)
{
    struct db_stmt *s = NULL;
    struct db *db;

    if (!st->pg || !token)
        return;
    db = reader_acquire(st);
    if (stmt_prepare(db, SQL_LEASE_RELEASE, &s, NULL) == GW_OK) {
        db_bind_text(s, 1, site);
        db_bind_text(s, 2, st->owner);
        db_bind_int64(s, 3, token);
        if (db_step(s) != DB_DONE)
            gw_log(GW_LOG_WARN, "push-lease-release-failed", "site %s: %s", site, db_errmsg(db));
    }
    db_finalize(s);
    reader_release(st, db);
}

enum gw_code store_txn_push_fence(struct store_txn *txn, const char *site, int64_t token,
                                  struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;
    int step;

    if (!txn->st->pg)
        return GW_OK;
    if (txn->rec)
        return record_unsupported(txn, err);
    rc = stmt_txn(txn, SQL_LEASE_FENCE, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, site);
    db_bind_text(s, 2, txn->st->owner);
    db_bind_int64(s, 3, token);
    step = db_step(s);
    if (step == DB_DONE)
        rc = gw_fail(err, GW_E_CONFLICT, "the push lease of site %s was lost", site);
    else if (step != DB_ROW)
        rc = store_fail_db(txn->db, err, "push lease");
    stmt_release(s);
    return rc;
}
