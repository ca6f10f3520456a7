/* search.c -- GET /fhir/{type}?...: searchset Bundles over a snapshot, with
 * self/next/previous links that stay valid while referrals keep arriving,
 * _include of referenced resources the client may see, total on request,
 * and the parameters not applied reported in an OperationOutcome entry.
 * Every search is audited with its query (BALP: entity role 24 "query").
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define SEARCH_MAX_LINK (REST_MAX_BASE + 70 * 1024)

static json_t *page_link(const char *relation, const char *base, const char *type,
                         const struct rest_search *s, int64_t snapshot, long offset)
{
    struct gw_buf url;
    json_t *l = NULL;

    gw_buf_init(&url, SEARCH_MAX_LINK);
    gw_buf_printf(&url, "%s/%s?%s", base, type, s->self.data ? s->self.data : "");
    if (offset >= 0)
        gw_buf_printf(&url, "%s_snapshot=%lld&_offset=%ld", s->self.len ? "&" : "",
                      (long long)snapshot, offset);
    if (!url.err)
        l = json_pack("{s:s, s:s}", "relation", relation, "url", url.data);
    gw_buf_cleanup(&url);
    return l;
}

static int add_links(json_t *bundle, struct rest_ctx *ctx, const struct rest_search *s,
                     const struct store_page *page)
{
    json_t *links = json_object_get(bundle, "link");
    long count = (long)s->q.count, offset = (long)s->q.offset;

    if (json_array_append_new(links, page_link("self", ctx->base, s->type, s, page->snapshot,
                                               s->q.snapshot ? offset : -1)))
        return -1;
    if (page->has_more && json_array_append_new(links, page_link("next", ctx->base, s->type, s,
                                                                 page->snapshot, offset + count)))
        return -1;
    if (offset > 0 &&
        json_array_append_new(links, page_link("previous", ctx->base, s->type, s, page->snapshot,
                                               offset > count ? offset - count : 0)))
        return -1;
    return 0;
}

static json_t *match_entry(struct rest_ctx *ctx, const struct store_resource *r, const char *mode)
{
    char full[REST_MAX_BASE + 200];
    json_t *res = rest_parse_stored(r);

    snprintf(full, sizeof full, "%s/%s/%s", ctx->base, r->type, r->id);
    if (!res)
        return NULL;
    return json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", full, "resource", res, "search", "mode",
                     mode);
}

static bool already_in(json_t *entries, const char *type, const char *id)
{
    json_t *e;
    size_t i;

    json_array_foreach (entries, i, e) {
        json_t *r = json_object_get(e, "resource");
        const char *t = json_string_value(json_object_get(r, "resourceType"));
        const char *rid = json_string_value(json_object_get(r, "id"));

        if (t && rid && strcmp(t, type) == 0 && strcmp(rid, id) == 0)
            return true;
    }
    return false;
}

/* Adds the resources include names from res, as the client may see them. */
static int include_from(struct rest_ctx *ctx, const struct http_request *req, json_t *entries,
                        json_t *res, const struct rest_include *inc)
{
    struct rest_index ix;
    size_t i;
    int rc = 0;

    if (rest_index_build(ctx->base, res, &ix, NULL) != GW_OK)
        return -1;
    for (i = 0; !rc && i < ix.n; i++) {
        const char *ref = ix.e[i].value, *slash;
        char type[80];
        struct store_resource row;

        if (strcmp(ix.e[i].param, inc->param) != 0 || !ref || !(slash = strchr(ref, '/')) ||
            (size_t)(slash - ref) >= sizeof type)
            continue;
        snprintf(type, sizeof type, "%.*s", (int)(slash - ref), ref);
        if ((inc->target_type && strcmp(inc->target_type, type) != 0) ||
            already_in(entries, type, slash + 1) ||
            store_read(ctx->store, type, slash + 1, 0, &row, NULL) != GW_OK)
            continue;
        if (!row.deleted && rest_visible(ctx, NULL, req->who, &row))
            rc = json_array_append_new(entries, match_entry(ctx, &row, "include"));
        store_resource_cleanup(&row);
    }
    rest_index_cleanup(&ix);
    return rc;
}

static json_t *searchset(struct rest_ctx *ctx, const struct http_request *req,
                         const struct rest_search *s, const struct store_page *page,
                         json_t *outcome)
{
    json_t *bundle = json_pack("{s:s, s:s, s:[], s:[]}", "resourceType", "Bundle", "type",
                               "searchset", "link", "entry");
    json_t *entries = json_object_get(bundle, "entry");
    size_t i, k, n_matches;

    if (!bundle)
        return NULL;
    if (page->total >= 0 && json_object_set_new(bundle, "total", json_integer(page->total)))
        goto fail;
    if (add_links(bundle, ctx, s, page))
        goto fail;
    for (i = 0; i < page->n_items; i++)
        if (json_array_append_new(entries, match_entry(ctx, &page->items[i], "match")))
            goto fail;
    n_matches = json_array_size(entries);
    for (k = 0; k < s->n_includes; k++)
        for (i = 0; i < n_matches; i++)
            if (include_from(ctx, req, entries,
                             json_object_get(json_array_get(entries, i), "resource"),
                             &s->includes[k]))
                goto fail;
    if (json_array_size(json_object_get(outcome, "issue")) &&
        json_array_append_new(
            entries, json_pack("{s:O, s:{s:s}}", "resource", outcome, "search", "mode", "outcome")))
        goto fail;
    return bundle;
fail:
    json_decref(bundle);
    return NULL;
}

/* BALP: the patients a search touched are entities of its AuditEvent
 * (role 1, type 1): the Patients returned, or the patient the query names. */
static void audit_patients(struct audit_event *ev, const struct store_page *page,
                           const struct rest_search *s, char **refs, size_t *n_refs)
{
    size_t i, k;

    for (i = 0; i < page->n_items && ev->n_entities < AUDIT_MAX_ENTITIES - 1; i++) {
        const struct store_resource *r = &page->items[i];
        size_t n = strlen(r->id) + 9;

        if (strcmp(r->type, "Patient") != 0 || !(refs[*n_refs] = malloc(n)))
            continue;
        snprintf(refs[*n_refs], n, "Patient/%s", r->id);
        audit_add_entity(ev, refs[(*n_refs)++], "1", "1", NULL);
    }
    for (i = 0; i < s->q.n_conds; i++) {
        const struct store_cond *c = &s->conds[i];

        if (strcmp(c->param, "patient") != 0 && strcmp(c->param, "subject") != 0)
            continue;
        for (k = 0; k < c->n_values && ev->n_entities < AUDIT_MAX_ENTITIES - 1; k++)
            if (c->values[k].value && strncmp(c->values[k].value, "Patient/", 8) == 0)
                audit_add_entity(ev, c->values[k].value, "1", "1", NULL);
    }
}

void rest_handle_search(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct rest_search s;
    struct store_page page;
    struct audit_event ev;
    struct gw_error err;
    json_t *outcome = fhir_outcome_create(), *bundle = NULL;
    char path[200], *refs[AUDIT_MAX_ENTITIES];
    size_t n_refs = 0;
    enum gw_code rc;

    memset(&s, 0, sizeof s);
    memset(&page, 0, sizeof page);
    snprintf(path, sizeof path, "GET /fhir/%s", req->captures[0]);
    rest_audit_init(&ev, req, "search-type", 'E');
    ev.path = path;
    ev.entities[ev.n_entities++] = (struct audit_entity){
        .role = "24", .type = "2", .query = req->query, .description = req->captures[0]};
    if (!rest_admit_type(req, resp, REST_SEARCH, false) || !outcome) {
        if (!resp->status)
            http_respond_error(resp, 503, "transient", "no memory for the search", NULL);
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "refused");
        json_decref(outcome);
        return;
    }
    rc = rest_search_parse(req->captures[0], ctx->base, req, &s, outcome, &err);
    if (rc == GW_OK) {
        rest_scope_query(req->who, &s.q);
        rc = store_search(ctx->store, &s.q, &page, &err);
    }
    if (rc == GW_OK) {
        bundle = searchset(ctx, req, &s, &page, outcome);
        audit_patients(&ev, &page, &s, refs, &n_refs);
    }
    if (rc == GW_E_INPUT)
        http_respond_resource(resp, 400, outcome);
    else if (rc)
        http_respond_gw_error(resp, &err);
    else if (!bundle)
        http_respond_error(resp, 503, "transient", "no memory for the search result", NULL);
    if (bundle)
        rest_answer_audited(ctx, req, &ev, resp, 200, bundle);
    else
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, rc ? err.msg : "failed");
    while (n_refs)
        free(refs[--n_refs]);
    store_page_cleanup(&page);
    json_decref(bundle);
    json_decref(outcome);
    rest_search_cleanup(&s);
}
