/* referral.c -- what makes a ServiceRequest a referral: the profile of
 * DESIGN §4, routing to a site by performer, the indication mapping and
 * triage flags (DESIGN §5), its Task, and its RIS order.
 *
 * New referral: prepare (profile → 422, site, mapping fills an empty code),
 * then the write, then finish (Task requested/received and order NW, or
 * Task triage and no order: nothing mapped, or an indication read from words
 * waits for the practice's decision, decide.c).
 * Update: revoked → Task cancelled and order CA; still active → profile and
 * mapping again and order XO; a revoked referral cannot come back. Neither
 * may change who the referral is about or who wrote it: subject and
 * requester (and the contained resources they designate) stay exactly as
 * stored, else 422 naming the element.
 * A referral that never reached the RIS (triage, declined) gets no CA nor XO:
 * an amendment that now maps sends its first order (NW); one the practice
 * declined cannot be amended.
 *
 * Every resource an order, a Task or an AuditEvent is made from is resolved
 * through rest_plan_lookup(): plan entries, contained resources, or stored
 * resources the caller may read (rest_visible), never anything else.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define REFERRAL_MAX_RELATED 64

struct rest_referral {
    const struct config_site *site;
    json_t *stored;    /* updates: the current stored version (owned) */
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
    json_decref(r->stored);
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

static size_t count_referrals(const struct rest_plan *p)
{
    size_t i, n = 0;

    for (i = 0; i < p->n_entries; i++)
        n += strcmp(p->entries[i].type, "ServiceRequest") == 0;
    return n;
}

/* Conditions, observations and medications that travel with the referral:
 * its reasonReferences and supportingInfo, its contained resources and, when
 * it is the Bundle's only referral, the Bundle's other entries. A Bundle with
 * several referrals (for several sites) gives each only what it references. */
static void gather(struct rest_plan *p, struct store_txn *txn, json_t *sr, struct rest_referral *rr)
{
    static const char *const elements[] = {"reasonReference", "supportingInfo"};
    json_t *v;
    size_t i, k;

    for (k = 0; k < sizeof elements / sizeof *elements; k++)
        json_array_foreach (json_object_get(sr, elements[k]), i, v) {
            const char *ref = json_string_value(json_object_get(v, "reference"));
            json_t *c = ref ? rest_plan_lookup(p, txn, sr, ref) : NULL;

            if (c)
                add_related(rr, c);
        }
    json_array_foreach (json_object_get(sr, "contained"), i, v)
        add_related(rr, v);
    if (count_referrals(p) == 1)
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

/* True while the referral waits for the practice: no procedure, or one read from words. */
static bool awaits_practice(const struct rest_referral *rr)
{
    return !rr->decided || rr->decision.is_unmapped || rr->decision.is_from_text;
}

/* Mapping and triage; fills ServiceRequest.code when the GP left it empty (and the
 * procedure needs no confirmation); marks an indication read from words. */
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
    if (rr->decision.gp_code == MAP_GP_ABSENT && !awaits_practice(rr)) {
        json_t *code = map_decision_code(&rr->decision);

        if (!code || json_object_set_new(e->resource, "code", code))
            return gw_fail(err, GW_E_NOMEM, "no memory for the mapped code");
    }
    if (map_decision_mark_text(&rr->decision, e->resource))
        return gw_fail(err, GW_E_NOMEM, "no memory for the indication read from words");
    return GW_OK;
}

/* Stored status and ownership of an updated ServiceRequest. */
static enum gw_code load_current(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                 struct rest_referral *rr, struct gw_error *err)
{
    struct store_resource row;
    const char *status;
    enum gw_code rc = store_txn_read(txn, e->type, e->id, 0, &row, err);

    if (rc == GW_E_NOTFOUND || (rc == GW_OK && (row.deleted || !row.owner || !p->req->who->org_id ||
                                                strcmp(row.owner, p->req->who->org_id) != 0))) {
        if (rc == GW_OK)
            store_resource_cleanup(&row);
        return rest_plan_fail(p, 404, GW_E_NOTFOUND, "not-found", NULL, "%s/%s not found", e->type,
                              e->id);
    }
    if (rc)
        return rc;
    rr->stored = rest_parse_stored(&row);
    if (!rr->stored) {
        store_resource_cleanup(&row);
        return gw_fail(err, GW_E_INTERNAL, "the stored %s/%s does not parse", e->type, e->id);
    }
    status = json_string_value(json_object_get(rr->stored, "status"));
    e->was_revoked = status && strcmp(status, "revoked") == 0;
    e->owner = row.owner;
    e->site = row.site;
    row.owner = row.site = NULL;
    store_resource_cleanup(&row);
    return GW_OK;
}

/* The contained resource a "#id" reference of element designates in sr, or NULL. */
static json_t *contained_target(json_t *sr, const char *element)
{
    const char *ref = ref_of(sr, element);
    json_t *v;
    size_t i;

    if (!ref || ref[0] != '#')
        return NULL;
    json_array_foreach (json_object_get(sr, "contained"), i, v) {
        const char *id = json_string_value(json_object_get(v, "id"));

        if (id && strcmp(id, ref + 1) == 0)
            return v;
    }
    return NULL;
}

/* True when element (a Reference) and what it designates inside the
 * resource are the same in the stored and the new version. */
static bool same_party(json_t *stored, json_t *next, const char *element)
{
    json_t *a = json_object_get(stored, element), *b = json_object_get(next, element);
    json_t *ca = contained_target(stored, element), *cb = contained_target(next, element);

    if (!a || !b)
        return !a && !b;
    if (!json_equal(a, b))
        return false;
    return (!ca && !cb) || (ca && cb && json_equal(ca, cb));
}

/* An amendment or revocation keeps the patient and the requester: changing
 * them would send another person's data to the RIS under this referral's
 * number (or take a referral away from its patient). 422 for each change. */
static enum gw_code check_parties(struct rest_plan *p, struct rest_entry *e,
                                  const struct rest_referral *rr, const char *path)
{
    static const char *const elements[] = {"subject", "requester"};
    char expr[300];
    size_t i;
    enum gw_code rc = GW_OK;

    for (i = 0; i < sizeof elements / sizeof *elements; i++) {
        if (same_party(rr->stored, e->resource, elements[i]))
            continue;
        snprintf(expr, sizeof expr, "%s.%s", path, elements[i]);
        rc = rest_plan_fail(p, 422, GW_E_INPUT, "business-rule", expr,
                            "an amendment or revocation may not change the referral's %s: send "
                            "a new referral (and revoke this one) instead",
                            elements[i]);
    }
    return rc;
}

/* The patient and the requester, as the caller may see them. */
static void resolve_parties(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                            struct rest_referral *rr)
{
    const char *subject = ref_of(e->resource, "subject");
    const char *requester = ref_of(e->resource, "requester");

    rr->patient = subject ? rest_plan_lookup(p, txn, e->resource, subject) : NULL;
    rr->requester = requester ? rest_plan_lookup(p, txn, e->resource, requester) : NULL;
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

static json_t *find_task(struct store_txn *txn, const char *sr_id, long *version, char **owner,
                         char **site);

static const char *business_of(json_t *task)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(task, "businessStatus"), "coding"), 0),
        "code"));
}

static bool business_is(json_t *task, const char *code)
{
    const char *b = business_of(task);

    return b && strcmp(b, code) == 0;
}

/* An amendment of a referral the practice declined is refused (422): the GP sends a new one. */
static enum gw_code refuse_declined(struct rest_plan *p, struct store_txn *txn,
                                    struct rest_entry *e)
{
    long version = 0;
    char *owner = NULL, *site = NULL;
    json_t *task = find_task(txn, e->id, &version, &owner, &site);
    bool declined = task && business_is(task, RIS_STATUS_DECLINED);

    json_decref(task);
    free(owner);
    free(site);
    if (!declined)
        return GW_OK;
    return rest_plan_fail(p, 422, GW_E_INPUT, "business-rule", "ServiceRequest",
                          "the practice declined this referral (see its Task's statusReason): "
                          "send a new referral instead");
}

/* The practice's procedure code in a ServiceRequest.code the practice chose (extension
 * MAP_EXT_CHOSEN_BY_PRACTICE), or NULL. */
static const char *practice_procedure(json_t *code)
{
    json_t *v;
    bool chosen = false;
    size_t i;

    json_array_foreach (json_object_get(code, "extension"), i, v) {
        const char *url = json_string_value(json_object_get(v, "url"));

        chosen = chosen || (url && strcmp(url, MAP_EXT_CHOSEN_BY_PRACTICE) == 0);
    }
    json_array_foreach (json_object_get(code, "coding"), i, v) {
        const char *system = json_string_value(json_object_get(v, "system"));

        if (chosen && system && strcmp(system, MAP_CS_PROCEDURE) == 0)
            return json_string_value(json_object_get(v, "code"));
    }
    return NULL;
}

/* An amendment without ServiceRequest.code keeps the procedure the practice chose: GP
 * software resends its own copy of the referral, which never had it. */
static enum gw_code keep_practice_choice(struct store_txn *txn, struct rest_entry *e,
                                         struct gw_error *err)
{
    struct store_resource row;
    json_t *old, *code;
    enum gw_code rc = GW_OK;

    if (json_object_get(e->resource, "code") ||
        store_txn_read(txn, e->type, e->id, 0, &row, NULL) != GW_OK)
        return GW_OK;
    old = rest_parse_stored(&row);
    store_resource_cleanup(&row);
    code = json_object_get(old, "code");
    if (practice_procedure(code) && json_object_set(e->resource, "code", code))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the practice's procedure");
    json_decref(old);
    return rc;
}

/* The CCAM coding of a code (it says the guidance too), else NULL. */
static const char *ccam_of(json_t *code)
{
    json_t *v;
    size_t i;

    json_array_foreach (json_object_get(code, "coding"), i, v) {
        const char *system = json_string_value(json_object_get(v, "system"));

        if (system && strcmp(map_system_canonical(system), MAP_SYS_CCAM) == 0)
            return json_string_value(json_object_get(v, "code"));
    }
    return NULL;
}

/* The order of an amended referral names the procedure the practice chose, not a new
 * mapping's. */
static enum gw_code follow_practice_choice(struct rest_plan *p, struct rest_entry *e,
                                           struct rest_referral *rr, struct gw_error *err)
{
    json_t *code = json_object_get(e->resource, "code");
    const char *proc = practice_procedure(code), *ccam = ccam_of(code);
    struct map_choice c = {ccam ? MAP_SYS_CCAM : MAP_CS_PROCEDURE, ccam ? ccam : proc,
                           MAP_REGION_NONE, MAP_LAT_NONE, MAP_GUIDANCE_NONE};
    struct gw_error why;
    enum gw_code rc;

    if (!proc || !rr->decided)
        return GW_OK;
    rc = map_decision_choose(p->maps, &rr->decision, &c, &why);
    if (rc == GW_E_NOMEM)
        return gw_fail(err, rc, "%s", why.msg);
    return GW_OK; /* a procedure the maps no longer know: the stored code still names it */
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
        rc = load_current(p, txn, e, rr, err);
        if (rc)
            return rc;
        rr->site = config_site_find(p->ctx->cfg, e->site);
        if (e->was_revoked)
            return rest_plan_fail(p, 422, GW_E_INPUT, "business-rule", "ServiceRequest.status",
                                  "this referral was revoked: send a new referral instead");
        rc = check_parties(p, e, rr, path);
        if (rc)
            return gw_fail(err, rc, "an amendment may not change the patient or the requester");
        rr->send_order = true;
        rr->order = is_revoked(e->resource) ? RIS_ORDER_CANCEL : RIS_ORDER_CHANGE;
        if (rr->order == RIS_ORDER_CANCEL) {
            resolve_parties(p, txn, e, rr); /* the profile was checked when it was created */
            return GW_OK;
        }
        rc = refuse_declined(p, txn, e);
        if (!rc)
            rc = keep_practice_choice(txn, e, err);
        if (rc)
            return rc == GW_E_NOMEM ? rc : gw_fail(err, rc, "the practice declined this referral");
    }
    rc = check_profile(p, txn, e, path);
    if (rc)
        return gw_fail(err, rc, "the referral breaks the referral profile");
    resolve_parties(p, txn, e, rr);
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
    }
    rc = decide(p, e, rr, err);
    if (!rc && e->is_put)
        rc = follow_practice_choice(p, e, rr, err);
    return rc;
}

/* ------------------------------------------------------------ Task */

/* The JSON below is built as json_pack() built it, key for key, without a format to parse
 * (a Task is made for every referral); see gw_json_object1(). */
static json_t *status_concept(const char *code)
{
    json_t *concept = gw_json_object1(
        "coding", gw_json_array1(gw_json_strings(2, "system", RIS_STATUS_SYSTEM, "code", code)));

    if (gw_json_set_string(concept, "text", code)) {
        json_decref(concept);
        return NULL;
    }
    return concept;
}

/* A reference for the Task: the SR's own when it names a stored resource, or
 * the contained resource's first identifier (the Task cannot see contained). */
static json_t *task_reference(json_t *sr, const char *element, json_t *resolved)
{
    json_t *ref = json_object_get(sr, element);
    const char *text = json_string_value(json_object_get(ref, "reference"));
    json_t *ident = json_array_get(json_object_get(resolved, "identifier"), 0);

    if (text && text[0] != '#')
        return gw_json_strings(1, "reference", text);
    if (ident)
        return gw_json_object1("identifier", json_incref(ident));
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

/* An indication read from words: the procedure the maps propose, for the practice to confirm
 * (Task.input typed RIS_INPUT_PROPOSED). */
static int add_proposal(json_t *task, const struct map_decision *d)
{
    json_t *inputs = json_object_get(task, "input"), *code;

    if (!d->is_from_text || !(code = map_decision_code(d)))
        return d->is_from_text ? -1 : 0;
    if (!inputs && (json_object_set_new(task, "input", json_array()) ||
                    !(inputs = json_object_get(task, "input")))) {
        json_decref(code);
        return -1;
    }
    return json_array_append_new(
        inputs, json_pack("{s:{s:[{s:s, s:s}], s:s}, s:o}", "type", "coding", "system",
                          RIS_INPUT_SYSTEM, "code", RIS_INPUT_PROPOSED, "text",
                          "procedure proposed from the GP's words", "valueCodeableConcept", code));
}

/* {"identifier": {"system", "value"}, "display"}: the site's organisation. */
static json_t *owner_of(const struct config_site *site)
{
    json_t *owner = gw_json_object1(
        "identifier", gw_json_strings(2, "system", site->org_system, "value", site->org_value));

    if (gw_json_set_string(owner, "display", site->name)) {
        json_decref(owner);
        return NULL;
    }
    return owner;
}

static json_t *new_task(struct store_txn *txn, struct rest_entry *e, struct rest_referral *rr)
{
    char instant[GW_INSTANT_LEN], focus[200];
    bool triage = awaits_practice(rr);
    json_t *task, *who;

    gw_time_instant(store_txn_now(txn), instant);
    snprintf(focus, sizeof focus, "ServiceRequest/%s", e->id);
    task = json_object();
    if (gw_json_set_string(task, "resourceType", "Task") ||
        json_object_set_new(task, "basedOn",
                            gw_json_array1(gw_json_strings(1, "reference", focus))) ||
        gw_json_set_string(task, "status", "requested") ||
        json_object_set_new(task, "businessStatus",
                            status_concept(triage ? RIS_STATUS_TRIAGE : RIS_STATUS_RECEIVED)) ||
        gw_json_set_string(task, "intent", "order") ||
        json_object_set_new(
            task, "code",
            gw_json_object1("coding", gw_json_array1(gw_json_strings(
                                          2, "system", "http://hl7.org/fhir/CodeSystem/task-code",
                                          "code", "fulfill")))) ||
        json_object_set_new(task, "focus", gw_json_strings(1, "reference", focus)) ||
        gw_json_set_string(task, "authoredOn", instant) ||
        gw_json_set_string(task, "lastModified", instant) ||
        json_object_set_new(task, "owner", owner_of(rr->site)))
        goto fail;
    if ((who = task_reference(e->resource, "subject", rr->patient)) &&
        json_object_set_new(task, "for", who))
        goto fail;
    if ((who = task_reference(e->resource, "requester", rr->requester)) &&
        json_object_set_new(task, "requester", who))
        goto fail;
    if (json_object_get(e->resource, "priority") &&
        json_object_set(task, "priority", json_object_get(e->resource, "priority")))
        goto fail;
    if (rr->decided && (add_flags(task, &rr->decision) || add_proposal(task, &rr->decision)))
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
        rc = rest_put(p->ctx, txn, task, owner, site, version, false, NULL, err);
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
    enum gw_code rc = gw_uuid7(id, err); /* time-ordered: new ids share index pages */

    if (!task)
        return gw_fail(err, GW_E_NOMEM, "no memory for the Task");
    if (!rc && json_object_set_new(task, "id", json_string(id)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the Task");
    if (!rc)
        rc = rest_put(p->ctx, txn, task, p->req->who->org_id, rr->site->id, 0, true, NULL, err);
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

/* ------------------------------------------------------------ site visibility */

/* True when res is a plan entry or a stored resource the plan loaded (not
 * one contained in the referral, which travels inside it). */
static bool is_standalone(const struct rest_plan *p, json_t *res)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++)
        if (p->entries[i].resource == res)
            return true;
    for (i = 0; i < p->n_loaded; i++)
        if (p->loaded[i] == res)
            return true;
    return false;
}

static enum gw_code grant(struct rest_plan *p, struct store_txn *txn, json_t *res, const char *site,
                          struct gw_error *err)
{
    const char *type = fhir_resource_type(res);
    const char *id = json_string_value(json_object_get(res, "id"));

    if (!res || !type || !id || !is_standalone(p, res))
        return GW_OK;
    return store_txn_site_grant(txn, type, id, site, err);
}

/* The referral's site sees what the referral references and what its order
 * was made from, each resolved as the caller sees it (rest_plan_lookup): a
 * reference to another organisation's resource grants nothing. */
static enum gw_code grant_site(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                               struct rest_referral *rr, struct gw_error *err)
{
    static const char *const elements[] = {"subject", "requester", "performer", "reasonReference",
                                           "supportingInfo"};
    const char *site = rr->site->id;
    enum gw_code rc = GW_OK;
    size_t i, k;

    for (k = 0; !rc && k < sizeof elements / sizeof *elements; k++) {
        json_t *el = json_object_get(e->resource, elements[k]);
        size_t n = json_is_array(el) ? json_array_size(el) : 1;

        for (i = 0; !rc && i < n; i++) {
            const char *ref = json_string_value(
                json_object_get(json_is_array(el) ? json_array_get(el, i) : el, "reference"));

            if (ref)
                rc = grant(p, txn, rest_plan_lookup(p, txn, e->resource, ref), site, err);
        }
    }
    for (i = 0; !rc && i < rr->n_conditions; i++)
        rc = grant(p, txn, rr->conditions[i], site, err);
    for (i = 0; !rc && i < rr->n_observations; i++)
        rc = grant(p, txn, rr->observations[i], site, err);
    for (i = 0; !rc && i < rr->n_medications; i++)
        rc = grant(p, txn, rr->medications[i], site, err);
    return rc;
}

/* An amended or revoked referral that never reached the RIS (Task in triage or declined):
 * no CA nor XO; an amendment that now maps without waiting for the practice sends the first
 * order (NW) and moves the Task on to received. */
static enum gw_code follow_triage(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                  struct rest_referral *rr, struct gw_error *err)
{
    char instant[GW_INSTANT_LEN];
    long version = 0;
    char *owner = NULL, *site = NULL;
    json_t *task = find_task(txn, e->id, &version, &owner, &site);
    enum gw_code rc = GW_OK;

    if (!task ||
        (!business_is(task, RIS_STATUS_TRIAGE) && !business_is(task, RIS_STATUS_DECLINED))) {
        json_decref(task);
        free(owner);
        free(site);
        return GW_OK; /* an order went out before: CA or XO as usual */
    }
    rr->send_order = false;
    if (rr->order != RIS_ORDER_CANCEL && !awaits_practice(rr)) {
        rr->send_order = true;
        rr->order = RIS_ORDER_NEW;
        gw_time_instant(store_txn_now(txn), instant);
        if (json_object_set_new(task, "businessStatus", status_concept(RIS_STATUS_RECEIVED)) ||
            json_object_set_new(task, "lastModified", json_string(instant)))
            rc = gw_fail(err, GW_E_NOMEM, "no memory for the Task");
        else
            rc = rest_put(p->ctx, txn, task, owner, site, version, false, NULL, err);
    }
    json_decref(task);
    free(owner);
    free(site);
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
    if (rr->site)
        rc = grant_site(p, txn, e, rr, err);
    if (!rc && !e->is_put)
        rr->send_order = !awaits_practice(rr);
    else if (!rc)
        rc = follow_triage(p, txn, e, rr, err);
    if (!rc && !e->is_put)
        rc = create_task(p, txn, e, rr, err);
    else if (!rc && rr->order == RIS_ORDER_CANCEL)
        rc = cancel_task(p, txn, e, err);
    if (rc || !rr->send_order || !p->ctx->ris || !rr->site)
        return rc;
    view = (struct ris_referral){e->resource,      rr->patient,
                                 rr->requester,    rr->conditions,
                                 rr->n_conditions, rr->decided ? &rr->decision : NULL,
                                 rr->site,         e->owner ? e->owner : p->req->who->org_id};
    return ris_order_enqueue(p->ctx->ris, txn, &view, rr->order, NULL, err);
}
