/* bundle.c -- the rules of contained resources (dom-2..dom-5) and of Bundles (bdl-1..bdl-5,
 * bdl-7..bdl-12, transaction and batch requests, fullUrl against the resource), for
 * validate.c.
 *
 * Each issue is added at the element it is about ("Bundle.entry[3].request"), with the
 * invariant's key in the diagnostics.
 */
#include "fhir/fhir_int.h"

#include <string.h>

/* ---------------------------------------------------------------- contained */

void fhir_check_contained_item(struct fhir_vctx *v, json_t *res)
{
    struct fhir_container *c = v->container;
    json_t *meta = json_object_get(res, "meta"), *item;
    size_t i;

    if (!c)
        return;
    if (c->in_contained) {
        fhir_vissue(v, FHIR_ERROR, "invariant", NULL,
                    "dom-2: a contained resource cannot contain resources itself");
        return;
    }
    json_array_foreach (c->contained, i, item) {
        if (item == res) {
            c->in_contained = true;
            c->current = i;
        }
    }
    if (!json_is_string(json_object_get(res, "id")))
        fhir_vissue(v, FHIR_ERROR, "required", "id",
                    "a contained resource needs an id, for references to reach it");
    if (json_object_get(meta, "versionId") || json_object_get(meta, "lastUpdated"))
        fhir_vissue(v, FHIR_ERROR, "invariant", "meta",
                    "dom-4: a contained resource has no meta.versionId or meta.lastUpdated");
    if (json_object_get(meta, "security"))
        fhir_vissue(v, FHIR_ERROR, "invariant", "meta",
                    "dom-5: a contained resource has no security label");
}

void fhir_check_contained_refs(struct fhir_vctx *v, struct fhir_container *c)
{
    json_t *res;
    size_t i, k;

    json_array_foreach (c->contained, i, res) {
        const char *id = json_string_value(json_object_get(res, "id"));
        size_t mark = fhir_path_push(&v->path, "contained", 9, (long)i);

        k = id ? (size_t)json_integer_value(json_object_get(c->ids, id)) : i;
        if (k != i) /* unreachable by "#id": the duplicate is the problem to fix */
            fhir_vissue(v, FHIR_ERROR, "invariant", "id",
                        "the contained id '%.64s' is already used by contained[%zu]", id, k);
        else if (id && !c->referenced[i])
            fhir_vissue(v, FHIR_ERROR, "invariant", NULL,
                        "dom-3: the contained resource '%.64s' is not referenced from the "
                        "resource (nor does it refer to it with \"#\")",
                        id);
        fhir_path_pop(&v->path, mark);
    }
}

/* ---------------------------------------------------------------- Bundle */

json_t *fhir_bundle_urls(json_t *bundle)
{
    json_t *urls = json_object(), *entry;
    size_t i;

    if (!urls)
        return NULL;
    json_array_foreach (json_object_get(bundle, "entry"), i, entry) {
        const char *url = json_string_value(json_object_get(entry, "fullUrl"));
        json_t *res = json_object_get(entry, "resource");
        const char *rt = fhir_resource_type(res);

        if (url && rt && json_object_set_new(urls, url, json_string(rt))) {
            json_decref(urls);
            return NULL;
        }
    }
    return urls;
}

static bool type_is(const char *type, const char *a, const char *b, const char *c)
{
    return type && ((a && strcmp(type, a) == 0) || (b && strcmp(type, b) == 0) ||
                    (c && strcmp(type, c) == 0));
}

/* The resource type a request url names ("Patient", "Patient/1", "Patient?x=y"). */
static size_t url_type(const char *url, const char **id, size_t *id_len)
{
    size_t n = strcspn(url, "/?");

    *id = NULL;
    *id_len = 0;
    if (url[n] == '/') {
        *id = url + n + 1;
        *id_len = strcspn(*id, "/?");
    }
    return n;
}

/* Transaction and batch entries: what the request does must fit the resource. */
static void check_request(struct fhir_vctx *v, json_t *entry)
{
    json_t *req = json_object_get(entry, "request"), *res = json_object_get(entry, "resource");
    const char *method = json_string_value(json_object_get(req, "method"));
    const char *url = json_string_value(json_object_get(req, "url"));
    const char *rt = fhir_resource_type(res), *rid, *id;
    size_t n, id_len;

    if (!method || !url)
        return; /* request.method and request.url are 1..1: already reported */
    if (type_is(method, "POST", "PUT", NULL) && !res) {
        fhir_vissue(v, FHIR_ERROR, "required", "resource", "a %s entry needs a resource", method);
        return;
    }
    if (!rt || !type_is(method, "POST", "PUT", "PATCH"))
        return;
    n = url_type(url, &id, &id_len);
    if (strlen(rt) != n || strncmp(url, rt, n) != 0) {
        fhir_vissue(v, FHIR_ERROR, "invariant", "request.url",
                    "request.url '%.80s' does not name the entry's resource type %s", url, rt);
        return;
    }
    rid = json_string_value(json_object_get(res, "id"));
    if (strcmp(method, "PUT") == 0 && id &&
        (!rid || strlen(rid) != id_len || strncmp(rid, id, id_len) != 0))
        fhir_vissue(v, FHIR_ERROR, "invariant", "resource.id",
                    "the resource id '%.64s' differs from the id in request.url '%.80s'",
                    rid ? rid : "(none)", url);
}

/* bdl-8 and fullUrl against the resource: an absolute or relative Type/id must agree. */
static void check_full_url(struct fhir_vctx *v, json_t *entry, const char *btype)
{
    const char *url = json_string_value(json_object_get(entry, "fullUrl"));
    json_t *res = json_object_get(entry, "resource");
    const char *rt = fhir_resource_type(res);
    const char *rid = json_string_value(json_object_get(res, "id"));
    struct fhir_ref ref;

    if (!url)
        return;
    fhir_ref_parse(url, &ref);
    if (ref.version && !type_is(btype, "history", NULL, NULL))
        fhir_vissue(v, FHIR_ERROR, "invariant", "fullUrl",
                    "bdl-8: fullUrl '%.80s' cannot be a version-specific reference", url);
    if (!ref.type || !rt)
        return;
    if (strlen(rt) != ref.type_len || strncmp(rt, ref.type, ref.type_len) != 0)
        fhir_vissue(v, FHIR_ERROR, "invariant", "fullUrl",
                    "fullUrl '%.80s' names another resource type than the entry's %s", url, rt);
    else if (rid && (strlen(rid) != ref.id_len || strncmp(rid, ref.id, ref.id_len) != 0))
        fhir_vissue(v, FHIR_ERROR, "invariant", "fullUrl",
                    "fullUrl '%.80s' disagrees with the resource id '%.64s'", url, rid);
}

static void check_entry(struct fhir_vctx *v, json_t *entry, const char *type)
{
    bool has_req = json_object_get(entry, "request") != NULL;
    bool has_resp = json_object_get(entry, "response") != NULL;
    bool needs_req = type_is(type, "batch", "transaction", "history");
    bool needs_resp = type_is(type, "batch-response", "transaction-response", "history");

    if (json_object_get(entry, "search") && !type_is(type, "searchset", NULL, NULL))
        fhir_vissue(v, FHIR_ERROR, "invariant", "search",
                    "bdl-2: entry.search only when the Bundle is a searchset (it is %s)", type);
    if (type && needs_req != has_req)
        fhir_vissue(v, FHIR_ERROR, "invariant", "request",
                    needs_req ? "bdl-3: a %s Bundle needs entry.request in each entry"
                              : "bdl-3: entry.request is not allowed in a %s Bundle",
                    type);
    if (type && needs_resp != has_resp)
        fhir_vissue(v, FHIR_ERROR, "invariant", "response",
                    needs_resp ? "bdl-4: a %s Bundle needs entry.response in each entry"
                               : "bdl-4: entry.response is not allowed in a %s Bundle",
                    type);
    if (!json_object_get(entry, "resource") && !has_req && !has_resp)
        fhir_vissue(v, FHIR_ERROR, "invariant", NULL,
                    "bdl-5: an entry needs a resource, a request or a response");
    check_full_url(v, entry, type);
    if (type_is(type, "batch", "transaction", NULL) && has_req)
        check_request(v, entry);
}

/* bdl-7: fullUrl unique, except that history entries may repeat one with other versions.
 * seen maps each fullUrl to the index of its first entry. */
static void check_unique(struct fhir_vctx *v, json_t *entries, size_t i, const char *type,
                         json_t *seen)
{
    json_t *entry = json_array_get(entries, i), *first;
    const char *url = json_string_value(json_object_get(entry, "fullUrl"));
    const char *ver, *ov;
    size_t k;

    if (!url)
        return;
    first = json_object_get(seen, url);
    if (!first) {
        if (json_object_set_new(seen, url, json_integer((json_int_t)i)))
            v->nomem = true;
        return;
    }
    k = (size_t)json_integer_value(first);
    ver = json_string_value(
        json_object_get(json_object_get(json_object_get(entry, "resource"), "meta"), "versionId"));
    ov = json_string_value(json_object_get(
        json_object_get(json_object_get(json_array_get(entries, k), "resource"), "meta"),
        "versionId"));
    if (type_is(type, "history", NULL, NULL) && ver && ov && strcmp(ver, ov) != 0)
        return;
    fhir_vissue(v, FHIR_ERROR, "invariant", "fullUrl",
                "bdl-7: fullUrl '%.80s' is already used by entry[%zu]", url, k);
}

static void check_document(struct fhir_vctx *v, json_t *bundle, const char *type)
{
    json_t *ident = json_object_get(bundle, "identifier");
    const char *first = fhir_resource_type(
        json_object_get(json_array_get(json_object_get(bundle, "entry"), 0), "resource"));

    if (type_is(type, "document", NULL, NULL)) {
        if (!json_object_get(ident, "system") || !json_object_get(ident, "value"))
            fhir_vissue(v, FHIR_ERROR, "invariant", "identifier",
                        "bdl-9: a document has an identifier with a system and a value");
        if (!json_object_get(bundle, "timestamp"))
            fhir_vissue(v, FHIR_ERROR, "invariant", "timestamp",
                        "bdl-10: a document has a timestamp");
        if (!type_is(first, "Composition", NULL, NULL))
            fhir_vissue(v, FHIR_ERROR, "invariant", "entry",
                        "bdl-11: a document's first resource is a Composition");
    }
    if (type_is(type, "message", NULL, NULL) && !type_is(first, "MessageHeader", NULL, NULL))
        fhir_vissue(v, FHIR_ERROR, "invariant", "entry",
                    "bdl-12: a message's first resource is a MessageHeader");
}

void fhir_check_bundle(struct fhir_vctx *v, json_t *bundle)
{
    const char *type = json_string_value(json_object_get(bundle, "type"));
    json_t *entries = json_object_get(bundle, "entry"), *entry, *seen = json_object();
    size_t i;

    if (!seen) {
        v->nomem = true;
        return;
    }
    if (json_object_get(bundle, "total") && !type_is(type, "searchset", "history", NULL))
        fhir_vissue(v, FHIR_ERROR, "invariant", "total",
                    "bdl-1: total only when the Bundle is a searchset or a history");
    check_document(v, bundle, type);
    json_array_foreach (entries, i, entry) {
        size_t mark;

        if (!json_is_object(entry))
            continue;
        mark = fhir_path_push(&v->path, "entry", 5, (long)i);
        check_entry(v, entry, type);
        check_unique(v, entries, i, type, seen);
        fhir_path_pop(&v->path, mark);
    }
    json_decref(seen);
}
