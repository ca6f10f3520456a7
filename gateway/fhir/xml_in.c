/* xml_in.c -- FHIR XML bytes to the internal form (R4 §2.6 "XML Representation").
 *
 * Passes: size and UTF-8; a flat scan of the raw text (no recursion) that enforces the
 * depth, string, children and element limits before libxml2 recurses; fhir_xml_read() (no
 * DTD, no entities, no network); then a walk of the tree guided by the model: value
 * attributes become JSON primitives (booleans and integers typed, decimals as their text),
 * ids and extensions of primitives go to `_name` siblings, repeating elements to arrays
 * (primitive arrays aligned with null), resources inside contained / entry.resource /
 * parameter.resource keep their resourceType, and the narrative div becomes an XHTML string.
 *
 * What the JSON form cannot carry is reported here, every occurrence with its expression:
 * unknown elements and attributes, elements outside the FHIR namespace, text where none
 * belongs, elements out of the model's order, a max-1 element given twice, an element with
 * neither value nor children.
 */
#include "fhir/fhir_int.h"

#include <libxml/tree.h>
#include <libxml/xmlsave.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- pass 2: limits */

struct xscan {
    const char *p;
    size_t len;
    const struct fhir_limits *lim;
    size_t *children; /* per open element */
    size_t depth, cap;
    size_t elements;
    const char *limit;
    size_t limit_value;
    bool nomem;
};

static bool xhit(struct xscan *s, const char *limit, size_t value)
{
    s->limit = limit;
    s->limit_value = value;
    return false;
}

/* The index just past the first occurrence of tok at or after i, or len. */
static size_t skip_past(const struct xscan *s, size_t i, const char *tok)
{
    size_t n = strlen(tok);

    for (; i + n <= s->len; i++)
        if (memcmp(s->p + i, tok, n) == 0)
            return i + n;
    return s->len;
}

static bool open_element(struct xscan *s)
{
    if (++s->elements > s->lim->max_elements)
        return xhit(s, "max_elements", s->lim->max_elements);
    if (s->depth > 0 && ++s->children[s->depth - 1] > s->lim->max_array_items)
        return xhit(s, "max_array_items", s->lim->max_array_items);
    return true;
}

static bool push_element(struct xscan *s)
{
    size_t *c;

    if (s->depth >= s->lim->max_depth)
        return xhit(s, "max_depth", s->lim->max_depth);
    c = gw_grow(s->children, &s->cap, s->depth, sizeof *c, 32);
    if (!c) {
        s->nomem = true;
        return false;
    }
    s->children = c;
    s->children[s->depth++] = 0;
    return true;
}

/* A start tag from s->p[*i] ('<'): attributes (quoted values bounded), then '>' or '/>'. */
static bool scan_tag(struct xscan *s, size_t *i)
{
    size_t j = *i + 1, q;

    if (!open_element(s))
        return false;
    while (j < s->len && s->p[j] != '>') {
        if (s->p[j] == '"' || s->p[j] == '\'') {
            const char *close = memchr(s->p + j + 1, s->p[j], s->len - j - 1);

            q = close ? (size_t)(close - s->p) : s->len;
            if (q - j - 1 > s->lim->max_string_bytes)
                return xhit(s, "max_string_bytes", s->lim->max_string_bytes);
            j = q + 1;
            continue;
        }
        j++;
    }
    *i = j + 1;
    if (j < s->len && s->p[j - 1] == '/')
        return true;
    return push_element(s);
}

static bool xml_scan(struct xscan *s)
{
    size_t i = 0, text;

    while (i < s->len) {
        const char *lt = memchr(s->p + i, '<', s->len - i);
        size_t at = lt ? (size_t)(lt - s->p) : s->len, left;

        text = at - i;
        if (text > s->lim->max_string_bytes)
            return xhit(s, "max_string_bytes", s->lim->max_string_bytes);
        i = at;
        left = s->len - i;
        if (i >= s->len)
            break;
        if (left >= 4 && memcmp(s->p + i, "<!--", 4) == 0) {
            i = skip_past(s, i + 4, "-->");
        } else if (left >= 9 && memcmp(s->p + i, "<![CDATA[", 9) == 0) {
            size_t end = skip_past(s, i + 9, "]]>");

            if (end - i > s->lim->max_string_bytes)
                return xhit(s, "max_string_bytes", s->lim->max_string_bytes);
            i = end;
        } else if (left >= 2 && (s->p[i + 1] == '?' || s->p[i + 1] == '!')) {
            i = skip_past(s, i + 2, ">");
        } else if (left >= 2 && s->p[i + 1] == '/') {
            if (s->depth > 0)
                s->depth--;
            i = skip_past(s, i + 2, ">");
        } else if (!scan_tag(s, &i)) {
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- pass 4: conversion */

struct xin {
    json_t *outcome;
    struct fhir_path path;
    int n_errors;
    bool nomem;
};

static void xissue(struct xin *x, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void xissue(struct xin *x, const char *code, const char *fmt, ...)
{
    struct gw_buf b;
    va_list ap;

    x->n_errors++;
    gw_buf_init(&b, 4096);
    va_start(ap, fmt);
    gw_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (b.err == GW_E_NOMEM || fhir_outcome_add(x->outcome, FHIR_ERROR, code, b.data ? b.data : "",
                                                fhir_path_text(&x->path)))
        x->nomem = true;
    gw_buf_cleanup(&b);
}

static const char *xname(const xmlNode *n)
{
    return (const char *)n->name;
}

static bool in_fhir_ns(const xmlNode *n)
{
    return n->ns && strcmp((const char *)n->ns->href, FHIR_NS) == 0;
}

static json_t *convert_resource(struct xin *x, xmlNode *node);
static void convert_children(struct xin *x, xmlNode *node, const struct fhir_struct_def *s,
                             json_t *obj, bool attributes);

/* Non-blank text where only elements belong. */
static bool is_blank(const xmlNode *n)
{
    const char *t = (const char *)n->content;

    return !t || t[strspn(t, " \t\r\n")] == '\0';
}

static void set_or_nomem(struct xin *x, json_t *obj, const char *key, json_t *val)
{
    if (json_object_set_new(obj, key, val))
        x->nomem = true;
}

/* The JSON value of a primitive's value attribute: booleans and integers typed when their
 * text is valid (else kept as text for fhir_validate() to report), everything else text. */
static json_t *primitive_value(enum fhir_prim prim, const char *text)
{
    size_t len = strlen(text);
    long v;

    if (prim == FHIR_PRIM_BOOLEAN && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0))
        return json_boolean(text[0] == 't');
    if ((prim == FHIR_PRIM_INTEGER || prim == FHIR_PRIM_UNSIGNEDINT ||
         prim == FHIR_PRIM_POSITIVEINT) &&
        !fhir_prim_check_text(prim, text, len) &&
        gw_parse_long(text + (text[0] == '+'), -2147483648L, 2147483647L, &v))
        return json_integer(v);
    return json_stringn(text, len);
}

/* A primitive element: value and id attributes, extension children. Sets *val and *ext
 * (new references or NULL). */
static void convert_primitive(struct xin *x, xmlNode *node, enum fhir_prim prim, json_t **val,
                              json_t **ext)
{
    const struct fhir_struct_def *es = fhir_struct_find("Element", 7);
    xmlAttr *a;

    *val = NULL;
    *ext = json_object();
    if (!*ext) {
        x->nomem = true;
        return;
    }
    for (a = node->properties; a; a = a->next) {
        xmlChar *text = xmlNodeGetContent((xmlNode *)a);

        if (!text) {
            x->nomem = true;
            continue;
        }
        if (!a->ns && strcmp((const char *)a->name, "value") == 0)
            *val = primitive_value(prim, (const char *)text);
        else if (!a->ns && strcmp((const char *)a->name, "id") == 0)
            set_or_nomem(x, *ext, "id", json_string((const char *)text));
        else
            xissue(x, "structure", "unknown attribute '%.60s' on <%s>", (const char *)a->name,
                   xname(node));
        xmlFree(text);
    }
    convert_children(x, node, es, *ext, false); /* extensions; anything else is reported */
    if (json_object_size(*ext) == 0) {
        json_decref(*ext);
        *ext = NULL;
    }
    if (!*val && !*ext)
        xissue(x, "structure", "<%s> has neither a value attribute nor extensions (ele-1)",
               xname(node));
}

static bool in_xhtml_ns(const xmlNode *n)
{
    return n->ns && strcmp((const char *)n->ns->href, FHIR_XHTML_NS) == 0;
}

/* The narrative div (an element in the XHTML namespace), serialised as it stands. */
static json_t *convert_div(struct xin *x, xmlNode *div)
{
    xmlDoc *tmp = NULL;
    xmlBuffer *buf = NULL;
    xmlSaveCtxt *save;
    xmlNode *c;
    json_t *out = NULL;

    tmp = xmlNewDoc(BAD_CAST "1.0");
    buf = xmlBufferCreate();
    c = tmp ? xmlDocCopyNode(div, tmp, 1) : NULL;
    save = c && buf ? xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL | XML_SAVE_AS_XML) : NULL;
    if (save) {
        xmlDocSetRootElement(tmp, c);
        xmlSaveTree(save, c);
        xmlSaveClose(save);
        out = json_stringn((const char *)xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
    } else {
        xmlFreeNode(c);
    }
    if (!out)
        x->nomem = true;
    xmlBufferFree(buf);
    xmlFreeDoc(tmp);
    return out;
}

/* Resources inside elements (contained, entry.resource): exactly one child element. */
static json_t *convert_wrapped(struct xin *x, xmlNode *node)
{
    xmlNode *c, *res = NULL;
    int n = 0;

    for (c = node->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            res = c;
            n++;
        } else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
                   !is_blank(c)) {
            xissue(x, "structure", "text is not allowed in <%s>", xname(node));
        }
    }
    if (n != 1) {
        xissue(x, "structure", "<%s> holds exactly one resource element (it has %d)", xname(node),
               n);
        return NULL;
    }
    return convert_resource(x, res);
}

/* Appends v (a new reference, or NULL for JSON null) to the array obj[key]. */
static void append(struct xin *x, json_t *obj, const char *key, json_t *v)
{
    json_t *arr = json_object_get(obj, key);

    if (!arr) {
        arr = json_array();
        if (!arr || json_object_set_new(obj, key, arr)) {
            json_decref(v);
            x->nomem = true;
            return;
        }
    }
    if (json_array_append_new(arr, v ? v : json_null()))
        x->nomem = true;
}

/* One child element c of element e (of type t) into obj. */
static void convert_element(struct xin *x, xmlNode *c, const struct fhir_elem_def *e,
                            const struct fhir_type_ref *t, json_t *obj)
{
    const struct fhir_struct_def *ts = fhir_type_struct(t);
    char name[FHIR_NAME_MAX + 1];
    json_t *val = NULL, *ext = NULL;
    bool prim = ts->kind == FHIR_KIND_PRIMITIVE && ts->prim != FHIR_PRIM_XHTML;
    long index = -1;
    size_t mark;

    name[0] = '_';
    if (e->flags & FHIR_EL_CHOICE) {
        if (!fhir_choice_name(name + 1, sizeof name - 1, e, t))
            return;
    } else {
        memcpy(name + 1, fhir_elem_name(e), strlen(fhir_elem_name(e)) + 1);
    }
    if (e->max > 1) {
        index = (long)json_array_size(json_object_get(obj, name + 1));
    } else if (json_object_get(obj, name + 1) || json_object_get(obj, name)) {
        mark = fhir_path_push(&x->path, name + 1, strlen(name + 1), -1);
        xissue(x, "structure", "<%s> appears more than once (max 1)", xname(c));
        fhir_path_pop(&x->path, mark);
        return;
    }
    mark = fhir_path_push_elem(&x->path, name + 1, e, t, index);
    if (prim) {
        convert_primitive(x, c, (enum fhir_prim)ts->prim, &val, &ext);
    } else if (ts->prim == FHIR_PRIM_XHTML) {
        val = convert_div(x, c);
    } else if (ts->kind == FHIR_KIND_RESOURCE) {
        val = convert_wrapped(x, c);
    } else {
        val = json_object();
        if (val)
            convert_children(x, c, ts, val, true);
        if (val && json_object_size(val) == 0)
            xissue(x, "structure", "<%s> has no attributes or children (ele-1)", xname(c));
    }
    fhir_path_pop(&x->path, mark);
    if (e->max > 1) {
        append(x, obj, name + 1, val);
        if (prim)
            append(x, obj, name, ext);
    } else {
        if (val)
            set_or_nomem(x, obj, name + 1, val);
        if (ext)
            set_or_nomem(x, obj, name, ext);
    }
}

/* Drops primitive arrays (values or `_name`) that hold only nulls. */
static void drop_null_arrays(struct xin *x, json_t *obj)
{
    const char *key;
    json_t *val;
    void *tmp;

    json_object_foreach_safe (obj, tmp, key, val) {
        size_t i, n = json_array_size(val);

        if (!json_is_array(val) || n == 0)
            continue;
        for (i = 0; i < n && json_is_null(json_array_get(val, i)); i++)
            ;
        if (i == n && json_object_del(obj, key))
            x->nomem = true;
    }
}

static void convert_attributes(struct xin *x, xmlNode *node, const struct fhir_struct_def *s,
                               json_t *obj)
{
    static const char xsi[] = "http://www.w3.org/2001/XMLSchema-instance";
    const struct fhir_type_ref *t;
    const struct fhir_elem_def *e;
    xmlAttr *a;

    for (a = node->properties; a; a = a->next) {
        const char *an = (const char *)a->name;
        xmlChar *text;

        if (a->ns && strcmp((const char *)a->ns->href, xsi) == 0)
            continue; /* xsi:schemaLocation and the like carry no data */
        e = a->ns ? NULL : fhir_elem_lookup(s, an, strlen(an), &t);
        if (!e || !(e->flags & FHIR_EL_XML_ATTR)) {
            xissue(x, "structure", "unknown attribute '%.60s' on <%s>", an, xname(node));
            continue;
        }
        text = xmlNodeGetContent((xmlNode *)a);
        if (!text)
            x->nomem = true;
        else
            set_or_nomem(x, obj, an, json_string((const char *)text));
        xmlFree(text);
    }
}

static void convert_children(struct xin *x, xmlNode *node, const struct fhir_struct_def *s,
                             json_t *obj, bool attributes)
{
    const struct fhir_type_ref *t;
    const struct fhir_elem_def *e, *last = NULL;
    xmlNode *c;

    if (attributes)
        convert_attributes(x, node, s, obj);
    for (c = node->children; c && !x->nomem; c = c->next) {
        size_t mark;

        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && !is_blank(c))
            xissue(x, "structure", "text is not allowed in <%s>", xname(node));
        if (c->type != XML_ELEMENT_NODE)
            continue;
        e = fhir_elem_lookup(s, xname(c), strlen(xname(c)), &t);
        if (e && !(e->flags & FHIR_EL_XML_ATTR) &&
            ((e->flags & FHIR_EL_XHTML) ? in_xhtml_ns(c) : in_fhir_ns(c)) && !(last && e < last)) {
            last = e;
            convert_element(x, c, e, t, obj);
            continue;
        }
        mark = fhir_path_push(&x->path, xname(c), strlen(xname(c)), -1);
        if (e && (e->flags & FHIR_EL_XHTML) ? !in_xhtml_ns(c) : !in_fhir_ns(c))
            xissue(x, "structure", "<%.60s> is not in the %s namespace", xname(c),
                   e && (e->flags & FHIR_EL_XHTML) ? "XHTML (" FHIR_XHTML_NS ")"
                                                   : "FHIR (" FHIR_NS ")");
        else if (!e || (e->flags & FHIR_EL_XML_ATTR))
            xissue(x, "structure", "unknown element <%.60s> in %s", xname(c), fhir_struct_name(s));
        else
            xissue(x, "structure", "<%s> is out of order: it comes before <%s> (R4 element order)",
                   xname(c), fhir_elem_name(last));
        fhir_path_pop(&x->path, mark);
    }
    drop_null_arrays(x, obj);
}

static json_t *convert_resource(struct xin *x, xmlNode *node)
{
    const struct fhir_struct_def *s;
    json_t *obj;

    if (!in_fhir_ns(node)) {
        xissue(x, "structure", "<%.60s> is not in the FHIR namespace (%s)", xname(node), FHIR_NS);
        return NULL;
    }
    s = fhir_resource_find(xname(node), strlen(xname(node)));
    if (!s) {
        xissue(x, "not-supported", "unknown resource type '%.64s' (not an R4 resource)",
               xname(node));
        return NULL;
    }
    obj = json_pack("{s:s}", "resourceType", xname(node));
    if (!obj) {
        x->nomem = true;
        return NULL;
    }
    convert_children(x, node, s, obj, true);
    return obj;
}

/* ---------------------------------------------------------------- the parse */

static enum gw_code xlimit(json_t *outcome, const char *limit, size_t value, struct gw_error *err)
{
    fhir_outcome_addf(outcome, FHIR_FATAL, "too-costly", NULL,
                      "the body exceeds the limit %s = %zu", limit, value);
    return gw_fail(err, GW_E_LIMIT, "FHIR XML body exceeds %s = %zu", limit, value);
}

/* Size, UTF-8 and the flat scan; GW_OK when libxml2 may see the bytes. */
static enum gw_code precheck(const char *data, size_t len, const struct fhir_limits *lim,
                             json_t *outcome, struct gw_error *err)
{
    struct xscan s = {0};
    enum gw_code rc = GW_OK;

    if (len > lim->max_body_bytes)
        return xlimit(outcome, "max_body_bytes", lim->max_body_bytes, err);
    if (!gw_utf8_valid(data, len)) {
        fhir_outcome_add(outcome, FHIR_FATAL, "structure",
                         "the body is not valid UTF-8 (or holds a NUL byte)", NULL);
        return gw_fail(err, GW_E_INPUT, "the FHIR XML body is not valid UTF-8");
    }
    s.p = data;
    s.len = len;
    s.lim = lim;
    if (!xml_scan(&s))
        rc = s.nomem ? gw_fail(err, GW_E_NOMEM, "no memory to scan a FHIR XML body")
                     : xlimit(outcome, s.limit, s.limit_value, err);
    free(s.children);
    return rc;
}

static enum gw_code convert_doc(xmlDoc *doc, json_t **out, json_t *outcome, struct gw_error *err)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    struct xin x = {outcome, {{0}}, 0, false};
    json_t *res;

    fhir_path_init(&x.path, root ? xname(root) : "");
    res = root ? convert_resource(&x, root) : NULL;
    fhir_path_cleanup(&x.path);
    if (x.nomem) {
        json_decref(res);
        return gw_fail(err, GW_E_NOMEM, "no memory for a FHIR XML resource");
    }
    if (x.n_errors || !res) {
        json_decref(res);
        if (!root)
            fhir_outcome_add(outcome, FHIR_FATAL, "structure", "the XML has no root element", NULL);
        return gw_fail(err, GW_E_INPUT, "the XML is not a valid FHIR resource (%d issues)",
                       x.n_errors);
    }
    *out = res;
    return GW_OK;
}

enum gw_code fhir_xml_parse(const char *data, size_t len, const struct fhir_limits *lim,
                            json_t **out, json_t *outcome, struct gw_error *err)
{
    const struct fhir_limits def = FHIR_LIMITS_DEFAULT;
    struct gw_buf why;
    xmlDoc *doc;
    bool refused;
    enum gw_code rc;

    *out = NULL;
    rc = precheck(data, len, lim ? lim : &def, outcome, err);
    if (rc)
        return rc;
    gw_buf_init(&why, 1024);
    doc = fhir_xml_read(data, len, &why, &refused);
    if (!doc) {
        fhir_outcome_addf(outcome, FHIR_FATAL, refused ? "not-supported" : "structure", NULL,
                          "%s XML: %s", refused ? "refused" : "invalid",
                          why.data ? why.data : "unknown error");
        rc = gw_fail(err, GW_E_INPUT, "%s XML: %s", refused ? "refused" : "invalid",
                     why.data ? why.data : "unknown error");
        gw_buf_cleanup(&why);
        return rc;
    }
    gw_buf_cleanup(&why);
    rc = convert_doc(doc, out, outcome, err);
    xmlFreeDoc(doc);
    return rc;
}
