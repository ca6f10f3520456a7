/* rest_int.h -- what the rest module's files share. */
#ifndef GW_REST_INT_H
#define GW_REST_INT_H

#include "rest/rest.h"

#include "audit/audit.h"
#include "auth/auth.h"

#define REST_MAX_BASE 512

struct rest_ctx {
    const struct config *cfg;
    struct store *store;
    char base[REST_MAX_BASE]; /* e.g. https://127.0.0.1:8443/fhir */
    int64_t started_ms;
};

/* context.c */
/* True when who may see a stored row (owner/site scope); auditors see none. */
bool rest_visible(const struct auth_identity *who, const struct store_resource *r);
/* Fills the scope of a query for who (owner for gp, sites for ris). */
void rest_scope_query(const struct auth_identity *who, struct store_query *q);
/* Sets ETag, Last-Modified and (for writes) Location headers for a stored version. */
void rest_version_headers(struct rest_ctx *ctx, struct http_response *resp, const char *type,
                          const char *id, long version, int64_t last_updated_ms, bool location);
/* Parses a stored row's JSON text: a new reference or NULL. */
json_t *rest_parse_stored(const struct store_resource *r);
/* Parses a request body into a resource (400 outcome on failure): new reference or NULL. */
json_t *rest_parse_body(struct rest_ctx *ctx, const struct http_request *req,
                        struct http_response *resp);
/* An audit event pre-filled from the request (client, peer, request id, path). */
void rest_audit_init(struct audit_event *ev, const struct http_request *req, const char *subtype,
                     char action);
/* Records ev alone with the outcome of status. Returns GW_OK, or the store's
 * failure (logged): a read whose access cannot be audited must not be answered. */
enum gw_code rest_audit_alone(struct rest_ctx *ctx, struct audit_event *ev, int status,
                              const char *why);

/* system.c */
void rest_metadata(struct http_request *req, struct http_response *resp, void *ctx);
void rest_healthz(struct http_request *req, struct http_response *resp, void *ctx);
void rest_readyz(struct http_request *req, struct http_response *resp, void *ctx);
void rest_metrics(struct http_request *req, struct http_response *resp, void *ctx);

/* resource.c */
void rest_handle_create(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_read(struct http_request *req, struct http_response *resp, void *ctx);


/* routes.c: what each resource type supports; handlers consult it and the
 * CapabilityStatement is built from it, so the two cannot disagree. */
enum rest_interaction {
    REST_READ = 1 << 0,
    REST_VREAD = 1 << 1,
    REST_HISTORY = 1 << 2,
    REST_SEARCH = 1 << 3,
    REST_CREATE = 1 << 4,
    REST_UPDATE = 1 << 5,
};

struct rest_type {
    const char *type;
    unsigned interactions;
    unsigned read_roles;  /* AUTH_* that may read and search */
    unsigned write_roles; /* AUTH_* that may create and update */
};

/* The row for type, or NULL when the type is not served. */
const struct rest_type *rest_type_find(const char *type);
#endif
