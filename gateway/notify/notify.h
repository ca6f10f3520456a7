/* notify.h -- FHIR R4 Subscription delivery over rest-hook: the workers that
 * empty the notification outbox, the HTTPS client that calls GP software,
 * and the rules an endpoint, its headers and its payload must follow.
 *
 * Owns:      the delivery threads; the TLS client context (the gateway's
 *            client certificate and the CA endpoints must chain to) and the
 *            endpoint allow-list in force (both replaced by notify_reload()).
 * Promises:  at-least-once, in order per subscription: a subscription's next
 *            notification leaves only once the one before it was delivered
 *            (a 2xx answer) or dead-lettered. Every attempt is recorded (the
 *            outbox row and an AuditEvent, one commit) before the next one
 *            starts; a failed one is tried again after a capped exponential
 *            backoff (notify_backoff_ms()), and the one whose attempts reach
 *            subscription_max_attempts is dead. The Subscription's status
 *            follows: active after a delivery, error (the reason in
 *            Subscription.error) after subscription_error_after failed
 *            attempts in a row or a dead letter, active again after the next
 *            delivery. The pending events of a subscription go together,
 *            up to subscription_max_batch in one notification; each carries its
 *            event number, so a receiver recognises a repeat after a crash.
 * Never:     connects outside the allow-list in force (checked again before
 *            each attempt), speaks plain HTTP, follows a redirect, waits past
 *            subscription_connect_timeout_ms / subscription_timeout_ms, or
 *            reads more than NOTIFY_MAX_RESPONSE_HEAD bytes of an answer.
 * Threads:   every notify_* function may be called from any thread.
 * Ownership: json_t arguments are borrowed; results are new references.
 */
#ifndef GW_NOTIFY_H
#define GW_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "store/store.h"
#include "util/util.h"

#define NOTIFY_MAX_URL           2048 /* longest endpoint URL */
#define NOTIFY_MAX_HEADERS       16   /* channel.header entries */
#define NOTIFY_MAX_HEADER        4096 /* bytes of one channel.header entry */
#define NOTIFY_MAX_RESPONSE_HEAD 16384
#define NOTIFY_MAX_WORKERS       64

/* The Subscriptions R5 Backport IG (STU 1.1) for R4: payload content codes
 * (extension on Subscription.channel.payload) and the profiles and code
 * system of the notification Bundles. */
#define NOTIFY_BACKPORT        "http://hl7.org/fhir/uv/subscriptions-backport"
#define NOTIFY_PAYLOAD_CONTENT NOTIFY_BACKPORT "/StructureDefinition/backport-payload-content"
#define NOTIFY_BUNDLE_PROFILE                                                                      \
    NOTIFY_BACKPORT "/StructureDefinition/backport-subscription-notification-r4"
#define NOTIFY_STATUS_PROFILE NOTIFY_BACKPORT "/StructureDefinition/backport-subscription-status-r4"
#define NOTIFY_TYPE_SYSTEM    NOTIFY_BACKPORT "/CodeSystem/backport-notification-type"
#define NOTIFY_JSON           "application/fhir+json"

struct notify;

/* What delivery needs from the FHIR side (implemented by rest/): writing a
 * new version of a Subscription with its search index, and the base URL
 * notifications name resources with. */
struct notify_hooks {
    enum gw_code (*put)(void *ctx, struct store_txn *txn, json_t *resource, const char *owner,
                        const char *site, long if_match, struct store_written *out,
                        struct gw_error *err);
    const char *(*base)(void *ctx); /* "https://host:port/fhir", stable once serving */
    void *ctx;
};

/* Creates the delivery side (nothing runs yet). Loads the TLS client files
 * when subscription_endpoints allows any endpoint; a bad allow-list or file
 * fails here, naming the key. On GW_OK *out is new. */
enum gw_code notify_create(const struct config *cfg, struct store *store,
                           const struct notify_hooks *hooks, struct notify **out,
                           struct gw_error *err);
/* Starts subscription_workers delivery threads (call once the HTTP server
 * has bound its port: notifications carry the base URL). */
enum gw_code notify_start(struct notify *n, struct gw_error *err);
/* Stops the threads (an attempt in flight finishes and is recorded) and
 * frees. Accepts NULL. */
void notify_destroy(struct notify *n);
/* SIGHUP: takes cfg's allow-list and TLS client files (copied; cfg may be
 * freed after). Checked first: on failure nothing changes and err says why. */
enum gw_code notify_reload(struct notify *n, const struct config *cfg, struct gw_error *err);

/* ------------------------------------------------------------ endpoints and headers */

struct notify_url {
    char host[256]; /* a DNS name or an IP address (IPv6 without brackets) */
    int port;       /* 443 when the URL names none */
    bool host_is_ip;
    char target[NOTIFY_MAX_URL]; /* path and query, "/" at least */
};

/* Parses an https URL without user information or fragment, with a host of
 * DNS letters or an IP literal. GW_E_INPUT with the reason otherwise. */
enum gw_code notify_url_parse(const char *text, struct notify_url *out, struct gw_error *err);
/* Checks a comma-separated allow-list of URL prefixes (each a URL as above;
 * its path, when given, a prefix of the endpoint's path at a '/'). */
enum gw_code notify_allow_check(const char *allow, struct gw_error *err);
/* True when url has the host and port of an allow-list entry and a path
 * under that entry's path. */
bool notify_url_allowed(const struct notify_url *url, const char *allow);
/* Checks endpoint against the allow-list in force: GW_E_INPUT (not an https
 * URL) or GW_E_DENIED (not allowed), with the reason. */
enum gw_code notify_endpoint_check(struct notify *n, const char *endpoint, struct gw_error *err);
/* Checks one Subscription.channel.header entry ("Name: value"): a token
 * name that is not a protocol header (Host, Content-Length, Transfer-Encoding,
 * Connection, ...), a value without control characters. GW_E_INPUT otherwise. */
enum gw_code notify_header_check(const char *header, struct gw_error *err);

/* ------------------------------------------------------------ payloads */

enum notify_content {
    NOTIFY_PING,  /* no channel.payload: an empty POST (R4 core) */
    NOTIFY_EMPTY, /* Backport "empty": the status Parameters only */
    NOTIFY_ID_ONLY,
    NOTIFY_FULL_RESOURCE, /* the default with application/fhir+json */
};

/* The content subscription (a Subscription) asks for. GW_E_INPUT when its
 * payload is not application/fhir+json or its content code is unknown. */
enum gw_code notify_content_of(json_t *subscription, enum notify_content *out,
                               struct gw_error *err);

/* One event a notification reports (all borrowed). */
struct notify_focus {
    long event;           /* its event number */
    int64_t timestamp_ms; /* the commit time of the change */
    const char *type;     /* the resource version that changed */
    const char *id;
    long version;
    json_t *resource; /* that version (NOTIFY_FULL_RESOURCE), or NULL */
};

/* One notification as its Bundle shows it (all borrowed): a handshake, or
 * one or more consecutive events of one subscription. */
struct notify_event {
    const char *base;            /* the gateway's FHIR base URL */
    const char *subscription_id; /* Subscription/<id> */
    const char *status;          /* the Subscription's status now */
    enum store_note_kind kind;
    long events;                      /* events-since-subscription-start */
    int64_t timestamp_ms;             /* Bundle.timestamp: when the (last) change committed */
    const struct notify_focus *focus; /* events, in order */
    size_t n_focus;
    enum notify_content content;
    long first_position, last_position; /* the notifications' places in their queue */
};

/* The notification Bundle (type history, Backport R4 profile: a Parameters
 * subscription status with a notification-event per event, then each
 * focus), or NULL when out of memory. A new reference; the same
 * notifications give the same Bundle.id. */
json_t *notify_bundle_build(const struct notify_event *ev);

/* ------------------------------------------------------------ retries */

/* The pause after the attempts-th failed attempt (1, 2, ...): min_ms
 * doubled each time, never more than max_ms. */
long notify_backoff_ms(long attempts, long min_ms, long max_ms);

#endif
