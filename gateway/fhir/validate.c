/* validate.c -- validation of a resource in the internal form against the R4 model.
 *
 * One walk over the resource, guided by the generated model, that reports every problem as
 * an issue at the FHIRPath of the element (Patient.name[0].given[1]) and never stops at the
 * first: unknown elements, null and empty values, arrays exactly where max is "*", min and
 * max, JSON types and lexical forms of primitives, `_name` siblings, required bindings.
 * Resources inside resources (contained, Bundle.entry.resource, Parameters.parameter.resource)
 * are walked in place, so expressions read Bundle.entry[3].resource.subject. The rules that
 * look across elements (references, contained, Bundle, data-type invariants) are in rules.c.
 *
 * Invariant: v->path names the value being checked whenever an issue is added.
 */
#include "fhir/fhir_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void fhir_vissue(struct fhir_vctx *v, enum fhir_severity sev, const char *code, const char *name,
                 const char *fmt, ...)
{
    struct gw_buf b;
    size_t mark = 0;
    va_list ap;

    if (sev <= FHIR_ERROR)
        v->n_errors++;
    gw_buf_init(&b, 4096);
    va_start(ap, fmt);
    gw_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (name)
        mark = fhir_path_push(&v->path, name, strlen(name), -1);
    if (b.err == GW_E_NOMEM ||
        fhir_outcome_add(v->outcome, sev, code, b.data ? b.data : "", fhir_path_text(&v->path)))
        v->nomem = true;
    if (name)
        fhir_path_pop(&v->path, mark);
    gw_buf_cleanup(&b);
}

static void check_struct(struct fhir_vctx *v, json_t *obj, const struct fhir_struct_def *s);
static void check_resource(struct fhir_vctx *v, json_t *res, bool contained);

/* ---------------------------------------------------------------- primitives */

static const char *json_type_name(const json_t *j)
{
    static const char *const names[] = {"an object", "an array", "a string", "an integer",
                                        "a number",  "true",     "false",    "null"};

    return names[json_typeof(j)];
}

static bool check_integer(struct fhir_vctx *v, json_t *j, enum fhir_prim prim)
{
    const char *why;
    json_int_t n;
    long lo = prim == FHIR_PRIM_INTEGER ? -2147483648L : prim == FHIR_PRIM_POSITIVEINT ? 1 : 0;

    if (json_is_string(j)) {
        why = fhir_prim_check_text(prim, json_string_value(j), json_string_length(j));
        if (why)
            fhir_vissue(v, FHIR_ERROR, "value", NULL, "value '%.60s' %s", json_string_value(j),
                        why);
        else
            fhir_vissue(v, FHIR_ERROR, "structure", NULL, "%s is a JSON number, not a string",
                        fhir_prim_name(prim));
        return false;
    }
    if (json_is_real(j)) {
        fhir_vissue(v, FHIR_ERROR, "value", NULL, "%s must be a whole number, not %g",
                    fhir_prim_name(prim), json_real_value(j));
        return false;
    }
    if (!json_is_integer(j)) {
        fhir_vissue(v, FHIR_ERROR, "structure", NULL, "%s is a JSON number, not %s",
                    fhir_prim_name(prim), json_type_name(j));
        return false;
    }
    n = json_integer_value(j);
    if (n >= lo && n <= 2147483647)
        return true;
    fhir_vissue(v, FHIR_ERROR, "value", NULL,
                "value %" JSON_INTEGER_FORMAT " is out of range for %s (%ld to 2147483647)", n,
                fhir_prim_name(prim), lo);
    return false;
}

/* Returns true when j is a valid value of the primitive type. */
static bool check_primitive(struct fhir_vctx *v, json_t *j, enum fhir_prim prim)
{
    const char *why;

    switch (prim) {
    case FHIR_PRIM_BOOLEAN:
        if (json_is_boolean(j))
            return true;
        why = json_is_string(j)
                  ? fhir_prim_check_text(prim, json_string_value(j), json_string_length(j))
                  : NULL;
        if (json_is_string(j)) /* from XML: value="yes"; from JSON: "true" */
            fhir_vissue(v, FHIR_ERROR, why ? "value" : "structure", NULL, "value '%.60s' %s",
                        json_string_value(j), why ? why : "is a JSON boolean, not a string");
        else
            fhir_vissue(v, FHIR_ERROR, "structure", NULL, "boolean is JSON true or false, not %s",
                        json_type_name(j));
        return false;
    case FHIR_PRIM_INTEGER:
    case FHIR_PRIM_UNSIGNEDINT:
    case FHIR_PRIM_POSITIVEINT:
        return check_integer(v, j, prim);
    case FHIR_PRIM_DECIMAL:
        if (json_is_number(j))
            return true;
        break;
    default:
        break;
    }
    if (!json_is_string(j)) {
        fhir_vissue(v, FHIR_ERROR, "structure", NULL, "%s is a JSON %s, not %s",
                    fhir_prim_name(prim), prim == FHIR_PRIM_DECIMAL ? "number" : "string",
                    json_type_name(j));
        return false;
    }
    why = fhir_prim_check_text(prim, json_string_value(j), json_string_length(j));
    if (why && prim == FHIR_PRIM_XHTML)
        fhir_vissue(v, FHIR_ERROR, "value", NULL, "the narrative div %s", why);
    else if (why)
        fhir_vissue(v, FHIR_ERROR, "value", NULL, "value '%.60s' %s", json_string_value(j), why);
    return why == NULL;
}

/* Required binding of a code, Coding or CodeableConcept (enumerable value sets only). */
static void check_binding(struct fhir_vctx *v, json_t *j, const struct fhir_elem_def *e,
                          const struct fhir_struct_def *ts)
{
    const struct fhir_vs_def *vs = fhir_valueset_at(e->binding);
    const char *tn = fhir_struct_name(ts), *code;
    struct gw_buf allowed;
    json_t *codings, *c;
    size_t i;

    if (!vs || !vs->enumerable)
        return;
    if (ts->prim == FHIR_PRIM_CODE) {
        code = json_string_value(j);
        if (!code || fhir_valueset_has(vs, NULL, code))
            return;
    } else if (strcmp(tn, "Coding") == 0 || strcmp(tn, "CodeableConcept") == 0) {
        codings = strcmp(tn, "Coding") == 0 ? NULL : json_object_get(j, "coding");
        if (!codings && strcmp(tn, "Coding") == 0 &&
            fhir_valueset_has(vs, json_string_value(json_object_get(j, "system")),
                              json_string_value(json_object_get(j, "code"))))
            return;
        json_array_foreach (codings, i, c) {
            const char *sys = json_string_value(json_object_get(c, "system"));
            const char *cc = json_string_value(json_object_get(c, "code"));

            if (sys && cc && fhir_valueset_has(vs, sys, cc))
                return;
        }
        code = json_string_value(json_object_get(json_array_get(codings, 0), "code"));
    } else {
        return;
    }
    gw_buf_init(&allowed, 2048);
    fhir_valueset_text(&allowed, vs, 24);
    fhir_vissue(v, FHIR_ERROR, "code-invalid", NULL,
                "'%.60s' is not in the required value set %s (%s)", code ? code : "(no code)",
                FHIR_POOL(vs->url),
                allowed.err    ? "..."
                : allowed.data ? allowed.data
                               : "");
    gw_buf_cleanup(&allowed);
}

/* ---------------------------------------------------------------- one value */

static void check_value(struct fhir_vctx *v, json_t *j, const struct fhir_elem_def *e,
                        const struct fhir_type_ref *t)
{
    const struct fhir_struct_def *ts = fhir_type_struct(t);

    if (ts->kind == FHIR_KIND_PRIMITIVE) {
        if (check_primitive(v, j, (enum fhir_prim)ts->prim) && e->binding)
            check_binding(v, j, e, ts); /* an invalid code is reported once, as invalid */
        return;
    }
    if (!json_is_object(j)) {
        fhir_vissue(v, FHIR_ERROR, "structure", NULL, "%s is a JSON object, not %s",
                    fhir_struct_name(ts), json_type_name(j));
        return;
    }
    if (ts->kind == FHIR_KIND_RESOURCE) { /* contained, entry.resource, parameter.resource */
        check_resource(v, j, strcmp(fhir_elem_name(e), "contained") == 0);
        return;
    }
    check_struct(v, j, ts);
    if (e->binding)
        check_binding(v, j, e, ts);
    fhir_check_datatype(v, j, ts, t);
}

/* ---------------------------------------------------------------- one element */

/* The `_name` sibling of a primitive: an Element (id, extension) or, for a repeating
 * primitive, an array of them (or null) aligned with the values. */
static void check_ext_item(struct fhir_vctx *v, json_t *x)
{
    static const char element[] = "Element";

    if (!json_is_object(x))
        fhir_vissue(v, FHIR_ERROR, "structure", NULL,
                    "the id and extensions of a primitive are a JSON object, not %s",
                    json_type_name(x));
    else
        check_struct(v, x, fhir_struct_find(element, sizeof element - 1));
}

static void check_array_item(struct fhir_vctx *v, json_t *item, json_t *ext_item,
                             const struct fhir_elem_def *e, const struct fhir_type_ref *t)
{
    bool prim = fhir_type_struct(t)->kind == FHIR_KIND_PRIMITIVE;

    if (json_is_null(item) && (!prim || !ext_item || json_is_null(ext_item)))
        fhir_vissue(v, FHIR_ERROR, "structure", NULL,
                    prim ? "null in a primitive array needs a non-null `_` sibling at the "
                           "same index"
                         : "null is not allowed in an array");
    else if (item && !json_is_null(item))
        check_value(v, item, e, t);
    if (ext_item && !json_is_null(ext_item))
        check_ext_item(v, ext_item);
}

static size_t check_many(struct fhir_vctx *v, const char *name, json_t *val, json_t *ext,
                         const struct fhir_elem_def *e, const struct fhir_type_ref *t)
{
    size_t i, n, nv = json_array_size(val), nx = json_array_size(ext), mark;

    if ((val && !json_is_array(val)) || (ext && !json_is_array(ext))) {
        fhir_vissue(v, FHIR_ERROR, "structure", name,
                    "'%s' repeats (max *): its value is a JSON array", name);
        return 1;
    }
    if ((val && nv == 0) || (ext && nx == 0)) {
        fhir_vissue(v, FHIR_ERROR, "structure", name, "an empty array is not allowed");
        return 0;
    }
    if (val && ext && nv != nx)
        fhir_vissue(v, FHIR_ERROR, "structure", name,
                    "'%s' has %zu values but '_%s' has %zu: they must align", name, nv, name, nx);
    n = nv > nx ? nv : nx;
    for (i = 0; i < n; i++) {
        mark = fhir_path_push_elem(&v->path, name, e, t, (long)i);
        check_array_item(v, val ? json_array_get(val, i) : NULL,
                         ext ? json_array_get(ext, i) : NULL, e, t);
        fhir_path_pop(&v->path, mark);
    }
    return n;
}

static size_t check_one(struct fhir_vctx *v, const char *name, json_t *val, json_t *ext,
                        const struct fhir_elem_def *e, const struct fhir_type_ref *t)
{
    size_t mark;

    if (json_is_array(val) || json_is_array(ext)) {
        fhir_vissue(v, FHIR_ERROR, "structure", name,
                    "'%s' does not repeat (max %u): its value is not an array", name, e->max);
        return json_is_array(val) ? json_array_size(val) : 1;
    }
    mark = fhir_path_push_elem(&v->path, name, e, t, -1);
    if (val && json_is_null(val))
        fhir_vissue(v, FHIR_ERROR, "structure", NULL, "null is not allowed in FHIR JSON");
    else if (val)
        check_value(v, val, e, t);
    if (ext)
        check_ext_item(v, ext);
    fhir_path_pop(&v->path, mark);
    return 1;
}

/* Checks the value and `_name` sibling of element e of type t (either may be NULL) under
 * name; returns how many values. */
static size_t check_member(struct fhir_vctx *v, const char *name, json_t *val, json_t *ext,
                           const struct fhir_elem_def *e, const struct fhir_type_ref *t)
{
    if (ext && fhir_type_struct(t)->kind != FHIR_KIND_PRIMITIVE)
        ext = NULL; /* reported as unknown by check_keys() */
    if (!val && !ext)
        return 0;
    if (e->max > 1)
        return check_many(v, name, val, ext, e, t);
    return check_one(v, name, val, ext, e, t);
}

/* The members ranked at element i, type k of the sorted m[*at..n): value and `_name`
 * sibling; advances *at past them. */
static void take_member(const struct fhir_member *m, size_t n, size_t *at, unsigned i, unsigned k,
                        json_t **val, json_t **ext)
{
    *val = *ext = NULL;
    while (*at < n && m[*at].e && FHIR_RANK_ELEM(m[*at].rank) == i &&
           FHIR_RANK_TYPE(m[*at].rank) == k) {
        if (FHIR_RANK_UNDER(m[*at].rank))
            *ext = m[*at].v;
        else
            *val = m[*at].v;
        (*at)++;
    }
}

/* Element e (index i) of s: its values, then min and max. m[*at..n) are obj's members
 * sorted by rank; those of e are consumed. */
static void check_element(struct fhir_vctx *v, const struct fhir_member *m, size_t n, size_t *at,
                          const struct fhir_elem_def *e, unsigned i)
{
    const char *en = fhir_elem_name(e);
    char name[FHIR_NAME_MAX];
    unsigned k, variants = 0;
    size_t count = 0;
    json_t *val, *ext;

    if (!(e->flags & FHIR_EL_CHOICE)) {
        take_member(m, n, at, i, 0, &val, &ext);
        count = check_member(v, en, val, ext, e, fhir_elem_type(e, 0));
    } else {
        for (k = 0; k < e->n_types; k++) {
            size_t c;

            take_member(m, n, at, i, k, &val, &ext);
            if ((!val && !ext) || !fhir_choice_name(name, sizeof name, e, fhir_elem_type(e, k)))
                continue;
            c = check_member(v, name, val, ext, e, fhir_elem_type(e, k));
            variants += c > 0;
            count += c;
        }
        if (variants > 1)
            fhir_vissue(v, FHIR_ERROR, "structure", en, "%s[x] takes one type, but %u are present",
                        en, variants);
    }
    if (variants > 1)
        return; /* "takes one type" says it; a max issue would repeat it */
    if (count < e->min)
        fhir_vissue(v, FHIR_ERROR, "required", en, "'%s%s' is required (min %u) but missing", en,
                    e->flags & FHIR_EL_CHOICE ? "[x]" : "", e->min);
    else if (e->max != FHIR_MAX_MANY && count > e->max)
        fhir_vissue(v, FHIR_ERROR, "structure", en, "'%s' has %zu values (max %u)", en, count,
                    e->max);
}

/* Every element of s, in the model's order: those obj has, and those it lacks that are
 * required (the others have nothing to say). m: obj's members sorted by rank. */
static void check_elements(struct fhir_vctx *v, const struct fhir_member *m, size_t n,
                           const struct fhir_struct_def *s)
{
    size_t at = 0;
    unsigned i;

    for (i = 0; i < s->n_elems; i++) {
        const struct fhir_elem_def *e = fhir_struct_elem(s, i);

        if ((at < n && m[at].e && FHIR_RANK_ELEM(m[at].rank) == i) || e->min > 0)
            check_element(v, m, n, &at, e, i);
    }
}

/* Every member of obj (m, in obj's order) must name an element of s (or be a primitive's
 * `_name`). */
static void check_keys(struct fhir_vctx *v, const struct fhir_member *m, size_t n,
                       const struct fhir_struct_def *s)
{
    size_t i;

    for (i = 0; i < n; i++) {
        bool ext = m[i].key[0] == '_';

        if (!m[i].e)
            fhir_vissue(v, FHIR_ERROR, "structure", m[i].key, "unknown element '%.80s' in %s",
                        m[i].key, fhir_struct_name(s));
        else if (ext && (!m[i].t || fhir_type_struct(m[i].t)->kind != FHIR_KIND_PRIMITIVE))
            fhir_vissue(v, FHIR_ERROR, "structure", m[i].key,
                        "'%.80s': only primitive elements have a `_` sibling", m[i].key);
    }
}

static void check_struct(struct fhir_vctx *v, json_t *obj, const struct fhir_struct_def *s)
{
    struct fhir_member stack[FHIR_MEMBERS_ON_STACK], *m;
    size_t members = json_object_size(obj), n;

    if (s->kind == FHIR_KIND_RESOURCE && json_object_get(obj, "resourceType"))
        members--;
    if (members == 0) /* ele-1 */
        fhir_vissue(v, FHIR_ERROR, "structure", NULL,
                    "an empty object is not allowed (ele-1: a value or children)");
    m = fhir_members(obj, s, s->kind == FHIR_KIND_RESOURCE, stack, &n);
    if (!m) {
        v->nomem = true;
        return;
    }
    check_keys(v, m, n, s);
    fhir_members_sort(m, n);
    check_elements(v, m, n, s);
    fhir_members_free(m, stack);
}

/* ---------------------------------------------------------------- resources */

static void check_resource_body(struct fhir_vctx *v, json_t *res, const struct fhir_struct_def *s)
{
    json_t *urls = NULL, *outer_urls = v->full_urls;
    bool is_bundle = strcmp(fhir_struct_name(s), "Bundle") == 0;

    if (is_bundle) {
        urls = fhir_bundle_urls(res);
        if (!urls) {
            v->nomem = true;
            return;
        }
        v->full_urls = urls;
    }
    check_struct(v, res, s);
    if (is_bundle)
        fhir_check_bundle(v, res);
    v->full_urls = outer_urls;
    json_decref(urls);
}

/* The flags and the id map of c's contained resources; false when out of memory. */
static bool open_container(struct fhir_container *c)
{
    size_t i, n = json_array_size(c->contained);

    if (n == 0)
        return true;
    c->referenced = calloc(n, sizeof *c->referenced);
    c->ids = json_object();
    if (!c->referenced || !c->ids)
        return false;
    for (i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(c->contained, i), "id"));

        if (id && !json_object_get(c->ids, id) &&
            json_object_set_new(c->ids, id, json_integer((json_int_t)i)))
            return false;
    }
    return true;
}

static void check_resource(struct fhir_vctx *v, json_t *res, bool contained)
{
    const char *rt = fhir_resource_type(res);
    const struct fhir_struct_def *s = rt ? fhir_resource_find(rt, strlen(rt)) : NULL;
    struct fhir_container c = {0};

    if (!rt) {
        fhir_vissue(v, FHIR_ERROR, "structure", NULL, "a resource needs a resourceType");
        return;
    }
    if (!s) {
        fhir_vissue(v, FHIR_ERROR, "not-supported", NULL,
                    "unknown resource type '%.64s' (not an R4 resource)", rt);
        return;
    }
    if (contained) {
        struct fhir_container *outer = v->container;
        bool was_in = outer && outer->in_contained;
        size_t was_at = outer ? outer->current : 0;

        fhir_check_contained_item(v, res);
        check_resource_body(v, res, s);
        if (outer) { /* a nested contained (dom-2) must not end the outer one */
            outer->in_contained = was_in;
            outer->current = was_at;
        }
        return;
    }
    c.resource = res;
    c.contained = json_object_get(res, "contained");
    if (!open_container(&c)) {
        v->nomem = true;
        goto out;
    }
    c.outer = v->container;
    v->container = &c;
    check_resource_body(v, res, s);
    fhir_check_contained_refs(v, &c);
    v->container = c.outer;
out:
    json_decref(c.ids);
    free(c.referenced);
}

int fhir_validate(json_t *resource, json_t *outcome)
{
    struct fhir_vctx v = {0};
    const char *rt = fhir_resource_type(resource);

    v.outcome = outcome;
    fhir_path_init(&v.path, rt && fhir_is_resource_type(rt) ? rt : "Resource");
    if (!json_is_object(resource))
        fhir_vissue(&v, FHIR_ERROR, "structure", NULL, "a resource is a JSON object");
    else
        check_resource(&v, resource, false);
    fhir_path_cleanup(&v.path);
    return v.nomem ? -1 : v.n_errors;
}
