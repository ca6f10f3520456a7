/* push.c -- MLLP push delivery: one worker thread per push site, one message
 * in flight, strictly in outbox order (DESIGN §3).
 *
 * A worker takes the oldest unfinished message of its site, connects (or
 * keeps its connection), sends the frame and waits push_ack_timeout_ms for
 * the ACK whose MSA-2 names it. AA/CA: acked. AE/AR/CE/CR: a dead letter,
 * shown on the Task. Timeout, refused connection, disconnect or an unreadable
 * ACK: the attempt is recorded (outbox attempts + AuditEvent), the
 * connection dropped, and the same message is sent again after a pause that
 * doubles from push_backoff_min_ms up to push_backoff_max_ms; the next
 * message waits until this one is acked or dead. The control id never
 * changes, so a RIS that got the message but lost its ACK can dedupe it.
 * On stop, a message in flight gets RIS_STOP_GRACE_MS more for its ACK, then
 * stays unfinished and is sent again at the next start.
 *
 * Several instances on one PostgreSQL store: only the holder of the site's
 * push lease (store_push_lease()) pushes it. The holder renews it as it goes,
 * sends a message only while the lease outlasts the exchange (ACK timeout plus
 * RIS_LEASE_MARGIN_MS), and records each outcome under the lease's fence, so
 * an instance that lost it records nothing and stops. When the holder dies
 * another takes over once the lease ran out (push_lease_s); on SIGTERM it is
 * released at once. A takeover sends at most the message in flight again,
 * with its control id (the RIS dedupes), and never reorders.
 */
#include "ris/ris_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum outcome { PUSH_ACKED, PUSH_REFUSED, PUSH_FAILED, PUSH_ABANDONED };

struct attempt {
    struct ris_worker *w;
    const struct store_outbox_msg *m;
    enum outcome outcome;
    char code[4];
    char text[GW_ERROR_MSG_MAX];
    char type[16];
    struct ris_settled settled;
};

/* ------------------------------------------------------------ connection */

static void disconnect(struct ris_worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    hl7_mllp_cleanup(&w->dec);
    hl7_mllp_init(&w->dec, (size_t)w->ris->cfg->mllp_max_frame_bytes);
}

/* Connects within timeout_ms (non-blocking connect, then poll). */
static int connect_within(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol), soerr = 0;
    socklen_t len = sizeof soerr;
    struct pollfd pf;

    if (fd < 0)
        return -1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    pf = (struct pollfd){fd, POLLOUT, 0};
    if (poll(&pf, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 ||
        soerr != 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static bool connect_peer(struct ris_worker *w, char *why, size_t cap)
{
    const struct config_site *s = w->site;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    char port[16];
    long timeout = w->ris->cfg->push_ack_timeout_ms < RIS_PUSH_CONNECT_TIMEOUT_MS
                       ? w->ris->cfg->push_ack_timeout_ms
                       : RIS_PUSH_CONNECT_TIMEOUT_MS;
    int gai;

    snprintf(port, sizeof port, "%d", s->push_port);
    gai = getaddrinfo(s->push_host, port, &hints, &res);
    if (gai != 0) {
        gw_format(why, cap, "cannot resolve %s (%s)", w->peer, gai_strerror(gai));
        return false;
    }
    for (ai = res; ai && w->fd < 0; ai = ai->ai_next)
        w->fd = connect_within(ai, (int)timeout);
    freeaddrinfo(res);
    if (w->fd < 0)
        gw_format(why, cap, "cannot connect to %s", w->peer);
    return w->fd >= 0;
}

/* ------------------------------------------------------------ one exchange */

/* Reads the ACK of m; false with a->text when none came or it is unreadable. */
static bool read_ack(struct attempt *a, const char *frame, size_t len, bool *matched)
{
    struct hl7_msg *msg = NULL;
    struct hl7_ack ack;
    struct gw_error err;

    *matched = false;
    if (hl7_msg_parse(frame, len, &msg, NULL, &err) != GW_OK ||
        hl7_ack_read(msg, &ack, &err) != GW_OK) {
        gw_format(a->text, sizeof a->text, "unreadable ACK: %s", err.msg);
        hl7_msg_destroy(msg);
        return false;
    }
    if (strcmp(ack.control_id, a->m->control_id) == 0) { /* else an old ACK: skip it */
        *matched = true;
        snprintf(a->code, sizeof a->code, "%s", ack.code);
        gw_format(a->text, sizeof a->text, "%s", ack.text ? ack.text : "");
        a->outcome = ris_ack_accepted(ack.code) ? PUSH_ACKED : PUSH_REFUSED;
    }
    hl7_msg_destroy(msg);
    return true;
}

/* Waits for the ACK until the deadline (or the stop grace). */
static void wait_ack(struct attempt *a, int64_t deadline)
{
    struct ris_worker *w = a->w;
    int64_t stop_at = -1;
    struct gw_error err;

    for (;;) {
        int64_t now = gw_mono_ms();
        struct pollfd pf = {w->fd, POLLIN, 0};
        const char *frame;
        size_t len;
        bool matched;

        if (stop_at < 0 && ris_stopping(w->ris))
            stop_at = now + RIS_STOP_GRACE_MS;
        if (stop_at >= 0 && now >= stop_at) {
            a->outcome = PUSH_ABANDONED;
            return;
        }
        if (now >= deadline) {
            gw_format(a->text, sizeof a->text, "no ACK within %ld ms",
                      w->ris->cfg->push_ack_timeout_ms);
            return;
        }
        if (poll(&pf, 1,
                 (int)(deadline - now < RIS_PUSH_POLL_MS ? deadline - now : RIS_PUSH_POLL_MS)) <= 0)
            continue;
        if (hl7_mllp_read(&w->dec, w->fd, (int)(deadline - now), &frame, &len, &err) != GW_OK) {
            gw_format(a->text, sizeof a->text, "%s", err.msg);
            return;
        }
        if (!frame) {
            gw_format(a->text, sizeof a->text, "the peer closed the connection");
            return;
        }
        if (!read_ack(a, frame, len, &matched) || matched)
            return;
    }
}

/* Sends m and waits for its ACK; sets a->outcome (PUSH_FAILED with a->text). */
static void exchange(struct attempt *a)
{
    struct ris_worker *w = a->w;
    struct gw_error err;
    long timeout = w->ris->cfg->push_ack_timeout_ms;

    a->outcome = PUSH_FAILED;
    if (w->fd < 0 && !connect_peer(w, a->text, sizeof a->text))
        return;
    if (hl7_mllp_write(w->fd, a->m->message, a->m->message_len, (int)timeout, &err) != GW_OK) {
        gw_format(a->text, sizeof a->text, "%s", err.msg);
        return;
    }
    wait_ack(a, gw_mono_ms() + timeout);
}

/* ------------------------------------------------------------ recording */

static enum gw_code attempt_apply(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    struct attempt *a = vctx;
    enum gw_code rc = store_txn_push_fence(txn, a->w->site->id, a->w->lease_token, err);

    if (rc)
        return rc;
    if (a->outcome == PUSH_FAILED)
        return store_txn_outbox_attempt(txn, a->m->control_id, a->text, err);
    rc = store_txn_outbox_attempt(txn, a->m->control_id, NULL, err);
    if (!rc)
        rc = ris_settle(a->w->ris, txn, a->m->control_id, NULL, 0, a->code, a->text, &a->settled,
                        err);
    return rc;
}

static enum gw_code attempt_audit(struct store_txn *txn, void *vctx, enum gw_code outcome,
                                  const struct gw_error *why, struct gw_error *err)
{
    struct attempt *a = vctx;
    struct audit_event ev;
    char ref[RIS_MAX_REF], desc[GW_ERROR_MSG_MAX + 40];

    memset(&ev, 0, sizeof ev);
    ev.kind = AUDIT_HL7_EXPORT;
    ev.subtype = a->type[0] ? a->type : "OMI^O23";
    ev.action = 'E';
    ev.peer = a->w->peer;
    ev.actor_name = a->w->site->receiving_app;
    ev.request_id = a->m->control_id;
    ev.path = "MLLP push";
    ev.outcome = outcome                      ? audit_outcome_of(outcome)
                 : a->outcome == PUSH_ACKED   ? AUDIT_SUCCESS
                 : a->outcome == PUSH_REFUSED ? AUDIT_MINOR_FAILURE
                                              : AUDIT_SERIOUS_FAILURE;
    gw_format(desc, sizeof desc, "%s%s", a->outcome == PUSH_REFUSED ? "refused by the RIS: " : "",
              a->text[0] ? a->text : a->code);
    ev.outcome_desc = outcome ? why->msg : ev.outcome ? desc : NULL;
    snprintf(ref, sizeof ref, "%s/%s", a->m->ref_type, a->m->ref_id);
    audit_add_entity(&ev, ref, "20", "2", a->m->control_id);
    return audit_record(txn, &ev, err);
}

/* ------------------------------------------------------------ the worker */

static void pause_after_failure(struct ris_worker *w)
{
    long max = w->ris->cfg->push_backoff_max_ms;

    ris_sleep(w->ris, w->backoff_ms);
    w->backoff_ms = w->backoff_ms > max / 2 ? max : w->backoff_ms * 2;
}

static void deliver(struct ris_worker *w, const struct store_outbox_msg *m)
{
    struct attempt a = {.w = w, .m = m};
    struct gw_error err;

    ris_message_type(m->message, m->message_len, a.type);
    exchange(&a);
    if (a.outcome == PUSH_ABANDONED) {
        disconnect(w);
        return;
    }
    if (store_write(w->ris->store, attempt_apply, attempt_audit, &a, &err) != GW_OK) {
        gw_log(GW_LOG_ERROR, "ris-push-record-failed", "%s %s: %s", w->site->id, m->control_id,
               err.msg);
        if (err.code == GW_E_CONFLICT) /* the fence: another instance pushes now */
            w->lease_token = 0;
        disconnect(w);
        pause_after_failure(w);
        return;
    }
    if (a.outcome == PUSH_FAILED) {
        gw_log(GW_LOG_WARN, "ris-push-retry", "%s %s: %s (next try in %ld ms)", w->site->id,
               m->control_id, a.text, w->backoff_ms);
        ris_metric_delivery(w->site->id, "failed");
        ris_metric_retry(w->site->id);
        disconnect(w);
        pause_after_failure(w);
        return;
    }
    ris_metric_delivery(w->site->id, a.outcome == PUSH_ACKED ? "acked" : "refused");
    w->backoff_ms = w->ris->cfg->push_backoff_min_ms;
}

/* The lease on pushing the site: taken, renewed when a third of it went by,
 * lost. True when it lasts long enough for one more exchange. */
static bool hold_lease(struct ris_worker *w)
{
    long ttl = w->ris->cfg->push_lease_s * 1000;
    long need = w->ris->cfg->push_ack_timeout_ms + RIS_LEASE_MARGIN_MS;
    int64_t now = gw_mono_ms(), token = 0, until = 0;
    struct gw_error err;
    enum gw_code rc;

    if (need > ttl * 3 / 4)
        need = ttl * 3 / 4; /* a lease shorter than the ACK timeout: the fence still holds */
    if (w->lease_token && w->lease_until_ms - now > ttl * 2 / 3)
        return true;
    if (!w->lease_token && now < w->lease_retry_ms)
        return false;
    rc = store_push_lease(w->ris->store, w->site->id, ttl, &token, &until, &err);
    if (rc) {
        if (w->lease_token)
            gw_log(GW_LOG_WARN, "push-lease-lost", "site %s: %s", w->site->id, err.msg);
        else if (rc != GW_E_CONFLICT)
            gw_log(GW_LOG_ERROR, "push-lease-failed", "site %s: %s", w->site->id, err.msg);
        if (w->lease_token)
            disconnect(w);
        w->lease_token = 0;
        w->lease_retry_ms = now + RIS_LEASE_RETRY_MS;
        return false;
    }
    if (token != w->lease_token)
        gw_log(GW_LOG_INFO, "push-lease-acquired", "site %s: this instance pushes it (token %lld)",
               w->site->id, (long long)token);
    w->lease_token = token;
    w->lease_until_ms = until;
    return until - gw_mono_ms() > need;
}

static void *worker_main(void *arg)
{
    struct ris_worker *w = arg;
    struct gw_error err;

    while (!ris_stopping(w->ris)) {
        struct store_outbox_msg m;
        enum gw_code rc;

        if (!hold_lease(w)) {
            ris_wait(w->ris, RIS_PUSH_POLL_MS);
            continue;
        }
        rc = store_outbox_next(w->ris->store, w->site->id, &m, &err);

        if (rc == GW_E_NOTFOUND) {
            ris_wait(w->ris, RIS_PUSH_POLL_MS);
            continue;
        }
        if (rc) {
            gw_log(GW_LOG_ERROR, "ris-push-outbox-failed", "%s: %s", w->site->id, err.msg);
            pause_after_failure(w);
            continue;
        }
        deliver(w, &m);
        store_outbox_msg_cleanup(&m);
    }
    store_push_release(w->ris->store, w->site->id, w->lease_token);
    disconnect(w);
    hl7_mllp_cleanup(&w->dec);
    return NULL;
}

enum gw_code ris_push_start(struct ris *ris, struct gw_error *err)
{
    size_t i, n = 0;

    for (i = 0; i < ris->cfg->n_sites; i++)
        n += ris->cfg->sites[i].delivery && strcmp(ris->cfg->sites[i].delivery, "push") == 0;
    if (n == 0)
        return GW_OK;
    ris->workers = calloc(n, sizeof *ris->workers);
    if (!ris->workers)
        return gw_fail(err, GW_E_NOMEM, "no memory for the push workers");
    for (i = 0; i < ris->cfg->n_sites; i++) {
        const struct config_site *s = &ris->cfg->sites[i];
        struct ris_worker *w = &ris->workers[ris->n_workers];

        if (!s->delivery || strcmp(s->delivery, "push") != 0)
            continue;
        *w = (struct ris_worker){
            .ris = ris, .site = s, .fd = -1, .backoff_ms = ris->cfg->push_backoff_min_ms};
        snprintf(w->peer, sizeof w->peer, "%s:%d", s->push_host, s->push_port);
        hl7_mllp_init(&w->dec, (size_t)ris->cfg->mllp_max_frame_bytes);
        ris->n_workers++;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            hl7_mllp_cleanup(&w->dec);
            return gw_fail(err, GW_E_INTERNAL, "cannot start the push worker of %s", s->id);
        }
        w->started = true;
        gw_log(GW_LOG_INFO, "ris-push-started", "site %s pushes to %s", s->id, w->peer);
    }
    return GW_OK;
}

void ris_push_stop(struct ris *ris)
{
    size_t i;

    for (i = 0; i < ris->n_workers; i++)
        if (ris->workers[i].started)
            pthread_join(ris->workers[i].thread, NULL);
    free(ris->workers);
    ris->workers = NULL;
    ris->n_workers = 0;
}
