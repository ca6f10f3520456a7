/* plan.c -- a write plan: the resources one request writes, resolved in the
 * store writer so that conditional creates, references between entries and
 * the ids they get are decided inside the commit that writes them.
 *
 * Order of the apply step (FHIR R4 §3.1.0.11.2, transaction processing):
 * conditional creates are matched first (a match reuses the stored resource,
 * several matches fail with 412), then new ids are assigned, then every
 * reference to an entry's fullUrl (urn:uuid: or a URL ending in Type/id) and
 * every conditional reference (Type?query) is rewritten to Type/id.
 */
#include "rest/rest_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define PLAN_MAX_REF_DEPTH 64

void rest_plan_init(struct rest_plan *p, struct rest_ctx *ctx, const struct http_request *req,
                    const char *interaction)
{
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->req = req;
    p->transaction = true;
    p->interaction = interaction;
    p->outcome = fhir_outcome_create();
    p->maps = ctx->maps ? map_holder_get(ctx->maps) : NULL;
}

static void entry_cleanup(struct rest_entry *e)
{
    free(e->type);
    free(e->id);
    json_decref(e->resource);
    free(e->pristine);
    free(e->full_url);
    free(e->if_none_exist);
    free(e->owner);
    free(e->site);
    rest_referral_free(e->referral);
}

void rest_plan_cleanup(struct rest_plan *p)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++)
        entry_cleanup(&p->entries[i]);
    free(p->entries);
    for (i = 0; i < p->n_loaded; i++)
        json_decref(p->loaded[i]);
    free(p->loaded);
    rest_strings_free(&p->strings);
    json_decref(p->outcome);
    map_set_unref(p->maps);
    memset(p, 0, sizeof *p);
}

struct rest_entry *rest_plan_add(struct rest_plan *p, const char *type, json_t *resource_new)
{
    struct rest_entry *e = gw_grow(p->entries, &p->cap_entries, p->n_entries, sizeof *e, 8);

    if (!e) {
        json_decref(resource_new);
        return NULL;
    }
    p->entries = e;
    e = &p->entries[p->n_entries];
    memset(e, 0, sizeof *e);
    e->index = -1;
    e->resource = resource_new;
    e->type = gw_strdup(type);
    if (!e->type) {
        json_decref(resource_new);
        return NULL;
    }
    p->n_entries++;
    return e;
}

bool rest_plan_snapshot(struct rest_plan *p)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++) {
        struct rest_entry *e = &p->entries[i];

        free(e->pristine);
        /* text that reads back to the same tree (json_dumps's reals read back exactly) */
        e->pristine = gw_json_dumps(e->resource, JSON_COMPACT | JSON_PRESERVE_ORDER);
        e->id_given = e->id != NULL;
        if (!e->pristine)
            return false;
    }
    return true;
}

void rest_plan_reset(struct rest_plan *p)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++) {
        struct rest_entry *e = &p->entries[i];

        json_decref(e->resource);
        e->resource = e->pristine ? gw_json_loads(e->pristine, JSON_ALLOW_NUL, NULL) : NULL;
        if (!e->resource)
            p->reset_failed = true; /* out of memory: apply fails the plan */
        free(e->pristine);
        e->pristine = NULL;
        if (!e->id_given) {
            free(e->id);
            e->id = NULL;
        }
        e->status = 0;
        e->existed = false;
        e->written = (struct store_written){0, 0, 0};
        free(e->owner);
        free(e->site);
        e->owner = e->site = NULL;
        e->was_revoked = false;
        rest_referral_free(e->referral);
        e->referral = NULL;
    }
    for (i = 0; i < p->n_loaded; i++)
        json_decref(p->loaded[i]);
    p->n_loaded = 0;
    rest_strings_free(&p->strings);
    json_object_del(p->outcome, "issue");
    p->fail_status = 0;
}

const char *rest_plan_keep(struct rest_plan *p, char *s)
{
    return rest_strings_keep(&p->strings, s);
}

enum gw_code rest_plan_fail(struct rest_plan *p, int status, enum gw_code code,
                            const char *issue_code, const char *expression, const char *fmt, ...)
{
    char text[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!p->fail_status)
        p->fail_status = status;
    fhir_outcome_add(p->outcome, FHIR_ERROR, issue_code, text, expression);
    return code;
}

void rest_entry_path(const struct rest_entry *e, char *out, size_t cap)
{
    if (e->index >= 0)
        snprintf(out, cap, "Bundle.entry[%ld].resource", e->index);
    else
        snprintf(out, cap, "%s", e->type);
}

/* ------------------------------------------------------------ conditional creates */

/* Percent-decodes s in place ('+' stays: FHIR queries are not form data). */
static void url_decode(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (*s == '%' && gw_hex_digit(s[1]) >= 0 && gw_hex_digit(s[2]) >= 0) {
            *o++ = (char)(gw_hex_digit(s[1]) * 16 + gw_hex_digit(s[2]));
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* A request shaped like req but carrying the query text of an If-None-Exist. */
static enum gw_code parse_condition(struct rest_plan *p, const char *type, const char *query,
                                    struct rest_search *s, struct http_request *fake, char *copy)
{
    char *amp, *eq, *q = copy;
    struct gw_error err;

    *fake = *p->req;
    fake->n_params = 0;
    memcpy(copy, query, strlen(query) + 1); /* the caller sized copy for it */
    while (q && *q && fake->n_params < HTTP_MAX_PARAMS) {
        amp = strchr(q, '&');
        if (amp)
            *amp = '\0';
        eq = strchr(q, '=');
        if (eq) {
            *eq = '\0';
            url_decode(q);
            url_decode(eq + 1);
            fake->params[fake->n_params++] = (struct http_param){q, eq + 1};
        }
        q = amp ? amp + 1 : NULL;
    }
    return rest_search_parse(type, p->ctx->base, fake, s, p->outcome, &err);
}

/* Finds the resources matching type?query in the client's scope: *n_found
 * (0, 1 or 2 meaning "several"); *found gets the one match. */
static enum gw_code find_matches(struct rest_plan *p, struct store_txn *txn, const char *type,
                                 const char *query, size_t *n_found, struct store_resource *found,
                                 struct gw_error *err)
{
    struct rest_search s;
    struct http_request fake;
    struct store_page page;
    char *copy = malloc(strlen(query) + 1);
    enum gw_code rc;

    *n_found = 0;
    memset(found, 0, sizeof *found);
    if (!copy)
        return gw_fail(err, GW_E_NOMEM, "no memory for a conditional create");
    rc = parse_condition(p, type, query, &s, &fake, copy);
    if (rc == GW_OK && s.q.n_conds == 0)
        rc = rest_plan_fail(p, 400, GW_E_INPUT, "invalid", NULL,
                            "the condition '%s?%s' selects nothing", type, query);
    if (rc == GW_OK) {
        rest_scope_query(p->req->who, &s.q);
        s.q.count = 2;
        rc = store_txn_search(txn, &s.q, &page, err);
        if (rc == GW_OK) {
            *n_found = page.n_items;
            if (page.n_items == 1) {
                *found = page.items[0];
                memset(&page.items[0], 0, sizeof page.items[0]);
            }
            store_page_cleanup(&page);
        }
    } else if (rc == GW_E_INPUT && !p->fail_status) {
        p->fail_status = 400;
    }
    rest_search_cleanup(&s);
    free(copy);
    return rc;
}

static enum gw_code match_conditional(struct rest_plan *p, struct store_txn *txn,
                                      struct rest_entry *e, struct gw_error *err)
{
    struct store_resource found;
    size_t n;
    json_t *stored;
    enum gw_code rc = find_matches(p, txn, e->type, e->if_none_exist, &n, &found, err);

    if (rc)
        return rc;
    if (n > 1)
        return rest_plan_fail(p, 412, GW_E_CONFLICT, "duplicate", NULL,
                              "If-None-Exist '%s' matches several %s resources", e->if_none_exist,
                              e->type);
    if (n == 0)
        return GW_OK;
    stored = rest_parse_stored(&found);
    free(e->id); /* an id the plan gave it before the match */
    if (!stored || !(e->id = gw_strdup(found.id))) {
        json_decref(stored);
        store_resource_cleanup(&found);
        return gw_fail(err, GW_E_NOMEM, "no memory for a matched resource");
    }
    json_decref(e->resource);
    e->resource = stored;
    e->existed = true;
    e->status = 200;
    e->written = (struct store_written){found.version, found.last_updated_ms, found.seq};
    store_resource_cleanup(&found);
    return GW_OK;
}

/* ------------------------------------------------------------ references */

/* The Type/id an entry's fullUrl stands for, or NULL. */
static const char *mapped(const struct rest_plan *p, const char *reference)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++) {
        const struct rest_entry *e = &p->entries[i];
        const char *fu = e->full_url;
        size_t flen, rlen;

        if (!fu || !e->id)
            continue;
        if (strcmp(fu, reference) == 0)
            return e->id; /* the caller builds Type/id */
        /* a URL ending in Type/id: relative references name it too */
        flen = strlen(fu);
        rlen = strlen(reference);
        if (strncmp(fu, "urn:", 4) != 0 && rlen < flen && fu[flen - rlen - 1] == '/' &&
            strcmp(fu + flen - rlen, reference) == 0)
            return e->id;
    }
    return NULL;
}

static const struct rest_entry *entry_of_id(const struct rest_plan *p, const char *id)
{
    size_t i;

    for (i = 0; i < p->n_entries; i++)
        if (p->entries[i].id && strcmp(p->entries[i].id, id) == 0)
            return &p->entries[i];
    return NULL;
}

/* Resolves a conditional reference Type?query to Type/id (412 unless one match). */
static enum gw_code conditional_reference(struct rest_plan *p, struct store_txn *txn,
                                          const char *ref, char **out, struct gw_error *err)
{
    const char *q = strchr(ref, '?');
    char type[80];
    struct store_resource found;
    size_t n;
    enum gw_code rc;

    *out = NULL;
    if ((size_t)(q - ref) >= sizeof type)
        return rest_plan_fail(p, 400, GW_E_INPUT, "invalid", NULL, "bad reference '%s'", ref);
    memcpy(type, ref, (size_t)(q - ref));
    type[q - ref] = '\0';
    rc = find_matches(p, txn, type, q + 1, &n, &found, err);
    if (rc)
        return rc;
    if (n != 1) {
        store_resource_cleanup(&found);
        return rest_plan_fail(p, 412, GW_E_CONFLICT, n ? "duplicate" : "not-found", NULL,
                              "the conditional reference '%s' matches %s", ref,
                              n ? "several resources" : "nothing");
    }
    *out = malloc(strlen(type) + strlen(found.id) + 2);
    if (*out)
        snprintf(*out, strlen(type) + strlen(found.id) + 2, "%s/%s", type, found.id);
    store_resource_cleanup(&found);
    return *out ? GW_OK : gw_fail(err, GW_E_NOMEM, "no memory for a reference");
}

static enum gw_code rewrite_one(struct rest_plan *p, struct store_txn *txn, json_t *obj,
                                struct gw_error *err)
{
    const char *ref = json_string_value(json_object_get(obj, "reference"));
    const char *id;
    const struct rest_entry *e;
    char *text = NULL;
    struct fhir_ref r;
    enum gw_code rc = GW_OK;

    if (!ref)
        return GW_OK;
    if ((id = mapped(p, ref)) != NULL && (e = entry_of_id(p, id)) != NULL) {
        size_t n = strlen(e->type) + strlen(id) + 2;

        text = malloc(n);
        if (text)
            snprintf(text, n, "%s/%s", e->type, id);
    } else if (fhir_ref_parse(ref, &r) == FHIR_REF_CONDITIONAL) {
        rc = conditional_reference(p, txn, ref, &text, err);
        if (rc)
            return rc;
    } else {
        return GW_OK;
    }
    if (!text || json_object_set_new(obj, "reference", json_string(text))) {
        free(text);
        return gw_fail(err, GW_E_NOMEM, "no memory to rewrite a reference");
    }
    free(text);
    return GW_OK;
}

/* Rewrites every reference under v (objects and arrays), depth-bounded. */
static enum gw_code rewrite(struct rest_plan *p, struct store_txn *txn, json_t *v, int depth,
                            struct gw_error *err)
{
    const char *key;
    json_t *child;
    size_t i;
    enum gw_code rc;

    if (depth > PLAN_MAX_REF_DEPTH)
        return GW_OK;
    if (json_is_array(v)) {
        json_array_foreach (v, i, child)
            if ((rc = rewrite(p, txn, child, depth + 1, err)))
                return rc;
        return GW_OK;
    }
    if (!json_is_object(v))
        return GW_OK;
    rc = rewrite_one(p, txn, v, err);
    if (rc)
        return rc;
    json_object_foreach (v, key, child)
        if ((rc = rewrite(p, txn, child, depth + 1, err)))
            return rc;
    return GW_OK;
}

enum gw_code rest_plan_resolve(struct rest_plan *p, struct store_txn *txn, struct gw_error *err)
{
    char uuid[GW_UUID_LEN];
    size_t i;
    enum gw_code rc;

    for (i = 0; i < p->n_entries; i++)
        if (p->entries[i].if_none_exist && (rc = match_conditional(p, txn, &p->entries[i], err)))
            return rc;
    for (i = 0; i < p->n_entries; i++) {
        struct rest_entry *e = &p->entries[i];

        if (e->id)
            continue;
        rc = gw_uuid7(uuid, err); /* time-ordered: new ids share index pages */
        if (rc)
            return rc;
        e->id = gw_strdup(uuid);
        if (!e->id)
            return gw_fail(err, GW_E_NOMEM, "no memory for an id");
    }
    for (i = 0; i < p->n_entries; i++) {
        struct rest_entry *e = &p->entries[i];

        if (e->existed)
            continue;
        if (json_object_set_new(e->resource, "id", json_string(e->id)))
            return gw_fail(err, GW_E_NOMEM, "no memory for an id");
        rc = rewrite(p, txn, e->resource, 0, err);
        if (rc)
            return rc;
    }
    return GW_OK;
}

/* ------------------------------------------------------------ lookups */

static json_t *keep_loaded(struct rest_plan *p, json_t *res)
{
    json_t **grown = res ? gw_grow(p->loaded, &p->cap_loaded, p->n_loaded, sizeof *grown, 8) : NULL;

    if (!grown) {
        json_decref(res);
        return NULL;
    }
    p->loaded = grown;
    p->loaded[p->n_loaded++] = res;
    return res;
}

json_t *rest_plan_lookup(struct rest_plan *p, struct store_txn *txn, json_t *holder,
                         const char *reference)
{
    struct fhir_ref r;
    char type[80], id[128];
    size_t i, blen = strlen(p->ctx->base);
    struct store_resource row;
    json_t *res;

    if (reference[0] == '#') { /* contained in holder */
        json_array_foreach (json_object_get(holder, "contained"), i, res) {
            const char *cid = json_string_value(json_object_get(res, "id"));

            if (cid && strcmp(cid, reference + 1) == 0)
                return res;
        }
        return NULL;
    }
    if (strncmp(reference, p->ctx->base, blen) == 0 && reference[blen] == '/')
        reference += blen + 1;
    if (fhir_ref_parse(reference, &r) != FHIR_REF_RELATIVE || r.type_len >= sizeof type ||
        r.id_len >= sizeof id)
        return NULL;
    snprintf(type, sizeof type, "%.*s", (int)r.type_len, r.type);
    snprintf(id, sizeof id, "%.*s", (int)r.id_len, r.id);
    for (i = 0; i < p->n_entries; i++)
        if (strcmp(p->entries[i].type, type) == 0 && p->entries[i].id &&
            strcmp(p->entries[i].id, id) == 0)
            return p->entries[i].resource;
    if (store_txn_read(txn, type, id, 0, &row, NULL) != GW_OK)
        return NULL;
    res = row.deleted || !rest_visible(p->ctx, txn, p->req->who, &row) ? NULL
                                                                       : rest_parse_stored(&row);
    store_resource_cleanup(&row);
    return keep_loaded(p, res);
}
