/* referral.c -- what makes a ServiceRequest a referral: the profile of
 * DESIGN §4, routing to a site by performer, the indication mapping and
 * triage flags (DESIGN §5), its Task, and its RIS order.
 *
 * New referral: prepare (profile → 422, site, mapping fills an empty code),
 * then the write, then finish (Task requested/received or triage, order NW).
 * Update: revoked → Task cancelled and order CA; still active → profile and
 * mapping again and order XO; a revoked referral cannot come back.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define REFERRAL_MAX_RELATED 64

struct rest_referral {
    const struct config_site *site;
    json_t *patient;   /* borrowed from the plan */
    json_t *requester; /* borrowed from the plan */
    json_t *conditions[REFERRAL_MAX_RELATED];
    size_t n_conditions;
    json_t *observations[REFERRAL_MAX_RELATED];
    size_t n_observations;
    json_t *medications[REFERRAL_MAX_RELATED];
    size_t n_medications;
    struct map_decision decision;
    bool decided;
    enum ris_order_kind order; /* what finish() sends */
    bool send_order;
};

void rest_referral_free(struct rest_referral *r)
{
    if (!r)
        return;
    if (r->decided)
        map_decision_cleanup(&r->decision);
    free(r);
}

struct resolver {
    struct rest_plan *plan;
    struct store_txn *txn;
    json_t *holder;
};

static json_t *resolve(void *vctx, const char *reference)
{
    struct resolver *r = vctx;

    return rest_plan_lookup(r->plan, r->txn, r->holder, reference);
}

static const char *ref_of(json_t *res, const char *element)
{
    return json_string_value(json_object_get(json_object_get(res, element), "reference"));
}

static void add_related(struct rest_referral *rr, json_t *res)
{
    const char *type = fhir_resource_type(res);
    size_t i;

    if (!type)
        return;
    if (strcmp(type, "Condition") == 0 && rr->n_conditions < REFERRAL_MAX_RELATED) {
        for (i = 0; i < rr->n_conditions; i++)
            if (rr->conditions[i] == res)
                return;
        rr->conditions[rr->n_conditions++] = res;
    } else if (strcmp(type, "Observation") == 0 && rr->n_observations < REFERRAL_MAX_RELATED) {
        rr->observations[rr->n_observations++] = res;
    } else if ((strcmp(type, "MedicationStatement") == 0 ||
                strcmp(type, "MedicationRequest") == 0) &&
               rr->n_medications < REFERRAL_MAX_RELATED) {
        rr->medications[rr->n_medications++] = res;
    }
}

/* Conditions, observations and medications that travel with the referral:
 * its reasonReferences, its contained resources and the Bundle's entries. */
static void gather(struct rest_plan *p, struct store_txn *txn, json_t *sr, struct rest_referral *rr)
{
    json_t *v;
    size_t i;

    json_array_foreach (json_object_get(sr, "reasonReference"), i, v) {
        const char *ref = json_string_value(json_object_get(v, "reference"));
        json_t *c = ref ? rest_plan_lookup(p, txn, sr, ref) : NULL;

        if (c)
            add_related(rr, c);
    }
    json_array_foreach (json_object_get(sr, "contained"), i, v)
        add_related(rr, v);
    for (i = 0; i < p->n_entries; i++)
        add_related(rr, p->entries[i].resource);
}

/* The site a performer names: logical identifier, or a resolved Organization. */
static const struct config_site *site_of_performer(struct rest_plan *p, struct store_txn *txn,
                                                   json_t *sr, json_t *performer)
{
    const struct config *cfg = p->ctx->cfg;
    json_t *ident = json_object_get(performer, "identifier"), *org, *v;
    const char *ref = json_string_value(json_object_get(performer, "reference"));
    const struct config_site *site;
    size_t i;

    if (ident)
        return config_site_by_identifier(cfg, json_string_value(json_object_get(ident, "system")),
                                         json_string_value(json_object_get(ident, "value")));
    org = ref ? rest_plan_lookup(p, txn, sr, ref) : NULL;
    json_array_foreach (json_object_get(org, "identifier"), i, v) {
        site = config_site_by_identifier(cfg, json_string_value(json_object_get(v, "system")),
                                         json_string_value(json_object_get(v, "value")));
        if (site)
            return site;
    }
    return NULL;
}

static enum gw_code route(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                          struct rest_referral *rr, const char *path)
{
    json_t *performers = json_object_get(e->resource, "performer"), *v;
    char expr[300];
    size_t i;

    if (json_array_size(performers) == 0) {
        rr->site = config_site_find(p->ctx->cfg, p->ctx->cfg->default_site);
        return GW_OK;
    }
    json_array_foreach (performers, i, v) {
        rr->site = site_of_performer(p, txn, e->resource, v);
        if (rr->site)
            return GW_OK;
    }
    snprintf(expr, sizeof expr, "%s.performer", path);
    return rest_plan_fail(p, 422, GW_E_INPUT, "business-rule", expr,
                          "the performer is not one of this gateway's sites: name the site's "
                          "Organization by its identifier, or leave performer out for the "
                          "default site");
}

/* Mapping and triage; fills ServiceRequest.code when the GP left it empty. */
static enum gw_code decide(struct rest_plan *p, struct rest_entry *e, struct rest_referral *rr,
                           struct gw_error *err)
{
    struct map_referral view = {e->resource,     rr->conditions,   rr->n_conditions,
                                rr->patient,     rr->observations, rr->n_observations,
                                rr->medications, rr->n_medications};
    size_t i;
    enum gw_code rc;

    if (!p->maps)
        return GW_OK;
    rc = map_referral_decide(p->maps, &view, &rr->decision, err);
    if (rc)
        return rc;
    rr->decided = true;
    for (i = 0; i < rr->decision.n_warnings; i++)
        fhir_outcome_add(p->outcome, FHIR_WARNING, "business-rule", rr->decision.warnings[i], NULL);
    if (rr->decision.gp_code == MAP_GP_ABSENT && !rr->decision.is_unmapped) {
        json_t *code = map_decision_code(&rr->decision);

        if (!code || json_object_set_new(e->resource, "code", code))
            return gw_fail(err, GW_E_NOMEM, "no memory for the mapped code");
    }
    return GW_OK;
}

/* Stored status and ownership of an updated ServiceRequest. */
static enum gw_code load_current(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                 struct gw_error *err)
{
    struct store_resource row;
    json_t *old;
    const char *status;
    enum gw_code rc = store_txn_read(txn, e->type, e->id, 0, &row, err);

    if (rc == GW_E_NOTFOUND ||
        (rc == GW_OK && (row.deleted || !rest_visible(p->req->who, &row) || !row.owner ||
                         !p->req->who->org_id || strcmp(row.owner, p->req->who->org_id) != 0))) {
        if (rc == GW_OK)
            store_resource_cleanup(&row);
        return rest_plan_fail(p, 404, GW_E_NOTFOUND, "not-found", NULL, "%s/%s not found", e->type,
                              e->id);
    }
    if (rc)
        return rc;
    old = rest_parse_stored(&row);
    status = json_string_value(json_object_get(old, "status"));
    e->was_revoked = status && strcmp(status, "revoked") == 0;
    e->owner = row.owner;
    e->site = row.site;
    row.owner = row.site = NULL;
    json_decref(old);
    store_resource_cleanup(&row);
    return GW_OK;
}

static bool is_revoked(json_t *sr)
{
    const char *s = json_string_value(json_object_get(sr, "status"));

    return s && strcmp(s, "revoked") == 0;
}

static enum gw_code check_profile(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                  const char *path)
{
    struct resolver r = {p, txn, e->resource};
    int n =
        fhir_validate_referral(e->resource, e->index >= 0 ? path : NULL, resolve, &r, p->outcome);

    if (n < 0)
        return GW_E_NOMEM;
    if (n > 0) {
        if (!p->fail_status)
            p->fail_status = 422;
        return GW_E_INPUT;
    }
    return GW_OK;
}

enum gw_code rest_referral_prepare(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                   struct gw_error *err)
{
    struct rest_referral *rr;
    char path[200];
    enum gw_code rc;

    rest_entry_path(e, path, sizeof path);
    rr = e->referral = calloc(1, sizeof *rr);
    if (!rr)
        return gw_fail(err, GW_E_NOMEM, "no memory for a referral");
    if (e->is_put) {
        rc = load_current(p, txn, e, err);
        if (rc)
            return rc;
        rr->site = config_site_find(p->ctx->cfg, e->site);
        if (e->was_revoked)
            return rest_plan_fail(p, 422, GW_E_INPUT, "business-rule", "ServiceRequest.status",
                                  "this referral was revoked: send a new referral instead");
        rr->send_order = true;
        rr->order = is_revoked(e->resource) ? RIS_ORDER_CANCEL : RIS_ORDER_CHANGE;
        if (rr->order == RIS_ORDER_CANCEL)
            return GW_OK; /* a revocation needs nothing else to be valid */
    }
    rc = check_profile(p, txn, e, path);
    if (rc)
        return gw_fail(err, rc, "the referral breaks the referral profile");
    rr->patient = ref_of(e->resource, "subject")
                      ? rest_plan_lookup(p, txn, e->resource, ref_of(e->resource, "subject"))
                      : NULL;
    rr->requester = ref_of(e->resource, "requester")
                        ? rest_plan_lookup(p, txn, e->resource, ref_of(e->resource, "requester"))
                        : NULL;
    gather(p, txn, e->resource, rr);
    if (!e->is_put) {
        rc = route(p, txn, e, rr, path);
        if (rc)
            return gw_fail(err, rc, "the referral names no site of this gateway");
        rr->send_order = true;
        rr->order = RIS_ORDER_NEW;
        free(e->site);
        e->site = gw_strdup(rr->site->id);
        if (!e->site)
            return gw_fail(err, GW_E_NOMEM, "no memory for a referral");
        p->site = rr->site->id;
    }
    return decide(p, e, rr, err);
}

/* ------------------------------------------------------------ Task */

static json_t *status_concept(const char *code)
{
    return json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system", RIS_STATUS_SYSTEM, "code", code,
                     "text", code);
}

/* A reference for the Task: the SR's own when it names a stored resource, or
 * the contained resource's first identifier (the Task cannot see contained). */
static json_t *task_reference(json_t *sr, const char *element, json_t *resolved)
{
    json_t *ref = json_object_get(sr, element);
    const char *text = json_string_value(json_object_get(ref, "reference"));
    json_t *ident = json_array_get(json_object_get(resolved, "identifier"), 0);

    if (text && text[0] != '#')
        return json_pack("{s:s}", "reference", text);
    if (ident)
        return json_pack("{s:O}", "identifier", ident);
    return NULL;
}

static int add_flags(json_t *task, const struct map_decision *d)
{
    json_t *inputs = json_array(), *notes = json_array();
    size_t i;

    if (!inputs || !notes || json_object_set_new(task, "input", inputs) ||
        json_object_set_new(task, "note", notes))
        return -1;
    for (i = 0; i < d->n_flags; i++) {
        const struct map_flag *f = &d->flags[i];
        char text[1200];

        snprintf(text, sizeof text, "%s: %s (%s)", f->message ? f->message : f->display,
                 f->why ? f->why : "", f->expression ? f->expression : "");
        if (json_array_append_new(
                inputs, json_pack("{s:{s:[{s:s, s:s, s:s}]}, s:s}", "type", "coding", "system",
                                  MAP_CS_TRIAGE, "code", f->code, "display",
                                  f->display ? f->display : f->code, "valueString", text)) ||
            json_array_append_new(notes, json_pack("{s:s}", "text", text)))
            return -1;
    }
    if (!d->n_flags) {
        json_object_del(task, "input");
        json_object_del(task, "note");
    }
    return 0;
}

static json_t *new_task(struct store_txn *txn, struct rest_entry *e, struct rest_referral *rr)
{
    char instant[GW_INSTANT_LEN], focus[200];
    bool triage = !rr->decided || rr->decision.is_unmapped;
    json_t *task, *who;

    gw_time_instant(store_txn_now(txn), instant);
    snprintf(focus, sizeof focus, "ServiceRequest/%s", e->id);
    task = json_pack(
        "{s:s, s:[{s:s}], s:s, s:o, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}, s:s, s:s,"
        " s:{s:{s:s, s:s}, s:s}}",
        "resourceType", "Task", "basedOn", "reference", focus, "status", "requested",
        "businessStatus", status_concept(triage ? RIS_STATUS_TRIAGE : RIS_STATUS_RECEIVED),
        "intent", "order", "code", "coding", "system", "http://hl7.org/fhir/CodeSystem/task-code",
        "code", "fulfill", "focus", "reference", focus, "authoredOn", instant, "lastModified",
        instant, "owner", "identifier", "system", rr->site->org_system, "value",
        rr->site->org_value, "display", rr->site->name);
    if (!task)
        return NULL;
    if ((who = task_reference(e->resource, "subject", rr->patient)) &&
        json_object_set_new(task, "for", who))
        goto fail;
    if ((who = task_reference(e->resource, "requester", rr->requester)) &&
        json_object_set_new(task, "requester", who))
        goto fail;
    if (json_object_get(e->resource, "priority") &&
        json_object_set(task, "priority", json_object_get(e->resource, "priority")))
        goto fail;
    if (rr->decided && add_flags(task, &rr->decision))
        goto fail;
    return task;
fail:
    json_decref(task);
    return NULL;
}

/* The Task of ServiceRequest/id, parsed (new reference), with its version. */
static json_t *find_task(struct store_txn *txn, const char *sr_id, long *version, char **owner,
                         char **site)
{
    char focus[200];
    struct store_value v = {.value = focus};
    struct store_cond c = {.param = "focus", .kind = STORE_REFERENCE, .values = &v, .n_values = 1};
    struct store_query q = {.type = "Task", .conds = &c, .n_conds = 1, .count = 1};
    struct store_page page;
    json_t *task = NULL;

    snprintf(focus, sizeof focus, "ServiceRequest/%s", sr_id);
    if (store_txn_search(txn, &q, &page, NULL) != GW_OK)
        return NULL;
    if (page.n_items == 1) {
        task = rest_parse_stored(&page.items[0]);
        *version = page.items[0].version;
        *owner = page.items[0].owner;
        *site = page.items[0].site;
        page.items[0].owner = page.items[0].site = NULL;
    }
    store_page_cleanup(&page);
    return task;
}

static enum gw_code cancel_task(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                struct gw_error *err)
{
    char instant[GW_INSTANT_LEN];
    long version = 0;
    char *owner = NULL, *site = NULL;
    json_t *task = find_task(txn, e->id, &version, &owner, &site);
    struct store_written w;
    enum gw_code rc;

    if (!task) {
        free(owner);
        free(site);
        return GW_OK; /* a referral stored before Tasks existed */
    }
    gw_time_instant(store_txn_now(txn), instant);
    if (json_object_set_new(task, "status", json_string("cancelled")) ||
        json_object_set_new(task, "businessStatus", status_concept(RIS_STATUS_CANCELLED)) ||
        json_object_set_new(task, "lastModified", json_string(instant)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the Task");
    else
        rc = rest_put(p->ctx, txn, task, owner, site, version, false, &w, err);
    json_decref(task);
    free(owner);
    free(site);
    return rc;
}

static enum gw_code create_task(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                struct rest_referral *rr, struct gw_error *err)
{
    char id[GW_UUID_LEN];
    json_t *task = new_task(txn, e, rr);
    struct store_written w;
    enum gw_code rc = gw_uuid7(id, err);

    if (!task)
        return gw_fail(err, GW_E_NOMEM, "no memory for the Task");
    if (!rc && json_object_set_new(task, "id", json_string(id)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the Task");
    if (!rc)
        rc = rest_put(p->ctx, txn, task, p->req->who->org_id, rr->site->id, 0, true, &w, err);
    if (!rc) {
        size_t n = strlen(id) + 6;
        char *ref = malloc(n);

        if (ref)
            snprintf(ref, n, "Task/%s", id);
        rest_plan_keep(p, ref); /* for the audit entities */
    }
    json_decref(task);
    return rc;
}

enum gw_code rest_referral_finish(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                  struct gw_error *err)
{
    struct rest_referral *rr = e->referral;
    struct ris_referral view;
    enum gw_code rc = GW_OK;

    if (!rr)
        return GW_OK;
    if (!e->is_put)
        rc = create_task(p, txn, e, rr, err);
    else if (rr->order == RIS_ORDER_CANCEL)
        rc = cancel_task(p, txn, e, err);
    if (rc || !rr->send_order || !p->ctx->ris || !rr->site)
        return rc;
    view =
        (struct ris_referral){e->resource,    rr->patient,      rr->requester,
                              rr->conditions, rr->n_conditions, rr->decided ? &rr->decision : NULL,
                              rr->site};
    return ris_order_enqueue(p->ctx->ris, txn, &view, rr->order, NULL, err);
}
