/* context.c -- what every interaction shares: the context, visibility by
 * organisation and site, version headers, body parsing, audit helpers. */
#include "rest/rest_int.h"

#include "fhir/fhir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum gw_code rest_create(const struct rest_parts *parts, struct rest_ctx **out,
                         struct gw_error *err)
{
    struct rest_ctx *ctx;

    *out = NULL;
    ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return gw_fail(err, GW_E_NOMEM, "no memory for the REST context");
    ctx->cfg = parts->cfg;
    ctx->store = parts->store;
    ctx->maps = parts->maps;
    ctx->refusals = parts->refusals;
    ctx->started_ms = gw_now_ms();
    atomic_init(&ctx->exports, 0);
    rest_set_port(ctx, 0);
    *out = ctx;
    return GW_OK;
}

void rest_set_port(struct rest_ctx *ctx, int port)
{
    const char *listen = ctx->cfg->listen;
    const char *colon = strrchr(listen, ':');
    int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);

    if (*ctx->cfg->public_base)
        snprintf(ctx->base, sizeof ctx->base, "%s", ctx->cfg->public_base);
    else if (port)
        snprintf(ctx->base, sizeof ctx->base, "https://%.*s:%d/fhir", host_len, listen, port);
    else
        snprintf(ctx->base, sizeof ctx->base, "https://%s/fhir", listen);
}

const char *rest_strings_keep(struct rest_strings *list, char *p)
{
    char **grown;

    if (!p || list->failed) {
        free(p);
        list->failed = true;
        return NULL;
    }
    grown = gw_grow(list->items, &list->cap, list->n, sizeof *list->items, 16);
    if (!grown) {
        free(p);
        list->failed = true;
        return NULL;
    }
    list->items = grown;
    list->items[list->n++] = p;
    return p;
}

void rest_strings_free(struct rest_strings *list)
{
    while (list->n)
        free(list->items[--list->n]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

long rest_etag_version(const char *etag)
{
    char digits[24];
    size_t n = 0;
    long v;

    if (!etag)
        return 0;
    if (strncmp(etag, "W/", 2) == 0)
        etag += 2;
    if (*etag == '"')
        etag++;
    while (etag[n] && etag[n] != '"' && n + 1 < sizeof digits) {
        digits[n] = etag[n];
        n++;
    }
    digits[n] = '\0';
    return gw_parse_long(digits, 1, 1L << 40, &v) ? v : -1;
}

void rest_set_ris(struct rest_ctx *ctx, struct ris *ris)
{
    ctx->ris = ris;
}

void rest_set_notify(struct rest_ctx *ctx, struct notify *notify)
{
    ctx->notify = notify;
}

void rest_destroy(struct rest_ctx *ctx)
{
    free(ctx);
}

/* A RIS sees a row when one of its sites was granted it (store/sites.c). */
static bool site_visible(const struct rest_ctx *ctx, struct store_txn *txn,
                         const struct auth_identity *who, const struct store_resource *r)
{
    const char *const *sites = (const char *const *)who->sites;
    struct gw_error err;
    bool visible = false;
    enum gw_code rc =
        txn ? store_txn_site_visible(txn, r->type, r->id, sites, who->n_sites, &visible, &err)
            : store_site_visible(ctx->store, r->type, r->id, sites, who->n_sites, &visible, &err);

    if (rc)
        gw_log(GW_LOG_ERROR, "visibility-failed", "%s", err.msg);
    return rc == GW_OK && visible;
}

bool rest_visible(const struct rest_ctx *ctx, struct store_txn *txn,
                  const struct auth_identity *who, const struct store_resource *r)
{
    switch (who->role) {
    case AUTH_GP:
        return r->owner && who->org_id && strcmp(r->owner, who->org_id) == 0;
    case AUTH_RIS:
    case AUTH_PRACTICE: /* the radiologist's software: what its sites' referrals reference */
        return site_visible(ctx, txn, who, r);
    case AUTH_ADMIN:
        return true;
    default:
        return false;
    }
}

void rest_scope_query(const struct auth_identity *who, struct store_query *q)
{
    static const char *const none[] = {""};

    q->owner = NULL;
    q->sites = NULL;
    q->n_sites = 0;
    if (who->role == AUTH_GP) {
        q->owner = who->org_id ? who->org_id : "";
    } else if (who->role == AUTH_RIS || who->role == AUTH_PRACTICE) {
        q->sites = (const char *const *)who->sites;
        q->n_sites = who->n_sites;
    } else if (who->role != AUTH_ADMIN) {
        q->sites = none; /* matches nothing */
        q->n_sites = 1;
        q->owner = "";
    }
}

void rest_version_headers(struct rest_ctx *ctx, struct http_response *resp, const char *type,
                          const char *id, long version, int64_t last_updated_ms, bool location)
{
    char etag[40], date[GW_HTTP_DATE_LEN], loc[REST_MAX_BASE + 256];

    snprintf(etag, sizeof etag, "W/\"%ld\"", version);
    gw_time_http(last_updated_ms, date);
    http_header_add(resp, "ETag", etag);
    http_header_add(resp, "Last-Modified", date);
    if (location) {
        snprintf(loc, sizeof loc, "%s/%s/%s/_history/%ld", ctx->base, type, id, version);
        http_header_add(resp, "Location", loc);
        http_header_add(resp, "Content-Location", loc);
    }
}

json_t *rest_parse_stored(const struct store_resource *r)
{
    return gw_json_loads(r->json, 0, NULL);
}

/* The limits of a request body, from the configuration. */
static void body_limits(const struct config *cfg, struct fhir_limits *lim)
{
    lim->max_body_bytes = (size_t)cfg->max_body_bytes;
    lim->max_depth = (size_t)cfg->max_json_depth;
    lim->max_string_bytes = (size_t)cfg->max_string_bytes;
    lim->max_array_items = (size_t)cfg->max_array_items;
    lim->max_elements = (size_t)cfg->max_elements;
}

json_t *rest_parse_any(struct rest_ctx *ctx, const struct http_request *req,
                       struct http_response *resp)
{
    struct fhir_limits lim;
    struct gw_error err;
    json_t *outcome = fhir_outcome_create(), *res = NULL;
    enum gw_code rc;

    if (!outcome) {
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        return NULL;
    }
    body_limits(ctx->cfg, &lim);
    rc = fhir_parse(req->body_format == HTTP_FORMAT_XML ? FHIR_FORMAT_XML : FHIR_FORMAT_JSON,
                    req->body, req->body_len, &lim, &res, outcome, &err);
    if (rc == GW_OK && fhir_validate(res, outcome) != 0) {
        json_decref(res);
        res = NULL;
        rc = GW_E_INPUT;
    }
    if (rc) {
        if (fhir_outcome_errors(outcome) == 0)
            fhir_outcome_add(outcome, FHIR_ERROR, gw_code_issue_code(rc), err.msg, NULL);
        http_respond_resource(resp, rc == GW_E_LIMIT ? 413 : gw_code_http_status(rc), outcome);
    }
    json_decref(outcome);
    return res;
}

json_t *rest_parse_resource(struct rest_ctx *ctx, const struct http_request *req,
                            struct http_response *resp, const char *type)
{
    json_t *res = rest_parse_any(ctx, req, resp);

    if (res && strcmp(fhir_resource_type(res), type) != 0) {
        http_respond_error(resp, 400, "invalid",
                           "the body's resourceType does not match the type in the URL",
                           "resourceType");
        json_decref(res);
        return NULL;
    }
    return res;
}

void rest_audit_init(struct audit_event *ev, const struct http_request *req, const char *subtype,
                     char action)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = AUDIT_REST;
    ev->subtype = subtype;
    ev->action = action;
    ev->who = req->who;
    ev->peer = req->peer;
    ev->request_id = req->request_id;
}

/* ------------------------------------------------------------ audit events that wait */

/* An AuditEvent kept beyond its handler, with copies of its strings, on its
 * way to the store. */
struct held_audit {
    struct audit_event ev;
    struct rest_strings strings;
    enum gw_code rc;
    /* rest_audit_submit(): told, then the event is freed */
    store_done_fn done;
    void *done_ctx;
    /* rest_answer_after_audit(): the request waits; freed with it */
    struct http_pending *pending;
    bool must_record; /* a success: unaudited, it becomes a 503 */
};

static const char *keep_copy(struct rest_strings *list, const char *s)
{
    return s ? rest_strings_keep(list, gw_strdup(s)) : NULL;
}

/* Deep copy of src into h (who stays borrowed: the connection outlives
 * its request); false on OOM. */
static bool hold_event(struct held_audit *h, const struct audit_event *src)
{
    struct rest_strings *l = &h->strings;
    size_t i;

    h->ev = *src;
    h->ev.subtype = keep_copy(l, src->subtype);
    h->ev.outcome_desc = keep_copy(l, src->outcome_desc);
    h->ev.peer = keep_copy(l, src->peer);
    h->ev.actor_name = keep_copy(l, src->actor_name);
    h->ev.request_id = keep_copy(l, src->request_id);
    h->ev.path = keep_copy(l, src->path);
    h->ev.patient = keep_copy(l, src->patient);
    h->ev.tally = NULL; /* the handlers' events count nothing (refusals.c does) */
    for (i = 0; i < src->n_entities; i++) {
        const struct audit_entity *a = &src->entities[i];

        h->ev.entities[i] = (struct audit_entity){
            keep_copy(l, a->reference), keep_copy(l, a->role),  keep_copy(l, a->type),
            keep_copy(l, a->name),      keep_copy(l, a->query), keep_copy(l, a->description)};
    }
    return !l->failed;
}

static void held_free(struct held_audit *h)
{
    if (!h)
        return;
    rest_strings_free(&h->strings);
    free(h);
}

static enum gw_code record_held(struct store_txn *txn, void *vctx, enum gw_code outcome,
                                const struct gw_error *why, struct gw_error *err)
{
    struct held_audit *h = vctx;

    (void)outcome;
    (void)why;
    return audit_record(txn, &h->ev, err);
}

/* The event is durable (or failed): answer the waiting request, or tell
 * the submitter and forget the event. */
static void held_recorded(void *vctx, enum gw_code rc, const struct gw_error *err)
{
    struct held_audit *h = vctx;

    if (rc)
        gw_log(GW_LOG_ERROR, "audit-failed", "%s", err->msg);
    h->rc = rc;
    if (h->pending) {
        http_pending_ready(h->pending); /* h is freed with the request */
        return;
    }
    if (h->done)
        h->done(h->done_ctx, rc, err);
    held_free(h);
}

/* Recording the event changes nothing in h: there is nothing to undo. */
static void held_reset(void *vctx)
{
    (void)vctx;
}

/* Hands h's event to the store, built and serialised on this thread. */
static void submit_held(struct rest_ctx *ctx, struct held_audit *h)
{
    store_submit_prepared(ctx->store, NULL, record_held, held_reset, h, held_recorded, h);
}

/* A new held copy of ev with the outcome of status; NULL on OOM (logged). */
static struct held_audit *held_new(const struct audit_event *ev, int status, const char *why)
{
    struct held_audit *h = calloc(1, sizeof *h);

    if (h && hold_event(h, ev)) {
        h->ev.outcome = audit_outcome_of_status(status);
        h->ev.outcome_desc = status >= 400 ? keep_copy(&h->strings, why) : NULL;
        h->ev.http_status = status;
        if (!h->strings.failed)
            return h;
    }
    held_free(h);
    gw_log(GW_LOG_ERROR, "audit-failed", "no memory for an AuditEvent");
    return NULL;
}

void rest_audit_submit(struct rest_ctx *ctx, const struct audit_event *ev, int status,
                       const char *why, store_done_fn done, void *done_ctx)
{
    struct held_audit *h = held_new(ev, status, why);
    struct gw_error err;

    if (!h) {
        gw_fail(&err, GW_E_NOMEM, "no memory for an AuditEvent");
        if (done)
            done(done_ctx, err.code, &err);
        return;
    }
    h->done = done;
    h->done_ctx = done_ctx;
    submit_held(ctx, h);
}

static void answer_finish(struct http_request *req, struct http_response *resp, void *state)
{
    struct held_audit *h = state;

    (void)req;
    if (h->rc && h->must_record) {
        http_response_cleanup(resp);
        http_respond_error(resp, 503, "transient", "the access could not be audited", NULL);
    }
}

static void answer_release(void *state)
{
    held_free(state);
}

/* Defers resp until h (taken, may be NULL) is recorded. */
static void answer_after(struct rest_ctx *ctx, struct http_request *req, struct http_response *resp,
                         struct held_audit *h, int status)
{
    if (h && (h->pending = http_defer(req, resp, answer_finish, h, answer_release)) != NULL) {
        h->must_record = status < 400;
        submit_held(ctx, h);
        return;
    }
    held_free(h);
    if (status < 400) { /* an unaudited access is no access */
        http_response_cleanup(resp);
        http_respond_error(resp, 503, "transient", "the access could not be audited", NULL);
    }
}

void rest_answer_after_audit(struct rest_ctx *ctx, struct http_request *req,
                             struct http_response *resp, const struct audit_event *ev, int status,
                             const char *why)
{
    answer_after(ctx, req, resp, held_new(ev, status, why), status);
}

void rest_answer_after_event(struct rest_ctx *ctx, struct http_request *req,
                             struct http_response *resp, const struct audit_event *ev)
{
    struct held_audit *h = calloc(1, sizeof *h);

    if (h && !hold_event(h, ev)) {
        held_free(h);
        h = NULL;
    }
    if (!h)
        gw_log(GW_LOG_ERROR, "audit-failed", "no memory for an AuditEvent");
    answer_after(ctx, req, resp, h, resp->status);
}

void rest_answer_audited(struct rest_ctx *ctx, struct http_request *req, struct audit_event *ev,
                         struct http_response *resp, int status, json_t *resource)
{
    http_respond_resource(resp, status, resource);
    rest_answer_after_audit(ctx, req, resp, ev, status, NULL);
}

/* The diagnostics of resp's first issue, or fallback. */
const char *rest_refusal_text(const struct http_response *resp, const char *fallback)
{
    json_t *issue = json_array_get(json_object_get(resp->resource, "issue"), 0);
    const char *why = json_string_value(json_object_get(issue, "diagnostics"));

    return why ? why : fallback;
}

void rest_answer_refused(struct rest_ctx *ctx, struct http_request *req, struct http_response *resp,
                         const struct audit_event *ev)
{
    rest_answer_after_audit(ctx, req, resp, ev, resp->status ? resp->status : 500,
                            rest_refusal_text(resp, "refused"));
}

/* The server's refusals (401, 403, 404, 405, 406, 413, 415) are audited too:
 * an identified client's one event each, answered once it is durable; a
 * client without an identity's counted per address and period
 * (audit/refusals.c, never waiting for the store) and answered at once, so
 * that nobody can flood the trail anonymously. */
void rest_on_refusal(void *vctx, struct http_request *req, struct http_response *resp, int status,
                     const char *why)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    char path[300];

    snprintf(path, sizeof path, "%s %s", req->method, req->path);
    if (req->who->role == AUTH_NONE && ctx->refusals) {
        audit_refusals_note(ctx->refusals, "HTTPS", req->peer, path, why);
        return;
    }
    rest_audit_init(&ev, req, req->route, 'E');
    ev.path = path;
    rest_answer_after_audit(ctx, req, resp, &ev, status, why);
}
