/* worker.c -- the delivery threads: each takes the oldest pending
 * notification of a subscription no other thread holds, has it sent
 * (attempt.c: with the events queued behind it, recorded in one commit)
 * before that subscription's next notification may go.
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
            notify_deliver(n, &heads[got]);
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
    notify_metrics_describe();
    gw_metric_add_collector(notify_metrics_collect, n);
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
        gw_metric_remove_collector(notify_metrics_collect, n);
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
