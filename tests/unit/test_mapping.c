/* test_mapping.c -- the mapping module against the real mappings/ folder: the referral case
 * table (tests/data/mapping/cases.json), translation variants, $translate Parameters, loading
 * failures, reload with a broken file, and `mappings check` on a deliberately broken set.
 * Runs from the repository root. */
#include "check.h"
#include "mapping/mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAPPINGS "mappings"
#define DATA     "tests/data/mapping"

static struct map_set *real_set(void)
{
    static struct map_set *set;
    struct gw_error err;

    if (!set && map_set_load(MAPPINGS, &set, &err) != GW_OK) {
        fprintf(stderr, "cannot load %s: %s\n", MAPPINGS, err.msg);
        exit(2);
    }
    return set;
}

/* ---------------------------------------------------------------- the case table */

static const char *sys_of(const char *alias)
{
    static const char *const tab[][2] = {
        {"icd10", MAP_SYS_ICD10},
        {"cim10", "https://smt.esante.gouv.fr/terminologie-cim-10"},
        {"icd10oid", "urn:oid:2.16.840.1.113883.6.3"},
        {"icd10cm", MAP_SYS_ICD10CM},
        {"sct", MAP_SYS_SNOMED},
        {"ccam", MAP_SYS_CCAM},
        {"cpt", MAP_SYS_CPT},
        {"loinc", MAP_SYS_LOINC},
        {"atc", MAP_SYS_ATC},
        {"local", "urn:oid:1.2.3.4.5"},
    };
    size_t i;

    for (i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i][0], alias) == 0)
            return tab[i][1];
    return alias;
}

/* [["sct","123"], ...] -> {"coding":[{"system":..,"code":..}]} */
static json_t *concept(json_t *pairs)
{
    json_t *codings = json_array(), *p;
    size_t i;

    json_array_foreach (pairs, i, p) {
        json_array_append_new(codings, json_pack("{s:s, s:s}", "system",
                                                 sys_of(json_string_value(json_array_get(p, 0))),
                                                 "code", json_string_value(json_array_get(p, 1))));
    }
    return json_pack("{s:o}", "coding", codings);
}

static json_t *status_cc(const char *code)
{
    return json_pack("{s:[{s:s}]}", "coding", "code", code);
}

static json_t *make_condition(json_t *c, size_t i)
{
    char id[32];
    json_t *cond;

    snprintf(id, sizeof id, "c%zu", i);
    cond =
        json_pack("{s:s, s:s, s:{s:[{s:s, s:s}]}}", "resourceType", "Condition", "id", id, "code",
                  "coding", "system", sys_of(json_string_value(json_object_get(c, "system"))),
                  "code", json_string_value(json_object_get(c, "code")));
    if (json_object_get(c, "onset"))
        json_object_set(cond, "onsetDateTime", json_object_get(c, "onset"));
    if (json_object_get(c, "onsetPeriodStart"))
        json_object_set_new(cond, "onsetPeriod",
                            json_pack("{s:O}", "start", json_object_get(c, "onsetPeriodStart")));
    if (json_object_get(c, "clinicalStatus"))
        json_object_set_new(cond, "clinicalStatus",
                            status_cc(json_string_value(json_object_get(c, "clinicalStatus"))));
    if (json_object_get(c, "verificationStatus"))
        json_object_set_new(cond, "verificationStatus",
                            status_cc(json_string_value(json_object_get(c, "verificationStatus"))));
    return cond;
}

static json_t *make_medication(json_t *m)
{
    const char *type = json_string_value(json_object_get(m, "type"));
    const char *status = json_string_value(json_object_get(m, "status"));
    json_t *cc = json_pack("{s:[{s:s, s:s}]}", "coding", "system",
                           sys_of(json_string_value(json_object_get(m, "system"))), "code",
                           json_string_value(json_object_get(m, "code")));
    json_t *res =
        json_pack("{s:s, s:s}", "resourceType", type, "status", status ? status : "active");

    if (json_is_true(json_object_get(m, "contained"))) {
        json_object_set_new(
            res, "contained",
            json_pack("[{s:s, s:s, s:o}]", "resourceType", "Medication", "id", "med1", "code", cc));
        json_object_set_new(res, "medicationReference", json_pack("{s:s}", "reference", "#med1"));
    } else {
        json_object_set_new(res, "medicationCodeableConcept", cc);
    }
    return res;
}

static json_t *make_observation(json_t *o)
{
    return json_pack("{s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:[{s:s, s:s}]}}", "resourceType",
                     "Observation", "status", "final", "code", "coding", "system",
                     sys_of(json_string_value(json_object_get(o, "system"))), "code",
                     json_string_value(json_object_get(o, "code")), "valueCodeableConcept",
                     "coding", "system",
                     sys_of(json_string_value(json_object_get(o, "valueSystem"))), "code",
                     json_string_value(json_object_get(o, "valueCode")));
}

static json_t *make_service_request(json_t *c)
{
    const char *authored = json_string_value(json_object_get(c, "authoredOn"));
    json_t *sr =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "resourceType", "ServiceRequest", "status",
                  "active", "intent", "order", "authoredOn", authored ? authored : "2026-03-02",
                  "subject", "reference", "Patient/p1");
    json_t *sites = json_array(), *s, *cond, *refs = json_array();
    size_t i;

    if (json_object_get(c, "reason"))
        json_object_set_new(sr, "reasonCode",
                            json_pack("[o]", concept(json_object_get(c, "reason"))));
    json_array_foreach (json_object_get(c, "bodySite"), i, s)
        json_array_append_new(sites, concept(s));
    if (json_array_size(sites))
        json_object_set(sr, "bodySite", sites);
    json_decref(sites);
    if (json_object_get(c, "code"))
        json_object_set_new(sr, "code", concept(json_object_get(c, "code")));
    json_array_foreach (json_object_get(c, "conditions"), i, cond) {
        char ref[32];

        snprintf(ref, sizeof ref, "Condition/c%zu", i);
        if (json_is_true(json_object_get(cond, "reason")))
            json_array_append_new(refs, json_pack("{s:s}", "reference", ref));
    }
    if (json_array_size(refs))
        json_object_set(sr, "reasonReference", refs);
    json_decref(refs);
    return sr;
}

static bool same_opt(json_t *want, const char *got)
{
    if (!want)
        return true; /* not part of this case's expectation */
    if (json_is_null(want))
        return got == NULL;
    return got && strcmp(json_string_value(want), got) == 0;
}

static const char *gp_name(enum map_gp_code g)
{
    return g == MAP_GP_ABSENT    ? "absent"
           : g == MAP_GP_AGREES  ? "agrees"
           : g == MAP_GP_DIFFERS ? "differs"
                                 : "unchecked";
}

static int expect_flags(const struct map_decision *d, json_t *exp)
{
    json_t *want = json_object_get(exp, "flags"), *exprs = json_object_get(exp, "flagExpr"), *v;
    const char *why = json_string_value(json_object_get(exp, "flagWhy")), *key;
    size_t i;
    int bad = 0;

    if (json_array_size(want) != d->n_flags)
        bad++;
    for (i = 0; !bad && i < d->n_flags; i++)
        if (strcmp(json_string_value(json_array_get(want, i)), d->flags[i].code) != 0)
            bad++;
    json_object_foreach (exprs, key, v) {
        for (i = 0; i < d->n_flags; i++)
            if (strcmp(d->flags[i].code, key) == 0)
                break;
        if (i == d->n_flags || strcmp(d->flags[i].expression, json_string_value(v)) != 0)
            bad++;
    }
    if (why && (d->n_flags == 0 || !strstr(d->flags[0].why, why)))
        bad++;
    for (i = 0; bad && i < d->n_flags; i++)
        fprintf(stderr, "    flag %s at %s: %s\n", d->flags[i].code, d->flags[i].expression,
                d->flags[i].why);
    return bad;
}

static int expect_warning(const struct map_decision *d, const char *want)
{
    size_t i;

    if (!want)
        return 0;
    for (i = 0; i < d->n_warnings; i++)
        if (strstr(d->warnings[i], want))
            return 0;
    for (i = 0; i < d->n_warnings; i++)
        fprintf(stderr, "    warning: %s\n", d->warnings[i]);
    return 1;
}

static int run_case(json_t *c)
{
    json_t *exp = json_object_get(c, "expect"), *sr = make_service_request(c), *v;
    json_t *conds[8], *meds[8], *obs[8], *patient;
    struct map_referral ref = {
        .service_request = sr, .conditions = conds, .medications = meds, .observations = obs};
    struct map_decision d;
    struct gw_error err;
    size_t i;
    int bad = 0;

    json_array_foreach (json_object_get(c, "conditions"), i, v)
        conds[ref.n_conditions++] = make_condition(v, i);
    json_array_foreach (json_object_get(c, "medications"), i, v)
        meds[ref.n_medications++] = make_medication(v);
    json_array_foreach (json_object_get(c, "observations"), i, v)
        obs[ref.n_observations++] = make_observation(v);
    patient = json_object_get(c, "patient")
                  ? json_deep_copy(json_object_get(c, "patient"))
                  : json_pack("{s:s, s:s}", "gender", "male", "birthDate", "1970-05-01");
    json_object_set_new(patient, "resourceType", json_string("Patient"));
    ref.patient = patient;
    if (map_referral_decide(real_set(), &ref, &d, &err) != GW_OK) {
        fprintf(stderr, "    decide failed: %s\n", err.msg);
        bad++;
    } else {
        bad += d.is_unmapped != json_is_true(json_object_get(exp, "unmapped"));
        bad += !same_opt(json_object_get(exp, "procedure"), d.procedure.code);
        bad += !same_opt(json_object_get(exp, "ccam"), d.ccam.code);
        bad += !same_opt(json_object_get(exp, "cpt"), d.cpt.code);
        bad += !same_opt(json_object_get(exp, "region"), map_region_name(d.region));
        bad += !same_opt(json_object_get(exp, "laterality") ? json_object_get(exp, "laterality")
                                                            : json_null(),
                         map_laterality_name(d.laterality));
        bad += !same_opt(json_object_get(exp, "regionExpr"), d.region_expression);
        bad += !same_opt(json_object_get(exp, "latExpr"), d.laterality_expression);
        bad += !same_opt(json_object_get(exp, "indicationExpr"), d.indication_expression);
        bad += !same_opt(json_object_get(exp, "gp"), gp_name(d.gp_code));
        bad += expect_flags(&d, exp);
        bad += expect_warning(&d, json_string_value(json_object_get(exp, "warning")));
        if (bad) {
            char *dump = json_dumps(map_decision_json(&d), JSON_COMPACT);

            fprintf(stderr, "  case \"%s\" got %s\n", json_string_value(json_object_get(c, "name")),
                    dump);
            free(dump);
        }
        map_decision_cleanup(&d);
    }
    for (i = 0; i < ref.n_conditions; i++)
        json_decref(conds[i]);
    for (i = 0; i < ref.n_medications; i++)
        json_decref(meds[i]);
    for (i = 0; i < ref.n_observations; i++)
        json_decref(obs[i]);
    json_decref(patient);
    json_decref(sr);
    return bad;
}

static void referral_cases_from_the_table_decide_as_expected(void)
{
    json_error_t jerr;
    json_t *doc = json_load_file(DATA "/cases.json", 0, &jerr), *c;
    size_t i, failed = 0;

    CHECK(doc != NULL);
    CHECK(json_array_size(json_object_get(doc, "cases")) >= 40);
    json_array_foreach (json_object_get(doc, "cases"), i, c) {
        if (run_case(c)) {
            failed++;
            fprintf(stderr, "  FAILED case %zu: %s\n", i,
                    json_string_value(json_object_get(c, "name")));
        }
    }
    CHECK_INT(failed, 0);
    json_decref(doc);
}

/* ---------------------------------------------------------------- indications in words */

/* The referral of a text case: the words in reasonCode[0].text, note[0].text or a Condition. */
static json_t *text_referral(json_t *c, json_t **cond)
{
    const char *in = json_string_value(json_object_get(c, "in"));
    json_t *text = json_object_get(c, "text");
    json_t *sr = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "resourceType", "ServiceRequest",
                           "status", "active", "intent", "order", "authoredOn", "2026-03-02",
                           "subject", "reference", "Patient/p1");
    json_t *reason =
        json_object_get(c, "coded") ? concept(json_object_get(c, "coded")) : json_object();

    *cond = NULL;
    if (in && strcmp(in, "note") == 0) {
        json_object_set_new(sr, "note", json_pack("[{s:O}]", "text", text));
    } else if (in && strcmp(in, "condition") == 0) {
        *cond = json_pack("{s:s, s:s, s:{s:O}}", "resourceType", "Condition", "id", "c0", "code",
                          "text", text);
        json_object_set_new(sr, "reasonReference", json_pack("[{s:s}]", "reference", "#c0"));
    } else {
        json_object_set(reason, "text", text);
    }
    if (json_object_size(reason))
        json_object_set_new(sr, "reasonCode", json_pack("[O]", reason));
    json_decref(reason);
    return sr;
}

static int text_expect(const struct map_decision *d, json_t *exp)
{
    json_t *code = json_object_get(exp, "code"), *days = json_object_get(exp, "days");
    const char *words = json_string_value(json_object_get(exp, "words"));
    int bad = 0;

    if (json_is_null(code)) {
        bad += d->is_from_text;
    } else {
        bad += !d->is_from_text || !same_opt(code, d->indication.code);
        bad += d->n_flags < 1 || strcmp(d->flags[0].code, MAP_FLAG_FROM_TEXT) != 0;
        bad += expect_warning(d, "read from the words");
    }
    bad += !same_opt(json_object_get(exp, "procedure"), d->procedure.code);
    bad += !same_opt(json_object_get(exp, "ccam"), d->ccam.code);
    bad += !same_opt(json_object_get(exp, "cpt"), d->cpt.code);
    bad += !same_opt(json_object_get(exp, "region"), map_region_name(d->region));
    bad += !same_opt(json_object_get(exp, "laterality"), map_laterality_name(d->laterality));
    bad += days && json_integer_value(days) != d->text_days;
    bad += words && (!d->text_words || strcmp(words, d->text_words) != 0);
    return bad;
}

static int run_text_case(json_t *c)
{
    json_t *cond = NULL, *sr = text_referral(c, &cond);
    struct map_referral ref = {.service_request = sr, .conditions = &cond, .n_conditions = !!cond};
    struct map_decision d;
    struct gw_error err;
    int bad;

    if (map_referral_decide(real_set(), &ref, &d, &err) != GW_OK) {
        fprintf(stderr, "    decide failed: %s\n", err.msg);
        bad = 1;
    } else {
        bad = text_expect(&d, json_object_get(c, "expect"));
        if (bad) {
            json_t *j = map_decision_json(&d);
            char *dump = json_dumps(j, JSON_COMPACT);

            fprintf(stderr, "  text \"%s\" got %s\n", json_string_value(json_object_get(c, "text")),
                    dump);
            free(dump);
            json_decref(j);
        }
        map_decision_cleanup(&d);
    }
    json_decref(cond);
    json_decref(sr);
    return bad;
}

static void indications_in_words_from_the_table_read_as_expected(void)
{
    json_error_t jerr;
    json_t *doc = json_load_file(DATA "/text-cases.json", 0, &jerr), *c;
    size_t i, failed = 0, negated = 0;

    CHECK(doc != NULL);
    json_array_foreach (json_object_get(doc, "cases"), i, c) {
        negated += json_is_null(json_object_get(json_object_get(c, "expect"), "code"));
        if (run_text_case(c)) {
            failed++;
            fprintf(stderr, "  FAILED text case %zu\n", i);
        }
    }
    CHECK(json_array_size(json_object_get(doc, "cases")) - negated >= 60);
    CHECK(negated >= 8);
    CHECK_INT(failed, 0);
    json_decref(doc);
}

static json_t *words_referral(const char *text, const char *coded)
{
    json_t *sr =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:[{s:s}]}", "resourceType", "ServiceRequest",
                  "status", "active", "intent", "order", "authoredOn", "2026-03-02", "subject",
                  "reference", "Patient/p1", "reasonCode", "text", text);

    if (coded)
        json_object_set_new(json_array_get(json_object_get(sr, "reasonCode"), 0), "coding",
                            json_pack("[{s:s, s:s}]", "system", MAP_SYS_ICD10, "code", coded));
    return sr;
}

static void an_indication_read_from_words_is_marked_on_the_referral(void)
{
    json_t *sr = words_referral("Hernie discale L5-S1 gauche", NULL), *coding, *ext;
    struct map_referral ref = {.service_request = sr};
    struct map_decision d;
    struct gw_error err;

    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    CHECK(d.is_from_text && !d.is_unmapped);
    CHECK_STR(d.indication.code, "M51.1");
    CHECK_STR(d.text_words, "Hernie discale");
    CHECK_INT(map_decision_mark_text(&d, sr), 0);
    coding = json_array_get(
        json_object_get(json_array_get(json_object_get(sr, "reasonCode"), 0), "coding"), 0);
    CHECK_STR(json_string_value(json_object_get(coding, "code")), "M51.1");
    CHECK(json_is_false(json_object_get(coding, "userSelected")));
    ext = json_array_get(json_object_get(coding, "extension"), 0);
    CHECK_STR(json_string_value(json_object_get(ext, "url")), MAP_EXT_FROM_TEXT);
    CHECK_STR(json_string_value(json_object_get(
                  json_array_get(json_object_get(ext, "extension"), 0), "valueString")),
              "ServiceRequest.reasonCode[0].text");
    CHECK_STR(json_string_value(json_object_get(
                  json_array_get(json_object_get(ext, "extension"), 1), "valueString")),
              "Hernie discale");
    map_decision_cleanup(&d);
    /* decided again (an amendment, the practice's decision): the marked coding is not the
     * GP's, the words are read again, and the coding is not marked twice */
    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    CHECK(d.is_from_text && d.laterality == MAP_LAT_LEFT);
    CHECK_INT(map_decision_mark_text(&d, sr), 0);
    CHECK_INT(json_array_size(
                  json_object_get(json_array_get(json_object_get(sr, "reasonCode"), 0), "coding")),
              1);
    map_decision_cleanup(&d);
    /* words in a note become a reasonCode of their own */
    json_object_del(sr, "reasonCode");
    json_object_set_new(sr, "note", json_pack("[{s:s}]", "text", "NCB droite"));
    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    CHECK_INT(map_decision_mark_text(&d, sr), 0);
    coding = json_array_get(
        json_object_get(json_array_get(json_object_get(sr, "reasonCode"), 0), "coding"), 0);
    CHECK_STR(json_string_value(json_object_get(coding, "code")), "M54.12");
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(sr, "reasonCode"), 0), "text")),
              "NCB");
    map_decision_cleanup(&d);
    json_decref(sr);
}

static bool has_flag(const struct map_decision *d, const char *code, const char *why,
                     const char *expr)
{
    size_t i;

    for (i = 0; i < d->n_flags; i++)
        if (strcmp(d->flags[i].code, code) == 0 && (!why || strstr(d->flags[i].why, why)) &&
            (!expr || strcmp(d->flags[i].expression, expr) == 0))
            return true;
    return false;
}

static void a_duration_in_words_feeds_the_six_week_rule_unless_a_condition_dates_it(void)
{
    json_t *sr = words_referral("Lombalgie depuis 10 jours", "M54.5");
    json_t *cond = json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}]}}", "resourceType", "Condition",
                             "id", "c0", "onsetDateTime", "2025-10-01", "code", "coding", "system",
                             MAP_SYS_ICD10, "code", "M54.5");
    struct map_referral ref = {.service_request = sr};
    struct map_decision d;
    struct gw_error err;

    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    CHECK(!d.is_from_text); /* the coded indication stands */
    CHECK_INT(d.text_days, 10);
    CHECK(has_flag(&d, "conservative-treatment-short", "depuis 10 jours",
                   "ServiceRequest.reasonCode[0].text"));
    map_decision_cleanup(&d);
    ref.conditions = &cond;
    ref.n_conditions = 1;
    json_object_set_new(sr, "reasonReference", json_pack("[{s:s}]", "reference", "#c0"));
    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    CHECK(!has_flag(&d, "conservative-treatment-short", NULL, NULL)); /* five months: the onset */
    map_decision_cleanup(&d);
    json_decref(cond);
    json_decref(sr);
}

static void the_practice_chooses_a_procedure_by_its_code_or_a_billing_code(void)
{
    json_t *sr = words_referral("asthme", "J45.9");
    struct map_referral ref = {.service_request = sr};
    struct map_decision d;
    struct map_choice c = {MAP_CS_PROCEDURE, "facet-joint-injection", MAP_REGION_LUMBAR, 0, 0};
    struct gw_error err;
    const char *proc;
    enum map_guidance g;
    json_t *code;

    CHECK(map_procedure_of_code(real_set(), MAP_SYS_CCAM, "lhlh002", &proc, &g));
    CHECK_STR(proc, "facet-joint-injection");
    CHECK_INT(g, MAP_GUIDANCE_CT);
    CHECK(map_procedure_of_code(real_set(), MAP_SYS_CPT, "27096", &proc, &g));
    CHECK_STR(proc, "sacroiliac-joint-injection");
    CHECK(!map_procedure_of_code(real_set(), MAP_SYS_CCAM, "ZZZZ999", &proc, &g));
    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    CHECK(d.is_unmapped);
    CHECK_INT(map_decision_choose(real_set(), &d, &c, &err), GW_OK);
    CHECK(!d.is_unmapped && d.is_chosen_by_practice && d.chosen_by == NULL);
    CHECK_STR(d.ccam.code, "LHLH003");
    CHECK_STR(d.cpt.code, "64493");
    code = map_decision_code(&d);
    CHECK_STR(json_string_value(json_object_get(code, "text")),
              "Facet (zygapophyseal) joint injection, image-guided");
    CHECK_INT(json_array_size(json_object_get(code, "extension")), 1); /* the codes' map only */
    json_decref(code);
    c = (struct map_choice){MAP_SYS_CCAM, "LHLH002", MAP_REGION_CERVICAL, 0, 0};
    CHECK_INT(map_decision_choose(real_set(), &d, &c, &err), GW_OK);
    CHECK_STR(d.ccam.code, "LHLH002"); /* the CT-guided act */
    CHECK_STR(d.cpt.code, "64490");
    c = (struct map_choice){MAP_SYS_CCAM, "NOPE001", 0, 0, 0};
    CHECK_INT(map_decision_choose(real_set(), &d, &c, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "NOPE001") != NULL);
    map_decision_cleanup(&d);
    json_decref(sr);
}

/* ---------------------------------------------------------------- translate */

static size_t tr(const char *system, const char *code, const char *target, enum map_region r,
                 enum map_laterality l, enum map_guidance g, struct map_match *m, size_t max)
{
    struct map_query q = {.system = system,
                          .code = code,
                          .target_system = target,
                          .region = r,
                          .laterality = l,
                          .guidance = g};

    return map_translate(real_set(), &q, m, max, NULL);
}

static void translate_normalises_dots_case_and_prefixes(void)
{
    struct map_match m[8];
    const char *variants[] = {"M51.1", "M51.16", "m5116", "M51.16+0", "M511"};
    const bool prefix[] = {false, true, true, true, false};
    size_t i;

    for (i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        CHECK_INT(tr(MAP_SYS_ICD10, variants[i], MAP_CS_PROCEDURE, 0, 0, 0, m, 8), 1);
        CHECK_STR(m[0].code, "periradicular-injection");
        CHECK_STR(m[0].source_code, "M51.1");
        CHECK(m[0].is_prefix == prefix[i]);
    }
    CHECK_INT(tr(MAP_SYS_ICD10, "M5", MAP_CS_PROCEDURE, 0, 0, 0, m, 8), 0); /* below a category */
    CHECK_INT(tr(MAP_SYS_ICD10, "M54.9", MAP_CS_PROCEDURE, 0, 0, 0, m, 8), 0);
    CHECK_INT(tr(MAP_SYS_ICD10, "M54.5; DROP", MAP_CS_PROCEDURE, 0, 0, 0, m, 8), 0);
    CHECK_INT(tr(MAP_SYS_SNOMED, "2790390", MAP_CS_PROCEDURE, 0, 0, 0, m, 8), 0); /* no prefixes */
}

static void translate_accepts_cim10_and_oid_aliases(void)
{
    struct map_match m[8];

    CHECK_STR(map_system_canonical("https://smt.esante.gouv.fr/terminologie-cim-10"),
              MAP_SYS_ICD10);
    CHECK_STR(map_system_canonical("urn:oid:2.16.840.1.113883.6.3"), MAP_SYS_ICD10);
    CHECK_STR(map_system_canonical("urn:oid:1.2.250.1.213.2.5"), MAP_SYS_CCAM);
    CHECK_STR(map_system_canonical("http://example.org/x"), "http://example.org/x");
    CHECK_INT(
        tr("https://smt.esante.gouv.fr/terminologie-cim-10", "M54.2", MAP_SYS_CCAM, 0, 0, 0, m, 8),
        1);
    CHECK_STR(m[0].code, "LHLH003");
    CHECK(m[0].is_chained);
    CHECK_STR(m[0].via_code, "facet-joint-injection");
    CHECK_INT(tr("urn:oid:2.16.840.1.113883.6.3", "M46.1", MAP_SYS_CPT, 0, 0, 0, m, 8), 1);
    CHECK_STR(m[0].code, "27096");
}

static void translate_applies_depends_on_and_keeps_the_most_specific(void)
{
    struct map_match m[8];

    CHECK_INT(tr(MAP_SYS_ICD10, "M54.3", MAP_CS_PROCEDURE, 0, 0, 0, m, 8), 1);
    CHECK_STR(m[0].code, "epidural-injection");
    CHECK_INT(tr(MAP_SYS_ICD10, "M54.3", MAP_CS_PROCEDURE, 0, MAP_LAT_RIGHT, 0, m, 8), 1);
    CHECK_STR(m[0].code, "periradicular-injection");
    CHECK_INT(tr(MAP_CS_PROCEDURE, "facet-joint-injection", MAP_SYS_CCAM, 0, 0, 0, m, 8), 1);
    CHECK_STR(m[0].code, "LHLH003");
    CHECK_INT(
        tr(MAP_CS_PROCEDURE, "facet-joint-injection", MAP_SYS_CCAM, 0, 0, MAP_GUIDANCE_CT, m, 8),
        1);
    CHECK_STR(m[0].code, "LHLH002");
    CHECK_INT(tr(MAP_CS_PROCEDURE, "facet-joint-injection", MAP_SYS_CPT, 0, 0, 0, m, 8), 0);
    CHECK_INT(
        tr(MAP_CS_PROCEDURE, "facet-joint-injection", MAP_SYS_CPT, MAP_REGION_THORACIC, 0, 0, m, 8),
        1);
    CHECK_STR(m[0].code, "64490");
    CHECK_INT(m[0].equivalence, MAP_EQ_NARROWER);
    CHECK(m[0].comment != NULL);
    CHECK_INT(tr(MAP_CS_PROCEDURE, "epidural-injection", MAP_SYS_CCAM, 0, 0, 0, m, 8), 1);
    CHECK_STR(m[0].code, "AFLB007"); /* CCAM has no guided epidural: the unguided act, inexact */
    CHECK_INT(m[0].equivalence, MAP_EQ_INEXACT);
    CHECK(m[0].comment != NULL);
}

static void translate_without_target_lists_every_map_and_the_codes_behind(void)
{
    struct map_match m[16];
    size_t total = 0, n;
    struct map_query q = {.system = MAP_SYS_ICD10CM,
                          .code = "M54.42",
                          .laterality = MAP_LAT_LEFT,
                          .region = MAP_REGION_LUMBAR};

    n = map_translate(real_set(), &q, m, 16, &total);
    CHECK_INT(n, total);
    CHECK_INT(n, 5); /* laterality (CM row); procedure, CCAM, CPT and region (WHO rows) */
    CHECK_STR(m[0].system, MAP_CS_LATERALITY);
    CHECK_STR(m[0].code, "left");
    CHECK(!m[0].is_prefix);
    CHECK_STR(m[1].code, "periradicular-injection");
    CHECK(m[1].is_prefix);
    CHECK_STR(m[2].code, "AHLH014");
    CHECK_STR(m[3].code, "64483");
    CHECK_STR(m[4].code, "lumbar");
    n = map_translate(real_set(), &q, m, 2, &total);
    CHECK_INT(n, 2);
    CHECK_INT(total, 5);
}

static void translate_print_reads_like_the_command_line(void)
{
    struct gw_buf b;
    struct map_query q = {.system = MAP_SYS_ICD10, .code = "M54.5", .region = MAP_REGION_LUMBAR};

    gw_buf_init(&b, 8192);
    CHECK_INT(map_translate_print(real_set(), &q, &b), 4);
    CHECK(strstr(b.data, "LHLH003") != NULL);
    CHECK(strstr(b.data, "64493") != NULL);
    CHECK(strstr(b.data, "region=lumbar") != NULL);
    gw_buf_cleanup(&b);
}

/* ---------------------------------------------------------------- $translate */

static const char *param_str(json_t *out, const char *name, const char *field)
{
    json_t *p;
    size_t i;

    json_array_foreach (json_object_get(out, "parameter"), i, p)
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return json_string_value(json_object_get(p, field));
    return NULL;
}

static json_t *match_part(json_t *out, size_t which, const char *name)
{
    json_t *p, *part;
    size_t i, j, seen = 0;

    json_array_foreach (json_object_get(out, "parameter"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), "match") != 0 || seen++ != which)
            continue;
        json_array_foreach (json_object_get(p, "part"), j, part)
            if (strcmp(json_string_value(json_object_get(part, "name")), name) == 0)
                return part;
    }
    return NULL;
}

static void translate_parameters_answer_result_match_and_source(void)
{
    json_t *in =
        json_loads("{\"resourceType\":\"Parameters\",\"parameter\":["
                   "{\"name\":\"coding\",\"valueCoding\":{\"system\":\"https://smt.esante.gouv.fr/"
                   "terminologie-cim-10\",\"code\":\"M5116\"}},"
                   "{\"name\":\"targetsystem\",\"valueUri\":\"http://www.ama-assn.org/go/cpt\"},"
                   "{\"name\":\"dependency\",\"part\":[{\"name\":\"element\",\"valueUri\":"
                   "\"ServiceRequest.bodySite\"},"
                   "{\"name\":\"concept\",\"valueCodeableConcept\":{\"coding\":[{\"system\":\"http:"
                   "//snomed.info/sct\",\"code\":\"122496007\"}]}}]}]}",
                   0, NULL);
    json_t *out = NULL, *v;
    struct gw_error err;

    CHECK_INT(map_translate_params(real_set(), in, &out, &err), GW_OK);
    v = json_object_get(json_array_get(json_object_get(out, "parameter"), 0), "valueBoolean");
    CHECK(json_is_true(v));
    CHECK(strstr(param_str(out, "message", "valueString"), "region lumbar") != NULL);
    CHECK_STR(json_string_value(json_object_get(match_part(out, 0, "equivalence"), "valueCode")),
              "narrower");
    CHECK_STR(json_string_value(json_object_get(
                  json_object_get(match_part(out, 0, "concept"), "valueCoding"), "code")),
              "64483");
    CHECK_STR(json_string_value(json_object_get(match_part(out, 0, "source"), "valueUri")),
              MAP_BASE "/ConceptMap/procedure-codes");
    json_decref(out);
    json_decref(in);
}

static void translate_parameters_say_result_false_when_nothing_maps(void)
{
    const char *names[] = {"system", "code", "_format"};
    const char *values[] = {MAP_SYS_ICD10, "M54.9", "json"};
    json_t *in = NULL, *out = NULL;
    struct gw_error err;

    CHECK_INT(map_params_from_query(names, values, 3, &in, &err), GW_OK);
    CHECK_INT(map_translate_params(real_set(), in, &out, &err), GW_OK);
    CHECK(json_is_false(
        json_object_get(json_array_get(json_object_get(out, "parameter"), 0), "valueBoolean")));
    CHECK(strstr(param_str(out, "message", "valueString"), "no mapping") != NULL);
    CHECK_INT(json_array_size(json_object_get(out, "parameter")), 2);
    json_decref(out);
    json_decref(in);
}

static void translate_query_with_region_and_laterality_becomes_dependencies(void)
{
    const char *names[] = {"system", "code", "region", "laterality", "targetsystem"};
    const char *values[] = {MAP_SYS_SNOMED, "23056005", "lumbar", "left", MAP_SYS_CPT};
    json_t *in = NULL, *out = NULL;
    struct gw_error err;

    CHECK_INT(map_params_from_query(names, values, 5, &in, &err), GW_OK);
    CHECK_INT(map_translate_params(real_set(), in, &out, &err), GW_OK);
    CHECK_STR(json_string_value(json_object_get(
                  json_object_get(match_part(out, 0, "concept"), "valueCoding"), "code")),
              "64483");
    json_decref(out);
    json_decref(in);
}

static void translate_parameters_reject_bad_requests_clearly(void)
{
    static const char *const bodies[][2] = {
        {"{\"resourceType\":\"Patient\"}", "Parameters resource"},
        {"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"code\",\"valueCode\":\"M54."
         "5\"}]}",
         "code needs system"},
        {"{\"resourceType\":\"Parameters\",\"parameter\":[]}", "exactly one of"},
        {"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"codez\",\"valueCode\":\"x\"}]"
         "}",
         "\"codez\""},
        {"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"system\",\"valueUri\":\"http:"
         "//snomed.info/"
         "sct\"},{\"name\":\"code\",\"valueCode\":\"1\"},{\"name\":\"reverse\",\"valueBoolean\":"
         "true}]}",
         "reverse"},
        {"{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"system\",\"valueUri\":\"http:"
         "//snomed.info/"
         "sct\"},{\"name\":\"code\",\"valueCode\":\"1\"},{\"name\":\"dependency\",\"part\":[{"
         "\"name\":\"element\",\"valueUri\":\"colour\"}]}]}",
         "colour"},
    };
    const char *names[] = {"system", "colour"};
    const char *values[] = {MAP_SYS_ICD10, "blue"};
    struct gw_error err;
    json_t *in, *out;
    size_t i;

    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        in = json_loads(bodies[i][0], 0, NULL);
        out = NULL;
        CHECK_INT(map_translate_params(real_set(), in, &out, &err), GW_E_INPUT);
        CHECK(out == NULL);
        CHECK(strstr(err.msg, bodies[i][1]) != NULL);
        json_decref(in);
    }
    CHECK_INT(map_params_from_query(names, values, 2, &in, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "colour") != NULL);
}

/* ---------------------------------------------------------------- reading the maps */

static void bundle_and_read_return_copies_of_the_loaded_maps(void)
{
    json_t *b = map_set_bundle(real_set(), "https://h/fhir", NULL), *one;

    CHECK_INT(json_integer_value(json_object_get(b, "total")), 3);
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(b, "entry"), 0), "fullUrl")),
              "https://h/fhir/ConceptMap/indication-procedure");
    json_decref(b);
    b = map_set_bundle(real_set(), "", MAP_BASE "/ConceptMap/procedure-codes");
    CHECK_INT(json_integer_value(json_object_get(b, "total")), 1);
    json_decref(b);
    one = map_set_read(real_set(), "region-laterality");
    CHECK_STR(json_string_value(json_object_get(one, "resourceType")), "ConceptMap");
    json_object_set_new(one, "status", json_string("retired")); /* a copy: the set is untouched */
    json_decref(one);
    one = map_set_read(real_set(), "region-laterality");
    CHECK_STR(json_string_value(json_object_get(one, "status")), "active");
    json_decref(one);
    CHECK(map_set_read(real_set(), "nope") == NULL);
    one = map_set_summary(real_set());
    CHECK_INT(json_array_size(json_object_get(one, "maps")), 3);
    CHECK_STR(json_string_value(json_object_get(one, "rules")), "1.0.0");
    json_decref(one);
}

static void decision_code_fills_service_request_code_with_its_provenance(void)
{
    json_t *sr = json_pack("{s:s, s:[{s:[{s:s, s:s}]}]}", "resourceType", "ServiceRequest",
                           "reasonCode", "coding", "system", MAP_SYS_ICD10, "code", "M54.5");
    struct map_referral ref = {.service_request = sr};
    struct map_decision d;
    struct gw_error err;
    json_t *cc;

    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_OK);
    cc = map_decision_code(&d);
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(cc, "coding"), 0), "code")),
              "LHLH003");
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(cc, "extension"), 0),
                                                "valueCanonical")),
              MAP_BASE "/ConceptMap/indication-procedure|1.0.0");
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(cc, "extension"), 0), "url")),
              MAP_EXT_CHOSEN_BY);
    json_decref(cc);
    map_decision_cleanup(&d);
    json_object_set_new(sr, "resourceType", json_string("Task"));
    CHECK_INT(map_referral_decide(real_set(), &ref, &d, &err), GW_E_INPUT);
    json_decref(sr);
}

/* ---------------------------------------------------------------- loading */

static void load_failure_names_the_file_and_the_line(void)
{
    struct map_set *set = (struct map_set *)1;
    struct gw_error err;

    CHECK_INT(map_set_load(DATA "/broken-json", &set, &err), GW_E_INPUT);
    CHECK(set == NULL);
    CHECK(strstr(err.msg, "b-broken.json") != NULL);
    CHECK(strstr(err.msg, "line 2") != NULL);
}

static void load_failure_names_the_json_path(void)
{
    struct map_set *set;
    struct gw_error err;

    CHECK_INT(map_set_load(DATA "/bad-equivalence", &set, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "map.json") != NULL);
    CHECK(strstr(err.msg, "ConceptMap.group[0].element[1].target[0].equivalence") != NULL);
    CHECK_INT(map_set_load(DATA "/no-such-folder", &set, &err), GW_E_IO);
}

static enum gw_code load_one(const char *text, struct gw_error *err)
{
    struct map_file f = {"m.json", text, strlen(text)};
    struct map_set *set = NULL;
    enum gw_code rc = map_set_load_files(&f, 1, "test", &set, err);

    map_set_unref(set);
    return rc;
}

#define HEAD                                                                                       \
    "{\"resourceType\":\"ConceptMap\",\"id\":\"t\",\"url\":\"urn:t\",\"version\":\"1\","           \
    "\"status\":\"active\","
#define GROUP                                                                                      \
    "\"group\":[{\"source\":\"http://hl7.org/fhir/sid/icd-10\",\"target\":\"http://x/"             \
    "y\",\"element\":[{\"code\":\"M54.5\",\"target\":["

static void load_validates_each_conceptmap_rule(void)
{
    static const char *const bad[][2] = {
        {"{\"resourceType\":\"ValueSet\"}", "not ConceptMap"},
        {"{\"resourceType\":\"ConceptMap\",\"id\":\"t\",\"version\":\"1\",\"status\":\"active\"}",
         "ConceptMap.url is missing"},
        {HEAD "\"group\":[]}", "ConceptMap.group must be a non-empty array"},
        {"{\"resourceType\":\"ConceptMap\",\"id\":\"t "
         "t\",\"url\":\"urn:t\",\"version\":\"1\",\"status\":\"active\",\"group\":[]}",
         "not a FHIR id"},
        {HEAD "\"status\":\"final\"}", "duplicate"},
        {"{\"resourceType\":\"ConceptMap\",\"id\":\"t\",\"url\":\"urn:t\",\"version\":\"1\","
         "\"status\":\"final\",\"group\":[]}",
         "PublicationStatus"},
        {HEAD "\"group\":[{\"source\":\"icd\",\"target\":\"http://x/"
              "y\",\"element\":[{\"code\":\"A\"}]}]}",
         "absolute URIs"},
        {HEAD GROUP "{\"equivalence\":\"equivalent\"}]}]}]}", "target[0].code is missing"},
        {HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"narrower\"}]}]}]}", "cmd-1"},
        {HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"equivalent\",\"dependsOn\":[{\"property\":"
                    "\"urn:colour\",\"value\":\"red\"}]}]}]}]}",
         "not a property we know"},
        {HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"equivalent\",\"dependsOn\":[{\"property\":"
                    "\"" MAP_PROP_REGION "\",\"value\":\"neck\"}]}]}]}]}",
         "dependsOn[0].value"},
        {HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"equivalent\",\"dependsOn\":[{\"property\":"
                    "\"" MAP_PROP_REGION
                    "\",\"system\":\"urn:other\",\"value\":\"lumbar\"}]}]}]}]}",
         "dependsOn[0].system"},
        {HEAD "\"group\":[{\"source\":\"http://hl7.org/fhir/sid/icd-10\",\"target\":\"http://x/"
              "y\",\"element\":[{\"code\":\"M54.5!\"}]}]}",
         "not a valid code"},
    };
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(load_one(bad[i][0], &err), i == 4 ? GW_E_INPUT : GW_E_INPUT);
        if (!strstr(err.msg, bad[i][1]))
            fprintf(stderr, "    case %zu: %s\n", i, err.msg);
        CHECK(strstr(err.msg, bad[i][1]) != NULL);
    }
    CHECK_INT(load_one(HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"equivalent\"}]}]}]}", &err),
              GW_OK);
}

static void load_rejects_broken_rules_and_indication_files(void)
{
    static const char *const rules[][2] = {
        {"{\"version\":\"1\",\"rules\":[{\"code\":\"x\",\"display\":\"X\",\"message\":\"m\","
         "\"kind\":\"onset\",\"minDays\":0}]}",
         "minDays"},
        {"{\"version\":\"1\",\"rules\":[{\"code\":\"x\",\"display\":\"X\",\"message\":\"m\"}]}",
         "needs conditions"},
        {"{\"version\":\"1\",\"rules\":[{\"code\":\"x\",\"display\":\"X\",\"message\":\"m\","
         "\"conditions\":[{\"system\":\"http://hl7.org/fhir/sid/icd-10\"}]}]}",
         "needs codes or prefixes"},
        {"{\"version\":\"1\",\"rules\":[{\"code\":\"x\",\"display\":\"X\",\"message\":\"m\","
         "\"medications\":[{\"system\":\"http://www.whocc.no/atc\",\"codes\":[\"B01 A\"]}]}]}",
         "medications[0].codes[0]"},
    };
    const char *map = HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"equivalent\"}]}]}]}";
    struct map_file f[2] = {{"m.json", map, strlen(map)}, {"triage-rules.json", NULL, 0}};
    struct map_set *set;
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        f[1].data = rules[i][0];
        f[1].len = strlen(rules[i][0]);
        CHECK_INT(map_set_load_files(f, 2, "t", &set, &err), GW_E_INPUT);
        CHECK(strstr(err.msg, "triage-rules.json") != NULL);
        CHECK(strstr(err.msg, rules[i][1]) != NULL);
    }
    f[1].name = "indications.json";
    f[1].data = "{\"version\":\"1\",\"indications\":[{\"id\":\"a\",\"label\":\"A\"}]}";
    f[1].len = strlen(f[1].data);
    CHECK_INT(map_set_load_files(f, 2, "t", &set, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "indications[0].codings") != NULL);
}

/* ---------------------------------------------------------------- reload */

static int copy_file(const char *from, const char *to)
{
    char buf[65536];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    size_t n;
    int rc = in && out ? 0 : -1;

    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
    if (in)
        fclose(in);
    if (out && fclose(out))
        rc = -1;
    return rc;
}

static const char *const real_files[] = {"indication-procedure.json", "procedure-codes.json",
                                         "region-laterality.json", "triage-rules.json",
                                         "indications.json"};

static void reload_with_a_broken_file_keeps_the_previous_maps(void)
{
    char dir[] = "/tmp/mapping-test-XXXXXX", a[256], b[256];
    struct map_holder *h = NULL;
    struct map_set *before, *during;
    struct map_match m[4];
    struct map_query q = {.system = MAP_SYS_ICD10, .code = "M54.5", .target_system = MAP_SYS_CCAM};
    struct gw_error err;
    FILE *fp;
    size_t i;

    CHECK(mkdtemp(dir) != NULL);
    for (i = 0; i < 5; i++) {
        snprintf(a, sizeof a, MAPPINGS "/%s", real_files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, real_files[i]);
        CHECK_INT(copy_file(a, b), 0);
    }
    CHECK_INT(map_holder_create(dir, &h, &err), GW_OK);
    before = map_holder_get(h);
    CHECK(!map_holder_error(h, NULL));
    snprintf(b, sizeof b, "%s/zz-new.json", dir);
    fp = fopen(b, "w");
    fputs("{\"resourceType\":\"ConceptMap\",\"id\":\"zz\",\"url\":\"urn:zz\",\"version\":\"1\"",
          fp);
    fclose(fp);
    CHECK_INT(map_holder_reload(h, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "zz-new.json") != NULL);
    CHECK(map_holder_error(h, &err));
    CHECK(strstr(err.msg, "zz-new.json") != NULL);
    during = map_holder_get(h);
    CHECK(during == before); /* the previous set is still in force */
    CHECK_INT(map_translate(during, &q, m, 4, NULL), 1);
    CHECK_STR(m[0].code, "LHLH003");
    map_set_unref(during);
    unlink(b);
    CHECK_INT(map_holder_reload(h, &err), GW_OK);
    CHECK(!map_holder_error(h, NULL));
    during = map_holder_get(h);
    CHECK(during != before);
    CHECK_INT(map_translate(before, &q, m, 4, NULL), 1); /* the old set lives while referenced */
    map_set_unref(during);
    map_set_unref(before);
    map_holder_destroy(h);
    for (i = 0; i < 5; i++) {
        snprintf(b, sizeof b, "%s/%s", dir, real_files[i]);
        unlink(b);
    }
    rmdir(dir);
}

/* ---------------------------------------------------------------- check */

static size_t count_kind(const struct map_report *r, const char *kind, enum map_severity sev)
{
    size_t i, n = 0;

    for (i = 0; i < r->n_issues; i++)
        n += strcmp(r->issues[i].kind, kind) == 0 && r->issues[i].severity == sev;
    return n;
}

static void check_passes_the_real_mappings_with_warnings_only(void)
{
    struct map_report r;
    struct gw_error err;
    struct gw_buf b;

    CHECK_INT(map_check_dir(MAPPINGS, &r, &err), GW_OK);
    CHECK_INT(r.n_errors, 0);
    CHECK_INT(map_report_exit_status(&r), 0);
    CHECK_INT(r.n_indications, 12);
    CHECK_INT(r.n_indications_mapped, 12);
    CHECK_INT(count_kind(&r, "no-code", MAP_SEV_WARNING), 4); /* SNOMED CT for each procedure */
    CHECK_INT(count_kind(&r, "inexact", MAP_SEV_WARNING), 1); /* the epidural's CCAM AFLB007 */
    CHECK_INT(r.n_warnings, 5);
    CHECK(r.n_synonyms >= 20 && r.n_phrases >= 150);
    gw_buf_init(&b, 1 << 20);
    map_report_print(&r, &b);
    CHECK(strstr(b.data, "epidural-injection is billed as CCAM AFLB007, an inexact code") != NULL);
    CHECK(strstr(b.data, "12/12 listed indications read from words") != NULL);
    CHECK(strstr(b.data, "sciatica") != NULL);
    CHECK(strstr(b.data, "12/12 listed indications mapped: 0 errors") != NULL);
    gw_buf_cleanup(&b);
    map_report_cleanup(&r);
}

static void check_reports_unknown_systems_duplicates_conflicts_and_gaps(void)
{
    struct map_report r;
    struct gw_error err;
    json_t *j;

    CHECK_INT(map_check_dir(DATA "/check-broken", &r, &err), GW_OK);
    CHECK_INT(count_kind(&r, "unknown-system", MAP_SEV_ERROR), 1);
    CHECK_INT(count_kind(&r, "duplicate", MAP_SEV_ERROR), 1); /* M54.2 and M542 */
    CHECK_INT(count_kind(&r, "conflict", MAP_SEV_ERROR), 3);  /* M54.5 in a; M54.2 a/b twice */
    CHECK_INT(count_kind(&r, "unmapped", MAP_SEV_ERROR), 1);  /* sciatica M54.3 */
    CHECK_INT(count_kind(&r, "no-code", MAP_SEV_WARNING), 1); /* facet: no CCAM */
    CHECK_INT(r.n_indications_mapped, 1);
    CHECK_INT(map_report_exit_status(&r), 1);
    j = map_report_json(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "errors")), (json_int_t)r.n_errors);
    json_decref(j);
    map_report_cleanup(&r);
    CHECK_INT(map_check_dir(DATA "/broken-json", &r, &err), GW_OK);
    CHECK_INT(count_kind(&r, "load", MAP_SEV_ERROR), 1);
    CHECK(strstr(r.issues[0].message, "b-broken.json") != NULL);
    map_report_cleanup(&r);
}

static void check_reports_words_that_map_nothing_conflict_or_start_negated(void)
{
    struct map_report r;
    struct gw_error err;

    CHECK_INT(map_check_dir(DATA "/check-synonyms", &r, &err), GW_OK);
    CHECK_INT(count_kind(&r, "unmapped", MAP_SEV_ERROR), 2);    /* J45.9, byRegion M54.2 */
    CHECK_INT(count_kind(&r, "conflict", MAP_SEV_ERROR), 1);    /* "Sciatique" as M54.5 */
    CHECK_INT(count_kind(&r, "duplicate", MAP_SEV_WARNING), 1); /* "sciatique" again */
    CHECK_INT(count_kind(&r, "negation", MAP_SEV_WARNING), 1);  /* "pas de lombalgie" */
    CHECK_INT(r.n_synonyms, 4);
    CHECK_INT(map_report_exit_status(&r), 1);
    map_report_cleanup(&r);
}

static void load_rejects_a_broken_synonym_table_naming_the_path(void)
{
    static const char *const bad[][2] = {
        {"{\"version\":\"1\"}", "negations must be an object"},
        {"{\"version\":\"1\",\"negations\":{\"before\":[\"pas\"]},\"sides\":{\"left\":[\"g\"],"
         "\"right\":[\"d\"]}}",
         "sides.bilateral"},
        {"{\"version\":\"1\",\"negations\":{\"before\":[\"...\"]}}", "has no letter"},
    };
    const char *map = HEAD GROUP "{\"code\":\"x\",\"equivalence\":\"equivalent\"}]}]}]}";
    struct map_file f[2] = {{"m.json", map, strlen(map)}, {"indication-synonyms.json", NULL, 0}};
    struct map_set *set;
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f[1].data = bad[i][0];
        f[1].len = strlen(bad[i][0]);
        CHECK_INT(map_set_load_files(f, 2, "t", &set, &err), GW_E_INPUT);
        CHECK(strstr(err.msg, "indication-synonyms.json") != NULL);
        if (!strstr(err.msg, bad[i][1]))
            fprintf(stderr, "    case %zu: %s\n", i, err.msg);
        CHECK(strstr(err.msg, bad[i][1]) != NULL);
    }
}

int main(void)
{
    json_object_seed(0);
    RUN(referral_cases_from_the_table_decide_as_expected);
    RUN(indications_in_words_from_the_table_read_as_expected);
    RUN(an_indication_read_from_words_is_marked_on_the_referral);
    RUN(a_duration_in_words_feeds_the_six_week_rule_unless_a_condition_dates_it);
    RUN(the_practice_chooses_a_procedure_by_its_code_or_a_billing_code);
    RUN(translate_normalises_dots_case_and_prefixes);
    RUN(translate_accepts_cim10_and_oid_aliases);
    RUN(translate_applies_depends_on_and_keeps_the_most_specific);
    RUN(translate_without_target_lists_every_map_and_the_codes_behind);
    RUN(translate_print_reads_like_the_command_line);
    RUN(translate_parameters_answer_result_match_and_source);
    RUN(translate_parameters_say_result_false_when_nothing_maps);
    RUN(translate_query_with_region_and_laterality_becomes_dependencies);
    RUN(translate_parameters_reject_bad_requests_clearly);
    RUN(bundle_and_read_return_copies_of_the_loaded_maps);
    RUN(decision_code_fills_service_request_code_with_its_provenance);
    RUN(load_failure_names_the_file_and_the_line);
    RUN(load_failure_names_the_json_path);
    RUN(load_validates_each_conceptmap_rule);
    RUN(load_rejects_broken_rules_and_indication_files);
    RUN(reload_with_a_broken_file_keeps_the_previous_maps);
    RUN(check_passes_the_real_mappings_with_warnings_only);
    RUN(check_reports_unknown_systems_duplicates_conflicts_and_gaps);
    RUN(check_reports_words_that_map_nothing_conflict_or_start_negated);
    RUN(load_rejects_a_broken_synonym_table_naming_the_path);
    map_set_unref(real_set());
    return check_summary();
}
