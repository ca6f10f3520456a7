/* routes.c -- the routing table, the served types and the CapabilityStatement
 * built from them (so it lists exactly what works). */
#include "rest/rest_int.h"

#include <string.h>

#define GP AUTH_GP
#define RIS AUTH_RIS
#define AUDITOR AUTH_AUDITOR
#define ADMIN AUTH_ADMIN
#define FHIR_IO (HTTP_FHIR | HTTP_FHIR_BODY)

static const struct rest_type types[] = {
    {"ServiceRequest", REST_READ | REST_CREATE, GP | RIS | ADMIN, GP},
};

static const struct http_route routes[] = {
    {"GET", "/fhir/metadata", "metadata", 0, HTTP_PUBLIC | HTTP_FHIR, rest_metadata},
    {"GET", "/healthz", "healthz", 0, HTTP_PUBLIC, rest_healthz},
    {"GET", "/readyz", "readyz", 0, HTTP_PUBLIC, rest_readyz},
    {"GET", "/metrics", "metrics", 0, HTTP_PUBLIC, rest_metrics},
    {"POST", "/fhir/{type}", "create", GP, FHIR_IO, rest_handle_create},
    {"GET", "/fhir/{type}/{id}", "read", GP | RIS | ADMIN, HTTP_FHIR, rest_handle_read},
};

const struct http_route *rest_routes(size_t *n_routes)
{
    *n_routes = sizeof routes / sizeof routes[0];
    return routes;
}

const struct rest_type *rest_type_find(const char *type)
{
    size_t i;

    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].type, type) == 0)
            return &types[i];
    return NULL;
}

static int add_interaction(json_t *list, const char *code)
{
    return json_array_append_new(list, json_pack("{s:s}", "code", code));
}

static json_t *resource_entry(const struct rest_type *t)
{
    static const struct {
        unsigned bit;
        const char *code;
    } names[] = {{REST_READ, "read"},         {REST_VREAD, "vread"},   {REST_UPDATE, "update"},
                 {REST_HISTORY, "history-instance"}, {REST_CREATE, "create"},
                 {REST_SEARCH, "search-type"}};
    json_t *r = json_pack("{s:s, s:[], s:s, s:b, s:b}", "type", t->type, "interaction",
                          "versioning", "versioned", "readHistory",
                          (t->interactions & REST_VREAD) != 0, "updateCreate", 0);
    size_t i;

    if (!r)
        return NULL;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((t->interactions & names[i].bit) &&
            add_interaction(json_object_get(r, "interaction"), names[i].code)) {
            json_decref(r);
            return NULL;
        }
    return r;
}

json_t *rest_capability_statement(const struct rest_ctx *ctx)
{
    char date[GW_INSTANT_LEN];
    json_t *cs, *resources;
    size_t i;

    gw_time_instant(ctx->started_ms, date);
    cs = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s,"
                   " s:[s,s], s:[{s:s, s:{s:[{s:[{s:s, s:s}]}], s:s}, s:[]}]}",
                   "resourceType", "CapabilityStatement", "status", "active", "date", date,
                   "kind", "instance", "name", "ReferralGateway", "publisher",
                   "Referral gateway", "software", "name", "fhir-gateway", "version", "0.1.0",
                   "implementation", "description", "Spinal injection referral gateway", "url",
                   ctx->base, "fhirVersion", "4.0.1", "format", "application/fhir+json", "json",
                   "rest", "mode", "server", "security", "service", "coding", "system",
                   "http://terminology.hl7.org/CodeSystem/restful-security-service", "code",
                   "Certificates", "description",
                   "Mutual TLS: clients present a certificate listed in the gateway's client table",
                   "resource");
    if (!cs)
        return NULL;
    resources = json_object_get(json_array_get(json_object_get(cs, "rest"), 0), "resource");
    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        if (json_array_append_new(resources, resource_entry(&types[i]))) {
            json_decref(cs);
            return NULL;
        }
    return cs;
}
