/* set.c -- map sets as shared, immutable values: the arena behind them, reference counts,
 * the holder that swaps sets on SIGHUP, the code systems we know, and the read views
 * (summary, Bundle, read by id) of GET /fhir/ConceptMap.
 *
 * Promises: a set is freed exactly once, after its last reference is dropped; the holder
 * never hands out a set without a reference, so a reload cannot free a set a request uses.
 */
#include "mapping/mapping_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arena */

#define ARENA_CHUNK 16384

struct map_chunk {
    struct map_chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
};

void *map_arena_alloc(struct map_arena *a, size_t n)
{
    struct map_chunk *c = a->head;
    size_t align = _Alignof(max_align_t), need = (n + align - 1) / align * align;

    if (need < n)
        return NULL;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;

        c = calloc(1, sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    c->used += need;
    return c->data + c->used - need;
}

char *map_arena_strdup(struct map_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *p = map_arena_alloc(a, n + 1);

    if (p)
        memcpy(p, s, n + 1);
    return p;
}

void map_arena_free(struct map_arena *a)
{
    while (a->head) {
        struct map_chunk *next = a->head->next;

        free(a->head);
        a->head = next;
    }
}

char *map_strf(const char *fmt, ...)
{
    char buf[MAP_TEXT_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return NULL;
    return gw_strndup(buf, (size_t)n);
}

/* ---------------------------------------------------------------- systems */

struct sysdef {
    const char *uri, *name;
    enum map_norm norm;
    const char *fallback;
    const char *aliases[4];
};

/* OIDs are HL7's registrations; the CIM-10 URI is the French terminology server's. */
static const struct sysdef systems[] = {
    {MAP_SYS_ICD10,
     "ICD-10",
     MAP_NORM_ICD,
     NULL,
     {"https://smt.esante.gouv.fr/terminologie-cim-10", "urn:oid:2.16.840.1.113883.6.3",
      "2.16.840.1.113883.6.3", NULL}},
    {MAP_SYS_ICD10CM,
     "ICD-10-CM",
     MAP_NORM_ICD,
     MAP_SYS_ICD10,
     {"urn:oid:2.16.840.1.113883.6.90", "2.16.840.1.113883.6.90", NULL, NULL}},
    {MAP_SYS_SNOMED,
     "SNOMED CT",
     MAP_NORM_EXACT,
     NULL,
     {"urn:oid:2.16.840.1.113883.6.96", "2.16.840.1.113883.6.96", NULL, NULL}},
    {MAP_SYS_CCAM,
     "CCAM",
     MAP_NORM_UPPER,
     NULL,
     {"urn:oid:1.2.250.1.213.2.5", "1.2.250.1.213.2.5", NULL, NULL}},
    {MAP_SYS_CPT,
     "CPT",
     MAP_NORM_EXACT,
     NULL,
     {"urn:oid:2.16.840.1.113883.6.12", "2.16.840.1.113883.6.12", NULL, NULL}},
    {MAP_SYS_LOINC,
     "LOINC",
     MAP_NORM_EXACT,
     NULL,
     {"urn:oid:2.16.840.1.113883.6.1", "2.16.840.1.113883.6.1", NULL, NULL}},
    {MAP_SYS_ATC,
     "ATC",
     MAP_NORM_UPPER,
     NULL,
     {"urn:oid:2.16.840.1.113883.6.73", "2.16.840.1.113883.6.73", NULL, NULL}},
    {MAP_CS_PROCEDURE, "procedure", MAP_NORM_EXACT, NULL, {NULL}},
    {MAP_CS_REGION, "region", MAP_NORM_EXACT, NULL, {NULL}},
    {MAP_CS_LATERALITY, "laterality", MAP_NORM_EXACT, NULL, {NULL}},
    {MAP_CS_GUIDANCE, "guidance", MAP_NORM_EXACT, NULL, {NULL}},
    {MAP_CS_TRIAGE, "triage flag", MAP_NORM_EXACT, NULL, {NULL}},
};

static const struct sysdef *sys_find(const char *system)
{
    size_t i, j;

    if (!system)
        return NULL;
    for (i = 0; i < sizeof systems / sizeof systems[0]; i++) {
        if (strcmp(systems[i].uri, system) == 0)
            return &systems[i];
        for (j = 0; j < 4 && systems[i].aliases[j]; j++)
            if (strcmp(systems[i].aliases[j], system) == 0)
                return &systems[i];
    }
    return NULL;
}

const char *map_system_canonical(const char *system)
{
    const struct sysdef *d = sys_find(system);

    return d ? d->uri : system;
}

const char *map_system_name(const char *system)
{
    const struct sysdef *d = sys_find(system);

    return d ? d->name : NULL;
}

bool map_system_known(const char *system)
{
    return sys_find(system) != NULL;
}

enum map_norm map_system_norm(const char *system)
{
    const struct sysdef *d = sys_find(system);

    return d ? d->norm : MAP_NORM_EXACT;
}

const char *map_system_fallback(const char *system)
{
    const struct sysdef *d = sys_find(system);

    return d ? d->fallback : NULL;
}

int map_code_key(const char *system, const char *code, char *buf, size_t cap)
{
    enum map_norm norm = map_system_norm(system);
    size_t n = 0;
    const unsigned char *p;

    if (!code || !*code || cap == 0)
        return -1;
    for (p = (const unsigned char *)code; *p; p++) {
        unsigned char c = *p;

        if (norm == MAP_NORM_ICD) {
            if (c == '.' || c == '+' || c == '*' || c == ' ')
                continue;
            if (c == 0xE2 && p[1] == 0x80 && p[2] == 0xA0) { /* dagger, U+2020 */
                p += 2;
                continue;
            }
            if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
                return -1;
        } else if (c <= ' ' || c == 0x7F) {
            return -1;
        }
        if (norm != MAP_NORM_EXACT && c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (n + 1 >= cap)
            return -1;
        buf[n++] = (char)c;
    }
    if (n == 0)
        return -1;
    buf[n] = '\0';
    return (int)n;
}

/* ---------------------------------------------------------------- enums */

static const char *const region_names[] = {NULL, "cervical", "thoracic", "lumbar", "sacral"};
static const char *const lat_names[] = {NULL, "left", "right", "bilateral"};
static const char *const guidance_names[] = {NULL, "fluoroscopy", "ct"};
static const char *const eq_names[] = {"relatedto", "equivalent", "equal",       "wider",
                                       "subsumes",  "narrower",   "specializes", "inexact",
                                       "unmatched", "disjoint"};

static bool parse_name(const char *const *names, size_t n, const char *s, int *out)
{
    size_t i;

    for (i = 0; s && i < n; i++) {
        if (names[i] && strcmp(names[i], s) == 0) {
            *out = (int)i;
            return true;
        }
    }
    return false;
}

#define NAME_OF(tab, v) ((size_t)(v) < sizeof tab / sizeof tab[0] ? tab[(size_t)(v)] : NULL)

const char *map_region_name(enum map_region r)
{
    return NAME_OF(region_names, r);
}

bool map_region_parse(const char *s, enum map_region *out)
{
    int v;

    if (!parse_name(region_names, 5, s, &v))
        return false;
    *out = (enum map_region)v;
    return true;
}

const char *map_laterality_name(enum map_laterality l)
{
    return NAME_OF(lat_names, l);
}

bool map_laterality_parse(const char *s, enum map_laterality *out)
{
    int v;

    if (!parse_name(lat_names, 4, s, &v))
        return false;
    *out = (enum map_laterality)v;
    return true;
}

const char *map_guidance_name(enum map_guidance g)
{
    return NAME_OF(guidance_names, g);
}

bool map_guidance_parse(const char *s, enum map_guidance *out)
{
    int v;

    if (!parse_name(guidance_names, 3, s, &v))
        return false;
    *out = (enum map_guidance)v;
    return true;
}

const char *map_equivalence_name(enum map_equivalence e)
{
    return NAME_OF(eq_names, e);
}

bool map_equivalence_parse(const char *s, enum map_equivalence *out)
{
    int v;

    if (!parse_name(eq_names, 10, s, &v))
        return false;
    *out = (enum map_equivalence)v;
    return true;
}

/* ---------------------------------------------------------------- references */

struct map_set *map_set_ref(struct map_set *set)
{
    if (set)
        atomic_fetch_add(&set->refs, 1);
    return set;
}

void map_set_unref(struct map_set *set)
{
    size_t i;

    if (!set || atomic_fetch_sub(&set->refs, 1) != 1)
        return;
    for (i = 0; i < set->n_maps; i++)
        json_decref(set->maps[i].doc);
    json_decref(set->rules_doc);
    json_decref(set->indications_doc);
    json_decref(set->synonyms_doc);
    free(set->label);
    map_arena_free(&set->arena);
    free(set);
}

const char *map_set_label(const struct map_set *set)
{
    return set->label;
}

int64_t map_set_loaded_at_ms(const struct map_set *set)
{
    return set->loaded_at_ms;
}

size_t map_set_count(const struct map_set *set)
{
    return set->n_maps;
}

/* ---------------------------------------------------------------- read views */

json_t *map_set_summary(const struct map_set *set)
{
    char when[GW_INSTANT_LEN];
    json_t *maps = json_array(), *out;
    size_t i;

    gw_time_instant(set->loaded_at_ms, when);
    for (i = 0; maps && i < set->n_maps; i++) {
        const struct map_cmap *m = &set->maps[i];

        if (json_array_append_new(maps, json_pack("{s:s, s:s, s:s, s:s}", "id", m->id, "url",
                                                  m->url, "version", m->version, "file", m->file)))
            break;
    }
    out = json_pack("{s:s, s:s, s:o?, s:s?, s:s?, s:s?}", "label", set->label, "loadedAt", when,
                    "maps", maps, "rules", set->rules_version, "indications",
                    set->indications_version, "synonyms",
                    set->synonyms ? set->synonyms->version : NULL);
    return out; /* json_pack's "o" steals maps even on failure */
}

json_t *map_set_read(const struct map_set *set, const char *id)
{
    size_t i;

    for (i = 0; id && i < set->n_maps; i++)
        if (strcmp(set->maps[i].id, id) == 0)
            return json_deep_copy(set->maps[i].doc);
    return NULL;
}

json_t *map_set_bundle(const struct map_set *set, const char *base_url, const char *url)
{
    json_t *entries = json_array(), *bundle;
    size_t i, n = 0;

    if (!entries)
        return NULL;
    for (i = 0; i < set->n_maps; i++) {
        const struct map_cmap *m = &set->maps[i];
        char *full;
        json_t *entry;

        if (url && strcmp(url, m->url) != 0)
            continue;
        full = map_strf("%s/ConceptMap/%s", base_url ? base_url : "", m->id);
        entry = full ? json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", full, "resource",
                                 json_deep_copy(m->doc), "search", "mode", "match")
                     : NULL;
        free(full);
        if (json_array_append_new(entries, entry)) {
            json_decref(entries);
            return NULL;
        }
        n++;
    }
    bundle = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type", "searchset",
                       "total", (json_int_t)n, "entry", entries);
    return bundle;
}

/* ---------------------------------------------------------------- holder */

struct map_holder {
    pthread_mutex_t lock;
    char *dir;
    struct map_set *set;
    bool has_error;
    struct gw_error last;
};

enum gw_code map_holder_create(const char *dir, struct map_holder **out, struct gw_error *err)
{
    struct map_holder *h;
    enum gw_code rc;

    *out = NULL;
    h = calloc(1, sizeof *h);
    if (!h || !(h->dir = gw_strdup(dir))) {
        free(h);
        return gw_fail(err, GW_E_NOMEM, "no memory for the mappings holder");
    }
    rc = map_set_load(dir, &h->set, err);
    if (rc || pthread_mutex_init(&h->lock, NULL) != 0) {
        map_set_unref(h->set);
        free(h->dir);
        free(h);
        return rc ? rc : gw_fail(err, GW_E_INTERNAL, "cannot create the mappings lock");
    }
    *out = h;
    return GW_OK;
}

void map_holder_destroy(struct map_holder *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->lock);
    map_set_unref(h->set);
    free(h->dir);
    free(h);
}

struct map_set *map_holder_get(struct map_holder *h)
{
    struct map_set *set;

    pthread_mutex_lock(&h->lock);
    set = map_set_ref(h->set);
    pthread_mutex_unlock(&h->lock);
    return set;
}

enum gw_code map_holder_reload(struct map_holder *h, struct gw_error *err)
{
    struct map_set *fresh = NULL, *old = NULL;
    struct gw_error local;
    enum gw_code rc = map_set_load(h->dir, &fresh, &local);

    pthread_mutex_lock(&h->lock);
    if (rc) {
        h->has_error = true;
        h->last = local;
    } else {
        old = h->set;
        h->set = fresh;
        h->has_error = false;
        gw_error_clear(&h->last);
    }
    pthread_mutex_unlock(&h->lock);
    map_set_unref(old); /* readers that took a reference keep it alive */
    if (rc && err)
        *err = local;
    return rc;
}

bool map_holder_error(struct map_holder *h, struct gw_error *err)
{
    bool has;

    pthread_mutex_lock(&h->lock);
    has = h->has_error;
    if (has && err)
        *err = h->last;
    pthread_mutex_unlock(&h->lock);
    return has;
}
