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
    return json_loads(r->json, 0, NULL);
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

enum gw_code rest_audit_alone(struct rest_ctx *ctx, struct audit_event *ev, int status,
                              const char *why)
{
    struct gw_error err;
    enum gw_code rc;

    ev->outcome = audit_outcome_of_status(status);
    ev->outcome_desc = status >= 400 ? why : NULL;
    ev->http_status = status;
    rc = audit_record_alone(ctx->store, ev, &err);
    if (rc)
        gw_log(GW_LOG_ERROR, "audit-failed", "%s", err.msg);
    return rc;
}

void rest_answer_audited(struct rest_ctx *ctx, struct audit_event *ev, struct http_response *resp,
                         int status, json_t *resource)
{
    if (rest_audit_alone(ctx, ev, status, NULL) != GW_OK)
        http_respond_error(resp, 503, "transient", "the access could not be audited", NULL);
    else
        http_respond_resource(resp, status, resource);
}

/* The server's refusals (401, 403, 404, 405, 406, 413, 415) are audited too:
 * an identified client's one event each, a client without an identity's
 * counted per address and period (audit/refusals.c), so that nobody can
 * flood the trail anonymously. */
void rest_on_refusal(void *vctx, const struct http_request *req, int status, const char *why)
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
    rest_audit_alone(ctx, &ev, status, why);
}
