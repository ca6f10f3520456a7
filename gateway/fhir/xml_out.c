/* xml_out.c -- the internal form to FHIR XML bytes (R4 §2.6 "XML Representation").
 *
 * Promises: the namespace http://hl7.org/fhir on the root, elements in the model's order,
 * primitives as value attributes with their id and extensions, Element.id and Extension.url
 * as attributes, repeating elements repeated, resources wrapped in their element
 * (<contained><Patient>...), the narrative div written as the XHTML it holds (checked
 * well-formed first), attribute text escaped so that tabs and line ends survive. Nothing the
 * model does not know is written: such a resource fails with GW_E_INPUT, never silently.
 */
#include "fhir/fhir_int.h"

#include <math.h>
#include <string.h>

#define FHIR_WRITE_MAX_DEPTH 512

struct xw {
    struct gw_buf *b;
    bool pretty;
    const char *bad; /* why the resource cannot be written */
    const char *bad_name;
};

static void write_struct_body(struct xw *w, json_t *obj, const struct fhir_struct_def *s,
                              int depth);

static void fail(struct xw *w, const char *why, const char *name)
{
    if (!w->bad) {
        w->bad = why;
        w->bad_name = name;
    }
}

static void indent(struct xw *w, int depth)
{
    int i;

    if (!w->pretty)
        return;
    for (i = 0; i < depth; i++)
        gw_buf_puts(w->b, "  ");
}

static void end_line(struct xw *w)
{
    if (w->pretty)
        gw_buf_putc(w->b, '\n');
}

/* Attribute text: the five XML escapes, and tab/CR/LF as references so that attribute
 * normalisation keeps them. Other control characters and U+FFFE/U+FFFF cannot be written. */
static void put_escaped(struct xw *w, const char *s, size_t len)
{
    size_t i, start = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;

        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\t':
            rep = "&#9;";
            break;
        case '\n':
            rep = "&#10;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        default:
            if (c < 0x20 || (c == 0xEF && i + 2 < len && (unsigned char)s[i + 1] == 0xBF &&
                             ((unsigned char)s[i + 2] & 0xFE) == 0xBE)) {
                fail(w, "a character that XML 1.0 cannot hold", NULL);
                return;
            }
            continue;
        }
        gw_buf_append(w->b, s + start, i - start);
        gw_buf_puts(w->b, rep);
        start = i + 1;
    }
    gw_buf_append(w->b, s + start, len - start);
}

static void put_attr(struct xw *w, const char *name, json_t *v)
{
    gw_buf_printf(w->b, " %s=\"", name);
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_escaped(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        gw_buf_printf(w->b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        if (isfinite(json_real_value(v)))
            fhir_put_real(w->b, json_real_value(v));
        else
            fail(w, "a number is not finite", name);
        break;
    case JSON_TRUE:
        gw_buf_puts(w->b, "true");
        break;
    case JSON_FALSE:
        gw_buf_puts(w->b, "false");
        break;
    default:
        fail(w, "a value is not a JSON primitive", name);
        break;
    }
    gw_buf_putc(w->b, '"');
}

/* The XML-attribute elements of s present in obj (id, url), in the model's order. */
static void put_struct_attrs(struct xw *w, json_t *obj, const struct fhir_struct_def *s)
{
    unsigned i;

    for (i = 0; i < s->n_elems; i++) {
        const struct fhir_elem_def *e = fhir_struct_elem(s, i);
        json_t *v;

        if (!(e->flags & FHIR_EL_XML_ATTR))
            continue;
        v = json_object_get(obj, fhir_elem_name(e));
        if (v)
            put_attr(w, fhir_elem_name(e), v);
    }
}

/* Element content that is not an XML attribute: true when obj has some. */
static bool has_children(json_t *obj, const struct fhir_struct_def *s)
{
    const struct fhir_type_ref *t;
    const struct fhir_elem_def *e;
    const char *key;
    json_t *v;

    json_object_foreach (obj, key, v) {
        e = fhir_elem_lookup(s, key, strlen(key), &t);
        if (!e || !(e->flags & FHIR_EL_XML_ATTR))
            return true;
    }
    return false;
}

static void write_primitive(struct xw *w, const char *name, json_t *val, json_t *ext, int depth)
{
    static const char element[] = "Element";
    const struct fhir_struct_def *es = fhir_struct_find(element, sizeof element - 1);
    json_t *id = json_object_get(ext, "id");
    bool children = json_object_get(ext, "extension") != NULL;

    indent(w, depth);
    gw_buf_printf(w->b, "<%s", name);
    if (id)
        put_attr(w, "id", id);
    if (val && !json_is_null(val))
        put_attr(w, "value", val);
    if (!children) {
        gw_buf_puts(w->b, "/>");
        end_line(w);
        return;
    }
    gw_buf_putc(w->b, '>');
    end_line(w);
    write_struct_body(w, ext, es, depth + 1);
    indent(w, depth);
    gw_buf_printf(w->b, "</%s>", name);
    end_line(w);
}

static void write_div(struct xw *w, json_t *val, int depth)
{
    const char *s = json_string_value(val);

    if (!s || fhir_div_check(s, json_string_length(val))) {
        fail(w, "the narrative div is not well-formed XHTML", "div");
        return;
    }
    indent(w, depth);
    gw_buf_append(w->b, s, json_string_length(val));
    end_line(w);
}

static void write_resource(struct xw *w, json_t *res, bool root, int depth);

static void write_complex(struct xw *w, const char *name, json_t *obj,
                          const struct fhir_struct_def *s, int depth)
{
    if (!json_is_object(obj)) {
        fail(w, "a complex value is not a JSON object", name);
        return;
    }
    indent(w, depth);
    gw_buf_printf(w->b, "<%s", name);
    put_struct_attrs(w, obj, s);
    if (!has_children(obj, s)) {
        gw_buf_puts(w->b, "/>");
        end_line(w);
        return;
    }
    gw_buf_putc(w->b, '>');
    end_line(w);
    write_struct_body(w, obj, s, depth + 1);
    indent(w, depth);
    gw_buf_printf(w->b, "</%s>", name);
    end_line(w);
}

/* One value (not an array) of element name, of type s. */
static void write_one(struct xw *w, const char *name, json_t *val, json_t *ext,
                      const struct fhir_struct_def *s, int depth)
{
    if (depth > FHIR_WRITE_MAX_DEPTH) {
        fail(w, "the resource nests too deeply", name);
        return;
    }
    if (s->prim == FHIR_PRIM_XHTML) {
        write_div(w, val, depth);
    } else if (s->kind == FHIR_KIND_PRIMITIVE) {
        if ((!val || json_is_null(val)) && (!ext || json_is_null(ext)))
            fail(w, "a null without id or extensions", name);
        else
            write_primitive(w, name, val, json_is_object(ext) ? ext : NULL, depth);
    } else if (s->kind == FHIR_KIND_RESOURCE) {
        indent(w, depth);
        gw_buf_printf(w->b, "<%s>", name);
        end_line(w);
        write_resource(w, val, false, depth + 1);
        indent(w, depth);
        gw_buf_printf(w->b, "</%s>", name);
        end_line(w);
    } else {
        write_complex(w, name, val, s, depth);
    }
}

/* obj[name] and obj["_" name]: one value, or a repeating element. */
static void write_member(struct xw *w, json_t *obj, const char *name,
                         const struct fhir_struct_def *s, int depth)
{
    char uname[FHIR_NAME_MAX + 1];
    size_t len = strlen(name), i, n;
    json_t *val = json_object_get(obj, name), *ext;

    if (len >= FHIR_NAME_MAX)
        return;
    uname[0] = '_';
    memcpy(uname + 1, name, len + 1);
    ext = json_object_get(obj, uname);
    if (!val && !ext)
        return;
    if (!json_is_array(val) && !json_is_array(ext)) {
        write_one(w, name, val, ext, s, depth);
        return;
    }
    n = json_array_size(val) > json_array_size(ext) ? json_array_size(val) : json_array_size(ext);
    for (i = 0; i < n && !w->bad; i++)
        write_one(w, name, json_array_get(val, i), json_array_get(ext, i), s, depth);
}

/* Every member must be known to the model: the XML could not say it otherwise. */
static void check_known(struct xw *w, json_t *obj, const struct fhir_struct_def *s)
{
    const struct fhir_type_ref *t;
    const char *key;
    json_t *v;

    json_object_foreach (obj, key, v) {
        bool under = key[0] == '_';

        if (s->kind == FHIR_KIND_RESOURCE && strcmp(key, "resourceType") == 0)
            continue;
        if (!fhir_elem_lookup(s, key + under, strlen(key) - under, &t))
            fail(w, "an element the R4 model does not know", key);
    }
}

static void write_struct_body(struct xw *w, json_t *obj, const struct fhir_struct_def *s, int depth)
{
    char name[FHIR_NAME_MAX];
    unsigned i, k;

    check_known(w, obj, s);
    for (i = 0; i < s->n_elems && !w->bad; i++) {
        const struct fhir_elem_def *e = fhir_struct_elem(s, i);

        if (e->flags & FHIR_EL_XML_ATTR)
            continue;
        if (!(e->flags & FHIR_EL_CHOICE)) {
            write_member(w, obj, fhir_elem_name(e), fhir_type_struct(fhir_elem_type(e, 0)), depth);
            continue;
        }
        for (k = 0; k < e->n_types; k++)
            if (fhir_choice_name(name, sizeof name, e, fhir_elem_type(e, k)))
                write_member(w, obj, name, fhir_type_struct(fhir_elem_type(e, k)), depth);
    }
}

static void write_resource(struct xw *w, json_t *res, bool root, int depth)
{
    const char *rt = fhir_resource_type(res);
    const struct fhir_struct_def *s = rt ? fhir_resource_find(rt, strlen(rt)) : NULL;

    if (!json_is_object(res) || !s) {
        fail(w, "a resource without a known resourceType", rt);
        return;
    }
    indent(w, depth);
    gw_buf_printf(w->b, "<%s%s>", rt, root ? " xmlns=\"" FHIR_NS "\"" : "");
    end_line(w);
    write_struct_body(w, res, s, depth + 1);
    indent(w, depth);
    gw_buf_printf(w->b, "</%s>", rt);
    end_line(w);
}

enum gw_code fhir_xml_write(json_t *resource, unsigned flags, struct gw_buf *out,
                            struct gw_error *err)
{
    struct xw w = {out, (flags & FHIR_WRITE_PRETTY) != 0, NULL, NULL};
    const char *rt = fhir_resource_type(resource);

    if (!json_is_object(resource) || !rt || !fhir_is_resource_type(rt))
        return gw_fail(err, GW_E_INPUT, "not a resource with a known resourceType");
    gw_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    end_line(&w);
    write_resource(&w, resource, true, 0);
    if (w.bad && !out->err)
        return gw_fail(err, GW_E_INPUT, "cannot write the resource as XML: %s%s%.80s%s", w.bad,
                       w.bad_name ? " ('" : "", w.bad_name ? w.bad_name : "",
                       w.bad_name ? "')" : "");
    return gw_buf_finish(out, "FHIR XML output", err);
}
