/* ris.c -- the RIS side's life cycle: creation, the threads it starts (MLLP
 * listener, push workers) and stops, wake-ups of the push workers, message
 * control ids, and the outbox metrics of /metrics.
 *
 * Promises: ris_destroy() returns only once every thread it started has
 * ended, so the store may be closed right after; the metrics collector is
 * removed before the object is freed.
 */
#include "ris/ris_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RIS_LABEL_MAX 300 /* bytes of one Prometheus label set */

/* ------------------------------------------------------------ ids */

enum gw_code ris_control_id(char out[RIS_MAX_CONTROL_ID], struct gw_error *err)
{
    memcpy(out, RIS_CONTROL_ID_PREFIX, sizeof RIS_CONTROL_ID_PREFIX - 1);
    return gw_sortable_id(out + sizeof RIS_CONTROL_ID_PREFIX - 1, RIS_CONTROL_ID_CHARS, err);
}

bool ris_is_fhir_id(const char *text)
{
    size_t i;

    if (!text)
        return false;
    for (i = 0; text[i]; i++) {
        char c = text[i];

        if (i >= RIS_MAX_ID || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                 (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return i > 0;
}

/* ------------------------------------------------------------ wake-ups */

bool ris_stopping(struct ris *ris)
{
    bool stop;

    pthread_mutex_lock(&ris->lock);
    stop = ris->stopping;
    pthread_mutex_unlock(&ris->lock);
    return stop;
}

void ris_wake(struct ris *ris)
{
    pthread_mutex_lock(&ris->lock);
    ris->generation++;
    pthread_cond_broadcast(&ris->wake);
    pthread_mutex_unlock(&ris->lock);
}

static void deadline_in(struct timespec *until, long ms)
{
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += ms / 1000;
    until->tv_nsec += (ms % 1000) * 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

void ris_wait(struct ris *ris, long ms)
{
    struct timespec until;
    unsigned long gen;

    deadline_in(&until, ms);
    pthread_mutex_lock(&ris->lock);
    gen = ris->generation;
    while (!ris->stopping && gen == ris->generation)
        if (pthread_cond_timedwait(&ris->wake, &ris->lock, &until) != 0)
            break;
    pthread_mutex_unlock(&ris->lock);
}

void ris_sleep(struct ris *ris, long ms)
{
    struct timespec until;

    deadline_in(&until, ms);
    pthread_mutex_lock(&ris->lock);
    while (!ris->stopping)
        if (pthread_cond_timedwait(&ris->wake, &ris->lock, &until) != 0)
            break;
    pthread_mutex_unlock(&ris->lock);
}

/* ------------------------------------------------------------ metrics */

/* site="<id>" with \ and " escaped (Prometheus text format). */
static bool site_label(char *out, size_t cap, const char *site, const char *extra)
{
    size_t i, k = 0;
    int n;

    n = snprintf(out, cap, "site=\"");
    if (n < 0 || (size_t)n >= cap)
        return false;
    k = (size_t)n;
    for (i = 0; site && site[i]; i++) {
        if (k + 3 >= cap)
            return false;
        if (site[i] == '"' || site[i] == '\\')
            out[k++] = '\\';
        out[k++] = site[i] == '\n' ? ' ' : site[i];
    }
    n = snprintf(out + k, cap - k, "\"%s", extra ? extra : "");
    return n >= 0 && (size_t)n < cap - k;
}

void ris_metric_delivery(const char *site, const char *result)
{
    char labels[RIS_LABEL_MAX], extra[64];

    snprintf(extra, sizeof extra, ",result=\"%s\"", result);
    if (site_label(labels, sizeof labels, site, extra))
        gw_metric_add("gateway_ris_deliveries_total", labels, 1);
}

void ris_metric_retry(const char *site)
{
    char labels[RIS_LABEL_MAX];

    if (site_label(labels, sizeof labels, site, NULL))
        gw_metric_add("gateway_ris_retries_total", labels, 1);
}

static void set_site_gauges(const char *site, long depth, double oldest_s, long dead)
{
    char labels[RIS_LABEL_MAX];

    if (!site_label(labels, sizeof labels, site, NULL))
        return;
    gw_metric_set("gateway_outbox_depth", labels, (double)depth);
    gw_metric_set("gateway_outbox_oldest_pending_seconds", labels, oldest_s);
    gw_metric_set("gateway_outbox_dead_letters", labels, (double)dead);
}

/* Runs at each /metrics render: the outbox per configured site. */
static void collect(void *ctx)
{
    struct ris *ris = ctx;
    struct store_outbox_stats *stats = NULL;
    struct gw_error err;
    size_t i, n = 0;
    int64_t now = gw_now_ms();

    for (i = 0; i < ris->cfg->n_sites; i++)
        set_site_gauges(ris->cfg->sites[i].id, 0, 0, 0);
    if (store_outbox_stats(ris->store, &stats, &n, &err) != GW_OK) {
        gw_log(GW_LOG_WARN, "ris-metrics-failed", "outbox statistics: %s", err.msg);
        return;
    }
    for (i = 0; i < n; i++) {
        double oldest = stats[i].oldest_pending_ms > 0 && now > stats[i].oldest_pending_ms
                            ? (double)(now - stats[i].oldest_pending_ms) / 1000.0
                            : 0;

        set_site_gauges(stats[i].site, stats[i].pending + stats[i].leased, oldest, stats[i].dead);
        free(stats[i].site);
    }
    free(stats);
}

static void describe_metrics(void)
{
    gw_metric_describe("gateway_outbox_depth", "gauge",
                       "HL7 v2 orders not yet acknowledged (pending or leased), per site");
    gw_metric_describe("gateway_outbox_oldest_pending_seconds", "gauge",
                       "age of the oldest order not yet acknowledged, per site");
    gw_metric_describe("gateway_outbox_dead_letters", "gauge",
                       "orders the RIS refused (AE/AR), per site");
    gw_metric_describe("gateway_ris_deliveries_total", "counter",
                       "order deliveries by outcome (acked, refused, failed), per site");
    gw_metric_describe("gateway_ris_retries_total", "counter",
                       "orders offered again after a failed push or an expired lease, per site");
}

/* ------------------------------------------------------------ life cycle */

enum gw_code ris_create(const struct config *cfg, struct store *store,
                        const struct ris_hooks *hooks, struct ris **out, struct gw_error *err)
{
    struct ris *ris;

    *out = NULL;
    if (!cfg || !store || !hooks || !hooks->put)
        return gw_fail(err, GW_E_INTERNAL, "the RIS side needs a config, a store and a put hook");
    ris = calloc(1, sizeof *ris);
    if (!ris)
        return gw_fail(err, GW_E_NOMEM, "no memory for the RIS side");
    ris->cfg = cfg;
    ris->store = store;
    ris->hooks = *hooks;
    ris->listen_fd = -1;
    ris->wake_fds[0] = ris->wake_fds[1] = -1;
    if (pthread_mutex_init(&ris->lock, NULL) != 0) {
        free(ris);
        return gw_fail(err, GW_E_INTERNAL, "cannot create the RIS lock");
    }
    if (pthread_cond_init(&ris->wake, NULL) != 0) {
        pthread_mutex_destroy(&ris->lock);
        free(ris);
        return gw_fail(err, GW_E_INTERNAL, "cannot create the RIS condition");
    }
    describe_metrics();
    gw_metric_add_collector(collect, ris);
    ris->collector_added = true;
    *out = ris;
    return GW_OK;
}

enum gw_code ris_start(struct ris *ris, struct gw_error *err)
{
    enum gw_code rc = ris_listener_start(ris, err);

    if (!rc)
        rc = ris_push_start(ris, err);
    return rc;
}

void ris_set_refusals(struct ris *ris, struct audit_refusals *r)
{
    ris->refusals = r;
}

int ris_mllp_port(const struct ris *ris)
{
    return ris ? ris->port : 0;
}

void ris_destroy(struct ris *ris)
{
    if (!ris)
        return;
    pthread_mutex_lock(&ris->lock);
    ris->stopping = true;
    pthread_cond_broadcast(&ris->wake);
    pthread_mutex_unlock(&ris->lock);
    ris_listener_stop(ris);
    ris_push_stop(ris);
    if (ris->collector_added)
        gw_metric_remove_collector(collect, ris);
    pthread_cond_destroy(&ris->wake);
    pthread_mutex_destroy(&ris->lock);
    free(ris);
}
