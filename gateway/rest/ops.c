/* ops.c -- operations and read-only resources served from memory:
 * $validate (FHIR R4 Resource-validate: the OperationOutcome, nothing stored),
 * ConceptMap $translate, and the loaded ConceptMaps; the RIS endpoints'
 * wrappers. Each is audited like every other interaction.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

/* ------------------------------------------------------------ $validate */

struct validate_ctx {
    struct rest_ctx *ctx;
    const struct http_request *req;
    json_t *bundle; /* when validating a Bundle's referrals */
    json_t *loaded[32];
    size_t n_loaded;
};

static json_t *validate_resolve(void *vctx, const char *reference)
{
    struct validate_ctx *v = vctx;
    json_t *e;
    size_t i;
    struct store_resource row;
    char type[80], id[128];
    const char *slash = strchr(reference, '/');

    json_array_foreach (json_object_get(v->bundle, "entry"), i, e) {
        const char *full = json_string_value(json_object_get(e, "fullUrl"));
        json_t *res = json_object_get(e, "resource");
        const char *rid = json_string_value(json_object_get(res, "id"));
        const char *rtype = fhir_resource_type(res);

        if (full && strcmp(full, reference) == 0)
            return res;
        if (slash && rid && rtype && strlen(rtype) == (size_t)(slash - reference) &&
            strncmp(rtype, reference, strlen(rtype)) == 0 && strcmp(rid, slash + 1) == 0)
            return res;
    }
    if (!slash || (size_t)(slash - reference) >= sizeof type || strlen(slash) >= sizeof id ||
        v->n_loaded == sizeof v->loaded / sizeof v->loaded[0])
        return NULL;
    snprintf(type, sizeof type, "%.*s", (int)(slash - reference), reference);
    snprintf(id, sizeof id, "%s", slash + 1);
    if (store_read(v->ctx->store, type, id, 0, &row, NULL) != GW_OK)
        return NULL;
    if (!row.deleted && rest_visible(v->ctx, NULL, v->req->who, &row))
        v->loaded[v->n_loaded] = rest_parse_stored(&row);
    store_resource_cleanup(&row);
    return v->loaded[v->n_loaded] ? v->loaded[v->n_loaded++] : NULL;
}

/* The referral profile on every ServiceRequest (alone or in a Bundle). */
static void validate_referrals(struct validate_ctx *v, json_t *res, json_t *outcome)
{
    const char *type = fhir_resource_type(res);
    json_t *e;
    size_t i;
    char path[80];

    if (type && strcmp(type, "ServiceRequest") == 0) {
        fhir_validate_referral(res, NULL, validate_resolve, v, outcome);
        return;
    }
    if (!type || strcmp(type, "Bundle") != 0)
        return;
    v->bundle = res;
    json_array_foreach (json_object_get(res, "entry"), i, e) {
        json_t *r = json_object_get(e, "resource");
        const char *rt = fhir_resource_type(r);

        snprintf(path, sizeof path, "Bundle.entry[%zu].resource", i);
        if (rt && strcmp(rt, "ServiceRequest") == 0)
            fhir_validate_referral(r, path, validate_resolve, v, outcome);
    }
}

/* The resource to validate: the body, or the "resource" of a Parameters body. */
static json_t *subject_of(json_t *body)
{
    json_t *p;
    size_t i;

    if (strcmp(fhir_resource_type(body), "Parameters") != 0)
        return json_incref(body);
    json_array_foreach (json_object_get(body, "parameter"), i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));

        if (name && strcmp(name, "resource") == 0 && json_object_get(p, "resource"))
            return json_incref(json_object_get(p, "resource"));
    }
    return NULL;
}

void rest_handle_validate(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct validate_ctx v = {ctx, req, NULL, {0}, 0};
    struct fhir_limits lim;
    struct audit_event ev;
    struct gw_error err;
    json_t *outcome = fhir_outcome_create(), *body = NULL, *res = NULL;
    const char *want = req->captures[0];

    rest_audit_init(&ev, req, "operation", 'E');
    ev.path = want ? "POST /fhir/{type}/$validate" : "POST /fhir/$validate";
    fhir_limits_default(&lim);
    lim.max_body_bytes = (size_t)ctx->cfg->max_body_bytes;
    if (outcome &&
        fhir_parse(req->body_format == HTTP_FORMAT_XML ? FHIR_FORMAT_XML : FHIR_FORMAT_JSON,
                   req->body, req->body_len, &lim, &body, outcome, &err) == GW_OK) {
        res = subject_of(body);
        if (!res)
            fhir_outcome_add(outcome, FHIR_ERROR, "required", "no resource to validate",
                             "Parameters.parameter");
        else if (want && strcmp(fhir_resource_type(res), want) != 0)
            fhir_outcome_add(outcome, FHIR_ERROR, "invalid",
                             "the resource is not of the type in the URL", "resourceType");
        else if (fhir_validate(res, outcome) == 0)
            validate_referrals(&v, res, outcome);
    }
    if (outcome && json_array_size(json_object_get(outcome, "issue")) == 0)
        fhir_outcome_add(outcome, FHIR_INFORMATION, "informational",
                         "no problem found: this resource would be accepted", NULL);
    if (!outcome) {
        http_respond_error(resp, 503, "transient", "no memory", NULL);
        rest_answer_refused(ctx, req, resp, &ev);
    } else {
        rest_answer_audited(ctx, req, &ev, resp, 200, outcome);
    }
    while (v.n_loaded)
        json_decref(v.loaded[--v.n_loaded]);
    json_decref(res);
    json_decref(body);
    json_decref(outcome);
}

/* ------------------------------------------------------------ ConceptMaps */

static struct map_set *current_maps(struct rest_ctx *ctx, struct http_response *resp)
{
    struct map_set *set = ctx->maps ? map_holder_get(ctx->maps) : NULL;

    if (!set)
        http_respond_error(resp, 503, "transient", "no mappings are loaded", NULL);
    return set;
}

static json_t *translate_params(const struct http_request *req, struct gw_error *err)
{
    const char *names[HTTP_MAX_PARAMS], *values[HTTP_MAX_PARAMS];
    json_t *params = NULL;
    size_t i, n = 0;

    for (i = 0; i < req->n_params; i++) {
        if (req->params[i].name[0] == '_')
            continue; /* _format and the like */
        names[n] = req->params[i].name;
        values[n++] = req->params[i].value;
    }
    if (map_params_from_query(names, values, n, &params, err) != GW_OK)
        return NULL;
    return params;
}

void rest_handle_translate(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct gw_error err;
    struct map_set *set;
    json_t *params = NULL, *answer = NULL;

    rest_audit_init(&ev, req, "operation", 'E');
    ev.path = "ConceptMap/$translate";
    set = current_maps(ctx, resp);
    if (set && strcmp(req->method, "POST") == 0) {
        params = rest_parse_resource(ctx, req, resp, "Parameters");
    } else if (set && !(params = translate_params(req, &err))) {
        http_respond_error(resp, 400, "invalid", err.msg, NULL);
    }
    if (params && map_translate_params(set, params, &answer, &err) != GW_OK)
        http_respond_error(resp, gw_code_http_status(err.code), gw_code_issue_code(err.code),
                           err.msg, NULL);
    if (answer)
        rest_answer_audited(ctx, req, &ev, resp, 200, answer);
    else
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "refused");
    json_decref(answer);
    json_decref(params);
    map_set_unref(set);
}

void rest_handle_conceptmap_read(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct map_set *set = current_maps(ctx, resp);
    json_t *map = set ? map_set_read(set, req->captures[0]) : NULL;

    rest_audit_init(&ev, req, "read", 'R');
    ev.path = "GET /fhir/ConceptMap/{id}";
    if (set && !map)
        http_respond_error(resp, 404, "not-found", "no loaded ConceptMap has this id", NULL);
    if (map)
        rest_answer_audited(ctx, req, &ev, resp, 200, map);
    else
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "not found");
    json_decref(map);
    map_set_unref(set);
}

void rest_handle_conceptmap_search(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct map_set *set = current_maps(ctx, resp);
    json_t *bundle = set ? map_set_bundle(set, ctx->base, http_request_param(req, "url")) : NULL;

    rest_audit_init(&ev, req, "search-type", 'E');
    ev.path = "GET /fhir/ConceptMap";
    if (set && !bundle)
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
    if (bundle)
        rest_answer_audited(ctx, req, &ev, resp, 200, bundle);
    else
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "failed");
    json_decref(bundle);
    map_set_unref(set);
}

/* ------------------------------------------------------------ RIS endpoints */

static bool ris_ready(struct rest_ctx *ctx, struct http_response *resp)
{
    if (ctx->ris)
        return true;
    http_respond_error(resp, 503, "transient", "the RIS side is not running", NULL);
    return false;
}

void rest_handle_ris_pull(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;

    if (ris_ready(ctx, resp))
        ris_handle_pull(ctx->ris, req, resp);
}

void rest_handle_ris_acks(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;

    if (ris_ready(ctx, resp))
        ris_handle_acks(ctx->ris, req, resp);
}

void rest_handle_ris_messages(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;

    if (ris_ready(ctx, resp))
        ris_handle_messages(ctx->ris, req, resp);
}
