/* rest_int.h -- what the rest module's files share. */
#ifndef GW_REST_INT_H
#define GW_REST_INT_H

#include "rest/rest.h"

#include <stdatomic.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "mapping/mapping.h"
#include "ris/ris.h"

#define REST_MAX_BASE 512

struct rest_ctx {
    const struct config *cfg;
    struct store *store;
    struct map_holder *maps;
    struct ris *ris;
    struct audit_refusals *refusals; /* may be NULL */
    struct notify *notify;           /* may be NULL: Subscriptions are then refused */
    char base[REST_MAX_BASE];        /* e.g. https://127.0.0.1:8443/fhir */
    int64_t started_ms;
    atomic_int exports; /* $export cursors open, each holding a reader connection */
};

/* context.c */
/* Strings a request owns until it ends (index values, query values, audit
 * references): keep() takes p and returns it, or NULL (and marks the list
 * failed) when p is NULL or cannot be kept. */
struct rest_strings {
    char **items;
    size_t n, cap;
    bool failed;
};
const char *rest_strings_keep(struct rest_strings *list, char *p);
void rest_strings_free(struct rest_strings *list);
/* The version an ETag names ("W/\"3\"" or "3"): >0, 0 when etag is NULL,
 * -1 when it is not such an ETag. */
long rest_etag_version(const char *etag);
/* True when who may see a stored row: a GP its organisation's, a RIS or a
 * practice what its sites' referrals reference (resource_sites, read inside txn when it is
 * not NULL), an admin everything, auditors none. A failed lookup is "no". */
bool rest_visible(const struct rest_ctx *ctx, struct store_txn *txn,
                  const struct auth_identity *who, const struct store_resource *r);
/* Fills the scope of a query for who (owner for gp, sites for ris and practice). */
void rest_scope_query(const struct auth_identity *who, struct store_query *q);
/* Sets ETag, Last-Modified and (for writes) Location headers for a stored version. */
void rest_version_headers(struct rest_ctx *ctx, struct http_response *resp, const char *type,
                          const char *id, long version, int64_t last_updated_ms, bool location);
/* Parses a stored row's JSON text: a new reference or NULL. */
json_t *rest_parse_stored(const struct store_resource *r);
/* Parses (JSON or XML) and validates against the R4 base a request body:
 * a new reference, or NULL with the answer set (400/413 with every issue). */
json_t *rest_parse_any(struct rest_ctx *ctx, const struct http_request *req,
                       struct http_response *resp);
/* As rest_parse_any, and the resourceType must be type (else 400). */
json_t *rest_parse_resource(struct rest_ctx *ctx, const struct http_request *req,
                            struct http_response *resp, const char *type);
/* resource.c: the served type of the URL, checked for an interaction and the
 * client's role; NULL with the answer set (404/405/403) when refused. */
const struct rest_type *rest_admit_type(const struct http_request *req, struct http_response *resp,
                                        unsigned interaction, bool write);
/* An audit event pre-filled from the request (client, peer, request id, path). */
void rest_audit_init(struct audit_event *ev, const struct http_request *req, const char *subtype,
                     char action);
/* Answers resp (as the handler set it) once ev is recorded with the outcome
 * of status (why says what failed, for refusals): the request is deferred
 * until the event is durable. A success (status < 400) whose event cannot
 * be recorded becomes a 503: an unaudited access is no access. ev is copied;
 * resp is taken (the handler returns right after). */
void rest_answer_after_audit(struct rest_ctx *ctx, struct http_request *req,
                             struct http_response *resp, const struct audit_event *ev, int status,
                             const char *why);
/* As rest_answer_after_audit, with ev's outcome, description and status
 * as the caller set them (a finding answered 200: a broken audit chain). */
void rest_answer_after_event(struct rest_ctx *ctx, struct http_request *req,
                             struct http_response *resp, const struct audit_event *ev);
/* Answers resource (borrowed) with status once ev (a successful access) is recorded. */
void rest_answer_audited(struct rest_ctx *ctx, struct http_request *req, struct audit_event *ev,
                         struct http_response *resp, int status, json_t *resource);
/* Answers the refusal in resp once ev records it (why: its first issue). */
void rest_answer_refused(struct rest_ctx *ctx, struct http_request *req, struct http_response *resp,
                         const struct audit_event *ev);
/* Queues the recording of ev (copied) with the outcome of status; done
 * (may be NULL) runs on the store's writer once it is durable or failed. */
void rest_audit_submit(struct rest_ctx *ctx, const struct audit_event *ev, int status,
                       const char *why, store_done_fn done, void *done_ctx);
/* The diagnostics of resp's first issue, or fallback (borrowed from resp). */
const char *rest_refusal_text(const struct http_response *resp, const char *fallback);

/* system.c */
void rest_metadata(struct http_request *req, struct http_response *resp, void *ctx);
void rest_healthz(struct http_request *req, struct http_response *resp, void *ctx);
void rest_readyz(struct http_request *req, struct http_response *resp, void *ctx);
void rest_metrics(struct http_request *req, struct http_response *resp, void *ctx);

/* resource.c, search.c, transaction.c, ops.c: the handlers */
void rest_handle_create(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_update(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_read(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_vread(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_history(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_search(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_bundle(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_validate(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_translate(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_conceptmap_read(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_conceptmap_search(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_ris_pull(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_ris_acks(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_ris_messages(struct http_request *req, struct http_response *resp, void *ctx);
/* decide.c: POST /fhir/Task/{id}/$decide (role practice) and its OperationDefinition. */
void rest_handle_decide(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_operation_definition(struct http_request *req, struct http_response *resp,
                                      void *ctx);
/* The OperationDefinition of $decide (new reference, NULL on OOM). */
json_t *rest_decide_definition(void);

/* auditor.c: the auditor's operations (see its head comment), console.c: the console's files */
void rest_handle_audit_search(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_audit_verify(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_audit_activity(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_audit_export(struct http_request *req, struct http_response *resp, void *ctx);
void rest_handle_console(struct http_request *req, struct http_response *resp, void *ctx);
/* Adds the auditor's operations and the chained patient search to the
 * AuditEvent entry of the CapabilityStatement; 0, or -1 when out of memory. */
int rest_auditor_capability(json_t *entry);
void rest_handle_subscription_create(struct http_request *req, struct http_response *resp,
                                     void *ctx);
void rest_handle_subscription_update(struct http_request *req, struct http_response *resp,
                                     void *ctx);
void rest_handle_subscription_delete(struct http_request *req, struct http_response *resp,
                                     void *ctx);

/* routes.c: what each resource type supports; handlers consult it and the
 * CapabilityStatement is built from it, so the two cannot disagree. */
enum rest_interaction {
    REST_READ = 1 << 0,
    REST_VREAD = 1 << 1,
    REST_HISTORY = 1 << 2,
    REST_SEARCH = 1 << 3,
    REST_CREATE = 1 << 4,
    REST_UPDATE = 1 << 5,
    REST_DELETE = 1 << 6,
};

struct rest_type {
    const char *type;
    unsigned interactions;
    unsigned read_roles;  /* AUTH_* that may read and search */
    unsigned write_roles; /* AUTH_* that may create and update */
};

/* The row for type, or NULL when the type is not served. */
const struct rest_type *rest_type_find(const char *type);

/* index.c: search index entries of a resource (strings owned by the index). */
struct rest_index {
    struct store_index_entry *e;
    size_t n, cap;
    struct rest_strings owned;
    bool failed;
};
/* Builds the entries of res (borrowed); base is this server's base URL, so
 * absolute references to it index as relative ones. */
enum gw_code rest_index_build(const char *base, json_t *res, struct rest_index *ix,
                              struct gw_error *err);
void rest_index_cleanup(struct rest_index *ix);
/* True when search parameter name of type can be indexed and searched. */
bool rest_index_supported(const char *type, const char *name);
/* Lower case with accents folded (new string, free()), for string search. */
char *rest_normalise(const char *s);
/* "name:exact" (new string, free()). */
char *rest_exact_name(const char *param);

/* query.c: FHIR search parameters (R4 §3.1.1) into a store query. */
#define REST_MAX_CONDS     32
#define REST_MAX_VALUES    128
#define REST_MAX_SORTS     4
#define REST_MAX_INCLUDES  8
#define REST_DEFAULT_COUNT 20
#define REST_MAX_COUNT     500

struct rest_include {
    char *param;       /* the reference parameter of the matched type */
    char *target_type; /* NULL: any */
};

struct rest_search {
    const char *type;
    const char *base; /* this server's base URL */
    struct store_query q;
    struct store_cond conds[REST_MAX_CONDS];
    struct store_value values[REST_MAX_VALUES];
    size_t n_values;
    struct store_sort sorts[REST_MAX_SORTS];
    struct rest_include includes[REST_MAX_INCLUDES];
    size_t n_includes;
    struct rest_strings owned;
    struct gw_buf self; /* the query string of the accepted parameters, for links */
};

/* Parses req's parameters for a search of type. Unknown or unsupported ones
 * are a warning in outcome (lenient) or an error (strict, or Prefer:
 * handling=strict). Returns GW_OK, GW_E_INPUT (outcome says why) or GW_E_NOMEM. */
enum gw_code rest_search_parse(const char *type, const char *base, const struct http_request *req,
                               struct rest_search *s, json_t *outcome, struct gw_error *err);
void rest_search_cleanup(struct rest_search *s);

/* ------------------------------------------------------------ writes (plan.c, referral.c, write.c)
 */

#define REST_MAX_ENTRIES 1000 /* entries in one transaction or batch Bundle */

struct rest_entry {
    long index;  /* position in Bundle.entry, -1 for a plain create/update */
    bool is_put; /* PUT (update) rather than POST (create) */
    char *type;
    char *id;
    json_t *resource; /* owned reference */
    char *full_url;
    char *if_none_exist; /* conditional create query (after '?') */
    long if_match;       /* version an update requires, 0: any */
    /* results */
    int status;   /* 201 created, 200 updated or matched */
    bool existed; /* a conditional create found it: nothing written */
    struct store_written written;
    char *owner; /* for updates: the stored owner and site are kept */
    char *site;
    bool was_revoked;               /* updates of ServiceRequests: the stored status */
    struct rest_referral *referral; /* ServiceRequests: what referral.c found */
    /* before the plan ran (rest_plan_submit prepares it on the request's
     * thread; when the writer must redo it, the entry starts over from here) */
    char *pristine; /* the resource's compact text (one block to keep, not a tree to copy) */
    bool id_given;  /* the id came with the request (update), not from the plan */
};

struct rest_plan;
/* Answers a plan once it committed or failed (plan->rc, plan->err). */
typedef void (*rest_plan_answer_fn)(struct rest_plan *plan, struct http_response *resp);

struct rest_plan {
    struct rest_ctx *ctx;
    const struct http_request *req;
    struct map_set *maps; /* a reference, or NULL */
    struct rest_entry *entries;
    size_t n_entries, cap_entries;
    bool transaction;        /* all or nothing (a plain create or update is one too) */
    const char *interaction; /* "create", "update", "transaction", "batch" */
    json_t *outcome;         /* every issue found, warnings included */
    int fail_status;         /* the HTTP status to answer when the plan failed */
    bool reset_failed;       /* a pristine entry could not be read back: apply fails */
    json_t **loaded;         /* stored resources parsed while resolving (owned) */
    size_t n_loaded, cap_loaded;
    struct rest_strings strings; /* owned by the plan (audit references) */
    char path[300];
    /* its commit */
    enum gw_code rc; /* the outcome, once committed or failed */
    struct gw_error err;
    struct http_pending *pending; /* rest_plan_submit(): the request waiting */
    rest_plan_answer_fn answer;
    store_done_fn done; /* rest_plan_submit_then(): told instead */
    void *done_ctx;
};

/* plan.c */
void rest_plan_init(struct rest_plan *p, struct rest_ctx *ctx, const struct http_request *req,
                    const char *interaction);
void rest_plan_cleanup(struct rest_plan *p);
/* Adds an entry taking resource_new; returns it, or NULL on OOM. */
struct rest_entry *rest_plan_add(struct rest_plan *p, const char *type, json_t *resource_new);
/* Keeps s until cleanup; NULL on OOM. */
const char *rest_plan_keep(struct rest_plan *p, char *s);
/* Remembers each entry as it is (false on OOM), so that rest_plan_reset()
 * can put the plan back to this point once it ran (once: an entry it cannot
 * read back, out of memory, makes the plan's apply step fail). */
bool rest_plan_snapshot(struct rest_plan *p);
void rest_plan_reset(struct rest_plan *p);
/* Records a failure: status, an issue, and returns code (GW_E_INPUT etc.). */
enum gw_code rest_plan_fail(struct rest_plan *p, int status, enum gw_code code,
                            const char *issue_code, const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The FHIRPath of entry e's resource ("Bundle.entry[2].resource" or its type). */
void rest_entry_path(const struct rest_entry *e, char *out, size_t cap);
/* Conditional creates, ids, reference rewriting: the first steps of apply. */
enum gw_code rest_plan_resolve(struct rest_plan *p, struct store_txn *txn, struct gw_error *err);
/* A resource a reference designates: plan entries, else stored and visible
 * (borrowed, lives as long as the plan), else NULL. */
json_t *rest_plan_lookup(struct rest_plan *p, struct store_txn *txn, json_t *holder,
                         const char *reference);
/* Writes resource with its index (the RIS hook's implementation too), and
 * matches it against Subscriptions. out (may be NULL) must outlive the store
 * job: a recording txn writes the committed version into it at replay. */
enum gw_code rest_put(struct rest_ctx *ctx, struct store_txn *txn, json_t *resource,
                      const char *owner, const char *site, long if_match, bool create,
                      struct store_written *out, struct gw_error *err);

/* referral.c: ServiceRequests, in two steps around their own write. */
struct rest_referral;
/* Before the write: the referral profile (422), the site from performer, the
 * mapping (fills an empty code) and triage; for updates, what changes. */
enum gw_code rest_referral_prepare(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                   struct gw_error *err);
/* After the write: the Task (created, or moved along on revocation) and the
 * RIS order (new, change or cancel). */
enum gw_code rest_referral_finish(struct rest_plan *p, struct store_txn *txn, struct rest_entry *e,
                                  struct gw_error *err);
void rest_referral_free(struct rest_referral *r);

/* transaction.c: reads a transaction Bundle's entries into p (refusals are
 * recorded in p, as rest_plan_fail() does). */
enum gw_code rest_plan_add_transaction(struct rest_plan *p, json_t *bundle);

/* write.c */
/* Runs the plan p (allocated with calloc, taken) in one commit with its
 * AuditEvents; req's answer waits for it: once committed (or failed),
 * answer(p, resp) runs on a server thread, and p is freed with the request. */
void rest_plan_submit(struct rest_plan *p, struct http_request *req, struct http_response *resp,
                      rest_plan_answer_fn answer);
/* Runs the plan p (owned by the caller, kept until done) in one commit with
 * its AuditEvents; done(done_ctx, rc, err) runs on the store's writer once
 * it committed or failed (p->rc and p->err say the same). */
void rest_plan_submit_then(struct rest_plan *p, store_done_fn done, void *done_ctx);
/* The two steps a submitted plan hands the store, for a caller that queues
 * many plans at once (import.c): apply writes, audit records the outcome. */
enum gw_code rest_plan_apply(struct store_txn *txn, struct rest_plan *p, struct gw_error *err);
enum gw_code rest_plan_audit(struct store_txn *txn, struct rest_plan *p, enum gw_code outcome,
                             const struct gw_error *why, struct gw_error *err);
/* Answers a failed plan (its status and outcome, or the error's). */
void rest_plan_answer_failure(struct rest_plan *p, const struct gw_error *err,
                              struct http_response *resp);
/* Answers a write by Prefer (return=minimal|representation|OperationOutcome). */
void rest_answer_written(struct rest_ctx *ctx, const struct http_request *req,
                         struct http_response *resp, const struct rest_entry *e, json_t *outcome);
/* ------------------------------------------------------------ Subscriptions (criteria.c,
 * subscription.c) */

/* A Subscription's criteria, parsed as the search it stands for. */
struct rest_criteria;
/* True for the types a Subscription may watch. */
bool rest_criteria_watches(const char *type);
/* Parses criteria ("Task?status=completed"); every reason it is refused goes
 * into outcome (at expr, may be NULL) and GW_E_INPUT is returned. On GW_OK
 * *out is new; free with rest_criteria_destroy(). */
enum gw_code rest_criteria_parse(const char *base, const char *criteria, const char *expr,
                                 struct rest_criteria **out, json_t *outcome, struct gw_error *err);
void rest_criteria_destroy(struct rest_criteria *c);
/* The type the criteria watches. */
const char *rest_criteria_type(const struct rest_criteria *c);
/* *match: whether the current version of type/id (in txn, its writes
 * included) is what the criteria's search returns for owner. */
enum gw_code rest_criteria_matches(const struct rest_criteria *c, struct store_txn *txn,
                                   const char *owner, const char *id, bool *match,
                                   struct gw_error *err);
/* The one call of the write path: a version of type/id owned by owner was
 * written in txn; queues an event for each enabled Subscription of owner
 * whose criteria it matches (with its AuditEvent), in the same commit, on
 * the writer (store_txn_on_writer: also when txn records the work). */
enum gw_code rest_subscriptions_notify(struct rest_ctx *ctx, struct store_txn *txn,
                                       const char *type, const char *id, const char *owner,
                                       long version, struct gw_error *err);
/* Adds what the CapabilityStatement says of Subscriptions to its resource
 * entry; -1 on OOM. */
int rest_subscription_describe(json_t *entry);

#endif
