/* sites.c -- which RIS sites may see which resources (resource_sites).
 *
 * A RIS sees exactly what its sites' referrals reference (DESIGN §7): the
 * referral, its Task, Appointment and DiagnosticReport carry their site, and
 * each resource a referral references is granted to the referral's site in
 * the referral's commit. A resource two referrals share is granted to both
 * sites. The primary key (site, type, id) makes every check an index seek
 * per site, and a site's listing of a type one range (searchsql.c).
 */
#include "store/store_int.h"

enum gw_code store_txn_site_grant(struct store_txn *txn, const char *type, const char *id,
                                  const char *site, struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    if (txn->rec)
        return record_site_grant(txn, type, id, site, err);
    rc = stmt_txn(txn, SQL_SITE_GRANT, &s, err);
    if (rc)
        return rc;
    db_bind_text(s, 1, type);
    db_bind_text(s, 2, id);
    db_bind_text(s, 3, site);
    if (db_step(s) != DB_DONE)
        rc = store_fail_db(txn->db, err, "site grant");
    stmt_release(s);
    return rc;
}

/* One seek per site (a RIS serves few): stops at the first that sees it. */
static enum gw_code probe(struct db *db, struct db_stmt *s, const char *type, const char *id,
                          const char *const *sites, size_t n_sites, bool *visible,
                          struct gw_error *err)
{
    size_t i;
    int step;

    *visible = false;
    for (i = 0; i < n_sites && !*visible; i++) {
        db_reset(s);
        db_bind_text(s, 1, type);
        db_bind_text(s, 2, id);
        db_bind_text(s, 3, sites[i]);
        step = db_step(s);
        if (step == DB_ROW)
            *visible = true;
        else if (step != DB_DONE)
            return store_fail_db(db, err, "site visibility");
    }
    return GW_OK;
}

enum gw_code store_site_visible(struct store *st, const char *type, const char *id,
                                const char *const *sites, size_t n_sites, bool *visible,
                                struct gw_error *err)
{
    struct db *db = reader_acquire(st);
    struct db_stmt *s;
    enum gw_code rc = stmt_prepare(db, SQL_SITE_VISIBLE, &s, err);

    *visible = false;
    if (!rc)
        rc = probe(db, s, type, id, sites, n_sites, visible, err);
    db_finalize(s);
    reader_release(st, db);
    return rc;
}

enum gw_code store_txn_site_visible(struct store_txn *txn, const char *type, const char *id,
                                    const char *const *sites, size_t n_sites, bool *visible,
                                    struct gw_error *err)
{
    struct db_stmt *s;
    enum gw_code rc;

    *visible = false;
    if (txn->rec)
        return record_site_visible(txn, type, id, sites, n_sites, visible, err);
    rc = stmt_txn(txn, SQL_SITE_VISIBLE, &s, err);
    if (rc)
        return rc;
    rc = probe(txn->db, s, type, id, sites, n_sites, visible, err);
    stmt_release(s);
    return rc;
}
