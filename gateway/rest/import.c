/* import.c -- `fhir-gateway import`: FHIR NDJSON (one resource, or one
 * transaction Bundle, per line) loaded as the client it is imported for would
 * create it over HTTP: the same parsing and R4 validation (rest_parse_any),
 * the same admission by type and role, the same write plans (referral
 * profile, mapping, triage, Task, RIS order) and the same AuditEvents, one per
 * line (a transaction's per entry too), so an imported referral cannot be
 * told from one POSTed.
 *
 * Lines go to the store in batches (store_write_all): the writer commits
 * them max_batch at a time, each line in a savepoint of its own as a request
 * would be, so a refused line leaves only its failure AuditEvent and the
 * others stand. The next batch is read, parsed and validated while the store
 * writes the previous one.
 *
 * A resource with an identifier (alone, or a transaction's entry without an
 * ifNoneExist of its own) is created only if none of the client's resources
 * of its type has that identifier already (its first identifier serves as
 * If-None-Exist): importing the same file twice, or the rest of a file after
 * a failure, creates nothing twice (but for resources without identifiers,
 * such as a transaction's Condition, which are created again).
 *
 * The requests have no connection: http_request_header() answers NULL for
 * every header, so no Prefer header changes anything.
 */
#include "rest/rest_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define IMPORT_DEFAULT_BATCH  500
#define IMPORT_MAX_BATCH      10000
#define IMPORT_MAX_TEXT       2000   /* bytes of one line's failure text */
#define IMPORT_PROGRESS_EVERY 100000 /* lines between two progress log lines */

/* One line, as a request. */
struct item {
    long line;
    char *text; /* the line: the request's body */
    struct http_request req;
    char request_id[48];
    char path[80];
    struct rest_plan plan;
    bool planned;        /* plan holds the line's work */
    int status;          /* refused before writing: its status, and */
    json_t *refusal;     /* its OperationOutcome */
    const char *subtype; /* "create" or "transaction" */
    enum gw_code rc;     /* after the commit */
    struct gw_error err;
};

struct batch {
    struct rest_ctx *ctx;
    struct item *items;
    struct store_work *work; /* one per item */
    size_t n, cap;
    enum gw_code rc; /* the commit's */
    struct gw_error err;
    pthread_t thread;
    bool running;
};

/* ------------------------------------------------------------ reading */

/* Reads one line of at most max bytes into *out (new string, newline
 * removed). *too_long when the line was longer (its bytes are skipped).
 * Returns false at the end of the input. */
static bool read_line(FILE *in, size_t max, char **out, size_t *len, bool *too_long)
{
    struct gw_buf b;
    int c;
    bool any = false;

    *out = NULL;
    *len = 0;
    *too_long = false;
    gw_buf_init(&b, max + 1);
    while ((c = getc(in)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (b.len >= max)
            *too_long = true;
        else
            gw_buf_putc(&b, (char)c);
    }
    if (!any) {
        gw_buf_cleanup(&b);
        return false;
    }
    if (b.len && b.data[b.len - 1] == '\r')
        b.data[--b.len] = '\0';
    *out = gw_buf_steal(&b, len); /* NULL: no memory for the line */
    gw_buf_cleanup(&b);
    return true;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

/* ------------------------------------------------------------ preparing */

static void refuse(struct item *it, int status, const char *code, const char *why)
{
    it->status = status;
    it->refusal = http_outcome_new("error", code, why, NULL);
}

/* Appends s to b escaped for a FHIR search value (\, | $ \) and for a query
 * string (%-encoded but for unreserved characters). */
static void query_value(struct gw_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == ',' || c == '|' || c == '$' || c == '\\')
            gw_buf_puts(b, "%5C");
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '/')
            gw_buf_putc(b, (char)c);
        else
            gw_buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
}

/* "identifier=system|value" of the resource's first identifier, or NULL. */
static char *identifier_condition(json_t *res)
{
    json_t *ident = json_array_get(json_object_get(res, "identifier"), 0);
    const char *system = json_string_value(json_object_get(ident, "system"));
    const char *value = json_string_value(json_object_get(ident, "value"));
    struct gw_buf b;
    size_t n;

    if (!value)
        return NULL;
    gw_buf_init(&b, 16 * 1024);
    gw_buf_puts(&b, "identifier=");
    if (system) {
        query_value(&b, system);
        gw_buf_putc(&b, '|');
    }
    query_value(&b, value);
    return gw_buf_steal(&b, &n);
}

static void plan_resource(struct item *it, struct rest_ctx *ctx, json_t *res_new)
{
    const char *type = fhir_resource_type(res_new);
    const struct rest_type *t = rest_type_find(type);
    struct rest_entry *e;
    char why[200];

    if (!t || !(t->interactions & REST_CREATE) || !auth_allows(it->req.who, t->write_roles)) {
        snprintf(why, sizeof why, "%s of %s is not allowed for this client here", "create", type);
        refuse(it, t ? (t->interactions & REST_CREATE ? 403 : 405) : 404,
               t && t->interactions & REST_CREATE ? "forbidden" : "not-supported", why);
        json_decref(res_new);
        return;
    }
    json_object_del(res_new, "id"); /* the server assigns ids (FHIR R4 §3.1.0.4) */
    snprintf(it->path, sizeof it->path, "POST /fhir/%s", type);
    rest_plan_init(&it->plan, ctx, &it->req, "create");
    snprintf(it->plan.path, sizeof it->plan.path, "import line %ld (POST /fhir/%s)", it->line,
             type);
    e = rest_plan_add(&it->plan, type, res_new);
    if (!e || !it->plan.outcome) {
        refuse(it, 503, "transient", "no memory for the line");
        rest_plan_cleanup(&it->plan);
        return;
    }
    e->if_none_exist = identifier_condition(e->resource);
    it->planned = true;
}

static void plan_bundle(struct item *it, struct rest_ctx *ctx, json_t *bundle)
{
    const char *type = json_string_value(json_object_get(bundle, "type"));
    struct http_response resp;
    struct gw_error err;
    size_t i;

    it->subtype = "transaction";
    snprintf(it->path, sizeof it->path, "POST /fhir");
    if (!type || strcmp(type, "transaction") != 0) {
        refuse(it, 400, "invalid",
               "a line holds one resource or one transaction Bundle (a batch's entries can be"
               " lines of their own)");
    } else if (json_array_size(json_object_get(bundle, "entry")) > REST_MAX_ENTRIES) {
        refuse(it, 413, "too-costly", "a Bundle may carry at most 1000 entries");
    } else {
        rest_plan_init(&it->plan, ctx, &it->req, "transaction");
        snprintf(it->plan.path, sizeof it->plan.path, "import line %ld (transaction)", it->line);
        if (it->plan.outcome && rest_plan_add_transaction(&it->plan, bundle) == GW_OK) {
            it->planned = true;
            for (i = 0; i < it->plan.n_entries; i++) {
                struct rest_entry *e = &it->plan.entries[i];

                if (!e->is_put && !e->if_none_exist)
                    e->if_none_exist = identifier_condition(e->resource);
            }
        } else {
            memset(&resp, 0, sizeof resp);
            gw_fail(&err, GW_E_INPUT, "the transaction was refused");
            rest_plan_answer_failure(&it->plan, &err, &resp);
            it->status = resp.status;
            it->refusal = resp.resource;
            free(resp.body);
            rest_plan_cleanup(&it->plan);
        }
    }
    json_decref(bundle);
}

/* Parses and validates the line, then makes its plan (or its refusal). */
static void prepare(struct item *it, struct rest_ctx *ctx)
{
    struct http_response resp;
    json_t *res;

    memset(&resp, 0, sizeof resp);
    it->subtype = "create";
    snprintf(it->path, sizeof it->path, "POST /fhir");
    res = rest_parse_any(ctx, &it->req, &resp);
    if (!res) {
        it->status = resp.status ? resp.status : 400;
        it->refusal = resp.resource;
        free(resp.body);
        return;
    }
    if (strcmp(fhir_resource_type(res), "Bundle") == 0)
        plan_bundle(it, ctx, res);
    else
        plan_resource(it, ctx, res);
}

static void item_init(struct item *it, const struct auth_identity *who, long line, char *text,
                      size_t len)
{
    memset(it, 0, sizeof *it);
    it->line = line;
    it->text = text;
    snprintf(it->request_id, sizeof it->request_id, "import-line-%ld", line);
    it->req.method = "POST";
    it->req.path = "/fhir";
    it->req.route = "import";
    it->req.query = "";
    it->req.body = text;
    it->req.body_len = len;
    it->req.body_format = HTTP_FORMAT_JSON;
    it->req.want_format = HTTP_FORMAT_JSON;
    it->req.who = who;
    it->req.request_id = it->request_id;
    it->req.started_ms = gw_now_ms();
}

static void item_cleanup(struct item *it)
{
    if (it->planned)
        rest_plan_cleanup(&it->plan);
    json_decref(it->refusal);
    free(it->text);
    memset(it, 0, sizeof *it);
}

/* ------------------------------------------------------------ writing */

static enum gw_code item_apply(struct store_txn *txn, void *vit, struct gw_error *err)
{
    struct item *it = vit;

    return rest_plan_apply(txn, &it->plan, err);
}

static enum gw_code item_audit(struct store_txn *txn, void *vit, enum gw_code outcome,
                               const struct gw_error *why, struct gw_error *err)
{
    struct item *it = vit;

    return rest_plan_audit(txn, &it->plan, outcome, why, err);
}

/* The AuditEvent of a line refused before it reached a plan. */
static enum gw_code refusal_audit(struct store_txn *txn, void *vit, enum gw_code outcome,
                                  const struct gw_error *why_not, struct gw_error *err)
{
    struct item *it = vit;
    json_t *issue = json_array_get(json_object_get(it->refusal, "issue"), 0);
    const char *why = json_string_value(json_object_get(issue, "diagnostics"));
    struct audit_event ev;

    (void)outcome;
    (void)why_not;
    rest_audit_init(&ev, &it->req, it->subtype, strcmp(it->subtype, "create") == 0 ? 'C' : 'E');
    ev.path = it->path;
    ev.outcome = audit_outcome_of_status(it->status);
    ev.outcome_desc = why ? why : "refused";
    return audit_record(txn, &ev, err);
}

/* Hands every line of b to the store at once: each is a piece of work of its
 * own (its savepoint, its AuditEvents), as a request would be. */
static void *commit_main(void *vb)
{
    struct batch *b = vb;
    size_t i;

    for (i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];

        b->work[i] = (struct store_work){.apply = it->planned ? item_apply : NULL,
                                         .audit = it->planned ? item_audit : refusal_audit,
                                         .ctx = it};
    }
    gw_error_clear(&b->err);
    b->rc = store_write_all(b->ctx->store, b->work, b->n, &b->err);
    for (i = 0; !b->rc && i < b->n; i++) {
        b->items[i].rc = b->work[i].rc;
        b->items[i].err = b->work[i].err;
    }
    return NULL;
}

static enum gw_code commit_start(struct batch *b, struct gw_error *err)
{
    if (pthread_create(&b->thread, NULL, commit_main, b) != 0)
        return gw_fail(err, GW_E_INTERNAL, "cannot start the import's commit thread");
    b->running = true;
    return GW_OK;
}

/* ------------------------------------------------------------ reporting */

/* The OperationOutcome's errors as one line of text. */
static void outcome_text(json_t *outcome, const char *fallback, char *out, size_t cap)
{
    json_t *issue;
    size_t i, n = 0;

    out[0] = '\0';
    json_array_foreach (json_object_get(outcome, "issue"), i, issue) {
        const char *sev = json_string_value(json_object_get(issue, "severity"));
        const char *code = json_string_value(json_object_get(issue, "code"));
        const char *text = json_string_value(json_object_get(issue, "diagnostics"));
        const char *where =
            json_string_value(json_array_get(json_object_get(issue, "expression"), 0));
        int w;

        if (!sev || (strcmp(sev, "error") != 0 && strcmp(sev, "fatal") != 0))
            continue;
        w = snprintf(out + n, cap - n, "%s%s: %s%s%s", n ? "; " : "", code ? code : "error",
                     text ? text : "", where ? " at " : "", where ? where : "");
        if (w < 0 || (size_t)w >= cap - n)
            break; /* the rest does not fit: the line ends here */
        n += (size_t)w;
    }
    if (!n)
        snprintf(out, cap, "%s", fallback);
}

/* Counts and reports the lines of a committed batch, then empties it. */
static void report(struct batch *b, rest_import_failure_fn on_failure, void *fctx,
                   struct rest_import_stats *stats)
{
    char text[IMPORT_MAX_TEXT];
    size_t i;

    for (i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        struct http_response resp;

        if (it->planned && !b->rc && !it->rc) {
            size_t k;

            stats->imported++;
            for (k = 0; k < it->plan.n_entries && it->plan.entries[k].existed; k++)
                ;
            stats->matched += k == it->plan.n_entries; /* nothing new */
        } else if (it->planned) {
            memset(&resp, 0, sizeof resp);
            rest_plan_answer_failure(&it->plan, b->rc ? &b->err : &it->err, &resp);
            outcome_text(resp.resource, b->rc ? b->err.msg : it->err.msg, text, sizeof text);
            on_failure(fctx, it->line, resp.status, text);
            json_decref(resp.resource);
            free(resp.body);
            stats->failed++;
        } else {
            outcome_text(it->refusal, b->rc ? b->err.msg : "refused", text, sizeof text);
            on_failure(fctx, it->line, it->status, text);
            stats->failed++;
        }
        item_cleanup(it);
    }
    b->n = 0;
}

static void finish(struct batch *b, rest_import_failure_fn on_failure, void *fctx,
                   struct rest_import_stats *stats)
{
    long before = stats->imported + stats->failed;

    if (!b->running)
        return;
    pthread_join(b->thread, NULL);
    b->running = false;
    report(b, on_failure, fctx, stats);
    if (before / IMPORT_PROGRESS_EVERY != (stats->imported + stats->failed) / IMPORT_PROGRESS_EVERY)
        gw_log(GW_LOG_INFO, "import-progress", "%ld lines done: %ld imported, %ld failed",
               stats->imported + stats->failed, stats->imported, stats->failed);
}

/* ------------------------------------------------------------ the loop */

/* Fills b with up to b->cap prepared lines; false at the end of the input. */
static bool fill(struct batch *b, FILE *in, size_t max_line, const struct auth_identity *who,
                 long *line, struct rest_import_stats *stats)
{
    char *text;
    size_t len;
    bool too_long;

    while (b->n < b->cap) {
        if (!read_line(in, max_line, &text, &len, &too_long))
            return false;
        (*line)++;
        if (!text || (!too_long && blank(text))) {
            free(text);
            if (!text) { /* no memory for the line: report it, do not lose it silently */
                item_init(&b->items[b->n], who, *line, NULL, 0);
                refuse(&b->items[b->n++], 503, "transient", "no memory for the line");
                stats->lines++;
            }
            continue;
        }
        stats->lines++;
        item_init(&b->items[b->n], who, *line, text, len);
        if (too_long)
            refuse(&b->items[b->n], 413, "too-costly",
                   "the line is longer than max_body_bytes, the limit of a request");
        else
            prepare(&b->items[b->n], b->ctx);
        b->n++;
    }
    return true;
}

enum gw_code rest_import(struct rest_ctx *ctx, const struct auth_identity *who, FILE *in,
                         size_t batch, rest_import_failure_fn on_failure, void *fctx,
                         struct rest_import_stats *stats, struct gw_error *err)
{
    struct batch b[2];
    size_t cap =
        batch ? (batch > IMPORT_MAX_BATCH ? IMPORT_MAX_BATCH : batch) : IMPORT_DEFAULT_BATCH;
    size_t max_line = (size_t)ctx->cfg->max_body_bytes;
    long line = 0;
    int cur = 0, i;
    bool more = true;
    enum gw_code rc = GW_OK;

    memset(stats, 0, sizeof *stats);
    memset(b, 0, sizeof b);
    for (i = 0; i < 2; i++)
        b[i] = (struct batch){.ctx = ctx,
                              .items = calloc(cap, sizeof(struct item)),
                              .work = calloc(cap, sizeof(struct store_work)),
                              .cap = cap};
    if (!b[0].items || !b[1].items || !b[0].work || !b[1].work) {
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the import's batches");
        goto out;
    }
    while (more) {
        more = fill(&b[cur], in, max_line, who, &line, stats);
        finish(&b[1 - cur], on_failure, fctx, stats); /* the previous batch, committed */
        if (b[cur].n && commit_start(&b[cur], err) != GW_OK) {
            commit_main(&b[cur]); /* no thread to spare: commit it here */
            report(&b[cur], on_failure, fctx, stats);
        }
        cur = 1 - cur;
    }
    finish(&b[1 - cur], on_failure, fctx, stats);
    finish(&b[cur], on_failure, fctx, stats);
    if (ferror(in))
        rc = gw_fail(err, GW_E_IO, "reading the input failed after line %ld", line);
out:
    for (i = 0; i < 2; i++) {
        free(b[i].items);
        free(b[i].work);
    }
    return rc;
}
