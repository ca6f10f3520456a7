/* triage.c -- the practice's rules (triage-rules.json) applied to one referral: each rule
 * that finds its evidence raises one flag that says what it found and in which element.
 *
 * Kinds of rule: "onset" (an indication Condition's onset[x] less than minDays before
 * ServiceRequest.authoredOn: conservative treatment too short; without any such onset, a
 * duration the GP wrote, "depuis 10 jours", read by words.c) and "codes" (a Condition,
 * an Observation code and value, or a MedicationStatement / MedicationRequest medication in
 * the rule's code lists; "unrecorded" adds: no such Observation for a patient of the given
 * gender and age).
 *
 * Promises: resources that are entered in error, refuted, resolved, cancelled or stopped are
 * not evidence; one flag per rule, naming the first element that raised it.
 */
#include "mapping/mapping_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS   86400000LL
#define EXPR_MAX 160

static const char *const cond_inactive[] = {"inactive", "resolved",         "remission",
                                            "refuted",  "entered-in-error", NULL};
static const char *const obs_void[] = {"cancelled", "entered-in-error", NULL};
static const char *const med_void[] = {
    "cancelled", "completed", "entered-in-error", "stopped", "not-taken", "revoked", NULL};

static bool has_status(json_t *res, const char *field, const char *const *bad)
{
    json_t *v = json_object_get(res, field), *coding;
    const char *code = json_string_value(v);
    size_t i, k;

    if (!code) {
        json_array_foreach (json_object_get(v, "coding"), i, coding) {
            for (k = 0; bad[k] && map_json_str(coding, "code"); k++)
                if (strcmp(map_json_str(coding, "code"), bad[k]) == 0)
                    return true;
        }
        return false;
    }
    for (k = 0; bad[k]; k++)
        if (strcmp(code, bad[k]) == 0)
            return true;
    return false;
}

static bool condition_active(json_t *cond)
{
    return !has_status(cond, "clinicalStatus", cond_inactive) &&
           !has_status(cond, "verificationStatus", cond_inactive);
}

static enum gw_code add_flag(struct map_decision *d, const struct map_rule *r, char *why,
                             const char *expr)
{
    struct map_flag *grown, *f;

    if (!why)
        return GW_E_NOMEM;
    grown = realloc(d->flags, (d->n_flags + 1) * sizeof *grown);
    if (!grown) {
        free(why);
        return GW_E_NOMEM;
    }
    d->flags = grown;
    f = &d->flags[d->n_flags];
    memset(f, 0, sizeof *f);
    f->why = why;
    f->code = gw_strdup(r->code);
    f->display = gw_strdup(r->display);
    f->message = gw_strdup(r->message);
    f->expression = gw_strdup(expr);
    d->n_flags++;
    return f->code && f->display && f->message && f->expression ? GW_OK : GW_E_NOMEM;
}

static char *dup_or_null(const char *s)
{
    return s ? gw_strdup(s) : NULL;
}

enum gw_code map_decision_add_flag(struct map_decision *d, const char *code, const char *display,
                                   const char *message, const char *why, const char *expression)
{
    struct map_flag *grown = realloc(d->flags, (d->n_flags + 1) * sizeof *grown), *f;

    if (!grown)
        return GW_E_NOMEM;
    d->flags = grown;
    f = &d->flags[d->n_flags++];
    memset(f, 0, sizeof *f);
    f->code = gw_strdup(code);
    f->display = gw_strdup(display ? display : code);
    f->message = gw_strdup(message ? message : "");
    f->why = dup_or_null(why);
    f->expression = dup_or_null(expression);
    return f->code && f->display && f->message && (!why || f->why) && (!expression || f->expression)
               ? GW_OK
               : GW_E_NOMEM;
}

void map_decision_clear_flags(struct map_decision *d)
{
    size_t i;

    for (i = 0; i < d->n_flags; i++) {
        free(d->flags[i].code);
        free(d->flags[i].display);
        free(d->flags[i].message);
        free(d->flags[i].why);
        free(d->flags[i].expression);
    }
    free(d->flags);
    d->flags = NULL;
    d->n_flags = 0;
}

static const char *sysname(const char *system)
{
    const char *n = map_system_name(system);

    return n ? n : system;
}

/* ---------------------------------------------------------------- indications */

static bool referenced_by(json_t *sr, json_t *cond)
{
    const char *id = map_json_str(cond, "id");
    json_t *ref;
    size_t i;

    if (!id)
        return false;
    json_array_foreach (json_object_get(sr, "reasonReference"), i, ref) {
        const char *r = map_json_str(ref, "reference"), *tail;

        if (!r)
            continue;
        tail = strrchr(r, '/');
        if (!tail)
            tail = strrchr(r, '#');
        tail = tail ? tail + 1 : r;
        if (strcmp(tail, id) == 0)
            return true;
    }
    return false;
}

bool map_is_indication_condition(const struct map_set *set, json_t *sr, json_t *cond)
{
    json_t *coding;
    struct map_match m[2];
    size_t i, k;

    if (referenced_by(sr, cond))
        return true;
    json_array_foreach (json_object_get(json_object_get(cond, "code"), "coding"), i, coding) {
        struct map_query q = {.system = map_json_str(coding, "system"),
                              .code = map_json_str(coding, "code"),
                              .target_system = MAP_CS_PROCEDURE};

        if (map_translate(set, &q, m, 2, NULL) > 0)
            return true;
        for (k = 0; k < set->n_indications; k++)
            if (map_codeset_has(set->indications[k].codings, set->indications[k].n_codings,
                                q.system, q.code))
                return true;
    }
    return false;
}

/* ---------------------------------------------------------------- onset */

/* The GP's words say how long the pain has lasted ("depuis 10 jours"). */
static enum gw_code onset_from_words(const struct map_rule *r, struct map_decision *d)
{
    if (d->text_days < 0 || d->text_days >= r->min_days)
        return GW_OK;
    return add_flag(d, r,
                    map_strf("the text says '%s': %ld day%s (less than %ld)", d->text_days_words,
                             d->text_days, d->text_days == 1 ? "" : "s", r->min_days),
                    d->text_days_expression);
}

static enum gw_code rule_onset(const struct map_set *set, const struct map_rule *r,
                               const struct map_referral *ref, struct map_decision *d)
{
    const char *authored = map_json_str(ref->service_request, "authoredOn");
    int64_t a_lo, a_hi, o_lo, o_hi;
    bool any_onset = false;
    size_t i;

    if (!authored || !gw_time_parse_fhir(authored, &a_lo, &a_hi))
        return onset_from_words(r, d);
    for (i = 0; i < ref->n_conditions; i++) {
        json_t *c = ref->conditions[i];
        const char *onset = map_json_str(c, "onsetDateTime"), *field = "onsetDateTime";
        char expr[EXPR_MAX];
        long long days;

        if (!onset) {
            onset = map_json_str(json_object_get(c, "onsetPeriod"), "start");
            field = "onsetPeriod.start";
        }
        if (!onset || !condition_active(c) || !gw_time_parse_fhir(onset, &o_lo, &o_hi) ||
            !map_is_indication_condition(set, ref->service_request, c))
            continue;
        any_onset = true;
        /* o_lo is the earliest the onset can be: the longest the pain can have lasted */
        days = (long long)((a_lo - o_lo) / DAY_MS);
        if (days >= r->min_days)
            continue;
        gw_format(expr, sizeof expr, "Condition[%zu].%s", i, field);
        return add_flag(d, r,
                        map_strf("onset %s is %lld day%s before authoredOn %s (less than %ld)",
                                 onset, days, days == 1 || days == -1 ? "" : "s", authored,
                                 r->min_days),
                        expr);
    }
    return any_onset ? GW_OK : onset_from_words(r, d);
}

/* ---------------------------------------------------------------- codes */

static enum gw_code rule_conditions(const struct map_rule *r, const struct map_referral *ref,
                                    struct map_decision *d, bool *raised)
{
    json_t *coding;
    size_t i, j;
    char expr[EXPR_MAX];

    for (i = 0; r->n_conditions && i < ref->n_conditions; i++) {
        if (!condition_active(ref->conditions[i]))
            continue;
        json_array_foreach (json_object_get(json_object_get(ref->conditions[i], "code"), "coding"),
                            j, coding) {
            const char *sys = map_json_str(coding, "system"), *code = map_json_str(coding, "code");

            if (!map_codeset_has(r->conditions, r->n_conditions, sys, code))
                continue;
            *raised = true;
            gw_format(expr, sizeof expr, "Condition[%zu].code.coding[%zu]", i, j);
            return add_flag(
                d, r,
                map_strf("Condition[%zu] is %s %s%s%s%s", i, sysname(sys), code,
                         map_json_str(coding, "display") ? " (" : "",
                         map_json_str(coding, "display") ? map_json_str(coding, "display") : "",
                         map_json_str(coding, "display") ? ")" : ""),
                expr);
        }
    }
    return GW_OK;
}

/* The index j of the first coding of cc in the code lists, or -1. */
static long first_match(json_t *cc, const struct map_codeset *cs, size_t n)
{
    json_t *coding;
    size_t j;

    json_array_foreach (json_object_get(cc, "coding"), j, coding) {
        if (map_codeset_has(cs, n, map_json_str(coding, "system"), map_json_str(coding, "code")))
            return (long)j;
    }
    return -1;
}

static bool obs_is(const struct map_rule *r, json_t *obs, long *which)
{
    size_t k;

    for (k = 0; k < r->n_observations; k++) {
        if (first_match(json_object_get(obs, "code"), r->observations[k].codes,
                        r->observations[k].n_codes) >= 0) {
            *which = (long)k;
            return true;
        }
    }
    return false;
}

static enum gw_code rule_observations(const struct map_rule *r, const struct map_referral *ref,
                                      struct map_decision *d, bool *raised)
{
    size_t i;
    long k, j;
    char expr[EXPR_MAX];

    for (i = 0; i < ref->n_observations; i++) {
        json_t *o = ref->observations[i], *value, *coding;
        const struct map_obs_rule *orule;

        if (has_status(o, "status", obs_void) || !obs_is(r, o, &k))
            continue;
        orule = &r->observations[k];
        value = json_object_get(o, "valueCodeableConcept");
        j = orule->n_values ? first_match(value, orule->values, orule->n_values) : 0;
        if (j < 0)
            continue;
        *raised = true;
        if (!orule->n_values) {
            gw_format(expr, sizeof expr, "Observation[%zu].code", i);
            return add_flag(d, r, map_strf("Observation[%zu] is recorded", i), expr);
        }
        coding = json_array_get(json_object_get(value, "coding"), (size_t)j);
        gw_format(expr, sizeof expr, "Observation[%zu].valueCodeableConcept.coding[%ld]", i, j);
        return add_flag(
            d, r,
            map_strf("Observation[%zu] has the value %s %s%s%s%s", i,
                     sysname(map_json_str(coding, "system")), map_json_str(coding, "code"),
                     map_json_str(coding, "display") ? " (" : "",
                     map_json_str(coding, "display") ? map_json_str(coding, "display") : "",
                     map_json_str(coding, "display") ? ")" : ""),
            expr);
    }
    return GW_OK;
}

/* The medication CodeableConcept of a statement or request, from a contained Medication when
 * medicationReference is local; *path gets its FHIRPath tail. */
static json_t *medication_concept(json_t *res, char *path, size_t cap)
{
    json_t *cc = json_object_get(res, "medicationCodeableConcept"), *m;
    const char *ref = map_json_str(json_object_get(res, "medicationReference"), "reference");
    size_t c;

    if (cc) {
        snprintf(path, cap, "medicationCodeableConcept");
        return cc;
    }
    if (!ref || ref[0] != '#')
        return NULL;
    json_array_foreach (json_object_get(res, "contained"), c, m) {
        if (map_json_str(m, "id") && strcmp(map_json_str(m, "id"), ref + 1) == 0) {
            snprintf(path, cap, "contained[%zu].code", c);
            return json_object_get(m, "code");
        }
    }
    return NULL;
}

static enum gw_code rule_medications(const struct map_rule *r, const struct map_referral *ref,
                                     struct map_decision *d, bool *raised)
{
    size_t i, n_stmt = 0, n_req = 0, idx;
    char path[64], expr[EXPR_MAX];

    for (i = 0; r->n_medications && i < ref->n_medications; i++) {
        json_t *res = ref->medications[i], *cc, *coding;
        const char *rt = map_json_str(res, "resourceType");
        long j;

        if (!rt || (strcmp(rt, "MedicationStatement") && strcmp(rt, "MedicationRequest")))
            continue;
        idx = rt[10] == 'S' ? n_stmt++ : n_req++;
        if (has_status(res, "status", med_void) ||
            !(cc = medication_concept(res, path, sizeof path)))
            continue;
        if ((j = first_match(cc, r->medications, r->n_medications)) < 0)
            continue;
        *raised = true;
        coding = json_array_get(json_object_get(cc, "coding"), (size_t)j);
        gw_format(expr, sizeof expr, "%s[%zu].%s.coding[%ld]", rt, idx, path, j);
        return add_flag(
            d, r,
            map_strf("%s[%zu] is %s %s%s%s%s", rt, idx, sysname(map_json_str(coding, "system")),
                     map_json_str(coding, "code"), map_json_str(coding, "display") ? " (" : "",
                     map_json_str(coding, "display") ? map_json_str(coding, "display") : "",
                     map_json_str(coding, "display") ? ")" : ""),
            expr);
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- unrecorded */

static bool ymd(const char *s, int *y, int *m, int *d)
{
    return s && sscanf(s, "%4d-%2d-%2d", y, m, d) == 3;
}

/* Age in whole years at the referral (authoredOn, else today); -1 when unknown. */
static long age_years(json_t *patient, json_t *sr)
{
    char today[GW_INSTANT_LEN];
    const char *at = map_json_str(sr, "authoredOn");
    int by, bm, bd, ry, rm, rd;

    if (!at) {
        gw_time_instant(gw_now_ms(), today);
        at = today;
    }
    if (!ymd(map_json_str(patient, "birthDate"), &by, &bm, &bd) || !ymd(at, &ry, &rm, &rd))
        return -1;
    return ry - by - ((rm < bm || (rm == bm && rd < bd)) ? 1 : 0);
}

static enum gw_code rule_unrecorded(const struct map_rule *r, const struct map_referral *ref,
                                    struct map_decision *d)
{
    const char *gender = map_json_str(ref->patient, "gender");
    long age, k;
    size_t i;

    if (!r->has_unrecorded || !gender || strcmp(gender, r->unrecorded_gender) != 0)
        return GW_OK;
    age = age_years(ref->patient, ref->service_request);
    if (age >= 0 && (age < r->unrecorded_min_age || age > r->unrecorded_max_age))
        return GW_OK;
    for (i = 0; i < ref->n_observations; i++)
        if (!has_status(ref->observations[i], "status", obs_void) &&
            obs_is(r, ref->observations[i], &k))
            return GW_OK; /* recorded, and it did not raise the flag */
    if (age < 0)
        return add_flag(
            d, r, map_strf("no %s Observation for a %s patient of unknown age", r->code, gender),
            "Patient.gender");
    return add_flag(d, r,
                    map_strf("no %s Observation for a %s patient aged %ld", r->code, gender, age),
                    "Patient.gender");
}

enum gw_code map_triage_flags(const struct map_set *set, const struct map_referral *ref,
                              struct map_decision *d, struct gw_error *err)
{
    enum gw_code rc = GW_OK;
    size_t i;

    for (i = 0; !rc && i < set->n_rules; i++) {
        const struct map_rule *r = &set->rules[i];
        bool raised = false;

        if (r->kind == MAP_RULE_ONSET) {
            rc = rule_onset(set, r, ref, d);
            continue;
        }
        rc = rule_conditions(r, ref, d, &raised);
        if (!rc && !raised)
            rc = rule_observations(r, ref, d, &raised);
        if (!rc && !raised)
            rc = rule_medications(r, ref, d, &raised);
        if (!rc && !raised && ref->patient)
            rc = rule_unrecorded(r, ref, d);
    }
    return rc ? gw_fail(err, rc, "no memory for triage flags") : GW_OK;
}
