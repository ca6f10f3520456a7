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

/* The structure of a ranked member's value: its type's, an Element for `_name`, none when
 * the model does not know the member. */
static const struct fhir_struct_def *value_struct(const struct fhir_member *m)
{
    static const char element[] = "Element";

    if (!m->e)
        return NULL;
    if (FHIR_RANK_UNDER(m->rank))
        return fhir_struct_find(element, sizeof element - 1);
    return fhir_type_struct((m->e->flags & FHIR_EL_CHOICE) ? m->t : fhir_elem_type(m->e, 0));
}

static void write_object(struct jw *w, json_t *obj, const struct fhir_struct_def *s, int depth)
{
    struct fhir_member stack[FHIR_MEMBERS_ON_STACK], *m;
    bool first = true;
    size_t i, n = 0;

    if (s && s->kind == FHIR_KIND_RESOURCE && s->abstract) {
        const char *rt = fhir_resource_type(obj);

        s = rt ? fhir_resource_find(rt, strlen(rt)) : NULL;
    }
    if (s && s->kind == FHIR_KIND_PRIMITIVE)
        s = NULL;
    m = fhir_members(obj, s, s && s->kind == FHIR_KIND_RESOURCE, stack, &n);
    if (!m) {
        w->b->err = GW_E_NOMEM;
        return;
    }
    fhir_members_sort(m, n);
    gw_buf_putc(w->b, '{');
    if (s && s->kind == FHIR_KIND_RESOURCE) {
        put_key(w, "resourceType", 12, &first, depth + 1);
        put_string(w, fhir_struct_name(s), strlen(fhir_struct_name(s)));
    }
    for (i = 0; i < n; i++) {
        put_key(w, m[i].key, m[i].len, &first, depth + 1);
        write_value(w, m[i].v, value_struct(&m[i]), depth + 1);
    }
    if (!first)
        newline(w, depth);
    gw_buf_putc(w->b, '}');
    fhir_members_free(m, stack);
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
