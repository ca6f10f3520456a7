/* store.h -- durable resources, search index, outbox and audit rows behind one interface.
 *
 * Owns:      the database handles: one writer connection driven by a single
 *            writer thread (group commit) and a pool of reader connections.
 * Promises:  store_write() returns, and store_submit() calls back, only once
 *            the work is on disk (SQLite WAL, synchronous=FULL): GW_OK means
 *            committed, anything else means nothing of its apply step
 *            remains (its audit step may still have committed a failure
 *            event). Work runs in the order it was queued. A batch lands
 *            whole or not at all; readers never see half a batch. Versions
 *            are never rewritten: the versions and audit tables are
 *            append-only.
 * Never:     exposes SQL or backend types; keeps a caller waiting past
 *            commit_timeout_ms while its work is still queued.
 * Threads:   every store_* function may be called from any thread;
 *            store_txn_* functions only inside apply/audit callbacks with
 *            the txn they were given: on the writer thread, or on the
 *            caller's thread while store_submit_prepared() records them.
 *            store_submit()'s callbacks run on the writer (or the
 *            housekeeping) thread and must not block.
 * Ownership: json_t arguments are borrowed (store_txn_put writes meta into
 *            its resource); results are owned by the caller and freed with
 *            the matching _cleanup().
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "util/util.h"

struct store;
struct store_txn;

#define STORE_MAX_PAGE 1000 /* most rows one search page returns */

/* ------------------------------------------------------------ opening */

/* Opens (creating and migrating as needed) the store named by cfg->store and
 * starts the writer thread. On GW_OK *out is new; free with store_destroy(). */
enum gw_code store_open(const struct config *cfg, struct store **out, struct gw_error *err);
/* The store as logs may name it: "sqlite:PATH" or "postgresql://USER@HOST:PORT/DB"
 * (never a password). */
const char *store_target(const struct store *st);
/* Finishes queued work, stops the writer and closes everything. Accepts NULL. */
void store_destroy(struct store *st);
/* GW_OK when the store answers a trivial query (for /readyz). */
enum gw_code store_ping(struct store *st, struct gw_error *err);
/* The schema version the store is at. */
int store_schema_version(struct store *st);

/* ------------------------------------------------------------ resources */

struct store_resource {
    char *type;
    char *id;
    long version;
    int64_t last_updated_ms;
    int64_t seq; /* global version sequence */
    bool deleted;
    char *owner; /* owning organisation id */
    char *site;  /* performing site id, may be NULL */
    char *json;  /* the resource as stored, NUL-terminated */
};
void store_resource_cleanup(struct store_resource *r);

/* Reads type/id at version (0: the current one). GW_E_NOTFOUND when absent.
 * A deleted current version is returned with deleted set. */
enum gw_code store_read(struct store *st, const char *type, const char *id, long version,
                        struct store_resource *out, struct gw_error *err);

/* ------------------------------------------------------------ search */

enum store_param_kind {
    STORE_TOKEN,     /* system|code; system NULL matches any */
    STORE_REFERENCE, /* "Type/id" */
    STORE_STRING,    /* normalised (lower case, no accents): prefix match, or exact */
    STORE_URI,       /* exact */
    STORE_DATE,      /* [lo, hi) epoch ms with a prefix */
    STORE_NUMBER,    /* lo as value */
};

enum store_prefix {
    STORE_EQ,
    STORE_NE,
    STORE_LT,
    STORE_GT,
    STORE_LE,
    STORE_GE,
    STORE_SA,
    STORE_EB
};

/* An index entry written with a version (or audit event). */
struct store_index_entry {
    const char *param;
    const char *system; /* token system, or NULL */
    const char *value;  /* token code, reference, normalised string, uri */
    int64_t lo, hi;     /* dates: [lo, hi) epoch ms; numbers: lo */
};

/* One value of a search parameter. */
struct store_value {
    const char *system; /* tokens: NULL any system, "" no system */
    const char *value;
    enum store_prefix prefix;
    int64_t lo, hi;
};

/* One search parameter occurrence: matches when any of its values does.
 * String values are normalised text (rest_normalise()); the store matches
 * them as a prefix, or as a substring with contains. */
struct store_cond {
    const char *param; /* index name, or "_id", "_lastUpdated" (columns; for
                          AuditEvent "date" is its recorded column) */
    enum store_param_kind kind;
    bool exact;    /* strings: exact instead of starts-with */
    bool contains; /* strings: ":contains" (a substring; the one match no index serves) */
    bool missing;  /* ":missing=true": no index entry for param (values unused);
                      ":missing=false" is a cond without values: some entry exists */
    bool negate;   /* ":not" */
    struct store_value *values;
    size_t n_values;
};

struct store_sort {
    const char *param; /* index name, "_id" or "_lastUpdated" */
    enum store_param_kind kind;
    bool descending;
};

struct store_query {
    const char *type; /* resource type, or "AuditEvent" for the audit log */
    const struct store_cond *conds;
    size_t n_conds;
    const struct store_sort *sorts;
    size_t n_sorts;
    const char *owner;        /* only rows owned by this organisation; NULL: any */
    const char *const *sites; /* only rows visible to one of these sites; NULL: any */
    size_t n_sites;
    int64_t snapshot; /* see only what was committed up to this seq; 0: now */
    size_t offset;
    size_t count; /* at most STORE_MAX_PAGE */
    bool want_total;
};

struct store_page {
    struct store_resource *items;
    size_t n_items;
    int64_t snapshot; /* the seq the page was read at: pass it on for the next page */
    long total;       /* -1 unless want_total */
    bool has_more;
};
void store_page_cleanup(struct store_page *p);

/* Runs q on a reader connection. Every search is driven by an index: its
 * cost grows with the matches (and the offset), not with the store. The
 * order is the version order (the order of commits), or q's sorts; a page
 * at a given snapshot holds the newest version of each match committed up
 * to it, so paging over one snapshot returns each match exactly once. */
enum gw_code store_search(struct store *st, const struct store_query *q, struct store_page *out,
                          struct gw_error *err);
/* History of type/id (id is required), newest first, with the paging rules
 * of q (its conds, sorts and scope are ignored: check visibility first). */
enum gw_code store_history(struct store *st, const struct store_query *q, const char *id,
                           struct store_page *out, struct gw_error *err);

/* ------------------------------------------------------------ writes */

/* apply runs on the writer thread inside its own savepoint; returning
 * anything but GW_OK undoes all it did. audit then runs (even when apply
 * failed or was NULL) in a savepoint of its own to append the AuditEvents
 * describing the outcome; if audit fails, the apply step is undone too. */
typedef enum gw_code (*store_apply_fn)(struct store_txn *txn, void *ctx, struct gw_error *err);
typedef enum gw_code (*store_audit_fn)(struct store_txn *txn, void *ctx, enum gw_code outcome,
                                       const struct gw_error *why, struct gw_error *err);

/* Queues the work, waits for its commit and returns its outcome (err says
 * why on failure). GW_E_STORE when the store failed or stayed busy past
 * commit_timeout_ms before starting the work. For callers that may block
 * (the command line, worker threads); request handlers use store_submit(). */
enum gw_code store_write(struct store *st, store_apply_fn apply, store_audit_fn audit, void *ctx,
                         struct gw_error *err);

/* The outcome of submitted work: rc as store_write() would return it, err
 * (borrowed for the call) says why when rc is not GW_OK. */
typedef void (*store_done_fn)(void *done_ctx, enum gw_code rc, const struct gw_error *err);

/* Queues the work without waiting. on_done is called exactly once: on the
 * writer thread right after the COMMIT that holds the work returned (or
 * failed); on the store's housekeeping thread when the work stayed queued
 * past commit_timeout_ms (GW_E_STORE, nothing of it ran); or before
 * store_submit() returns when the store is stopping or out of memory.
 * on_done must be cheap (it delays the next batch) and must not call into
 * the store. ctx must stay valid until on_done, and apply/audit see it as
 * store_write()'s do. */
void store_submit(struct store *st, store_apply_fn apply, store_audit_fn audit, void *ctx,
                  store_done_fn on_done, void *done_ctx);

/* Puts ctx back as it was before apply and audit ran (see store_submit_prepared). */
typedef void (*store_reset_fn)(void *ctx);

/* As store_submit(), with the work prepared on the caller's thread: apply
 * and audit run now in a recording transaction, where reads and searches go
 * to a reader connection (the store as last committed) and are remembered,
 * and writes are recorded, serialised and indexed, not written. The writer
 * then only checks that every read and search still gives the same answer
 * in its transaction, and inserts what was recorded (stamping the commit
 * time into meta.lastUpdated and AuditEvent.recorded, chaining the audit
 * hashes). When anything read has changed (or something could not be
 * recorded), reset(ctx) undoes what apply and audit did to ctx and they run
 * again on the writer, as with store_submit(). store_txn_now() is the time
 * of the recording while recording. Resources, searches, outbox additions,
 * audit rows and their activity tallies, site grants and site visibility,
 * and writer steps (store_txn_on_writer) can be recorded; anything else
 * makes the writer do the work. */
void store_submit_prepared(struct store *st, store_apply_fn apply, store_audit_fn audit,
                           store_reset_fn reset, void *ctx, store_done_fn on_done, void *done_ctx);

/* A step of a job that must run on the writer, in the txn, after the writes
 * before it (it reads them: a Subscription's matching reads the version the
 * job just wrote). arg is the copy store_txn_on_writer() took. */
typedef enum gw_code (*store_step_fn)(struct store_txn *txn, const void *arg, struct gw_error *err);
/* Runs step(txn, arg) now when txn is the writer's; while recording
 * (store_submit_prepared), keeps a copy of the arg_len bytes at arg and runs
 * step on the writer when it replays the recording, at this point of it. A
 * step must not depend on ctx's state beyond what arg holds. */
enum gw_code store_txn_on_writer(struct store_txn *txn, store_step_fn step, const void *arg,
                                 size_t arg_len, struct gw_error *err);
/* One piece of bulk work for store_write_all(): as store_write()'s arguments,
 * with its outcome. */
struct store_work {
    store_apply_fn apply; /* may be NULL */
    store_audit_fn audit; /* may be NULL */
    void *ctx;
    enum gw_code rc;     /* set on return: as store_write() would return */
    struct gw_error err; /* why, when rc is not GW_OK */
};

/* Queues the n pieces of work at once and waits until each is committed or
 * failed: the writer takes them as it takes concurrent store_write() calls
 * (max_batch to a commit, each in a savepoint of its own, so one failing
 * undoes only itself). Bulk work waits its turn: no commit_timeout_ms. Returns
 * GW_OK once every piece has its outcome, or GW_E_NOMEM / GW_E_STORE (the
 * store is stopping) when none was queued. */
enum gw_code store_write_all(struct store *st, struct store_work *work, size_t n,
                             struct gw_error *err);

/* The commit time of this txn's batch (epoch ms, never going backwards). */
int64_t store_txn_now(const struct store_txn *txn);

/* Reads and searches inside the txn: they see its own uncommitted writes. */
enum gw_code store_txn_read(struct store_txn *txn, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err);
enum gw_code store_txn_search(struct store_txn *txn, const struct store_query *q,
                              struct store_page *out, struct gw_error *err);

/* Serialises a resource to new NUL-terminated text (free()), NULL on failure. */
typedef char *(*store_serialize_fn)(json_t *resource);

struct store_put {
    const char *type;
    const char *id;
    json_t *resource; /* borrowed; meta.versionId and meta.lastUpdated are set here */
    const char *owner;
    const char *site; /* the site the resource is routed to (granted visibility), or NULL */
    const struct store_index_entry *index;
    size_t n_index;
    long if_match;                /* >0: the current version must be this (else GW_E_CONFLICT) */
    bool create;                  /* the resource must not exist yet (else GW_E_CONFLICT) */
    bool deleted;                 /* records a deletion */
    store_serialize_fn serialize; /* NULL: compact Jansson output */
};

struct store_written {
    long version;
    int64_t last_updated_ms;
    int64_t seq;
};

/* Writes the next version of put->type/put->id. out may be NULL; while
 * recording (store_submit_prepared) it gets the recorded version and time,
 * then the committed ones at replay: it must stay valid until the job is
 * done (a plan's entry), or be NULL. */
enum gw_code store_txn_put(struct store_txn *txn, const struct store_put *put,
                           struct store_written *out, struct gw_error *err);

/* ------------------------------------------------------------ outbox */

/* An outbound HL7 v2 message's life (DESIGN §1, §3):
 *
 *   pending --lease (pull) / send (push)--> leased --AA--> acked
 *      ^                                      |  \--AE/AR--> dead
 *      +-------- lease_until passes ----------+
 *
 * pending: waiting; lease_until unused.   leased: offered to the RIS until
 * lease_until; attempts counts offers.    acked / dead: final, never offered
 * again. The control id never changes across offers. */
enum store_outbox_state {
    STORE_OUTBOX_PENDING,
    STORE_OUTBOX_LEASED,
    STORE_OUTBOX_ACKED,
    STORE_OUTBOX_DEAD
};

struct store_outbox_msg {
    int64_t seq;
    char *control_id; /* MSH-10 */
    char *site;
    char *kind;     /* "order", "cancel", "change" */
    char *ref_type; /* the resource it is about (ServiceRequest) */
    char *ref_id;
    char *message; /* ER7 bytes, NUL-terminated */
    size_t message_len;
    enum store_outbox_state state;
    int64_t lease_until_ms;
    long attempts;
    int64_t created_ms;
    char *last_error;
};
void store_outbox_msg_cleanup(struct store_outbox_msg *m);
void store_outbox_list_free(struct store_outbox_msg *list, size_t n);

struct store_outbox_new {
    const char *control_id;
    const char *site;
    const char *kind;
    const char *ref_type;
    const char *ref_id;
    const char *message;
    size_t message_len;
};

/* Adds a pending message in the txn (same commit as the referral). */
enum gw_code store_txn_outbox_add(struct store_txn *txn, const struct store_outbox_new *m,
                                  struct gw_error *err);
/* Leases up to max pending (or lease-expired) messages of the sites, oldest
 * first, until now + lease_ms. *out is a new array of *n_out messages. */
enum gw_code store_txn_outbox_lease(struct store_txn *txn, const char *const *sites, size_t n_sites,
                                    size_t max, int64_t lease_ms, struct store_outbox_msg **out,
                                    size_t *n_out, struct gw_error *err);
/* Settles a message by control id: ack "AA" → acked, "AE"/"AR" → dead with
 * text. Only messages of the sites (NULL: any) are visible. GW_E_NOTFOUND when
 * no such message; an already settled message is left as it is (*was_final). */
enum gw_code store_txn_outbox_settle(struct store_txn *txn, const char *control_id,
                                     const char *const *sites, size_t n_sites, const char *ack,
                                     const char *text, struct store_outbox_msg *settled,
                                     bool *was_final, struct gw_error *err);
/* Settles as acked ("AA") the messages of the n control ids, as n calls of
 * store_txn_outbox_settle() in that order would, with a few statements for
 * them all: out[i] is the message of control_ids[i] without its text (seq 0
 * when the sites have none by that id), was_final[i] whether it was already
 * acked or dead (or an earlier id of the list settled it). */
enum gw_code store_txn_outbox_accept(struct store_txn *txn, const char *const *control_ids,
                                     size_t n, const char *const *sites, size_t n_sites,
                                     struct store_outbox_msg *out, bool *was_final,
                                     struct gw_error *err);
/* The oldest unfinished message of site (push delivery), GW_E_NOTFOUND when none. */
/* MLLP push leadership (push_lease.c). Takes or renews the lease on pushing
 * site for ttl_ms: *token names this holding (it changes when the lease
 * changes hands), *valid_until_mono_ms is when it ends on gw_mono_ms()'s clock
 * (counted from before the question). GW_E_CONFLICT: another instance holds
 * it. On SQLite always granted. */
enum gw_code store_push_lease(struct store *st, const char *site, long ttl_ms, int64_t *token,
                              int64_t *valid_until_mono_ms, struct gw_error *err);
/* Gives the lease up at once (SIGTERM): another instance takes over at its next try. */
void store_push_release(struct store *st, const char *site, int64_t token);
/* Inside a write: GW_E_CONFLICT unless this process still holds site's lease
 * with token, which then cannot change hands before the commit. */
enum gw_code store_txn_push_fence(struct store_txn *txn, const char *site, int64_t token,
                                  struct gw_error *err);

enum gw_code store_outbox_next(struct store *st, const char *site, struct store_outbox_msg *out,
                               struct gw_error *err);
/* Records a failed delivery attempt (push): attempts+1, last_error. */
enum gw_code store_txn_outbox_attempt(struct store_txn *txn, const char *control_id,
                                      const char *error_text, struct gw_error *err);
/* Messages about ref_type/ref_id, oldest first (for the Task's view). */
enum gw_code store_outbox_for(struct store *st, const char *ref_type, const char *ref_id,
                              struct store_outbox_msg **out, size_t *n_out, struct gw_error *err);

struct store_outbox_stats {
    char *site;
    long pending, leased, dead; /* acked messages are not counted: they only grow */
    int64_t oldest_pending_ms;  /* created time of the oldest unfinished one, 0 when none */
};
/* Per-site counts for /metrics, from the indexes of unfinished and dead
 * messages (the cost follows the backlog, not the store). *out is a new
 * array (free each site, then it). */
enum gw_code store_outbox_stats(struct store *st, struct store_outbox_stats **out, size_t *n_out,
                                struct gw_error *err);

/* ------------------------------------------------------------ subscription notifications */

/* What matching and delivery need to know of a Subscription, written in the
 * same commit as each version of it (the resource itself is a versioned
 * resource like any other). */
struct store_subscription {
    char *id;
    char *owner;    /* the subscribing organisation */
    char *type;     /* the resource type its criteria names */
    char *criteria; /* as written: "Task?status=completed" */
    int64_t end_ms; /* Subscription.end, 0 when none */
    bool enabled;   /* false while its status is off */
    long events;    /* event notifications queued so far (events-since-subscription-start) */
};
void store_subscription_cleanup(struct store_subscription *s);
void store_subscription_list_free(struct store_subscription *list, size_t n);

/* Creates or replaces the row of s->id in the txn (events is kept as stored). */
enum gw_code store_txn_subscription_put(struct store_txn *txn, const struct store_subscription *s,
                                        struct gw_error *err);
/* Removes the row of id and drops its pending notifications (a deletion). */
enum gw_code store_txn_subscription_remove(struct store_txn *txn, const char *id,
                                           struct gw_error *err);
/* The rows owned by owner (only those of type, unless NULL), enabled or not,
 * in id order. *out is a new array of *n_out rows. */
enum gw_code store_txn_subscriptions_of(struct store_txn *txn, const char *owner, const char *type,
                                        struct store_subscription **out, size_t *n_out,
                                        struct gw_error *err);
/* The row of id (reader connection); GW_E_NOTFOUND when there is none. */
enum gw_code store_subscription_get(struct store *st, const char *id,
                                    struct store_subscription *out, struct gw_error *err);

/* A notification's life (one row per notification, never deleted):
 *
 *   pending --delivered (2xx)--> delivered
 *      +--attempt failed: attempts + 1, next_at later (stays pending)
 *      +--the last allowed attempt failed--> dead        (a dead letter)
 *      +--its Subscription went off or was deleted--> dropped
 *
 * Order: only the oldest pending notification (lowest position) of a
 * subscription is ever offered, so a subscription's notifications go out in
 * the order their changes committed, each after the one before it settled. */
enum store_note_state {
    STORE_NOTE_PENDING,
    STORE_NOTE_DELIVERED,
    STORE_NOTE_DEAD,
    STORE_NOTE_DROPPED
};
enum store_note_kind { STORE_NOTE_HANDSHAKE, STORE_NOTE_EVENT };

struct store_note {
    int64_t seq;
    char *subscription;
    long position; /* order within the subscription, from 1 */
    long event;    /* events: the event number; handshakes: events queued before it */
    enum store_note_kind kind;
    char *focus_type; /* events: the resource version that changed */
    char *focus_id;
    long focus_version;
    enum store_note_state state;
    long attempts;
    int64_t next_at_ms;
    int64_t created_ms; /* the commit time of the change */
    char *last_error;
};
void store_note_cleanup(struct store_note *n);
void store_note_list_free(struct store_note *list, size_t n);

struct store_note_new {
    const char *subscription;
    enum store_note_kind kind;
    const char *focus_type;
    const char *focus_id;
    long focus_version;
};

/* Queues a notification in the txn (the commit of the change it reports).
 * An event takes its subscription's next event number. *added (may be NULL)
 * receives the row as written. GW_E_NOTFOUND when the subscription has no row. */
enum gw_code store_txn_note_add(struct store_txn *txn, const struct store_note_new *n,
                                struct store_note *added, struct gw_error *err);
/* Drops the pending notifications of subscription (its status went off). */
enum gw_code store_txn_note_drop(struct store_txn *txn, const char *subscription,
                                 struct gw_error *err);
/* The oldest pending notification of each subscription, soonest due first,
 * at most max (reader connection). *out is a new array of *n_out rows. */
enum gw_code store_note_heads(struct store *st, size_t max, struct store_note **out, size_t *n_out,
                              struct gw_error *err);
/* The pending notifications of subscription, oldest first, at most max
 * (reader connection): what one delivery may carry together. */
enum gw_code store_note_pending(struct store *st, const char *subscription, size_t max,
                                struct store_note **out, size_t *n_out, struct gw_error *err);
/* Records an attempt on the notification seq: attempts + 1, then state
 * (STORE_NOTE_PENDING with next_at_ms for a retry), error (may be NULL).
 * *changed is false, and nothing written, when it was no longer pending. */
enum gw_code store_txn_note_settle(struct store_txn *txn, int64_t seq, enum store_note_state state,
                                   int64_t next_at_ms, const char *error, bool *changed,
                                   struct gw_error *err);

struct store_note_stats {
    char *subscription;
    long pending, dead;
    int64_t oldest_pending_ms; /* created time of the oldest pending one, 0 when none */
};
/* Pending and dead notifications of every subscription, for /metrics. *out
 * is a new array (free each subscription, then it). */
enum gw_code store_note_stats(struct store *st, struct store_note_stats **out, size_t *n_out,
                              struct gw_error *err);

/* Waits until a commit queued, settled or dropped notifications since the
 * change count *seen, or store_note_kick(), or timeout_ms; *seen becomes the
 * current count. Returns at once when *seen is already behind. */
void store_note_wait(struct store *st, uint64_t *seen, long timeout_ms);
/* Wakes every store_note_wait() (e.g. to stop). */
void store_note_kick(struct store *st);

/* ------------------------------------------------------------ inbound dedupe */

/* Looks up the ACK already sent to client (the authenticated identity that
 * sent the message) for (sender, control_id): GW_OK and a new *ack (free())
 * when seen, GW_E_NOTFOUND otherwise. Another client's messages are never seen. */
enum gw_code store_txn_inbound_seen(struct store_txn *txn, const char *client, const char *sender,
                                    const char *control_id, char **ack, struct gw_error *err);
/* Records the ACK answered to client for (sender, control_id) in the txn. */
enum gw_code store_txn_inbound_record(struct store_txn *txn, const char *client, const char *sender,
                                      const char *control_id, const char *ack,
                                      struct gw_error *err);

/* ------------------------------------------------------------ site visibility */

/* Which RIS sites may see a resource (resource_sites): a resource written
 * with a site (store_put.site: a referral, its Task, Appointment and
 * DiagnosticReport) is visible to that site; any other resource only once a
 * referral of a site references it (store_txn_site_grant, in the referral's
 * commit). Grants are never withdrawn. store_query.sites filters on them. */

/* Makes type/id visible to site inside txn (granting twice is harmless). */
enum gw_code store_txn_site_grant(struct store_txn *txn, const char *type, const char *id,
                                  const char *site, struct gw_error *err);
/* Sets *visible when type/id is visible to one of the n_sites sites. */
enum gw_code store_site_visible(struct store *st, const char *type, const char *id,
                                const char *const *sites, size_t n_sites, bool *visible,
                                struct gw_error *err);
/* As store_site_visible, inside txn (it sees the txn's own grants). */
enum gw_code store_txn_site_visible(struct store_txn *txn, const char *type, const char *id,
                                    const char *const *sites, size_t n_sites, bool *visible,
                                    struct gw_error *err);

/* ------------------------------------------------------------ audit rows */

/* Appends an AuditEvent: its id and canonical JSON text, with the index
 * entries for searching. The row's hash is SHA-256 over the previous row's
 * hash and text (keyed with HMAC when audit_hmac_key is set). */
enum gw_code store_txn_audit_append(struct store_txn *txn, const char *id, int64_t recorded_ms,
                                    const char *canonical, const struct store_index_entry *index,
                                    size_t n_index, struct gw_error *err);

struct store_audit_row {
    int64_t seq;
    char *id;
    int64_t recorded_ms;
    char *json;
    char *prev_hash;
    char *hash;
};
/* Calls fn for each audit row in order, from seq > after, with recorded in
 * [since_ms, until_ms) (0: unbounded), streaming (constant memory). fn returns
 * false to stop. Rows are borrowed for the call. */
typedef bool (*store_audit_row_fn)(const struct store_audit_row *row, void *ctx);
enum gw_code store_audit_scan(struct store *st, int64_t since_ms, int64_t until_ms,
                              store_audit_row_fn fn, void *ctx, struct gw_error *err);
/* The chain hash: hex SHA-256 (or HMAC-SHA-256 with key) of prev_hash || text. */
void store_audit_hash(const char *key, const char *prev_hash, const char *text, char out[65]);
/* The hash a chain starts from. */
#define STORE_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* ------------------------------------------------------------ backup */

struct store_backup_info {
    int schema_version;  /* of the copy (PRAGMA user_version) */
    int64_t bytes;       /* size of the copy */
    int64_t audit_seq;   /* the copy's last audit event, 0 when it has none */
    char audit_hash[65]; /* that event's chain hash, "" when none */
    int64_t elapsed_ms;
};

/* Copies a consistent snapshot of the store to the file path while the store
 * keeps serving (writers are not blocked): every commit that returned before
 * the copy began is in it. The copy is a single self-contained file (mode
 * 0600), checked, fsynced and put in place atomically. An existing path is
 * refused (GW_E_CONFLICT) unless overwrite; a folder or the store itself is
 * GW_E_INPUT; file system failures GW_E_IO; a database refusal GW_E_STORE.
 * On failure path is left as it was. Blocks for the time of the copy. */
enum gw_code store_backup(struct store *st, const char *path, bool overwrite,
                          struct store_backup_info *info, struct gw_error *err);

/* ------------------------------------------------------------ audit activity */

/* An hourly roll-up of the audit log, kept in the same commits as its rows,
 * so that pictures of a period cost the hours and clients in it, never the
 * events: (hour, client or address, class) -> count, last time. */
#define STORE_ACTIVITY_CLASSES 4 /* the caller's classes are 0..3 */
#define STORE_HOUR_MS          3600000

/* Counts n events of class cls by client (or by address when client is "")
 * in the hour of recorded_ms, inside txn. */
enum gw_code store_txn_audit_tally(struct store_txn *txn, int64_t recorded_ms, const char *client,
                                   const char *address, int cls, long n, struct gw_error *err);

struct store_activity_hour {
    int64_t hour_ms; /* start of the hour, epoch ms (UTC) */
    long n[STORE_ACTIVITY_CLASSES];
};
struct store_activity_client {
    char *client;  /* "" for unidentified clients, then address says who */
    char *address; /* "" for identified clients */
    long n[STORE_ACTIVITY_CLASSES];
    int64_t last_ms; /* the last event's time */
};
struct store_activity {
    struct store_activity_hour *hours; /* hours with events, in order */
    size_t n_hours;
    struct store_activity_client *clients; /* the busiest first */
    size_t n_clients;
    bool more_clients; /* more than max_clients were active */
};
/* The roll-up of the hours in [since_ms, until_ms), widened to whole hours,
 * with at most max_clients clients. GW_E_LIMIT past 400 days. */
enum gw_code store_audit_activity(struct store *st, int64_t since_ms, int64_t until_ms,
                                  size_t max_clients, struct store_activity *out,
                                  struct gw_error *err);
void store_activity_cleanup(struct store_activity *a);

/* ------------------------------------------------------------ cursors (exports) */

struct store_cursor;
/* Opens a cursor over every match of q, in q's order (offset, count and
 * want_total ignored), on a reader connection held until it is closed: one
 * consistent snapshot, one row in memory at a time. The strings q points to
 * are bound as they are: they must outlive the cursor. On GW_OK *out is new. */
enum gw_code store_search_cursor(struct store *st, const struct store_query *q,
                                 struct store_cursor **out, struct gw_error *err);
/* The next match's stored JSON: GW_OK with *json (NUL-terminated, *len bytes)
 * borrowed until the next call; GW_E_NOTFOUND after the last one. */
enum gw_code store_cursor_next(struct store_cursor *c, const char **json, size_t *len,
                               struct gw_error *err);
/* Releases the cursor and its connection. Accepts NULL. */
void store_cursor_close(struct store_cursor *c);

#endif
