/* translate.c -- the lookup index of a set and map_translate(), the hot path.
 *
 * Promises: the index is one array sorted by (canonical source system, normalised code) and
 * built once per set; map_translate() uses only the stack and the caller's output array; a
 * code too long or malformed for its system simply matches nothing.
 */
#include "mapping/mapping_int.h"

#include <stdlib.h>
#include <string.h>

#define MIN_ICD_PREFIX 3 /* an ICD-10 category: one letter and two digits */

static int cmp_entry(const void *a, const void *b)
{
    const struct map_entry *x = a, *y = b;
    int c = strcmp(x->system, y->system);

    if (c)
        return c;
    c = strcmp(x->key, y->key);
    if (c)
        return c;
    /* keep map, group and row order among equal keys */
    if (x->el->group->map != y->el->group->map)
        return x->el->group->map < y->el->group->map ? -1 : 1;
    if (x->el->group->index != y->el->group->index)
        return x->el->group->index < y->el->group->index ? -1 : 1;
    return x->el->index < y->el->index ? -1 : (x->el->index > y->el->index);
}

enum gw_code map_index_build(struct map_set *set, struct gw_error *err)
{
    size_t i, j, k, n = 0;

    for (i = 0; i < set->n_maps; i++)
        for (j = 0; j < set->maps[i].n_groups; j++)
            n += set->maps[i].groups[j].n_elements;
    set->index = map_arena_alloc(&set->arena, (n ? n : 1) * sizeof *set->index);
    if (!set->index)
        return gw_fail(err, GW_E_NOMEM, "no memory for the mapping index");
    for (i = 0; i < set->n_maps; i++) {
        const struct map_cmap *m = &set->maps[i];

        for (j = 0; j < m->n_groups; j++) {
            for (k = 0; k < m->groups[j].n_elements; k++) {
                const struct map_element *e = &m->groups[j].elements[k];

                set->index[set->n_index++] = (struct map_entry){e->group->source, e->key, e};
            }
        }
    }
    qsort(set->index, set->n_index, sizeof *set->index, cmp_entry);
    return GW_OK;
}

static int cmp_key(const struct map_entry *e, const char *system, const char *key)
{
    int c = strcmp(e->system, system);

    return c ? c : strcmp(e->key, key);
}

void map_index_range(const struct map_set *set, const char *system, const char *key, size_t *lo,
                     size_t *hi)
{
    size_t a = 0, b = set->n_index;

    while (a < b) {
        size_t mid = a + (b - a) / 2;

        if (cmp_key(&set->index[mid], system, key) < 0)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    while (b < set->n_index && cmp_key(&set->index[b], system, key) == 0)
        b++;
    *hi = b < a ? a : b;
}

/* ---------------------------------------------------------------- matching */

#define SEEN_MAX 8

struct emit {
    struct map_match *out;
    size_t max, n, total;
    const char *seen[SEEN_MAX]; /* target systems the query's own system already served */
    size_t n_seen;
    bool skip_seen; /* the fallback pass serves only the others */
};

static bool seen(const struct emit *em, const char *target)
{
    size_t i;

    for (i = 0; i < em->n_seen; i++)
        if (strcmp(em->seen[i], target) == 0)
            return true;
    return false;
}

static bool dep_ok(const struct map_dep *d, const struct map_query *q)
{
    switch (d->kind) {
    case MAP_DEP_REGION:
        return q->region != MAP_REGION_NONE && (int)q->region == d->value;
    case MAP_DEP_LATERALITY:
        return q->laterality != MAP_LAT_NONE && (int)q->laterality == d->value;
    case MAP_DEP_GUIDANCE:
        return q->guidance != MAP_GUIDANCE_NONE && (int)q->guidance == d->value;
    }
    return false;
}

static bool target_applies(const struct map_target *t, const struct map_query *q)
{
    size_t i;

    for (i = 0; i < t->n_deps; i++)
        if (!dep_ok(&t->deps[i], q))
            return false;
    return true;
}

static bool url_ok(const struct map_cmap *m, const char *url)
{
    const char *bar;
    size_t n;

    if (!url)
        return true;
    bar = strchr(url, '|');
    if (!bar)
        return strcmp(m->url, url) == 0;
    n = (size_t)(bar - url);
    return strlen(m->url) == n && strncmp(m->url, url, n) == 0 && strcmp(m->version, bar + 1) == 0;
}

static void push(struct emit *em, const struct map_element *e, const struct map_target *t,
                 bool is_prefix, const char *via)
{
    const struct map_cmap *m = e->group->map;

    em->total++;
    if (em->n == em->max)
        return;
    em->out[em->n++] = (struct map_match){
        .system = e->group->target,
        .code = t->code,
        .display = t->display,
        .comment = t->comment,
        .equivalence = t->eq,
        .map_id = m->id,
        .map_url = m->url,
        .map_version = m->version,
        .source_system = e->group->source,
        .source_code = e->code,
        .via_code = via,
        .is_prefix = is_prefix,
        .is_chained = via != NULL,
    };
}

static void emit_second_hop(const struct map_set *set, const struct map_query *q,
                            const char *pivot_code, const char *want, struct emit *em);

/* Emits the targets of e that apply, keeping those with the most dependsOn; follows
 * procedure codes one step when allowed. */
static void emit_element(const struct map_set *set, const struct map_query *q,
                         const struct map_element *e, bool is_prefix, const char *via,
                         struct emit *em)
{
    size_t i, best = 0;
    bool any = false;
    bool follow = !via && strcmp(e->group->target, MAP_CS_PROCEDURE) == 0 &&
                  (!q->target_system || strcmp(q->target_system, MAP_CS_PROCEDURE) != 0);

    for (i = 0; i < e->n_targets; i++) {
        if (target_applies(&e->targets[i], q) && (!any || e->targets[i].n_deps > best)) {
            best = e->targets[i].n_deps;
            any = true;
        }
    }
    for (i = 0; any && i < e->n_targets; i++) {
        const struct map_target *t = &e->targets[i];

        if (t->n_deps != best || !target_applies(t, q))
            continue;
        if (!q->target_system || strcmp(q->target_system, e->group->target) == 0)
            push(em, e, t, is_prefix, via);
        if (follow && t->code && t->eq != MAP_EQ_UNMATCHED && t->eq != MAP_EQ_DISJOINT)
            emit_second_hop(set, q, t->code, q->target_system, em);
    }
}

static bool group_wanted(const struct map_group *g, const char *want, bool allow_pivot)
{
    if (g->map->is_retired)
        return false;
    if (!want || strcmp(g->target, want) == 0)
        return true;
    return allow_pivot && strcmp(g->target, MAP_CS_PROCEDURE) == 0;
}

static bool in_list(const char *const *list, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* Emits, for each target system, the most specific rows of (system, code): rows shorter than
 * the code (ICD-10 prefixes) serve only target systems no longer row served; rows found
 * through a fallback system are prefix matches too. Returns true when a row was found (even
 * if none of its targets applied). */
static bool lookup(const struct map_set *set, const struct map_query *q, const char *system,
                   const char *code, bool is_fallback, bool allow_pivot, const char *via,
                   const char *url, struct emit *em)
{
    char key[MAP_MAX_CODE + 1];
    const char *served[SEEN_MAX];
    int full = map_code_key(system, code, key, sizeof key);
    int len, min = map_system_norm(system) == MAP_NORM_ICD ? MIN_ICD_PREFIX : full;
    size_t lo, hi, i, n_served = 0, longer;
    bool found = false;

    for (len = full; len > 0 && len >= min; len--) {
        key[len] = '\0';
        map_index_range(set, system, key, &lo, &hi);
        longer = n_served;
        for (i = lo; i < hi; i++) {
            const struct map_element *e = set->index[i].el;
            const char *target = e->group->target;

            if (!group_wanted(e->group, q->target_system, allow_pivot) ||
                !url_ok(e->group->map, url) || in_list(served, longer, target) ||
                (!via && em->skip_seen && seen(em, target)))
                continue;
            found = true;
            if (n_served < SEEN_MAX && !in_list(served, n_served, target))
                served[n_served++] = target;
            if (!via && !em->skip_seen && !seen(em, target) && em->n_seen < SEEN_MAX)
                em->seen[em->n_seen++] = target;
            emit_element(set, q, e, is_fallback || len < full, via, em);
        }
    }
    return found;
}

static void emit_second_hop(const struct map_set *set, const struct map_query *q,
                            const char *pivot_code, const char *want, struct emit *em)
{
    (void)want;
    lookup(set, q, MAP_CS_PROCEDURE, pivot_code, false, false, pivot_code, NULL, em);
}

size_t map_translate(const struct map_set *set, const struct map_query *q, struct map_match *out,
                     size_t max, size_t *n_total)
{
    struct emit em = {.out = out, .max = max};
    const char *system, *fallback;

    if (n_total)
        *n_total = 0;
    if (!set || !q || !q->system || !q->code)
        return 0;
    system = map_system_canonical(q->system);
    lookup(set, q, system, q->code, false, true, NULL, q->url, &em);
    /* ICD-10-CM rows first; WHO ICD-10 rows serve the targets CM rows did not */
    if ((fallback = map_system_fallback(system)) != NULL) {
        em.skip_seen = true;
        lookup(set, q, fallback, q->code, true, true, NULL, q->url, &em);
    }
    if (n_total)
        *n_total = em.total;
    return em.n;
}

/* ---------------------------------------------------------------- printing */

size_t map_translate_print(const struct map_set *set, const struct map_query *q, struct gw_buf *b)
{
    struct map_match m[32];
    size_t n, total, i;

    n = map_translate(set, q, m, sizeof m / sizeof m[0], &total);
    gw_buf_printf(b, "%s %s", q->system, q->code);
    if (q->region)
        gw_buf_printf(b, " region=%s", map_region_name(q->region));
    if (q->laterality)
        gw_buf_printf(b, " laterality=%s", map_laterality_name(q->laterality));
    if (q->guidance)
        gw_buf_printf(b, " guidance=%s", map_guidance_name(q->guidance));
    gw_buf_printf(b, ": %zu match%s\n", total, total == 1 ? "" : "es");
    for (i = 0; i < n; i++) {
        const char *name = map_system_name(m[i].system);

        gw_buf_printf(b, "  %s%-10s %-24s %-11s %s%s (%s|%s)\n", m[i].is_chained ? "  " : "",
                      name ? name : m[i].system, m[i].code ? m[i].code : "-",
                      map_equivalence_name(m[i].equivalence), m[i].display ? m[i].display : "",
                      m[i].is_prefix ? " [by prefix]" : "", m[i].map_url, m[i].map_version);
        if (m[i].comment)
            gw_buf_printf(b, "  %s           note: %s\n", m[i].is_chained ? "  " : "",
                          m[i].comment);
    }
    if (total > n)
        gw_buf_printf(b, "  ... %zu more\n", total - n);
    return total;
}
