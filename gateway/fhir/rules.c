/* rules.c -- the forms of Reference.reference (R4 §2.3.0 "Resource References"), and the R4
 * rules that look across elements, for validate.c: references (form, target type, contained
 * resolution), contained resources (dom-2..dom-5), Bundles (bdl-1..bdl-5,
 * bdl-7..bdl-12, transaction and batch requests, fullUrl against the resource id) and a few
 * data-type invariants (ext-1, sqty-1, qty-3, per-1, cpt-2, att-1).
 *
 * Each rule adds its issues at the walk's current path (the element it is about), with the
 * invariant's key in the diagnostics so a person can look it up.
 */
#include "fhir/fhir_int.h"

#include <string.h>

/* ---------------------------------------------------------------- reference forms */

/* fhir_ref_parse(): the parts point into the caller's string, nothing is allocated, and a
 * form is accepted only whole: a known resource type and a valid id, a canonical UUID, a
 * valid OID. */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_uuid(const char *s, size_t len)
{
    size_t i;

    if (len != 36)
        return false;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!is_hex(s[i])) {
            return false;
        }
    }
    return true;
}

/* Reads "Type/id" or "Type/id/_history/vid" filling the three parts; the whole of s. */
static bool restful_tail(const char *s, size_t len, struct fhir_ref *out)
{
    const char *slash = memchr(s, '/', len), *id, *hist;
    size_t rest;

    if (!slash || !fhir_resource_find(s, (size_t)(slash - s)))
        return false;
    id = slash + 1;
    rest = len - (size_t)(id - s);
    hist = memchr(id, '/', rest);
    if (hist) {
        if (rest - (size_t)(hist - id) < 11 || strncmp(hist, "/_history/", 10) != 0 ||
            !fhir_is_id(hist + 10, rest - (size_t)(hist - id) - 10))
            return false;
        out->version = hist + 10;
        out->version_len = rest - (size_t)(hist - id) - 10;
        rest = (size_t)(hist - id);
    }
    if (!fhir_is_id(id, rest))
        return false;
    out->type = s;
    out->type_len = (size_t)(slash - s);
    out->id = id;
    out->id_len = rest;
    return true;
}

/* An absolute URL; when it ends in Type/id[/_history/vid], the parts and the base. */
static void absolute(const char *s, size_t len, struct fhir_ref *out)
{
    const char *p = s + len;
    int slashes = 0;
    struct fhir_ref tail = {0};

    out->kind = FHIR_REF_ABSOLUTE;
    /* Try the last 2 segments, then the last 4 (with _history). */
    while (p > s) {
        p--;
        if (*p != '/')
            continue;
        slashes++;
        if ((slashes == 2 || slashes == 4) && restful_tail(p + 1, len - (size_t)(p + 1 - s), &tail))
            break;
        if (slashes == 4)
            return;
    }
    if (!tail.type)
        return;
    out->type = tail.type;
    out->type_len = tail.type_len;
    out->id = tail.id;
    out->id_len = tail.id_len;
    out->version = tail.version;
    out->version_len = tail.version_len;
    out->base = s;
    out->base_len = (size_t)(p - s);
}

static enum fhir_ref_kind fail(struct fhir_ref *out)
{
    memset(out, 0, sizeof *out);
    return out->kind = FHIR_REF_INVALID;
}

enum fhir_ref_kind fhir_ref_parse(const char *reference, struct fhir_ref *out)
{
    size_t len = reference ? strlen(reference) : 0;
    const char *q;

    memset(out, 0, sizeof *out);
    if (len == 0)
        return fail(out);
    if (reference[0] == '#') {
        if (len > 1 && !fhir_is_id(reference + 1, len - 1))
            return fail(out);
        out->id = reference + 1;
        out->id_len = len - 1;
        return out->kind = FHIR_REF_CONTAINED;
    }
    if (strncmp(reference, "urn:uuid:", 9) == 0) {
        if (!is_uuid(reference + 9, len - 9))
            return fail(out);
        out->id = reference + 9;
        out->id_len = len - 9;
        return out->kind = FHIR_REF_UUID;
    }
    if (strncmp(reference, "urn:oid:", 8) == 0) {
        if (fhir_prim_check_text(FHIR_PRIM_OID, reference, len))
            return fail(out);
        out->id = reference + 8;
        out->id_len = len - 8;
        return out->kind = FHIR_REF_OID;
    }
    if (strstr(reference, "://")) {
        if (fhir_prim_check_text(FHIR_PRIM_URI, reference, len))
            return fail(out);
        absolute(reference, len, out);
        return out->kind;
    }
    q = strchr(reference, '?');
    if (q && q > reference && fhir_resource_find(reference, (size_t)(q - reference)) &&
        q[1] != '\0' && !fhir_prim_check_text(FHIR_PRIM_URI, reference, len)) {
        out->type = reference;
        out->type_len = (size_t)(q - reference);
        out->query = q + 1;
        out->query_len = len - (size_t)(q + 1 - reference);
        return out->kind = FHIR_REF_CONDITIONAL;
    }
    if (!restful_tail(reference, len, out))
        return fail(out);
    return out->kind = FHIR_REF_RELATIVE;
}

/* ---------------------------------------------------------------- references */

/* The contained resource #id of the innermost container, or NULL; marks it referenced. */
static json_t *contained_target(struct fhir_vctx *v, const char *id, size_t len)
{
    struct fhir_container *c = v->container;
    json_t *at;
    size_t i;

    if (!c)
        return NULL;
    if (len == 0) { /* "#": the container, from inside one of its contained resources */
        if (!c->in_contained)
            return NULL;
        c->referenced[c->current] = true;
        return c->resource;
    }
    at = json_object_getn(c->ids, id, len);
    if (!at)
        return NULL;
    i = (size_t)json_integer_value(at);
    if (!c->in_contained || c->current != i)
        c->referenced[i] = true;
    return json_array_get(c->contained, i);
}

/* The resource type the reference designates (static or borrowed text), or NULL. */
static const char *target_type(struct fhir_vctx *v, const char *r, const struct fhir_ref *ref,
                               size_t *len)
{
    json_t *res;
    const char *rt;

    switch (ref->kind) {
    case FHIR_REF_RELATIVE:
    case FHIR_REF_ABSOLUTE:
    case FHIR_REF_CONDITIONAL:
        *len = ref->type_len;
        return ref->type;
    case FHIR_REF_CONTAINED:
        res = contained_target(v, ref->id, ref->id_len);
        if (!res) {
            fhir_vissue(v, FHIR_ERROR, "not-found", "reference",
                        ref->id_len ? "'%.80s' matches no contained resource (ref-1)"
                                    : "'%.80s' (the container) is only valid inside a "
                                      "contained resource",
                        r);
            return NULL;
        }
        rt = fhir_resource_type(res);
        *len = rt ? strlen(rt) : 0;
        return rt;
    default: /* urn:uuid:, urn:oid: point into the Bundle, when in one */
        rt = json_string_value(json_object_get(v->full_urls, r));
        *len = rt ? strlen(rt) : 0;
        return rt;
    }
}

void fhir_check_reference(struct fhir_vctx *v, json_t *obj, const struct fhir_type_ref *t)
{
    const char *r = json_string_value(json_object_get(obj, "reference"));
    const char *declared = json_string_value(json_object_get(obj, "type"));
    const char *type = NULL;
    struct fhir_ref ref;
    struct gw_buf allowed;
    size_t len = 0;

    if (r && fhir_ref_parse(r, &ref) == FHIR_REF_INVALID) {
        fhir_vissue(v, FHIR_ERROR, "value", "reference",
                    "'%.80s' is not a valid reference (Type/id, Type/id/_history/vid, an "
                    "absolute URL, urn:uuid:, urn:oid: or #id)",
                    r);
        return;
    }
    if (r && ref.kind == FHIR_REF_CONDITIONAL && !v->full_urls)
        fhir_vissue(v, FHIR_ERROR, "value", "reference",
                    "'%.80s': a conditional reference is only allowed in a transaction Bundle", r);
    if (r)
        type = target_type(v, r, &ref, &len);
    if (declared && type && fhir_is_resource_type(declared) &&
        (strlen(declared) != len || strncmp(declared, type, len) != 0))
        fhir_vissue(v, FHIR_ERROR, "invariant", "type",
                    "Reference.type '%.64s' disagrees with the reference '%.80s'", declared, r);
    if (!type && declared && fhir_is_resource_type(declared)) {
        type = declared;
        len = strlen(declared);
    }
    if (!type || fhir_type_allows_target(t, type, len))
        return;
    gw_buf_init(&allowed, 8192);
    fhir_type_targets_text(&allowed, t);
    fhir_vissue(v, FHIR_ERROR, "value", NULL,
                "a reference to %.*s is not allowed here (allowed: %s)", (int)len, type,
                allowed.err    ? "..."
                : allowed.data ? allowed.data
                               : "");
    gw_buf_cleanup(&allowed);
}

/* ---------------------------------------------------------------- data-type invariants */

static bool has_key_prefix(json_t *obj, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *key;
    json_t *val;

    json_object_foreach (obj, key, val) {
        if (strncmp(key, prefix, n) == 0 && key[n] >= 'A' && key[n] <= 'Z')
            return true;
    }
    return false;
}

static void check_period(struct fhir_vctx *v, json_t *obj)
{
    const char *start = json_string_value(json_object_get(obj, "start"));
    const char *end = json_string_value(json_object_get(obj, "end"));
    int64_t s_lo, s_hi, e_lo, e_hi;

    if (start && end && gw_time_parse_fhir(start, &s_lo, &s_hi) &&
        gw_time_parse_fhir(end, &e_lo, &e_hi) && s_lo >= e_hi)
        fhir_vissue(v, FHIR_ERROR, "invariant", NULL,
                    "per-1: the period starts (%.40s) after it ends (%.40s)", start, end);
}

void fhir_check_datatype(struct fhir_vctx *v, json_t *obj, const struct fhir_struct_def *s,
                         const struct fhir_type_ref *t)
{
    const char *name = fhir_struct_name(s);

    if (strcmp(name, "Reference") == 0) {
        fhir_check_reference(v, obj, t);
    } else if (strcmp(name, "Extension") == 0) {
        bool ext = json_object_get(obj, "extension") != NULL, val = has_key_prefix(obj, "value");

        if (ext == val)
            fhir_vissue(v, FHIR_ERROR, "invariant", NULL,
                        "ext-1: an extension has either a value[x] or extensions, %s",
                        ext ? "not both" : "but has neither");
    } else if (strcmp(name, "Period") == 0) {
        check_period(v, obj);
    } else if (strcmp(name, "ContactPoint") == 0) {
        if (json_object_get(obj, "value") && !json_object_get(obj, "system"))
            fhir_vissue(v, FHIR_ERROR, "invariant", "system",
                        "cpt-2: a contact point with a value needs a system");
    } else if (strcmp(name, "Attachment") == 0) {
        if (json_object_get(obj, "data") && !json_object_get(obj, "contentType"))
            fhir_vissue(v, FHIR_ERROR, "invariant", "contentType",
                        "att-1: an attachment with data needs a contentType");
    } else if (strcmp(name, "Quantity") == 0 || strcmp(name, "Age") == 0 ||
               strcmp(name, "Distance") == 0 || strcmp(name, "Duration") == 0 ||
               strcmp(name, "Count") == 0) {
        if ((t->targets & FHIR_TY_SIMPLE_QUANTITY) && json_object_get(obj, "comparator"))
            fhir_vissue(v, FHIR_ERROR, "invariant", "comparator",
                        "sqty-1: a SimpleQuantity has no comparator");
        if (json_object_get(obj, "code") && !json_object_get(obj, "system"))
            fhir_vissue(v, FHIR_ERROR, "invariant", "system",
                        "qty-3: a quantity with a unit code needs the code system");
    }
}
