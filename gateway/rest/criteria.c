/* criteria.c -- a Subscription's criteria ("Task?status=completed") as a
 * search, and each changed resource matched against the Subscriptions of
 * its organisation.
 *
 * A criteria names one watched type (Task, ServiceRequest, Appointment,
 * DiagnosticReport) and search parameters the CapabilityStatement lists for
 * it (rest_index_supported(), _id, _lastUpdated), with the values and
 * modifiers search accepts; result parameters (_count, _sort, _include...),
 * chains and anything search would ignore are refused.
 * Matching runs that very search inside the commit of the change, on the
 * writer (store_txn_on_writer), limited to the changed resource (_id) and to
 * the subscriber's organisation: a change
 * matches exactly when the subscriber's own search would return it at that
 * commit, so matching and search cannot disagree, and a Subscription never
 * sees another organisation's resources.
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define CRITERIA_MAX 2048

static const char *const watched[] = {"Task", "ServiceRequest", "Appointment", "DiagnosticReport",
                                      NULL};

struct rest_criteria {
    char type[32];
    char *text;              /* the decoded parameters the request points into */
    struct http_request req; /* made up: parameters only, no connection */
    struct rest_search search;
    bool parsed;
};

bool rest_criteria_watches(const char *type)
{
    size_t i;

    for (i = 0; type && watched[i]; i++)
        if (strcmp(type, watched[i]) == 0)
            return true;
    return false;
}

void rest_criteria_destroy(struct rest_criteria *c)
{
    if (!c)
        return;
    if (c->parsed)
        rest_search_cleanup(&c->search);
    free(c->text);
    free(c);
}

const char *rest_criteria_type(const struct rest_criteria *c)
{
    return c->type;
}

/* Percent-decodes s in place ('+' stays: FHIR queries are not form data). */
static void percent_decode(char *s)
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

/* Why parameter name (with its modifier) cannot be in a criteria, or NULL. */
static const char *refusal(const char *type, const char *name, const char *value)
{
    char base[80];
    size_t n = strcspn(name, ":");

    if (!*name)
        return "has no name";
    if (strchr(name, '.'))
        return "is a chained search, which criteria cannot use";
    if (!*value)
        return "has no value";
    if (n >= sizeof base)
        return "is not a search parameter of this type";
    memcpy(base, name, n);
    base[n] = '\0';
    if (strcmp(base, "_id") == 0 || strcmp(base, "_lastUpdated") == 0)
        return NULL;
    if (base[0] == '_' || !rest_index_supported(type, base))
        return "is not a search parameter the CapabilityStatement lists for this type";
    return NULL;
}

/* Splits the query into c->req's parameters, refusing what search cannot
 * apply; returns the number of refusals added to outcome (-1: no memory). */
static int split_params(struct rest_criteria *c, const char *query, json_t *outcome,
                        const char *expr)
{
    char *p, *amp, *eq;
    const char *why;
    int bad = 0;

    c->text = gw_strdup(query);
    if (!c->text)
        return -1;
    for (p = c->text; p && *p; p = amp ? amp + 1 : NULL) {
        amp = strchr(p, '&');
        if (amp)
            *amp = '\0';
        eq = strchr(p, '=');
        if (eq)
            *eq = '\0';
        percent_decode(p);
        if (eq)
            percent_decode(eq + 1);
        why = refusal(c->type, p, eq ? eq + 1 : "");
        if (!why && c->req.n_params == REST_MAX_CONDS)
            why = "is one parameter too many";
        if (why) {
            fhir_outcome_addf(outcome, FHIR_ERROR, "not-supported", expr,
                              "the criteria's parameter '%s' %s", p, why);
            bad++;
            continue;
        }
        c->req.params[c->req.n_params++] = (struct http_param){p, eq + 1};
    }
    return bad;
}

/* Runs the search parser; what it would not apply becomes an error. */
static int parse_search(struct rest_criteria *c, const char *base, json_t *outcome,
                        const char *expr, struct gw_error *err)
{
    json_t *found = fhir_outcome_create(), *issue;
    enum gw_code rc;
    size_t i;
    int bad = 0;

    if (!found)
        return -1;
    rc = rest_search_parse(c->type, base, &c->req, &c->search, found, err);
    c->parsed = true;
    json_array_foreach (json_object_get(found, "issue"), i, issue) {
        fhir_outcome_addf(outcome, FHIR_ERROR, "not-supported", expr, "the criteria: %s",
                          json_string_value(json_object_get(issue, "diagnostics")));
        bad++;
    }
    json_decref(found);
    if (rc == GW_E_NOMEM)
        return -1;
    if (rc && !bad) {
        fhir_outcome_addf(outcome, FHIR_ERROR, "invalid", expr, "the criteria: %s", err->msg);
        bad++;
    }
    return bad;
}

enum gw_code rest_criteria_parse(const char *base, const char *criteria, const char *expr,
                                 struct rest_criteria **out, json_t *outcome, struct gw_error *err)
{
    struct rest_criteria *c;
    const char *q = criteria ? strchr(criteria, '?') : NULL;
    size_t tlen = criteria ? (q ? (size_t)(q - criteria) : strlen(criteria)) : 0;
    int bad;

    *out = NULL;
    if (!criteria || strlen(criteria) > CRITERIA_MAX) {
        fhir_outcome_addf(outcome, FHIR_ERROR, "required", expr,
                          "the criteria is missing or longer than %d bytes", CRITERIA_MAX);
        return gw_fail(err, GW_E_INPUT, "bad criteria");
    }
    c = calloc(1, sizeof *c);
    if (!c)
        return gw_fail(err, GW_E_NOMEM, "no memory for a criteria");
    if (tlen < sizeof c->type)
        memcpy(c->type, criteria, tlen);
    if (!rest_criteria_watches(c->type)) {
        fhir_outcome_addf(outcome, FHIR_ERROR, "not-supported", expr,
                          "the criteria must start with Task, ServiceRequest, Appointment or "
                          "DiagnosticReport (then '?' and search parameters), not '%.*s'",
                          (int)(tlen > 64 ? 64 : tlen), criteria);
        rest_criteria_destroy(c);
        return gw_fail(err, GW_E_INPUT, "bad criteria");
    }
    c->req.method = "GET";
    c->req.path = c->type;
    c->req.query = "";
    bad = split_params(c, q ? q + 1 : "", outcome, expr);
    if (bad == 0)
        bad = parse_search(c, base, outcome, expr, err);
    if (bad < 0 || bad > 0) {
        rest_criteria_destroy(c);
        return bad < 0 ? gw_fail(err, GW_E_NOMEM, "no memory for a criteria")
                       : gw_fail(err, GW_E_INPUT, "bad criteria");
    }
    *out = c;
    return GW_OK;
}

enum gw_code rest_criteria_matches(const struct rest_criteria *c, struct store_txn *txn,
                                   const char *owner, const char *id, bool *match,
                                   struct gw_error *err)
{
    struct store_cond conds[REST_MAX_CONDS + 1];
    struct store_value only = {.value = id};
    struct store_query q = c->search.q;
    struct store_page page;
    enum gw_code rc;

    *match = false;
    memcpy(conds, q.conds, q.n_conds * sizeof conds[0]);
    conds[q.n_conds] =
        (struct store_cond){.param = "_id", .kind = STORE_TOKEN, .values = &only, .n_values = 1};
    q.conds = conds;
    q.n_conds++;
    q.sorts = NULL;
    q.n_sorts = 0;
    q.owner = owner; /* the subscriber's visibility, as rest_scope_query() gives a GP */
    q.sites = NULL;
    q.n_sites = 0;
    q.snapshot = 0; /* this commit, its own writes included */
    q.offset = 0;
    q.count = 1;
    q.want_total = false;
    rc = store_txn_search(txn, &q, &page, err);
    if (rc)
        return rc;
    *match = page.n_items == 1;
    store_page_cleanup(&page);
    return GW_OK;
}

/* ------------------------------------------------------------ matching changes */

/* Records that a notification was queued (the change's own commit). */
static enum gw_code audit_queued(struct store_txn *txn, const struct store_note *note,
                                 const char *sub_id, const char *type, const char *id)
{
    struct audit_event ev;
    char sub_ref[120], focus_ref[200], name[40], path[200];

    memset(&ev, 0, sizeof ev);
    snprintf(sub_ref, sizeof sub_ref, "Subscription/%s", sub_id);
    snprintf(focus_ref, sizeof focus_ref, "%s/%s", type, id);
    snprintf(name, sizeof name, "event %ld", note->event);
    snprintf(path, sizeof path, "queued for %s", sub_ref);
    ev.kind = AUDIT_NOTIFY;
    ev.subtype = "event-notification";
    ev.action = 'C';
    ev.actor_name = "fhir-gateway subscriptions";
    ev.path = path;
    ev.request_id = name;
    audit_add_entity(&ev, sub_ref, "4", "2", name);
    audit_add_entity(&ev, focus_ref, "4", "2", NULL);
    return audit_record(txn, &ev, NULL);
}

/* Queues an event for sub when the new version of type/id matches its criteria. */
static enum gw_code match_one(struct rest_ctx *ctx, struct store_txn *txn,
                              const struct store_subscription *sub, const char *type,
                              const char *id, long version, struct gw_error *err)
{
    struct rest_criteria *c = NULL;
    struct store_note note;
    json_t *outcome = fhir_outcome_create();
    struct store_note_new add = {sub->id, STORE_NOTE_EVENT, type, id, version};
    bool match = false;
    enum gw_code rc;

    if (!outcome)
        return gw_fail(err, GW_E_NOMEM, "no memory to match a Subscription");
    rc = rest_criteria_parse(ctx->base, sub->criteria, NULL, &c, outcome, err);
    json_decref(outcome);
    if (rc == GW_E_INPUT) { /* accepted once, refused now: the model changed; say so */
        gw_log(GW_LOG_WARN, "subscription-criteria-refused", "Subscription/%s: %s", sub->id,
               err ? err->msg : "bad criteria");
        return GW_OK;
    }
    if (!rc)
        rc = rest_criteria_matches(c, txn, sub->owner, id, &match, err);
    if (!rc && match)
        rc = store_txn_note_add(txn, &add, &note, err);
    if (!rc && match)
        rc = audit_queued(txn, &note, sub->id, type, id);
    rest_criteria_destroy(c);
    return rc;
}

/* Matches the version of type/id just written in txn (on the writer). */
static enum gw_code match_all(struct rest_ctx *ctx, struct store_txn *txn, const char *type,
                              const char *id, const char *owner, long version, struct gw_error *err)
{
    struct store_subscription *subs = NULL;
    size_t i, n = 0;
    int64_t now = store_txn_now(txn);
    enum gw_code rc = store_txn_subscriptions_of(txn, owner, type, &subs, &n, err);

    for (i = 0; !rc && i < n; i++)
        if (subs[i].enabled && (!subs[i].end_ms || now < subs[i].end_ms))
            rc = match_one(ctx, txn, &subs[i], type, id, version, err);
    store_subscription_list_free(subs, n);
    return rc;
}

/* What matching needs of a write, as the store copies it for the writer:
 * text holds type, id and owner, each NUL-terminated. */
struct match_arg {
    struct rest_ctx *ctx;
    long version;
    size_t id_at, owner_at;
    char text[];
};

static enum gw_code match_step(struct store_txn *txn, const void *varg, struct gw_error *err)
{
    const struct match_arg *m = varg;

    return match_all(m->ctx, txn, m->text, m->text + m->id_at, m->text + m->owner_at, m->version,
                     err);
}

/* Matching reads the version just written as the search would (its own
 * write included), so it runs on the writer, in the commit of the change,
 * also when the rest of the write was prepared on the request's thread
 * (store_txn_on_writer): one matcher, whoever prepares the write. */
enum gw_code rest_subscriptions_notify(struct rest_ctx *ctx, struct store_txn *txn,
                                       const char *type, const char *id, const char *owner,
                                       long version, struct gw_error *err)
{
    size_t tlen, ilen, olen, size;
    struct match_arg *m;
    enum gw_code rc;

    if (!owner || !rest_criteria_watches(type))
        return GW_OK;
    tlen = strlen(type) + 1;
    ilen = strlen(id) + 1;
    olen = strlen(owner) + 1;
    size = sizeof *m + tlen + ilen + olen;
    m = malloc(size);
    if (!m)
        return gw_fail(err, GW_E_NOMEM, "no memory to match Subscriptions");
    m->ctx = ctx;
    m->version = version;
    m->id_at = tlen;
    m->owner_at = tlen + ilen;
    memcpy(m->text, type, tlen);
    memcpy(m->text + m->id_at, id, ilen);
    memcpy(m->text + m->owner_at, owner, olen);
    rc = store_txn_on_writer(txn, match_step, m, size, err);
    free(m);
    return rc;
}
