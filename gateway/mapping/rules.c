/* rules.c -- the practice's data beside the maps: triage-rules.json (what raises a flag on
 * the Task) and indications.json (the indications and procedures the practice names, which
 * `mappings check` holds the maps to). Formats: mappings/README.md.
 *
 * Promises: a rules or indications file is validated whole (errors name file and path);
 * codes are stored normalised for their system, so matching is a string compare.
 */
#include "mapping/mapping_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_MIN_DAYS 3650

static enum gw_code req_str(const char *file, const char *path, json_t *obj, const char *key,
                            const char **out, struct gw_error *err)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_string(v) || json_string_length(v) == 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s.%s must be a non-empty string", file, path, key);
    *out = json_string_value(v);
    return GW_OK;
}

static enum gw_code opt_array(const char *file, const char *path, json_t *obj, const char *key,
                              json_t **out, struct gw_error *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v)
        return GW_OK;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s.%s must be a non-empty array", file, path, key);
    *out = v;
    return GW_OK;
}

/* Normalised copies of the strings of arr (codes or prefixes of system). */
static enum gw_code key_list(struct map_set *set, const char *file, const char *path,
                             const char *system, json_t *arr, const char ***out, size_t *n,
                             struct gw_error *err)
{
    const char **keys;
    char key[MAP_MAX_CODE + 1];
    json_t *v;
    size_t i;

    *out = NULL;
    *n = 0;
    if (!arr)
        return GW_OK;
    keys = map_arena_alloc(&set->arena, json_array_size(arr) * sizeof *keys);
    if (!keys)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (arr, i, v) {
        if (!json_is_string(v) || map_code_key(system, json_string_value(v), key, sizeof key) < 0)
            return gw_fail(err, GW_E_INPUT, "%s: %s[%zu] is not a valid code of %s", file, path, i,
                           system);
        if (!(keys[i] = map_arena_strdup(&set->arena, key)))
            return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    }
    *out = keys;
    *n = json_array_size(arr);
    return GW_OK;
}

static enum gw_code parse_codeset(struct map_set *set, const char *file, const char *path,
                                  json_t *cj, struct map_codeset *cs, struct gw_error *err)
{
    const char *system;
    json_t *codes, *prefixes;
    enum gw_code rc;
    char sub[MAP_PATH_MAX];

    if (!json_is_object(cj))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = req_str(file, path, cj, "system", &system, err)) ||
        (rc = opt_array(file, path, cj, "codes", &codes, err)) ||
        (rc = opt_array(file, path, cj, "prefixes", &prefixes, err)))
        return rc;
    if (!codes && !prefixes)
        return gw_fail(err, GW_E_INPUT, "%s: %s needs codes or prefixes", file, path);
    cs->system = map_system_canonical(system);
    gw_format(sub, sizeof sub, "%s.codes", path);
    if ((rc = key_list(set, file, sub, cs->system, codes, &cs->codes, &cs->n_codes, err)))
        return rc;
    gw_format(sub, sizeof sub, "%s.prefixes", path);
    return key_list(set, file, sub, cs->system, prefixes, &cs->prefixes, &cs->n_prefixes, err);
}

static enum gw_code parse_codesets(struct map_set *set, const char *file, const char *path,
                                   json_t *arr, const struct map_codeset **out, size_t *n,
                                   struct gw_error *err)
{
    struct map_codeset *cs;
    enum gw_code rc;
    json_t *cj;
    size_t i;
    char sub[MAP_PATH_MAX];

    *out = NULL;
    *n = 0;
    if (!arr)
        return GW_OK;
    cs = map_arena_alloc(&set->arena, json_array_size(arr) * sizeof *cs);
    if (!cs)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (arr, i, cj) {
        gw_format(sub, sizeof sub, "%s[%zu]", path, i);
        if ((rc = parse_codeset(set, file, sub, cj, &cs[i], err)))
            return rc;
    }
    *out = cs;
    *n = json_array_size(arr);
    return GW_OK;
}

bool map_codeset_has(const struct map_codeset *cs, size_t n, const char *system, const char *code)
{
    char key[MAP_MAX_CODE + 1];
    const char *canon = map_system_canonical(system);
    size_t i, j;

    for (i = 0; canon && code && i < n; i++) {
        if (strcmp(cs[i].system, canon) != 0 || map_code_key(canon, code, key, sizeof key) < 0)
            continue;
        for (j = 0; j < cs[i].n_codes; j++)
            if (strcmp(cs[i].codes[j], key) == 0)
                return true;
        for (j = 0; j < cs[i].n_prefixes; j++)
            if (strncmp(cs[i].prefixes[j], key, strlen(cs[i].prefixes[j])) == 0)
                return true;
    }
    return false;
}

/* ---------------------------------------------------------------- triage rules */

static enum gw_code parse_observations(struct map_set *set, const char *file, const char *path,
                                       json_t *arr, struct map_rule *r, struct gw_error *err)
{
    struct map_obs_rule *obs;
    json_t *oj, *codes, *values;
    enum gw_code rc;
    size_t i;
    char sub[MAP_PATH_MAX], sub2[224];

    if (!arr)
        return GW_OK;
    obs = map_arena_alloc(&set->arena, json_array_size(arr) * sizeof *obs);
    if (!obs)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (arr, i, oj) {
        gw_format(sub, sizeof sub, "%s.observations[%zu]", path, i);
        if (!json_is_object(oj))
            return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, sub);
        if ((rc = opt_array(file, sub, oj, "code", &codes, err)) ||
            (rc = opt_array(file, sub, oj, "values", &values, err)))
            return rc;
        if (!codes)
            return gw_fail(err, GW_E_INPUT, "%s: %s.code is missing", file, sub);
        gw_format(sub2, sizeof sub2, "%s.code", sub);
        if ((rc = parse_codesets(set, file, sub2, codes, &obs[i].codes, &obs[i].n_codes, err)))
            return rc;
        gw_format(sub2, sizeof sub2, "%s.values", sub);
        if ((rc = parse_codesets(set, file, sub2, values, &obs[i].values, &obs[i].n_values, err)))
            return rc;
    }
    r->observations = obs;
    r->n_observations = json_array_size(arr);
    return GW_OK;
}

static enum gw_code parse_unrecorded(const char *file, const char *path, json_t *uj,
                                     struct map_rule *r, struct gw_error *err)
{
    json_t *lo = json_object_get(uj, "minAgeYears"), *hi = json_object_get(uj, "maxAgeYears");
    enum gw_code rc;

    if (!json_is_object(uj))
        return gw_fail(err, GW_E_INPUT, "%s: %s.unrecorded must be an object", file, path);
    if ((rc = req_str(file, path, uj, "gender", &r->unrecorded_gender, err)))
        return rc;
    if (!json_is_integer(lo) || !json_is_integer(hi) || json_integer_value(lo) < 0 ||
        json_integer_value(hi) < json_integer_value(lo) || json_integer_value(hi) > 150)
        return gw_fail(err, GW_E_INPUT,
                       "%s: %s.unrecorded needs minAgeYears <= maxAgeYears in 0..150", file, path);
    if (!r->n_observations)
        return gw_fail(err, GW_E_INPUT, "%s: %s.unrecorded needs observations to look for", file,
                       path);
    r->unrecorded_min_age = (long)json_integer_value(lo);
    r->unrecorded_max_age = (long)json_integer_value(hi);
    r->has_unrecorded = true;
    return GW_OK;
}

static enum gw_code parse_rule(struct map_set *set, const char *file, const char *path, json_t *rj,
                               struct map_rule *r, struct gw_error *err)
{
    json_t *kind = json_object_get(rj, "kind"), *conds, *obs, *meds, *uj;
    enum gw_code rc;
    char sub[MAP_PATH_MAX];

    if (!json_is_object(rj))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = req_str(file, path, rj, "code", &r->code, err)) ||
        (rc = req_str(file, path, rj, "display", &r->display, err)) ||
        (rc = req_str(file, path, rj, "message", &r->message, err)))
        return rc;
    if (kind && (!json_is_string(kind) || (strcmp(json_string_value(kind), "onset") != 0 &&
                                           strcmp(json_string_value(kind), "codes") != 0)))
        return gw_fail(err, GW_E_INPUT, "%s: %s.kind must be \"onset\" or \"codes\"", file, path);
    if (kind && strcmp(json_string_value(kind), "onset") == 0) {
        json_t *days = json_object_get(rj, "minDays");

        r->kind = MAP_RULE_ONSET;
        if (!json_is_integer(days) || json_integer_value(days) < 1 ||
            json_integer_value(days) > MAX_MIN_DAYS)
            return gw_fail(err, GW_E_INPUT, "%s: %s.minDays must be an integer in 1..%d", file,
                           path, MAX_MIN_DAYS);
        r->min_days = (long)json_integer_value(days);
        return GW_OK;
    }
    r->kind = MAP_RULE_CODES;
    if ((rc = opt_array(file, path, rj, "conditions", &conds, err)) ||
        (rc = opt_array(file, path, rj, "observations", &obs, err)) ||
        (rc = opt_array(file, path, rj, "medications", &meds, err)))
        return rc;
    if (!conds && !obs && !meds)
        return gw_fail(err, GW_E_INPUT, "%s: %s needs conditions, observations or medications",
                       file, path);
    gw_format(sub, sizeof sub, "%s.conditions", path);
    if ((rc = parse_codesets(set, file, sub, conds, &r->conditions, &r->n_conditions, err)))
        return rc;
    gw_format(sub, sizeof sub, "%s.medications", path);
    if ((rc = parse_codesets(set, file, sub, meds, &r->medications, &r->n_medications, err)) ||
        (rc = parse_observations(set, file, path, obs, r, err)))
        return rc;
    uj = json_object_get(rj, "unrecorded");
    return uj ? parse_unrecorded(file, path, uj, r, err) : GW_OK;
}

enum gw_code map_rules_parse(struct map_set *set, const char *file, json_t *doc,
                             struct gw_error *err)
{
    json_t *rules, *rj;
    enum gw_code rc;
    size_t i, j;
    char sub[MAP_PATH_MAX];

    if (!json_is_object(doc))
        return gw_fail(err, GW_E_INPUT, "%s: not a JSON object", file);
    if ((rc = req_str(file, "rules", doc, "version", &set->rules_version, err)))
        return rc;
    rules = json_object_get(doc, "rules");
    if (!json_is_array(rules) || json_array_size(rules) == 0)
        return gw_fail(err, GW_E_INPUT, "%s: rules must be a non-empty array", file);
    set->rules_file = file;
    set->rules = map_arena_alloc(&set->arena, json_array_size(rules) * sizeof *set->rules);
    if (!set->rules || !(set->rules_file = map_arena_strdup(&set->arena, file)))
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (rules, i, rj) {
        gw_format(sub, sizeof sub, "rules[%zu]", i);
        if ((rc = parse_rule(set, file, sub, rj, &set->rules[i], err)))
            return rc;
        for (j = 0; j < i; j++)
            if (strcmp(set->rules[j].code, set->rules[i].code) == 0)
                return gw_fail(err, GW_E_INPUT, "%s: %s.code \"%s\" is used twice", file, sub,
                               set->rules[i].code);
        set->n_rules++;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- indications */

static enum gw_code parse_indication(struct map_set *set, const char *file, const char *path,
                                     json_t *ij, struct map_indication *ind, struct gw_error *err)
{
    json_t *codings, *cj;
    struct map_codeset *cs;
    enum gw_code rc;
    const char *system, *code;
    char key[MAP_MAX_CODE + 1], sub[160];
    size_t i;

    if (!json_is_object(ij))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = req_str(file, path, ij, "id", &ind->id, err)) ||
        (rc = req_str(file, path, ij, "label", &ind->label, err)) ||
        (rc = opt_array(file, path, ij, "codings", &codings, err)))
        return rc;
    if (!codings)
        return gw_fail(err, GW_E_INPUT, "%s: %s.codings is missing", file, path);
    cs = map_arena_alloc(&set->arena, json_array_size(codings) * sizeof *cs);
    if (!cs)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (codings, i, cj) {
        gw_format(sub, sizeof sub, "%s.codings[%zu]", path, i);
        if (!json_is_object(cj))
            return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, sub);
        if ((rc = req_str(file, sub, cj, "system", &system, err)) ||
            (rc = req_str(file, sub, cj, "code", &code, err)))
            return rc;
        cs[i].system = map_system_canonical(system);
        cs[i].codes = map_arena_alloc(&set->arena, sizeof *cs[i].codes);
        if (map_code_key(cs[i].system, code, key, sizeof key) < 0)
            return gw_fail(err, GW_E_INPUT, "%s: %s.code is not a valid code of %s", file, sub,
                           system);
        if (!cs[i].codes || !(cs[i].codes[0] = map_arena_strdup(&set->arena, code)))
            return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
        cs[i].n_codes = 1;
    }
    ind->codings = cs;
    ind->n_codings = json_array_size(codings);
    return GW_OK;
}

static enum gw_code parse_procedure(struct map_set *set, const char *file, const char *path,
                                    json_t *pj, struct map_procedure_def *p, struct gw_error *err)
{
    json_t *systems, *sj;
    enum gw_code rc;
    size_t i;

    if (!json_is_object(pj))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = req_str(file, path, pj, "code", &p->code, err)) ||
        (rc = req_str(file, path, pj, "display", &p->display, err)) ||
        (rc = opt_array(file, path, pj, "systems", &systems, err)))
        return rc;
    if (!systems)
        return GW_OK;
    p->systems = map_arena_alloc(&set->arena, json_array_size(systems) * sizeof *p->systems);
    if (!p->systems)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (systems, i, sj) {
        if (!json_is_string(sj))
            return gw_fail(err, GW_E_INPUT, "%s: %s.systems[%zu] must be a string", file, path, i);
        p->systems[i] = map_system_canonical(json_string_value(sj));
    }
    p->n_systems = json_array_size(systems);
    return GW_OK;
}

enum gw_code map_indications_parse(struct map_set *set, const char *file, json_t *doc,
                                   struct gw_error *err)
{
    json_t *inds, *procs, *v;
    enum gw_code rc;
    size_t i;
    char sub[MAP_PATH_MAX];

    if (!json_is_object(doc))
        return gw_fail(err, GW_E_INPUT, "%s: not a JSON object", file);
    if ((rc = req_str(file, "indications", doc, "version", &set->indications_version, err)) ||
        (rc = opt_array(file, "indications", doc, "indications", &inds, err)) ||
        (rc = opt_array(file, "indications", doc, "procedures", &procs, err)))
        return rc;
    if (!inds)
        return gw_fail(err, GW_E_INPUT, "%s: indications must be a non-empty array", file);
    set->indications =
        map_arena_alloc(&set->arena, json_array_size(inds) * sizeof(struct map_indication));
    set->indications_file = map_arena_strdup(&set->arena, file);
    if (!set->indications || !set->indications_file)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (inds, i, v) {
        gw_format(sub, sizeof sub, "indications[%zu]", i);
        if ((rc = parse_indication(set, file, sub, v, &set->indications[i], err)))
            return rc;
        set->n_indications++;
    }
    if (!procs)
        return GW_OK;
    set->procedures =
        map_arena_alloc(&set->arena, json_array_size(procs) * sizeof(struct map_procedure_def));
    if (!set->procedures)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (procs, i, v) {
        gw_format(sub, sizeof sub, "procedures[%zu]", i);
        if ((rc = parse_procedure(set, file, sub, v, &set->procedures[i], err)))
            return rc;
        set->n_procedures++;
    }
    return GW_OK;
}
