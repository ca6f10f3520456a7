/* subscription.c -- the Subscription resource (FHIR R4 §Subscription,
 * rest-hook): create, update and delete by a GP for its own organisation;
 * read, vread, history and search are the generic interactions, scoped the
 * same way (another organisation's Subscription answers 404).
 *
 * Accepted (else 422 with every reason): a criteria criteria.c accepts;
 * channel.type rest-hook; an https endpoint on the allow-list in force;
 * payload absent (an empty ping) or application/fhir+json (Backport
 * notification Bundles: empty, id-only or full-resource content); channel
 * headers that are not protocol headers; at most subscription_max_per_org
 * per organisation.
 * Status: the client may ask for off; otherwise the server decides. A new
 * Subscription, one whose channel changed and one coming back from off is
 * requested and gets a handshake (notify makes it active once delivered);
 * an update leaving the channel alone keeps its status and error. Off drops
 * what was still queued; so does a deletion. Each write updates the store's
 * subscription row in the same commit. The request waits suspended for it;
 * these few writes run whole on the store's writer (store_submit): the
 * recording of prepared work does not hold subscription rows.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "notify/notify.h"

struct sub_write {
    struct rest_ctx *ctx;
    const struct http_request *req;
    json_t *res; /* the new version (owned); the current one for a deletion */
    char id[GW_UUID_LEN + 64];
    long if_match;
    const char *interaction; /* "create", "update", "delete" */
    json_t *outcome;
    int fail_status;
    bool handshake;
    struct store_written written;
    char path[300];
    char ref[200];
    /* the commit */
    struct http_pending *pending;
    int ok_status; /* 201, 200, or 204 for a deletion */
    enum gw_code rc;
    struct gw_error err;
};

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static enum gw_code fail(struct sub_write *w, int status, enum gw_code code, const char *issue,
                         const char *text)
{
    if (!w->fail_status)
        w->fail_status = status;
    fhir_outcome_add(w->outcome, FHIR_ERROR, issue, text, NULL);
    return code;
}

/* ------------------------------------------------------------ what is accepted */

static void check_channel(struct rest_ctx *ctx, json_t *res, json_t *outcome)
{
    json_t *channel = json_object_get(res, "channel"), *h;
    const char *type = str(channel, "type");
    enum notify_content content;
    struct gw_error why;
    char expr[64];
    size_t i;

    if (!type || strcmp(type, "rest-hook") != 0)
        fhir_outcome_add(outcome, FHIR_ERROR, "not-supported",
                         "this gateway offers the rest-hook channel only",
                         "Subscription.channel.type");
    if (!ctx->notify)
        fhir_outcome_add(outcome, FHIR_ERROR, "not-supported",
                         "notifications are not running on this gateway",
                         "Subscription.channel.endpoint");
    else if (notify_endpoint_check(ctx->notify, str(channel, "endpoint"), &why) != GW_OK)
        fhir_outcome_add(outcome, FHIR_ERROR, why.code == GW_E_DENIED ? "security" : "value",
                         why.msg, "Subscription.channel.endpoint");
    if (notify_content_of(res, &content, &why) != GW_OK)
        fhir_outcome_add(outcome, FHIR_ERROR, "not-supported", why.msg,
                         "Subscription.channel.payload");
    if (json_array_size(json_object_get(channel, "header")) > NOTIFY_MAX_HEADERS)
        fhir_outcome_addf(outcome, FHIR_ERROR, "too-long", "Subscription.channel.header",
                          "at most %d channel headers", NOTIFY_MAX_HEADERS);
    json_array_foreach (json_object_get(channel, "header"), i, h) {
        snprintf(expr, sizeof expr, "Subscription.channel.header[%zu]", i);
        if (notify_header_check(json_string_value(h), &why) != GW_OK)
            fhir_outcome_add(outcome, FHIR_ERROR, "value", why.msg, expr);
    }
}

/* Every reason res cannot be a Subscription here goes into outcome;
 * returns GW_E_INPUT when there is one. */
static enum gw_code check_subscription(struct rest_ctx *ctx, json_t *res, json_t *outcome,
                                       struct gw_error *err)
{
    struct rest_criteria *c = NULL;
    enum gw_code rc = rest_criteria_parse(ctx->base, str(res, "criteria"), "Subscription.criteria",
                                          &c, outcome, err);

    rest_criteria_destroy(c);
    if (rc == GW_E_NOMEM)
        return rc;
    check_channel(ctx, res, outcome);
    if (fhir_outcome_errors(outcome))
        return gw_fail(err, GW_E_INPUT, "the Subscription cannot be served");
    return GW_OK;
}

/* The store's row for the Subscription res of owner (borrowing from res;
 * type, of cap bytes, receives the criteria's type). */
static void row_of(json_t *res, const char *owner, char *type, size_t cap,
                   struct store_subscription *row)
{
    const char *criteria = str(res, "criteria"), *end = str(res, "end"), *status;
    int64_t lo = 0, hi;

    memset(row, 0, sizeof *row);
    snprintf(type, cap, "%.*s", (int)strcspn(criteria ? criteria : "", "?"),
             criteria ? criteria : "");
    status = str(res, "status");
    row->id = (char *)str(res, "id");
    row->owner = (char *)owner;
    row->type = type;
    row->criteria = (char *)(criteria ? criteria : "");
    row->enabled = !status || strcmp(status, "off") != 0;
    if (end && gw_time_parse_fhir(end, &lo, &hi))
        row->end_ms = lo;
}

/* Writes res with the store's row and, when asked, a handshake. */
static enum gw_code write_version(struct sub_write *w, struct store_txn *txn, const char *owner,
                                  bool create, struct gw_error *err)
{
    struct store_subscription row;
    struct store_note_new hello = {.subscription = w->id, .kind = STORE_NOTE_HANDSHAKE};
    char type[32];
    enum gw_code rc =
        rest_put(w->ctx, txn, w->res, owner, NULL, w->if_match, create, &w->written, err);

    if (rc == GW_E_CONFLICT)
        return fail(w, w->if_match ? 412 : 409, rc, "conflict", err ? err->msg : "conflict");
    if (rc)
        return rc;
    row_of(w->res, owner, type, sizeof type, &row);
    rc = store_txn_subscription_put(txn, &row, err);
    if (!rc && !row.enabled)
        rc = store_txn_note_drop(txn, w->id, err);
    if (!rc && row.enabled && w->handshake)
        rc = store_txn_note_add(txn, &hello, NULL, err);
    return rc;
}

/* ------------------------------------------------------------ create */

static enum gw_code create_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct sub_write *w = ctx;
    const char *owner = w->req->who->org_id;
    struct store_subscription *mine = NULL;
    size_t n = 0;
    enum gw_code rc;

    if (!owner)
        return fail(w, 403, GW_E_DENIED, "forbidden", "this client has no organisation");
    rc = store_txn_subscriptions_of(txn, owner, NULL, &mine, &n, err);
    store_subscription_list_free(mine, n);
    if (rc)
        return rc;
    if ((long)n >= w->ctx->cfg->subscription_max_per_org)
        return fail(w, 422, GW_E_LIMIT, "business-rule",
                    "this organisation holds as many Subscriptions as allowed "
                    "(subscription_max_per_org): delete one first");
    return write_version(w, txn, owner, true, err);
}

/* ------------------------------------------------------------ update and delete */

/* The current version of w->id as the client may see it; 404 otherwise. */
static enum gw_code load_own(struct sub_write *w, struct store_txn *txn, struct store_resource *row,
                             json_t **old, struct gw_error *err)
{
    const char *org = w->req->who->org_id;
    enum gw_code rc = store_txn_read(txn, "Subscription", w->id, 0, row, err);

    *old = NULL;
    if (rc && rc != GW_E_NOTFOUND)
        return rc;
    if (rc == GW_OK && !row->deleted && row->owner && org && strcmp(row->owner, org) == 0 &&
        (*old = rest_parse_stored(row)) != NULL)
        return GW_OK;
    if (rc == GW_OK)
        store_resource_cleanup(row);
    snprintf(w->path, sizeof w->path, "Subscription/%s not found", w->id);
    return fail(w, 404, GW_E_NOTFOUND, "not-found", w->path);
}

/* Status and error of the new version from the old one (see the top). */
static enum gw_code decide_status(struct sub_write *w, json_t *old, struct gw_error *err)
{
    const char *asked = str(w->res, "status"), *was = str(old, "status");
    bool off = asked && strcmp(asked, "off") == 0;
    bool same_channel =
        json_equal(json_object_get(old, "channel"), json_object_get(w->res, "channel"));
    json_t *error = json_object_get(old, "error");

    json_object_del(w->res, "error");
    w->handshake = !off && (!same_channel || (was && strcmp(was, "off") == 0));
    if (off || w->handshake)
        return json_object_set_new(w->res, "status", json_string(off ? "off" : "requested"))
                   ? gw_fail(err, GW_E_NOMEM, "no memory for a Subscription")
                   : GW_OK;
    if (json_object_set_new(w->res, "status", json_string(was ? was : "requested")) ||
        (error && json_object_set(w->res, "error", error)))
        return gw_fail(err, GW_E_NOMEM, "no memory for a Subscription");
    return GW_OK;
}

static enum gw_code update_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct sub_write *w = ctx;
    struct store_resource row;
    json_t *old;
    enum gw_code rc = load_own(w, txn, &row, &old, err);

    if (rc)
        return rc;
    rc = decide_status(w, old, err);
    if (!rc)
        rc = write_version(w, txn, row.owner, false, err);
    json_decref(old);
    store_resource_cleanup(&row);
    return rc;
}

static enum gw_code delete_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct sub_write *w = ctx;
    struct store_resource row;
    struct store_put put = {
        .type = "Subscription", .id = w->id, .if_match = w->if_match, .deleted = true};
    json_t *old;
    enum gw_code rc = load_own(w, txn, &row, &old, err);

    if (rc)
        return rc;
    put.resource = old;
    put.owner = row.owner;
    rc = store_txn_put(txn, &put, &w->written, err);
    if (rc == GW_E_CONFLICT)
        rc = fail(w, 412, rc, "conflict", err ? err->msg : "conflict");
    if (!rc)
        rc = store_txn_subscription_remove(txn, w->id, err);
    json_decref(old);
    store_resource_cleanup(&row);
    return rc;
}

/* ------------------------------------------------------------ audit and answers */

static enum gw_code write_audit(struct store_txn *txn, void *ctx, enum gw_code outcome,
                                const struct gw_error *why, struct gw_error *err)
{
    struct sub_write *w = ctx;
    struct audit_event ev;

    rest_audit_init(&ev, w->req, w->interaction, (char)(w->interaction[0] - 'a' + 'A'));
    ev.path = w->path;
    ev.outcome = outcome ? audit_outcome_of_status(w->fail_status ? w->fail_status
                                                                  : gw_code_http_status(outcome))
                         : AUDIT_SUCCESS;
    ev.outcome_desc = outcome ? why->msg : NULL;
    audit_add_entity(&ev, w->ref, "4", "2", NULL);
    return audit_record(txn, &ev, err);
}

static void answer_failure(struct sub_write *w, const struct gw_error *err,
                           struct http_response *resp)
{
    int status = w->fail_status ? w->fail_status : gw_code_http_status(err->code);

    if (fhir_outcome_errors(w->outcome))
        http_respond_resource(resp, status, w->outcome);
    else
        http_respond_error(resp, status, gw_code_issue_code(err->code), err->msg, NULL);
}

static void finish(struct sub_write *w);

/* Answers the committed write (201/200 with the version, 204 deleted). */
static void answer(struct sub_write *w, struct http_response *resp)
{
    struct rest_entry e;

    if (w->rc) {
        answer_failure(w, &w->err, resp);
        return;
    }
    if (w->ok_status == 204) {
        http_respond_bytes(resp, 204, "application/fhir+json; charset=utf-8", "", 0);
        return;
    }
    memset(&e, 0, sizeof e);
    e.status = w->ok_status;
    e.type = (char *)"Subscription";
    e.id = w->id;
    e.resource = w->res;
    e.written = w->written;
    rest_answer_written(w->ctx, w->req, resp, &e, w->outcome);
}

static void written(void *vw, enum gw_code rc, const struct gw_error *err)
{
    struct sub_write *w = vw;

    w->rc = rc;
    if (rc)
        w->err = *err;
    http_pending_ready(w->pending);
}

static void write_finish(struct http_request *req, struct http_response *resp, void *vw)
{
    (void)req;
    answer(vw, resp);
}

static void write_release(void *vw)
{
    finish(vw);
}

/* Runs the write (taking w) and answers it once committed. */
static void run(struct sub_write *w, store_apply_fn apply, int ok_status, struct http_request *req,
                struct http_response *resp)
{
    snprintf(w->ref, sizeof w->ref, "Subscription/%s", w->id);
    w->ok_status = ok_status;
    w->pending = http_defer(req, resp, write_finish, w, write_release);
    if (!w->pending) {
        w->rc = gw_fail(&w->err, GW_E_NOMEM, "no memory for the request");
        answer(w, resp);
        finish(w);
        return;
    }
    store_submit(w->ctx->store, apply, write_audit, w, written, w);
}

/* Refuses before any write: audited alone, like the generic handlers; the
 * answer waits for its event (w is the caller's to finish). */
static void refuse(struct sub_write *w, struct http_request *req, struct http_response *resp,
                   int status)
{
    struct audit_event ev;
    const char *why = "refused";
    json_t *issue = json_array_get(json_object_get(w->outcome, "issue"), 0);

    if (!resp->status)
        http_respond_resource(resp, status, w->outcome);
    if (str(issue, "diagnostics"))
        why = str(issue, "diagnostics");
    rest_audit_init(&ev, w->req, w->interaction, (char)(w->interaction[0] - 'a' + 'A'));
    ev.path = w->path;
    rest_answer_after_audit(w->ctx, req, resp, &ev, resp->status, why);
}

/* A new write (w set, to finish()) or NULL with the answer set. */
static struct sub_write *start(struct rest_ctx *ctx, const struct http_request *req,
                               const char *interaction, const char *method,
                               struct http_response *resp)
{
    struct sub_write *w = calloc(1, sizeof *w);

    if (!w) {
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        return NULL;
    }
    w->ctx = ctx;
    w->req = req;
    w->interaction = interaction;
    w->outcome = fhir_outcome_create();
    snprintf(w->path, sizeof w->path, "%s /fhir/Subscription%s%s", method,
             req->captures[0] ? "/" : "", req->captures[0] ? req->captures[0] : "");
    if (w->outcome)
        return w;
    http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
    finish(w);
    return NULL;
}

static void finish(struct sub_write *w)
{
    json_decref(w->res);
    json_decref(w->outcome);
    free(w);
}

/* Parses and checks the body; false with the answer set when refused. */
static bool take_body(struct sub_write *w, struct http_request *req, struct http_response *resp)
{
    struct gw_error err;

    w->res = rest_parse_resource(w->ctx, req, resp, "Subscription");
    if (!w->res)
        return false;
    if (check_subscription(w->ctx, w->res, w->outcome, &err) != GW_OK) {
        if (err.code == GW_E_NOMEM)
            http_respond_error(resp, 503, "transient", err.msg, NULL);
        else
            http_respond_resource(resp, 422, w->outcome);
        return false;
    }
    return true;
}

void rest_handle_subscription_create(struct http_request *req, struct http_response *resp,
                                     void *vctx)
{
    struct sub_write *w = start(vctx, req, "create", "POST", resp);
    char uuid[GW_UUID_LEN];
    const char *asked;

    if (!w)
        return;
    if (take_body(w, req, resp) && gw_uuid7(uuid, NULL) != GW_OK)
        http_respond_error(resp, 503, "transient", "no id could be drawn", NULL);
    if (resp->status) {
        refuse(w, req, resp, 503);
        finish(w);
        return;
    }
    snprintf(w->id, sizeof w->id, "%s", uuid);
    asked = str(w->res, "status");
    w->handshake = !asked || strcmp(asked, "off") != 0;
    json_object_del(w->res, "error");
    if (json_object_set_new(w->res, "id", json_string(w->id)) ||
        json_object_set_new(w->res, "status", json_string(w->handshake ? "requested" : "off"))) {
        http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
        refuse(w, req, resp, 503);
        finish(w);
        return;
    }
    run(w, create_apply, 201, req, resp);
}

void rest_handle_subscription_update(struct http_request *req, struct http_response *resp,
                                     void *vctx)
{
    struct sub_write *w = start(vctx, req, "update", "PUT", resp);
    const char *body_id;

    if (!w)
        return;
    w->if_match = rest_etag_version(http_request_header(req, "If-Match"));
    snprintf(w->id, sizeof w->id, "%s", req->captures[0]);
    if (w->if_match < 0) {
        http_respond_error(resp, 400, "value", "If-Match must be an ETag such as W/\"3\"", NULL);
    } else if (take_body(w, req, resp)) {
        body_id = str(w->res, "id");
        if (body_id && strcmp(body_id, w->id) == 0) {
            run(w, update_apply, 200, req, resp);
            return;
        }
        http_respond_error(resp, 400, "invalid",
                           "the body's id must be the id in the URL (FHIR R4 §3.1.0.4)", "id");
    }
    refuse(w, req, resp, 400);
    finish(w);
}

void rest_handle_subscription_delete(struct http_request *req, struct http_response *resp,
                                     void *vctx)
{
    struct sub_write *w = start(vctx, req, "delete", "DELETE", resp);

    if (!w)
        return;
    w->if_match = rest_etag_version(http_request_header(req, "If-Match"));
    snprintf(w->id, sizeof w->id, "%s", req->captures[0]);
    if (w->if_match < 0) {
        http_respond_error(resp, 400, "value", "If-Match must be an ETag such as W/\"3\"", NULL);
        refuse(w, req, resp, 400);
        finish(w);
        return;
    }
    run(w, delete_apply, 204, req, resp);
}

/* ------------------------------------------------------------ CapabilityStatement */

int rest_subscription_describe(json_t *entry)
{
    return json_object_set_new(entry, "conditionalCreate", json_false()) ||
                   json_object_set_new(
                       entry, "documentation",
                       json_string(
                           "Criteria-based Subscriptions (FHIR R4) on Task, ServiceRequest, "
                           "Appointment and DiagnosticReport with the search parameters listed "
                           "for those types. Channel: rest-hook only, to HTTPS endpoints on the "
                           "gateway's allow-list, with the gateway's client certificate. "
                           "Payload: none (an empty POST) or application/fhir+json, a "
                           "notification Bundle of the Subscriptions R5 Backport IG for R4 "
                           "(backport-payload-content empty, id-only or full-resource, the "
                           "default). Delivery is at least once and in order per "
                           "Subscription; each event carries its event number."))
               ? -1
               : 0;
}
