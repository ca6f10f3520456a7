/* referral.c -- the referral profile (DESIGN §4) on a ServiceRequest valid against R4.
 *
 * Promises: every departure is an issue (not only the first) at the element it is about;
 * elements of referenced resources are named through resolve() ("ServiceRequest.subject
 * .resolve().birthDate"). "#id" references are resolved here in the ServiceRequest's
 * contained resources; all others through the caller's callback, whose results are only
 * borrowed for the duration of the call.
 */
#include "fhir/fhir_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct rctx {
    json_t *sr;
    fhir_resolve_fn resolve;
    void *ctx;
    json_t *outcome;
    struct fhir_path path;
    int n_errors;
    bool nomem;
};

static void rissue(struct rctx *r, enum fhir_severity sev, const char *code, const char *at,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* An issue at the ServiceRequest's path plus at (".subject.resolve().birthDate"). */
static void rissue(struct rctx *r, enum fhir_severity sev, const char *code, const char *at,
                   const char *fmt, ...)
{
    struct gw_buf b;
    size_t mark = r->path.buf.len;
    va_list ap;

    if (sev <= FHIR_ERROR)
        r->n_errors++;
    gw_buf_init(&b, 4096);
    va_start(ap, fmt);
    gw_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (at)
        gw_buf_puts(&r->path.buf, at);
    if (b.err == GW_E_NOMEM ||
        fhir_outcome_add(r->outcome, sev, code, b.data ? b.data : "", fhir_path_text(&r->path)))
        r->nomem = true;
    fhir_path_pop(&r->path, mark);
    gw_buf_cleanup(&b);
}

/* The resource reference (a Reference object) designates: borrowed, or NULL. */
static json_t *resolve(struct rctx *r, json_t *ref)
{
    const char *text = json_string_value(json_object_get(ref, "reference"));
    json_t *res;
    size_t i;

    if (!text)
        return NULL;
    if (text[0] == '#') {
        json_array_foreach (json_object_get(r->sr, "contained"), i, res) {
            const char *id = json_string_value(json_object_get(res, "id"));

            if (id && strcmp(id, text + 1) == 0)
                return res;
        }
        return NULL;
    }
    return r->resolve ? r->resolve(r->ctx, text) : NULL;
}

static bool is_type(json_t *res, const char *type)
{
    const char *rt = fhir_resource_type(res);

    return rt && strcmp(rt, type) == 0;
}

/* A CodeableConcept with at least one coding that has a system and a code. */
static bool is_coded(json_t *cc)
{
    json_t *coding;
    size_t i;

    json_array_foreach (json_object_get(cc, "coding"), i, coding) {
        if (json_is_string(json_object_get(coding, "system")) &&
            json_is_string(json_object_get(coding, "code")))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- INS-NIR */

/* The French NIR: 13 characters (Corsica's departments 2A and 2B read as 19 and 18) and a
 * key of 2 digits, 97 - (number mod 97). */
static bool nir_valid(const char *s)
{
    uint64_t n = 0;
    long key;
    int i;

    if (strlen(s) != 15)
        return false;
    for (i = 0; i < 13; i++) {
        char c = s[i];

        if (i == 6 && s[5] == '2' && (c == 'A' || c == 'B')) {
            n = n * 10 + 9;
            n -= c == 'A' ? 10 : 11; /* "29" becomes 19 (2A) or 18 (2B) */
            continue;
        }
        if (c < '0' || c > '9')
            return false;
        n = n * 10 + (uint64_t)(c - '0');
    }
    if (s[13] < '0' || s[13] > '9' || s[14] < '0' || s[14] > '9')
        return false;
    return gw_parse_long(s + 13, 1, 97, &key) && key == (long)(97 - n % 97);
}

static void check_ins(struct rctx *r, json_t *patient)
{
    json_t *ident;
    size_t i;

    json_array_foreach (json_object_get(patient, "identifier"), i, ident) {
        const char *sys = json_string_value(json_object_get(ident, "system"));
        const char *val = json_string_value(json_object_get(ident, "value"));

        if (!sys || strcmp(sys, FHIR_INS_NIR_SYSTEM) != 0)
            continue;
        if (!val || !nir_valid(val))
            rissue(r, FHIR_WARNING, "value", ".subject.resolve().identifier",
                   "the INS-NIR '%.20s' is not 13 digits and a valid 2-digit key",
                   val ? val : "(no value)");
        return;
    }
    rissue(r, FHIR_WARNING, "required", ".subject.resolve().identifier",
           "the patient has no INS-NIR identifier (system %s): identity matching at the "
           "practice will be manual",
           FHIR_INS_NIR_SYSTEM);
}

/* ---------------------------------------------------------------- the parts */

static void check_codes(struct rctx *r)
{
    const char *status = json_string_value(json_object_get(r->sr, "status"));
    const char *intent = json_string_value(json_object_get(r->sr, "intent"));

    if (!status)
        rissue(r, FHIR_ERROR, "required", ".status", "a referral has a status (active)");
    else if (strcmp(status, "active") != 0)
        rissue(r, FHIR_ERROR, "code-invalid", ".status",
               "a referral's status is 'active', not '%.40s'", status);
    if (!intent)
        rissue(r, FHIR_ERROR, "required", ".intent",
               "a referral has an intent (order or original-order)");
    else if (strcmp(intent, "order") != 0 && strcmp(intent, "original-order") != 0)
        rissue(r, FHIR_ERROR, "code-invalid", ".intent",
               "a referral's intent is 'order' or 'original-order', not '%.40s'", intent);
    if (!json_object_get(r->sr, "authoredOn"))
        rissue(r, FHIR_ERROR, "required", ".authoredOn",
               "a referral says when it was written (authoredOn)");
}

static void check_subject(struct rctx *r)
{
    json_t *ref = json_object_get(r->sr, "subject"), *p, *name;
    const char *text = json_string_value(json_object_get(ref, "reference"));

    if (!ref) {
        rissue(r, FHIR_ERROR, "required", ".subject", "a referral names its patient (subject)");
        return;
    }
    p = resolve(r, ref);
    if (!p) {
        rissue(r, FHIR_ERROR, "not-found", ".subject",
               "the subject '%.80s' cannot be found (not contained, not in the Bundle, not "
               "stored)",
               text ? text : "(no reference)");
        return;
    }
    if (!is_type(p, "Patient")) {
        rissue(r, FHIR_ERROR, "value", ".subject", "a referral's subject is a Patient, not a %.40s",
               fhir_resource_type(p) ? fhir_resource_type(p) : "resource without type");
        return;
    }
    name = json_array_get(json_object_get(p, "name"), 0);
    if (!json_object_get(name, "family") && !json_object_get(name, "given") &&
        !json_object_get(name, "text"))
        rissue(r, FHIR_ERROR, "required", ".subject.resolve().name",
               "the patient has no name (family, given or text)");
    if (!json_object_get(p, "birthDate"))
        rissue(r, FHIR_ERROR, "required", ".subject.resolve().birthDate",
               "the patient has no birthDate");
    if (!json_object_get(p, "gender"))
        rissue(r, FHIR_ERROR, "required", ".subject.resolve().gender", "the patient has no gender");
    check_ins(r, p);
}

static void check_requester(struct rctx *r)
{
    json_t *ref = json_object_get(r->sr, "requester"), *res;
    const char *text = json_string_value(json_object_get(ref, "reference"));

    if (!ref) {
        rissue(r, FHIR_ERROR, "required", ".requester",
               "a referral names its requester (a Practitioner or PractitionerRole)");
        return;
    }
    res = resolve(r, ref);
    if (!res)
        rissue(r, FHIR_ERROR, "not-found", ".requester",
               "the requester '%.80s' cannot be found (not contained, not in the Bundle, not "
               "stored)",
               text ? text : "(no reference)");
    else if (!is_type(res, "Practitioner") && !is_type(res, "PractitionerRole"))
        rissue(r, FHIR_ERROR, "value", ".requester",
               "a referral's requester is a Practitioner or a PractitionerRole, not a %.40s",
               fhir_resource_type(res) ? fhir_resource_type(res) : "resource without type");
}

/* A string with a letter or digit in it: words a person wrote. */
static bool has_words(json_t *s)
{
    const char *p = json_string_value(s);

    for (; p && *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            (unsigned char)*p >= 0x80)
            return true;
    return false;
}

/* An indication in words: reasonCode[].text or note[].text of the referral. */
static bool written(json_t *sr)
{
    json_t *v;
    size_t i;

    json_array_foreach (json_object_get(sr, "reasonCode"), i, v)
        if (has_words(json_object_get(v, "text")))
            return true;
    json_array_foreach (json_object_get(sr, "note"), i, v)
        if (has_words(json_object_get(v, "text")))
            return true;
    return false;
}

/* The profile asks for an indication coded (a reasonCode coding, a Condition with one) or
 * written (reasonCode.text, note.text, a Condition's code.text): the mapping reads words. */
static void check_indication(struct rctx *r)
{
    json_t *cc, *ref, *res;
    bool coded = false, in_words = written(r->sr);
    size_t i;
    char at[64];

    json_array_foreach (json_object_get(r->sr, "reasonCode"), i, cc)
        coded = coded || is_coded(cc);
    json_array_foreach (json_object_get(r->sr, "reasonReference"), i, ref) {
        res = resolve(r, ref);
        snprintf(at, sizeof at, ".reasonReference[%zu]", i);
        if (!res)
            rissue(r, FHIR_WARNING, "not-found", at, "the indication '%.80s' cannot be found",
                   json_string_value(json_object_get(ref, "reference"))
                       ? json_string_value(json_object_get(ref, "reference"))
                       : "(no reference)");
        else if (is_type(res, "Condition") && is_coded(json_object_get(res, "code")))
            coded = true;
        else if (is_type(res, "Condition") &&
                 has_words(json_object_get(json_object_get(res, "code"), "text")))
            in_words = true;
    }
    if (!coded && !in_words)
        rissue(r, FHIR_ERROR, "required", ".reasonCode",
               "a referral needs an indication, coded or in words: a reasonCode with a coding "
               "(system and code, e.g. ICD-10 or SNOMED CT) or a text, a note, or a "
               "reasonReference to a Condition with a code or a code.text");
}

int fhir_validate_referral(json_t *service_request, const char *path, fhir_resolve_fn resolve_fn,
                           void *ctx, json_t *outcome)
{
    struct rctx r = {service_request, resolve_fn, ctx, outcome, {{0}}, 0, false};

    fhir_path_init(&r.path, path ? path : "ServiceRequest");
    if (!is_type(service_request, "ServiceRequest")) {
        rissue(&r, FHIR_ERROR, "not-supported", NULL, "a referral is a ServiceRequest");
    } else {
        check_codes(&r);
        check_subject(&r);
        check_requester(&r);
        check_indication(&r);
    }
    fhir_path_cleanup(&r.path);
    return r.nomem ? -1 : r.n_errors;
}
