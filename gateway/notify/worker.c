/* worker.c -- the delivery threads: each takes the oldest pending
 * notification of a subscription no other thread holds, sends it, and
 * records the attempt (outbox row, Subscription status, AuditEvent) in one
 * commit before that subscription's next notification may go.
 *
 * Claiming: a thread reads the completion count, lists the pending heads,
 * and claims one only if no attempt was recorded meanwhile (else the list
 * may name a notification already delivered, and it lists again). A head is
 * held in in_flight from its claim until its attempt is committed, so one
 * subscription never has two attempts at once and its order holds.
 * Status: a delivery makes the Subscription active (clearing error); a
 * failure once its attempts reach subscription_error_after, or a dead
 * letter, makes it error with the reason. Each change is a new version.
 */
#include "notify/notify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "fhir/fhir.h"

#define NOTIFY_MAX_BODY (64 * 1024 * 1024)
#define NOTIFY_LABEL    160

/* One attempt on one notification, from the claim to its record. */
struct attempt {
    struct notify *n;
    const struct store_note *note;
    bool dropped;   /* the Subscription is gone or off: nothing was sent */
    bool delivered; /* a 2xx answer */
    long attempts;  /* the notification's attempts, this one included */
    enum store_note_state next;
    int64_t next_at_ms;
    char why[GW_ERROR_MSG_MAX];
    char became[16]; /* the status this attempt gave the Subscription, "" none */
    char peer[300];  /* host:port */
    char path[NOTIFY_MAX_URL + 16];
    char sub_ref[160], focus_ref[200], note_name[64], focus_name[40];
    char patient[160];
};

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ------------------------------------------------------------ metrics */

static bool sub_label(char *out, size_t cap, const char *sub, const char *extra)
{
    size_t i;

    for (i = 0; sub[i]; i++)
        if (!((sub[i] >= 'a' && sub[i] <= 'z') || (sub[i] >= 'A' && sub[i] <= 'Z') ||
              (sub[i] >= '0' && sub[i] <= '9') || sub[i] == '-' || sub[i] == '.'))
            return false; /* a FHIR id never needs escaping */
    return snprintf(out, cap, "subscription=\"%s\"%s", sub, extra ? extra : "") < (int)cap;
}

static void count_attempt(const struct attempt *a)
{
    char labels[NOTIFY_LABEL], extra[40];
    const char *result = a->delivered                 ? "delivered"
                         : a->next == STORE_NOTE_DEAD ? "dead"
                                                      : "failed";

    snprintf(extra, sizeof extra, ",result=\"%s\"", result);
    if (sub_label(labels, sizeof labels, a->note->subscription, extra))
        gw_metric_add("gateway_subscription_deliveries_total", labels, 1);
    if (a->delivered && a->note->kind == STORE_NOTE_EVENT &&
        sub_label(labels, sizeof labels, a->note->subscription, NULL))
        gw_metric_observe("gateway_subscription_latency_seconds", labels,
                          (double)(gw_now_ms() - a->note->created_ms) / 1000.0);
}

static void set_gauges(const char *sub, long depth, double oldest_s, long dead)
{
    char labels[NOTIFY_LABEL];

    if (!sub_label(labels, sizeof labels, sub, NULL))
        return;
    gw_metric_set("gateway_subscription_queue_depth", labels, (double)depth);
    gw_metric_set("gateway_subscription_oldest_pending_seconds", labels, oldest_s);
    gw_metric_set("gateway_subscription_dead_letters", labels, (double)dead);
}

/* Runs at each /metrics render: the queue of every subscription that has one. */
static void collect(void *ctx)
{
    struct notify *n = ctx;
    struct store_note_stats *stats = NULL;
    struct gw_error err;
    size_t i, count = 0;
    int64_t now = gw_now_ms();
    char **names;

    if (store_note_stats(n->store, &stats, &count, &err) != GW_OK) {
        gw_log(GW_LOG_WARN, "notify-metrics-failed", "notification statistics: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&n->gauge_lock);
    for (i = 0; i < n->n_gauged; i++) /* subscriptions whose queue emptied */
        set_gauges(n->gauged[i], 0, 0, 0);
    for (i = 0; i < n->n_gauged; i++)
        free(n->gauged[i]);
    free(n->gauged);
    names = calloc(count + 1, sizeof *names);
    n->gauged = names;
    n->n_gauged = 0;
    for (i = 0; i < count; i++) {
        double oldest = stats[i].oldest_pending_ms && now > stats[i].oldest_pending_ms
                            ? (double)(now - stats[i].oldest_pending_ms) / 1000.0
                            : 0;

        set_gauges(stats[i].subscription, stats[i].pending, oldest, stats[i].dead);
        if (names)
            names[n->n_gauged++] = stats[i].subscription;
        else
            free(stats[i].subscription);
    }
    pthread_mutex_unlock(&n->gauge_lock);
    free(stats);
}

static void describe_metrics(void)
{
    static const double latency[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

    gw_metric_describe(
        "gateway_subscription_deliveries_total", "counter",
        "notification attempts by result (delivered, failed, dead), per subscription");
    gw_metric_histogram("gateway_subscription_latency_seconds",
                        "change committed to notification delivered, per subscription", latency,
                        sizeof latency / sizeof latency[0]);
    gw_metric_describe("gateway_subscription_queue_depth", "gauge",
                       "notifications waiting to be delivered, per subscription");
    gw_metric_describe("gateway_subscription_oldest_pending_seconds", "gauge",
                       "age of the oldest notification waiting, per subscription");
    gw_metric_describe("gateway_subscription_dead_letters", "gauge",
                       "notifications given up after subscription_max_attempts, per subscription");
}

/* ------------------------------------------------------------ recording */

/* Moves the Subscription to status (with error text, or without error). */
static enum gw_code set_status(struct attempt *a, struct store_txn *txn, const char *status,
                               const char *error, struct gw_error *err)
{
    struct store_resource row;
    json_t *sub;
    const char *now, *old_error;
    enum gw_code rc = store_txn_read(txn, "Subscription", a->note->subscription, 0, &row, err);

    if (rc == GW_E_NOTFOUND)
        return GW_OK;
    if (rc)
        return rc;
    sub = row.deleted ? NULL : json_loads(row.json, 0, NULL);
    now = str(sub, "status");
    old_error = str(sub, "error");
    if (!sub || !now || strcmp(now, "off") == 0 ||
        (strcmp(now, status) == 0 &&
         (error ? old_error && strcmp(old_error, error) == 0 : !old_error))) {
        json_decref(sub);
        store_resource_cleanup(&row);
        return GW_OK;
    }
    if (!error)
        json_object_del(sub, "error");
    if (json_object_set_new(sub, "status", json_string(status)) ||
        (error && json_object_set_new(sub, "error", json_string(error))))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a Subscription's status");
    if (!rc)
        rc = a->n->hooks.put(a->n->hooks.ctx, txn, sub, row.owner, NULL, row.version, NULL, err);
    if (!rc)
        snprintf(a->became, sizeof a->became, "%s", status);
    json_decref(sub);
    store_resource_cleanup(&row);
    return rc;
}

static enum gw_code record_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct attempt *a = ctx;
    const struct config *cfg = a->n->cfg;
    char error[GW_ERROR_MSG_MAX + 120];
    bool changed;
    enum gw_code rc;

    rc = store_txn_note_settle(txn, a->note->seq, a->dropped ? STORE_NOTE_DROPPED : a->next,
                               a->next_at_ms, a->delivered ? NULL : a->why, &changed, err);
    if (rc || !changed || a->dropped)
        return rc;
    if (a->delivered)
        return set_status(a, txn, "active", NULL, err);
    if (a->next == STORE_NOTE_DEAD)
        gw_format(error, sizeof error, "notification %ld given up after %ld attempts: %s",
                  a->note->position, a->attempts, a->why);
    else
        gw_format(error, sizeof error, "%ld failed attempts to deliver notification %ld: %s",
                  a->attempts, a->note->position, a->why);
    if (a->next == STORE_NOTE_DEAD || a->attempts >= cfg->subscription_error_after)
        return set_status(a, txn, "error", error, err);
    return GW_OK;
}

static enum gw_code record_audit(struct store_txn *txn, void *ctx, enum gw_code outcome,
                                 const struct gw_error *why, struct gw_error *err)
{
    struct attempt *a = ctx;
    struct audit_event ev;
    char desc[GW_ERROR_MSG_MAX + 80];

    memset(&ev, 0, sizeof ev);
    ev.kind = AUDIT_NOTIFY;
    ev.subtype = a->note->kind == STORE_NOTE_EVENT ? "event-notification" : "handshake";
    ev.action = 'E';
    ev.peer = a->peer[0] ? a->peer : NULL;
    ev.actor_name = "subscriber endpoint";
    ev.path = a->path[0] ? a->path : NULL;
    ev.request_id = a->note_name;
    ev.patient = a->patient[0] ? a->patient : NULL;
    ev.outcome = outcome                      ? audit_outcome_of(outcome)
                 : a->delivered || a->dropped ? AUDIT_SUCCESS
                 : a->next == STORE_NOTE_DEAD ? AUDIT_SERIOUS_FAILURE
                                              : AUDIT_MINOR_FAILURE;
    gw_format(desc, sizeof desc, "%s%s%s%s",
              a->dropped ? "not sent: the Subscription is off or deleted" : a->why,
              a->next == STORE_NOTE_DEAD && !a->dropped ? " (dead letter)" : "",
              a->became[0] ? "; Subscription now " : "", a->became);
    ev.outcome_desc = outcome ? why->msg : (ev.outcome || a->became[0] || a->dropped) ? desc : NULL;
    audit_add_entity(&ev, a->sub_ref, "4", "2", a->note_name);
    if (a->focus_ref[0])
        audit_add_entity(&ev, a->focus_ref, "4", "2", a->focus_name);
    return audit_record(txn, &ev, err);
}

/* ------------------------------------------------------------ one attempt */

/* The body: nothing for a ping, else the notification Bundle as JSON. */
static enum gw_code build_body(struct attempt *a, json_t *sub, enum notify_content content,
                               json_t *focus, struct gw_buf *body, struct gw_error *err)
{
    const struct store_note *note = a->note;
    struct notify_event ev = {.base = a->n->hooks.base(a->n->hooks.ctx),
                              .subscription_id = note->subscription,
                              .status = str(sub, "status"),
                              .kind = note->kind,
                              .events = note->event,
                              .timestamp_ms = note->created_ms,
                              .focus_type = note->focus_type,
                              .focus_id = note->focus_id,
                              .focus_version = note->focus_version,
                              .focus = focus,
                              .content = content,
                              .position = note->position};
    json_t *bundle;
    enum gw_code rc;

    if (content == NOTIFY_PING)
        return GW_OK;
    bundle = notify_bundle_build(&ev);
    if (!bundle)
        return gw_fail(err, GW_E_NOMEM, "no memory for a notification");
    rc = fhir_write(FHIR_FORMAT_JSON, bundle, 0, body, err);
    json_decref(bundle);
    return rc;
}

/* The focus version of an event (a new reference), noting its patient. */
static json_t *load_focus(struct attempt *a)
{
    struct store_resource row;
    const char *patient;
    json_t *res;

    if (a->note->kind != STORE_NOTE_EVENT ||
        store_read(a->n->store, a->note->focus_type, a->note->focus_id, a->note->focus_version,
                   &row, NULL) != GW_OK)
        return NULL;
    res = json_loads(row.json, 0, NULL);
    store_resource_cleanup(&row);
    patient = str(json_object_get(res, "for"), "reference");
    if (!patient)
        patient = str(json_object_get(res, "subject"), "reference");
    if (patient && strncmp(patient, "Patient/", 8) == 0)
        snprintf(a->patient, sizeof a->patient, "%s", patient);
    return res;
}

/* The channel headers of sub, borrowed from it. */
static size_t channel_headers(json_t *sub, const char *out[NOTIFY_MAX_HEADERS])
{
    json_t *v;
    size_t i, n = 0;

    json_array_foreach (json_object_get(json_object_get(sub, "channel"), "header"), i, v)
        if (json_is_string(v) && n < NOTIFY_MAX_HEADERS)
            out[n++] = json_string_value(v);
    return n;
}

static SSL_CTX *tls_in_force(struct notify *n)
{
    SSL_CTX *tls;

    pthread_mutex_lock(&n->lock);
    tls = n->tls;
    if (tls)
        SSL_CTX_up_ref(tls);
    pthread_mutex_unlock(&n->lock);
    return tls;
}

/* Sends the notification to sub's endpoint; sets a->delivered or a->why. */
static void send_to(struct attempt *a, json_t *sub)
{
    const char *endpoint = str(json_object_get(sub, "channel"), "endpoint");
    const char *headers[NOTIFY_MAX_HEADERS];
    struct notify_post post = {.connect_timeout_ms = a->n->cfg->subscription_connect_timeout_ms,
                               .timeout_ms = a->n->cfg->subscription_timeout_ms};
    struct notify_url url;
    enum notify_content content;
    struct gw_buf body;
    struct gw_error err;
    json_t *focus = load_focus(a);
    SSL_CTX *tls = NULL;
    int status = 0;
    enum gw_code rc;

    gw_buf_init(&body, NOTIFY_MAX_BODY);
    rc = notify_url_parse(endpoint, &url, &err);
    if (!rc) {
        snprintf(a->peer, sizeof a->peer, "%s:%d", url.host, url.port);
        gw_format(a->path, sizeof a->path, "POST https://%s%.*s", a->peer,
                  (int)strcspn(url.target, "?"), url.target); /* the query may hold a secret */
        rc = notify_endpoint_check(a->n, endpoint, &err);
    }
    if (!rc)
        rc = notify_content_of(sub, &content, &err);
    if (!rc && content == NOTIFY_FULL_RESOURCE && a->note->kind == STORE_NOTE_EVENT && !focus)
        rc = gw_fail(&err, GW_E_NOTFOUND, "the changed resource version cannot be read");
    if (!rc)
        rc = build_body(a, sub, content, focus, &body, &err);
    if (!rc) {
        post.url = &url;
        post.headers = headers;
        post.n_headers = channel_headers(sub, headers);
        post.body = content == NOTIFY_PING ? NULL : body.data;
        post.body_len = content == NOTIFY_PING ? 0 : body.len;
        tls = tls_in_force(a->n);
        rc = notify_https_post(tls, &post, &status, &err);
    }
    a->delivered = rc == GW_OK && status >= 200 && status < 300;
    if (rc)
        gw_format(a->why, sizeof a->why, "%s", err.msg);
    else if (!a->delivered)
        gw_format(a->why, sizeof a->why, "the endpoint answered %d%s", status,
                  status >= 300 && status < 400 ? " (redirects are not followed)" : "");
    SSL_CTX_free(tls);
    gw_buf_cleanup(&body);
    json_decref(focus);
}

/* What follows a failure: a retry later, or the dead letter. */
static void plan_next(struct attempt *a)
{
    const struct config *cfg = a->n->cfg;

    a->attempts = a->note->attempts + 1;
    a->next = STORE_NOTE_DELIVERED;
    a->next_at_ms = gw_now_ms();
    if (a->delivered || a->dropped)
        return;
    a->next = a->attempts >= cfg->subscription_max_attempts ? STORE_NOTE_DEAD : STORE_NOTE_PENDING;
    a->next_at_ms += notify_backoff_ms(a->attempts, cfg->subscription_backoff_min_ms,
                                       cfg->subscription_backoff_max_ms);
}

static void deliver(struct notify *n, const struct store_note *note)
{
    struct attempt a = {.n = n, .note = note};
    struct store_resource row;
    struct gw_error err;
    json_t *sub = NULL;

    snprintf(a.sub_ref, sizeof a.sub_ref, "Subscription/%s", note->subscription);
    if (note->kind == STORE_NOTE_EVENT) {
        snprintf(a.note_name, sizeof a.note_name, "event %ld", note->event);
        snprintf(a.focus_ref, sizeof a.focus_ref, "%s/%s", note->focus_type, note->focus_id);
        snprintf(a.focus_name, sizeof a.focus_name, "version %ld", note->focus_version);
    } else {
        snprintf(a.note_name, sizeof a.note_name, "handshake %ld", note->position);
    }
    if (store_read(n->store, "Subscription", note->subscription, 0, &row, &err) == GW_OK) {
        sub = row.deleted ? NULL : json_loads(row.json, 0, NULL);
        store_resource_cleanup(&row);
    }
    a.dropped = !sub || !str(sub, "status") || strcmp(str(sub, "status"), "off") == 0;
    if (!a.dropped)
        send_to(&a, sub);
    plan_next(&a);
    if (store_write(n->store, record_apply, record_audit, &a, &err) != GW_OK) {
        gw_log(GW_LOG_ERROR, "notify-record-failed", "%s %s: %s", a.sub_ref, a.note_name, err.msg);
        gw_sleep_ms(NOTIFY_IDLE_WAIT_MS); /* the store is failing: do not spin on it */
    } else if (!a.dropped) {
        count_attempt(&a);
        if (!a.delivered)
            gw_log(GW_LOG_WARN, "notify-retry", "%s %s: %s (%s)", a.sub_ref, a.note_name, a.why,
                   a.next == STORE_NOTE_DEAD ? "dead letter" : "will retry");
    }
    json_decref(sub);
}

/* ------------------------------------------------------------ the threads */

enum { CLAIM_NONE = -1, CLAIM_AGAIN = -2 };

static bool held(struct notify *n, const char *sub)
{
    size_t i;

    for (i = 0; i < NOTIFY_MAX_WORKERS; i++) /* every slot: threads may still be starting */
        if (n->in_flight[i] && strcmp(n->in_flight[i], sub) == 0)
            return true;
    return false;
}

/* Claims the first due head no thread holds; *wait_ms is lowered to the
 * time until the next one falls due. */
static int claim(struct notify *n, uint64_t gen, const struct store_note *heads, size_t n_heads,
                 size_t slot, long *wait_ms)
{
    int64_t now = gw_now_ms();
    size_t i;
    int got = CLAIM_NONE;

    pthread_mutex_lock(&n->lock);
    if (gen != n->completions) {
        pthread_mutex_unlock(&n->lock);
        return CLAIM_AGAIN;
    }
    for (i = 0; i < n_heads && got == CLAIM_NONE; i++) {
        if (held(n, heads[i].subscription))
            continue;
        if (heads[i].next_at_ms <= now) {
            n->in_flight[slot] = heads[i].subscription;
            got = (int)i;
        } else if (heads[i].next_at_ms - now < *wait_ms) {
            *wait_ms = (long)(heads[i].next_at_ms - now);
        }
    }
    pthread_mutex_unlock(&n->lock);
    return got;
}

static void release(struct notify *n, size_t slot)
{
    pthread_mutex_lock(&n->lock);
    n->in_flight[slot] = NULL;
    n->completions++;
    pthread_mutex_unlock(&n->lock);
}

struct worker_arg {
    struct notify *n;
    size_t slot;
};

static bool stopping(struct notify *n, uint64_t *gen)
{
    bool stop;

    pthread_mutex_lock(&n->lock);
    stop = n->stopping;
    *gen = n->completions;
    pthread_mutex_unlock(&n->lock);
    return stop;
}

static void *worker_main(void *arg)
{
    struct notify *n = ((struct worker_arg *)arg)->n;
    size_t slot = ((struct worker_arg *)arg)->slot;
    uint64_t seen = 0, gen;

    free(arg);
    while (!stopping(n, &gen)) {
        struct store_note *heads = NULL;
        size_t n_heads = 0;
        long wait_ms = NOTIFY_IDLE_WAIT_MS;
        struct gw_error err;
        int got = CLAIM_NONE;

        if (store_note_heads(n->store, NOTIFY_HEADS, &heads, &n_heads, &err) != GW_OK)
            gw_log(GW_LOG_ERROR, "notify-outbox-failed", "%s", err.msg);
        else
            got = claim(n, gen, heads, n_heads, slot, &wait_ms);
        if (got >= 0) {
            deliver(n, &heads[got]);
            release(n, slot);
        }
        store_note_list_free(heads, n_heads);
        if (got == CLAIM_NONE)
            store_note_wait(n->store, &seen, wait_ms);
    }
    return NULL;
}

/* ------------------------------------------------------------ life cycle */

enum gw_code notify_create(const struct config *cfg, struct store *store,
                           const struct notify_hooks *hooks, struct notify **out,
                           struct gw_error *err)
{
    struct notify *n;
    enum gw_code rc;

    *out = NULL;
    if (!cfg || !store || !hooks || !hooks->put || !hooks->base)
        return gw_fail(err, GW_E_INTERNAL, "notifications need a config, a store and hooks");
    rc = notify_allow_check(cfg->subscription_endpoints, err);
    if (rc)
        return rc;
    n = calloc(1, sizeof *n);
    if (!n)
        return gw_fail(err, GW_E_NOMEM, "no memory for notifications");
    n->cfg = cfg;
    n->store = store;
    n->hooks = *hooks;
    pthread_mutex_init(&n->lock, NULL);
    pthread_mutex_init(&n->gauge_lock, NULL);
    n->allow = gw_strdup(cfg->subscription_endpoints);
    rc = n->allow ? GW_OK : gw_fail(err, GW_E_NOMEM, "no memory for notifications");
    if (!rc && *cfg->subscription_endpoints)
        rc = notify_tls_load(cfg, &n->tls, err);
    if (rc) {
        notify_destroy(n);
        return rc;
    }
    describe_metrics();
    gw_metric_add_collector(collect, n);
    n->collector_added = true;
    *out = n;
    return GW_OK;
}

enum gw_code notify_start(struct notify *n, struct gw_error *err)
{
    long i;

    for (i = 0; i < n->cfg->subscription_workers && i < NOTIFY_MAX_WORKERS; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);

        if (!arg)
            return gw_fail(err, GW_E_NOMEM, "no memory for a delivery thread");
        *arg = (struct worker_arg){n, n->n_threads};
        if (pthread_create(&n->threads[n->n_threads], NULL, worker_main, arg) != 0) {
            free(arg);
            return gw_fail(err, GW_E_INTERNAL, "cannot start a delivery thread");
        }
        n->n_threads++;
    }
    gw_log(GW_LOG_INFO, "notify-started", "%zu delivery threads, endpoints allowed: %s",
           n->n_threads, *n->allow ? n->allow : "none");
    return GW_OK;
}

void notify_destroy(struct notify *n)
{
    size_t i;

    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stopping = true;
    pthread_mutex_unlock(&n->lock);
    store_note_kick(n->store);
    for (i = 0; i < n->n_threads; i++)
        pthread_join(n->threads[i], NULL);
    if (n->collector_added)
        gw_metric_remove_collector(collect, n);
    for (i = 0; i < n->n_gauged; i++)
        free(n->gauged[i]);
    free(n->gauged);
    SSL_CTX_free(n->tls);
    free(n->allow);
    pthread_mutex_destroy(&n->lock);
    pthread_mutex_destroy(&n->gauge_lock);
    free(n);
}

enum gw_code notify_reload(struct notify *n, const struct config *cfg, struct gw_error *err)
{
    SSL_CTX *tls = NULL;
    char *allow;
    enum gw_code rc = notify_allow_check(cfg->subscription_endpoints, err);

    if (!rc && *cfg->subscription_endpoints)
        rc = notify_tls_load(cfg, &tls, err);
    if (rc)
        return rc;
    allow = gw_strdup(cfg->subscription_endpoints);
    if (!allow) {
        SSL_CTX_free(tls);
        return gw_fail(err, GW_E_NOMEM, "no memory for the allow-list");
    }
    pthread_mutex_lock(&n->lock);
    free(n->allow);
    n->allow = allow;
    SSL_CTX_free(n->tls);
    n->tls = tls;
    pthread_mutex_unlock(&n->lock);
    return GW_OK;
}

enum gw_code notify_endpoint_check(struct notify *n, const char *endpoint, struct gw_error *err)
{
    struct notify_url url;
    bool allowed;
    enum gw_code rc = notify_url_parse(endpoint, &url, err);

    if (rc)
        return rc;
    pthread_mutex_lock(&n->lock);
    allowed = notify_url_allowed(&url, n->allow);
    pthread_mutex_unlock(&n->lock);
    if (!allowed)
        return gw_fail(err, GW_E_DENIED,
                       "the endpoint %s:%d%.*s is not on this gateway's allow-list "
                       "(subscription_endpoints)",
                       url.host, url.port, (int)strcspn(url.target, "?"), url.target);
    return GW_OK;
}
