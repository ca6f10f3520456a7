/* resource.c -- create, update, read, vread and history of single resources.
 *
 * Writes go through a plan (write.c): the resource, its Task and RIS order
 * when it is a referral, and the AuditEvents land in one commit, and the
 * answer leaves only after it. A read is answered only once its AuditEvent
 * is on disk; a resource another organisation owns answers 404. Either way
 * the handler prepares the answer, hands the work to the store and returns:
 * the request waits suspended, not a thread.
 */
#include "rest/rest_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

const struct rest_type *rest_admit_type(const struct http_request *req, struct http_response *resp,
                                        unsigned interaction, bool write)
{
    const struct rest_type *t = rest_type_find(req->captures[0]);

    if (!t) {
        http_respond_error(resp, 404, "not-supported",
                           fhir_is_resource_type(req->captures[0])
                               ? "this resource type is not served here"
                               : "this is not a FHIR R4 resource type",
                           NULL);
        return NULL;
    }
    if (!(t->interactions & interaction)) {
        http_respond_error(resp, 405, "not-supported",
                           "this interaction is not supported for this resource type", NULL);
        return NULL;
    }
    if (!auth_allows(req->who, write ? t->write_roles : t->read_roles)) {
        http_respond_error(resp, 403, "forbidden",
                           "this client's role may not do this with this resource type", NULL);
        return NULL;
    }
    return t;
}

/* The query of an If-None-Exist header ("identifier=x" or "Type?identifier=x"). */
static char *if_none_exist(const struct http_request *req)
{
    const char *h = http_request_header(req, "If-None-Exist");
    const char *q;

    if (!h || !*h)
        return NULL;
    q = strchr(h, '?');
    return gw_strdup(q ? q + 1 : h);
}

#define REST_MAX_WARNINGS      4   /* Warning headers on one answer */
#define REST_MAX_WARNING_BYTES 400 /* one Warning header value */

/* True when text is made of the characters of a FHIRPath element path
 * ("Bundle.entry[2].resource.subject.resolve().identifier"): no value. */
static bool is_plain_path(const char *text)
{
    for (; text && *text; text++)
        if (!isalnum((unsigned char)*text) && !strchr(".[]()_-", *text))
            return false;
    return text != NULL;
}

/* One Warning value: 199 fhir-gateway "<code> warning at <path>; ...". */
static void warning_value(struct gw_buf *value, json_t *issue)
{
    const char *code = json_string_value(json_object_get(issue, "code"));
    const char *where = json_string_value(json_array_get(json_object_get(issue, "expression"), 0));
    struct gw_buf text;

    gw_buf_init(&text, REST_MAX_WARNING_BYTES);
    gw_buf_printf(&text, "%s warning", is_plain_path(code) ? code : "processing");
    if (is_plain_path(where))
        gw_buf_printf(&text, " at %s", where);
    gw_buf_puts(&text, "; the details are in the OperationOutcome "
                       "(Prefer: return=OperationOutcome)");
    gw_buf_puts(value, "199 fhir-gateway ");
    gw_buf_quoted_string(value, text.err ? "warning" : text.data);
    gw_buf_cleanup(&text);
}

/* Answers a write with warnings in Warning headers (the resource is the body).
 * A header says that there is a warning, of which kind and where, never what
 * it is about: diagnostics may quote patient data (an INS-NIR, a name), and
 * logs and proxies keep headers. The value is an RFC 9110 quoted-string in
 * ASCII; the full issues are in the OperationOutcome. */
static void warnings_to_headers(struct http_response *resp, json_t *outcome)
{
    json_t *issue;
    size_t i, n = 0;

    json_array_foreach (json_object_get(outcome, "issue"), i, issue) {
        const char *sev = json_string_value(json_object_get(issue, "severity"));
        struct gw_buf value;

        if (!sev || strcmp(sev, "warning") != 0 || n == REST_MAX_WARNINGS)
            continue;
        gw_buf_init(&value, 2 * REST_MAX_WARNING_BYTES);
        warning_value(&value, issue);
        if (!value.err) {
            http_header_add(resp, "Warning", value.data);
            n++;
        }
        gw_buf_cleanup(&value);
    }
}

/* The answer of a create or an update, once its plan committed (or failed). */
static void answer_single(struct rest_plan *plan, struct http_response *resp)
{
    if (plan->rc) {
        rest_plan_answer_failure(plan, &plan->err, resp);
        return;
    }
    rest_answer_written(plan->ctx, plan->req, resp, &plan->entries[0], plan->outcome);
    warnings_to_headers(resp, plan->outcome);
}

/* A new plan for req's single resource, or NULL (then the refusal is answered). */
static struct rest_plan *single_plan(struct rest_ctx *ctx, struct http_request *req,
                                     struct http_response *resp, const struct audit_event *ev,
                                     const char *interaction, const char *path)
{
    struct rest_plan *plan = calloc(1, sizeof *plan);

    if (!plan) {
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        rest_answer_refused(ctx, req, resp, ev);
        return NULL;
    }
    rest_plan_init(plan, ctx, req, interaction);
    snprintf(plan->path, sizeof plan->path, "%s", path);
    return plan;
}

void rest_handle_create(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct rest_plan *plan;
    struct rest_entry *e;
    struct audit_event ev;
    json_t *res;
    char path[200];

    snprintf(path, sizeof path, "POST /fhir/%s", req->captures[0]);
    rest_audit_init(&ev, req, "create", 'C');
    ev.path = path;
    if (!rest_admit_type(req, resp, REST_CREATE, true) ||
        !(res = rest_parse_resource(ctx, req, resp, req->captures[0]))) {
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    json_object_del(res, "id"); /* the server assigns ids (FHIR R4 §3.1.0.4) */
    plan = single_plan(ctx, req, resp, &ev, "create", path);
    if (!plan) {
        json_decref(res);
        return;
    }
    e = rest_plan_add(plan, req->captures[0], res);
    if (!e ||
        (http_request_header(req, "If-None-Exist") && !(e->if_none_exist = if_none_exist(req)))) {
        rest_plan_cleanup(plan);
        free(plan);
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    rest_plan_submit(plan, req, resp, answer_single);
}

void rest_handle_update(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct rest_plan *plan;
    struct rest_entry *e;
    struct audit_event ev;
    json_t *res;
    const char *body_id;
    char path[300];
    long if_match = rest_etag_version(http_request_header(req, "If-Match"));
    bool bad_etag = if_match < 0;

    snprintf(path, sizeof path, "PUT /fhir/%s/%s", req->captures[0], req->captures[1]);
    rest_audit_init(&ev, req, "update", 'U');
    ev.path = path;
    if (!rest_admit_type(req, resp, REST_UPDATE, true) ||
        !(res = rest_parse_resource(ctx, req, resp, req->captures[0]))) {
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    body_id = json_string_value(json_object_get(res, "id"));
    if (bad_etag || !body_id || strcmp(body_id, req->captures[1]) != 0) {
        http_respond_error(resp, 400, bad_etag ? "value" : "invalid",
                           bad_etag ? "If-Match must be an ETag such as W/\"3\""
                                    : "the body's id must be the id in the URL (FHIR R4 §3.1.0.4)",
                           bad_etag ? NULL : "id");
        json_decref(res);
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    plan = single_plan(ctx, req, resp, &ev, "update", path);
    if (!plan) {
        json_decref(res);
        return;
    }
    e = rest_plan_add(plan, req->captures[0], res);
    if (!e || !(e->id = gw_strdup(req->captures[1]))) {
        rest_plan_cleanup(plan);
        free(plan);
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    e->is_put = true;
    e->if_match = if_match;
    rest_plan_submit(plan, req, resp, answer_single);
}

/* The Patient reference a stored resource is about, if any (borrowed from res). */
static const char *patient_of(json_t *res)
{
    const char *ref =
        json_string_value(json_object_get(json_object_get(res, "subject"), "reference"));

    if (!ref)
        ref = json_string_value(json_object_get(json_object_get(res, "patient"), "reference"));
    if (!ref)
        ref = json_string_value(json_object_get(json_object_get(res, "for"), "reference"));
    return ref && strncmp(ref, "Patient/", 8) == 0 ? ref : NULL;
}

/* ref ("Patient/<id>"), when who may see that Patient, else NULL: a resource
 * may reference another organisation's patient, whom its reader's
 * AuditEvent must not name. */
static const char *visible_patient(struct rest_ctx *ctx, const struct auth_identity *who,
                                   const char *ref)
{
    struct store_resource row;
    bool visible;

    if (!ref || store_read(ctx->store, "Patient", ref + 8, 0, &row, NULL) != GW_OK)
        return NULL;
    visible = !row.deleted && rest_visible(ctx, NULL, who, &row);
    store_resource_cleanup(&row);
    return visible ? ref : NULL;
}

/* AuditEvents live in the audit chain, not among versioned resources. */
static enum gw_code read_audit_event(struct rest_ctx *ctx, const char *id,
                                     struct store_resource *out, struct gw_error *err)
{
    struct store_value v = {.value = id};
    struct store_cond c = {.param = "_id", .kind = STORE_TOKEN, .values = &v, .n_values = 1};
    struct store_query q = {.type = "AuditEvent", .conds = &c, .n_conds = 1, .count = 1};
    struct store_page page;
    enum gw_code rc = store_search(ctx->store, &q, &page, err);

    if (rc)
        return rc;
    if (page.n_items == 0) {
        store_page_cleanup(&page);
        return gw_fail(err, GW_E_NOTFOUND, "AuditEvent/%s not found", id);
    }
    *out = page.items[0];
    memset(&page.items[0], 0, sizeof page.items[0]);
    store_page_cleanup(&page);
    return GW_OK;
}

/* Reads type/id (version 0: current) as who may see it; answers and audits
 * refusals; on success the caller answers and must audit. */
static bool read_visible(struct rest_ctx *ctx, struct http_request *req, struct http_response *resp,
                         long version, struct store_resource *row, const struct audit_event *ev)
{
    struct gw_error err;
    struct store_resource current;
    enum gw_code rc;

    if (strcmp(req->captures[0], "AuditEvent") == 0) {
        rc = read_audit_event(ctx, req->captures[1], &current, &err);
        if (rc == GW_OK) {
            *row = current;
            return true;
        }
    } else {
        rc = store_read(ctx->store, req->captures[0], req->captures[1], 0, &current, &err);
    }
    if (rc == GW_OK && !rest_visible(ctx, NULL, req->who, &current)) {
        store_resource_cleanup(&current);
        rc = gw_fail(&err, GW_E_NOTFOUND, "%s/%s not found", req->captures[0], req->captures[1]);
    }
    if (rc == GW_OK && version && version != current.version) {
        store_resource_cleanup(&current);
        rc = store_read(ctx->store, req->captures[0], req->captures[1], version, &current, &err);
    }
    if (rc) {
        http_respond_gw_error(resp, &err);
        rest_answer_after_audit(ctx, req, resp, ev, resp->status, err.msg);
        return false;
    }
    *row = current;
    return true;
}

/* Answers a visible row once its access is recorded. */
static void answer_row(struct rest_ctx *ctx, struct http_request *req, struct http_response *resp,
                       struct store_resource *row, struct audit_event *ev)
{
    json_t *res = row->deleted ? NULL : rest_parse_stored(row);

    ev->patient = res ? visible_patient(ctx, ev->who, patient_of(res)) : NULL;
    if (row->deleted)
        http_respond_error(resp, 410, "deleted", "this resource was deleted", NULL);
    else if (!res)
        http_respond_error(resp, 500, "exception", "the stored resource does not parse", NULL);
    else {
        http_respond_resource(resp, 200, res);
        rest_version_headers(ctx, resp, row->type, row->id, row->version, row->last_updated_ms,
                             false);
    }
    rest_answer_after_audit(ctx, req, resp, ev, resp->status, rest_refusal_text(resp, NULL));
    json_decref(res);
}

void rest_handle_read(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct store_resource row;
    char path[300], instance[300];

    snprintf(path, sizeof path, "GET /fhir/%s/%s", req->captures[0], req->captures[1]);
    snprintf(instance, sizeof instance, "%s/%s", req->captures[0], req->captures[1]);
    rest_audit_init(&ev, req, "read", 'R');
    ev.path = path;
    audit_add_entity(&ev, instance, "4", "2", NULL);
    if (!rest_admit_type(req, resp, REST_READ, false)) {
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    if (!read_visible(ctx, req, resp, 0, &row, &ev))
        return;
    answer_row(ctx, req, resp, &row, &ev);
    store_resource_cleanup(&row);
}

void rest_handle_vread(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct store_resource row;
    char path[400], instance[300];
    long vid;

    snprintf(path, sizeof path, "GET /fhir/%s/%s/_history/%s", req->captures[0], req->captures[1],
             req->captures[2]);
    snprintf(instance, sizeof instance, "%s/%s", req->captures[0], req->captures[1]);
    rest_audit_init(&ev, req, "vread", 'R');
    ev.path = path;
    audit_add_entity(&ev, instance, "4", "2", NULL);
    if (!rest_admit_type(req, resp, REST_VREAD, false)) {
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    if (!gw_parse_long(req->captures[2], 1, 1L << 40, &vid)) {
        http_respond_error(resp, 404, "not-found", "no such version", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    if (!read_visible(ctx, req, resp, vid, &row, &ev))
        return;
    answer_row(ctx, req, resp, &row, &ev);
    store_resource_cleanup(&row);
}

static json_t *history_entry(struct rest_ctx *ctx, const struct store_resource *r)
{
    char full[REST_MAX_BASE + 200], etag[40], url[300], instant[GW_INSTANT_LEN];
    json_t *res = r->deleted ? NULL : rest_parse_stored(r);
    json_t *e;

    snprintf(full, sizeof full, "%s/%s/%s", ctx->base, r->type, r->id);
    snprintf(etag, sizeof etag, "W/\"%ld\"", r->version);
    snprintf(url, sizeof url, r->version == 1 ? "%s" : "%s/%s", r->type, r->id);
    gw_time_instant(r->last_updated_ms, instant);
    e = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s}}", "fullUrl", full, "request", "method",
                  r->deleted        ? "DELETE"
                  : r->version == 1 ? "POST"
                                    : "PUT",
                  "url", url, "response", "status", r->version == 1 ? "201 Created" : "200 OK",
                  "etag", etag, "lastModified", instant);
    if (e && res && json_object_set_new(e, "resource", res) == 0)
        return e;
    if (e && !res && !r->deleted) {
        json_decref(e);
        return NULL;
    }
    return e;
}

void rest_handle_history(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct store_resource row;
    struct store_query q = {.type = req->captures[0], .count = REST_MAX_COUNT};
    struct store_page page;
    struct gw_error err;
    json_t *bundle, *entries;
    char path[300], instance[300];
    size_t i;

    snprintf(path, sizeof path, "GET /fhir/%s/%s/_history", req->captures[0], req->captures[1]);
    snprintf(instance, sizeof instance, "%s/%s", req->captures[0], req->captures[1]);
    rest_audit_init(&ev, req, "history-instance", 'R');
    ev.path = path;
    audit_add_entity(&ev, instance, "4", "2", NULL);
    if (!rest_admit_type(req, resp, REST_HISTORY, false)) {
        rest_answer_refused(ctx, req, resp, &ev);
        return;
    }
    if (!read_visible(ctx, req, resp, 0, &row, &ev))
        return;
    store_resource_cleanup(&row);
    if (store_history(ctx->store, &q, req->captures[1], &page, &err) != GW_OK) {
        http_respond_gw_error(resp, &err);
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, err.msg);
        return;
    }
    bundle = json_pack("{s:s, s:s, s:I, s:[]}", "resourceType", "Bundle", "type", "history",
                       "total", (json_int_t)page.n_items, "entry");
    entries = json_object_get(bundle, "entry");
    for (i = 0; bundle && i < page.n_items; i++)
        if (json_array_append_new(entries, history_entry(ctx, &page.items[i]))) {
            json_decref(bundle);
            bundle = NULL;
        }
    if (!bundle) {
        http_respond_error(resp, 503, "transient", "no memory for the history", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
    } else {
        rest_answer_audited(ctx, req, &ev, resp, 200, bundle);
    }
    json_decref(bundle);
    store_page_cleanup(&page);
}
