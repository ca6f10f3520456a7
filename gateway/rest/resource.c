/* resource.c -- create and read of single resources.
 *
 * A create is one store_write(): the resource (with server id, versionId and
 * lastUpdated) and its AuditEvent land in the same commit, and 201 is sent
 * only after it. A read is answered only once its AuditEvent is on disk.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct create_job {
    const char *type;
    char id[GW_UUID_LEN];
    json_t *resource;
    const char *owner;
    const char *site;
    struct store_written written;
    struct audit_event ev;
    char reference[200];
};

static enum gw_code create_apply(struct store_txn *txn, void *vjob, struct gw_error *err)
{
    struct create_job *job = vjob;
    struct store_put put = {.type = job->type, .id = job->id, .resource = job->resource,
                            .owner = job->owner, .site = job->site, .create = true};

    return store_txn_put(txn, &put, &job->written, err);
}

static enum gw_code create_audit(struct store_txn *txn, void *vjob, enum gw_code outcome,
                                 const struct gw_error *why, struct gw_error *err)
{
    struct create_job *job = vjob;

    job->ev.outcome = audit_outcome_of(outcome);
    job->ev.outcome_desc = outcome ? why->msg : NULL;
    if (!outcome)
        audit_add_entity(&job->ev, job->reference, "4", "2", NULL);
    return audit_record(txn, &job->ev, err);
}

/* The Patient reference a resource is about, if any (borrowed). */
static const char *patient_of(json_t *res)
{
    const char *ref = json_string_value(json_object_get(json_object_get(res, "subject"),
                                                        "reference"));

    if (!ref)
        ref = json_string_value(json_object_get(json_object_get(res, "patient"), "reference"));
    return ref && strncmp(ref, "Patient/", 8) == 0 ? ref : NULL;
}

/* Answers a write by the Prefer header (FHIR R4 §3.1.0.5.2). */
static void answer_written(struct rest_ctx *ctx, struct http_request *req,
                           struct http_response *resp, int status, const char *type,
                           const char *id, json_t *res, const struct store_written *w)
{
    const char *prefer = http_request_header(req, "Prefer");

    if (prefer && strstr(prefer, "return=minimal")) {
        http_respond_bytes(resp, status, "application/fhir+json; charset=utf-8", "", 0);
    } else if (prefer && strstr(prefer, "return=OperationOutcome")) {
        json_t *oo = http_outcome_new("information", "informational", "stored", NULL);

        http_respond_resource(resp, status, oo);
        json_decref(oo);
    } else {
        http_respond_resource(resp, status, res);
    }
    rest_version_headers(ctx, resp, type, id, w->version, w->last_updated_ms, true);
}

/* Checks the type and role for an interaction; answers and returns NULL when refused. */
static const struct rest_type *admit_type(const struct http_request *req,
                                          struct http_response *resp, unsigned interaction,
                                          bool write)
{
    const struct rest_type *t = rest_type_find(req->captures[0]);

    if (!t) {
        http_respond_error(resp, 404, "not-supported", "this resource type is not served here",
                           NULL);
        return NULL;
    }
    if (!(t->interactions & interaction)) {
        http_respond_error(resp, 405, "not-supported",
                           "this interaction is not supported for this resource type", NULL);
        return NULL;
    }
    if (!auth_allows(req->who, write ? t->write_roles : t->read_roles)) {
        http_respond_error(resp, 403, "forbidden", "this client's role may not do this", NULL);
        return NULL;
    }
    return t;
}

static json_t *prepare_create(struct http_request *req, struct http_response *resp,
                              const char *type, void *vctx)
{
    json_t *res = rest_parse_body(vctx, req, resp);

    if (!res)
        return NULL;
    if (strcmp(json_string_value(json_object_get(res, "resourceType")), type) != 0) {
        http_respond_error(resp, 400, "invalid", "the body's resourceType does not match the URL",
                           "resourceType");
        json_decref(res);
        return NULL;
    }
    json_object_del(res, "id"); /* the server assigns ids (FHIR R4 §3.1.0.4) */
    return res;
}

void rest_handle_create(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct create_job job;
    struct gw_error err;
    char path[200];
    enum gw_code rc;

    memset(&job, 0, sizeof job);
    snprintf(path, sizeof path, "POST /fhir/%s", req->captures[0]);
    rest_audit_init(&job.ev, req, "create", 'C');
    job.ev.path = path;
    if (!admit_type(req, resp, REST_CREATE, true) ||
        !(job.resource = prepare_create(req, resp, req->captures[0], vctx)) ||
        gw_uuid(job.id, &err) != GW_OK) {
        rest_audit_alone(ctx, &job.ev, resp->status ? resp->status : 500, "refused");
        if (!resp->status)
            http_respond_error(resp, 500, "exception", "no id could be assigned", NULL);
        return;
    }
    job.type = req->captures[0];
    job.owner = req->who->org_id;
    job.site = ctx->cfg->default_site;
    json_object_set_new(job.resource, "id", json_string(job.id));
    snprintf(job.reference, sizeof job.reference, "%s/%s", job.type, job.id);
    job.ev.patient = patient_of(job.resource);
    rc = store_write(ctx->store, create_apply, create_audit, &job, &err);
    if (rc)
        http_respond_gw_error(resp, &err);
    else
        answer_written(ctx, req, resp, 201, job.type, job.id, job.resource, &job.written);
    json_decref(job.resource);
}

void rest_handle_read(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_event ev;
    struct store_resource r;
    struct gw_error err;
    char reference[200], path[260];
    json_t *res = NULL;
    enum gw_code rc;

    snprintf(reference, sizeof reference, "%s/%s", req->captures[0], req->captures[1]);
    snprintf(path, sizeof path, "GET /fhir/%s", reference);
    rest_audit_init(&ev, req, "read", 'R');
    ev.path = path;
    audit_add_entity(&ev, reference, "4", "2", NULL);
    if (!admit_type(req, resp, REST_READ, false)) {
        rest_audit_alone(ctx, &ev, resp->status, "refused");
        return;
    }
    rc = store_read(ctx->store, req->captures[0], req->captures[1], 0, &r, &err);
    if (rc == GW_OK && !rest_visible(req->who, &r)) {
        store_resource_cleanup(&r);
        rc = gw_fail(&err, GW_E_NOTFOUND, "%s not found", reference); /* no existence leak */
    }
    if (rc) {
        http_respond_gw_error(resp, &err);
        rest_audit_alone(ctx, &ev, resp->status, err.msg);
        return;
    }
    res = r.deleted ? NULL : rest_parse_stored(&r);
    ev.patient = res ? patient_of(res) : NULL;
    if (rest_audit_alone(ctx, &ev, r.deleted ? 410 : 200, r.deleted ? "deleted" : NULL)) {
        http_respond_error(resp, 503, "transient", "the access could not be audited", NULL);
    } else if (r.deleted) {
        http_respond_error(resp, 410, "deleted", "this resource was deleted", NULL);
    } else if (!res) {
        http_respond_error(resp, 500, "exception", "the stored resource does not parse", NULL);
    } else {
        http_respond_resource(resp, 200, res);
        rest_version_headers(ctx, resp, r.type, r.id, r.version, r.last_updated_ms, false);
    }
    json_decref(res);
    store_resource_cleanup(&r);
}
