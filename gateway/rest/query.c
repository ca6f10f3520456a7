/* query.c -- FHIR search parameters into a store query (FHIR R4 §3.1.1).
 *
 * Supported: token (system|code, |code, system|, :not, :missing), reference
 * (Type/id, id, absolute URLs of this server, :Type), date with the prefixes
 * eq ne lt gt le ge sa eb, string (starts-with, :exact, :contains), uri;
 * comma-separated values OR together, repeated parameters AND together;
 * _id, _lastUpdated, _count, _sort, _include, _total. Anything else is
 * reported: a warning under the default Prefer: handling=lenient, a 400
 * under handling=strict.
 */
#include "rest/rest_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define QUERY_MAX_VALUE 1024

/* Parameters that shape the answer rather than select. */
static const char *const result_params[] = {"_count",  "_sort",     "_include", "_total", "_format",
                                            "_pretty", "_snapshot", "_offset",  NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static char *keep(struct rest_search *s, char *p)
{
    return (char *)rest_strings_keep(&s->owned, p);
}

void rest_search_cleanup(struct rest_search *s)
{
    rest_strings_free(&s->owned);
    gw_buf_cleanup(&s->self);
    memset(s, 0, sizeof *s);
}

static bool strict_handling(const struct http_request *req)
{
    const char *prefer = http_request_header(req, "Prefer");

    return prefer && strstr(prefer, "handling=strict") != NULL;
}

/* Reports a parameter that is not applied: warning or (strict) error. */
static enum gw_code not_applied(const struct http_request *req, json_t *outcome, const char *name,
                                const char *why)
{
    bool strict = strict_handling(req);

    fhir_outcome_addf(outcome, strict ? FHIR_ERROR : FHIR_WARNING, "not-supported", NULL,
                      "search parameter '%s' %s%s", name, why, strict ? "" : "; it was ignored");
    return strict ? GW_E_INPUT : GW_OK;
}

static struct store_value *new_value(struct rest_search *s)
{
    if (s->n_values == REST_MAX_VALUES)
        return NULL;
    memset(&s->values[s->n_values], 0, sizeof s->values[0]);
    return &s->values[s->n_values++];
}

/* Next comma-separated value of *p (with \, \| \\ escapes kept for the
 * caller to split further); a new string, advancing *p. */
static char *next_value(const char **p)
{
    const char *start = *p, *q = start;
    char *out;

    while (*q && *q != ',') {
        if (*q == '\\' && q[1])
            q++;
        q++;
    }
    out = gw_strndup(start, (size_t)(q - start));
    *p = *q ? q + 1 : q;
    return out;
}

/* Removes FHIR search escapes (\, \| \$ \\) in place. */
static void unescape(char *v)
{
    char *o = v;

    for (; *v; v++) {
        if (*v == '\\' && v[1])
            v++;
        *o++ = *v;
    }
    *o = '\0';
}

/* Position of the first unescaped '|', or NULL. */
static char *unescaped_bar(char *v)
{
    for (; *v; v++) {
        if (*v == '\\' && v[1])
            v++;
        else if (*v == '|')
            return v;
    }
    return NULL;
}

static bool parse_prefix(const char **v, enum store_prefix *prefix)
{
    static const char *const names[] = {"eq", "ne", "lt", "gt", "le", "ge", "sa", "eb"};
    size_t i;

    *prefix = STORE_EQ;
    if (!islower((unsigned char)(*v)[0]) || !islower((unsigned char)(*v)[1]))
        return true;
    for (i = 0; i < 8; i++) {
        if (strncmp(*v, names[i], 2) == 0) {
            *prefix = (enum store_prefix)i;
            *v += 2;
            return true;
        }
    }
    return false;
}

static void token_value(char *raw, struct store_value *v)
{
    char *bar = unescaped_bar(raw);

    if (bar) {
        *bar = '\0';
        unescape(raw);
        unescape(bar + 1);
        v->system = raw; /* "" means "no system" (|code) */
        v->value = bar[1] ? bar + 1 : NULL;
    } else {
        unescape(raw);
        v->value = raw;
    }
}

/* Adds the values of a reference parameter: Type/id, id (for each target
 * type, or the :Type modifier), or an absolute URL (of this server: relative). */
static bool reference_values(struct rest_search *s, const struct fhir_search_param *sp,
                             const char *modifier, char *raw, const char *base,
                             struct store_cond *c)
{
    size_t blen = strlen(base), i;
    struct store_value *v;

    unescape(raw);
    if (strncmp(raw, base, blen) == 0 && raw[blen] == '/')
        raw += blen + 1;
    /* AuditEvent agents are indexed by client name, organisation and subject
     * (audit/record.c): a bare value matches as written */
    if (strchr(raw, '/') || strchr(raw, ':') || strcmp(s->type, "AuditEvent") == 0) {
        if (!(v = new_value(s)))
            return false;
        v->value = raw;
        c->n_values++;
        return true;
    }
    for (i = 0; i < (modifier ? 1 : sp->n_targets); i++) {
        const char *t = modifier ? modifier : fhir_search_param_target(sp, i);
        size_t n = strlen(t) + strlen(raw) + 2;
        char *ref = keep(s, malloc(n));

        if (!ref || !(v = new_value(s)))
            return false;
        snprintf(ref, n, "%s/%s", t, raw);
        v->value = ref;
        c->n_values++;
    }
    return true;
}

static enum gw_code date_value(char *raw, struct store_value *v, const char *name, json_t *outcome)
{
    const char *p = raw;

    unescape(raw);
    if (!parse_prefix(&p, &v->prefix) || !gw_time_parse_fhir(p, &v->lo, &v->hi)) {
        fhir_outcome_addf(outcome, FHIR_ERROR, "value", NULL,
                          "'%s' is not a FHIR date search value for '%s' (prefix eq, ne, lt, gt,"
                          " le, ge, sa or eb, then a date or dateTime)",
                          raw, name);
        return GW_E_INPUT;
    }
    return GW_OK;
}

struct param_spec {
    const char *name;     /* without modifier */
    const char *modifier; /* after ':' or NULL */
    enum store_param_kind kind;
    struct fhir_search_param sp;
};

static enum gw_code one_value(struct rest_search *s, const struct param_spec *ps, char *raw,
                              const char *base, struct store_cond *c, json_t *outcome)
{
    struct store_value *v;
    enum gw_code rc = GW_OK;

    if (ps->kind == STORE_REFERENCE)
        return reference_values(s, &ps->sp, ps->modifier, raw, base, c) ? GW_OK : GW_E_LIMIT;
    if (!(v = new_value(s)))
        return GW_E_LIMIT;
    c->n_values++;
    switch (ps->kind) {
    case STORE_TOKEN:
        token_value(raw, v);
        break;
    case STORE_DATE:
        rc = date_value(raw, v, ps->name, outcome);
        break;
    case STORE_STRING:
        unescape(raw);
        /* the store matches normalised text as a prefix, or inside with :contains */
        v->value = c->exact ? raw : keep(s, rest_normalise(raw));
        break;
    default:
        unescape(raw);
        v->value = raw;
    }
    return rc;
}

/* Works out name, modifier and kind of a parameter; GW_E_NOTFOUND when the
 * type has no such (supported) parameter. */
static enum gw_code classify(const char *type, const char *full, struct param_spec *ps,
                             struct rest_search *s)
{
    char *name = keep(s, gw_strdup(full)), *colon;

    if (!name)
        return GW_E_NOMEM;
    colon = strchr(name, ':');
    if (colon)
        *colon = '\0';
    ps->name = name;
    ps->modifier = colon ? colon + 1 : NULL;
    if (strcmp(name, "_id") == 0 || strcmp(name, "_lastUpdated") == 0) {
        ps->kind = name[1] == 'i' ? STORE_TOKEN : STORE_DATE;
        return GW_OK;
    }
    if (!fhir_search_param_find(type, name, &ps->sp) || !rest_index_supported(type, name))
        return GW_E_NOTFOUND;
    switch (ps->sp.type) {
    case FHIR_SEARCH_TOKEN:
        ps->kind = STORE_TOKEN;
        break;
    case FHIR_SEARCH_REFERENCE:
        ps->kind = STORE_REFERENCE;
        break;
    case FHIR_SEARCH_DATE:
        ps->kind = STORE_DATE;
        break;
    case FHIR_SEARCH_STRING:
        ps->kind = STORE_STRING;
        break;
    default:
        ps->kind = STORE_URI;
    }
    return GW_OK;
}

/* Applies the modifier to c; false when this kind does not take it. */
static bool apply_modifier(const struct param_spec *ps, struct store_cond *c, const char *value)
{
    const char *m = ps->modifier;

    if (!m)
        return true;
    if (strcmp(m, "missing") == 0) {
        c->missing = strcmp(value, "true") == 0;
        return c->missing || strcmp(value, "false") == 0;
    }
    if (ps->kind == STORE_STRING && strcmp(m, "contains") == 0)
        return (c->contains = true);
    if (ps->kind == STORE_TOKEN && strcmp(m, "not") == 0)
        return (c->negate = true);
    if (ps->kind == STORE_STRING && strcmp(m, "exact") == 0)
        return (c->exact = true);
    if (ps->kind == STORE_REFERENCE && fhir_is_resource_type(m))
        return true;
    return false;
}

static void url_encode(struct gw_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '|' ||
            c == '/')
            gw_buf_putc(b, (char)c);
        else
            gw_buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
}

static void remember(struct rest_search *s, const char *name, const char *value)
{
    if (s->self.len)
        gw_buf_putc(&s->self, '&');
    url_encode(&s->self, name);
    gw_buf_putc(&s->self, '=');
    url_encode(&s->self, value);
}

static enum gw_code add_condition(struct rest_search *s, const struct http_request *req,
                                  const char *full, const char *value, json_t *outcome)
{
    struct param_spec ps;
    struct store_cond *c;
    const char *p = value;
    enum gw_code rc;

    memset(&ps, 0, sizeof ps);
    rc = classify(s->type, full, &ps, s);
    if (rc == GW_E_NOTFOUND)
        return not_applied(req, outcome, full, "is not supported for this resource type");
    if (rc)
        return rc;
    if (s->q.n_conds == REST_MAX_CONDS)
        return not_applied(req, outcome, full, "exceeds the number of parameters allowed");
    c = &s->conds[s->q.n_conds];
    memset(c, 0, sizeof *c);
    c->kind = ps.kind;
    c->values = &s->values[s->n_values];
    if (!apply_modifier(&ps, c, value))
        return not_applied(req, outcome, full, "uses a modifier this server does not support");
    if (ps.modifier && strcmp(ps.modifier, "missing") == 0 && strcmp(s->type, "AuditEvent") == 0)
        return not_applied(req, outcome, full, "is not supported on AuditEvent");
    c->param = c->exact ? keep(s, rest_exact_name(ps.name)) : ps.name;
    while (*p && !(ps.modifier && strcmp(ps.modifier, "missing") == 0)) {
        char *raw = keep(s, next_value(&p));

        if (!raw)
            return GW_E_NOMEM;
        rc = one_value(s, &ps, raw, s->base, c, outcome);
        if (rc)
            return rc == GW_E_LIMIT ? not_applied(req, outcome, full, "has too many values") : rc;
    }
    s->q.n_conds++;
    remember(s, full, value);
    return GW_OK;
}

static enum gw_code parse_sort(struct rest_search *s, const struct http_request *req,
                               const char *value, json_t *outcome)
{
    const char *p = value;
    struct param_spec ps;

    while (*p && s->q.n_sorts < REST_MAX_SORTS) {
        char *item = keep(s, next_value(&p));
        struct store_sort *so = &s->sorts[s->q.n_sorts];
        bool desc;

        if (!item)
            return GW_E_NOMEM;
        desc = item[0] == '-';
        memset(&ps, 0, sizeof ps);
        if (classify(s->type, item + desc, &ps, s) != GW_OK || ps.modifier ||
            ps.kind == STORE_REFERENCE ||
            (strcmp(s->type, "AuditEvent") == 0 && strcmp(ps.name, "date") != 0 &&
             strcmp(ps.name, "_lastUpdated") != 0 && strcmp(ps.name, "_id") != 0))
            return not_applied(req, outcome, item, "cannot be used in _sort");
        *so = (struct store_sort){ps.name, ps.kind, desc};
        s->q.n_sorts++;
    }
    remember(s, "_sort", value);
    return GW_OK;
}

static enum gw_code parse_include(struct rest_search *s, const struct http_request *req,
                                  const char *value, json_t *outcome)
{
    char *v = keep(s, gw_strdup(value)), *param, *target;
    struct fhir_search_param sp;
    struct rest_include *inc;

    if (!v)
        return GW_E_NOMEM;
    param = strchr(v, ':');
    if (!param || s->n_includes == REST_MAX_INCLUDES)
        return not_applied(req, outcome, "_include", "needs the form Type:parameter[:target]");
    *param++ = '\0';
    target = strchr(param, ':');
    if (target)
        *target++ = '\0';
    if (strcmp(v, s->type) != 0 || !fhir_search_param_find(s->type, param, &sp) ||
        sp.type != FHIR_SEARCH_REFERENCE || (target && !fhir_is_resource_type(target)))
        return not_applied(req, outcome, value, "is not an _include this server can follow");
    inc = &s->includes[s->n_includes++];
    inc->param = param;
    inc->target_type = target;
    remember(s, "_include", value);
    return GW_OK;
}

/* _count, _total, _snapshot, _offset. */
static enum gw_code parse_paging(struct rest_search *s, const struct http_request *req,
                                 const char *name, const char *value, json_t *outcome)
{
    long n;

    if (strcmp(name, "_count") == 0) {
        if (!gw_parse_long(value, 0, 1L << 30, &n))
            return not_applied(req, outcome, "_count", "needs a whole number");
        s->q.count = n > REST_MAX_COUNT ? REST_MAX_COUNT : (size_t)n;
        remember(s, "_count", value);
    } else if (strcmp(name, "_total") == 0) {
        s->q.want_total = strcmp(value, "accurate") == 0 || strcmp(value, "estimate") == 0;
        remember(s, "_total", value);
    } else if (strcmp(name, "_snapshot") == 0) {
        if (!gw_parse_long(value, 1, INT64_MAX > LONG_MAX ? LONG_MAX : (long)INT64_MAX, &n))
            return not_applied(req, outcome, "_snapshot", "is not a page link of this server");
        s->q.snapshot = n;
    } else if (strcmp(name, "_offset") == 0) {
        if (!gw_parse_long(value, 0, 10000000, &n))
            return not_applied(req, outcome, "_offset", "is not a page link of this server");
        s->q.offset = (size_t)n;
    }
    return GW_OK;
}

enum gw_code rest_search_parse(const char *type, const char *base, const struct http_request *req,
                               struct rest_search *s, json_t *outcome, struct gw_error *err)
{
    size_t i;
    enum gw_code rc = GW_OK;

    memset(s, 0, sizeof *s);
    gw_buf_init(&s->self, 64 * 1024);
    s->type = type;
    s->base = base;
    s->q.type = type;
    s->q.conds = s->conds;
    s->q.sorts = s->sorts;
    s->q.count = REST_DEFAULT_COUNT;
    for (i = 0; !rc && i < req->n_params; i++) {
        const char *name = req->params[i].name, *value = req->params[i].value;

        if (strcmp(name, "_sort") == 0)
            rc = parse_sort(s, req, value, outcome);
        else if (strcmp(name, "_include") == 0)
            rc = parse_include(s, req, value, outcome);
        else if (in_list(name, result_params))
            rc = parse_paging(s, req, name, value, outcome);
        else if (name[0] == '_' && strcmp(name, "_id") != 0 && strcmp(name, "_lastUpdated") != 0)
            rc = not_applied(req, outcome, name, "is not supported by this server");
        else if (strchr(name, '.'))
            rc = not_applied(req, outcome, name, "is a chained search, not supported");
        else
            rc = add_condition(s, req, name, value, outcome);
    }
    if (!rc && (s->owned.failed || s->self.err))
        rc = GW_E_NOMEM;
    if (rc == GW_E_NOMEM)
        return gw_fail(err, rc, "no memory for the search");
    if (rc)
        return gw_fail(err, rc, "the search parameters are not acceptable");
    return GW_OK;
}
