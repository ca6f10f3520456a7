/* text.c -- the canonical text of an AuditEvent, written directly.
 *
 * The chain hashes the compact JSON of the event with its keys sorted (event.c builds the
 * event as a tree; gw_json_dumps with JSON_SORT_KEYS writes that text). Every request
 * records an event, and building the tree only to write it out again cost a quarter of
 * the audit step, so this file writes the same bytes from the event's fields: each object's
 * members in sorted order (the order is fixed: the keys are), each string as Jansson
 * writes it. It refuses what the tree refuses: a NULL string where a value is required,
 * a string that is not UTF-8, no memory. test_audit compares the two forms on thousands of
 * generated events.
 */
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTITY_TYPE "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define DCM         "http://dicom.nema.org/resources/ontology/DCM"
#define SOURCE_TYPE "http://terminology.hl7.org/CodeSystem/security-source-type"
#define TEXT_MAX    ((size_t)1 << 30)

struct text {
    struct gw_buf b;
    bool failed; /* a value the tree refuses: no event */
};

/* "key": after a comma unless first. Keys are ASCII constants: written as they are. */
static void key(struct text *t, bool *first, const char *k)
{
    if (!*first)
        gw_buf_putc(&t->b, ',');
    *first = false;
    gw_buf_putc(&t->b, '"');
    gw_buf_puts(&t->b, k);
    gw_buf_puts(&t->b, "\":");
}

static void string(struct text *t, const char *s)
{
    if (!s || !gw_buf_json_string(&t->b, s, strlen(s)))
        t->failed = true;
}

/* key: s, skipped when s is NULL (an optional member). */
static void optional(struct text *t, bool *first, const char *k, const char *s)
{
    if (!s)
        return;
    key(t, first, k);
    string(t, s);
}

/* {"code", "display" (when there is one), "system"}. */
static void coding(struct text *t, struct audit_code c)
{
    bool first = true;

    gw_buf_putc(&t->b, '{');
    key(t, &first, "code");
    string(t, c.code);
    optional(t, &first, "display", c.display);
    key(t, &first, "system");
    string(t, c.system);
    gw_buf_putc(&t->b, '}');
}

static bool digits(const char *s)
{
    if (!*s)
        return false;
    while (*s >= '0' && *s <= '9')
        s++;
    return !*s;
}

/* coding() of a code without display in system (an ASCII constant): an
 * entity's role and type, twice per entity, written without escaping when the
 * code is digits (nothing to escape), as coding() would write them. */
static void code_only(struct text *t, const char *system, const char *code)
{
    if (!digits(code)) {
        coding(t, (struct audit_code){system, code, NULL});
        return;
    }
    gw_buf_puts(&t->b, "{\"code\":\"");
    gw_buf_puts(&t->b, code);
    gw_buf_puts(&t->b, "\",\"system\":\"");
    gw_buf_puts(&t->b, system);
    gw_buf_puts(&t->b, "\"}");
}

/* {"type": t, "valueString": v} */
static void detail(struct text *t, const char *type, const char *value)
{
    gw_buf_puts(&t->b, "{\"type\":");
    string(t, type);
    gw_buf_puts(&t->b, ",\"valueString\":");
    string(t, value);
    gw_buf_putc(&t->b, '}');
}

static void requestor(struct text *t, bool *first, bool is_requestor)
{
    key(t, first, "requestor");
    gw_buf_puts(&t->b, is_requestor ? "true" : "false");
}

/* "type": {"coding": [c]}, "who": {"display": name -- the caller closes who. */
static void agent_type_who(struct text *t, bool *first, struct audit_code c, const char *name)
{
    key(t, first, "type");
    gw_buf_puts(&t->b, "{\"coding\":[");
    coding(t, c);
    gw_buf_puts(&t->b, "]}");
    key(t, first, "who");
    gw_buf_puts(&t->b, "{\"display\":");
    string(t, name);
}

static void client_agent(struct text *t, const struct audit_event *ev)
{
    const struct auth_identity *who = ev->who;
    const char *name = who && who->client_name ? who->client_name
                       : ev->actor_name        ? ev->actor_name
                                               : "unidentified client";
    bool first = true;

    gw_buf_putc(&t->b, '{');
    if (who && who->fingerprint[0])
        optional(t, &first, "altId", who->fingerprint);
    if (who)
        optional(t, &first, "name", who->org_name);
    if (ev->peer) {
        key(t, &first, "network");
        gw_buf_puts(&t->b, "{\"address\":");
        string(t, ev->peer);
        gw_buf_puts(&t->b, ",\"type\":\"2\"}");
    }
    requestor(t, &first, true);
    if (who && who->role != AUTH_NONE) {
        key(t, &first, "role");
        gw_buf_puts(&t->b, "[{\"text\":");
        string(t, auth_role_name(who->role));
        gw_buf_puts(&t->b, "}]");
    }
    agent_type_who(t, &first, (struct audit_code){DCM, "110153", "Source Role ID"}, name);
    if (who && who->subject) {
        gw_buf_puts(&t->b, ",\"identifier\":{\"system\":\"urn:ietf:rfc:4514\",\"value\":");
        string(t, who->subject);
        gw_buf_putc(&t->b, '}');
    }
    gw_buf_puts(&t->b, "}}");
}

static void gateway_agent(struct text *t)
{
    bool first = true;

    gw_buf_putc(&t->b, '{');
    requestor(t, &first, false);
    agent_type_who(t, &first, (struct audit_code){DCM, "110152", "Destination Role ID"},
                   audit_source_name());
    gw_buf_puts(&t->b, "}}");
}

/* One entity; status > 0 adds the request's HTTP status as a detail. */
static void entity(struct text *t, const struct audit_entity *e, int status)
{
    char code[16];
    char *q;
    bool first = true;

    gw_buf_putc(&t->b, '{');
    optional(t, &first, "description", e->description);
    if (status > 0) {
        snprintf(code, sizeof code, "%d", status);
        key(t, &first, "detail");
        gw_buf_putc(&t->b, '[');
        detail(t, "http-status", code);
        gw_buf_putc(&t->b, ']');
    }
    optional(t, &first, "name", e->name);
    if (e->query) {
        q = audit_query_base64(e->query);
        if (!q)
            t->failed = true;
        optional(t, &first, "query", q);
        free(q);
    }
    key(t, &first, "role");
    code_only(t, OBJECT_ROLE, e->role ? e->role : "4");
    key(t, &first, "type");
    code_only(t, ENTITY_TYPE, e->type ? e->type : "2");
    if (e->reference) {
        key(t, &first, "what");
        gw_buf_puts(&t->b, "{\"reference\":");
        string(t, e->reference);
        gw_buf_putc(&t->b, '}');
    }
    gw_buf_putc(&t->b, '}');
}

/* The entity of an aggregated event: description, detail (count, first, last, paths), name,
 * role, type. */
static void tally_entity(struct text *t, const struct audit_tally *tally, const char *first_at,
                         const char *last_at)
{
    char count[24], description[200];
    size_t i;

    snprintf(count, sizeof count, "%ld", tally->count);
    audit_tally_description(tally, description, sizeof description);
    gw_buf_puts(&t->b, "{\"description\":");
    string(t, description);
    gw_buf_puts(&t->b, ",\"detail\":[");
    detail(t, "count", count);
    gw_buf_putc(&t->b, ',');
    detail(t, "first", first_at);
    gw_buf_putc(&t->b, ',');
    detail(t, "last", last_at);
    for (i = 0; i < tally->n_samples; i++) {
        gw_buf_putc(&t->b, ',');
        detail(t, "path", tally->samples[i]);
    }
    gw_buf_puts(&t->b, "],\"name\":");
    string(t, tally->channel);
    gw_buf_puts(&t->b, ",\"role\":");
    coding(t, (struct audit_code){OBJECT_ROLE, "20", NULL});
    gw_buf_puts(&t->b, ",\"type\":");
    coding(t, (struct audit_code){ENTITY_TYPE, "2", NULL});
    gw_buf_putc(&t->b, '}');
}

/* "entity": the event's entities, the patient, the aggregate, the request; none: no member. */
static void entities(struct text *t, bool *first, const struct audit_event *ev,
                     const char *first_at, const char *last_at)
{
    struct audit_entity patient = {.reference = ev->patient, .role = "1", .type = "1"};
    struct audit_entity req = {
        .role = "20", .type = "2", .name = ev->request_id, .description = ev->path};
    bool any = false;
    size_t i;

    if (!ev->n_entities && !ev->patient && !ev->tally && !ev->request_id && !ev->path)
        return;
    key(t, first, "entity");
    gw_buf_putc(&t->b, '[');
    for (i = 0; i < ev->n_entities; i++, any = true) {
        if (any)
            gw_buf_putc(&t->b, ',');
        entity(t, &ev->entities[i], 0);
    }
    if (ev->patient) {
        if (any)
            gw_buf_putc(&t->b, ',');
        entity(t, &patient, 0);
        any = true;
    }
    if (ev->tally) {
        if (any)
            gw_buf_putc(&t->b, ',');
        tally_entity(t, ev->tally, first_at, last_at);
        any = true;
    }
    if (ev->request_id || ev->path) {
        if (any)
            gw_buf_putc(&t->b, ',');
        entity(t, &req, ev->http_status);
    }
    gw_buf_putc(&t->b, ']');
}

/* "source": {"observer": {"display": name}, "site": name, "type": [Application Server]} */
static void source(struct text *t, bool *first)
{
    key(t, first, "source");
    gw_buf_puts(&t->b, "{\"observer\":{\"display\":");
    string(t, audit_source_name());
    gw_buf_puts(&t->b, "},\"site\":");
    string(t, audit_source_name());
    gw_buf_puts(&t->b, ",\"type\":[");
    coding(t, (struct audit_code){SOURCE_TYPE, "4", "Application Server"});
    gw_buf_puts(&t->b, "]}");
}

char *audit_event_text(const struct audit_event *ev, const char *id, int64_t recorded_ms)
{
    char instant[GW_INSTANT_LEN], first_at[GW_INSTANT_LEN], last_at[GW_INSTANT_LEN];
    char action[2] = {ev->action ? ev->action : 'E', 0};
    struct text t = {.failed = false};
    bool first = true;
    size_t len;
    char *out;

    gw_buf_init(&t.b, TEXT_MAX);
    gw_time_instant(recorded_ms, instant);
    if (ev->tally) {
        gw_time_instant(ev->tally->first_ms, first_at);
        gw_time_instant(ev->tally->last_ms, last_at);
    }
    gw_buf_putc(&t.b, '{');
    optional(&t, &first, "action", action);
    key(&t, &first, "agent");
    gw_buf_putc(&t.b, '[');
    client_agent(&t, ev);
    gw_buf_putc(&t.b, ',');
    gateway_agent(&t);
    gw_buf_putc(&t.b, ']');
    entities(&t, &first, ev, first_at, last_at);
    key(&t, &first, "id");
    string(&t, id);
    optional(&t, &first, "outcome", audit_outcome_code(ev->outcome));
    optional(&t, &first, "outcomeDesc", ev->outcome_desc);
    if (ev->tally) {
        key(&t, &first, "period");
        gw_buf_puts(&t.b, "{\"end\":");
        string(&t, last_at);
        gw_buf_puts(&t.b, ",\"start\":");
        string(&t, first_at);
        gw_buf_putc(&t.b, '}');
    }
    optional(&t, &first, "recorded", instant);
    optional(&t, &first, "resourceType", "AuditEvent");
    source(&t, &first);
    key(&t, &first, "subtype");
    gw_buf_putc(&t.b, '[');
    coding(&t, audit_subtype_code(ev));
    gw_buf_putc(&t.b, ']');
    key(&t, &first, "type");
    coding(&t, audit_type_code(ev));
    gw_buf_putc(&t.b, '}');
    out = t.failed ? NULL : gw_buf_steal(&t.b, &len);
    gw_buf_cleanup(&t.b);
    return out;
}
