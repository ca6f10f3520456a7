/* routes.c -- the routing table, the served types and the CapabilityStatement
 * built from both, so that it lists exactly what the server does: the same
 * rows decide routing, role checks, supported interactions and search
 * parameters (those rest_index_supported() can evaluate). */
#include "rest/rest_int.h"

#include <string.h>

#include "fhir/fhir.h"

#define GP            AUTH_GP
#define RIS           AUTH_RIS
#define PRACTICE      AUTH_PRACTICE
#define AUDITOR       AUTH_AUDITOR
#define ADMIN         AUTH_ADMIN
#define CLIENTS       AUTH_ANY_CLIENT
#define FHIR_IO       (HTTP_FHIR | HTTP_FHIR_BODY)
#define ALL_READS     (REST_READ | REST_VREAD | REST_HISTORY | REST_SEARCH)
#define REFERRAL_PART (ALL_READS | REST_CREATE)
#define READERS       (GP | RIS | PRACTICE | ADMIN) /* each within its scope: rest_visible() */

static const struct rest_type types[] = {
    {"ServiceRequest", ALL_READS | REST_CREATE | REST_UPDATE, READERS, GP},
    {"Patient", REFERRAL_PART, READERS, GP},
    {"Practitioner", REFERRAL_PART, READERS, GP},
    {"PractitionerRole", REFERRAL_PART, READERS, GP},
    {"Organization", REFERRAL_PART, READERS, GP},
    {"Condition", REFERRAL_PART, READERS, GP},
    {"Observation", REFERRAL_PART, READERS, GP},
    {"DocumentReference", REFERRAL_PART, READERS, GP},
    {"MedicationStatement", REFERRAL_PART, READERS, GP},
    {"MedicationRequest", REFERRAL_PART, READERS, GP},
    {"Task", ALL_READS, READERS, 0},
    {"Appointment", ALL_READS, READERS, 0},
    {"DiagnosticReport", ALL_READS, READERS, 0},
    {"AuditEvent", REST_READ | REST_SEARCH, AUDITOR, 0},
    {"Subscription", ALL_READS | REST_CREATE | REST_UPDATE | REST_DELETE, GP, GP},
};

static const struct http_route routes[] = {
    {"GET", "/fhir/metadata", "metadata", 0, HTTP_PUBLIC | HTTP_FHIR, rest_metadata},
    {"GET", "/healthz", "healthz", 0, HTTP_PUBLIC, rest_healthz},
    {"GET", "/readyz", "readyz", 0, HTTP_PUBLIC, rest_readyz},
    {"GET", "/metrics", "metrics", 0, HTTP_PUBLIC, rest_metrics},
    {"POST", "/fhir/$validate", "validate", CLIENTS, FHIR_IO, rest_handle_validate},
    {"POST", "/fhir/{type}/$validate", "validate", CLIENTS, FHIR_IO, rest_handle_validate},
    {"GET", "/fhir/ConceptMap/$translate", "translate", CLIENTS, HTTP_FHIR, rest_handle_translate},
    {"POST", "/fhir/ConceptMap/$translate", "translate", CLIENTS, FHIR_IO, rest_handle_translate},
    {"GET", "/fhir/ConceptMap", "conceptmap-search", CLIENTS, HTTP_FHIR,
     rest_handle_conceptmap_search},
    {"GET", "/fhir/ConceptMap/{id}", "conceptmap-read", CLIENTS, HTTP_FHIR,
     rest_handle_conceptmap_read},
    {"POST", "/fhir/Task/{id}/$decide", "decide", PRACTICE, FHIR_IO, rest_handle_decide},
    {"GET", "/fhir/OperationDefinition/{id}", "operationdefinition-read", CLIENTS, HTTP_FHIR,
     rest_handle_operation_definition},
    {"GET", "/console", "console", AUDITOR, HTTP_PAGE, rest_handle_console},
    {"GET", "/console/", "console", AUDITOR, HTTP_PAGE, rest_handle_console},
    {"GET", "/console/{file}", "console", AUDITOR, HTTP_PAGE, rest_handle_console},
    {"GET", "/fhir/AuditEvent", "search", AUDITOR, HTTP_FHIR, rest_handle_audit_search},
    /* these read the whole chain or a long period: they may take a while */
    {"POST", "/fhir/AuditEvent/$verify", "audit-verify", AUDITOR, HTTP_FHIR | HTTP_BLOCKING,
     rest_handle_audit_verify},
    {"GET", "/fhir/AuditEvent/$activity", "audit-activity", AUDITOR, HTTP_FHIR | HTTP_BLOCKING,
     rest_handle_audit_activity},
    {"GET", "/fhir/AuditEvent/$export", "audit-export", AUDITOR, 0, rest_handle_audit_export},
    {"POST", "/fhir/Subscription", "create", GP, FHIR_IO, rest_handle_subscription_create},
    {"PUT", "/fhir/Subscription/{id}", "update", GP, FHIR_IO, rest_handle_subscription_update},
    {"DELETE", "/fhir/Subscription/{id}", "delete", GP, HTTP_FHIR, rest_handle_subscription_delete},
    {"POST", "/fhir", "transaction", GP, FHIR_IO, rest_handle_bundle},
    {"GET", "/fhir/{type}", "search", CLIENTS, HTTP_FHIR, rest_handle_search},
    {"POST", "/fhir/{type}", "create", GP, FHIR_IO, rest_handle_create},
    {"GET", "/fhir/{type}/{id}", "read", CLIENTS, HTTP_FHIR, rest_handle_read},
    {"PUT", "/fhir/{type}/{id}", "update", GP, FHIR_IO, rest_handle_update},
    {"GET", "/fhir/{type}/{id}/_history", "history", CLIENTS, HTTP_FHIR, rest_handle_history},
    {"GET", "/fhir/{type}/{id}/_history/{vid}", "vread", CLIENTS, HTTP_FHIR, rest_handle_vread},
    /* the RIS side writes through store_write(): its handlers may block */
    {"GET", "/ris/orders", "ris-pull", RIS, HTTP_BLOCKING, rest_handle_ris_pull},
    {"POST", "/ris/acks", "ris-acks", RIS, HTTP_HL7_BODY | HTTP_BLOCKING, rest_handle_ris_acks},
    {"POST", "/ris/messages", "ris-messages", RIS, HTTP_HL7_BODY | HTTP_BLOCKING,
     rest_handle_ris_messages},
};

const struct http_route *rest_routes(size_t *n_routes)
{
    *n_routes = sizeof routes / sizeof routes[0];
    return routes;
}

const struct rest_type *rest_type_find(const char *type)
{
    size_t i;

    for (i = 0; type && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].type, type) == 0)
            return &types[i];
    return NULL;
}

static int add_interaction(json_t *list, const char *code)
{
    return json_array_append_new(list, json_pack("{s:s}", "code", code));
}

/* searchParam and searchInclude from the generated parameters we can evaluate. */
static int add_search(json_t *r, const char *type)
{
    json_t *params = json_array(), *includes = json_array();
    struct fhir_search_param sp;
    char inc[160];
    size_t i, n = fhir_search_param_count(type);

    if (!params || !includes || json_object_set_new(r, "searchParam", params) ||
        json_object_set_new(r, "searchInclude", includes))
        return -1;
    for (i = 0; i < n; i++) {
        if (!fhir_search_param_get(type, i, &sp) || !rest_index_supported(type, sp.name))
            continue;
        if (json_array_append_new(params, json_pack("{s:s, s:s}", "name", sp.name, "type",
                                                    fhir_search_type_name(sp.type))))
            return -1;
        snprintf(inc, sizeof inc, "%s:%s", type, sp.name);
        if (sp.type == FHIR_SEARCH_REFERENCE && strcmp(type, "AuditEvent") != 0 &&
            json_array_append_new(includes, json_string(inc)))
            return -1;
    }
    if (json_array_size(includes) == 0)
        json_object_del(r, "searchInclude");
    return 0;
}

static json_t *resource_entry(const struct rest_type *t)
{
    static const struct {
        unsigned bit;
        const char *code;
    } names[] = {{REST_READ, "read"},
                 {REST_VREAD, "vread"},
                 {REST_UPDATE, "update"},
                 {REST_DELETE, "delete"},
                 {REST_HISTORY, "history-instance"},
                 {REST_CREATE, "create"},
                 {REST_SEARCH, "search-type"}};
    json_t *r =
        json_pack("{s:s, s:[], s:s, s:b, s:b, s:b}", "type", t->type, "interaction", "versioning",
                  "versioned", "readHistory", (t->interactions & REST_VREAD) != 0, "updateCreate",
                  0, "conditionalCreate", (t->interactions & REST_CREATE) != 0);
    size_t i;

    if (!r)
        return NULL;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((t->interactions & names[i].bit) &&
            add_interaction(json_object_get(r, "interaction"), names[i].code))
            goto fail;
    if ((t->interactions & REST_SEARCH) && add_search(r, t->type))
        goto fail;
    if (strcmp(t->type, "Task") == 0 &&
        json_object_set_new(r, "operation",
                            json_pack("[{s:s, s:s}]", "name", "decide", "definition",
                                      MAP_BASE "/OperationDefinition/Task-decide")))
        goto fail;
    if (strcmp(t->type, "AuditEvent") == 0 && rest_auditor_capability(r))
        goto fail;
    if (strcmp(t->type, "Subscription") == 0 && rest_subscription_describe(r))
        goto fail;
    return r;
fail:
    json_decref(r);
    return NULL;
}

static json_t *conceptmap_entry(void)
{
    return json_pack("{s:s, s:[{s:s}, {s:s}], s:[{s:s, s:s}]}", "type", "ConceptMap", "interaction",
                     "code", "read", "code", "search-type", "operation", "name", "translate",
                     "definition", "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate");
}

static json_t *operationdefinition_entry(void)
{
    return json_pack("{s:s, s:[{s:s}]}", "type", "OperationDefinition", "interaction", "code",
                     "read");
}

static json_t *rest_block(void)
{
    json_t *rest = json_pack(
        "{s:s, s:{s:[{s:[{s:s, s:s}]}], s:s}, s:[], s:[{s:s}, {s:s}], s:[{s:s, s:s}]}", "mode",
        "server", "security", "service", "coding", "system",
        "http://terminology.hl7.org/CodeSystem/restful-security-service", "code", "Certificates",
        "description",
        "Mutual TLS: clients present a certificate listed in the gateway's client table; GP "
        "organisations see only their own referrals, the RIS and the practice (role practice, "
        "which decides referrals in triage with Task $decide) what is routed to their sites, "
        "auditors only AuditEvents",
        "resource", "interaction", "code", "transaction", "code", "batch", "operation", "name",
        "validate", "definition", "http://hl7.org/fhir/OperationDefinition/Resource-validate");
    json_t *resources = json_object_get(rest, "resource");
    size_t i;

    for (i = 0; rest && i < sizeof types / sizeof types[0]; i++)
        if (json_array_append_new(resources, resource_entry(&types[i]))) {
            json_decref(rest);
            return NULL;
        }
    if (rest && (json_array_append_new(resources, conceptmap_entry()) ||
                 json_array_append_new(resources, operationdefinition_entry()))) {
        json_decref(rest);
        return NULL;
    }
    return rest;
}

json_t *rest_capability_statement(const struct rest_ctx *ctx)
{
    char date[GW_INSTANT_LEN];

    gw_time_instant(ctx->started_ms, date);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s,"
                     " s:[s,s], s:[o]}",
                     "resourceType", "CapabilityStatement", "status", "active", "date", date,
                     "kind", "instance", "name", "ReferralGateway", "publisher", "Referral gateway",
                     "software", "name", "fhir-gateway", "version", "0.1.0", "implementation",
                     "description", "Spinal injection referral gateway", "url", ctx->base,
                     "fhirVersion", "4.0.1", "format", "application/fhir+json",
                     "application/fhir+xml", "rest", rest_block());
}
