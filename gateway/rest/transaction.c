/* transaction.c -- POST /fhir with a transaction or batch Bundle (FHIR R4
 * §3.1.0.11). A transaction is one plan: every entry, its Task, its RIS
 * order and the AuditEvents commit together or not at all. A batch runs
 * each entry as a plan of its own and answers each entry's outcome.
 * Entries may POST (create, with ifNoneExist) the referral's resources and
 * PUT ServiceRequests (update, with ifMatch). The request waits suspended
 * for the commits: a transaction's plan, or every batch entry's plan and
 * the batch's own AuditEvent (queued in order, answered once all are done).
 */

#include <stdatomic.h>
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

/* Reads one Bundle entry into the plan; on refusal records why (400/405). */
static enum gw_code add_entry(struct rest_plan *p, json_t *entry, long index)
{
    json_t *request = json_object_get(entry, "request");
    json_t *res = json_object_get(entry, "resource");
    const char *method = json_string_value(json_object_get(request, "method"));
    const char *url = json_string_value(json_object_get(request, "url"));
    const char *type = fhir_resource_type(res);
    const char *slash = url ? strchr(url, '/') : NULL;
    const struct rest_type *t = type ? rest_type_find(type) : NULL;
    struct rest_entry *e;
    char where[80];
    bool put = method && strcmp(method, "PUT") == 0;

    snprintf(where, sizeof where, "Bundle.entry[%ld].request", index);
    if (!method || !url || !type || (!put && strcmp(method, "POST") != 0))
        return rest_plan_fail(p, 405, GW_E_INPUT, "not-supported", where,
                              "entries may POST (create) or PUT (update) a resource; %s is not "
                              "supported in a Bundle here",
                              method ? method : "this request");
    if (t && strcmp(type, "Subscription") == 0)
        return rest_plan_fail(p, 422, GW_E_INPUT, "not-supported", where,
                              "Subscriptions are written one at a time: POST /fhir/Subscription");
    if (!t || !(t->interactions & (put ? REST_UPDATE : REST_CREATE)) ||
        !auth_allows(p->req->who, t->write_roles))
        return rest_plan_fail(p, t ? 403 : 404, GW_E_DENIED, t ? "forbidden" : "not-supported",
                              where, "%s of %s is not allowed here", put ? "update" : "create",
                              type);
    if (strncmp(url, type, strlen(type)) != 0 || (put && (!slash || !slash[1])))
        return rest_plan_fail(p, 400, GW_E_INPUT, "invalid", where,
                              "request.url must be '%s' (create) or '%s/<id>' (update)", type,
                              type);
    e = rest_plan_add(p, type, json_deep_copy(res));
    if (!e)
        return GW_E_NOMEM;
    e->index = index;
    e->is_put = put;
    if (json_string_value(json_object_get(entry, "fullUrl")) &&
        !(e->full_url = gw_strdup(json_string_value(json_object_get(entry, "fullUrl")))))
        return GW_E_NOMEM;
    if (put) {
        e->id = gw_strdup(slash + 1);
        e->if_match = rest_etag_version(json_string_value(json_object_get(request, "ifMatch")));
        if (!e->id)
            return GW_E_NOMEM;
        if (e->if_match < 0)
            return rest_plan_fail(p, 400, GW_E_INPUT, "value", where,
                                  "ifMatch must be an ETag such as W/\"3\"");
    } else {
        const char *ine = json_string_value(json_object_get(request, "ifNoneExist"));

        json_object_del(e->resource, "id");
        if (ine && !(e->if_none_exist = gw_strdup(strchr(ine, '?') ? strchr(ine, '?') + 1 : ine)))
            return GW_E_NOMEM;
    }
    return GW_OK;
}

/* The index of the first ServiceRequest entry (its answer carries the
 * plan's warnings), or the first entry. */
static size_t first_referral(const struct rest_plan *p)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++)
        if (strcmp(p->entries[i].type, "ServiceRequest") == 0)
            return i;
    return 0;
}

/* The refusal event of a plan refused before it ran. */
static void refusal_event(struct rest_plan *p, struct audit_event *ev)
{
    rest_audit_init(ev, p->req, p->interaction, 'E');
    ev->path = p->path;
}

static json_t *response_entry(struct rest_ctx *ctx, const struct http_request *req,
                              const struct rest_entry *e, json_t *outcome)
{
    char status[40], location[400], etag[40], instant[GW_INSTANT_LEN], full[REST_MAX_BASE + 200];
    const char *prefer = http_request_header(req, "Prefer");
    json_t *entry;

    snprintf(status, sizeof status, "%d %s", e->status, e->status == 201 ? "Created" : "OK");
    snprintf(location, sizeof location, "%s/%s/_history/%ld", e->type, e->id, e->written.version);
    snprintf(etag, sizeof etag, "W/\"%ld\"", e->written.version);
    snprintf(full, sizeof full, "%s/%s/%s", ctx->base, e->type, e->id);
    gw_time_instant(e->written.last_updated_ms, instant);
    entry = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "fullUrl", full, "response", "status",
                      status, "location", location, "etag", etag, "lastModified", instant);
    if (entry && !(prefer && strstr(prefer, "return=minimal")) &&
        json_object_set(entry, "resource", e->resource)) {
        json_decref(entry);
        return NULL;
    }
    if (entry && outcome && json_array_size(json_object_get(outcome, "issue")) &&
        json_object_set(json_object_get(entry, "response"), "outcome", outcome)) {
        json_decref(entry);
        return NULL;
    }
    return entry;
}

static json_t *response_bundle(const char *type)
{
    return json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle", "type", type, "entry");
}

static void answer_transaction(struct rest_plan *plan, struct http_response *resp)
{
    json_t *answer;
    size_t i;

    if (plan->rc) {
        rest_plan_answer_failure(plan, &plan->err, resp);
        return;
    }
    answer = response_bundle("transaction-response");
    if (!answer) {
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
        return;
    }
    for (i = 0; i < plan->n_entries; i++)
        json_array_append_new(json_object_get(answer, "entry"),
                              response_entry(plan->ctx, plan->req, &plan->entries[i],
                                             i == first_referral(plan) ? plan->outcome : NULL));
    http_respond_resource(resp, 200, answer);
    json_decref(answer);
}

enum gw_code rest_plan_add_transaction(struct rest_plan *p, json_t *bundle)
{
    json_t *entry;
    size_t i;
    enum gw_code rc = GW_OK;

    json_array_foreach (json_object_get(bundle, "entry"), i, entry) {
        rc = add_entry(p, entry, (long)i);
        if (rc)
            return rc;
    }
    if (p->n_entries == 0)
        rc = rest_plan_fail(p, 400, GW_E_INPUT, "required", "Bundle.entry",
                            "the transaction has no entries");
    return rc;
}

static void run_transaction(struct rest_ctx *ctx, struct http_request *req,
                            struct http_response *resp, json_t *bundle)
{
    struct rest_plan *plan = calloc(1, sizeof *plan);
    struct audit_event ev;
    struct gw_error err;
    enum gw_code rc;

    if (!plan) {
        rest_audit_init(&ev, req, "transaction", 'E');
        ev.path = "POST /fhir (transaction)";
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    rest_plan_init(plan, ctx, req, "transaction");
    snprintf(plan->path, sizeof plan->path, "POST /fhir (transaction)");
    rc = rest_plan_add_transaction(plan, bundle);
    if (!rc) {
        rest_plan_submit(plan, req, resp, answer_transaction);
        return;
    }
    gw_fail(&err, rc, "the transaction was refused");
    rest_plan_answer_failure(plan, &err, resp);
    refusal_event(plan, &ev);
    rest_answer_refused(ctx, req, resp, &ev);
    rest_plan_cleanup(plan);
    free(plan);
}

/* ------------------------------------------------------------ batches */

/* One entry of a batch: a plan of its own, or its refusal. */
struct batch_entry {
    struct rest_plan plan;
    struct http_response refused; /* status set when refused before it ran */
};

/* A batch waiting for its entries' commits and its own AuditEvent. */
struct batch {
    struct batch_entry *entries;
    size_t n;
    atomic_size_t left; /* jobs not yet committed */
    struct http_pending *pending;
    enum gw_code audit_rc;
};

static void batch_step(void *vb, enum gw_code rc, const struct gw_error *err)
{
    struct batch *b = vb;

    (void)rc;
    (void)err;
    if (atomic_fetch_sub(&b->left, 1) == 1)
        http_pending_ready(b->pending);
}

static void batch_audited(void *vb, enum gw_code rc, const struct gw_error *err)
{
    struct batch *b = vb;

    b->audit_rc = rc;
    batch_step(b, rc, err);
}

/* One batch entry's response entry (new reference). */
static json_t *batch_answer_entry(struct batch_entry *be)
{
    struct http_response sub;
    json_t *out = NULL;
    char status[40];

    memset(&sub, 0, sizeof sub);
    if (be->refused.status)
        sub = be->refused;
    else if (be->plan.rc)
        rest_plan_answer_failure(&be->plan, &be->plan.err, &sub);
    else
        out = response_entry(be->plan.ctx, be->plan.req, &be->plan.entries[0], be->plan.outcome);
    if (!out) {
        snprintf(status, sizeof status, "%d", sub.status ? sub.status : 500);
        out = json_pack("{s:{s:s, s:O*}}", "response", "status", status, "outcome", sub.resource);
    }
    if (!be->refused.status)
        http_response_cleanup(&sub);
    return out;
}

static void batch_finish(struct http_request *req, struct http_response *resp, void *vb)
{
    struct batch *b = vb;
    json_t *answer = response_bundle("batch-response");
    size_t i;

    (void)req;
    for (i = 0; answer && i < b->n; i++)
        if (json_array_append_new(json_object_get(answer, "entry"),
                                  batch_answer_entry(&b->entries[i]))) {
            json_decref(answer);
            answer = NULL;
        }
    if (b->audit_rc)
        http_respond_error(resp, 503, "transient", "the access could not be audited", NULL);
    else if (!answer)
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
    else
        http_respond_resource(resp, 200, answer);
    json_decref(answer);
}

static void batch_release(void *vb)
{
    struct batch *b = vb;
    size_t i;

    for (i = 0; i < b->n; i++) {
        rest_plan_cleanup(&b->entries[i].plan);
        http_response_cleanup(&b->entries[i].refused);
    }
    free(b->entries);
    free(b);
}

/* Queues batch entry index: its plan, or the record of its refusal. */
static void batch_entry_submit(struct rest_ctx *ctx, struct http_request *req, struct batch *b,
                               json_t *entry, size_t index)
{
    struct batch_entry *be = &b->entries[index];
    struct rest_plan *plan = &be->plan;
    struct audit_event ev;
    struct gw_error err;
    enum gw_code rc;

    rest_plan_init(plan, ctx, req, "create");
    snprintf(plan->path, sizeof plan->path, "POST /fhir (batch entry %zu)", index);
    rc = add_entry(plan, entry, (long)index);
    if (rc == GW_OK && plan->entries[0].is_put)
        plan->interaction = "update";
    if (rc == GW_OK) {
        rest_plan_submit_then(plan, batch_step, b);
        return;
    }
    gw_fail(&err, rc, "the entry was refused");
    rest_plan_answer_failure(plan, &err, &be->refused);
    if (!be->refused.status)
        be->refused.status = 500;
    refusal_event(plan, &ev);
    rest_audit_submit(ctx, &ev, be->refused.status, rest_refusal_text(&be->refused, "refused"),
                      batch_step, b);
}

static void run_batch(struct rest_ctx *ctx, struct http_request *req, struct http_response *resp,
                      json_t *bundle)
{
    json_t *entries = json_object_get(bundle, "entry"), *entry;
    struct batch *b = calloc(1, sizeof *b);
    struct audit_event ev;
    size_t i;

    rest_audit_init(&ev, req, "batch", 'E');
    ev.path = "POST /fhir (batch)";
    if (b)
        b->entries = calloc(json_array_size(entries) + 1, sizeof *b->entries);
    if (b && b->entries)
        b->pending = http_defer(req, resp, batch_finish, b, batch_release);
    if (!b || !b->pending) {
        if (b)
            free(b->entries);
        free(b);
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    b->n = json_array_size(entries);
    atomic_init(&b->left, b->n + 1);
    json_array_foreach (entries, i, entry)
        batch_entry_submit(ctx, req, b, entry, i);
    rest_audit_submit(ctx, &ev, 200, NULL, batch_audited, b); /* queued after the entries */
}

void rest_handle_bundle(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    json_t *bundle;
    const char *type;

    rest_audit_init(&ev, req, "transaction", 'E');
    ev.path = "POST /fhir";
    bundle = rest_parse_resource(ctx, req, resp, "Bundle");
    type = json_string_value(json_object_get(bundle, "type"));
    if (bundle && (!type || (strcmp(type, "transaction") != 0 && strcmp(type, "batch") != 0))) {
        http_respond_error(resp, 400, "invalid",
                           "POST /fhir takes a Bundle of type transaction or batch", "Bundle.type");
        json_decref(bundle);
        bundle = NULL;
    }
    if (bundle && json_array_size(json_object_get(bundle, "entry")) > REST_MAX_ENTRIES) {
        http_respond_error(resp, 413, "too-costly", "a Bundle may carry at most 1000 entries",
                           "Bundle.entry");
        json_decref(bundle);
        bundle = NULL;
    }
    if (!bundle) {
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    if (strcmp(type, "transaction") == 0)
        run_transaction(ctx, req, resp, bundle);
    else
        run_batch(ctx, req, resp, bundle);
    json_decref(bundle);
}
