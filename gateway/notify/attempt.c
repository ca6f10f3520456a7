/* attempt.c -- one delivery: what goes (a handshake alone, or the claimed
 * event with the events queued behind it, up to subscription_max_batch), sending
 * it, and recording the outcome of every notification it carried, the
 * Subscription's status and one AuditEvent in one commit.
 *
 * Status: a delivery makes the Subscription active (clearing error); a
 * failure once the first notification's attempts reach
 * subscription_error_after, or a dead letter, makes it error with the
 * reason. Each status change is a new version of the Subscription. A
 * notification is dead once its own attempts reach subscription_max_attempts.
 */
#include "notify/notify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "fhir/fhir.h"

#define NOTIFY_MAX_BODY    (64 * 1024 * 1024)
#define NOTIFY_LABEL       160
#define NOTIFY_AUDIT_FOCUS (AUDIT_MAX_ENTITIES - 2) /* focus entities named per AuditEvent */

/* One attempt, from the claim to its record. */
struct attempt {
    struct notify *n;
    const struct store_note *head;  /* the claimed notification */
    const struct store_note *batch; /* what goes, head first */
    size_t n_batch;                 /* notifications sent */
    struct store_note *list;        /* the listing batch points into (owned) */
    size_t n_list;
    json_t **focus;     /* each event's version (owned), or NULL */
    bool dropped;       /* the Subscription is gone or off: nothing was sent */
    bool delivered;     /* a 2xx answer */
    long attempts;      /* head's attempts, this one included */
    int64_t next_at_ms; /* a retry's time */
    bool dead;          /* head was given up */
    char why[GW_ERROR_MSG_MAX];
    char became[16]; /* the status this attempt gave the Subscription, "" none */
    char peer[300];  /* host:port */
    char path[NOTIFY_MAX_URL + 16];
    char sub_ref[160], name[64];
    char refs[NOTIFY_AUDIT_FOCUS][200], names[NOTIFY_AUDIT_FOCUS][48]; /* the first events' */
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

/* Counts each notification's attempt by result, and each event's latency. */
static void count_attempt(const struct attempt *a)
{
    char labels[NOTIFY_LABEL], extra[40];
    int64_t now = gw_now_ms();
    size_t i;

    for (i = 0; i < a->n_batch; i++) {
        const struct store_note *note = &a->batch[i];
        bool dead = !a->delivered && note->attempts + 1 >= a->n->cfg->subscription_max_attempts;

        snprintf(extra, sizeof extra, ",result=\"%s\"",
                 a->delivered ? "delivered"
                 : dead       ? "dead"
                              : "failed");
        if (sub_label(labels, sizeof labels, note->subscription, extra))
            gw_metric_add("gateway_subscription_deliveries_total", labels, 1);
        if (a->delivered && note->kind == STORE_NOTE_EVENT &&
            sub_label(labels, sizeof labels, note->subscription, NULL))
            gw_metric_observe("gateway_subscription_latency_seconds", labels,
                              (double)(now - note->created_ms) / 1000.0);
    }
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

void notify_metrics_collect(void *ctx)
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
    for (i = 0; i < n->n_gauged; i++) /* subscriptions deleted since: their gauges go to 0 */
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

void notify_metrics_describe(void)
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
    enum gw_code rc = store_txn_read(txn, "Subscription", a->head->subscription, 0, &row, err);

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

/* The state notification note goes to after this attempt. */
static enum store_note_state next_state(const struct attempt *a, const struct store_note *note)
{
    if (a->dropped)
        return STORE_NOTE_DROPPED;
    if (a->delivered)
        return STORE_NOTE_DELIVERED;
    return note->attempts + 1 >= a->n->cfg->subscription_max_attempts ? STORE_NOTE_DEAD
                                                                      : STORE_NOTE_PENDING;
}

static enum gw_code record_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct attempt *a = ctx;
    const struct config *cfg = a->n->cfg;
    char error[GW_ERROR_MSG_MAX + 120];
    bool changed = false, first = false;
    size_t i;
    enum gw_code rc = GW_OK;

    for (i = 0; !rc && i < a->n_batch; i++) {
        rc = store_txn_note_settle(txn, a->batch[i].seq, next_state(a, &a->batch[i]), a->next_at_ms,
                                   a->delivered ? NULL : a->why, &changed, err);
        first = first || (i == 0 && changed);
    }
    if (rc || !first || a->dropped)
        return rc;
    if (a->delivered)
        return set_status(a, txn, "active", NULL, err);
    if (a->dead)
        gw_format(error, sizeof error, "notification %ld given up after %ld attempts: %s",
                  a->head->position, a->attempts, a->why);
    else
        gw_format(error, sizeof error, "%ld failed attempts to deliver notification %ld: %s",
                  a->attempts, a->head->position, a->why);
    if (a->dead || a->attempts >= cfg->subscription_error_after)
        return set_status(a, txn, "error", error, err);
    return GW_OK;
}

static enum gw_code record_audit(struct store_txn *txn, void *ctx, enum gw_code outcome,
                                 const struct gw_error *why, struct gw_error *err)
{
    struct attempt *a = ctx;
    struct audit_event ev;
    char desc[GW_ERROR_MSG_MAX + 80];
    size_t i;

    memset(&ev, 0, sizeof ev);
    ev.kind = AUDIT_NOTIFY;
    ev.subtype = a->head->kind == STORE_NOTE_EVENT ? "event-notification" : "handshake";
    ev.action = 'E';
    ev.peer = a->peer[0] ? a->peer : NULL;
    ev.actor_name = "subscriber endpoint";
    ev.path = a->path[0] ? a->path : NULL;
    ev.request_id = a->name;
    ev.patient = a->patient[0] ? a->patient : NULL;
    ev.outcome = outcome                      ? audit_outcome_of(outcome)
                 : a->delivered || a->dropped ? AUDIT_SUCCESS
                 : a->dead                    ? AUDIT_SERIOUS_FAILURE
                                              : AUDIT_MINOR_FAILURE;
    gw_format(desc, sizeof desc, "%s%s%s%s",
              a->dropped ? "not sent: the Subscription is off or deleted" : a->why,
              a->dead && !a->dropped ? " (dead letter)" : "",
              a->became[0] ? "; Subscription now " : "", a->became);
    ev.outcome_desc = outcome ? why->msg : (ev.outcome || a->became[0] || a->dropped) ? desc : NULL;
    audit_add_entity(&ev, a->sub_ref, "4", "2", a->name);
    for (i = 0; i < a->n_batch && i < NOTIFY_AUDIT_FOCUS && a->head->kind == STORE_NOTE_EVENT; i++)
        audit_add_entity(&ev, a->refs[i], "4", "2", a->names[i]); /* the rest: a->name's range */
    return audit_record(txn, &ev, err);
}

/* ------------------------------------------------------------ what goes */

/* The events that go with head: the pending ones of its subscription, head
 * first, up to a handshake or subscription_max_batch. A handshake goes alone. */
static void gather(struct attempt *a)
{
    struct gw_error err;
    size_t k = 0;

    a->batch = a->head;
    a->n_batch = 1;
    if (a->head->kind != STORE_NOTE_EVENT ||
        store_note_pending(a->n->store, a->head->subscription,
                           (size_t)a->n->cfg->subscription_max_batch, &a->list, &a->n_list,
                           &err) != GW_OK ||
        a->n_list == 0 || a->list[0].seq != a->head->seq)
        return; /* the head alone */
    while (k < a->n_list && a->list[k].kind == STORE_NOTE_EVENT)
        k++;
    a->batch = a->list;
    a->n_batch = k;
}

/* Reads each event's version, names it for the audit, and notes the patient. */
static void load_focus(struct attempt *a)
{
    const struct store_note *first = &a->batch[0], *last = &a->batch[a->n_batch - 1];
    struct store_resource row;
    const char *patient;
    size_t i;

    snprintf(a->sub_ref, sizeof a->sub_ref, "Subscription/%s", a->head->subscription);
    if (a->head->kind != STORE_NOTE_EVENT) {
        snprintf(a->name, sizeof a->name, "handshake %ld", a->head->position);
        return;
    }
    snprintf(a->name, sizeof a->name, first == last ? "event %ld" : "events %ld-%ld", first->event,
             last->event);
    a->focus = calloc(a->n_batch, sizeof *a->focus);
    for (i = 0; a->focus && i < a->n_batch; i++) {
        const struct store_note *note = &a->batch[i];

        if (i < NOTIFY_AUDIT_FOCUS) {
            snprintf(a->refs[i], sizeof a->refs[i], "%s/%s", note->focus_type, note->focus_id);
            snprintf(a->names[i], sizeof a->names[i], "event %ld, version %ld", note->event,
                     note->focus_version);
        }
        if (store_read(a->n->store, note->focus_type, note->focus_id, note->focus_version, &row,
                       NULL) != GW_OK)
            continue;
        a->focus[i] = json_loads(row.json, 0, NULL);
        store_resource_cleanup(&row);
    }
    if (!a->focus)
        return;
    patient = str(json_object_get(a->focus[0], "for"), "reference");
    if (!patient)
        patient = str(json_object_get(a->focus[0], "subject"), "reference");
    if (patient && strncmp(patient, "Patient/", 8) == 0)
        snprintf(a->patient, sizeof a->patient, "%s", patient);
}

/* The body: nothing for a ping, else the notification Bundle as JSON. */
static enum gw_code build_body(struct attempt *a, json_t *sub, enum notify_content content,
                               struct gw_buf *body, struct gw_error *err)
{
    const struct store_note *last = &a->batch[a->n_batch - 1];
    struct notify_event ev = {.base = a->n->hooks.base(a->n->hooks.ctx),
                              .subscription_id = a->head->subscription,
                              .status = str(sub, "status"),
                              .kind = a->head->kind,
                              .events = last->event,
                              .timestamp_ms = last->created_ms,
                              .n_focus = a->head->kind == STORE_NOTE_EVENT ? a->n_batch : 0,
                              .content = content,
                              .first_position = a->head->position,
                              .last_position = last->position};
    struct notify_focus *focus;
    json_t *bundle = NULL;
    size_t i;
    enum gw_code rc = GW_OK;

    if (content == NOTIFY_PING)
        return GW_OK;
    focus = calloc(ev.n_focus + 1, sizeof *focus);
    if (!focus || (ev.n_focus && !a->focus))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a notification");
    for (i = 0; !rc && i < ev.n_focus; i++) {
        const struct store_note *note = &a->batch[i];

        if (content == NOTIFY_FULL_RESOURCE && !a->focus[i])
            rc = gw_fail(err, GW_E_NOTFOUND, "the changed version of %s/%s cannot be read",
                         note->focus_type, note->focus_id);
        focus[i] = (struct notify_focus){note->event,    note->created_ms,    note->focus_type,
                                         note->focus_id, note->focus_version, a->focus[i]};
    }
    ev.focus = focus;
    if (!rc && !(bundle = notify_bundle_build(&ev)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a notification");
    if (!rc)
        rc = fhir_write(FHIR_FORMAT_JSON, bundle, 0, body, err);
    json_decref(bundle);
    free(focus);
    return rc;
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

/* Sends to sub's endpoint; sets a->delivered or a->why. */
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
    if (!rc)
        rc = build_body(a, sub, content, &body, &err);
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
}

/* ------------------------------------------------------------ one delivery */

static json_t *subscription_now(struct notify *n, const char *id)
{
    struct store_resource row;
    json_t *sub = NULL;

    if (store_read(n->store, "Subscription", id, 0, &row, NULL) == GW_OK) {
        sub = row.deleted ? NULL : json_loads(row.json, 0, NULL);
        store_resource_cleanup(&row);
    }
    if (sub && (!str(sub, "status") || strcmp(str(sub, "status"), "off") == 0)) {
        json_decref(sub);
        sub = NULL;
    }
    return sub;
}

void notify_deliver(struct notify *n, const struct store_note *head)
{
    const struct config *cfg = n->cfg;
    struct attempt *a = calloc(1, sizeof *a);
    struct gw_error err;
    json_t *sub;
    size_t i;

    if (!a) {
        gw_log(GW_LOG_ERROR, "notify-no-memory", "no memory for a delivery");
        gw_sleep_ms(NOTIFY_IDLE_WAIT_MS);
        return;
    }
    *a = (struct attempt){.n = n, .head = head};
    sub = subscription_now(n, head->subscription);
    a->dropped = !sub;
    gather(a);
    load_focus(a);
    if (sub)
        send_to(a, sub);
    a->attempts = head->attempts + 1;
    a->dead = !a->delivered && !a->dropped && a->attempts >= cfg->subscription_max_attempts;
    a->next_at_ms =
        gw_now_ms() + (a->delivered || a->dropped
                           ? 0
                           : notify_backoff_ms(a->attempts, cfg->subscription_backoff_min_ms,
                                               cfg->subscription_backoff_max_ms));
    if (store_write(n->store, record_apply, record_audit, a, &err) != GW_OK) {
        gw_log(GW_LOG_ERROR, "notify-record-failed", "%s %s: %s", a->sub_ref, a->name, err.msg);
        gw_sleep_ms(NOTIFY_IDLE_WAIT_MS); /* the store is failing: do not spin on it */
    } else if (!a->dropped) {
        count_attempt(a);
        if (!a->delivered)
            gw_log(GW_LOG_WARN, "notify-retry", "%s %s: %s (%s)", a->sub_ref, a->name, a->why,
                   a->dead ? "dead letter" : "will retry");
    }
    for (i = 0; a->focus && i < a->n_batch; i++)
        json_decref(a->focus[i]);
    free(a->focus);
    store_note_list_free(a->list, a->n_list);
    json_decref(sub);
    free(a);
}
