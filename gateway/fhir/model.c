/* model.c -- queries over the generated R4 model (model_gen.c): structures, elements and
 * choice types, reference targets, required value sets and search parameters.
 *
 * The tables are const and never change, so every function here is thread-safe and returns
 * pointers into static storage. The element names of every structure, choice names spelt
 * out, are also kept sorted (built once, on first use) so that a lookup, which every JSON
 * member parsed, validated or written costs, is a binary search rather than a scan.
 */
#include "fhir/fhir_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- structures */

const struct fhir_struct_def *fhir_struct_at(unsigned index)
{
    return index < fhir_model.n_structs ? &fhir_model_structs[index] : NULL;
}

const char *fhir_struct_name(const struct fhir_struct_def *s)
{
    return FHIR_POOL(s->name);
}

unsigned fhir_struct_index(const struct fhir_struct_def *s)
{
    return (unsigned)(s - fhir_model_structs);
}

static bool name_is(const char *pooled, const char *name, size_t len)
{
    return strncmp(pooled, name, len) == 0 && pooled[len] == '\0';
}

/* Binary search over structures [lo, hi), which are sorted by name. */
static const struct fhir_struct_def *find_sorted(size_t lo, size_t hi, const char *name, size_t len)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *sn = FHIR_POOL(fhir_model_structs[mid].name);
        int c = strncmp(sn, name, len);

        if (c == 0 && sn[len] != '\0')
            c = 1;
        if (c == 0)
            return &fhir_model_structs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct fhir_struct_def *fhir_struct_find(const char *name, size_t len)
{
    size_t np = fhir_model.n_primitives, nc = fhir_model.n_complex;
    const struct fhir_struct_def *s = find_sorted(0, np, name, len);

    if (!s)
        s = find_sorted(np, np + nc, name, len);
    if (!s)
        s = find_sorted(np + nc, np + nc + fhir_model.n_resources, name, len);
    return s;
}

static const struct fhir_struct_def *resource_lookup(const char *name, size_t len)
{
    size_t first = fhir_model.n_primitives + fhir_model.n_complex;

    return find_sorted(first, first + fhir_model.n_resources, name, len);
}

const struct fhir_struct_def *fhir_resource_find(const char *name, size_t len)
{
    const struct fhir_struct_def *s = resource_lookup(name, len);

    return s && !s->abstract ? s : NULL;
}

bool fhir_is_resource_type(const char *name)
{
    return name && fhir_resource_find(name, strlen(name)) != NULL;
}

const char *fhir_resource_type(const json_t *resource)
{
    return json_string_value(json_object_get(resource, "resourceType"));
}

/* ---------------------------------------------------------------- elements */

const struct fhir_elem_def *fhir_struct_elem(const struct fhir_struct_def *s, unsigned i)
{
    return i < s->n_elems ? &fhir_model_elems[s->first_elem + i] : NULL;
}

const char *fhir_elem_name(const struct fhir_elem_def *e)
{
    return FHIR_POOL(e->name);
}

const struct fhir_type_ref *fhir_elem_type(const struct fhir_elem_def *e, unsigned i)
{
    return i < e->n_types ? &fhir_model_types[e->first_type + i] : NULL;
}

const struct fhir_struct_def *fhir_type_struct(const struct fhir_type_ref *t)
{
    return &fhir_model_structs[t->type];
}

/* True when suffix (len bytes) is type name tn with its first letter upper-cased. */
static bool is_choice_suffix(const char *suffix, size_t len, const char *tn)
{
    return len > 0 && suffix[0] == toupper((unsigned char)tn[0]) &&
           strncmp(suffix + 1, tn + 1, len - 1) == 0 && tn[len] == '\0';
}

/* The element names of each structure: non-choice names from the pool, choice names
 * ("valueQuantity") spelt out in one block; found through an open-addressing hash table
 * keyed by structure and name. */
struct name_entry {
    const char *name;
    uint16_t len;
    uint16_t elem; /* index in the structure */
    uint16_t type; /* for choice names, the type's index in the element */
};

static struct {
    struct name_entry *entries;
    uint32_t *first; /* n_structs + 1 offsets into entries */
    uint32_t *slots; /* 0: empty, else 1 + an index into entries */
    uint32_t mask;   /* slots has mask + 1 (a power of two, at least twice the entries) */
    char *choice_names;
    bool ready;
} names;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

/* FNV-1a of the structure's index and the name. */
static uint32_t name_hash(unsigned si, const char *name, size_t len)
{
    uint32_t h = (2166136261u ^ si) * 16777619u;
    size_t i;

    for (i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

/* The slot holding structure si's name, or the empty slot where it would go. */
static uint32_t *name_slot(unsigned si, const char *name, size_t len)
{
    uint32_t at = name_hash(si, name, len) & names.mask, v;

    for (; (v = names.slots[at]) != 0; at = (at + 1) & names.mask) {
        const struct name_entry *m = &names.entries[v - 1];

        if (v - 1 >= names.first[si] && v - 1 < names.first[si + 1] && m->len == len &&
            memcmp(m->name, name, len) == 0)
            break;
    }
    return &names.slots[at];
}

/* Room for every choice name: stem and type name lengths, summed over the model. */
static size_t choice_bytes(size_t *n_entries)
{
    size_t bytes = 0, i, k;

    *n_entries = 0;
    for (i = 0; i < fhir_model.n_elems; i++) {
        const struct fhir_elem_def *e = &fhir_model_elems[i];

        if (!(e->flags & FHIR_EL_CHOICE)) {
            (*n_entries)++;
            continue;
        }
        for (k = 0; k < e->n_types; k++)
            bytes += strlen(FHIR_POOL(e->name)) +
                     strlen(FHIR_POOL(fhir_type_struct(fhir_elem_type(e, (unsigned)k))->name)) + 1;
        *n_entries += e->n_types;
    }
    return bytes;
}

/* Each name into the table; a name already there stays (the first element wins, as in a
 * scan). */
static void fill_slots(void)
{
    unsigned si;
    uint32_t i;

    for (si = 0; si < fhir_model.n_structs; si++)
        for (i = names.first[si]; i < names.first[si + 1]; i++) {
            uint32_t *slot = name_slot(si, names.entries[i].name, names.entries[i].len);

            if (*slot == 0)
                *slot = i + 1;
        }
}

static void build_names(void)
{
    size_t n_entries, at = 0, used = 0, bytes = choice_bytes(&n_entries), si, i, k, n_slots = 64;

    while (n_slots < 2 * n_entries)
        n_slots *= 2;
    names.entries = malloc((n_entries ? n_entries : 1) * sizeof *names.entries);
    names.first = malloc((fhir_model.n_structs + 1) * sizeof *names.first);
    names.slots = calloc(n_slots, sizeof *names.slots);
    names.choice_names = malloc(bytes ? bytes : 1);
    if (!names.entries || !names.first || !names.slots || !names.choice_names ||
        n_entries >= UINT32_MAX / 2) {
        free(names.entries);
        free(names.first);
        free(names.slots);
        free(names.choice_names);
        memset(&names, 0, sizeof names); /* lookups scan the model instead */
        return;
    }
    names.mask = (uint32_t)(n_slots - 1);
    for (si = 0; si < fhir_model.n_structs; si++) {
        const struct fhir_struct_def *s = &fhir_model_structs[si];

        names.first[si] = (uint32_t)at;
        for (i = 0; i < s->n_elems; i++) {
            const struct fhir_elem_def *e = &fhir_model_elems[s->first_elem + i];

            if (!(e->flags & FHIR_EL_CHOICE)) {
                names.entries[at++] = (struct name_entry){
                    FHIR_POOL(e->name), (uint16_t)strlen(FHIR_POOL(e->name)), (uint16_t)i, 0};
                continue;
            }
            for (k = 0; k < e->n_types; k++) {
                char *name = names.choice_names + used;
                size_t len =
                    strlen(FHIR_POOL(e->name)) +
                    strlen(FHIR_POOL(fhir_type_struct(fhir_elem_type(e, (unsigned)k))->name));

                fhir_choice_name(name, bytes - used, e, fhir_elem_type(e, (unsigned)k));
                used += len + 1;
                names.entries[at++] =
                    (struct name_entry){name, (uint16_t)len, (uint16_t)i, (uint16_t)k};
            }
        }
    }
    names.first[fhir_model.n_structs] = (uint32_t)at;
    fill_slots();
    names.ready = true;
}

/* The scan the index stands for (used when it could not be built). */
static const struct fhir_elem_def *scan_elems(const struct fhir_struct_def *s, const char *name,
                                              size_t len, const struct fhir_type_ref **type_out)
{
    unsigned i, k;

    for (i = 0; i < s->n_elems; i++) {
        const struct fhir_elem_def *e = &fhir_model_elems[s->first_elem + i];
        const char *en = FHIR_POOL(e->name);
        size_t elen;

        if (!(e->flags & FHIR_EL_CHOICE)) {
            if (!name_is(en, name, len))
                continue;
            *type_out = e->n_types == 1 ? fhir_elem_type(e, 0) : NULL;
            return e;
        }
        elen = strlen(en);
        if (len <= elen || strncmp(en, name, elen) != 0)
            continue;
        for (k = 0; k < e->n_types; k++) {
            const struct fhir_type_ref *t = fhir_elem_type(e, k);

            if (is_choice_suffix(name + elen, len - elen, FHIR_POOL(fhir_type_struct(t)->name))) {
                *type_out = t;
                return e;
            }
        }
    }
    return NULL;
}

const struct fhir_elem_def *fhir_elem_lookup(const struct fhir_struct_def *s, const char *name,
                                             size_t len, const struct fhir_type_ref **type_out)
{
    const struct name_entry *found = NULL;
    const struct fhir_elem_def *e;
    uint32_t slot;

    *type_out = NULL;
    pthread_once(&names_once, build_names);
    if (!names.ready || memchr(name, '\0', len))
        return scan_elems(s, name, len, type_out);
    slot = *name_slot(fhir_struct_index(s), name, len);
    if (slot)
        found = &names.entries[slot - 1];
    if (!found)
        return NULL;
    e = &fhir_model_elems[s->first_elem + found->elem];
    if (e->flags & FHIR_EL_CHOICE)
        *type_out = fhir_elem_type(e, found->type);
    else
        *type_out = e->n_types == 1 ? fhir_elem_type(e, 0) : NULL;
    return e;
}

static void rank_member(struct fhir_member *m, const struct fhir_struct_def *s)
{
    bool under = m->key[0] == '_';
    unsigned k = 0;

    m->t = NULL;
    m->e = s ? fhir_elem_lookup(s, m->key + under, m->len - under, &m->t) : NULL;
    m->rank = FHIR_RANK_UNKNOWN;
    if (!m->e)
        return;
    if (m->e->flags & FHIR_EL_CHOICE)
        k = (unsigned)(m->t - fhir_elem_type(m->e, 0));
    m->rank = ((uint64_t)(m->e - fhir_struct_elem(s, 0)) << 32) | ((uint64_t)k << 1) | under;
}

struct fhir_member *fhir_members(json_t *obj, const struct fhir_struct_def *s,
                                 bool skip_resource_type, struct fhir_member *stack, size_t *n)
{
    size_t cap = json_object_size(obj), i = 0;
    struct fhir_member *m = cap <= FHIR_MEMBERS_ON_STACK ? stack : malloc(cap * sizeof *m);
    const char *key;
    json_t *v;

    *n = 0;
    if (!m)
        return NULL;
    json_object_foreach (obj, key, v) {
        if (i == cap)
            break;
        if (skip_resource_type && strcmp(key, "resourceType") == 0)
            continue;
        m[i].key = key;
        m[i].len = strlen(key);
        m[i].v = v;
        rank_member(&m[i], s);
        i++;
    }
    *n = i;
    return m;
}

void fhir_members_sort(struct fhir_member *m, size_t n)
{
    size_t i, j;

    for (i = 1; i < n; i++) { /* insertion: members mostly come in order already */
        struct fhir_member x = m[i];

        for (j = i; j > 0 && m[j - 1].rank > x.rank; j--)
            m[j] = m[j - 1];
        m[j] = x;
    }
}

void fhir_members_free(struct fhir_member *m, struct fhir_member *stack)
{
    if (m != stack)
        free(m);
}

bool fhir_choice_name(char *out, size_t size, const struct fhir_elem_def *e,
                      const struct fhir_type_ref *t)
{
    const char *stem = FHIR_POOL(e->name), *tn = FHIR_POOL(fhir_type_struct(t)->name);
    size_t a = strlen(stem), b = strlen(tn);

    if (a + b + 1 > size)
        return false;
    memcpy(out, stem, a);
    memcpy(out + a, tn, b + 1);
    out[a] = (char)toupper((unsigned char)tn[0]);
    return true;
}

bool fhir_type_allows_target(const struct fhir_type_ref *t, const char *name, size_t len)
{
    unsigned at = t->targets & ~FHIR_TY_SIMPLE_QUANTITY, i, n;

    if (at == 0)
        return true;
    n = fhir_model_targets[at];
    for (i = 1; i <= n; i++) {
        const char *tn = FHIR_POOL(fhir_model_structs[fhir_model_targets[at + i]].name);

        if (strcmp(tn, "Resource") == 0 || name_is(tn, name, len))
            return true;
    }
    return false;
}

void fhir_type_targets_text(struct gw_buf *b, const struct fhir_type_ref *t)
{
    unsigned at = t->targets & ~FHIR_TY_SIMPLE_QUANTITY, i, n;

    if (at == 0)
        return;
    n = fhir_model_targets[at];
    for (i = 1; i <= n; i++) {
        if (i > 1)
            gw_buf_puts(b, ", ");
        gw_buf_puts(b, FHIR_POOL(fhir_model_structs[fhir_model_targets[at + i]].name));
    }
}

/* ---------------------------------------------------------------- value sets */

const struct fhir_vs_def *fhir_valueset_at(unsigned binding)
{
    return binding >= 1 && binding <= fhir_model.n_valuesets ? &fhir_model_valuesets[binding - 1]
                                                             : NULL;
}

bool fhir_valueset_has(const struct fhir_vs_def *vs, const char *system, const char *code)
{
    uint32_t i;

    for (i = 0; i < vs->n_codes; i++) {
        const struct fhir_code_def *c = &fhir_model_codes[vs->first_code + i];

        if (strcmp(FHIR_POOL(c->code), code) == 0 &&
            (!system || strcmp(FHIR_POOL(c->system), system) == 0))
            return true;
    }
    return false;
}

void fhir_valueset_text(struct gw_buf *b, const struct fhir_vs_def *vs, size_t max)
{
    uint32_t i;

    for (i = 0; i < vs->n_codes; i++) {
        if (i == max) {
            gw_buf_puts(b, ", ...");
            return;
        }
        if (i > 0)
            gw_buf_puts(b, ", ");
        gw_buf_puts(b, FHIR_POOL(fhir_model_codes[vs->first_code + i].code));
    }
}

/* ---------------------------------------------------------------- search parameters */

static const char *const search_type_names[] = {
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special",
};

const char *fhir_search_type_name(enum fhir_search_type type)
{
    return (unsigned)type < sizeof search_type_names / sizeof *search_type_names
               ? search_type_names[type]
               : "?";
}

/* The rows of structure index si: [*first, *first + return value). Rows are sorted by
 * structure index, then name. */
static size_t search_rows(unsigned si, size_t *first)
{
    size_t lo = 0, hi = fhir_model.n_search, end;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (fhir_model_search[mid].resource < si)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (end = lo; end < fhir_model.n_search && fhir_model_search[end].resource == si; end++)
        ;
    *first = lo;
    return end - lo;
}

/* The row ranges that apply to each resource: its own, Resource's and (for domain
 * resources, those with "contained") DomainResource's; found once, on first use. */
struct search_span {
    uint32_t first[3], n[3];
    int k;
};

static struct search_span *search_spans; /* n_structs entries, or NULL */
static pthread_once_t spans_once = PTHREAD_ONCE_INIT;

static void span_of(const struct fhir_struct_def *s, struct search_span *out)
{
    const struct fhir_struct_def *base;
    const struct fhir_type_ref *t;
    size_t first;

    out->k = 0;
    out->n[out->k] = (uint32_t)search_rows(fhir_struct_index(s), &first);
    out->first[out->k++] = (uint32_t)first;
    base = resource_lookup("Resource", 8);
    out->n[out->k] = (uint32_t)search_rows(fhir_struct_index(base), &first);
    out->first[out->k++] = (uint32_t)first;
    if (fhir_elem_lookup(s, "contained", 9, &t)) {
        base = resource_lookup("DomainResource", 14);
        out->n[out->k] = (uint32_t)search_rows(fhir_struct_index(base), &first);
        out->first[out->k++] = (uint32_t)first;
    }
}

static void build_spans(void)
{
    size_t i;

    search_spans = calloc(fhir_model.n_structs, sizeof *search_spans);
    for (i = 0; search_spans && i < fhir_model.n_structs; i++)
        if (fhir_model_structs[i].kind == FHIR_KIND_RESOURCE && !fhir_model_structs[i].abstract)
            span_of(&fhir_model_structs[i], &search_spans[i]);
}

/* Returns the number of ranges filled. */
static int search_ranges(const char *resource_type, size_t first[3], size_t n[3])
{
    const struct fhir_struct_def *s;
    struct search_span span;
    int k;

    if (!resource_type || !(s = fhir_resource_find(resource_type, strlen(resource_type))))
        return 0;
    pthread_once(&spans_once, build_spans);
    if (search_spans)
        span = search_spans[fhir_struct_index(s)];
    else
        span_of(s, &span); /* no memory for the table: found again */
    for (k = 0; k < span.k; k++) {
        first[k] = span.first[k];
        n[k] = span.n[k];
    }
    return span.k;
}

static void fill_param(size_t row, struct fhir_search_param *out)
{
    const struct fhir_sp_def *sp = &fhir_model_search[row];

    out->name = FHIR_POOL(sp->name);
    out->type = (enum fhir_search_type)sp->type;
    out->expression = FHIR_POOL(sp->expression);
    out->n_targets = sp->targets ? fhir_model_targets[sp->targets] : 0;
    out->targets_ = sp->targets;
}

size_t fhir_search_param_count(const char *resource_type)
{
    size_t first[3], n[3], total = 0;
    int k, ranges = search_ranges(resource_type, first, n);

    for (k = 0; k < ranges; k++)
        total += n[k];
    return total;
}

bool fhir_search_param_get(const char *resource_type, size_t i, struct fhir_search_param *out)
{
    size_t first[3], n[3];
    int k, ranges = search_ranges(resource_type, first, n);

    for (k = 0; k < ranges; k++) {
        if (i < n[k]) {
            fill_param(first[k] + i, out);
            return true;
        }
        i -= n[k];
    }
    return false;
}

bool fhir_search_param_find(const char *resource_type, const char *name,
                            struct fhir_search_param *out)
{
    size_t first[3], n[3], i;
    int k, ranges = search_ranges(resource_type, first, n);

    if (!name)
        return false;
    for (k = 0; k < ranges; k++) {
        for (i = first[k]; i < first[k] + n[k]; i++) {
            if (strcmp(FHIR_POOL(fhir_model_search[i].name), name) == 0) {
                fill_param(i, out);
                return true;
            }
        }
    }
    return false;
}

const char *fhir_search_param_target(const struct fhir_search_param *sp, size_t i)
{
    if (i >= sp->n_targets)
        return NULL;
    return FHIR_POOL(fhir_model_structs[fhir_model_targets[sp->targets_ + 1 + i]].name);
}
