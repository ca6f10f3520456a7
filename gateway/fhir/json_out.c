/* json_out.c -- the internal form to FHIR JSON bytes.
 *
 * Promises: resourceType first, then the elements in the order of the model (the order of
 * the specification), each primitive followed by its `_name` sibling; members the model does
 * not know come last, in their own order, so nothing is dropped. Decimals held as lexical
 * strings are written as bare numbers with that text ("1.50" stays 1.50). Output grows in the
 * caller's gw_buf, whose cap bounds it.
 */
#include "fhir/fhir_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FHIR_WRITE_MAX_DEPTH 512 /* resources built in code are not bounded by a parse */

struct jw {
    struct gw_buf *b;
    bool pretty;
    const char *bad; /* why the resource cannot be written, or NULL */
};

static void write_value(struct jw *w, json_t *v, const struct fhir_struct_def *s, int depth);

static void newline(struct jw *w, int depth)
{
    int i;

    if (!w->pretty)
        return;
    gw_buf_putc(w->b, '\n');
    for (i = 0; i < depth; i++)
        gw_buf_puts(w->b, "  ");
}

static void put_string(struct jw *w, const char *s, size_t len)
{
    gw_buf_putc(w->b, '"');
    gw_buf_json_escape(w->b, s, len);
    gw_buf_putc(w->b, '"');
}

static void put_key(struct jw *w, const char *key, size_t len, bool *first, int depth)
{
    if (!*first)
        gw_buf_putc(w->b, ',');
    *first = false;
    newline(w, depth);
    put_string(w, key, len);
    gw_buf_puts(w->b, w->pretty ? ": " : ":");
}

static void write_scalar(struct jw *w, json_t *v, const struct fhir_struct_def *s)
{
    const char *str;

    switch (json_typeof(v)) {
    case JSON_STRING:
        str = json_string_value(v);
        if (s && s->prim == FHIR_PRIM_DECIMAL && fhir_is_decimal_lexeme(str, json_string_length(v)))
            gw_buf_append(w->b, str, json_string_length(v));
        else
            put_string(w, str, json_string_length(v));
        break;
    case JSON_INTEGER:
        gw_buf_printf(w->b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            w->bad = "a number is not finite";
        else
            fhir_put_real(w->b, json_real_value(v));
        break;
    case JSON_TRUE:
        gw_buf_puts(w->b, "true");
        break;
    case JSON_FALSE:
        gw_buf_puts(w->b, "false");
        break;
    default:
        gw_buf_puts(w->b, "null");
        break;
    }
}

static void write_array(struct jw *w, json_t *arr, const struct fhir_struct_def *s, int depth)
{
    size_t i;

    gw_buf_putc(w->b, '[');
    for (i = 0; i < json_array_size(arr); i++) {
        if (i > 0)
            gw_buf_putc(w->b, ',');
        newline(w, depth + 1);
        write_value(w, json_array_get(arr, i), s, depth + 1);
    }
    if (i > 0)
        newline(w, depth);
    gw_buf_putc(w->b, ']');
}

/* A member of an object as it is written: its place in the model's order (element, then
 * choice type, then the `_name` sibling after the value; members the model does not know
 * last, in their own order) and the structure of its value. */
struct member {
    const char *key;
    size_t len;
    json_t *v;
    uint64_t rank;
    const struct fhir_struct_def *vs;
};

#define MEMBER_UNKNOWN   UINT64_MAX
#define MEMBERS_ON_STACK 16 /* most objects; a frame stays small at any depth */

static void rank_member(struct member *m, const struct fhir_struct_def *s)
{
    static const char element[] = "Element";
    bool under = m->key[0] == '_';
    const struct fhir_type_ref *t = NULL;
    const struct fhir_elem_def *e =
        s ? fhir_elem_lookup(s, m->key + under, m->len - under, &t) : NULL;
    unsigned k = 0;

    m->rank = MEMBER_UNKNOWN;
    m->vs = NULL;
    if (!e)
        return;
    if (e->flags & FHIR_EL_CHOICE)
        k = (unsigned)(t - fhir_elem_type(e, 0));
    else
        t = fhir_elem_type(e, 0);
    m->rank = ((uint64_t)(e - fhir_struct_elem(s, 0)) << 32) | ((uint64_t)k << 1) | under;
    m->vs = under ? fhir_struct_find(element, sizeof element - 1) : fhir_type_struct(t);
}

/* Stable: unknown members keep their order, and so does everything else. */
static void sort_members(struct member *m, size_t n)
{
    size_t i, j;

    for (i = 1; i < n; i++) {
        struct member x = m[i];

        for (j = i; j > 0 && m[j - 1].rank > x.rank; j--)
            m[j] = m[j - 1];
        m[j] = x;
    }
}

/* The members of obj in the order they are written (resourceType left out of a
 * resource's: it comes first); *n gets their number. NULL when out of memory. */
static struct member *order_members(json_t *obj, const struct fhir_struct_def *s,
                                    struct member *stack, size_t *n)
{
    size_t cap = json_object_size(obj), i = 0;
    struct member *m = cap <= MEMBERS_ON_STACK ? stack : malloc(cap * sizeof *m);
    bool is_resource = s && s->kind == FHIR_KIND_RESOURCE;
    const char *key;
    json_t *v;

    if (!m)
        return NULL;
    json_object_foreach (obj, key, v) {
        if (i == cap)
            break;
        if (is_resource && strcmp(key, "resourceType") == 0)
            continue;
        m[i] = (struct member){key, strlen(key), v, 0, NULL};
        rank_member(&m[i], s);
        i++;
    }
    sort_members(m, i);
    *n = i;
    return m;
}

static void write_object(struct jw *w, json_t *obj, const struct fhir_struct_def *s, int depth)
{
    struct member stack[MEMBERS_ON_STACK], *m;
    bool first = true;
    size_t i, n = 0;

    if (s && s->kind == FHIR_KIND_RESOURCE && s->abstract) {
        const char *rt = fhir_resource_type(obj);

        s = rt ? fhir_resource_find(rt, strlen(rt)) : NULL;
    }
    if (s && s->kind == FHIR_KIND_PRIMITIVE)
        s = NULL;
    m = order_members(obj, s, stack, &n);
    if (!m) {
        w->b->err = GW_E_NOMEM;
        return;
    }
    gw_buf_putc(w->b, '{');
    if (s && s->kind == FHIR_KIND_RESOURCE) {
        put_key(w, "resourceType", 12, &first, depth + 1);
        put_string(w, fhir_struct_name(s), strlen(fhir_struct_name(s)));
    }
    for (i = 0; i < n; i++) {
        put_key(w, m[i].key, m[i].len, &first, depth + 1);
        write_value(w, m[i].v, m[i].vs, depth + 1);
    }
    if (!first)
        newline(w, depth);
    gw_buf_putc(w->b, '}');
    if (m != stack)
        free(m);
}

static void write_value(struct jw *w, json_t *v, const struct fhir_struct_def *s, int depth)
{
    if (w->bad || w->b->err)
        return;
    if (depth > FHIR_WRITE_MAX_DEPTH) {
        w->bad = "the resource nests too deeply";
        return;
    }
    if (json_is_object(v))
        write_object(w, v, s, depth);
    else if (json_is_array(v))
        write_array(w, v, s, depth);
    else
        write_scalar(w, v, s);
}

enum gw_code fhir_json_write(json_t *resource, unsigned flags, struct gw_buf *out,
                             struct gw_error *err)
{
    const char *rt = fhir_resource_type(resource);
    const struct fhir_struct_def *s = rt ? fhir_resource_find(rt, strlen(rt)) : NULL;
    struct jw w = {out, (flags & FHIR_WRITE_PRETTY) != 0, NULL};

    if (!json_is_object(resource) || !s)
        return gw_fail(err, GW_E_INPUT, "not a resource with a known resourceType");
    write_object(&w, resource, s, 0);
    if (w.pretty)
        gw_buf_putc(out, '\n');
    if (w.bad && !out->err)
        return gw_fail(err, GW_E_INPUT, "cannot write the resource as JSON: %s", w.bad);
    return gw_buf_finish(out, "FHIR JSON output", err);
}

enum gw_code fhir_write(enum fhir_format format, json_t *resource, unsigned flags,
                        struct gw_buf *out, struct gw_error *err)
{
    if (format == FHIR_FORMAT_XML)
        return fhir_xml_write(resource, flags, out, err);
    return fhir_json_write(resource, flags, out, err);
}
