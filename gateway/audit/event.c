/* event.c -- building AuditEvents (R4, IHE BALP patterns) and recording them.
 *
 * type/subtype: RESTful interactions are type "rest" (audit-event-type) with
 * a restful-interaction subtype (BALP "Basic AuditEvent"); HL7 v2 exchanges
 * are DICOM "110107 Import" / "110106 Export" with the v2 message type as
 * subtype; command-line actions are "110100 Application Activity".
 * Agents: the client (DCM 110153 Source Role ID, requestor) and the gateway
 * (DCM 110152 Destination Role ID). The canonical form hashed into the chain
 * is the compact JSON with sorted keys.
 */
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DCM           "http://dicom.nema.org/resources/ontology/DCM"
#define EVENT_TYPE    "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define RESTFUL       "http://hl7.org/fhir/restful-interaction"
#define V2_MESSAGE    "http://terminology.hl7.org/CodeSystem/v2-0076"
#define ENTITY_TYPE   "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define OBJECT_ROLE   "http://terminology.hl7.org/CodeSystem/object-role"
#define SOURCE_TYPE   "http://terminology.hl7.org/CodeSystem/security-source-type"
#define GATEWAY_ACTOR "urn:fhir-gateway:actor"
#define NOTIFY_TYPE                                                                                \
    "http://hl7.org/fhir/uv/subscriptions-backport/CodeSystem/backport-notification-type"

static char source_name[128] = "fhir-gateway";

void audit_set_source(const char *instance_id)
{
    snprintf(source_name, sizeof source_name, "%s", instance_id);
}

void audit_add_entity(struct audit_event *ev, const char *reference, const char *role,
                      const char *type, const char *name)
{
    if (ev->n_entities == AUDIT_MAX_ENTITIES)
        return;
    ev->entities[ev->n_entities++] =
        (struct audit_entity){.reference = reference, .role = role, .type = type, .name = name};
}

enum audit_outcome audit_outcome_of(enum gw_code code)
{
    switch (code) {
    case GW_OK:
        return AUDIT_SUCCESS;
    case GW_E_INPUT:
    case GW_E_LIMIT:
    case GW_E_NOTFOUND:
    case GW_E_CONFLICT:
    case GW_E_DENIED:
        return AUDIT_MINOR_FAILURE;
    default:
        return AUDIT_SERIOUS_FAILURE;
    }
}

enum audit_outcome audit_outcome_of_status(int status)
{
    if (status < 400)
        return AUDIT_SUCCESS;
    return status < 500 ? AUDIT_MINOR_FAILURE : AUDIT_SERIOUS_FAILURE;
}

/* The builders below make what json_pack() made from a format, in the same key order,
 * without parsing one (an event is built for every request); see gw_json_object1(). */

/* [a_new] or [a_new, b_new] (b_new NULL and not wanted: one item). */
static json_t *array_of(json_t *a_new, json_t *b_new, bool two)
{
    json_t *arr = json_array();
    int failed = json_array_append_new(arr, a_new);

    if (two)
        failed |= json_array_append_new(arr, b_new);
    if (failed) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static json_t *coding(const char *system, const char *code, const char *display)
{
    json_t *c = json_object();

    if (gw_json_set_string(c, "system", system) || gw_json_set_string(c, "code", code) ||
        (display && gw_json_set_string(c, "display", display))) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* An agent: {"type": {"coding": [coding_new]}, "who": {"display": name}, "requestor": b}. */
static json_t *agent_of(json_t *coding_new, const char *name, bool requestor)
{
    json_t *agent = json_object();

    if (json_object_set_new(agent, "type",
                            gw_json_object1("coding", array_of(coding_new, NULL, false))) ||
        json_object_set_new(agent, "who", gw_json_object1("display", json_string(name))) ||
        json_object_set_new(agent, "requestor", json_boolean(requestor))) {
        json_decref(agent);
        return NULL;
    }
    return agent;
}

struct audit_code audit_type_code(const struct audit_event *ev)
{
    switch (ev->kind) {
    case AUDIT_HL7_IMPORT:
        return (struct audit_code){DCM, "110107", "Import"};
    case AUDIT_HL7_EXPORT:
    case AUDIT_NOTIFY:
        return (struct audit_code){DCM, "110106", "Export"};
    case AUDIT_CLI:
        return (struct audit_code){DCM, "110100", "Application Activity"};
    case AUDIT_SECURITY:
        return (struct audit_code){DCM, "110113", "Security Alert"};
    default:
        return (struct audit_code){EVENT_TYPE, "rest", "Restful Operation"};
    }
}

struct audit_code audit_subtype_code(const struct audit_event *ev)
{
    const char *sub = ev->subtype ? ev->subtype : "unknown";

    if (ev->kind == AUDIT_HL7_IMPORT || ev->kind == AUDIT_HL7_EXPORT)
        return (struct audit_code){V2_MESSAGE, sub, NULL};
    if (ev->kind == AUDIT_CLI)
        return (struct audit_code){GATEWAY_ACTOR, sub, NULL};
    if (ev->kind == AUDIT_SECURITY)
        return (struct audit_code){DCM, "110126", "Node Authentication"};
    if (ev->kind == AUDIT_NOTIFY)
        return (struct audit_code){NOTIFY_TYPE, sub, NULL};
    return (struct audit_code){RESTFUL, sub, NULL};
}

static json_t *code_coding(struct audit_code c)
{
    return coding(c.system, c.code, c.display);
}

const char *audit_source_name(void)
{
    return source_name;
}

static json_t *client_agent(const struct audit_event *ev)
{
    const struct auth_identity *who = ev->who;
    const char *name = who && who->client_name ? who->client_name
                       : ev->actor_name        ? ev->actor_name
                                               : "unidentified client";
    json_t *agent = agent_of(coding(DCM, "110153", "Source Role ID"), name, true);
    json_t *identifier;

    if (!agent)
        return NULL;
    if (who && who->subject) {
        identifier = json_object();
        if (gw_json_set_string(identifier, "system", "urn:ietf:rfc:4514") ||
            gw_json_set_string(identifier, "value", who->subject)) {
            json_decref(identifier);
            goto fail;
        }
        if (json_object_set_new(json_object_get(agent, "who"), "identifier", identifier))
            goto fail;
    }
    if (who && who->role != AUTH_NONE &&
        json_object_set_new(
            agent, "role",
            array_of(gw_json_object1("text", json_string(auth_role_name(who->role))), NULL, false)))
        goto fail;
    if (who && who->fingerprint[0] &&
        json_object_set_new(agent, "altId", json_string(who->fingerprint)))
        goto fail;
    if (who && who->org_name && json_object_set_new(agent, "name", json_string(who->org_name)))
        goto fail;
    if (ev->peer) {
        json_t *network = json_object();

        if (gw_json_set_string(network, "address", ev->peer) ||
            gw_json_set_string(network, "type", "2")) {
            json_decref(network);
            goto fail;
        }
        if (json_object_set_new(agent, "network", network))
            goto fail;
    }
    return agent;
fail:
    json_decref(agent);
    return NULL;
}

static json_t *gateway_agent(void)
{
    return agent_of(coding(DCM, "110152", "Destination Role ID"), source_name, false);
}

char *audit_query_base64(const char *text)
{
    size_t n = strlen(text);
    char *out;

    if (n > AUDIT_MAX_QUERY)
        n = AUDIT_MAX_QUERY;
    out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)n);
    return out;
}

enum audit_class audit_class_of(const struct audit_event *ev)
{
    if (ev->outcome == AUDIT_SUCCESS)
        return AUDIT_CLASS_SUCCESS;
    if (ev->outcome != AUDIT_MINOR_FAILURE)
        return AUDIT_CLASS_FAILED;
    if (ev->tally) /* refusals of peers without an identity, counted */
        return AUDIT_CLASS_REFUSED;
    if (ev->http_status == 401 || ev->http_status == 403 || ev->http_status == 404)
        return AUDIT_CLASS_REFUSED;
    return AUDIT_CLASS_REJECTED;
}

const char *const audit_class_names[AUDIT_N_CLASSES] = {"success", "refused", "rejected", "failed"};

/* The HTTP status, as a detail of the request's entity (AuditEvent.entity.detail). */
static int add_status_detail(json_t *entity, int status)
{
    char text[16];

    json_t *detail = json_object();

    snprintf(text, sizeof text, "%d", status);
    if (gw_json_set_string(detail, "type", "http-status") ||
        gw_json_set_string(detail, "valueString", text)) {
        json_decref(detail);
        return -1;
    }
    return json_object_set_new(entity, "detail", array_of(detail, NULL, false));
}

static json_t *entity(const struct audit_entity *e)
{
    json_t *j = json_object();
    char *q = NULL;

    if (!j)
        return NULL;
    if (e->reference &&
        json_object_set_new(j, "what", gw_json_object1("reference", json_string(e->reference))))
        goto fail;
    if (json_object_set_new(j, "type", coding(ENTITY_TYPE, e->type ? e->type : "2", NULL)) ||
        json_object_set_new(j, "role", coding(OBJECT_ROLE, e->role ? e->role : "4", NULL)))
        goto fail;
    if (e->name && json_object_set_new(j, "name", json_string(e->name)))
        goto fail;
    if (e->description && json_object_set_new(j, "description", json_string(e->description)))
        goto fail;
    if (e->query &&
        (!(q = audit_query_base64(e->query)) || json_object_set_new(j, "query", json_string(q))))
        goto fail;
    free(q);
    return j;
fail:
    free(q);
    json_decref(j);
    return NULL;
}

static int add_entities(json_t *ae, const struct audit_event *ev)
{
    json_t *list = json_array();
    size_t i;

    if (!list || json_object_set_new(ae, "entity", list))
        return -1;
    for (i = 0; i < ev->n_entities; i++)
        if (json_array_append_new(list, entity(&ev->entities[i])))
            return -1;
    if (ev->patient) {
        struct audit_entity p = {.reference = ev->patient, .role = "1", .type = "1"};

        if (json_array_append_new(list, entity(&p)))
            return -1;
    }
    if (json_array_size(list) == 0)
        json_object_del(ae, "entity");
    return 0;
}

static int add_detail(json_t *details, const char *type, const char *value)
{
    return json_array_append_new(details,
                                 json_pack("{s:s, s:s}", "type", type, "valueString", value));
}

void audit_tally_description(const struct audit_tally *t, char *text, size_t cap)
{
    snprintf(text, cap, "%ld refusal%s over %s of clients without an identity%s", t->count,
             t->count == 1 ? "" : "s", t->channel, t->other_addresses ? ", other addresses" : "");
}

/* An aggregated event: AuditEvent.period, and an entity whose details give
 * the count, the first and last time and the sampled paths. */
static int add_tally(json_t *ae, const struct audit_event *ev)
{
    const struct audit_tally *t = ev->tally;
    char first[GW_INSTANT_LEN], last[GW_INSTANT_LEN], count[24], text[200];
    json_t *details = json_array(), *ent;
    size_t i;

    gw_time_instant(t->first_ms, first);
    gw_time_instant(t->last_ms, last);
    snprintf(count, sizeof count, "%ld", t->count);
    audit_tally_description(t, text, sizeof text);
    if (!details || add_detail(details, "count", count) || add_detail(details, "first", first) ||
        add_detail(details, "last", last)) {
        json_decref(details);
        return -1;
    }
    for (i = 0; i < t->n_samples; i++)
        if (add_detail(details, "path", t->samples[i])) {
            json_decref(details);
            return -1;
        }
    ent = json_pack("{s:o, s:o, s:s, s:s, s:o}", "type", coding(ENTITY_TYPE, "2", NULL), "role",
                    coding(OBJECT_ROLE, "20", NULL), "name", t->channel, "description", text,
                    "detail", details);
    if (!ent ||
        json_object_set_new(ae, "period", json_pack("{s:s, s:s}", "start", first, "end", last))) {
        json_decref(ent);
        return -1;
    }
    if (!json_object_get(ae, "entity") && json_object_set_new(ae, "entity", json_array())) {
        json_decref(ent);
        return -1;
    }
    return json_array_append_new(json_object_get(ae, "entity"), ent);
}

const char *audit_outcome_code(enum audit_outcome outcome)
{
    return outcome == AUDIT_SUCCESS           ? "0"
           : outcome == AUDIT_MINOR_FAILURE   ? "4"
           : outcome == AUDIT_SERIOUS_FAILURE ? "8"
                                              : "12";
}

/* {"site": source, "observer": {"display": source}, "type": [Application Server]}. */
static json_t *event_source(void)
{
    json_t *source = json_object();

    if (gw_json_set_string(source, "site", source_name) ||
        json_object_set_new(source, "observer",
                            gw_json_object1("display", json_string(source_name))) ||
        json_object_set_new(
            source, "type",
            array_of(coding(SOURCE_TYPE, "4", "Application Server"), NULL, false))) {
        json_decref(source);
        return NULL;
    }
    return source;
}

json_t *audit_event_build(const struct audit_event *ev, const char *id, int64_t recorded_ms)
{
    char instant[GW_INSTANT_LEN], action[2] = {ev->action ? ev->action : 'E', 0};
    json_t *ae;

    gw_time_instant(recorded_ms, instant);
    ae = json_object();
    if (gw_json_set_string(ae, "resourceType", "AuditEvent") || gw_json_set_string(ae, "id", id) ||
        json_object_set_new(ae, "type", code_coding(audit_type_code(ev))) ||
        json_object_set_new(ae, "subtype",
                            array_of(code_coding(audit_subtype_code(ev)), NULL, false)) ||
        gw_json_set_string(ae, "action", action) || gw_json_set_string(ae, "recorded", instant) ||
        gw_json_set_string(ae, "outcome", audit_outcome_code(ev->outcome)) ||
        json_object_set_new(ae, "agent", array_of(client_agent(ev), gateway_agent(), true)) ||
        json_object_set_new(ae, "source", event_source())) {
        json_decref(ae);
        return NULL;
    }
    if (!ae)
        return NULL;
    if (ev->outcome_desc && json_object_set_new(ae, "outcomeDesc", json_string(ev->outcome_desc)))
        goto fail;
    if (add_entities(ae, ev))
        goto fail;
    if (ev->tally && add_tally(ae, ev))
        goto fail;
    if (ev->request_id || ev->path) {
        struct audit_entity req = {
            .role = "20", .type = "2", .name = ev->request_id, .description = ev->path};
        json_t *list = json_object_get(ae, "entity");
        json_t *req_entity = entity(&req);

        if (!list && json_object_set_new(ae, "entity", list = json_array())) {
            json_decref(req_entity);
            goto fail;
        }
        if (req_entity && ev->http_status > 0 && add_status_detail(req_entity, ev->http_status)) {
            json_decref(req_entity);
            goto fail;
        }
        if (json_array_append_new(json_object_get(ae, "entity"), req_entity))
            goto fail;
    }
    return ae;
fail:
    json_decref(ae);
    return NULL;
}
