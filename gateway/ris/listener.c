/* listener.c -- the inbound MLLP listener (DESIGN §3, §8): an accept loop and
 * one thread per connection, at most RIS_MLLP_MAX_CONNECTIONS at once.
 *
 * Each frame (at most mllp_max_frame_bytes) goes through ris_inbound() and
 * its ACK frame is written back only after the commit. A connection idle for
 * mllp_timeout_s is closed; an oversized frame is answered AR and skipped; a
 * malformed message is answered AR with ERR; nothing a peer sends ends the
 * process. Transport: plain TCP on mllp_listen (TLS is optional in DESIGN
 * §3; bind the listener to a private address or put a TLS tunnel in front).
 * MLLP is plain TCP: a peer is known by its address only. An address in
 * mllp_peers speaks as the identity configured there (a ris client's name
 * and sites, or a name and sites of its own): its messages are deduplicated
 * under that identity and may concern only those sites. An address in
 * mllp_allow alone (the development setup: loopback) speaks as
 * "mllp:<address>" for every site. Any other address is closed at once,
 * logged and audited (counted per address and period: audit/refusals.c).
 */
#include "ris/ris_int.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RIS_HOST_MAX              256
#define RIS_PEER_MAX              300
#define RIS_ACCEPT_ERROR_PAUSE_MS 100 /* after EMFILE and the like */

struct conn {
    struct ris *ris;
    int fd;
    char peer[RIS_PEER_MAX];     /* "host:port", for logs and audit */
    char identity[RIS_PEER_MAX]; /* who the peer speaks as (the dedupe key) */
    struct auth_identity who;    /* its sites, when configured (has_who) */
    bool has_who;
};

static void describe_peer(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
    char host[RIS_HOST_MAX], port[16];

    if (getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, cap, "unknown");
    else
        snprintf(out, cap, "%s:%s", host, port);
}

static enum gw_code open_listener(const char *host, int port, int *fd_out, int *bound,
                                  struct gw_error *err)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *res, *ai;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char service[16];
    int fd = -1, one = 1, gai;

    snprintf(service, sizeof service, "%d", port);
    gai = getaddrinfo(*host ? host : NULL, service, &hints, &res);
    if (gai != 0)
        return gw_fail(err, GW_E_IO, "mllp_listen: cannot resolve %s (%s)", host,
                       gai_strerror(gai));
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, RIS_MLLP_BACKLOG) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return gw_fail(err, GW_E_IO, "mllp_listen: cannot listen on %s:%d (errno %d)", host, port,
                       errno);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return GW_OK;
}

/* ------------------------------------------------------------ connections */

static void conn_end(struct conn *c)
{
    struct ris *ris = c->ris;
    size_t i;

    pthread_mutex_lock(&ris->lock);
    for (i = 0; i < ris->n_conns; i++)
        if (ris->conn_fds[i] == c->fd) {
            ris->conn_fds[i] = ris->conn_fds[--ris->n_conns];
            break;
        }
    close(c->fd); /* under the lock: the number is not shut down by ris_listener_stop() after */
    pthread_cond_broadcast(&ris->wake);
    pthread_mutex_unlock(&ris->lock);
    auth_identity_cleanup(&c->who);
    free(c);
}

/* An AR for a frame that was too long (its bytes are gone). */
static enum gw_code answer_oversized(struct conn *c, int timeout_ms, struct gw_error *err)
{
    char id[RIS_MAX_CONTROL_ID], text[120], *ack = NULL;
    size_t len = 0;
    struct hl7_err where;
    struct hl7_ack_spec spec = {.code = "AR", .control_id = id, .where = &where, .text = text};
    enum gw_code rc = ris_control_id(id, err);

    hl7_err_set(&where, HL7_ERR_INTERNAL, NULL, 0, 0, 0);
    snprintf(text, sizeof text, "the frame exceeds %ld bytes", c->ris->cfg->mllp_max_frame_bytes);
    if (!rc)
        rc = hl7_ack_build(&spec, &ack, &len, err);
    if (!rc)
        rc = hl7_mllp_write(c->fd, ack, len, timeout_ms, err);
    free(ack);
    return rc;
}

/* Reads frames and answers each until the peer leaves, idles or fails. */
static void serve(struct conn *c, struct hl7_mllp *d)
{
    int timeout_ms = (int)(c->ris->cfg->mllp_timeout_s * 1000);
    struct ris_sender from = {c->peer, c->identity, c->has_who ? &c->who : NULL, true};
    struct gw_error err;

    for (;;) {
        const char *frame;
        char *ack = NULL;
        size_t len, ack_len;
        enum gw_code rc = hl7_mllp_read(d, c->fd, timeout_ms, &frame, &len, &err);

        if (rc == GW_E_LIMIT) {
            gw_log(GW_LOG_WARN, "mllp-oversized", "%s: %s", c->peer, err.msg);
            if (answer_oversized(c, timeout_ms, &err) != GW_OK)
                return;
            continue;
        }
        if (rc || !frame)
            return; /* idle timeout, error or closed between frames */
        rc = ris_inbound(c->ris, &from, frame, len, &ack, &ack_len, &err);
        if (!rc)
            rc = hl7_mllp_write(c->fd, ack, ack_len, timeout_ms, &err);
        free(ack);
        if (rc) {
            gw_log(GW_LOG_WARN, "mllp-connection-failed", "%s: %s", c->peer, err.msg);
            return;
        }
    }
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct hl7_mllp d;

    hl7_mllp_init(&d, (size_t)c->ris->cfg->mllp_max_frame_bytes);
    serve(c, &d);
    hl7_mllp_cleanup(&d);
    conn_end(c);
    return NULL;
}

/* True when the numeric address host is in the comma-separated list. */
static bool listed(const char *list, const char *host)
{
    size_t n = strlen(host);
    const char *p = list;

    if (strncmp(host, "::ffff:", 7) == 0 && strchr(host, '.')) { /* IPv4-mapped */
        host += 7;
        n -= 7;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        while (len && *p == ' ') {
            p++;
            len--;
        }
        if ((len == 1 && *p == '*') || (len == n && strncmp(p, host, n) == 0))
            return true;
        p = end ? end + 1 : p + len;
    }
    return false;
}

/* The identity of the mllp_peers row m: a ris client's name and sites, or
 * the row's own. False when out of memory. */
static bool configured_identity(const struct config *cfg, const struct config_mllp_peer *m,
                                struct conn *c)
{
    const struct config_client *client = m->client ? config_client_find(cfg, m->client) : NULL;
    const char *name = client ? client->name : m->name;
    char *const *sites = client ? client->sites : m->sites;
    size_t i, n = client ? client->n_sites : m->n_sites;

    snprintf(c->identity, sizeof c->identity, "%s", name);
    c->has_who = true;
    c->who.role = AUTH_RIS;
    c->who.client_name = gw_strdup(name);
    c->who.sites = calloc(n + 1, sizeof *c->who.sites);
    if (!c->who.client_name || !c->who.sites)
        return false;
    for (i = 0; i < n; i++) {
        if (!(c->who.sites[i] = gw_strdup(sites[i])))
            return false;
        c->who.n_sites = i + 1;
    }
    return true;
}

/* Who the peer speaks as: its mllp_peers row, else (mllp_allow alone)
 * "mllp:<host>" for every site. Refuses a peer that is in neither: logged
 * and audited, then closed. */
static bool admit_peer(struct ris *ris, const struct sockaddr *sa, socklen_t len, struct conn *c)
{
    static const char why[] =
        "the address is not allowed to send MLLP messages (mllp_peers, mllp_allow)";
    const struct config_mllp_peer *m;
    char host[RIS_HOST_MAX];
    struct audit_event ev;
    struct gw_error err;

    if (getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(host, sizeof host, "unknown");
    m = config_mllp_peer_find(ris->cfg, host);
    if (m && !configured_identity(ris->cfg, m, c)) {
        gw_log(GW_LOG_ERROR, "mllp-peer-failed", "%s: no memory for its identity", host);
        return false;
    }
    if (m)
        return true;
    snprintf(c->identity, sizeof c->identity, "mllp:%s", host); /* every site */
    if (listed(ris->cfg->mllp_allow, host))
        return true;
    gw_log(GW_LOG_WARN, "mllp-peer-refused", "%s is not in mllp_peers or mllp_allow", host);
    if (ris->refusals) { /* no identity: counted per address and period */
        audit_refusals_note(ris->refusals, "MLLP", host, "MLLP connection", why);
        return false;
    }
    memset(&ev, 0, sizeof ev);
    ev.kind = AUDIT_HL7_IMPORT;
    ev.subtype = "connection";
    ev.action = 'E';
    ev.outcome = AUDIT_MINOR_FAILURE;
    ev.outcome_desc = why;
    ev.peer = host;
    ev.actor_name = host;
    ev.path = "MLLP";
    if (audit_record_alone(ris->store, &ev, &err) != GW_OK)
        gw_log(GW_LOG_ERROR, "audit-failed", "%s", err.msg);
    return false;
}

static void start_conn(struct ris *ris, int fd, const struct sockaddr *sa, socklen_t len)
{
    struct conn *c = calloc(1, sizeof *c);
    pthread_attr_t attr;
    pthread_t t;
    bool ok;

    if (!c || !admit_peer(ris, sa, len, c)) {
        close(fd);
        if (c)
            auth_identity_cleanup(&c->who);
        free(c);
        return;
    }
    pthread_mutex_lock(&ris->lock);
    ok = c && ris->n_conns < RIS_MLLP_MAX_CONNECTIONS && !ris->stopping;
    if (ok)
        ris->conn_fds[ris->n_conns++] = fd;
    pthread_mutex_unlock(&ris->lock);
    if (!ok) {
        gw_log(GW_LOG_WARN, "mllp-refused", "too many MLLP connections (%d) or stopping",
               RIS_MLLP_MAX_CONNECTIONS);
        close(fd);
        auth_identity_cleanup(&c->who);
        free(c);
        return;
    }
    c->ris = ris;
    c->fd = fd;
    describe_peer(sa, len, c->peer, sizeof c->peer);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, conn_main, c) != 0) {
        gw_log(GW_LOG_ERROR, "mllp-thread-failed", "cannot start a connection thread");
        conn_end(c);
    }
    pthread_attr_destroy(&attr);
}

static void *accept_main(void *arg)
{
    struct ris *ris = arg;

    for (;;) {
        struct pollfd pf[2] = {{ris->listen_fd, POLLIN, 0}, {ris->wake_fds[0], POLLIN, 0}};
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents || ris_stopping(ris))
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        fd = accept(ris->listen_fd, (struct sockaddr *)&ss, &len);
        if (fd < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
                gw_sleep_ms(RIS_ACCEPT_ERROR_PAUSE_MS);
            continue;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        start_conn(ris, fd, (struct sockaddr *)&ss, len);
    }
    return NULL;
}

/* ------------------------------------------------------------ start, stop */

enum gw_code ris_listener_start(struct ris *ris, struct gw_error *err)
{
    char host[RIS_HOST_MAX];
    int port = 0;
    json_t *fields;
    enum gw_code rc;

    if (!ris->cfg->mllp_listen || !*ris->cfg->mllp_listen)
        return GW_OK;
    rc = config_split_hostport(ris->cfg->mllp_listen, host, sizeof host, &port, err);
    if (!rc)
        rc = open_listener(host, port, &ris->listen_fd, &ris->port, err);
    if (rc)
        return rc;
    if (pipe(ris->wake_fds) != 0)
        return gw_fail(err, GW_E_IO, "cannot create the MLLP wake-up pipe (errno %d)", errno);
    if (pthread_create(&ris->acceptor, NULL, accept_main, ris) != 0)
        return gw_fail(err, GW_E_INTERNAL, "cannot start the MLLP accept thread");
    ris->acceptor_started = true;
    fields = json_pack("{s:s, s:i}", "listen", ris->cfg->mllp_listen, "port", ris->port);
    gw_log_fields(GW_LOG_INFO, "mllp-listening", fields, "MLLP listener ready (plain TCP)");
    json_decref(fields);
    return GW_OK;
}

void ris_listener_stop(struct ris *ris)
{
    size_t i;

    if (ris->acceptor_started) {
        if (write(ris->wake_fds[1], "x", 1) < 0)
            gw_log(GW_LOG_WARN, "mllp-stop", "cannot wake the accept loop (errno %d)", errno);
        pthread_join(ris->acceptor, NULL);
        ris->acceptor_started = false;
    }
    if (ris->listen_fd >= 0)
        close(ris->listen_fd);
    ris->listen_fd = -1;
    pthread_mutex_lock(&ris->lock);
    for (i = 0; i < ris->n_conns; i++)
        shutdown(ris->conn_fds[i], SHUT_RDWR); /* wakes their reads: they end on their own */
    while (ris->n_conns > 0)
        pthread_cond_wait(&ris->wake, &ris->lock);
    pthread_mutex_unlock(&ris->lock);
    for (i = 0; i < 2; i++)
        if (ris->wake_fds[i] >= 0)
            close(ris->wake_fds[i]);
    ris->wake_fds[0] = ris->wake_fds[1] = -1;
}
