/* json_in.c -- FHIR JSON bytes to the internal form.
 *
 * Four passes, each bounded:
 *   1. size and UTF-8 (gw_utf8_valid also refuses NUL bytes);
 *   2. a flat scan of the raw text (no recursion) that enforces the depth, string, array and
 *      element limits BEFORE Jansson recurses, and records the text of every number in
 *      document order;
 *   3. Jansson, with duplicate keys rejected;
 *   4. a walk of the tree in document order (Jansson keeps object keys in insertion order,
 *      and with duplicates rejected that is the order of the text), guided by the model, that
 *      pairs each JSON number with its text and turns decimals into strings holding that
 *      text (the internal form, see fhir.h).
 * Element-level rules (unknown elements, null, cardinality...) are fhir_validate()'s.
 */
#include "fhir/fhir_int.h"

#include <stdlib.h>
#include <string.h>

struct lexeme {
    size_t off, len;
};

struct frame {
    bool is_array;
    size_t count;
};

struct scan {
    const char *p;
    size_t len;
    const struct fhir_limits *lim;
    struct lexeme *nums;
    size_t n_nums, cap_nums;
    struct frame *stack;
    size_t depth, cap_stack;
    size_t elements;
    const char *limit; /* the limit reached, or NULL */
    size_t limit_value;
    bool nomem;
};

static bool hit(struct scan *s, const char *limit, size_t value)
{
    s->limit = limit;
    s->limit_value = value;
    return false;
}

/* A value starts: counts it against max_elements and its array against max_array_items. */
static bool count_value(struct scan *s)
{
    if (++s->elements > s->lim->max_elements)
        return hit(s, "max_elements", s->lim->max_elements);
    if (s->depth > 0 && s->stack[s->depth - 1].is_array &&
        ++s->stack[s->depth - 1].count > s->lim->max_array_items)
        return hit(s, "max_array_items", s->lim->max_array_items);
    return true;
}

static bool push(struct scan *s, bool is_array)
{
    if (s->depth >= s->lim->max_depth)
        return hit(s, "max_depth", s->lim->max_depth);
    if (s->depth == s->cap_stack) {
        size_t cap = s->cap_stack ? s->cap_stack * 2 : 32;
        struct frame *st = realloc(s->stack, cap * sizeof *st);

        if (!st) {
            s->nomem = true;
            return false;
        }
        s->stack = st;
        s->cap_stack = cap;
    }
    s->stack[s->depth].is_array = is_array;
    s->stack[s->depth].count = 0;
    s->depth++;
    return true;
}

static bool add_number(struct scan *s, size_t off, size_t len)
{
    if (s->n_nums == s->cap_nums) {
        size_t cap = s->cap_nums ? s->cap_nums * 2 : 64;
        struct lexeme *n = realloc(s->nums, cap * sizeof *n);

        if (!n) {
            s->nomem = true;
            return false;
        }
        s->nums = n;
        s->cap_nums = cap;
    }
    s->nums[s->n_nums].off = off;
    s->nums[s->n_nums].len = len;
    s->n_nums++;
    return true;
}

/* A string from s->p[i] (the quote); returns the index after it. Keys are not values. */
static bool scan_string(struct scan *s, size_t *i)
{
    size_t j = *i + 1, k;

    while (j < s->len) { /* to the first quote that no backslash escapes */
        const char *quote = memchr(s->p + j, '"', s->len - j);
        size_t end = quote ? (size_t)(quote - s->p) : s->len;
        const char *escape = memchr(s->p + j, '\\', end - j);

        if (!escape) {
            j = end;
            break;
        }
        j = (size_t)(escape - s->p) + 2; /* the escaped byte may be a quote */
    }
    if (j - *i - 1 > s->lim->max_string_bytes)
        return hit(s, "max_string_bytes", s->lim->max_string_bytes);
    for (k = j + 1; k < s->len && strchr(" \t\r\n", s->p[k]); k++)
        ;
    *i = j + 1;
    return (k < s->len && s->p[k] == ':') || count_value(s);
}

/* Pass 2. Malformed text is left for Jansson to describe: the scan only bounds it. */
static bool scan_text(struct scan *s)
{
    size_t i = 0, j;

    while (i < s->len) {
        char c = s->p[i];

        if (c == '"') {
            if (!scan_string(s, &i))
                return false;
        } else if (c == '{' || c == '[') {
            if (!count_value(s) || !push(s, c == '['))
                return false;
            i++;
        } else if (c == '}' || c == ']') {
            if (s->depth > 0)
                s->depth--;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            for (j = i; j < s->len && strchr("+-0123456789.eE", s->p[j]) && s->p[j]; j++)
                ;
            if (!count_value(s) || !add_number(s, i, j - i))
                return false;
            i = j;
        } else {
            if ((c == 't' || c == 'f' || c == 'n') && !count_value(s))
                return false;
            for (i++; i < s->len && c >= 'a' && c <= 'z' && s->p[i] >= 'a' && s->p[i] <= 'z';)
                i++;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- pass 4: numbers */

struct walk {
    struct scan *scan;
    size_t next_num;
    struct fhir_path path;
    json_t *outcome;
    int n_errors;
    bool nomem;
};

static void walk_value(struct walk *w, json_t *v, const struct fhir_struct_def *s,
                       json_t **replace);

/* The next number's text as a new JSON string. */
static json_t *number_text(struct walk *w)
{
    const struct lexeme *lx;

    if (w->next_num >= w->scan->n_nums)
        return NULL; /* cannot happen when Jansson accepted the same text */
    lx = &w->scan->nums[w->next_num++];
    return json_stringn(w->scan->p + lx->off, lx->len);
}

/* The structure of the value of key in an object of structure s (NULL: unknown), and the
 * path segment for it. A `_name` sibling holds a primitive's id and extensions: an Element. */
static const struct fhir_struct_def *member_struct(struct walk *w, const struct fhir_struct_def *s,
                                                   const char *key, size_t *mark)
{
    const struct fhir_type_ref *t = NULL;
    const struct fhir_elem_def *e = NULL;
    size_t len = strlen(key);

    if (s)
        e = fhir_elem_lookup(s, key + (key[0] == '_'), len - (key[0] == '_'), &t);
    if (key[0] == '_') {
        *mark = fhir_path_push(&w->path, key + 1, len - 1, -1);
        return e ? fhir_struct_find("Element", 7) : NULL;
    }
    *mark = fhir_path_push_elem(&w->path, key, e, t, -1);
    return e && t ? fhir_type_struct(t) : NULL;
}

static void walk_object(struct walk *w, json_t *obj, const struct fhir_struct_def *s)
{
    const char *key;
    json_t *v;

    if (s && s->kind == FHIR_KIND_RESOURCE && s->abstract) { /* contained, entry.resource */
        const char *rt = fhir_resource_type(obj);

        s = rt ? fhir_resource_find(rt, strlen(rt)) : NULL;
    }
    json_object_foreach (obj, key, v) {
        size_t mark;
        const struct fhir_struct_def *vs = member_struct(w, s, key, &mark);
        json_t *repl = NULL;

        walk_value(w, v, vs, &repl);
        if (repl && json_object_set_new(obj, key, repl))
            w->nomem = true;
        fhir_path_pop(&w->path, mark);
    }
}

static void walk_array(struct walk *w, json_t *arr, const struct fhir_struct_def *s)
{
    size_t i;

    for (i = 0; i < json_array_size(arr); i++) {
        json_t *repl = NULL;
        size_t mark = fhir_path_push(&w->path, NULL, 0, (long)i);

        walk_value(w, json_array_get(arr, i), s, &repl);
        if (repl && json_array_set_new(arr, i, repl))
            w->nomem = true;
        fhir_path_pop(&w->path, mark);
    }
}

/* Visits v in document order; sets *replace to a new value for decimals. */
static void walk_value(struct walk *w, json_t *v, const struct fhir_struct_def *s, json_t **replace)
{
    bool decimal = s && s->prim == FHIR_PRIM_DECIMAL;

    if (json_is_number(v)) {
        json_t *text = number_text(w);

        if (decimal && !text)
            w->nomem = true;
        if (decimal)
            *replace = text;
        else
            json_decref(text);
    } else if (json_is_string(v) && decimal) {
        w->n_errors++;
        if (fhir_outcome_addf(w->outcome, FHIR_ERROR, "structure", fhir_path_text(&w->path),
                              "a decimal is a JSON number, not a string (\"%.40s\")",
                              json_string_value(v)))
            w->nomem = true;
    } else if (json_is_array(v)) {
        walk_array(w, v, s);
    } else if (json_is_object(v)) {
        walk_object(w, v, s && s->kind != FHIR_KIND_PRIMITIVE ? s : NULL);
    }
}

/* ---------------------------------------------------------------- the parse */

static enum gw_code limit_issue(json_t *outcome, const char *limit, size_t value,
                                struct gw_error *err)
{
    fhir_outcome_addf(outcome, FHIR_FATAL, "too-costly", NULL,
                      "the body exceeds the limit %s = %zu", limit, value);
    return gw_fail(err, GW_E_LIMIT, "FHIR JSON body exceeds %s = %zu", limit, value);
}

static enum gw_code syntax_issue(json_t *outcome, const json_error_t *je, struct gw_error *err)
{
    fhir_outcome_addf(outcome, FHIR_FATAL, "structure", NULL,
                      "invalid JSON at line %d, column %d: %s", je->line, je->column, je->text);
    return gw_fail(err, GW_E_INPUT, "invalid JSON at line %d, column %d: %s", je->line, je->column,
                   je->text);
}

/* The root must be an object naming a concrete R4 resourceType. */
static enum gw_code check_root(json_t *root, json_t *outcome, struct gw_error *err)
{
    json_t *rt = json_object_get(root, "resourceType");
    const char *name = json_string_value(rt);

    if (!json_is_object(root)) {
        fhir_outcome_add(outcome, FHIR_FATAL, "structure", "a FHIR resource is a JSON object",
                         NULL);
        return gw_fail(err, GW_E_INPUT, "the body is not a JSON object");
    }
    if (!name) {
        fhir_outcome_add(outcome, FHIR_FATAL, "structure",
                         "the resource has no resourceType string", NULL);
        return gw_fail(err, GW_E_INPUT, "the resource has no resourceType");
    }
    if (!fhir_is_resource_type(name)) {
        fhir_outcome_addf(outcome, FHIR_FATAL, "not-supported", NULL,
                          "unknown resource type '%.64s' (not an R4 resource)", name);
        return gw_fail(err, GW_E_INPUT, "unknown resource type '%.64s'", name);
    }
    return GW_OK;
}

static enum gw_code convert_numbers(struct scan *s, json_t *root, json_t *outcome,
                                    struct gw_error *err)
{
    struct walk w = {s, 0, {{0}}, outcome, 0, false};
    const char *rt = fhir_resource_type(root);

    fhir_path_init(&w.path, rt);
    walk_object(&w, root, fhir_resource_find(rt, strlen(rt)));
    fhir_path_cleanup(&w.path);
    if (w.nomem)
        return gw_fail(err, GW_E_NOMEM, "no memory for a FHIR JSON resource");
    if (w.n_errors)
        return gw_fail(err, GW_E_INPUT, "%d decimal(s) written as JSON strings", w.n_errors);
    return GW_OK;
}

enum gw_code fhir_json_parse(const char *data, size_t len, const struct fhir_limits *lim,
                             json_t **out, json_t *outcome, struct gw_error *err)
{
    const struct fhir_limits def = FHIR_LIMITS_DEFAULT;
    struct scan s = {0};
    json_error_t je;
    json_t *root = NULL;
    enum gw_code rc;

    *out = NULL;
    s.lim = lim ? lim : &def;
    s.p = data;
    s.len = len;
    if (len > s.lim->max_body_bytes)
        return limit_issue(outcome, "max_body_bytes", s.lim->max_body_bytes, err);
    if (!gw_utf8_valid(data, len)) {
        fhir_outcome_add(outcome, FHIR_FATAL, "structure",
                         "the body is not valid UTF-8 (or holds a NUL byte)", NULL);
        return gw_fail(err, GW_E_INPUT, "the FHIR JSON body is not valid UTF-8");
    }
    if (!scan_text(&s)) {
        rc = s.nomem ? gw_fail(err, GW_E_NOMEM, "no memory to scan a FHIR JSON body")
                     : limit_issue(outcome, s.limit, s.limit_value, err);
        goto out;
    }
    root = gw_json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rc = syntax_issue(outcome, &je, err);
        goto out;
    }
    rc = check_root(root, outcome, err);
    if (rc == GW_OK)
        rc = convert_numbers(&s, root, outcome, err);
    if (rc == GW_OK) {
        *out = root; /* ownership passes to the caller */
        root = NULL;
    }
out:
    json_decref(root);
    free(s.nums);
    free(s.stack);
    return rc;
}

enum gw_code fhir_parse(enum fhir_format format, const char *data, size_t len,
                        const struct fhir_limits *lim, json_t **out, json_t *outcome,
                        struct gw_error *err)
{
    if (format == FHIR_FORMAT_XML)
        return fhir_xml_parse(data, len, lim, out, outcome, err);
    return fhir_json_parse(data, len, lim, out, outcome, err);
}
