/* record.c -- work prepared on the caller's thread and replayed by the
 * writer (store_submit_prepared), so that the writer only writes.
 *
 * A recording transaction answers reads and searches from a reader
 * connection (the store as last committed) and remembers each question with
 * its answer; it turns each write into a ready row: the resource stamped and
 * serialised with its index entries, the outbox message, the AuditEvent's
 * canonical text. The writer's part is then small: ask each question again
 * inside its transaction (a current version, a search's matches) and, when
 * every answer is the same, insert the rows, stamping the commit time where
 * the recording put its own (meta.lastUpdated, AuditEvent.recorded: the
 * same width, found exactly once when recorded) and chaining audit hashes.
 * Site grants and activity tallies are recorded as rows are (a tally counts
 * in the hour of the commit, where its event is stamped). A site visibility
 * question is asked of the reader and asked again by the writer; its caller
 * is answered with the recording's own grants added, as the writer's txn
 * would. A writer step (store_txn_on_writer: a Subscription's matching,
 * which must read the job's own writes) is kept and run by the writer at
 * its place in the recording.
 *
 * Invariant: record_replay() asks every question (each read, search and
 * site visibility, and each put's current version) before it writes
 * anything. When an answer changed it has written nothing (REPLAY_CHANGED):
 * the caller resets the job's context and runs apply and audit again on the
 * writer. Otherwise it inserts all the recording holds and gives its
 * outcome, or meets a failing write (REPLAY_FAILED) having maybe written
 * part of it: the caller undoes the job (its savepoint, or on SQLite, where
 * a batch's prepared jobs run without one, the whole transaction, and runs
 * the batch again with a savepoint per job). So a recording never changes
 * what is stored, only who does the work; a replay may run twice (stamps are
 * rewritten with each run's commit time, the recording itself is kept).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

enum rec_kind {
    REC_READ, /* questions, asked again by the writer */
    REC_SEARCH,
    REC_VISIBLE,
    REC_PUT, /* writes, made by the writer */
    REC_OUTBOX,
    REC_AUDIT,
    REC_TALLY,
    REC_GRANT,
    REC_STEP,
};

/* One question asked or one write made while recording. */
struct rec_op {
    struct rec_op *next;
    enum rec_kind kind;
    bool in_apply; /* a write of the apply step (dropped when it failed) */
    /* REC_READ: type/id at version (0: the current one) was found at `found` (0: absent) */
    const char *type, *id;
    long version, found;
    /* REC_VISIBLE: type/id was (visible) or was not visible to one of sites, as
     * committed; REC_GRANT: type/id made visible to site */
    const char **sites;
    size_t n_sites;
    bool visible;
    const char *site;
    /* REC_TALLY: n events of class cls by client (or address) */
    const char *client, *address;
    int cls;
    long count;
    /* REC_STEP: step(txn, arg) on the writer */
    store_step_fn step;
    void *arg;
    /* REC_SEARCH: the query and the (id, version) of its matches */
    struct store_query *query;
    size_t n_found;
    bool has_more;
    const char **found_ids;
    long *found_versions;
    /* REC_PUT: the row; version is the one written, current the one it replaces */
    struct store_put put;
    json_t *resource; /* a reference: meta is stamped again with the commit time */
    long current;
    struct resource_current cur; /* what the writer found, asked before any write */
    struct store_written *out;
    /* REC_PUT, REC_AUDIT: the text and where the recording's instant is in it */
    char *text;
    size_t stamp_at;
    /* REC_OUTBOX */
    struct store_outbox_new msg;
    /* REC_AUDIT */
    const char *audit_id;
    int64_t recorded_ms;
    struct store_index_entry *index;
    size_t n_index;
};

struct store_recording {
    struct rec_op *head, *tail;
    int64_t now_ms;
    bool in_apply;
    bool unusable; /* something could not be recorded: redo it all on the writer */
    enum gw_code apply_rc;
    struct gw_error apply_err;
    void **kept; /* every block the ops point into */
    size_t n_kept, cap_kept;
};

/* ------------------------------------------------------------ memory */

/* Keeps p until the recording is freed; NULL (and unusable) on failure. */
static void *keep(struct store_recording *r, void *p)
{
    void **grown;

    if (!p) {
        r->unusable = true;
        return NULL;
    }
    grown = gw_grow(r->kept, &r->cap_kept, r->n_kept, sizeof *r->kept, 32);
    if (!grown) {
        free(p);
        r->unusable = true;
        return NULL;
    }
    r->kept = grown;
    r->kept[r->n_kept++] = p;
    return p;
}

static const char *keep_str(struct store_recording *r, const char *s)
{
    return s ? keep(r, gw_strdup(s)) : NULL;
}

static struct rec_op *add_op(struct store_recording *r, enum rec_kind kind)
{
    struct rec_op *op = keep(r, calloc(1, sizeof *op));

    if (!op)
        return NULL;
    op->kind = kind;
    op->in_apply = r->in_apply;
    if (r->tail)
        r->tail->next = op;
    else
        r->head = op;
    r->tail = op;
    return op;
}

struct store_recording *record_begin(void)
{
    struct store_recording *r = calloc(1, sizeof *r);

    if (r)
        r->now_ms = gw_now_ms();
    return r;
}

int64_t record_now(const struct store_recording *r)
{
    return r->now_ms;
}

void record_free(struct store_recording *r)
{
    struct rec_op *op;

    if (!r)
        return;
    for (op = r->head; op; op = op->next)
        json_decref(op->resource);
    while (r->n_kept)
        free(r->kept[--r->n_kept]);
    free(r->kept);
    free(r);
}

void record_set_phase(struct store_recording *r, bool in_apply)
{
    r->in_apply = in_apply;
}

bool record_usable(const struct store_recording *r)
{
    return !r->unusable;
}

static bool is_question(enum rec_kind kind)
{
    return kind == REC_READ || kind == REC_SEARCH || kind == REC_VISIBLE;
}

/* Unlinks the apply step's writes (its questions stay: the outcome depends
 * on their answers). */
void record_apply_failed(struct store_recording *r, enum gw_code rc, const struct gw_error *why)
{
    struct rec_op **pp = &r->head, *op;

    r->apply_rc = rc;
    r->apply_err = *why;
    /* A failure that says nothing about the request is not a recordable outcome. */
    if (rc == GW_E_NOMEM || rc == GW_E_STORE || rc == GW_E_IO || rc == GW_E_INTERNAL)
        r->unusable = true;
    r->tail = NULL;
    while ((op = *pp) != NULL) {
        if (op->in_apply && !is_question(op->kind)) {
            *pp = op->next;
            json_decref(op->resource);
            op->resource = NULL;
        } else {
            r->tail = op;
            pp = &op->next;
        }
    }
}

/* ------------------------------------------------------------ recording */

/* The offset in text of the instant of ms right after key ("\"lastUpdated\":\""),
 * when it is there exactly once; (size_t)-1 otherwise. */
static size_t find_once(const char *text, const char *key, int64_t ms)
{
    char pattern[64], instant[GW_INSTANT_LEN];
    const char *at, *second;

    gw_time_instant(ms, instant);
    snprintf(pattern, sizeof pattern, "%s%s\"", key, instant);
    at = strstr(text, pattern);
    if (!at)
        return (size_t)-1;
    second = strstr(at + 1, pattern);
    return second ? (size_t)-1 : (size_t)(at - text) + strlen(key);
}

enum gw_code record_read(struct store_txn *txn, const char *type, const char *id, long version,
                         struct store_resource *out, struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    enum gw_code rc = store_read(txn->st, type, id, version, out, err);
    struct rec_op *op;

    if (rc != GW_OK && rc != GW_E_NOTFOUND) {
        r->unusable = true;
        return rc;
    }
    op = add_op(r, REC_READ);
    if (op) {
        op->type = keep_str(r, type);
        op->id = keep_str(r, id);
        op->version = version;
        op->found = rc == GW_OK ? out->version : 0;
    }
    return rc;
}

/* A copy of q whose strings and arrays the recording keeps. */
static struct store_query *copy_query(struct store_recording *r, const struct store_query *q)
{
    struct store_query *c = keep(r, malloc(sizeof *c));
    struct store_cond *conds;
    struct store_sort *sorts;
    const char **sites;
    size_t i, k;

    if (!c)
        return NULL;
    *c = *q;
    c->type = keep_str(r, q->type);
    c->owner = keep_str(r, q->owner);
    conds = keep(r, calloc(q->n_conds + 1, sizeof *conds));
    sorts = keep(r, calloc(q->n_sorts + 1, sizeof *sorts));
    sites = keep(r, calloc(q->n_sites + 1, sizeof *sites));
    if (!conds || !sorts || !sites)
        return NULL;
    for (i = 0; i < q->n_conds; i++) {
        struct store_value *values = keep(r, calloc(q->conds[i].n_values + 1, sizeof *values));

        if (!values)
            return NULL;
        conds[i] = q->conds[i];
        conds[i].param = keep_str(r, q->conds[i].param);
        for (k = 0; k < q->conds[i].n_values; k++) {
            values[k] = q->conds[i].values[k];
            values[k].system = keep_str(r, q->conds[i].values[k].system);
            values[k].value = keep_str(r, q->conds[i].values[k].value);
        }
        conds[i].values = values;
    }
    for (i = 0; i < q->n_sorts; i++) {
        sorts[i] = q->sorts[i];
        sorts[i].param = keep_str(r, q->sorts[i].param);
    }
    for (i = 0; i < q->n_sites; i++)
        sites[i] = keep_str(r, q->sites[i]);
    c->conds = conds;
    c->sorts = sorts;
    c->sites = q->sites ? sites : NULL;
    return c;
}

enum gw_code record_search(struct store_txn *txn, const struct store_query *q,
                           struct store_page *out, struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    enum gw_code rc = store_search(txn->st, q, out, err);
    struct rec_op *op;
    size_t i;

    if (rc) {
        r->unusable = true;
        return rc;
    }
    op = add_op(r, REC_SEARCH);
    if (!op)
        return GW_OK;
    op->query = copy_query(r, q);
    op->n_found = out->n_items;
    op->has_more = out->has_more;
    op->found_ids = keep(r, calloc(out->n_items + 1, sizeof *op->found_ids));
    op->found_versions = keep(r, calloc(out->n_items + 1, sizeof *op->found_versions));
    for (i = 0; op->found_ids && op->found_versions && i < out->n_items; i++) {
        op->found_ids[i] = keep_str(r, out->items[i].id);
        op->found_versions[i] = out->items[i].version;
    }
    return GW_OK;
}

/* The current version of type/id, for a put that does not create. */
static enum gw_code current_of(struct store_txn *txn, const char *type, const char *id,
                               long *current, struct gw_error *err)
{
    struct store_resource row;
    enum gw_code rc = record_read(txn, type, id, 0, &row, err);

    *current = rc == GW_OK ? row.version : 0;
    if (rc == GW_OK)
        store_resource_cleanup(&row);
    return rc == GW_E_NOTFOUND ? GW_OK : rc;
}

static bool copy_index(struct store_recording *r, struct rec_op *op,
                       const struct store_index_entry *index, size_t n)
{
    struct store_index_entry *copy = keep(r, calloc(n + 1, sizeof *copy));
    size_t i;

    if (!copy)
        return false;
    for (i = 0; i < n; i++) {
        copy[i] = index[i];
        copy[i].param = keep_str(r, index[i].param);
        copy[i].system = keep_str(r, index[i].system);
        copy[i].value = keep_str(r, index[i].value);
    }
    op->index = copy;
    op->n_index = n;
    return !r->unusable;
}

enum gw_code record_put(struct store_txn *txn, const struct store_put *p, struct store_written *out,
                        struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    struct rec_op *op;
    long current = 0;
    char *text;
    enum gw_code rc = p->create ? GW_OK : current_of(txn, p->type, p->id, &current, err);

    if (!rc)
        rc = resources_check_preconditions(p, current, err);
    if (!rc)
        rc = resources_stamp_meta(p->resource, current + 1, r->now_ms, err);
    if (rc)
        return rc;
    text = keep(r, p->serialize ? p->serialize(p->resource)
                                : json_dumps(p->resource, JSON_COMPACT | JSON_PRESERVE_ORDER));
    if (!text)
        return gw_fail(err, GW_E_NOMEM, "no memory to serialise %s/%s", p->type, p->id);
    if (strlen(text) > STORE_MAX_JSON)
        return gw_fail(err, GW_E_LIMIT, "%s/%s is larger than %d bytes", p->type, p->id,
                       STORE_MAX_JSON);
    op = add_op(r, REC_PUT);
    if (!op || !copy_index(r, op, p->index, p->n_index))
        return GW_OK; /* unusable: the writer does it again */
    op->put = *p;
    op->put.type = keep_str(r, p->type);
    op->put.id = keep_str(r, p->id);
    op->put.owner = keep_str(r, p->owner);
    op->put.site = keep_str(r, p->site);
    op->put.index = op->index;
    op->put.resource = NULL;
    op->resource = json_incref(p->resource);
    op->version = current + 1;
    op->current = current;
    op->out = out;
    op->text = text;
    op->stamp_at = find_once(text, "\"lastUpdated\":\"", r->now_ms);
    if (op->stamp_at == (size_t)-1)
        r->unusable = true;
    if (out)
        *out = (struct store_written){current + 1, r->now_ms, 0};
    return GW_OK;
}

enum gw_code record_outbox_add(struct store_txn *txn, const struct store_outbox_new *m,
                               struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    struct rec_op *op = add_op(r, REC_OUTBOX);
    char *message;

    (void)err;
    if (!op)
        return GW_OK;
    message = keep(r, malloc(m->message_len + 1));
    if (!message)
        return GW_OK;
    memcpy(message, m->message, m->message_len);
    message[m->message_len] = '\0';
    op->msg = (struct store_outbox_new){keep_str(r, m->control_id),
                                        keep_str(r, m->site),
                                        keep_str(r, m->kind),
                                        keep_str(r, m->ref_type),
                                        keep_str(r, m->ref_id),
                                        message,
                                        m->message_len};
    return GW_OK;
}

enum gw_code record_audit_append(struct store_txn *txn, const char *id, int64_t recorded_ms,
                                 const char *canonical, const struct store_index_entry *index,
                                 size_t n_index, struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    struct rec_op *op = add_op(r, REC_AUDIT);

    (void)err;
    if (!op || !copy_index(r, op, index, n_index))
        return GW_OK;
    op->audit_id = keep_str(r, id);
    op->recorded_ms = recorded_ms;
    op->text = keep(r, gw_strdup(canonical));
    op->stamp_at = op->text ? find_once(op->text, "\"recorded\":\"", recorded_ms) : (size_t)-1;
    if (op->stamp_at == (size_t)-1)
        r->unusable = true;
    return GW_OK;
}

/* True when the recording itself made type/id visible to one of sites (a
 * grant, or a put routed to the site): what the writer's txn would see. */
static bool granted_here(const struct store_recording *r, const char *type, const char *id,
                         const char *const *sites, size_t n_sites)
{
    const struct rec_op *op;
    const char *site;
    size_t i;

    for (op = r->head; op; op = op->next) {
        if (op->kind == REC_GRANT && strcmp(op->type, type) == 0 && strcmp(op->id, id) == 0)
            site = op->site;
        else if (op->kind == REC_PUT && op->put.site && strcmp(op->put.type, type) == 0 &&
                 strcmp(op->put.id, id) == 0)
            site = op->put.site;
        else
            continue;
        for (i = 0; i < n_sites; i++)
            if (strcmp(site, sites[i]) == 0)
                return true;
    }
    return false;
}

enum gw_code record_site_visible(struct store_txn *txn, const char *type, const char *id,
                                 const char *const *sites, size_t n_sites, bool *visible,
                                 struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    enum gw_code rc = store_site_visible(txn->st, type, id, sites, n_sites, visible, err);
    struct rec_op *op;
    size_t i;

    if (rc) {
        r->unusable = true;
        return rc;
    }
    op = add_op(r, REC_VISIBLE);
    if (op) {
        op->type = keep_str(r, type);
        op->id = keep_str(r, id);
        op->sites = keep(r, calloc(n_sites + 1, sizeof *op->sites));
        for (i = 0; op->sites && i < n_sites; i++)
            op->sites[i] = keep_str(r, sites[i]);
        op->n_sites = n_sites;
        op->visible = *visible; /* the question the writer asks again */
    }
    if (!*visible && !r->unusable)
        *visible = granted_here(r, type, id, sites, n_sites);
    return GW_OK;
}

enum gw_code record_site_grant(struct store_txn *txn, const char *type, const char *id,
                               const char *site, struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    struct rec_op *op = add_op(r, REC_GRANT);

    (void)err;
    if (op) {
        op->type = keep_str(r, type);
        op->id = keep_str(r, id);
        op->site = keep_str(r, site);
    }
    return GW_OK;
}

enum gw_code record_audit_tally(struct store_txn *txn, const char *client, const char *address,
                                int cls, long n, struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    struct rec_op *op = add_op(r, REC_TALLY);

    (void)err;
    if (op) {
        op->client = keep_str(r, client ? client : "");
        op->address = keep_str(r, address ? address : "");
        op->cls = cls;
        op->count = n;
    }
    return GW_OK;
}

enum gw_code record_writer_step(struct store_txn *txn, store_step_fn step, const void *arg,
                                size_t arg_len, struct gw_error *err)
{
    struct store_recording *r = txn->rec;
    struct rec_op *op = add_op(r, REC_STEP);

    (void)err;
    if (!op)
        return GW_OK;
    op->step = step;
    op->arg = keep(r, malloc(arg_len ? arg_len : 1));
    if (op->arg && arg_len)
        memcpy(op->arg, arg, arg_len);
    return GW_OK;
}

enum gw_code record_unsupported(struct store_txn *txn, struct gw_error *err)
{
    txn->rec->unusable = true;
    return gw_fail(err, GW_E_INTERNAL, "this write cannot be prepared ahead of the writer");
}

/* ------------------------------------------------------------ replay (writer thread) */

/* True when the read op asked gets the same answer in txn: one seek of
 * resources' (type, id). */
static bool read_still_same(struct store_txn *txn, const struct rec_op *op)
{
    struct resource_current cur;

    if (resources_current(txn, op->type, op->id, &cur, NULL) != GW_OK)
        return false;
    if (op->version == 0)
        return cur.version == op->found;
    return op->found ? true : cur.version < op->version; /* versions never change once written */
}

/* Grants are never withdrawn: only an answer "not visible" can change. */
static bool visible_still_same(struct store_txn *txn, const struct rec_op *op)
{
    bool visible = false;

    if (!op->sites || store_txn_site_visible(txn, op->type, op->id, op->sites, op->n_sites,
                                             &visible, NULL) != GW_OK)
        return false;
    return visible == op->visible;
}

/* The search again, in the writer's transaction: driven by an index as it
 * was on the reader (searchsql.c), its statement kept by the writer. */
static bool search_still_same(struct store_txn *txn, const struct rec_op *op)
{
    struct conn c = {txn->db, &txn->st->wtext};
    struct store_page page;
    bool same;
    size_t i;

    if (!op->query || search_run(&c, op->query, true, &page, NULL) != GW_OK)
        return false;
    same = page.n_items == op->n_found && page.has_more == op->has_more;
    for (i = 0; same && i < page.n_items; i++)
        same = strcmp(page.items[i].id, op->found_ids[i]) == 0 &&
               page.items[i].version == op->found_versions[i];
    store_page_cleanup(&page);
    return same;
}

/* The put still finds the version it was recorded against (kept in op->cur
 * for the write), and it is the recording's only put of type/id: a second
 * one replaces the first, which the reader did not see, so the writer redoes
 * such work. */
static bool put_still_same(struct store_txn *txn, const struct store_recording *r,
                           struct rec_op *op)
{
    const struct rec_op *before;

    for (before = r->head; before != op; before = before->next)
        if (before->kind == REC_PUT && strcmp(before->put.type, op->put.type) == 0 &&
            strcmp(before->put.id, op->put.id) == 0)
            return false;
    if (resources_current(txn, op->put.type, op->put.id, &op->cur, NULL) != GW_OK)
        return false;
    return op->cur.version == op->current;
}

static bool still_same(struct store_txn *txn, const struct store_recording *r, struct rec_op *op)
{
    switch (op->kind) {
    case REC_READ:
        return read_still_same(txn, op);
    case REC_SEARCH:
        return search_still_same(txn, op);
    case REC_VISIBLE:
        return visible_still_same(txn, op);
    case REC_PUT:
        return put_still_same(txn, r, op);
    default:
        return true;
    }
}

/* Puts the commit instant where the recording's is. */
static void stamp(char *text, size_t at, int64_t ms)
{
    char instant[GW_INSTANT_LEN];

    gw_time_instant(ms, instant);
    memcpy(text + at, instant, strlen(instant));
}

/* Inserts the put's version over op->cur, asked before the writes; asked
 * again when a writer step ran since (it may have written type/id). */
static enum gw_code replay_put(struct store_txn *txn, struct rec_op *op, bool ask_again,
                               struct gw_error *err)
{
    int64_t seq = 0;
    enum gw_code rc =
        ask_again ? resources_current(txn, op->put.type, op->put.id, &op->cur, err) : GW_OK;

    if (rc)
        return rc;
    if (op->cur.version != op->current)
        return gw_fail(err, GW_E_CONFLICT, "%s/%s changed since it was prepared", op->put.type,
                       op->put.id);
    stamp(op->text, op->stamp_at, txn->now_ms);
    rc = resources_insert(txn, &op->put, &op->cur, op->text, &seq, err);
    if (!rc)
        rc = resources_stamp_meta(op->resource, op->version, txn->now_ms, err);
    if (!rc && op->out)
        *op->out = (struct store_written){op->version, txn->now_ms, seq};
    return rc;
}

static enum gw_code replay_audit(struct store_txn *txn, struct rec_op *op, struct gw_error *err)
{
    size_t i;

    stamp(op->text, op->stamp_at, txn->now_ms);
    for (i = 0; i < op->n_index; i++)
        if (op->index[i].lo == op->recorded_ms) { /* the event's date moves with it */
            op->index[i].hi += txn->now_ms - op->recorded_ms;
            op->index[i].lo = txn->now_ms;
        }
    op->recorded_ms = txn->now_ms;
    return store_txn_audit_append(txn, op->audit_id, txn->now_ms, op->text, op->index, op->n_index,
                                  err);
}

static enum gw_code replay_write(struct store_txn *txn, struct rec_op *op, bool stepped,
                                 struct gw_error *err)
{
    switch (op->kind) {
    case REC_PUT:
        return replay_put(txn, op, stepped, err);
    case REC_OUTBOX:
        return store_txn_outbox_add(txn, &op->msg, err);
    case REC_AUDIT:
        return replay_audit(txn, op, err);
    case REC_TALLY: /* counted in the hour of the commit, as its event is stamped */
        return store_txn_audit_tally(txn, txn->now_ms, op->client, op->address, op->cls, op->count,
                                     err);
    case REC_GRANT:
        return store_txn_site_grant(txn, op->type, op->id, op->site, err);
    case REC_STEP:
        return op->step(txn, op->arg, err);
    default:
        return GW_OK;
    }
}

enum replay_outcome record_replay(struct store_txn *txn, struct job *j, struct gw_error *why)
{
    struct store_recording *r = j->rec;
    struct rec_op *op;
    bool stepped = false;

    for (op = r->head; op; op = op->next)
        if (!still_same(txn, r, op))
            return REPLAY_CHANGED;
    for (op = r->head; op; op = op->next) {
        if (replay_write(txn, op, stepped, why) != GW_OK) {
            if (!why->msg[0])
                gw_fail(why, GW_E_STORE, "a prepared write failed");
            return REPLAY_FAILED;
        }
        stepped = stepped || op->kind == REC_STEP;
    }
    j->rc = r->apply_rc;
    j->err = r->apply_err;
    return REPLAY_DONE;
}
