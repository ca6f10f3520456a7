/* decide.c -- POST /fhir/Task/{id}/$decide: the practice's triage decision on a referral
 * (role practice, for the sites it serves), and GET /fhir/OperationDefinition/Task-decide.
 *
 * In: a Parameters resource. decision = accept with procedure (a Coding: the practice's
 * procedure code or one of its CCAM / CPT codes; optional region, laterality, guidance codes
 * and a reason kept as a note), or decline with reason (a string the GP reads). Out: the Task.
 *
 *   Task businessStatus   accept                               decline
 *   triage                SR.code set, Task accepted/received, Task rejected/declined +
 *                         order NW                              statusReason, no order
 *   received, accepted    SR.code set, order XO (the RIS has   Task rejected/declined +
 *                         not scheduled it yet)                 statusReason, order CA
 *   any other             409: scheduled, done, cancelled or declined already
 *
 * Promises: the ServiceRequest, the Task, the order and the AuditEvent land in one commit; a
 * refused decision changes nothing and leaves its failure AuditEvent; If-Match names the
 * Task's version (412 when stale). Parameters are read in the request's thread; the decision
 * is prepared there too (store_submit_prepared: the state it decides on is read from the
 * store as last committed and read again by the writer, which only writes when nothing
 * changed, and decides again itself when something did). The request waits suspended.
 */
#include "rest/rest_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define DECIDE_DEFINITION  MAP_BASE "/OperationDefinition/Task-decide"
#define DECIDE_MAX_REASON  2000 /* characters of a reason */
#define DECIDE_MAX_RELATED 64   /* Conditions, Observations, medications read for the mapping */

struct decide_params {
    bool decline;
    const char *system, *code; /* the procedure (accept) */
    enum map_region region;
    enum map_laterality laterality;
    enum map_guidance guidance;
    const char *reason;
};

struct decide {
    struct rest_ctx *ctx;
    const struct http_request *req;
    struct map_set *maps;
    json_t *params; /* the request's Parameters: in points into it */
    struct decide_params in;
    long if_match;
    json_t *outcome;
    int fail_status;
    char why[600]; /* the first refusal, for the AuditEvent */
    /* found and written by the writer */
    struct store_resource task_row, sr_row;
    json_t *task, *sr, *patient, *requester;
    json_t *related[DECIDE_MAX_RELATED];
    size_t n_related;
    json_t *loaded[DECIDE_MAX_RELATED + 2];
    size_t n_loaded;
    struct store_written written;
    char task_ref[REST_MAX_BASE], sr_ref[REST_MAX_BASE], patient_ref[REST_MAX_BASE];
    char what[200]; /* the decision, for the AuditEvent (no patient data) */
    /* the commit */
    struct http_pending *pending;
    enum gw_code rc;
    struct gw_error err;
};

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static enum gw_code refuse(struct decide *x, int status, const char *code, const char *expr,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum gw_code refuse(struct decide *x, int status, const char *code, const char *expr,
                           const char *fmt, ...)
{
    char text[600];
    va_list ap;

    va_start(ap, fmt);
    gw_vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!x->fail_status) {
        x->fail_status = status;
        gw_format(x->why, sizeof x->why, "%s", text);
    }
    fhir_outcome_add(x->outcome, FHIR_ERROR, code, text, expr);
    if (status == 404)
        return GW_E_NOTFOUND;
    if (status == 503)
        return GW_E_STORE;
    return status == 409 || status == 412 ? GW_E_CONFLICT : GW_E_INPUT;
}

/* ------------------------------------------------------------ parameters */

static enum gw_code read_code(struct decide *x, json_t *p, size_t i, const char *name, int *out,
                              bool (*parse)(const char *, int *))
{
    const char *v = str(p, "valueCode");
    char expr[64];

    gw_format(expr, sizeof expr, "Parameters.parameter[%zu]", i);
    if (!v || !parse(v, out))
        return refuse(x, 400, "code-invalid", expr, "%s: valueCode \"%s\" is not one we know", name,
                      v ? v : "");
    return GW_OK;
}

static bool parse_region(const char *s, int *out)
{
    enum map_region r;

    return map_region_parse(s, &r) && (*out = (int)r, true);
}

static bool parse_side(const char *s, int *out)
{
    enum map_laterality l;

    return map_laterality_parse(s, &l) && (*out = (int)l, true);
}

static bool parse_guidance(const char *s, int *out)
{
    enum map_guidance g;

    return map_guidance_parse(s, &g) && (*out = (int)g, true);
}

static enum gw_code read_param(struct decide *x, json_t *p, size_t i, const char **decision)
{
    const char *name = str(p, "name");
    json_t *coding = json_object_get(p, "valueCoding");
    int v = 0;
    enum gw_code rc = GW_OK;
    char expr[64];

    gw_format(expr, sizeof expr, "Parameters.parameter[%zu]", i);
    if (!name)
        return refuse(x, 400, "required", expr, "a parameter has no name");
    if (strcmp(name, "decision") == 0) {
        *decision = str(p, "valueCode");
    } else if (strcmp(name, "procedure") == 0) {
        x->in.system = coding ? str(coding, "system") : MAP_CS_PROCEDURE;
        x->in.code = coding ? str(coding, "code") : str(p, "valueCode");
    } else if (strcmp(name, "reason") == 0) {
        x->in.reason = str(p, "valueString");
    } else if (strcmp(name, "region") == 0) {
        rc = read_code(x, p, i, name, &v, parse_region);
        x->in.region = (enum map_region)v;
    } else if (strcmp(name, "laterality") == 0) {
        rc = read_code(x, p, i, name, &v, parse_side);
        x->in.laterality = (enum map_laterality)v;
    } else if (strcmp(name, "guidance") == 0) {
        rc = read_code(x, p, i, name, &v, parse_guidance);
        x->in.guidance = (enum map_guidance)v;
    } else {
        rc = refuse(x, 400, "not-supported", expr,
                    "\"%s\" is not a parameter of $decide (decision, procedure, region, "
                    "laterality, guidance, reason)",
                    name);
    }
    return rc;
}

static enum gw_code read_params(struct decide *x, json_t *params)
{
    const char *decision = NULL;
    enum map_guidance implied;
    const char *procedure;
    json_t *p;
    size_t i;
    enum gw_code rc;

    json_array_foreach (json_object_get(params, "parameter"), i, p)
        if ((rc = read_param(x, p, i, &decision)))
            return rc;
    if (!decision || (strcmp(decision, "accept") && strcmp(decision, "decline")))
        return refuse(x, 400, "required", "Parameters.parameter",
                      "give decision (valueCode accept or decline)");
    x->in.decline = strcmp(decision, "decline") == 0;
    if (x->in.reason && strlen(x->in.reason) > DECIDE_MAX_REASON)
        return refuse(x, 413, "too-long", "Parameters.parameter",
                      "reason is longer than %d characters", DECIDE_MAX_REASON);
    if (x->in.decline)
        return x->in.reason && *x->in.reason
                   ? GW_OK
                   : refuse(x, 400, "required", "Parameters.parameter",
                            "decline needs a reason (valueString) for the GP");
    if (!x->in.code)
        return refuse(x, 400, "required", "Parameters.parameter",
                      "accept needs procedure (valueCoding: the practice's procedure code, or "
                      "its CCAM or CPT code)");
    if (!x->maps)
        return refuse(x, 503, "transient", NULL, "no mappings are loaded");
    if (!map_procedure_of_code(x->maps, x->in.system, x->in.code, &procedure, &implied))
        return refuse(x, 422, "code-invalid", "Parameters.parameter",
                      "%s %s is not a procedure of the practice's maps", x->in.system, x->in.code);
    return GW_OK;
}

/* ------------------------------------------------------------ the state decided on */

static json_t *keep(struct decide *x, json_t *res)
{
    if (!res || x->n_loaded == sizeof x->loaded / sizeof x->loaded[0]) {
        json_decref(res);
        return NULL;
    }
    return x->loaded[x->n_loaded++] = res;
}

/* A resource the referral names: contained in it, or stored and visible to the practice. */
static json_t *resolve(struct decide *x, struct store_txn *txn, const char *ref)
{
    struct store_resource row;
    char type[64];
    const char *slash;
    json_t *v, *res = NULL;
    size_t i;

    if (!ref)
        return NULL;
    if (ref[0] == '#') {
        json_array_foreach (json_object_get(x->sr, "contained"), i, v)
            if (str(v, "id") && strcmp(str(v, "id"), ref + 1) == 0)
                return v;
        return NULL;
    }
    slash = strchr(ref, '/');
    if (!slash || (size_t)(slash - ref) >= sizeof type || strchr(slash + 1, '/'))
        return NULL;
    gw_format(type, sizeof type, "%.*s", (int)(slash - ref), ref);
    if (store_txn_read(txn, type, slash + 1, 0, &row, NULL) != GW_OK)
        return NULL;
    if (!row.deleted && rest_visible(x->ctx, txn, x->req->who, &row))
        res = keep(x, rest_parse_stored(&row));
    store_resource_cleanup(&row);
    return res;
}

/* The referral's Conditions, for its indications (DG1) and the mapping. */
static void add_related(struct decide *x, json_t *res)
{
    size_t i;

    if (!res || !str(res, "resourceType") || strcmp(str(res, "resourceType"), "Condition") != 0)
        return;
    for (i = 0; i < x->n_related; i++)
        if (x->related[i] == res)
            return;
    if (res && x->n_related < DECIDE_MAX_RELATED)
        x->related[x->n_related++] = res;
}

/* The Task (by id, visible), its referral (Task.focus) and what the referral names. */
static enum gw_code load(struct decide *x, struct store_txn *txn, const char *task_id)
{
    const char *focus;
    json_t *v;
    size_t i;

    if (store_txn_read(txn, "Task", task_id, 0, &x->task_row, NULL) != GW_OK ||
        x->task_row.deleted || !rest_visible(x->ctx, txn, x->req->who, &x->task_row))
        return refuse(x, 404, "not-found", NULL, "Task/%s not found", task_id);
    if (x->if_match && x->if_match != x->task_row.version)
        return refuse(x, 412, "conflict", NULL, "Task/%s is at version %ld, not %ld", task_id,
                      x->task_row.version, x->if_match);
    x->task = rest_parse_stored(&x->task_row);
    focus = str(json_object_get(x->task, "focus"), "reference");
    if (!focus || strncmp(focus, "ServiceRequest/", 15) != 0 ||
        store_txn_read(txn, "ServiceRequest", focus + 15, 0, &x->sr_row, NULL) != GW_OK ||
        x->sr_row.deleted || !(x->sr = rest_parse_stored(&x->sr_row)))
        return refuse(x, 409, "business-rule", "Task.focus",
                      "Task/%s is not the Task of a stored referral", task_id);
    gw_format(x->task_ref, sizeof x->task_ref, "Task/%s", task_id);
    gw_format(x->sr_ref, sizeof x->sr_ref, "%s", focus);
    x->patient = resolve(x, txn, str(json_object_get(x->sr, "subject"), "reference"));
    x->requester = resolve(x, txn, str(json_object_get(x->sr, "requester"), "reference"));
    json_array_foreach (json_object_get(x->sr, "reasonReference"), i, v)
        add_related(x, resolve(x, txn, str(v, "reference")));
    json_array_foreach (json_object_get(x->sr, "contained"), i, v)
        add_related(x, v);
    focus = str(json_object_get(x->sr, "subject"), "reference");
    if (focus && strncmp(focus, "Patient/", 8) == 0)
        gw_format(x->patient_ref, sizeof x->patient_ref, "%s", focus);
    return GW_OK;
}

static const char *business(json_t *task)
{
    return str(
        json_array_get(json_object_get(json_object_get(task, "businessStatus"), "coding"), 0),
        "code");
}

/* True when the referral's order went to the RIS and is not scheduled yet. */
static bool order_pending(const char *b)
{
    return strcmp(b, RIS_STATUS_RECEIVED) == 0 || strcmp(b, RIS_STATUS_ACCEPTED) == 0;
}

/* 409 unless the referral is in triage or its order is not scheduled yet. */
static enum gw_code check_state(struct decide *x)
{
    const char *b = business(x->task), *sr_status = str(x->sr, "status");

    if (!sr_status || strcmp(sr_status, "active") != 0)
        return refuse(x, 409, "business-rule", "ServiceRequest.status",
                      "the referral is %s: there is nothing left to decide",
                      sr_status ? sr_status : "without a status");
    if (!b)
        return refuse(x, 409, "business-rule", "Task.businessStatus",
                      "the Task has no businessStatus");
    if (strcmp(b, RIS_STATUS_TRIAGE) == 0 || order_pending(b))
        return GW_OK;
    if (strcmp(b, RIS_STATUS_DECLINED) == 0)
        return refuse(x, 409, "business-rule", "Task.businessStatus",
                      "the practice already declined this referral");
    return refuse(x, 409, "business-rule", "Task.businessStatus",
                  "the referral is %s at the RIS: change it there, the gateway no longer "
                  "amends its order",
                  b);
}

/* ------------------------------------------------------------ writing */

static int add_note(json_t *task, const char *text, const char *author, const char *time)
{
    json_t *notes = json_object_get(task, "note");

    if (!notes && (json_object_set_new(task, "note", json_array()) ||
                   !(notes = json_object_get(task, "note"))))
        return -1;
    return json_array_append_new(
        notes, json_pack("{s:s, s:s*, s:s}", "text", text, "authorString", author, "time", time));
}

static enum gw_code put(struct decide *x, struct store_txn *txn, json_t *res,
                        const struct store_resource *row, struct gw_error *err)
{
    enum gw_code rc =
        rest_put(x->ctx, txn, res, row->owner, row->site, row->version, false, &x->written, err);

    if (rc == GW_E_CONFLICT)
        return refuse(x, 409, "conflict", NULL, "%s changed meanwhile: try again", row->type);
    return rc;
}

static enum gw_code enqueue(struct decide *x, struct store_txn *txn, const struct map_decision *d,
                            enum ris_order_kind kind, struct gw_error *err)
{
    struct ris_referral view = {x->sr,
                                x->patient,
                                x->requester,
                                (json_t *const *)x->related,
                                x->n_related,
                                d,
                                config_site_find(x->ctx->cfg, x->sr_row.site),
                                x->sr_row.owner};

    if (!x->ctx->ris)
        return GW_OK;
    if (!view.site)
        return refuse(x, 409, "business-rule", NULL, "the referral's site is not configured");
    return ris_order_enqueue(x->ctx->ris, txn, &view, kind, NULL, err);
}

static enum gw_code decline_referral(struct decide *x, struct store_txn *txn, const char *now,
                                     struct gw_error *err)
{
    bool sent = order_pending(business(x->task));
    char text[DECIDE_MAX_REASON + 64];
    enum gw_code rc;

    gw_format(text, sizeof text, "Declined by the practice: %s", x->in.reason);
    if (json_object_set_new(x->task, "status", json_string("rejected")) ||
        json_object_set_new(x->task, "businessStatus",
                            json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system",
                                      RIS_STATUS_SYSTEM, "code", RIS_STATUS_DECLINED, "text",
                                      RIS_STATUS_DECLINED)) ||
        json_object_set_new(x->task, "statusReason", json_pack("{s:s}", "text", x->in.reason)) ||
        json_object_set_new(x->task, "lastModified", json_string(now)) ||
        add_note(x->task, text, x->req->who->org_name, now))
        return gw_fail(err, GW_E_NOMEM, "no memory for the decision");
    gw_format(x->what, sizeof x->what, "decline%s", sent ? " (order cancelled)" : "");
    if ((rc = put(x, txn, x->task, &x->task_row, err)))
        return rc;
    return sent ? enqueue(x, txn, NULL, RIS_ORDER_CANCEL, err) : GW_OK;
}

/* The triage flags recorded on the Task (Task.input typed MAP_CS_TRIAGE). */
static enum gw_code flags_of_task(struct decide *x, struct map_decision *d)
{
    json_t *in;
    size_t i;

    map_decision_clear_flags(d);
    json_array_foreach (json_object_get(x->task, "input"), i, in) {
        json_t *c = json_array_get(json_object_get(json_object_get(in, "type"), "coding"), 0);

        if (!str(c, "system") || strcmp(str(c, "system"), MAP_CS_TRIAGE) != 0 || !str(c, "code"))
            continue;
        if (map_decision_add_flag(d, str(c, "code"), str(c, "display"), str(in, "valueString"),
                                  NULL, NULL))
            return GW_E_NOMEM;
    }
    return GW_OK;
}

/* ServiceRequest.code from the practice's choice, naming the Task that records it. */
static enum gw_code set_code(struct decide *x, const struct map_decision *d)
{
    json_t *code = map_decision_code(d), *ext;

    if (!code)
        return GW_E_NOMEM;
    ext = json_object_get(code, "extension");
    if ((!ext && (json_object_set_new(code, "extension", json_array()) ||
                  !(ext = json_object_get(code, "extension")))) ||
        json_array_insert_new(ext, 0,
                              json_pack("{s:s, s:{s:s, s:s*}}", "url", MAP_EXT_CHOSEN_BY_PRACTICE,
                                        "valueReference", "reference", x->task_ref, "display",
                                        x->req->who->org_name)) ||
        json_object_set_new(x->sr, "code", code))
        return GW_E_NOMEM;
    return GW_OK;
}

static enum gw_code choose_procedure(struct decide *x, struct map_decision *d, struct gw_error *err)
{
    struct map_referral view = {.service_request = x->sr,
                                .conditions = x->related,
                                .n_conditions = x->n_related,
                                .patient = x->patient};
    struct map_choice c = {x->in.system, x->in.code, x->in.region, x->in.laterality,
                           x->in.guidance};
    enum gw_code rc = map_referral_decide(x->maps, &view, d, err);

    if (!rc)
        rc = flags_of_task(x, d);
    if (!rc)
        rc = map_decision_choose(x->maps, d, &c, err);
    if (rc == GW_E_INPUT)
        return refuse(x, 422, "code-invalid", "Parameters.parameter", "%s", err->msg);
    return rc;
}

static enum gw_code accept_referral(struct decide *x, struct store_txn *txn, const char *now,
                                    struct gw_error *err)
{
    bool from_triage = strcmp(business(x->task), RIS_STATUS_TRIAGE) == 0;
    struct map_decision d;
    char text[DECIDE_MAX_REASON + 300];
    enum gw_code rc = choose_procedure(x, &d, err);

    if (rc)
        return rc;
    gw_format(text, sizeof text, "Procedure chosen by the practice: %s%s%s%s%s",
              d.procedure.display ? d.procedure.display : d.procedure.code,
              d.ccam.code ? " (CCAM " : "", d.ccam.code ? d.ccam.code : "", d.ccam.code ? ")" : "",
              x->in.reason ? "" : ".");
    if (x->in.reason)
        gw_format(text + strlen(text), sizeof text - strlen(text), ": %s", x->in.reason);
    gw_format(x->what, sizeof x->what, "accept %s (%s)", d.procedure.code,
              from_triage ? "first order" : "amended order");
    if (set_code(x, &d) ||
        (from_triage &&
         (json_object_set_new(x->task, "status", json_string("accepted")) ||
          json_object_set_new(x->task, "businessStatus",
                              json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system",
                                        RIS_STATUS_SYSTEM, "code", RIS_STATUS_RECEIVED, "text",
                                        RIS_STATUS_RECEIVED)))) ||
        json_object_set_new(x->task, "lastModified", json_string(now)) ||
        add_note(x->task, text, x->req->who->org_name, now))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the decision");
    if (!rc)
        rc = put(x, txn, x->sr, &x->sr_row, err);
    if (!rc)
        rc = put(x, txn, x->task, &x->task_row, err);
    if (!rc)
        rc = enqueue(x, txn, &d, from_triage ? RIS_ORDER_NEW : RIS_ORDER_CHANGE, err);
    map_decision_cleanup(&d);
    return rc;
}

static enum gw_code apply(struct store_txn *txn, void *vx, struct gw_error *err)
{
    struct decide *x = vx;
    char now[GW_INSTANT_LEN];
    enum gw_code rc = load(x, txn, x->req->captures[0]);

    if (!rc && !x->task)
        rc = gw_fail(err, GW_E_INTERNAL, "the stored Task does not parse");
    if (!rc)
        rc = check_state(x);
    if (!rc) {
        gw_time_instant(store_txn_now(txn), now);
        rc = x->in.decline ? decline_referral(x, txn, now, err) : accept_referral(x, txn, now, err);
    }
    if (rc && x->fail_status) /* a refusal: its reason for the AuditEvent */
        gw_fail(err, rc, "%s", x->why);
    return rc;
}

static enum gw_code audit(struct store_txn *txn, void *vx, enum gw_code outcome,
                          const struct gw_error *why, struct gw_error *err)
{
    struct decide *x = vx;
    struct audit_event ev;

    rest_audit_init(&ev, x->req, "operation", 'U');
    ev.path = "POST /fhir/Task/{id}/$decide";
    ev.outcome = outcome ? audit_outcome_of_status(x->fail_status ? x->fail_status
                                                                  : gw_code_http_status(outcome))
                         : AUDIT_SUCCESS;
    ev.outcome_desc = outcome ? why->msg : NULL;
    ev.patient = x->patient_ref[0] ? x->patient_ref : NULL;
    if (x->task_ref[0])
        ev.entities[ev.n_entities++] =
            (struct audit_entity){x->task_ref, "4", "2", NULL, NULL, x->what[0] ? x->what : NULL};
    if (x->sr_ref[0])
        audit_add_entity(&ev, x->sr_ref, "4", "2", NULL);
    return audit_record(txn, &ev, err);
}

/* ------------------------------------------------------------ the handler */

/* Drops what apply and audit found and decided, so that they can run again. */
static void forget_state(struct decide *x)
{
    while (x->n_loaded)
        json_decref(x->loaded[--x->n_loaded]);
    json_decref(x->task);
    json_decref(x->sr);
    x->task = x->sr = x->patient = x->requester = NULL;
    x->n_related = 0;
    store_resource_cleanup(&x->task_row);
    store_resource_cleanup(&x->sr_row);
    memset(&x->written, 0, sizeof x->written);
    x->fail_status = 0;
    x->why[0] = x->what[0] = '\0';
    x->task_ref[0] = x->sr_ref[0] = x->patient_ref[0] = '\0';
}

/* store_submit_prepared's reset: the writer decides again from scratch. */
static void reset(void *vx)
{
    struct decide *x = vx;

    forget_state(x);
    json_array_clear(json_object_get(x->outcome, "issue")); /* only apply's refusals */
}

static void cleanup(struct decide *x)
{
    forget_state(x);
    json_decref(x->outcome);
    json_decref(x->params);
    map_set_unref(x->maps);
    free(x);
}

static void answer(struct decide *x, struct http_response *resp, enum gw_code rc,
                   const struct gw_error *err)
{
    if (rc) {
        if (fhir_outcome_errors(x->outcome) > 0)
            http_respond_resource(resp, x->fail_status ? x->fail_status : 500, x->outcome);
        else
            http_respond_error(resp, gw_code_http_status(rc), gw_code_issue_code(rc), err->msg,
                               NULL);
        return;
    }
    http_respond_resource(resp, 200, x->task);
    rest_version_headers(x->ctx, resp, "Task", x->req->captures[0], x->written.version,
                         x->written.last_updated_ms, false);
}

/* The decision committed (or failed): on the writer, cheap. */
static void decided(void *vx, enum gw_code rc, const struct gw_error *err)
{
    struct decide *x = vx;

    x->rc = rc;
    if (rc)
        x->err = *err;
    http_pending_ready(x->pending);
}

static void decide_finish(struct http_request *req, struct http_response *resp, void *vx)
{
    struct decide *x = vx;

    (void)req;
    answer(x, resp, x->rc, &x->err);
}

static void decide_release(void *vx)
{
    cleanup(vx);
}

/* The parameters as the practice sent them: GW_OK, or the refusal in resp. */
static enum gw_code take_params(struct decide *x, struct http_request *req,
                                struct http_response *resp)
{
    struct gw_error err;
    enum gw_code rc;

    if (!(x->params = rest_parse_resource(x->ctx, req, resp, "Parameters"))) {
        if (!resp->status)
            http_respond_error(resp, 400, "invalid", "unreadable parameters", NULL);
        return GW_E_INPUT;
    }
    rc = x->outcome ? GW_OK : gw_fail(&err, GW_E_NOMEM, "no memory for the decision");
    if (!rc && x->if_match < 0)
        rc = refuse(x, 400, "value", NULL, "If-Match must be an ETag such as W/\"3\"");
    if (!rc)
        rc = read_params(x, x->params);
    if (rc)
        answer(x, resp, rc, &err);
    return rc;
}

void rest_handle_decide(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct decide *x = calloc(1, sizeof *x);
    struct audit_event ev;

    rest_audit_init(&ev, req, "operation", 'U');
    ev.path = "POST /fhir/Task/{id}/$decide";
    if (!x) {
        http_respond_error(resp, 503, "transient", "no memory for the decision", NULL);
        rest_answer_refused(vctx, req, resp, &ev);
        return;
    }
    x->ctx = vctx;
    x->req = req;
    x->outcome = fhir_outcome_create();
    x->maps = x->ctx->maps ? map_holder_get(x->ctx->maps) : NULL;
    x->if_match = rest_etag_version(http_request_header(req, "If-Match"));
    if (take_params(x, req, resp) != GW_OK) {
        rest_answer_after_audit(x->ctx, req, resp, &ev, resp->status, "refused parameters");
        cleanup(x);
        return;
    }
    x->pending = http_defer(req, resp, decide_finish, x, decide_release);
    if (!x->pending) {
        http_respond_error(resp, 503, "transient", "no memory for the decision", NULL);
        rest_answer_refused(x->ctx, req, resp, &ev);
        cleanup(x);
        return;
    }
    store_submit_prepared(x->ctx->store, apply, audit, reset, x, decided, x);
}

/* ------------------------------------------------------------ the definition */

static json_t *param(const char *name, const char *use, int min, const char *type, const char *doc)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "name", name, "use", use, "min", min, "max",
                     "1", "type", type, "documentation", doc);
}

json_t *rest_decide_definition(void)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:b, s:b, s:b, s:b, s:s,"
        " s:[o, o, o, o, o, o, o]}",
        "resourceType", "OperationDefinition", "id", "Task-decide", "url", DECIDE_DEFINITION,
        "version", "1.0.0", "name", "Decide", "title",
        "The practice's triage decision on a referral", "status", "active", "kind", "operation",
        "code", "decide", "resource", "Task", "system", 0, "type", 0, "instance", 1, "affectsState",
        1, "description",
        "The practice (role practice, for the sites it serves) accepts a referral with the "
        "procedure it chooses or declines it with a reason. Accept from triage sets "
        "ServiceRequest.code and sends the first order (ORC-1 NW) in the same commit; accept "
        "while the order is not yet scheduled amends it (ORC-1 XO, new OBR-4); decline sets the "
        "Task rejected/declined with statusReason for the GP (and cancels an order already "
        "sent, ORC-1 CA). A scheduled, completed, cancelled or declined referral answers 409.",
        "parameter", param("decision", "in", 1, "code", "accept or decline"),
        param("procedure", "in", 0, "Coding",
              "accept: the practice's procedure (" MAP_CS_PROCEDURE
              ") or one of its CCAM or CPT codes"),
        param("region", "in", 0, "code",
              "accept: cervical, thoracic, lumbar or sacral, when the referral does not say"),
        param("laterality", "in", 0, "code", "accept: left, right or bilateral"),
        param("guidance", "in", 0, "code", "accept: fluoroscopy (default) or ct"),
        param("reason", "in", 0, "string",
              "decline: why, for the GP (Task.statusReason); accept: a note on the Task"),
        param("return", "out", 1, "Task", "the Task after the decision"));
}

void rest_handle_operation_definition(struct http_request *req, struct http_response *resp,
                                      void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    json_t *def = strcmp(req->captures[0], "Task-decide") == 0 ? rest_decide_definition() : NULL;

    rest_audit_init(&ev, req, "read", 'R');
    ev.path = "GET /fhir/OperationDefinition/{id}";
    if (def) {
        rest_answer_audited(ctx, req, &ev, resp, 200, def);
    } else {
        http_respond_error(resp, 404, "not-found", "no such OperationDefinition", NULL);
        rest_answer_after_audit(ctx, req, resp, &ev, 404, "not found");
    }
    json_decref(def);
}
