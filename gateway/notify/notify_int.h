/* notify_int.h -- what the notify module's files share (and its unit tests).
 *
 * Files: endpoint.c (URLs, allow-list, headers, payload kinds, backoff),
 * payload.c (the notification Bundle), client.c (one HTTPS POST),
 * attempt.c (one delivery: what goes, its record, status, audit, metrics),
 * worker.c (the delivery threads, claims, life cycle).
 */
#ifndef GW_NOTIFY_INT_H
#define GW_NOTIFY_INT_H

#include "notify/notify.h"

#include <pthread.h>

#include <openssl/ssl.h>

#define NOTIFY_HEADS        64   /* pending heads looked at per pass */
#define NOTIFY_IDLE_WAIT_MS 1000 /* longest sleep without a wake-up */

struct notify {
    const struct config *cfg;
    struct store *store;
    struct notify_hooks hooks;
    pthread_mutex_t lock;
    char *allow;          /* the allow-list in force (lock) */
    SSL_CTX *tls;         /* the client context in force, NULL when nothing is allowed (lock) */
    bool stopping;        /* (lock) */
    uint64_t completions; /* attempts recorded (lock) */
    char *in_flight[NOTIFY_MAX_WORKERS]; /* subscriptions being delivered (lock) */
    pthread_mutex_t gauge_lock;          /* guards gauged (renders may overlap) */
    char **gauged;                       /* subscriptions given gauges at the last render */
    size_t n_gauged;
    pthread_t threads[NOTIFY_MAX_WORKERS];
    size_t n_threads;
    bool collector_added;
};

/* ------------------------------------------------------------ client.c */

/* Loads the gateway's client certificate and key and the CA endpoints must
 * chain to into a new TLS 1.2+ client context (SSL_CTX_free()). */
enum gw_code notify_tls_load(const struct config *cfg, SSL_CTX **out, struct gw_error *err);

struct notify_post {
    const struct notify_url *url;
    const char *const *headers; /* checked channel headers, "Name: value" */
    size_t n_headers;
    const char *body; /* NULL: an empty POST */
    size_t body_len;
    long connect_timeout_ms; /* TCP connect and TLS handshake */
    long timeout_ms;         /* sending the request and reading the answer's head */
};

/* POSTs to the endpoint over TLS (verifying its certificate and name) and
 * reads the status line of the answer. GW_OK with *status set when an HTTP
 * answer came (whatever its status); GW_E_IO / GW_E_LIMIT with the reason
 * when none did. */
enum gw_code notify_https_post(SSL_CTX *tls, const struct notify_post *post, int *status,
                               struct gw_error *err);

/* ------------------------------------------------------------ attempt.c */

/* Delivers head (a claimed pending notification) with the events queued
 * behind it, then records the attempt; never fails (a failure is recorded). */
void notify_deliver(struct notify *n, const struct store_note *head);
/* /metrics: help texts, and the collector of the per-subscription gauges. */
void notify_metrics_describe(void);
void notify_metrics_collect(void *ctx);

#endif
