/* audit.h -- an AuditEvent for every interaction (IHE BALP patterns), written
 * into the same commit as the data it describes; chain verification; export.
 *
 * Owns:      nothing long-lived: events are built, canonicalised and handed
 *            to the store's append-only, hash-chained audit table.
 * Promises:  audit_record() appends exactly one event or fails (and then the
 *            store undoes the work it describes: no data without its event).
 *            audit_verify() names the first event whose hash, link or order
 *            does not hold. Export streams in constant memory.
 * Threads:   audit_record() runs inside a store audit callback: on the
 *            store's writer thread, or on a request's thread while the store
 *            records the work ahead of the writer; verify and export on any
 *            thread.
 * Ownership: every pointer in struct audit_event is borrowed for the call.
 */
#ifndef GW_AUDIT_H
#define GW_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "auth/auth.h"
#include "store/store.h"
#include "util/util.h"

#define AUDIT_MAX_ENTITIES 64

/* AuditEvent.outcome (R4 audit-event-outcome). */
enum audit_outcome {
    AUDIT_SUCCESS = 0,
    AUDIT_MINOR_FAILURE = 4,   /* the client's request was refused or invalid */
    AUDIT_SERIOUS_FAILURE = 8, /* the gateway failed */
    AUDIT_MAJOR_FAILURE = 12,
};

enum audit_kind {
    AUDIT_REST,       /* an HTTP interaction: subtype a restful-interaction code */
    AUDIT_HL7_IMPORT, /* an HL7 v2 message received: subtype the message type */
    AUDIT_HL7_EXPORT, /* an HL7 v2 message sent or handed out */
    AUDIT_CLI,        /* a command-line action on the store */
    AUDIT_SECURITY,   /* refusals of peers without an identity, counted (DCM 110113 Security
                         Alert, subtype 110126 Node Authentication) */
    AUDIT_NOTIFY,     /* a Subscription notification queued or sent: subtype its Backport
                         notification type (event-notification, handshake) */
};

#define AUDIT_REFUSAL_SAMPLES   5   /* paths kept per aggregated event */
#define AUDIT_REFUSAL_MAX_PEERS 256 /* addresses tracked per channel; others share a window */

/* What an aggregated event counts (AuditEvent.period and an entity's details). */
struct audit_tally {
    const char *channel;        /* "HTTPS" or "MLLP" */
    long count;                 /* refusals */
    int64_t first_ms, last_ms;  /* the first and the last */
    const char *const *samples; /* paths asked for (at most AUDIT_REFUSAL_SAMPLES) */
    size_t n_samples;
    bool other_addresses; /* the shared window past AUDIT_REFUSAL_MAX_PEERS addresses */
};

/* One resource (or query) the event is about. */
struct audit_entity {
    const char *reference; /* "ServiceRequest/123" or NULL */
    const char *role;      /* object-role code: "4" domain resource, "1" patient, "24" query,
                              "3" report, "20" job (a message) */
    const char *type;      /* audit-entity-type: "1" person, "2" system object */
    const char *name;      /* e.g. the HL7 control id; never patient data */
    const char *query;     /* raw query text (base64-encoded into entity.query) */
    const char *description;
};

struct audit_event {
    enum audit_kind kind;
    const char *subtype; /* "create", "read", "search-type", "transaction", "OMI^O23"... */
    char action;         /* 'C', 'R', 'U', 'D' or 'E' */
    enum audit_outcome outcome;
    const char *outcome_desc;        /* why it failed, for people; NULL on success */
    const struct auth_identity *who; /* the client, may be NULL (no certificate) */
    const char *peer;                /* network address of the client, may be NULL */
    const char *actor_name;          /* for MLLP/CLI: the remote application or the user */
    const char *request_id;          /* X-Request-Id, or the MLLP control id */
    const char *path;                /* what was asked, e.g. "POST /fhir/ServiceRequest" */
    const char *patient;             /* "Patient/…" the interaction is about, may be NULL */
    const struct audit_tally *tally; /* AUDIT_SECURITY: what the event counts */
    int http_status;                 /* the HTTP status answered, 0 when not HTTP */
    struct audit_entity entities[AUDIT_MAX_ENTITIES];
    size_t n_entities;
};

/* The instance name put in AuditEvent.source (set once at start). */
void audit_set_source(const char *instance_id);

/* Adds an entity to ev; silently ignores more than AUDIT_MAX_ENTITIES (the
 * event says how many were left out in its description). */
void audit_add_entity(struct audit_event *ev, const char *reference, const char *role,
                      const char *type, const char *name);

/* What the activity roll-up counts an event as (the console's pictures). */
enum audit_class {
    AUDIT_CLASS_SUCCESS = 0,
    AUDIT_CLASS_REFUSED = 1,  /* 401, 403, 404: no identity, no right, nothing visible */
    AUDIT_CLASS_REJECTED = 2, /* any other failure of the client's request */
    AUDIT_CLASS_FAILED = 3,   /* the gateway failed (serious or major failure) */
};
#define AUDIT_N_CLASSES 4
enum audit_class audit_class_of(const struct audit_event *ev);
/* The names of the classes, in enum order ("success", "refused", ...). */
extern const char *const audit_class_names[AUDIT_N_CLASSES];

/* True when search parameter name is in the AuditEvent index audit_record()
 * writes (so the CapabilityStatement lists only what a search can find). */
bool audit_param_indexed(const char *name);

/* The outcome code for a gw_code or an HTTP status. */
enum audit_outcome audit_outcome_of(enum gw_code code);
enum audit_outcome audit_outcome_of_status(int status);

/* Builds the AuditEvent for ev (a new reference, with id and recorded set),
 * or NULL when out of memory. Exposed for tests. */
json_t *audit_event_build(const struct audit_event *ev, const char *id, int64_t recorded_ms);

/* Builds ev's AuditEvent and appends it to the chain inside txn. */
enum gw_code audit_record(struct store_txn *txn, const struct audit_event *ev,
                          struct gw_error *err);

/* Records ev in a commit of its own (for interactions that change nothing,
 * such as refusals). Blocks until it is on disk. */
enum gw_code audit_record_alone(struct store *st, const struct audit_event *ev,
                                struct gw_error *err);

/* ------------------------------------------------------------ refusals without an identity */

/* Refusals of peers that show no identity (HTTPS without a listed
 * certificate, MLLP connections from addresses not admitted), counted per
 * channel and address: one AuditEvent per peer and window of period_s
 * seconds with the count, first and last time and a sample of paths, written
 * by a background thread when the window closes (refusals.c). */
struct audit_refusals;

/* Starts the counters and their thread. On GW_OK *out is new. */
enum gw_code audit_refusals_create(struct store *st, long period_s, struct audit_refusals **out,
                                   struct gw_error *err);
/* Counts one refusal over channel ("HTTPS", "MLLP") from address, asking for
 * path (may be NULL), refused because why. Never blocks on the store. */
void audit_refusals_note(struct audit_refusals *r, const char *channel, const char *address,
                         const char *path, const char *why);
/* Records every window still open (nothing counted is lost), stops the
 * thread and frees. Call it before the store is destroyed. Accepts NULL. */
void audit_refusals_destroy(struct audit_refusals *r);

struct audit_verify_result {
    long checked; /* events checked */
    bool intact;
    int64_t broken_seq; /* first event at fault (0 when intact) */
    char broken_id[80]; /* its AuditEvent id, when known */
    char reason[200];   /* what is wrong with it */
    int64_t last_seq;   /* the last event checked (0: none): with last_hash, the anchor */
    char last_hash[65];
};

/* An anchor: the sequence and hash of an event, kept outside the store so that
 * events cut from the chain's end (which a chain alone cannot show) are seen. */
struct audit_anchor {
    int64_t seq;
    char hash[65];
};

/* Parses "SEQ:HASH" (as verify prints it); false when text is not one. */
bool audit_anchor_parse(const char *text, struct audit_anchor *out);

/* Walks the whole chain from the first event; key is the HMAC key ("" none). */
enum gw_code audit_verify(struct store *st, const char *key, struct audit_verify_result *out,
                          struct gw_error *err);
/* As audit_verify, and the chain must still hold anchor's event with its hash
 * (anchor NULL: no such check). */
enum gw_code audit_verify_anchored(struct store *st, const char *key,
                                   const struct audit_anchor *anchor,
                                   struct audit_verify_result *out, struct gw_error *err);

/* Writes the events recorded in [since_ms, until_ms) (0: unbounded) as NDJSON
 * to out, one AuditEvent per line, streaming. *n_out counts them. */
enum gw_code audit_export(struct store *st, int64_t since_ms, int64_t until_ms, FILE *out,
                          long *n_out, struct gw_error *err);

#endif
