/* conns.c -- open connections: how many may be open (in all and per peer
 * address), and how long a request may take to arrive.
 *
 * Limits: libmicrohttpd's accept policy callback checks the counts kept
 * here (its own per-address limit is off and its total limit is a backstop
 * above ours), so that every refusal is counted in /metrics and logged,
 * once per address a minute: a flood must not flood the log. Connections
 * accepted at the same instant by different threads may pass a limit by
 * fewer than the number of threads.
 *
 * Deadline: GnuTLS reads every connection's bytes through pull() below,
 * which notes when the first byte of a request arrives (on a new connection
 * the TLS handshake's bytes are the first: the handshake must end within
 * the deadline too, then the connection is idle); dispatch.c clears the
 * mark once the request is in whole. Every HTTP_SWEEP_MS the sweeper shuts down the
 * sockets of requests that have been arriving for longer than
 * receive_deadline_s, and libmicrohttpd closes them. A sender that drips a
 * byte at a time defeats an idle timeout, not this deadline.
 *
 * Invariant: a connection leaves the registry (libmicrohttpd's CLOSED
 * notification) before its socket is closed, and sockets are shut down only
 * under the registry's lock, so a reused descriptor is never touched.
 */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#define HTTP_SWEEP_MS       250
#define HTTP_PEER_BUCKETS   1024
#define HTTP_REFUSAL_LOG_MS 60000 /* one log line per address and minute */

/* What is logged once per address a minute. */
enum peer_event { PEER_REFUSED, PEER_CUT, PEER_EVENTS };

/* Connections, refusals and cuts of one peer address. */
struct peer_count {
    struct peer_count *next;
    int family;
    unsigned char addr[16];
    long open;
    long unlogged[PEER_EVENTS]; /* events since their last log line */
    int64_t logged_mono_ms[PEER_EVENTS];
    const char *why[PEER_EVENTS]; /* the last reason, a static string */
};

/* ------------------------------------------------------------ addresses */

/* The address bytes of sa (4 for IPv4, 16 for IPv6); 0 when another family. */
static size_t addr_bytes(const struct sockaddr *sa, unsigned char out[16], int *family)
{
    memset(out, 0, 16);
    *family = sa ? sa->sa_family : 0;
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

static void addr_text(int family, const unsigned char addr[16], char out[HTTP_MAX_PEER])
{
    snprintf(out, HTTP_MAX_PEER, "unknown");
    if (family == AF_INET || family == AF_INET6)
        inet_ntop(family, addr, out, HTTP_MAX_PEER);
}

static size_t bucket_of(const unsigned char addr[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % HTTP_PEER_BUCKETS;
}

/* The peer's entry, created when create is set (NULL on OOM or absent).
 * Caller holds the registry lock. */
static struct peer_count *peer_get(struct conn_registry *reg, int family,
                                   const unsigned char addr[16], bool create)
{
    struct peer_count **bucket = &reg->peers[bucket_of(addr)], *p;

    for (p = *bucket; p; p = p->next)
        if (p->family == family && memcmp(p->addr, addr, 16) == 0)
            return p;
    if (!create || !(p = calloc(1, sizeof *p)))
        return NULL;
    p->family = family;
    memcpy(p->addr, addr, 16);
    p->next = *bucket;
    *bucket = p;
    return p;
}

/* ------------------------------------------------------------ refusals */

/* Logs p's unlogged events of kind ev when its minute has passed. Caller
 * holds the lock. */
static void flush(struct peer_count *p, enum peer_event ev, int64_t now)
{
    char text[HTTP_MAX_PEER];
    json_t *fields;

    if (!p->unlogged[ev] ||
        (p->logged_mono_ms[ev] && now - p->logged_mono_ms[ev] < HTTP_REFUSAL_LOG_MS))
        return;
    addr_text(p->family, p->addr, text);
    fields = json_pack("{s:s, s:s, s:I, s:I}", "peer", text, "reason", p->why[ev], "count",
                       (json_int_t)p->unlogged[ev], "open", (json_int_t)p->open);
    if (ev == PEER_REFUSED)
        gw_log_fields(GW_LOG_WARN, "connection-refused", fields,
                      "connections refused over %s (logged once a minute per address)", p->why[ev]);
    else
        gw_log_fields(GW_LOG_WARN, "receive-deadline", fields,
                      "connections closed: a request took longer than %s to arrive (logged "
                      "once a minute per address)",
                      p->why[ev]);
    json_decref(fields);
    p->unlogged[ev] = 0;
    p->logged_mono_ms[ev] = now;
}

/* Counts an event of p (why: a static string); logs at most once a minute. */
static void note(struct peer_count *p, enum peer_event ev, const char *why, int64_t now)
{
    p->unlogged[ev]++;
    p->why[ev] = why;
    flush(p, ev, now);
}

/* Logs the counts whose minute has passed; drops the entries of peers with
 * nothing open and nothing left to log. Caller holds the lock. */
static void peers_prune(struct conn_registry *reg, int64_t now)
{
    size_t i;

    for (i = 0; i < reg->n_buckets; i++) {
        struct peer_count **pp = &reg->peers[i], *p;

        while ((p = *pp) != NULL) {
            flush(p, PEER_REFUSED, now);
            flush(p, PEER_CUT, now);
            if (p->open == 0 && p->unlogged[PEER_REFUSED] == 0 && p->unlogged[PEER_CUT] == 0 &&
                now - p->logged_mono_ms[PEER_REFUSED] >= HTTP_REFUSAL_LOG_MS &&
                now - p->logged_mono_ms[PEER_CUT] >= HTTP_REFUSAL_LOG_MS) {
                *pp = p->next;
                free(p);
            } else {
                pp = &p->next;
            }
        }
    }
}

static enum MHD_Result refuse(struct conn_registry *reg, struct peer_count *p, int family,
                              const unsigned char addr[16], const char *reason)
{
    char labels[80];

    if (!p)
        p = peer_get(reg, family, addr, true);
    if (p)
        note(p, PEER_REFUSED, reason, gw_mono_ms());
    pthread_mutex_unlock(&reg->lock);
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    gw_metric_add("gateway_http_connections_refused_total", labels, 1);
    return MHD_NO;
}

enum MHD_Result http_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *srv = cls;
    struct conn_registry *reg = &srv->conns;
    unsigned char bytes[16];
    struct peer_count *p;
    int family;

    (void)addrlen;
    addr_bytes(addr, bytes, &family);
    pthread_mutex_lock(&reg->lock);
    p = peer_get(reg, family, bytes, false);
    if (reg->total >= srv->cfg->max_connections)
        return refuse(reg, p, family, bytes, "max_connections");
    if (p && p->open >= srv->cfg->max_connections_per_ip)
        return refuse(reg, p, family, bytes, "max_connections_per_ip");
    pthread_mutex_unlock(&reg->lock);
    return MHD_YES;
}

/* ------------------------------------------------------------ TLS reads */

/* GnuTLS's read from the socket: notes the first byte of a request. */
static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct conn_ctx *cc = ptr;
    ssize_t n = recv(cc->fd, buf, len, 0);

    if (n > 0 && atomic_load_explicit(&cc->receiving_since_ms, memory_order_relaxed) == 0) {
        long long none = 0, now = (long long)gw_mono_ms();

        atomic_compare_exchange_strong(&cc->receiving_since_ms, &none, now > 0 ? now : 1);
    }
    return n;
}

/* GnuTLS's wait for readable data, on the same socket (GnuTLS requires one
 * with a custom pull function). */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    struct conn_ctx *cc = ptr;
    struct pollfd pfd = {.fd = cc->fd, .events = POLLIN};

    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

void http_conns_received(struct conn_ctx *cc)
{
    if (cc)
        atomic_store(&cc->receiving_since_ms, 0);
}

/* The client's Finished message ends the TLS handshake: until a request's
 * first byte, the connection is idle (the idle timeout's business). */
static int handshake_done(gnutls_session_t session, unsigned int htype, unsigned int when,
                          unsigned int incoming, const gnutls_datum_t *msg)
{
    gnutls_transport_ptr_t recv_ptr = NULL, send_ptr = NULL;

    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_FINISHED && when == GNUTLS_HOOK_POST && incoming) {
        gnutls_transport_get_ptr2(session, &recv_ptr, &send_ptr);
        http_conns_received(recv_ptr);
    }
    return 0;
}

/* Reads of the connection's TLS session go through pull() (writes stay
 * GnuTLS's own on the socket), and its handshake's end is noted. */
static void hook_reads(struct MHD_Connection *conn, struct conn_ctx *cc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;

    if (!session)
        return;
    gnutls_transport_set_ptr2(session, cc, (gnutls_transport_ptr_t)(intptr_t)cc->fd);
    gnutls_transport_set_pull_function(session, pull);
    gnutls_transport_set_pull_timeout_function(session, pull_timeout);
    gnutls_handshake_set_hook_function(session, GNUTLS_HANDSHAKE_FINISHED, GNUTLS_HOOK_POST,
                                       handshake_done);
}

/* ------------------------------------------------------------ open and close */

struct conn_ctx *http_conns_open(struct http_server *srv, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *fd_info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr_info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct conn_registry *reg = &srv->conns;
    struct conn_ctx *cc = calloc(1, sizeof *cc);
    struct peer_count *p;

    if (!cc || !fd_info)
        goto fail;
    cc->srv = srv;
    cc->fd = fd_info->connect_fd;
    addr_bytes(addr_info ? addr_info->client_addr : NULL, cc->addr, &cc->family);
    addr_text(cc->family, cc->addr, cc->peer);
    atomic_init(&cc->receiving_since_ms, 0);
    pthread_mutex_lock(&reg->lock);
    p = peer_get(reg, cc->family, cc->addr, true);
    if (!p) {
        pthread_mutex_unlock(&reg->lock);
        goto fail;
    }
    p->open++;
    reg->total++;
    cc->next = reg->head;
    if (reg->head)
        reg->head->prev = cc;
    reg->head = cc;
    pthread_mutex_unlock(&reg->lock);
    hook_reads(conn, cc);
    return cc;
fail:
    free(cc);
    gw_log(GW_LOG_ERROR, "connection-untracked", "no memory to track a connection");
    return NULL;
}

void http_conns_close(struct http_server *srv, struct conn_ctx *cc)
{
    struct conn_registry *reg = &srv->conns;
    struct peer_count *p;

    pthread_mutex_lock(&reg->lock);
    p = peer_get(reg, cc->family, cc->addr, false);
    if (p)
        p->open--;
    reg->total--;
    if (cc->prev)
        cc->prev->next = cc->next;
    else
        reg->head = cc->next;
    if (cc->next)
        cc->next->prev = cc->prev;
    pthread_mutex_unlock(&reg->lock);
    auth_identity_cleanup(&cc->who);
    auth_table_destroy(cc->table);
    free(cc);
}

/* ------------------------------------------------------------ the sweeper */

/* Shuts down the sockets of requests past the deadline. Caller holds the lock. */
static long cut_late(struct http_server *srv, int64_t now)
{
    struct conn_ctx *cc;
    struct peer_count *p;
    int64_t limit_ms = srv->cfg->receive_deadline_s * 1000;
    long n = 0;

    for (cc = srv->conns.head; cc; cc = cc->next) {
        long long since = atomic_load(&cc->receiving_since_ms);

        if (!since || cc->cut || now - since <= limit_ms)
            continue;
        shutdown(cc->fd, SHUT_RDWR);
        cc->cut = true;
        n++;
        p = peer_get(&srv->conns, cc->family, cc->addr, false);
        if (p)
            note(p, PEER_CUT, "receive_deadline_s", now);
    }
    return n;
}

static void *sweeper_main(void *arg)
{
    struct http_server *srv = arg;
    struct conn_registry *reg = &srv->conns;
    struct timespec until;
    int64_t last_prune = gw_mono_ms();

    pthread_mutex_lock(&reg->lock);
    while (!reg->stopping) {
        int64_t now = gw_mono_ms();
        long cut = cut_late(srv, now), open = reg->total;

        if (now - last_prune >= HTTP_REFUSAL_LOG_MS / 4) {
            peers_prune(reg, now);
            last_prune = now;
        }
        pthread_mutex_unlock(&reg->lock);
        if (cut)
            gw_metric_add("gateway_http_receive_deadline_cuts_total", "", (double)cut);
        gw_metric_set("gateway_http_connections_open", "", (double)open);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += HTTP_SWEEP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&reg->lock);
        if (!reg->stopping)
            pthread_cond_timedwait(&reg->wake, &reg->lock, &until);
    }
    pthread_mutex_unlock(&reg->lock);
    return NULL;
}

enum gw_code http_conns_start(struct http_server *srv, struct gw_error *err)
{
    struct conn_registry *reg = &srv->conns;

    pthread_mutex_init(&reg->lock, NULL);
    pthread_cond_init(&reg->wake, NULL);
    reg->n_buckets = HTTP_PEER_BUCKETS;
    reg->peers = calloc(reg->n_buckets, sizeof *reg->peers);
    if (!reg->peers)
        return gw_fail(err, GW_E_NOMEM, "no memory for the connection table");
    gw_metric_describe("gateway_http_connections_refused_total", "counter",
                       "connections refused over max_connections or max_connections_per_ip");
    gw_metric_describe("gateway_http_receive_deadline_cuts_total", "counter",
                       "connections closed because a request took longer than "
                       "receive_deadline_s to arrive");
    gw_metric_describe("gateway_http_connections_open", "gauge", "open HTTPS connections");
    if (pthread_create(&reg->sweeper, NULL, sweeper_main, srv) != 0)
        return gw_fail(err, GW_E_INTERNAL, "cannot start the connection sweeper");
    reg->sweeper_started = true;
    return GW_OK;
}

void http_conns_stop(struct http_server *srv)
{
    struct conn_registry *reg = &srv->conns;
    size_t i;

    if (reg->sweeper_started) {
        pthread_mutex_lock(&reg->lock);
        reg->stopping = true;
        pthread_cond_broadcast(&reg->wake);
        pthread_mutex_unlock(&reg->lock);
        pthread_join(reg->sweeper, NULL);
    }
    for (i = 0; reg->peers && i < reg->n_buckets; i++)
        while (reg->peers[i]) {
            struct peer_count *p = reg->peers[i];

            reg->peers[i] = p->next;
            free(p);
        }
    free(reg->peers);
    reg->peers = NULL;
    pthread_cond_destroy(&reg->wake);
    pthread_mutex_destroy(&reg->lock);
}
