/* test_store.c -- the SQLite store: versions, preconditions, group commit,
 * snapshot search and paging, outbox leases and ordering, inbound dedupe,
 * the audit hash chain. Each case uses a fresh database in a temporary folder. */
#include "check.h"
#include "store/store.h"
#include "store/store_int.h" /* STORE_WAL_KEPT_BYTES */

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

static char dir[] = "/tmp/gw-store-XXXXXX";
static int n_db;

static struct store *open_fresh(void)
{
    static char url[200], path[128];
    struct config cfg;
    struct store *st = NULL;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    snprintf(path, sizeof path, "%s/t%d.db", dir, n_db++);
    snprintf(url, sizeof url, "sqlite:%s", path);
    cfg.store = url;
    cfg.commit_timeout_ms = 10000;
    cfg.max_batch = 64;
    cfg.read_connections = 2;
    cfg.audit_hmac_key = "";
    if (store_open(&cfg, &st, &err) != GW_OK)
        fprintf(stderr, "store_open: %s\n", err.msg);
    return st;
}

struct put_ctx {
    const char *type, *id, *owner, *site, *identifier;
    long if_match;
    bool create;
    struct store_written written;
};

static enum gw_code put_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct put_ctx *p = ctx;
    struct store_index_entry idx[1] = {{"identifier", "urn:test", p->identifier, 0, 0}};
    json_t *res = json_pack("{s:s, s:s}", "resourceType", p->type, "id", p->id);
    struct store_put put = {.type = p->type,
                            .id = p->id,
                            .resource = res,
                            .owner = p->owner,
                            .site = p->site,
                            .index = idx,
                            .n_index = p->identifier ? 1 : 0,
                            .if_match = p->if_match,
                            .create = p->create};
    enum gw_code rc = store_txn_put(txn, &put, &p->written, err);

    json_decref(res);
    return rc;
}

static enum gw_code put(struct store *st, struct put_ctx *p)
{
    return store_write(st, put_apply, NULL, p, NULL);
}

static void put_creates_versions_and_checks_preconditions(void)
{
    struct store *st = open_fresh();
    struct put_ctx p = {"Patient", "p1", "orgA", NULL, "123", 0, true, {0}};
    struct store_resource r;
    struct gw_error err;

    CHECK_INT(put(st, &p), GW_OK);
    CHECK_INT(p.written.version, 1);
    CHECK_INT(put(st, &p), GW_E_CONFLICT); /* create of an existing id */
    p.create = false;
    p.if_match = 1;
    CHECK_INT(put(st, &p), GW_OK);
    CHECK_INT(p.written.version, 2);
    CHECK_INT(put(st, &p), GW_E_CONFLICT); /* stale If-Match */
    CHECK_INT(store_read(st, "Patient", "p1", 0, &r, &err), GW_OK);
    CHECK_INT(r.version, 2);
    CHECK(strstr(r.json, "\"versionId\":\"2\"") != NULL);
    CHECK_STR(r.owner, "orgA");
    store_resource_cleanup(&r);
    CHECK_INT(store_read(st, "Patient", "p1", 1, &r, &err), GW_OK);
    CHECK(strstr(r.json, "\"versionId\":\"1\"") != NULL);
    store_resource_cleanup(&r);
    CHECK_INT(store_read(st, "Patient", "nope", 0, &r, &err), GW_E_NOTFOUND);
    store_destroy(st);
}

struct thread_arg {
    struct store *st;
    int index;
    enum gw_code rc;
};

static void *writer_thread(void *arg)
{
    struct thread_arg *a = arg;
    char id[32];
    struct put_ctx p = {"ServiceRequest", id, "orgA", "s1", "x", 0, true, {0}};

    snprintf(id, sizeof id, "sr%d", a->index);
    a->rc = put(a->st, &p);
    return NULL;
}

static void concurrent_writers_all_commit(void)
{
    struct store *st = open_fresh();
    pthread_t t[32];
    struct thread_arg a[32];
    struct store_query q = {.type = "ServiceRequest", .count = 100, .want_total = true};
    struct store_page page;
    int i;

    for (i = 0; i < 32; i++) {
        a[i] = (struct thread_arg){st, i, GW_E_INTERNAL};
        pthread_create(&t[i], NULL, writer_thread, &a[i]);
    }
    for (i = 0; i < 32; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(a[i].rc, GW_OK);
    }
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.total, 32);
    CHECK_INT(page.n_items, 32);
    store_page_cleanup(&page);
    store_destroy(st);
}

static void search_pages_a_stable_snapshot(void)
{
    struct store *st = open_fresh();
    struct store_query q = {.type = "Task", .count = 10, .want_total = true};
    struct store_page page;
    char id[16];
    int i, seen = 0;
    int64_t snap;

    for (i = 0; i < 25; i++) {
        struct put_ctx p = {"Task", id, "orgA", NULL, NULL, 0, true, {0}};

        snprintf(id, sizeof id, "t%02d", i);
        CHECK_INT(put(st, &p), GW_OK);
    }
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    snap = page.snapshot;
    seen += (int)page.n_items;
    CHECK(page.has_more);
    store_page_cleanup(&page);
    for (i = 25; i < 30; i++) { /* arrivals while paging */
        struct put_ctx p = {"Task", id, "orgA", NULL, NULL, 0, true, {0}};

        snprintf(id, sizeof id, "t%02d", i);
        CHECK_INT(put(st, &p), GW_OK);
    }
    q.snapshot = snap;
    for (q.offset = 10;; q.offset += 10) {
        CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
        CHECK_INT(page.total, 25);
        seen += (int)page.n_items;
        if (!page.has_more) {
            store_page_cleanup(&page);
            break;
        }
        store_page_cleanup(&page);
    }
    CHECK_INT(seen, 25);
    store_destroy(st);
}

static void search_filters_by_token_owner_and_site(void)
{
    struct store *st = open_fresh();
    struct put_ctx a = {"Patient", "a", "orgA", "s1", "111", 0, true, {0}};
    struct put_ctx b = {"Patient", "b", "orgB", "s2", "222", 0, true, {0}};
    struct store_value v = {.system = "urn:test", .value = "222"};
    struct store_cond c = {.param = "identifier", .kind = STORE_TOKEN, .values = &v, .n_values = 1};
    const char *sites[] = {"s1"};
    struct store_query q = {.type = "Patient", .conds = &c, .n_conds = 1, .count = 10};
    struct store_page page;

    CHECK_INT(put(st, &a), GW_OK);
    CHECK_INT(put(st, &b), GW_OK);
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    CHECK_STR(page.n_items ? page.items[0].id : "", "b");
    store_page_cleanup(&page);
    q.owner = "orgA";
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 0);
    store_page_cleanup(&page);
    q.owner = NULL;
    q.n_conds = 0;
    q.sites = sites;
    q.n_sites = 1;
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    CHECK_STR(page.n_items ? page.items[0].id : "", "a");
    store_page_cleanup(&page);
    store_destroy(st);
}

static enum gw_code grant_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    (void)ctx;
    return store_txn_site_grant(txn, "Patient", "b", "s1", err);
}

static void a_site_sees_what_it_was_granted_and_searches_agree(void)
{
    struct store *st = open_fresh();
    struct put_ctx a = {"Patient", "a", "orgA", "s1", "111", 0, true, {0}};
    struct put_ctx b = {"Patient", "b", "orgA", NULL, "222", 0, true, {0}};
    const char *s1[] = {"s1"}, *s2[] = {"s2", "s3"};
    struct store_query q = {.type = "Patient", .sites = s1, .n_sites = 1, .count = 10};
    struct store_page page;
    bool seen = true;

    CHECK_INT(put(st, &a), GW_OK); /* routed to s1: visible to it */
    CHECK_INT(put(st, &b), GW_OK); /* no site: visible to none until granted */
    CHECK_INT(store_site_visible(st, "Patient", "b", s1, 1, &seen, NULL), GW_OK);
    CHECK(!seen);
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    store_page_cleanup(&page);
    CHECK_INT(store_write(st, grant_apply, NULL, NULL, NULL), GW_OK);
    CHECK_INT(store_write(st, grant_apply, NULL, NULL, NULL), GW_OK); /* twice: harmless */
    CHECK_INT(store_site_visible(st, "Patient", "b", s1, 1, &seen, NULL), GW_OK);
    CHECK(seen);
    CHECK_INT(store_site_visible(st, "Patient", "b", s2, 2, &seen, NULL), GW_OK);
    CHECK(!seen);
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 2);
    store_page_cleanup(&page);
    q.sites = s2;
    q.n_sites = 2;
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 0);
    store_page_cleanup(&page);
    store_destroy(st);
}

struct outbox_ctx {
    const char *control_id, *ref_id, *kind;
    struct store_outbox_msg *leased;
    size_t n_leased;
    const char *ack;
    bool was_final;
};

static enum gw_code outbox_add_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct outbox_ctx *o = ctx;
    struct store_outbox_new m = {o->control_id, "s1",           o->kind, "ServiceRequest",
                                 o->ref_id,     "MSH|^~\\&|\r", 10};

    return store_txn_outbox_add(txn, &m, err);
}

static enum gw_code outbox_lease_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct outbox_ctx *o = ctx;
    const char *sites[] = {"s1"};

    return store_txn_outbox_lease(txn, sites, 1, 10, 60000, &o->leased, &o->n_leased, err);
}

static enum gw_code outbox_settle_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct outbox_ctx *o = ctx;
    struct store_outbox_msg m;
    enum gw_code rc = store_txn_outbox_settle(txn, o->control_id, NULL, 0, o->ack, "refused", &m,
                                              &o->was_final, err);

    store_outbox_msg_cleanup(&m);
    return rc;
}

static void outbox_keeps_order_per_referral_and_settles_once(void)
{
    struct store *st = open_fresh();
    struct outbox_ctx o1 = {"c1", "r1", "order", NULL, 0, NULL, false};
    struct outbox_ctx o2 = {"c2", "r1", "cancel", NULL, 0, NULL, false};
    struct outbox_ctx o3 = {"c3", "r2", "order", NULL, 0, NULL, false};
    struct outbox_ctx l = {0};

    CHECK_INT(store_write(st, outbox_add_apply, NULL, &o1, NULL), GW_OK);
    CHECK_INT(store_write(st, outbox_add_apply, NULL, &o2, NULL), GW_OK);
    CHECK_INT(store_write(st, outbox_add_apply, NULL, &o3, NULL), GW_OK);
    CHECK_INT(store_write(st, outbox_lease_apply, NULL, &l, NULL), GW_OK);
    CHECK_INT(l.n_leased, 2); /* c1 and c3; c2 waits for c1 */
    CHECK_STR(l.n_leased ? l.leased[0].control_id : "", "c1");
    CHECK_STR(l.n_leased > 1 ? l.leased[1].control_id : "", "c3");
    store_outbox_list_free(l.leased, l.n_leased);
    l.leased = NULL;
    CHECK_INT(store_write(st, outbox_lease_apply, NULL, &l, NULL), GW_OK);
    CHECK_INT(l.n_leased, 0); /* leased ones are not offered before their lease ends */
    store_outbox_list_free(l.leased, l.n_leased);
    o1.ack = "AA";
    CHECK_INT(store_write(st, outbox_settle_apply, NULL, &o1, NULL), GW_OK);
    CHECK(!o1.was_final);
    CHECK_INT(store_write(st, outbox_settle_apply, NULL, &o1, NULL), GW_OK);
    CHECK(o1.was_final);
    CHECK_INT(store_write(st, outbox_lease_apply, NULL, &l, NULL), GW_OK);
    CHECK_INT(l.n_leased, 1);
    CHECK_STR(l.n_leased ? l.leased[0].control_id : "", "c2");
    store_outbox_list_free(l.leased, l.n_leased);
    o2.ack = "AR";
    CHECK_INT(store_write(st, outbox_settle_apply, NULL, &o2, NULL), GW_OK);
    {
        struct store_outbox_msg *list;
        size_t n;

        CHECK_INT(store_outbox_for(st, "ServiceRequest", "r1", &list, &n, NULL), GW_OK);
        CHECK_INT(n, 2);
        CHECK_INT(n == 2 ? (int)list[1].state : -1, STORE_OUTBOX_DEAD);
        CHECK_STR(n == 2 ? list[1].last_error : "", "refused");
        store_outbox_list_free(list, n);
    }
    o3.control_id = "missing";
    o3.ack = "AA";
    CHECK_INT(store_write(st, outbox_settle_apply, NULL, &o3, NULL), GW_E_NOTFOUND);
    store_destroy(st);
}

struct audit_ctx {
    int n;
    bool fail_apply;
};

static enum gw_code failing_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct put_ctx p = {"Patient", "doomed", "orgA", NULL, NULL, 0, true, {0}};
    enum gw_code rc = put_apply(txn, &p, err);

    (void)ctx;
    return rc ? rc : gw_fail(err, GW_E_INPUT, "refused after writing");
}

static enum gw_code audit_step(struct store_txn *txn, void *ctx, enum gw_code outcome,
                               const struct gw_error *why, struct gw_error *err)
{
    struct audit_ctx *a = ctx;
    char id[16], text[64];
    struct store_index_entry idx = {"outcome", NULL, outcome ? "8" : "0", 0, 0};

    (void)why;
    snprintf(id, sizeof id, "ae%d", a->n);
    snprintf(text, sizeof text, "{\"id\":\"ae%d\",\"outcome\":%d}", a->n, (int)outcome);
    return store_txn_audit_append(txn, id, store_txn_now(txn), text, &idx, 1, err);
}

static bool chain_check(const struct store_audit_row *row, void *ctx)
{
    char *prev = ctx, hash[65];

    store_audit_hash("", prev, row->json, hash);
    if (strcmp(prev, row->prev_hash) != 0 || strcmp(hash, row->hash) != 0)
        return false;
    memcpy(prev, hash, 65);
    return true;
}

static void audit_rows_chain_and_failed_work_keeps_only_its_event(void)
{
    struct store *st = open_fresh();
    struct audit_ctx a = {0, false};
    struct store_resource r;
    char prev[65] = STORE_AUDIT_GENESIS;
    struct store_value v = {.value = "8"};
    struct store_cond c = {.param = "outcome", .kind = STORE_TOKEN, .values = &v, .n_values = 1};
    struct store_query q = {.type = "AuditEvent", .conds = &c, .n_conds = 1, .count = 10};
    struct store_page page;
    int i;

    for (i = 0; i < 5; i++) {
        a.n = i;
        CHECK_INT(store_write(st, NULL, audit_step, &a, NULL), GW_OK);
    }
    a.n = 5;
    CHECK_INT(store_write(st, failing_apply, audit_step, &a, NULL), GW_E_INPUT);
    CHECK_INT(store_read(st, "Patient", "doomed", 0, &r, NULL), GW_E_NOTFOUND);
    CHECK_INT(store_audit_scan(st, 0, 0, chain_check, prev, NULL), GW_OK);
    CHECK(strcmp(prev, STORE_AUDIT_GENESIS) != 0);
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    CHECK_STR(page.n_items ? page.items[0].id : "", "ae5");
    store_page_cleanup(&page);
    store_destroy(st);
}

static enum gw_code inbound_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    char **ack = ctx;
    enum gw_code rc = store_txn_inbound_seen(txn, "ris", "RIS", "m1", ack, err);

    if (rc == GW_E_NOTFOUND)
        return store_txn_inbound_record(txn, "ris", "RIS", "m1", "ACK-1", err);
    return rc;
}

static void inbound_remembers_the_ack_of_each_message(void)
{
    struct store *st = open_fresh();
    char *ack = NULL;

    CHECK_INT(store_write(st, inbound_apply, NULL, &ack, NULL), GW_OK);
    CHECK(ack == NULL);
    CHECK_INT(store_write(st, inbound_apply, NULL, &ack, NULL), GW_OK);
    CHECK_STR(ack, "ACK-1");
    free(ack);
    store_destroy(st);
}

static void date_search_honours_prefixes(void)
{
    struct store *st = open_fresh();
    struct store_query q = {.type = "Patient", .count = 10};
    struct store_value v = {.prefix = STORE_GE};
    struct store_cond c = {
        .param = "_lastUpdated", .kind = STORE_DATE, .values = &v, .n_values = 1};
    struct put_ctx p = {"Patient", "d1", "orgA", NULL, NULL, 0, true, {0}};
    struct store_page page;

    CHECK_INT(put(st, &p), GW_OK);
    q.conds = &c;
    q.n_conds = 1;
    v.lo = p.written.last_updated_ms - 1000;
    v.hi = v.lo + 1;
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    store_page_cleanup(&page);
    v.prefix = STORE_LT;
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 0);
    store_page_cleanup(&page);
    v.prefix = STORE_EB;
    v.lo = p.written.last_updated_ms + 5000;
    v.hi = v.lo + 1000;
    CHECK_INT(store_search(st, &q, &page, NULL), GW_OK);
    CHECK_INT(page.n_items, 1);
    store_page_cleanup(&page);
    store_destroy(st);
}

/* ------------------------------------------------------------ subscription notifications */

struct note_step {
    const char *sub;
    enum store_note_kind kind;
    long focus_version;
    struct store_note added;
};

static enum gw_code subscribe_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    const char *const *ids = ctx;
    enum gw_code rc = GW_OK;

    for (; !rc && *ids; ids++) {
        struct store_subscription s = {.id = (char *)*ids,
                                       .owner = "orgA",
                                       .type = "Task",
                                       .criteria = "Task",
                                       .enabled = true};

        rc = store_txn_subscription_put(txn, &s, err);
    }
    return rc;
}

static enum gw_code note_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct note_step *step = ctx;
    struct store_note_new n = {step->sub, step->kind, "Task", "t1", step->focus_version};

    return store_txn_note_add(txn, &n, &step->added, err);
}

struct settle_step {
    int64_t seq;
    enum store_note_state state;
    int64_t next_at;
    bool changed;
};

static enum gw_code settle_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct settle_step *s = ctx;

    return store_txn_note_settle(txn, s->seq, s->state, s->next_at, "refused", &s->changed, err);
}

static enum gw_code drop_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    return store_txn_note_drop(txn, ctx, err);
}

static struct store_note note(struct store *st, const char *sub, enum store_note_kind kind,
                              long version)
{
    struct note_step step = {sub, kind, version, {0}};

    CHECK_INT(store_write(st, note_apply, NULL, &step, NULL), GW_OK);
    return step.added;
}

static void notes_are_numbered_per_subscription_and_offered_in_order(void)
{
    struct store *st = open_fresh();
    const char *ids[] = {"subA", "subB", NULL};
    struct store_note a1, a2, a3, b1, *heads = NULL;
    struct settle_step settle;
    size_t n = 0;

    CHECK_INT(store_write(st, subscribe_apply, NULL, (void *)ids, NULL), GW_OK);
    a1 = note(st, "subA", STORE_NOTE_HANDSHAKE, 0);
    a2 = note(st, "subA", STORE_NOTE_EVENT, 1);
    b1 = note(st, "subB", STORE_NOTE_EVENT, 2);
    a3 = note(st, "subA", STORE_NOTE_EVENT, 3);
    CHECK_INT(a1.position, 1);
    CHECK_INT(a1.event, 0);
    CHECK_INT(a2.position, 2);
    CHECK_INT(a2.event, 1);
    CHECK_INT(a3.position, 3);
    CHECK_INT(a3.event, 2);
    CHECK_INT(b1.position, 1);
    CHECK_INT(b1.event, 1);
    CHECK_INT(store_note_heads(st, 10, &heads, &n, NULL), GW_OK);
    CHECK_INT(n, 2); /* one per subscription: the oldest */
    CHECK_INT(n == 2 ? heads[0].seq : 0, a1.seq);
    CHECK_INT(n == 2 ? heads[1].seq : 0, b1.seq);
    store_note_list_free(heads, n);
    settle = (struct settle_step){a1.seq, STORE_NOTE_DELIVERED, 0, false};
    CHECK_INT(store_write(st, settle_apply, NULL, &settle, NULL), GW_OK);
    CHECK(settle.changed);
    CHECK_INT(store_write(st, settle_apply, NULL, &settle, NULL), GW_OK);
    CHECK(!settle.changed); /* settled once only */
    settle = (struct settle_step){a2.seq, STORE_NOTE_PENDING, gw_now_ms() + 60000, false};
    CHECK_INT(store_write(st, settle_apply, NULL, &settle, NULL), GW_OK);
    CHECK_INT(store_note_heads(st, 10, &heads, &n, NULL), GW_OK);
    CHECK_INT(n, 2); /* a2 waits for its retry and a3 waits behind it */
    CHECK_INT(n == 2 ? heads[0].seq : 0, b1.seq);
    CHECK_INT(n == 2 ? heads[1].seq : 0, a2.seq);
    CHECK_INT(n == 2 ? heads[1].attempts : 0, 1);
    CHECK_STR(n == 2 ? heads[1].last_error : "", "refused");
    store_note_list_free(heads, n);
    CHECK_INT(store_note_pending(st, "subA", 10, &heads, &n, NULL), GW_OK);
    CHECK_INT(n, 2); /* what one delivery may carry: a2 then a3 */
    CHECK_INT(n == 2 ? heads[0].seq : 0, a2.seq);
    CHECK_INT(n == 2 ? heads[1].seq : 0, a3.seq);
    store_note_list_free(heads, n);
    CHECK_INT(store_write(st, drop_apply, NULL, "subA", NULL), GW_OK);
    CHECK_INT(store_note_heads(st, 10, &heads, &n, NULL), GW_OK);
    CHECK_INT(n, 1);
    CHECK_STR(n == 1 ? heads[0].subscription : "", "subB");
    store_note_list_free(heads, n);
    store_destroy(st);
}

static void notes_for_an_unknown_subscription_are_refused(void)
{
    struct store *st = open_fresh();
    struct note_step step = {"nobody", STORE_NOTE_EVENT, 1, {0}};

    CHECK_INT(store_write(st, note_apply, NULL, &step, NULL), GW_E_NOTFOUND);
    store_destroy(st);
}

static void note_stats_count_pending_and_dead_per_subscription(void)
{
    struct store *st = open_fresh();
    const char *ids[] = {"subA", "subB", NULL};
    struct store_note a1;
    struct settle_step dead;
    struct store_note_stats *stats = NULL;
    size_t n = 0;

    CHECK_INT(store_write(st, subscribe_apply, NULL, (void *)ids, NULL), GW_OK);
    a1 = note(st, "subA", STORE_NOTE_EVENT, 1);
    note(st, "subA", STORE_NOTE_EVENT, 2);
    dead = (struct settle_step){a1.seq, STORE_NOTE_DEAD, 0, false};
    CHECK_INT(store_write(st, settle_apply, NULL, &dead, NULL), GW_OK);
    CHECK_INT(store_note_stats(st, &stats, &n, NULL), GW_OK);
    CHECK_INT(n, 2);
    CHECK_STR(n == 2 ? stats[0].subscription : "", "subA");
    CHECK_INT(n == 2 ? stats[0].pending : -1, 1);
    CHECK_INT(n == 2 ? stats[0].dead : -1, 1);
    CHECK(n == 2 && stats[0].oldest_pending_ms > 0);
    CHECK_INT(n == 2 ? stats[1].pending : -1, 0);
    while (n)
        free(stats[--n].subscription);
    free(stats);
    store_destroy(st);
}

static void note_wait_returns_once_a_commit_queued_one(void)
{
    struct store *st = open_fresh();
    const char *ids[] = {"subA", NULL};
    uint64_t seen = 0, before;

    CHECK_INT(store_write(st, subscribe_apply, NULL, (void *)ids, NULL), GW_OK);
    store_note_wait(st, &seen, 0);
    before = seen;
    note(st, "subA", STORE_NOTE_EVENT, 1);
    store_note_wait(st, &seen, 30000); /* returns at once: the count moved */
    CHECK(seen > before);
    store_destroy(st);
}

/* ------------------------------------------------------------ the WAL */

#define BIG_TEXT (512 * 1024) /* one resource of half a megabyte: 128 WAL frames */

struct big_ctx {
    const char *text;
    int from, n;
};

static enum gw_code big_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct big_ctx *b = ctx;
    enum gw_code rc = GW_OK;
    char id[32];
    int i;

    for (i = b->from; !rc && i < b->from + b->n; i++) {
        json_t *res;
        struct store_put put = {.type = "Binary", .id = id, .owner = "orgA"};

        snprintf(id, sizeof id, "big%d", i);
        res = json_pack("{s:s, s:s, s:s}", "resourceType", "Binary", "id", id, "data", b->text);
        put.resource = res;
        rc = res ? store_txn_put(txn, &put, NULL, err) : GW_E_NOMEM;
        json_decref(res);
    }
    return rc;
}

/* Writes n big resources from big<from> in one commit, then two small ones. */
static bool write_big(struct store *st, const char *text, int from, int n)
{
    struct put_ctx small = {"Patient", "small", "orgA", NULL, NULL, 0, false, {0}};
    struct big_ctx b = {text, from, n};

    /* the writer empties the WAL between batches: after the first small one */
    return (!n || store_write(st, big_apply, NULL, &b, NULL) == GW_OK) &&
           put(st, &small) == GW_OK && put(st, &small) == GW_OK;
}

static long long wal_bytes(const char *db_path)
{
    char path[300];
    struct stat sb;

    snprintf(path, sizeof path, "%s-wal", db_path);
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* The frames the WAL holds now (the log's length, not its file's): what a
 * passive checkpoint from another connection reports. While the store's own
 * checkpointer is copying, SQLite answers -1 at once: then this asks again. */
static long long wal_frames(const char *db_path)
{
    sqlite3 *db = NULL;
    long long frames = -1;
    int tries;

    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    for (tries = 0; tries < 200 && frames < 0; tries++) {
        sqlite3_stmt *s = NULL;

        if (tries)
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
        if (sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            frames = sqlite3_column_int64(s, 1);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return frames;
}

/* A fresh store (its file's path in db_path) and a BIG_TEXT text of fill characters
 * in *text; NULL (and *text NULL), with the failure checked, when either fails. */
static struct store *open_big(char db_path[128], char **text, char fill)
{
    struct store *st = open_fresh();

    snprintf(db_path, 128, "%s/t%d.db", dir, n_db - 1);
    *text = malloc(BIG_TEXT + 1);
    CHECK(st != NULL && *text != NULL);
    if (!st || !*text) {
        free(*text);
        *text = NULL;
        store_destroy(st);
        return NULL;
    }
    memset(*text, fill, BIG_TEXT);
    (*text)[BIG_TEXT] = '\0';
    return st;
}

/* Writes small batches until the WAL has started over (under 1,000 frames), for at
 * most ms milliseconds: a batch that finds the checkpointer copying leaves the
 * restart to the next one. */
static bool starts_over_within(struct store *st, const char *text, const char *db_path, int ms)
{
    int64_t until = gw_mono_ms() + ms;

    do {
        long long frames;

        if (!write_big(st, text, 0, 0))
            return false;
        frames = wal_frames(db_path);
        if (frames >= 0 && frames < 1000)
            return true;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    } while (gw_mono_ms() < until);
    return false;
}

/* Past 32 MB the WAL starts over once the batch is answered, written again
 * from the start of its file; a reader that holds an older snapshot keeps it
 * (no write fails or waits on it for long), and it starts over after the
 * reader is done, its file then cut to STORE_WAL_KEPT_BYTES. Without the
 * restart the log would hold every frame written (10,000 and more), and
 * without the cut the file would stay 80 MB. */
static void the_wal_starts_over_past_32_mb_unless_a_reader_holds_it(void)
{
    char db_path[128], *text;
    sqlite3 *reader = NULL;
    sqlite3_stmt *s = NULL;
    struct timespec retry = {2, 100 * 1000 * 1000};
    struct store *st = open_big(db_path, &text, 'x');

    if (!st)
        return;
    CHECK(write_big(st, text, 0, 80)); /* 40 MB: SQLite alone would keep them all */
    CHECK(starts_over_within(st, text, db_path, 1000));
    /* an export's cursor: a read transaction open across the writes */
    CHECK_INT(sqlite3_open_v2(db_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(reader, "SELECT COUNT(*) FROM versions", -1, &s, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_step(s), SQLITE_ROW);
    CHECK(write_big(st, text, 80, 160)); /* 80 MB */
    CHECK(wal_frames(db_path) > 8192);   /* it could not start over under the reader */
    CHECK(wal_bytes(db_path) > STORE_WAL_KEPT_BYTES);
    sqlite3_finalize(s);
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(reader);
    nanosleep(&retry, NULL); /* the writer tries again STORE_WAL_RETRY_MS after a busy reader */
    CHECK(starts_over_within(st, text, db_path, 1000));
    CHECK(wal_bytes(db_path) >= 0 && wal_bytes(db_path) <= STORE_WAL_KEPT_BYTES);
    free(text);
    store_destroy(st);
}

/* The writer and the checkpointer take turns (ckpt_lock). While the checkpointer
 * copies, the writer leaves the log's restart to a later batch: SQLite would
 * refuse a restart at once, and the writer used to take that for a reader and
 * wait STORE_WAL_RETRY_MS (2 s, the log growing past where its file must be cut,
 * a stall of tens of ms). Here the test holds the lock as the checkpointer would:
 * no restart under it, and one within a few batches after (the checkpointer,
 * which waited for the lock, may copy first). */
static void the_wal_starts_over_soon_after_the_checkpointer_copied(void)
{
    char db_path[128], *text;
    int i;
    struct store *st = open_big(db_path, &text, 'z');

    if (!st)
        return;
    pthread_mutex_lock(&st->ckpt_lock);
    for (i = 0; i < 10; i++) /* 40 MB, 4 MB a commit */
        CHECK(write_big(st, text, 8 * i, 8));
    pthread_mutex_unlock(&st->ckpt_lock);
    CHECK(wal_frames(db_path) > STORE_WAL_RESTART_FRAMES); /* not under the lock */
    CHECK(starts_over_within(st, text, db_path, 1000)); /* well before STORE_WAL_RETRY_MS */
    CHECK(wal_bytes(db_path) > 0 && wal_bytes(db_path) <= STORE_WAL_KEPT_BYTES);
    free(text);
    store_destroy(st);
}

/* Copies the file at from to to; false when it cannot. */
static bool copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *bytes = check_read_file(from, &len);
    FILE *f = bytes ? fopen(to, "wb") : NULL;
    bool ok = f && fwrite(bytes, 1, len, f) == len;

    if (f && fclose(f) != 0)
        ok = false;
    free(bytes);
    return ok;
}

/* The gw-walbuf VFS gathers a commit's WAL writes (a header and a page per frame)
 * into a few write() calls, and the commit is in the WAL file when it returns: a
 * copy of the database and its WAL made then, with no shared memory and no help
 * from the store, holds it. Without the flush before the sync, the copy would
 * miss the resources; without the gathering, the writes would be two per frame. */
static void a_commit_is_in_the_wal_file_when_it_returns_in_a_few_writes(void)
{
    char db_path[128], copy[160], from_wal[160], to_wal[180], *text;
    long long received0, issued0, received, issued;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    struct store *st = open_big(db_path, &text, 'y');

    if (!st)
        return;
    store_walbuf_counts(&received0, &issued0);
    CHECK(write_big(st, text, 0, 4)); /* 512 frames in one commit */
    store_walbuf_counts(&received, &issued);
    CHECK(received - received0 >= 2 * 512);
    CHECK(issued - issued0 > 0 && issued - issued0 <= (received - received0) / 20);
    snprintf(copy, sizeof copy, "%s.copy", db_path);
    snprintf(from_wal, sizeof from_wal, "%s-wal", db_path);
    snprintf(to_wal, sizeof to_wal, "%s-wal", copy);
    CHECK(copy_file(db_path, copy) && copy_file(from_wal, to_wal));
    CHECK_INT(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM resources WHERE type = 'Binary'", -1, &s,
                                 NULL),
              SQLITE_OK);
    CHECK_INT(sqlite3_step(s), SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(s, 0), 4);
    sqlite3_finalize(s);
    sqlite3_close(db);
    free(text);
    store_destroy(st);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gw_log_set_level(GW_LOG_WARN);
    RUN(put_creates_versions_and_checks_preconditions);
    RUN(concurrent_writers_all_commit);
    RUN(search_pages_a_stable_snapshot);
    RUN(search_filters_by_token_owner_and_site);
    RUN(a_site_sees_what_it_was_granted_and_searches_agree);
    RUN(outbox_keeps_order_per_referral_and_settles_once);
    RUN(audit_rows_chain_and_failed_work_keeps_only_its_event);
    RUN(inbound_remembers_the_ack_of_each_message);
    RUN(date_search_honours_prefixes);
    RUN(notes_are_numbered_per_subscription_and_offered_in_order);
    RUN(notes_for_an_unknown_subscription_are_refused);
    RUN(note_stats_count_pending_and_dead_per_subscription);
    RUN(note_wait_returns_once_a_commit_queued_one);
    RUN(the_wal_starts_over_past_32_mb_unless_a_reader_holds_it);
    RUN(a_commit_is_in_the_wal_file_when_it_returns_in_a_few_writes);
    RUN(the_wal_starts_over_soon_after_the_checkpointer_copied);
    {
        char cmd[160];

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_summary();
}
