/* synonyms.c -- indication-synonyms.json, the table that reads an indication from the GP's
 * words (words.c): entries of phrases meaning an indication code, the negation cues, side and
 * region words, the spinal levels and the words of durations. Format: mappings/README.md.
 *
 * Promises: the file is validated whole (errors name the file and the JSON path); every
 * phrase is stored folded and compact (accents, case, spaces and punctuation removed) so the
 * reader compares letters; a phrase longer than MAP_WORDS_MAX letters is refused.
 */
#include "mapping/mapping_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_ENTRIES 1024
#define MAX_PHRASES 256 /* phrases of one entry or one word list */
#define MAX_AMOUNT  1000

static enum gw_code expect(bool ok, const char *file, const char *path, const char *what,
                           struct gw_error *err)
{
    return ok ? GW_OK : gw_fail(err, GW_E_INPUT, "%s: %s must be %s", file, path, what);
}

static enum gw_code opt_str(const char *file, const char *path, json_t *obj, const char *key,
                            const char **out, struct gw_error *err)
{
    json_t *v = json_object_get(obj, key);
    char sub[MAP_PATH_MAX];

    *out = NULL;
    if (!v)
        return GW_OK;
    gw_format(sub, sizeof sub, "%s.%s", path, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return expect(false, file, sub, "a non-empty string", err);
    *out = json_string_value(v);
    return GW_OK;
}

/* ---------------------------------------------------------------- phrases */

static enum gw_code parse_phrase(struct map_set *set, const char *file, const char *path, json_t *v,
                                 struct map_phrase *p, struct gw_error *err)
{
    char compact[MAP_WORDS_MAX + 1];
    const char *text = json_string_value(v);
    long len;

    if (!text || !gw_utf8_valid(text, json_string_length(v)))
        return expect(false, file, path, "a UTF-8 string", err);
    len = map_words_compact(text, json_string_length(v), compact, sizeof compact, &p->n_tokens);
    if (len == -2)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    if (len < 0)
        return gw_fail(err, GW_E_LIMIT, "%s: %s \"%.80s\" has more than %d letters", file, path,
                       text, MAP_WORDS_MAX);
    if (len == 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s \"%.80s\" has no letter or digit", file, path,
                       text);
    p->len = (size_t)len;
    p->compact = map_arena_strdup(&set->arena, compact);
    return p->compact ? GW_OK : gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
}

/* A non-empty array of phrases at obj.key into l (required or optional). */
static enum gw_code parse_list(struct map_set *set, const char *file, const char *path, json_t *obj,
                               const char *key, bool required, struct map_wordlist *l,
                               struct gw_error *err)
{
    json_t *arr = json_object_get(obj, key), *v;
    struct map_phrase *items;
    char sub[MAP_PATH_MAX];
    enum gw_code rc;
    size_t i;

    l->items = NULL;
    l->n = 0;
    gw_format(sub, sizeof sub, "%s.%s", path, key);
    if (!arr && !required)
        return GW_OK;
    if ((rc = expect(json_is_array(arr) && json_array_size(arr) > 0 &&
                         json_array_size(arr) <= MAX_PHRASES,
                     file, sub, "an array of 1 to 256 phrases", err)))
        return rc;
    items = map_arena_alloc(&set->arena, json_array_size(arr) * sizeof *items);
    if (!items)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (arr, i, v) {
        gw_format(sub, sizeof sub, "%s.%s[%zu]", path, key, i);
        if ((rc = parse_phrase(set, file, sub, v, &items[i], err)))
            return rc;
    }
    l->items = items;
    l->n = json_array_size(arr);
    return GW_OK;
}

/* ---------------------------------------------------------------- entries */

static enum gw_code parse_code(const char *file, const char *path, const char *system,
                               const char *code, struct gw_error *err)
{
    char key[MAP_MAX_CODE + 1];

    if (map_code_key(system, code, key, sizeof key) < 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s \"%s\" is not a valid code of %s", file, path, code,
                       system);
    return GW_OK;
}

static enum gw_code parse_by_region(const char *file, const char *path, json_t *obj,
                                    struct map_synonym *e, struct gw_error *err)
{
    json_t *by = json_object_get(obj, "byRegion"), *v;
    const char *name;
    enum map_region r;
    char sub[MAP_PATH_MAX];
    enum gw_code rc;

    if (!by)
        return GW_OK;
    gw_format(sub, sizeof sub, "%s.byRegion", path);
    if ((rc = expect(json_is_object(by), file, sub, "an object of region: code", err)))
        return rc;
    json_object_foreach (by, name, v) {
        gw_format(sub, sizeof sub, "%s.byRegion.%s", path, name);
        if (!map_region_parse(name, &r))
            return gw_fail(err, GW_E_INPUT, "%s: %s: \"%s\" is not a region", file, sub, name);
        if ((rc = expect(json_is_string(v), file, sub, "a code", err)) ||
            (rc = parse_code(file, sub, e->system, json_string_value(v), err)))
            return rc;
        e->by_region[r] = json_string_value(v);
    }
    return GW_OK;
}

static enum gw_code parse_entry(struct map_set *set, const char *file, const char *path,
                                json_t *obj, struct map_synonym *e, struct gw_error *err)
{
    const char *system, *region, *side;
    char sub[MAP_PATH_MAX];
    enum gw_code rc;

    if ((rc = expect(json_is_object(obj), file, path, "an object", err)) ||
        (rc = opt_str(file, path, obj, "system", &system, err)) ||
        (rc = opt_str(file, path, obj, "code", &e->code, err)) ||
        (rc = opt_str(file, path, obj, "display", &e->display, err)) ||
        (rc = opt_str(file, path, obj, "region", &region, err)) ||
        (rc = opt_str(file, path, obj, "laterality", &side, err)))
        return rc;
    e->system = map_system_canonical(system ? system : MAP_SYS_ICD10);
    gw_format(sub, sizeof sub, "%s.code", path);
    if (!e->code)
        return gw_fail(err, GW_E_INPUT, "%s: %s is missing", file, sub);
    if ((rc = parse_code(file, sub, e->system, e->code, err)))
        return rc;
    if (region && !map_region_parse(region, &e->region))
        return gw_fail(err, GW_E_INPUT, "%s: %s.region \"%s\" is not a region", file, path, region);
    if (side && !map_laterality_parse(side, &e->laterality))
        return gw_fail(err, GW_E_INPUT, "%s: %s.laterality \"%s\" is not left, right or bilateral",
                       file, path, side);
    if ((rc = parse_by_region(file, path, obj, e, err)))
        return rc;
    return parse_list(set, file, path, obj, "phrases", true, &e->phrases, err);
}

static enum gw_code parse_entries(struct map_set *set, struct map_synonyms *syn, json_t *doc,
                                  struct gw_error *err)
{
    json_t *arr = json_object_get(doc, "entries"), *v;
    char sub[MAP_PATH_MAX];
    enum gw_code rc;
    size_t i;

    if ((rc = expect(json_is_array(arr) && json_array_size(arr) > 0 &&
                         json_array_size(arr) <= MAX_ENTRIES,
                     syn->file, "entries", "an array of 1 to 1024 entries", err)))
        return rc;
    syn->entries = map_arena_alloc(&set->arena, json_array_size(arr) * sizeof *syn->entries);
    if (!syn->entries)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", syn->file);
    json_array_foreach (arr, i, v) {
        gw_format(sub, sizeof sub, "entries[%zu]", i);
        syn->entries[i].index = i;
        if ((rc = parse_entry(set, syn->file, sub, v, &syn->entries[i], err)))
            return rc;
        syn->n_entries = i + 1;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- word lists and numbers */

/* obj.<name> for each name of enum order (index 0 unused) into lists. */
static enum gw_code parse_named_lists(struct map_set *set, const char *file, json_t *doc,
                                      const char *key, const char *const *names, size_t n,
                                      struct map_wordlist *lists, struct gw_error *err)
{
    json_t *obj = json_object_get(doc, key);
    enum gw_code rc;
    size_t i;

    if ((rc = expect(json_is_object(obj), file, key, "an object", err)))
        return rc;
    for (i = 1; i < n; i++)
        if ((rc = parse_list(set, file, key, obj, names[i], true, &lists[i], err)))
            return rc;
    return GW_OK;
}

static enum gw_code parse_amounts(struct map_set *set, const char *file, const char *path,
                                  json_t *obj, struct map_amount **out, size_t *n,
                                  struct gw_error *err)
{
    struct map_amount *a;
    const char *name;
    char folded[MAP_WORDS_MAX + 1], sub[MAP_PATH_MAX];
    size_t i = 0, words;
    json_t *v;
    enum gw_code rc;

    if ((rc = expect(json_is_object(obj) && json_object_size(obj) > 0 &&
                         json_object_size(obj) <= MAX_PHRASES,
                     file, path, "an object of 1 to 256 word: number", err)))
        return rc;
    a = map_arena_alloc(&set->arena, json_object_size(obj) * sizeof *a);
    if (!a)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_object_foreach (obj, name, v) {
        gw_format(sub, sizeof sub, "%s.%s", path, name);
        if (map_words_compact(name, strlen(name), folded, sizeof folded, &words) <= 0 || words != 1)
            return expect(false, file, sub, "named by one word", err);
        if ((rc = expect(json_is_integer(v) && json_integer_value(v) > 0 &&
                             json_integer_value(v) <= MAX_AMOUNT,
                         file, sub, "a whole number from 1 to 1000", err)))
            return rc;
        a[i].word = map_arena_strdup(&set->arena, folded);
        a[i].value = (long)json_integer_value(v);
        if (!a[i++].word)
            return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    }
    *out = a;
    *n = i;
    return GW_OK;
}

static enum gw_code parse_level(const char *file, const char *path, json_t *obj,
                                struct map_level *l, struct gw_error *err)
{
    const char *letter, *region;
    json_t *max = json_object_get(obj, "max");
    enum gw_code rc;

    if ((rc = expect(json_is_object(obj), file, path, "an object", err)) ||
        (rc = opt_str(file, path, obj, "letter", &letter, err)) ||
        (rc = opt_str(file, path, obj, "region", &region, err)))
        return rc;
    if (!letter || strlen(letter) != 1 || letter[0] < 'a' || letter[0] > 'z')
        return expect(false, file, path, "an object with a lower-case \"letter\"", err);
    if (!region || !map_region_parse(region, &l->region))
        return expect(false, file, path, "an object with a \"region\"", err);
    if ((rc = expect(json_is_integer(max) && json_integer_value(max) >= 1 &&
                         json_integer_value(max) <= 99,
                     file, path, "an object with \"max\" from 1 to 99", err)))
        return rc;
    l->letter = letter[0];
    l->max = (long)json_integer_value(max);
    return GW_OK;
}

static enum gw_code parse_levels(struct map_set *set, struct map_synonyms *syn, json_t *doc,
                                 struct gw_error *err)
{
    json_t *arr = json_object_get(doc, "levels"), *v;
    char sub[MAP_PATH_MAX];
    enum gw_code rc;
    size_t i;

    if ((rc = expect(json_is_array(arr) && json_array_size(arr) > 0 && json_array_size(arr) <= 26,
                     syn->file, "levels", "an array of 1 to 26 levels", err)))
        return rc;
    syn->levels = map_arena_alloc(&set->arena, json_array_size(arr) * sizeof *syn->levels);
    if (!syn->levels)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", syn->file);
    json_array_foreach (arr, i, v) {
        gw_format(sub, sizeof sub, "levels[%zu]", i);
        if ((rc = parse_level(syn->file, sub, v, &syn->levels[i], err)))
            return rc;
    }
    syn->n_levels = json_array_size(arr);
    return GW_OK;
}

static enum gw_code parse_durations(struct map_set *set, struct map_synonyms *syn, json_t *doc,
                                    struct gw_error *err)
{
    json_t *d = json_object_get(doc, "durations");
    enum gw_code rc;

    if ((rc = expect(json_is_object(d), syn->file, "durations", "an object", err)) ||
        (rc = parse_list(set, syn->file, "durations", d, "markers", true, &syn->markers, err)) ||
        (rc = parse_amounts(set, syn->file, "durations.numbers", json_object_get(d, "numbers"),
                            &syn->numbers, &syn->n_numbers, err)))
        return rc;
    return parse_amounts(set, syn->file, "durations.units", json_object_get(d, "units"),
                         &syn->units, &syn->n_units, err);
}

/* ---------------------------------------------------------------- the file */

enum gw_code map_synonyms_parse(struct map_set *set, const char *file, json_t *doc,
                                struct gw_error *err)
{
    static const char *const sides[] = {NULL, "left", "right", "bilateral"};
    static const char *const regions[] = {NULL, "cervical", "thoracic", "lumbar", "sacral"};
    struct map_synonyms *syn = map_arena_alloc(&set->arena, sizeof *syn);
    json_t *neg;
    enum gw_code rc;

    if (!syn || !(syn->file = map_arena_strdup(&set->arena, file)))
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    if ((rc = expect(json_is_object(doc), file, "the document", "a JSON object", err)) ||
        (rc = opt_str(file, "$", doc, "version", &syn->version, err)))
        return rc;
    if (!syn->version)
        return gw_fail(err, GW_E_INPUT, "%s: version is missing", file);
    neg = json_object_get(doc, "negations");
    if ((rc = expect(json_is_object(neg), file, "negations", "an object", err)) ||
        (rc = parse_list(set, file, "negations", neg, "before", true, &syn->neg_before, err)) ||
        (rc = parse_list(set, file, "negations", neg, "after", false, &syn->neg_after, err)) ||
        (rc = parse_list(set, file, "negations", neg, "scopeEnds", false, &syn->neg_end, err)) ||
        (rc = parse_named_lists(set, file, doc, "sides", sides, 4, syn->sides, err)) ||
        (rc = parse_named_lists(set, file, doc, "regions", regions, 5, syn->regions, err)) ||
        (rc =
             parse_list(set, file, "$", doc, "notLevelAfter", false, &syn->not_level_after, err)) ||
        (rc = parse_levels(set, syn, doc, err)) || (rc = parse_durations(set, syn, doc, err)) ||
        (rc = parse_entries(set, syn, doc, err)))
        return rc;
    set->synonyms = syn;
    return GW_OK;
}
