/* rest.h -- the FHIR REST interactions (DESIGN §3): the routing table the
 * server and the CapabilityStatement share, and the handlers that join the
 * FHIR model, mapping, RIS routing, audit and store into one commit.
 *
 * Owns:      struct rest_ctx's references to the running parts.
 * Promises:  every handled request writes its AuditEvent in the same commit
 *            as its data (or alone when it changes nothing); nothing is
 *            answered before that commit is on disk. A GP sees only its
 *            organisation's resources (others answer 404), a RIS its sites'
 *            referrals and exactly what they reference (resource_sites), an
 *            auditor only AuditEvents. Orders, Tasks and AuditEvents are made
 *            only from resources the caller may read.
 * Threads:   handlers run on the server's threads and never block on the
 *            store: reads and searches answer once their AuditEvent is
 *            durable, writes once their commit is; both defer the answer
 *            (http_defer) and submit the work to the store's writer
 *            (store_submit, store_submit_prepared). The RIS endpoints and
 *            the long auditor operations ($verify, $activity) run on
 *            blocking threads; an export's rows are read there too.
 * Ownership: the context borrows cfg and store; they outlive the server.
 */
#ifndef GW_REST_H
#define GW_REST_H

#include "config/config.h"
#include "http/http.h"
#include "store/store.h"

#include <stdio.h>

struct rest_ctx;

struct audit_refusals;
struct map_holder;
struct ris;

/* The running parts the interactions use. maps and ris may be NULL (then
 * referrals are accepted without mapping, or without RIS orders). */
struct rest_parts {
    const struct config *cfg;
    struct store *store;
    struct map_holder *maps;
    struct audit_refusals *refusals; /* counts anonymous refusals; NULL: one event each */
};

/* On GW_OK *out is new; free with rest_destroy(). */
enum gw_code rest_create(const struct rest_parts *parts, struct rest_ctx **out,
                         struct gw_error *err);
void rest_destroy(struct rest_ctx *ctx);
/* Tells the context the port the server bound (for Location and links when
 * no public_base is configured and the configured port was 0). */
void rest_set_port(struct rest_ctx *ctx, int port);

/* Connects the RIS side once it exists (it needs rest_ris_hooks() first). */
void rest_set_ris(struct rest_ctx *ctx, struct ris *ris);
/* The hooks the RIS side uses to write FHIR resources (ctx: this context). */
struct ris_hooks;
void rest_ris_hooks(struct rest_ctx *ctx, struct ris_hooks *hooks);

/* Connects the delivery side of Subscriptions (allow-list checks). */
struct notify;
void rest_set_notify(struct rest_ctx *ctx, struct notify *notify);
/* The hooks the delivery side uses to write a Subscription's status. */
struct notify_hooks;
void rest_notify_hooks(struct rest_ctx *ctx, struct notify_hooks *hooks);

/* The routing table (static; valid for the program's life). */
const struct http_route *rest_routes(size_t *n_routes);

/* The http server's renderer and refusal hook (ctx: a struct rest_ctx). */
enum gw_code rest_render(json_t *resource, enum http_format fmt, struct gw_buf *out,
                         struct gw_error *err);
void rest_on_refusal(void *ctx, struct http_request *req, struct http_response *resp, int status,
                     const char *why);

/* ------------------------------------------------------------ import */

struct auth_identity;

struct rest_import_stats {
    long lines;    /* lines read, blank ones left out */
    long imported; /* written (or, for a resource whose identifier was there already, matched) */
    long matched;  /* of which matched */
    long failed;   /* refused or failed: each reported to the failure callback */
};

/* Called for each line that failed, in line order: its number, the HTTP
 * status the same request would have had, and its OperationOutcome's errors
 * as text. */
typedef void (*rest_import_failure_fn)(void *ctx, long line, int status, const char *text);

/* Loads FHIR NDJSON from in (one resource, or one transaction Bundle, per
 * line) as the client who would create it over HTTP: same validation,
 * referral profile, mapping, Tasks, RIS orders and AuditEvents, batch lines
 * per commit (0: 500). A resource (or transaction entry without ifNoneExist)
 * whose first identifier the client already has a resource of that type with
 * is matched, not created again. Returns
 * GW_OK once every line was tried (stats says how many failed), or the
 * error that stopped the reading. Threads: the caller's, and one committing. */
enum gw_code rest_import(struct rest_ctx *ctx, const struct auth_identity *who, FILE *in,
                         size_t batch, rest_import_failure_fn on_failure, void *fctx,
                         struct rest_import_stats *stats, struct gw_error *err);

/* The CapabilityStatement, built from the routing table: a new reference. */
json_t *rest_capability_statement(const struct rest_ctx *ctx);

#endif
