/* load.c -- reads a mappings folder and validates each ConceptMap against the R4 rules we
 * rely on, turning it into the set's rows.
 *
 * Promises: a load is all or nothing: the first bad file stops it with a message naming the
 * file and the JSON path ("ConceptMap.group[0].element[2].target[0].equivalence"); no file is
 * read past MAP_MAX_FILE_BYTES; strings of a set point into documents it keeps unmodified.
 */
#include "mapping/mapping_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_FILE       "triage-rules.json"
#define INDICATIONS_FILE "indications.json"

/* ---------------------------------------------------------------- small validators */

static bool is_uri(const char *s)
{
    const char *colon = strchr(s, ':');
    const char *p;

    if (!colon || colon == s)
        return false;
    for (p = s; *p; p++)
        if ((unsigned char)*p <= ' ')
            return false;
    return true;
}

static bool is_fhir_id(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > 64)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Fetches key of obj as a string: *out NULL when absent; error when present but not a
 * non-empty string. */
static enum gw_code get_str(const char *file, const char *path, json_t *obj, const char *key,
                            bool required, const char **out, struct gw_error *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v) {
        if (required)
            return gw_fail(err, GW_E_INPUT, "%s: %s.%s is missing", file, path, key);
        return GW_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s.%s must be a non-empty string", file, path, key);
    if (!gw_utf8_valid(json_string_value(v), json_string_length(v)))
        return gw_fail(err, GW_E_INPUT, "%s: %s.%s is not valid UTF-8", file, path, key);
    *out = json_string_value(v);
    return GW_OK;
}

/* key of obj as an array (NULL when absent); error when present but not an array. */
static enum gw_code get_array(const char *file, const char *path, json_t *obj, const char *key,
                              bool required, json_t **out, struct gw_error *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v && !required)
        return GW_OK;
    if (!json_is_array(v) || (required && json_array_size(v) == 0))
        return gw_fail(err, GW_E_INPUT, "%s: %s.%s must be a%s array", file, path, key,
                       required ? " non-empty" : "n");
    *out = v;
    return GW_OK;
}

/* ---------------------------------------------------------------- dependsOn */

static enum gw_code parse_dep(const char *file, const char *path, json_t *dj, struct map_dep *d,
                              struct gw_error *err)
{
    const char *prop, *system, *value, *want;
    enum gw_code rc;
    int v = 0;
    bool ok;

    if (!json_is_object(dj))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = get_str(file, path, dj, "property", true, &prop, err)) ||
        (rc = get_str(file, path, dj, "system", false, &system, err)) ||
        (rc = get_str(file, path, dj, "value", true, &value, err)))
        return rc;
    if (strcmp(prop, MAP_PROP_REGION) == 0) {
        d->kind = MAP_DEP_REGION;
        want = MAP_CS_REGION;
        ok = map_region_parse(value, (enum map_region *)&v);
    } else if (strcmp(prop, MAP_PROP_LATERALITY) == 0) {
        d->kind = MAP_DEP_LATERALITY;
        want = MAP_CS_LATERALITY;
        ok = map_laterality_parse(value, (enum map_laterality *)&v);
    } else if (strcmp(prop, MAP_PROP_GUIDANCE) == 0) {
        d->kind = MAP_DEP_GUIDANCE;
        want = MAP_CS_GUIDANCE;
        ok = map_guidance_parse(value, (enum map_guidance *)&v);
    } else {
        return gw_fail(err, GW_E_INPUT, "%s: %s.property \"%s\" is not a property we know", file,
                       path, prop);
    }
    if (system && strcmp(system, want) != 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s.system must be %s", file, path, want);
    if (!ok)
        return gw_fail(err, GW_E_INPUT, "%s: %s.value \"%s\" is not a code of %s", file, path,
                       value, want);
    d->value = v;
    return GW_OK;
}

/* product entries share dependsOn's shape; we check it and otherwise ignore them. */
static enum gw_code check_products(const char *file, const char *path, json_t *arr,
                                   struct gw_error *err)
{
    size_t i;
    json_t *p;
    const char *s;
    enum gw_code rc;
    char sub[MAP_PATH_MAX];

    json_array_foreach (arr, i, p) {
        gw_format(sub, sizeof sub, "%s.product[%zu]", path, i);
        if (!json_is_object(p))
            return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, sub);
        if ((rc = get_str(file, sub, p, "property", true, &s, err)))
            return rc;
        if (!is_uri(s))
            return gw_fail(err, GW_E_INPUT, "%s: %s.property must be a URI", file, sub);
        if ((rc = get_str(file, sub, p, "value", true, &s, err)))
            return rc;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- targets and elements */

static enum gw_code parse_target(struct map_set *set, const char *file, const char *path,
                                 json_t *tj, struct map_target *t, struct gw_error *err)
{
    const char *eq;
    json_t *deps, *products, *dj;
    struct map_dep *arr;
    enum gw_code rc;
    size_t i;
    char sub[MAP_PATH_MAX];

    if (!json_is_object(tj))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = get_str(file, path, tj, "code", false, &t->code, err)) ||
        (rc = get_str(file, path, tj, "display", false, &t->display, err)) ||
        (rc = get_str(file, path, tj, "comment", false, &t->comment, err)) ||
        (rc = get_str(file, path, tj, "equivalence", true, &eq, err)))
        return rc;
    if (!map_equivalence_parse(eq, &t->eq))
        return gw_fail(err, GW_E_INPUT,
                       "%s: %s.equivalence \"%s\" is not an R4 ConceptMapEquivalence code", file,
                       path, eq);
    if (!t->code && t->eq != MAP_EQ_UNMATCHED)
        return gw_fail(err, GW_E_INPUT,
                       "%s: %s.code is missing (only unmatched targets may omit it)", file, path);
    if (t->code && strlen(t->code) > MAP_MAX_CODE)
        return gw_fail(err, GW_E_LIMIT, "%s: %s.code is longer than %d", file, path, MAP_MAX_CODE);
    /* R4 cmd-1: a narrower or inexact map SHALL carry a comment. */
    if ((t->eq == MAP_EQ_NARROWER || t->eq == MAP_EQ_INEXACT) && !t->comment)
        return gw_fail(err, GW_E_INPUT, "%s: %s.comment is required when equivalence is %s (cmd-1)",
                       file, path, eq);
    if ((rc = get_array(file, path, tj, "dependsOn", false, &deps, err)) ||
        (rc = get_array(file, path, tj, "product", false, &products, err)))
        return rc;
    if (products && (rc = check_products(file, path, products, err)))
        return rc;
    if (!deps || json_array_size(deps) == 0)
        return GW_OK;
    if (json_array_size(deps) > MAP_MAX_DEPENDS)
        return gw_fail(err, GW_E_LIMIT, "%s: %s.dependsOn has more than %d entries", file, path,
                       MAP_MAX_DEPENDS);
    arr = map_arena_alloc(&set->arena, json_array_size(deps) * sizeof *arr);
    if (!arr)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (deps, i, dj) {
        gw_format(sub, sizeof sub, "%s.dependsOn[%zu]", path, i);
        if ((rc = parse_dep(file, sub, dj, &arr[i], err)))
            return rc;
    }
    t->deps = arr;
    t->n_deps = json_array_size(deps);
    return GW_OK;
}

static enum gw_code parse_element(struct map_set *set, const char *file, const char *path,
                                  struct map_group *g, json_t *ej, struct map_element *e,
                                  struct gw_error *err)
{
    json_t *targets, *tj;
    struct map_target *arr;
    char key[MAP_MAX_CODE + 1], sub[160];
    enum gw_code rc;
    size_t i;

    if (!json_is_object(ej))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = get_str(file, path, ej, "code", true, &e->code, err)) ||
        (rc = get_str(file, path, ej, "display", false, &e->display, err)) ||
        (rc = get_array(file, path, ej, "target", false, &targets, err)))
        return rc;
    if (map_code_key(g->source, e->code, key, sizeof key) < 0)
        return gw_fail(err, GW_E_INPUT, "%s: %s.code \"%s\" is not a valid code of %s", file, path,
                       e->code, g->source_written);
    if (!(e->key = map_arena_strdup(&set->arena, key)))
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    e->group = g;
    if (!targets || json_array_size(targets) == 0)
        return GW_OK;
    if (json_array_size(targets) > MAP_MAX_TARGETS)
        return gw_fail(err, GW_E_LIMIT, "%s: %s.target has more than %d entries", file, path,
                       MAP_MAX_TARGETS);
    arr = map_arena_alloc(&set->arena, json_array_size(targets) * sizeof *arr);
    if (!arr)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    json_array_foreach (targets, i, tj) {
        gw_format(sub, sizeof sub, "%s.target[%zu]", path, i);
        if ((rc = parse_target(set, file, sub, tj, &arr[i], err)))
            return rc;
    }
    e->targets = arr;
    e->n_targets = json_array_size(targets);
    return GW_OK;
}

static enum gw_code parse_group(struct map_set *set, const char *file, const char *path, json_t *gj,
                                struct map_group *g, size_t *n_rows, struct gw_error *err)
{
    json_t *elements, *ej;
    struct map_element *arr;
    enum gw_code rc;
    size_t i;
    char sub[MAP_PATH_MAX];

    if (!json_is_object(gj))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be an object", file, path);
    if ((rc = get_str(file, path, gj, "source", true, &g->source_written, err)) ||
        (rc = get_str(file, path, gj, "target", true, &g->target_written, err)) ||
        (rc = get_array(file, path, gj, "element", true, &elements, err)))
        return rc;
    if (!is_uri(g->source_written) || !is_uri(g->target_written))
        return gw_fail(err, GW_E_INPUT, "%s: %s.source and .target must be absolute URIs", file,
                       path);
    g->source = map_system_canonical(g->source_written);
    g->target = map_system_canonical(g->target_written);
    *n_rows += json_array_size(elements);
    if (*n_rows > MAP_MAX_ELEMENTS)
        return gw_fail(err, GW_E_LIMIT, "%s: more than %d rows in the set", file, MAP_MAX_ELEMENTS);
    arr = map_arena_alloc(&set->arena, json_array_size(elements) * sizeof *arr);
    if (!arr)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    g->elements = arr;
    g->n_elements = json_array_size(elements);
    json_array_foreach (elements, i, ej) {
        gw_format(sub, sizeof sub, "%s.element[%zu]", path, i);
        arr[i].index = i;
        if ((rc = parse_element(set, file, sub, g, ej, &arr[i], err)))
            return rc;
    }
    return GW_OK;
}

static enum gw_code parse_header(const char *file, json_t *doc, struct map_cmap *m,
                                 struct gw_error *err)
{
    const char *rt;
    enum gw_code rc;

    if (!json_is_object(doc))
        return gw_fail(err, GW_E_INPUT, "%s: not a JSON object", file);
    if ((rc = get_str(file, "ConceptMap", doc, "resourceType", true, &rt, err)))
        return rc;
    if (strcmp(rt, "ConceptMap") != 0)
        return gw_fail(err, GW_E_INPUT, "%s: resourceType is \"%s\", not ConceptMap", file, rt);
    if ((rc = get_str(file, "ConceptMap", doc, "id", true, &m->id, err)) ||
        (rc = get_str(file, "ConceptMap", doc, "url", true, &m->url, err)) ||
        (rc = get_str(file, "ConceptMap", doc, "version", true, &m->version, err)) ||
        (rc = get_str(file, "ConceptMap", doc, "status", true, &m->status, err)) ||
        (rc = get_str(file, "ConceptMap", doc, "name", false, &m->name, err)))
        return rc;
    if (!is_fhir_id(m->id))
        return gw_fail(err, GW_E_INPUT, "%s: ConceptMap.id \"%s\" is not a FHIR id", file, m->id);
    if (!is_uri(m->url))
        return gw_fail(err, GW_E_INPUT, "%s: ConceptMap.url must be an absolute URI", file);
    if (strcmp(m->status, "draft") && strcmp(m->status, "active") && strcmp(m->status, "retired") &&
        strcmp(m->status, "unknown"))
        return gw_fail(err, GW_E_INPUT, "%s: ConceptMap.status \"%s\" is not a PublicationStatus",
                       file, m->status);
    m->is_retired = strcmp(m->status, "retired") == 0;
    return GW_OK;
}

enum gw_code map_cmap_parse(struct map_set *set, const char *file, json_t *doc_new,
                            struct map_cmap *m, struct gw_error *err)
{
    json_t *groups, *gj;
    struct map_group *arr;
    enum gw_code rc;
    size_t i, n_rows = 0;
    char sub[MAP_PATH_MAX];

    m->doc = doc_new; /* owned by m from here on, even on failure */
    if (!(m->file = map_arena_strdup(&set->arena, file)))
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    if ((rc = parse_header(file, doc_new, m, err)) ||
        (rc = get_array(file, "ConceptMap", doc_new, "group", true, &groups, err)))
        return rc;
    arr = map_arena_alloc(&set->arena, json_array_size(groups) * sizeof *arr);
    if (!arr)
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", file);
    m->groups = arr;
    m->n_groups = json_array_size(groups);
    json_array_foreach (groups, i, gj) {
        gw_format(sub, sizeof sub, "ConceptMap.group[%zu]", i);
        arr[i].map = m;
        arr[i].index = i;
        if ((rc = parse_group(set, file, sub, gj, &arr[i], &n_rows, err)))
            return rc;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- the set */

static json_t *parse_json(const struct map_file *f, struct gw_error *err)
{
    json_error_t jerr;
    json_t *doc;

    if (f->len > MAP_MAX_FILE_BYTES) {
        gw_fail(err, GW_E_LIMIT, "%s: %zu bytes exceeds %d", f->name, f->len, MAP_MAX_FILE_BYTES);
        return NULL;
    }
    doc = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        gw_fail(err, GW_E_INPUT, "%s: not valid JSON (line %d, column %d: %s)", f->name, jerr.line,
                jerr.column, jerr.text);
    return doc;
}

static const char *base_name(const char *name)
{
    const char *slash = strrchr(name, '/');

    return slash ? slash + 1 : name;
}

static enum gw_code load_one(struct map_set *set, const struct map_file *f, struct gw_error *err)
{
    const char *base = base_name(f->name);
    json_t *doc = parse_json(f, err);
    enum gw_code rc;

    if (!doc)
        return err ? err->code : GW_E_INPUT;
    if ((strcmp(base, RULES_FILE) == 0 && set->rules_doc) ||
        (strcmp(base, INDICATIONS_FILE) == 0 && set->indications_doc) ||
        (strcmp(base, MAP_SYNONYMS_FILE) == 0 && set->synonyms_doc)) {
        json_decref(doc);
        return gw_fail(err, GW_E_INPUT, "%s: given twice", f->name);
    }
    if (strcmp(base, RULES_FILE) == 0) {
        set->rules_doc = doc;
        return map_rules_parse(set, f->name, doc, err);
    }
    if (strcmp(base, INDICATIONS_FILE) == 0) {
        set->indications_doc = doc;
        return map_indications_parse(set, f->name, doc, err);
    }
    if (strcmp(base, MAP_SYNONYMS_FILE) == 0) {
        set->synonyms_doc = doc;
        return map_synonyms_parse(set, f->name, doc, err);
    }
    rc = map_cmap_parse(set, f->name, doc, &set->maps[set->n_maps], err);
    set->n_maps++; /* counted even on failure so the document is released */
    return rc;
}

static enum gw_code check_unique(const struct map_set *set, struct gw_error *err)
{
    size_t i, j, rows = 0;

    for (i = 0; i < set->n_maps; i++) {
        for (j = 0; j < set->maps[i].n_groups; j++)
            rows += set->maps[i].groups[j].n_elements;
        for (j = 0; j < i; j++) {
            if (strcmp(set->maps[i].id, set->maps[j].id) == 0)
                return gw_fail(err, GW_E_INPUT, "%s: ConceptMap.id \"%s\" is also used by %s",
                               set->maps[i].file, set->maps[i].id, set->maps[j].file);
            if (strcmp(set->maps[i].url, set->maps[j].url) == 0)
                return gw_fail(err, GW_E_INPUT, "%s: ConceptMap.url is also used by %s",
                               set->maps[i].file, set->maps[j].file);
        }
    }
    if (rows > MAP_MAX_ELEMENTS)
        return gw_fail(err, GW_E_LIMIT, "%s: more than %d rows in all maps", set->label,
                       MAP_MAX_ELEMENTS);
    return GW_OK;
}

enum gw_code map_set_load_files(const struct map_file *files, size_t n, const char *label,
                                struct map_set **out, struct gw_error *err)
{
    struct map_set *set;
    enum gw_code rc = GW_OK;
    size_t i;

    *out = NULL;
    if (n > MAP_MAX_FILES)
        return gw_fail(err, GW_E_LIMIT, "%s: more than %d files", label, MAP_MAX_FILES);
    set = calloc(1, sizeof *set);
    if (!set)
        return gw_fail(err, GW_E_NOMEM, "no memory for a map set");
    atomic_init(&set->refs, 1);
    set->loaded_at_ms = gw_now_ms();
    set->label = gw_strdup(label ? label : "mappings");
    set->maps = map_arena_alloc(&set->arena, (n ? n : 1) * sizeof *set->maps);
    if (!set->label || !set->maps)
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a map set");
    for (i = 0; !rc && i < n; i++)
        rc = load_one(set, &files[i], err);
    if (!rc && set->n_maps == 0)
        rc = gw_fail(err, GW_E_INPUT, "%s: no ConceptMap file", set->label);
    if (!rc)
        rc = check_unique(set, err);
    if (!rc)
        rc = map_index_build(set, err);
    if (rc) {
        map_set_unref(set);
        return rc;
    }
    *out = set;
    return GW_OK;
}

/* ---------------------------------------------------------------- folders */

struct dir_files {
    struct map_file *files;
    char **names, **datas;
    size_t n;
};

static void dir_files_free(struct dir_files *d)
{
    size_t i;

    for (i = 0; i < d->n; i++) {
        free(d->names[i]);
        if (d->datas)
            free(d->datas[i]);
    }
    free(d->files);
    free(d->names);
    free(d->datas);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum gw_code read_file(const char *path, char **data, size_t *len, struct gw_error *err)
{
    FILE *fp = fopen(path, "rb");
    struct gw_buf b;
    char chunk[8192];
    size_t got;

    *data = NULL;
    if (!fp)
        return gw_fail(err, GW_E_IO, "%s: cannot open (%s)", path, strerror(errno));
    gw_buf_init(&b, MAP_MAX_FILE_BYTES + 1);
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
        gw_buf_append(&b, chunk, got);
    if (ferror(fp)) {
        fclose(fp);
        gw_buf_cleanup(&b);
        return gw_fail(err, GW_E_IO, "%s: read error", path);
    }
    fclose(fp);
    if (gw_buf_finish(&b, path, err)) {
        gw_buf_cleanup(&b);
        return err ? err->code : GW_E_LIMIT;
    }
    if (b.len == 0) {
        gw_buf_cleanup(&b);
        return gw_fail(err, GW_E_INPUT, "%s: empty file", path);
    }
    *data = gw_buf_steal(&b, len);
    return *data ? GW_OK : gw_fail(err, GW_E_NOMEM, "no memory for %s", path);
}

static enum gw_code list_dir(const char *dir, struct dir_files *d, struct gw_error *err)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    size_t cap = 0, len;
    char **grown;

    if (!dp)
        return gw_fail(err, GW_E_IO, "%s: cannot open the mappings folder (%s)", dir,
                       strerror(errno));
    while ((de = readdir(dp)) != NULL) {
        len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (d->n == MAP_MAX_FILES) {
            closedir(dp);
            return gw_fail(err, GW_E_LIMIT, "%s: more than %d JSON files", dir, MAP_MAX_FILES);
        }
        grown = gw_grow(d->names, &cap, d->n, sizeof *grown, 16);
        if (!grown) {
            closedir(dp);
            return gw_fail(err, GW_E_NOMEM, "no memory listing %s", dir);
        }
        d->names = grown;
        if (!(d->names[d->n] = map_strf("%s/%s", dir, de->d_name))) {
            closedir(dp);
            return gw_fail(err, GW_E_NOMEM, "no memory listing %s", dir);
        }
        d->n++;
    }
    closedir(dp);
    if (d->n)
        qsort(d->names, d->n, sizeof *d->names, cmp_names);
    return GW_OK;
}

enum gw_code map_set_load(const char *dir, struct map_set **out, struct gw_error *err)
{
    struct dir_files d = {0};
    enum gw_code rc;
    size_t i, n_listed;

    *out = NULL;
    rc = list_dir(dir, &d, err);
    n_listed = d.n;
    d.datas = calloc(n_listed ? n_listed : 1, sizeof *d.datas);
    d.files = calloc(n_listed ? n_listed : 1, sizeof *d.files);
    if (!rc && (!d.datas || !d.files))
        rc = gw_fail(err, GW_E_NOMEM, "no memory reading %s", dir);
    for (i = 0; !rc && i < n_listed; i++) {
        rc = read_file(d.names[i], &d.datas[i], &d.files[i].len, err);
        d.files[i].name = d.names[i];
        d.files[i].data = d.datas[i];
    }
    if (!rc)
        rc = map_set_load_files(d.files, n_listed, dir, out, err);
    dir_files_free(&d);
    return rc;
}
