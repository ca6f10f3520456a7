/* refusals.c -- refusals of clients without an identity, audited in bulk.
 *
 * A request without a listed certificate, or a connection from an address
 * MLLP does not admit, shows nobody: writing one AuditEvent for each lets an
 * anonymous peer fill the trail (3,000 requests once wrote 8.6 MB in 13 s).
 * Such refusals are counted per channel and peer address instead: the first
 * opens a window of period_s seconds, and when it closes one AuditEvent
 * (Security Alert / Node Authentication, outcome 4) records the count, the
 * first and last time (AuditEvent.period) and up to AUDIT_REFUSAL_SAMPLES
 * paths asked for. At most AUDIT_REFUSAL_MAX_PEERS addresses per channel are
 * tracked; the rest share one window ("other addresses"). So the trail
 * grows by at most (AUDIT_REFUSAL_MAX_PEERS + 1) events per channel and
 * period, and the counts add up exactly to the refusals: a background
 * thread closes the windows on time, and audit_refusals_destroy() records
 * those still open. Refusals of identified clients never come here.
 */
#include "audit/audit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFUSALS_TICK_MS   1000 /* how often windows are checked */
#define REFUSALS_MAX_TEXT  200  /* a sampled path or a reason, at most */
#define REFUSALS_MAX_CHANS 2    /* "HTTPS", "MLLP" */

struct window {
    const char *channel; /* static */
    char *address;       /* NULL: the other addresses */
    char *why;
    long count;
    int64_t first_ms, last_ms, opened_mono_ms;
    char *samples[AUDIT_REFUSAL_SAMPLES];
    size_t n_samples;
};

struct audit_refusals {
    struct store *store;
    int64_t period_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t flusher;
    bool started, stopping;
    struct window *windows; /* open windows, at most REFUSALS_MAX_CHANS * (MAX_PEERS + 1) */
    size_t n_windows, cap_windows;
};

static void window_free(struct window *w)
{
    size_t i;

    free(w->address);
    free(w->why);
    for (i = 0; i < w->n_samples; i++)
        free(w->samples[i]);
    memset(w, 0, sizeof *w);
}

static char *bounded_copy(const char *s)
{
    return s ? gw_strndup(s, strnlen(s, REFUSALS_MAX_TEXT)) : NULL;
}

/* ------------------------------------------------------------ recording */

static void record(struct audit_refusals *r, struct window *w)
{
    struct audit_tally tally = {.channel = w->channel,
                                .count = w->count,
                                .first_ms = w->first_ms,
                                .last_ms = w->last_ms,
                                .samples = (const char *const *)w->samples,
                                .n_samples = w->n_samples,
                                .other_addresses = w->address == NULL};
    struct audit_event ev;
    struct gw_error err;

    memset(&ev, 0, sizeof ev);
    ev.kind = AUDIT_SECURITY;
    ev.action = 'E';
    ev.outcome = AUDIT_MINOR_FAILURE;
    ev.outcome_desc = w->why;
    ev.peer = w->address;
    ev.tally = &tally;
    if (audit_record_alone(r->store, &ev, &err) != GW_OK)
        gw_log(GW_LOG_ERROR, "audit-failed", "%ld refusals over %s from %s: %s", w->count,
               w->channel, w->address ? w->address : "other addresses", err.msg);
}

/* Moves the windows to close (all when everything) out of the table into
 * *out (a new array the caller records and frees); called locked. */
static size_t take_closed(struct audit_refusals *r, bool everything, struct window **out)
{
    int64_t now = gw_mono_ms();
    size_t i = 0, n = 0;

    *out = NULL;
    if (r->n_windows == 0)
        return 0;
    *out = calloc(r->n_windows, sizeof **out);
    if (!*out)
        return 0; /* tried again at the next tick */
    while (i < r->n_windows) {
        if (everything || now - r->windows[i].opened_mono_ms >= r->period_ms) {
            (*out)[n++] = r->windows[i];
            r->windows[i] = r->windows[--r->n_windows];
        } else {
            i++;
        }
    }
    return n;
}

/* Records the closed windows (outside the lock: a record waits for its commit). */
static void flush(struct audit_refusals *r, bool everything)
{
    struct window *closed;
    size_t i, n;

    pthread_mutex_lock(&r->lock);
    n = take_closed(r, everything, &closed);
    pthread_mutex_unlock(&r->lock);
    for (i = 0; i < n; i++) {
        record(r, &closed[i]);
        window_free(&closed[i]);
    }
    free(closed);
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

static void *flusher_main(void *arg)
{
    struct audit_refusals *r = arg;
    struct timespec until;

    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        deadline_in(&until, REFUSALS_TICK_MS);
        pthread_cond_timedwait(&r->wake, &r->lock, &until);
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->lock);
        flush(r, false);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ------------------------------------------------------------ counting */

static bool same_peer(const struct window *w, const char *channel, const char *address)
{
    return strcmp(w->channel, channel) == 0 &&
           (w->address ? address && strcmp(w->address, address) == 0 : address == NULL);
}

static size_t peers_of(const struct audit_refusals *r, const char *channel)
{
    size_t i, n = 0;

    for (i = 0; i < r->n_windows; i++)
        n += strcmp(r->windows[i].channel, channel) == 0 && r->windows[i].address;
    return n;
}

/* The open window of (channel, address), opened when there is none; the
 * shared window of the other addresses once MAX_PEERS are tracked. Locked. */
static struct window *window_for(struct audit_refusals *r, const char *channel, const char *address)
{
    struct window *grown, *w;
    size_t i;

    if (address && peers_of(r, channel) >= AUDIT_REFUSAL_MAX_PEERS) {
        for (i = 0; i < r->n_windows; i++)
            if (same_peer(&r->windows[i], channel, address))
                return &r->windows[i];
        address = NULL;
    }
    for (i = 0; i < r->n_windows; i++)
        if (same_peer(&r->windows[i], channel, address))
            return &r->windows[i];
    grown = gw_grow(r->windows, &r->cap_windows, r->n_windows, sizeof *grown, 16);
    if (!grown)
        return NULL;
    r->windows = grown;
    w = &r->windows[r->n_windows];
    memset(w, 0, sizeof *w);
    w->channel = channel;
    if (address && !(w->address = gw_strdup(address)))
        return NULL;
    w->opened_mono_ms = gw_mono_ms();
    r->n_windows++;
    return w;
}

static void add_sample(struct window *w, const char *path)
{
    size_t i;

    if (!path || w->n_samples == AUDIT_REFUSAL_SAMPLES)
        return;
    for (i = 0; i < w->n_samples; i++)
        if (strncmp(w->samples[i], path, REFUSALS_MAX_TEXT) == 0)
            return;
    if ((w->samples[w->n_samples] = bounded_copy(path)) != NULL)
        w->n_samples++;
}

/* ------------------------------------------------------------ public */

enum gw_code audit_refusals_create(struct store *st, long period_s, struct audit_refusals **out,
                                   struct gw_error *err)
{
    struct audit_refusals *r;

    *out = NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        return gw_fail(err, GW_E_NOMEM, "no memory for the refusal counters");
    r->store = st;
    r->period_ms = period_s * 1000;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (pthread_create(&r->flusher, NULL, flusher_main, r) != 0) {
        audit_refusals_destroy(r);
        return gw_fail(err, GW_E_INTERNAL, "cannot start the refusal audit thread");
    }
    r->started = true;
    *out = r;
    return GW_OK;
}

void audit_refusals_note(struct audit_refusals *r, const char *channel, const char *address,
                         const char *path, const char *why)
{
    struct window *w;
    int64_t now = gw_now_ms();

    pthread_mutex_lock(&r->lock);
    w = window_for(r, channel, address);
    if (w) {
        if (w->count++ == 0)
            w->first_ms = now;
        w->last_ms = now;
        if (!w->why)
            w->why = bounded_copy(why);
        add_sample(w, path);
    }
    pthread_mutex_unlock(&r->lock);
    if (!w)
        gw_log(GW_LOG_ERROR, "audit-failed", "no memory to count a refusal over %s from %s",
               channel, address ? address : "another address");
}

void audit_refusals_destroy(struct audit_refusals *r)
{
    size_t i;

    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->lock);
        r->stopping = true;
        pthread_cond_broadcast(&r->wake);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->flusher, NULL);
    }
    flush(r, true); /* nothing counted is lost */
    for (i = 0; i < r->n_windows; i++)
        window_free(&r->windows[i]);
    free(r->windows);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
