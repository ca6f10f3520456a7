/* test_search.c -- every search is driven by an index, and stays right.
 *
 * The plan cases ask SQLite for EXPLAIN QUERY PLAN of every fixed statement
 * of the store and of the statements each kind of search produces (token,
 * reference, uri, string prefix, :exact, :contains, date prefixes, _id,
 * _lastUpdated, :missing, :not, _sort, _total, paging over an older snapshot,
 * owner and site scope (resource_sites), conditional lookups, a
 * Subscription's matching, the auditor's chained patient search, AuditEvent
 * search by patient, entity-name and date, the export cursor, the RIS
 * lease, the roll-up and site grants), and fail when a plan scans a table
 * instead of seeking an index, or when the index named does not carry the
 * condition that should drive it.
 *
 * The result cases fill a store with a few thousand versions (updates,
 * deletions, two owners, two sites) and compare every kind of search, its
 * order, its total and paging over a snapshot while writes go on, with a
 * model of what the store should hold.
 *
 * With a PostgreSQL server (GW_TEST_PG_URL, as make unit sets it) the same
 * cases run again on a PostgreSQL store: the plans through EXPLAIN (FORMAT
 * JSON) of generic plans (the statements as prepared, whatever the values)
 * over tables seeded with tens of thousands of rows and analysed, failing on
 * a Seq Scan of any table that grows; the results against the same model.
 */
#include "check.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "store/pg_int.h"
#include "store/store_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/gw-search-XXXXXX";
static int n_db;
static const char *pg_url; /* the PostgreSQL test server, or NULL */
static bool on_pg;         /* the cases run on PostgreSQL stores */
static char pg_store[180]; /* the database of the last open_fresh() on PostgreSQL */

/* A new empty database on the test server; its URL in pg_store. */
static bool new_pg_database(void)
{
    struct pgc_opts o = {
        .conninfo = pg_url, .retry_min_ms = 50, .retry_max_ms = 50, .give_up_ms = 5000};
    struct pgc *c = NULL;
    struct gw_error err;
    char sql[80], name[40];
    const char *slash = strrchr(pg_url, '/');
    bool ok;

    snprintf(name, sizeof name, "plan_%d_%d", (int)getpid(), n_db++);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    ok = slash && pgc_open(&o, &c, &err) == GW_OK && pgc_command(c, "create", sql, &err) == GW_OK;
    if (!ok)
        fprintf(stderr, "new database: %s\n", err.msg);
    pgc_close(c);
    snprintf(pg_store, sizeof pg_store, "%.*s/%s", slash ? (int)(slash - pg_url) : 0, pg_url, name);
    return ok;
}

static struct store *open_fresh(char *path, size_t cap)
{
    static char url[300];
    struct config cfg;
    struct store *st = NULL;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    snprintf(path, cap, "%s/s%d.db", dir, n_db++);
    snprintf(url, sizeof url, "sqlite:%s", path);
    if (on_pg) {
        if (!new_pg_database())
            return NULL;
        snprintf(url, sizeof url, "%s", pg_store);
        snprintf(path, cap, "%s", pg_store);
    }
    cfg.store = url;
    cfg.instance_id = "plan-test";
    cfg.pg_connect_retry_max_ms = 1000;
    cfg.push_lease_s = 15;
    cfg.commit_timeout_ms = 30000;
    cfg.max_batch = 64;
    cfg.read_connections = 2;
    cfg.audit_hmac_key = "";
    if (store_open(&cfg, &st, &err) != GW_OK)
        fprintf(stderr, "store_open: %s\n", err.msg);
    return st;
}

/* ================================================================ plans */

static char *pg_plan_of(struct db *db, struct sql *q);

/* The plan of q's statement text, one detail per line (new string). */
static char *plan_of(struct db *db, struct sql *q)
{
    if (db_dialect(db) == DB_PG)
        return pg_plan_of(db, q);
    struct gw_buf out;
    struct db_stmt *s = NULL;
    struct gw_error err;
    size_t len;

    gw_buf_init(&out, 1 << 20);
    if (sql_prepare(db, q, &s, &err) != GW_OK) {
        gw_buf_printf(&out, "PREPARE FAILED: %s\n%s", err.msg, q->text.data ? q->text.data : "");
    } else {
        while (db_step(s) == DB_ROW)
            gw_buf_printf(&out, "%s\n", db_column_text(s, 3));
    }
    db_finalize(s);
    return gw_buf_steal(&out, &len);
}

/* ================================================================ PostgreSQL plans */

/* Tables that grow with the store: never read whole. */
static const char *const big_tables[] = {
    "resources", "versions", "search_current", "search_history", "audit",         "audit_index",
    "outbox",    "inbound",  "resource_sites", "audit_rollup",   "notifications", NULL};

static bool is_big(const char *table)
{
    size_t i;

    for (i = 0; table && big_tables[i]; i++)
        if (strcmp(table, big_tables[i]) == 0)
            return true;
    return false;
}

/* Appends each node of the JSON plan as "Node Type on Relation (Index)" lines; a Seq
 * Scan of a big table as "SCAN table" (what scans_a_table() looks for). */
static void walk_plan(json_t *node, struct gw_buf *out)
{
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    const char *index = json_string_value(json_object_get(node, "Index Name"));
    json_t *kids = json_object_get(node, "Plans"), *kid;
    size_t i;

    if (type && strcmp(type, "Seq Scan") == 0 && is_big(rel))
        gw_buf_printf(out, "SCAN %s (Seq Scan)\n", rel);
    else if (type)
        gw_buf_printf(out, "%s%s%s%s%s\n", type, rel ? " on " : "", rel ? rel : "",
                      index ? " using " : "", index ? index : "");
    json_array_foreach (kids, i, kid)
        walk_plan(kid, out);
}

/* Appends value i of q as a literal: a search's own values, so that its plan is the
 * one PostgreSQL makes for them (its LIMIT, its ranges). */
static void put_value(struct gw_buf *ex, const struct sql *q, int i)
{
    const struct bind *b = &q->binds[i];
    const char *p;

    if (b->is_int) {
        gw_buf_printf(ex, "%lld", (long long)b->i);
        return;
    }
    if (!b->s) {
        gw_buf_puts(ex, "NULL");
        return;
    }
    gw_buf_putc(ex, '\'');
    for (p = b->s; *p; p++) {
        if (*p == '\'')
            gw_buf_putc(ex, '\'');
        gw_buf_putc(ex, *p);
    }
    gw_buf_putc(ex, '\'');
}

/* EXPLAIN (FORMAT JSON) of q: prepared, then explained as executed. A fixed statement
 * (no values of its own) gets its generic plan, with '1' for every value
 * (force_generic_plan: the plan does not depend on them); a search, its own values'. */
static char *pg_plan_of(struct db *db, struct sql *q)
{
    struct gw_buf out, ex;
    struct gw_error err;
    struct db_stmt *s = NULL;
    char *text = NULL, *plan = NULL;
    int n = 0, i;
    size_t len;
    json_t *doc;

    gw_buf_init(&out, 1 << 20);
    gw_buf_init(&ex, 1 << 16);
    if (gw_buf_finish(&q->text, "q", &err) == GW_OK)
        text = db_pg_translate(q->text.data, &n);
    db_exec(db, q->n_binds == (size_t)n && n
                    ? "DEALLOCATE ALL; SET plan_cache_mode = auto"
                    : "DEALLOCATE ALL; SET plan_cache_mode = force_generic_plan");
    gw_buf_printf(&ex, "PREPARE plan_me AS %s", text ? text : "");
    if (!text || gw_buf_finish(&ex, "q", &err) || db_exec(db, ex.data) != DB_OK) {
        gw_buf_printf(&out, "PREPARE FAILED: %s\n%s", db_errmsg(db), text ? text : "");
        free(text);
        gw_buf_cleanup(&ex);
        return gw_buf_steal(&out, &len);
    }
    gw_buf_cleanup(&ex);
    gw_buf_init(&ex, 1 << 16);
    gw_buf_puts(&ex, "EXPLAIN (FORMAT JSON) EXECUTE plan_me");
    for (i = 0; i < n; i++) {
        gw_buf_puts(&ex, i ? ", " : "(");
        if (q->n_binds == (size_t)n)
            put_value(&ex, q, i);
        else
            gw_buf_puts(&ex, "'1'");
    }
    gw_buf_puts(&ex, n ? ")" : "");
    if (gw_buf_finish(&ex, "q", &err) == GW_OK && db_prepare(db, ex.data, false, &s) == DB_OK &&
        db_step(s) == DB_ROW)
        plan = gw_strdup(db_column_text(s, 0));
    doc = plan ? json_loads(plan, 0, NULL) : NULL;
    if (!doc)
        gw_buf_printf(&out, "PREPARE FAILED: %s\n%s", db_errmsg(db), text);
    else
        walk_plan(json_object_get(json_array_get(doc, 0), "Plan"), &out);
    if (getenv("SHOW_PG_PLANS"))
        fprintf(stderr, "%s\n%s", text, plan ? plan : "");
    json_decref(doc);
    free(plan);
    free(text);
    db_finalize(s);
    gw_buf_cleanup(&ex);
    return gw_buf_steal(&out, &len);
}

/* Fills the tables that grow with tens of thousands of rows of many distinct values
 * and analyses them, so that the planner weighs a scan against the indexes. */
static bool seed_pg(struct db *db)
{
    static const char *const seeds[] = {
        "INSERT INTO resources (type, id, seq, version, deleted, owner, site)"
        " SELECT (ARRAY['Patient','ServiceRequest','Task','Organization'])[1 + g % 4], 'id' || g,"
        " g, 1, 0, 'org' || (g % 50), 'site' || (g % 5) FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO versions SELECT g, g, 1, g * 1000, 0, '{}' FROM generate_series(1::bigint, "
        "20000) g",
        "INSERT INTO search_current SELECT g % 97, 'v' || g, g % 1000, g, g % 1000 + 9, '', g"
        " FROM generate_series(1::bigint, 40000) g",
        "INSERT INTO search_history SELECT g % 97, 'v' || g, 0, g + 1, g, 0, '', g"
        " FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO audit SELECT g, 'a' || g, g * 1000, '{}', repeat('0', 64), repeat('0', 64)"
        " FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO audit_index SELECT g % 97, 'v' || g, g, '' FROM generate_series(1::bigint, "
        "40000) g",
        "INSERT INTO outbox (control_id, site, kind, ref_type, ref_id, message, state, created,"
        " updated) SELECT 'c' || g, 'site' || (g % 5), 'order', 'ServiceRequest', 'id' || g,"
        " '\\x00', CASE WHEN g % 100 = 0 THEN 0 WHEN g % 100 = 1 THEN 3 ELSE 2 END, g, g"
        " FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO inbound SELECT 'cl' || (g % 10), 's', 'c' || g, g, '\\x00'"
        " FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO resource_sites SELECT 'site' || (g % 5), 'ServiceRequest', 'id' || g"
        " FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO audit_rollup SELECT g * 3600000, 'c' || (g % 20), '', g % 4, 1, g"
        " FROM generate_series(1::bigint, 20000) g",
        "INSERT INTO subscriptions (id, owner, type, criteria, enabled)"
        " SELECT 's' || g, 'org' || g, 'Task', 'Task?status=completed', 1"
        " FROM generate_series(1::bigint, 10) g",
        "INSERT INTO notifications (subscription, position, event, kind, state, next_at,"
        " created, updated) SELECT 's' || (g % 10), g, g, 1,"
        " CASE WHEN g % 100 = 0 THEN 0 ELSE 2 END, g, g, g FROM generate_series(1::bigint, 20000) "
        "g",
        "VACUUM ANALYZE",
    };
    size_t i;

    for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        if (db_exec(db, seeds[i]) != DB_OK) {
            fprintf(stderr, "seed: %s\n", db_errmsg(db));
            return false;
        }
    return true;
}

/* A connection of its own to the store at path (a file, or a PostgreSQL URL: the
 * database then seeded for its plans). */
static enum gw_code open_plain(const char *path, struct db **db)
{
    struct pgc_opts o = {
        .conninfo = path, .retry_min_ms = 50, .retry_max_ms = 50, .give_up_ms = 5000};

    if (!on_pg)
        return db_open_sqlite(path, false, db, NULL);
    if (db_open_pg(&o, db, NULL) != GW_OK)
        return GW_E_STORE;
    return seed_pg(*db) ? GW_OK : GW_E_STORE;
}

/* A SCAN of anything but a subquery's rows, unless allowed names it. */
static bool scans_a_table(const char *plan, const char *allowed)
{
    const char *line = plan;

    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);

        if (n >= 5 && strncmp(line, "SCAN ", 5) == 0 && strncmp(line, "SCAN m", 6) != 0 &&
            strncmp(line, "SCAN (subquery", 14) != 0 && strncmp(line, "SCAN CONSTANT", 13) != 0 &&
            !(allowed && n >= strlen(allowed) && strncmp(line, allowed, strlen(allowed)) == 0))
            return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

static int plan_failures;

/* Checks a plan: no table scanned, and each of the fragments present. */
static void expect_plan(const char *name, const char *plan, const char *allowed,
                        const char *const *fragments)
{
    bool ok = plan && !strstr(plan, "PREPARE FAILED") && !scans_a_table(plan, allowed);

    if (getenv("SHOW_PLANS"))
        fprintf(stderr, "plan of %s:\n%s", name, plan ? plan : "(none)\n");
    size_t i;

    for (i = 0; ok && !on_pg && fragments && fragments[i]; i++)
        ok = strstr(plan, fragments[i]) != NULL;
    if (!ok) {
        plan_failures++;
        fprintf(stderr, "plan of %s:\n%s", name, plan ? plan : "(none)\n");
        if (fragments && fragments[i > 0 ? i - 1 : 0])
            fprintf(stderr, "  wanted: %s\n", fragments[i > 0 ? i - 1 : 0]);
    }
}

static void plan_statement(struct db *db, const char *name, const char *text, const char *allowed)
{
    struct sql q;
    char *plan;

    sql_init(&q);
    if (db_dialect(db) == DB_SQLITE)
        sql_text(&q, "EXPLAIN QUERY PLAN ");
    sql_text(&q, text);
    plan = plan_of(db, &q);
    expect_plan(name, plan, allowed, NULL);
    free(plan);
    sql_cleanup(&q);
}

static void every_fixed_statement_seeks_an_index(void)
{
    char path[200];
    struct store *st = open_fresh(path, sizeof path);
    struct db *db = NULL;
    size_t i;

    CHECK(st != NULL);
    CHECK_INT(open_plain(path, &db), GW_OK);
    plan_failures = 0;
    for (i = 0; i < store_n_statements; i++) {
        const char *allowed = NULL;
        const char *sql = store_statements[i].sql;
        bool pg = db_dialect(db) == DB_PG;

        /* the audit index's rows by the set: one text per dialect */
        if (pg ? sql == SQL_AUDIT_INDEX_INSERT_8 || sql == SQL_AUDIT_INDEX_INSERT_32
               : sql == SQL_AUDIT_INDEX_INSERT_8_PG || sql == SQL_AUDIT_INDEX_INSERT_32_PG)
            continue;
        if (sql == SQL_AUDIT_INDEX_INSERT_8)
            allowed = "SCAN 8 CONSTANT ROWS"; /* the rows it inserts */
        if (sql == SQL_AUDIT_INDEX_INSERT_32)
            allowed = "SCAN 32 CONSTANT ROWS";
        /* the partial indexes of unfinished and of dead messages: O(backlog) */
        if (store_statements[i].sql == SQL_OUTBOX_OPEN_COUNTS)
            allowed = "SCAN outbox USING COVERING INDEX outbox_open";
        if (store_statements[i].sql == SQL_OUTBOX_DEAD_COUNTS)
            allowed = "SCAN outbox USING INDEX outbox_dead";
        /* /metrics: one row per Subscription (a handful), its counts by seeks */
        if (store_statements[i].sql == SQL_NOTE_STATS)
            allowed = "SCAN s USING COVERING INDEX sqlite_autoindex_subscriptions_1";
        plan_statement(db, store_statements[i].name, store_statements[i].sql, allowed);
    }
    CHECK_INT(plan_failures, 0);
    CHECK(store_n_statements >= 50);
    db_close(db);
    store_destroy(st);
}

/* The plan of one fixed statement must show each of fragments. */
static void plan_fixed(struct db *db, const char *name, const char *text,
                       const char *const *fragments)
{
    struct sql q;
    char *plan;

    sql_init(&q);
    if (!on_pg)
        sql_text(&q, "EXPLAIN QUERY PLAN ");
    q.pg = on_pg;
    sql_text(&q, text);
    plan = plan_of(db, &q);
    expect_plan(name, plan, NULL, fragments);
    free(plan);
    sql_cleanup(&q);
}

/* One search case: a query, and what its plan must show. */
struct plan_case {
    const char *name;
    struct store_query q;
    const char *const *want;       /* fragments of the settled (first page) plan */
    const char *const *want_older; /* more fragments over an older snapshot */
};

static void plan_search(struct db *db, const struct plan_case *c, bool settled,
                        enum search_part part)
{
    int64_t widths[8] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000};
    struct search_bounds b = {.snapshot = 100, .settled = settled, .seq_hi = 100, .widths = widths};
    struct sql q;
    char name[200], *plan;
    size_t i;

    for (i = 0; i < c->q.n_conds; i++)
        if (strcmp(c->q.conds[i].param, "_lastUpdated") == 0 ||
            strcmp(c->q.conds[i].param, "date") == 0) {
            b.seq_lo = 10;
            b.seq_hi = 90;
        }
    if (on_pg) { /* a recent snapshot of the seeded store: 20000 seqs, the last 100 after it */
        b.snapshot += 19800;
        b.seq_lo += b.seq_lo ? 19800 : 0;
        b.seq_hi += 19800;
    }
    struct store_query qq = c->q;

    if (!qq.count)
        qq.count = 20;
    snprintf(name, sizeof name, "%s (%s%s)", c->name, settled ? "first page" : "older snapshot",
             part == SEARCH_COUNT ? ", total"
             : part == SEARCH_ALL ? ", cursor"
                                  : "");
    sql_init(&q);
    if (!on_pg)
        sql_text(&q, "EXPLAIN QUERY PLAN ");
    q.pg = on_pg;
    search_sql_build(&qq, &b, part, &q);
    plan = plan_of(db, &q);
    /* PostgreSQL: the export of a whole listing (no condition to seek) reads most of the
     * type, which a hash join over whole tables does best */
    expect_plan(name, plan,
                on_pg && part == SEARCH_ALL && strstr(c->name, "listing") ? "SCAN " : NULL,
                part != SEARCH_COUNT ? c->want : NULL);
    if (!settled && part != SEARCH_COUNT && c->want_older)
        expect_plan(name, plan, NULL, c->want_older);
    /* a cursor streams the matches as m yields them: no sort of whole rows */
    if (part == SEARCH_ALL && !on_pg &&
        (!plan || !strstr(plan, "SCAN m") || strstr(strstr(plan, "SCAN m"), "TEMP B-TREE"))) {
        plan_failures++;
        fprintf(stderr, "plan of %s sorts the rows it returns:\n%s", name, plan ? plan : "");
    }
    free(plan);
    sql_cleanup(&q);
}

#define FRAGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Index seeks the plans name (SQLite 3.40 wording). */
#define EQ_CURRENT  "SEARCH i USING PRIMARY KEY (pid=? AND value=? AND lo=? AND seq<?)"
#define EQ_HISTORY  "SEARCH i USING PRIMARY KEY (pid=? AND value=? AND until>?)"
#define PREFIX_SEEK "SEARCH i USING PRIMARY KEY (pid=? AND value>? AND value<?)"
#define BY_SEQ      "USING COVERING INDEX search_current_by_seq (seq=? AND pid=?"
#define BY_SEQ_OLD  "USING COVERING INDEX search_history_by_seq (seq=? AND pid=?"
#define BY_RID      "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"
#define SITE_SEEK   "SEARCH g USING PRIMARY KEY (site=? AND type=? AND id=?)"
#define SITE_LIST   "SEARCH s USING PRIMARY KEY (site=? AND type=?)"
#define AUDIT_EQ    "SEARCH i USING PRIMARY KEY (pid=? AND value=? AND seq<?)"

static void every_search_kind_is_driven_by_an_index(void)
{
    char path[200];
    struct store *st = open_fresh(path, sizeof path);
    struct db *db = NULL;
    static const char *const sites[] = {"bachaumont", "drouot"};
    struct store_value ident = {.system = "urn:x", .value = "123"};
    struct store_value two_codes[] = {{.system = "urn:c", .value = "a"}, {.value = "b"}};
    struct store_value focus = {.value = "ServiceRequest/1"};
    struct store_value uri = {.value = "http://x/y"};
    struct store_value family = {.value = "dupr"};
    struct store_value exact = {.value = "Dupré"};
    struct store_value day = {.prefix = STORE_EQ, .lo = 1000, .hi = 2000};
    struct store_value since = {.prefix = STORE_GE, .lo = 1000, .hi = 2000};
    struct store_value before = {.prefix = STORE_LT, .lo = 1000, .hi = 2000};
    struct store_value ids[] = {{.value = "a"}, {.value = "b"}};
    struct store_value active = {.value = "active"};
    struct store_value event = {.value = "ServiceRequest/1"};
    struct store_value create = {.value = "C"};
    struct store_cond c_ident = {"identifier", STORE_TOKEN, .values = &ident, .n_values = 1};
    struct store_cond c_codes = {"code", STORE_TOKEN, .values = two_codes, .n_values = 2};
    struct store_cond c_focus = {"focus", STORE_REFERENCE, .values = &focus, .n_values = 1};
    struct store_cond c_uri = {"instantiates-uri", STORE_URI, .values = &uri, .n_values = 1};
    struct store_cond c_family = {"family", STORE_STRING, .values = &family, .n_values = 1};
    struct store_cond c_exact = {"family:exact", STORE_STRING, .exact = true, .values = &exact,
                                 .n_values = 1};
    struct store_cond c_contains = {"family", STORE_STRING, .contains = true, .values = &family,
                                    .n_values = 1};
    struct store_cond c_day = {"authored", STORE_DATE, .values = &day, .n_values = 1};
    struct store_cond c_since = {"authored", STORE_DATE, .values = &since, .n_values = 1};
    struct store_cond c_before = {"authored", STORE_DATE, .values = &before, .n_values = 1};
    struct store_cond c_ids = {"_id", STORE_TOKEN, .values = ids, .n_values = 2};
    struct store_cond c_updated = {"_lastUpdated", STORE_DATE, .values = &since, .n_values = 1};
    struct store_cond c_missing = {"performer", STORE_REFERENCE, .missing = true};
    struct store_cond c_not = {"status", STORE_TOKEN, .negate = true, .values = &active,
                               .n_values = 1};
    struct store_cond c_status = {"status", STORE_TOKEN, .values = &active, .n_values = 1};
    struct store_cond c_entity = {"entity", STORE_REFERENCE, .values = &event, .n_values = 1};
    struct store_cond c_action = {"action", STORE_TOKEN, .values = &create, .n_values = 1};
    struct store_cond c_when = {"date", STORE_DATE, .values = &since, .n_values = 1};
    struct store_value patients[] = {{.value = "Patient/a"}, {.value = "Patient/b"}};
    struct store_value request = {.value = "3f2a"};
    struct store_value control = {.value = "GW0A1B2C"};
    struct store_value completed = {.value = "completed"};
    struct store_value changed = {.value = "t1"};
    struct store_value nir = {.system = "urn:oid:1.2.250.1.213.1.4.8", .value = "283052724101267"};
    struct store_cond c_patients = {"patient", STORE_REFERENCE, .values = patients, .n_values = 2};
    struct store_cond c_entity_name = {"entity-name", STORE_STRING, .values = &request,
                                       .n_values = 1};
    struct store_cond c_entity_exact = {"entity-name:exact", STORE_STRING, .exact = true,
                                        .values = &control, .n_values = 1};
    struct store_cond c_nir = {"identifier", STORE_TOKEN, .values = &nir, .n_values = 1};
    /* a Subscription's criteria Task?status=completed, limited to the Task just written */
    struct store_cond matching[] = {{"status", STORE_TOKEN, .values = &completed, .n_values = 1},
                                    {"_id", STORE_TOKEN, .values = &changed, .n_values = 1}};
    struct store_cond export_by_patient[] = {
        {"patient", STORE_REFERENCE, .values = patients, .n_values = 1}, c_when};
    struct store_cond combo[] = {c_ident, c_status, c_day, c_updated, c_not};
    struct store_cond audit_combo[] = {c_entity, c_action, c_when};
    struct store_sort by_date_desc = {"authored", STORE_DATE, true};
    struct store_sort by_updated_desc = {"_lastUpdated", STORE_DATE, true};
    struct store_sort by_id = {"_id", STORE_TOKEN, false};
    struct store_sort by_date_desc_audit = {"date", STORE_DATE, true};
#define Q(type_, conds_, n_) .type = type_, .conds = conds_, .n_conds = n_
    const struct plan_case cases[] = {
        {"token", {Q("Patient", &c_ident, 1)}, FRAGS(EQ_CURRENT), FRAGS(EQ_HISTORY)},
        {"token, two values", {Q("ServiceRequest", &c_codes, 1)}, FRAGS(EQ_CURRENT), NULL},
        {"reference (Task?focus=)", {Q("Task", &c_focus, 1)}, FRAGS(EQ_CURRENT), NULL},
        {"conditional lookup in a GP's scope",
         {Q("ServiceRequest", &c_ident, 1), .owner = "orgA", .count = 2},
         FRAGS(EQ_CURRENT, BY_RID),
         NULL},
        {"uri", {Q("ServiceRequest", &c_uri, 1)}, FRAGS(EQ_CURRENT), NULL},
        {"string prefix",
         {Q("Patient", &c_family, 1)},
         FRAGS(PREFIX_SEEK),
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value>? AND value<?)")},
        {"string :exact", {Q("Patient", &c_exact, 1)}, FRAGS(EQ_CURRENT), NULL},
        {"string :contains in a GP's scope",
         {Q("Patient", &c_contains, 1), .owner = "orgA"},
         FRAGS("SEARCH r USING INDEX resources_by_owner (type=? AND owner=? AND seq<?)", BY_SEQ),
         NULL},
        {"date eq",
         {Q("ServiceRequest", &c_day, 1)},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND lo>? AND lo<?)"),
         FRAGS(EQ_HISTORY)},
        {"date ge",
         {Q("ServiceRequest", &c_since, 1)},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND lo>?)"),
         NULL},
        {"date lt",
         {Q("ServiceRequest", &c_before, 1)},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND lo<?)"),
         NULL},
        {"_id",
         {Q("ServiceRequest", &c_ids, 1), .owner = "orgA"},
         FRAGS("SEARCH r USING INDEX sqlite_autoindex_resources_1 (type=? AND id=?)"),
         FRAGS("SEARCH x USING INTEGER PRIMARY KEY (rowid=?)")},
        {"_lastUpdated in a GP's scope",
         {Q("ServiceRequest", &c_updated, 1), .owner = "orgA"},
         FRAGS("SEARCH r USING INDEX resources_by_owner (type=? AND owner=? AND seq>? AND seq<?)"),
         FRAGS("resources_by_owner (type=? AND owner=? AND seq>?)")},
        {":missing in a RIS's scope (its sites' listing)",
         {Q("ServiceRequest", &c_missing, 1), .sites = sites, .n_sites = 2},
         FRAGS(SITE_LIST, "SEARCH r USING INDEX sqlite_autoindex_resources_1 (type=? AND id=?)",
               BY_SEQ),
         FRAGS(BY_SEQ_OLD)},
        {"RIS listing", {Q("Task", NULL, 0), .sites = sites, .n_sites = 2}, FRAGS(SITE_LIST), NULL},
        {"Task?focus= in a RIS's scope",
         {Q("Task", &c_focus, 1), .sites = sites, .n_sites = 2},
         FRAGS(EQ_CURRENT, BY_RID, SITE_SEEK),
         FRAGS(EQ_HISTORY)},
        {"_id in a RIS's scope",
         {Q("Patient", &c_ids, 1), .sites = sites, .n_sites = 1},
         FRAGS("SEARCH r USING INDEX sqlite_autoindex_resources_1 (type=? AND id=?)", SITE_SEEK),
         NULL},
        {"a Subscription's matching (criteria, the changed resource, the owner)",
         {Q("Task", matching, 2), .owner = "orgA", .count = 1},
         FRAGS("SEARCH r USING INDEX sqlite_autoindex_resources_1 (type=? AND id=?)",
               "search_current_by_seq (seq=? AND pid=? AND value=?)"),
         NULL},
        {"the auditor's patient.identifier (Patients of every organisation)",
         {Q("Patient", &c_nir, 1), .count = 100},
         FRAGS(EQ_CURRENT),
         NULL},
        {"the auditor's patient.name", {Q("Patient", &c_family, 1)}, FRAGS(PREFIX_SEEK), NULL},
        {":not, admin listing",
         {Q("ServiceRequest", &c_not, 1)},
         FRAGS("SEARCH r USING INDEX", BY_SEQ),
         NULL},
        {"five conditions",
         {Q("ServiceRequest", combo, 5), .owner = "orgA"},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND lo=? AND seq>?", BY_RID,
               "SEARCH v USING INTEGER PRIMARY KEY (rowid=?)", BY_SEQ),
         FRAGS(EQ_HISTORY, BY_SEQ_OLD)},
        {"_sort=-authored",
         {Q("ServiceRequest", &c_status, 1), .sorts = &by_date_desc, .n_sorts = 1},
         FRAGS(EQ_CURRENT, BY_SEQ),
         NULL},
        {"_sort=-_lastUpdated, GP listing",
         {Q("ServiceRequest", NULL, 0), .owner = "orgA", .sorts = &by_updated_desc, .n_sorts = 1},
         FRAGS("SEARCH r USING INDEX resources_by_owner (type=? AND owner=? AND seq<?)"),
         NULL},
        {"_sort=_id",
         {Q("Task", &c_focus, 1), .sorts = &by_id, .n_sorts = 1},
         FRAGS(EQ_CURRENT, BY_RID),
         NULL},
        {"paging", {Q("Task", &c_focus, 1), .offset = 40}, FRAGS(EQ_CURRENT), FRAGS(EQ_HISTORY)},
        {"AuditEvent entity",
         {Q("AuditEvent", &c_entity, 1)},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND seq<?)"),
         NULL},
        {"AuditEvent entity, action, date",
         {Q("AuditEvent", audit_combo, 3)},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND seq>? AND seq<?)",
               "SEARCH j USING PRIMARY KEY (pid=? AND value=? AND seq=?)",
               "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"),
         NULL},
        {"AuditEvent date",
         {Q("AuditEvent", &c_when, 1)},
         FRAGS("SEARCH a USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
         NULL},
        {"AuditEvent _id",
         {Q("AuditEvent", &c_ids, 1)},
         FRAGS("SEARCH a USING COVERING INDEX sqlite_autoindex_audit_1 (id=?"),
         NULL},
        {"AuditEvent patient (chained patient.identifier: two Patients)",
         {Q("AuditEvent", &c_patients, 1)},
         FRAGS(AUDIT_EQ, "MERGE (UNION)"),
         NULL},
        {"AuditEvent entity-name",
         {Q("AuditEvent", &c_entity_name, 1)},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value>? AND value<?)"),
         NULL},
        {"AuditEvent entity-name:exact",
         {Q("AuditEvent", &c_entity_exact, 1)},
         FRAGS(AUDIT_EQ),
         NULL},
        {"AuditEvent export: patient and period, newest first",
         {Q("AuditEvent", export_by_patient, 2), .sorts = &by_date_desc_audit, .n_sorts = 1},
         FRAGS("SEARCH i USING PRIMARY KEY (pid=? AND value=? AND seq>? AND seq<?)"),
         NULL},
    };
    size_t i;

    CHECK(st != NULL);
    CHECK_INT(open_plain(path, &db), GW_OK);
    plan_failures = 0;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plan_search(db, &cases[i], true, SEARCH_PAGE);
        plan_search(db, &cases[i], false, SEARCH_PAGE);
        plan_search(db, &cases[i], true, SEARCH_COUNT);
        plan_search(db, &cases[i], false, SEARCH_COUNT);
        plan_search(db, &cases[i], true, SEARCH_ALL); /* store_search_cursor() (exports) */
    }
    CHECK_INT(plan_failures, 0);
    db_close(db);
    store_destroy(st);
}

/* The statements of site grants, the roll-up and the subscription matcher
 * seek the key that carries their condition. */
static void grants_roll_up_and_subscriptions_seek_their_keys(void)
{
    char path[200];
    struct store *st = open_fresh(path, sizeof path);
    struct db *db = NULL;

    CHECK(st != NULL);
    CHECK_INT(open_plain(path, &db), GW_OK);
    plan_failures = 0;
    plan_fixed(db, "site visible", SQL_SITE_VISIBLE,
               FRAGS("SEARCH resource_sites USING PRIMARY KEY (site=? AND type=? AND id=?)"));
    plan_fixed(db, "roll-up hours", SQL_ROLLUP_HOURS,
               FRAGS("SEARCH audit_rollup USING PRIMARY KEY (hour>? AND hour<?)"));
    plan_fixed(db, "roll-up clients", SQL_ROLLUP_CLIENTS,
               FRAGS("SEARCH audit_rollup USING PRIMARY KEY (hour>? AND hour<?)"));
    plan_fixed(db, "subscriptions of an owner", SQL_SUBSCRIPTIONS_OF,
               FRAGS("SEARCH subscriptions USING INDEX subscriptions_by_owner (owner=?"));
    plan_fixed(db, "notification heads", SQL_NOTE_HEADS, FRAGS("notifications_by_state (state=?"));
    CHECK_INT(plan_failures, 0);
    db_close(db);
    store_destroy(st);
}

static void ris_lease_seeks_the_outbox_indexes(void)
{
    char path[200];
    struct store *st = open_fresh(path, sizeof path);
    struct db *db = NULL;
    static const char *const sites[] = {"bachaumont", "drouot"};
    struct sql q;
    char *plan;

    CHECK_INT(open_plain(path, &db), GW_OK);
    plan_failures = 0;
    sql_init(&q);
    if (!on_pg)
        sql_text(&q, "EXPLAIN QUERY PLAN ");
    q.pg = on_pg;
    outbox_lease_sql(&q, sites, 2, 1000, 100);
    plan = plan_of(db, &q);
    expect_plan("outbox lease", plan, NULL,
                FRAGS("SEARCH w USING INDEX outbox_open (site=?)", "MERGE (UNION ALL)",
                      "SEARCH e USING INDEX outbox_by_ref (ref_type=? AND ref_id=? AND seq<?)",
                      "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"));
    /* the sites merge in seq order: no sort before the page's own */
    CHECK(on_pg ||
          (plan && strstr(plan, "SCAN m") &&
           !strstr(strstr(plan, "SCAN m"), "TEMP B-TREE FOR ORDER BY\nSEARCH") &&
           (!strstr(plan, "TEMP B-TREE") || strstr(plan, "TEMP B-TREE") > strstr(plan, "SCAN m"))));
    free(plan);
    sql_cleanup(&q);
    CHECK_INT(plan_failures, 0);
    db_close(db);
    store_destroy(st);
}

/* Parameter ids are hashes: no two parameters of the model may share one. */
struct named_id {
    int64_t id;
    char name[160];
};

static int by_id(const void *a, const void *b)
{
    const struct named_id *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

static bool add_named(struct named_id **ids, size_t *n, size_t *cap, const char *type,
                      const char *name)
{
    struct named_id *grown = gw_grow(*ids, cap, *n, sizeof **ids, 1024);

    if (!grown)
        return false;
    *ids = grown;
    grown[*n].id = store_param_id(type, name);
    snprintf(grown[*n].name, sizeof grown[*n].name, "%s.%s", type, name);
    (*n)++;
    return true;
}

static void parameter_ids_never_collide(void)
{
    static const char *const audit_params[] = {
        "type",    "subtype", "action",      "outcome",           "agent",
        "address", "entity",  "entity-name", "entity-name:exact", "patient"};
    struct named_id *ids = NULL;
    size_t n = 0, cap = 0, i, collisions = 0;
    bool ok = true;
    uint32_t t;

    for (t = 0; ok && t < fhir_model.n_structs; t++) {
        const char *type = fhir_model_pool + fhir_model_structs[t].name;
        struct fhir_search_param sp;
        char exact[200];

        if (!fhir_is_resource_type(type))
            continue;
        for (i = 0; ok && i < fhir_search_param_count(type); i++) {
            if (!fhir_search_param_get(type, i, &sp))
                continue;
            snprintf(exact, sizeof exact, "%s:exact", sp.name);
            ok = add_named(&ids, &n, &cap, type, sp.name) && add_named(&ids, &n, &cap, type, exact);
        }
    }
    for (i = 0; ok && i < sizeof audit_params / sizeof audit_params[0]; i++)
        ok = add_named(&ids, &n, &cap, "AuditEvent", audit_params[i]);
    CHECK(ok);
    CHECK(n > 300);
    if (ids)
        qsort(ids, n, sizeof *ids, by_id);
    for (i = 1; i < n; i++) {
        if (ids[i].id == ids[i - 1].id && strcmp(ids[i].name, ids[i - 1].name) != 0) {
            fprintf(stderr, "parameter id %lld: %s and %s\n", (long long)ids[i].id, ids[i - 1].name,
                    ids[i].name);
            collisions++;
        }
    }
    CHECK_INT(collisions, 0);
    free(ids);
}

/* ================================================================ results */

#define T_RES    1500
#define T_VERS   6
#define T_STATUS 3
#define T_CODES  7
#define T_FOCI   40
#define T_NAMES  90
#define T_DAYS   25
#define DAY_MS   86400000LL
#define DAY0     1780000000000LL /* a UTC midnight in 2026 */
#define T_BATCH  100

static const char *const status_names[T_STATUS] = {"requested", "accepted", "completed"};

struct tver {
    int64_t seq, ms;
    int status, code, focus, name, day; /* focus -1: none */
    bool deleted;
};

struct tres {
    char id[16];
    int owner, site;
    struct tver v[T_VERS];
    int n_v;
};

static struct tres model[T_RES];

struct op {
    int r;           /* model index */
    struct tver now; /* the version to write */
};

struct batch {
    struct op ops[T_BATCH];
    int n;
};

static void entries_of(const struct tres *t, const struct tver *v, char names[2][32], char *code,
                       char *focus, struct store_index_entry *e, size_t *n)
{
    *n = 0;
    snprintf(code, 16, "c%d", v->code);
    snprintf(names[0], 32, "Name%03d", v->name);
    snprintf(names[1], 32, "name%03d", v->name);
    e[(*n)++] = (struct store_index_entry){"status", NULL, status_names[v->status], 0, 0};
    e[(*n)++] = (struct store_index_entry){"code", "urn:c", code, 0, 0};
    if (v->focus >= 0) {
        snprintf(focus, 40, "ServiceRequest/sr%d", v->focus);
        e[(*n)++] = (struct store_index_entry){"focus", NULL, focus, 0, 0};
    }
    e[(*n)++] = (struct store_index_entry){"name", NULL, names[1], 0, 0};
    e[(*n)++] = (struct store_index_entry){"name:exact", NULL, names[0], 0, 0};
    e[(*n)++] = (struct store_index_entry){"authored", NULL, NULL, DAY0 + v->day * DAY_MS,
                                           DAY0 + (v->day + 1) * DAY_MS};
    (void)t;
}

static enum gw_code batch_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    static const char *const owners[] = {"orgA", "orgB"}, *const site_ids[] = {"s1", "s2"};
    struct batch *b = ctx;
    int i;

    for (i = 0; i < b->n; i++) {
        struct tres *t = &model[b->ops[i].r];
        struct tver *v = &b->ops[i].now;
        struct store_index_entry e[8];
        char names[2][32], code[16], focus[40];
        size_t n;
        json_t *res = json_pack("{s:s, s:s}", "resourceType", "Task", "id", t->id);
        struct store_put put = {.type = "Task",
                                .id = t->id,
                                .resource = res,
                                .owner = owners[t->owner],
                                .site = site_ids[t->site],
                                .index = e,
                                .deleted = v->deleted};
        struct store_written w;
        enum gw_code rc;

        entries_of(t, v, names, code, focus, e, &n);
        put.n_index = n;
        rc = res ? store_txn_put(txn, &put, &w, err) : GW_E_NOMEM;
        json_decref(res);
        if (rc)
            return rc;
        v->seq = w.seq;
        v->ms = w.last_updated_ms;
    }
    return GW_OK;
}

/* Writes b, then records its versions in the model. */
static void run_batch(struct store *st, struct batch *b)
{
    int i;

    CHECK_INT(store_write(st, batch_apply, NULL, b, NULL), GW_OK);
    for (i = 0; i < b->n; i++) {
        struct tres *t = &model[b->ops[i].r];

        if (t->n_v < T_VERS)
            t->v[t->n_v++] = b->ops[i].now;
    }
    b->n = 0;
}

static unsigned rnd_state = 12345;

static int rnd(int n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (int)((rnd_state >> 8) % (unsigned)n);
}

static void add_op(struct store *st, struct batch *b, int r, const struct tver *v)
{
    b->ops[b->n].r = r;
    b->ops[b->n].now = *v;
    if (++b->n == T_BATCH)
        run_batch(st, b);
}

static void create_all(struct store *st, struct batch *b, int from, int to)
{
    int r;

    for (r = from; r < to; r++) {
        struct tver v = {.status = 0,
                         .code = r % T_CODES,
                         .focus = r % 11 ? r % T_FOCI : -1,
                         .name = r % T_NAMES,
                         .day = r % T_DAYS};

        snprintf(model[r].id, sizeof model[r].id, "t%05d", r);
        model[r].owner = r % 2;
        model[r].site = (r / 2) % 2;
        add_op(st, b, r, &v);
    }
}

/* Updates (status moves on, sometimes the name or day changes) or deletes. */
static void change_some(struct store *st, struct batch *b, int n, int upto)
{
    int i;

    for (i = 0; i < n; i++) {
        int r = rnd(upto);
        struct tres *t = &model[r];
        struct tver v;

        if (t->n_v == 0 || t->n_v >= T_VERS - 1 || t->v[t->n_v - 1].deleted)
            continue;
        v = t->v[t->n_v - 1];
        if (rnd(20) == 0) {
            v.deleted = true;
        } else {
            v.status = (v.status + 1) % T_STATUS;
            if (rnd(4) == 0)
                v.name = rnd(T_NAMES);
            if (rnd(4) == 0)
                v.day = rnd(T_DAYS);
        }
        /* one resource at most once per batch: its version is known after the commit */
        for (int k = 0; k < b->n; k++)
            if (b->ops[k].r == r)
                run_batch(st, b);
        add_op(st, b, r, &v);
    }
    if (b->n)
        run_batch(st, b);
}

/* The version of t visible at snapshot s, or NULL. */
static const struct tver *at(const struct tres *t, int64_t s)
{
    const struct tver *v = NULL;
    int i;

    for (i = 0; i < t->n_v; i++)
        if (t->v[i].seq <= s)
            v = &t->v[i];
    return v && !v->deleted ? v : NULL;
}

typedef bool (*match_fn)(const struct tres *t, const struct tver *v);

/* Runs q at snapshot s (0: now), all pages, and compares with the model. */
static void expect_search(struct store *st, const char *what, struct store_query q, int64_t s,
                          match_fn match, bool check_order)
{
    struct store_page page;
    int64_t snap = s;
    int found = 0, want = 0, r, errors = 0;
    static bool seen[T_RES];
    int64_t last = 0;

    memset(seen, 0, sizeof seen);
    q.count = 37;
    q.want_total = true;
    for (q.offset = 0;; q.offset += q.count) {
        size_t i;

        q.snapshot = snap;
        if (store_search(st, &q, &page, NULL) != GW_OK) {
            errors++;
            break;
        }
        snap = page.snapshot;
        for (i = 0; i < page.n_items; i++) {
            const struct store_resource *row = &page.items[i];
            int k = (int)strtol(row->id + 1, NULL, 10);

            if (k < 0 || k >= T_RES || seen[k]) {
                errors++;
                continue;
            }
            seen[k] = true;
            found++;
            if (check_order && row->seq < last)
                errors++;
            last = row->seq;
            if (!at(&model[k], snap) || at(&model[k], snap)->seq != row->seq)
                errors++; /* not the version visible at the snapshot */
        }
        if (q.offset == 0 && page.total < 0)
            errors++;
        if (!page.has_more) {
            store_page_cleanup(&page);
            break;
        }
        store_page_cleanup(&page);
    }
    for (r = 0; r < T_RES; r++) {
        const struct tver *v = at(&model[r], snap);

        if (v && match(&model[r], v)) {
            want++;
            if (!seen[r])
                errors++;
        }
    }
    if (found != want || errors)
        fprintf(stderr, "search %s: %d found, %d wanted, %d errors\n", what, found, want, errors);
    CHECK_INT(found, want);
    CHECK_INT(errors, 0);
}

static bool m_requested(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->status == 0;
}
static bool m_code3(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->code == 3;
}
static bool m_code3or4(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->code == 3 || v->code == 4;
}
static bool m_none(const struct tres *t, const struct tver *v)
{
    (void)t;
    (void)v;
    return false;
}
static bool m_focus7(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->focus == 7;
}
static bool m_no_focus(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->focus < 0;
}
static bool m_not_completed(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->status != 2;
}
static bool m_name_prefix_01(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->name / 10 == 1; /* name01x */
}
static bool m_name_exact_12(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->name == 12;
}
static bool m_name_contains_3(const struct tres *t, const struct tver *v)
{
    char text[16];

    (void)t;
    snprintf(text, sizeof text, "name%03d", v->name);
    return strstr(text + 4, "3") != NULL;
}
static bool m_day5(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->day == 5;
}
static bool m_day_ge20(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->day >= 20;
}
static bool m_day_lt3(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->day < 3;
}
static bool m_day_gt22(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->day > 22;
}
static bool m_ids(const struct tres *t, const struct tver *v)
{
    (void)v;
    return strcmp(t->id, "t00005") == 0 || strcmp(t->id, "t00777") == 0;
}
static bool m_orgA_accepted(const struct tres *t, const struct tver *v)
{
    return t->owner == 0 && v->status == 1;
}
static bool m_s2_code3(const struct tres *t, const struct tver *v)
{
    return t->site == 1 && v->code == 3;
}
static bool m_orgB(const struct tres *t, const struct tver *v)
{
    (void)v;
    return t->owner == 1;
}
static bool m_combo(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->status == 1 && v->code == 2 && v->day >= 10;
}

static int64_t updated_since;

static bool m_updated_since(const struct tres *t, const struct tver *v)
{
    (void)t;
    return v->ms >= updated_since;
}

static void check_all(struct store *st, int64_t s)
{
    struct store_value requested = {.value = "requested"};
    struct store_value code3 = {.system = "urn:c", .value = "c3"};
    struct store_value code3_nosys = {.system = "", .value = "c3"};
    struct store_value codes[] = {{.value = "c3"}, {.system = "urn:c", .value = "c4"}};
    struct store_value focus7 = {.value = "ServiceRequest/sr7"};
    struct store_value completed = {.value = "completed"};
    struct store_value prefix = {.value = "name01"};
    struct store_value exact = {.value = "Name012"};
    struct store_value three = {.value = "3"};
    struct store_value day5 = {
        .prefix = STORE_EQ, .lo = DAY0 + 5 * DAY_MS, .hi = DAY0 + 6 * DAY_MS};
    struct store_value ge20 = {
        .prefix = STORE_GE, .lo = DAY0 + 20 * DAY_MS, .hi = DAY0 + 21 * DAY_MS};
    struct store_value ge10 = {
        .prefix = STORE_GE, .lo = DAY0 + 10 * DAY_MS, .hi = DAY0 + 11 * DAY_MS};
    struct store_value lt3 = {.prefix = STORE_LT, .lo = DAY0 + 3 * DAY_MS, .hi = DAY0 + 4 * DAY_MS};
    struct store_value gt22 = {
        .prefix = STORE_GT, .lo = DAY0 + 22 * DAY_MS, .hi = DAY0 + 23 * DAY_MS};
    struct store_value ids[] = {{.value = "t00005"}, {.value = "t00777"}};
    struct store_value accepted = {.value = "accepted"};
    struct store_value code2 = {.system = "urn:c", .value = "c2"};
    struct store_value since = {.prefix = STORE_GE, .lo = updated_since, .hi = updated_since + 1};
    static const char *const s2[] = {"s2"};
    struct store_cond c;
    struct store_cond combo[3];
    struct store_query q = {.type = "Task", .conds = &c, .n_conds = 1};

#define COND(p, k, val, n, ...)                                                                    \
    (c = (struct store_cond){.param = p, .kind = k, .values = val, .n_values = n, __VA_ARGS__})
    COND("status", STORE_TOKEN, &requested, 1);
    expect_search(st, "status", q, s, m_requested, true);
    COND("code", STORE_TOKEN, &code3, 1);
    expect_search(st, "code system|c3", q, s, m_code3, true);
    COND("code", STORE_TOKEN, &code3_nosys, 1);
    expect_search(st, "code |c3", q, s, m_none, true);
    COND("code", STORE_TOKEN, codes, 2);
    expect_search(st, "code c3,c4", q, s, m_code3or4, true);
    COND("focus", STORE_REFERENCE, &focus7, 1);
    expect_search(st, "focus", q, s, m_focus7, true);
    COND("focus", STORE_REFERENCE, NULL, 0, .missing = true);
    expect_search(st, "focus:missing", q, s, m_no_focus, true);
    COND("status", STORE_TOKEN, &completed, 1, .negate = true);
    expect_search(st, "status:not", q, s, m_not_completed, true);
    COND("name", STORE_STRING, &prefix, 1);
    expect_search(st, "name prefix", q, s, m_name_prefix_01, true);
    COND("name:exact", STORE_STRING, &exact, 1, .exact = true);
    expect_search(st, "name:exact", q, s, m_name_exact_12, true);
    COND("name", STORE_STRING, &three, 1, .contains = true);
    expect_search(st, "name:contains", q, s, m_name_contains_3, true);
    COND("authored", STORE_DATE, &day5, 1);
    expect_search(st, "authored eq", q, s, m_day5, true);
    COND("authored", STORE_DATE, &ge20, 1);
    expect_search(st, "authored ge", q, s, m_day_ge20, true);
    COND("authored", STORE_DATE, &lt3, 1);
    expect_search(st, "authored lt", q, s, m_day_lt3, true);
    COND("authored", STORE_DATE, &gt22, 1);
    expect_search(st, "authored gt", q, s, m_day_gt22, true);
    COND("_id", STORE_TOKEN, ids, 2);
    expect_search(st, "_id", q, s, m_ids, true);
    COND("_lastUpdated", STORE_DATE, &since, 1);
    expect_search(st, "_lastUpdated", q, s, m_updated_since, true);
    COND("status", STORE_TOKEN, &accepted, 1);
    q.owner = "orgA";
    expect_search(st, "owner and status", q, s, m_orgA_accepted, true);
    q.owner = NULL;
    COND("code", STORE_TOKEN, &code3, 1);
    q.sites = s2;
    q.n_sites = 1;
    expect_search(st, "site and code", q, s, m_s2_code3, true);
    q.sites = NULL;
    q.n_sites = 0;
    q.n_conds = 0;
    q.owner = "orgB";
    expect_search(st, "owner listing", q, s, m_orgB, true);
    q.owner = NULL;
    combo[0] = (struct store_cond){
        .param = "status", .kind = STORE_TOKEN, .values = &accepted, .n_values = 1};
    combo[1] =
        (struct store_cond){.param = "code", .kind = STORE_TOKEN, .values = &code2, .n_values = 1};
    combo[2] = (struct store_cond){
        .param = "authored", .kind = STORE_DATE, .values = &ge10, .n_values = 1};
    q.conds = combo;
    q.n_conds = 3;
    expect_search(st, "three conditions", q, s, m_combo, true);
}

static void search_results_stay_right_in_a_larger_store(void)
{
    char path[200];
    struct store *st = open_fresh(path, sizeof path);
    static struct batch b;

    CHECK(st != NULL);
    if (!st)
        return;
    memset(model, 0, sizeof model);
    create_all(st, &b, 0, T_RES);
    if (b.n)
        run_batch(st, &b);
    change_some(st, &b, T_RES, T_RES);
    updated_since = model[T_RES / 2].v[0].ms;
    check_all(st, 0);
    store_destroy(st);
}

/* Pages of one snapshot while updates, deletions and creations go on: each
 * match exactly once, each at the version it had at the snapshot. */
static void paging_over_a_snapshot_sees_each_match_once_while_writes_go_on(void)
{
    char path[200];
    struct store *st = open_fresh(path, sizeof path);
    static struct batch b;
    struct store_value requested = {.value = "requested"};
    struct store_cond c = {
        .param = "status", .kind = STORE_TOKEN, .values = &requested, .n_values = 1};
    struct store_query q = {.type = "Task", .conds = &c, .n_conds = 1, .count = 50};
    struct store_page page;
    int64_t snap;

    CHECK(st != NULL);
    if (!st)
        return;
    memset(model, 0, sizeof model);
    create_all(st, &b, 0, T_RES / 2);
    if (b.n)
        run_batch(st, &b);
    change_some(st, &b, T_RES / 3, T_RES / 2);
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    snap = page.snapshot;
    store_page_cleanup(&page);
    change_some(st, &b, T_RES / 2, T_RES / 2); /* after the snapshot */
    create_all(st, &b, T_RES / 2, T_RES);
    if (b.n)
        run_batch(st, &b);
    expect_search(st, "status at an older snapshot", q, snap, m_requested, true);
    c = (struct store_cond){.param = "focus", .kind = STORE_REFERENCE, .missing = true};
    expect_search(st, "focus:missing at an older snapshot", q, snap, m_no_focus, true);
    updated_since = 0;
    q.n_conds = 0;
    q.owner = "orgB";
    expect_search(st, "owner listing at an older snapshot", q, snap, m_orgB, true);
    q.owner = NULL;
    check_all(st, snap);
    check_all(st, 0);
    store_destroy(st);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gw_log_set_level(GW_LOG_WARN);
    RUN(every_fixed_statement_seeks_an_index);
    RUN(every_search_kind_is_driven_by_an_index);
    RUN(grants_roll_up_and_subscriptions_seek_their_keys);
    RUN(ris_lease_seeks_the_outbox_indexes);
    RUN(parameter_ids_never_collide);
    RUN(search_results_stay_right_in_a_larger_store);
    RUN(paging_over_a_snapshot_sees_each_match_once_while_writes_go_on);
    pg_url = getenv("GW_TEST_PG_URL");
    if (pg_url && *pg_url) {
        on_pg = true;
        RUN(every_fixed_statement_seeks_an_index);
        RUN(every_search_kind_is_driven_by_an_index);
        RUN(grants_roll_up_and_subscriptions_seek_their_keys);
        RUN(ris_lease_seeks_the_outbox_indexes);
        RUN(search_results_stay_right_in_a_larger_store);
        RUN(paging_over_a_snapshot_sees_each_match_once_while_writes_go_on);
    } else {
        printf("SKIPPED the PostgreSQL cases: GW_TEST_PG_URL is not set (make unit sets it)\n");
    }
    {
        char cmd[160];

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_summary();
}
