/* write.c -- running a write plan: one job for the store's writer whose
 * apply step resolves, checks, maps and writes every entry (with Tasks and
 * RIS orders) and whose audit step records the interaction and each entry,
 * so data and AuditEvents share one commit; a failing plan leaves only its
 * failure event. The request waits suspended for the commit
 * (rest_plan_submit), then is answered on a server thread.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "notify/notify.h"

/* The stored text: Jansson's compact text (what the store would write), faster. */
static char *serialize(json_t *resource)
{
    return gw_json_dumps(resource, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

enum gw_code rest_put(struct rest_ctx *ctx, struct store_txn *txn, json_t *resource,
                      const char *owner, const char *site, long if_match, bool create,
                      struct store_written *out, struct gw_error *err)
{
    struct rest_index ix;
    struct store_put put = {.type = fhir_resource_type(resource),
                            .id = json_string_value(json_object_get(resource, "id")),
                            .resource = resource,
                            .owner = owner,
                            .site = site,
                            .if_match = if_match,
                            .create = create,
                            .serialize = serialize};
    long version = 0;
    enum gw_code rc;

    if (!put.type || !put.id)
        return gw_fail(err, GW_E_INTERNAL, "a resource without type or id reached the store");
    rc = rest_index_build(ctx->base, resource, &ix, err);
    if (rc)
        return rc;
    put.index = ix.e;
    put.n_index = ix.n;
    /* out goes to the store as it is: a recording writes the committed
     * version and time into it at replay, so it must outlive the job */
    rc = store_txn_put(txn, &put, out, err);
    rest_index_cleanup(&ix);
    /* the version just written, as the store stamped it into meta */
    if (!rc && !gw_parse_long(json_string_value(
                                  json_object_get(json_object_get(resource, "meta"), "versionId")),
                              1, 1L << 40, &version))
        rc = gw_fail(err, GW_E_INTERNAL, "%s/%s was written without a version", put.type, put.id);
    if (!rc)
        rc = rest_subscriptions_notify(ctx, txn, put.type, put.id, owner, version, err);
    return rc;
}

static enum gw_code put_hook(void *vctx, struct store_txn *txn, json_t *resource, const char *owner,
                             const char *site, long if_match, struct store_written *out,
                             struct gw_error *err)
{
    return rest_put(vctx, txn, resource, owner, site, if_match, false, out, err);
}

void rest_ris_hooks(struct rest_ctx *ctx, struct ris_hooks *hooks)
{
    hooks->put = put_hook;
    hooks->ctx = ctx;
}

static const char *base_hook(void *vctx)
{
    return ((struct rest_ctx *)vctx)->base;
}

void rest_notify_hooks(struct rest_ctx *ctx, struct notify_hooks *hooks)
{
    hooks->put = put_hook;
    hooks->base = base_hook;
    hooks->ctx = ctx;
}

static bool is_referral(const struct rest_entry *e)
{
    return strcmp(e->type, "ServiceRequest") == 0;
}

static enum gw_code write_entry(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                struct gw_error *err)
{
    const char *owner = e->owner ? e->owner : p->req->who->org_id;
    char path[200];
    enum gw_code rc = /* only referrals carry a site: others are granted by referral.c */
        rest_put(p->ctx, txn, e->resource, owner, e->site, e->if_match, !e->is_put, &e->written,
                 err);

    if (rc == GW_E_CONFLICT) {
        rest_entry_path(e, path, sizeof path);
        return rest_plan_fail(p, e->if_match ? 412 : 409, rc, "conflict", path, "%s",
                              err ? err->msg : "version conflict");
    }
    e->status = e->is_put ? 200 : 201;
    return rc;
}

static enum gw_code apply(struct store_txn *txn, void *vplan, struct gw_error *err)
{
    struct rest_plan *p = vplan;
    size_t i;
    enum gw_code rc = p->reset_failed
                          ? gw_fail(err, GW_E_NOMEM, "no memory to start the request over")
                          : rest_plan_resolve(p, txn, err);

    for (i = 0; !rc && i < p->n_entries; i++)
        if (!p->entries[i].existed && is_referral(&p->entries[i]))
            rc = rest_referral_prepare(p, txn, &p->entries[i], err);
    for (i = 0; !rc && i < p->n_entries; i++)
        if (!p->entries[i].existed)
            rc = write_entry(p, txn, &p->entries[i], err);
    for (i = 0; !rc && i < p->n_entries; i++)
        if (!p->entries[i].existed && is_referral(&p->entries[i]))
            rc = rest_referral_finish(p, txn, &p->entries[i], err);
    return rc;
}

/* "Type/id" kept by the plan, or NULL. */
static const char *reference_of(struct rest_plan *p, const struct rest_entry *e)
{
    size_t n;
    char *s;

    if (!e->id)
        return NULL;
    n = strlen(e->type) + strlen(e->id) + 2;
    s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", e->type, e->id);
    return rest_plan_keep(p, s);
}

/* The patient the plan is about, for its AuditEvents: a Patient the caller
 * may see (a plan entry or a visible stored one), never merely a reference
 * an entry makes, which could name another organisation's patient. */
static const char *patient_of(struct rest_plan *p, struct store_txn *txn)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++) {
        json_t *res = p->entries[i].resource;
        const char *ref =
            json_string_value(json_object_get(json_object_get(res, "subject"), "reference"));

        if (!ref)
            ref = json_string_value(json_object_get(json_object_get(res, "patient"), "reference"));
        if (ref && strncmp(ref, "Patient/", 8) == 0 && rest_plan_lookup(p, txn, res, ref))
            return ref;
        if (strcmp(p->entries[i].type, "Patient") == 0 && p->entries[i].id)
            return reference_of(p, &p->entries[i]);
    }
    return NULL;
}

static void audit_base(struct rest_plan *p, struct store_txn *txn, struct audit_event *ev,
                       const char *subtype, char action, enum gw_code outcome,
                       const struct gw_error *why)
{
    rest_audit_init(ev, p->req, subtype, action);
    ev->path = p->path;
    ev->outcome = audit_outcome_of(outcome);
    if (outcome && p->fail_status)
        ev->outcome = audit_outcome_of_status(p->fail_status);
    ev->outcome_desc = outcome ? why->msg : NULL;
    ev->patient = outcome ? NULL : patient_of(p, txn);
    ev->http_status = !outcome         ? (action == 'C' ? 201 : 200)
                      : p->fail_status ? p->fail_status
                                       : gw_code_http_status(outcome);
}

static enum gw_code audit(struct store_txn *txn, void *vplan, enum gw_code outcome,
                          const struct gw_error *why, struct gw_error *err)
{
    struct rest_plan *p = vplan;
    struct audit_event ev;
    char action = strcmp(p->interaction, "update") == 0   ? 'U'
                  : strcmp(p->interaction, "create") == 0 ? 'C'
                                                          : 'E';
    size_t i;
    enum gw_code rc;

    audit_base(p, txn, &ev, p->interaction, action, outcome, why);
    for (i = 0; !outcome && i < p->n_entries; i++)
        audit_add_entity(&ev, reference_of(p, &p->entries[i]), "4", "2", NULL);
    for (i = 0; !outcome && i < p->strings.n; i++)
        if (strncmp(p->strings.items[i], "Task/", 5) == 0)
            audit_add_entity(&ev, p->strings.items[i], "4", "2", NULL);
    rc = audit_record(txn, &ev, err);
    if (rc || outcome || p->n_entries < 2 || strcmp(p->interaction, "transaction") != 0)
        return rc;
    for (i = 0; !rc && i < p->n_entries; i++) { /* BALP: each entry of a transaction too */
        const struct rest_entry *e = &p->entries[i];

        audit_base(p, txn, &ev,
                   e->existed  ? "read"
                   : e->is_put ? "update"
                               : "create",
                   e->existed  ? 'R'
                   : e->is_put ? 'U'
                               : 'C',
                   GW_OK, why);
        audit_add_entity(&ev, reference_of(p, e), "4", "2", NULL);
        rc = audit_record(txn, &ev, err);
    }
    return rc;
}

enum gw_code rest_plan_apply(struct store_txn *txn, struct rest_plan *p, struct gw_error *err)
{
    return apply(txn, p, err);
}

enum gw_code rest_plan_audit(struct store_txn *txn, struct rest_plan *p, enum gw_code outcome,
                             const struct gw_error *why, struct gw_error *err)
{
    return audit(txn, p, outcome, why, err);
}

/* The plan's job is committed (or failed): on the writer thread, cheap. */
static void plan_committed(void *vplan, enum gw_code rc, const struct gw_error *err)
{
    struct rest_plan *p = vplan;

    p->rc = rc;
    if (rc)
        p->err = *err;
    if (p->pending)
        http_pending_ready(p->pending);
    else if (p->done)
        p->done(p->done_ctx, rc, err);
}

static void plan_finish(struct http_request *req, struct http_response *resp, void *vplan)
{
    struct rest_plan *p = vplan;

    (void)req;
    p->answer(p, resp);
}

static void plan_release(void *vplan)
{
    rest_plan_cleanup(vplan);
    free(vplan);
}

static void plan_reset(void *vplan)
{
    rest_plan_reset(vplan);
}

/* Hands the plan to the store: prepared here, on the request's thread
 * (resolved, validated, mapped, serialised, indexed, audited), so that the
 * writer only checks and inserts; run on the writer when it cannot be. */
static void submit(struct rest_plan *p)
{
    if (rest_plan_snapshot(p))
        store_submit_prepared(p->ctx->store, apply, audit, plan_reset, p, plan_committed, p);
    else
        store_submit(p->ctx->store, apply, audit, p, plan_committed, p);
}

void rest_plan_submit(struct rest_plan *p, struct http_request *req, struct http_response *resp,
                      rest_plan_answer_fn answer)
{
    p->answer = answer;
    if (p->outcome)
        p->pending = http_defer(req, resp, plan_finish, p, plan_release);
    if (!p->pending) {
        p->rc = gw_fail(&p->err, GW_E_NOMEM, "no memory for the request");
        answer(p, resp);
        plan_release(p);
        return;
    }
    submit(p);
}

void rest_plan_submit_then(struct rest_plan *p, store_done_fn done, void *done_ctx)
{
    struct gw_error err;

    p->done = done;
    p->done_ctx = done_ctx;
    if (!p->outcome) {
        gw_fail(&err, GW_E_NOMEM, "no memory for the request");
        plan_committed(p, err.code, &err);
        return;
    }
    submit(p);
}

void rest_plan_answer_failure(struct rest_plan *p, const struct gw_error *err,
                              struct http_response *resp)
{
    int status = p->fail_status ? p->fail_status : gw_code_http_status(err->code);

    if (p->outcome && fhir_outcome_errors(p->outcome) > 0) {
        http_respond_resource(resp, status, p->outcome);
        return;
    }
    http_respond_error(resp, status, gw_code_issue_code(err->code), err->msg, NULL);
}

void rest_answer_written(struct rest_ctx *ctx, const struct http_request *req,
                         struct http_response *resp, const struct rest_entry *e, json_t *outcome)
{
    const char *prefer = http_request_header(req, "Prefer");

    if (prefer && strstr(prefer, "return=minimal")) {
        http_respond_bytes(resp, e->status, "application/fhir+json; charset=utf-8", "", 0);
    } else if (prefer && strstr(prefer, "return=OperationOutcome")) {
        if (outcome && json_array_size(json_object_get(outcome, "issue")) == 0)
            fhir_outcome_add(outcome, FHIR_INFORMATION, "informational",
                             e->existed ? "an existing resource matched" : "stored", NULL);
        http_respond_resource(resp, e->status, outcome);
    } else {
        http_respond_resource(resp, e->status, e->resource);
    }
    rest_version_headers(ctx, resp, e->type, e->id, e->written.version, e->written.last_updated_ms,
                         true);
}
