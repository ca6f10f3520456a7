/* params.c -- ConceptMap/$translate as FHIR R4 Parameters: reading the request (POST body or
 * GET query) into a map_query and writing the answer (result, message, match).
 *
 * Promises: a malformed request is GW_E_INPUT naming the parameter; the answer lists every
 * match map_translate() gives, each with equivalence, concept and source (the map url).
 */
#include "mapping/mapping_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MATCHES_MAX 64
#define CODINGS_MAX 16

struct request {
    const char *code, *system;
    json_t *coding, *concept; /* borrowed */
    const char *url, *map_version, *target, *target_system;
    enum map_region region;
    enum map_laterality laterality;
    enum map_guidance guidance;
};

static const char *pstr(json_t *p, const char *a, const char *b)
{
    const char *s = map_json_str(p, a);

    return s ? s : (b ? map_json_str(p, b) : NULL);
}

/* ---------------------------------------------------------------- dependencies */

enum dep_slot { SLOT_REGION = 1, SLOT_LATERALITY = 2, SLOT_GUIDANCE = 4, SLOT_SITE = 3 };

static int element_slots(const char *element)
{
    if (!element)
        return 0;
    if (!strcmp(element, MAP_PROP_REGION) || !strcmp(element, "region"))
        return SLOT_REGION;
    if (!strcmp(element, MAP_PROP_LATERALITY) || !strcmp(element, "laterality"))
        return SLOT_LATERALITY;
    if (!strcmp(element, MAP_PROP_GUIDANCE) || !strcmp(element, "guidance"))
        return SLOT_GUIDANCE;
    if (!strcmp(element, "ServiceRequest.bodySite") || !strcmp(element, "bodySite"))
        return SLOT_SITE;
    return 0;
}

static bool site_value(const struct map_set *set, const char *system, const char *code,
                       const char *target, int *out)
{
    struct map_query q = {.system = system, .code = code, .target_system = target};
    struct map_match m[4];
    size_t n = map_translate(set, &q, m, 4, NULL), i;

    for (i = 0; i < n; i++) {
        if (!m[i].code)
            continue;
        if (!strcmp(target, MAP_CS_REGION) && map_region_parse(m[i].code, (enum map_region *)out))
            return true;
        if (!strcmp(target, MAP_CS_LATERALITY) &&
            map_laterality_parse(m[i].code, (enum map_laterality *)out))
            return true;
    }
    return false;
}

static bool coding_value(const struct map_set *set, int slot, const char *system, const char *code,
                         struct request *rq)
{
    int v = 0;
    const char *canon = map_system_canonical(system);

    if (!canon || !code)
        return false;
    if (slot & SLOT_REGION) {
        if (!strcmp(canon, MAP_CS_REGION) ? map_region_parse(code, (enum map_region *)&v)
                                          : site_value(set, canon, code, MAP_CS_REGION, &v)) {
            rq->region = (enum map_region)v;
            return true;
        }
    }
    if (slot & SLOT_LATERALITY) {
        if (!strcmp(canon, MAP_CS_LATERALITY)
                ? map_laterality_parse(code, (enum map_laterality *)&v)
                : site_value(set, canon, code, MAP_CS_LATERALITY, &v)) {
            rq->laterality = (enum map_laterality)v;
            return true;
        }
    }
    if (slot == SLOT_GUIDANCE && !strcmp(canon, MAP_CS_GUIDANCE) &&
        map_guidance_parse(code, (enum map_guidance *)&v)) {
        rq->guidance = (enum map_guidance)v;
        return true;
    }
    return false;
}

static enum gw_code read_dependency(const struct map_set *set, json_t *p, struct request *rq,
                                    size_t idx, struct gw_error *err)
{
    const char *element = NULL;
    json_t *concept = NULL, *part, *coding;
    size_t i;
    int slot;
    bool any = false;

    json_array_foreach (json_object_get(p, "part"), i, part) {
        const char *name = map_json_str(part, "name");

        if (name && !strcmp(name, "element"))
            element = pstr(part, "valueUri", "valueString");
        else if (name && !strcmp(name, "concept"))
        concept = json_object_get(part, "valueCodeableConcept");
    }
    slot = element_slots(element);
    if (!slot)
        return gw_fail(err, GW_E_INPUT,
                       "parameter[%zu] dependency.element \"%s\" is not region, laterality, "
                       "guidance or ServiceRequest.bodySite",
                       idx, element ? element : "");
    json_array_foreach (json_object_get(concept, "coding"), i, coding) {
        if (coding_value(set, slot, map_json_str(coding, "system"), map_json_str(coding, "code"),
                         rq))
            any = true;
    }
    if (!any)
        return gw_fail(err, GW_E_INPUT,
                       "parameter[%zu] dependency.concept has no coding we can read for %s", idx,
                       element);
    return GW_OK;
}

/* ---------------------------------------------------------------- request */

static enum gw_code read_param(const struct map_set *set, json_t *p, size_t i, struct request *rq,
                               struct gw_error *err)
{
    const char *name = map_json_str(p, "name");

    if (!name)
        return gw_fail(err, GW_E_INPUT, "parameter[%zu] has no name", i);
    if (!strcmp(name, "code"))
        rq->code = pstr(p, "valueCode", "valueString");
    else if (!strcmp(name, "system"))
        rq->system = pstr(p, "valueUri", "valueString");
    else if (!strcmp(name, "coding"))
        rq->coding = json_object_get(p, "valueCoding");
    else if (!strcmp(name, "codeableConcept"))
    rq->concept = json_object_get(p, "valueCodeableConcept");
    else if (!strcmp(name, "url")) rq->url = pstr(p, "valueUri", "valueCanonical");
    else if (!strcmp(name, "conceptMapVersion")) rq->map_version = pstr(p, "valueString", NULL);
    else if (!strcmp(name, "target")) rq->target = pstr(p, "valueUri", "valueCanonical");
    else if (!strcmp(name, "targetsystem")) rq->target_system = pstr(p, "valueUri", NULL);
    else if (!strcmp(name, "dependency")) return read_dependency(set, p, rq, i, err);
    else if (!strcmp(name, "reverse"))
    {
        if (json_is_true(json_object_get(p, "valueBoolean")))
            return gw_fail(err, GW_E_INPUT, "reverse translation is not supported");
    }
    else if (strcmp(name, "version") && strcmp(name, "source") &&
             strcmp(name,
                    "conceptMap")) return gw_fail(err, GW_E_INPUT,
                                                  "parameter \"%s\" is not a $translate parameter",
                                                  name);
    else if (!strcmp(name, "conceptMap")) return gw_fail(
        err, GW_E_INPUT, "a ConceptMap in the request is not supported: use url");
    return GW_OK;
}

static enum gw_code read_request(const struct map_set *set, json_t *params, struct request *rq,
                                 struct gw_error *err)
{
    json_t *p;
    enum gw_code rc;
    size_t i;
    int given;

    memset(rq, 0, sizeof *rq);
    if (!json_is_object(params) || !map_json_str(params, "resourceType") ||
        strcmp(map_json_str(params, "resourceType"), "Parameters") != 0)
        return gw_fail(err, GW_E_INPUT, "the body of $translate must be a Parameters resource");
    json_array_foreach (json_object_get(params, "parameter"), i, p) {
        if ((rc = read_param(set, p, i, rq, err)))
            return rc;
    }
    given = (rq->code != NULL) + (rq->coding != NULL) + (rq->concept != NULL);
    if (given != 1)
        return gw_fail(err, GW_E_INPUT,
                       "give exactly one of code (with system), coding or "
                       "codeableConcept");
    if (rq->code && !rq->system)
        return gw_fail(err, GW_E_INPUT, "code needs system");
    if (rq->map_version && !rq->url)
        return gw_fail(err, GW_E_INPUT, "conceptMapVersion needs url");
    if ((rq->url && strlen(rq->url) > 512) || (rq->map_version && strlen(rq->map_version) > 64))
        return gw_fail(err, GW_E_LIMIT, "url (512) or conceptMapVersion (64) is too long");
    if (!rq->target_system && rq->target && map_system_known(rq->target))
        rq->target_system = rq->target; /* a code system given as the target value set */
    return GW_OK;
}

/* ---------------------------------------------------------------- answer */

static int add_match(json_t *out_params, const struct map_match *m)
{
    json_t *parts = json_array();

    if (!parts)
        return -1;
    if (json_array_append_new(parts, json_pack("{s:s, s:s}", "name", "equivalence", "valueCode",
                                               map_equivalence_name(m->equivalence))))
        goto fail;
    if (m->code &&
        json_array_append_new(parts, json_pack("{s:s, s:{s:s, s:s, s:s*}}", "name", "concept",
                                               "valueCoding", "system", m->system, "code", m->code,
                                               "display", m->display)))
        goto fail;
    if (json_array_append_new(parts,
                              json_pack("{s:s, s:s}", "name", "source", "valueUri", m->map_url)))
        goto fail;
    return json_array_append_new(out_params,
                                 json_pack("{s:s, s:o}", "name", "match", "part", parts));
fail:
    json_decref(parts);
    return -1;
}

static size_t run(const struct map_set *set, const struct request *rq, const char *system,
                  const char *code, const char *url, struct map_match *m, size_t max, size_t *total)
{
    struct map_query q = {.system = system,
                          .code = code,
                          .target_system =
                              rq->target_system ? map_system_canonical(rq->target_system) : NULL,
                          .url = url,
                          .region = rq->region,
                          .laterality = rq->laterality,
                          .guidance = rq->guidance};

    return map_translate(set, &q, m, max, total);
}

static char *describe(const struct request *rq, size_t usable, size_t total)
{
    const char *what = rq->code     ? rq->code
                       : rq->coding ? map_json_str(rq->coding, "code")
                                    : "the concept";
    const char *sys = rq->code     ? rq->system
                      : rq->coding ? map_json_str(rq->coding, "system")
                                   : NULL;
    const char *name = map_system_name(sys);

    if (sys && !map_system_known(sys))
        return map_strf("the code system %s is not one the maps know", sys);
    if (total == 0)
        return map_strf("no mapping for %s %s", name ? name : "", what ? what : "");
    return map_strf("%zu match%s (%zu usable)%s%s%s%s", total, total == 1 ? "" : "es", usable,
                    rq->region ? "; region " : "", rq->region ? map_region_name(rq->region) : "",
                    rq->laterality ? "; laterality " : "",
                    rq->laterality ? map_laterality_name(rq->laterality) : "");
}

enum gw_code map_translate_params(const struct map_set *set, json_t *params, json_t **out,
                                  struct gw_error *err)
{
    struct request rq;
    struct map_match m[MATCHES_MAX];
    char url[600];
    const char *urlp = NULL;
    json_t *answer = NULL, *list, *coding;
    size_t n = 0, total = 0, t, i, usable = 0;
    enum gw_code rc;
    char *msg;

    *out = NULL;
    if ((rc = read_request(set, params, &rq, err)))
        return rc;
    if (rq.url) {
        snprintf(url, sizeof url, "%s%s%s", rq.url, rq.map_version ? "|" : "",
                 rq.map_version ? rq.map_version : "");
        urlp = url;
    }
    if (rq.code) {
        n = run(set, &rq, rq.system, rq.code, urlp, m, MATCHES_MAX, &total);
    } else {
        list = rq.coding ? NULL : json_object_get(rq.concept, "coding");
        if (rq.coding)
            n = run(set, &rq, map_json_str(rq.coding, "system"), map_json_str(rq.coding, "code"),
                    urlp, m, MATCHES_MAX, &total);
        json_array_foreach (list, i, coding) {
            if (i == CODINGS_MAX)
                return gw_fail(err, GW_E_LIMIT, "codeableConcept has more than %d codings",
                               CODINGS_MAX);
            n += run(set, &rq, map_json_str(coding, "system"), map_json_str(coding, "code"), urlp,
                     m + n, MATCHES_MAX - n, &t);
            total += t;
        }
    }
    for (i = 0; i < n; i++)
        usable += m[i].code && m[i].equivalence != MAP_EQ_UNMATCHED &&
                  m[i].equivalence != MAP_EQ_DISJOINT;
    msg = describe(&rq, usable, total);
    answer = json_pack("{s:s, s:[{s:s, s:b}, {s:s, s:s?}]}", "resourceType", "Parameters",
                       "parameter", "name", "result", "valueBoolean", usable > 0, "name", "message",
                       "valueString", msg);
    free(msg);
    for (i = 0; answer && i < n; i++) {
        if (add_match(json_object_get(answer, "parameter"), &m[i])) {
            json_decref(answer);
            answer = NULL;
        }
    }
    if (!answer)
        return gw_fail(err, GW_E_NOMEM, "no memory for the $translate answer");
    *out = answer;
    return GW_OK;
}

/* ---------------------------------------------------------------- GET query */

static json_t *dep_param(const char *prop, const char *system, const char *code)
{
    return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:[{s:s, s:s}]}}]}", "name", "dependency",
                     "part", "name", "element", "valueUri", prop, "name", "concept",
                     "valueCodeableConcept", "coding", "system", system, "code", code);
}

static json_t *query_param(const char *name, const char *value)
{
    static const char *const uri_names[] = {"system", "url",          "source",
                                            "target", "targetsystem", NULL};
    size_t k;

    if (!strcmp(name, "region"))
        return dep_param(MAP_PROP_REGION, MAP_CS_REGION, value);
    if (!strcmp(name, "laterality"))
        return dep_param(MAP_PROP_LATERALITY, MAP_CS_LATERALITY, value);
    if (!strcmp(name, "guidance"))
        return dep_param(MAP_PROP_GUIDANCE, MAP_CS_GUIDANCE, value);
    if (!strcmp(name, "bodysite") || !strcmp(name, "bodySite"))
        return dep_param("ServiceRequest.bodySite", MAP_SYS_SNOMED, value);
    if (!strcmp(name, "code"))
        return json_pack("{s:s, s:s}", "name", "code", "valueCode", value);
    if (!strcmp(name, "version") || !strcmp(name, "conceptMapVersion"))
        return json_pack("{s:s, s:s}", "name", name, "valueString", value);
    for (k = 0; uri_names[k]; k++)
        if (!strcmp(name, uri_names[k]))
            return json_pack("{s:s, s:s}", "name", name, "valueUri", value);
    return NULL;
}

enum gw_code map_params_from_query(const char *const *names, const char *const *values, size_t n,
                                   json_t **out, struct gw_error *err)
{
    json_t *params = json_pack("{s:s, s:[]}", "resourceType", "Parameters", "parameter"), *p;
    size_t i;

    *out = NULL;
    if (!params)
        return gw_fail(err, GW_E_NOMEM, "no memory for $translate parameters");
    for (i = 0; i < n; i++) {
        if (!names[i] || !values[i] || !gw_utf8_valid(values[i], strlen(values[i]))) {
            json_decref(params);
            return gw_fail(err, GW_E_INPUT, "query parameter %zu is not valid UTF-8 text", i);
        }
        if (!strcmp(names[i], "_format"))
            continue;
        p = query_param(names[i], values[i]);
        if (!p) {
            json_decref(params);
            return gw_fail(err, GW_E_INPUT, "\"%s\" is not a $translate query parameter", names[i]);
        }
        if (json_array_append_new(json_object_get(params, "parameter"), p)) {
            json_decref(params);
            return gw_fail(err, GW_E_NOMEM, "no memory for $translate parameters");
        }
    }
    *out = params;
    return GW_OK;
}
