/* index.c -- search index entries of a resource, from the generated search
 * parameters (FHIR R4 search-parameters.json) and their FHIRPath expressions.
 *
 * The FHIRPath subset the served parameters use is evaluated here: paths,
 * unions (|), parentheses, choice elements (onset → onsetDateTime),
 * .ofType(T), .where(resolve() is T) and .where(field='value'). A parameter
 * whose expression falls outside this subset (e.g. "exists() and ...") is
 * not indexed and rest_index_supported() says so, so the CapabilityStatement
 * and the search handler never promise it.
 * String values are indexed twice: normalised (lower case, accents folded)
 * for the default starts-with match, and as written under "<name>:exact".
 */
#include "rest/rest_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define INDEX_MAX_ENTRIES 4096
#define INDEX_MAX_EXPR    2048
#define INDEX_MAX_NODES   512

/* Type suffixes that make a choice element's JSON name (R4 §2.6.2). */
static const char *const choice_types[] = {
    "DateTime",        "Period", "String",     "Boolean",    "Integer",   "Decimal",
    "Instant",         "Date",   "Time",       "Uri",        "Code",      "Quantity",
    "CodeableConcept", "Coding", "Reference",  "Range",      "Ratio",     "Age",
    "Duration",        "Timing", "Identifier", "Attachment", "Canonical", NULL};

struct nodes {
    json_t *items[INDEX_MAX_NODES];
    size_t n;
};

static void push(struct nodes *out, json_t *v)
{
    size_t i;

    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++)
            push(out, json_array_get(v, i));
    } else if (v && out->n < INDEX_MAX_NODES) {
        out->items[out->n++] = v;
    }
}

/* Children called name of every node (with choice names), into out. */
static void step(const struct nodes *in, const char *name, size_t len, struct nodes *out)
{
    size_t i, k;

    out->n = 0;
    for (i = 0; i < in->n; i++) {
        const char *key;
        json_t *v = json_object_getn(in->items[i], name, len); /* keys are unique */

        if (v) {
            push(out, v);
            continue;
        }
        json_object_foreach (in->items[i], key, v) {
            if (strncmp(key, name, len) != 0)
                continue;
            for (k = 0; choice_types[k]; k++)
                if (strcmp(key + len, choice_types[k]) == 0)
                    push(out, v);
        }
    }
}

enum seg_kind { SEG_NAME, SEG_OFTYPE, SEG_RESOLVES_TO, SEG_FIELD_EQUALS };

struct segment {
    enum seg_kind kind;
    char a[96]; /* name, type, or field */
    char b[96]; /* SEG_FIELD_EQUALS: the value */
};

#define INDEX_MAX_SEGMENTS 16

/* Copies [p, p+n) into dst (cap bytes); false when it does not fit. */
static bool take(char *dst, size_t cap, const char *p, size_t n)
{
    if (n == 0 || n >= cap)
        return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

/* Reads one segment after a '.'; false when outside the supported subset. */
static bool read_segment(const char **pp, struct segment *seg)
{
    const char *p = *pp, *end;

    if (strncmp(p, "where(resolve() is ", 19) == 0) {
        end = strchr(p + 19, ')');
        seg->kind = SEG_RESOLVES_TO;
        if (!end || !take(seg->a, sizeof seg->a, p + 19, (size_t)(end - p - 19)))
            return false;
        *pp = end + 1;
        return true;
    }
    if (strncmp(p, "ofType(", 7) == 0) {
        end = strchr(p + 7, ')');
        seg->kind = SEG_OFTYPE;
        if (!end || !take(seg->a, sizeof seg->a, p + 7, (size_t)(end - p - 7)))
            return false;
        seg->a[0] = (char)toupper((unsigned char)seg->a[0]);
        *pp = end + 1;
        return true;
    }
    if (strncmp(p, "where(", 6) == 0) {
        const char *eq = strstr(p, "='");

        end = eq ? strstr(eq + 2, "')") : NULL;
        seg->kind = SEG_FIELD_EQUALS;
        if (!end || !take(seg->a, sizeof seg->a, p + 6, (size_t)(eq - p - 6)) ||
            !take(seg->b, sizeof seg->b, eq + 2, (size_t)(end - eq - 2)))
            return false;
        *pp = end + 2;
        return true;
    }
    for (end = p; isalnum((unsigned char)*end) || *end == '_'; end++)
        ;
    seg->kind = SEG_NAME;
    if (*end == '(' || !take(seg->a, sizeof seg->a, p, (size_t)(end - p)))
        return false;
    *pp = end;
    return true;
}

/* Splits "Type.a.b.where(...)" (parentheses allowed around it) into segments
 * after the type; *n = 0 when it is another type's member. */
static bool parse_path(const char *type, const char *expr, struct segment *segs, size_t *n)
{
    const char *p = expr;
    size_t tlen = strlen(type);

    *n = 0;
    while (*p == '(' || *p == ' ')
        p++;
    if (strncmp(p, type, tlen) != 0 || p[tlen] != '.')
        return true;
    p += tlen;
    while (*p == '.') {
        p++;
        if (*n == INDEX_MAX_SEGMENTS || !read_segment(&p, &segs[*n]))
            return false;
        (*n)++;
    }
    while (*p == ')' || *p == ' ')
        p++;
    return *p == '\0';
}

static bool reference_is(json_t *node, const char *type, size_t len)
{
    const char *ref = json_string_value(json_object_get(node, "reference"));

    return ref && strncmp(ref, type, len) == 0 && ref[len] == '/';
}

/* ------------------------------------------------------------ compiled parameters */

/* A step of a compiled path: a child name (an ofType() folded into it: valueQuantity), or a
 * filter on the nodes reached (where(resolve() is T), where(field='value')). */
struct cstep {
    enum seg_kind kind; /* SEG_NAME, SEG_RESOLVES_TO or SEG_FIELD_EQUALS */
    char *a;            /* the name, type or field */
    size_t a_len;
    char *b; /* SEG_FIELD_EQUALS: the value */
};

/* One member of a parameter's union; no steps: another type's member, no nodes. */
struct cpath {
    struct cstep *steps;
    size_t n;
};

/* A search parameter of a type with its expression parsed, once. */
struct cparam {
    struct fhir_search_param sp;
    bool supported; /* the expression is in the subset evaluated here */
    bool indexed;   /* supported, and neither _id nor _lastUpdated (the store's own) */
    char *exact;    /* strings: "<name>:exact" */
    struct cpath *paths;
    size_t n_paths;
};

struct ctype {
    struct ctype *next;
    char *type;
    struct cparam *params;
    size_t n;
};

/* Compiled types, pushed at the head and never changed once there: readers take no lock. */
static _Atomic(struct ctype *) compiled;

static void keep_if(struct nodes *cur, const struct cstep *st)
{
    size_t i, n = 0;

    for (i = 0; i < cur->n; i++) {
        json_t *v = cur->items[i];
        bool keep;

        if (st->kind == SEG_RESOLVES_TO) {
            keep = reference_is(v, st->a, st->a_len);
        } else {
            const char *f = json_string_value(json_object_get(v, st->a));

            keep = f && strcmp(f, st->b) == 0;
        }
        if (keep)
            cur->items[n++] = v;
    }
    cur->n = n;
}

static void eval_path(json_t *res, const struct cpath *path, struct nodes *out, struct nodes *tmp)
{
    size_t i;

    out->n = 0;
    if (path->n == 0)
        return;
    push(out, res);
    for (i = 0; i < path->n; i++) {
        if (path->steps[i].kind == SEG_NAME) {
            *tmp = *out;
            step(tmp, path->steps[i].a, path->steps[i].a_len, out);
        } else {
            keep_if(out, &path->steps[i]);
        }
    }
}

/* The nodes of every member of the union, in order, into all. */
static void evaluate(json_t *res, const struct cparam *cp, struct nodes *all, struct nodes *one,
                     struct nodes *tmp)
{
    size_t i, k;

    all->n = 0;
    for (k = 0; k < cp->n_paths; k++) {
        eval_path(res, &cp->paths[k], one, tmp);
        for (i = 0; i < one->n && all->n < INDEX_MAX_NODES; i++)
            all->items[all->n++] = one->items[i];
    }
}

static void free_cparam(struct cparam *cp)
{
    size_t k, i;

    for (k = 0; k < cp->n_paths; k++) {
        for (i = 0; i < cp->paths[k].n; i++) {
            free(cp->paths[k].steps[i].a);
            free(cp->paths[k].steps[i].b);
        }
        free(cp->paths[k].steps);
    }
    free(cp->paths);
    free(cp->exact);
}

static void free_ctype(struct ctype *ct)
{
    size_t i;

    if (!ct)
        return;
    for (i = 0; i < ct->n; i++)
        free_cparam(&ct->params[i]);
    free(ct->params);
    free(ct->type);
    free(ct);
}

/* Compiles one member's segments into steps; false when outside the subset (an ofType()
 * not after a name) or out of memory (*nomem). */
static bool compile_path(const struct segment *segs, size_t n, struct cpath *out, bool *nomem)
{
    size_t i;

    out->steps = calloc(n ? n : 1, sizeof *out->steps);
    out->n = 0;
    if (!out->steps)
        return !(*nomem = true);
    for (i = 0; i < n; i++) {
        struct cstep *st = &out->steps[out->n];

        if (segs[i].kind == SEG_OFTYPE)
            return false; /* ofType not after an element name */
        st->kind = segs[i].kind;
        if (segs[i].kind == SEG_NAME && i + 1 < n && segs[i + 1].kind == SEG_OFTYPE) {
            size_t a = strlen(segs[i].a), b = strlen(segs[i + 1].a);

            st->a = malloc(a + b + 1);
            if (st->a) {
                memcpy(st->a, segs[i].a, a);
                memcpy(st->a + a, segs[i + 1].a, b + 1);
            }
            i++;
        } else {
            st->a = gw_strdup(segs[i].a);
        }
        st->b = segs[i].kind == SEG_FIELD_EQUALS ? gw_strdup(segs[i].b) : NULL;
        out->n++;
        if (!st->a || (st->kind == SEG_FIELD_EQUALS && !st->b))
            return !(*nomem = true);
        st->a_len = strlen(st->a);
    }
    return true;
}

/* Splits the expression on top-level '|' and compiles each member; cp->supported says
 * whether all of them are in the subset. False only when out of memory. */
static bool compile_param(const char *type, struct cparam *cp)
{
    struct segment segs[INDEX_MAX_SEGMENTS];
    char member[INDEX_MAX_EXPR];
    const char *p = cp->sp.expression;
    bool nomem = false;
    size_t n;

    cp->supported = p && *p;
    while (cp->supported && *p) {
        const char *bar = p;
        int depth = 0;
        struct cpath *grown;

        for (; *bar && (*bar != '|' || depth); bar++)
            depth += *bar == '(' ? 1 : *bar == ')' ? -1 : 0;
        if ((size_t)(bar - p) >= sizeof member) {
            cp->supported = false;
            break;
        }
        memcpy(member, p, (size_t)(bar - p));
        member[bar - p] = '\0';
        grown = realloc(cp->paths, (cp->n_paths + 1) * sizeof *grown);
        if (!grown)
            return false;
        cp->paths = grown;
        cp->paths[cp->n_paths] = (struct cpath){NULL, 0};
        cp->n_paths++;
        cp->supported = parse_path(type, member, segs, &n) &&
                        compile_path(segs, n, &cp->paths[cp->n_paths - 1], &nomem);
        if (nomem)
            return false;
        p = *bar ? bar + 1 : bar;
        while (*p == ' ')
            p++;
    }
    cp->indexed = cp->supported && strcmp(cp->sp.name, "_id") != 0 &&
                  strcmp(cp->sp.name, "_lastUpdated") != 0;
    if (cp->indexed && cp->sp.type == FHIR_SEARCH_STRING &&
        !(cp->exact = rest_exact_name(cp->sp.name)))
        return false;
    return true;
}

static struct ctype *compile_type(const char *type)
{
    struct ctype *ct = calloc(1, sizeof *ct);
    size_t i, n = fhir_search_param_count(type);

    if (!ct || !(ct->type = gw_strdup(type)) ||
        !(ct->params = calloc(n ? n : 1, sizeof *ct->params)))
        goto fail;
    for (i = 0; i < n; i++) {
        if (!fhir_search_param_get(type, i, &ct->params[ct->n].sp))
            continue;
        ct->n++;
        if (!compile_param(type, &ct->params[ct->n - 1]))
            goto fail;
    }
    return ct;
fail:
    free_ctype(ct);
    return NULL;
}

/* The compiled parameters of type (an R4 resource type: so the list stays short),
 * compiled on first use; NULL when out of memory. Lives as long as the process. */
static const struct ctype *compiled_type(const char *type)
{
    struct ctype *head = atomic_load(&compiled), *ct, *mine;

    for (ct = head; ct; ct = ct->next)
        if (strcmp(ct->type, type) == 0)
            return ct;
    mine = compile_type(type);
    if (!mine)
        return NULL;
    for (;;) {
        mine->next = head;
        if (atomic_compare_exchange_weak(&compiled, &head, mine))
            return mine;
        for (ct = head; ct; ct = ct->next) /* another thread was quicker: keep its copy */
            if (strcmp(ct->type, type) == 0) {
                free_ctype(mine);
                return ct;
            }
    }
}

/* ------------------------------------------------------------ values */

/* Base letters of U+00C0..U+017F (Latin-1 Supplement, Latin Extended-A), '?' where none. */
static const char fold_table[] = "AAAAAAACEEEEIIII"
                                 "DNOOOOO?OUUUUYTs"
                                 "aaaaaaaceeeeiiii"
                                 "dnooooo?ouuuuyty"
                                 "AaAaAaCcCcCcCcDd"
                                 "DdEeEeEeEeEeGgGg"
                                 "GgGgHhHhIiIiIiIi"
                                 "IiJjJjKkkLlLlLlL"
                                 "lLlNnNnNnnNnOoOo"
                                 "OoOoRrRrRrSsSsSs"
                                 "SsTtTtTtUuUuUuUu"
                                 "UuUuWwYyYZzZzZzs";

char *rest_normalise(const char *s)
{
    size_t n = strlen(s), i = 0, o = 0;
    char *out = malloc(n + 1);

    if (!out)
        return NULL;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x80) {
            out[o++] = (char)tolower(c);
            i++;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n) {
            unsigned cp = ((unsigned)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);

            if (cp >= 0xC0 && cp <= 0x17F && fold_table[cp - 0xC0] != '?') {
                out[o++] = (char)tolower((unsigned char)fold_table[cp - 0xC0]);
            } else {
                out[o++] = s[i];
                out[o++] = s[i + 1];
            }
            i += 2;
        } else {
            out[o++] = s[i++]; /* other bytes are kept as they are */
        }
    }
    out[o] = '\0';
    return out;
}

void rest_index_cleanup(struct rest_index *ix)
{
    rest_strings_free(&ix->owned);
    free(ix->e);
    memset(ix, 0, sizeof *ix);
}

/* Keeps p (malloc()ed) until cleanup; NULL marks the index failed. */
static const char *own(struct rest_index *ix, char *p)
{
    const char *kept = rest_strings_keep(&ix->owned, p);

    if (!kept)
        ix->failed = true;
    return kept;
}

static void add(struct rest_index *ix, const char *param, const char *system, const char *value,
                int64_t lo, int64_t hi)
{
    struct store_index_entry *grown;

    if (ix->failed || ix->n >= INDEX_MAX_ENTRIES)
        return;
    grown = gw_grow(ix->e, &ix->cap, ix->n, sizeof *grown, 32);
    if (!grown) {
        ix->failed = true;
        return;
    }
    ix->e = grown;
    ix->e[ix->n++] = (struct store_index_entry){param, system, value, lo, hi};
}

static void add_token(struct rest_index *ix, const char *param, json_t *v)
{
    json_t *coding;
    size_t i;

    if (json_is_string(v))
        add(ix, param, NULL, json_string_value(v), 0, 0);
    else if (json_is_boolean(v))
        add(ix, param, NULL, json_is_true(v) ? "true" : "false", 0, 0);
    else if ((coding = json_object_get(v, "coding")) != NULL)
        json_array_foreach (coding, i, v)
            add_token(ix, param, v);
    else if (json_is_string(json_object_get(v, "code")))
        add(ix, param, json_string_value(json_object_get(v, "system")),
            json_string_value(json_object_get(v, "code")), 0, 0);
    else if (json_is_string(json_object_get(v, "value")))
        add(ix, param, json_string_value(json_object_get(v, "system")),
            json_string_value(json_object_get(v, "value")), 0, 0);
}

static void add_reference(struct rest_index *ix, const char *base, const char *param, json_t *v)
{
    const char *ref = json_string_value(json_object_get(v, "reference"));
    struct fhir_ref r;
    size_t blen = strlen(base);

    if (!ref && json_is_string(v))
        ref = json_string_value(v); /* canonical */
    if (!ref)
        return;
    switch (fhir_ref_parse(ref, &r)) {
    case FHIR_REF_RELATIVE:
        add(ix, param, NULL, own(ix, gw_strndup(ref, (size_t)(r.id + r.id_len - ref))), 0, 0);
        return;
    case FHIR_REF_ABSOLUTE:
        if (r.type && r.base_len == blen && strncmp(r.base, base, blen) == 0)
            add(ix, param, NULL, own(ix, gw_strndup(r.type, (size_t)(r.id + r.id_len - r.type))), 0,
                0);
        else
            add(ix, param, NULL, ref, 0, 0);
        return;
    default:
        return; /* contained, urn:uuid (rewritten before indexing), invalid */
    }
}

static void add_date(struct rest_index *ix, const char *param, json_t *v)
{
    int64_t lo, hi, l2, h2;
    const char *start = json_string_value(json_object_get(v, "start"));
    const char *end = json_string_value(json_object_get(v, "end"));

    if (json_is_string(v) && gw_time_parse_fhir(json_string_value(v), &lo, &hi)) {
        add(ix, param, NULL, NULL, lo, hi);
    } else if (json_is_object(v) && (start || end)) {
        lo = INT64_MIN / 2;
        hi = INT64_MAX / 2;
        if (start && gw_time_parse_fhir(start, &l2, &h2))
            lo = l2;
        if (end && gw_time_parse_fhir(end, &l2, &h2))
            hi = h2;
        add(ix, param, NULL, NULL, lo, hi);
    }
}

static void add_string_value(struct rest_index *ix, const char *param, const char *exact_param,
                             const char *s)
{
    add(ix, param, NULL, own(ix, rest_normalise(s)), 0, 0);
    add(ix, exact_param, NULL, s, 0, 0);
}

static void add_string(struct rest_index *ix, const char *param, const char *exact_param, json_t *v)
{
    static const char *const parts[] = {"family", "given",      "text",    "prefix",
                                        "suffix", "line",       "city",    "district",
                                        "state",  "postalCode", "country", NULL};
    size_t i, k;
    json_t *x;

    if (json_is_string(v)) {
        add_string_value(ix, param, exact_param, json_string_value(v));
        return;
    }
    for (k = 0; parts[k]; k++) {
        x = json_object_get(v, parts[k]);
        if (json_is_string(x))
            add_string_value(ix, param, exact_param, json_string_value(x));
        else
            json_array_foreach (x, i, v)
                if (json_is_string(v))
                    add_string_value(ix, param, exact_param, json_string_value(v));
    }
}

struct eval_space {
    struct nodes all, one, tmp;
};

/* The compiled parameter name of type: the first of its rows, as fhir_search_param_find(). */
static const struct cparam *compiled_param(const char *type, const char *name)
{
    const struct ctype *ct = fhir_is_resource_type(type) ? compiled_type(type) : NULL;
    size_t i;

    for (i = 0; ct && i < ct->n; i++)
        if (strcmp(ct->params[i].sp.name, name) == 0)
            return &ct->params[i];
    return NULL;
}

bool rest_index_supported(const char *type, const char *name)
{
    struct fhir_search_param sp;
    const struct cparam *cp;

    if (strcmp(name, "_id") == 0 || strcmp(name, "_lastUpdated") == 0)
        return true;
    if (name[0] == '_') /* _content, _text, _filter...: not offered */
        return false;
    if (strcmp(type, "AuditEvent") == 0 && !audit_param_indexed(name))
        return false; /* audit/record.c writes that index, not rest_index_build() */
    if (!fhir_search_param_find(type, name, &sp) || !sp.expression || !*sp.expression ||
        sp.type == FHIR_SEARCH_NUMBER || sp.type == FHIR_SEARCH_QUANTITY ||
        sp.type == FHIR_SEARCH_COMPOSITE || sp.type == FHIR_SEARCH_SPECIAL)
        return false;
    cp = compiled_param(type, name);
    return cp && cp->supported;
}

static void index_param(struct rest_index *ix, const char *base, json_t *res,
                        const struct cparam *cp, struct eval_space *w)
{
    const struct fhir_search_param *sp = &cp->sp;
    size_t i;

    if (!cp->indexed)
        return;
    evaluate(res, cp, &w->all, &w->one, &w->tmp);
    for (i = 0; i < w->all.n; i++) {
        json_t *v = w->all.items[i];

        switch (sp->type) {
        case FHIR_SEARCH_TOKEN:
            add_token(ix, sp->name, v);
            break;
        case FHIR_SEARCH_REFERENCE:
            add_reference(ix, base, sp->name, v);
            break;
        case FHIR_SEARCH_DATE:
            add_date(ix, sp->name, v);
            break;
        case FHIR_SEARCH_STRING:
            add_string(ix, sp->name, cp->exact, v);
            break;
        case FHIR_SEARCH_URI:
            if (json_is_string(v))
                add(ix, sp->name, NULL, json_string_value(v), 0, 0);
            break;
        default:
            break;
        }
    }
}

char *rest_exact_name(const char *param)
{
    size_t n = strlen(param);
    char *s = malloc(n + 7);

    if (s) {
        memcpy(s, param, n);
        memcpy(s + n, ":exact", 7);
    }
    return s;
}

enum gw_code rest_index_build(const char *base, json_t *res, struct rest_index *ix,
                              struct gw_error *err)
{
    /* per thread, not per call: 12 KB that malloc would hand out from its large bins */
    static _Thread_local struct eval_space space;
    const char *type = fhir_resource_type(res);
    const struct ctype *ct;
    size_t i;

    memset(ix, 0, sizeof *ix);
    if (!type)
        return gw_fail(err, GW_E_INPUT, "a resource without resourceType cannot be indexed");
    if (!fhir_is_resource_type(type))
        return GW_OK; /* no search parameters */
    ct = compiled_type(type);
    if (!ct)
        return gw_fail(err, GW_E_NOMEM, "no memory to index a resource");
    for (i = 0; i < ct->n && !ix->failed; i++)
        index_param(ix, base, res, &ct->params[i], &space);
    if (ix->failed) {
        rest_index_cleanup(ix);
        return gw_fail(err, GW_E_NOMEM, "no memory to index a resource");
    }
    return GW_OK;
}
