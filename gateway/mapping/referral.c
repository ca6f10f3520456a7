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
 * When no coding maps, the words of the referral are read (words.c): an indication read there
 * chooses the procedure the same way, marked is_from_text, with a warning and a flag asking
 * the practice to confirm; a coded indication that maps is never replaced by words.
 * map_decision_choose() records the practice's own choice instead.
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

/* A coding the gateway read from words earlier (MAP_EXT_FROM_TEXT): not the GP's code, so the
 * words are read again instead. */
static bool read_from_words(json_t *coding)
{
    json_t *ext;
    size_t i;

    json_array_foreach (json_object_get(coding, "extension"), i, ext) {
        const char *url = map_json_str(ext, "url");

        if (url && strcmp(url, MAP_EXT_FROM_TEXT) == 0)
            return true;
    }
    return false;
}

static int collect_indications(const struct map_referral *ref, struct coded_list *l)
{
    json_t *cc, *coding;
    size_t i, j;

    json_array_foreach (json_object_get(ref->service_request, "reasonCode"), i, cc) {
        json_array_foreach (json_object_get(cc, "coding"), j, coding) {
            if (read_from_words(coding))
                continue;
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
                          .laterality = d->laterality,
                          .guidance = d->guidance};
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

/* ---------------------------------------------------------------- words */

/* "ServiceRequest.note[0].text (L5-S1)": where a region or side read from words comes from. */
static char *words_expression(const char *expr, const char *words)
{
    return words ? map_strf("%s ('%s')", expr, words) : gw_strdup(expr);
}

static enum gw_code words_site(struct map_decision *d, const struct map_words *w)
{
    if (!d->region && w->region) {
        d->region = w->region;
        free(d->region_expression);
        if (!(d->region_expression = words_expression(w->expr, w->region_words)))
            return GW_E_NOMEM;
    }
    if (!d->laterality && w->laterality) {
        d->laterality = w->laterality;
        free(d->laterality_expression);
        if (!(d->laterality_expression = words_expression(w->expr, w->side_words)))
            return GW_E_NOMEM;
    }
    return GW_OK;
}

static enum gw_code words_warning(struct map_decision *d)
{
    return map_decision_warn(d,
                             "the indication was read from the words '%s' (%s) as %s %s: the "
                             "referral waits in the practice's triage until the practice "
                             "confirms it (proposed procedure: %s)",
                             d->text_words, d->indication_expression,
                             map_system_name(d->indication.system), d->indication.code,
                             d->procedure.code)
               ? GW_E_NOMEM
               : GW_OK;
}

/* The indication the words say, when no coding chose a procedure. */
static enum gw_code indication_from_words(const struct map_set *set, struct map_decision *d,
                                          struct map_words *w)
{
    struct coded c;
    struct coded_list one = {&c, 1, 1};
    const char *rexpr = NULL, *lexpr = NULL;
    enum gw_code rc;

    if ((rc = words_site(d, w)))
        return rc;
    c.system = w->entry->system;
    c.code = w->code;
    c.display = w->code == w->entry->code ? w->entry->display : NULL;
    gw_format(c.expr, sizeof c.expr, "%s", w->expr);
    site_from(set, &c, d, &rexpr, &lexpr); /* the code's own region (M54.2: cervical) */
    if ((rexpr && !d->region_expression && !(d->region_expression = gw_strdup(rexpr))) ||
        (lexpr && !d->laterality_expression && !(d->laterality_expression = gw_strdup(lexpr))))
        return GW_E_NOMEM;
    if ((rc = choose(set, &one, d)) || !d->procedure.code)
        return rc;
    d->is_from_text = true;
    d->text_words = w->phrase;
    w->phrase = NULL;
    d->text_reason_index = w->reason_index;
    return words_warning(d);
}

/* Reads the words: durations always, the indication when no coding chose a procedure. */
static enum gw_code read_words(const struct map_set *set, const struct map_referral *ref,
                               struct map_decision *d, struct map_words *w, struct gw_error *err)
{
    bool want = !d->procedure.code;
    enum gw_code rc = map_words_read(set, ref, want, d->region, w, err);

    if (rc)
        return rc;
    d->text_days = w->days;
    d->text_days_words = w->days_words;
    d->text_days_expression = w->days_expr;
    w->days_words = w->days_expr = NULL;
    if (w->n_cut && map_decision_warn(d,
                                      "%zu text%s longer than %d bytes %s read in part for the "
                                      "indication's words",
                                      w->n_cut, w->n_cut == 1 ? "" : "s", MAP_WORDS_TEXT_MAX,
                                      w->n_cut == 1 ? "was" : "were"))
        return GW_E_NOMEM;
    return want && w->entry ? indication_from_words(set, d, w) : GW_OK;
}

/* The flag that asks the practice to confirm an indication read from words. */
static enum gw_code flag_words(struct map_decision *d)
{
    char *why = map_strf(
        "'%s' read as %s %s%s%s%s%s%s%s, proposed procedure %s", d->text_words,
        map_system_name(d->indication.system), d->indication.code, d->region ? ", region " : "",
        d->region ? map_region_name(d->region) : "", d->laterality ? ", laterality " : "",
        d->laterality ? map_laterality_name(d->laterality) : "", d->text_days >= 0 ? ", " : "",
        d->text_days >= 0 ? d->text_days_words : "", d->procedure.code);
    enum gw_code rc;

    if (!why)
        return GW_E_NOMEM;
    rc = map_decision_add_flag(d, MAP_FLAG_FROM_TEXT, "Indication read from words",
                               "The GP wrote the indication in words, without a code: confirm the "
                               "indication and choose the procedure",
                               why, d->indication_expression);
    free(why);
    return rc;
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
                                    "Condition.code) and no words the synonym table reads: it "
                                    "goes to triage")
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

static void decision_init(struct map_decision *d)
{
    memset(d, 0, sizeof *d);
    d->text_days = -1;
    d->text_reason_index = -1;
}

enum gw_code map_referral_decide(const struct map_set *set, const struct map_referral *ref,
                                 struct map_decision *d, struct gw_error *err)
{
    struct coded_list ind = {0};
    struct map_words words;
    const char *rt = map_json_str(ref->service_request, "resourceType");
    enum gw_code rc;

    decision_init(d);
    memset(&words, 0, sizeof words);
    if (!rt || strcmp(rt, "ServiceRequest") != 0)
        return gw_fail(err, GW_E_INPUT, "the referral is not a ServiceRequest");
    rc = collect_indications(ref, &ind) ? GW_E_NOMEM : GW_OK;
    if (!rc)
        rc = decide_site(set, ref, &ind, d);
    if (!rc)
        rc = choose(set, &ind, d);
    if (!rc)
        rc = read_words(set, ref, d, &words, err);
    if (!rc && !d->procedure.code)
        rc = warn_unmapped(&ind, d);
    if (!rc && d->procedure.code)
        rc = decide_codes(set, d);
    if (!rc)
        rc = check_gp_code(set, ref->service_request, d);
    free(ind.items);
    map_words_cleanup(&words);
    if (!rc && d->is_from_text)
        rc = flag_words(d);
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
    memset(c, 0, sizeof *c);
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
    free(d->text_words);
    free(d->text_days_words);
    free(d->text_days_expression);
    map_decision_clear_flags(d);
    for (i = 0; i < d->n_warnings; i++)
        free(d->warnings[i]);
    free(d->warnings);
    memset(d, 0, sizeof *d);
}

/* The code is built as json_pack() built it ("s*": a NULL display is left out; "o?": no
 * extension is a null), without a format to parse: a referral's code is made each time. */
static int add_coding(json_t *arr, const struct map_coding *c)
{
    json_t *coding;

    if (!c->code)
        return 0;
    coding = gw_json_strings(2, "system", c->system, "code", c->code);
    if (c->display && gw_json_set_string(coding, "display", c->display)) {
        json_decref(coding);
        return -1;
    }
    return json_array_append_new(arr, coding);
}

static int add_extension(json_t *ext, const char *url, const char *canonical)
{
    if (!canonical)
        return 0;
    return json_array_append_new(ext, gw_json_strings(2, "url", url, "valueCanonical", canonical));
}

json_t *map_decision_code(const struct map_decision *d)
{
    json_t *codings, *ext, *code;

    if (d->is_unmapped || !d->procedure.code)
        return NULL;
    codings = json_array();
    ext = json_array();
    if (!codings || !ext || add_coding(codings, &d->ccam) || add_coding(codings, &d->cpt) ||
        add_coding(codings, &d->snomed) || add_coding(codings, &d->procedure) ||
        add_extension(ext, MAP_EXT_CHOSEN_BY, d->chosen_by) ||
        add_extension(ext, MAP_EXT_CHOSEN_BY, d->codes_by)) {
        json_decref(codings);
        json_decref(ext);
        return NULL;
    }
    if (json_array_size(ext) == 0) {
        json_decref(ext);
        ext = NULL;
    }
    code = gw_json_object1("extension", ext ? ext : json_null());
    if (json_object_set_new(code, "coding", codings) ||
        (d->procedure.display && gw_json_set_string(code, "text", d->procedure.display))) {
        json_decref(code);
        return NULL;
    }
    return code;
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

        json_array_append_new(flags, json_pack("{s:s, s:s, s:s, s:s*, s:s*}", "code", f->code,
                                               "display", f->display, "message", f->message, "why",
                                               f->why, "expression", f->expression));
    }
    for (i = 0; warnings && i < d->n_warnings; i++)
        json_array_append_new(warnings, json_string(d->warnings[i]));
    return json_pack(
        "{s:b, s:b, s:b, s:s*, s:I, s:s*, s:s*, s:o, s:s*, s:o, s:o, s:o, s:o, s:s*, "
        "s:s*, s:s*, s:s*, s:s*, s:s*, s:s, s:o?, s:o?}",
        "unmapped", d->is_unmapped, "fromText", d->is_from_text, "chosenByPractice",
        d->is_chosen_by_practice, "textWords", d->text_words, "textDays", (json_int_t)d->text_days,
        "textDaysWords", d->text_days_words, "guidance", map_guidance_name(d->guidance),
        "indication", coding_json(&d->indication), "indicationExpression", d->indication_expression,
        "procedure", coding_json(&d->procedure), "ccam", coding_json(&d->ccam), "cpt",
        coding_json(&d->cpt), "snomed", coding_json(&d->snomed), "region",
        map_region_name(d->region), "regionExpression", d->region_expression, "laterality",
        map_laterality_name(d->laterality), "lateralityExpression", d->laterality_expression,
        "chosenBy", d->chosen_by, "codesBy", d->codes_by, "gpCode",
        d->gp_code == MAP_GP_ABSENT    ? "absent"
        : d->gp_code == MAP_GP_AGREES  ? "agrees"
        : d->gp_code == MAP_GP_DIFFERS ? "differs"
                                       : "unchecked",
        "flags", flags, "warnings", warnings);
}

/* ---------------------------------------------------------------- words in the referral */

static json_t *text_coding(const struct map_decision *d)
{
    return json_pack("{s:[{s:s, s:[{s:s, s:s}, {s:s, s:s}]}], s:s, s:s, s:s*, s:b}", "extension",
                     "url", MAP_EXT_FROM_TEXT, "extension", "url", "source", "valueString",
                     d->indication_expression, "url", "words", "valueString", d->text_words,
                     "system", d->indication.system, "code", d->indication.code, "display",
                     d->indication.display, "userSelected", 0);
}

/* True when a reasonCode already holds the coding read from words (an amendment resends it). */
static bool already_marked(json_t *reasons, const char *code)
{
    json_t *cc, *coding;
    size_t i, j;

    json_array_foreach (reasons, i, cc) {
        json_array_foreach (json_object_get(cc, "coding"), j, coding) {
            if (read_from_words(coding) && map_json_str(coding, "code") &&
                strcmp(map_json_str(coding, "code"), code) == 0)
                return true;
        }
    }
    return false;
}

int map_decision_mark_text(const struct map_decision *d, json_t *service_request)
{
    json_t *reasons = json_object_get(service_request, "reasonCode"), *cc, *codings;
    json_t *coding;

    if (!d->is_from_text || already_marked(reasons, d->indication.code))
        return 0;
    if (!(coding = text_coding(d)))
        return -1;
    cc = d->text_reason_index >= 0 ? json_array_get(reasons, (size_t)d->text_reason_index) : NULL;
    if (cc) {
        codings = json_object_get(cc, "coding");
        if (!codings && (json_object_set_new(cc, "coding", json_array()) ||
                         !(codings = json_object_get(cc, "coding")))) {
            json_decref(coding);
            return -1;
        }
        return json_array_append_new(codings, coding);
    }
    if (!reasons && (json_object_set_new(service_request, "reasonCode", json_array()) ||
                     !(reasons = json_object_get(service_request, "reasonCode")))) {
        json_decref(coding);
        return -1;
    }
    return json_array_append_new(
        reasons, json_pack("{s:[o], s:s}", "coding", coding, "text", d->text_words));
}

/* ---------------------------------------------------------------- the practice's choice */

static bool target_has(const struct map_target *t, const char *system, const char *want)
{
    char have[MAP_MAX_CODE + 1];

    return t->code && t->eq != MAP_EQ_UNMATCHED && t->eq != MAP_EQ_DISJOINT &&
           map_code_key(system, t->code, have, sizeof have) > 0 && strcmp(have, want) == 0;
}

static enum map_guidance guidance_of(const struct map_target *t)
{
    size_t k;

    for (k = 0; k < t->n_deps; k++)
        if (t->deps[k].kind == MAP_DEP_GUIDANCE)
            return (enum map_guidance)t->deps[k].value;
    return MAP_GUIDANCE_NONE;
}

bool map_procedure_of_code(const struct map_set *set, const char *system, const char *code,
                           const char **procedure, enum map_guidance *guidance)
{
    const char *canon = map_system_canonical(system);
    char want[MAP_MAX_CODE + 1];
    size_t i, j, e, t;

    *procedure = NULL;
    *guidance = MAP_GUIDANCE_NONE;
    if (!canon || !code || map_code_key(canon, code, want, sizeof want) < 0)
        return false;
    for (i = 0; i < set->n_maps; i++) {
        for (j = 0; j < set->maps[i].n_groups; j++) {
            const struct map_group *g = &set->maps[i].groups[j];

            if (g->map->is_retired || strcmp(g->source, MAP_CS_PROCEDURE) != 0)
                continue;
            for (e = 0; e < g->n_elements; e++) {
                const struct map_element *el = &g->elements[e];

                if (strcmp(canon, MAP_CS_PROCEDURE) == 0 && strcmp(el->key, want) == 0) {
                    *procedure = el->code;
                    return true;
                }
                for (t = 0; strcmp(g->target, canon) == 0 && t < el->n_targets; t++) {
                    if (!target_has(&el->targets[t], canon, want))
                        continue;
                    *procedure = el->code;
                    *guidance = guidance_of(&el->targets[t]);
                    return true;
                }
            }
        }
    }
    return false;
}

static const char *procedure_display(const struct map_set *set, const char *code)
{
    size_t i;

    for (i = 0; i < set->n_procedures; i++)
        if (strcmp(set->procedures[i].code, code) == 0)
            return set->procedures[i].display;
    return NULL;
}

static void codes_clear(struct map_decision *d)
{
    coding_free(&d->procedure);
    coding_free(&d->ccam);
    coding_free(&d->snomed);
    coding_free(&d->cpt);
    free(d->chosen_by);
    free(d->codes_by);
    d->chosen_by = d->codes_by = NULL;
    while (d->n_warnings)
        free(d->warnings[--d->n_warnings]);
}

enum gw_code map_decision_choose(const struct map_set *set, struct map_decision *d,
                                 const struct map_choice *c, struct gw_error *err)
{
    const char *procedure;
    enum map_guidance implied;
    enum gw_code rc;

    if (!map_procedure_of_code(set, c->system, c->code, &procedure, &implied))
        return gw_fail(err, GW_E_INPUT, "%s %s is not a procedure of the practice's maps",
                       c->system ? c->system : "(no system)", c->code ? c->code : "(no code)");
    codes_clear(d);
    if (c->region) {
        d->region = c->region;
        free(d->region_expression);
        d->region_expression = NULL;
    }
    if (c->laterality) {
        d->laterality = c->laterality;
        free(d->laterality_expression);
        d->laterality_expression = NULL;
    }
    d->guidance = c->guidance ? c->guidance : implied;
    d->is_unmapped = d->is_from_text = false;
    d->is_chosen_by_practice = true;
    rc = coding_set(&d->procedure, MAP_CS_PROCEDURE, procedure, procedure_display(set, procedure))
             ? decide_codes(set, d)
             : GW_E_NOMEM;
    return rc ? gw_fail(err, rc, "no memory for the practice's choice") : GW_OK;
}
