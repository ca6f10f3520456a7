/* referral.c -- what the maps decide for one referral: the indication that chooses the
 * procedure, its region and laterality, the CCAM / CPT / SNOMED CT codes, whether the GP's own
 * ServiceRequest.code agrees, and (through triage.c) the practice's flags.
 *
 * Region and laterality come from ServiceRequest.bodySite first: every coding of every
 * bodySite is translated to MAP_CS_REGION and MAP_CS_LATERALITY (so a laterality qualifier may
 * sit in the same CodeableConcept or in another bodySite), and a SNOMED CT post-coordinated
 * code "<structure>:272741003=<side>" gives both. Without them, the indication codes are
 * translated the same way (M54.2 is cervical, ICD-10-CM M54.32 is left).
 *
 * Promises: an unmapped or uncoded indication is a decision (is_unmapped + warning), never an
 * error; every string in a decision is the decision's own copy.
 */
#include "mapping/mapping_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPR_MAX            128
#define MATCH_MAX           32
#define SCT_LATERALITY_ATTR "272741003" /* SNOMED CT |Laterality| attribute */

struct coded {
    const char *system, *code, *display;
    char expr[EXPR_MAX];
};

struct coded_list {
    struct coded *items;
    size_t n, cap;
};

const char *map_json_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

int map_decision_warn(struct map_decision *d, const char *fmt, ...)
{
    char buf[MAP_TEXT_MAX];
    char **grown, *copy;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= sizeof buf) /* long lists of codes: cut, and say so */
        memcpy(buf + sizeof buf - 4, "...", 4);
    grown = realloc(d->warnings, (d->n_warnings + 1) * sizeof *grown);
    if (!grown)
        return -1;
    d->warnings = grown;
    if (!(copy = gw_strdup(buf)))
        return -1;
    d->warnings[d->n_warnings++] = copy;
    return 0;
}

static int coded_add(struct coded_list *l, json_t *coding, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int coded_add(struct coded_list *l, json_t *coding, const char *fmt, ...)
{
    struct coded *c;
    va_list ap;

    if (!map_json_str(coding, "system") || !map_json_str(coding, "code"))
        return 0;
    c = gw_grow(l->items, &l->cap, l->n, sizeof *c, 8);
    if (!c)
        return -1;
    l->items = c;
    c = &l->items[l->n++];
    c->system = map_json_str(coding, "system");
    c->code = map_json_str(coding, "code");
    c->display = map_json_str(coding, "display");
    va_start(ap, fmt);
    vsnprintf(c->expr, sizeof c->expr, fmt, ap);
    va_end(ap);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? gw_strdup(s) : NULL;
}

/* Copies (system, code, display) into c; false on OOM. */
static bool coding_set(struct map_coding *c, const char *system, const char *code,
                       const char *display)
{
    c->system = dup_or_null(system);
    c->code = dup_or_null(code);
    c->display = dup_or_null(display);
    return (!system || c->system) && (!code || c->code) && (!display || c->display);
}

static bool status_is(json_t *res, const char *field, const char *const *bad)
{
    json_t *v = json_object_get(res, field);
    const char *code = json_string_value(v);
    json_t *coding;
    size_t i, k;

    if (!code && json_is_object(v)) { /* CodeableConcept: any coding */
        json_array_foreach (json_object_get(v, "coding"), i, coding) {
            for (k = 0; bad[k]; k++)
                if (map_json_str(coding, "code") &&
                    strcmp(map_json_str(coding, "code"), bad[k]) == 0)
                    return true;
        }
        return false;
    }
    for (k = 0; code && bad[k]; k++)
        if (strcmp(code, bad[k]) == 0)
            return true;
    return false;
}

/* A Condition we should not read: entered in error or refuted. */
static bool condition_void(json_t *cond)
{
    static const char *const bad[] = {"refuted", "entered-in-error", NULL};

    return status_is(cond, "verificationStatus", bad);
}

/* ---------------------------------------------------------------- region and laterality */

static int enum_of(const struct map_set *set, const char *system, const char *code,
                   const char *target)
{
    struct map_query q = {.system = system, .code = code, .target_system = target};
    struct map_match m[4];
    size_t n = map_translate(set, &q, m, 4, NULL), i;
    enum map_region r;
    enum map_laterality l;

    for (i = 0; i < n; i++) {
        if (!m[i].code || m[i].equivalence == MAP_EQ_UNMATCHED ||
            m[i].equivalence == MAP_EQ_DISJOINT)
            continue;
        if (strcmp(target, MAP_CS_REGION) == 0 && map_region_parse(m[i].code, &r))
            return (int)r;
        if (strcmp(target, MAP_CS_LATERALITY) == 0 && map_laterality_parse(m[i].code, &l))
            return (int)l;
    }
    return 0;
}

/* "122496007:272741003=7771000" (also with braces or spaces): focus and laterality codes. */
static void split_postcoordinated(const char *code, char *focus, char *side, size_t cap)
{
    const char *colon = strchr(code, ':'), *attr, *p;
    size_t n;

    focus[0] = side[0] = '\0';
    if (!colon)
        return;
    for (n = 0, p = code; p < colon && n + 1 < cap; p++)
        if (*p >= '0' && *p <= '9')
            focus[n++] = *p;
    focus[n] = '\0';
    attr = strstr(colon, SCT_LATERALITY_ATTR);
    if (!attr || !(p = strchr(attr, '=')))
        return;
    for (n = 0, p++; *p && n + 1 < cap; p++) {
        if (*p >= '0' && *p <= '9')
            side[n++] = *p;
        else if (n)
            break;
    }
    side[n] = '\0';
}

static void site_from(const struct map_set *set, const struct coded *c, struct map_decision *d,
                      const char **region_expr, const char **lat_expr)
{
    char focus[MAP_MAX_CODE + 1], side[MAP_MAX_CODE + 1];
    const char *rcode = c->code, *lcode = c->code;
    int v;

    if (strcmp(map_system_canonical(c->system), MAP_SYS_SNOMED) == 0 && strchr(c->code, ':')) {
        split_postcoordinated(c->code, focus, side, sizeof focus);
        rcode = focus[0] ? focus : NULL;
        lcode = side[0] ? side : NULL;
    }
    if (!d->region && rcode && (v = enum_of(set, c->system, rcode, MAP_CS_REGION))) {
        d->region = (enum map_region)v;
        *region_expr = c->expr;
    }
    if (!d->laterality && lcode && (v = enum_of(set, c->system, lcode, MAP_CS_LATERALITY))) {
        d->laterality = (enum map_laterality)v;
        *lat_expr = c->expr;
    }
}

static int collect_body_sites(json_t *sr, struct coded_list *l)
{
    json_t *cc, *coding;
    size_t i, j;

    json_array_foreach (json_object_get(sr, "bodySite"), i, cc) {
        json_array_foreach (json_object_get(cc, "coding"), j, coding) {
            if (coded_add(l, coding, "ServiceRequest.bodySite[%zu].coding[%zu]", i, j))
                return -1;
        }
    }
    return 0;
}

static int collect_indications(const struct map_referral *ref, struct coded_list *l)
{
    json_t *cc, *coding;
    size_t i, j;

    json_array_foreach (json_object_get(ref->service_request, "reasonCode"), i, cc) {
        json_array_foreach (json_object_get(cc, "coding"), j, coding) {
            if (coded_add(l, coding, "ServiceRequest.reasonCode[%zu].coding[%zu]", i, j))
                return -1;
        }
    }
    for (i = 0; i < ref->n_conditions; i++) {
        if (condition_void(ref->conditions[i]))
            continue;
        json_array_foreach (json_object_get(json_object_get(ref->conditions[i], "code"), "coding"),
                            j, coding) {
            if (coded_add(l, coding, "Condition[%zu].code.coding[%zu]", i, j))
                return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- procedure */

static bool usable(const struct map_match *m)
{
    return m->code && m->equivalence != MAP_EQ_UNMATCHED && m->equivalence != MAP_EQ_DISJOINT;
}

static char *url_version(const struct map_match *m)
{
    return map_strf("%s|%s", m->map_url, m->map_version);
}

/* The first usable code of the chosen procedure in system. */
static enum gw_code procedure_code(const struct map_set *set, struct map_decision *d,
                                   const char *system, struct map_coding *out)
{
    struct map_query q = {.system = MAP_CS_PROCEDURE,
                          .code = d->procedure.code,
                          .target_system = system,
                          .region = d->region,
                          .laterality = d->laterality};
    struct map_match m[MATCH_MAX];
    size_t n = map_translate(set, &q, m, MATCH_MAX, NULL), i;

    for (i = 0; i < n; i++) {
        if (!usable(&m[i]))
            continue;
        if (!coding_set(out, m[i].system, m[i].code, m[i].display) ||
            (!d->codes_by && !(d->codes_by = url_version(&m[i]))))
            return GW_E_NOMEM;
        return GW_OK;
    }
    return GW_OK;
}

static enum gw_code choose(const struct map_set *set, const struct coded_list *ind,
                           struct map_decision *d)
{
    struct map_match m[MATCH_MAX];
    size_t i, j, n;

    for (i = 0; i < ind->n; i++) {
        struct map_query q = {.system = ind->items[i].system,
                              .code = ind->items[i].code,
                              .target_system = MAP_CS_PROCEDURE,
                              .region = d->region,
                              .laterality = d->laterality};

        n = map_translate(set, &q, m, MATCH_MAX, NULL);
        for (j = 0; j < n; j++) {
            if (!usable(&m[j]))
                continue;
            if (!coding_set(&d->indication, map_system_canonical(ind->items[i].system),
                            ind->items[i].code, ind->items[i].display) ||
                !coding_set(&d->procedure, m[j].system, m[j].code, m[j].display) ||
                !(d->indication_expression = gw_strdup(ind->items[i].expr)) ||
                !(d->chosen_by = url_version(&m[j])))
                return GW_E_NOMEM;
            return GW_OK;
        }
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- the GP's code */

/* True when (system, code) is the chosen procedure or one of its codes in any variant. */
static bool code_allowed(const struct map_set *set, const struct map_decision *d,
                         const char *system, const char *code)
{
    char key[MAP_MAX_CODE + 1], want[MAP_MAX_CODE + 1];
    size_t lo, hi, i, k;

    if (strcmp(system, MAP_CS_PROCEDURE) == 0)
        return strcmp(code, d->procedure.code) == 0;
    if (map_code_key(system, code, want, sizeof want) < 0 ||
        map_code_key(MAP_CS_PROCEDURE, d->procedure.code, key, sizeof key) < 0)
        return false;
    map_index_range(set, MAP_CS_PROCEDURE, key, &lo, &hi);
    for (i = lo; i < hi; i++) {
        const struct map_element *e = set->index[i].el;

        if (strcmp(e->group->target, system) != 0)
            continue;
        for (k = 0; k < e->n_targets; k++) {
            char have[MAP_MAX_CODE + 1];

            if (e->targets[k].code &&
                map_code_key(system, e->targets[k].code, have, sizeof have) > 0 &&
                strcmp(have, want) == 0)
                return true;
        }
    }
    return false;
}

static bool comparable(const char *system)
{
    return strcmp(system, MAP_SYS_CCAM) == 0 || strcmp(system, MAP_SYS_CPT) == 0 ||
           strcmp(system, MAP_SYS_SNOMED) == 0 || strcmp(system, MAP_CS_PROCEDURE) == 0;
}

static enum gw_code check_gp_code(const struct map_set *set, json_t *sr, struct map_decision *d)
{
    json_t *codings = json_object_get(json_object_get(sr, "code"), "coding"), *c;
    const char *first_system = NULL, *first_code = NULL;
    size_t i, first = 0;

    if (json_array_size(codings) == 0 && !map_json_str(json_object_get(sr, "code"), "text")) {
        d->gp_code = MAP_GP_ABSENT;
        return GW_OK;
    }
    d->gp_code = MAP_GP_UNCHECKED;
    if (d->is_unmapped)
        return GW_OK;
    json_array_foreach (codings, i, c) {
        const char *system = map_system_canonical(map_json_str(c, "system"));
        const char *code = map_json_str(c, "code");

        if (!system || !code || !comparable(system))
            continue;
        if (code_allowed(set, d, system, code)) {
            d->gp_code = MAP_GP_AGREES;
            return GW_OK;
        }
        if (!first_system) {
            first_system = system;
            first_code = code;
            first = i;
        }
    }
    if (!first_system)
        return GW_OK;
    d->gp_code = MAP_GP_DIFFERS;
    return map_decision_warn(d,
                             "ServiceRequest.code.coding[%zu] (%s %s) differs from the map's "
                             "procedure %s (%s %s, %s from %s %s): the GP's code is kept",
                             first, map_system_name(first_system), first_code, d->procedure.code,
                             d->ccam.code ? "CCAM" : "-", d->ccam.code ? d->ccam.code : "",
                             d->indication_expression, map_system_name(d->indication.system),
                             d->indication.code)
               ? GW_E_NOMEM
               : GW_OK;
}

/* ---------------------------------------------------------------- decide */

static enum gw_code decide_site(const struct map_set *set, const struct map_referral *ref,
                                const struct coded_list *ind, struct map_decision *d)
{
    struct coded_list sites = {0};
    const char *rexpr = NULL, *lexpr = NULL;
    size_t i;

    if (collect_body_sites(ref->service_request, &sites)) {
        free(sites.items);
        return GW_E_NOMEM;
    }
    for (i = 0; i < sites.n; i++)
        site_from(set, &sites.items[i], d, &rexpr, &lexpr);
    for (i = 0; i < ind->n; i++)
        site_from(set, &ind->items[i], d, &rexpr, &lexpr);
    if ((rexpr && !(d->region_expression = gw_strdup(rexpr))) ||
        (lexpr && !(d->laterality_expression = gw_strdup(lexpr)))) {
        free(sites.items);
        return GW_E_NOMEM;
    }
    free(sites.items);
    return GW_OK;
}

static enum gw_code warn_unmapped(const struct coded_list *ind, struct map_decision *d)
{
    char list[512];
    size_t i, used = 0;

    d->is_unmapped = true;
    if (ind->n == 0)
        return map_decision_warn(d, "the referral has no coded indication (reasonCode or "
                                    "Condition.code): it goes to triage")
                   ? GW_E_NOMEM
                   : GW_OK;
    list[0] = '\0';
    for (i = 0; i < ind->n && used + 1 < sizeof list; i++) {
        const char *name = map_system_name(ind->items[i].system);
        int w = snprintf(list + used, sizeof list - used, "%s%s %s", i ? ", " : "",
                         name ? name : ind->items[i].system, ind->items[i].code);

        if (w < 0 || (size_t)w >= sizeof list - used)
            break;
        used += (size_t)w;
    }
    return map_decision_warn(d,
                             "no procedure is mapped for the indication (%s%s): the referral "
                             "is accepted and goes to triage",
                             list, i < ind->n ? ", ..." : "")
               ? GW_E_NOMEM
               : GW_OK;
}

static enum gw_code decide_codes(const struct map_set *set, struct map_decision *d)
{
    enum gw_code rc;

    if ((rc = procedure_code(set, d, MAP_SYS_CCAM, &d->ccam)) ||
        (rc = procedure_code(set, d, MAP_SYS_CPT, &d->cpt)) ||
        (rc = procedure_code(set, d, MAP_SYS_SNOMED, &d->snomed)))
        return rc;
    if (!d->ccam.code &&
        map_decision_warn(d, "no CCAM code is mapped for procedure %s", d->procedure.code))
        return GW_E_NOMEM;
    if (!d->cpt.code && !d->region &&
        map_decision_warn(d,
                          "the spinal region is unknown (no bodySite, no regional code): no "
                          "CPT code chosen for %s",
                          d->procedure.code))
        return GW_E_NOMEM;
    return GW_OK;
}

enum gw_code map_referral_decide(const struct map_set *set, const struct map_referral *ref,
                                 struct map_decision *d, struct gw_error *err)
{
    struct coded_list ind = {0};
    const char *rt = map_json_str(ref->service_request, "resourceType");
    enum gw_code rc;

    memset(d, 0, sizeof *d);
    if (!rt || strcmp(rt, "ServiceRequest") != 0)
        return gw_fail(err, GW_E_INPUT, "the referral is not a ServiceRequest");
    rc = collect_indications(ref, &ind) ? GW_E_NOMEM : GW_OK;
    if (!rc)
        rc = decide_site(set, ref, &ind, d);
    if (!rc)
        rc = choose(set, &ind, d);
    if (!rc && !d->procedure.code)
        rc = warn_unmapped(&ind, d);
    if (!rc && d->procedure.code)
        rc = decide_codes(set, d);
    if (!rc)
        rc = check_gp_code(set, ref->service_request, d);
    free(ind.items);
    if (!rc)
        rc = map_triage_flags(set, ref, d, err);
    if (rc) {
        map_decision_cleanup(d);
        return rc == GW_E_NOMEM ? gw_fail(err, rc, "no memory deciding a referral") : rc;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- results */

static void coding_free(struct map_coding *c)
{
    free(c->system);
    free(c->code);
    free(c->display);
}

void map_decision_cleanup(struct map_decision *d)
{
    size_t i;

    if (!d)
        return;
    coding_free(&d->indication);
    coding_free(&d->procedure);
    coding_free(&d->ccam);
    coding_free(&d->snomed);
    coding_free(&d->cpt);
    free(d->indication_expression);
    free(d->region_expression);
    free(d->laterality_expression);
    free(d->chosen_by);
    free(d->codes_by);
    for (i = 0; i < d->n_flags; i++) {
        free(d->flags[i].code);
        free(d->flags[i].display);
        free(d->flags[i].message);
        free(d->flags[i].why);
        free(d->flags[i].expression);
    }
    free(d->flags);
    for (i = 0; i < d->n_warnings; i++)
        free(d->warnings[i]);
    free(d->warnings);
    memset(d, 0, sizeof *d);
}

static int add_coding(json_t *arr, const struct map_coding *c)
{
    if (!c->code)
        return 0;
    return json_array_append_new(arr, json_pack("{s:s, s:s, s:s*}", "system", c->system, "code",
                                                c->code, "display", c->display));
}

json_t *map_decision_code(const struct map_decision *d)
{
    json_t *codings, *ext, *cc;

    if (d->is_unmapped || !d->procedure.code)
        return NULL;
    codings = json_array();
    if (!codings || add_coding(codings, &d->ccam) || add_coding(codings, &d->cpt) ||
        add_coding(codings, &d->snomed) || add_coding(codings, &d->procedure)) {
        json_decref(codings);
        return NULL;
    }
    ext = json_pack("[{s:s, s:s}, {s:s, s:s*}]", "url", MAP_EXT_CHOSEN_BY, "valueCanonical",
                    d->chosen_by, "url", MAP_EXT_CHOSEN_BY, "valueCanonical", d->codes_by);
    if (ext && !d->codes_by)
        json_array_remove(ext, 1);
    cc = json_pack("{s:o?, s:o, s:s*}", "extension", ext, "coding", codings, "text",
                   d->procedure.display);
    return cc;
}

static json_t *coding_json(const struct map_coding *c)
{
    if (!c->code)
        return json_null();
    return json_pack("{s:s, s:s, s:s*}", "system", c->system, "code", c->code, "display",
                     c->display);
}

json_t *map_decision_json(const struct map_decision *d)
{
    json_t *flags = json_array(), *warnings = json_array();
    size_t i;

    for (i = 0; flags && i < d->n_flags; i++) {
        const struct map_flag *f = &d->flags[i];

        json_array_append_new(flags, json_pack("{s:s, s:s, s:s, s:s, s:s}", "code", f->code,
                                               "display", f->display, "message", f->message, "why",
                                               f->why, "expression", f->expression));
    }
    for (i = 0; warnings && i < d->n_warnings; i++)
        json_array_append_new(warnings, json_string(d->warnings[i]));
    return json_pack("{s:b, s:o, s:s*, s:o, s:o, s:o, s:o, s:s*, s:s*, s:s*, s:s*, s:s*, s:s*, "
                     "s:s, s:o?, s:o?}",
                     "unmapped", d->is_unmapped, "indication", coding_json(&d->indication),
                     "indicationExpression", d->indication_expression, "procedure",
                     coding_json(&d->procedure), "ccam", coding_json(&d->ccam), "cpt",
                     coding_json(&d->cpt), "snomed", coding_json(&d->snomed), "region",
                     map_region_name(d->region), "regionExpression", d->region_expression,
                     "laterality", map_laterality_name(d->laterality), "lateralityExpression",
                     d->laterality_expression, "chosenBy", d->chosen_by, "codesBy", d->codes_by,
                     "gpCode",
                     d->gp_code == MAP_GP_ABSENT    ? "absent"
                     : d->gp_code == MAP_GP_AGREES  ? "agrees"
                     : d->gp_code == MAP_GP_DIFFERS ? "differs"
                                                    : "unchecked",
                     "flags", flags, "warnings", warnings);
}
